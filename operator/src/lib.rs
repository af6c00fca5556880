//! The Squall operator: runs `Topology` resources on worker pods.
//!
//! - [`change`]: how a wanted assignment differs from the running one (activation in
//!   place, address move, rebalance) and the drain steps of a rebalance and a kill; pure.
//! - [`probe`]: asks workers through `GET /status` whether they run the current plan and
//!   whether their trees have drained.
//! - [`decide`]: pure functions from what was observed to what should be (assignment,
//!   status, events); unit-tested without an API server.
//! - [`rbac`]: the workers' per-topology ServiceAccount, Role and RoleBinding.
//! - [`resources`]: the child objects (StatefulSet, headless Service, ConfigMap).
//! - [`leader`]: leader election through a Lease, compare-and-swap on every write.
//! - [`metrics`]: reconcile counters and topologies by phase; health endpoints.
//! - [`kill`]: Storm's kill with wait before the finalizer releases a topology.
//! - [`liveness`]: worker Leases judged on the operator's own observations.
//! - `context`: what every reconcile path shares (settings, errors, status and Event
//!   writes, the current assignment); the bottom layer.
//! - [`crd`]: the CRD with the limits written into it.
//! - [`controller`]: the kube-runtime Controller that observes, decides and acts.
//!
//! Layers, bottom up, with no cycle: `change`, `liveness`, `metrics`, `probe` → `resources`
//! → `rbac`, `decide`, `context` → `kill` → `controller`.
#![forbid(unsafe_code)]

pub mod change;
mod context;
pub mod controller;
pub mod crd;
pub mod decide;
pub mod kill;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod probe;
pub mod rbac;
pub mod resources;

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
