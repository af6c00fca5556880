//! `squall-control`: the contract between the operator and its workers, with no engine
//! behind it, so the operator links only this and the topology model.
//!
//! - [`assignment`]: which worker runs which tasks, as the operator writes it and every
//!   worker reads it; the round-robin plan, the minimal-move rebalance and its check.
//! - [`slice`]: what one worker's engine is built from, so only engines whose slice
//!   changed restart.
//! - [`plan_hash`]: one identity of a plan regardless of what no engine reads (activation,
//!   pod settings), which peers must share and which tells the operator a rebalance from
//!   a change the engines do not see.
//! - [`status`]: what a worker reports on `GET /status`, which the operator reads to
//!   drain before a kill or a rebalance and to activate once every worker runs a plan.
//! - [`figures`]: what a worker counted, per component and task, on `GET /figures`,
//!   which the operator's Storm UI API merges over a topology's workers.
//! - [`identity`]: the identity a worker's certificate carries on its links, and the keys
//!   of the Secret that delivers it.
#![forbid(unsafe_code)]

pub mod assignment;
mod balance;
pub mod figures;
mod flow;
pub mod identity;
pub mod slice;
pub mod status;

pub use assignment::{Assignment, AssignmentError, WorkerSpec};
pub use figures::{WorkerFigures, FIGURES_PATH, MAX_FIGURES_BYTES};
pub use slice::{engine_spec, EngineSlice};
pub use status::{DropCounts, WorkerStatus, MAX_STATUS_BYTES, STATUS_PATH};

use squall_model::TopologyManifest;

/// The ConfigMap key holding the assignment.
pub const ASSIGNMENT_KEY: &str = "assignment.yaml";
/// The ConfigMap key holding the manifest; the assignment names it by this file name.
pub const MANIFEST_KEY: &str = "topology.yaml";

/// The manifest could not be written out to be hashed.
#[derive(Debug, thiserror::Error)]
#[error("serializing the manifest: {0}")]
pub struct PlanHashError(#[from] serde_yaml_ng::Error);

/// The identity of the plan a manifest describes, as far as engines read it: xxh3 of its
/// YAML with the spec reduced by [`engine_spec`], as 16 hex digits. Spouts are switched
/// on and off in place, so peers that differ only in activation must keep talking, and
/// the operator must see such a change (or one of the pod settings) as no rebalance.
pub fn plan_hash(manifest: &TopologyManifest) -> Result<String, PlanHashError> {
    let normalised = TopologyManifest {
        spec: engine_spec(&manifest.spec),
        ..manifest.clone()
    };
    let canonical = normalised.to_yaml()?;
    Ok(format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(canonical.as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn manifest(state: &str, parallelism: u32) -> TopologyManifest {
        let yaml = format!(
            "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {{name: a}}\nspec:\n  \
             desiredState: {state}\n  spouts: [{{name: s, component: sequence, parallelism: {parallelism}}}]\n"
        );
        TopologyManifest::from_yaml(&yaml, "t").unwrap()
    }

    #[test]
    fn the_plan_hash_ignores_activation_only() {
        let on = plan_hash(&manifest("Active", 1)).unwrap();
        assert_eq!(on, plan_hash(&manifest("Inactive", 1)).unwrap());
        assert_ne!(on, plan_hash(&manifest("Active", 2)).unwrap());
        assert_eq!(on.len(), 16);
    }

    #[test]
    fn the_plan_hash_ignores_what_no_engine_reads() {
        let hash = |edit: fn(&mut TopologyManifest)| {
            let mut m = manifest("Active", 1);
            m.spec.ackers = Some(1);
            edit(&mut m);
            plan_hash(&m).unwrap()
        };
        let base = hash(|_| {});
        assert_eq!(base, hash(|m| m.spec.kill_wait_seconds = Some(5)));
        assert_eq!(
            base,
            hash(|m| m.spec.pod = Some(squall_model::PodSettings::default()))
        );
        assert_eq!(base, hash(|m| m.spec.workers = 3), "the acker count is set");
        assert_ne!(
            hash(|m| m.spec.ackers = None),
            hash(|m| {
                m.spec.ackers = None;
                m.spec.workers = 3;
            }),
            "the default acker count follows the worker count"
        );
        assert_ne!(base, hash(|m| m.spec.message_timeout_seconds = 9));
    }
}
