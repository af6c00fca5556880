//! One pass over a msgpack message for the messages that come once or twice per tuple
//! (`emit`, `ack`, `fail`, `sync`): the object is delimited and decoded together, reading
//! each header once, with ids as [`InputId`]s and values built straight from the bytes.
//!
//! It takes only the plain shape pystorm writes: a map of known keys, each once, whose
//! values have the expected types, and a tuple of scalars (nil, booleans, numbers, text,
//! bytes). Anything else (nested values, an unknown key, invalid UTF-8, a message not yet
//! complete) returns `None`, and the general path ([`crate::msgpack::Splitter`], then
//! [`crate::msgpack::parse_message`]) decides, with its precise errors; on what this takes,
//! the two agree.

use squall_engine::{Value, Values};

use crate::codec::{Anchors, ChildMsg, Emit, InputId};

/// Bytes at the front of `buf`, advanced as they are read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0, |v, b| (v << 8) | u64::from(*b)))
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The payload of a `str` whose marker was `m`.
    fn str_body(&mut self, m: u8) -> Option<&'a [u8]> {
        let len = match m {
            0xa0..=0xbf => u64::from(m & 0x1f),
            0xd9 => self.be(1)?,
            0xda => self.be(2)?,
            0xdb => self.be(4)?,
            _ => return None,
        };
        self.take(usize::try_from(len).ok()?)
    }

    fn text(&mut self) -> Option<&'a str> {
        let m = self.byte()?;
        std::str::from_utf8(self.str_body(m)?).ok()
    }

    fn array_len(&mut self) -> Option<usize> {
        let n = match self.byte()? {
            m @ 0x90..=0x9f => u64::from(m & 0x0f),
            0xdc => self.be(2)?,
            0xdd => self.be(4)?,
            _ => return None,
        };
        usize::try_from(n).ok()
    }

    fn map_len(&mut self) -> Option<usize> {
        let n = match self.byte()? {
            m @ 0x80..=0x8f => u64::from(m & 0x0f),
            0xde => self.be(2)?,
            0xdf => self.be(4)?,
            _ => return None,
        };
        usize::try_from(n).ok()
    }

    /// Whether the next value is nil, which is then consumed.
    fn nil(&mut self) -> bool {
        let is = self.peek() == Some(0xc0);
        if is {
            self.pos += 1;
        }
        is
    }

    /// An integer as serde sees it: signed where it fits, else the unsigned value.
    fn int(&mut self) -> Option<Int> {
        let m = self.byte()?;
        Some(match m {
            0x00..=0x7f => Int::I(i64::from(m)),
            0xe0..=0xff => Int::I(i64::from(m as i8)),
            0xcc => Int::U(self.be(1)?),
            0xcd => Int::U(self.be(2)?),
            0xce => Int::U(self.be(4)?),
            0xcf => Int::U(self.be(8)?),
            0xd0 => Int::I(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => Int::I(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => Int::I(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => Int::I(self.be(8)? as i64),
            _ => return None,
        })
    }

    /// One scalar tuple value, as [`crate::wire`]'s decoding builds it.
    fn value(&mut self) -> Option<Value> {
        let m = self.peek()?;
        Some(match m {
            0xc0 => {
                self.pos += 1;
                Value::Null
            }
            0xc2 | 0xc3 => {
                self.pos += 1;
                Value::Bool(m == 0xc3)
            }
            0xca => {
                self.pos += 1;
                let bits = u32::try_from(self.be(4)?).ok()?;
                Value::Float(f64::from(f32::from_bits(bits)))
            }
            0xcb => {
                self.pos += 1;
                Value::Float(f64::from_bits(self.be(8)?))
            }
            0xa0..=0xbf | 0xd9..=0xdb => Value::from(self.text()?),
            0xc4..=0xc6 => {
                self.pos += 1;
                let len = self.be(1 << (m - 0xc4))?;
                let bytes = self.take(usize::try_from(len).ok()?)?;
                Value::Bytes(bytes.to_vec().into())
            }
            _ => match self.int()? {
                Int::I(i) => Value::Int(i),
                // Beyond i64, a float, as `Value::from_json` does.
                Int::U(u) => i64::try_from(u).map_or(Value::Float(u as f64), Value::Int),
            },
        })
    }
}

enum Int {
    I(i64),
    U(u64),
}

/// The fields of a common message, each at most once.
#[derive(Default)]
struct Fields<'a> {
    command: Option<&'a str>,
    /// `Some(None)` for an explicit nil.
    id: Option<Option<&'a str>>,
    anchors: Option<Anchors>,
    stream: Option<Option<String>>,
    task: Option<Option<i64>>,
    tuple: Option<Values>,
    need_task_ids: Option<Option<bool>>,
}

/// Puts `v` in `slot` unless the key came before (serde refuses a repeated field).
fn once<T>(slot: &mut Option<T>, v: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

/// Decodes the message at the start of `buf` when it is complete, takes the plain shape
/// described in the module docs and fits the bounds: the message and the bytes it takes up.
pub(crate) fn parse_prefix(buf: &[u8], max_bytes: usize, max_depth: usize) -> Option<(ChildMsg, usize)> {
    // The map and the lists in it are two levels.
    if max_depth < 2 {
        return None;
    }
    // Past the bound the message reads as incomplete, and the splitter refuses it before
    // anything of it is decoded.
    let buf = &buf[..buf.len().min(max_bytes)];
    let mut r = Reader { buf, pos: 0 };
    let mut f = Fields::default();
    for _ in 0..r.map_len()? {
        let m = r.byte()?;
        let key = r.str_body(m)?;
        match key {
            b"command" => once(&mut f.command, r.text()?)?,
            b"id" => {
                let id = if r.nil() { None } else { Some(r.text()?) };
                once(&mut f.id, id)?
            }
            b"anchors" => {
                // A nil list is no anchors, as serde reads it.
                let mut anchors = Anchors::new();
                if !r.nil() {
                    for _ in 0..r.array_len()? {
                        anchors.push(InputId::new(r.text()?));
                    }
                }
                once(&mut f.anchors, anchors)?
            }
            b"stream" => {
                let s = if r.nil() { None } else { Some(r.text()?.to_owned()) };
                once(&mut f.stream, s)?
            }
            b"task" => {
                let t = if r.nil() {
                    None
                } else {
                    match r.int()? {
                        Int::I(i) => Some(i),
                        Int::U(u) => Some(i64::try_from(u).ok()?),
                    }
                };
                once(&mut f.task, t)?
            }
            b"tuple" => {
                let n = r.array_len()?;
                let mut values = Values::new();
                for _ in 0..n {
                    values.push(r.value()?);
                }
                once(&mut f.tuple, values)?
            }
            b"need_task_ids" => {
                let b = match r.byte()? {
                    0xc0 => None,
                    0xc2 => Some(false),
                    0xc3 => Some(true),
                    _ => return None,
                };
                once(&mut f.need_task_ids, b)?
            }
            _ => return None,
        }
    }
    Some((message(f)?, r.pos))
}

/// The message the fields make, as [`crate::wire`] builds it.
fn message(f: Fields<'_>) -> Option<ChildMsg> {
    let input = |id: Option<Option<&str>>| id.flatten().map(InputId::new);
    Some(match f.command? {
        "sync" => ChildMsg::Sync,
        "ack" => ChildMsg::Ack(input(f.id)?),
        "fail" => ChildMsg::Fail(input(f.id)?),
        "emit" => {
            let (task, need_task_ids) =
                crate::wire::emit_target(f.task.flatten(), f.need_task_ids.flatten())?;
            ChildMsg::Emit(Emit {
                id: f.id.flatten().map(|s| serde_json::Value::String(s.to_owned())),
                anchors: f.anchors.unwrap_or_default(),
                stream: f.stream.flatten(),
                task,
                tuple: f.tuple?,
                need_task_ids,
            })
        }
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::msgpack::{parse_message, write, Splitter, DEFAULT_MAX_DEPTH};
    use proptest::prelude::*;
    use serde_json::{json, Value as Json};

    use crate::msgpack::write::packed as pack;

    /// What the general path makes of the object at the start of `buf`.
    fn general(buf: &[u8], max: usize, depth: usize) -> Option<(ChildMsg, usize)> {
        let n = Splitter::default().next(buf, max, depth).ok()??;
        Some((parse_message(&buf[..n], depth).ok()?, n))
    }

    #[test]
    fn the_messages_pystorm_sends_per_tuple_take_the_fast_path() {
        for v in [
            json!({"command": "emit", "anchors": ["12"], "tuple": ["x".repeat(100)], "need_task_ids": false}),
            json!({"command": "ack", "id": "12"}),
            json!({"command": "fail", "id": "x-1"}),
            json!({"command": "sync"}),
            json!({"command": "emit", "id": "7", "stream": "s", "task": 3, "tuple": [null, true, -1, 2.5, 300, -40000]}),
        ] {
            let mut b = pack(&v);
            let whole = b.len();
            b.extend(pack(&json!({"command": "sync"})));
            let fast = parse_prefix(&b, 1 << 20, DEFAULT_MAX_DEPTH);
            assert!(fast.is_some(), "{v}");
            assert_eq!(fast.as_ref().map(|f| f.1), Some(whole));
            assert_eq!(fast, general(&b, 1 << 20, DEFAULT_MAX_DEPTH), "{v}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_path() {
        for v in [
            json!({"pid": 3}),
            json!({"command": "log", "msg": "hi"}),
            json!({"command": "ack", "id": 5}),
            json!({"command": "emit", "tuple": [[1]]}),
            json!({"command": "emit", "tuple": [{"k": 1}]}),
            json!({"command": "emit", "anchors": "7", "tuple": []}),
            json!({"command": "emit", "task": -1, "tuple": []}),
            json!({"command": "emit", "other": 1, "tuple": []}),
            json!({"command": "emit"}),
            json!([1, 2]),
        ] {
            assert_eq!(parse_prefix(&pack(&v), 1 << 20, DEFAULT_MAX_DEPTH), None, "{v}");
        }
        let ack = pack(&json!({"command": "ack", "id": "1"}));
        // Incomplete, over the size bound, or under a depth bound of 1, which the fast
        // path leaves to the general one.
        assert_eq!(parse_prefix(&ack[..ack.len() - 1], 1 << 20, 8), None);
        assert_eq!(parse_prefix(&ack, ack.len() - 1, 8), None);
        assert!(parse_prefix(&ack, ack.len(), 8).is_some());
        assert_eq!(parse_prefix(&ack, 1 << 20, 1), None);
        // A repeated key, and text that is not UTF-8.
        let mut twice = vec![0x82];
        for _ in 0..2 {
            write::json(&mut twice, &json!("command"));
            write::json(&mut twice, &json!("sync"));
        }
        assert_eq!(parse_prefix(&twice, 1 << 20, 8), None);
        let bad = [
            0x82, 0xa7, b'c', b'o', b'm', b'm', b'a', b'n', b'd', 0xa3, b'a', b'c', b'k', 0xa2, b'i', b'd',
            0xa1, 0xff,
        ];
        assert_eq!(parse_prefix(&bad, 1 << 20, 8), None);
    }

    #[test]
    fn integers_floats_and_bytes_decode_as_serde_does() {
        let mut b = Vec::new();
        rmp::encode::write_map_len(&mut b, 2).unwrap();
        rmp::encode::write_str(&mut b, "command").unwrap();
        rmp::encode::write_str(&mut b, "emit").unwrap();
        rmp::encode::write_str(&mut b, "tuple").unwrap();
        rmp::encode::write_array_len(&mut b, 9).unwrap();
        rmp::encode::write_u64(&mut b, u64::MAX).unwrap();
        rmp::encode::write_u8(&mut b, 200).unwrap();
        rmp::encode::write_i8(&mut b, -100).unwrap();
        rmp::encode::write_i16(&mut b, -30000).unwrap();
        rmp::encode::write_i32(&mut b, i32::MIN).unwrap();
        rmp::encode::write_i64(&mut b, i64::MIN).unwrap();
        rmp::encode::write_f32(&mut b, 1.5).unwrap();
        rmp::encode::write_bin(&mut b, &[0, 255]).unwrap();
        rmp::encode::write_str(&mut b, "é").unwrap();
        let fast = parse_prefix(&b, 1 << 20, 8).unwrap();
        assert_eq!(Some(fast), general(&b, 1 << 20, 8));
    }

    fn field() -> impl Strategy<Value = (&'static str, Json)> {
        prop_oneof![
            Just(("command", json!("emit"))),
            Just(("command", json!("ack"))),
            Just(("command", json!("fail"))),
            Just(("command", json!("sync"))),
            Just(("command", json!(null))),
            Just(("id", json!("4"))),
            Just(("id", json!("04"))),
            Just(("id", json!(4))),
            Just(("id", json!(null))),
            Just(("anchors", json!(["1", "x"]))),
            Just(("anchors", json!([]))),
            Just(("anchors", json!(null))),
            Just(("anchors", json!([1]))),
            Just(("stream", json!("s"))),
            Just(("stream", json!(null))),
            Just(("task", json!(3))),
            Just(("task", json!(0))),
            Just(("task", json!(-2))),
            Just(("task", json!(5_000_000_000u64))),
            Just(("task", json!(null))),
            Just((
                "tuple",
                json!([1, "a", null, 2.5, true, -7, 18446744073709551615u64])
            )),
            Just(("tuple", json!([]))),
            Just(("tuple", json!([[1]]))),
            Just(("need_task_ids", json!(false))),
            Just(("need_task_ids", json!(null))),
            Just(("need_task_ids", json!(1))),
        ]
    }

    proptest! {
        /// Whatever the fast path takes, the general path decodes the same, to the same end.
        #[test]
        fn the_fast_path_agrees_with_the_general_path(
            fields in proptest::collection::vec(field(), 0..7),
            tail in proptest::collection::vec(any::<u8>(), 0..4),
            cut in 0usize..64,
        ) {
            let mut b = vec![0x80 | fields.len() as u8];
            for (k, v) in &fields {
                write::json(&mut b, &json!(k));
                write::json(&mut b, v);
            }
            b.extend(tail);
            for buf in [&b[..], &b[..b.len().saturating_sub(cut)]] {
                if let Some(fast) = parse_prefix(buf, 1 << 20, DEFAULT_MAX_DEPTH) {
                    prop_assert_eq!(Some(fast), general(buf, 1 << 20, DEFAULT_MAX_DEPTH));
                }
            }
        }
    }
}
