//! `json-lines`' configuration (the spout is `squall_components::json_lines`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "json-lines";
/// Stream of malformed lines.
pub const ERROR_STREAM: &str = "errors";
const KEYS: &[&str] = &["path", "fields", "max_in_flight"];

/// Parsed configuration of a `json-lines` spout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonLinesConfig {
    /// The file, as configured.
    pub path: String,
    /// JSON keys to extract, or `None` for raw lines.
    pub fields: Option<Vec<String>>,
    /// Bound on un-acked lines per task.
    pub max_in_flight: usize,
}

impl JsonLinesConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        let max_in_flight = c.u64_or("max_in_flight", 10_000)?;
        if max_in_flight == 0 {
            return Err(ConfigError::Invalid {
                key: "max_in_flight".to_owned(),
                expected: "a positive integer".to_owned(),
                got: "0".to_owned(),
            });
        }
        Ok(JsonLinesConfig {
            path: c.str_required("path", "the path of the file to read")?.to_owned(),
            fields: c.fields_opt("fields")?,
            max_in_flight: usize::try_from(max_in_flight).unwrap_or(usize::MAX),
        })
    }

    fn default_fields(&self) -> Vec<&str> {
        match &self.fields {
            Some(f) => f.iter().map(String::as_str).collect(),
            None => vec!["line"],
        }
    }
}

/// Default output streams: the lines (or their `fields`), and the malformed ones.
pub fn outputs(config: &JsonLinesConfig) -> Vec<StreamSpec> {
    vec![
        StreamSpec::new(DEFAULT_STREAM, &config.default_fields()),
        StreamSpec::new(ERROR_STREAM, &["line", "error"]),
    ]
}
