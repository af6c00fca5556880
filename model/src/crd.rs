//! The `Topology` custom resource (derived from [`TopologySpec`](crate::TopologySpec)) and
//! the status the operator writes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::spec::Topology;

/// Where a topology is in its life.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// Accepted; workers are being created or are not ready yet.
    #[default]
    Pending,
    /// Every worker is ready and has the current assignment.
    Running,
    /// Was running, but some workers are not ready.
    Degraded,
    /// Workers run with spouts deactivated (`desiredState: Inactive`).
    Inactive,
    /// Being deleted: spouts deactivated, in-flight trees draining.
    Killing,
    /// The spec cannot run (rejected by validation); see `lastError`.
    Failed,
}

impl Phase {
    /// The name shown in `kubectl get`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Degraded => "Degraded",
            Phase::Inactive => "Inactive",
            Phase::Killing => "Killing",
            Phase::Failed => "Failed",
        }
    }
}

/// One condition (`Ready`, `Progressing`, `Degraded`), as Kubernetes conditions are shaped.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TopologyCondition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason, CamelCase.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339 time the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The spec generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What the operator last observed and did.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TopologyStatus {
    /// Pending, Running, Degraded, Inactive, Killing or Failed.
    #[serde(default)]
    pub phase: Phase,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<TopologyCondition>,
    /// Worker pods wanted (`spec.workers`).
    #[serde(default)]
    pub desired_workers: i32,
    /// Worker pods ready.
    #[serde(default)]
    pub ready_workers: i32,
    /// Generation of the assignment last written for the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_generation: Option<i64>,
    /// The last error the operator met (validation or API), cleared when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// While a rebalance drains (spouts deactivated, in-flight trees completing): RFC 3339
    /// time after which the new plan is applied even if trees are still in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_deadline: Option<String>,
    /// Label selector of the worker pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}
