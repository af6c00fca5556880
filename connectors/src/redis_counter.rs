//! `redis-counter`: counts `category_value` keys in Redis sorted sets (the talk's
//! `RedisBolt`), pipelined per batch, acking only what Redis confirmed.
//!
//! # Consumes
//! Tuples whose key field (config `field`, default the first field) is text of the form
//! `category_value`, split at the first `_`.
//!
//! # Writes (with `prefix` P, default empty)
//! - `action_<a>`: `ZINCRBY P+actions 1 <a>` and `ZADD P+action <unix time> <a>` (the
//!   talk's two writes: a count per action, and when each action was last seen);
//! - any other `category_value`: `ZINCRBY P+category 1 value`.
//!
//! # Config
//! - `url` (string, default `redis://127.0.0.1:6379`): `redis://[:password@]host:port[/db]`
//!   or `host:port`; `address` is accepted instead of `url`.
//! - `prefix` (string, default empty): prepended to every Redis key, so several
//!   topologies can share one Redis.
//! - `field` (string, default the input's first field): the key field.
//! - `batch_size` (positive integer, default 1000): the pipeline is flushed when this many
//!   tuples are waiting, and in any case after each batch of input the executor delivers
//!   (`Bolt::poll`), so a tuple never waits for more input.
//! - `aggregate` (bool, default `true`): within one flush, send one `ZINCRBY … n` per
//!   distinct set and member instead of n `ZINCRBY … 1` (and one `ZADD` per action).
//!   The counts in Redis are the same; the pipeline is much shorter.
//! - `timeout_ms` (positive integer, default 2000): connect, read and write timeout.
//! - `backoff_initial_ms` (default 100), `backoff_max_ms` (default 5000): reconnection
//!   delays, capped exponential with jitter.
//! - `exactly_once` (map, optional): count every source record once, however often it is
//!   delivered (see [Exactly once](#exactly-once)):
//!   - `source` (list of field names, required): the fields naming the record's source
//!     partition, e.g. `[topic, partition]` (text or integers);
//!   - `offset` (field name, required): the record's offset in its source (integer);
//!   - `floor` (field name, required): the source's floor when the record was emitted
//!     (integer);
//!   - `index` (field name, optional): the tuple's position among its record's tuples
//!     (integer), e.g. `json-keys`' `index`; absent: one tuple per record.
//!   - `tuples_per_record` (integer from 1 to 1024, default 16, only with `index`): the
//!     most tuples one record gives; indexes are below it.
//!
//!   Validation refuses the mode unless every spout upstream gives stable identities
//!   (`kafka` in `atLeastOnce`) and every input stream declares these fields, and refuses
//!   a `tuples_per_record` below what the kind making the index declares (`json-keys`:
//!   one key per rule), found upstream through bolts passing the field on.
//!
//! # Guarantees
//! - MUST ack a tuple only after Redis replied to every write it contributed to without
//!   an error; MUST fail it otherwise (error reply, broken connection, timeout), so the
//!   spout replays it. Counts in Redis are therefore at-least-once: a batch whose
//!   connection broke after Redis applied some writes is counted again on replay.
//! - MUST reconnect on its own: after a connection error the batch fails, and until the
//!   next attempt (capped exponential backoff with jitter) new batches fail at once
//!   without touching the network. Counted: `redis_errors` (connections lost or refused),
//!   `reconnects` (connections re-established), `command_errors` (error replies).
//! - MUST NOT replay what can never succeed: a key that is not text or has no `_` is
//!   counted as `malformed_keys`, reported once, and acked.
//! - MUST ignore tick tuples. Never panics on input or on Redis' replies.
//!
//! # Exactly once
//! With `exactly_once`, each tuple has a stable identity: its source `S` (the source
//! fields' values joined by `:`, text escaping `:` and `\` with `\`), its offset `O`, and
//! its index `I` (0 without `index`). With `T` = `tuples_per_record` (1 without `index`),
//! Redis holds per source:
//! - a hash `P+squall:eo:{S}`: the source's `floor`, the highest chunk written (`top`) and
//!   `stride` (`T`, so that a counter with another `T` is refused rather than misreading
//!   the bits);
//! - bitmaps `P+squall:eo:{S}:<C>`, one per chunk of `65536 / T` offsets: the tuple `(O, I)`
//!   is bit `(O - C * 65536 / T) * T + I` of chunk `C = O / (65536 / T)`, set once applied.
//!
//! The counters' keys are exactly those above: `ZREVRANGE P+country 0 9 WITHSCORES` reads
//! the same with the mode on or off.
//!
//! Each flush is one Lua script run (`EVALSHA`, loaded once with `SCRIPT LOAD`, and
//! `EVAL` when Redis answers `NOSCRIPT`, e.g. after a restart). The bolt computes each
//! tuple's chunk and bit, leaves out tuples repeating one earlier in the batch, and counts
//! each write's tuples. Redis runs the script atomically; it checks every key's type (and
//! each source's stride) before its first write, so it writes all of the batch or
//! nothing. Per chunk the bolt sends the tuples' bits as a mask of the bytes they span
//! (with each tuple's bit and writes, packed): tuples below the stored floor are skipped;
//! from the first one above it the span is read (`GETRANGE`), OR-ed with the mask and
//! written back (`SETRANGE`), a few thousand bytes at a time, in Lua; a tuple whose bit
//! was already set was applied before: skipped too. Then the writes with tuples left: `ZINCRBY` by
//! their number (so `aggregate` merges only tuples not applied before), `ZADD` of the
//! time stamp. Then, per source, the stored floor is raised to the highest floor of the
//! batch's tuples and the chunks wholly below it are deleted.
//!
//! Conditions (what the upstream MUST guarantee, which validation checks by kind):
//! - A replay MUST carry the same content under the same identity: the same key (and,
//!   with `index`, the same key at the same index) for the same source and offset.
//!   Without `index`, a record MUST give one tuple.
//! - The floor promise: when a tuple is emitted with floor `F`, every record of its
//!   source below `F` MUST be fully processed (its tree acked, or given up for good).
//!   Anything below the floor is then already counted, so its bits can go: the chunks
//!   kept span only the records in flight (from the floor's chunk to the highest written,
//!   `T` bits an offset), bounded by the spout's pending limit, not by the topic's length.
//!   A floor MAY be lower than the truth (a replay may carry an old floor).
//!   A record given up (failed and never replayed) before all its keys were applied
//!   stays partly counted.
//! - At-most-once upstream (a record committed before it is processed, never replayed)
//!   breaks neither rule but loses what failed: counts are then at most the truth.
//!   Validation refuses the mode for such spouts, as for spouts giving no identities.
//! - A record MUST NOT give more than `T` tuples: an index at or over `T` is an identity
//!   error (below), never another tuple's bit.
//! - No ordering is needed: a record is skipped only if its own bit is set or
//!   it is below a floor that promises it was processed, so deliveries and replays may
//!   arrive in any order, in any batch, at any of the counter's tasks (the state is per
//!   source, not per task), before or after a rebalance.
//!
//! Guarantees of the mode:
//! - MUST ack a batch's tuples only after the script replied, and fail all of them on an
//!   error reply or a broken connection. A connection that broke after Redis ran the
//!   script is no harm: the replays are skipped.
//! - Counts in Redis are exact (each record's increments applied once) under the
//!   conditions above, provided Redis keeps what it confirmed (e.g. `appendonly yes`,
//!   `appendfsync always`): a restart that loses confirmed writes loses their counts.
//! - A tuple without a usable identity (a field missing, not an integer, negative or
//!   over 2^53, an index not below `T`, or a source value neither text nor an integer)
//!   MUST NOT panic: it is
//!   counted as `identity_errors`, reported once, and acked (a replay would fail the same
//!   way). Counted: `applied` and `duplicates` (tuples skipped as applied before).

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use squall_engine::{Bolt, BoltOutput, ComponentError, Counters, TaskContext, Tuple, Value};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::resp::{encode, Connection, Reply};

