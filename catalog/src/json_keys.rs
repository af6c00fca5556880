//! `json-keys`' configuration: the rules, checked and compiled into the tree of paths
//! they read (the bolt, which evaluates them, is `squall_components::json_keys`).

use serde_json::Value as Json;
use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, FieldBound, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "json-keys";
/// Stream of malformed events.
pub const ERROR_STREAM: &str = "errors";
const KEYS: &[&str] = &["field", "format", "keys", "carry", "index"];
/// The key field of the default stream.
pub const KEY_FIELD: &str = "key";

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
        /// Where the value at `path` is collected.
        slot: usize,
        /// Text before the value.
        prefix: String,
        /// No key (rather than a malformed event) when the value is missing or null.
        optional: bool,
    },
    /// `then` or `else` by the truthiness of the value at `path`.
    Truthy {
        /// Dotted path, split.
        path: Vec<String>,
        /// Where the value at `path` is collected.
        slot: usize,
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
    /// Input fields copied onto every key tuple, after `key`.
    pub carry: Vec<String>,
    /// Name of the field holding the key's 0-based position among the event's keys.
    pub index: Option<String>,
    /// Every path the rules read.
    tree: PathTree,
    /// Distinct paths.
    slots: usize,
}

impl JsonKeysConfig {
    /// Every path the rules read, as a tree, so one pass over an event finds them all.
    pub fn paths(&self) -> &PathTree {
        &self.tree
    }

    /// Distinct paths the rules read: the slots [`Rule`]s and [`PathTree`] refer to.
    pub fn slots(&self) -> usize {
        self.slots
    }
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
        let mut tree = PathTree::default();
        let mut slots = 0;
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
            let slot = tree.insert(&path, slots);
            if slot == slots {
                slots += 1;
            }
            let rule = match (text("then"), text("else"), o.get("prefix")) {
                (Some(then), Some(otherwise), None) => Rule::Truthy {
                    path,
                    slot,
                    then: then.to_owned(),
                    otherwise: otherwise.to_owned(),
                },
                (None, None, Some(Json::String(prefix))) => Rule::Value {
                    path,
                    slot,
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
        let carry = c.fields_opt("carry")?.unwrap_or_default();
        if carry.iter().any(|f| f == KEY_FIELD) {
            return Err(c.invalid("carry", "field names other than \"key\" (the key field)"));
        }
        let index = c.field_opt("index")?;
        if let Some(i) = &index {
            if i == KEY_FIELD || carry.contains(i) {
                return Err(c.invalid("index", "a field name other than \"key\" and the carried fields"));
            }
        }
        Ok(JsonKeysConfig {
            field: c.field_opt("field")?,
            format,
            rules,
            carry,
            index,
            tree,
            slots,
        })
    }

    /// Fields of the default stream: `key`, the carried fields, then the index field.
    pub fn key_fields(&self) -> Vec<String> {
        std::iter::once(KEY_FIELD.to_owned())
            .chain(self.carry.iter().cloned())
            .chain(self.index.iter().cloned())
            .collect()
    }
}

/// Output streams: the keys (with the carried fields and the index, when configured), and
/// the malformed events.
pub fn outputs(config: &JsonKeysConfig) -> Vec<StreamSpec> {
    vec![
        StreamSpec {
            stream: DEFAULT_STREAM.to_owned(),
            fields: config.key_fields(),
            direct: false,
        },
        StreamSpec::new(ERROR_STREAM, &["event", "error"]),
    ]
}

/// The index field's bound: one key per rule at most, so indexes stay below the number
/// of rules (what `redis-counter`'s `exactly_once.tuples_per_record` is checked against).
pub fn bounds(config: &JsonKeysConfig) -> Vec<FieldBound> {
    config
        .index
        .iter()
        .map(|field| FieldBound {
            stream: DEFAULT_STREAM.to_owned(),
            field: field.clone(),
            limit: config.rules.len() as u64,
        })
        .collect()
}

/// The paths the rules read, as a tree, so one pass over an event finds them all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathTree {
    /// Slot of the value at this node, when a rule reads it.
    slot: Option<usize>,
    children: Vec<(String, PathTree)>,
}

impl PathTree {
    fn insert(&mut self, path: &[String], slot: usize) -> usize {
        let Some((first, rest)) = path.split_first() else {
            return *self.slot.get_or_insert(slot);
        };
        let i = match self.children.iter().position(|(k, _)| k == first) {
            Some(i) => i,
            None => {
                self.children.push((first.clone(), PathTree::default()));
                self.children.len() - 1
            }
        };
        self.children[i].1.insert(rest, slot)
    }

    /// Slot of the value at this node, when a rule reads it.
    pub fn slot(&self) -> Option<usize> {
        self.slot
    }

    /// The object keys below this node, each with its subtree.
    pub fn children(&self) -> &[(String, PathTree)] {
        &self.children
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn carried_fields_and_the_index_follow_the_key() {
        let parse = |v: serde_json::Value| {
            JsonKeysConfig::parse(&serde_json::from_value(v).unwrap()).map_err(|e| e.to_string())
        };
        let rule = serde_json::json!([{"path": "a", "prefix": "a_"}]);
        let c = parse(serde_json::json!({"keys": rule, "carry": ["topic", "offset"], "index": "i"})).unwrap();
        assert_eq!(
            outputs(&c),
            [
                StreamSpec::new("default", &["key", "topic", "offset", "i"]),
                StreamSpec::new("errors", &["event", "error"])
            ]
        );
        let c = parse(serde_json::json!({"keys": rule})).unwrap();
        assert_eq!(outputs(&c)[0], StreamSpec::new("default", &["key"]));
        for bad in [
            serde_json::json!({"keys": rule, "carry": ["key"]}),
            serde_json::json!({"keys": rule, "carry": ["a", "a"]}),
            serde_json::json!({"keys": rule, "carry": []}),
            serde_json::json!({"keys": rule, "carry": ["a"], "index": "a"}),
            serde_json::json!({"keys": rule, "index": "key"}),
            serde_json::json!({"keys": rule, "index": ""}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
        assert!(parse(serde_json::json!({"keys": rule, "index": "key"}))
            .unwrap_err()
            .starts_with("config key \"index\""));
    }

    #[test]
    fn rules_on_one_path_share_a_slot() {
        let c: Config = serde_json::from_value(serde_json::json!({
            "keys": [
                {"prefix": "a_", "path": "geo.country"},
                {"path": "geo.country", "then": "y", "else": "n"},
                {"prefix": "b_", "path": "b"},
            ]
        }))
        .unwrap();
        let c = JsonKeysConfig::parse(&c).unwrap();
        assert_eq!(c.slots(), 2);
        let geo = &c.paths().children()[0];
        assert_eq!(geo.0, "geo");
        assert_eq!(geo.1.children()[0].1.slot(), Some(0));
        assert_eq!(c.paths().children()[1].1.slot(), Some(1));
    }
}
