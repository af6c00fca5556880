//! The fast path of [`crate::codec::parse_child_message`] for the messages that come
//! once or twice per tuple (`emit`, `ack`, `fail`, `sync`): decoded in one pass into
//! borrowed text and the engine's own values, without a JSON tree per message. The same
//! serde decoding serves JSON text and msgpack objects. Anything else, or anything
//! unusual (a numeric id, a single anchor, a wrong type), returns `None`, and the general
//! parser decides, with its precise errors.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use squall_engine::{Value, Values};

use crate::codec::{Anchors, ChildMsg, Emit, InputId};

// Unknown fields send the message to the general parser: serde_json skips an ignored
// value without checking its UTF-8, which the general parser does for the whole text.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    command: Cow<'a, str>,
    #[serde(default)]
    id: Option<WireId>,
    #[serde(default)]
    anchors: Option<WireAnchors>,
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(default)]
    task: Option<i64>,
    #[serde(default)]
    tuple: Option<TupleValues>,
    #[serde(default)]
    need_task_ids: Option<bool>,
}

/// Decodes the common messages; `None` sends the text to the general parser.
pub(crate) fn parse_fast(text: &str) -> Option<ChildMsg> {
    from_wire(serde_json::from_str(text).ok()?)
}

/// The same for JSON bytes not yet known to be UTF-8: only valid UTF-8 decodes.
pub(crate) fn parse_fast_bytes(text: &[u8]) -> Option<ChildMsg> {
    from_wire(serde_json::from_slice(text).ok()?)
}

/// The same for one msgpack object (its bytes exactly); `None` sends it to the general
/// parser. Only a map is a message: serde would also read a struct from a list.
pub(crate) fn parse_fast_msgpack(bytes: &[u8]) -> Option<ChildMsg> {
    match bytes.first()? {
        0x80..=0x8f | 0xde | 0xdf => from_wire(rmp_serde::from_slice(bytes).ok()?),
        _ => None,
    }
}

fn from_wire(w: Wire<'_>) -> Option<ChildMsg> {
    match &*w.command {
        "sync" => Some(ChildMsg::Sync),
        "ack" => Some(ChildMsg::Ack(w.id?.input()?)),
        "fail" => Some(ChildMsg::Fail(w.id?.input()?)),
        "emit" => {
            let (task, need_task_ids) = emit_target(w.task, w.need_task_ids)?;
            Some(ChildMsg::Emit(Emit {
                id: w.id.map(WireId::json).filter(|v| !v.is_null()),
                anchors: w.anchors.map(|a| a.0).unwrap_or_default(),
                stream: w.stream.map(Cow::into_owned),
                task,
                tuple: w.tuple?.0,
                need_task_ids,
            }))
        }
        _ => None,
    }
}

/// An emit's direct task (none when absent or 0, which is a grouped emit) and whether
/// the child wants the receiving tasks back (by default, and only for a grouped emit);
/// `None` for a task that is no task number.
pub(crate) fn emit_target(task: Option<i64>, need_task_ids: Option<bool>) -> Option<(Option<u32>, bool)> {
    let task = match task {
        None | Some(0) => None,
        Some(t) => Some(u32::try_from(t).ok()?),
    };
    Some((task, need_task_ids.unwrap_or(true) && task.is_none()))
}

/// An `id`: a bolt's input id is text (kept as an [`InputId`], without allocating for
/// the host's decimal ids); a spout's message id may be any JSON.
enum WireId {
    Input(InputId),
    Other(serde_json::Value),
}

impl WireId {
    /// The input id of an `ack`/`fail`; `None` (the general parser decides) for others.
    fn input(self) -> Option<InputId> {
        match self {
            WireId::Input(id) => Some(id),
            WireId::Other(_) => None,
        }
    }

