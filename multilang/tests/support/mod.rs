//! What the multilang test crates share: the venv's programs, scratch directories,
//! manifests, starting, waiting on and draining topologies, shell blocks for the Python
//! test components and the fake children, and reading what `RecordingBolt` wrote.
// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_components::Builtins;
use squall_engine::{EngineOptions, Snapshot, Topology};
use squall_model::{validate, Plan, TopologyManifest};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A program from the venv; fails (never skips) when the venv is missing.
pub fn venv(program: &str) -> PathBuf {
    let p = repo().join(".cache/venv/bin").join(program);
    assert!(
        p.exists(),
        "{} is missing: run `make multilang-venv` (part of `make test`) to install pystorm, streamparse and msgpack",
        p.display()
    );
    p
}

/// The venv itself, for `squall.multilang.venv`; fails like `venv` when it is missing.
pub fn venv_dir() -> PathBuf {
    let run = venv("streamparse_run");
    run.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// A fresh scratch directory for one test, with an empty `out` for `RecordingBolt`.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("squall-multilang-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("out")).unwrap();
    d
}

/// A shell block that runs `command` with the single argument `target` (`module.Class`)
/// in `multilang/python`; `extra` holds further entries, e.g. `serializer: json`.
pub fn streamparse(command: &str, target: &str, extra: &str) -> String {
    format!(
        r#"{{command: "{command}", args: ["{target}"], workingDir: "{}", {extra}}}"#,
        repo().join("multilang/python").display()
    )
}

/// A shell block running `class` from squall_test_components with `serializer`.
pub fn shell(class: &str, serializer: &str) -> String {
    streamparse(
        &venv("streamparse_run").display().to_string(),
        &format!("squall_test_components.{class}"),
        &format!("serializer: {serializer}"),
    )
}

/// A shell block running the fake child that breaks the protocol in `mode`:
/// `fake_child.py` for JSON, `fake_msgpack_child.py` for msgpack.
pub fn fake(serializer: &str, mode: &str, marker: &Path) -> String {
    let script = match serializer {
        "json" => "fake_child.py",
        "msgpack" => "fake_msgpack_child.py",
        other => panic!("no fake child speaks {other}"),
    };
    format!(
        r#"{{command: "{}", args: ["{}", "{mode}", "{}"], serializer: {serializer}}}"#,
        venv("python").display(),
        repo().join("multilang/python").join(script).display(),
        marker.display()
    )
}

pub fn validated(manifest: &TopologyManifest) -> Plan {
    validate(manifest, &Builtins).unwrap_or_else(|e| panic!("{e}"))
}

pub fn plan(yaml: &str) -> Plan {
    validated(&TopologyManifest::from_yaml(yaml, "test").unwrap())
}

/// Starts `plan` with the built-in components; the engine logs to the test's output
/// (`RUST_LOG` filters it, warnings by default).
pub fn start_plan(plan: &Plan) -> Result<Topology, String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    Topology::start(plan, Arc::new(Builtins), EngineOptions::default()).map_err(|e| e.to_string())
}

/// Starts the topology of `yaml`, or says why it did not start.
pub fn try_start(yaml: &str) -> Result<Topology, String> {
    start_plan(&plan(yaml))
}

