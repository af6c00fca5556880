//! A topology split over two "processes" (two partial topologies in one test process),
//! joined by in-memory links that behave as a transport must: drain the outbound queue,
//! deliver through the inbound side, and wait when the receiver is full.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use squall_engine::fabric::Msg;
use squall_engine::queue::BatchQueue;
use squall_engine::{EngineOptions, Inbound, Placement, Topology, WireSchemas};
use support::{plan, wait_until, Kinds, Ledger};

struct Link {
    stop: Arc<AtomicBool>,
    moved: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Link {
    fn new(from: Arc<BatchQueue<Msg>>, to: Inbound) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let moved = Arc::new(AtomicU64::new(0));
        let (s, m) = (Arc::clone(&stop), Arc::clone(&moved));
        let handle = std::thread::spawn(move || {
            from.set_consumer(std::thread::current());
            let mut out = to.outbox();
            let mut buf = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if from.pop_into(&mut buf) {
                    for msg in buf.drain(..) {
                        m.fetch_add(1, Ordering::Relaxed);
                        out.send(msg.task(), msg);
                    }
                } else {
                    from.park_consumer(Duration::from_millis(1));
                }
                while !out.flush() && !s.load(Ordering::Relaxed) {
                    out.wait_for_room();
                    std::thread::park_timeout(Duration::from_millis(1));
                }
            }
        });
        Link {
            stop,
            moved,
            handle: Some(handle),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

const SPLIT: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: split}
spec:
  ackers: 2
  config: {squall.queue.capacity: 2000, squall.batch.size: 100}
  spouts:
    - {name: ids, component: replay, config: {count: 20000}, outputs: [{fields: [id]}]}
  bolts:
    - name: pass
      component: pass
      parallelism: 2
      inputs: [{from: ids, grouping: {type: fields, fields: [id]}}]
      outputs: [{fields: [id]}]
    - {name: sink, component: sink, config: {delay_us: 0}, inputs: [{from: pass, grouping: {type: localOrShuffle}}]}
"#;

fn tasks_of(p: &squall_model::Plan, names: &[&str]) -> BTreeSet<u32> {
    p.components
        .iter()
        .filter(|c| names.contains(&c.name.as_str()))
        .flat_map(|c| c.tasks.iter().copied())
        .collect()
}

#[test]
fn a_topology_split_over_two_processes_acks_every_tuple_once() {
    let ledger = Arc::new(Ledger::default());
    let kinds = Kinds {
        ledger: Arc::clone(&ledger),
    };
    let p = plan(SPLIT, &kinds);
    // Process A: the spout and one acker. Process B: the bolts and the other acker, so
    // tuples, acks and completions all cross the links.
    let ackers = &p.component("__acker").unwrap().tasks;
    let mut a_tasks = tasks_of(&p, &["ids"]);
    a_tasks.insert(ackers[0]);
    let mut b_tasks = tasks_of(&p, &["pass", "sink"]);
    b_tasks.insert(ackers[1]);
    let a = Placement {
        local: a_tasks.clone(),
        remote: vec![b_tasks.clone()],
    };
    let b = Placement {
        local: b_tasks,
        remote: vec![a_tasks],
    };
    let factory = Arc::new(kinds);
    let opts = EngineOptions::from_plan(&p);
    let (ta, la) = Topology::start_placed(&p, factory.clone(), opts.clone(), &a).unwrap();
    let (tb, lb) = Topology::start_placed(&p, factory, opts, &b).unwrap();
    let ab = Link::new(Arc::clone(&la.outbound[0]), lb.inbound.clone());
    let ba = Link::new(Arc::clone(&lb.outbound[0]), la.inbound.clone());

    assert!(
        wait_until(Duration::from_secs(30), || ledger.acked_ids() == 20_000),
        "acked {}",
        ledger.acked_ids()
    );
    let (ma, mb) = (ta.shutdown(), tb.shutdown());
    drop((ab, ba));
    assert!(ledger.acks.lock().unwrap().values().all(|&n| n == 1));
    assert_eq!(ledger.total_fails(), 0);
    assert_eq!(ledger.received.load(Ordering::Relaxed), 20_000);
    // Each process reports only its own components.
    assert!(ma.component("ids").is_some() && ma.component("pass").is_none());
    assert!(mb.component("pass").is_some() && mb.component("ids").is_none());
    assert_eq!(mb.component("pass").unwrap().total.executed, 20_000);
    // Both ackers did work: trees crossed processes in both directions.
    assert!(ma.component("__acker").unwrap().total.acked > 0);
    assert!(mb.component("__acker").unwrap().total.acked > 0);
}

#[test]
fn a_slow_receiver_stops_the_sender_through_the_link() {
    let ledger = Arc::new(Ledger::default());
    let kinds = Kinds {
        ledger: Arc::clone(&ledger),
    };
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: slow}
spec:
  ackers: 0
  config: {squall.queue.capacity: 1000, squall.batch.size: 100}
  spouts:
    - {name: ids, component: replay, config: {count: 100000000, reliable: false}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, config: {delay_us: 200}, inputs: [{from: ids}]}
"#;
    let p = plan(yaml, &kinds);
    let spout = tasks_of(&p, &["ids"]);
    let sink = tasks_of(&p, &["sink"]);
    let factory = Arc::new(kinds);
    let opts = EngineOptions::from_plan(&p);
    let a = Placement {
        local: spout.clone(),
        remote: vec![sink.clone()],
    };
    let b = Placement {
        local: sink,
        remote: vec![spout],
    };
    let (ta, la) = Topology::start_placed(&p, factory.clone(), opts.clone(), &a).unwrap();
    let (tb, lb) = Topology::start_placed(&p, factory, opts, &b).unwrap();
    let link = Link::new(Arc::clone(&la.outbound[0]), lb.inbound.clone());
    let mut max_gap = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        let emitted = ta.metrics().component("ids").unwrap().total.emitted;
        max_gap = max_gap.max(emitted.saturating_sub(ledger.received.load(Ordering::Relaxed)));
        assert!(la.outbound[0].len() <= 1000, "outbound queue stays bounded");
    }
    let moved = link.moved.load(Ordering::Relaxed);
    drop(link);
    ta.shutdown();
    tb.shutdown();
    // Outbound queue + receiver queue + a batch in each hand + metrics lag.
    assert!(max_gap <= 1000 + 1000 + 4 * 100 + 2 * 256, "in flight {max_gap}");
    assert!(moved > 1000, "the link moved tuples: {moved}");
}

