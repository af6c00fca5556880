//! What every part of a reconcile shares: the operator's settings and context, its
//! errors, and the writes every path makes (status, Events) and the read of the current
//! assignment. Both reconcile paths (`kill`, `controller`) stand on it; it uses neither.

use crate::events::{EventRecorder, Note};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use squall_control::{Assignment, ASSIGNMENT_KEY, MANIFEST_KEY};
use squall_model::crd::{Topology, TopologyStatus};
use squall_model::{Limits, TopologyManifest, API_VERSION, KIND};

use crate::change::CurrentAssignment;
use crate::lifecycle::LifecycleError;
use crate::liveness::LeaseBook;
use crate::metrics::Metrics;
use crate::resources::{BuildError, WorkerDefaults};
use crate::FIELD_MANAGER;

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Children could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// YAML could not be written.
    #[error("yaml: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The object has no namespace (the CRD is namespaced, so this is a bug).
    #[error("topology has no namespace")]
    NoNamespace,
    /// A lifecycle transition was rejected (a bug: nothing was written).
    #[error("lifecycle: {0}")]
    Lifecycle(#[from] LifecycleError),
    /// The workers' certificates could not be issued.
    #[error("{0}")]
    Certs(#[from] crate::certs::CertError),
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube_api",
            Error::Build(_) => "build",
            Error::Yaml(_) => "yaml",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace => "no_namespace",
            Error::Lifecycle(_) => "lifecycle",
            Error::Certs(_) => "certificates",
        }
    }
}

/// Operator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker image and Lease timing.
    pub workers: WorkerDefaults,
    /// Only this namespace, or all.
    pub namespace: Option<String>,
    /// Name for Events (`reportingInstance`), usually the pod name.
    pub instance: String,
    /// Counters for /metrics.
    pub metrics: Arc<Metrics>,
}

pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) recorder: EventRecorder,
    pub(crate) config: Config,
    /// What this operator has seen of the worker Leases (see `liveness`).
    pub(crate) leases: std::sync::Mutex<LeaseBook>,
    /// The autoscaler's samples of each topology's figures.
    pub(crate) windows: crate::autoscale::Windows,
}

/// The assignment in a topology's ConfigMap, its manifest parsed once here within the
/// operator's `limits`; `None` when there is none or it cannot be read.
pub(crate) fn current_assignment(cm: Option<ConfigMap>, limits: &Limits) -> Option<CurrentAssignment> {
    let cm = cm?;
    let name = cm.name_any();
    let data = cm.data?;
    let assignment: Assignment = serde_yaml_ng::from_str(data.get(ASSIGNMENT_KEY)?).ok()?;
    let origin = format!("configmap {name}/{MANIFEST_KEY}");
    match TopologyManifest::from_yaml_within(data.get(MANIFEST_KEY)?, &origin, limits) {
        Ok(manifest) => Some(CurrentAssignment { assignment, manifest }),
        Err(e) => {
            tracing::warn!(configmap = %name, error = %e, "the assignment's manifest cannot be read");
            None
        }
    }
}

pub(crate) async fn publish(ctx: &Context, t: &Topology, reason: &str, note: String, warning: bool) {
    let ev = Note {
        reason,
        action: "Reconcile",
        note: &note,
        warning,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &t.object_ref(&())).await {
        tracing::warn!(topology = %t.name_any(), error = %e, "publishing an event failed");
    }
}

pub(crate) async fn write_status(
    api: &Api<Topology>,
    name: &str,
    status: &TopologyStatus,
) -> Result<(), Error> {
    let patch = json!({"apiVersion": API_VERSION, "kind": KIND, "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::resources;

    #[test]
    fn a_written_configmap_reads_back_typed_within_the_limits() {
        let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  desiredState: Inactive
  config: {ratio: 0.25, nested: {list: [1, "two", 3.5e10], flag: true}}
  spouts: [{name: s, component: sequence, parallelism: 2, config: {count: 10}}]
  bolts: [{name: b, component: "null", inputs: [{from: s}]}]
"#;
        let m = TopologyManifest::from_yaml(yaml, "t").unwrap();
        let mut t = Topology::new("t", m.spec.clone());
        t.metadata.namespace = Some("ns".into());
        let plan = squall_model::validate(&m, &squall_catalog::BuiltinKinds).unwrap();
        let workers = [("t-0".to_owned(), "10.0.0.1:7000".to_owned())];
        let written = CurrentAssignment {
            assignment: Assignment::round_robin(&plan, MANIFEST_KEY.into(), &workers, 3),
            manifest: t.manifest(),
        };
        let cm = resources::configmap(&t, &written).unwrap();
        let limits = Limits::default();
        assert_eq!(current_assignment(Some(cm.clone()), &limits), Some(written));
        let tight = Limits {
            max_manifest_bytes: 16,
            ..Limits::default()
        };
        assert_eq!(current_assignment(Some(cm), &tight), None, "over the limits");
        assert_eq!(current_assignment(None, &limits), None);
    }
}
