//! `websocket`'s configuration (the spout is `squall_connectors::websocket`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec};

use crate::live::{self, LiveConfig};

/// Kind name.
pub const KIND: &str = "websocket";

/// Parsed configuration of a `websocket` spout.
pub type WebsocketConfig = LiveConfig;

/// Reads and checks a `websocket` spout's configuration.
pub fn parse(config: &Config) -> Result<WebsocketConfig, ConfigError> {
    let c = Conf::new(KIND, config, live::LIVE_KEYS)?;
    LiveConfig::parse(&c, &["ws://"])
}

/// Default output streams.
pub fn outputs() -> Vec<StreamSpec> {
    live::outputs()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cfg(v: serde_json::Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config() {
        let c = parse(&cfg(serde_json::json!({"url": "ws://127.0.0.1:9000/"}))).unwrap();
        assert!(c.reliable && c.validate);
        assert_eq!(c.retry_buffer, 100_000);
        assert_eq!(c.replay_delay, Duration::from_millis(50));
        assert_eq!(
            parse(&Config::new()).unwrap_err().to_string(),
            "config key \"url\" is required: the feed's URL (ws://)"
        );
        assert!(parse(&cfg(serde_json::json!({"url": "http://x/"}))).is_err());
        assert!(parse(&cfg(serde_json::json!({"url": "ws://x/", "retry_buffer": 0}))).is_err());
        assert!(parse(&cfg(
            serde_json::json!({"url": "ws://x/", "backoff_initial_ms": 50, "backoff_max_ms": 10})
        ))
        .is_err());
        assert!(parse(&cfg(serde_json::json!({"url": "ws://x/", "urll": 1}))).is_err());
        let c = parse(&cfg(serde_json::json!({"url": "ws://x/", "replay_delay_ms": 0}))).unwrap();
        assert!(c.replay_delay.is_zero());
    }
}
