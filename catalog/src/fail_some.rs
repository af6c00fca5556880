//! `fail-some`'s configuration (the test-helper bolt is `squall_components::fail_some`).

use squall_component_config::{Conf, ConfigError};
use squall_model::Config;

use crate::identity::fields_config;

/// Kind name.
pub const KIND: &str = "fail-some";
const KEYS: &[&str] = &["fail_percent", "panic_percent", "seed", "fields"];

/// Parsed configuration of a `fail-some` bolt.
#[derive(Clone, Debug, PartialEq)]
pub struct FailSomeConfig {
    /// Share of inputs failed, in percent.
    pub fail_percent: f64,
    /// Share of inputs that panic, in percent.
    pub panic_percent: f64,
    /// Seed of the decisions.
    pub seed: u64,
    /// Declared output fields.
    pub fields: Vec<String>,
}

impl FailSomeConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        let parsed = FailSomeConfig {
            fail_percent: c.percent_or("fail_percent", 10.0)?,
            panic_percent: c.percent_or("panic_percent", 0.0)?,
            seed: c.u64_or("seed", 0)?,
            fields: fields_config(&c)?,
        };
        if parsed.fail_percent + parsed.panic_percent > 100.0 {
            return Err(ConfigError::Invalid {
                key: "panic_percent".to_owned(),
                expected: "at most 100 minus fail_percent".to_owned(),
                got: parsed.panic_percent.to_string(),
            });
        }
        Ok(parsed)
    }
}
