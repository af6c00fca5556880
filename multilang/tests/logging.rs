//! The child's stderr and `log` commands reach the host's log with the component and
//! task as fields. Its own test binary, because it installs the global subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{fake, manifest, scratch, shell, start, wait_for};

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

#[test]
fn child_stderr_and_log_commands_are_logged_with_component_and_task() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let dir = scratch("log");
    let spec = format!(
        r#"
  spouts:
    - {{name: numbers, component: sequence, config: {{count: 5}}}}
  bolts:
    - name: talker
      component: shell
      shell: {talker}
      inputs: [{{from: numbers}}]
    - name: pystorm
      component: shell
      shell: {pystorm}
      inputs: [{{from: numbers}}]
"#,
        talker = fake("json", "stderr", &dir.join("marker")),
        pystorm = shell("RecordingBolt", "json"),
    );
    // The subscriber above is the global one, so `start` installs none of its own.
    let topo = start(&manifest("logs", &dir, "", &spec));
    let talker_task = topo.plan().component("talker").unwrap().tasks[0];
    let (stderr_line, log_line) = wait_for(
        Duration::from_secs(20),
        || {
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
            stderr_line.zip(log_line)
        },
        || format!("not logged:\n{}", captured.text()),
    );
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
