//! Many executors in one process: memory follows what is sent, not how many queues
//! exist or how large their bounds are, and a thousand executors start, work and stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use squall_engine::fabric::{Control, Fabric, Msg, Outbox};
use squall_engine::queue::BatchQueue;
use squall_engine::Topology;
use support::{start, wait_until};

/// A fabric of `queues` queues, task `t` served by queue `t`.
fn fabric(queues: usize) -> Arc<Fabric> {
    Arc::new(Fabric {
        queues: (0..queues).map(|_| Arc::new(BatchQueue::new(1 << 20))).collect(),
        task_queue: (0..queues as u32).collect(),
        ackers: Vec::new(),
    })
}

fn ack(task: u32, root: u64) -> Msg {
    Msg::Control(Control::Ack { task, root, val: 0 })
}

#[test]
fn an_outbox_over_ten_thousand_queues_holds_nothing_until_it_sends() {
    let f = fabric(10_000);
    let mut out = Outbox::new(Arc::clone(&f), 256);
    assert_eq!(out.destinations(), 0);
    assert_eq!(out.buffered_capacity(), 0, "no buffer before the first send");
    out.send(7_000, ack(7_000, 1));
    out.send(7_000, ack(7_000, 2));
    out.send(12, ack(12, 3));
    assert_eq!(out.destinations(), 2, "one buffer per queue actually sent to");
    assert!(out.buffered_capacity() < 64, "{}", out.buffered_capacity());
    assert_eq!(out.len(), 3);
    assert!(out.flush());
    assert!(out.is_empty());
    let roots = |q: usize| -> Vec<u64> {
        let mut got = Vec::new();
        while let Some(b) = f.queues[q].try_pop() {
            got.extend(b.iter().map(|m| match m {
                Msg::Control(Control::Ack { root, .. }) => *root,
                other => panic!("unexpected {other:?}"),
            }));
        }
        got
    };
    assert_eq!(roots(7_000), vec![1, 2]);
    assert_eq!(roots(12), vec![3]);
    assert!((0..10_000)
        .filter(|q| *q != 7_000 && *q != 12)
        .all(|q| f.queues[q].is_empty()));
}

/// Model-based: sends to random queues (met in any order, so the outbox's slot table
/// grows at both ends) reach exactly their queue, in order, whatever the batch size.
#[test]
fn an_outbox_delivers_every_message_to_its_own_queue_in_order() {
    let mut seed = 0x9e37_79b9_u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for batch in [1, 3, 256] {
        let f = fabric(500);
        let mut out = Outbox::new(Arc::clone(&f), batch);
        // A sparse, scattered set of destinations.
        let targets: Vec<u32> = (0..40).map(|_| (rnd() % 500) as u32).collect();
        let mut sent: Vec<Vec<u64>> = vec![Vec::new(); 500];
        for root in 0..5_000u64 {
            let t = targets[(rnd() % targets.len() as u64) as usize];
            out.send(t, ack(t, root));
            sent[t as usize].push(root);
            if rnd() % 97 == 0 {
                assert!(out.flush_ready() || out.is_blocked());
            }
        }
        assert!(out.flush());
        let distinct = {
            let mut d = targets.clone();
            d.sort_unstable();
            d.dedup();
            d.len()
        };
        assert_eq!(out.destinations(), distinct);
        for (q, want) in sent.iter().enumerate() {
            let mut got = Vec::new();
            while let Some(b) = f.queues[q].try_pop() {
                got.extend(b.iter().map(|m| match m {
                    Msg::Control(Control::Ack { task, root, .. }) => {
                        assert_eq!(*task as usize, q);
                        *root
                    }
                    other => panic!("unexpected {other:?}"),
                }));
            }
            assert_eq!(&got, want, "queue {q}, batch {batch}");
        }
    }
}

/// Stops the topology on another thread; `None` if it has not stopped within `limit`.
fn stop_within(
    topo: Topology,
    limit: Duration,
    stop: impl FnOnce(Topology) -> squall_engine::Snapshot + Send + 'static,
) -> Option<squall_engine::Snapshot> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(stop(topo));
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn a_thousand_spout_and_a_thousand_bolt_executors_start_work_and_stop() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  ackers: 1
  spouts:
    - {name: ids, component: replay, parallelism: 1000, config: {count: 3}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, parallelism: 1000, inputs: [{from: ids, grouping: {type: shuffle}}]}
"#;
    let (topo, ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(120), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics().spout_totals()
    );
    let m = stop_within(topo, Duration::from_secs(60), Topology::shutdown).expect("stopped");
    // Every task emits ids 0..3.
    let acks = ledger.acks.lock().unwrap();
    assert_eq!(acks.len(), 3);
    assert!(acks.values().all(|&n| n == 1000), "{acks:?}");
    assert_eq!(ledger.total_fails(), 0);
    assert_eq!(ledger.received.load(Ordering::Relaxed), 3000);
    let ids = m.component("ids").unwrap();
    assert_eq!(ids.executors, 1000);
    assert_eq!(
        (ids.total.acked, ids.total.failed, ids.total.pending),
        (3000, 0, 0)
    );
    let sink = m.component("sink").unwrap();
    assert_eq!(sink.executors, 1000);
    assert_eq!(sink.total.executed, 3000);
    assert!(
        sink.tasks.iter().filter(|(_, s)| s.executed > 0).count() > 100,
        "shuffle spreads the tuples over the sink's executors"
    );
}

#[test]
fn a_kill_of_a_thousand_busy_executors_still_completes_the_trees_in_flight() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  ackers: 2
  maxSpoutPending: 5
  spouts:
    - {name: ids, component: replay, parallelism: 1000, config: {count: 1000000}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, parallelism: 1000, config: {delay_us: 20}, inputs: [{from: ids, grouping: {type: shuffle}}]}
"#;
    let (topo, ledger) = start(yaml);
    assert!(wait_until(Duration::from_secs(60), || ledger.acked_ids() > 0));
    let m = stop_within(topo, Duration::from_secs(120), |t| {
        t.kill(Duration::from_secs(60))
    })
    .expect("stopped");
    let (emitted, acked, failed, pending) = m.spout_totals();
    assert!(acked > 0);
    assert_eq!(
        (failed, pending),
        (0, 0),
        "in-flight trees finish before the stop"
    );
    assert_eq!(acked, emitted, "every emitted tree was acked");
}

#[test]
fn huge_queue_bounds_and_batch_sizes_from_the_config_allocate_nothing() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  config: {squall.queue.capacity: 4611686018427387904, squall.batch.size: 4611686018427387904}
  spouts:
    - {name: ids, component: replay, parallelism: 4, config: {count: 500}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, parallelism: 4, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(60), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics().spout_totals()
    );
    let m = topo.shutdown();
    assert_eq!(ledger.acked_ids(), 500);
    assert_eq!(ledger.total_fails(), 0);
    let sink = m.component("sink").unwrap();
    assert_eq!(sink.total.executed, 2000);
    assert_eq!(sink.queue_capacity, u64::MAX, "summed bounds saturate");
}
