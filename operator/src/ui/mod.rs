//! Storm's UI REST API over the cluster, served by every operator replica, leading or
//! not: it reads the Topology resources and the workers' figures, and writes only what
//! an action names, so standby replicas answer too.
//!
//! - [`source`]: the cluster as a `squall_ui::Source`: topologies, their worker pods,
//!   each worker's `GET /figures`, bounded in count and memory.
//! - [`merge`]: one topology's sample from its workers' figures and its plan; pure.
//! - [`control`]: Storm's actions as changes to the Topology resource.
//! - [`auth`]: bearer tokens checked with TokenReview, rights with SubjectAccessReview.
//!
//! Order, bottom up: `merge` → `source`, `control`, `auth` → this module. Nothing of the
//! reconcile path uses it; it stands on `probe` and `metrics` only.

pub mod auth;
pub mod control;
pub mod merge;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use squall_model::Limits;
use squall_ui::{Options, Ui};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// How the UI samples the cluster and whom it believes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often the workers are asked for their figures. 5 s by default: the finest
    /// window step is 10 s (10 minutes ÷ 60 samples), so sampling faster would only make
    /// the newest figures fresher, while every replica asks every worker each period.
    pub period: Duration,
    /// Longest a worker may take to answer; a slower one is left out of that sample.
    pub answer_timeout: Duration,
    /// Topologies read per round at most (one page of the list); the rest are left out.
    pub max_topologies: u32,
    /// Bytes the topologies' histories may take, estimated from each newest sample
    /// times the samples a history keeps; topologies past it are left out.
    pub memory_budget: usize,
    /// Samples each bounded window keeps (the UI's resolution).
    pub resolution: u32,
    /// Only this namespace, or all.
    pub namespace: Option<String>,
    /// What a stored spec (and a rebalanced one) is checked against.
    pub limits: Limits,
    /// How long an identity or an access decision is reused.
    pub auth_ttl: Duration,
    /// Identities and decisions cached at most, of each.
    pub auth_entries: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(2),
            max_topologies: 100,
            memory_budget: 64 << 20,
            resolution: 20,
            namespace: None,
            limits: Limits::default(),
            auth_ttl: Duration::from_secs(10),
            auth_entries: 1024,
        }
    }
}

/// The most samples one topology's history keeps at `resolution` (squall-ui's bound:
/// three bounded windows of `resolution + 2` samples, and the newest).
pub fn history_samples(resolution: u32) -> usize {
    3 * (resolution.max(1) as usize + 2) + 1
}

/// The API over the cluster as `client` sees it.
pub type ClusterUi = Ui<source::ClusterSource, control::ClusterControl, auth::KubeAuthorizer>;

/// The API over the cluster, sampling as `settings` say; serve it with
/// [`Ui::serve`](squall_ui::Ui::serve).
pub fn cluster_ui(client: Client, settings: Settings, metrics: Arc<Metrics>) -> ClusterUi {
    let settings = Arc::new(settings);
    let source = source::ClusterSource::new(client.clone(), Arc::clone(&settings), metrics);
    let control = control::ClusterControl::new(
        client.clone(),
        settings.namespace.clone(),
        settings.limits.clone(),
    );
    let auth = auth::KubeAuthorizer::new(client, settings.auth_ttl, settings.auth_entries);
    let options = Options {
        period: settings.period,
        resolution: settings.resolution,
        ..Options::default()
    };
    Ui::with_authorizer(source, control, auth, options)
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(client: Client, settings: Settings, metrics: Arc<Metrics>, listener: TcpListener) {
    cluster_ui(client, settings, metrics).serve(listener).await;
}
