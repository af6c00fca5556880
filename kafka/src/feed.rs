//! Publishing the bundled Wikipedia edits (`squall_feed::DataSet`) into a topic:
//! `squall feed kafka`, the examples and the tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use squall_feed::DataSet;

use crate::KafkaError;

/// What to publish.
#[derive(Clone, Debug)]
pub struct Publish {
    /// `host:port[,...]`.
    pub bootstrap: String,
    /// The topic (it must exist, or the broker must create topics on use).
    pub topic: String,
    /// Events per second; 0: as fast as the broker takes them.
    pub rate: u64,
    /// How many events; `None`: until `stop` is set.
    pub count: Option<u64>,
    /// Index of the first event.
    pub from: u64,
}

/// Publishes edits `from..from+count` of `data` as JSON text values (no key), with an
/// idempotent producer, then waits until the broker acknowledged every one. Returns
/// how many were published. Stops early (still flushing) once `stop` is set.
pub fn publish_edits(p: &Publish, data: &DataSet, stop: &AtomicBool) -> Result<u64, KafkaError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &p.bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let started = Instant::now();
    let mut sent = 0u64;
    while p.count.is_none_or(|c| sent < c) && !stop.load(Ordering::Relaxed) {
        if p.rate > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / p.rate as f64);
            let now = Instant::now();
            if due > now {
                producer.poll(due - now);
                continue;
            }
        }
        let text = data.text(p.from + sent);
        let record: BaseRecord<'_, (), str> = BaseRecord::to(&p.topic).payload(text.as_str());
        match producer.send(record) {
            Ok(()) => sent += 1,
            Err((e, _)) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(KafkaError::Client(e)),
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(sent)
}
