//! The multilang protocol in MessagePack, as pystorm's `MsgpackSerializer` speaks it:
//! every message is one msgpack object, written back to back with no `end` lines.
//! Strings are msgpack `str` and byte values `bin` (what msgpack-python 1.x packs and
//! unpacks by default).
//!
//! Pure like [`crate::codec`], so it can be unit-tested and fuzzed: [`Splitter`] finds
//! where an object ends without decoding it, bounded in bytes and nesting; [`parse_message`]
//! decodes one object into a [`ChildMsg`]; [`parse_stream`] does both for a whole
//! buffer, as the host does. None of them panics or allocates beyond the input on any
//! input: lengths in headers are checked against the bytes present before anything is read.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

use crate::codec::{ChildMsg, ProtocolError};

/// Default bound of nested maps and lists in one child message (as deep as serde_json
/// lets a JSON message go).
pub const DEFAULT_MAX_DEPTH: usize = 128;
/// The largest nesting bound a setting may choose: decoding recurses once per level.
pub const MAX_DEPTH_LIMIT: usize = 1024;

/// Where the next object ends, found one header at a time. Remembers how far it got, so
/// a large message arriving in pieces is scanned once.
#[derive(Debug, Default)]
pub struct Splitter {
    /// Offset, from the start of the message in progress, of the next header.
    pos: usize,
    /// Items still to read in each open list or map (a map's keys and values both count);
    /// the bottom entry is the message itself.
    open: Vec<u64>,
}

/// What one header says.
struct Header {
    /// Bytes of the header and its payload (a string's text, a number's bytes).
    size: u64,
    /// Items that follow it: elements of a list, keys and values of a map.
    items: u64,
    container: bool,
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// The header at `buf[at..]`; `None` while its bytes have not all arrived.
fn header(buf: &[u8], at: usize) -> Result<Option<Header>, ProtocolError> {
    let Some(&marker) = buf.get(at) else {
        return Ok(None);
    };
    type Found = Result<Option<Header>, ProtocolError>;
    let scalar = |size: u64| -> Found {
        Ok(Some(Header {
            size,
            items: 0,
            container: false,
        }))
    };
    // A length of `n` bytes after the marker; the payload follows it.
    let sized = |n: usize, per_item: u64, container: bool| -> Found {
        let Some(len) = buf.get(at + 1..at + 1 + n) else {
            return Ok(None);
        };
        let len = be(len);
        Ok(Some(if container {
            Header {
                size: 1 + n as u64,
                items: len * per_item,
                container,
            }
        } else {
            Header {
                size: 1 + n as u64 + len,
                items: 0,
                container,
            }
        }))
    };
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => scalar(1),
        0x80..=0x8f => Ok(Some(Header {
            size: 1,
            items: 2 * u64::from(marker & 0x0f),
            container: true,
        })),
        0x90..=0x9f => Ok(Some(Header {
            size: 1,
            items: u64::from(marker & 0x0f),
            container: true,
        })),
        0xa0..=0xbf => scalar(1 + u64::from(marker & 0x1f)),
        0xc4 | 0xd9 => sized(1, 0, false),
        0xc5 | 0xda => sized(2, 0, false),
        0xc6 | 0xdb => sized(4, 0, false),
        0xca => scalar(5),
        0xcb => scalar(9),
        0xcc | 0xd0 => scalar(2),
        0xcd | 0xd1 => scalar(3),
        0xce | 0xd2 => scalar(5),
        0xcf | 0xd3 => scalar(9),
        0xdc => sized(2, 1, true),
        0xdd => sized(4, 1, true),
        0xde => sized(2, 2, true),
        0xdf => sized(4, 2, true),
        0xc7..=0xc9 | 0xd4..=0xd8 => Err(ProtocolError::InvalidMsgpack {
            error: format!("extension type (marker {marker:#04x}) is not part of the multilang protocol"),
            start: format!("{marker:02x}"),
        }),
        0xc1 => Err(ProtocolError::InvalidMsgpack {
            error: "byte 0xc1 is never used in msgpack".to_owned(),
            start: format!("{marker:02x}"),
        }),
    }
}

