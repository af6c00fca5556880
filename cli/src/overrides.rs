//! `--set key=value`: edits a manifest before it is validated, as Helm's `--set` does.
//!
//! The manifest is turned into a JSON tree, edited, and read back, so every field the
//! manifest has can be set without a hand-written list, and the model's own
//! deserialization rejects unknown fields and wrong types.
//!
//! Keys follow the manifest's field names, with two conveniences:
//! - in `spec.spouts` and `spec.bolts`, a component is picked by name
//!   (`spec.bolts.count.parallelism=4`); a number picks by position;
//! - below a free-form map (`config`, `labels`, `annotations`, `env`) the rest of the key,
//!   dots included, is one key, as Storm config keys are dotted
//!   (`spec.config.squall.queue.capacity=1024`).

use serde_json::{Map, Value};
use squall_model::TopologyManifest;

use crate::validate::Invalid;

/// One `--set KEY=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The dotted key, as given.
    pub key: String,
    /// The value as given, for messages.
    pub raw: String,
    /// The value read as a YAML scalar (or flow collection).
    pub value: Value,
}

/// Parses `KEY=VALUE`; used by clap so a malformed argument is a usage error.
pub fn parse(arg: &str) -> Result<Override, String> {
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(format!("expected KEY=VALUE, got {arg:?}"));
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!(
            "{key:?} is not a valid key (dotted path such as spec.ackers)"
        ));
    }
    Ok(Override {
        key: key.to_owned(),
        raw: raw.to_owned(),
        value: scalar(raw),
    })
}

/// Reads a value the way YAML would read it, so `100` is a number and `true` a boolean;
/// what YAML cannot read (or reads as a map) stays a string.
fn scalar(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::String(raw.to_owned());
    }
    match serde_yaml_ng::from_str::<Value>(raw) {
        // `a: b` would be a map: almost surely meant as text.
        Ok(Value::Object(_)) | Err(_) => Value::String(raw.to_owned()),
        Ok(v) => v,
    }
}

/// Applies overrides in order; each is checked right away so an error names its key.
pub fn apply(manifest: TopologyManifest, sets: &[Override]) -> Result<TopologyManifest, Invalid> {
    if sets.is_empty() {
        return Ok(manifest);
    }
    let mut tree =
        serde_json::to_value(&manifest).map_err(|e| Invalid(format!("cannot apply --set: {e}")))?;
    let mut result = manifest;
    for o in sets {
        let fail = |msg: String| Invalid(format!("--set {}={}: {msg}", o.key, o.raw));
        let segs: Vec<&str> = o.key.split('.').collect();
        match segs.first() {
            Some(&"spec") | Some(&"metadata") => {}
            _ => return Err(fail("only keys under spec. and metadata. can be set".into())),
        }
        set_in(&mut tree, &segs, None, &o.value).map_err(fail)?;
        result = serde_path_to_error::deserialize(tree.clone()).map_err(|e| {
            let path = e.path().to_string();
            fail(format!("{path}: {}", e.into_inner()))
        })?;
    }
    Ok(result)
}

/// Maps whose keys are the user's, not the model's.
fn is_free_form(field: Option<&str>) -> bool {
    matches!(field, Some("config" | "labels" | "annotations" | "env"))
}

fn set_in(node: &mut Value, segs: &[&str], field: Option<&str>, value: &Value) -> Result<(), String> {
    let Some((&seg, rest)) = segs.split_first() else {
        *node = value.clone();
        return Ok(());
    };
    match node {
        Value::Object(map) if is_free_form(field) => {
            map.insert(segs.join("."), value.clone());
            Ok(())
        }
        Value::Object(map) => {
            // Absent optional fields are not serialized; create them on the way down and
            // let deserialization reject names the model does not have.
            let child = map
                .entry(seg.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            set_in(child, rest, Some(seg), value)
        }
        Value::Array(items) => {
            let idx = match field {
                Some(role @ ("spouts" | "bolts")) => component_index(items, seg, role)?,
                _ => seg
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < items.len())
                    .ok_or_else(|| {
                        format!(
                            "{seg:?} is not an index of {} ({} items)",
                            field.unwrap_or("the list"),
                            items.len()
                        )
                    })?,
            };
            match items.get_mut(idx) {
                Some(child) => set_in(child, rest, field, value),
                None => Err(format!("no item {idx}")),
            }
        }
        // `{}` stands for an absent object created above; anything else is a leaf.
        other => Err(format!(
            "{} is a value ({other}), not an object with field {seg:?}",
            field.unwrap_or("the field")
        )),
    }
}

/// Finds a spout or bolt by name, or by position when no component has that name.
fn component_index(items: &[Value], seg: &str, role: &str) -> Result<usize, String> {
    let name_of = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_owned);
    if let Some(i) = items.iter().position(|c| name_of(c).as_deref() == Some(seg)) {
        return Ok(i);
    }
    if let Some(i) = seg.parse::<usize>().ok().filter(|i| *i < items.len()) {
        return Ok(i);
    }
    let names: Vec<String> = items.iter().filter_map(name_of).collect();
    let singular = role.trim_end_matches('s');
    Err(format!(
        "no {singular} named {seg:?}; {role}: {}",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn values_are_read_as_yaml_scalars() {
        assert_eq!(scalar("100"), Value::from(100));
        assert_eq!(scalar("true"), Value::Bool(true));
        assert_eq!(scalar("1.5"), Value::from(1.5));
        assert_eq!(scalar("word"), Value::from("word"));
        assert_eq!(scalar("a: b"), Value::from("a: b"));
        assert_eq!(scalar(""), Value::from(""));
        assert_eq!(scalar("[a, b]"), serde_json::json!(["a", "b"]));
    }

    #[test]
    fn malformed_arguments_are_rejected() {
        assert!(parse("spec.ackers").is_err());
        assert!(parse("=1").is_err());
        assert!(parse("spec..ackers=1").is_err());
        assert_eq!(parse("spec.ackers=0").unwrap().value, Value::from(0));
    }
}
