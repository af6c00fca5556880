//! Engine messages → `Batch.messages` entries, and the frame headers around them.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use squall_engine::fabric::{Control, Msg};
use squall_engine::{Packet, Schema, Value, WireSchemas};
use squall_proto::wire::{to_peer, Hello, ToPeer};

use super::reader::{FIXED64, LEN, VARINT};

fn key(field: u32, wire_type: u8) -> u64 {
    u64::from(field << 3) | u64::from(wire_type)
}

fn varint_len(v: u64) -> usize {
    // Nearly every varint here is a key, a task or a length of one or two bytes; the
    // general formula's division showed in the pump's profile.
    if v < 1 << 7 {
        1
    } else if v < 1 << 14 {
        2
    } else {
        (64 - v.leading_zeros() as usize).div_ceil(7)
    }
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn zigzag64(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn zigzag32(i: i32) -> u64 {
    u64::from(((i << 1) ^ (i >> 31)) as u32)
}

/// Size of a length-delimited field holding `len` bytes (key of one byte: fields < 16).
fn nested(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_nested(out: &mut BytesMut, field: u32, len: usize) {
    put_varint(out, key(field, LEN));
    put_varint(out, len as u64);
}

/// A uint32/int field as prost writes it: omitted when zero.
fn uint_len(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint_len(v)
    }
}

fn put_uint(out: &mut BytesMut, field: u32, v: u64) {
    if v != 0 {
        put_varint(out, key(field, VARINT));
        put_varint(out, v);
    }
}

fn fixed_len(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        9
    }
}

fn put_fixed(out: &mut BytesMut, field: u32, v: u64) {
    if v != 0 {
        put_varint(out, key(field, FIXED64));
        out.put_u64_le(v);
    }
}

/// Encoded size of a `Value` message's content. Inlined for the flat values of the hot
/// path; lists and maps recurse out of line.
#[inline]
fn value_len(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(zigzag64(*i)),
        Value::Float(_) => 9,
        Value::Str(s) => nested(s.len()),
        Value::Bytes(b) => nested(b.len()),
        Value::List(_) | Value::Map(_) => container_len(v),
    }
}

fn container_len(v: &Value) -> usize {
    match v {
        Value::List(l) => nested(l.iter().map(|v| nested(value_len(v))).sum()),
        Value::Map(m) => nested(m.iter().map(|(k, v)| nested(entry_len(k, v))).sum()),
        _ => value_len(v),
    }
}

fn entry_len(k: &str, v: &Value) -> usize {
    let key = if k.is_empty() { 0 } else { nested(k.len()) };
    key + nested(value_len(v))
}

fn put_value(out: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => {
            put_varint(out, key(1, VARINT));
            out.put_u8(1);
        }
        Value::Bool(b) => {
            put_varint(out, key(2, VARINT));
            out.put_u8(u8::from(*b));
        }
        Value::Int(i) => {
            put_varint(out, key(3, VARINT));
            put_varint(out, zigzag64(*i));
        }
        Value::Float(f) => {
            put_varint(out, key(4, FIXED64));
            out.put_f64_le(*f);
        }
        Value::Str(s) => {
            put_nested(out, 5, s.len());
            out.put_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            put_nested(out, 6, b.len());
            out.put_slice(b);
        }
        Value::List(l) => {
            put_nested(out, 7, l.iter().map(|v| nested(value_len(v))).sum());
            for v in l.iter() {
                put_nested(out, 1, value_len(v));
                put_value(out, v);
            }
        }
        Value::Map(m) => {
            put_nested(out, 8, m.iter().map(|(k, v)| nested(entry_len(k, v))).sum());
            for (k, v) in m.iter() {
                put_nested(out, 1, entry_len(k, v));
                if !k.is_empty() {
                    put_nested(out, 1, k.len());
                    out.put_slice(k.as_bytes());
                }
                put_nested(out, 2, value_len(v));
                put_value(out, v);
            }
        }
    }
}

fn ids_len(root: u64, edge: u64) -> usize {
    fixed_len(root) + fixed_len(edge)
}

fn tuple_len(t: &Packet, (component, stream): (u32, u32)) -> usize {
    uint_len(u64::from(t.task()))
        + uint_len(zigzag32(t.source_task()))
        + uint_len(u64::from(component))
        + uint_len(u64::from(stream))
        + t.values().iter().map(|v| nested(value_len(v))).sum::<usize>()
        + t.message_ids()
            .iter()
            .map(|(r, e)| nested(ids_len(*r, *e)))
            .sum::<usize>()
}

