//! `ToPeer` bytes → a Hello or engine messages, validated against the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use prost::Message as _;
use squall_engine::fabric::{Control, Msg};
use squall_engine::{MessageIds, Packet, Value, Values, WireSchemas};
use squall_proto::wire::Hello;

use super::reader::{zigzag32, zigzag64, Reader, FIXED64, LEN, VARINT};
use super::{WireError, MAX_DEPTH};

/// What one frame carried.
#[derive(Debug)]
pub enum Incoming {
    /// The dialer's greeting.
    Hello(Hello),
    /// This many messages were appended to the output.
    Batch(usize),
}

/// Decodes a `ToPeer` message. Batch messages are appended to `out`; on error, `out` may
/// hold part of the batch, which the caller discards along with the link.
pub fn decode_to_peer(
    frame: Bytes,
    schemas: &WireSchemas,
    out: &mut Vec<Msg>,
) -> Result<Incoming, WireError> {
    let mut r = Reader::new(&frame);
    let mut result = None;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                Reader::expect("ToPeer", field, wt, LEN)?;
                let hello = Hello::decode(r.bytes_ref()?).map_err(|e| WireError::Hello(e.to_string()))?;
                result = Some(Incoming::Hello(hello));
            }
            2 => {
                Reader::expect("ToPeer", field, wt, LEN)?;
                let n = decode_batch(r.nested()?, schemas, out)?;
                result = Some(Incoming::Batch(n));
            }
            _ => r.skip("ToPeer", field, wt)?,
        }
    }
    result.ok_or(WireError::Empty("frame"))
}

fn decode_batch(mut r: Reader<'_>, schemas: &WireSchemas, out: &mut Vec<Msg>) -> Result<usize, WireError> {
    let mut n = 0;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        if field == 1 {
            Reader::expect("Batch", field, wt, LEN)?;
            decode_envelope(r.nested()?, schemas, out)?;
            n += 1;
        } else {
            r.skip("Batch", field, wt)?;
        }
    }
    Ok(n)
}

/// Appends the envelope's message to `out`. Messages are built in place rather than
/// returned: moving them through `Option`s and `Result`s cost more than decoding them.
fn decode_envelope(mut r: Reader<'_>, schemas: &WireSchemas, out: &mut Vec<Msg>) -> Result<(), WireError> {
    let start = out.len();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        if !(1..=7).contains(&field) {
            r.skip("Envelope", field, wt)?;
            continue;
        }
        Reader::expect("Envelope", field, wt, LEN)?;
        let body = r.nested()?;
        // Of several oneof fields the last wins, as with prost.
        out.truncate(start);
        if field == 1 {
            decode_tuple(body, schemas, out)?;
        } else {
            decode_control(field, body, out)?;
        }
    }
    if out.len() == start {
        return Err(WireError::Empty("envelope"));
    }
    Ok(())
}

/// Acker and spout traffic: a task, a root and at most one more number.
fn decode_control(kind: u32, mut r: Reader<'_>, out: &mut Vec<Msg>) -> Result<(), WireError> {
    let name = "acker message";
    let (mut task, mut root, mut third, mut fourth) = (0u32, 0u64, 0u64, 0u32);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                Reader::expect(name, field, wt, VARINT)?;
                task = r.varint()? as u32;
            }
            2 => {
                Reader::expect(name, field, wt, FIXED64)?;
                root = r.fixed64()?;
            }
            // AckInit.xor and Ack.val are fixed64; Done.failed is a bool.
            3 if kind == 6 => {
                Reader::expect(name, field, wt, VARINT)?;
                third = r.varint()?;
            }
            3 if kind == 2 || kind == 3 => {
                Reader::expect(name, field, wt, FIXED64)?;
                third = r.fixed64()?;
            }
            4 if kind == 2 => {
                Reader::expect(name, field, wt, VARINT)?;
                fourth = r.varint()? as u32;
            }
            _ => r.skip(name, field, wt)?,
        }
    }
    out.push(Msg::Control(match kind {
        2 => Control::AckInit {
            task,
            root,
            xor: third,
            spout_task: fourth,
        },
        3 => Control::Ack {
            task,
            root,
            val: third,
        },
        4 => Control::Fail { task, root },
        5 => Control::Reset { task, root },
        6 => Control::Done {
            task,
            root,
            failed: third != 0,
        },
        _ => Control::SpoutReset { task, root },
    }));
    Ok(())
}

