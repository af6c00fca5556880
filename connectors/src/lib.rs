//! Squall's connectors to the outside world: live-feed spouts and a Redis sink.
//!
//! | kind | role | default outputs |
//! |---|---|---|
//! | [`websocket`] | spout | `default: [event]`; `errors: [event, error]` |
//! | [`sse`] | spout | `default: [event]`; `errors: [event, error]` |
//! | [`redis-counter`](redis_counter) | bolt | none |
//!
//! Their config types, checks and default outputs are `squall-catalog`'s (validation reads
//! them there); `squall_components::Builtins` builds these kinds with [`build`]. Each
//! module's documentation is the component's specification.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod backoff;
mod config;
mod live;

pub mod redis_counter;
pub mod resp;
pub mod sse;
pub mod websocket;

pub use config::{BackoffConfig, ConfigError};
pub use live::{counters, LiveConfig, ERROR_STREAM};

use squall_engine::{Bolt, ComponentError, Spout};
use squall_model::Config;

/// Every connector kind.
pub const KINDS: &[&str] = &[websocket::KIND, sse::KIND, redis_counter::KIND];

/// A built connector.
pub enum Built {
    /// A spout instance.
    Spout(Box<dyn Spout>),
    /// A bolt instance.
    Bolt(Box<dyn Bolt>),
}

/// A fresh instance of a connector kind; `None` for a kind that is not a connector.
pub fn build(kind: &str, config: &Config) -> Option<Result<Built, ComponentError>> {
    let invalid = |e: ConfigError| ComponentError(format!("{kind}: invalid config: {e}"));
    Some(match kind {
        websocket::KIND => websocket::parse(config)
            .map(|c| Built::Spout(Box::new(websocket::WebsocketSpout::new(c))))
            .map_err(invalid),
        sse::KIND => sse::parse(config)
            .map(|c| Built::Spout(Box::new(sse::SseSpout::new(c))))
            .map_err(invalid),
        redis_counter::KIND => redis_counter::RedisCounterConfig::parse(config)
            .map(|c| Built::Bolt(Box::new(redis_counter::RedisCounter::new(c))))
            .map_err(invalid),
        _ => return None,
    })
}
