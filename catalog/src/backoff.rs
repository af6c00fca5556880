//! Reconnection backoff settings, shared by the connector kinds.

use squall_component_config::{Conf, ConfigError};

/// Capped exponential backoff settings shared by the connectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First delay, in milliseconds.
    pub initial_ms: u64,
    /// Cap, in milliseconds.
    pub max_ms: u64,
}

impl BackoffConfig {
    /// Reads `backoff_initial_ms` and `backoff_max_ms`, with these defaults.
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