pub mod exactly_once;

use exactly_once::{Applier, ApplyError, Identities, RecordId};

pub use squall_catalog::redis_counter::{RedisCounterConfig, KIND};

/// Counter names.
pub mod counters {
    /// Connections that failed or broke.
    pub const REDIS_ERRORS: &str = "redis_errors";
    /// Connections re-established after a failure.
    pub const RECONNECTS: &str = "reconnects";
    /// Error replies from Redis.
    pub const COMMAND_ERRORS: &str = "command_errors";
    /// Keys that are not `category_value` text.
    pub const MALFORMED_KEYS: &str = "malformed_keys";
    /// Exactly-once mode: tuples without a usable identity (acked and dropped).
    pub const IDENTITY_ERRORS: &str = "identity_errors";
    /// Exactly-once mode: tuples whose increments were applied.
    pub const APPLIED: &str = "applied";
    /// Exactly-once mode: tuples skipped as already applied (replays, duplicates).
    pub const DUPLICATES: &str = "duplicates";
}

/// The `redis-counter` bolt.
pub struct RedisCounter {
    config: RedisCounterConfig,
    conn: Option<Connection>,
    /// No connection attempt before this instant (after a failure).
    retry_at: Option<Instant>,
    /// A connection failed and none has worked since.
    down: bool,
    backoff: Backoff,
    pending: Vec<Tuple>,
    /// Exactly-once mode: the identity of each pending tuple, how identities are read,
    /// and the script's applier.
    ids: Vec<RecordId>,
    identities: Option<Identities>,
    applier: Option<Applier>,
    buf: Vec<u8>,
    counters: Counters,
    component: String,
    warned_malformed: bool,
    warned_command: bool,
    warned_identity: bool,
}

