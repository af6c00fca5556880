//! Records to tuples: the record and JSON translations, and the `errors` stream's tuples.

use bytes::Bytes;
use bytestring::ByteString;
use squall_catalog::kafka::{Encoding, Translation};
use squall_engine::{Value, Values};

/// The coordinates and content of one record.
pub(crate) struct Record<'a> {
    pub topic: &'a ByteString,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

fn text(what: &str, b: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(b)
        .map(|s| Value::Str(ByteString::from(s)))
        .map_err(|e| format!("{what} is not UTF-8: {e}"))
}

fn raw(what: &str, b: Option<&[u8]>, encoding: Encoding) -> Result<Value, String> {
    match (b, encoding) {
        (None, _) => Ok(Value::Null),
        (Some(b), Encoding::Text) => text(what, b),
        (Some(b), Encoding::Bytes) => Ok(Value::Bytes(Bytes::copy_from_slice(b))),
    }
}

/// The values of the default stream without the trailing `floor`, or why the record
/// cannot be decoded.
pub(crate) fn translate(r: &Record<'_>, t: &Translation, encoding: Encoding) -> Result<Values, String> {
    let mut v = Values::new();
    match t {
        Translation::Record => {
            v.push(Value::Str(r.topic.clone()));
            v.push(Value::Int(i64::from(r.partition)));
            v.push(Value::Int(r.offset));
            v.push(raw("the key", r.key, encoding)?);
            v.push(raw("the value", r.value, encoding)?);
        }
        Translation::Json(fields) => {
            let Some(bytes) = r.value else {
                return Err("no value (a tombstone), not a JSON object".to_owned());
            };
            let json: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
            let serde_json::Value::Object(obj) = json else {
                return Err("expected a JSON object".to_owned());
            };
            for f in fields {
                v.push(obj.get(f).map(Value::from_json).unwrap_or(Value::Null));
            }
            v.push(Value::Str(r.topic.clone()));
            v.push(Value::Int(i64::from(r.partition)));
            v.push(Value::Int(r.offset));
        }
    }
    Ok(v)
}

/// The `errors` stream's tuple: `topic, partition, offset, value, error`, the value as
/// text (invalid UTF-8 replaced) or null.
pub(crate) fn error_values(r: &Record<'_>, error: String) -> Values {
    let mut v = Values::new();
    v.push(Value::Str(r.topic.clone()));
    v.push(Value::Int(i64::from(r.partition)));
    v.push(Value::Int(r.offset));
    v.push(match r.value {
        Some(b) => Value::from(String::from_utf8_lossy(b).into_owned()),
        None => Value::Null,
    });
    v.push(Value::from(error));
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rec<'a>(topic: &'a ByteString, value: Option<&'a [u8]>) -> Record<'a> {
        Record {
            topic,
            partition: 2,
            offset: 7,
            key: Some(b"k"),
            value,
        }
    }

    #[test]
    fn record_translation() {
        let t = ByteString::from("edits");
        let v = translate(&rec(&t, Some(b"hello")), &Translation::Record, Encoding::Text).unwrap();
        assert_eq!(
            v.as_slice(),
            [
                Value::from("edits"),
                Value::Int(2),
                Value::Int(7),
                Value::from("k"),
                Value::from("hello")
            ]
        );
        let bad = translate(
            &rec(&t, Some(&[0xff, 0xfe])),
            &Translation::Record,
            Encoding::Text,
        );
        assert!(bad.unwrap_err().starts_with("the value is not UTF-8"));
        let v = translate(&rec(&t, Some(&[0xff])), &Translation::Record, Encoding::Bytes).unwrap();
        assert_eq!(v[4], Value::Bytes(Bytes::from_static(&[0xff])));
        let v = translate(&rec(&t, None), &Translation::Record, Encoding::Text).unwrap();
        assert_eq!(v[4], Value::Null);
    }

    #[test]
    fn json_translation() {
        let t = ByteString::from("edits");
        let j = Translation::Json(vec!["user".into(), "missing".into()]);
        let v = translate(&rec(&t, Some(br#"{"user": "ann", "n": 1}"#)), &j, Encoding::Text).unwrap();
        assert_eq!(
            v.as_slice(),
            [
                Value::from("ann"),
                Value::Null,
                Value::from("edits"),
                Value::Int(2),
                Value::Int(7)
            ]
        );
        assert!(translate(&rec(&t, Some(b"{nope")), &j, Encoding::Text)
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert!(translate(&rec(&t, Some(b"[1]")), &j, Encoding::Text).is_err());
        assert!(translate(&rec(&t, None), &j, Encoding::Text).is_err());
        let e = error_values(&rec(&t, Some(b"{nope")), "bad".into());
        assert_eq!(e[3], Value::from("{nope"));
        assert_eq!(e[4], Value::from("bad"));
    }
}
