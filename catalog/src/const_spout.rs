//! `const`'s configuration (the spout is `squall_components::const_spout`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "const";
const KEYS: &[&str] = &["payload", "count", "reliable", "rate"];
const DEFAULT_PAYLOAD_LEN: usize = 100;

/// Parsed configuration of a `const` spout.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstConfig {
    /// The text of every tuple.
    pub payload: String,
    /// Total tuples, if finite.
    pub count: Option<u64>,
    /// Emit with message ids.
    pub reliable: bool,
    /// Tuples per second for the component, if limited.
    pub rate: Option<u64>,
}

impl ConstConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        Ok(ConstConfig {
            payload: c
                .str_opt("payload")?
                .map(str::to_owned)
                .unwrap_or_else(|| "x".repeat(DEFAULT_PAYLOAD_LEN)),
            count: c.u64_opt("count")?,
            reliable: c.bool_or("reliable", true)?,
            rate: c.u64_opt("rate")?.filter(|r| *r > 0),
        })
    }
}

/// Default output streams.
pub fn outputs() -> Vec<StreamSpec> {
    vec![StreamSpec::new(DEFAULT_STREAM, &["payload"])]
}
