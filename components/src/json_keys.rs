//! `json-keys`: turns a JSON event into counter keys by rules on its fields (the talk's
//! `jsonParser`, made configurable).
//!
//! # Emits
//! - `default` stream, fields `[key]`, then the `carry` fields, then the `index` field when
//!   configured: one tuple per key the rules produce for the event, in rule order, anchored
//!   to the input.
//! - `errors` stream, fields `[event, error]`: events that are not a JSON object or that
//!   a rule cannot handle, anchored to the input; counted as `malformed`.
//!
//! # Config
//! - `field` (string, default the input's first field): the field holding the JSON text.
//! - `format` (`json` or `python`, default `json`): how booleans and null are spelled in
//!   keys: `true`/`false`/`null`, or Python's `True`/`False`/`None` (what the talk's
//!   `str(json_object["is_anon"])` produces).
//! - `keys` (list, required): the rules, each one of
//!   - `{path: P, prefix: X}`: the key `X` + the value at `P`. Strings are used as they
//!     are, numbers in their JSON spelling, booleans and null per `format`. A missing
//!     value or an array/object makes the event malformed; with `optional: true` a
//!     missing or null value (or a missing parent) produces no key instead.
//!   - `{path: P, then: A, else: B}`: the key `A` when the value at `P` is truthy in
//!     Python's sense (present, not null/false/0/""/[]/{}), else `B`. Never malformed.
//!
//!   `P` is a dotted path into nested objects, e.g. `geo_ip.country_name`.
//! - `carry` (list of field names, optional): input fields copied, unchanged, onto every
//!   key tuple after `key`, e.g. a record's identity (`[topic, partition, offset, floor]`)
//!   for `redis-counter`'s `exactly_once`. Not `key`.
//! - `index` (field name, optional): adds this integer field, the key's 0-based position
//!   among the event's keys. The rules are evaluated in order, so the same event gives
//!   every key the same index each time: with the carried identity it names the key
//!   tuple stably across replays.
//!
//! The talk's keys are, in its order:
//! ```yaml
//! format: python
//! keys:
//!   - {prefix: isanon_, path: is_anon}
//!   - {path: is_anon, then: anon_anon, else: anon_loggedin}
//!   - {path: is_bot, then: bot_bot, else: bot_human}
//!   - {prefix: action_, path: action}
//!   - {prefix: country_, path: geo_ip.country_name, optional: true}
//! ```
//!
//! # Guarantees
//! - MUST emit all of an event's keys or none: the rules are evaluated before anything
//!   is emitted, so a malformed event produces no partial counts.
//! - MUST NOT fail or crash on a malformed event: it goes to `errors`, is counted
//!   (`malformed`) and acked — replaying it would fail the same way. The first is
//!   logged at warn, the rest at debug.
//! - MUST fail an input whose `field` or a `carry` field is missing, or whose `field` is
//!   not text (a wiring error, reported).
//! - The `errors` stream is the same with or without `carry` and `index`.
//! - MUST ignore tick tuples.

use std::borrow::Cow;

use bytestring::ByteString;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use squall_engine::{
    Basic, BasicBolt, Bolt, BoltOutput, ComponentError, Counters, TaskContext, Tuple, Value, Values,
};
use tracing::{debug, warn};

pub use squall_catalog::json_keys::{Format, JsonKeysConfig, PathTree, Rule, ERROR_STREAM, KIND};

use crate::fields;

/// Counter of malformed events.
pub const MALFORMED: &str = "malformed";
/// What an event holds at one path.
#[derive(Debug, PartialEq)]
enum Found<'a> {
    Missing,
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An array or object; whether it is empty.
    Composite(bool),
}

impl Found<'_> {
    /// Python's truthiness.
    fn truthy(&self) -> bool {
        match self {
            Found::Missing | Found::Null => false,
            Found::Bool(b) => *b,
            Found::Int(i) => *i != 0,
            Found::UInt(u) => *u != 0,
            Found::Float(f) => *f != 0.0,
            Found::Str(s) => !s.is_empty(),
            Found::Composite(empty) => !empty,
        }
    }
}

/// Deserializes one value, keeping what the tree asks for and skipping the rest without
/// building it (most of an event is never looked at).
struct Extract<'t, 'o, 'de> {
    tree: &'t PathTree,
    out: &'o mut [Found<'de>],
}

impl<'de> Extract<'_, '_, 'de> {
    fn set(self, f: Found<'de>) {
        if let Some(slot) = self.tree.slot() {
            self.out[slot] = f;
        }
    }
}

