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

/// Offsets and floors are compared in Lua, as doubles: exact up to 2^53.
pub const MAX_OFFSET: u64 = 1 << 53;

/// Key of a source's state (`<prefix>squall:eo:{<source>}`, a hash) and, after `:<chunk>`,
/// of its bitmaps, after the counter's prefix.
pub const STATE_KEY: &str = "squall:eo:";

/// Bits of one bitmap: `CHUNK_BITS / stride` offsets of a source, `stride` bits each.
pub const CHUNK_BITS: u64 = 1 << 16;

/// Writes a batch may have (numbered from 1 in 3 bytes); a tuple has at most two.
const MAX_WRITES: usize = (1 << 24) - 1;

/// Sources sharing one table before it is cleared between batches (a source value that
/// is never the same twice must not grow it without bound).
const MAX_SOURCES: usize = 4096;

/// One tuple's stable identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordId {
    /// The source partition: its number in the [`Sources`] the batch is applied with.
    pub source: u32,
    /// The record's offset in its source.
    pub offset: u64,
    /// Every offset of the source below this was fully processed when the record was emitted.
    pub floor: u64,
    /// The tuple's position among its record's tuples (0 without `index`).
    pub index: u32,
}

/// The sources of a batch's identities, each as text: the source fields' values joined
/// by `:`, text escaping `:` and `\` with `\`.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    texts: Vec<String>,
}

impl Sources {
    /// The number of the source with this text, added if new.
    pub fn intern(&mut self, text: &str) -> u32 {
        match self.texts.iter().position(|t| t == text) {
            Some(i) => i as u32,
            None => {
                self.texts.push(text.to_owned());
                (self.texts.len() - 1) as u32
            }
        }
    }

    /// The text of source `i`.
    pub fn text(&self, i: u32) -> Option<&str> {
        self.texts.get(i as usize).map(String::as_str)
    }

    /// Sources known.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// Where a schema holds the identity fields.
#[derive(Clone, Debug)]
struct Positions {
    source: Vec<usize>,
    offset: usize,
    floor: usize,
    index: Option<usize>,
}

/// Reads tuples' identities: the fields' positions looked up once per schema, each
/// source's text built once.
#[derive(Debug)]
pub struct Identities {
    config: ExactlyOnceConfig,
    sources: Sources,
    /// Each source's values, in the order of `sources`.
    values: Vec<Vec<Value>>,
    /// The last schema seen (interned, so its address names it) and its positions.
    schema: Option<(&'static [String], Positions)>,
}

impl Identities {
    /// Identities by these fields.
    pub fn new(config: &ExactlyOnceConfig) -> Self {
        Identities {
            config: config.clone(),
            sources: Sources::default(),
            values: Vec::new(),
            schema: None,
        }
    }

    /// The sources named so far.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Forgets the sources once there are many, when no identity read refers to them.
    pub fn trim(&mut self) {
        if self.sources.len() > MAX_SOURCES {
            self.sources.texts.clear();
            self.values.clear();
        }
    }

    /// Caches where `input`'s schema holds the identity fields.
    fn resolve(&mut self, input: &Tuple) -> Result<(), String> {
        let fields = input.fields();
        if !matches!(&self.schema, Some((f, _)) if std::ptr::eq(*f, fields)) {
            let at = |name: &str| {
                fields.iter().position(|f| f == name).ok_or_else(|| {
                    format!(
                        "no identity field {name:?} in input from {}/{} (fields: {})",
                        input.source_component(),
                        input.source_stream(),
                        fields.join(", ")
                    )
                })
            };
            let c = &self.config;
            let positions = Positions {
                source: c.source.iter().map(|n| at(n)).collect::<Result<_, _>>()?,
                offset: at(&c.offset)?,
                floor: at(&c.floor)?,
                index: c.index.as_deref().map(at).transpose()?,
            };
            self.schema = Some((fields, positions));
        }
        Ok(())
    }

