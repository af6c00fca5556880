//! `kafka-producer`: writes tuples to a Kafka topic with an idempotent producer, acking
//! each tuple only once the broker acknowledged its record.
//!
//! # Consumes
//! Any tuple. The record's value is the field `value_field` (default: the input's first
//! field), its key the field `key_field` (default: no key). Text is written as its UTF-8
//! bytes, bytes as they are, null as no value, numbers and booleans as their text, lists
//! and maps as JSON.
//!
//! # Config
//! - `bootstrap_servers` (required): `host:port[,host:port...]`.
//! - `topic` (required): the topic written to.
//! - `key_field`, `value_field` (field names, optional): see above.
//! - `delivery_timeout_ms` (default 20000): how long librdkafka retries a record before
//!   its tuple fails (`delivery.timeout.ms`); keep it under the topology's message
//!   timeout so the failure, not the timeout, replays the tuple.
//! - `linger_ms` (default 5): how long the producer waits to fill a batch.
//! - `properties`: further librdkafka producer properties (not those set from the keys
//!   above, nor `enable.idempotence` or `acks`).
//!
//! # Guarantees
//! - MUST produce with `enable.idempotence=true` (hence `acks=all`): librdkafka's
//!   retries never duplicate or reorder a record within a partition.
//! - MUST ack a tuple only after the broker acknowledged its record (the delivery
//!   report), and fail it when delivery failed (timeout, broker error, a full local
//!   queue, a missing field), so the spout replays it. Records are therefore written at
//!   least once end to end: a tuple failed after its record was written (a lost
//!   acknowledgement) is written again on replay.
//! - MUST NOT block `execute`: records go to librdkafka's queue; delivery reports arrive
//!   on librdkafka's thread, which wakes the executor, and are turned into acks and fails
//!   in `poll`.
//! - After a fatal producer error (the idempotent producer's state is lost), MUST fail
//!   what is pending and start a new producer. Counted: `delivery_failures`,
//!   `producer_restarts`. Ignores tick tuples.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use squall_engine::{Bolt, BoltOutput, ComponentError, Counters, TaskContext, Tuple, Value, Waker};
use tracing::{debug, warn};

pub use squall_catalog::kafka_producer::{KafkaProducerConfig, KIND};

/// Counter names.
pub mod counters {
    /// Records whose delivery failed (their tuples failed).
    pub const DELIVERY_FAILURES: &str = "delivery_failures";
    /// Producers started again after a fatal error.
    pub const PRODUCER_RESTARTS: &str = "producer_restarts";
}

/// Delivery reports, filled on librdkafka's thread.
struct Reports {
    done: Mutex<Vec<(usize, Result<(), String>)>>,
    waker: Waker,
}

struct ProducerClient(Arc<Reports>);

impl ClientContext for ProducerClient {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        debug!(%error, reason, "librdkafka producer error");
    }
}

impl ProducerContext for ProducerClient {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let r = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.done.lock().push((id, r));
        self.0.waker.wake();
    }
}

/// The `kafka-producer` bolt.
pub struct KafkaProducer {
    config: KafkaProducerConfig,
    producer: Option<ThreadedProducer<ProducerClient>>,
    reports: Arc<Reports>,
    pending: HashMap<usize, Tuple>,
    next_id: usize,
    counters: Counters,
    component: String,
    warned: bool,
}

/// A tuple value as record bytes.
fn bytes_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.as_bytes().to_vec()),
        Value::Bytes(b) => Some(b.to_vec()),
        Value::Bool(b) => Some(b.to_string().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Float(f) => Some(f.to_string().into_bytes()),
        Value::List(_) | Value::Map(_) => Some(v.to_json().to_string().into_bytes()),
    }
}

impl KafkaProducer {
    /// A bolt with this configuration; it connects in `prepare`.
    pub fn new(config: KafkaProducerConfig) -> Self {
        KafkaProducer {
            config,
            producer: None,
            reports: Arc::new(Reports {
                done: Mutex::new(Vec::new()),
                waker: Waker::noop(),
            }),
            pending: HashMap::new(),
            next_id: 0,
            counters: Counters::default(),
            component: String::new(),
            warned: false,
        }
    }

