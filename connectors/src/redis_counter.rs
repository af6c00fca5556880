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

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use squall_engine::{Bolt, BoltOutput, ComponentError, Counters, TaskContext, Tuple, Value};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::resp::{encode, Connection, Reply};

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
    buf: Vec<u8>,
    counters: Counters,
    component: String,
    warned_malformed: bool,
    warned_command: bool,
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
        RedisCounter {
            config,
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
        }
    }

    fn key_of<'t>(&self, input: &'t Tuple) -> Option<&'t str> {
        let v = match &self.config.field {
            Some(f) => input.field(f),
            None => input.get(0),
        };
        v.and_then(Value::as_str).filter(|k| split_key(k).is_some())
    }

    fn fail_all(&mut self, out: &mut BoltOutput<'_>) {
        for t in self.pending.drain(..) {
            out.fail(t);
        }
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
            self.counters.add(counters::COMMAND_ERRORS, errors);
            let first = replies.iter().find_map(|r| match r {
                Reply::Error(e) => Some(e.as_str()),
                _ => None,
            });
            if !self.warned_command {
                self.warned_command = true;
                warn!(component = %self.component, error = ?first, failed = errors, "Redis refused writes; their tuples failed");
            }
            out.report_error(format!(
                "redis-counter: Redis replied {first:?}; {errors} tuples failed"
            ));
        }
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
