//! The exactly-once mode of `redis-counter`: each tuple's stable identity, and the Lua
//! script that applies a batch's new increments atomically (its conditions are in the
//! parent module's specification).

use std::fmt::Write as _;

use squall_engine::{Tuple, Value};

use super::{plan, Write};
use crate::resp::{encode, Connection, Reply, RespError};

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
    buf: Vec<u8>,
}

impl Applier {
    /// An applier for keys under `prefix`, merging writes within a batch when `aggregate`.
    pub fn new(prefix: &str, aggregate: bool) -> Self {
        Applier {
            prefix: prefix.to_owned(),
            aggregate,
            sha: None,
            buf: Vec::new(),
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
        let args = self.arguments(batch, now);
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
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
        let reply = self.call(conn, b"EVALSHA", sha.as_bytes(), &args)?;
        let reply = match reply {
            // The server lost its script cache (a restart, SCRIPT FLUSH): send the script.
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                self.call(conn, b"EVAL", SCRIPT.as_bytes(), &args)?
            }
            other => other,
        };
        match reply {
            Reply::Array(Some(r)) => match r.as_slice() {
                [Reply::Int(a), Reply::Int(s)] => Ok(Applied {
                    applied: u64::try_from(*a).unwrap_or(0),
                    skipped: u64::try_from(*s).unwrap_or(0),
                }),
                _ => Err(ApplyError::Refused(format!("unexpected reply {r:?}"))),
            },
            Reply::Error(e) => Err(ApplyError::Refused(e)),
            other => Err(ApplyError::Refused(format!("unexpected reply {other:?}"))),
        }
    }

    fn call(
        &mut self,
        conn: &mut Connection,
        verb: &[u8],
        script: &[u8],
        args: &[&[u8]],
    ) -> Result<Reply, RespError> {
        self.buf.clear();
        let mut all: Vec<&[u8]> = Vec::with_capacity(args.len() + 2);
        all.push(verb);
        all.push(script);
        all.extend_from_slice(args);
        encode(&all, &mut self.buf);
        let mut replies = conn.pipeline(&self.buf, 1)?;
        replies
            .pop()
            .ok_or_else(|| RespError::Protocol("no reply".to_owned()))
    }

    /// `numkeys`, KEYS and ARGV of the script for this batch.
    fn arguments(&self, batch: &[(&str, &RecordId)], now: &str) -> Vec<String> {
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
        let mut a = Vec::with_capacity(4 + 2 * ns + 3 * nw + 5 * batch.len());
        a.push((ns + nw).to_string());
        for (s, _) in &sources {
            a.push(format!("{}{STATE_KEY}{s}", self.prefix));
        }
        for w in &writes {
            let (Write::Incr { set, .. } | Write::Stamp { set, .. }) = w;
            a.push(format!("{}{set}", self.prefix));
        }
        a.push(now.to_owned());
        a.push(ns.to_string());
        a.extend(sources.iter().map(|(_, f)| f.to_string()));
        a.push(nw.to_string());
        for w in &writes {
            let (kind, member) = match w {
                Write::Incr { member, .. } => ("i", member),
                Write::Stamp { member, .. } => ("s", member),
            };
            a.push(kind.to_owned());
            a.push((*member).to_owned());
        }
        a.push(batch.len().to_string());
        let write_ref = |i: u32| if i == u32::MAX { 0 } else { i as usize + 1 };
        for (((_, id), s), [wa, wb]) in batch.iter().zip(source_of).zip(deps) {
            a.push(s.to_string());
            a.push(id.offset.to_string());
            a.push(id.member());
            a.push(write_ref(wa).to_string());
            a.push(write_ref(wb).to_string());
        }
        a
    }
}