impl Splitter {
    /// Whether no object is part-way scanned: the next call starts at `buf[0]`.
    pub fn is_fresh(&self) -> bool {
        // An incomplete first header leaves `open` set but `pos` at 0: the scan would
        // start over from `buf[0]` all the same.
        self.pos == 0
    }

    /// Looks for the end of the object that starts at `buf[0]`: its length once complete,
    /// `None` while incomplete. An object that is or would be larger than `max_bytes`,
    /// nests deeper than `max_depth`, or is not msgpack is an error as soon as its header
    /// shows it, before its bytes are waited for.
    pub fn next(
        &mut self,
        buf: &[u8],
        max_bytes: usize,
        max_depth: usize,
    ) -> Result<Option<usize>, ProtocolError> {
        if self.open.is_empty() {
            self.pos = 0;
            self.open.push(1);
        }
        let r = self.scan(buf, max_bytes, max_depth);
        if !matches!(r, Ok(None)) {
            // Complete, or broken (the stream cannot be trusted after an error): start over.
            self.open.clear();
            self.pos = 0;
        }
        r
    }

    fn scan(
        &mut self,
        buf: &[u8],
        max_bytes: usize,
        max_depth: usize,
    ) -> Result<Option<usize>, ProtocolError> {
        // A loop, not recursion: a message may hold millions of items.
        loop {
            let depth = self.open.len();
            let Some(top) = self.open.last_mut() else {
                return Ok(Some(self.pos));
            };
            if *top == 0 {
                self.open.pop();
                continue;
            }
            let Some(h) = header(buf, self.pos)? else {
                return Ok(None);
            };
            let end = self.pos as u64 + h.size;
            if end > max_bytes as u64 {
                return Err(ProtocolError::TooLarge { max: max_bytes });
            }
            if h.container && depth > max_depth {
                return Err(ProtocolError::TooDeep { max: max_depth });
            }
            if end > buf.len() as u64 {
                return Ok(None);
            }
            *top -= 1;
            self.pos = end as usize;
            if h.items > 0 {
                self.open.push(h.items);
            }
        }
    }
}

/// The first bytes of a message in hex, for an error.
fn hex_start(bytes: &[u8]) -> String {
    bytes.iter().take(40).map(|b| format!("{b:02x}")).collect()
}

