//! A small supervisor for several workers on loopback: computes an assignment, starts
//! one `squall-worker` process per worker, restarts those that exit, can move a dead
//! worker's tasks to the living, and reads their `/metrics`. `squall run --workers N`
//! and the multi-process tests use it; the operator plays this part on Kubernetes.

use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use squall_engine::Snapshot;
use squall_model::Plan;
use tracing::{info, warn};

use crate::assignment::Assignment;
use crate::tls::TlsFiles;

/// Why the supervisor failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A file or process operation.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The assignment could not be written.
    #[error("writing the assignment: {0}")]
    Assignment(String),
    /// Workers did not become ready.
    #[error("workers not ready after {0:?}: {1}")]
    NotReady(Duration, String),
    /// A worker exited before it became ready, and is not restarted.
    #[error("worker {id} exited before it was ready ({status}); the end of its log:\n{log}")]
    ExitedBeforeReady {
        /// The worker.
        id: String,
        /// How it exited.
        status: String,
        /// The last lines of its log.
        log: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let what = what.into();
    move |source| SupervisorError::Io { what, source }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The effective manifest (overrides applied), written by the caller.
    pub manifest: PathBuf,
    /// Where relative paths of component configs resolve.
    pub base_dir: Option<PathBuf>,
    /// Its plan.
    pub plan: Plan,
    /// How many workers.
    pub workers: usize,
    /// The `squall-worker` binary.
    pub worker_bin: PathBuf,
    /// Directory for the assignment and the workers' logs.
    pub dir: PathBuf,
    /// TLS for every worker, if on.
    pub tls: Option<TlsFiles>,
    /// Extra arguments for every worker.
    pub extra_args: Vec<String>,
    /// Tasks of each worker, when the caller places them itself (benchmarks); executors
    /// are dealt round-robin otherwise.
    pub tasks: Option<Vec<std::collections::BTreeSet<u32>>>,
}

/// One worker process and where it listens.
struct Slot {
    id: String,
    http: SocketAddr,
    child: Option<Child>,
    restarts: u32,
}

/// Running workers.
pub struct Cluster {
    spec: ClusterSpec,
    assignment: Assignment,
    slots: Vec<Slot>,
    /// Restart workers that exit (tests turn it off to control restarts themselves).
    pub auto_restart: bool,
}

/// Loopback IPs for `n` workers: 127.0.0.2, .3, ... when this host can bind them
/// (Linux routes all of 127/8 to lo), else 127.0.0.1 for all.
fn loopback_ips(n: usize) -> Vec<IpAddr> {
    let distinct = (0..n).all(|i| {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8));
        TcpListener::bind((ip, 0)).is_ok()
    });
    (0..n)
        .map(|i| {
            if distinct {
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8))
            } else {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        })
        .collect()
}

/// The last `lines` lines of a log file (empty when it cannot be read).
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port free on `ip` now (the OS picks it; the worker binds it right after).
///
/// Between choosing and binding, the port is free for anyone, and the OS may pick a port
/// it just released again: two workers of one cluster (the gRPC and HTTP ports of one
/// worker, or clusters of tests running side by side in one process) could get the same
/// address and one of them would fail to start. Every address handed out by this process
/// is remembered and never handed out twice.
pub fn free_port(ip: IpAddr) -> Result<SocketAddr, SupervisorError> {
    static GIVEN: std::sync::Mutex<Vec<SocketAddr>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    // Held until a fresh one is found, so the OS cannot offer the same port again.
    let mut held = Vec::new();
    for _ in 0..64 {
        let l = TcpListener::bind((ip, 0)).map_err(io(format!("finding a free port on {ip}")))?;
        let addr = l.local_addr().map_err(io("reading a local address"))?;
        if !given.contains(&addr) {
            given.push(addr);
            return Ok(addr);
        }
        held.push(l);
    }
    Err(SupervisorError::Io {
        what: format!("finding a free port on {ip}"),
        source: std::io::Error::other("64 ports in a row had already been handed out"),
    })
}