/// One write of a flush.
#[derive(Debug, PartialEq, Eq)]
enum Write<'a> {
    Incr { set: &'a str, member: &'a str, by: u64 },
    Stamp { set: &'a str, member: &'a str },
}

/// The category and value of a key, or `None` when it has no `_`.
fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('_')
}

/// The text of `input`'s key field (field `field`, or the first), if it is text.
fn key_text<'t>(field: Option<&str>, input: &'t Tuple) -> Option<&'t str> {
    match field {
        Some(f) => input.field(f),
        None => input.get(0),
    }
    .and_then(Value::as_str)
}

/// The `category_value` key of `input` (field `field`, or the first), if it has one.
fn key_of<'t>(field: Option<&str>, input: &'t Tuple) -> Option<&'t str> {
    key_text(field, input).filter(|k| split_key(k).is_some())
}

/// Which writes a batch of keys needs, and for each key the indices of its writes.
fn plan<'a>(keys: &[&'a str], aggregate: bool) -> (Vec<Write<'a>>, Vec<[u32; 2]>) {
    const NONE: u32 = u32::MAX;
    let mut writes: Vec<Write<'a>> = Vec::new();
    let mut deps = Vec::with_capacity(keys.len());
    let mut seen: HashMap<(bool, &'a str, &'a str), u32> = HashMap::new();
    let mut add = |writes: &mut Vec<Write<'a>>, w: Write<'a>| -> u32 {
        if !aggregate {
            writes.push(w);
            return (writes.len() - 1) as u32;
        }
        let id = match &w {
            Write::Incr { set, member, .. } => (true, *set, *member),
            Write::Stamp { set, member } => (false, *set, *member),
        };
        match seen.get(&id) {
            Some(&i) => {
                if let Some(Write::Incr { by, .. }) = writes.get_mut(i as usize) {
                    *by += 1;
                }
                i
            }
            None => {
                writes.push(w);
                let i = (writes.len() - 1) as u32;
                seen.insert(id, i);
                i
            }
        }
    };
    for key in keys {
        let Some((category, value)) = split_key(key) else {
            deps.push([NONE, NONE]);
            continue;
        };
        if category == "action" {
            let a = add(
                &mut writes,
                Write::Incr {
                    set: "actions",
                    member: value,
                    by: 1,
                },
            );
            let b = add(
                &mut writes,
                Write::Stamp {
                    set: "action",
                    member: value,
                },
            );
            deps.push([a, b]);
        } else {
            let a = add(
                &mut writes,
                Write::Incr {
                    set: category,
                    member: value,
                    by: 1,
                },
            );
            deps.push([a, NONE]);
        }
    }
    (writes, deps)
}