/// One complete object, as [`Splitter::next`] delimits it, to a message. The host and
/// [`parse_stream`] both go through here.
pub fn parse_message(bytes: &[u8], max_depth: usize) -> Result<ChildMsg, ProtocolError> {
    if let Some(m) = crate::wire::parse_fast_msgpack(bytes) {
        return Ok(m);
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    // The splitter already bounded the depth; this keeps the decoder's own bound above it.
    de.set_max_depth(max_depth.saturating_add(1));
    let Lenient(json) = Lenient::deserialize(&mut de).map_err(|e| ProtocolError::InvalidMsgpack {
        error: e.to_string(),
        start: hex_start(bytes),
    })?;
    crate::codec::parse_child_json(json)
}

/// Splits and parses a whole buffer of child output the way the host does: one result
/// per complete object, in order, stopping after the first error (the stream has no
/// delimiter to recover at); an incomplete tail is ignored. Never panics (the fuzz
/// entry point).
pub fn parse_stream(
    bytes: &[u8],
    max_bytes: usize,
    max_depth: usize,
) -> Vec<Result<ChildMsg, ProtocolError>> {
    let mut splitter = Splitter::default();
    let mut out = Vec::new();
    let mut rest = bytes;
    loop {
        if let Some((m, n)) = crate::mpfast::parse_prefix(rest, max_bytes, max_depth) {
            out.push(Ok(m));
            rest = &rest[n..];
            continue;
        }
        match splitter.next(rest, max_bytes, max_depth) {
            Ok(Some(n)) => {
                let m = parse_message(&rest[..n], max_depth);
                let failed = m.is_err();
                out.push(m);
                if failed {
                    return out;
                }
                rest = &rest[n..];
            }
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

/// Any msgpack object as JSON, the way the JSON protocol would carry it: `bin` as a list
/// of byte values, map keys that are not strings as their text.
struct Lenient(Json);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a msgpack value")
    }
    fn visit_unit<E>(self) -> Result<Lenient, E> {
        Ok(Lenient(Json::Null))
    }
    fn visit_none<E>(self) -> Result<Lenient, E> {
        Ok(Lenient(Json::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Lenient, E> {
        Ok(Lenient(Json::Bool(b)))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Lenient, E> {
        Ok(Lenient(Json::from(i)))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Lenient, E> {
        Ok(Lenient(Json::from(u)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Lenient, E> {
        // Non-finite floats have no JSON form: null, as serde_json renders them.
        Ok(Lenient(Number::from_f64(f).map_or(Json::Null, Json::Number)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Lenient, E> {
        Ok(Lenient(Json::String(s.to_owned())))
    }
    fn visit_bytes<E>(self, b: &[u8]) -> Result<Lenient, E> {
        Ok(Lenient(Json::Array(b.iter().map(|x| Json::from(*x)).collect())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient, A::Error> {
        let mut items = Vec::new();
        while let Some(Lenient(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Lenient(Json::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
        let mut m = Map::new();
        while let Some((Lenient(k), Lenient(v))) = map.next_entry()? {
            let key = match k {
                Json::String(s) => s,
                other => other.to_string(),
            };
            m.insert(key, v);
        }
        Ok(Lenient(Json::Object(m)))
    }
}

/// Host → child encoders: the same messages as [`crate::encode`] writes in JSON.
pub(crate) mod write {
    use rmp::encode as e;
    use serde_json::Value as Json;
    use squall_engine::Value;

    fn len32(n: usize) -> u32 {
        // The engine's values and the handshake are far below 4 G items.
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn text(out: &mut Vec<u8>, s: &str) {
        // Writing into a Vec cannot fail.
        let _ = e::write_str(out, s);
    }

    /// Appends `v`: a byte value as `bin`, which pystorm hands to Python as `bytes`.
    pub fn value(out: &mut Vec<u8>, v: &Value) {
        let _ = match v {
            Value::Null => e::write_nil(out).map_err(drop),
            Value::Bool(b) => e::write_bool(out, *b).map_err(drop),
            Value::Int(i) => e::write_sint(out, *i).map(drop).map_err(drop),
            Value::Float(f) => e::write_f64(out, *f).map_err(drop),
            Value::Str(s) => e::write_str(out, s).map_err(drop),
            Value::Bytes(b) => e::write_bin(out, b).map_err(drop),
            Value::List(l) => {
                let _ = e::write_array_len(out, len32(l.len()));
                l.iter().for_each(|x| value(out, x));
                Ok(())
            }
            Value::Map(m) => {
                let _ = e::write_map_len(out, len32(m.len()));
                for (k, x) in m.iter() {
                    text(out, k);
                    value(out, x);
                }
                Ok(())
            }
        };
    }

    /// Appends any JSON (the handshake, spout commands).
    /// `v` alone, as a child would send it (tests build their input with this).
    #[cfg(test)]
    pub fn packed(v: &Json) -> Vec<u8> {
        let mut out = Vec::new();
        json(&mut out, v);
        out
    }

    pub fn json(out: &mut Vec<u8>, v: &Json) {
        match v {
            Json::Null => {
                let _ = e::write_nil(out);
            }
            Json::Bool(b) => {
                let _ = e::write_bool(out, *b);
            }
            Json::Number(n) => {
                let _ = match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => e::write_sint(out, i).map(drop),
                    (None, Some(u)) => e::write_uint(out, u).map(drop),
                    _ => e::write_f64(out, n.as_f64().unwrap_or(f64::NAN)),
                };
            }
            Json::String(s) => text(out, s),
            Json::Array(a) => {
                let _ = e::write_array_len(out, len32(a.len()));
                a.iter().for_each(|x| json(out, x));
            }
            Json::Object(m) => {
                let _ = e::write_map_len(out, len32(m.len()));
                for (k, x) in m {
                    text(out, k);
                    json(out, x);
                }
            }
        }
    }

    fn int(out: &mut Vec<u8>, i: i64) {
        let _ = e::write_sint(out, i);
    }

    /// A tuple message: `{"id":"<id>","comp":..,"stream":..,"task":..,"tuple":[..]}`,
    /// the id a string as in the JSON protocol (pystorm echoes it back).
    pub fn tuple(out: &mut Vec<u8>, id: &str, comp: Option<&str>, stream: &str, task: i64, values: &[Value]) {
        let _ = e::write_map_len(out, 5);
        text(out, "id");
        text(out, id);
        text(out, "comp");
        match comp {
            Some(c) => text(out, c),
            None => {
                let _ = e::write_nil(out);
            }
        }
        text(out, "stream");
        text(out, stream);
        text(out, "task");
        int(out, task);
        text(out, "tuple");
        let _ = e::write_array_len(out, len32(values.len()));
        values.iter().for_each(|v| value(out, v));
    }

    /// A list of task ids (the reply to an emit that wants them).
    pub fn task_ids(out: &mut Vec<u8>, tasks: &[u32]) {
        let _ = e::write_array_len(out, len32(tasks.len()));
        for t in tasks {
            let _ = e::write_uint(out, u64::from(*t));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::codec::Emit;
    use proptest::prelude::*;
    use serde_json::json;
    use squall_engine::Value;

    use write::packed as pack;

    fn one(v: Json) -> Result<ChildMsg, ProtocolError> {
        let bytes = pack(&v);
        let mut got = parse_stream(&bytes, 1 << 20, DEFAULT_MAX_DEPTH);
        assert_eq!(got.len(), 1, "{v}");
        got.remove(0)
    }

    /// The host tries the one-pass decoder only on a fresh splitter; a look at an empty or
    /// header-less buffer must leave it fresh, or the next message misses that path.
    #[test]
    fn a_splitter_is_fresh_until_it_scans_past_the_first_header() {
        let ack = pack(&json!({"command": "ack", "id": "1"}));
        let mut s = Splitter::default();
        assert!(s.is_fresh());
        assert_eq!(s.next(&[], 1 << 20, 8), Ok(None));
        assert!(s.is_fresh(), "an empty buffer scans nothing");
        assert_eq!(s.next(&ack[..3], 1 << 20, 8), Ok(None));
        assert!(!s.is_fresh(), "part of the map is scanned");
        assert_eq!(s.next(&ack, 1 << 20, 8), Ok(Some(ack.len())));
        assert!(s.is_fresh());
    }

    #[test]
    fn messages_decode_as_their_json_twins_do() {
        for v in [
            json!({"pid": 42}),
            json!({"command": "sync"}),
            json!({"command": "ack", "id": "5"}),
            json!({"command": "fail", "id": 6}),
            json!({"command": "log", "msg": "hi", "level": 3}),
            json!({"command": "error", "msg": "boom"}),
            json!({"command": "metrics", "name": "m", "params": 3}),
            json!({"command": "emit", "anchors": ["1", "2"], "stream": "s", "tuple": ["a", 1, null, 2.5, [true], {"k": "v"}]}),
            json!({"command": "emit", "id": {"k": [1]}, "task": 9, "tuple": [], "need_task_ids": false}),
            json!({"command": "emit", "anchors": "7", "tuple": [1]}),
        ] {
            let want = crate::codec::parse_child_message(&v.to_string());
            assert_eq!(one(v.clone()), want, "{v}");
        }
    }

    #[test]
    fn ids_keep_their_text() {
        for id in ["5", "007", "x", "", "18446744073709551616"] {
            assert_eq!(
                one(json!({"command": "ack", "id": id})),
                Ok(ChildMsg::Ack(crate::codec::InputId::from(id)))
            );
            let Ok(ChildMsg::Fail(got)) = one(json!({"command": "fail", "id": id})) else {
                panic!()
            };
            assert_eq!(got.to_string(), id);
            let Ok(ChildMsg::Emit(e)) = one(json!({"command": "emit", "anchors": [id, "1"], "tuple": []}))
            else {
                panic!()
            };
            let texts: Vec<String> = e.anchors.iter().map(ToString::to_string).collect();
            assert_eq!(texts, [id, "1"]);
        }
    }

    #[test]
    fn errors_are_the_json_sides() {
        assert_eq!(
            one(json!({"command": "dance"})),
            Err(ProtocolError::UnknownCommand("dance".into()))
        );
        assert!(matches!(one(json!([1, 2])), Err(ProtocolError::Invalid(m)) if m.contains("an array")));
        assert!(matches!(
            one(json!({"command": "emit"})),
            Err(ProtocolError::Invalid(_))
        ));
    }

    #[test]
    fn bin_values_and_non_string_keys_decode() {
        // {"command": "emit", "tuple": [b"\x00\xff", {1: "one"}]} as msgpack-python packs it.
        let mut b = Vec::new();
        rmp::encode::write_map_len(&mut b, 2).unwrap();
        rmp::encode::write_str(&mut b, "command").unwrap();
        rmp::encode::write_str(&mut b, "emit").unwrap();
        rmp::encode::write_str(&mut b, "tuple").unwrap();
        rmp::encode::write_array_len(&mut b, 2).unwrap();
        rmp::encode::write_bin(&mut b, &[0, 255]).unwrap();
        rmp::encode::write_map_len(&mut b, 1).unwrap();
        rmp::encode::write_uint(&mut b, 1).unwrap();
        rmp::encode::write_str(&mut b, "one").unwrap();
        let Ok(ChildMsg::Emit(Emit { tuple, .. })) = parse_message(&b, DEFAULT_MAX_DEPTH) else {
            panic!()
        };
        let map: BTreeMap<String, Value> = [("1".to_owned(), Value::from("one"))].into_iter().collect();
        assert_eq!(
            tuple.to_vec(),
            vec![Value::Bytes(vec![0u8, 255].into()), Value::Map(Arc::new(map))]
        );
    }

    #[test]
    fn objects_are_split_across_reads_without_end_lines() {
        let mut bytes = pack(&json!({"command": "sync"}));
        bytes.extend(pack(&json!({"pid": 7})));
        bytes.extend(pack(&json!({"command": "ack", "id": "1"})));
        bytes.extend(&pack(&json!({"command": "sync"}))[..3]);
        for step in [1, 2, 5, 1000] {
            let mut sp = Splitter::default();
            let (mut start, mut end, mut got) = (0, 0, Vec::new());
            while end < bytes.len() {
                end = (end + step).min(bytes.len());
                while let Some(n) = sp.next(&bytes[start..end], 1000, 8).unwrap() {
                    got.push(parse_message(&bytes[start..start + n], 8));
                    start += n;
                }
            }
            assert_eq!(
                got,
                vec![
                    Ok(ChildMsg::Sync),
                    Ok(ChildMsg::Pid(7)),
                    Ok(ChildMsg::Ack("1".into()))
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn bounds_are_enforced_from_the_headers() {
        // A str32 header claiming 4 GiB: refused at once, nothing waited for or allocated.
        assert_eq!(
            parse_stream(&[0x81, 0xa1, b'x', 0xdb, 0xff, 0xff, 0xff, 0xff], 1024, 8),
            vec![Err(ProtocolError::TooLarge { max: 1024 })]
        );
        let big = pack(&json!({"command": "log", "msg": "x".repeat(2000)}));
        assert_eq!(
            parse_stream(&big, 1024, 8),
            vec![Err(ProtocolError::TooLarge { max: 1024 })]
        );
        // 9 nested lists inside the message map: depth 10.
        let mut deep = json!([]);
        for _ in 0..8 {
            deep = json!([deep]);
        }
        let msg = pack(&json!({"command": "emit", "tuple": deep}));
        assert_eq!(
            parse_stream(&msg, 1024, 9),
            vec![Err(ProtocolError::TooDeep { max: 9 })]
        );
        assert!(matches!(
            parse_stream(&msg, 1024, 10)[..],
            [Ok(ChildMsg::Emit(_))]
        ));
        // A header claiming 2^32 items of nil is bounded by the bytes, not the count.
        assert_eq!(
            parse_stream(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0], 1024, 8),
            vec![]
        );
        let many = [&[0xdd, 0xff, 0xff, 0xff, 0xff][..], &[0xc0; 2000]].concat();
        assert_eq!(
            parse_stream(&many, 1024, 8),
            vec![Err(ProtocolError::TooLarge { max: 1024 })]
        );
    }

    #[test]
    fn malformed_input_is_a_clear_error() {
        // Only the marker is quoted: what follows it may not have arrived yet, and the error
        // must not depend on how the bytes were read.
        let e = parse_stream(&[0xc1, 0, 0], 1024, 8);
        assert!(matches!(&e[..], [Err(ProtocolError::InvalidMsgpack { start, .. })] if start == "c1"));
        let e = parse_stream(&[0xd4, 1, 2], 1024, 8);
        assert!(
            matches!(&e[..], [Err(ProtocolError::InvalidMsgpack { error, .. })] if error.contains("extension"))
        );
        // A str with bytes that are not UTF-8 as a command: the general parser says so.
        let e = parse_stream(
            &[
                0x81, 0xa7, b'c', b'o', b'm', b'm', b'a', b'n', b'd', 0xa2, 0xff, 0xfe,
            ],
            1024,
            8,
        );
        assert!(matches!(&e[..], [Err(_)]), "{e:?}");
    }

    #[test]
    fn host_messages_are_what_msgpack_python_reads() {
        let mut out = Vec::new();
        write::tuple(
            &mut out,
            "7",
            Some("split"),
            "default",
            3,
            &[Value::from("a"), Value::Int(-2)],
        );
        let got: Json = rmp_serde::from_slice(&out).unwrap();
        assert_eq!(
            got,
            json!({"id": "7", "comp": "split", "stream": "default", "task": 3, "tuple": ["a", -2]})
        );
        out.clear();
        write::tuple(&mut out, "hb1", None, "__heartbeat", -1, &[]);
        let got: Json = rmp_serde::from_slice(&out).unwrap();
        assert_eq!(
            got,
            json!({"id": "hb1", "comp": null, "stream": "__heartbeat", "task": -1, "tuple": []})
        );
        out.clear();
        write::task_ids(&mut out, &[4, 5]);
        assert_eq!(out, [0x92, 4, 5]);
        out.clear();
        write::value(&mut out, &Value::Bytes(vec![1u8, 2].into()));
        assert_eq!(out, [0xc4, 2, 1, 2], "bytes go as bin");
    }

    proptest! {
        #[test]
        fn parse_stream_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_stream(&bytes, 128, 8);
        }

        /// Whatever the host's encoder writes, the splitter delimits exactly, at any depth bound it meets.
        #[test]
        fn encoded_values_split_exactly(s in "[a-z]{0,40}", n in any::<i64>(), f in any::<f64>(), depth in 0usize..6) {
            let mut v = Value::List(Arc::new(vec![Value::from(s.as_str()), Value::Int(n), Value::Float(f), Value::Null]));
            for _ in 0..depth {
                v = Value::List(Arc::new(vec![v, Value::Bool(true)]));
            }
            let mut out = Vec::new();
            write::value(&mut out, &v);
            let len = out.len();
            out.extend_from_slice(&[0x90]);
            prop_assert_eq!(Splitter::default().next(&out, 1 << 20, depth + 1), Ok(Some(len)));
        }
    }
}