fn decode_tuple(mut r: Reader<'_>, schemas: &WireSchemas, out: &mut Vec<Msg>) -> Result<(), WireError> {
    let name = "TupleMsg";
    let (mut task, mut source, mut component, mut stream) = (0u32, 0i32, 0u32, 0u32);
    let mut values = Values::new();
    let mut ids = MessageIds::new();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1..=4 => {
                Reader::expect(name, field, wt, VARINT)?;
                let v = r.varint()?;
                match field {
                    1 => task = v as u32,
                    2 => source = zigzag32(v),
                    3 => component = v as u32,
                    _ => stream = v as u32,
                }
            }
            5 => {
                Reader::expect(name, field, wt, LEN)?;
                push_value(r.nested()?, 0, &mut values)?;
            }
            6 => {
                Reader::expect(name, field, wt, LEN)?;
                ids.push(decode_id(r.nested()?)?);
            }
            _ => r.skip(name, field, wt)?,
        }
    }
    let schema = schemas
        .schema(component, stream)
        .ok_or(WireError::UnknownStream { component, stream })?;
    if values.len() != schema.fields.len() {
        return Err(WireError::Arity {
            stream: format!("{}/{}", schema.component, schema.stream),
            got: values.len(),
            want: schema.fields.len(),
        });
    }
    out.push(Msg::Tuple(Packet::new(task, values, schema, source, ids)));
    Ok(())
}

fn decode_id(mut r: Reader<'_>) -> Result<(u64, u64), WireError> {
    let (mut root, mut edge) = (0, 0);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 | 2 => {
                Reader::expect("MessageId", field, wt, FIXED64)?;
                let v = r.fixed64()?;
                if field == 1 {
                    root = v;
                } else {
                    edge = v;
                }
            }
            _ => r.skip("MessageId", field, wt)?,
        }
    }
    Ok((root, edge))
}

fn text(b: Bytes) -> Result<ByteString, WireError> {
    ByteString::try_from(b).map_err(|_| WireError::Utf8)
}

/// Appends a value to `out`, decoded in its slot like messages: returning it, or
/// building it aside and moving it in, cost a store-forwarding stall per value.
fn push_value<V>(r: Reader<'_>, depth: usize, out: &mut V) -> Result<(), WireError>
where
    V: Extend<Value> + AsMut<[Value]>,
{
    out.extend(std::iter::once(Value::Null));
    match out.as_mut().last_mut() {
        Some(slot) => decode_value(r, depth, slot),
        None => Err(WireError::Empty("value")),
    }
}

fn decode_value(mut r: Reader<'_>, depth: usize, value: &mut Value) -> Result<(), WireError> {
    if depth >= MAX_DEPTH {
        return Err(WireError::TooDeep(MAX_DEPTH));
    }
    let name = "Value";
    let mut seen = false;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        *value = match field {
            1..=3 => {
                Reader::expect(name, field, wt, VARINT)?;
                let v = r.varint()?;
                match field {
                    1 => Value::Null,
                    2 => Value::Bool(v != 0),
                    _ => Value::Int(zigzag64(v)),
                }
            }
            4 => {
                Reader::expect(name, field, wt, FIXED64)?;
                Value::Float(f64::from_bits(r.fixed64()?))
            }
            5 => {
                Reader::expect(name, field, wt, LEN)?;
                Value::Str(text(r.bytes()?)?)
            }
            6 => {
                Reader::expect(name, field, wt, LEN)?;
                Value::Bytes(r.bytes()?)
            }
            7 => {
                Reader::expect(name, field, wt, LEN)?;
                Value::List(Arc::new(decode_list(r.nested()?, depth + 1)?))
            }
            8 => {
                Reader::expect(name, field, wt, LEN)?;
                Value::Map(Arc::new(decode_map(r.nested()?, depth + 1)?))
            }
            _ => {
                r.skip(name, field, wt)?;
                continue;
            }
        };
        seen = true;
    }
    if seen {
        Ok(())
    } else {
        Err(WireError::Empty("value"))
    }
}

fn decode_list(mut r: Reader<'_>, depth: usize) -> Result<Vec<Value>, WireError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        if field == 1 {
            Reader::expect("ValueList", field, wt, LEN)?;
            push_value(r.nested()?, depth, &mut out)?;
        } else {
            r.skip("ValueList", field, wt)?;
        }
    }
    Ok(out)
}

fn decode_map(mut r: Reader<'_>, depth: usize) -> Result<BTreeMap<String, Value>, WireError> {
    let mut out = BTreeMap::new();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        if field != 1 {
            r.skip("ValueMap", field, wt)?;
            continue;
        }
        Reader::expect("ValueMap", field, wt, LEN)?;
        // An entry's value sits at `depth` even when the entry leaves it out (then it is
        // null, and is written explicitly when encoded again), so the bound applies here
        // too: otherwise a frame could decode whose re-encoding is refused.
        if depth >= MAX_DEPTH {
            return Err(WireError::TooDeep(MAX_DEPTH));
        }
        let mut e = r.nested()?;
        let (mut key, mut value) = (String::new(), Value::Null);
        while !e.is_empty() {
            let (f, wt) = e.key()?;
            match f {
                1 => {
                    Reader::expect("MapEntry", f, wt, LEN)?;
                    key = std::str::from_utf8(e.bytes_ref()?)
                        .map_err(|_| WireError::Utf8)?
                        .to_owned();
                }
                2 => {
                    Reader::expect("MapEntry", f, wt, LEN)?;
                    decode_value(e.nested()?, depth, &mut value)?;
                }
                _ => e.skip("MapEntry", f, wt)?,
            }
        }
        out.insert(key, value);
    }
    Ok(out)
}
