//! Agent configuration, read from a JSON file by the binary or built in code.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What to run for an image: there are no container images here, so each
/// image name maps to a locally built binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    /// Executable run in place of the image's entrypoint.
    pub binary: PathBuf,
    /// Default arguments, used like an image's CMD when the container sets
    /// neither `command` nor `args`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The image's environment (its `ENV`, e.g. a `PATH` with a venv first); the
    /// container's own variables win.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The image's `WORKDIR`: the working directory when the container sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
}

impl ImageSpec {
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
        }
    }

    /// With an `ENV` variable of the image.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// With the image's `WORKDIR`.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }
}

/// Configuration of one agent. One agent may serve several Nodes; losing the
/// agent loses all of them, so start one agent per Node for failure tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// Names of the Nodes to register.
    pub nodes: Vec<String>,
    /// Image name (exact, or without tag/digest) to binary.
    #[serde(default)]
    pub images: BTreeMap<String, ImageSpec>,
    /// Pods get consecutive addresses after this one. Agents sharing a
    /// cluster need disjoint ranges.
    #[serde(default = "default_pod_ip_base")]
    pub pod_ip_base: Ipv4Addr,
    /// Where per-pod directories and container logs go.
    pub work_dir: PathBuf,
    /// Interval of node status and Lease heartbeats. Must stay well below
    /// the controller manager's --node-monitor-grace-period.
    #[serde(default = "default_heartbeat_seconds")]
    pub heartbeat_seconds: u64,
    /// Extra labels for the registered Nodes.
    #[serde(default)]
    pub node_labels: BTreeMap<String, String>,
    /// Seconds to wait for processes after SIGTERM when the agent stops.
    #[serde(default = "default_stop_grace_seconds")]
    pub stop_grace_seconds: u64,
    /// Passed to every container as KUBECONFIG (unless the pod sets it), so
    /// controllers run as pods reach the API server: there is no in-cluster
    /// service-account mount here.
    #[serde(default)]
    pub pod_kubeconfig: Option<PathBuf>,
}

fn default_pod_ip_base() -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, 0)
}
fn default_heartbeat_seconds() -> u64 {
    2
}
fn default_stop_grace_seconds() -> u64 {
    5
}

impl AgentConfig {
    /// A config with defaults for one node.
    pub fn new(node: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            nodes: vec![node.into()],
            images: BTreeMap::new(),
            pod_ip_base: default_pod_ip_base(),
            work_dir: work_dir.into(),
            heartbeat_seconds: default_heartbeat_seconds(),
            node_labels: BTreeMap::new(),
            stop_grace_seconds: default_stop_grace_seconds(),
            pod_kubeconfig: None,
        }
    }

    pub fn image(mut self, image: impl Into<String>, spec: ImageSpec) -> Self {
        self.images.insert(image.into(), spec);
        self
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|source| Error::ConfigParse {
            path: path.to_owned(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(Error::ConfigInvalid("no nodes configured".into()));
        }
        if !self.pod_ip_base.is_loopback() {
            return Err(Error::ConfigInvalid(format!(
                "podIpBase {} is not a loopback address",
                self.pod_ip_base
            )));
        }
        if self.heartbeat_seconds == 0 {
            return Err(Error::ConfigInvalid("heartbeatSeconds must be > 0".into()));
        }
        Ok(())
    }

    /// Looks an image up exactly, then without its digest or tag.
    pub fn lookup_image(&self, image: &str) -> Option<&ImageSpec> {
        if let Some(spec) = self.images.get(image) {
            return Some(spec);
        }
        let no_digest = image.split('@').next().unwrap_or(image);
        if let Some(spec) = self.images.get(no_digest) {
            return Some(spec);
        }
        // A ':' after the last '/' is a tag; one before it is a registry port.
        let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
        let no_tag = match no_digest[last_slash..].rfind(':') {
            Some(i) => &no_digest[..last_slash + i],
            None => no_digest,
        };
        self.images.get(no_tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lookup_strips_tag_and_digest_but_not_port() {
        let cfg = AgentConfig::new("n", "/tmp")
            .image("reg:5000/squall/worker", ImageSpec::new("/bin/worker"))
            .image("echo:1", ImageSpec::new("/bin/echo1"));
        assert_eq!(
            cfg.lookup_image("reg:5000/squall/worker:0.1").map(|s| &s.binary),
            Some(&PathBuf::from("/bin/worker"))
        );
        assert!(cfg.lookup_image("reg:5000/squall/worker@sha256:ab").is_some());
        assert!(cfg.lookup_image("echo:1").is_some());
        assert!(cfg.lookup_image("echo:2").is_none());
        assert!(cfg.lookup_image("reg/squall/worker").is_none());
    }

    #[test]
    fn images_carry_their_env_and_working_dir() {
        let cfg: AgentConfig = serde_json::from_str(
            r#"{"nodes":["a"],"workDir":"/tmp/x","images":{"py":{"binary":"/bin/w","env":{"PATH":"/v/bin:/bin"},"workingDir":"/app"}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let want = ImageSpec::new("/bin/w")
            .env("PATH", "/v/bin:/bin")
            .working_dir("/app");
        assert_eq!(cfg.lookup_image("py:1"), Some(&want));
    }

    #[test]
    fn config_parses_and_validates() {
        let cfg: AgentConfig = serde_json::from_str(
            r#"{"nodes":["a"],"workDir":"/tmp/x","images":{"e":{"binary":"/bin/true"}}}"#,
        )
        .map_err(|e| e.to_string())
        .and_then(|c: AgentConfig| c.validate().map(|_| c).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.heartbeat_seconds, 2);
        let bad: AgentConfig =
            serde_json::from_str(r#"{"nodes":["a"],"workDir":"/x","podIpBase":"10.0.0.1"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<AgentConfig>(r#"{"nodes":[],"workDir":"/x","bogus":1}"#).is_err());
    }
}
