//! A `shell` command named as installed (`streamparse_run`) is found on the child's PATH,
//! with the configured venv first; a missing program, interpreter or module fails the
//! start with an error naming the command, the PATH searched or the child's own words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_components::Builtins;
use squall_engine::{EngineOptions, Topology};
use squall_model::{validate, TopologyManifest};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv `make multilang-venv` builds; fails (never skips) when it is missing.
fn venv() -> PathBuf {
    let v = repo().join(".cache/venv");
    assert!(
        v.join("bin/streamparse_run").exists(),
        "{} is missing: run `make multilang-venv` (part of `make test`)",
        v.display()
    );
    v
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("squall-command-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("out")).unwrap();
    d
}

/// A spout of numbers into a recording bolt, both streamparse classes run by `command`.
fn manifest(name: &str, dir: &Path, config: &str, command: &str, env: &str, module: &str) -> String {
    let shell = |class: &str| {
        format!(
            r#"{{command: "{command}", args: ["{module}.{class}"], workingDir: "{}", env: {env}}}"#,
            repo().join("multilang/python").display()
        )
    };
    format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  ackers: 1
  config: {{"squall.multilang.pid.dir": "{pids}", "test.out_dir": "{out}", "squall.multilang.timeout.secs": 20, {config}}}
  spouts:
    - name: numbers
      component: shell
      shell: {spout}
      config: {{"test.count": 200}}
      outputs: [{{fields: [n]}}]
  bolts:
    - name: record
      component: shell
      shell: {bolt}
      inputs: [{{from: numbers}}]
"#,
        pids = dir.join("pids").display(),
        out = dir.join("out").display(),
        spout = shell("NumberSpout"),
        bolt = shell("RecordingBolt"),
    )
}

fn start(yaml: &str) -> Result<Topology, String> {
    let m = TopologyManifest::from_yaml(yaml, "test").unwrap();
    let plan = validate(&m, &Builtins).unwrap_or_else(|e| panic!("{e}"));
    Topology::start(&plan, Arc::new(Builtins), EngineOptions::default()).map_err(|e| e.to_string())
}

#[test]
fn an_installed_name_runs_from_the_configured_venv() {
    let dir = scratch("venv");
    let venv = venv();
    // No PATH entry of the host has streamparse_run: only the venv can provide it.
    let yaml = manifest(
        "venv",
        &dir,
        &format!(r#""squall.multilang.venv": "{}""#, venv.display()),
        "streamparse_run",
        r#"{PATH: "/usr/bin:/bin"}"#,
        "squall_test_components",
    );
    let topo = start(&yaml).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = topo.metrics();
        let s = m.component("numbers").unwrap();
        if s.total.acked == 200 && topo.pending() == 0 {
            assert_eq!(s.total.failed, 0);
            break;
        }
        assert!(Instant::now() < deadline, "not all acked: {m:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    topo.shutdown();
}

#[test]
fn a_name_on_no_path_directory_fails_the_start_naming_the_path() {
    let dir = scratch("nopath");
    let yaml = manifest(
        "nopath",
        &dir,
        r#""squall.multilang.venv": "/nonexistent/venv""#,
        "streamparse_run",
        r#"{PATH: "/usr/bin:/bin"}"#,
        "squall_test_components",
    );
    let e = start(&yaml).err().expect("the start fails");
    assert!(
        e.contains(r#"command "streamparse_run" not found on PATH /nonexistent/venv/bin:/usr/bin:/bin"#),
        "{e}"
    );
    assert!(e.contains("numbers"), "names the component: {e}");
}

#[test]
fn a_missing_interpreter_fails_the_start_naming_it() {
    let dir = scratch("interp");
    // A venv's script whose venv was moved: its #! line names a python that is gone.
    let script = dir.join("streamparse_run");
    std::fs::write(&script, "#!/nonexistent/venv/bin/python\nimport sys\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let yaml = manifest(
        "interp",
        &dir,
        r#""x": 1"#,
        &script.display().to_string(),
        "{}",
        "squall_test_components",
    );
    let e = start(&yaml).err().expect("the start fails");
    assert!(
        e.contains("its interpreter /nonexistent/venv/bin/python does not exist"),
        "{e}"
    );
}

#[test]
fn a_missing_module_fails_the_start_with_the_childs_error() {
    let dir = scratch("module");
    let yaml = manifest(
        "module",
        &dir,
        &format!(r#""squall.multilang.venv": "{}""#, venv().display()),
        "streamparse_run",
        "{}",
        "no_such_module",
    );
    let e = start(&yaml).err().expect("the start fails");
    assert!(e.contains("exited during the handshake"), "{e}");
    let bin = venv().join("bin");
    assert!(
        e.contains(r#"streamparse_run ["no_such_module."#)
            && e.contains(&format!("(PATH {}:", bin.display())),
        "names the command and the PATH: {e}"
    );
    assert!(
        e.contains("No module named 'no_such_module'"),
        "the child's stderr: {e}"
    );
}
