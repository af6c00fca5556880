//! Helpers for multi-process tests: a manifest in a temporary directory, a cluster of
//! real worker processes on loopback, and waiting on their merged metrics.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use squall_engine::Snapshot;
use squall_model::{Plan, TopologyManifest};
use squall_worker::supervisor::{Cluster, ClusterSpec};
use squall_worker::tls::TlsFiles;

pub fn plan_of(path: &Path) -> Plan {
    let m = TopologyManifest::from_file(path).unwrap();
    squall_model::validate(&m, &squall_components::Builtins).unwrap()
}

pub fn write_manifest(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("topology.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

pub fn cluster(dir: &Path, yaml: &str, workers: usize, tls: Option<TlsFiles>, extra: &[&str]) -> Cluster {
    let manifest = write_manifest(dir, yaml);
    let spec = ClusterSpec {
        plan: plan_of(&manifest),
        manifest,
        base_dir: None,
        workers,
        worker_bin: PathBuf::from(env!("CARGO_BIN_EXE_squall-worker")),
        dir: dir.join("run"),
        tls,
        extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
        tasks: None,
    };
    let mut c = Cluster::start(spec).unwrap();
    c.wait_ready(Duration::from_secs(20)).unwrap();
    c
}

pub fn total(s: &Snapshot, component: &str) -> squall_engine::Stats {
    s.component(component)
        .map(|c| c.total.clone())
        .unwrap_or_default()
}

/// Polls the merged metrics (and the supervisor) until `done` or the timeout.
pub fn wait_for(c: &mut Cluster, timeout: Duration, mut done: impl FnMut(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let _ = c.poll();
        let s = c.scrape();
        if done(&s) || Instant::now() >= deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A sample of worker `i`'s own `/metrics` page (summed over its label sets), 0 if absent.
pub fn metric(c: &Cluster, i: usize, name: &str) -> f64 {
    c.scrape_one(i)
        .unwrap_or_default()
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|s| s.2)
        .sum()
}

/// Whether worker `i` runs an executor of `component`.
pub fn hosts(c: &Cluster, i: usize, component: &str) -> bool {
    c.scrape_one(i)
        .unwrap_or_default()
        .iter()
        .any(|(n, l, _)| n == "squall_executors" && l.get("component").is_some_and(|x| x == component))
}

/// Checks `done` every 50 ms until it holds or the timeout passes; whether it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn logs(c: &Cluster, i: usize) -> String {
    std::fs::read_to_string(c.log_path(i)).unwrap_or_default()
}

pub fn dump_logs(c: &Cluster) {
    for i in 0..c.ids().len() {
        eprintln!("==== {} ====\n{}", c.ids()[i], logs(c, i));
    }
}

/// A log line without its colour codes.
pub fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(esc) = rest.find('\x1b') {
        out.push_str(&rest[..esc]);
        rest = rest[esc..].split_once('m').map_or("", |(_, r)| r);
    }
    out.push_str(rest);
    out
}
