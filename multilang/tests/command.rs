//! A `shell` command named as installed (`streamparse_run`) is found on the child's PATH,
//! with the configured venv first; a missing program, interpreter or module fails the
//! start with an error naming the command, the PATH searched or the child's own words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{numbers_topology, scratch, start, streamparse, try_start, venv_dir, wait_acked};

/// A spout of numbers into a recording bolt, both streamparse classes run by `command`.
fn manifest(name: &str, dir: &Path, config: &str, command: &str, env: &str, module: &str) -> String {
    let shell = |class: &str| streamparse(command, &format!("{module}.{class}"), &format!("env: {env}"));
    numbers_topology(
        name,
        dir,
        &format!(r#""squall.multilang.timeout.secs": 20, {config}"#),
        &shell("NumberSpout"),
        200,
        &format!(
            r#"
    - name: record
      component: shell
      shell: {}
      inputs: [{{from: numbers}}]
"#,
            shell("RecordingBolt")
        ),
    )
}

#[test]
fn an_installed_name_runs_from_the_configured_venv() {
    let dir = scratch("venv");
    let venv = venv_dir();
    // No PATH entry of the host has streamparse_run: only the venv can provide it.
    let yaml = manifest(
        "venv",
        &dir,
        &format!(r#""squall.multilang.venv": "{}""#, venv.display()),
        "streamparse_run",
        r#"{PATH: "/usr/bin:/bin"}"#,
        "squall_test_components",
    );
    let topo = start(&yaml);
    let m = wait_acked(&topo, "numbers", 200, Duration::from_secs(60));
    let s = m.component("numbers").unwrap();
    assert_eq!(s.total.acked, 200);
    assert_eq!(s.total.failed, 0);
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
    let e = try_start(&yaml).err().expect("the start fails");
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
    let e = try_start(&yaml).err().expect("the start fails");
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
        &format!(r#""squall.multilang.venv": "{}""#, venv_dir().display()),
        "streamparse_run",
        "{}",
        "no_such_module",
    );
    let e = try_start(&yaml).err().expect("the start fails");
    assert!(e.contains("exited during the handshake"), "{e}");
    let bin = venv_dir().join("bin");
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
