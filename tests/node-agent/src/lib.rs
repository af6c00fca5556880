//! A stand-in for the kubelet in tests: registers Nodes, keeps them Ready with
//! status and Lease heartbeats, and runs the containers of pods scheduled to
//! them as local processes, each pod on its own loopback IP. The kubelet's HTTPS
//! endpoint serves containerLogs and portForward, so pods/log (`kubectl logs`) and
//! pods/portforward (`kubectl port-forward`) work.
#![forbid(unsafe_code)]

mod agent;
pub mod config;
mod env;
mod logs;
mod node;
mod pods;
mod portforward;
mod probe;
mod process;
mod server;
mod spdy;

pub use agent::{AgentHandle, NodeAgent};
pub use config::{AgentConfig, ImageSpec};

use std::path::PathBuf;

/// Errors of the node agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading agent config {path}: {source}")]
    ConfigRead { path: PathBuf, source: std::io::Error },
    #[error("parsing agent config {path}: {source}")]
    ConfigParse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid agent config: {0}")]
    ConfigInvalid(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("no binary mapped for image {0:?}")]
    UnknownImage(String),
    #[error("starting {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("pod IP range exhausted")]
    NoFreeIp,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
