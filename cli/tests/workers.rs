//! `squall run --workers N`: the topology on worker processes, summary from their metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn run_on_two_workers_completes_every_tree() {
    let squall = PathBuf::from(env!("CARGO_BIN_EXE_squall"));
    // `cargo test --workspace` (make test) builds squall-worker beside squall; this
    // crate's tests alone do not, and then this test must fail, not pass untested.
    let worker = squall.with_file_name("squall-worker");
    assert!(
        worker.exists(),
        "{} is not built: run `cargo build -p squall-worker` or the workspace's tests",
        worker.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.yaml");
    std::fs::write(
        &file,
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: two}
spec:
  ackers: 2
  maxSpoutPending: 1000
  spouts:
    - {name: ids, component: sequence, config: {count: 20000}}
  bolts:
    - {name: pass, component: identity, parallelism: 2, config: {fields: [n]}, inputs: [{from: ids, grouping: {type: fields, fields: [n]}}]}
"#,
    )
    .unwrap();
    let out = Command::new(&squall)
        .args(["run", "--workers", "2", "--for", "60s", "--quiet"])
        .arg(&file)
        .env("SQUALL_WORKER_BIN", &worker)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("on 2 workers"), "{stdout}");
    assert!(
        stdout.contains("every spout finished and every tuple processed"),
        "the run ends when the finite spout is done, not at --for: {stdout}"
    );
    assert!(
        stdout.contains("spouts: 20000 emitted, 20000 acked, 0 failed, 0 pending"),
        "{stdout}"
    );
}
