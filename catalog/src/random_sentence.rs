//! `random-sentence`'s configuration (the spout is `squall_components::random_sentence`).

use squall_component_config::{Conf, ConfigError};
use squall_model::{Config, StreamSpec, DEFAULT_STREAM};

/// Kind name.
pub const KIND: &str = "random-sentence";
const KEYS: &[&str] = &["seed", "count", "reliable"];

/// Parsed configuration of a `random-sentence` spout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomSentenceConfig {
    /// Seed of the choice.
    pub seed: u64,
    /// Sentences to emit, if finite.
    pub count: Option<u64>,
    /// Emit with message ids.
    pub reliable: bool,
}

impl RandomSentenceConfig {
    /// Reads and checks the configuration.
    pub fn parse(config: &Config) -> Result<Self, ConfigError> {
        let c = Conf::new(KIND, config, KEYS)?;
        Ok(RandomSentenceConfig {
            seed: c.u64_or("seed", 0)?,
            count: c.u64_opt("count")?,
            reliable: c.bool_or("reliable", true)?,
        })
    }
}

/// Default output streams.
pub fn outputs() -> Vec<StreamSpec> {
    vec![StreamSpec::new(DEFAULT_STREAM, &["sentence"])]
}
