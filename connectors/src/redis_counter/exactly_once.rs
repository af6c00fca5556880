//! The exactly-once mode of `redis-counter`: each tuple's stable identity, and the Lua
//! script that applies a batch's new increments atomically (its conditions are in the
//! parent module's specification).

use std::fmt::Write as _;

use squall_engine::{Tuple, Value};

use super::{plan, Write};
use crate::resp::{Connection, Reply, RespError};

pub use squall_catalog::redis_counter::ExactlyOnceConfig;

/// The script applying one batch (KEYS and ARGV are described in it).
pub const SCRIPT: &str = include_str!("apply.lua");

/// Offsets and floors are kept as sorted-set scores (doubles) and compared in Lua:
/// exact up to 2^53.
pub const MAX_OFFSET: u64 = 1 << 53;

/// Key of a source's set of applied identities (and its floor), after the counter's prefix.
pub const STATE_KEY: &str = "squall:eo:";

/// The member of a source's set that holds its floor (as its score).
pub const FLOOR_MEMBER: &str = "floor";

/// One tuple's stable identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordId {
    /// The source partition, as text: the source fields' values joined by `:`.
    pub source: String,
    /// The record's offset in its source.
    pub offset: u64,
    /// Every offset of the source below this was fully processed when the record was emitted.
    pub floor: u64,
    /// The tuple's position among its record's tuples.
    pub index: Option<u64>,
}

impl RecordId {
    /// The identity of `input`, or why it has none: a missing field, or a value of the
    /// wrong type or range.
    pub fn of(config: &ExactlyOnceConfig, input: &Tuple) -> Result<Self, String> {
        let field = |name: &str| {
            input.field(name).ok_or_else(|| {
                format!(
                    "no identity field {name:?} in input from {}/{} (fields: {})",
                    input.source_component(),
                    input.source_stream(),
                    input.fields().join(", ")
                )
            })
        };
        let int = |name: &str, max: u64| -> Result<u64, String> {
            let v = field(name)?;
            v.as_i64()
                .and_then(|i| u64::try_from(i).ok())
                .filter(|i| *i <= max)
                .ok_or_else(|| format!("identity field {name:?} is {v:?}, not an integer from 0 to {max}"))
        };
        let mut source = String::new();
        for (i, name) in config.source.iter().enumerate() {
            if i > 0 {
                source.push(':');
            }
            match field(name)? {
                Value::Int(n) => {
                    let _ = write!(source, "{n}");
                }
                Value::Str(s) => escape_into(s, &mut source),
                other => {
                    return Err(format!(
                        "source field {name:?} is {other:?}, not text or an integer"
                    ))
                }
            }
        }
        Ok(RecordId {
            source,
            offset: int(&config.offset, MAX_OFFSET)?,
            floor: int(&config.floor, MAX_OFFSET)?,
            index: match &config.index {
                Some(name) => Some(int(name, u64::from(u32::MAX))?),
                None => None,
            },
        })
    }

    /// The member naming this tuple in its source's set: `offset:index`, or `offset`.
    pub fn member(&self) -> String {
        match self.index {
            Some(i) => format!("{}:{i}", self.offset),
            None => self.offset.to_string(),
        }
    }
}

/// Text source values with `\` and `:` escaped, so the joined source text is unambiguous.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// What a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Tuples whose increments were applied now.
    pub applied: u64,
    /// Tuples applied before (replays), or below their source's floor.
    pub skipped: u64,
}

/// Why a batch was not applied. Either way nothing of it was applied, or (a broken
/// connection after Redis ran the script) all of it was: a replay finds out which.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The connection is unusable.
    #[error("{0}")]
    Connection(#[from] RespError),
    /// Redis refused the script (an error reply): nothing of the batch was written.
    #[error("Redis replied {0}")]
    Refused(String),
}

/// Applies batches through the script, over connections the caller owns.
#[derive(Debug)]
pub struct Applier {
    prefix: String,
    aggregate: bool,
    /// The script's SHA1 once loaded (it does not change across connections or servers).
    sha: Option<String>,
    /// The command sent, and its arguments after the verb and script.
    buf: Vec<u8>,
    args: Vec<u8>,
}

