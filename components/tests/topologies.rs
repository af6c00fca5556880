//! Small topologies of built-in components run through the engine, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall_components::random_sentence::sentence_for;
use squall_components::Builtins;
use squall_engine::{
    BasicBolt, Bolt, BoltOutput, ComponentError, ComponentFactory, EngineOptions, Snapshot, Spout, Topology,
    Tuple, Value,
};
use squall_model::{validate, Catalog, ComponentPlan, Config, KindInfo, Plan, Role, TopologyManifest};

fn plan_with(yaml: &str, catalog: &dyn Catalog) -> Plan {
    let manifest = TopologyManifest::from_yaml(yaml, "test").unwrap();
    match validate(&manifest, catalog) {
        Ok(plan) => plan,
        Err(e) => panic!("{e}"),
    }
}

fn run_to_drain(plan: &Plan, factory: Arc<dyn ComponentFactory>) -> Snapshot {
    let topo = Topology::start(plan, factory, EngineOptions::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !topo.is_drained() {
        assert!(
            Instant::now() < deadline,
            "not drained after 20 s: {:#?}",
            topo.metrics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    topo.shutdown()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("squall-components-{}-{name}", std::process::id()))
}

#[test]
fn finite_sequence_through_identity_is_acked_exactly_once() {
    let plan = plan_with(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: seq}
spec:
  ackers: 1
  spouts:
    - {name: numbers, component: sequence, config: {count: 10000}}
  bolts:
    - name: pass
      component: identity
      parallelism: 2
      config: {fields: [n]}
      inputs: [{from: numbers}]
    - {name: sink, component: "null", inputs: [{from: pass}]}
"#,
        &Builtins,
    );
    let m = run_to_drain(&plan, Arc::new(Builtins));
    let spout = m.component("numbers").unwrap();
    assert_eq!(spout.total.acked, 10_000);
    assert_eq!(spout.total.failed, 0);
    assert_eq!(spout.total.emitted, 10_000);
    assert_eq!(m.component("pass").unwrap().total.executed, 10_000);
    assert_eq!(m.component("sink").unwrap().total.executed, 10_000);
    assert_eq!(m.component("sink").unwrap().total.acked, 10_000);
}

#[test]
fn const_spout_with_acking_off_finishes_after_count() {
    let plan = plan_with(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: const}
spec:
  ackers: 0
  spouts:
    - {name: c, component: const, parallelism: 2, config: {count: 5001, payload: hi}}
  bolts:
    - {name: sink, component: "null", inputs: [{from: c}]}
"#,
        &Builtins,
    );
    let m = run_to_drain(&plan, Arc::new(Builtins));
    // count is a total for the component, split over its two tasks.
    assert_eq!(m.component("c").unwrap().total.emitted, 5001);
    assert_eq!(m.component("c").unwrap().total.acked, 5001);
    assert_eq!(m.component("sink").unwrap().total.executed, 5001);
}

fn write_lines(name: &str, lines: usize, malformed_every: Option<usize>) -> (PathBuf, usize) {
    let path = temp_path(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut malformed = 0;
    for i in 0..lines {
        if malformed_every.is_some_and(|m| i % m == m - 1) {
            writeln!(f, "{{not json {i}").unwrap();
            malformed += 1;
        } else {
            writeln!(f, r#"{{"id": {i}, "name": "n{i}", "extra": [1, 2]}}"#).unwrap();
        }
    }
    f.flush().unwrap();
    (path, malformed)
}

#[test]
fn json_lines_with_failures_acks_every_line_eventually() {
    let (path, malformed) = write_lines("fail-some.jsonl", 3000, Some(500));
    assert_eq!(malformed, 6);
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: lines}}
spec:
  ackers: 1
  spouts:
    - name: lines
      component: json-lines
      parallelism: 2
      config: {{path: "{}", fields: [id, name]}}
  bolts:
    - name: flaky
      component: fail-some
      parallelism: 2
      config: {{fail_percent: 10, seed: 5, fields: [id, name]}}
      inputs: [{{from: lines}}]
    - {{name: sink, component: "null", inputs: [{{from: flaky}}]}}
    - {{name: errs, component: "null", inputs: [{{from: lines, stream: errors}}]}}
"#,
        path.display()
    );
    let plan = plan_with(&yaml, &Builtins);
    let m = run_to_drain(&plan, Arc::new(Builtins));
    let _ = std::fs::remove_file(&path);
    let spout = m.component("lines").unwrap();
    let good = 3000 - malformed as u64;
    assert_eq!(spout.total.acked, good, "every well-formed line acked once");
    assert!(spout.total.failed > 0, "fail-some failed nothing: {spout:?}");
    assert_eq!(spout.total.timed_out, 0);
    let flaky = m.component("flaky").unwrap();
    assert_eq!(flaky.total.failed, spout.total.failed);
    assert_eq!(m.component("sink").unwrap().total.executed, good);
    assert_eq!(m.component("errs").unwrap().total.executed, malformed as u64);
}

