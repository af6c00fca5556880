//! `kafka`'s configuration (the spout is `squall_kafka::spout`, whose documentation is
//! the component's specification). Defaults are storm-kafka-client's.

use std::collections::BTreeMap;
use std::time::Duration;

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "kafka";
/// Stream of records that could not be decoded.
pub const ERROR_STREAM: &str = "errors";
/// The identity fields every tuple of the default stream carries.
pub const IDENTITY_FIELDS: [&str; 4] = ["topic", "partition", "offset", "floor"];
/// Fields of the record translation, in order.
pub const RECORD_FIELDS: [&str; 6] = ["topic", "partition", "offset", "key", "value", "floor"];
/// Fields of the `errors` stream, in order.
pub const ERROR_FIELDS: [&str; 5] = ["topic", "partition", "offset", "value", "error"];

const KEYS: &[&str] = &[
    "bootstrap_servers",
    "topics",
    "group_id",
    "first_poll_offset_strategy",
    "processing_guarantee",
    "max_uncommitted_offsets",
    "offset_commit_period_ms",
    "partition_refresh_period_ms",
    "retry_initial_delay_ms",
    "retry_delay_period_ms",
    "retry_max_delay_ms",
    "retry_max_retries",
    "translation",
    "fields",
    "encoding",
    "lag_interval_ms",
    "properties",
];

/// Where the spout starts reading a partition the first time it is assigned
/// (storm-kafka-client's `FirstPollOffsetStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstPoll {
    /// The partition's first offset, whatever was committed, unless this topology
    /// committed it (then the committed offset).
    Earliest,
    /// The partition's end, whatever was committed, unless this topology committed it.
    Latest,
    /// The committed offset, or the first offset when there is none (the default).
    UncommittedEarliest,
    /// The committed offset, or the end when there is none.
    UncommittedLatest,
}

/// storm-kafka-client's `ProcessingGuarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// Emit with message ids; commit only what was acked, contiguously (the default).
    AtLeastOnce,
    /// Commit the offsets of a poll before emitting its records; no message ids.
    AtMostOnce,
    /// No message ids; commit the polled position periodically.
    None,
}

/// How records become tuples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Translation {
    /// `topic, partition, offset, key, value, floor`.
    Record,
    /// The value parsed as a JSON object: these top-level keys, then the identity fields.
    Json(Vec<String>),
}

/// How the record translation gives keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 text; a record that is not is sent to `errors`.
    Text,
    /// Raw bytes.
    Bytes,
}

/// storm-kafka-client's `KafkaSpoutRetryExponentialBackoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    /// Delay before the first retry (`initialDelay`, default 0).
    pub initial: Duration,
    /// Doubled per further failure (`delayPeriod`, default 2 ms).
    pub period: Duration,
    /// Cap on the delay (`maxDelay`, default 10 s).
    pub max_delay: Duration,
    /// Retries before a record is given up (counted as done); `None`: unbounded (default).
    pub max_retries: Option<u32>,
}

impl RetryConfig {
    /// The delay before retry number `failures` (1 for the first failure):
    /// `initial + period * 2^(failures - 1)`, at most `max_delay`.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(40);
        let grown = self.period.saturating_mul(1u32 << exp.min(31));
        let grown = if exp > 31 { self.max_delay } else { grown };
        self.initial.saturating_add(grown).min(self.max_delay)
    }

    /// Whether a record that failed `failures` times is retried once more.
    pub fn retries(&self, failures: u32) -> bool {
        self.max_retries.is_none_or(|m| failures <= m)
    }
}

/// Parsed configuration of a `kafka` spout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSpoutConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Consumer group id; `None`: `<topology>-<component>`.
    pub group_id: Option<String>,
    /// First poll.
    pub first_poll: FirstPoll,
    /// Processing guarantee.
    pub guarantee: Guarantee,
    /// Polled offsets not yet committed (per task) above which polling pauses.
    pub max_uncommitted_offsets: u64,
    /// How often acked offsets are committed.
    pub commit_period: Duration,
    /// How often the topics' partitions are looked up.
    pub partition_refresh: Duration,
    /// Retry of failed records.
    pub retry: RetryConfig,
    /// Record translation.
    pub translation: Translation,
    /// Key and value encoding of the record translation.
    pub encoding: Encoding,
    /// How often consumer lag is refreshed.
    pub lag_interval: Duration,
    /// Further librdkafka consumer properties.
    pub properties: BTreeMap<String, String>,
}

fn choice<T: Copy>(c: &Conf<'_>, key: &str, options: &[(&str, T)], default: T) -> Result<T, ConfigError> {
    let Some(s) = c.str_opt(key)? else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            c.invalid(key, &format!("one of {}", names.join(", ")))
        })
}

/// `bootstrap_servers`: a comma-separated list of `host:port`.
pub(crate) fn bootstrap(c: &Conf<'_>) -> Result<String, ConfigError> {
    const WHAT: &str = "host:port[,host:port...] of Kafka brokers";
    let s = c.str_required("bootstrap_servers", WHAT)?;
    let ok = s.split(',').all(|hp| {
        hp.trim()
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
    });
    if !ok {
        return Err(c.invalid("bootstrap_servers", WHAT));
    }
    Ok(s.to_owned())
}

