//! `redis-counter`'s configuration (the bolt is `squall_connectors::redis_counter`).

use std::time::Duration;

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec};

use crate::backoff::BackoffConfig;

/// Kind name.
pub const KIND: &str = "redis-counter";
const KEYS: &[&str] = &[
    "url",
    "address",
    "prefix",
    "field",
    "batch_size",
    "aggregate",
    "timeout_ms",
    "backoff_initial_ms",
    "backoff_max_ms",
];

/// Where a Redis server is, and how to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAddr {
    /// `host:port`.
    pub address: String,
    /// Database number for SELECT.
    pub db: Option<u32>,
    /// Password for AUTH.
    pub password: Option<String>,
}

impl RedisAddr {
    /// `redis://[:password@]host:port[/db]` or plain `host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not redis://[:password@]host:port[/db] or host:port");
        let rest = s.strip_prefix("redis://").unwrap_or(s);
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = match auth {
            Some(a) => Some(a.strip_prefix(':').unwrap_or(a).to_owned()).filter(|p| !p.is_empty()),
            None => None,
        };
        let (address, db) = match rest.split_once('/') {
            Some((a, "")) => (a, None),
            Some((a, d)) => (a, Some(d.parse::<u32>().map_err(|_| bad())?)),
            None => (rest, None),
        };
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(bad());
        }
        Ok(RedisAddr {
            address: address.to_owned(),
            db,
            password,
        })
    }
}

/// Parsed configuration of a `redis-counter` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisCounterConfig {
    /// Where Redis is.
    pub addr: RedisAddr,
    /// Key prefix.
    pub prefix: String,
    /// Key field; `None` means the first field.
    pub field: Option<String>,
    /// Flush threshold.
    pub batch_size: usize,
    /// Merge increments within a flush.
    pub aggregate: bool,
    /// I/O timeout.
    pub timeout: Duration,
    /// Reconnection backoff.
    pub backoff: BackoffConfig,
}

impl RedisCounterConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        let (key, url) = match (c.str_opt("url")?, c.str_opt("address")?) {
            (Some(_), Some(_)) => return Err(c.invalid("address", "either url or address, not both")),
            (Some(u), None) => ("url", u),
            (None, Some(a)) => ("address", a),
            (None, None) => ("url", "redis://127.0.0.1:6379"),
        };
        let addr = RedisAddr::parse(url).map_err(|e| c.invalid(key, &e))?;
        let field = c.str_opt("field")?;
        if field == Some("") {
            return Err(c.invalid("field", "a non-empty field name"));
        }
        Ok(RedisCounterConfig {
            addr,
            prefix: c.str_opt("prefix")?.unwrap_or("").to_owned(),
            field: field.map(str::to_owned),
            batch_size: usize::try_from(c.positive_or("batch_size", 1000)?).unwrap_or(usize::MAX),
            aggregate: c.bool_or("aggregate", true)?,
            timeout: Duration::from_millis(c.positive_or("timeout_ms", 2000)?),
            backoff: BackoffConfig::parse(&c, 100, 5000)?,
        })
    }
}

/// Default output streams: none.
pub fn outputs() -> Vec<StreamSpec> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = RedisAddr::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(
            (a.address.as_str(), a.db, a.password),
            ("127.0.0.1:6379", None, None)
        );
        let a = RedisAddr::parse("redis://:s3cret@localhost:7000/2").unwrap();
        assert_eq!(
            (a.address.as_str(), a.db, a.password.as_deref()),
            ("localhost:7000", Some(2), Some("s3cret"))
        );
        assert_eq!(RedisAddr::parse("127.0.0.1:1").unwrap().address, "127.0.0.1:1");
        assert!(RedisAddr::parse("redis://host").is_err());
        assert!(RedisAddr::parse("redis://host:1/x").is_err());
    }

    #[test]
    fn config() {
        let parse = |v: serde_json::Value| {
            RedisCounterConfig::parse(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
        };
        let c = parse(serde_json::json!({})).unwrap();
        assert_eq!(c.addr.address, "127.0.0.1:6379");
        assert!(c.aggregate);
        assert_eq!(c.batch_size, 1000);
        let c = parse(serde_json::json!({"address": "127.0.0.1:7001", "prefix": "wiki:"})).unwrap();
        assert_eq!(
            (c.addr.address.as_str(), c.prefix.as_str()),
            ("127.0.0.1:7001", "wiki:")
        );
        assert!(parse(serde_json::json!({"url": "redis://x"}))
            .unwrap_err()
            .contains("\"url\""));
        assert!(parse(serde_json::json!({"url": "a:1", "address": "b:2"})).is_err());
        assert!(parse(serde_json::json!({"batch_size": 0})).is_err());
        assert!(parse(serde_json::json!({"field": ""})).is_err());
    }
}
