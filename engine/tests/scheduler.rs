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
