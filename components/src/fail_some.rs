//! `fail-some`: a **test helper** that fails or panics on a share of its inputs, for
//! exercising at-least-once processing (replays, task restarts). Not for production.
//!
//! # Emits
//! - `default` stream, fields from config `fields`: inputs that pass are re-emitted
//!   unchanged, anchored, like `identity`.
//!
//! # Config
//! - `fail_percent` (number 0–100, default 10): share of inputs failed (explicitly, so
//!   the spout replays them at once).
//! - `panic_percent` (number 0–100, default 0): share of inputs on which `execute`
//!   panics, which fails the input and restarts the task.
//! - `seed` (non-negative integer, default 0): the decisions are a pseudo-random
//!   sequence from `seed` and the task index, the same on every run (a restarted task
//!   starts its sequence again). Decisions do not depend on the tuple, so a replayed
//!   tuple eventually passes.
//! - `fields` (list of field names, default `[payload]`): declared output fields.
//!
//! # Guarantees
//! - MUST, for each input, do exactly one of: fail it, panic, or emit it and ack it.
//! - `fail_percent + panic_percent` MUST be at most 100.
//! - Tick tuples are acked, never failed.

use squall_engine::{Bolt, BoltOutput, ComponentError, TaskContext, Tuple};

pub use squall_catalog::fail_some::{FailSomeConfig, KIND};

use crate::identity::pass_through;
use crate::ids::{mix64, SplitMix};

/// Decisions are drawn in millionths: percent × 10 000.
const SCALE: u64 = 1_000_000;

/// What to do with one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pass,
    Fail,
    Panic,
}

/// The `fail-some` bolt.
pub struct FailSomeBolt {
    fail_below: u64,
    panic_below: u64,
    seed: u64,
    rng: SplitMix,
}

impl FailSomeBolt {
    /// A bolt with this configuration.
    pub fn new(config: &FailSomeConfig) -> Self {
        let fail_below = (config.fail_percent * 10_000.0).round() as u64;
        FailSomeBolt {
            fail_below,
            panic_below: fail_below + (config.panic_percent * 10_000.0).round() as u64,
            seed: config.seed,
            rng: SplitMix::new(config.seed),
        }
    }

    fn fate(&mut self) -> Fate {
        let r = self.rng.next_u64() % SCALE;
        if r < self.fail_below {
            Fate::Fail
        } else if r < self.panic_below {
            Fate::Panic
        } else {
            Fate::Pass
        }
    }
}

impl Bolt for FailSomeBolt {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        // Tasks of one component draw different sequences.
        self.rng = SplitMix::new(self.seed ^ mix64(ctx.task_index as u64));
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            out.ack(input);
            return Ok(());
        }
        match self.fate() {
            Fate::Pass => pass_through(input, out),
            Fate::Fail => {
                out.fail(input);
                Ok(())
            }
            Fate::Panic => panic!("fail-some: deliberate panic (test helper, panic_percent > 0)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::Config;

    fn bolt(config: serde_json::Value) -> FailSomeBolt {
        let config: Config = serde_json::from_value(config).unwrap();
        FailSomeBolt::new(&FailSomeConfig::parse(&config).unwrap())
    }

    #[test]
    fn shares_are_close_to_the_configured_percentages_and_deterministic() {
        let mut a = bolt(serde_json::json!({"fail_percent": 10, "panic_percent": 5, "seed": 3}));
        let fates: Vec<Fate> = (0..100_000).map(|_| a.fate()).collect();
        let fails = fates.iter().filter(|f| **f == Fate::Fail).count();
        let panics = fates.iter().filter(|f| **f == Fate::Panic).count();
        assert!((9_000..11_000).contains(&fails), "{fails}");
        assert!((4_000..6_000).contains(&panics), "{panics}");
        let mut b = bolt(serde_json::json!({"fail_percent": 10, "panic_percent": 5, "seed": 3}));
        assert!(fates.iter().all(|f| *f == b.fate()));
    }

    #[test]
    fn zero_percent_always_passes_and_sum_is_bounded() {
        let mut b = bolt(serde_json::json!({"fail_percent": 0}));
        assert!((0..10_000).all(|_| b.fate() == Fate::Pass));
        let config: Config =
            serde_json::from_value(serde_json::json!({"fail_percent": 60, "panic_percent": 50})).unwrap();
        let err = FailSomeConfig::parse(&config).unwrap_err().to_string();
        assert!(err.contains("\"panic_percent\""), "{err}");
    }
}
