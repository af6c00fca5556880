//! The `spec` of a `Topology` manifest.
//!
//! Counts are signed on purpose: a manifest with `parallelism: 0` or `-1` must parse so
//! that validation can report it with every other problem, instead of stopping at the
//! first type error.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Free-form configuration: a map of keys to any JSON/YAML value.
pub type Config = BTreeMap<String, serde_json::Value>;

/// The name of the stream a component emits on when it names none (Storm's `default`).
pub const DEFAULT_STREAM: &str = "default";

/// Default message timeout (Storm's `topology.message.timeout.secs`).
pub const DEFAULT_MESSAGE_TIMEOUT_SECONDS: i64 = 30;

/// A stream topology: spouts that read data, bolts that transform it, and the
/// streams and groupings that connect them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "crd", derive(kube::CustomResource))]
// Several `printcolumn(...)` entries share keys such as `type_`; that is not a duplicate.
#[cfg_attr(feature = "crd", allow(clippy::duplicated_attributes))]
#[cfg_attr(
    feature = "crd",
    kube(
        group = "squall.dev",
        version = "v1alpha1",
        kind = "Topology",
        // The derived type only describes the CRD; `crate::crd::Topology` is the object
        // read from the API server, with a deserializer that no stored object can break.
        root = "TopologyDefinition",
        namespaced,
        shortname = "topo",
        status = "crate::crd::TopologyStatus",
        doc = "A Squall stream topology run by the operator on worker pods.",
        scale(
            spec_replicas_path = ".spec.workers",
            status_replicas_path = ".status.readyWorkers",
            label_selector_path = ".status.selector"
        ),
        printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
        printcolumn(name = "Workers", type_ = "integer", json_path = ".spec.workers"),
        printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyWorkers"),
        printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
        // `kubectl get -o wide` only.
        printcolumn(name = "State", type_ = "string", json_path = ".spec.desiredState", priority = 1),
        printcolumn(name = "Assignment", type_ = "integer", json_path = ".status.assignmentGeneration", priority = 1),
        printcolumn(name = "Ackers", type_ = "integer", json_path = ".status.ackers", priority = 1),
        printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1)
    )
)]
// Server-side checks; the operator runs the deeper ones (streams, fields, kinds).
#[cfg_attr(feature = "crd", schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.workers >= 1", "message": "workers must be at least 1"},
    {"rule": "!has(self.ackers) || self.ackers >= 0", "message": "ackers must not be negative"},
    {"rule": "self.messageTimeoutSeconds >= 1", "message": "messageTimeoutSeconds must be at least 1"},
    {"rule": "!has(self.killWaitSeconds) || self.killWaitSeconds >= 0", "message": "killWaitSeconds must not be negative"},
    {"rule": "!has(self.bolts) || self.spouts.all(s, self.bolts.all(b, b.name != s.name))",
     "message": "component names must be unique across spouts and bolts"}
])))]
pub struct TopologySpec {
    /// Number of worker processes (pods) the topology runs on. Local mode runs all tasks in one process.
    #[serde(default = "one")]
    pub workers: i32,
    /// Number of acker tasks; 0 turns acking off (at-most-once). Defaults to one per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ackers: Option<i32>,
    /// Seconds a spout tuple's tree may take before it is failed and replayed.
    #[serde(default = "default_timeout")]
    pub message_timeout_seconds: i64,
    /// On deletion from a cluster, wait at most this many seconds after deactivating the
    /// spouts for in-flight trees to complete (Storm's `kill -w`); the message timeout
    /// when unset. Ignored in local mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_wait_seconds: Option<i64>,
    /// At most this many un-acked tuples per spout task; unset means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_spout_pending: Option<i64>,
    /// Send a tick tuple to every bolt task this often, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_tuple_frequency_seconds: Option<i64>,
    /// Whether spouts are asked for tuples: `Active` (default) or `Inactive`.
    #[serde(default)]
    pub desired_state: DesiredState,
    /// Free-form topology configuration, visible to every component.
    #[serde(
        default,
        skip_serializing_if = "Config::is_empty",
        deserialize_with = "crate::bounded::config"
    )]
    #[schemars(schema_with = "free_form_object")]
    pub config: Config,
    /// The sources of the topology.
    #[cfg_attr(feature = "crd", schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])))]
    pub spouts: Vec<ComponentSpec>,
    /// The processing steps of the topology.
    #[serde(default)]
    #[cfg_attr(feature = "crd", schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])))]
    pub bolts: Vec<ComponentSpec>,
    /// How worker pods run on Kubernetes; ignored outside a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSettings>,
    /// Transport security of the links between worker pods; mutual TLS when unset.
    /// Ignored outside a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// Sizing of the bolts' parallelism to their load by the operator; off when unset.
    /// Ignored outside a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