impl RedisCounter {
    /// A bolt with this configuration; it connects on its first flush.
    pub fn new(config: RedisCounterConfig) -> Self {
        let backoff = Backoff::new(config.backoff, Backoff::seed_for(0));
        let applier = config
            .exactly_once
            .as_ref()
            .map(|eo| Applier::new(&config.prefix, config.aggregate, eo.tuples_per_record));
        RedisCounter {
            identities: config.exactly_once.as_ref().map(Identities::new),
            config,
            ids: Vec::new(),
            applier,
            conn: None,
            retry_at: None,
            down: false,
            backoff,
            pending: Vec::new(),
            buf: Vec::new(),
            counters: Counters::default(),
            component: String::new(),
            warned_malformed: false,
            warned_command: false,
            warned_identity: false,
        }
    }

    fn key_of<'t>(&self, input: &'t Tuple) -> Option<&'t str> {
        key_of(self.config.field.as_deref(), input)
    }

    fn fail_all(&mut self, out: &mut BoltOutput<'_>) {
        self.ids.clear();
        for t in self.pending.drain(..) {
            out.fail(t);
        }
    }

    /// Counts and reports (the first time) a Redis error reply that failed `failed` tuples.
    fn refused(&mut self, error: Option<&str>, failed: u64, out: &mut BoltOutput<'_>) {
        self.counters.add(counters::COMMAND_ERRORS, failed);
        if !self.warned_command {
            self.warned_command = true;
            warn!(component = %self.component, error = ?error, failed, "Redis refused writes; their tuples failed");
        }
        out.report_error(format!(
            "redis-counter: Redis replied {error:?}; {failed} tuples failed"
        ));
    }

    fn connection_failed(&mut self, error: &str, out: &mut BoltOutput<'_>) {
        self.conn = None;
        self.counters.add(counters::REDIS_ERRORS, 1);
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        if !self.down {
            // Once per outage: every failed batch of a long outage would flood the log.
            warn!(component = %self.component, redis = %self.config.addr.address, error, retry_in_ms = delay.as_millis() as u64, "Redis unavailable; failing batches until it is back");
            out.report_error(format!(
                "redis-counter: Redis {} unavailable: {error}",
                self.config.addr.address
            ));
        } else {
            debug!(component = %self.component, redis = %self.config.addr.address, error, retry_in_ms = delay.as_millis() as u64, "Redis still unavailable");
        }
        self.down = true;
    }

    fn connect(&mut self, out: &mut BoltOutput<'_>) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        match Connection::open(&self.config.addr, self.config.timeout) {
            Ok(c) => {
                self.conn = Some(c);
                if self.down {
                    self.counters.add(counters::RECONNECTS, 1);
                    info!(component = %self.component, redis = %self.config.addr.address, "Redis reconnected");
                }
                true
            }
            Err(e) => {
                self.connection_failed(&e.to_string(), out);
                false
            }
        }
    }

    fn flush(&mut self, out: &mut BoltOutput<'_>) {
        if self.pending.is_empty() {
            return;
        }
        if !self.connect(out) {
            self.fail_all(out);
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        if self.applier.is_some() {
            return self.flush_exactly_once(&now, out);
        }
        let keys: Vec<&str> = self
            .pending
            .iter()
            .map(|t| self.key_of(t).unwrap_or(""))
            .collect();
        let (writes, deps) = plan(&keys, self.config.aggregate);
        self.buf.clear();
        let prefix = self.config.prefix.as_str();
        let mut name = String::new();
        let mut by_text = String::new();
        for w in &writes {
            name.clear();
            name.push_str(prefix);
            match w {
                Write::Incr { set, member, by } => {
                    name.push_str(set);
                    by_text.clear();
                    by_text.push_str(&by.to_string());
                    encode(
                        &[b"ZINCRBY", name.as_bytes(), by_text.as_bytes(), member.as_bytes()],
                        &mut self.buf,
                    );
                }
                Write::Stamp { set, member } => {
                    name.push_str(set);
                    encode(
                        &[b"ZADD", name.as_bytes(), now.as_bytes(), member.as_bytes()],
                        &mut self.buf,
                    );
                }
            }
        }
        let n = writes.len();
        drop(keys);
        let result = match self.conn.as_mut() {
            Some(c) => c.pipeline(&self.buf, n),
            None => return self.fail_all(out),
        };
        let replies = match result {
            Ok(r) => r,
            Err(e) => {
                self.connection_failed(&e.to_string(), out);
                self.fail_all(out);
                return;
            }
        };
        self.backoff.reset();
        self.retry_at = None;
        self.down = false;
        let is_err = |i: u32| matches!(replies.get(i as usize), Some(Reply::Error(_)));
        let mut errors = 0u64;
        for (t, [a, b]) in self.pending.drain(..).zip(deps) {
            if is_err(a) || is_err(b) {
                errors += 1;
                out.fail(t);
            } else {
                out.ack(t);
            }
        }
        if errors > 0 {
            let first = replies.iter().find_map(|r| match r {
                Reply::Error(e) => Some(e.as_str()),
                _ => None,
            });
            self.refused(first, errors, out);
        }
    }

    /// The batch in one script run: every tuple acked once Redis replied, all failed
    /// otherwise (the script writes all of the batch or none of it).
    fn flush_exactly_once(&mut self, now: &str, out: &mut BoltOutput<'_>) {
        let (Some(applier), Some(identities), Some(conn)) = (
            self.applier.as_mut(),
            self.identities.as_mut(),
            self.conn.as_mut(),
        ) else {
            return self.fail_all(out);
        };
        // Pending tuples passed `key_of` in `execute`: their keys are read without the check.
        let field = self.config.field.as_deref();
        let batch: Vec<(&str, RecordId)> = self
            .pending
            .iter()
            .zip(&self.ids)
            .map(|(t, id)| (key_text(field, t).unwrap_or(""), *id))
            .collect();
        let result = applier.apply(conn, identities.sources(), &batch, now);
        drop(batch);
        self.ids.clear();
        identities.trim();
        match result {
            Ok(done) => {
                self.backoff.reset();
                self.retry_at = None;
                self.down = false;
                self.counters.add(counters::APPLIED, done.applied);
                self.counters.add(counters::DUPLICATES, done.skipped);
                for t in self.pending.drain(..) {
                    out.ack(t);
                }
            }
            Err(ApplyError::Connection(e)) => {
                self.connection_failed(&e.to_string(), out);
                self.fail_all(out);
            }
            Err(ApplyError::Refused(e) | ApplyError::Invalid(e)) => {
                let failed = self.pending.len() as u64;
                self.refused(Some(&e), failed, out);
                self.fail_all(out);
            }
        }
    }

    /// A tuple without a usable identity can never be applied exactly once: counted,
    /// reported the first time, and acked (a replay would be refused the same way).
    fn no_identity(&mut self, input: Tuple, error: String, out: &mut BoltOutput<'_>) {
        self.counters.add(counters::IDENTITY_ERRORS, 1);
        if !self.warned_identity {
            self.warned_identity = true;
            let msg = format!("redis-counter: exactly_once: {error}");
            warn!(component = %self.component, error = %msg, "tuple without an identity acked and dropped; further ones are only counted");
            out.report_error(msg);
        }
        out.ack(input);
    }
}

