//! `json-keys`: turns a JSON event into counter keys by rules on its fields (the talk's
//! `jsonParser`, made configurable).
//!
//! # Emits
//! - `default` stream, fields `[key]`: one tuple per key the rules produce for the event,
//!   in rule order, anchored to the input.
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
//! - MUST fail an input whose `field` is missing or not text (a wiring error, reported).
//! - MUST ignore tick tuples.

use bytestring::ByteString;
use serde_json::Value as Json;
use squall_engine::{
    Basic, BasicBolt, Bolt, BoltOutput, ComponentError, Counters, TaskContext, Tuple, Value, Values,
};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};
use tracing::{debug, warn};

use crate::config::{Conf, ConfigError};
use crate::fields;

/// Kind name.
pub const KIND: &str = "json-keys";
/// Stream of malformed events.
pub const ERROR_STREAM: &str = "errors";
/// Counter of malformed events.
pub const MALFORMED: &str = "malformed";
const KEYS: &[&str] = &["field", "format", "keys"];

/// How scalars are spelled in keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `true`, `false`, `null`.
    Json,
    /// `True`, `False`, `None`.
    Python,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `prefix` + the value at `path`.
    Value {
        /// Dotted path, split.
        path: Vec<String>,
        /// Text before the value.
        prefix: String,
        /// No key (rather than a malformed event) when the value is missing or null.
        optional: bool,
    },
    /// `then` or `else` by the truthiness of the value at `path`.
    Truthy {
        /// Dotted path, split.
        path: Vec<String>,
        /// Key when truthy.
        then: String,
        /// Key otherwise.
        otherwise: String,
    },
}

/// Parsed configuration of a `json-keys` bolt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonKeysConfig {
    /// JSON field; `None` means the first field.
    pub field: Option<String>,
    /// Spelling of scalars.
    pub format: Format,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

fn rule_error(i: usize, expected: &str, got: &Json) -> ConfigError {
    ConfigError::Invalid {
        key: format!("keys[{i}]"),
        expected: expected.to_owned(),
        got: got.to_string(),
    }
}

impl JsonKeysConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        const RULE: &str = "{path, prefix[, optional]} or {path, then, else}, with a non-empty dotted path";
        let c = Conf::new(KIND, config, KEYS)?;
        let format = match c.str_opt("format")? {
            None | Some("json") => Format::Json,
            Some("python") => Format::Python,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    key: "format".to_owned(),
                    expected: "json or python".to_owned(),
                    got: config.get("format").map(|v| v.to_string()).unwrap_or_default(),
                })
            }
        };
        let list = match config.get("keys") {
            Some(Json::Array(a)) if !a.is_empty() => a,
            None | Some(Json::Null) => {
                return Err(ConfigError::Missing {
                    key: "keys".to_owned(),
                    expected: "a non-empty list of key rules".to_owned(),
                })
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "keys".to_owned(),
                    expected: "a non-empty list of key rules".to_owned(),
                    got: other.to_string(),
                })
            }
        };
        let mut rules = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let Some(o) = item.as_object() else {
                return Err(rule_error(i, RULE, item));
            };
            let text = |k: &str| o.get(k).and_then(Json::as_str);
            let path: Vec<String> = match text("path") {
                Some(p) if !p.is_empty() && p.split('.').all(|s| !s.is_empty()) => {
                    p.split('.').map(str::to_owned).collect()
                }
                _ => return Err(rule_error(i, RULE, item)),
            };
            let known: &[&str] = if o.contains_key("then") || o.contains_key("else") {
                &["path", "then", "else"]
            } else {
                &["path", "prefix", "optional"]
            };
            if o.keys().any(|k| !known.contains(&k.as_str())) {
                return Err(rule_error(i, RULE, item));
            }
            let rule = match (text("then"), text("else"), o.get("prefix")) {
                (Some(then), Some(otherwise), None) => Rule::Truthy {
                    path,
                    then: then.to_owned(),
                    otherwise: otherwise.to_owned(),
                },
                (None, None, Some(Json::String(prefix))) => Rule::Value {
                    path,
                    prefix: prefix.clone(),
                    optional: match o.get("optional") {
                        None | Some(Json::Null) => false,
                        Some(Json::Bool(b)) => *b,
                        Some(_) => return Err(rule_error(i, RULE, item)),
                    },
                },
                _ => return Err(rule_error(i, RULE, item)),
            };
            rules.push(rule);
        }
        Ok(JsonKeysConfig {
            field: c.field_opt("field")?,
            format,
            rules,
        })
    }
}

