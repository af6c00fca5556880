//! The built-in component kinds: their names, config checks and default outputs, without
//! their implementations.
//!
//! [`BuiltinKinds`] is the [`Catalog`] validation asks about kinds. It links neither the
//! engine nor the connectors' network stacks, so whoever only validates topologies (the
//! operator) does not carry them. The implementations (`squall-components`,
//! `squall-connectors`) build their spouts and bolts from the config types defined here,
//! so a config that validates builds.
//!
//! | kind | role | default outputs |
//! |---|---|---|
//! | [`const`](const_spout) | spout | `default: [payload]` |
//! | [`sequence`] | spout | `default: [n]` |
//! | [`random-sentence`](random_sentence) | spout | `default: [sentence]` |
//! | [`json-lines`](json_lines) | spout | `default: [line]` or `fields`; `errors: [line, error]` |
//! | [`split-words`](split_words) | bolt | `default: [word]` |
//! | [`count`] | bolt | `default: [<key>, count]` |
//! | [`identity`] | bolt | `default: fields` |
//! | [`null`] | bolt | none |
//! | [`log`] | bolt | none |
//! | [`fail-some`](fail_some) | bolt (test helper) | `default: fields` |
//! | [`json-keys`](json_keys) | bolt | `default: [key]` (then `carry`, `index`); `errors: [event, error]` |
//! | [`websocket`] | spout | `default: [event]`; `errors: [event, error]` |
//! | [`sse`] | spout | `default: [event]`; `errors: [event, error]` |
//! | [`redis-counter`](redis_counter) | bolt | none |
//! | [`kafka`] | spout | `default: [topic, partition, offset, key, value, floor]` or `fields` + `[topic, partition, offset, floor]`; `errors: [topic, partition, offset, value, error]` |
//! | [`kafka-producer`](kafka_producer) | bolt | none |
//! | `shell` | either | none (declared in the manifest) |
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backoff;
pub mod const_spout;
pub mod count;
pub mod fail_some;
pub mod identity;
pub mod json_keys;
pub mod json_lines;
pub mod kafka;
pub mod kafka_producer;
pub mod live;
pub mod log;
pub mod null;
pub mod random_sentence;
pub mod redis_counter;
pub mod sequence;
pub mod split_words;
pub mod sse;
pub mod websocket;

pub use squall_component_config::ConfigError;

use squall_model::{Catalog, Config, Identity, KindInfo, Role, StreamSpec};

/// Kind name of components run as a subprocess (Storm's multilang).
pub const SHELL: &str = "shell";

/// Every kind, in the order `kinds()` lists them.
pub const KINDS: &[&str] = &[
    const_spout::KIND,
    sequence::KIND,
    random_sentence::KIND,
    json_lines::KIND,
    split_words::KIND,
    count::KIND,
    identity::KIND,
    null::KIND,
    log::KIND,
    fail_some::KIND,
    json_keys::KIND,
    websocket::KIND,
    sse::KIND,
    redis_counter::KIND,
    kafka::KIND,
    kafka_producer::KIND,
    SHELL,
];

/// The built-in component kinds, as a [`Catalog`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinKinds;

/// The one place a spout kind says whether it gives stable record identities with its
/// config (every tuple names its source record, a replay repeats the same content under
/// the same identity, and a floor says what is fully processed): what `redis-counter`'s
/// `exactly_once` needs upstream.
pub fn giving_spout(outputs: Vec<StreamSpec>, gives: bool) -> KindInfo {
    KindInfo {
        identity: if gives { Identity::Gives } else { Identity::None },
        ..KindInfo::new(Some(Role::Spout), outputs)
    }
}

