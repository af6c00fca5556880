//! `kafka`: reads Kafka topics with storm-kafka-client's `KafkaSpout` semantics.
//!
//! # Emits
//! - `default` stream, with the record translation (`translation: record`, the default):
//!   `topic` (text), `partition` (int), `offset` (int), `key` and `value` (text with
//!   `encoding: text`, the default; bytes with `encoding: bytes`; null when absent),
//!   `floor` (int). With `translation: json` and `fields: [a, b, ..]`: the value parsed as
//!   a JSON object, each field the top-level key of the same name (null when absent),
//!   then `topic`, `partition`, `offset`, `floor`.
//! - `errors` stream: `topic, partition, offset, value, error` for records that cannot
//!   be decoded (not UTF-8 with `encoding: text`; not a JSON object with the json
//!   translation). Emitted without a message id.
//!
//! `floor` (atLeastOnce): when the tuple is emitted, every offset of its partition below
//! `floor` is done (its tree acked, or given up after `retry_max_retries`): one past the
//! highest contiguous done offset, the offset the spout would commit. A replay of a
//! record carries the same content and identity (`topic, partition, offset`) and a floor
//! at least the first emit's. With atMostOnce and none, `floor` is the record's offset.
//!
//! # Config (defaults are storm-kafka-client's)
//! - `bootstrap_servers` (required): `host:port[,host:port...]`.
//! - `topics` (required): list of topic names.
//! - `group_id` (default `<topology>-<component>`): the consumer group whose committed
//!   offsets the spout reads and writes. The group is never joined: see Partitions.
//! - `first_poll_offset_strategy`: `UNCOMMITTED_EARLIEST` (default: the committed offset,
//!   else the first), `UNCOMMITTED_LATEST` (the committed offset, else the end),
//!   `EARLIEST` / `LATEST` (the first offset / the end whatever was committed, unless
//!   this topology committed it: then the committed offset, so a restarted task or worker
//!   resumes). Applies when a spout task first gets a partition; a partition it gets
//!   again later resumes from the committed offset.
//! - `processing_guarantee`: `atLeastOnce` (default), `atMostOnce`, `none`.
//! - `max_uncommitted_offsets` (default 10000000): when a task has this many polled
//!   offsets not yet committed (in flight, or done since the last commit), it pauses its
//!   partitions and emits no new records (retries still go out) until a commit brings it
//!   under.
//! - `offset_commit_period_ms` (default 30000): how often done offsets are committed.
//! - `partition_refresh_period_ms` (default 2000): how often the topics' partitions are
//!   looked up.
//! - `retry_initial_delay_ms` (0), `retry_delay_period_ms` (2), `retry_max_delay_ms`
//!   (10000), `retry_max_retries` (unbounded): a record failed n times is emitted again
//!   after `initial + period * 2^(n-1)`, at most `max_delay`; past `max_retries` it is
//!   given up (counted `given_up`, and done for commits, as Storm does).
//! - `translation` (`record` | `json`), `fields` (json only), `encoding` (`text` | `bytes`).
//! - `lag_interval_ms` (default 1000): how often the consumer lag is refreshed.
//! - `properties`: further librdkafka consumer properties (not those set from the keys
//!   above).
//!
//! # Guarantees
//! - atLeastOnce: MUST emit every record with a message id and commit a partition's
//!   offset only up to its highest contiguous done offset (`floor`), every commit period
//!   and on deactivate and close. A failed record MUST be emitted again, with the same
//!   values and id, after its backoff, and never be skipped while retries remain. An
//!   offset is committed with this topology's name as metadata.
//! - atMostOnce: MUST commit the offsets of polled records and emit them only once the
//!   broker confirmed that commit; no message ids, no retries.
//! - none: no message ids; the polled position is committed every commit period.
//! - Partitions: MUST assign them itself (no group membership, no rebalance protocol):
//!   every partition of `topics`, sorted by (topic, partition), goes round-robin over the
//!   spout's tasks (task i of k takes positions ≡ i mod k), so tasks on any workers agree
//!   and none reads a partition another task reads. After a rebalance the new tasks
//!   compute the new split and resume from the committed offsets. Partitions added to a
//!   topic are picked up at the next refresh; a partition that moves to another task is
//!   committed up to its floor and released by its old task at that task's next refresh
//!   (with one topic, or growth of the last topic in sort order, no partition moves).
//! - Undecodable records MUST go to `errors` with their coordinates and count as done at
//!   once: they never hold back a partition's commits.
//! - `next_tuple` MUST NOT block: polling, pausing and assignment changes are local
//!   librdkafka calls; metadata and committed-offset lookups run on a thread of the
//!   spout's own, and commits on another, which sends each synchronously and records the
//!   broker's answer (a failed commit is sent again at the next commit). At most one record is emitted per call (plus, with atMostOnce, the
//!   records of one poll are held until their commit).
//! - Memory: the values of records in flight (emitted, not yet acked) are kept for
//!   retries; their number is bounded by the topology's `maxSpoutPending` and by
//!   `max_uncommitted_offsets`.
//! - Lag: per assigned partition, `high watermark - floor`, exported as the gauge
//!   `kafka_consumer_lag{topic, partition}` (a worker's `/metrics`:
//!   `squall_kafka_consumer_lag`), with the log head (the high watermark) as
//!   `kafka_log_head_offset` and the group's committed offset (the highest this task had
//!   confirmed, else what librdkafka last fetched; left out while unknown) as
//!   `kafka_committed_offset`, same labels; all three go when the partition moves away.
//!   The UI shows them as Storm's spout lag (`GET /api/v1/topology/{id}/lag`, the
//!   topology page's "Kafka spouts lag" table). Counted: `retried`, `given_up`, `undecodable`,
//!   `commits`, `commit_failures`, `paused`.
//! - Never panics on records or broker errors; a broker outage delays records, it
//!   loses none (librdkafka reconnects).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use squall_catalog::kafka::{Guarantee, ERROR_STREAM};
use squall_engine::{gauge_series, ComponentError, Counters, Spout, SpoutOutput, TaskContext, Value, Values};
use tracing::{debug, info, warn};

