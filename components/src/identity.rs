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
//!
//! # Guarantees
//! - MUST emit exactly one tuple per input with the same values, then ack the input.
//! - MUST fail the input (with the engine's error naming the stream and the field
//!   counts) when its arity differs from `fields`.
//! - MUST ack tick tuples without emitting them.
//! - SHOULD not copy values: the input's values are moved into the output.

use squall_engine::{Bolt, BoltOutput, ComponentError, Tuple};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

use squall_component_config::{Conf, ConfigError};

/// Kind name.
pub const KIND: &str = "identity";
const KEYS: &[&str] = &["fields"];

/// Output fields from a `fields` config key, defaulting to `[payload]`.
pub(crate) fn fields_config(conf: &Conf<'_>) -> Result<Vec<String>, ConfigError> {
    Ok(conf
        .fields_opt("fields")?
        .unwrap_or_else(|| vec!["payload".to_owned()]))
}

pub(crate) fn outputs_for(fields: &[String]) -> Vec<StreamSpec> {
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    vec![StreamSpec::new(DEFAULT_STREAM, &names)]
}

/// Parsed configuration of an `identity` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Declared output fields.
    pub fields: Vec<String>,
}

impl IdentityConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        Ok(IdentityConfig {
            fields: fields_config(&c)?,
        })
    }
}

/// The `identity` bolt.
///
/// A plain [`Bolt`] rather than a `BasicBolt`: it moves the values out of the input
/// instead of cloning them, which a `BasicBolt` (given `&Tuple`) cannot.
#[derive(Default)]
pub struct IdentityBolt;

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
        pass_through(input, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_default_to_payload_and_are_checked() {
        assert_eq!(
            IdentityConfig::parse(&Config::new()).unwrap().fields,
            vec!["payload"]
        );
        let config: Config = serde_json::from_value(serde_json::json!({"fields": ["a", "b"]})).unwrap();
        assert_eq!(
            outputs_for(&IdentityConfig::parse(&config).unwrap().fields),
            vec![StreamSpec::new("default", &["a", "b"])]
        );
        let config: Config = serde_json::from_value(serde_json::json!({"fields": []})).unwrap();
        let err = IdentityConfig::parse(&config).unwrap_err().to_string();
        assert!(
            err.contains("\"fields\"") && err.contains("non-empty list"),
            "{err}"
        );
    }
}