/// Writes a tuple's fields after the headers already in `st`. (`st` is borrowed: moving
/// it copied the bytes just stored one by one, a store-forwarding stall per tuple.)
fn put_tuple(st: &mut Staged, out: &mut BytesMut, t: &Packet, (component, stream): (u32, u32)) {
    for (field, v) in [
        (1, u64::from(t.task())),
        (2, zigzag32(t.source_task())),
        (3, u64::from(component)),
        (4, u64::from(stream)),
    ] {
        st.room(out);
        st.uint(field, v);
    }
    for v in t.values() {
        st.value(out, v);
    }
    for (r, e) in t.message_ids() {
        st.room(out);
        st.nested(6, ids_len(*r, *e));
        st.fixed(1, *r);
        st.fixed(2, *e);
    }
    st.flush(out);
}

/// Stack room for the keys, lengths and numbers of a tuple, appended to the frame in one
/// copy (with the bytes of a string value after them): appended one by one, each byte
/// checked the frame's capacity and moved its length, which showed in the pump's profile.
struct Staged {
    b: [u8; STAGED],
    n: usize,
}

const STAGED: usize = 64;
/// The most one step writes: a value's two keys and lengths and a scalar (33 bytes), or
/// a message id (29).
const STEP: usize = 40;

impl Staged {
    fn new() -> Self {
        Staged { b: [0; STAGED], n: 0 }
    }

    fn flush(&mut self, out: &mut BytesMut) {
        out.put_slice(&self.b[..self.n]);
        self.n = 0;
    }

    /// Makes room for one step.
    fn room(&mut self, out: &mut BytesMut) {
        if self.n + STEP > STAGED {
            self.flush(out);
        }
    }

    fn byte(&mut self, b: u8) {
        self.b[self.n] = b;
        self.n += 1;
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.varint(key(field, VARINT));
            self.varint(v);
        }
    }

    fn fixed(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.varint(key(field, FIXED64));
            self.b[self.n..self.n + 8].copy_from_slice(&v.to_le_bytes());
            self.n += 8;
        }
    }

    fn nested(&mut self, field: u32, len: usize) {
        self.varint(key(field, LEN));
        self.varint(len as u64);
    }

    /// A `TupleMsg.values` entry. Strings and bytes follow their header straight from
    /// the value; lists and maps, rare on the hot path, are written by `put_value`.
    fn value(&mut self, out: &mut BytesMut, v: &Value) {
        self.room(out);
        let len = value_len(v);
        self.nested(5, len);
        match v {
            Value::Null => {
                self.varint(key(1, VARINT));
                self.byte(1);
            }
            Value::Bool(b) => {
                self.varint(key(2, VARINT));
                self.byte(u8::from(*b));
            }
            Value::Int(i) => {
                self.varint(key(3, VARINT));
                self.varint(zigzag64(*i));
            }
            Value::Float(f) => {
                self.varint(key(4, FIXED64));
                self.b[self.n..self.n + 8].copy_from_slice(&f.to_le_bytes());
                self.n += 8;
            }
            Value::Str(s) => {
                self.nested(5, s.len());
                self.flush(out);
                out.put_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                self.nested(6, b.len());
                self.flush(out);
                out.put_slice(b);
            }
            Value::List(_) | Value::Map(_) => {
                self.flush(out);
                put_value(out, v);
            }
        }
    }
}

/// Appends one `Batch.messages` entry for `msg`. Returns false (and writes nothing) for a
/// tuple whose stream is not in the plan's wire table, which no peer could decode.
pub fn encode_msg(msg: &Msg, schemas: &WireSchemas, out: &mut BytesMut) -> bool {
    MsgEncoder::new(schemas).encode(msg, out)
}

/// Encodes messages of one plan, remembering the wire ids of the last stream seen: a
/// sender's tuples mostly come in runs of one stream, and the plan's lookup hashes.
pub struct MsgEncoder<'s> {
    schemas: &'s WireSchemas,
    last: Option<(&'static Schema, (u32, u32))>,
}