use crate::assign::TopicPartition;
use crate::commit::Committer;
use crate::offsets::PartitionOffsets;
use crate::refresh::{self, Assignment, RefreshSpec, Refresher};
use crate::translate::{error_values, translate, Record};

pub use squall_catalog::kafka::{KafkaSpoutConfig, KIND};

/// Counter and gauge names.
pub mod counters {
    /// Failed records emitted again.
    pub const RETRIED: &str = "retried";
    /// Records given up after their retries.
    pub const GIVEN_UP: &str = "given_up";
    /// Records sent to the `errors` stream.
    pub const UNDECODABLE: &str = "undecodable";
    /// Commit requests sent.
    pub const COMMITS: &str = "commits";
    /// Commit requests that failed.
    pub const COMMIT_FAILURES: &str = "commit_failures";
    /// Times the spout paused at `max_uncommitted_offsets`.
    pub const PAUSED: &str = "paused";
    /// Gauge: per partition, high watermark minus floor.
    pub const LAG: &str = "kafka_consumer_lag";
    /// Gauge: per partition, the group's committed offset, once known.
    pub const COMMITTED: &str = "kafka_committed_offset";
    /// Gauge: per partition, the log head (high watermark).
    pub const HEAD: &str = "kafka_log_head_offset";
}

/// What librdkafka's statistics callback (run inside `poll`, on the spout's thread)
/// leaves for the spout: per partition, high watermark, committed offset and next fetch
/// offset (negative: not known).
type Watermarks = Arc<Mutex<HashMap<TopicPartition, (i64, i64, i64)>>>;

struct SpoutClient {
    watermarks: Watermarks,
    component: String,
}