#[test]
fn json_lines_survives_bolt_panics() {
    let (path, _) = write_lines("panics.jsonl", 1000, None);
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: panics}}
spec:
  ackers: 1
  spouts:
    - {{name: lines, component: json-lines, config: {{path: "{}"}}}}
  bolts:
    - name: flaky
      component: fail-some
      config: {{fail_percent: 0, panic_percent: 1, seed: 9, fields: [line]}}
      inputs: [{{from: lines}}]
"#,
        path.display()
    );
    let plan = plan_with(&yaml, &Builtins);
    let m = run_to_drain(&plan, Arc::new(Builtins));
    let _ = std::fs::remove_file(&path);
    let spout = m.component("lines").unwrap();
    assert_eq!(spout.total.acked, 1000);
    assert!(spout.total.failed > 0);
    let flaky = m.component("flaky").unwrap();
    assert!(flaky.total.restarts > 0, "{flaky:?}");
    assert_eq!(flaky.total.restarts, spout.total.failed);
}

/// Builtins plus a `collect` bolt that records the last `count` seen per word.
#[derive(Clone, Default)]
struct WithCollector {
    last: Arc<Mutex<HashMap<String, i64>>>,
}

struct Collect(Arc<Mutex<HashMap<String, i64>>>);

impl BasicBolt for Collect {
    fn execute(&mut self, input: &Tuple, _out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let word = input.field("word").and_then(Value::as_str).ok_or("no word")?;
        let n = input.field("count").and_then(Value::as_i64).ok_or("no count")?;
        let mut last = self.0.lock().unwrap();
        let e = last.entry(word.to_owned()).or_insert(0);
        *e = (*e).max(n);
        Ok(())
    }
}

impl Catalog for WithCollector {
    fn describe(&self, kind: &str, config: &Config) -> Option<Result<KindInfo, String>> {
        match kind {
            "collect" => Some(Ok(KindInfo::new(Some(Role::Bolt), Vec::new()))),
            _ => Builtins.describe(kind, config),
        }
    }
    fn kinds(&self) -> Vec<String> {
        let mut k = Builtins.kinds();
        k.push("collect".into());
        k
    }
}