impl Applier {
    /// An applier for keys under `prefix`, merging writes within a batch when `aggregate`.
    pub fn new(prefix: &str, aggregate: bool) -> Self {
        Applier {
            prefix: prefix.to_owned(),
            aggregate,
            sha: None,
            buf: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Applies the tuples (their `category_value` keys and identities) not applied
    /// before, in one script run, with `now` (unix seconds) for the actions' time stamps.
    /// Keys that are not `category_value` count as tuples without writes.
    pub fn apply(
        &mut self,
        conn: &mut Connection,
        batch: &[(&str, &RecordId)],
        now: &str,
    ) -> Result<Applied, ApplyError> {
        if batch.is_empty() {
            return Ok(Applied::default());
        }
        let (n, repeats) = self.arguments(batch, now);
        let sha = match &self.sha {
            Some(sha) => sha.clone(),
            None => match conn.command(&[b"SCRIPT", b"LOAD", SCRIPT.as_bytes()])? {
                Reply::Bulk(Some(sha)) => {
                    let sha = String::from_utf8_lossy(&sha).into_owned();
                    self.sha = Some(sha.clone());
                    sha
                }
                Reply::Error(e) => return Err(ApplyError::Refused(e)),
                other => return Err(ApplyError::Refused(format!("SCRIPT LOAD: {other:?}"))),
            },
        };
        let reply = self.call(conn, b"EVALSHA", sha.as_bytes(), n)?;
        let reply = match reply {
            // The server lost its script cache (a restart, SCRIPT FLUSH): send the script.
            Reply::Error(e) if e.starts_with("NOSCRIPT") => self.call(conn, b"EVAL", SCRIPT.as_bytes(), n)?,
            other => other,
        };
        match reply {
            Reply::Array(Some(r)) => match r.as_slice() {
                [Reply::Int(a), Reply::Int(s)] => Ok(Applied {
                    applied: u64::try_from(*a).unwrap_or(0),
                    skipped: u64::try_from(*s).unwrap_or(0) + repeats,
                }),
                _ => Err(ApplyError::Refused(format!("unexpected reply {r:?}"))),
            },
            Reply::Error(e) => Err(ApplyError::Refused(e)),
            other => Err(ApplyError::Refused(format!("unexpected reply {other:?}"))),
        }
    }

    /// Sends `verb script` followed by the `n` arguments encoded in `self.args`.
    fn call(
        &mut self,
        conn: &mut Connection,
        verb: &[u8],
        script: &[u8],
        n: usize,
    ) -> Result<Reply, RespError> {
        self.buf.clear();
        self.buf.push(b'*');
        push_uint(&mut self.buf, (n + 2) as u64);
        self.buf.extend_from_slice(b"\r\n");
        bulk(&mut self.buf, verb);
        bulk(&mut self.buf, script);
        self.buf.extend_from_slice(&self.args);
        let mut replies = conn.pipeline(&self.buf, 1)?;
        replies
            .pop()
            .ok_or_else(|| RespError::Protocol("no reply".to_owned()))
    }

    /// `numkeys`, KEYS and ARGV of the script for this batch, encoded as RESP bulk
    /// strings into `self.args` (no string per argument); returns how many, and how many
    /// tuples repeat an identity earlier in the batch (left out).
    fn arguments(&mut self, batch: &[(&str, &RecordId)], now: &str) -> (usize, u64) {
        let keys: Vec<&str> = batch.iter().map(|(k, _)| *k).collect();
        let (writes, deps) = plan(&keys, self.aggregate);
        // Sources in order of first appearance, each with the highest floor seen.
        let mut sources: Vec<(&str, u64)> = Vec::new();
        let mut source_of = Vec::with_capacity(batch.len());
        for (_, id) in batch {
            let s = match sources.iter().position(|(s, _)| *s == id.source) {
                Some(s) => s,
                None => {
                    sources.push((&id.source, 0));
                    sources.len() - 1
                }
            };
            sources[s].1 = sources[s].1.max(id.floor);
            source_of.push(s + 1);
        }
        let (ns, nw) = (sources.len(), writes.len());
        let a = &mut self.args;
        a.clear();
        bulk_uint(a, (ns + nw) as u64);
        let mut key = Vec::new();
        for (s, _) in &sources {
            key.clear();
            key.extend_from_slice(self.prefix.as_bytes());
            key.extend_from_slice(STATE_KEY.as_bytes());
            key.extend_from_slice(s.as_bytes());
            bulk(a, &key);
        }
        for w in &writes {
            let (Write::Incr { set, .. } | Write::Stamp { set, .. }) = w;
            key.clear();
            key.extend_from_slice(self.prefix.as_bytes());
            key.extend_from_slice(set.as_bytes());
            bulk(a, &key);
        }
        bulk(a, now.as_bytes());
        bulk_uint(a, ns as u64);
        for (_, f) in &sources {
            bulk_uint(a, *f);
        }
        bulk_uint(a, nw as u64);
        for w in &writes {
            let (kind, member): (&[u8], &str) = match w {
                Write::Incr { member, .. } => (b"i", member),
                Write::Stamp { member, .. } => (b"s", member),
            };
            bulk(a, kind);
            bulk(a, member.as_bytes());
        }
        // The tuples per source in ascending offset order (the script skips those below
        // the source's floor from the start), each identity once: a repeat within the
        // batch is skipped here, as one applied before is skipped by the script.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_unstable_by_key(|&t| (source_of[t], batch[t].1.offset, batch[t].1.index));
        order.dedup_by_key(|t| (source_of[*t], batch[*t].1.offset, batch[*t].1.index));
        let repeats = (batch.len() - order.len()) as u64;
        let write_ref = |i: u32| if i == u32::MAX { 0 } else { u64::from(i) + 1 };
        let m = nw as u64 + 1;
        let mut next = 0;
        for s in 1..=ns {
            let end = next + order[next..].iter().take_while(|&&t| source_of[t] == s).count();
            bulk_uint(a, (end - next) as u64);
            for &t in &order[next..end] {
                let id = batch[t].1;
                bulk_uint(a, id.offset);
                // The member, `offset:index` or `offset`, without a string of its own.
                key.clear();
                push_uint(&mut key, id.offset);
                if let Some(i) = id.index {
                    key.push(b':');
                    push_uint(&mut key, i);
                }
                bulk(a, &key);
                let [wa, wb] = deps[t];
                bulk_uint(a, write_ref(wa) * m + write_ref(wb));
            }
            next = end;
        }
        let n = 1 + ns + nw + 1 + 1 + ns + 1 + 2 * nw + ns + 3 * order.len();
        (n, repeats)
    }
}

/// `v` in decimal, written at the end of `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends `v` in decimal.
fn push_uint(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(decimal(v, &mut [0; 20]));
}

/// Appends one RESP bulk string.
fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    push_uint(out, b.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends `v` in decimal as one RESP bulk string.
fn bulk_uint(out: &mut Vec<u8>, v: u64) {
    bulk(out, decimal(v, &mut [0; 20]));
}
