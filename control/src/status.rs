//! What a worker reports about itself on `GET /status`, as JSON: the operator's drain,
//! kill and activation checks read it, so they need neither the Prometheus page nor its
//! parser.

use serde::{Deserialize, Serialize};

/// Where a worker serves its [`WorkerStatus`], on its HTTP port.
pub const STATUS_PATH: &str = "/status";

/// The most a reader needs to take of a status body: it is a few hundred bytes, so
/// anything longer is not a worker's answer.
pub const MAX_STATUS_BYTES: usize = 64 << 10;

/// Messages a worker's data plane dropped, by reason. Each one's tree fails by timeout at
/// its spout and is replayed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropCounts {
    /// No process serves the message's task now.
    pub no_route: u64,
    /// Received while this worker's engine was replaced.
    pub engine_restart: u64,
    /// Encoded for a peer that left the assignment before its frame was handed over.
    pub peer_removed: u64,
}

/// A worker's state, as far as the operator steers it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// The worker's id in the assignment.
    pub worker: String,
    /// The topology it runs.
    pub topology: String,
    /// Generation of the assignment last applied: the one the running engine has.
    pub generation: u64,
    /// Whether an engine runs this worker's tasks. Between engines (a restart, or a start
    /// that failed) it is false and `active` and `in_flight` mean nothing, so that gap
    /// never reads as "drained".
    pub engine_running: bool,
    /// Whether the engine's spouts are active.
    pub active: bool,
    /// Spout trees pending plus tuples queued on this worker.
    pub in_flight: u64,
    /// Engines started by this process: activation and reroutes do not add to it.
    pub engine_starts: u64,
    /// Messages the data plane dropped, by reason.
    pub drops: DropCounts,
}

impl WorkerStatus {
    /// Runs an engine on assignment `generation` or later.
    pub fn running(&self, generation: u64) -> bool {
        self.engine_running && self.generation >= generation
    }

    /// Runs an engine on assignment `generation` or later with its spouts off and nothing
    /// in flight.
    pub fn drained(&self, generation: u64) -> bool {
        self.running(generation) && !self.active && self.in_flight == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn status(active: bool, in_flight: u64) -> WorkerStatus {
        WorkerStatus {
            worker: "t-0".into(),
            topology: "t".into(),
            generation: 4,
            engine_running: true,
            active,
            in_flight,
            ..WorkerStatus::default()
        }
    }

    #[test]
    fn drained_and_running_read_generation_activation_and_in_flight() {
        assert!(status(false, 0).drained(4) && status(false, 0).drained(3));
        assert!(
            !status(false, 0).drained(5),
            "the deactivation has not reached it yet"
        );
        assert!(!status(true, 0).drained(4), "active spouts keep emitting");
        assert!(!status(false, 3).drained(4), "trees still in flight");
        let between = WorkerStatus {
            engine_running: false,
            ..status(false, 0)
        };
        assert!(
            !between.drained(4) && !between.running(4),
            "a worker between engines"
        );
        assert!(status(true, 7).running(4) && !status(true, 7).running(5));
    }

    #[test]
    fn the_json_is_camel_case_and_reads_back() {
        let s = status(true, 2);
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"engineRunning\":true") && text.contains("\"inFlight\":2"));
        assert!(text.contains("\"noRoute\":0"));
        assert_eq!(serde_json::from_str::<WorkerStatus>(&text).unwrap(), s);
    }
}