/// A Kafka topic name: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `properties`: a map of librdkafka property names to strings, numbers or booleans.
pub(crate) fn properties(
    c: &Conf<'_>,
    config: &Config,
    reserved: &[&str],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let Some(v) = config.get("properties").filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let what = "a map of librdkafka properties to strings, numbers or booleans";
    let map = v.as_object().ok_or_else(|| c.invalid("properties", what))?;
    for (k, v) in map {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(c.invalid("properties", what)),
        };
        if reserved.contains(&k.as_str()) {
            return Err(c.invalid(
                "properties",
                &format!("no {k:?}: the component sets it (see its config keys)"),
            ));
        }
        out.insert(k.clone(), text);
    }
    Ok(out)
}

impl KafkaSpoutConfig {
    /// Whether its tuples carry stable record identities (topic, partition, offset and
    /// floor, repeated as they were on a replay): only `atLeastOnce` replays, and only
    /// its floor means "everything below is fully processed".
    pub fn gives_identities(&self) -> bool {
        self.guarantee == Guarantee::AtLeastOnce
    }

    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        let bootstrap_servers = bootstrap(&c)?;
        let topics = c.fields_opt("topics")?.ok_or_else(|| ConfigError::Missing {
            key: "topics".into(),
            expected: "a non-empty list of topic names".into(),
        })?;
        if !topics.iter().all(|t| valid_topic(t)) {
            return Err(c.invalid("topics", "topic names of [A-Za-z0-9._-], at most 249 characters"));
        }
        let group_id = c.str_opt("group_id")?;
        if group_id == Some("") {
            return Err(c.invalid("group_id", "a non-empty consumer group id"));
        }
        let first_poll = choice(
            &c,
            "first_poll_offset_strategy",
            &[
                ("EARLIEST", FirstPoll::Earliest),
                ("LATEST", FirstPoll::Latest),
                ("UNCOMMITTED_EARLIEST", FirstPoll::UncommittedEarliest),
                ("UNCOMMITTED_LATEST", FirstPoll::UncommittedLatest),
            ],
            FirstPoll::UncommittedEarliest,
        )?;
        let guarantee = choice(
            &c,
            "processing_guarantee",
            &[
                ("atLeastOnce", Guarantee::AtLeastOnce),
                ("atMostOnce", Guarantee::AtMostOnce),
                ("none", Guarantee::None),
            ],
            Guarantee::AtLeastOnce,
        )?;
        let translation = match choice(&c, "translation", &[("record", false), ("json", true)], false)? {
            false if config.contains_key("fields") => {
                return Err(c.invalid(
                    "fields",
                    "no fields with the record translation (translation: json takes them)",
                ))
            }
            false => Translation::Record,
            true => {
                let fields = c.fields_opt("fields")?.ok_or_else(|| ConfigError::Missing {
                    key: "fields".into(),
                    expected: "the JSON keys to emit (translation: json)".into(),
                })?;
                if let Some(f) = fields.iter().find(|f| IDENTITY_FIELDS.contains(&f.as_str())) {
                    return Err(c.invalid(
                        "fields",
                        &format!("no {f:?}: the spout adds it (topic, partition, offset and floor)"),
                    ));
                }
                Translation::Json(fields)
            }
        };
        let encoding = choice(
            &c,
            "encoding",
            &[("text", Encoding::Text), ("bytes", Encoding::Bytes)],
            Encoding::Text,
        )?;
        let retry = RetryConfig {
            initial: Duration::from_millis(c.u64_or("retry_initial_delay_ms", 0)?),
            period: Duration::from_millis(c.u64_or("retry_delay_period_ms", 2)?),
            max_delay: Duration::from_millis(c.u64_or("retry_max_delay_ms", 10_000)?),
            max_retries: match c.u64_opt("retry_max_retries")? {
                None => None,
                Some(n) => {
                    Some(u32::try_from(n).map_err(|_| c.invalid("retry_max_retries", "at most 4294967295"))?)
                }
            },
        };
        let reserved = [
            "bootstrap.servers",
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "auto.offset.reset",
        ];
        Ok(KafkaSpoutConfig {
            bootstrap_servers,
            topics,
            group_id: group_id.map(str::to_owned),
            first_poll,
            guarantee,
            max_uncommitted_offsets: c.positive_or("max_uncommitted_offsets", 10_000_000)?,
            commit_period: Duration::from_millis(c.positive_or("offset_commit_period_ms", 30_000)?),
            partition_refresh: Duration::from_millis(c.positive_or("partition_refresh_period_ms", 2_000)?),
            retry,
            translation,
            encoding,
            lag_interval: Duration::from_millis(c.positive_or("lag_interval_ms", 1_000)?),
            properties: properties(&c, config, &reserved)?,
        })
    }

    /// The fields of the default stream.
    pub fn default_fields(&self) -> Vec<&str> {
        match &self.translation {
            Translation::Record => RECORD_FIELDS.to_vec(),
            Translation::Json(fields) => fields.iter().map(String::as_str).chain(IDENTITY_FIELDS).collect(),
        }
    }
}

