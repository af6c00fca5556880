//! `identity`'s configuration (the bolt is `squall_components::identity`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "identity";
const KEYS: &[&str] = &["fields", "cost_micros"];

/// Most `cost_micros` a tuple may cost: a second.
pub const MAX_COST_MICROS: u64 = 1_000_000;

/// Output fields from a `fields` config key, defaulting to `[payload]`.
pub(crate) fn fields_config(conf: &Conf<'_>) -> Result<Vec<String>, ConfigError> {
    Ok(conf
        .fields_opt("fields")?
        .unwrap_or_else(|| vec!["payload".to_owned()]))
}

/// Default output streams of a pass-through bolt declaring `fields`.
pub fn outputs_for(fields: &[String]) -> Vec<StreamSpec> {
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    vec![StreamSpec::new(DEFAULT_STREAM, &names)]
}

/// Parsed configuration of an `identity` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Declared output fields.
    pub fields: Vec<String>,
    /// Microseconds each input costs (the bolt sleeps that long), so a test can make a
    /// bolt that cannot keep up at a given rate; 0 by default.
    pub cost_micros: u64,
}

impl IdentityConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        let cost_micros = c.u64_or("cost_micros", 0)?;
        if cost_micros > MAX_COST_MICROS {
            return Err(c.invalid("cost_micros", "at most 1000000 (a second)"));
        }
        Ok(IdentityConfig {
            fields: fields_config(&c)?,
            cost_micros,
        })
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
        let config: Config = serde_json::from_value(serde_json::json!({"cost_micros": 250})).unwrap();
        assert_eq!(IdentityConfig::parse(&config).unwrap().cost_micros, 250);
        let config: Config = serde_json::from_value(serde_json::json!({"cost_micros": 2_000_000})).unwrap();
        let err = IdentityConfig::parse(&config).unwrap_err().to_string();
        assert!(err.contains("cost_micros"), "{err}");
        let config: Config = serde_json::from_value(serde_json::json!({"fields": []})).unwrap();
        let err = IdentityConfig::parse(&config).unwrap_err().to_string();
        assert!(
            err.contains("\"fields\"") && err.contains("non-empty list"),
            "{err}"
        );
    }
}
