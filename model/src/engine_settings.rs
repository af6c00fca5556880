//! Engine settings a topology may set in `spec.config`: their keys, and the check that
//! a value set there is one the engine can use (a wrong type is an error naming the
//! key, not a silently applied default).

use crate::spec::Config;
use crate::validate::Checker;

/// Bound of each executor's receive queue, in messages (a positive integer).
pub const QUEUE_CAPACITY: &str = "squall.queue.capacity";
/// Messages per batch handed to a queue (a positive integer).
pub const BATCH_SIZE: &str = "squall.batch.size";
/// Threads shared by the cooperative executors (0: one per core).
pub const EXECUTOR_THREADS: &str = "squall.executor.threads";
/// Whether the shared pool runs on as few threads as the load needs (true or false).
pub const EXECUTOR_ELASTIC: &str = "squall.executor.elastic";

/// Adds a problem for each engine setting in `config` whose value the engine cannot use.
pub(crate) fn check(c: &mut Checker, config: &Config) {
    let path = |key: &str| format!("spec.config.{key}");
    for (key, least) in [(QUEUE_CAPACITY, 1), (BATCH_SIZE, 1), (EXECUTOR_THREADS, 0)] {
        if let Some(v) = config.get(key) {
            if v.as_u64().is_none_or(|n| n < least) {
                let want = if least == 0 {
                    "a non-negative integer"
                } else {
                    "a positive integer"
                };
                c.add(path(key), format!("must be {want}, got {}", shown(v)));
            }
        }
    }
    if let Some(v) = config.get(EXECUTOR_ELASTIC) {
        if !v.is_boolean() {
            c.add(
                path(EXECUTOR_ELASTIC),
                format!("must be true or false, got {}", shown(v)),
            );
        }
    }
}

/// A value as a message shows it: its JSON, cut short when long.
fn shown(v: &serde_json::Value) -> String {
    crate::limits::shorten(&v.to_string(), 40)
}