impl Cluster {
    /// Writes the assignment and starts every worker.
    pub fn start(spec: ClusterSpec) -> Result<Cluster, SupervisorError> {
        std::fs::create_dir_all(&spec.dir).map_err(io(format!("creating {}", spec.dir.display())))?;
        let ips = loopback_ips(spec.workers);
        let mut workers = Vec::new();
        let mut slots = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let id = format!("w{i}");
            let grpc = free_port(*ip)?;
            let http = free_port(*ip)?;
            workers.push((id.clone(), grpc.to_string()));
            slots.push(Slot {
                id,
                http,
                child: None,
                restarts: 0,
            });
        }
        let manifest = spec
            .manifest
            .canonicalize()
            .map_err(io("resolving the manifest"))?;
        let mut assignment = Assignment::round_robin(&spec.plan, manifest, &workers, 1);
        assignment.base_dir = spec.base_dir.clone();
        if let Some(tasks) = &spec.tasks {
            for (w, t) in assignment.workers.iter_mut().zip(tasks) {
                w.tasks = t.clone();
            }
            assignment
                .check(&spec.plan)
                .map_err(|e| SupervisorError::Assignment(e.to_string()))?;
        }
        let mut cluster = Cluster {
            spec,
            assignment,
            slots,
            auto_restart: true,
        };
        cluster.write_assignment()?;
        for i in 0..cluster.slots.len() {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// The assignment file.
    pub fn assignment_path(&self) -> PathBuf {
        self.spec.dir.join("assignment.yaml")
    }

    /// The current assignment.
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// Replaces the assignment (a new generation) and writes it for the workers to pick up.
    pub fn set_assignment(&mut self, a: Assignment) -> Result<(), SupervisorError> {
        self.assignment = a;
        self.write_assignment()
    }

    /// The log file of worker `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.spec.dir.join(format!("{}.log", self.slots[i].id))
    }