impl Bolt for RedisCounter {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.counters = ctx.counters.clone();
        self.component = ctx.component.clone();
        self.backoff = Backoff::new(self.config.backoff, Backoff::seed_for(ctx.task_id));
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            return Ok(());
        }
        if self.key_of(&input).is_none() {
            self.counters.add(counters::MALFORMED_KEYS, 1);
            if !self.warned_malformed {
                self.warned_malformed = true;
                let msg = format!(
                    "redis-counter: input from {}/{} has no category_value key: {:?}",
                    input.source_component(),
                    input.source_stream(),
                    input.values()
                );
                warn!(component = %self.component, error = %msg, "malformed key acked and dropped; further ones are only counted");
                out.report_error(msg);
            }
            out.ack(input);
            return Ok(());
        }
        if let Some(identities) = self.identities.as_mut() {
            match identities.of(&input) {
                Ok(id) => self.ids.push(id),
                Err(error) => {
                    self.no_identity(input, error, out);
                    return Ok(());
                }
            }
        }
        self.pending.push(input);
        if self.pending.len() >= self.config.batch_size {
            self.flush(out);
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        self.flush(out);
        Ok(())
    }

    fn cleanup(&mut self) {
        // Tuples still pending were never written; their trees time out and replay.
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plans_the_talks_writes() {
        let keys = ["isanon_True", "action_edit", "country_United States", "bot_human"];
        let (w, deps) = plan(&keys, false);
        assert_eq!(
            w,
            [
                Write::Incr {
                    set: "isanon",
                    member: "True",
                    by: 1
                },
                Write::Incr {
                    set: "actions",
                    member: "edit",
                    by: 1
                },
                Write::Stamp {
                    set: "action",
                    member: "edit"
                },
                Write::Incr {
                    set: "country",
                    member: "United States",
                    by: 1
                },
                Write::Incr {
                    set: "bot",
                    member: "human",
                    by: 1
                },
            ]
        );
        assert_eq!(deps[1], [1, 2]);
        assert_eq!(deps[2], [3, u32::MAX]);
    }

    #[test]
    fn aggregates_within_a_flush() {
        let keys = [
            "action_edit",
            "anon_anon",
            "action_edit",
            "anon_anon",
            "anon_loggedin",
            "action_create",
        ];
        let (w, deps) = plan(&keys, true);
        assert_eq!(
            w,
            [
                Write::Incr {
                    set: "actions",
                    member: "edit",
                    by: 2
                },
                Write::Stamp {
                    set: "action",
                    member: "edit"
                },
                Write::Incr {
                    set: "anon",
                    member: "anon",
                    by: 2
                },
                Write::Incr {
                    set: "anon",
                    member: "loggedin",
                    by: 1
                },
                Write::Incr {
                    set: "actions",
                    member: "create",
                    by: 1
                },
                Write::Stamp {
                    set: "action",
                    member: "create"
                },
            ]
        );
        assert_eq!(
            deps,
            [
                [0, 1],
                [2, u32::MAX],
                [0, 1],
                [2, u32::MAX],
                [3, u32::MAX],
                [4, 5]
            ]
        );
    }

    #[test]
    fn values_keep_their_underscores() {
        assert_eq!(
            split_key("country_Bosnia_and_Herzegovina"),
            Some(("country", "Bosnia_and_Herzegovina"))
        );
        assert_eq!(split_key("nounderscore"), None);
    }
}