/// Default `spec.autoscaling.targetUtilization` (Flink's `job.autoscaler.utilization.target`).
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;
/// Default `spec.autoscaling.targetUtilizationBoundary`.
pub const DEFAULT_TARGET_UTILIZATION_BOUNDARY: f64 = 0.3;

/// How the operator sizes each bolt to its load: the true processing rate of an executor
/// is its input rate over its busy share; the target rate starts at the spouts' sources and
/// follows the edges; a bolt gets the target rate over the true rate per executor at the
/// target utilization, within the bounds, paced by the stabilization interval and the
/// scale-down delay.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscalingSpec {
    /// Whether the operator evaluates the topology's load at all.
    #[serde(default)]
    pub enabled: bool,
    /// Decide and report (status, Events, metrics) but change nothing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub metrics_only: bool,
    /// Busy share each executor is sized to run at, in (0, 1].
    #[serde(default = "target_utilization")]
    pub target_utilization: f64,
    /// No change while the utilization at the target rate is within this distance of the
    /// target, in [0, 1).
    #[serde(default = "target_utilization_boundary")]
    pub target_utilization_boundary: f64,
    /// Fewest executors of a bolt.
    #[serde(default = "one")]
    pub min_parallelism: i32,
    /// Most executors of a bolt.
    #[serde(default = "max_parallelism")]
    pub max_parallelism: i32,
    /// Most worker pods the topology may grow to; `workers` when unset (no growth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_workers: Option<i32>,
    /// Executors per worker above which a worker is added (up to `maxWorkers`).
    #[serde(default = "max_executors_per_worker")]
    pub max_executors_per_worker: i32,
    /// Seconds of figures each decision is made on.
    #[serde(default = "metrics_window")]
    pub metrics_window_seconds: i64,
    /// Seconds a component keeps a new parallelism before it may change again.
    #[serde(default = "stabilization_interval")]
    pub stabilization_interval_seconds: i64,
    /// Seconds a smaller parallelism must be recommended without a break before it is applied.
    #[serde(default = "scale_down_delay")]
    pub scale_down_delay_seconds: i64,
    /// Seconds within which a spout's source backlog (a live feed's buffer, a Kafka
    /// spout's lag) is to be worked off.
    #[serde(default = "catch_up_duration")]
    pub catch_up_duration_seconds: i64,
    /// Bounds of single components, overriding `minParallelism` and `maxParallelism`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "crd", schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])))]
    pub components: Vec<ComponentAutoscaling>,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        AutoscalingSpec {
            enabled: false,
            metrics_only: false,
            target_utilization: DEFAULT_TARGET_UTILIZATION,
            target_utilization_boundary: DEFAULT_TARGET_UTILIZATION_BOUNDARY,
            min_parallelism: 1,
            max_parallelism: max_parallelism(),
            max_workers: None,
            max_executors_per_worker: max_executors_per_worker(),
            metrics_window_seconds: metrics_window(),
            stabilization_interval_seconds: stabilization_interval(),
            scale_down_delay_seconds: scale_down_delay(),
            catch_up_duration_seconds: catch_up_duration(),
            components: Vec::new(),
        }
    }
}

/// One component's own bounds.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentAutoscaling {
    /// The bolt.
    #[cfg_attr(feature = "crd", schemars(length(min = 1, max = 128)))]
    pub name: String,
    /// Its fewest executors; the topology's `minParallelism` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_parallelism: Option<i32>,
    /// Its most executors; the topology's `maxParallelism` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<i32>,
}

fn target_utilization() -> f64 {
    DEFAULT_TARGET_UTILIZATION
}

fn target_utilization_boundary() -> f64 {
    DEFAULT_TARGET_UTILIZATION_BOUNDARY
}

fn max_parallelism() -> i32 {
    200
}

fn max_executors_per_worker() -> i32 {
    64
}

fn metrics_window() -> i64 {
    900
}

fn stabilization_interval() -> i64 {
    300
}

fn scale_down_delay() -> i64 {
    3600
}

fn catch_up_duration() -> i64 {
    1800
}

