//! `redis-counter`'s configuration (the bolt is `squall_connectors::redis_counter`).

use std::time::Duration;

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, Identity, IndexLimit, StreamSpec};

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
    "exactly_once",
];
/// Config key of the exactly-once mode.
pub const EXACTLY_ONCE: &str = "exactly_once";
const EXACTLY_ONCE_KEYS: &[&str] = &["source", "offset", "floor", "index", TUPLES_PER_RECORD];
/// Config key (below `exactly_once`) bounding the tuples of one record: indexes from 0 to
/// it, exclusive.
pub const TUPLES_PER_RECORD: &str = "tuples_per_record";
/// Default of `exactly_once.tuples_per_record`.
pub const DEFAULT_TUPLES_PER_RECORD: u32 = 16;
/// Largest `exactly_once.tuples_per_record`: each offset takes this many bits in Redis.
pub const MAX_TUPLES_PER_RECORD: u32 = 1024;

/// Which input fields carry a record's stable identity (the exactly-once mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactlyOnceConfig {
    /// Fields naming the source partition (e.g. `[topic, partition]`).
    pub source: Vec<String>,
    /// The record's offset in its source: an integer.
    pub offset: String,
    /// The source's floor when the record was emitted: every offset below it is fully
    /// processed. An integer.
    pub floor: String,
    /// The tuple's position among its record's tuples (an integer); `None`: one tuple per
    /// record.
    pub index: Option<String>,
    /// Tuples per record at most (indexes below it); 1 without `index`.
    pub tuples_per_record: u32,
}

