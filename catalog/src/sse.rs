//! `sse`'s configuration (the spout is `squall_connectors::sse`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec};

use crate::live::{self, LiveConfig};

/// Kind name.
pub const KIND: &str = "sse";

/// Parsed configuration of an `sse` spout.
pub type SseConfig = LiveConfig;

/// Reads and checks an `sse` spout's configuration.
pub fn parse(config: &Config) -> Result<SseConfig, ConfigError> {
    let c = Conf::new(KIND, config, live::LIVE_KEYS)?;
    let parsed = LiveConfig::parse(&c, &["http://"])?;
    HttpUrl::parse(&parsed.url).map_err(|e| c.invalid("url", &e))?;
    Ok(parsed)
}

/// Default output streams.
pub fn outputs() -> Vec<StreamSpec> {
    live::outputs()
}

/// An `http://host[:port]/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port`, as given to connect.
    pub authority: String,
    /// The Host header.
    pub host: String,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl HttpUrl {
    /// Parses `url`, or says what it should be.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| "an http:// URL (TLS is not supported)".to_owned())?;
        let (host, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() || host.contains('@') {
            return Err("an http:// URL with a host and no user info".to_owned());
        }
        // A port is present when the part after the last ':' is outside IPv6 brackets.
        let has_port = host.rfind(':').is_some_and(|i| !host[i..].contains(']'));
        Ok(HttpUrl {
            authority: if has_port {
                host.to_owned()
            } else {
                format!("{host}:80")
            },
            host: host.to_owned(),
            target: target.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:9001/v2/stream/recentchange").unwrap();
        assert_eq!(u.authority, "127.0.0.1:9001");
        assert_eq!(u.target, "/v2/stream/recentchange");
        let u = HttpUrl::parse("http://[::1]").unwrap();
        assert_eq!((u.authority.as_str(), u.target.as_str()), ("[::1]:80", "/"));
        assert!(HttpUrl::parse("https://x/").is_err());
        assert!(HttpUrl::parse("http:///x").is_err());
    }
}
