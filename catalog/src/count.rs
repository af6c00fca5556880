//! `count`'s configuration (the bolt is `squall_components::count`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "count";
const KEYS: &[&str] = &["key"];
/// The key field when `key` is not set.
pub const DEFAULT_KEY: &str = "word";

/// Parsed configuration of a `count` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountConfig {
    /// The key field, if configured.
    pub key: Option<String>,
}

impl CountConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        Ok(CountConfig {
            key: c.field_opt("key")?,
        })
    }

    /// Name of the key field in the output.
    pub fn key_name(&self) -> &str {
        self.key.as_deref().unwrap_or(DEFAULT_KEY)
    }
}

/// Default output streams: the first field is named after the key.
pub fn outputs(config: &CountConfig) -> Vec<StreamSpec> {
    vec![StreamSpec::new(DEFAULT_STREAM, &[config.key_name(), "count"])]
}