/// Transport security of a topology's worker links on Kubernetes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSettings {
    /// `Mutual` (default): the operator gives every worker a certificate of the
    /// topology's own CA, and workers accept only peers of the same topology.
    /// `Disabled`: plaintext links.
    #[serde(default)]
    pub mode: TlsMode,
}

/// Whether worker links use mutual TLS.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Mutual TLS with per-topology certificates.
    #[default]
    Mutual,
    /// Plaintext.
    Disabled,
}

impl TopologySpec {
    /// The links' mode: mutual TLS unless the spec turns it off.
    pub fn tls_mode(&self) -> TlsMode {
        self.tls.as_ref().map(|t| t.mode).unwrap_or_default()
    }
}

/// Settings of the worker pods on Kubernetes. Free-form parts are passed to the pod spec
/// as they are, so they follow the cluster's own schema.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSettings {
    /// Worker container image; the operator's configured default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy (`Always`, `IfNotPresent`, `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Container resources (`requests`, `limits`), as in a pod spec.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::bounded::object_opt"
    )]
    #[schemars(schema_with = "free_form_object")]
    pub resources: Option<serde_json::Map<String, serde_json::Value>>,
    /// Node selector of the worker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the worker pods, as in a pod spec.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::bounded::objects"
    )]
    #[schemars(schema_with = "free_form_objects")]
    pub tolerations: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Extra labels on the worker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Service account of the worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Whether the topology's spouts run.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DesiredState {
    /// Spouts are asked for tuples.
    #[default]
    Active,
    /// Spouts are deactivated; in-flight trees still complete.
    Inactive,
}

/// A spout or a bolt.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "crd", schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.parallelism >= 1", "message": "parallelism must be at least 1"},
    {"rule": "!has(self.tasks) || self.tasks >= self.parallelism", "message": "tasks must be at least parallelism"},
    {"rule": "self.component == oldSelf.component",
     "message": "component is immutable: give a component of another kind a new name"},
    {"rule": "has(self.shell) == has(oldSelf.shell) && (!has(self.shell) || self.shell.command == oldSelf.shell.command)",
     "message": "shell.command is immutable: give another program a new component name"}
])))]
pub struct ComponentSpec {
    /// Unique component name within the topology.
    #[cfg_attr(feature = "crd", schemars(length(min = 1, max = 128)))]
    pub name: String,
    /// The component kind: a built-in name (`squall kinds` lists them) or `shell`.
    /// Immutable under the same name on a cluster: another kind under an old name would
    /// inherit the old one's subscribers, metrics and in-flight tuples, whose fields it may
    /// not declare; rename the component to replace it.
    #[cfg_attr(feature = "crd", schemars(length(min = 1, max = 128)))]
    pub component: String,
    /// The subprocess to run when `component` is `shell` (Storm's multilang protocol).
    /// Its `command` is immutable under the same name, for the same reason as `component`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<ShellSpec>,
    /// Number of executors (threads) running this component.
    #[serde(default = "one")]
    pub parallelism: i32,
    /// Number of tasks (instances); at least `parallelism`. Defaults to `parallelism`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<i32>,
    /// Component configuration, passed to the component when it starts.
    #[serde(
        default,
        skip_serializing_if = "Config::is_empty",
        deserialize_with = "crate::bounded::config"
    )]
    #[schemars(schema_with = "free_form_object")]
    pub config: Config,
    /// Declared output streams. Built-in components have defaults; shell components must declare theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<StreamSpec>,
    /// Bolts only: the streams this bolt subscribes to, each with its grouping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputSpec>,
    /// Overrides the topology's tick tuple frequency for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_tuple_frequency_seconds: Option<i64>,
}

impl ComponentSpec {
    /// Number of tasks this component runs.
    pub fn task_count(&self) -> i32 {
        self.tasks.unwrap_or(self.parallelism)
    }
}

/// A subprocess speaking Storm's multilang protocol.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShellSpec {
    /// The program to run, e.g. `python3`.
    #[cfg_attr(feature = "crd", schemars(length(min = 1, max = 1024)))]
    pub command: String,
    /// Its arguments, e.g. the path of the component's script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory; defaults to the directory of the topology file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// How messages are encoded on the child's pipes: `json` (the default, and all that
    /// Storm's `storm.py` speaks) or `msgpack` (pystorm and streamparse; the host passes
    /// `--serializer msgpack` to a `streamparse_run` command).
    #[serde(default, skip_serializing_if = "Serializer::is_json")]
    pub serializer: Serializer,
}