pub(crate) fn outputs() -> Vec<StreamSpec> {
    vec![
        StreamSpec::new(DEFAULT_STREAM, &["key"]),
        StreamSpec::new(ERROR_STREAM, &["event", "error"]),
    ]
}

/// The value at a dotted path, `None` when any step is missing or not an object.
fn lookup<'j>(root: &'j Json, path: &[String]) -> Option<&'j Json> {
    path.iter().try_fold(root, |v, step| v.as_object()?.get(step))
}

/// Python's truthiness of a JSON value.
fn truthy(v: Option<&Json>) -> bool {
    match v {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(Json::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(o)) => !o.is_empty(),
    }
}

/// The keys of one event, or why it is malformed.
pub fn keys_of(config: &JsonKeysConfig, text: &str) -> Result<Vec<String>, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    if !json.is_object() {
        return Err("not a JSON object".to_owned());
    }
    let mut keys = Vec::with_capacity(config.rules.len());
    for rule in &config.rules {
        match rule {
            Rule::Truthy {
                path,
                then,
                otherwise,
            } => keys.push(if truthy(lookup(&json, path)) {
                then.clone()
            } else {
                otherwise.clone()
            }),
            Rule::Value {
                path,
                prefix,
                optional,
            } => {
                let v = lookup(&json, path);
                if *optional && matches!(v, None | Some(Json::Null)) {
                    continue;
                }
                let mut key = prefix.clone();
                match v {
                    None => return Err(format!("no {:?} in the event", path.join("."))),
                    Some(Json::String(s)) => key.push_str(s),
                    Some(Json::Bool(b)) => key.push_str(match (config.format, b) {
                        (Format::Json, true) => "true",
                        (Format::Json, false) => "false",
                        (Format::Python, true) => "True",
                        (Format::Python, false) => "False",
                    }),
                    Some(Json::Null) => key.push_str(match config.format {
                        Format::Json => "null",
                        Format::Python => "None",
                    }),
                    Some(Json::Number(n)) => key.push_str(&n.to_string()),
                    Some(_) => {
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
            Ok(keys) => {
                for key in keys {
                    let mut v = Values::new();
                    v.push(Value::Str(ByteString::from(key)));
                    out.emit(&[], v)?;
                }
            }
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
    fn config_errors_name_the_rule() {
        let parse = |v: serde_json::Value| {
            JsonKeysConfig::parse(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
        };
        assert_eq!(
            parse(serde_json::json!({})).unwrap_err(),
            "config key \"keys\" is required: a non-empty list of key rules"
        );
        assert!(parse(serde_json::json!({"keys": [{"path": "a"}]}))
            .unwrap_err()
            .starts_with("config key \"keys[0]\""));
        assert!(parse(serde_json::json!({"keys": [{"path": "a.", "prefix": "x"}]})).is_err());
        assert!(parse(serde_json::json!({"keys": [{"path": "a", "then": "x"}]})).is_err());
        assert!(
            parse(serde_json::json!({"keys": [{"path": "a", "prefix": "x", "then": "y", "else": "z"}]}))
                .is_err()
        );
        assert!(
            parse(serde_json::json!({"keys": [{"path": "a", "prefix": "x", "optional": "yes"}]})).is_err()
        );
        assert!(
            parse(serde_json::json!({"format": "yaml", "keys": [{"path": "a", "prefix": "x"}]})).is_err()
        );
    }
}