impl<'s> MsgEncoder<'s> {
    /// An encoder for the plan whose wire table is `schemas`.
    pub fn new(schemas: &'s WireSchemas) -> Self {
        MsgEncoder { schemas, last: None }
    }

    fn ids(&mut self, schema: &'static Schema) -> Option<(u32, u32)> {
        match self.last {
            Some((s, ids)) if std::ptr::eq(s, schema) => Some(ids),
            _ => {
                let ids = self.schemas.id_of(schema)?;
                self.last = Some((schema, ids));
                Some(ids)
            }
        }
    }

    /// Appends one `Batch.messages` entry for `msg`; see [`encode_msg`].
    pub fn encode(&mut self, msg: &Msg, out: &mut BytesMut) -> bool {
        let ids = match msg {
            Msg::Tuple(tuple) => match self.ids(tuple.schema()) {
                Some(ids) => ids,
                None => return false,
            },
            _ => (0, 0),
        };
        put_msg(msg, ids, out);
        true
    }
}

/// Writes `msg`; `ids` are the wire ids of a tuple's stream.
fn put_msg(msg: &Msg, ids: (u32, u32), out: &mut BytesMut) {
    // (oneof field of Envelope, content length)
    let (field, len) = match msg {
        Msg::Tuple(tuple) => (1, tuple_len(tuple, ids)),
        Msg::Control(c) => control_len(c),
    };
    let envelope = nested(len);
    out.reserve(nested(envelope));
    let mut st = Staged::new();
    st.nested(1, envelope);
    st.nested(field, len);
    match msg {
        Msg::Tuple(tuple) => put_tuple(&mut st, out, tuple, ids),
        Msg::Control(c) => {
            st.flush(out);
            put_control(c, out);
        }
    }
}

/// The `Envelope` oneof field of an acking message, and its content length.
fn control_len(c: &Control) -> (u32, usize) {
    match *c {
        Control::AckInit {
            task,
            root,
            xor,
            spout_task,
        } => (
            2,
            uint_len(u64::from(task)) + fixed_len(root) + fixed_len(xor) + uint_len(u64::from(spout_task)),
        ),
        Control::Ack { task, root, val } => (3, uint_len(u64::from(task)) + fixed_len(root) + fixed_len(val)),
        Control::Fail { task, root } => (4, uint_len(u64::from(task)) + fixed_len(root)),
        Control::Reset { task, root } => (5, uint_len(u64::from(task)) + fixed_len(root)),
        Control::Done { task, root, failed } => (
            6,
            uint_len(u64::from(task)) + fixed_len(root) + uint_len(u64::from(failed)),
        ),
        Control::SpoutReset { task, root } => (7, uint_len(u64::from(task)) + fixed_len(root)),
    }
}

fn put_control(c: &Control, out: &mut BytesMut) {
    match *c {
        Control::AckInit {
            task,
            root,
            xor,
            spout_task,
        } => {
            put_uint(out, 1, u64::from(task));
            put_fixed(out, 2, root);
            put_fixed(out, 3, xor);
            put_uint(out, 4, u64::from(spout_task));
        }
        Control::Ack { task, root, val } => {
            put_uint(out, 1, u64::from(task));
            put_fixed(out, 2, root);
            put_fixed(out, 3, val);
        }
        Control::Fail { task, root } | Control::Reset { task, root } | Control::SpoutReset { task, root } => {
            put_uint(out, 1, u64::from(task));
            put_fixed(out, 2, root);
        }
        Control::Done { task, root, failed } => {
            put_uint(out, 1, u64::from(task));
            put_fixed(out, 2, root);
            put_uint(out, 3, u64::from(failed));
        }
    }
}

/// The bytes that turn a run of `Batch.messages` entries of `body_len` bytes into a
/// `ToPeer { batch }` message.
pub fn batch_header(body_len: usize) -> ([u8; 11], usize) {
    let mut b = BytesMut::with_capacity(11);
    put_varint(&mut b, key(2, LEN));
    put_varint(&mut b, body_len as u64);
    let mut out = [0u8; 11];
    out[..b.len()].copy_from_slice(&b);
    (out, b.len())
}

/// A complete `ToPeer { hello }` message.
pub fn hello_frame(hello: Hello) -> Bytes {
    ToPeer {
        kind: Some(to_peer::Kind::Hello(hello)),
    }
    .encode_to_vec()
    .into()
}