    /// Worker ids, in order.
    pub fn ids(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.id.clone()).collect()
    }

    /// `/metrics` address of worker `i`.
    pub fn http_addr(&self, i: usize) -> SocketAddr {
        self.slots[i].http
    }

    /// Process id of worker `i`, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.slots[i].child.as_ref().map(Child::id)
    }

    /// Asks every worker to forget its latency samples (e.g. after a warm-up).
    pub fn reset_latencies(&self) {
        for s in &self.slots {
            let _ = crate::http::request(s.http, "POST", "/reset-latencies", Duration::from_secs(1));
        }
    }

    /// Times worker `i` was restarted.
    pub fn restarts(&self, i: usize) -> u32 {
        self.slots[i].restarts
    }

    fn write_assignment(&self) -> Result<(), SupervisorError> {
        let text = serde_yaml_ng::to_string(&self.assignment)
            .map_err(|e| SupervisorError::Assignment(e.to_string()))?;
        // Write then rename, so a worker never reads half a file.
        let tmp = self.spec.dir.join("assignment.yaml.tmp");
        std::fs::write(&tmp, text).map_err(io("writing the assignment"))?;
        std::fs::rename(&tmp, self.assignment_path()).map_err(io("installing the assignment"))
    }

    fn spawn(&mut self, i: usize) -> Result<(), SupervisorError> {
        let log = self.log_path(i);
        let slot = &mut self.slots[i];
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let err = out.try_clone().map_err(io("duplicating the log handle"))?;
        let mut cmd = Command::new(&self.spec.worker_bin);
        cmd.arg("--assignment")
            .arg(self.spec.dir.join("assignment.yaml"))
            .arg("--id")
            .arg(&slot.id)
            .arg("--http")
            .arg(slot.http.to_string())
            .args(&self.spec.extra_args)
            // Workers end with this process even when it is killed and cannot stop them,
            // and even when it dies before the worker starts watching.
            .arg("--exit-with-parent")
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        if let Some(t) = &self.spec.tls {
            cmd.arg("--tls-cert")
                .arg(&t.cert)
                .arg("--tls-key")
                .arg(&t.key)
                .arg("--tls-ca")
                .arg(&t.ca);
        }
        let child = cmd
            .spawn()
            .map_err(io(format!("starting {}", self.spec.worker_bin.display())))?;
        info!(worker = %slot.id, pid = child.id(), "worker started");
        slot.child = Some(child);
        Ok(())
    }

    /// Restarts workers that exited (when `auto_restart`). Returns the ids restarted.
    pub fn poll(&mut self) -> Result<Vec<String>, SupervisorError> {
        let mut restarted = Vec::new();
        for i in 0..self.slots.len() {
            let exited = match self.slots[i].child.as_mut() {
                Some(c) => match c.try_wait() {
                    Ok(Some(status)) => {
                        warn!(worker = %self.slots[i].id, %status, "worker exited");
                        true
                    }
                    _ => false,
                },
                None => false,
            };
            if exited {
                self.slots[i].child = None;
            }
            if self.auto_restart && self.slots[i].child.is_none() && self.is_assigned(i) {
                self.slots[i].restarts += 1;
                self.spawn(i)?;
                restarted.push(self.slots[i].id.clone());
            }
        }
        Ok(restarted)
    }

    fn is_assigned(&self, i: usize) -> bool {
        self.assignment.workers.iter().any(|w| w.id == self.slots[i].id)
    }

    /// Kills worker `i` with SIGKILL and reaps it.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.slots[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts worker `i` again if it is not running.
    pub fn restart(&mut self, i: usize) -> Result<(), SupervisorError> {
        if self.slots[i].child.is_none() {
            self.slots[i].restarts += 1;
            self.spawn(i)?;
        }
        Ok(())
    }

    /// Whether worker `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.slots[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Moves worker `i`'s tasks to the others (a new generation) and stops restarting it.
    pub fn reassign_away(&mut self, i: usize) -> Result<bool, SupervisorError> {
        let id = self.slots[i].id.clone();
        match self.assignment.without(&self.spec.plan, &id) {
            Some(a) => {
                info!(worker = %id, generation = a.generation, "moving a worker's tasks to the others");
                self.set_assignment(a)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Gives worker `i` a new data-plane port (a new generation), as when a pod is
    /// replaced and comes back at another address. Restart it to take effect.
    pub fn move_worker(&mut self, i: usize) -> Result<String, SupervisorError> {
        let id = self.slots[i].id.clone();
        let mut a = self.assignment.clone();
        let Some(w) = a.workers.iter_mut().find(|w| w.id == id) else {
            return Err(SupervisorError::Assignment(format!("{id} is not assigned")));
        };
        let ip: IpAddr = w
            .address
            .parse::<SocketAddr>()
            .map(|s| s.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        w.address = free_port(ip)?.to_string();
        let addr = w.address.clone();
        a.generation += 1;
        self.set_assignment(a)?;
        Ok(addr)
    }

    /// Waits until every assigned worker answers `/readyz`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), SupervisorError> {
        let deadline = Instant::now() + timeout;
        loop {
            // A worker that died (a port taken between choosing and binding it, a bad
            // manifest) will never answer: say so now, with its log, or start it again.
            self.reap_unready()?;
            let not_ready: Vec<String> = (0..self.slots.len())
                .filter(|i| self.is_assigned(*i))
                .filter(|i| {
                    crate::http::get(self.slots[*i].http, "/readyz", Duration::from_millis(500)).is_err()
                })
                .map(|i| self.slots[i].id.clone())
                .collect();
            if not_ready.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SupervisorError::NotReady(timeout, not_ready.join(", ")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts assigned workers that exited (when `auto_restart`), or reports the first.
    fn reap_unready(&mut self) -> Result<(), SupervisorError> {
        if self.auto_restart {
            return self.poll().map(drop);
        }
        let assigned: Vec<usize> = (0..self.slots.len()).filter(|i| self.is_assigned(*i)).collect();
        for i in assigned {
            let status = match self.slots[i].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status.to_string(),
                None => "not running".to_owned(),
                _ => continue,
            };
            return Err(SupervisorError::ExitedBeforeReady {
                id: self.slots[i].id.clone(),
                status,
                log: log_tail(&self.log_path(i), 20),
            });
        }
        Ok(())
    }

    /// Every reachable worker's metrics, merged. Unreachable workers are skipped. The pages
    /// have the fine latency buckets: the live table reports quantiles from their sum.
    pub fn scrape(&self) -> Snapshot {
        let pages: Vec<_> = self
            .slots
            .iter()
            .filter_map(|s| crate::http::get(s.http, crate::prom::FINE_PATH, Duration::from_secs(1)).ok())
            .map(|t| crate::prom::parse(&t))
            .collect();
        crate::prom::merge(&pages)
    }

    /// One worker's samples, if it answers.
    pub fn scrape_one(&self, i: usize) -> Option<Vec<crate::prom::Sample>> {
        crate::http::get(self.slots[i].http, crate::prom::FINE_PATH, Duration::from_secs(1))
            .ok()
            .map(|t| crate::prom::parse(&t))
    }

    /// SIGTERM to worker `i`; waits up to `grace` for it to exit. Its exit status, or
    /// `None` if it had to be killed.
    pub fn terminate(&mut self, i: usize, grace: Duration) -> Option<std::process::ExitStatus> {
        self.sigterm(i);
        self.wait_exit(i, grace)
    }

    /// SIGTERM to worker `i`, without waiting (see [`Cluster::wait_exit`]).
    pub fn sigterm(&self, i: usize) {
        if let Some(c) = &self.slots[i].child {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Waits up to `grace` for worker `i` to exit, then kills it. Its exit status, or
    /// `None` if it had to be killed or did not run.
    pub fn wait_exit(&mut self, i: usize, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.slots[i].child.take()?;
        let deadline = Instant::now() + grace;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return None;
                }
            }
        }
    }

    /// SIGTERM to every worker, then SIGKILL to those still running after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        for s in &mut self.slots {
            if let Some(c) = &s.child {
                let pid = nix::unistd::Pid::from_raw(c.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        for s in &mut self.slots {
            if let Some(mut c) = s.child.take() {
                loop {
                    match c.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if Instant::now() >= deadline => {
                            let _ = c.kill();
                            let _ = c.wait();
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
        }
    }

    /// The directory holding the assignment and logs.
    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.slots {
            if let Some(mut c) = s.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut seen = std::collections::HashSet::new();
        // 500 picks from about 28,000 ports: without the memory, a repeat is near certain.
        for _ in 0..500 {
            let a = free_port(ip).unwrap();
            assert!(seen.insert(a), "{a} handed out twice");
            // Free again at once, as when the supervisor hands it to a worker.
            TcpListener::bind(a).unwrap();
        }
    }
}
