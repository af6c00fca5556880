//! `serializer: msgpack` against real children: the unmodified streamparse/pystorm
//! classes of `squall_test_components` run through `streamparse_run` from the venv (the
//! host passes `--serializer msgpack`), and a hand-written msgpack child that breaks the
//! bounds on purpose (`fake_msgpack_child.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_components::Builtins;
use squall_engine::{EngineOptions, Snapshot, Topology};
use squall_model::{validate, TopologyManifest};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A program from the venv; fails (never skips) when the venv is missing.
fn venv(program: &str) -> PathBuf {
    let p = repo().join(".cache/venv/bin").join(program);
    assert!(
        p.exists(),
        "{} is missing: run `make multilang-venv` (part of `make test`) to install pystorm, streamparse and msgpack",
        p.display()
    );
    p
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("squall-multilang-msgpack-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("out")).unwrap();
    d
}

/// A shell block running `class` from squall_test_components with `serializer`.
fn shell(class: &str, serializer: &str) -> String {
    format!(
        r#"{{command: "{}", args: ["squall_test_components.{class}"], workingDir: "{}", serializer: {serializer}}}"#,
        venv("streamparse_run").display(),
        repo().join("multilang/python").display()
    )
}

fn start(yaml: &str) -> Topology {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let manifest = TopologyManifest::from_yaml(yaml, "test").unwrap();
    let plan = validate(&manifest, &Builtins).unwrap_or_else(|e| panic!("{e}"));
    Topology::start(&plan, Arc::new(Builtins), EngineOptions::default()).unwrap()
}

/// Waits until `spout` has acked `n` trees and nothing is in flight.
fn wait_acked(topo: &Topology, spout: &str, n: u64, within: Duration) -> Snapshot {
    let deadline = Instant::now() + within;
    loop {
        let m = topo.metrics();
        let s = m.component(spout).unwrap();
        if s.total.acked >= n && topo.pending() == 0 {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{spout} acked {} of {n} within {within:?}: {m:#?}",
            s.total.acked
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[derive(Debug, serde::Deserialize)]
struct Record {
    stream: String,
    values: Vec<serde_json::Value>,
    task: u32,
}

fn records(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("out")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        out.extend(text.lines().map(|l| serde_json::from_str::<Record>(l).unwrap()));
    }
    out
}

fn numbers(recs: &[Record]) -> BTreeSet<i64> {
    recs.iter().map(|r| r.values[0].as_i64().unwrap()).collect()
}

/// numbers (spout) → flaky → record, each with its serializer.
fn pipeline(name: &str, dir: &Path, count: u64, flaky_config: &str, serializers: [&str; 3]) -> String {
    format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  ackers: 1
  messageTimeoutSeconds: 60
  config: {{"squall.multilang.pid.dir": "{pids}", "test.out_dir": "{out}", "test.marker": "{marker}"}}
  spouts:
    - name: numbers
      component: shell
      shell: {spout}
      config: {{"test.count": {count}}}
      outputs: [{{fields: [n]}}]
  bolts:
    - name: flaky
      component: shell
      shell: {flaky}
      config: {flaky_config}
      outputs: [{{fields: [n]}}]
      inputs: [{{from: numbers}}]
    - name: record
      component: shell
      shell: {record}
      inputs: [{{from: flaky}}]
"#,
        pids = dir.join("pids").display(),
        out = dir.join("out").display(),
        marker = dir.join("marker").display(),
        spout = shell("NumberSpout", serializers[0]),
        flaky = shell("FlakyBolt", serializers[1]),
        record = shell("RecordingBolt", serializers[2]),
    )
}

fn no_restarts_or_errors(m: &Snapshot, components: &[&str]) {
    for c in components {
        let comp = m.component(c).unwrap();
        assert_eq!(comp.custom.get("child_restarts"), None, "{c}: {comp:?}");
        assert_eq!(comp.total.errors, 0, "{c}: {:?}", comp.last_error);
    }
}

#[test]
fn every_tuple_through_msgpack_python_spout_and_bolts_is_acked() {
    let dir = scratch("acked");
    let topo = start(&pipeline("acked", &dir, 500, "{}", ["msgpack"; 3]));
    let m = wait_acked(&topo, "numbers", 500, Duration::from_secs(60));
    let end = topo.shutdown();
    let spout = m.component("numbers").unwrap();
    assert_eq!(
        (spout.total.emitted, spout.total.acked, spout.total.failed),
        (500, 500, 0)
    );
    assert_eq!(m.component("flaky").unwrap().total.acked, 500);
    assert_eq!(m.component("record").unwrap().total.acked, 500);
    let recs = records(&dir);
    assert_eq!(recs.len(), 500, "each number recorded once");
    assert_eq!(numbers(&recs), (0..500).collect());
    no_restarts_or_errors(&end, &["numbers", "flaky", "record"]);
}

#[test]
fn failed_tuples_are_replayed_and_serializers_mix_in_one_topology() {
    let dir = scratch("replay");
    // A JSON spout, a msgpack bolt that fails multiples of 7 once, a JSON recorder.
    let topo = start(&pipeline(
        "replay",
        &dir,
        300,
        r#"{"test.fail_every": 7}"#,
        ["json", "msgpack", "json"],
    ));
    let m = wait_acked(&topo, "numbers", 300, Duration::from_secs(60));
    topo.shutdown();
    let multiples = (0..300).filter(|n| n % 7 == 0).count() as u64;
    let spout = m.component("numbers").unwrap();
    assert_eq!(spout.total.acked, 300);
    assert_eq!(spout.total.failed, multiples, "each multiple of 7 failed once");
    assert_eq!(spout.total.emitted, 300 + multiples, "and was emitted again");
    let flaky = m.component("flaky").unwrap();
    assert_eq!(flaky.total.failed, multiples);
    // `metrics` commands arrive through msgpack too.
    assert_eq!(flaky.custom.get("metric.failed_on_purpose"), Some(&multiples));
    assert_eq!(numbers(&records(&dir)), (0..300).collect());
}

#[test]
fn named_streams_task_ids_and_direct_emits_work_in_msgpack() {
    let dir = scratch("route");
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: route}}
spec:
  ackers: 1
  config: {{"squall.multilang.pid.dir": "{pids}", "test.out_dir": "{out}"}}
  spouts:
    - name: numbers
      component: shell
      shell: {spout}
      config: {{"test.count": 200}}
      outputs: [{{fields: [n]}}]
  bolts:
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
        pids = dir.join("pids").display(),
        out = dir.join("out").display(),
        spout = shell("NumberSpout", "msgpack"),
        router = shell("RouterBolt", "msgpack"),
        record = shell("RecordingBolt", "msgpack"),
    );
    let topo = start(&yaml);
    let m = wait_acked(&topo, "numbers", 200, Duration::from_secs(60));
    let record_tasks: BTreeSet<u32> = topo
        .plan()
        .component("record")
        .unwrap()
        .tasks
        .iter()
        .copied()
        .collect();
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
    assert_eq!((tagged.len(), direct.len()), (200, 200));
    for (n, task) in &tagged {
        // The task ids the host sent back in msgpack name the task that got the tagged
        // tuple, and the direct emit to that task arrived there.
        assert_eq!(direct[n], (*task, *task), "number {n}");
    }
    assert_eq!(tagged.values().copied().collect::<BTreeSet<_>>(), record_tasks);
}