/// The program that runs streamparse components and takes `--serializer`.
pub const STREAMPARSE_RUN: &str = "streamparse_run";

impl ShellSpec {
    /// Whether the command is `streamparse_run` (by that file name, bare or by path).
    pub fn runs_streamparse(&self) -> bool {
        std::path::Path::new(&self.command)
            .file_name()
            .is_some_and(|n| n == STREAMPARSE_RUN)
    }

    /// The serializer `args` choose with `-s NAME`, `--serializer NAME` or
    /// `--serializer=NAME` (the last one wins, as in argparse).
    pub fn args_serializer(&self) -> Option<&str> {
        let mut given = None;
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a == "-s" || a == "--serializer" {
                given = it.next().map(String::as_str);
            } else if let Some(v) = a.strip_prefix("--serializer=") {
                given = Some(v);
            }
        }
        given
    }
}

/// The encoding of multilang messages between a shell component's host and its child.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Serializer {
    /// JSON text, each message followed by a line `end` (Storm's multilang default).
    #[default]
    Json,
    /// MessagePack objects back to back, with no delimiter (pystorm's `msgpack`).
    Msgpack,
}

impl Serializer {
    /// Whether this is the default, JSON.
    pub fn is_json(&self) -> bool {
        *self == Serializer::Json
    }

    /// The name as a manifest and `streamparse_run --serializer` spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::Msgpack => "msgpack",
        }
    }
}

/// An output stream a component declares.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamSpec {
    /// Stream name; `default` when omitted.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Field names of the stream's tuples, in order.
    pub fields: Vec<String>,
    /// A direct stream can only be consumed with `direct` grouping.
    #[serde(default, skip_serializing_if = "is_false")]
    pub direct: bool,
}

impl StreamSpec {
    /// A non-direct stream with the given name and fields.
    pub fn new(stream: &str, fields: &[&str]) -> Self {
        StreamSpec {
            stream: stream.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            direct: false,
        }
    }
}

/// A bolt's subscription to one stream of another component.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputSpec {
    /// The component (spout or bolt) whose stream is consumed.
    pub from: String,
    /// The stream consumed; `default` when omitted.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// How tuples are spread over this bolt's tasks; shuffle when omitted.
    #[serde(default)]
    pub grouping: GroupingSpec,
}

/// A stream grouping.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupingSpec {
    /// The grouping kind.
    #[serde(rename = "type")]
    pub kind: GroupingKind,
    /// Grouping fields, for `fields` and `partialKey` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Storm's stream groupings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub enum GroupingKind {
    /// Round-robin over the consumer's tasks: each gets an equal share.
    #[default]
    Shuffle,
    /// Tuples with equal values of the grouping fields go to the same task.
    Fields,
    /// Like `fields`, but each key is balanced over two candidate tasks for skewed keys.
    PartialKey,
    /// Every task receives every tuple.
    All,
    /// The whole stream goes to the consumer's task with the lowest id.
    Global,
    /// No preference; currently a uniformly random task.
    None,
    /// The producer chooses the task (`emit_direct`); the stream must be declared direct.
    Direct,
    /// Tasks in the same worker process if there are any, else shuffle.
    LocalOrShuffle,
}

impl GroupingKind {
    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupingKind::Shuffle => "shuffle",
            GroupingKind::Fields => "fields",
            GroupingKind::PartialKey => "partialKey",
            GroupingKind::All => "all",
            GroupingKind::Global => "global",
            GroupingKind::None => "none",
            GroupingKind::Direct => "direct",
            GroupingKind::LocalOrShuffle => "localOrShuffle",
        }
    }

    /// Whether the grouping selects tasks by field values.
    pub fn uses_fields(self) -> bool {
        matches!(self, GroupingKind::Fields | GroupingKind::PartialKey)
    }
}

/// An object the API server keeps as it is, nested objects and lists included: with
/// `additionalProperties` set, the server would prune fields of nested objects.
fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of objects whose fields the API server keeps as they are (structural schemas
/// need a type on every item).
fn free_form_objects(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

fn one() -> i32 {
    1
}

fn default_timeout() -> i64 {
    DEFAULT_MESSAGE_TIMEOUT_SECONDS
}

fn default_stream() -> String {
    DEFAULT_STREAM.to_owned()
}

fn is_false(b: &bool) -> bool {
    !*b
}
