//! Typed tuple values and the deterministic hash used by fields grouping.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use smallvec::SmallVec;

/// A tuple's values. Two values live inline, so most tuples cost no allocation of their own.
pub type Values = SmallVec<[Value; 2]>;

/// One typed value of a tuple.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// UTF-8 text. Static text is never reference-counted, which keeps constant payloads cheap.
    Str(ByteString),
    /// Raw bytes.
    Bytes(Bytes),
    /// A list.
    List(Arc<Vec<Value>>),
    /// A map with text keys, ordered so that equal maps hash equally.
    Map(Arc<BTreeMap<String, Value>>),
}

impl Value {
    /// Text from a `&'static str` without copying or reference counting.
    pub fn from_static(s: &'static str) -> Self {
        Value::Str(ByteString::from_static(s))
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float, converting integers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Converts JSON into a value (numbers become integers when they fit).
    pub fn from_json(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(ByteString::from(s.as_str())),
            serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(Value::from_json).collect())),
            serde_json::Value::Object(o) => Value::Map(Arc::new(
                o.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect(),
            )),
        }
    }

    /// Converts into JSON; bytes become an array of numbers, as Storm's multilang does.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Bytes(b) => {
                serde_json::Value::Array(b.iter().map(|x| serde_json::Value::from(*x)).collect())
            }
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Mixes this value into a running hash. The result depends only on the value, never on
    /// the process, the machine or the Rust version: fields grouping relies on every worker
    /// choosing the same task for the same key.
    pub fn stable_hash(&self, seed: u64) -> u64 {
        use xxhash_rust::xxh3::xxh3_64_with_seed as h;
        match self {
            Value::Null => h(&[0], seed),
            Value::Bool(b) => h(&[1, u8::from(*b)], seed),
            Value::Int(i) => h(&i.to_le_bytes(), seed ^ 2),
            Value::Float(f) => h(&f.to_bits().to_le_bytes(), seed ^ 3),
            Value::Str(s) => h(s.as_bytes(), seed ^ 4),
            Value::Bytes(b) => h(b, seed ^ 5),
            Value::List(l) => l.iter().fold(h(&[6], seed), |acc, v| v.stable_hash(acc)),
            Value::Map(m) => m
                .iter()
                .fold(h(&[7], seed), |acc, (k, v)| v.stable_hash(h(k.as_bytes(), acc))),
        }
    }

    /// Equality that agrees with [`Value::stable_hash`]: floats compare by their bits,
    /// at any depth. A NaN equals the same NaN, so a map keyed by values holds one entry
    /// for a repeated NaN key (or a list holding one) instead of a new entry each time;
    /// 0.0 and -0.0 are two keys, as they hash apart.
    pub fn same_bits(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.same_bits(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && va.same_bits(vb))
            }
            _ => self == other,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(ByteString::from(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(ByteString::from(s))
    }
}
impl From<ByteString> for Value {
    fn from(s: ByteString) -> Self {
        Value::Str(s)
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bytes(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl From<u64> for Value {
    fn from(i: u64) -> Self {
        // Values above i64::MAX wrap; ids of that size are hashed or compared, never added.
        Value::Int(i as i64)
    }
}
impl From<usize> for Value {
    fn from(i: usize) -> Self {
        Value::Int(i as i64)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Builds [`Values`] from expressions convertible into [`Value`].
#[macro_export]
macro_rules! values {
    ($($v:expr),* $(,)?) => {{
        let mut v = $crate::Values::new();
        $( v.push($crate::Value::from($v)); )*
        v
    }};
}

/// Hash of the selected fields of a tuple; the same on every worker.
pub fn fields_hash(values: &[Value], indices: &[usize]) -> u64 {
    indices
        .iter()
        .fold(0x5eed_5eed_u64, |acc, &i| match values.get(i) {
            Some(v) => v.stable_hash(acc),
            None => Value::Null.stable_hash(acc),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: u64 = 14_334_991_418_290_334_481;

    #[test]
    fn hash_is_stable_across_runs_and_types() {
        // Pinned values: a change here breaks fields grouping between versions of workers.
        assert_eq!(
            fields_hash(&[Value::from("wikipedia")], &[0]),
            fields_hash(&[Value::from("wikipedia")], &[0])
        );
        assert_ne!(
            fields_hash(&[Value::from("1")], &[0]),
            fields_hash(&[Value::Int(1)], &[0])
        );
        let a = fields_hash(&[Value::from("a"), Value::Int(1)], &[0, 1]);
        let b = fields_hash(&[Value::from("a"), Value::Int(2)], &[0, 1]);
        assert_ne!(a, b);
        // Only the selected fields count.
        assert_eq!(
            fields_hash(&[Value::from("k"), Value::Int(1)], &[0]),
            fields_hash(&[Value::from("k"), Value::Int(99)], &[0])
        );
    }

    /// Pinned: if this value changes, workers of two releases disagree on where a key
    /// goes during a rolling update. Change it only on purpose.
    #[test]
    fn hash_value_is_pinned() {
        assert_eq!(fields_hash(&[Value::from("wikipedia")], &[0]), PINNED);
    }

    #[test]
    fn json_round_trip() {
        let j: serde_json::Value = serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": "d"}});
        assert_eq!(Value::from_json(&j).to_json(), j);
    }

    /// Values equal by their bits hash alike, NaNs and nested floats included, and
    /// differ where their bits differ.
    #[test]
    fn same_bits_agrees_with_the_hash() {
        let nested = |f: f64| {
            let list = Value::List(Arc::new(vec![Value::from("a"), Value::Float(f)]));
            Value::Map(Arc::new([("k".to_owned(), list)].into_iter().collect()))
        };
        for f in [f64::NAN, 0.0, -0.0, 1.5, f64::INFINITY] {
            let (a, b) = (nested(f), nested(f));
            assert!(a.same_bits(&b), "{a:?}");
            assert_eq!(a.stable_hash(7), b.stable_hash(7));
        }
        assert!(!nested(0.0).same_bits(&nested(-0.0)));
        assert_ne!(
            nested(0.0).stable_hash(7),
            nested(-0.0).stable_hash(7),
            "they hash apart"
        );
        assert!(!nested(1.5).same_bits(&nested(2.5)));
        assert!(!Value::Int(1).same_bits(&Value::Float(1.0)));
        let short = Value::List(Arc::new(vec![Value::Float(f64::NAN)]));
        let long = Value::List(Arc::new(vec![Value::Float(f64::NAN), Value::Null]));
        assert!(!short.same_bits(&long));
    }

    #[test]
    fn values_stay_inline() {
        let v = values!["a", 1i64];
        assert!(!v.spilled());
    }
}
