//! `split-words`' configuration (the bolt is `squall_components::split_words`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "split-words";
const KEYS: &[&str] = &["field", "lowercase"];

/// Parsed configuration of a `split-words` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitWordsConfig {
    /// Text field; `None` means the first field.
    pub field: Option<String>,
    /// Lower-case the words.
    pub lowercase: bool,
}

impl SplitWordsConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        Ok(SplitWordsConfig {
            field: c.field_opt("field")?,
            lowercase: c.bool_or("lowercase", false)?,
        })
    }
}

/// Default output streams.
pub fn outputs() -> Vec<StreamSpec> {
    vec![StreamSpec::new(DEFAULT_STREAM, &["word"])]
}
