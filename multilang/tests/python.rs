//! Whole topologies whose spouts and bolts are plain streamparse/pystorm classes,
//! run unmodified through `streamparse_run` from the venv `make multilang-venv` builds.
//! The scenarios in `under_serializers!` run once with JSON and once with msgpack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::{
    alive, crash, exists, no_restarts_or_errors, numbers, numbers_topology, pid_of, pipeline, records,
    scratch, shell, start, wait_acked, wait_until,
};

/// A `#[test]` per serializer and scenario, in a module named after the serializer:
/// `json::<scenario>` and `msgpack::<scenario>` call `<scenario>("json")` and `<scenario>("msgpack")`.
macro_rules! under_serializers {
    ($($ser:ident),* => $scenarios:tt) => {
        $(under_serializers!(@one $ser $scenarios);)*
    };
    (@one $ser:ident [$($scenario:ident),* $(,)?]) => {
        mod $ser {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(stringify!($ser));
                }
            )*
        }
    };
}

under_serializers!(json, msgpack => [
    every_tuple_through_python_spout_and_bolts_is_acked,
    tuples_failed_by_a_python_bolt_are_replayed_until_complete,
    named_stream_and_need_task_ids_reach_the_right_tasks,
]);

fn every_tuple_through_python_spout_and_bolts_is_acked(ser: &str) {
    let name = format!("acked-{ser}");
    let dir = scratch(&name);
    let topo = start(&pipeline(&name, &dir, 500, "{}", [ser; 3]));
    let m = wait_acked(&topo, "numbers", 500, Duration::from_secs(60));
    let end = topo.shutdown();
    let spout = m.component("numbers").unwrap();
    assert_eq!(spout.total.acked, 500);
    assert_eq!(spout.total.failed, 0);
    assert_eq!(spout.total.emitted, 500);
    assert_eq!(m.component("flaky").unwrap().total.acked, 500);
    assert_eq!(m.component("record").unwrap().total.acked, 500);
    let recs = records(&dir);
    assert_eq!(recs.len(), 500, "each number recorded once");
    assert_eq!(numbers(&recs), (0..500).collect());
    assert!(recs.iter().all(|r| r.source == "flaky" && r.stream == "default"));
    no_restarts_or_errors(&end, &["numbers", "flaky", "record"]);
}

fn tuples_failed_by_a_python_bolt_are_replayed_until_complete(ser: &str) {
    replayed(ser, [ser; 3]);
}

#[test]
fn failed_tuples_are_replayed_and_serializers_mix_in_one_topology() {
    // A JSON spout, a msgpack bolt that fails, a JSON recorder.
    replayed("mixed", ["json", "msgpack", "json"]);
}

/// numbers → flaky (fails each multiple of 7 once) → record, with `serializers`.
fn replayed(label: &str, serializers: [&str; 3]) {
    let name = format!("replay-{label}");
    let dir = scratch(&name);
    let topo = start(&pipeline(
        &name,
        &dir,
        500,
        r#"{"test.fail_every": 7}"#,
        serializers,
    ));
    let m = wait_acked(&topo, "numbers", 500, Duration::from_secs(60));
    topo.shutdown();
    let multiples = (0..500).filter(|n| n % 7 == 0).count() as u64;
    let spout = m.component("numbers").unwrap();
    assert_eq!(spout.total.acked, 500);
    assert_eq!(spout.total.failed, multiples, "each multiple of 7 failed once");
    assert_eq!(spout.total.emitted, 500 + multiples, "and was emitted again");
    let flaky = m.component("flaky").unwrap();
    assert_eq!(flaky.total.failed, multiples);
    // `metrics` commands arrive through the bolt's serializer too.
    assert_eq!(flaky.custom.get("metric.failed_on_purpose"), Some(&multiples));
    assert_eq!(numbers(&records(&dir)), (0..500).collect());
}

