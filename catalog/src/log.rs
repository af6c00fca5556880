//! `log`'s configuration (the bolt is `squall_components::log`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec};

/// Kind name.
pub const KIND: &str = "log";
const KEYS: &[&str] = &["every"];

/// Parsed configuration of a `log` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Log one tuple in this many.
    pub every: u64,
}

impl LogConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        match c.u64_or("every", 1)? {
            0 => Err(ConfigError::Invalid {
                key: "every".to_owned(),
                expected: "a positive integer".to_owned(),
                got: "0".to_owned(),
            }),
            every => Ok(LogConfig { every }),
        }
    }
}

/// Default output streams: none.
pub fn outputs() -> Vec<StreamSpec> {
    Vec::new()
}