#[test]
fn wire_schema_ids_round_trip() {
    let kinds = Kinds {
        ledger: Arc::new(Ledger::default()),
    };
    let p = plan(SPLIT, &kinds);
    let a = WireSchemas::new(&p);
    let b = WireSchemas::new(&p);
    for (ci, c) in p.components.iter().enumerate() {
        for (si, s) in c.outputs.iter().enumerate() {
            let schema = squall_engine::Schema::intern(&c.name, &s.stream, &s.fields);
            assert_eq!(a.id_of(schema), Some((ci as u32, si as u32)));
            assert!(std::ptr::eq(b.schema(ci as u32, si as u32).unwrap(), schema));
        }
    }
    assert!(a.schema(99, 0).is_none());
}

#[test]
fn a_split_executor_is_rejected() {
    let kinds = Kinds {
        ledger: Arc::new(Ledger::default()),
    };
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  spouts:
    - {name: ids, component: replay, tasks: 2, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, inputs: [{from: ids}]}
"#;
    let p = plan(yaml, &kinds);
    let ids = &p.component("ids").unwrap().tasks;
    let placement = Placement {
        local: [ids[0]].into(),
        remote: vec![],
    };
    let err = Topology::start_placed(&p, Arc::new(kinds), EngineOptions::default(), &placement)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("split between processes"), "{err}");
}
