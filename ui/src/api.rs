//! The JSON answers, with Storm's field names so that scripts written against Storm's UI
//! read them unchanged. Latencies and capacity are strings with three decimals, as in
//! Storm. Fields Storm does not have (`rates`, `seconds`, queue and back-pressure
//! figures) are additions that Storm clients ignore.

use serde::Serialize;

/// `GET /api/v1/cluster/summary`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSummary {
    pub storm_version: String,
    pub supervisors: u64,
    pub topologies: u64,
    pub slots_total: u64,
    pub slots_used: u64,
    pub slots_free: u64,
    pub executors_total: u64,
    pub tasks_total: u64,
    pub scheduler_display_resource: bool,
}

/// `GET /api/v1/topology/summary`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TopologySummary {
    pub topologies: Vec<TopologyRow>,
    pub scheduler_display_resource: bool,
}

/// One topology in the summary, and the head of its page.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TopologyRow {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub uptime: String,
    pub uptime_seconds: u64,
    pub tasks_total: u64,
    pub workers_total: u32,
    pub executors_total: u64,
    pub replication_count: u32,
}

/// `GET /api/v1/topology/{id}`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TopologyPage {
    #[serde(flatten)]
    pub head: TopologyRow,
    pub msg_timeout: u64,
    pub window: &'static str,
    pub window_hint: &'static str,
    pub scheduler_display_resource: bool,
    pub topology_stats: Vec<WindowStats>,
    pub spouts: Vec<SpoutRow>,
    pub bolts: Vec<BoltRow>,
}

/// The topology's figures in one window.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct WindowStats {
    pub window_pretty: &'static str,
    pub window: &'static str,
    pub emitted: u64,
    pub transferred: u64,
    pub complete_latency: String,
    pub acked: u64,
    pub failed: u64,
    /// Seconds the figures cover.
    pub seconds: f64,
    pub rates: Rates,
}

/// Tuples per second over the window.
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq)]
pub struct Rates {
    pub emitted: f64,
    pub transferred: f64,
    pub executed: f64,
    pub acked: f64,
    pub failed: f64,
}

/// Storm's last-error fields; empty strings and nulls when there is none.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub last_error: String,
    pub error_host: String,
    pub error_port: Option<u16>,
    pub error_worker_log_link: String,
    pub error_time: Option<u64>,
    pub error_lapsed_secs: Option<u64>,
}

/// A spout on the topology page.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SpoutRow {
    pub spout_id: String,
    pub encoded_spout_id: String,
    pub executors: u32,
    pub tasks: u32,
    pub emitted: u64,
    pub transferred: u64,
    pub complete_latency: String,
    pub acked: u64,
    pub failed: u64,
    #[serde(flatten)]
    pub error: LastError,
    pub pending: u64,
    pub backpressure: String,
    pub rates: Rates,
}

/// A bolt on the topology page.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BoltRow {
    pub bolt_id: String,
    pub encoded_bolt_id: String,
    pub executors: u32,
    pub tasks: u32,
    pub emitted: u64,
    pub transferred: u64,
    pub capacity: String,
    pub execute_latency: String,
    pub executed: u64,
    pub process_latency: String,
    pub acked: u64,
    pub failed: u64,
    #[serde(flatten)]
    pub error: LastError,
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub backpressure: String,
    pub rates: Rates,
}

/// `GET /api/v1/topology/{id}/component/{component}`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ComponentPage {
    pub id: String,
    pub encoded_id: String,
    pub name: String,
    pub topology_id: String,
    pub encoded_topology_id: String,
    pub topology_status: &'static str,
    pub component_type: &'static str,
    pub window: &'static str,
    pub window_hint: &'static str,
    pub executors: u32,
    pub tasks: u32,
    pub scheduler_display_resource: bool,
    pub component_errors: Vec<ComponentError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spout_summary: Option<Vec<ComponentWindowStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bolt_stats: Option<Vec<ComponentWindowStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_stats: Option<Vec<InputStats>>,
    pub output_stats: Vec<OutputStats>,
    pub executor_stats: Vec<ExecutorStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    pub queue_depth: u64,
    pub queue_capacity: u64,
}

/// An error in `componentErrors`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ComponentError {
    pub error: String,
    pub error_time: u64,
    pub error_host: String,
    pub error_port: Option<u16>,
    pub error_lapsed_secs: u64,
    pub error_worker_log_link: String,
}

/// A component's figures in one window (`spoutSummary` / `boltStats`).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ComponentWindowStats {
    pub window_pretty: &'static str,
    pub window: &'static str,
    pub emitted: u64,
    pub transferred: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_latency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execute_latency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_latency: Option<String>,
    pub acked: u64,
    pub failed: u64,
    pub seconds: f64,
    pub rates: Rates,
}

/// A bolt's figures for one input stream.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct InputStats {
    pub component: String,
    pub encoded_component_id: String,
    pub stream: String,
    pub execute_latency: String,
    pub process_latency: String,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
}

/// A component's figures for one output stream.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct OutputStats {
    pub stream: String,
    pub emitted: u64,
    pub transferred: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_latency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
}

/// One executor (or a group a source reports together) on the component page.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorStats {
    pub id: String,
    pub encoded_id: String,
    pub host: String,
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    pub uptime: String,
    pub uptime_seconds: u64,
    pub emitted: u64,
    pub transferred: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_latency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execute_latency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_latency: Option<String>,
    pub acked: u64,
    pub failed: u64,
    pub worker_log_link: String,
}

/// `GET /api/v1/topology/{id}/visualization`: the graph, with each node's figures in
/// the window, for drawing.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Visualization {
    pub topology_id: String,
    pub window: &'static str,
    pub nodes: Vec<Node>,
    pub edges: Vec<GraphEdge>,
}

/// A component in the graph.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub executors: u32,
    pub tasks: u32,
    pub capacity: String,
    /// Bolts: mean execute latency; spouts: mean complete latency (ms).
    pub latency: String,
    pub emitted: u64,
    pub transferred: u64,
    pub queue_depth: u64,
    pub queue_capacity: u64,
}

/// A subscription in the graph.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub stream: String,
    pub grouping: String,
}

/// `GET /api/v1/topology/{id}/lag`: Storm's spout lag, keyed by spout id; only spouts
/// with lag figures (Kafka spouts) are listed.
pub type TopologyLag = std::collections::BTreeMap<String, SpoutLag>;

/// One spout's lag.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SpoutLag {
    pub spout_id: String,
    /// `KAFKA`, as Storm says of its Kafka spouts.
    pub spout_type: &'static str,
    pub spout_lag_result: SpoutLagResult,
}

/// A spout's lag by topic, then partition (keys in text order, as JSON keys are text).
pub type SpoutLagResult =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, PartitionLagRow>>;

/// One partition's offsets and lag.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLagRow {
    /// `null` while the spout does not know the group's committed offset.
    pub consumer_committed_offset: Option<u64>,
    pub log_head_offset: u64,
    pub lag: u64,
}

/// The answer to an action.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ActionDone {
    pub topology_operation: &'static str,
    pub topology_id: String,
    pub status: &'static str,
}

/// Storm's error body: `error` is the status line, `errorMessage` what went wrong.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: String,
    pub error_message: String,
}