impl ClientContext for SpoutClient {
    fn stats(&self, statistics: Statistics) {
        let mut w = self.watermarks.lock();
        for (name, topic) in statistics.topics {
            for (p, part) in topic.partitions {
                if p >= 0 && part.hi_offset >= 0 {
                    w.insert(
                        (name.clone(), p),
                        (part.hi_offset, part.committed_offset, part.next_offset),
                    );
                }
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        debug!(component = %self.component, %error, reason, "librdkafka consumer error");
    }
}

impl ConsumerContext for SpoutClient {}

/// One assigned partition.
struct Part {
    topic: ByteString,
    offsets: PartitionOffsets,
    lag_series: String,
    committed_series: String,
    head_series: String,
}

/// A record emitted and not yet acked (atLeastOnce).
struct InFlight {
    tp: (ByteString, i32),
    offset: i64,
    values: Values,
    fails: u32,
}

/// The `kafka` spout.
pub struct KafkaSpout {
    config: KafkaSpoutConfig,
    consumer: Option<BaseConsumer<SpoutClient>>,
    watermarks: Watermarks,
    committer: Option<Committer>,
    refresher: Option<Refresher>,
    parts: HashMap<String, HashMap<i32, Part>>,
    in_flight: HashMap<i64, InFlight>,
    retries: BTreeSet<(Instant, i64)>,
    next_id: i64,
    /// A record polled while over `max_uncommitted_offsets`, emitted once under it.
    stash: Option<OwnedMessage>,
    /// atMostOnce: polled records waiting for their commit.
    held: VecDeque<OwnedMessage>,
    paused: bool,
    next_commit: Instant,
    next_lag: Instant,
    marker: String,
    counters: Counters,
    component: String,
}

impl KafkaSpout {
    /// A spout with this configuration; it connects in `open`.
    pub fn new(config: KafkaSpoutConfig) -> Self {
        let now = Instant::now();
        KafkaSpout {
            consumer: None,
            watermarks: Arc::default(),
            committer: None,
            refresher: None,
            parts: HashMap::new(),
            in_flight: HashMap::new(),
            retries: BTreeSet::new(),
            next_id: 1,
            stash: None,
            held: VecDeque::new(),
            paused: false,
            next_commit: now + config.commit_period,
            next_lag: now,
            marker: String::new(),
            counters: Counters::default(),
            component: String::new(),
            config,
        }
    }

    fn client_config(&self, ctx: &TaskContext) -> ClientConfig {
        let group = match &self.config.group_id {
            Some(g) => g.clone(),
            None => format!("{}-{}", ctx.topology, ctx.component),
        };
        let mut c = ClientConfig::new();
        for (k, v) in &self.config.properties {
            c.set(k, v);
        }
        let reset = match self.config.first_poll {
            squall_catalog::kafka::FirstPoll::Latest
            | squall_catalog::kafka::FirstPoll::UncommittedLatest => "latest",
            _ => "earliest",
        };
        c.set("bootstrap.servers", &self.config.bootstrap_servers)
            .set("group.id", group)
            .set("client.id", format!("squall-{}-{}", ctx.component, ctx.task_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", reset);
        c
    }

    fn uncommitted(&self) -> u64 {
        let parts: u64 = self
            .parts
            .values()
            .flat_map(|m| m.values())
            .map(|p| p.offsets.uncommitted())
            .sum();
        parts + self.held.len() as u64 + u64::from(self.stash.is_some())
    }

    fn part_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Part> {
        self.parts.get_mut(topic).and_then(|m| m.get_mut(&partition))
    }

    fn all_tpl(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (t, m) in &self.parts {
            for p in m.keys() {
                tpl.add_partition(t, *p);
            }
        }
        tpl
    }

    /// Applies the newest assignment from the refresher, if any.
    fn reassign(&mut self) {
        let Some(r) = &self.refresher else { return };
        let Some(assignment) = r.rx.try_iter().last() else {
            return;
        };
        self.apply(assignment);
    }

    fn apply(&mut self, assignment: Assignment) {
        let wanted: HashMap<&TopicPartition, refresh::Start> =
            assignment.iter().map(|(tp, s)| (tp, *s)).collect();
        let mut removed = TopicPartitionList::new();
        let current: Vec<TopicPartition> = self
            .parts
            .iter()
            .flat_map(|(t, m)| m.keys().map(move |p| (t.clone(), *p)))
            .collect();
        for tp in current.iter().filter(|tp| !wanted.contains_key(tp)) {
            removed.add_partition(&tp.0, tp.1);
        }
        if removed.count() > 0 {
            // Commit what is done before letting the partitions go to another task.
            self.commit();
            if let Some(c) = &self.consumer {
                if let Err(e) = c.incremental_unassign(&removed) {
                    warn!(component = %self.component, error = %e, "releasing partitions failed");
                }
            }
            for e in removed.elements() {
                if let Some(m) = self.parts.get_mut(e.topic()) {
                    if let Some(p) = m.remove(&e.partition()) {
                        self.counters.remove_gauge(&p.lag_series);
                        self.counters.remove_gauge(&p.committed_series);
                        self.counters.remove_gauge(&p.head_series);
                    }
                }
                let (topic, partition) = (e.topic(), e.partition());
                self.in_flight
                    .retain(|_, f| !(f.tp.0 == topic && f.tp.1 == partition));
                self.held
                    .retain(|m| !(m.topic() == topic && m.partition() == partition));
            }
            self.parts.retain(|_, m| !m.is_empty());
        }
        let mut added = TopicPartitionList::new();
        for (tp, start) in &assignment {
            if self.parts.get(&tp.0).is_some_and(|m| m.contains_key(&tp.1)) {
                continue;
            }
            let _ = added.add_partition_offset(&tp.0, tp.1, start.offset());
            let partition = tp.1.to_string();
            let series = |name| gauge_series(name, &[("topic", &tp.0), ("partition", &partition)]);
            let part = Part {
                topic: ByteString::from(tp.0.as_str()),
                offsets: PartitionOffsets::default(),
                lag_series: series(counters::LAG),
                committed_series: series(counters::COMMITTED),
                head_series: series(counters::HEAD),
            };
            self.parts.entry(tp.0.clone()).or_default().insert(tp.1, part);
        }
        if added.count() > 0 {
            if let Some(c) = &self.consumer {
                if let Err(e) = c.incremental_assign(&added) {
                    warn!(component = %self.component, error = %e, "assigning partitions failed");
                }
                if self.paused {
                    let _ = c.pause(&added);
                }
            }
        }
        info!(component = %self.component, partitions = assignment.len(), "kafka spout partitions assigned");
    }

    /// Partitions whose last commit failed: commit them again whatever their floor.
    fn take_failed_commits(&mut self) -> Vec<TopicPartition> {
        let failed = match &self.committer {
            Some(c) => std::mem::take(&mut c.outcomes.lock().failed),
            None => Vec::new(),
        };
        for (t, p) in &failed {
            if let Some(part) = self.part_mut(t, *p) {
                part.offsets.commit_failed();
            }
        }
        failed
    }

    /// Hands a commit of every partition whose committable offset moved to the
    /// committer; returns what it sent.
    fn commit(&mut self) -> Vec<(TopicPartition, i64)> {
        self.take_failed_commits();
        let mut offsets = Vec::new();
        for (t, m) in &mut self.parts {
            for (p, part) in m.iter_mut() {
                if let Some(o) = part.offsets.to_commit() {
                    offsets.push(((t.clone(), *p), o));
                    part.offsets.committing(o);
                }
            }
        }
        if let Some(c) = &self.committer {
            c.send(offsets.clone());
        }
        offsets
    }

    fn update_lag(&mut self) {
        let marks = self.watermarks.lock().clone();
        let confirmed = match &self.committer {
            Some(c) => c.outcomes.lock().confirmed.clone(),
            None => HashMap::new(),
        };
        for (t, m) in &self.parts {
            for (p, part) in m {
                let Some(&(hi, committed, next)) = marks.get(&(t.clone(), *p)) else {
                    continue;
                };
                self.counters
                    .set_gauge(&part.head_series, u64::try_from(hi).unwrap_or(0));
                // The group's committed offset: the larger of what this task had confirmed
                // and what librdkafka last fetched (negative: none).
                let group = confirmed
                    .get(&(t.clone(), *p))
                    .copied()
                    .unwrap_or(-1)
                    .max(committed);
                if let Ok(c) = u64::try_from(group) {
                    self.counters.set_gauge(&part.committed_series, c);
                }
                // Before the first record: the committed offset, else where fetching starts.
                let base = part
                    .offsets
                    .floor()
                    .unwrap_or(if committed >= 0 { committed } else { next });
                if base >= 0 {
                    self.counters
                        .set_gauge(&part.lag_series, u64::try_from(hi - base).unwrap_or(0));
                }
            }
        }
    }

    /// Pauses or resumes every partition at the uncommitted bound.
    fn back_pressure(&mut self) {
        let over = self.uncommitted() >= self.config.max_uncommitted_offsets;
        if over == self.paused {
            return;
        }
        self.paused = over;
        let tpl = self.all_tpl();
        let Some(c) = &self.consumer else { return };
        let r = if over {
            self.counters.add(counters::PAUSED, 1);
            debug!(component = %self.component, "max_uncommitted_offsets reached: partitions paused");
            c.pause(&tpl)
        } else {
            c.resume(&tpl)
        };
        if let Err(e) = r {
            debug!(component = %self.component, error = %e, "pause/resume failed");
        }
    }

    /// Periodic work: assignment changes, commits, lag, back pressure.
    fn housekeeping(&mut self) {
        self.reassign();
        let now = Instant::now();
        if now >= self.next_commit && self.config.guarantee != Guarantee::AtMostOnce {
            self.commit();
            self.next_commit = now + self.config.commit_period;
        }
        if now >= self.next_lag {
            self.update_lag();
            self.next_lag = now + self.config.lag_interval;
        }
        self.back_pressure();
    }

    /// The next record from the consumer (serving librdkafka's callbacks), or the one
    /// stashed while over the bound.
    fn poll(&mut self) -> Option<OwnedMessage> {
        if !self.paused {
            if let Some(m) = self.stash.take() {
                return Some(m);
            }
        }
        if self.stash.is_some() {
            return None;
        }
        let c = self.consumer.as_ref()?;
        let m = match c.poll(Duration::ZERO)? {
            Ok(m) => m.detach(),
            Err(e) => {
                debug!(component = %self.component, error = %e, "poll error");
                return None;
            }
        };
        if self.paused {
            self.stash = Some(m);
            return None;
        }
        Some(m)
    }

    /// Emits a due retry, if any.
    fn emit_retry(&mut self, out: &mut SpoutOutput<'_>) -> Result<bool, ComponentError> {
        let now = Instant::now();
        while let Some(&(at, id)) = self.retries.first() {
            if at > now {
                return Ok(false);
            }
            self.retries.pop_first();
            let Some(f) = self.in_flight.get(&id) else {
                continue;
            };
            let floor = self
                .parts
                .get(&*f.tp.0)
                .and_then(|m| m.get(&f.tp.1))
                .and_then(|p| p.offsets.floor())
                .unwrap_or(f.offset);
            let mut v = f.values.clone();
            v.push(Value::Int(floor));
            self.counters.add(counters::RETRIED, 1);
            self.emit_tracked(v, id, out)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Translates and emits one polled record per the guarantee.
    fn emit_record(&mut self, m: &OwnedMessage, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        let guarantee = self.config.guarantee;
        let Some(part) = self.part_mut(m.topic(), m.partition()) else {
            return Ok(()); // released meanwhile
        };
        let offset = m.offset();
        if guarantee != Guarantee::AtMostOnce && !part.offsets.polled(offset) {
            return Ok(()); // a re-read
        }
        let topic = part.topic.clone();
        let floor = part.offsets.floor().unwrap_or(offset);
        let record = Record {
            topic: &topic,
            partition: m.partition(),
            offset,
            key: m.key(),
            value: m.payload(),
        };
        let mut values = match translate(&record, &self.config.translation, self.config.encoding) {
            Ok(v) => v,
            Err(error) => {
                let v = error_values(&record, error);
                self.undecodable(&topic, m.partition(), offset, &v);
                out.emit_on(ERROR_STREAM, v, None)?;
                return Ok(());
            }
        };
        if guarantee != Guarantee::AtLeastOnce {
            if let Some(p) = self.part_mut(m.topic(), m.partition()) {
                p.offsets.done(offset);
            }
            values.push(Value::Int(offset));
            out.emit(values, None)?;
            return Ok(());
        }
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(
            id,
            InFlight {
                tp: (topic, m.partition()),
                offset,
                values: values.clone(),
                fails: 0,
            },
        );
        values.push(Value::Int(floor));
        self.emit_tracked(values, id, out)?;
        Ok(())
    }

    /// Emits with message id `id`; if the engine refuses the emit, the record is
    /// scheduled again like a failed one, so it never holds its partition back unseen.
    fn emit_tracked(
        &mut self,
        values: Values,
        id: i64,
        out: &mut SpoutOutput<'_>,
    ) -> Result<(), ComponentError> {
        if let Err(e) = out.emit(values, Some(Value::Int(id))) {
            self.fail(Value::Int(id));
            return Err(e);
        }
        Ok(())
    }

    fn undecodable(&mut self, topic: &str, partition: i32, offset: i64, v: &Values) {
        self.counters.add(counters::UNDECODABLE, 1);
        if let Some(p) = self.part_mut(topic, partition) {
            p.offsets.done(offset);
        }
        let error = v.get(4).and_then(Value::as_str).unwrap_or("");
        if self.counters.get(counters::UNDECODABLE) == 1 {
            warn!(component = %self.component, topic, partition, offset, error, "undecodable record sent to the errors stream; further ones are logged at debug");
        } else {
            debug!(component = %self.component, topic, partition, offset, error, "undecodable record");
        }
    }

    /// atMostOnce: poll a batch, commit it, and emit records once their commit is
    /// confirmed.
    fn next_at_most_once(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        if let Some(m) = self.held.front() {
            let tp = (m.topic().to_owned(), m.partition());
            let confirmed = self
                .committer
                .as_ref()
                .and_then(|c| c.outcomes.lock().confirmed.get(&tp).copied());
            if confirmed.is_some_and(|c| c > m.offset()) {
                if let Some(m) = self.held.pop_front() {
                    self.emit_record(&m, out)?;
                }
                return Ok(());
            }
        }
        let mut last: HashMap<TopicPartition, i64> = HashMap::new();
        while self.held.len() < 500 {
            let Some(m) = self.poll() else { break };
            let Some(part) = self.part_mut(m.topic(), m.partition()) else {
                continue;
            };
            if !part.offsets.polled(m.offset()) {
                continue;
            }
            part.offsets.done(m.offset());
            last.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
            self.held.push_back(m);
        }
        if !self.take_failed_commits().is_empty() {
            // Commit again what is still held.
            for m in &self.held {
                let e = last.entry((m.topic().to_owned(), m.partition())).or_insert(0);
                *e = (*e).max(m.offset() + 1);
            }
        }
        if let Some(c) = &self.committer {
            c.send(last.into_iter().collect());
        }
        Ok(())
    }

    /// Commits now and waits up to `wait` for the broker's answer (close).
    fn final_commit(&mut self, wait: Duration) {
        if self.config.guarantee == Guarantee::AtMostOnce {
            return;
        }
        let sent = self.commit();
        if let Some(c) = &self.committer {
            c.wait_for(&sent, wait);
        }
    }
}

impl Spout for KafkaSpout {
    fn open(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.counters = ctx.counters.clone();
        self.component = ctx.component.clone();
        self.marker = format!("squall:{}", ctx.topology);
        let mut config = self.client_config(ctx);
        let refresh = RefreshSpec {
            config: self.config.clone(),
            client: config.clone(),
            marker: self.marker.clone(),
            task_index: ctx.task_index,
            tasks: ctx.component_tasks.len().max(1),
            name: format!("{}-{}", ctx.component, ctx.task_id),
        };
        config.set(
            "statistics.interval.ms",
            self.config.lag_interval.as_millis().max(1).to_string(),
        );
        let name = format!("{}-{}", ctx.component, ctx.task_id);
        self.committer = Some(
            Committer::spawn(&refresh.client, self.marker.clone(), ctx.counters.clone(), &name)
                .map_err(|e| ComponentError(format!("kafka: {e}")))?,
        );
        let client = SpoutClient {
            watermarks: Arc::clone(&self.watermarks),
            component: ctx.component.clone(),
        };
        let consumer: BaseConsumer<SpoutClient> = config
            .create_with_context(client)
            .map_err(|e| ComponentError(format!("kafka: creating the consumer: {e}")))?;
        self.consumer = Some(consumer);
        self.refresher = Some(refresh::spawn(refresh).map_err(|e| ComponentError(format!("kafka: {e}")))?);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        self.housekeeping();
        if self.config.guarantee == Guarantee::AtMostOnce {
            return self.next_at_most_once(out);
        }
        if self.emit_retry(out)? {
            return Ok(());
        }
        if let Some(m) = self.poll() {
            self.emit_record(&m, out)?;
        }
        Ok(())
    }

    fn ack(&mut self, msg_id: Value) {
        let Some(f) = msg_id.as_i64().and_then(|id| self.in_flight.remove(&id)) else {
            return;
        };
        if let Some(p) = self.part_mut(&f.tp.0, f.tp.1) {
            p.offsets.done(f.offset);
        }
    }

    fn fail(&mut self, msg_id: Value) {
        let Some(id) = msg_id.as_i64() else { return };
        let Some(f) = self.in_flight.get_mut(&id) else {
            return;
        };
        f.fails = f.fails.saturating_add(1);
        if self.config.retry.retries(f.fails) {
            let at = Instant::now() + self.config.retry.delay(f.fails);
            self.retries.insert((at, id));
            return;
        }
        self.counters.add(counters::GIVEN_UP, 1);
        warn!(component = %self.component, topic = %f.tp.0, partition = f.tp.1, offset = f.offset, fails = f.fails, "record given up after its retries");
        self.ack(Value::Int(id));
    }

    fn deactivate(&mut self) {
        self.commit();
    }

    fn close(&mut self) {
        self.final_commit(Duration::from_secs(2));
        self.refresher = None;
        self.committer = None;
        self.consumer = None;
    }
}
