//! `null`'s configuration, which is empty (the bolt is `squall_components::null`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec};

/// Kind name.
pub const KIND: &str = "null";

/// Checks that the configuration is empty.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    Conf::new(KIND, config, &[]).map(|_| ())
}

/// Default output streams: none.
pub fn outputs() -> Vec<StreamSpec> {
    Vec::new()
}
