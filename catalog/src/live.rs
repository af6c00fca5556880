//! The configuration and outputs the live-feed spouts (`websocket`, `sse`) share.

use std::time::Duration;

use squall_component_config::{Conf, ConfigError};
use squall_model::{StreamSpec, DEFAULT_STREAM};

use crate::backoff::BackoffConfig;

/// Stream of messages that are not JSON objects.
pub const ERROR_STREAM: &str = "errors";

/// Configuration shared by the live-feed spouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// Feed URL.
    pub url: String,
    /// Emit with message ids and replay failures.
    pub reliable: bool,
    /// Bound on un-acked events kept for replay.
    pub retry_buffer: usize,
    /// Delay before a failed event is emitted again.
    pub replay_delay: Duration,
    /// Bound on events read from the feed but not yet emitted.
    pub channel: usize,
    /// Check that each message has the shape of a JSON object.
    pub validate: bool,
    /// Reconnection backoff.
    pub backoff: BackoffConfig,
}

pub(crate) const LIVE_KEYS: &[&str] = &[
    "url",
    "reliable",
    "retry_buffer",
    "replay_delay_ms",
    "channel_capacity",
    "validate",
    "backoff_initial_ms",
    "backoff_max_ms",
];

impl LiveConfig {
    /// Reads the shared keys; the URL must start with one of `schemes`.
    pub(crate) fn parse(c: &Conf<'_>, schemes: &[&str]) -> Result<Self, ConfigError> {
        let what = format!("the feed's URL ({})", schemes.join(" or "));
        let url = c.str_required("url", &what)?;
        if !schemes.iter().any(|s| url.starts_with(s)) {
            return Err(c.invalid("url", &what));
        }
        Ok(LiveConfig {
            url: url.to_owned(),
            reliable: c.bool_or("reliable", true)?,
            retry_buffer: usize::try_from(c.positive_or("retry_buffer", 100_000)?).unwrap_or(usize::MAX),
            replay_delay: Duration::from_millis(c.u64_or("replay_delay_ms", 50)?),
            channel: usize::try_from(c.positive_or("channel_capacity", 10_000)?).unwrap_or(usize::MAX),
            validate: c.bool_or("validate", true)?,
            backoff: BackoffConfig::parse(c, 100, 10_000)?,
        })
    }
}

/// Default output streams of a live-feed spout: the events, and the malformed ones.
pub fn outputs() -> Vec<StreamSpec> {
    vec![
        StreamSpec::new(DEFAULT_STREAM, &["event"]),
        StreamSpec::new(ERROR_STREAM, &["event", "error"]),
    ]
}
