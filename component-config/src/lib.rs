//! Typed access to a component's free-form configuration.
//!
//! Every accessor names the key and what it expects, so a bad manifest is reported as
//! `spec.spouts[0].config: config key "count": expected a non-negative integer, got "x"`.
#![forbid(unsafe_code)]

use squall_model::Config;

/// A configuration value that is missing, of the wrong type or out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key has a value of the wrong type or range.
    #[error("config key {key:?}: expected {expected}, got {got}")]
    Invalid {
        /// The key.
        key: String,
        /// What the key takes.
        expected: String,
        /// The value found, as JSON (shortened).
        got: String,
    },
    /// A required key is absent.
    #[error("config key {key:?} is required: {expected}")]
    Missing {
        /// The key.
        key: String,
        /// What the key takes.
        expected: String,
    },
    /// A key the kind does not know (most often a typo).
    #[error("unknown config key {key:?} for kind {kind:?}; known keys: {known}")]
    Unknown {
        /// The key.
        key: String,
        /// The component kind.
        kind: String,
        /// The keys the kind takes.
        known: String,
    },
}

/// A view of one component's configuration, for one kind.
#[derive(Debug)]
pub struct Conf<'a> {
    config: &'a Config,
}

impl<'a> Conf<'a> {
    /// Checks that every key is one of `known` (typos would otherwise be silently ignored).
    pub fn new(kind: &str, config: &'a Config, known: &[&str]) -> Result<Self, ConfigError> {
        if let Some(key) = config.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ConfigError::Unknown {
                key: key.clone(),
                kind: kind.to_owned(),
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            });
        }
        Ok(Conf { config })
    }

    /// The error for a present but unacceptable value of `key`.
    pub fn invalid(&self, key: &str, expected: &str) -> ConfigError {
        let mut got = self.config.get(key).map(|v| v.to_string()).unwrap_or_default();
        if got.len() > 60 {
            let mut cut = 57;
            while !got.is_char_boundary(cut) {
                cut -= 1;
            }
            got.truncate(cut);
            got.push_str("...");
        }
        ConfigError::Invalid {
            key: key.to_owned(),
            expected: expected.to_owned(),
            got,
        }
    }

    /// A non-negative integer, or `None` when absent or null.
    pub fn u64_opt(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.config.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "a non-negative integer")),
        }
    }

    /// A non-negative integer with a default.
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        Ok(self.u64_opt(key)?.unwrap_or(default))
    }

    /// A positive integer with a default.
    pub fn positive_or(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.u64_opt(key) {
            Ok(None) => Ok(default),
            Ok(Some(n)) if n > 0 => Ok(n),
            _ => Err(self.invalid(key, "a positive integer")),
        }
    }

    /// A boolean with a default.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.config.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.invalid(key, "true or false")),
        }
    }

    /// A string, or `None` when absent or null.
    pub fn str_opt(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.config.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.invalid(key, "a string")),
        }
    }

    /// A required, non-empty string.
    pub fn str_required(&self, key: &str, what: &str) -> Result<&'a str, ConfigError> {
        match self.str_opt(key)? {
            Some("") => Err(self.invalid(key, what)),
            Some(s) => Ok(s),
            None => Err(ConfigError::Missing {
                key: key.to_owned(),
                expected: what.to_owned(),
            }),
        }
    }

    /// A percentage between 0 and 100 with a default.
    pub fn percent_or(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.config.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| self.invalid(key, "a number between 0 and 100")),
        }
    }

    /// A non-empty list of distinct, non-empty field names, or `None` when absent.
    pub fn fields_opt(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        const WHAT: &str = "a non-empty list of distinct, non-empty field names";
        let Some(v) = self.config.get(key).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let list = v
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| self.invalid(key, WHAT))?;
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for item in list {
            match item.as_str() {
                Some(s) if !s.is_empty() && !out.iter().any(|o| o == s) => out.push(s.to_owned()),
                _ => return Err(self.invalid(key, WHAT)),
            }
        }
        Ok(Some(out))
    }

    /// A non-empty field name, or `None` when absent.
    pub fn field_opt(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.str_opt(key)? {
            Some("") => Err(self.invalid(key, "a non-empty field name")),
            other => Ok(other.map(str::to_owned)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: serde_json::Value) -> Config {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn unknown_keys_are_named_with_the_known_ones() {
        let c = cfg(serde_json::json!({"cuont": 3}));
        let err = Conf::new("sequence", &c, &["count", "reliable"])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown config key \"cuont\" for kind \"sequence\"; known keys: count, reliable")
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_the_expectation() {
        let c = cfg(serde_json::json!({"count": "x", "reliable": 1, "f": ["a", "a"], "p": 101}));
        let conf = Conf::new("k", &c, &["count", "reliable", "f", "p"]).map_err(|e| e.to_string());
        let Ok(conf) = conf else { panic!("{conf:?}") };
        assert_eq!(
            conf.u64_opt("count").map_err(|e| e.to_string()),
            Err("config key \"count\": expected a non-negative integer, got \"x\"".to_owned())
        );
        assert!(conf.bool_or("reliable", true).is_err());
        assert!(conf.fields_opt("f").is_err());
        assert!(conf.percent_or("p", 0.0).is_err());
        assert_eq!(conf.u64_or("missing", 7), Ok(7));
        assert_eq!(
            conf.str_required("path", "a file path")
                .map_err(|e| e.to_string()),
            Err("config key \"path\" is required: a file path".to_owned())
        );
    }
}
