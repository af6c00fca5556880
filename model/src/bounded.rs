//! Free-form values read with a depth bound of their own.
//!
//! The API server stores `config` (and the pod's free-form parts) as it is given, however
//! deeply nested; serde_json refuses input nested more than 128 levels, and Kubernetes
//! clients read a whole list in one document. One deeply nested Topology would then make
//! every list of Topologies unreadable, and its operator with it. Values here are read at
//! most [`MAX_VALUE_DEPTH`] levels deep; a deeper part is skipped (serde_json skips without
//! recursing) and stands as a value nested one level more than allowed, so validation
//! refuses the spec that holds it, naming the field.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Levels a free-form value keeps when read; more than any [`crate::Limits`] allows.
pub const MAX_VALUE_DEPTH: usize = 100;

/// What a part nested deeper than [`MAX_VALUE_DEPTH`] becomes: a value deeper than any
/// limit (validation then refuses it), built without recursion.
fn too_deep(levels: usize) -> Value {
    let mut v = Value::Null;
    for _ in 0..levels {
        v = Value::Array(vec![v]);
    }
    v
}

/// Reads one value with `left` levels to go.
struct Bounded {
    left: usize,
}

impl<'de> DeserializeSeed<'de> for Bounded {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.left == 0 {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(too_deep(2));
        }
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Bounded { left: self.left - 1 })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.left == 0 {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(too_deep(2));
        }
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Bounded { left: self.left - 1 })?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// A map of free-form values, each at most [`MAX_VALUE_DEPTH`] levels deep.
struct BoundedMap;

impl<'de> Visitor<'de> for BoundedMap {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Bounded {
                left: MAX_VALUE_DEPTH - 1,
            })?;
            out.insert(k, v);
        }
        Ok(out)
    }
}

/// `config`: a map of free-form values.
pub fn config<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Value>, D::Error> {
    Ok(d.deserialize_map(BoundedMap)?.into_iter().collect())
}

/// An optional free-form object (the pod's `resources`).
pub fn object_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Map<String, Value>>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<Map<String, Value>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(BoundedMap).map(Some)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            BoundedMap.visit_map(map).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

/// A list of free-form objects (the pod's `tolerations`).
pub fn objects<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Map<String, Value>>, D::Error> {
    struct List;
    struct Item;
    impl<'de> DeserializeSeed<'de> for Item {
        type Value = Map<String, Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(BoundedMap)
        }
    }
    impl<'de> Visitor<'de> for List {
        type Value = Vec<Map<String, Value>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of maps")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(m) = seq.next_element_seed(Item)? {
                out.push(m);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(List)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value_depth;

    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "config")]
        config: BTreeMap<String, Value>,
    }

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn shallow_values_are_read_as_they_are() {
        let h: Holder = serde_json::from_str(r#"{"config": {"a": [1, {"b": "c"}], "n": null, "f": 1.5}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::Value::Object(h.config.into_iter().collect()),
            serde_json::json!({"a": [1, {"b": "c"}], "n": null, "f": 1.5})
        );
    }

    #[test]
    fn a_value_deeper_than_serde_json_reads_is_skipped_and_stays_too_deep() {
        // 5,000 levels: serde_json alone refuses anything past 128.
        let text = format!(r#"{{"config": {{"deep": {}, "ok": 1}}}}"#, nested(5_000));
        assert!(serde_json::from_str::<Value>(&text).is_err());
        let h: Holder = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.config.get("ok"), Some(&Value::from(1)));
        let deep = h.config.get("deep").unwrap_or_else(|| panic!("deep kept"));
        assert!(
            value_depth(deep) > MAX_VALUE_DEPTH,
            "the kept value must still be too deep"
        );
        // Exactly at the bound it is kept whole.
        let text = format!(r#"{{"config": {{"v": {}}}}}"#, nested(MAX_VALUE_DEPTH - 1));
        let h: Holder = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.config.get("v").map(value_depth), Some(MAX_VALUE_DEPTH - 1));
    }
}