impl ExactlyOnceConfig {
    fn parse(value: &serde_json::Value) -> Result<Self, ConfigError> {
        let nested = |e: ConfigError| match e {
            ConfigError::Invalid { key, expected, got } => ConfigError::Invalid {
                key: format!("{EXACTLY_ONCE}.{key}"),
                expected,
                got,
            },
            ConfigError::Missing { key, expected } => ConfigError::Missing {
                key: format!("{EXACTLY_ONCE}.{key}"),
                expected,
            },
            ConfigError::Unknown { key, kind, known } => ConfigError::Unknown {
                key: format!("{EXACTLY_ONCE}.{key}"),
                kind,
                known,
            },
        };
        let Some(map) = value.as_object() else {
            return Err(ConfigError::Invalid {
                key: EXACTLY_ONCE.to_owned(),
                expected: "{source: [fields], offset: field, floor: field, index: field (optional)}"
                    .to_owned(),
                got: value.to_string(),
            });
        };
        let map: Config = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let c = Conf::new(KIND, &map, EXACTLY_ONCE_KEYS).map_err(nested)?;
        let required = |key: &str| {
            c.field_opt(key)?.ok_or_else(|| ConfigError::Missing {
                key: key.to_owned(),
                expected: "the name of an integer input field".to_owned(),
            })
        };
        let mut parsed = ExactlyOnceConfig {
            source: c
                .fields_opt("source")
                .and_then(|s| {
                    s.ok_or_else(|| ConfigError::Missing {
                        key: "source".to_owned(),
                        expected: "the input fields naming the source partition, e.g. [topic, partition]"
                            .to_owned(),
                    })
                })
                .map_err(nested)?,
            offset: required("offset").map_err(nested)?,
            floor: required("floor").map_err(nested)?,
            index: c.field_opt("index").map_err(nested)?,
            tuples_per_record: 1,
        };
        match (&parsed.index, map.get(TUPLES_PER_RECORD)) {
            (None, None | Some(serde_json::Value::Null)) => {}
            (None, Some(v)) => {
                return Err(nested(ConfigError::Invalid {
                    key: TUPLES_PER_RECORD.to_owned(),
                    expected: "no value without exactly_once.index (one tuple per record)".to_owned(),
                    got: v.to_string(),
                }))
            }
            (Some(_), _) => {
                let n = c
                    .positive_or(TUPLES_PER_RECORD, u64::from(DEFAULT_TUPLES_PER_RECORD))
                    .map_err(nested)?;
                parsed.tuples_per_record = u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_TUPLES_PER_RECORD)
                    .ok_or_else(|| {
                        nested(ConfigError::Invalid {
                            key: TUPLES_PER_RECORD.to_owned(),
                            expected: format!("an integer from 1 to {MAX_TUPLES_PER_RECORD}"),
                            got: n.to_string(),
                        })
                    })?;
            }
        }
        let fields = parsed.fields();
        for (i, (key, f)) in fields.iter().enumerate() {
            if fields[..i].iter().any(|(_, g)| g == f) {
                return Err(nested(ConfigError::Invalid {
                    key: key.clone(),
                    expected: "a field not named elsewhere in exactly_once".to_owned(),
                    got: format!("{f:?}"),
                }));
            }
        }
        Ok(parsed)
    }

    /// Every identity field, each with its config key below `exactly_once`.
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .source
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("source[{i}]"), f.clone()))
            .collect();
        out.push(("offset".to_owned(), self.offset.clone()));
        out.push(("floor".to_owned(), self.floor.clone()));
        if let Some(i) = &self.index {
            out.push(("index".to_owned(), i.clone()));
        }
        out
    }
}

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
    /// The exactly-once mode: which fields identify each tuple's source record.
    pub exactly_once: Option<ExactlyOnceConfig>,
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
            exactly_once: match config.get(EXACTLY_ONCE) {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(ExactlyOnceConfig::parse(v)?),
            },
        })
    }

    /// What this counter needs of its upstream: stable identities in the exactly-once mode.
    pub fn identity(&self) -> Identity {
        match &self.exactly_once {
            Some(eo) => Identity::Needs {
                key: EXACTLY_ONCE.to_owned(),
                fields: eo.fields(),
                limit: eo.index.as_ref().map(|field| IndexLimit {
                    field: field.clone(),
                    setting: TUPLES_PER_RECORD.to_owned(),
                    limit: u64::from(eo.tuples_per_record),
                }),
            },
            None => Identity::None,
        }
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

    #[test]
    fn exactly_once_config() {
        let parse = |v: serde_json::Value| {
            RedisCounterConfig::parse(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
        };
        let c = parse(serde_json::json!({})).unwrap();
        assert_eq!((c.identity(), c.exactly_once), (Identity::None, None));
        let c = parse(serde_json::json!({"exactly_once": {
            "source": ["topic", "partition"], "offset": "offset", "floor": "floor", "index": "index"
        }}))
        .unwrap();
        assert_eq!(
            c.identity(),
            Identity::Needs {
                key: "exactly_once".into(),
                fields: [
                    ("source[0]", "topic"),
                    ("source[1]", "partition"),
                    ("offset", "offset"),
                    ("floor", "floor"),
                    ("index", "index")
                ]
                .iter()
                .map(|(k, f)| ((*k).to_owned(), (*f).to_owned()))
                .collect(),
                limit: Some(IndexLimit {
                    field: "index".into(),
                    setting: "tuples_per_record".into(),
                    limit: 16
                })
            }
        );
        let eo = |v: serde_json::Value| parse(serde_json::json!({"exactly_once": v}));
        let c = eo(
            serde_json::json!({"source": ["p"], "offset": "o", "floor": "f", "index": "i", "tuples_per_record": 5}),
        );
        assert_eq!(c.unwrap().exactly_once.unwrap().tuples_per_record, 5);
        let c = eo(serde_json::json!({"source": ["p"], "offset": "o", "floor": "f"})).unwrap();
        assert_eq!(
            c.exactly_once.as_ref().unwrap().tuples_per_record,
            1,
            "one tuple per record"
        );
        assert!(matches!(c.identity(), Identity::Needs { limit: None, .. }));
        assert_eq!(
            eo(serde_json::json!({"source": ["p"], "offset": "o", "floor": "f", "tuples_per_record": 4})).unwrap_err(),
            "config key \"exactly_once.tuples_per_record\": expected no value without exactly_once.index (one tuple per record), got 4"
        );
        assert_eq!(
            eo(serde_json::json!({"source": ["p"], "offset": "o", "floor": "f", "index": "i", "tuples_per_record": 1025})).unwrap_err(),
            "config key \"exactly_once.tuples_per_record\": expected an integer from 1 to 1024, got 1025"
        );
        assert!(eo(serde_json::json!({"source": ["p"], "offset": "o", "floor": "f", "index": "i", "tuples_per_record": 0}))
            .unwrap_err()
            .contains("exactly_once.tuples_per_record"));
        let err = |v: serde_json::Value| parse(serde_json::json!({"exactly_once": v})).unwrap_err();
        assert_eq!(
            err(serde_json::json!({"offset": "o", "floor": "f"})),
            "config key \"exactly_once.source\" is required: the input fields naming the source partition, e.g. [topic, partition]"
        );
        assert_eq!(
            err(serde_json::json!({"source": ["p"], "floor": "f"})),
            "config key \"exactly_once.offset\" is required: the name of an integer input field"
        );
        assert_eq!(
            err(serde_json::json!({"source": ["p"], "offset": "o", "floor": "f", "idx": "i"})),
            "unknown config key \"exactly_once.idx\" for kind \"redis-counter\"; known keys: source, offset, floor, index, tuples_per_record"
        );
        assert_eq!(
            err(serde_json::json!({"source": ["p"], "offset": "p", "floor": "f"})),
            "config key \"exactly_once.offset\": expected a field not named elsewhere in exactly_once, got \"p\""
        );
        assert!(err(serde_json::json!(true)).starts_with("config key \"exactly_once\": expected {source"));
        assert!(
            err(serde_json::json!({"source": [], "offset": "o", "floor": "f"}))
                .contains("exactly_once.source")
        );
    }
}