    /// The identity of `input`, or why it has none: a missing field, or a value of the
    /// wrong type or range (an index at or over `tuples_per_record` included).
    pub fn of(&mut self, input: &Tuple) -> Result<RecordId, String> {
        let tuples = u64::from(self.config.tuples_per_record);
        self.resolve(input)?;
        let Some((_, p)) = &self.schema else {
            return Err("no schema".to_owned());
        };
        let c = &self.config;
        let value = |i: usize| input.get(i).unwrap_or(&Value::Null);
        let int = |name: &str, i: usize, max: u64| -> Result<u64, String> {
            let v = value(i);
            v.as_i64()
                .and_then(|i| u64::try_from(i).ok())
                .filter(|i| *i <= max)
                .ok_or_else(|| format!("identity field {name:?} is {v:?}, not an integer from 0 to {max}"))
        };
        let index = match (&c.index, p.index) {
            (Some(name), Some(i)) => {
                let n = int(name, i, u64::from(u32::MAX))?;
                if n >= tuples {
                    return Err(format!(
                        "identity field {name:?} is {n}, not below exactly_once.tuples_per_record ({tuples}): \
                         its record gives more tuples than the counter can tell apart; raise tuples_per_record"
                    ));
                }
                n as u32
            }
            _ => 0,
        };
        let offset = int(&c.offset, p.offset, MAX_OFFSET)?;
        let floor = int(&c.floor, p.floor, MAX_OFFSET)?;
        let known = self.values.iter().position(|vs| {
            vs.len() == p.source.len() && vs.iter().zip(&p.source).all(|(v, &i)| value(i) == v)
        });
        let source = match known {
            Some(s) => s as u32,
            None => {
                let mut text = String::new();
                for (k, (name, &i)) in c.source.iter().zip(&p.source).enumerate() {
                    if k > 0 {
                        text.push(':');
                    }
                    match value(i) {
                        Value::Int(n) => {
                            let _ = write!(text, "{n}");
                        }
                        Value::Str(s) => escape_into(s, &mut text),
                        other => {
                            return Err(format!(
                                "source field {name:?} is {other:?}, not text or an integer"
                            ))
                        }
                    }
                }
                self.values
                    .push(p.source.iter().map(|&i| value(i).clone()).collect());
                self.sources.texts.push(text);
                (self.sources.texts.len() - 1) as u32
            }
        };
        Ok(RecordId {
            source,
            offset,
            floor,
            index,
        })
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
    /// The batch cannot be applied as it is; nothing was sent.
    #[error("{0}")]
    Invalid(String),
}

/// Applies batches through the script, over connections the caller owns.
#[derive(Debug)]
pub struct Applier {
    prefix: String,
    aggregate: bool,
    /// Bits per offset (tuples per record), and offsets per bitmap.
    stride: u64,
    per_chunk: u64,
    /// The script's SHA1 once loaded (it does not change across connections or servers).
    sha: Option<String>,
    /// The command sent, and its arguments after the verb and script.
    buf: Vec<u8>,
    args: Vec<u8>,
    /// Reused per batch: the tuples in order, each source's highest floor, the chunks
    /// (source, chunk, first and end in `order`), the tuples each write counts.
    order: Vec<u32>,
    floors: Vec<u64>,
    chunks: Vec<(u32, u64, usize, usize)>,
    counts: Vec<u64>,
}

impl Applier {
    /// An applier for keys under `prefix`, merging writes within a batch when `aggregate`,
    /// for records of up to `tuples_per_record` tuples (indexes below it).
    pub fn new(prefix: &str, aggregate: bool, tuples_per_record: u32) -> Self {
        let stride = u64::from(tuples_per_record.max(1));
        Applier {
            prefix: prefix.to_owned(),
            aggregate,
            stride,
            per_chunk: (CHUNK_BITS / stride).max(1),
            sha: None,
            buf: Vec::new(),
            args: Vec::new(),
            order: Vec::new(),
            floors: Vec::new(),
            chunks: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Applies the tuples (their `category_value` keys and identities, with the sources
    /// these name) not applied before, in one script run, with `now` (unix seconds) for the
    /// actions' time stamps. Keys that are not `category_value` count as tuples without
    /// writes. A tuple whose index is not below `tuples_per_record`, or whose source is
    /// not in `sources`, refuses the batch before anything is sent.
    pub fn apply(
        &mut self,
        conn: &mut Connection,
        sources: &Sources,
        batch: &[(&str, RecordId)],
        now: &str,
    ) -> Result<Applied, ApplyError> {
        if batch.is_empty() {
            return Ok(Applied::default());
        }
        let stride = self.stride;
        if batch.len() >= MAX_WRITES / 2 {
            return Err(ApplyError::Invalid(format!(
                "a batch of {} tuples: the script numbers their writes in 3 bytes; lower batch_size",
                batch.len()
            )));
        }
        if let Some((_, id)) = batch
            .iter()
            .find(|(_, id)| u64::from(id.index) >= stride || sources.text(id.source).is_none())
        {
            return Err(ApplyError::Invalid(format!(
                "tuple {id:?}: its index is not below tuples_per_record ({stride}) or its source is unknown"
            )));
        }
        let (n, repeats) = self.arguments(sources, batch, now);
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

    /// Where tuple `id` is in its source's bitmaps: the chunk, and the bit in it.
    pub fn bit_of(&self, id: &RecordId) -> (u64, u64) {
        let chunk = id.offset / self.per_chunk;
        let bit = (id.offset - chunk * self.per_chunk) * self.stride + u64::from(id.index);
        (chunk, bit)
    }

    /// The key of a source's state, or with `Some(chunk)` of one of its bitmaps.
    pub fn key_of(&self, source: &str, chunk: Option<u64>) -> String {
        let mut key = Vec::new();
        self.push_key(&mut key, source, chunk);
        String::from_utf8_lossy(&key).into_owned()
    }

    fn push_key(&self, key: &mut Vec<u8>, source: &str, chunk: Option<u64>) {
        key.clear();
        key.extend_from_slice(self.prefix.as_bytes());
        key.extend_from_slice(STATE_KEY.as_bytes());
        key.push(b'{');
        key.extend_from_slice(source.as_bytes());
        key.push(b'}');
        if let Some(c) = chunk {
            key.push(b':');
            push_uint(key, c);
        }
    }

    /// Orders the batch's tuples by source, offset and index without repeats (returns how
    /// many repeats were left out), and finds each source's highest floor and the chunks.
    fn group(&mut self, batch: &[(&str, RecordId)]) -> u64 {
        let ident = |t: &u32| {
            let id = &batch[*t as usize].1;
            (id.source, id.offset, id.index)
        };
        self.order.clear();
        self.order.extend(0..batch.len() as u32);
        self.order.sort_unstable_by_key(ident);
        self.order.dedup_by_key(|t| ident(t));
        self.floors.clear();
        for (_, id) in batch {
            let s = id.source as usize;
            if self.floors.len() <= s {
                self.floors.resize(s + 1, 0);
            }
            self.floors[s] = self.floors[s].max(id.floor);
        }
        self.chunks.clear();
        for (i, &t) in self.order.iter().enumerate() {
            let id = &batch[t as usize].1;
            let chunk = id.offset / self.per_chunk;
            match self.chunks.last_mut() {
                Some((s, c, _, end)) if *s == id.source && *c == chunk => *end = i + 1,
                _ => self.chunks.push((id.source, chunk, i, i + 1)),
            }
        }
        (batch.len() - self.order.len()) as u64
    }

    /// `numkeys`, KEYS and ARGV of the script for this batch (see apply.lua), encoded as
    /// RESP bulk strings into `self.args` (no string per argument); returns how many, and
    /// how many tuples repeat an identity earlier in the batch (left out).
    fn arguments(&mut self, sources: &Sources, batch: &[(&str, RecordId)], now: &str) -> (usize, u64) {
        let keys: Vec<&str> = batch.iter().map(|(k, _)| *k).collect();
        let (writes, deps) = plan(&keys, self.aggregate);
        let repeats = self.group(batch);
        let nw = writes.len();
        // The tuples each write counts, repeats left out (the script takes off those it skips).
        self.counts.clear();
        self.counts.resize(nw, 0);
        for &t in &self.order {
            for w in deps[t as usize] {
                if let Some(c) = self.counts.get_mut(w as usize) {
                    *c += 1;
                }
            }
        }
        // Sources in the order of the chunks, each with its number of chunks.
        let mut per_source: Vec<(u32, usize)> = Vec::new();
        for &(s, ..) in &self.chunks {
            match per_source.last_mut() {
                Some((last, n)) if *last == s => *n += 1,
                _ => per_source.push((s, 1)),
            }
        }
        let mut a = std::mem::take(&mut self.args);
        a.clear();
        let nkeys = per_source.len() + self.chunks.len() + nw;
        bulk_uint(&mut a, nkeys as u64);
        let mut key = Vec::new();
        // Each source's state, then its chunks (a source's chunks are contiguous).
        for (i, &(s, c, ..)) in self.chunks.iter().enumerate() {
            let text = sources.text(s).unwrap_or("");
            if i == 0 || self.chunks[i - 1].0 != s {
                self.push_key(&mut key, text, None);
                bulk(&mut a, &key);
            }
            self.push_key(&mut key, text, Some(c));
            bulk(&mut a, &key);
        }
        for w in &writes {
            let (Write::Incr { set, .. } | Write::Stamp { set, .. }) = w;
            key.clear();
            key.extend_from_slice(self.prefix.as_bytes());
            key.extend_from_slice(set.as_bytes());
            bulk(&mut a, &key);
        }
        bulk(&mut a, now.as_bytes());
        bulk_uint(&mut a, per_source.len() as u64);
        bulk_uint(&mut a, nw as u64);
        bulk_uint(&mut a, self.stride);
        bulk_uint(&mut a, self.per_chunk);
        for &(s, n) in &per_source {
            bulk_uint(&mut a, self.floors[s as usize]);
            bulk_uint(&mut a, n as u64);
        }
        for (w, count) in writes.iter().zip(&self.counts) {
            let (kind, member): (&[u8], &str) = match w {
                Write::Incr { member, .. } => (b"i", member),
                Write::Stamp { member, .. } => (b"s", member),
            };
            bulk(&mut a, kind);
            bulk(&mut a, member.as_bytes());
            bulk_uint(&mut a, *count);
        }
        // Writes are numbered from 1 in 3 bytes (0: none); checked in `apply`.
        let write_ref = |i: u32| if i == u32::MAX { 0 } else { i + 1 };
        let mut n = 1 + nkeys + 5 + 2 * per_source.len() + 3 * nw;
        let mut mask = Vec::new();
        let mut tuples = Vec::new();
        for &(_, c, first, end) in &self.chunks {
            let bits = self.order[first..end]
                .iter()
                .map(|&t| self.bit_of(&batch[t as usize].1).1);
            let (lo, hi) = (
                self.bit_of(&batch[self.order[first] as usize].1).1 / 8,
                self.bit_of(&batch[self.order[end - 1] as usize].1).1 / 8,
            );
            mask.clear();
            mask.resize((hi - lo + 1) as usize, 0u8);
            tuples.clear();
            for (bit, &t) in bits.zip(&self.order[first..end]) {
                mask[(bit / 8 - lo) as usize] |= 0x80 >> (bit % 8);
                // Bits are below CHUNK_BITS (2^16): two bytes.
                tuples.extend_from_slice(&(bit as u16).to_be_bytes());
                for w in deps[t as usize] {
                    tuples.extend_from_slice(&write_ref(w).to_be_bytes()[1..]);
                }
            }
            bulk_uint(&mut a, c);
            bulk_uint(&mut a, (end - first) as u64);
            bulk_uint(&mut a, lo);
            bulk(&mut a, &mask);
            bulk(&mut a, &tuples);
            n += 5;
        }
        self.args = a;
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