fn named_stream_and_need_task_ids_reach_the_right_tasks(ser: &str) {
    let name = format!("route-{ser}");
    let dir = scratch(&name);
    let yaml = numbers_topology(
        &name,
        &dir,
        "",
        &shell("NumberSpout", ser),
        300,
        &format!(
            r#"
    - name: router
      component: shell
      shell: {router}
      outputs:
        - {{stream: tagged, fields: [n]}}
        - {{stream: direct, fields: [n, target], direct: true}}
      inputs: [{{from: numbers}}]
    - name: record
      component: shell
      parallelism: 3
      shell: {record}
      inputs:
        - {{from: router, stream: tagged, grouping: {{type: fields, fields: [n]}}}}
        - {{from: router, stream: direct, grouping: {{type: direct}}}}
"#,
            router = shell("RouterBolt", ser),
            record = shell("RecordingBolt", ser),
        ),
    );
    let topo = start(&yaml);
    let m = wait_acked(&topo, "numbers", 300, Duration::from_secs(60));
    let record_tasks = topo.plan().component("record").unwrap().tasks.clone();
    topo.shutdown();
    assert_eq!(m.component("numbers").unwrap().total.failed, 0);
    let mut tagged: BTreeMap<i64, u32> = BTreeMap::new();
    let mut direct: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
    for r in records(&dir) {
        let n = r.values[0].as_i64().unwrap();
        match r.stream.as_str() {
            "tagged" => assert!(tagged.insert(n, r.task).is_none(), "{n} tagged twice"),
            "direct" => {
                let claimed = r.values[1].as_u64().unwrap() as u32;
                assert!(direct.insert(n, (r.task, claimed)).is_none(), "{n} direct twice");
            }
            other => panic!("unexpected stream {other}"),
        }
    }
    assert_eq!(tagged.len(), 300);
    assert_eq!(direct.len(), 300);
    for (n, task) in &tagged {
        // The task ids the host sent back for the tagged emit name the task that
        // received it, and the direct emit to that task arrived there.
        assert_eq!(direct[n], (*task, *task), "number {n}");
    }
    let used: BTreeSet<u32> = tagged.values().copied().collect();
    assert_eq!(
        used,
        record_tasks.iter().copied().collect(),
        "fields grouping spread over all tasks"
    );
}

#[test]
fn a_killed_python_bolt_is_restarted_and_nothing_is_lost() {
    let dir = scratch("kill");
    let topo = start(&pipeline(
        "kill",
        &dir,
        2000,
        r#"{"test.delay_ms": 1}"#,
        ["json"; 3],
    ));
    // Kill the middle bolt's child with SIGKILL once it is well into the stream.
    wait_until(
        Duration::from_secs(30),
        || records(&dir).len() >= 300,
        || format!("no progress: {:#?}", topo.metrics()),
    );
    let flaky_task = topo.plan().component("flaky").unwrap().tasks[0];
    let old = pid_of(&dir, "kill", "flaky", flaky_task);
    crash(old);
    let m = wait_acked(&topo, "numbers", 2000, Duration::from_secs(90));
    let new = pid_of(&dir, "kill", "flaky", flaky_task);
    assert_ne!(old, new, "a new child runs");
    assert!(alive(new));
    let flaky = m.component("flaky").unwrap();
    assert_eq!(flaky.custom.get("child_restarts"), Some(&1));
    let spout = m.component("numbers").unwrap();
    assert_eq!(spout.total.acked, 2000, "every tuple completed");
    assert!(
        spout.total.failed >= 1,
        "the killed child's inputs were failed: {spout:?}"
    );
    assert_eq!(
        spout.total.emitted,
        2000 + spout.total.failed,
        "failed tuples were replayed"
    );
    let recs = records(&dir);
    assert_eq!(numbers(&recs), (0..2000).collect(), "at-least-once: nothing lost");
    topo.shutdown();
    assert!(!exists(new), "the child is killed and reaped at shutdown");
}

#[test]
fn a_failure_downstream_of_a_python_bolt_fails_the_spout_tuple_through_its_anchors() {
    let dir = scratch("anchors");
    // numbers → pass (emits anchored, acks) → flaky (fails multiples of 7 once) → record.
    let yaml = pipeline("anchors", &dir, 300, "{}", ["json"; 3])
        .replace("inputs: [{from: flaky}]", "inputs: [{from: last}]")
        .replace(
            "    - name: record\n",
            &format!(
                "    - name: last\n      component: shell\n      shell: {}\n      config: {{\"test.fail_every\": 7}}\n      outputs: [{{fields: [n]}}]\n      inputs: [{{from: flaky}}]\n    - name: record\n",
                shell("FlakyBolt", "json")
            ),
        );
    let topo = start(&yaml);
    let m = wait_acked(&topo, "numbers", 300, Duration::from_secs(60));
    topo.shutdown();
    let multiples = (0..300).filter(|n| n % 7 == 0).count() as u64;
    assert_eq!(m.component("last").unwrap().total.failed, multiples);
    let spout = m.component("numbers").unwrap();
    assert_eq!(
        spout.total.failed, multiples,
        "each failure two bolts downstream reached the spout: the first bolt's emits were anchored"
    );
    assert_eq!(spout.total.emitted, 300 + multiples);
    assert_eq!(m.component("flaky").unwrap().total.failed, 0);
    assert_eq!(numbers(&records(&dir)), (0..300).collect());
}

