//! The malformed-manifest corpus (`tests/manifests/malformed/`) through `squall validate`
//! and `squall run`: every file gets the message its expectations name and exit status 2,
//! never an abort, a hang or an allocation sized by the numbers in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_squall");

#[derive(serde::Deserialize)]
struct Case {
    file: String,
    mistake: String,
    validate: String,
}

fn corpus() -> (PathBuf, Vec<Case>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/manifests/malformed");
    let text = std::fs::read_to_string(dir.join("expectations.yaml")).unwrap();
    let cases: Vec<Case> = serde_yaml_ng::from_str(&text).unwrap();
    (dir, cases)
}

/// Runs `squall ARGS` with a deadline; returns (exit code, stderr, peak RSS in KiB).
fn squall(args: &[&str], dir: &Path) -> (Option<i32>, String, u64) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("SQUALL_LIMITS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut peak = 0;
    let status = loop {
        peak = peak.max(vm_hwm(child.id()).unwrap_or(0));
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = child.wait_with_output().unwrap();
    (
        status.and_then(|s| s.code()),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        peak,
    )
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn every_malformed_manifest_gets_its_message_and_status_2_from_validate_and_run() {
    let (dir, cases) = corpus();
    assert!(cases.len() >= 15, "the corpus lost its cases");
    let mut failures = Vec::new();
    for case in &cases {
        for verb in ["validate", "run"] {
            let mut args = vec![verb, case.file.as_str()];
            if verb == "run" {
                args.extend(["--for", "1s", "--quiet"]);
            }
            let (code, stderr, peak_kib) = squall(&args, &dir);
            let (want_code, want_text) = if case.validate == "ok" {
                (Some(0), "")
            } else {
                (Some(2), case.validate.as_str())
            };
            if code != want_code || !stderr.contains(want_text) {
                failures.push(format!(
                    "squall {verb} {} ({}): exit {code:?}, want {want_code:?} and {want_text:?} in:\n{stderr}",
                    case.file, case.mistake
                ));
            }
            // Whatever the numbers in the file, the process stays small.
            if peak_kib > 200 * 1024 {
                failures.push(format!("squall {verb} {}: peak RSS {peak_kib} KiB", case.file));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn limits_are_raised_and_lowered_by_flag_and_environment() {
    let (dir, _) = corpus();
    let (code, stderr, _) = squall(
        &[
            "validate",
            "too-many-tasks.yaml",
            "--limit",
            "maxTotalTasks=6000",
            "--limit",
            "maxTasks=1000",
        ],
        &dir,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr, _) = squall(
        &["validate", "cycle-fed.yaml", "--limit", "maxTotalTasks=2"],
        &dir,
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("spec: 4 is over the limit of 2 tasks in the topology, ackers included (maxTotalTasks; raise it with --limit maxTotalTasks=N)"),
        "{stderr}"
    );
    let (code, stderr, _) = squall(&["validate", "cycle-fed.yaml", "--limit", "maxTotlTasks=2"], &dir);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown limit \"maxTotlTasks\""), "{stderr}");
    let out = Command::new(BIN)
        .args(["validate", "cycle-fed.yaml"])
        .current_dir(&dir)
        .env("SQUALL_LIMITS", "maxManifestBytes=50")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("is over the limit of 50 bytes (maxManifestBytes;"),
        "{stderr}"
    );
}
