//! Whole topologies run in process: Storm's guarantees, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{start, wait_until};

const SPOUT_TO_SINK: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  ackers: 2
  messageTimeoutSeconds: 30
  spouts:
    - name: ids
      component: replay
      parallelism: 2
      config: {count: 20000}
      outputs: [{fields: [id]}]
  bolts:
    - name: pass
      component: pass
      parallelism: 2
      tasks: 4
      inputs: [{from: ids, grouping: {type: fields, fields: [id]}}]
      outputs: [{fields: [id]}]
    - name: sink
      component: sink
      inputs: [{from: pass}]
"#;

#[test]
fn every_spout_tuple_is_acked_exactly_once_without_failures() {
    let (topo, ledger) = start(SPOUT_TO_SINK);
    assert!(
        wait_until(Duration::from_secs(30), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    // Two spout tasks each emit ids 0..20000.
    let acks = ledger.acks.lock().unwrap();
    assert_eq!(acks.len(), 20_000);
    assert!(
        acks.values().all(|&n| n == 2),
        "each id acked once per spout task"
    );
    assert_eq!(ledger.total_fails(), 0);
    assert_eq!(ledger.received.load(Ordering::Relaxed), 40_000);
    let spout = m.component("ids").unwrap();
    assert_eq!(spout.total.acked, 40_000);
    assert_eq!(spout.total.failed, 0);
    assert_eq!(spout.total.pending, 0);
    assert!(spout.finished, "a drained finite spout reports finished");
    assert_eq!(spout.total.unroutable, 0);
    assert!(spout.total.complete_us.count > 0, "complete latency recorded");
    let pass = m.component("pass").unwrap();
    assert_eq!(pass.total.executed, 40_000);
    assert_eq!(pass.total.acked, 40_000);
    assert_eq!(pass.tasks.len(), 4);
    assert!(
        pass.tasks.iter().all(|(_, s)| s.executed > 5_000),
        "fields grouping spreads ids over all 4 tasks"
    );
    assert_eq!(m.component("__acker").unwrap().total.acked, 40_000);
}

#[test]
fn failing_and_panicking_bolts_still_complete_every_tuple() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  messageTimeoutSeconds: 10
  spouts:
    - {name: ids, component: replay, config: {count: 5000}, outputs: [{fields: [id]}]}
  bolts:
    - name: flaky
      component: flaky
      parallelism: 2
      config: {fail: 10, panic: 10}
      inputs: [{from: ids, grouping: {type: shuffle}}]
      outputs: [{fields: [id]}]
    - {name: sink, component: sink, inputs: [{from: flaky}]}
"#;
    let (topo, ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(40), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    let acks = ledger.acks.lock().unwrap();
    assert_eq!(acks.len(), 5000, "every id completed");
    assert!(acks.values().all(|&n| n == 1), "and was acked once");
    let fails = ledger.total_fails();
    // About 20% of ids fail the first time; each is replayed and then succeeds.
    assert!((600..=1400).contains(&fails), "fails: {fails}");
    let flaky = m.component("flaky").unwrap();
    assert!(
        flaky.total.restarts > 100,
        "panicking tasks were restarted: {}",
        flaky.total.restarts
    );
    assert!(flaky.total.errors >= u64::from(fails));
    assert!(flaky.last_error.as_deref().unwrap_or("").contains("injected"));
    // The sink saw every id at least once (replays of failures never reached it twice).
    assert_eq!(ledger.received.load(Ordering::Relaxed), 5000);
}

#[test]
fn at_most_once_acks_on_emit_and_loses_only_the_failed() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  ackers: 0
  spouts:
    - {name: ids, component: replay, config: {count: 3000}, outputs: [{fields: [id]}]}
  bolts:
    - {name: flaky, component: flaky, config: {fail: 10}, inputs: [{from: ids}], outputs: [{fields: [id]}]}
    - {name: sink, component: sink, inputs: [{from: flaky}]}
"#;
    let (topo, ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(20), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    assert_eq!(ledger.acked_ids(), 3000, "every emit is acked at once");
    assert_eq!(ledger.total_fails(), 0, "nothing is failed back to the spout");
    let failed_in_bolt = m.component("flaky").unwrap().total.failed;
    assert!(failed_in_bolt > 150, "{failed_in_bolt}");
    assert_eq!(
        ledger.received.load(Ordering::Relaxed),
        3000 - failed_in_bolt,
        "exactly the failed tuples are lost, nothing else"
    );
}

#[test]
fn unacked_trees_time_out_between_t_and_2t_and_are_replayed() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  messageTimeoutSeconds: 1
  spouts:
    - {name: ids, component: replay, config: {count: 50}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, config: {ack: false}, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    assert!(wait_until(Duration::from_secs(10), || ledger.total_fails() >= 100));
    let m = topo.shutdown();
    let times = ledger.fail_times.lock().unwrap();
    assert!(times.len() >= 100);
    // The ledger notes an emit inside `next_tuple`; the engine stamps a step's emits
    // with one clock read before its calls, so the ledger's time may start a few of
    // those calls later (microseconds; more on a loaded machine).
    let stamp_lag = Duration::from_millis(5);
    for t in times.iter() {
        assert!(
            *t + stamp_lag >= Duration::from_millis(1000),
            "failed too early: {t:?}"
        );
        assert!(*t < Duration::from_millis(2000), "failed too late: {t:?}");
    }
    assert!(m.component("ids").unwrap().total.timed_out >= 100);
    assert_eq!(ledger.acked_ids(), 0);
}

#[test]
fn max_spout_pending_caps_trees_in_flight() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  maxSpoutPending: 10
  spouts:
    - {name: ids, component: replay, config: {count: 1000000}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, config: {ack: false}, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    std::thread::sleep(Duration::from_millis(500));
    let m = topo.metrics();
    let spout = m.component("ids").unwrap();
    assert_eq!(
        spout.total.emitted, 10,
        "no more than maxSpoutPending un-acked tuples"
    );
    assert_eq!(ledger.received.load(Ordering::Relaxed), 10);
    assert!(spout.total.skipped_max_pending_ns > 100_000_000);
    topo.shutdown();
}

#[test]
fn a_slow_bolt_bounds_memory_through_back_pressure() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  ackers: 0
  config: {squall.queue.capacity: 1000, squall.batch.size: 100}
  spouts:
    - {name: ids, component: replay, config: {count: 100000000, reliable: false}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, config: {delay_us: 200}, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
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
    // Queue (1000) + one batch held by the spout + one batch in the bolt's hands, plus
    // the lag of metrics publication (one spout round of 256 calls).
    assert!(max_depth <= 1000, "queue depth {max_depth}");
    assert!(max_gap <= 1000 + 100 + 100 + 256 + 256, "in flight {max_gap}");
    let spout = m.component("ids").unwrap();
    assert!(
        spout.total.backpressure_ns > 500_000_000,
        "spout was held back: {}",
        spout.total.backpressure_ns
    );
}

#[test]
fn tick_tuples_reach_bolts_that_ask_for_them() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  spouts:
    - {name: ids, component: replay, config: {count: 0}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, tickTupleFrequencySeconds: 1, parallelism: 2, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    std::thread::sleep(Duration::from_millis(2300));
    topo.shutdown();
    // Two tasks, ticks at 1 s and 2 s.
    assert_eq!(ledger.ticks.load(Ordering::Relaxed), 4);
}

#[test]
fn deactivate_stops_spouts_and_activate_resumes() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  desiredState: Inactive
  spouts:
    - {name: ids, component: replay, config: {count: 1000000000}, outputs: [{fields: [id]}]}
  bolts:
    - {name: sink, component: sink, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ledger.received.load(Ordering::Relaxed), 0);
    topo.activate();
    assert!(wait_until(Duration::from_secs(5), || ledger
        .received
        .load(Ordering::Relaxed)
        > 1000));
    topo.deactivate();
    std::thread::sleep(Duration::from_millis(200));
    let a = ledger.received.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        a,
        ledger.received.load(Ordering::Relaxed),
        "no tuples while inactive"
    );
    // Kill with wait: every in-flight tree completes before the stop.
    let m = topo.kill(Duration::from_secs(5));
    assert_eq!(m.component("ids").unwrap().total.pending, 0);
}

