//! `count`: counts tuples by key (Storm's word-count `WordCount` bolt).
//!
//! # Emits
//! - `default` stream, fields `[<key>, count]`: for each input, its key and the number of
//!   inputs with that key this task has seen so far (itself included), anchored to it.
//!
//! # Config
//! - `key` (string, default `word`): the input field counted by, and the name of the
//!   first output field. When `key` is not set and the input has no `word` field, the
//!   input's first field is used.
//!
//! # Guarantees
//! - MUST emit the updated count once per input and ack it; MUST fail an input without
//!   the key field, with an error naming the field.
//! - Counts are per task and in memory (one entry per distinct key, never evicted): use
//!   a `fields` grouping on the key so each key is counted by one task. A replayed input
//!   is counted again (at-least-once), and a restarted task starts from zero.
//! - MUST ignore tick tuples.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use squall_engine::{Basic, BasicBolt, Bolt, BoltOutput, ComponentError, Tuple, Value, Values};

pub use squall_catalog::count::{CountConfig, DEFAULT_KEY, KIND};

use crate::fields;

/// The `count` bolt.
pub struct CountBolt {
    config: CountConfig,
    /// One entry per distinct key, found by the key's hash under `seed` and compared by
    /// [`Value::same_bits`], so a repeated NaN key, alone or inside a list or map, is one
    /// entry and the table grows only with distinct keys.
    counts: HashTable<(Value, i64)>,
    /// Random per task: keys come from outside, and an unpredictable hash keeps a chosen
    /// set of keys from piling into one probe sequence.
    seed: u64,
}

impl CountBolt {
    /// A bolt with this configuration.
    pub fn new(config: &CountConfig) -> Self {
        CountBolt {
            config: config.clone(),
            counts: HashTable::new(),
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }

    /// As a [`Bolt`].
    pub fn boxed(self) -> Box<dyn Bolt> {
        Box::new(Basic(self))
    }

    /// Counts `input`; returns its key and the new count.
    fn count(&mut self, input: &Tuple) -> Result<(Value, i64), ComponentError> {
        let key = match &self.config.key {
            Some(name) => fields::named(KIND, "key", input, name)?,
            None => match input.field(DEFAULT_KEY) {
                Some(v) => v,
                None => fields::first(KIND, input)?,
            },
        };
        // One hash per input, and the key is cloned into the table only when it is new.
        let seed = self.seed;
        let hash = key.stable_hash(seed);
        let entry = self
            .counts
            .entry(hash, |(k, _)| k.same_bits(key), |(k, _)| k.stable_hash(seed));
        let n = match entry {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                o.get_mut().1 += 1;
                o.get().1
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert((key.clone(), 1));
                1
            }
        };
        Ok((key.clone(), n))
    }
}

impl BasicBolt for CountBolt {
    fn execute(&mut self, input: &Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            return Ok(());
        }
        let (key, n) = self.count(input)?;
        let mut v = Values::new();
        v.push(key);
        v.push(Value::Int(n));
        out.emit(&[], v)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_catalog::count::outputs;
    use squall_engine::values;
    use squall_model::{Config, StreamSpec};
    use std::sync::Arc;

    fn bolt(config: serde_json::Value) -> CountBolt {
        let config: Config = serde_json::from_value(config).unwrap();
        CountBolt::new(&CountConfig::parse(&config).unwrap())
    }

    #[test]
    fn counts_by_word_and_emits_running_totals() {
        let mut b = bolt(serde_json::json!({}));
        let t = |w: &str| Tuple::detached("split", "default", &["word"], values![w]);
        let got: Vec<(Value, i64)> = ["a", "b", "a", "a"]
            .iter()
            .map(|w| b.count(&t(w)).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                (Value::from("a"), 1),
                (Value::from("b"), 1),
                (Value::from("a"), 2),
                (Value::from("a"), 3)
            ]
        );
    }

    #[test]
    fn configured_key_is_required_on_input_and_named_in_outputs() {
        let mut b = bolt(serde_json::json!({"key": "user"}));
        assert_eq!(
            outputs(&b.config),
            vec![StreamSpec::new("default", &["user", "count"])]
        );
        let ok = Tuple::detached("s", "default", &["n", "user"], values![1i64, 42i64]);
        assert_eq!(b.count(&ok).unwrap(), (Value::Int(42), 1));
        let bad = Tuple::detached("s", "default", &["word"], values!["x"]);
        assert!(b.count(&bad).unwrap_err().0.contains("no field \"user\""));
    }

    #[test]
    fn without_key_or_word_field_the_first_field_counts() {
        let mut b = bolt(serde_json::json!({}));
        let t = Tuple::detached("s", "default", &["n", "x"], values![7i64, "y"]);
        assert_eq!(b.count(&t).unwrap(), (Value::Int(7), 1));
        assert_eq!(b.count(&t).unwrap(), (Value::Int(7), 2));
    }

    /// The table grows (and rehashes) many times; every key keeps its own running count.
    #[test]
    fn many_distinct_keys_keep_their_counts_through_growth() {
        let mut b = bolt(serde_json::json!({}));
        let t = |i: i64| Tuple::detached("s", "default", &["word"], values![format!("w{i}")]);
        for round in 1..=3 {
            for i in 0..5000 {
                assert_eq!(b.count(&t(i)).unwrap(), (Value::from(format!("w{i}")), round));
            }
        }
        assert_eq!(b.counts.len(), 5000);
    }

    /// A float key is one entry per bit pattern: repeated NaNs do not grow the table.
    #[test]
    fn float_keys_count_by_their_bits() {
        let mut b = bolt(serde_json::json!({}));
        let t = |f: f64| Tuple::detached("s", "default", &["word"], values![Value::Float(f)]);
        for round in 1..=3 {
            assert_eq!(b.count(&t(f64::NAN)).unwrap().1, round);
            assert_eq!(b.count(&t(1.5)).unwrap().1, round);
        }
        assert_eq!(b.count(&t(-0.0)).unwrap().1, 1);
        assert_eq!(b.counts.len(), 3);
    }

    /// So is a NaN inside a list or a map key, at any depth.
    #[test]
    fn nan_inside_a_key_is_one_entry() {
        let mut b = bolt(serde_json::json!({}));
        let list = || Value::List(Arc::new(vec![Value::Int(1), Value::Float(f64::NAN)]));
        let map = || {
            let inner = Value::List(Arc::new(vec![Value::Float(f64::NAN)]));
            Value::Map(Arc::new([("k".to_owned(), inner)].into_iter().collect()))
        };
        let t = |v: Value| Tuple::detached("s", "default", &["word"], values![v]);
        for round in 1..=3 {
            assert_eq!(b.count(&t(list())).unwrap().1, round);
            assert_eq!(b.count(&t(map())).unwrap().1, round);
        }
        assert_eq!(b.counts.len(), 2);
    }
}