/// Role and default outputs of a known kind with this config, or `None` for an unknown
/// kind.
pub fn describe(kind: &str, config: &Config) -> Option<Result<KindInfo, ConfigError>> {
    let info = |role: Role| move |outputs: Vec<StreamSpec>| KindInfo::new(Some(role), outputs);
    let (spout, bolt) = (info(Role::Spout), info(Role::Bolt));
    // Spouts giving stable record identities are described with `giving_spout`: `kafka`,
    // in `atLeastOnce` mode only (the others replay nothing, so nothing to be exact about).
    Some(match kind {
        const_spout::KIND => const_spout::ConstConfig::parse(config)
            .map(|_| const_spout::outputs())
            .map(spout),
        sequence::KIND => sequence::SequenceConfig::parse(config)
            .map(|_| sequence::outputs())
            .map(spout),
        random_sentence::KIND => random_sentence::RandomSentenceConfig::parse(config)
            .map(|_| random_sentence::outputs())
            .map(spout),
        json_lines::KIND => json_lines::JsonLinesConfig::parse(config)
            .map(|c| json_lines::outputs(&c))
            .map(spout),
        websocket::KIND => websocket::parse(config).map(|_| websocket::outputs()).map(spout),
        sse::KIND => sse::parse(config).map(|_| sse::outputs()).map(spout),
        split_words::KIND => split_words::SplitWordsConfig::parse(config)
            .map(|_| split_words::outputs())
            .map(bolt),
        count::KIND => count::CountConfig::parse(config)
            .map(|c| count::outputs(&c))
            .map(bolt),
        identity::KIND => identity::IdentityConfig::parse(config)
            .map(|c| identity::outputs_for(&c.fields))
            .map(bolt),
        null::KIND => null::check(config).map(|_| null::outputs()).map(bolt),
        log::KIND => log::LogConfig::parse(config).map(|_| log::outputs()).map(bolt),
        fail_some::KIND => fail_some::FailSomeConfig::parse(config)
            .map(|c| identity::outputs_for(&c.fields))
            .map(bolt),
        json_keys::KIND => json_keys::JsonKeysConfig::parse(config).map(|c| KindInfo {
            bounds: json_keys::bounds(&c),
            ..bolt(json_keys::outputs(&c))
        }),
        redis_counter::KIND => redis_counter::RedisCounterConfig::parse(config).map(|c| KindInfo {
            identity: c.identity(),
            ..bolt(redis_counter::outputs())
        }),
        kafka::KIND => kafka::KafkaSpoutConfig::parse(config)
            .map(|c| giving_spout(kafka::outputs(&c), c.gives_identities())),
        kafka_producer::KIND => kafka_producer::KafkaProducerConfig::parse(config)
            .map(|_| kafka_producer::outputs())
            .map(bolt),
        // The shell block, not `config`, describes a shell component; its outputs are
        // declared in the manifest.
        SHELL => Ok(KindInfo::new(None, Vec::new())),
        _ => return None,
    })
}

impl Catalog for BuiltinKinds {
    fn describe(&self, kind: &str, config: &Config) -> Option<Result<KindInfo, String>> {
        describe(kind, config).map(|r| r.map_err(|e| e.to_string()))
    }

