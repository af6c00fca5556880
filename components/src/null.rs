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

pub use squall_catalog::null::KIND;

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
