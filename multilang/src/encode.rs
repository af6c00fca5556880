//! Host → child messages written straight into the output buffer: no JSON tree per
//! tuple, and values are encoded from the engine's own [`Value`]s. Each message comes
//! in the component's serializer: JSON framed by a line `end`, or one msgpack object.

use serde_json::Value as Json;
use squall_engine::Value;
use squall_model::Serializer;

use crate::msgpack::write as mp;

/// Appends `s` as a JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail, and a &str always serialises.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `v` as JSON, as [`Value::to_json`] would render it (bytes as an array of
/// numbers, non-finite floats as `null`).
pub fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let _ = serde_json::to_writer(&mut *out, i);
        }
        Value::Float(f) => {
            let _ = serde_json::to_writer(&mut *out, f);
        }
        Value::Str(s) => string(out, s),
        Value::Bytes(b) => list(out, b.iter(), |out, x| {
            let _ = serde_json::to_writer(&mut *out, x);
        }),
        Value::List(l) => list(out, l.iter(), value),
        Value::Map(m) => {
            out.push(b'{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, k);
                out.push(b':');
                value(out, v);
            }
            out.push(b'}');
        }
    }
}

fn list<T>(out: &mut Vec<u8>, items: impl Iterator<Item = T>, mut f: impl FnMut(&mut Vec<u8>, T)) {
    out.push(b'[');
    for (i, x) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f(out, x);
    }
    out.push(b']');
}

/// Appends any message (the handshake, a spout command), framed.
pub fn message(ser: Serializer, out: &mut Vec<u8>, json: &Json) {
    match ser {
        Serializer::Json => {
            // Writing into a Vec cannot fail, and a JSON value always serialises.
            let _ = serde_json::to_writer(&mut *out, json);
            out.extend_from_slice(b"\nend\n");
        }
        Serializer::Msgpack => mp::json(out, json),
    }
}

/// Appends a framed tuple message:
/// `{"id":"<id>","comp":..,"stream":..,"task":..,"tuple":[..]}` (then `\nend\n` in JSON).
pub fn tuple(
    ser: Serializer,
    out: &mut Vec<u8>,
    id: u64,
    comp: &str,
    stream: &str,
    task: i64,
    values: &[Value],
) {
    if ser == Serializer::Msgpack {
        return mp::tuple(out, &id.to_string(), Some(comp), stream, task, values);
    }
    out.extend_from_slice(b"{\"id\":\"");
    let _ = serde_json::to_writer(&mut *out, &id);
    out.extend_from_slice(b"\",\"comp\":");
    string(out, comp);
    out.extend_from_slice(b",\"stream\":");
    string(out, stream);
    out.extend_from_slice(b",\"task\":");
    let _ = serde_json::to_writer(&mut *out, &task);
    out.extend_from_slice(b",\"tuple\":");
    list(out, values.iter(), value);
    out.extend_from_slice(b"}\nend\n");
}

/// Appends a framed heartbeat tuple (stream `__heartbeat`, task -1, no values).
pub fn heartbeat(ser: Serializer, out: &mut Vec<u8>, seq: u64) {
    if ser == Serializer::Msgpack {
        return mp::tuple(out, &format!("hb{seq}"), None, "__heartbeat", -1, &[]);
    }
    out.extend_from_slice(b"{\"id\":\"hb");
    let _ = serde_json::to_writer(&mut *out, &seq);
    out.extend_from_slice(b"\",\"comp\":null,\"stream\":\"__heartbeat\",\"task\":-1,\"tuple\":[]}\nend\n");
}

/// Appends a framed list of task ids (the reply to an emit that wants them).
pub fn task_ids(ser: Serializer, out: &mut Vec<u8>, tasks: &[u32]) {
    if ser == Serializer::Msgpack {
        return mp::task_ids(out, tasks);
    }
    list(out, tasks.iter(), |out, t| {
        let _ = serde_json::to_writer(&mut *out, t);
    });
    out.extend_from_slice(b"\nend\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use serde_json::json;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_encode_as_to_json_does() {
        let map: BTreeMap<String, Value> =
            [("k\"ey".to_owned(), Value::from(1i64)), ("z".into(), Value::Null)]
                .into_iter()
                .collect();
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(-42),
            Value::Float(1.5),
            Value::Float(f64::NAN),
            Value::from("tab\t \"quote\" é \u{1}"),
            Value::Bytes(bytes_of(&[0, 255])),
            Value::List(Arc::new(vec![Value::from("a"), Value::List(Arc::new(vec![]))])),
            Value::Map(Arc::new(map)),
        ];
        for v in &values {
            let got: serde_json::Value = serde_json::from_str(&text(|o| value(o, v))).unwrap();
            assert_eq!(got, v.to_json(), "{v:?}");
        }
    }

    fn bytes_of(b: &[u8]) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(b)
    }

    #[test]
    fn tuple_message_is_storms() {
        let t = text(|o| {
            tuple(
                Serializer::Json,
                o,
                7,
                "split",
                "default",
                3,
                &[Value::from("a b"), Value::Int(2)],
            )
        });
        let (body, tail) = t.split_once('\n').unwrap();
        assert_eq!(tail, "end\n");
        let got: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            got,
            json!({"id": "7", "comp": "split", "stream": "default", "task": 3, "tuple": ["a b", 2]})
        );
    }

    #[test]
    fn heartbeat_and_task_ids() {
        let hb = text(|o| heartbeat(Serializer::Json, o, 3));
        let (body, _) = hb.split_once('\n').unwrap();
        let got: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            got,
            json!({"id": "hb3", "comp": null, "stream": "__heartbeat", "task": -1, "tuple": []})
        );
        assert_eq!(text(|o| task_ids(Serializer::Json, o, &[4, 5])), "[4,5]\nend\n");
        assert_eq!(text(|o| task_ids(Serializer::Json, o, &[])), "[]\nend\n");
    }
}
