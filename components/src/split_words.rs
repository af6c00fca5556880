//! `split-words`: splits a text field into words (Storm's `SplitSentence`).
//!
//! # Emits
//! - `default` stream, fields `[word]`: one tuple per whitespace-separated word of the
//!   input's text, in order, anchored to the input.
//!
//! # Config
//! - `field` (string, default: the input's first field): the field holding the text.
//! - `lowercase` (bool, default `false`): lower-case each word.
//!
//! # Guarantees
//! - MUST ack the input once all its words are emitted, and fail it (with an error naming
//!   the field) when the field is missing or not text.
//! - MUST emit nothing for text with no words, and ignore tick tuples.
//! - SHOULD not copy words: they share the input's text buffer unless lower-cased.

use squall_engine::{Basic, BasicBolt, Bolt, BoltOutput, ComponentError, Tuple, Value, Values};

pub use squall_catalog::split_words::{SplitWordsConfig, KIND};

use crate::fields;

/// The `split-words` bolt.
pub struct SplitWords {
    config: SplitWordsConfig,
}

impl SplitWords {
    /// A bolt with this configuration.
    pub fn new(config: &SplitWordsConfig) -> Self {
        SplitWords {
            config: config.clone(),
        }
    }

    /// As a [`Bolt`].
    pub fn boxed(self) -> Box<dyn Bolt> {
        Box::new(Basic(self))
    }

    /// Calls `emit` with each word of `input`.
    fn split(
        &self,
        input: &Tuple,
        mut emit: impl FnMut(Value) -> Result<(), ComponentError>,
    ) -> Result<(), ComponentError> {
        let value = match &self.config.field {
            Some(name) => fields::named(KIND, "field", input, name)?,
            None => fields::first(KIND, input)?,
        };
        let Value::Str(text) = value else {
            return Err(ComponentError(format!(
                "{KIND}: field {:?} of input from {}/{} is not text: {value:?}",
                self.config
                    .field
                    .as_deref()
                    .unwrap_or_else(|| input.fields().first().map_or("", String::as_str)),
                input.source_component(),
                input.source_stream()
            )));
        };
        for word in text.split_whitespace() {
            let v = if self.config.lowercase && word.chars().any(char::is_uppercase) {
                Value::from(word.to_lowercase())
            } else {
                Value::Str(text.slice_ref(word))
            };
            emit(v)?;
        }
        Ok(())
    }
}

impl BasicBolt for SplitWords {
    fn execute(&mut self, input: &Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            return Ok(());
        }
        self.split(input, |word| {
            let mut v = Values::new();
            v.push(word);
            out.emit(&[], v).map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_engine::values;
    use squall_model::Config;

    fn words(config: serde_json::Value, input: &Tuple) -> Result<Vec<String>, String> {
        let config: Config = serde_json::from_value(config).unwrap();
        let bolt = SplitWords::new(&SplitWordsConfig::parse(&config).unwrap());
        let mut got = Vec::new();
        bolt.split(input, |w| {
            got.push(w.as_str().unwrap().to_owned());
            Ok(())
        })
        .map_err(|e| e.0)?;
        Ok(got)
    }

    #[test]
    fn splits_the_first_field_on_whitespace() {
        let t = Tuple::detached(
            "s",
            "default",
            &["sentence"],
            values!["  The cow\tjumped\n over "],
        );
        assert_eq!(
            words(serde_json::json!({}), &t).unwrap(),
            ["The", "cow", "jumped", "over"]
        );
        assert_eq!(
            words(serde_json::json!({"lowercase": true}), &t).unwrap(),
            ["the", "cow", "jumped", "over"]
        );
        let empty = Tuple::detached("s", "default", &["sentence"], values!["   "]);
        assert!(words(serde_json::json!({}), &empty).unwrap().is_empty());
    }

    #[test]
    fn named_field_must_exist_and_be_text() {
        let t = Tuple::detached("s", "default", &["id", "text"], values![1i64, "a b"]);
        assert_eq!(
            words(serde_json::json!({"field": "text"}), &t).unwrap(),
            ["a", "b"]
        );
        let err = words(serde_json::json!({"field": "body"}), &t).unwrap_err();
        assert_eq!(err, "split-words: input from s/default has no field \"body\" (config key \"field\"); its fields: id, text");
        let err = words(serde_json::json!({}), &t).unwrap_err();
        assert!(err.contains("\"id\"") && err.contains("not text"), "{err}");
    }
}
