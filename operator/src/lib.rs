//! The Squall operator: runs `Topology` resources on worker pods.
//!
//! - [`change`]: how a wanted assignment differs from the running one (activation in
//!   place, address move, rebalance); pure.
//! - [`liveness`]: worker Leases judged on the operator's own observations.
//! - [`metrics`]: reconcile counters and topologies by phase; health endpoints.
//! - [`probe`]: asks workers through `GET /status` whether they run the current plan and
//!   whether their trees have drained.
//! - [`lifecycle`]: the topology's states (unassigned, active, inactive, draining,
//!   killing), observed from the cluster each reconcile, and the table of legal
//!   transitions between them; pure.
//! - [`resources`]: the child objects (StatefulSet, headless Service, ConfigMap,
//!   NetworkPolicy).
//! - [`rbac`]: the workers' per-topology ServiceAccount, Role and RoleBinding.
//! - [`access`]: every permission the operator holds and why; the chart grants exactly these.
//! - [`decide`]: pure functions from what was observed to what should be (assignment
//!   through the lifecycle's transitions, status, events); unit-tested without an API
//!   server.
//! - `context`: what every reconcile path shares (settings, errors, status and Event
//!   writes, the current assignment); the base `kill` and `controller` stand on.
//! - [`autoscale`]: samples the workers' figures over the metrics window, decides each
//!   component's parallelism with `squall_autoscaler`, and writes it into the spec, which
//!   the lifecycle rebalances drain-safe.
//! - [`kill`]: Storm's kill with wait before the finalizer releases a topology.
//! - [`controller`]: the kube-runtime Controller that observes, decides and acts.
//! - [`events`]: Events keyed by what they say, so each distinct change reads as itself
//!   and only repeats become a series.
//! - [`leader`]: leader election through a Lease, compare-and-swap on every write.
//! - [`crd`]: the CRD with the limits written into it.
//! - [`ui`]: Storm's UI REST API over the cluster, on every replica, each request
//!   authorized with the caller's own TokenReview and SubjectAccessReview.
//!
//! Layers, bottom up, with no cycle: `change`, `events`, `liveness`, `metrics`, `probe` →
//! `lifecycle`, `resources` → `rbac`, `decide`, `context` → `kill` → `autoscale` → `controller`
//! (`leader` and `crd` stand apart; `ui` stands on `probe` and `metrics` only, beside the
//! reconcile path).
#![forbid(unsafe_code)]

pub mod access;
pub mod autoscale;
pub mod certs;
pub mod change;
mod context;
pub mod controller;
pub mod crd;
pub mod decide;
pub mod events;
pub mod kill;
pub mod leader;
pub mod lifecycle;
pub mod liveness;
pub mod metrics;
pub mod probe;
pub mod rbac;
pub mod resources;
pub mod ui;

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "squall-operator";
/// Label carrying the topology name on every child object and worker pod.
pub const TOPOLOGY_LABEL: &str = "squall.dev/topology";
/// Port of the workers' gRPC data plane.
pub const DATA_PORT: i32 = 7000;
/// Port of the workers' /metrics, /status, /healthz and /readyz.
pub const HTTP_PORT: i32 = 9464;

/// The CRD as YAML with the default limits (what `make crds` writes to
/// `crds/topology.yaml`).
pub fn crd_yaml() -> Result<String, crd::CrdError> {
    crd::crd_yaml(&squall_model::Limits::default())
}

/// How the operator's users raise a limit, for validation messages.
pub const RAISE_WITH: &str = "the operator's --limit {key}=N (chart value limits.{key})";
