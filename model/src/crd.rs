//! The `Topology` custom resource and the status the operator writes.
//!
//! The CRD's schema is derived from [`TopologySpec`] ([`TopologyDefinition`]). The object
//! the operator reads is [`Topology`], whose deserializer holds for anything the API
//! server stores: free-form values are read to a bounded depth (see `bounded`), and
//! `metadata.managedFields` (which mirrors the spec's nesting, and which the operator
//! never reads) is skipped, so no stored object can make a list of Topologies unreadable.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::spec::TopologyDefinition;
use crate::spec::TopologySpec;

/// A Topology object as stored by the API server.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// Object metadata (without `managedFields`, which are not read).
    pub metadata: ObjectMeta,
    /// The topology.
    pub spec: TopologySpec,
    /// What the operator last wrote.
    pub status: Option<TopologyStatus>,
}

impl Topology {
    /// A new object with this name and spec.
    pub fn new(name: &str, spec: TopologySpec) -> Self {
        Topology {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

impl Topology {
    /// The manifest its workers run: the spec under local metadata (name and namespace).
    pub fn manifest(&self) -> crate::TopologyManifest {
        crate::TopologyManifest {
            api_version: crate::API_VERSION.to_owned(),
            kind: crate::KIND.to_owned(),
            metadata: crate::Metadata {
                name: self.metadata.name.clone().unwrap_or_default(),
                namespace: self.metadata.namespace.clone(),
                ..crate::Metadata::default()
            },
            spec: self.spec.clone(),
            status: None,
        }
    }
}

/// Validates a stored spec (`manifest`, and `yaml`, the text its workers will read) within
/// `limits`: its size first, then every count, so nothing sized by the spec's numbers is
/// built before they are checked. The error is the text for `status.lastError`.
pub fn plan_stored(
    manifest: &crate::TopologyManifest,
    yaml: &str,
    catalog: &dyn crate::Catalog,
    limits: &crate::Limits,
) -> Result<crate::Plan, String> {
    if yaml.len() as u64 > limits.max_manifest_bytes {
        let problem = crate::Problem {
            path: "spec".into(),
            message: limits.exceeded(
                crate::LimitKey::ManifestBytes,
                format!("a manifest of {} bytes", yaml.len()),
            ),
        };
        return Err(crate::ValidationErrors(vec![problem]).to_string());
    }
    crate::validate_within(manifest, catalog, limits).map_err(|e| e.to_string())
}

impl kube::Resource for Topology {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        crate::KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        crate::GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        crate::VERSION.into()
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        crate::API_VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "topologies".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Serialize for Topology {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            api_version: &'static str,
            kind: &'static str,
            metadata: &'a ObjectMeta,
            spec: &'a TopologySpec,
            #[serde(skip_serializing_if = "Option::is_none")]
            status: &'a Option<TopologyStatus>,
        }
        Out {
            api_version: crate::API_VERSION,
            kind: crate::KIND,
            metadata: &self.metadata,
            spec: &self.spec,
            status: &self.status,
        }
        .serialize(s)
    }
}

/// `ObjectMeta` less `managedFields`: an unknown field, so serde skips it without
/// building it (and serde_json without recursing into it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredMeta {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

impl<'de> Deserialize<'de> for Topology {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            metadata: StoredMeta,
            spec: TopologySpec,
            #[serde(default)]
            status: Option<TopologyStatus>,
        }
        let Stored {
            metadata: m,
            spec,
            status,
        } = Stored::deserialize(d)?;
        Ok(Topology {
            metadata: ObjectMeta {
                annotations: m.annotations,
                creation_timestamp: m.creation_timestamp,
                deletion_grace_period_seconds: m.deletion_grace_period_seconds,
                deletion_timestamp: m.deletion_timestamp,
                finalizers: m.finalizers,
                generate_name: m.generate_name,
                generation: m.generation,
                labels: m.labels,
                managed_fields: None,
                name: m.name,
                namespace: m.namespace,
                owner_references: m.owner_references,
                resource_version: m.resource_version,
                self_link: m.self_link,
                uid: m.uid,
            },
            spec,
            status,
        })
    }
}

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
    /// Acker tasks of the spec's plan (`spec.ackers`, or its default of one per worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ackers: Option<i32>,
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
    /// The worker links' mode in the pods' template: `Mutual` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::spec::TlsMode>,
    /// What the autoscaler measured and decided, when `spec.autoscaling` is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
}

/// The autoscaler's last evaluation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// `Scaling`, or `MetricsOnly` (decides, changes nothing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// RFC 3339 time of the last evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<String>,
    /// Rebalances the autoscaler has made.
    #[serde(default)]
    pub rebalances: i64,
    /// Per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentAutoscalerStatus>,
}

/// One component as the autoscaler last saw it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentAutoscalerStatus {
    /// The component.
    pub name: String,
    /// Its parallelism in the spec.
    pub current: i32,
    /// What the autoscaler recommends now.
    pub recommended: i32,
    /// The parallelism the autoscaler last wrote into the spec; when the spec holds
    /// another, the user changed it, and the autoscaler starts again from the user's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<i32>,
    /// Target rate over what its executors take at their true rate, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_percent: Option<i64>,
    /// Tuples per second one executor takes when busy all the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_rate: Option<i64>,
    /// Tuples per second it must be able to take (spouts: their source's rate).
    #[serde(default)]
    pub target_rate: i64,
    /// `ScaleUp`, `ScaleDown`, `Recommended` (metrics only) or `Hold`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_decision: String,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// RFC 3339 time its parallelism last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// RFC 3339 time since which a smaller parallelism has been recommended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_since: Option<String>,
}