/// Default output streams: the records, and those that could not be decoded.
pub fn outputs(config: &KafkaSpoutConfig) -> Vec<StreamSpec> {
    vec![
        StreamSpec::new(DEFAULT_STREAM, &config.default_fields()),
        StreamSpec::new(ERROR_STREAM, &ERROR_FIELDS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<KafkaSpoutConfig, String> {
        KafkaSpoutConfig::parse(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn storm_kafka_client_defaults() {
        let c = parse(serde_json::json!({"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"]})).unwrap();
        assert_eq!(c.first_poll, FirstPoll::UncommittedEarliest);
        assert_eq!(c.guarantee, Guarantee::AtLeastOnce);
        assert_eq!(c.max_uncommitted_offsets, 10_000_000);
        assert_eq!(c.commit_period, Duration::from_secs(30));
        assert_eq!(c.partition_refresh, Duration::from_secs(2));
        assert_eq!(
            c.retry,
            RetryConfig {
                initial: Duration::ZERO,
                period: Duration::from_millis(2),
                max_delay: Duration::from_secs(10),
                max_retries: None
            }
        );
        assert_eq!(c.translation, Translation::Record);
        assert_eq!(c.group_id, None);
        assert_eq!(
            outputs(&c),
            vec![
                StreamSpec::new(
                    "default",
                    &["topic", "partition", "offset", "key", "value", "floor"]
                ),
                StreamSpec::new("errors", &["topic", "partition", "offset", "value", "error"]),
            ]
        );
    }

    #[test]
    fn json_translation_declares_its_fields_then_the_identity() {
        let c = parse(serde_json::json!({
            "bootstrap_servers": "a:1,b:2", "topics": ["t", "u"], "translation": "json",
            "fields": ["user", "country"], "processing_guarantee": "atMostOnce",
            "first_poll_offset_strategy": "LATEST", "retry_max_retries": 3,
            "properties": {"fetch.min.bytes": 1, "check.crcs": true}
        }))
        .unwrap();
        assert_eq!(
            c.default_fields(),
            ["user", "country", "topic", "partition", "offset", "floor"]
        );
        assert_eq!(
            (c.guarantee, c.first_poll),
            (Guarantee::AtMostOnce, FirstPoll::Latest)
        );
        assert_eq!(c.properties.get("fetch.min.bytes").map(String::as_str), Some("1"));
        assert_eq!(c.retry.max_retries, Some(3));
    }

    #[test]
    fn errors_name_the_key() {
        let base = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"]});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            parse(v).unwrap_err()
        };
        assert!(parse(serde_json::json!({"topics": ["t"]}))
            .unwrap_err()
            .contains("\"bootstrap_servers\" is required"));
        assert!(parse(serde_json::json!({"bootstrap_servers": "x:1"}))
            .unwrap_err()
            .contains("\"topics\" is required"));
        assert!(base(serde_json::json!({"bootstrap_servers": "nohost"})).contains("\"bootstrap_servers\""));
        assert!(base(serde_json::json!({"topics": ["a b"]})).contains("\"topics\""));
        assert!(base(serde_json::json!({"first_poll_offset_strategy": "FIRST"}))
            .contains("one of EARLIEST, LATEST"));
        assert!(base(serde_json::json!({"processing_guarantee": "exactlyOnce"})).contains("atLeastOnce"));
        assert!(base(serde_json::json!({"translation": "json"})).contains("\"fields\" is required"));
        assert!(base(serde_json::json!({"fields": ["a"]})).contains("record translation"));
        assert!(
            base(serde_json::json!({"translation": "json", "fields": ["offset"]}))
                .contains("the spout adds it")
        );
        assert!(base(serde_json::json!({"max_uncommitted_offsets": 0})).contains("positive"));
        assert!(base(serde_json::json!({"properties": {"group.id": "x"}})).contains("\"properties\""));
        assert!(base(serde_json::json!({"properties": {"a": [1]}})).contains("\"properties\""));
        assert_eq!(
            base(serde_json::json!({"topic": "t"})),
            format!(
                "unknown config key \"topic\" for kind \"kafka\"; known keys: {}",
                KEYS.join(", ")
            )
        );
    }

    #[test]
    fn retry_delays_grow_exponentially_up_to_the_cap() {
        let r = RetryConfig {
            initial: Duration::ZERO,
            period: Duration::from_millis(2),
            max_delay: Duration::from_secs(10),
            max_retries: Some(2),
        };
        let ms = |n| r.delay(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [2, 4, 8, 16]);
        assert_eq!(ms(20), 10_000);
        assert_eq!(ms(u32::MAX), 10_000);
        assert!(r.retries(2) && !r.retries(3));
    }
}
