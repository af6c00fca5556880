//! Test support: a real Kubernetes control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler) on loopback in a temporary
//! directory, plus in-process node agents that run pods as local processes.
//!
//! ```no_run
//! # async fn t() -> Result<(), kube_testenv::Error> {
//! let cluster = kube_testenv::TestCluster::start().await?;
//! let agent = cluster.start_node_agent("node-a", [("squall/worker", "/path/to/worker")]).await?;
//! let client = cluster.client();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod certs;
mod cluster;
pub mod rbac;
pub use cluster::eventually;

pub use cluster::{ClusterOptions, TestCluster};
pub use squall_node_agent::{AgentConfig, AgentHandle, ImageSpec};

use std::path::PathBuf;

/// The Kubernetes release the binaries are built from (tests/k8s-tools).
pub const KUBERNETES_VERSION: &str = "1.37.2";

/// Binaries the control plane needs.
pub const BINARIES: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{name} not found at {path}: build the test binaries with `make k8s-bins` (or set K8S_BIN_DIR)")]
    MissingBinary { name: String, path: PathBuf },
    #[error("openssl failed ({step}): {detail}")]
    Openssl { step: String, detail: String },
    #[error("{what} exited early ({status}); log {log}:\n{tail}")]
    ProcessExited {
        what: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("timed out after {secs}s waiting for {what}; logs in {dir}")]
    Timeout { what: String, secs: u64, dir: PathBuf },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("node agent: {0}")]
    Agent(#[from] squall_node_agent::Error),
    #[error("{step} failed: {stderr}")]
    Kubectl { step: String, stderr: String },
    #[error("every pod address range (127.*.1-250.*) is held by another running cluster: {0}")]
    NoPodOctet(String),
    #[error("the TokenRequest for {account} returned no token")]
    NoToken { account: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Sends this process's tracing to the test's output, filtered by `RUST_LOG` or else at
/// `info` without the kube client's per-request lines. The first call installs it; later
/// ones (every test of a binary makes one) do nothing.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=off")),
        )
        .with_test_writer()
        .try_init();
}

/// Where the binaries are: `$K8S_BIN_DIR`, else the cache folder that
/// `make k8s-bins` fills.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("K8S_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../.cache/k8s-bin")
            .join(format!("v{KUBERNETES_VERSION}")),
    }
}
