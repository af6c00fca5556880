//! `kafka-producer`'s configuration (the bolt is `squall_kafka::producer`, whose
//! documentation is the component's specification).

use std::collections::BTreeMap;
use std::time::Duration;

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec};

use crate::kafka::{bootstrap, properties, valid_topic};

/// Kind name.
pub const KIND: &str = "kafka-producer";
const KEYS: &[&str] = &[
    "bootstrap_servers",
    "topic",
    "key_field",
    "value_field",
    "delivery_timeout_ms",
    "linger_ms",
    "properties",
];

/// Parsed configuration of a `kafka-producer` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaProducerConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// The topic written to.
    pub topic: String,
    /// Field whose value is the record's key; `None`: no key.
    pub key_field: Option<String>,
    /// Field whose value is the record's value; `None`: the input's first field.
    pub value_field: Option<String>,
    /// How long a record may wait for the broker's acknowledgement before its tuple fails
    /// (librdkafka's `delivery.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How long the producer waits to fill a batch (`linger.ms`).
    pub linger: Duration,
    /// Further librdkafka producer properties.
    pub properties: BTreeMap<String, String>,
}

impl KafkaProducerConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        let bootstrap_servers = bootstrap(&c)?;
        let topic = c.str_required("topic", "the topic to write to")?;
        if !valid_topic(topic) {
            return Err(c.invalid("topic", "a topic name of [A-Za-z0-9._-], at most 249 characters"));
        }
        let reserved = [
            "bootstrap.servers",
            "enable.idempotence",
            "acks",
            "delivery.timeout.ms",
            "message.timeout.ms",
            "linger.ms",
        ];
        Ok(KafkaProducerConfig {
            bootstrap_servers,
            topic: topic.to_owned(),
            key_field: c.field_opt("key_field")?,
            value_field: c.field_opt("value_field")?,
            delivery_timeout: Duration::from_millis(c.positive_or("delivery_timeout_ms", 20_000)?),
            linger: Duration::from_millis(c.u64_or("linger_ms", 5)?),
            properties: properties(&c, config, &reserved)?,
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

    fn parse(v: serde_json::Value) -> Result<KafkaProducerConfig, String> {
        KafkaProducerConfig::parse(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn config() {
        let c = parse(serde_json::json!({"bootstrap_servers": "127.0.0.1:9092", "topic": "out"})).unwrap();
        assert_eq!((c.key_field, c.value_field), (None, None));
        assert_eq!(c.delivery_timeout, Duration::from_secs(20));
        let c = parse(serde_json::json!({
            "bootstrap_servers": "h:1", "topic": "out", "key_field": "k", "value_field": "v"
        }))
        .unwrap();
        assert_eq!(
            (c.key_field.as_deref(), c.value_field.as_deref()),
            (Some("k"), Some("v"))
        );
        assert!(parse(serde_json::json!({"bootstrap_servers": "h:1"}))
            .unwrap_err()
            .contains("\"topic\" is required"));
        assert!(
            parse(serde_json::json!({"bootstrap_servers": "h:1", "topic": "o", "key_field": ""})).is_err()
        );
        assert!(parse(
            serde_json::json!({"bootstrap_servers": "h:1", "topic": "o", "properties": {"acks": "1"}})
        )
        .unwrap_err()
        .contains("\"properties\""));
        assert!(
            parse(serde_json::json!({"bootstrap_servers": "h:1", "topic": "o", "value": "v"}))
                .unwrap_err()
                .starts_with("unknown config key \"value\" for kind \"kafka-producer\"")
        );
    }
}
