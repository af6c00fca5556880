//! `identity`: re-emits each input unchanged.
//!
//! # Emits
//! - `default` stream, fields from config `fields`: the input's values, in order,
//!   anchored to the input.
//!
//! # Config
//! - `fields` (list of field names, default `[payload]`): the declared output fields. The
//!   catalog cannot see the input's schema, so they are declared here; they must have as
//!   many names as the input has values.
//! - `cost_micros` (default 0, at most a second): each input first costs this long (the
//!   executor sleeps), so a bolt that cannot keep up at parallelism 1 is one line of
//!   config; with a cost the executor gets a thread of its own, as a blocking kind does.
//!
//! # Guarantees
//! - MUST emit exactly one tuple per input with the same values, then ack the input.
//! - MUST fail the input (with the engine's error naming the stream and the field
//!   counts) when its arity differs from `fields`.
//! - MUST ack tick tuples without emitting them.
//! - SHOULD not copy values: the input's values are moved into the output.

use squall_engine::{Bolt, BoltOutput, ComponentError, Tuple};

pub use squall_catalog::identity::{IdentityConfig, KIND};

/// The `identity` bolt.
///
/// A plain [`Bolt`] rather than a `BasicBolt`: it moves the values out of the input
/// instead of cloning them, which a `BasicBolt` (given `&Tuple`) cannot.
#[derive(Default)]
pub struct IdentityBolt {
    cost: Option<std::time::Duration>,
}

impl IdentityBolt {
    /// The bolt as `config` says.
    pub fn new(config: &IdentityConfig) -> Self {
        IdentityBolt {
            cost: (config.cost_micros > 0).then(|| std::time::Duration::from_micros(config.cost_micros)),
        }
    }
}

/// Re-emits `input` anchored to itself and acks it; fails it if the emit is refused.
pub(crate) fn pass_through(mut input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
    if input.is_tick() {
        out.ack(input);
        return Ok(());
    }
    let values = input.take_values();
    match out.emit(&[&input], values) {
        Ok(_) => {
            out.ack(input);
            Ok(())
        }
        Err(e) => {
            // Fail now rather than leave the tree to time out.
            out.fail(input);
            Err(e)
        }
    }
}

impl Bolt for IdentityBolt {
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if let Some(cost) = self.cost.filter(|_| !input.is_tick()) {
            std::thread::sleep(cost);
        }
        pass_through(input, out)
    }
}
