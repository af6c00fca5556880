//! Settings of a shell component, read from the topology config overlaid with the
//! component's config (the component's wins).

use std::path::PathBuf;
use std::time::Duration;

use squall_model::Config;

use crate::codec::DEFAULT_MAX_MESSAGE_BYTES;
use crate::msgpack::{DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT};

/// Seconds without any message from the child before it is considered hung.
pub const TIMEOUT_SECS: &str = "squall.multilang.timeout.secs";
/// Storm's key for the same, used when ours is absent.
pub const STORM_TIMEOUT_SECS: &str = "topology.subprocess.timeout.secs";
/// Storm's fallback for the subprocess timeout.
pub const STORM_WORKER_TIMEOUT_SECS: &str = "supervisor.worker.timeout.secs";
/// Tuples a shell bolt queues for its child before `execute` waits.
pub const MAX_PENDING: &str = "squall.multilang.max.pending";
/// Storm's key for the same.
pub const STORM_MAX_PENDING: &str = "topology.shellbolt.max.pending";
/// Seconds between heartbeat tuples to a shell bolt.
pub const HEARTBEAT_SECS: &str = "squall.multilang.heartbeat.secs";
/// Largest message accepted from a child, in bytes.
pub const MAX_MESSAGE_BYTES: &str = "squall.multilang.max.message.bytes";
/// Deepest nesting of lists and maps accepted in a msgpack message from a child.
pub const MAX_MESSAGE_DEPTH: &str = "squall.multilang.max.message.depth";
/// Directory under which each task gets the pid directory its child writes to.
pub const PID_DIR: &str = "squall.multilang.pid.dir";
/// A Python virtual environment whose `bin` goes first on the child's `PATH`; relative
/// to the base directory (the manifest's locally).
pub const VENV: &str = "squall.multilang.venv";

/// A bad setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct SettingsError {
    /// The config key.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Subprocess timeout (Storm's default: 30 s).
    pub timeout: Duration,
    /// Bound of the queue of tuples to a bolt's child (Storm's default: 100).
    pub max_pending: usize,
    /// Heartbeat period of bolts (Storm: 1 s).
    pub heartbeat: Duration,
    /// Largest accepted message.
    pub max_message_bytes: usize,
    /// Deepest accepted nesting of a msgpack message.
    pub max_message_depth: usize,
    /// Base of pid directories.
    pub pid_dir: PathBuf,
    /// Virtual environment put on the child's `PATH`, as configured (not yet resolved).
    pub venv: Option<String>,
}

impl Settings {
    /// Reads the settings; `component` overrides `topology` key by key.
    pub fn from_configs(topology: &Config, component: &Config) -> Result<Settings, SettingsError> {
        let get = |k: &str| component.get(k).or_else(|| topology.get(k));
        let secs = |k: &str| -> Result<Option<Duration>, SettingsError> {
            match get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .map(|s| Some(Duration::from_secs_f64(s)))
                    .ok_or_else(|| SettingsError {
                        key: k.to_owned(),
                        problem: format!("must be a positive number of seconds, got {v}"),
                    }),
            }
        };
        let count = |k: &str| -> Result<Option<usize>, SettingsError> {
            match get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| SettingsError {
                        key: k.to_owned(),
                        problem: format!("must be a positive integer, got {v}"),
                    }),
            }
        };
        let timeout = match secs(TIMEOUT_SECS)? {
            Some(t) => t,
            None => secs(STORM_TIMEOUT_SECS)?
                .or(secs(STORM_WORKER_TIMEOUT_SECS)?)
                .unwrap_or(Duration::from_secs(30)),
        };
        let max_pending = match count(MAX_PENDING)? {
            Some(n) => n,
            None => count(STORM_MAX_PENDING)?.unwrap_or(100),
        };
        let heartbeat = secs(HEARTBEAT_SECS)?.unwrap_or(Duration::from_secs(1));
        let max_message_bytes = count(MAX_MESSAGE_BYTES)?.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        let max_message_depth = match count(MAX_MESSAGE_DEPTH)? {
            None => DEFAULT_MAX_DEPTH,
            Some(n) if n <= MAX_DEPTH_LIMIT => n,
            Some(n) => {
                return Err(SettingsError {
                    key: MAX_MESSAGE_DEPTH.to_owned(),
                    problem: format!("must be at most {MAX_DEPTH_LIMIT}, got {n}"),
                })
            }
        };
        let pid_dir = match get(PID_DIR) {
            None => std::env::temp_dir().join(format!("squall-multilang-{}", std::process::id())),
            Some(v) => v.as_str().map(PathBuf::from).ok_or_else(|| SettingsError {
                key: PID_DIR.to_owned(),
                problem: format!("must be a path, got {v}"),
            })?,
        };
        let venv = match get(VENV) {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| SettingsError {
                        key: VENV.to_owned(),
                        problem: format!("must be the path of a virtual environment, got {v}"),
                    })?,
            ),
        };
        Ok(Settings {
            timeout,
            max_pending,
            heartbeat,
            max_message_bytes,
            max_message_depth,
            pid_dir,
            venv,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(pairs: &[(&str, serde_json::Value)]) -> Config {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn defaults_are_storms() {
        let s = Settings::from_configs(&Config::new(), &Config::new()).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.max_pending, 100);
        assert_eq!(s.heartbeat, Duration::from_secs(1));
    }

    #[test]
    fn component_overrides_topology_and_storm_keys_are_fallbacks() {
        let topo = cfg(&[(STORM_TIMEOUT_SECS, json!(7)), (MAX_PENDING, json!(5))]);
        let comp = cfg(&[(MAX_PENDING, json!(9)), (HEARTBEAT_SECS, json!(0.5))]);
        let s = Settings::from_configs(&topo, &comp).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.max_pending, 9);
        assert_eq!(s.heartbeat, Duration::from_millis(500));
        let s =
            Settings::from_configs(&cfg(&[(STORM_WORKER_TIMEOUT_SECS, json!(3))]), &Config::new()).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Settings::from_configs(&cfg(&[(TIMEOUT_SECS, json!("x"))]), &Config::new()).unwrap_err();
        assert_eq!(e.key, TIMEOUT_SECS);
        let e =
            Settings::from_configs(&Config::new(), &cfg(&[(MAX_MESSAGE_DEPTH, json!(5000))])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "squall.multilang.max.message.depth: must be at most 1024, got 5000"
        );
        let s = Settings::from_configs(&Config::new(), &cfg(&[(MAX_MESSAGE_DEPTH, json!(200))])).unwrap();
        assert_eq!(s.max_message_depth, 200);
        let e = Settings::from_configs(&Config::new(), &cfg(&[(MAX_PENDING, json!(0))])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "squall.multilang.max.pending: must be a positive integer, got 0"
        );
    }
}
