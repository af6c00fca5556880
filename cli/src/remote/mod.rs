//! The cluster verbs: `squall submit`, `list`, `status`, `activate`, `deactivate`,
//! `rebalance`, `kill` and `logs`, against the `Topology` resources of a Kubernetes
//! cluster, found through a kubeconfig as kubectl finds it.

pub mod control;
pub mod list;
pub mod logs;
pub mod status;
pub mod submit;

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use squall_model::crd::Topology;

pub use control::{KillArgs, RebalanceArgs, StateArgs};
pub use list::ListArgs;
pub use logs::LogsArgs;
pub use status::StatusArgs;
pub use submit::SubmitArgs;

/// Label the operator puts on every worker pod of a topology.
pub const TOPOLOGY_LABEL: &str = "squall.dev/topology";
/// The workers' HTTP port (`/metrics`, `/status`).
pub const WORKER_PORT: u16 = 9464;
/// Field manager of every change this CLI makes, so `managedFields` say who made it.
pub const FIELD_MANAGER: &str = "squall";

/// Which cluster and namespace, as kubectl's flags say it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
}

/// A client and the namespace the verb works in.
pub struct Remote {
    pub client: Client,
    pub namespace: String,
    /// The API server's address, for messages.
    pub server: String,
}

impl Remote {
    /// Connects as kubectl would: `--kubeconfig` and `--context` when given, else the
    /// usual search (including in-cluster). `follow` lifts the read timeout, for streams
    /// that may stay quiet for long.
    pub async fn connect(args: &ClusterArgs, follow: bool) -> anyhow::Result<Self> {
        let options = KubeConfigOptions {
            context: args.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match (&args.kubeconfig, &args.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| anyhow::anyhow!("kubeconfig {}: {}", path.display(), one_line(&e)))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| anyhow::anyhow!("kubeconfig {}: {}", path.display(), one_line(&e)))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| anyhow::anyhow!("kubeconfig: {}", one_line(&e)))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| anyhow::anyhow!("no cluster configured: {}", one_line(&e)))?,
        };
        // A closed or filtered port should fail in seconds, not hang.
        config.connect_timeout = Some(Duration::from_secs(5));
        if follow {
            config.read_timeout = None;
        }
        let server = config.cluster_url.to_string();
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client =
            Client::try_from(config).map_err(|e| anyhow::anyhow!("cluster {server}: {}", one_line(&e)))?;
        Ok(Remote {
            client,
            namespace,
            server,
        })
    }

    pub fn topologies(&self) -> Api<Topology> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn pods(&self) -> Api<k8s_openapi::api::core::v1::Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Topology `name`, or an error naming it when it does not exist.
    pub async fn topology(&self, name: &str) -> anyhow::Result<Topology> {
        self.topologies()
            .get(name)
            .await
            .map_err(|e| self.error(e, Some(name)))
    }

    /// One line saying what went wrong with a call about topology `name` (or about
    /// topologies in general): not found, forbidden, unreachable, or the server's message.
    pub fn error(&self, err: kube::Error, name: Option<&str>) -> anyhow::Error {
        let what = match name {
            Some(n) => format!("topology {n} in namespace {}", self.namespace),
            None => format!("topologies in namespace {}", self.namespace),
        };
        let line = match &err {
            // A missing object comes with details naming it; a 404 without them (or on a
            // list) means the resource type itself is unknown to the API server.
            kube::Error::Api(s) if s.code == 404 && (name.is_none() || s.details.is_none()) => {
                format!(
                    "cluster {}: no Topology resource (is the squall CRD installed?)",
                    self.server
                )
            }
            kube::Error::Api(s) if s.code == 404 => format!("{what}: not found"),
            kube::Error::Api(s) if s.code == 403 => format!("{what}: forbidden: {}", s.message),
            kube::Error::Api(s) if s.code == 401 => {
                format!("cluster {}: unauthorized: {}", self.server, s.message)
            }
            kube::Error::Api(s) => format!("{what}: {}", s.message),
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                format!(
                    "cannot reach the cluster at {}: {}",
                    self.server,
                    root_cause(&err)
                )
            }
            other => format!("{what}: {}", one_line(other)),
        };
        anyhow::Error::new(err).context(line)
    }
}

/// The innermost cause of an error, which for connection failures is the useful part
/// ("Connection refused"), on one line.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    one_line(e)
}

/// An error's message with its newlines folded, so that it prints as one line.
pub fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs an async verb on a small runtime of its own.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// `1d4h`, `5m`, `42s`: an age as kubectl prints it.
pub fn age(created: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    let Some(t) = created else {
        return "-".to_owned();
    };
    let secs = jiff::Timestamp::now().duration_since(t.0).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s / 60 % 60),
        s => format!("{}d{}h", s / 86_400, s / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fold_to_one_line() {
        assert_eq!(one_line(&"a\n  b\tc"), "a b c");
    }
}