#[test]
fn values_of_every_type_cross_msgpack_both_ways() {
    let dir = scratch("types");
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: types}}
spec:
  ackers: 1
  config: {{"squall.multilang.pid.dir": "{pids}", "test.out_dir": "{out}"}}
  spouts:
    - name: src
      component: shell
      shell: {spout}
      outputs: [{{fields: [a, b, c, d, e, f, g, h]}}]
  bolts:
    - name: types
      component: shell
      shell: {types}
      outputs: [{{fields: [names, text]}}]
      inputs: [{{from: src}}]
    - name: record
      component: shell
      shell: {record}
      inputs: [{{from: types}}]
"#,
        pids = dir.join("pids").display(),
        out = dir.join("out").display(),
        spout = shell("TypesSpout", "msgpack"),
        types = shell("TypesBolt", "msgpack"),
        record = shell("RecordingBolt", "json"),
    );
    let topo = start(&yaml);
    wait_acked(&topo, "src", 1, Duration::from_secs(60));
    topo.shutdown();
    let recs = records(&dir);
    assert_eq!(recs.len(), 1, "{recs:?}");
    // What the bolt's Python saw after child → host → child: bytes stayed bytes, and the
    // int key became text (the engine's maps have text keys, ordered).
    assert_eq!(
        recs[0].values,
        [
            serde_json::json!("NoneType,bool,int,float,str,list,dict,bytes"),
            serde_json::json!("[None, True, -3, 2.5, 'é', [1, [2]], {'2': 'two', 'k': 1}, b'\\x00\\xff']"),
        ]
    );
}

