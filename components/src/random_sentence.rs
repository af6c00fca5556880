//! `random-sentence`: Storm's `RandomSentenceSpout`, picking from a fixed list of sentences.
//!
//! # Emits
//! - `default` stream, fields `[sentence]`: one sentence per `next_tuple`.
//!
//! # Config
//! - `seed` (non-negative integer, default 0): the choice of sentence for tuple *i* is a
//!   pure function of `seed` and *i*, so runs with the same seed emit the same sentences.
//! - `count` (non-negative integer, optional): total sentences for the component, split
//!   over its tasks; unset means forever.
//! - `reliable` (bool, default `true`): emit with the tuple number *i* as message id.
//!
//! # Guarantees
//! - MUST emit one of [`SENTENCES`] per `next_tuple` call while it has tuples left.
//! - MUST re-emit a failed tuple with the same sentence (it is derived from the id).
//! - With `count`, MUST report finished only once everything was emitted and, when
//!   `reliable`, acked.

use squall_engine::{Value, Values};

pub use squall_catalog::random_sentence::{RandomSentenceConfig, KIND};

use crate::ids::{mix64, IdSource};

/// The sentences, Storm's classic five.
pub const SENTENCES: [&str; 5] = [
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
];

/// The sentence of tuple `id` for `seed`.
pub fn sentence_for(seed: u64, id: u64) -> &'static str {
    SENTENCES[(mix64(seed ^ mix64(id)) % SENTENCES.len() as u64) as usize]
}

/// The `random-sentence` spout.
pub struct RandomSentenceSpout {
    seed: u64,
    ids: IdSource,
}

impl RandomSentenceSpout {
    /// A spout with this configuration.
    pub fn new(config: &RandomSentenceConfig) -> Self {
        RandomSentenceSpout {
            seed: config.seed,
            ids: IdSource::new(config.count, config.reliable),
        }
    }

    fn next_values(&mut self) -> Option<(Values, Option<Value>)> {
        let (id, msg_id) = self.ids.next()?;
        let mut v = Values::new();
        v.push(Value::from_static(sentence_for(self.seed, id)));
        Some((v, msg_id))
    }
}

crate::ids::id_spout!(RandomSentenceSpout);

#[cfg(test)]
mod tests {
    use super::*;
    use squall_engine::Spout;
    use squall_model::Config;

    fn spout(json: serde_json::Value) -> RandomSentenceSpout {
        let config: Config = serde_json::from_value(json).unwrap();
        RandomSentenceSpout::new(&RandomSentenceConfig::parse(&config).unwrap())
    }

    fn drain(s: &mut RandomSentenceSpout) -> Vec<String> {
        std::iter::from_fn(|| s.next_values().map(|(v, _)| v[0].as_str().unwrap().to_owned())).collect()
    }

    #[test]
    fn same_seed_same_sentences_and_all_sentences_appear() {
        let a = drain(&mut spout(serde_json::json!({"seed": 7, "count": 200})));
        let b = drain(&mut spout(serde_json::json!({"seed": 7, "count": 200})));
        let c = drain(&mut spout(serde_json::json!({"seed": 8, "count": 200})));
        assert_eq!(a.len(), 200);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for s in SENTENCES {
            assert!(a.iter().any(|x| x == s), "{s:?} never chosen");
        }
    }

    #[test]
    fn replay_repeats_the_same_sentence() {
        let mut s = spout(serde_json::json!({"seed": 1, "count": 5}));
        let first = drain(&mut s);
        s.fail(Value::Int(3));
        let (v, id) = s.next_values().unwrap();
        assert_eq!(id, Some(Value::Int(3)));
        assert_eq!(v[0].as_str(), Some(first[3].as_str()));
    }
}