#[test]
fn streamparse_batching_bolt_flushes_on_tick_tuples() {
    let dir = scratch("batch");
    let yaml = numbers_topology(
        "batch",
        &dir,
        "",
        &shell("NumberSpout", "json"),
        1000,
        &format!(
            r#"
    - name: batch
      component: shell
      shell: {batch}
      tickTupleFrequencySeconds: 1
      outputs: [{{fields: [key, count]}}]
      inputs: [{{from: numbers}}]
    - name: record
      component: shell
      shell: {record}
      inputs: [{{from: batch}}]
"#,
            batch = shell("BatchCounter", "json"),
            record = shell("RecordingBolt", "json"),
        ),
    );
    let topo = start(&yaml);
    let m = wait_acked(&topo, "numbers", 1000, Duration::from_secs(60));
    topo.shutdown();
    assert_eq!(m.component("numbers").unwrap().total.failed, 0);
    let mut per_key: BTreeMap<i64, i64> = BTreeMap::new();
    for r in records(&dir) {
        *per_key.entry(r.values[0].as_i64().unwrap()).or_default() += r.values[1].as_i64().unwrap();
    }
    assert_eq!(
        per_key,
        (0..10).map(|k| (k, 100)).collect(),
        "every number counted once, by n % 10"
    );
    let batch = m.component("batch").unwrap();
    assert_eq!(
        batch.total.acked, 1000,
        "the batch's inputs acked (ticks are not counted)"
    );
}

#[test]
fn a_hanging_python_bolt_is_detected_by_the_heartbeat_timeout_and_restarted() {
    let dir = scratch("hang");
    let config = r#"{"test.hang_at": 50, "squall.multilang.timeout.secs": 3}"#;
    let topo = start(&pipeline("hang", &dir, 200, config, ["json"; 3]));
    let started = Instant::now();
    let m = wait_acked(&topo, "numbers", 200, Duration::from_secs(60));
    topo.shutdown();
    assert!(dir.join("marker").exists(), "the bolt hung once");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "not before the timeout"
    );
    let flaky = m.component("flaky").unwrap();
    assert_eq!(flaky.custom.get("child_restarts"), Some(&1));
    let spout = m.component("numbers").unwrap();
    assert_eq!(spout.total.acked, 200);
    assert!(
        spout.total.failed >= 1,
        "the hung child's inputs were failed: {spout:?}"
    );
    assert_eq!(
        spout.total.timed_out, 0,
        "failed by the restart, not by the message timeout"
    );
    assert_eq!(numbers(&records(&dir)), (0..200).collect());
}

#[test]
fn idle_python_bolts_answer_heartbeats_and_are_not_restarted() {
    let dir = scratch("idle");
    let config = r#"{"squall.multilang.timeout.secs": 2.5, "squall.multilang.heartbeat.secs": 0.25}"#;
    let yaml = pipeline("idle", &dir, 10, config, ["json"; 3]).replace(
        "      inputs: [{from: flaky}]",
        &format!("      config: {config}\n      inputs: [{{from: flaky}}]"),
    );
    let topo = start(&yaml);
    wait_acked(&topo, "numbers", 10, Duration::from_secs(30));
    // Idle for more than twice the timeout: only heartbeat replies show the bolts alive.
    std::thread::sleep(Duration::from_secs(6));
    let m = topo.shutdown();
    for c in ["flaky", "record"] {
        let comp = m.component(c).unwrap();
        assert_eq!(comp.custom.get("child_restarts"), None, "{c}: {comp:?}");
    }
    assert_eq!(numbers(&records(&dir)), (0..10).collect());
}
