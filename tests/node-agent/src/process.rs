//! Spawning container processes in their own process groups, and killing
//! those groups.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::{Error, Result};

/// Process groups the agent started and has not reaped yet; shared with the
/// handle so a dropped handle can kill them synchronously. Each group is
/// also appended to a record file, so a test harness can clean up after a
/// process that died without running its destructors.
#[derive(Clone, Default)]
pub struct Registry {
    live: Arc<Mutex<HashSet<i32>>>,
    record: Option<Arc<PathBuf>>,
}

impl Registry {
    pub fn recording(record: PathBuf) -> Self {
        Self {
            live: Arc::default(),
            record: Some(Arc::new(record)),
        }
    }
    fn with<R>(&self, f: impl FnOnce(&mut HashSet<i32>) -> R) -> R {
        let mut g = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }
    pub fn add(&self, pgid: i32) {
        self.with(|s| s.insert(pgid));
        if let Some(path) = &self.record {
            let line = format!("{pgid}\n");
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path.as_path())
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
            if let Err(e) = res {
                tracing::warn!(path = %path.display(), error = %e, "cannot record process group");
            }
        }
    }
    pub fn remove(&self, pgid: i32) {
        self.with(|s| s.remove(&pgid));
    }
    /// Sends `sig` to every registered group.
    pub fn signal_all(&self, sig: Signal) {
        for pgid in self.with(|s| s.iter().copied().collect::<Vec<_>>()) {
            signal_group(pgid, sig);
        }
    }
}

/// Signals a process group; a group that is already gone is not an error.
pub fn signal_group(pgid: i32, sig: Signal) {
    if pgid <= 1 {
        return; // never signal init or "every process"
    }
    if let Err(e) = killpg(Pid::from_raw(pgid), sig) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pgid, ?sig, error = %e, "killpg failed");
        }
    }
}

/// A started container process; its pid is also its process-group id.
pub struct Proc {
    pub child: Child,
    pub pgid: i32,
}

pub struct SpawnSpec<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    pub log: &'a Path,
}

/// Host variables passed through so tools keep working; the rest of the
/// environment comes from the pod spec, as in a container.
const PASS_THROUGH: &[&str] = &["PATH", "HOME", "TMPDIR", "RUST_BACKTRACE", "LANG"];

pub fn spawn(spec: &SpawnSpec<'_>, registry: &Registry) -> Result<Proc> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.log)?;
    let log_err = log.try_clone()?;
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.args)
        .env_clear()
        .envs(
            PASS_THROUGH
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
        )
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Own group, so the whole tree a container starts can be signalled.
        .process_group(0);
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        program: PathBuf::from(spec.program),
        source,
    })?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| Error::Spawn {
            program: PathBuf::from(spec.program),
            source: std::io::Error::other("child exited before its pid was read"),
        })?;
    registry.add(pgid);
    Ok(Proc { child, pgid })
}