#[test]
fn a_python_exception_in_a_msgpack_bolt_is_reported_and_its_inputs_replayed() {
    let dir = scratch("raise");
    let yaml = pipeline("raise", &dir, 200, r#"{"test.raise_at": 50}"#, ["msgpack"; 3])
        .replace(&shell("FlakyBolt", "msgpack"), &shell("RaisingBolt", "msgpack"));
    let topo = start(&yaml);
    let m = wait_acked(&topo, "numbers", 200, Duration::from_secs(90));
    topo.shutdown();
    assert!(dir.join("marker").exists(), "the bolt raised");
    let bolt = m.component("flaky").unwrap();
    assert_eq!(bolt.custom.get("child_restarts"), Some(&1), "{bolt:?}");
    let spout = m.component("numbers").unwrap();
    assert!(
        spout.total.failed >= 1,
        "the raising child's inputs were failed: {spout:?}"
    );
    assert_eq!(spout.total.emitted, 200 + spout.total.failed, "and replayed");
    assert_eq!(numbers(&records(&dir)), (0..200).collect(), "nothing lost");
    // pystorm's `error` command arrived as the component's error (the restart's error
    // follows it, so look at both counts rather than the last one).
    assert!(bolt.total.errors >= 2, "{bolt:?}");
}

/// sequence(count 20) → the fake msgpack bolt in `mode`; returns the bolt's last error.
fn faulty_bolt(mode: &str, extra_config: &str) -> String {
    let dir = scratch(mode);
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {mode}}}
spec:
  ackers: 1
  config: {{"squall.multilang.pid.dir": "{pids}"}}
  spouts:
    - {{name: numbers, component: sequence, config: {{count: 20}}}}
  bolts:
    - name: bad
      component: shell
      shell: {{command: "{python}", args: ["{script}", "{mode}", "{marker}"], serializer: msgpack}}
      config: {{{extra_config}}}
      inputs: [{{from: numbers}}]
"#,
        pids = dir.join("pids").display(),
        python = venv("python").display(),
        script = repo().join("multilang/python/fake_msgpack_child.py").display(),
        marker = dir.join("marker").display(),
    );
    let topo = start(&yaml);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !topo.is_drained() {
        assert!(Instant::now() < deadline, "not drained: {:#?}", topo.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = topo.shutdown();
    let spout = m.component("numbers").unwrap();
    assert_eq!(
        spout.total.acked, 20,
        "{mode}: every number completed after the restart"
    );
    assert!(
        spout.total.failed >= 1,
        "{mode}: the first child's inputs were failed"
    );
    let bad = m.component("bad").unwrap();
    assert_eq!(bad.custom.get("child_restarts"), Some(&1), "{mode}: {bad:?}");
    bad.last_error.clone().unwrap_or_default()
}

#[test]
fn malformed_msgpack_restarts_the_child_with_a_clear_error() {
    let e = faulty_bolt("malformed", "");
    assert!(
        e.contains("shell child of \"bad\" task ")
            && e.contains("restarted: protocol error: invalid msgpack: byte 0xc1 is never used in msgpack"),
        "{e}"
    );
}

#[test]
fn a_msgpack_message_nested_too_deep_names_the_setting_that_raises_the_limit() {
    let e = faulty_bolt("deep", "");
    assert!(
        e.contains("shell child of \"bad\" task ")
            && e.contains(
                "protocol error: message nests deeper than 128 levels (the limit is squall.multilang.max.message.depth; raise it there)"
            ),
        "{e}"
    );
}

#[test]
fn an_oversized_msgpack_message_names_the_setting_that_raises_the_limit() {
    let e = faulty_bolt("oversized", r#""squall.multilang.max.message.bytes": 1024"#);
    assert!(
        e.contains(
            "protocol error: message exceeds 1024 bytes (the limit is squall.multilang.max.message.bytes; raise it there)"
        ),
        "{e}"
    );
}