    fn kinds(&self) -> Vec<String> {
        KINDS.iter().map(|k| (*k).to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kind_is_described_with_an_empty_config_except_those_with_required_keys() {
        for kind in BuiltinKinds.kinds() {
            let got = BuiltinKinds.describe(&kind, &Config::new());
            match kind.as_str() {
                json_lines::KIND => {
                    assert!(matches!(got, Some(Err(ref e)) if e.contains("\"path\"")))
                }
                json_keys::KIND => {
                    assert!(matches!(got, Some(Err(ref e)) if e.contains("\"keys\"")))
                }
                kafka::KIND | kafka_producer::KIND => {
                    assert!(
                        matches!(got, Some(Err(ref e)) if e.contains("\"bootstrap_servers\"")),
                        "{kind}: {got:?}"
                    )
                }
                websocket::KIND | sse::KIND => {
                    assert!(
                        matches!(got, Some(Err(ref e)) if e.contains("\"url\"")),
                        "{kind}: {got:?}"
                    )
                }
                SHELL => assert_eq!(got, Some(Ok(KindInfo::new(None, Vec::new())))),
                _ => assert!(matches!(got, Some(Ok(_))), "{kind}: {got:?}"),
            }
        }
        assert_eq!(BuiltinKinds.describe("nope", &Config::new()), None);
    }

    #[test]
    fn roles_and_default_outputs() {
        let describe = |kind: &str, config: serde_json::Value| {
            BuiltinKinds
                .describe(kind, &serde_json::from_value(config).unwrap())
                .unwrap()
                .unwrap()
        };
        let spout =
            |fields: &[&str]| KindInfo::new(Some(Role::Spout), vec![StreamSpec::new("default", fields)]);
        assert_eq!(describe("sequence", serde_json::json!({})), spout(&["n"]));
        assert_eq!(
            describe("count", serde_json::json!({"key": "user"})).outputs,
            vec![StreamSpec::new("default", &["user", "count"])]
        );
        assert_eq!(
            describe("fail-some", serde_json::json!({"fields": ["a", "b"]})).outputs,
            vec![StreamSpec::new("default", &["a", "b"])]
        );
        let ws = describe("websocket", serde_json::json!({"url": "ws://h:1/x"}));
        assert_eq!(ws.role, Some(Role::Spout));
        assert_eq!(
            ws.outputs,
            vec![
                StreamSpec::new("default", &["event"]),
                StreamSpec::new("errors", &["event", "error"])
            ]
        );
        let redis = describe("redis-counter", serde_json::json!({}));
        assert_eq!(
            (redis.role, redis.outputs, redis.identity),
            (Some(Role::Bolt), Vec::new(), Identity::None)
        );
        let exact = describe(
            "redis-counter",
            serde_json::json!({"exactly_once": {"source": ["p"], "offset": "o", "floor": "f"}}),
        );
        assert!(matches!(exact.identity, Identity::Needs { ref key, .. } if key == "exactly_once"));
        // Only `kafka` in atLeastOnce mode gives stable identities.
        for kind in BuiltinKinds.kinds() {
            if let Some(Ok(info)) = BuiltinKinds.describe(&kind, &Config::new()) {
                assert_ne!(info.identity, Identity::Gives, "{kind}");
            }
        }
        let kafka = |guarantee: &str| {
            describe(
                "kafka",
                serde_json::json!({"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"],
                    "processing_guarantee": guarantee}),
            )
            .identity
        };
        assert_eq!(kafka("atLeastOnce"), Identity::Gives);
        assert_eq!(kafka("atMostOnce"), Identity::None);
        assert_eq!(kafka("none"), Identity::None);
        let keys = describe(
            "json-keys",
            serde_json::json!({"keys": [{"path": "a", "prefix": "a_"}], "carry": ["offset"], "index": "i"}),
        );
        assert_eq!(
            keys.outputs[0],
            StreamSpec::new("default", &["key", "offset", "i"])
        );
        // One key per rule at most: the index stays below the number of rules.
        assert_eq!(
            keys.bounds,
            [squall_model::FieldBound {
                stream: "default".into(),
                field: "i".into(),
                limit: 1
            }]
        );
        let plain = describe(
            "json-keys",
            serde_json::json!({"keys": [{"path": "a", "prefix": "a_"}]}),
        );
        assert!(plain.bounds.is_empty());
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = |kind: &str, config: serde_json::Value| {
            BuiltinKinds
                .describe(kind, &serde_json::from_value(config).unwrap())
                .unwrap()
                .unwrap_err()
        };
        assert_eq!(
            err("sequence", serde_json::json!({"count": "x"})),
            "config key \"count\": expected a non-negative integer, got \"x\""
        );
        assert_eq!(
            err("null", serde_json::json!({"x": 1})),
            "unknown config key \"x\" for kind \"null\"; known keys: none"
        );
        assert!(err("sse", serde_json::json!({"url": "http://"})).contains("\"url\""));
        assert!(err("redis-counter", serde_json::json!({"url": "a", "address": "b"})).contains("not both"));
    }
}
