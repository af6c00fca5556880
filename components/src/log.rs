//! `log`: logs tuples at info level through `tracing` and acks them.
//!
//! # Emits
//! Nothing; declares no streams.
//!
//! # Config
//! - `every` (positive integer, default 1): log one tuple in this many (the 1st, the
//!   `every + 1`th, ...); the others are acked silently.
//!
//! # Guarantees
//! - MUST ack every input.
//! - MUST log the sampled tuples with the component, task, source component, stream,
//!   field names and values as structured fields.
//! - Tick tuples are acked and not logged.

use squall_engine::{Basic, BasicBolt, Bolt, BoltOutput, ComponentError, TaskContext, Tuple};
use tracing::info;

pub use squall_catalog::log::{LogConfig, KIND};

/// The `log` bolt.
pub struct LogBolt {
    every: u64,
    seen: u64,
    component: String,
    task: u32,
}

impl LogBolt {
    /// A bolt with this configuration.
    pub fn new(config: &LogConfig) -> Self {
        LogBolt {
            every: config.every,
            seen: 0,
            component: String::new(),
            task: 0,
        }
    }

    /// As a [`Bolt`].
    pub fn boxed(self) -> Box<dyn Bolt> {
        Box::new(Basic(self))
    }

    /// Whether the next tuple is one to log.
    fn sample(&mut self) -> bool {
        // A countdown rather than `%`: one compare per tuple.
        let hit = self.seen == 0;
        self.seen = if hit { self.every - 1 } else { self.seen - 1 };
        hit
    }
}

impl BasicBolt for LogBolt {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.component = ctx.component.clone();
        self.task = ctx.task_id;
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, _out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if !input.is_tick() && self.sample() {
            info!(
                component = %self.component,
                task = self.task,
                source = input.source_component(),
                stream = input.source_stream(),
                fields = ?input.fields(),
                values = ?input.values(),
                "tuple"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::Config;

    #[test]
    fn logs_one_in_every() {
        let config: Config = serde_json::from_value(serde_json::json!({"every": 3})).unwrap();
        let mut b = LogBolt::new(&LogConfig::parse(&config).unwrap());
        let hits: Vec<bool> = (0..7).map(|_| b.sample()).collect();
        assert_eq!(hits, [true, false, false, true, false, false, true]);
    }

    #[test]
    fn every_must_be_positive() {
        let config: Config = serde_json::from_value(serde_json::json!({"every": 0})).unwrap();
        assert!(LogConfig::parse(&config)
            .unwrap_err()
            .to_string()
            .contains("positive"));
    }
}
