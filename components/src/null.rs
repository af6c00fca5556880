//! `null`: acks and drops every input (a sink for benchmarks and tests).
//!
//! # Emits
//! Nothing; declares no streams.
//!
//! # Config
//! None.
//!
//! # Guarantees
//! - MUST ack every input, at once, and do nothing else.

use squall_engine::{Bolt, BoltOutput, ComponentError, Tuple};
use squall_model::{Config, StreamSpec};

use squall_component_config::{Conf, ConfigError};

/// Kind name.
pub const KIND: &str = "null";

pub(crate) fn check(config: &Config) -> Result<(), ConfigError> {
    Conf::new(KIND, config, &[]).map(|_| ())
}

pub(crate) fn outputs() -> Vec<StreamSpec> {
    Vec::new()
}

/// The `null` bolt.
#[derive(Default)]
pub struct NullBolt;

impl Bolt for NullBolt {
    #[inline]
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        out.ack(input);
        Ok(())
    }
}