    /// The id as JSON, for a spout's emit.
    fn json(self) -> serde_json::Value {
        match self {
            WireId::Input(InputId::Text(t)) => serde_json::Value::String(t.into_string()),
            WireId::Input(id) => serde_json::Value::String(id.to_string()),
            WireId::Other(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = WireId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, s: &str) -> Result<WireId, E> {
        Ok(WireId::Input(InputId::new(s)))
    }
    fn visit_string<E>(self, s: String) -> Result<WireId, E> {
        Ok(WireId::Input(InputId::from(s)))
    }
    fn visit_unit<E>(self) -> Result<WireId, E> {
        Ok(WireId::Other(serde_json::Value::Null))
    }
    fn visit_none<E>(self) -> Result<WireId, E> {
        Ok(WireId::Other(serde_json::Value::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<WireId, E> {
        Ok(WireId::Other(b.into()))
    }
    fn visit_i64<E>(self, i: i64) -> Result<WireId, E> {
        Ok(WireId::Other(i.into()))
    }
    fn visit_u64<E>(self, u: u64) -> Result<WireId, E> {
        Ok(WireId::Other(u.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<WireId, E> {
        Ok(WireId::Other(f.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WireId, A::Error> {
        serde_json::Value::deserialize(SeqAccessDeserializer::new(seq)).map(WireId::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireId, A::Error> {
        serde_json::Value::deserialize(MapAccessDeserializer::new(map)).map(WireId::Other)
    }
}

/// `anchors` as a list of text ids, decoded without a `String` or `Vec` per emit. A
/// single id or a number is not this (the general parser takes those).
struct WireAnchors(Anchors);

impl<'de> Deserialize<'de> for WireAnchors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireAnchors;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireAnchors, A::Error> {
                let mut anchors = Anchors::new();
                while let Some(IdText(id)) = seq.next_element()? {
                    anchors.push(id);
                }
                Ok(WireAnchors(anchors))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One text id.
struct IdText(InputId);

impl<'de> Deserialize<'de> for IdText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a text id")
            }
            fn visit_str<E>(self, s: &str) -> Result<IdText, E> {
                Ok(IdText(InputId::new(s)))
            }
            fn visit_string<E>(self, s: String) -> Result<IdText, E> {
                Ok(IdText(InputId::from(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON list decoded straight into engine values.
struct TupleValues(Values);

impl<'de> Deserialize<'de> for TupleValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TupleValues;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TupleValues, A::Error> {
                let mut values = Values::new();
                while let Some(EngineValue(v)) = seq.next_element()? {
                    values.push(v);
                }
                Ok(TupleValues(values))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One JSON value decoded as [`Value::from_json`] would convert it.
struct EngineValue(Value);

impl<'de> Deserialize<'de> for EngineValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = EngineValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<EngineValue, E> {
        Ok(EngineValue(Value::Null))
    }

    fn visit_bool<E>(self, b: bool) -> Result<EngineValue, E> {
        Ok(EngineValue(Value::Bool(b)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<EngineValue, E> {
        Ok(EngineValue(Value::Int(i)))
    }

    fn visit_u64<E>(self, u: u64) -> Result<EngineValue, E> {
        // Beyond i64, a float, as `Value::from_json` does.
        Ok(EngineValue(
            i64::try_from(u).map_or(Value::Float(u as f64), Value::Int),
        ))
    }

    fn visit_f64<E>(self, f: f64) -> Result<EngineValue, E> {
        Ok(EngineValue(Value::Float(f)))
    }

    fn visit_str<E>(self, s: &str) -> Result<EngineValue, E> {
        Ok(EngineValue(Value::from(s)))
    }

    fn visit_string<E>(self, s: String) -> Result<EngineValue, E> {
        Ok(EngineValue(Value::from(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EngineValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(EngineValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(EngineValue(Value::List(Arc::new(items))))
    }

    fn visit_bytes<E>(self, b: &[u8]) -> Result<EngineValue, E> {
        // msgpack `bin` (JSON has no bytes): Python `bytes` arrive as bytes.
        Ok(EngineValue(Value::Bytes(b.to_vec().into())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EngineValue, A::Error> {
        let mut m = BTreeMap::new();
        while let Some((KeyText(k), EngineValue(v))) = map.next_entry()? {
            m.insert(k, v);
        }
        Ok(EngineValue(Value::Map(Arc::new(m))))
    }
}

/// A map key as text: JSON keys are strings; a msgpack key may be a number or a boolean
/// (a Python dict with int keys), kept as its text as `json.dumps` would write it.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key: text, a number or a boolean")
    }
    fn visit_str<E>(self, s: &str) -> Result<KeyText, E> {
        Ok(KeyText(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<KeyText, E> {
        Ok(KeyText(s))
    }
    fn visit_i64<E>(self, i: i64) -> Result<KeyText, E> {
        Ok(KeyText(i.to_string()))
    }
    fn visit_u64<E>(self, u: u64) -> Result<KeyText, E> {
        Ok(KeyText(u.to_string()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<KeyText, E> {
        Ok(KeyText(serde_json::Value::from(f).to_string()))
    }
    fn visit_bool<E>(self, b: bool) -> Result<KeyText, E> {
        Ok(KeyText(b.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::parse_child_message_slow;
    use proptest::prelude::*;

    #[test]
    fn values_convert_as_from_json_does() {
        let text =
            r#"[null, true, -3, 18446744073709551615, 2.5, "é\"\n", [1, [2]], {"b": 1, "a": {"c": null}}]"#;
        let TupleValues(got) = serde_json::from_str(text).unwrap();
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let want: Vec<Value> = json.as_array().unwrap().iter().map(Value::from_json).collect();
        assert_eq!(got.to_vec(), want);
    }

    #[test]
    fn the_common_messages_take_the_fast_path_and_the_rest_do_not() {
        for text in [
            r#"{"command":"emit","anchors":["1","2"],"tuple":["a",1],"need_task_ids":false}"#,
            r#"{"command":"emit","id":{"k":1},"stream":"s","task":0,"tuple":[]}"#,
            r#"{"command":"emit","task":4,"tuple":[null]}"#,
            r#"{"command": "ack", "id": "17"}"#,
            r#"{"command":"fail","id":"x"}"#,
            r#"{"command":"sync"}"#,
        ] {
            assert_eq!(
                parse_fast(text),
                Some(parse_child_message_slow(text).unwrap()),
                "{text}"
            );
            assert_eq!(parse_fast_bytes(text.as_bytes()), parse_fast(text), "{text}");
        }
        // Bytes that are not UTF-8, in a string, outside one or in a field the fast path
        // does not read, never decode.
        for bytes in [
            &b"{\"command\":\"ack\",\"id\":\"\xff\"}"[..],
            b"{\"command\":\"emit\",\"tuple\":[\"a\xc3\"]}",
            b"{\"command\":\"sync\"\xff}",
            b"{\"command\":\"ack\",\"id\":\"5\",\"x\":\"\xff\"}",
            b"{\"command\":\"sync\",\"x\":[{\"\xc3\":1}]}",
        ] {
            assert_eq!(parse_fast_bytes(bytes), None);
            assert_eq!(
                crate::codec::parse_framed(bytes, 1 << 20),
                Err(crate::codec::ProtocolError::NotUtf8)
            );
        }
        for text in [
            r#"{"pid": 3}"#,
            r#"{"command":"log","msg":"hi"}"#,
            r#"{"command":"ack","id":5}"#,
            r#"{"command":"emit","anchors":"7","tuple":[]}"#,
            r#"{"command":"emit","task":-1,"tuple":[]}"#,
            r#"{"command":"emit"}"#,
            r#"{"command":"emit","tuple":[],"tuple":[1]}"#,
            "not json",
        ] {
            assert_eq!(parse_fast(text), None, "{text}");
        }
    }

    proptest! {
        /// Whatever the fast path accepts, it decodes as the general parser does.
        #[test]
        fn the_fast_path_agrees_with_the_general_parser(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(r#""command":"emit""#), Just(r#""command":"ack""#), Just(r#""command":"sync""#),
                    Just(r#""id":"4""#), Just(r#""id":4"#), Just(r#""id":null"#), Just(r#""tuple":[1,"a",null]"#),
                    Just(r#""tuple":[]"#), Just(r#""task":3"#), Just(r#""task":0"#), Just(r#""task":-2"#),
                    Just(r#""anchors":["1"]"#), Just(r#""anchors":null"#), Just(r#""stream":"s""#),
                    Just(r#""id":"007""#), Just(r#""anchors":["x","02",""]"#), Just(r#""anchors":[3]"#),
                    Just(r#""need_task_ids":true"#), Just(r#""need_task_ids":null"#), Just(r#""x":[{}]"#),
                ],
                0..6,
            )
        ) {
            let text = format!("{{{}}}", parts.join(","));
            prop_assert_eq!(parse_fast_bytes(text.as_bytes()), parse_fast(&text));
            if let Some(fast) = parse_fast(&text) {
                prop_assert_eq!(Ok(fast), parse_child_message_slow(&text));
            }
        }
    }
}
