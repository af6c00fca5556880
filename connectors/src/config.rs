//! Typed access to a connector's configuration, with errors naming the key.

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
        /// The value found, as JSON.
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

/// One component's configuration, checked against the keys of its kind.
pub(crate) struct Conf<'a> {
    config: &'a Config,
}

impl<'a> Conf<'a> {
    pub fn new(kind: &str, config: &'a Config, known: &[&str]) -> Result<Self, ConfigError> {
        if let Some(key) = config.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ConfigError::Unknown {
                key: key.clone(),
                kind: kind.to_owned(),
                known: known.join(", "),
            });
        }
        Ok(Conf { config })
    }

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

    fn get(&self, key: &str) -> Option<&'a serde_json::Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    /// A positive integer with a default.
    pub fn positive_or(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| self.invalid(key, "a positive integer")),
        }
    }

    /// A non-negative integer with a default.
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| self.invalid(key, "a non-negative integer")),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.invalid(key, "true or false")),
        }
    }

    pub fn str_opt(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.invalid(key, "a string")),
        }
    }

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
}

/// Capped exponential backoff settings shared by the connectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First delay, in milliseconds.
    pub initial_ms: u64,
    /// Cap, in milliseconds.
    pub max_ms: u64,
}

impl BackoffConfig {
    pub(crate) fn parse(c: &Conf<'_>, initial: u64, max: u64) -> Result<Self, ConfigError> {
        let b = BackoffConfig {
            initial_ms: c.positive_or("backoff_initial_ms", initial)?,
            max_ms: c.positive_or("backoff_max_ms", max)?,
        };
        if b.max_ms < b.initial_ms {
            return Err(c.invalid("backoff_max_ms", "at least backoff_initial_ms"));
        }
        Ok(b)
    }
}
