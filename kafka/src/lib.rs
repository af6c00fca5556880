//! Kafka for Squall: the `kafka` spout, with storm-kafka-client's `KafkaSpout` semantics
//! and defaults, and the `kafka-producer` bolt, an idempotent producer.
//!
//! | kind | role | default outputs |
//! |---|---|---|
//! | [`kafka`](spout) | spout | `default: [topic, partition, offset, key, value, floor]`, or the json translation's `fields` then `[topic, partition, offset, floor]`; `errors: [topic, partition, offset, value, error]` |
//! | [`kafka-producer`](producer) | bolt | none |
//!
//! Their config types, checks and default outputs are `squall-catalog`'s (validation
//! reads them there, without linking librdkafka); `squall_components::Builtins` builds
//! these kinds with [`build`]. Each module's documentation is the component's
//! specification.
//!
//! # Why rdkafka
//! The client is [`rdkafka`](https://crates.io/crates/rdkafka) (librdkafka, the C client
//! most Kafka clients outside the JVM wrap, maintained by Confluent), with its vendored
//! librdkafka built from source (no network, no system library: Debian's librdkafka is
//! too old for the crate). It has what the spout and the sink need and the pure-Rust
//! clients lack: committed offsets per consumer group with manual assignment and async
//! commits with callbacks (`rskafka` has no consumer groups or offset tracking; the
//! `kafka` crate commits but does not join groups and is little maintained; `samsa` is
//! young), pause/resume, statistics with high watermarks for the lag, and the
//! idempotent producer. Its cost is build time (~1.5 min for librdkafka on 2 cores),
//! which is why it lives in this crate of its own, and a C library in the process
//! (`#![forbid(unsafe_code)]` holds for this crate; the FFI is rdkafka's).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod assign;
mod commit;
mod offsets;
mod refresh;
mod translate;

pub mod feed;
pub mod producer;
pub mod spout;

pub use assign::{partitions_for_task, TopicPartition};

use squall_engine::{Bolt, ComponentError, Spout};
use squall_model::Config;

/// Every Kafka kind.
pub const KINDS: &[&str] = &[spout::KIND, producer::KIND];

/// What can go wrong setting up a Kafka client.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused the configuration or could not create the client.
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A helper thread could not start.
    #[error("starting a thread: {0}")]
    Thread(String),
}

/// A built Kafka component.
pub enum Built {
    /// A spout instance.
    Spout(Box<dyn Spout>),
    /// A bolt instance.
    Bolt(Box<dyn Bolt>),
}

/// A fresh instance of a Kafka kind; `None` for another kind.
pub fn build(kind: &str, config: &Config) -> Option<Result<Built, ComponentError>> {
    let invalid = |e: squall_catalog::ConfigError| ComponentError(format!("{kind}: invalid config: {e}"));
    Some(match kind {
        spout::KIND => spout::KafkaSpoutConfig::parse(config)
            .map(|c| Built::Spout(Box::new(spout::KafkaSpout::new(c))))
            .map_err(invalid),
        producer::KIND => producer::KafkaProducerConfig::parse(config)
            .map(|c| Built::Bolt(Box::new(producer::KafkaProducer::new(c))))
            .map_err(invalid),
        _ => return None,
    })
}