    fn start(&mut self) -> Result<(), ComponentError> {
        let mut c = ClientConfig::new();
        for (k, v) in &self.config.properties {
            c.set(k, v);
        }
        c.set("bootstrap.servers", &self.config.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "delivery.timeout.ms",
                self.config.delivery_timeout.as_millis().to_string(),
            )
            .set("linger.ms", self.config.linger.as_millis().to_string())
            .set("client.id", format!("squall-{}", self.component));
        let p = c
            .create_with_context(ProducerClient(Arc::clone(&self.reports)))
            .map_err(|e| ComponentError(format!("kafka-producer: creating the producer: {e}")))?;
        self.producer = Some(p);
        Ok(())
    }

    fn field<'t>(&self, input: &'t Tuple, name: Option<&str>) -> Result<Option<&'t Value>, String> {
        match name {
            None => Ok(None),
            Some(f) => input
                .field(f)
                .map(Some)
                .ok_or_else(|| format!("the input has no field {f:?}")),
        }
    }

    fn send(&mut self, input: &Tuple) -> Result<usize, String> {
        let key = self
            .field(input, self.config.key_field.as_deref())?
            .and_then(bytes_of);
        let value = match self.config.value_field.as_deref() {
            Some(_) => self.field(input, self.config.value_field.as_deref())?,
            None => input.get(0),
        }
        .and_then(bytes_of);
        let producer = self.producer.as_ref().ok_or("no producer")?;
        let id = self.next_id;
        let mut record: BaseRecord<'_, Vec<u8>, Vec<u8>, usize> =
            BaseRecord::with_opaque_to(&self.config.topic, id);
        if let Some(k) = key.as_ref() {
            record = record.key(k);
        }
        if let Some(v) = value.as_ref() {
            record = record.payload(v);
        }
        producer.send(record).map_err(|(e, _)| e.to_string())?;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(id)
    }

    fn failed(&mut self, error: &str, out: &mut BoltOutput<'_>) {
        self.counters.add(counters::DELIVERY_FAILURES, 1);
        if !self.warned {
            self.warned = true;
            warn!(component = %self.component, error, "kafka-producer: delivery failed; the tuple failed (further failures are counted)");
            out.report_error(format!("kafka-producer: delivery failed: {error}"));
        }
    }

    /// Acks and fails the tuples whose delivery reports arrived.
    fn settle(&mut self, out: &mut BoltOutput<'_>) {
        let done = std::mem::take(&mut *self.reports.done.lock());
        for (id, r) in done {
            let Some(t) = self.pending.remove(&id) else {
                continue;
            };
            match r {
                Ok(()) => {
                    self.warned = false;
                    out.ack(t);
                }
                Err(e) => {
                    self.failed(&e, out);
                    out.fail(t);
                }
            }
        }
        let fatal = self.producer.as_ref().and_then(|p| p.client().fatal_error());
        if let Some((code, reason)) = fatal {
            warn!(component = %self.component, ?code, reason, "fatal producer error; failing what is pending and starting a new producer");
            self.counters.add(counters::PRODUCER_RESTARTS, 1);
            self.producer = None;
            for (_, t) in self.pending.drain() {
                out.fail(t);
            }
            if let Err(e) = self.start() {
                out.report_error(e);
            }
        }
    }
}

impl Bolt for KafkaProducer {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.counters = ctx.counters.clone();
        self.component = format!("{}-{}", ctx.component, ctx.task_id);
        self.reports = Arc::new(Reports {
            done: Mutex::new(Vec::new()),
            waker: ctx.waker.clone(),
        });
        self.start()
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            return Ok(());
        }
        match self.send(&input) {
            Ok(id) => {
                self.pending.insert(id, input);
            }
            Err(e) => {
                self.failed(&e, out);
                out.fail(input);
            }
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        self.settle(out);
        Ok(())
    }

    fn cleanup(&mut self) {
        // Tuples still pending are neither acked nor failed here: their trees time out.
        if let Some(p) = self.producer.take() {
            let _ = p.flush(Duration::from_secs(5));
        }
    }
}