impl<'de> DeserializeSeed<'de> for Extract<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Extract<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.set(Found::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.set(Found::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.set(Found::UInt(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.set(Found::Float(v));
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.set(Found::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.set(Found::Str(Cow::Owned(v.to_owned())));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.set(Found::Str(Cow::Owned(v)));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.set(Found::Null);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.set(Found::Null);
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut empty = true;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            empty = false;
        }
        self.set(Found::Composite(empty));
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Extract { tree, out } = self;
        let mut empty = true;
        while let Some(child) = map.next_key_seed(KeySeed(tree.children()))? {
            empty = false;
            match child {
                Some(i) => map.next_value_seed(Extract {
                    tree: &tree.children()[i].1,
                    out: &mut *out,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Extract { tree, out }.set(Found::Composite(empty));
        Ok(())
    }
}

/// Reads an object key: the index of the child of that name, if the tree has one.
struct KeySeed<'t>(&'t [(String, PathTree)]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(k, _)| k == v))
    }
}

/// The keys of one event, or why it is malformed.
pub fn keys_of(config: &JsonKeysConfig, text: &str) -> Result<Vec<String>, String> {
    // The one shape check serde would not make for us here: the event is an object.
    if !text.trim_start().starts_with('{') {
        return Err("not a JSON object".to_owned());
    }
    let mut found: Vec<Found<'_>> = (0..config.slots()).map(|_| Found::Missing).collect();
    let mut de = serde_json::Deserializer::from_str(text);
    Extract {
        tree: config.paths(),
        out: &mut found,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| format!("invalid JSON: {e}"))?;
    let mut keys = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        match rule {
            Rule::Truthy {
                slot,
                then,
                otherwise,
                ..
            } => keys.push(if found[*slot].truthy() {
                then.clone()
            } else {
                otherwise.clone()
            }),
            Rule::Value {
                path,
                slot,
                prefix,
                optional,
            } => {
                let v = &found[*slot];
                if *optional && matches!(v, Found::Missing | Found::Null) {
                    continue;
                }
                let mut key = prefix.clone();
                match v {
                    Found::Missing => return Err(format!("no {:?} in the event", path.join("."))),
                    Found::Str(s) => key.push_str(s),
                    Found::Bool(b) => key.push_str(match (config.format, b) {
                        (Format::Json, true) => "true",
                        (Format::Json, false) => "false",
                        (Format::Python, true) => "True",
                        (Format::Python, false) => "False",
                    }),
                    Found::Null => key.push_str(match config.format {
                        Format::Json => "null",
                        Format::Python => "None",
                    }),
                    Found::Int(i) => key.push_str(&i.to_string()),
                    Found::UInt(u) => key.push_str(&u.to_string()),
                    // JSON's own spelling of the number, as serde_json writes it.
                    Found::Float(f) => key.push_str(
                        &serde_json::Number::from_f64(*f)
                            .map(|n| n.to_string())
                            .unwrap_or_default(),
                    ),
                    Found::Composite(_) => {
                        return Err(format!(
                            "{:?} is an array or object, not a value for a key",
                            path.join(".")
                        ))
                    }
                }
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

/// The default-stream values for an event's keys: each key, the carried fields of `input`,
/// and the key's position when `index` is configured.
pub fn key_tuples(
    config: &JsonKeysConfig,
    input: &Tuple,
    keys: Vec<String>,
) -> Result<Vec<Values>, ComponentError> {
    let mut out = Vec::with_capacity(keys.len());
    each_key_tuple(config, input, keys, |v| {
        out.push(v);
        Ok(())
    })?;
    Ok(out)
}

/// [`key_tuples`], handed to `emit` one by one as they are made (the bolt emits them
/// without collecting them first).
fn each_key_tuple(
    config: &JsonKeysConfig,
    input: &Tuple,
    keys: Vec<String>,
    mut emit: impl FnMut(Values) -> Result<(), ComponentError>,
) -> Result<(), ComponentError> {
    // Looked up once per event, not per key; a carried field missing fails the event
    // before any key is emitted.
    const INLINE: usize = 8;
    let mut carried: [&Value; INLINE] = [&Value::Null; INLINE];
    let mut extra: Vec<&Value> = Vec::new();
    for (i, name) in config.carry.iter().enumerate() {
        let v = fields::named(KIND, "carry", input, name)?;
        match carried.get_mut(i) {
            Some(slot) => *slot = v,
            None => extra.push(v),
        }
    }
    let n = config.carry.len().min(INLINE);
    for (i, key) in keys.into_iter().enumerate() {
        let mut v = Values::with_capacity(2 + config.carry.len());
        v.push(Value::Str(ByteString::from(key)));
        v.extend(carried[..n].iter().chain(&extra).map(|c| (*c).clone()));
        if config.index.is_some() {
            v.push(Value::Int(i as i64));
        }
        emit(v)?;
    }
    Ok(())
}

/// The `json-keys` bolt.
pub struct JsonKeys {
    config: JsonKeysConfig,
    counters: Counters,
    component: String,
    warned: bool,
}

impl JsonKeys {
    /// A bolt with this configuration.
    pub fn new(config: &JsonKeysConfig) -> Self {
        JsonKeys {
            config: config.clone(),
            counters: Counters::default(),
            component: String::new(),
            warned: false,
        }
    }

    /// As a [`Bolt`].
    pub fn boxed(self) -> Box<dyn Bolt> {
        Box::new(Basic(self))
    }
}

impl BasicBolt for JsonKeys {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.counters = ctx.counters.clone();
        self.component = ctx.component.clone();
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            return Ok(());
        }
        let value = match &self.config.field {
            Some(name) => fields::named(KIND, "field", input, name)?,
            None => fields::first(KIND, input)?,
        };
        let Value::Str(text) = value else {
            return Err(ComponentError(format!(
                "{KIND}: the event field of input from {}/{} is not text: {value:?}",
                input.source_component(),
                input.source_stream()
            )));
        };
        match keys_of(&self.config, text) {
            Ok(keys) => each_key_tuple(&self.config, input, keys, |v| out.emit(&[], v).map(|_| ()))?,
            Err(error) => {
                self.counters.add(MALFORMED, 1);
                if !self.warned {
                    self.warned = true;
                    warn!(component = %self.component, error = %error, "malformed event sent to the errors stream; further ones are counted and logged at debug");
                } else {
                    debug!(component = %self.component, error = %error, "malformed event");
                }
                let mut v = Values::new();
                v.push(Value::Str(text.clone()));
                v.push(Value::from(error));
                out.emit_on(ERROR_STREAM, &[], v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::Config;

    fn talk() -> JsonKeysConfig {
        let c: Config = serde_json::from_value(serde_json::json!({
            "format": "python",
            "keys": [
                {"prefix": "isanon_", "path": "is_anon"},
                {"path": "is_anon", "then": "anon_anon", "else": "anon_loggedin"},
                {"path": "is_bot", "then": "bot_bot", "else": "bot_human"},
                {"prefix": "action_", "path": "action"},
                {"prefix": "country_", "path": "geo_ip.country_name", "optional": true},
            ]
        }))
        .unwrap();
        JsonKeysConfig::parse(&c).unwrap()
    }

    #[test]
    fn carried_fields_and_the_index_follow_each_key() {
        let mut c: Config = serde_json::from_value(serde_json::json!({
            "format": "python",
            "keys": [
                {"prefix": "isanon_", "path": "is_anon"},
                {"path": "is_anon", "then": "anon_anon", "else": "anon_loggedin"},
                {"prefix": "country_", "path": "geo_ip.country_name", "optional": true},
                {"prefix": "action_", "path": "action"},
            ],
            "carry": ["topic", "offset"],
            "index": "index",
        }))
        .unwrap();
        let config = JsonKeysConfig::parse(&c).unwrap();
        let mut values = Values::new();
        values.extend([
            Value::from_static("edits"),
            Value::Int(42),
            Value::from_static(r#"{"is_anon": false, "action": "edit"}"#),
        ]);
        let input = Tuple::detached("kafka", "default", &["topic", "offset", "value"], values);
        let keys = keys_of(&config, input.field("value").unwrap().as_str().unwrap()).unwrap();
        let got = key_tuples(&config, &input, keys).unwrap();
        let want = |key: &'static str, i: i64| -> Values {
            [
                Value::from_static(key),
                Value::from_static("edits"),
                Value::Int(42),
                Value::Int(i),
            ]
            .into_iter()
            .collect()
        };
        // No country: the optional key is skipped, and the positions stay contiguous.
        assert_eq!(
            got,
            [
                want("isanon_False", 0),
                want("anon_loggedin", 1),
                want("action_edit", 2)
            ]
        );
        // A carried field the input lacks is a wiring error naming it.
        c.insert("carry".into(), serde_json::json!(["partition"]));
        let config = JsonKeysConfig::parse(&c).unwrap();
        let err = key_tuples(&config, &input, vec!["a_b".into()]).unwrap_err();
        assert!(
            err.0.contains("no field \"partition\" (config key \"carry\")"),
            "{err:?}"
        );
        // Without carry and index: the key alone, as before.
        let config = talk();
        let got = key_tuples(&config, &input, vec!["a_b".into()]).unwrap();
        assert_eq!(got, [[Value::from_static("a_b")].into_iter().collect::<Values>()]);
    }

    #[test]
    fn the_talks_keys_for_a_logged_in_edit() {
        let event = r#"{"action": "edit", "change_size": 328, "flags": "M", "is_anon": false,
            "is_bot": false, "is_minor": true, "page_title": "St. Andre Bessette Catholic Secondary School",
            "user": "Frietjes"}"#;
        assert_eq!(
            keys_of(&talk(), event).unwrap(),
            ["isanon_False", "anon_loggedin", "bot_human", "action_edit"]
        );
    }

    #[test]
    fn the_talks_keys_for_an_anonymous_edit_with_geo_ip() {
        let event = r#"{"action": "create", "is_anon": true, "is_bot": false,
            "geo_ip": {"country_name": "Côte d'Ivoire", "city": "Abidjan"}}"#;
        assert_eq!(
            keys_of(&talk(), event).unwrap(),
            [
                "isanon_True",
                "anon_anon",
                "bot_human",
                "action_create",
                "country_Côte d'Ivoire"
            ]
        );
        // A bot, geo_ip null: no country.
        let event = r#"{"action": "edit", "is_anon": false, "is_bot": true, "geo_ip": null}"#;
        assert_eq!(
            keys_of(&talk(), event).unwrap(),
            ["isanon_False", "anon_loggedin", "bot_bot", "action_edit"]
        );
    }

    #[test]
    fn malformed_events_are_errors_not_partial_keys() {
        let c = talk();
        assert!(keys_of(&c, "{\"action\": ")
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert_eq!(keys_of(&c, "[1, 2]").unwrap_err(), "not a JSON object");
        assert_eq!(
            keys_of(&c, r#"{"is_anon": true}"#).unwrap_err(),
            "no \"action\" in the event"
        );
        assert_eq!(
            keys_of(&c, r#"{"action": "edit"}"#).unwrap_err(),
            "no \"is_anon\" in the event",
            "the talk's parser needs is_anon"
        );
        assert!(keys_of(&c, r#"{"is_anon": 1, "action": ["x"]}"#)
            .unwrap_err()
            .contains("array or object"));
    }

    #[test]
    fn json_format_and_truthiness() {
        let c: Config = serde_json::from_value(serde_json::json!({
            "keys": [
                {"prefix": "a_", "path": "a"},
                {"prefix": "n_", "path": "n"},
                {"prefix": "z_", "path": "z"},
                {"path": "s", "then": "s_yes", "else": "s_no"},
                {"path": "missing.deep", "then": "m_yes", "else": "m_no"},
            ]
        }))
        .unwrap();
        let c = JsonKeysConfig::parse(&c).unwrap();
        assert_eq!(
            keys_of(&c, r#"{"a": true, "n": 1.5, "z": null, "s": ""}"#).unwrap(),
            ["a_true", "n_1.5", "z_null", "s_no", "m_no"]
        );
    }

    #[test]
    fn shared_paths_escapes_and_odd_shapes() {
        let c = talk();
        // Escaped text comes out decoded; the same path serves two rules.
        let event = r#"{"is_bot": 0, "action": "ed\u0069t", "is_anon": true,
            "geo_ip": {"country_name": "C\u00f4te d'Ivoire", "extra": [1, {"a": null}]}, "z": {}}"#;
        assert_eq!(
            keys_of(&c, event).unwrap(),
            [
                "isanon_True",
                "anon_anon",
                "bot_human",
                "action_edit",
                "country_Côte d'Ivoire"
            ]
        );
        // geo_ip that is not an object: no country (optional), not an error.
        let event = r#"{"is_anon": true, "is_bot": false, "action": "edit", "geo_ip": "n/a"}"#;
        assert_eq!(keys_of(&c, event).unwrap().len(), 4);
        // Duplicate keys: the last one counts, as in serde_json's maps.
        let event = r#"{"is_anon": true, "is_bot": false, "action": "edit", "action": "create"}"#;
        assert_eq!(keys_of(&c, event).unwrap()[3], "action_create");
        assert!(keys_of(&c, r#"{"is_anon": true, "action": "x"} trailing"#).is_err());
        assert!(keys_of(&c, "").is_err());
    }
}