pub fn start(yaml: &str) -> Topology {
    try_start(yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `ready` until it yields a value; once `within` has passed, fails with `state()`.
pub fn wait_for<T>(
    within: Duration,
    mut ready: impl FnMut() -> Option<T>,
    state: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("{}", state());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `wait_for` a condition.
pub fn wait_until(within: Duration, mut done: impl FnMut() -> bool, state: impl FnOnce() -> String) {
    wait_for(within, || done().then_some(()), state)
}

/// Waits until `spout` has acked `n` trees and nothing is in flight.
pub fn wait_acked(topo: &Topology, spout: &str, n: u64, within: Duration) -> Snapshot {
    let acked = |m: &Snapshot| m.component(spout).unwrap().total.acked;
    wait_for(
        within,
        || {
            let m = topo.metrics();
            (acked(&m) >= n && topo.pending() == 0).then_some(m)
        },
        || {
            let m = topo.metrics();
            format!("{spout} acked {} of {n} within {within:?}: {m:#?}", acked(&m))
        },
    )
}

/// Waits until the topology is drained, then shuts it down.
pub fn drain(topo: Topology, within: Duration) -> Snapshot {
    wait_until(
        within,
        || topo.is_drained(),
        || format!("not drained: {:#?}", topo.metrics()),
    );
    topo.shutdown()
}

/// One input `RecordingBolt` received.
#[derive(Debug, serde::Deserialize)]
pub struct Record {
    pub source: String,
    pub stream: String,
    pub values: Vec<serde_json::Value>,
    pub task: u32,
}

pub fn records(dir: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("out")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        out.extend(text.lines().map(|l| serde_json::from_str::<Record>(l).unwrap()));
    }
    out
}

pub fn numbers(recs: &[Record]) -> BTreeSet<i64> {
    recs.iter().map(|r| r.values[0].as_i64().unwrap()).collect()
}

/// A manifest named `name` with one acker. Its config puts the children's pid files in
/// `<dir>/pids` and `RecordingBolt`'s output in `<dir>/out`, then the entries `config`
/// (none when empty); `spec` is the rest of the spec, indented by two spaces.
pub fn manifest(name: &str, dir: &Path, config: &str, spec: &str) -> String {
    format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  ackers: 1
  config: {{"squall.multilang.pid.dir": "{pids}", "test.out_dir": "{out}"{sep}{config}}}
{spec}"#,
        pids = dir.join("pids").display(),
        out = dir.join("out").display(),
        sep = if config.is_empty() { "" } else { ", " },
    )
}

/// A `manifest` whose one spout, "numbers", is `NumberSpout` run by `spout` emitting
/// `0..count` as `n`; `bolts` is the list under `bolts:`.
pub fn numbers_topology(
    name: &str,
    dir: &Path,
    config: &str,
    spout: &str,
    count: u64,
    bolts: &str,
) -> String {
    manifest(
        name,
        dir,
        config,
        &format!(
            r#"
  spouts:
    - name: numbers
      component: shell
      shell: {spout}
      config: {{"test.count": {count}}}
      outputs: [{{fields: [n]}}]
  bolts:{bolts}"#
        ),
    )
}

/// sequence(`count`) → "bad", the fake child in `mode` with `<dir>/marker` and the
/// component config entries `bolt_config`; the topology is named after the mode.
pub fn fake_bolt_topology(dir: &Path, serializer: &str, mode: &str, count: u64, bolt_config: &str) -> String {
    manifest(
        mode,
        dir,
        "",
        &format!(
            r#"
  spouts:
    - {{name: numbers, component: sequence, config: {{count: {count}}}}}
  bolts:
    - name: bad
      component: shell
      shell: {bad}
      config: {{{bolt_config}}}
      inputs: [{{from: numbers}}]
"#,
            bad = fake(serializer, mode, &dir.join("marker")),
        ),
    )
}

/// numbers (spout) → flaky → record, each with its serializer; `test.marker` is
/// `<dir>/marker` for the bolts that act once.
pub fn pipeline(name: &str, dir: &Path, count: u64, flaky_config: &str, serializers: [&str; 3]) -> String {
    numbers_topology(
        name,
        dir,
        &format!(r#""test.marker": "{}""#, dir.join("marker").display()),
        &shell("NumberSpout", serializers[0]),
        count,
        // The last line, at an indent of two, is a key of `spec`.
        &format!(
            r#"
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
  messageTimeoutSeconds: 60
"#,
            flaky = shell("FlakyBolt", serializers[1]),
            record = shell("RecordingBolt", serializers[2]),
        ),
    )
}

pub fn no_restarts_or_errors(m: &Snapshot, components: &[&str]) {
    for c in components {
        let comp = m.component(c).unwrap();
        assert_eq!(comp.custom.get("child_restarts"), None, "{c}: {comp:?}");
        assert_eq!(comp.total.errors, 0, "{c}: {:?}", comp.last_error);
    }
}

/// sequence(count 20) → the fake child "bad" in `mode`, which breaks the protocol once:
/// asserts that the restart completed every number and returns the final metrics.
pub fn faulty_bolt(serializer: &str, mode: &str, extra_config: &str) -> Snapshot {
    let dir = scratch(&format!("{mode}-{serializer}"));
    let yaml = fake_bolt_topology(&dir, serializer, mode, 20, extra_config);
    let m = drain(start(&yaml), Duration::from_secs(30));
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
    m
}

/// The last error of the component "bad".
pub fn last_error(m: &Snapshot) -> String {
    m.component("bad").unwrap().last_error.clone().unwrap_or_default()
}

/// The pid of the one child running `component` task `task`, from the pid directory.
pub fn pid_of(dir: &Path, topology: &str, component: &str, task: u32) -> i32 {
    let d = dir.join("pids").join(format!("{topology}-{component}-{task}"));
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "one pid file in {}: {names:?}", d.display());
    names[0].parse().unwrap()
}

/// Kills a child with SIGKILL, which it cannot handle: a crash, as far as the host sees.
pub fn crash(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
}

/// Whether a process exists at all, a zombie not yet reaped included.
pub fn exists(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Whether a process exists and is not a zombie waiting to be reaped.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        // The state follows the command name in parentheses.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}