impl ComponentFactory for WithCollector {
    fn spout(&self, c: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError> {
        Builtins.spout(c)
    }
    fn bolt(&self, c: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError> {
        match c.kind.as_str() {
            "collect" => Ok(Box::new(squall_engine::Basic(Collect(Arc::clone(&self.last))))),
            _ => Builtins.bolt(c),
        }
    }
}

#[test]
fn word_count_counts_every_word_of_every_sentence() {
    let catalog = WithCollector::default();
    let plan = plan_with(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: word-count}
spec:
  ackers: 1
  spouts:
    - {name: sentences, component: random-sentence, config: {count: 1000, seed: 11}}
  bolts:
    - {name: split, component: split-words, parallelism: 2, inputs: [{from: sentences}]}
    - name: count
      component: count
      parallelism: 2
      inputs: [{from: split, grouping: {type: fields, fields: [word]}}]
    - name: collect
      component: collect
      inputs: [{from: count, grouping: {type: global}}]
"#,
        &catalog,
    );
    let mut expected: HashMap<String, i64> = HashMap::new();
    for id in 0..1000 {
        for w in sentence_for(11, id).split_whitespace() {
            *expected.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    let total_words: i64 = expected.values().sum();
    let m = run_to_drain(&plan, Arc::new(catalog.clone()));
    assert_eq!(m.component("sentences").unwrap().total.acked, 1000);
    assert_eq!(m.component("sentences").unwrap().total.failed, 0);
    assert_eq!(m.component("split").unwrap().total.emitted, total_words as u64);
    assert_eq!(m.component("count").unwrap().total.executed, total_words as u64);
    // Fields grouping: each word is counted by one task, so its last count is its total.
    assert_eq!(*catalog.last.lock().unwrap(), expected);
}

#[test]
fn unknown_kind_lists_the_known_kinds() {
    let manifest = TopologyManifest::from_yaml(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: bad}
spec:
  spouts: [{name: s, component: jms}]
"#,
        "test",
    )
    .unwrap();
    let errs = validate(&manifest, &Builtins).unwrap_err();
    let p = &errs.0[0];
    assert_eq!(p.path, "spec.spouts[0].component");
    assert!(
        p.message.contains("unknown component kind \"jms\""),
        "{}",
        p.message
    );
    for kind in [
        "const",
        "sequence",
        "random-sentence",
        "json-lines",
        "split-words",
        "count",
        "identity",
        "null",
        "log",
        "fail-some",
        "kafka",
        "kafka-producer",
        "shell",
    ] {
        assert!(p.message.contains(kind), "{kind} missing from {}", p.message);
    }
}

#[test]
fn bad_config_is_reported_at_the_config_path() {
    let manifest = TopologyManifest::from_yaml(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: bad}
spec:
  spouts: [{name: s, component: sequence, config: {count: "x"}}]
  bolts:
    - {name: c, component: count, config: {key: 3}, inputs: [{from: s}]}
    - {name: w, component: split-words, inputs: [{from: s}]}
"#,
        "test",
    )
    .unwrap();
    let errs = validate(&manifest, &Builtins).unwrap_err();
    // Validation also reports knock-on "declares no stream" problems for inputs of a
    // component whose config is invalid (its outputs are unknown); only the config ones
    // are ours.
    let got: Vec<(String, String)> = errs
        .0
        .iter()
        .filter(|p| p.path.ends_with(".config"))
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "spec.spouts[0].config".to_owned(),
                "config key \"count\": expected a non-negative integer, got \"x\"".to_owned()
            ),
            (
                "spec.bolts[0].config".to_owned(),
                "config key \"key\": expected a string, got 3".to_owned()
            ),
        ]
    );
}

#[test]
fn role_mismatch_and_default_outputs_drive_validation() {
    let manifest = TopologyManifest::from_yaml(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: bad}
spec:
  spouts: [{name: s, component: "null"}]
  bolts:
    - {name: c, component: count, inputs: [{from: s}]}
    - {name: d, component: "null", inputs: [{from: c, grouping: {type: fields, fields: [user]}}]}
"#,
        "test",
    )
    .unwrap();
    let msgs: Vec<String> = validate(&manifest, &Builtins)
        .unwrap_err()
        .0
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("spec.spouts[0].component") && m.contains("is a bolt kind")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("field \"user\" is not declared") && m.contains("declared: word, count")),
        "{msgs:?}"
    );
}

#[test]
fn missing_file_and_shell_fail_at_start_with_clear_errors() {
    let plan = plan_with(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: missing}
spec:
  spouts: [{name: lines, component: json-lines, config: {path: /nonexistent/squall/input.jsonl}}]
"#,
        &Builtins,
    );
    let err = Topology::start(&plan, Arc::new(Builtins), EngineOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/squall/input.jsonl"), "{err}");

    let plan = plan_with(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: shell}
spec:
  spouts:
    - name: py
      component: shell
      shell: {command: python3, args: [spout.py]}
      outputs: [{fields: [x]}]
"#,
        &Builtins,
    );
    let err = Topology::start(&plan, Arc::new(Builtins), EngineOptions::default())
        .err()
        .unwrap()
        .to_string();
    // The child (python3 on a script that does not exist) exits before the handshake.
    assert!(err.contains("component \"py\" task "), "{err}");
    assert!(err.contains("shell child: "), "{err}");
    assert!(
        err.contains("python3") && err.contains("PATH "),
        "names the command and PATH: {err}"
    );
    assert!(err.contains("exited during the handshake"), "{err}");
    assert!(err.contains("spout.py"), "stderr explains why: {err}");
}
