//! The child's stderr and `log` commands reach the host's log with the component and
//! task as fields. Its own test binary, because it installs the global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use squall_components::Builtins;
use squall_engine::{EngineOptions, Topology};
use squall_model::{validate, TopologyManifest};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn child_stderr_and_log_commands_are_logged_with_component_and_task() {
    let python = repo().join(".cache/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make multilang-venv`",
        python.display()
    );
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let dir = std::env::temp_dir().join(format!("squall-multilang-log-{}", std::process::id()));
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: logs}}
spec:
  ackers: 1
  config: {{"squall.multilang.pid.dir": "{pids}"}}
  spouts:
    - {{name: numbers, component: sequence, config: {{count: 5}}}}
  bolts:
    - name: talker
      component: shell
      shell: {{command: "{python}", args: ["{script}", "stderr"]}}
      inputs: [{{from: numbers}}]
    - name: pystorm
      component: shell
      shell: {{command: "{run}", args: ["squall_test_components.RecordingBolt"], workingDir: "{pydir}"}}
      config: {{"test.out_dir": "{out}"}}
      inputs: [{{from: numbers}}]
"#,
        pids = dir.join("pids").display(),
        python = python.display(),
        script = repo().join("multilang/python/fake_child.py").display(),
        run = repo().join(".cache/venv/bin/streamparse_run").display(),
        pydir = repo().join("multilang/python").display(),
        out = dir.display(),
    );
    let manifest = TopologyManifest::from_yaml(&yaml, "test").unwrap();
    let plan = validate(&manifest, &Builtins).unwrap_or_else(|e| panic!("{e}"));
    let topo = Topology::start(&plan, Arc::new(Builtins), EngineOptions::default()).unwrap();
    let talker_task = plan.component("talker").unwrap().tasks[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    let (stderr_line, log_line) = loop {
        let text = captured.text();
        let stderr_line = text
            .lines()
            .find(|l| l.contains("child stderr") && l.contains("hello from the child's stderr"))
            .map(str::to_owned);
        // pystorm announces its log handler through a `log` command at INFO (level 2).
        let log_line = text
            .lines()
            .find(|l| l.contains("child log") && l.contains("pystorm StormHandler logging enabled"))
            .map(str::to_owned);
        if let (Some(a), Some(b)) = (stderr_line, log_line) {
            break (a, b);
        }
        assert!(Instant::now() < deadline, "not logged:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    topo.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stderr_line.contains("component=talker"), "{stderr_line}");
    assert!(
        stderr_line.contains(&format!("task={talker_task}")),
        "{stderr_line}"
    );
    assert!(stderr_line.contains(" INFO "), "{stderr_line}");
    assert!(
        log_line.contains("component=pystorm") && log_line.contains(" INFO "),
        "{log_line}"
    );
}