#[test]
fn direct_grouping_delivers_to_the_chosen_task() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  spouts:
    - {name: ids, component: replay, config: {count: 3000}, outputs: [{fields: [id]}]}
  bolts:
    - name: router
      component: router
      inputs: [{from: ids}]
      outputs: [{stream: routed, fields: [id, task], direct: true}]
    - name: direct-sink
      component: direct-sink
      parallelism: 3
      inputs: [{from: router, stream: routed, grouping: {type: direct}}]
"#;
    let (topo, ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(20), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    assert_eq!(
        ledger.received.load(Ordering::Relaxed),
        3000,
        "every tuple reached the task it was sent to"
    );
    assert_eq!(ledger.acked_ids(), 3000);
    let per_task: Vec<u64> = m
        .component("direct-sink")
        .unwrap()
        .tasks
        .iter()
        .map(|(_, s)| s.executed)
        .collect();
    assert_eq!(per_task, vec![1000, 1000, 1000]);
    assert_eq!(m.component("router").unwrap().total.errors, 0);
}

#[test]
fn reset_timeout_keeps_a_slow_tree_alive() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  messageTimeoutSeconds: 2
  spouts:
    - {name: ids, component: replay, config: {count: 20}, outputs: [{fields: [id]}]}
  bolts:
    - {name: holder, component: holder, tickTupleFrequencySeconds: 1, config: {hold_ms: 4500}, inputs: [{from: ids}]}
"#;
    // The holder runs on each 1 s tick: it resets the timeout of everything it holds,
    // and acks once a tuple has been held 4.5 s, more than twice the 2 s timeout.
    let (topo, ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(15), || ledger.acked_ids() == 20),
        "acked {}",
        ledger.acked_ids()
    );
    topo.shutdown();
    assert_eq!(
        ledger.total_fails(),
        0,
        "held 4.5 s with a 2 s timeout, yet never timed out"
    );
}

