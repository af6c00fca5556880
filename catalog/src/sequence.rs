//! `sequence`'s configuration (the spout is `squall_components::sequence`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "sequence";
const KEYS: &[&str] = &["count", "reliable"];

/// Parsed configuration of a `sequence` spout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceConfig {
    /// Numbers to emit, if finite.
    pub count: Option<u64>,
    /// Emit with message ids.
    pub reliable: bool,
}

impl SequenceConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        Ok(SequenceConfig {
            count: c.u64_opt("count")?,
            reliable: c.bool_or("reliable", true)?,
        })
    }
}

/// Default output streams.
pub fn outputs() -> Vec<StreamSpec> {
    vec![StreamSpec::new(DEFAULT_STREAM, &["n"])]
}
