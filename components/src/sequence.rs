//! `sequence`: emits the integers `0, 1, 2, ...`.
//!
//! # Emits
//! - `default` stream, fields `[n]`: an integer, one per `next_tuple`.
//!
//! # Config
//! - `count` (non-negative integer, optional): emit `0..count`, split over the
//!   component's tasks (task *i* of *k* emits the numbers ≡ *i* mod *k*); unset means forever.
//! - `reliable` (bool, default `true`): emit with the number as message id.
//!
//! # Guarantees
//! - MUST emit every number of `0..count` at least once (exactly once without failures).
//! - MUST re-emit a failed number (before new ones) when `reliable`.
//! - MUST report finished only once every number was emitted and, when `reliable`,
//!   every tree was acked.
//! - After a restart of the task the numbers start again from the beginning (at-least-once).

use squall_engine::{Value, Values};

pub use squall_catalog::sequence::{SequenceConfig, KIND};

use crate::ids::IdSource;

/// The `sequence` spout.
pub struct SequenceSpout {
    ids: IdSource,
}

impl SequenceSpout {
    /// A spout with this configuration.
    pub fn new(config: &SequenceConfig) -> Self {
        SequenceSpout {
            ids: IdSource::new(config.count, config.reliable),
        }
    }

    fn next_values(&mut self) -> Option<(Values, Option<Value>)> {
        let (n, msg_id) = self.ids.next()?;
        let mut v = Values::new();
        v.push(Value::from(n));
        Some((v, msg_id))
    }
}

crate::ids::id_spout!(SequenceSpout);

#[cfg(test)]
mod tests {
    use super::*;
    use squall_engine::Spout;
    use squall_model::Config;

    #[test]
    fn emits_numbers_and_replays_failures() {
        let config: Config = serde_json::from_value(serde_json::json!({"count": 3})).unwrap();
        let mut s = SequenceSpout::new(&SequenceConfig::parse(&config).unwrap());
        let got: Vec<i64> =
            std::iter::from_fn(|| s.next_values().map(|(v, _)| v[0].as_i64().unwrap())).collect();
        assert_eq!(got, vec![0, 1, 2]);
        s.ack(Value::Int(0));
        s.ack(Value::Int(2));
        s.fail(Value::Int(1));
        let (v, id) = s.next_values().unwrap();
        assert_eq!((v[0].as_i64(), id), (Some(1), Some(Value::Int(1))));
        assert!(!s.is_finished(), "1 is in flight again");
        s.ack(Value::Int(1));
        assert!(s.is_finished());
    }

    #[test]
    fn count_must_be_an_integer() {
        let config: Config = serde_json::from_value(serde_json::json!({"count": "x"})).unwrap();
        let err = SequenceConfig::parse(&config).unwrap_err().to_string();
        assert_eq!(
            err,
            "config key \"count\": expected a non-negative integer, got \"x\""
        );
    }
}