#[test]
fn a_bolt_error_fails_an_unsettled_input_at_once() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  messageTimeoutSeconds: 30
  spouts:
    - {name: ids, component: replay, config: {count: 10}, outputs: [{fields: [id]}]}
  bolts:
    - {name: erring, component: erring, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    // Odd ids fail on every attempt; far sooner than the 30 s timeout.
    assert!(
        wait_until(Duration::from_secs(5), || ledger.total_fails() >= 10),
        "fails {}",
        ledger.total_fails()
    );
    let m = topo.shutdown();
    assert_eq!(ledger.acked_ids(), 5, "even ids complete");
    assert_eq!(m.component("ids").unwrap().total.timed_out, 0);
    assert!(ledger.fails.lock().unwrap().keys().all(|id| id % 2 == 1));
}

#[test]
fn poll_lets_a_bolt_ack_buffered_input_and_counters_show_up() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  spouts:
    - {name: ids, component: replay, config: {count: 5000}, outputs: [{fields: [id]}]}
  bolts:
    - {name: buf, component: buffering, inputs: [{from: ids}]}
"#;
    let (topo, ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(20), || topo.is_drained()),
        "not drained: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    assert_eq!(ledger.acked_ids(), 5000);
    let buf = m.component("buf").unwrap();
    assert_eq!(buf.custom.get("flushed"), Some(&5000));
    let flushes = buf.custom.get("flushes").copied().unwrap_or(0);
    assert!(flushes > 0 && flushes < 5000, "batched flushes: {flushes}");
}

#[test]
fn figures_per_output_stream_and_per_input_are_exact() {
    // Unreliable spout: a failed tuple is not replayed, so every count is exact.
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  spouts:
    - {name: ids, component: replay, config: {count: 1000, reliable: false}, outputs: [{fields: [id]}]}
  bolts:
    - name: parity
      component: parity
      parallelism: 2
      inputs: [{from: ids}]
      outputs: [{fields: [id]}, {stream: odd, fields: [id]}]
    - name: judge
      component: judge
      parallelism: 2
      inputs: [{from: parity}, {from: parity, stream: odd}]
    - {name: odd-sink, component: sink, inputs: [{from: parity, stream: odd}]}
"#;
    let (topo, _ledger) = start(yaml);
    assert!(
        wait_until(Duration::from_secs(30), || {
            let m = topo.metrics();
            m.component("judge").unwrap().total.executed == 1000
                && m.component("odd-sink").unwrap().total.executed == 500
        }),
        "not done: {:?}",
        topo.metrics()
    );
    let m = topo.shutdown();
    let ids = m.component("ids").unwrap();
    let outputs = |c: &squall_engine::ComponentSnapshot| -> Vec<(String, u64, u64)> {
        let s = &c.total.streams;
        s.outputs
            .iter()
            .map(|o| (o.stream.clone(), o.emitted, o.transferred))
            .collect()
    };
    assert_eq!(outputs(ids), vec![("default".to_owned(), 1000, 1000)]);
    assert!(ids.total.streams.inputs.is_empty());

    let parity = m.component("parity").unwrap();
    // `odd` has two subscribers: each tuple is transferred twice.
    assert_eq!(
        outputs(parity),
        vec![("default".to_owned(), 500, 500), ("odd".to_owned(), 500, 1000)]
    );
    let input = &parity.total.streams.inputs;
    assert_eq!(input.len(), 1);
    assert_eq!(
        (input[0].component.as_str(), input[0].stream.as_str()),
        ("ids", "default")
    );
    assert_eq!(
        (input[0].executed, input[0].acked, input[0].failed),
        (1000, 1000, 0)
    );
    // Per task, the streams add up to the task's totals.
    for (_, s) in &parity.tasks {
        assert_eq!(
            s.streams.outputs.iter().map(|o| o.emitted).sum::<u64>(),
            s.emitted
        );
    }

    let judge = m.component("judge").unwrap();
    let rows: Vec<(&str, &str, u64, u64, u64)> = judge
        .total
        .streams
        .inputs
        .iter()
        .map(|i| {
            (
                i.component.as_str(),
                i.stream.as_str(),
                i.executed,
                i.acked,
                i.failed,
            )
        })
        .collect();
    // 0, 10, 20, ... fail on `default`; 5, 15, 25, ... on `odd`.
    assert_eq!(
        rows,
        vec![
            ("parity", "default", 500, 400, 100),
            ("parity", "odd", 500, 400, 100)
        ]
    );
    assert!(judge.total.streams.outputs.is_empty());
    // Latency samples per input add up to the component's histograms.
    let inputs = &judge.total.streams.inputs;
    let exec: u64 = inputs.iter().map(|i| i.execute_count).sum();
    let process: u64 = inputs.iter().map(|i| i.process_count).sum();
    assert_eq!(exec, judge.total.execute_us.count);
    assert_eq!(process, judge.total.process_us.count);
    assert!(exec > 0 && process > 0, "latencies sampled: {inputs:?}");
    assert!(inputs.iter().all(|i| i.execute_sum_us >= i.execute_count));
}
