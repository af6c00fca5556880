//! The executor scheduler: executors sharing threads keep every guarantee, and a
//! dedicated executor that blocks does not stall the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{start, wait_until};

#[test]
fn nine_executors_on_one_thread_ack_every_tuple_exactly_once() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  ackers: 2
  config: {squall.executor.threads: 1}
  spouts:
    - {name: ids, component: replay, parallelism: 2, config: {count: 20000}, outputs: [{fields: [id]}]}
  bolts:
    - name: pass
      component: pass
      parallelism: 3
      tasks: 6
      inputs: [{from: ids, grouping: {type: fields, fields: [id]}}]
      outputs: [{fields: [id]}]
    - {name: sink, component: sink, parallelism: 2, inputs: [{from: pass}]}
"#;
    let (topo, ledger) = start(yaml);
    assert_eq!(topo.executor_threads(), 1);
    assert!(
        wait_until(Duration::from_secs(60), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    let acks = ledger.acks.lock().unwrap();
    assert_eq!(acks.len(), 20_000);
    assert!(
        acks.values().all(|&n| n == 2),
        "each id acked once per spout task"
    );
    assert_eq!(ledger.total_fails(), 0);
    assert_eq!(ledger.received.load(Ordering::Relaxed), 40_000);
    assert_eq!(m.component("ids").unwrap().total.acked, 40_000);
    assert_eq!(m.component("pass").unwrap().total.executed, 40_000);
    assert_eq!(m.component("__acker").unwrap().total.acked, 40_000);
}

const GATED: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  config: {squall.executor.threads: 1}
  spouts:
    - {name: fast, component: replay, config: {count: 5000}, outputs: [{fields: [id]}]}
    - {name: slow, component: replay, config: {count: 10}, outputs: [{fields: [id]}]}
  bolts:
    - {name: fast-sink, component: sink, inputs: [{from: fast}]}
    - {name: gate, component: gate, config: {dedicated: DEDICATED}, inputs: [{from: slow}]}
"#;

#[test]
fn a_blocking_bolt_on_a_dedicated_thread_does_not_stall_the_shared_one() {
    let (topo, ledger) = start(&GATED.replace("DEDICATED", "true"));
    assert_eq!(topo.executor_threads(), 2, "one shared thread and the gate's own");
    assert!(wait_until(Duration::from_secs(30), || ledger
        .gate_entered
        .load(Ordering::Relaxed)
        > 0));
    // The gate holds its first tuple until opened; everything else runs meanwhile.
    assert!(
        wait_until(Duration::from_secs(60), || ledger
            .received
            .load(Ordering::Relaxed)
            == 5000),
        "fast pipeline stalled: {:?}",
        topo.metrics()
    );
    assert!(wait_until(Duration::from_secs(30), || topo
        .metrics()
        .component("fast")
        .unwrap()
        .total
        .acked
        == 5000));
    assert_eq!(
        ledger.gate_entered.load(Ordering::Relaxed),
        1,
        "the gate is still closed"
    );
    ledger.open_gate();
    assert!(
        wait_until(Duration::from_secs(60), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    assert_eq!(m.component("slow").unwrap().total.acked, 10);
    assert_eq!(m.component("gate").unwrap().total.executed, 10);
}

/// The control for the test above: the same bolt on the shared thread stops everything,
/// so that test does tell the two placements apart.
#[test]
fn a_blocking_bolt_on_the_shared_thread_stalls_it() {
    let (topo, ledger) = start(&GATED.replace("DEDICATED", "false"));
    assert_eq!(topo.executor_threads(), 1);
    assert!(wait_until(Duration::from_secs(30), || ledger
        .gate_entered
        .load(Ordering::Relaxed)
        > 0));
    let before = ledger.received.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ledger.received.load(Ordering::Relaxed), before);
    assert!(before < 5000, "the gate closed before the fast pipeline finished");
    ledger.open_gate();
    assert!(
        wait_until(Duration::from_secs(60), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    assert_eq!(ledger.received.load(Ordering::Relaxed), 5000);
    topo.shutdown();
}

#[test]
fn back_pressure_bounds_memory_when_producer_and_consumer_share_a_thread() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  ackers: 0
  config: {squall.queue.capacity: 1000, squall.batch.size: 100, squall.executor.threads: 1}
  spouts:
    - {name: ids, component: replay, config: {count: 100000000, reliable: false}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, config: {delay_us: 200}, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    assert_eq!(topo.executor_threads(), 1);
    let mut max_gap = 0;
    let mut max_depth = 0;
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(100));
        let m = topo.metrics();
        let emitted = m.component("ids").unwrap().total.emitted;
        let got = ledger.received.load(Ordering::Relaxed);
        max_gap = max_gap.max(emitted.saturating_sub(got));
        max_depth = max_depth.max(m.component("sink").unwrap().queue_depth);
    }
    let m = topo.shutdown();
    // Queue + a batch held by the spout + a batch in the bolt's hands + metrics lag.
    assert!(max_depth <= 1000, "queue depth {max_depth}");
    assert!(max_gap <= 1000 + 100 + 100 + 256 + 256, "in flight {max_gap}");
    assert!(
        ledger.received.load(Ordering::Relaxed) > 1000,
        "the sink made progress"
    );
    let spout = m.component("ids").unwrap();
    assert!(
        spout.total.backpressure_ns > 500_000_000,
        "spout was held back: {}",
        spout.total.backpressure_ns
    );
}

#[test]
fn a_panicking_task_on_a_shared_thread_restarts_and_its_neighbours_keep_going() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  messageTimeoutSeconds: 10
  config: {squall.executor.threads: 1}
  spouts:
    - {name: ids, component: replay, config: {count: 3000}, outputs: [{fields: [id]}]}
    - {name: other, component: replay, config: {count: 3000}, outputs: [{fields: [id]}]}
  bolts:
    - {name: flaky, component: flaky, config: {panic: 20}, inputs: [{from: ids}], outputs: [{fields: [id]}]}
    - {name: sink, component: sink, inputs: [{from: other}]}
"#;
    let (topo, ledger) = start(yaml);
    assert_eq!(topo.executor_threads(), 1);
    assert!(
        wait_until(Duration::from_secs(60), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    let flaky = m.component("flaky").unwrap();
    assert!(flaky.total.restarts > 100, "restarts: {}", flaky.total.restarts);
    assert!(flaky
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("injected panic"));
    assert_eq!(m.component("ids").unwrap().total.acked, 3000);
    assert_eq!(m.component("other").unwrap().total.acked, 3000);
    assert_eq!(m.component("other").unwrap().total.failed, 0);
    assert_eq!(ledger.received.load(Ordering::Relaxed), 3000);
    // Both spouts emit ids 0..3000: each id completes once per spout.
    let acks = ledger.acks.lock().unwrap();
    assert_eq!(acks.len(), 3000);
    assert!(acks.values().all(|&n| n == 2));
}

/// An acked pipeline of four cooperative executors on a pool of two threads, emitting as
/// fast as it is asked.
const BUSY: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  maxSpoutPending: 2000
  config: {squall.executor.threads: 2, squall.executor.elastic: ELASTIC}
  spouts:
    - {name: ids, component: replay, config: {count: COUNT}, outputs: [{fields: [id]}]}
  bolts:
    - {name: pass, component: pass, inputs: [{from: ids}], outputs: [{fields: [id]}]}
    - {name: sink, component: sink, inputs: [{from: pass}]}
"#;

#[test]
fn the_elastic_pool_grows_under_load_and_shrinks_when_it_falls() {
    // Two lanes, and three (the spout, the bolts and the acker spread over them), so
    // that threads also wait for lanes another thread still holds.
    for threads in [2, 3] {
        grow_and_shrink(threads);
    }
}

fn grow_and_shrink(threads: usize) {
    let count = 1_000_000_000u64;
    let yaml = BUSY
        .replace(
            "squall.executor.threads: 2",
            &format!("squall.executor.threads: {threads}"),
        )
        .replace("ELASTIC", "true")
        .replace("COUNT", &count.to_string());
    let (topo, ledger) = start(&yaml);
    assert_eq!(topo.executor_threads(), threads);
    // Executors move between threads each time the pool resizes; every tuple must still
    // arrive once and every tree complete.
    for round in 0..2 {
        assert!(
            wait_until(Duration::from_secs(20), || topo.active_pool_threads() >= 2),
            "{threads} threads, round {round}: one thread never ran out of time: {:?}",
            topo.metrics()
        );
        topo.deactivate();
        assert!(
            wait_until(Duration::from_secs(20), || topo.active_pool_threads() == 1),
            "{threads} threads, round {round}: an idle pool kept {} threads",
            topo.active_pool_threads()
        );
        topo.activate();
    }
    topo.deactivate();
    // Every tree emitted before the deactivation completes: the spout's published counts
    // catch up with what the sink got, and stay there.
    let settled = || {
        let acked = topo.metrics().component("ids").unwrap().total.acked;
        topo.pending() == 0 && acked == ledger.received.load(Ordering::Relaxed)
    };
    assert!(
        wait_until(Duration::from_secs(60), || settled() && {
            std::thread::sleep(Duration::from_millis(100));
            settled()
        }),
        "trees left: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    let ids = m.component("ids").unwrap();
    assert_eq!(ids.total.failed, 0);
    assert!(ids.total.acked > 0);
    assert_eq!(ledger.received.load(Ordering::Relaxed), ids.total.acked);
    let acks = ledger.acks.lock().unwrap();
    assert_eq!(acks.len() as u64, ids.total.acked);
    assert!(acks.values().all(|&n| n == 1), "a tuple acked twice");
}

#[test]
fn a_fixed_pool_keeps_every_thread_and_an_elastic_one_starts_on_one() {
    let yaml = BUSY.replace("COUNT", "1000");
    let (fixed, _) = start(&yaml.replace("ELASTIC", "false"));
    assert_eq!(fixed.active_pool_threads(), 2);
    let (elastic, _) = start(&yaml.replace("ELASTIC", "true"));
    assert_eq!(elastic.active_pool_threads(), 1);
    for topo in [fixed, elastic] {
        assert!(wait_until(Duration::from_secs(60), || topo.is_drained()));
        assert_eq!(topo.shutdown().component("ids").unwrap().total.acked, 1000);
    }
}
