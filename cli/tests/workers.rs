//! `squall run --workers N`: the topology on worker processes, summary from their metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The `squall` binary and the `squall-worker` beside it.
fn binaries() -> (PathBuf, PathBuf) {
    let squall = PathBuf::from(env!("CARGO_BIN_EXE_squall"));
    // `cargo test --workspace` (make test) builds squall-worker beside squall; this
    // crate's tests alone do not, and then these tests must fail, not pass untested.
    let worker = squall.with_file_name("squall-worker");
    assert!(
        worker.exists(),
        "{} is not built: run `cargo build -p squall-worker` or the workspace's tests",
        worker.display()
    );
    (squall, worker)
}

/// Writes a topology manifest into `dir`; its path.
fn manifest(dir: &Path, yaml: &str) -> PathBuf {
    let file = dir.join("t.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

#[test]
fn run_on_two_workers_completes_every_tree() {
    let (squall, worker) = binaries();
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(
        dir.path(),
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
    );
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
    // Two processes on their own loopback addresses (127.0.0.2, .3, ...).
    let logs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("worker logs: "))
        .expect("the logs' directory is printed");
    let assignment = std::fs::read_to_string(PathBuf::from(logs).join("assignment.yaml")).unwrap();
    let ips: std::collections::BTreeSet<&str> = assignment
        .lines()
        .filter_map(|l| {
            l.split_once("address: ")
                .map(|(_, a)| a.trim().trim_matches('\''))
        })
        .filter_map(|a| a.rsplit_once(':').map(|(ip, _)| ip))
        .collect();
    assert!(
        ips.len() == 2 && ips.iter().all(|ip| ip.starts_with("127.")),
        "{assignment}"
    );
    let _ = std::fs::remove_dir_all(logs);
}

/// A worker that crashes and then keeps failing at every restart: the supervisor restarts
/// it a few times, then moves its tasks to the living worker, and the run still completes
/// every tree.
#[test]
fn a_worker_that_keeps_failing_has_its_tasks_moved_to_the_living() {
    let (squall, worker) = binaries();
    let dir = tempfile::tempdir().unwrap();
    // w1 runs normally the first time (its pid in a file, for the test to kill); every
    // later start fails at once, like a worker in a crash loop.
    let wrapper = dir.path().join("worker.sh");
    std::fs::write(
        &wrapper,
        r#"#!/bin/sh
case " $* " in
  *" --id w1 "*)
    if [ -e "$MARK/started" ]; then echo "crash loop" >&2; exit 1; fi
    touch "$MARK/started"
    echo $$ > "$MARK/pid.tmp" && mv "$MARK/pid.tmp" "$MARK/pid"
    ;;
esac
exec "$REAL" "$@"
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // __acker#0 → w0, __acker#1 → w1, ids → w0, pass#0 → w1, pass#1 → w0.
    let file = manifest(
        dir.path(),
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: flaky}
spec:
  ackers: 2
  messageTimeoutSeconds: 3
  maxSpoutPending: 500
  spouts:
    - {name: ids, component: const, config: {count: 20000, rate: 4000, payload: "p"}}
  bolts:
    - {name: pass, component: identity, parallelism: 2, config: {fields: [payload]}, inputs: [{from: ids, grouping: {type: shuffle}}]}
"#,
    );
    let run = Command::new(&squall)
        .args(["run", "--workers", "2", "--for", "120s", "--quiet"])
        .arg(&file)
        .env("SQUALL_WORKER_BIN", &wrapper)
        .env("REAL", &worker)
        .env("MARK", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !pid_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(&pid_file).expect("w1 started");
    // Let trees flow through w1, then crash it.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let killed = Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success());
    let out = run.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("worker w1 keeps failing; its tasks move to the other workers"),
        "{stderr}"
    );
    assert!(
        stdout.contains("every spout finished and every tuple processed"),
        "{stdout}"
    );
    // w0 took w1's tasks, so its engine (and spout) restarted: the final counts are the
    // new spout's, and it saw every id acked.
    let spouts = stdout.lines().find(|l| l.starts_with("spouts:")).unwrap_or("");
    assert!(
        spouts.contains(" 20000 acked,") && spouts.ends_with(" 0 pending"),
        "{stdout}"
    );
}

/// The `squall-worker` children of process `pid`, from /proc.
fn worker_children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            stat(*p).is_some_and(|(comm, state, ppid)| comm == "squall-worker" && state != "Z" && ppid == pid)
        })
        .collect()
}

/// A process's name, state and parent from /proc/PID/stat.
fn stat(pid: u32) -> Option<(String, String, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = s.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.to_owned();
    let ppid = fields.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// Running, not a zombie waiting to be reaped.
fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state, _)| state != "Z")
}

/// A supervisor that dies between starting a worker and the worker's first look at its
/// parent leaves it reparented at once: the pid the supervisor passes still tells.
#[test]
fn a_worker_whose_parent_died_before_it_looked_exits() {
    let (_, worker) = binaries();
    let dir = tempfile::tempdir().unwrap();
    // Its assignment file does not exist, so a worker that started anything would fail
    // reading it: the parent check must come first. Pid 1 stands for a parent that is
    // already gone: it is not this worker's parent.
    let mut w = Command::new(&worker)
        .arg("--assignment")
        .arg(dir.path().join("assignment.yaml"))
        .args([
            "--id",
            "w0",
            "--http",
            "127.0.0.1:0",
            "--exit-with-parent",
            "--parent-pid",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = w.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = w.kill();
            panic!("the worker outlived its dead parent by 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut w.stderr.take().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("the process that started this worker is gone"),
        "{log}"
    );
}

/// `squall run --workers` killed with SIGKILL cannot stop its workers; they notice their
/// parent is gone and exit on their own.
#[test]
fn workers_exit_when_their_run_is_killed() {
    let (squall, worker) = binaries();
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(
        dir.path(),
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: orphans}
spec:
  spouts:
    - {name: ids, component: const, config: {rate: 1000, payload: "p"}}
  bolts:
    - {name: pass, component: identity, parallelism: 2, config: {fields: [payload]}, inputs: [{from: ids, grouping: {type: shuffle}}]}
"#,
    );
    let mut run = Command::new(&squall)
        .args(["run", "--workers", "2", "--for", "120s", "--quiet"])
        .arg(&file)
        .env("SQUALL_WORKER_BIN", &worker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = loop {
        let w = worker_children(run.id());
        if w.len() == 2 {
            break w;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("the run never had its 2 workers: {w:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Both workers running for a moment: the watch must not end a worker whose parent lives.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        workers.iter().all(|p| running(*p)),
        "a worker ended early: {workers:?}"
    );
    run.kill().unwrap();
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|p| running(*p)) {
        if Instant::now() > deadline {
            // Not left behind by a failing test either.
            for p in &workers {
                let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
            }
            panic!("workers outlived their run by 10 s: {workers:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
