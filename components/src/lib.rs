//! Squall's built-in spouts and bolts, and [`Builtins`], the catalog that names them.
//!
//! [`Builtins`] is both the [`Catalog`] validation asks about kinds (role, default output
//! streams, config errors) and the [`ComponentFactory`] the engine builds tasks with.
//! Both read a component's config through the same parser, so a config that validates
//! builds.
//!
//! | kind | role | default outputs |
//! |---|---|---|
//! | [`const`](const_spout) | spout | `default: [payload]` |
//! | [`sequence`] | spout | `default: [n]` |
//! | [`random-sentence`](random_sentence) | spout | `default: [sentence]` |
//! | [`json-lines`](json_lines) | spout | `default: [line]` or `fields`; `errors: [line, error]` |
//! | [`split-words`](split_words) | bolt | `default: [word]` |
//! | [`count`] | bolt | `default: [<key>, count]` |
//! | [`identity`] | bolt | `default: fields` |
//! | [`null`] | bolt | none |
//! | [`log`] | bolt | none |
//! | [`fail-some`](fail_some) | bolt (test helper) | `default: fields` |
//! | [`json-keys`](json_keys) | bolt | `default: [key]`; `errors: [event, error]` |
//! | [`websocket`](squall_connectors::websocket) | spout | `default: [event]`; `errors: [event, error]` |
//! | [`sse`](squall_connectors::sse) | spout | `default: [event]`; `errors: [event, error]` |
//! | [`redis-counter`](squall_connectors::redis_counter) | bolt | none |
//! | `shell` | either | none (declared in the manifest) |
//!
//! Each module's documentation is the component's specification.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod fields;
mod ids;

pub mod const_spout;
pub mod count;
pub mod fail_some;
pub mod identity;
pub mod json_keys;
pub mod json_lines;
pub mod log;
pub mod null;
pub mod random_sentence;
pub mod sequence;
pub mod split_words;

pub use squall_component_config::ConfigError;

use squall_engine::{Bolt, ComponentError, ComponentFactory, Spout};
use squall_model::{Catalog, ComponentPlan, Config, KindInfo, Role, StreamSpec};

/// Kind name of components run as a subprocess (Storm's multilang).
pub const SHELL: &str = "shell";

/// Every kind, in the order `kinds()` lists them.
pub const KINDS: &[&str] = &[
    const_spout::KIND,
    sequence::KIND,
    random_sentence::KIND,
    json_lines::KIND,
    split_words::KIND,
    count::KIND,
    identity::KIND,
    null::KIND,
    log::KIND,
    fail_some::KIND,
    json_keys::KIND,
    squall_connectors::websocket::KIND,
    squall_connectors::sse::KIND,
    squall_connectors::redis_counter::KIND,
    SHELL,
];

/// The built-in component kinds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builtins;

/// A built kind: a spout or a bolt instance.
enum Instance {
    Spout(Box<dyn Spout>),
    Bolt(Box<dyn Bolt>),
}

/// Role and default outputs of a known kind, or `None` for an unknown one.
fn describe(kind: &str, config: &Config) -> Option<Result<KindInfo, ConfigError>> {
    let spout = |r: Result<Vec<StreamSpec>, ConfigError>| {
        Some(r.map(|outputs| KindInfo {
            role: Some(Role::Spout),
            outputs,
        }))
    };
    let bolt = |r: Result<Vec<StreamSpec>, ConfigError>| {
        Some(r.map(|outputs| KindInfo {
            role: Some(Role::Bolt),
            outputs,
        }))
    };
    match kind {
        const_spout::KIND => {
            spout(const_spout::ConstConfig::parse(config).map(|_| const_spout::outputs(config)))
        }
        sequence::KIND => spout(sequence::SequenceConfig::parse(config).map(|_| sequence::outputs(config))),
        random_sentence::KIND => spout(
            random_sentence::RandomSentenceConfig::parse(config).map(|_| random_sentence::outputs(config)),
        ),
        json_lines::KIND => {
            spout(json_lines::JsonLinesConfig::parse(config).map(|c| json_lines::outputs(&c)))
        }
        split_words::KIND => {
            bolt(split_words::SplitWordsConfig::parse(config).map(|_| split_words::outputs(config)))
        }
        count::KIND => bolt(count::CountConfig::parse(config).map(|c| count::outputs(&c))),
        identity::KIND => {
            bolt(identity::IdentityConfig::parse(config).map(|c| identity::outputs_for(&c.fields)))
        }
        null::KIND => bolt(null::check(config).map(|_| null::outputs())),
        log::KIND => bolt(log::LogConfig::parse(config).map(|_| log::outputs())),
        fail_some::KIND => {
            bolt(fail_some::FailSomeConfig::parse(config).map(|c| identity::outputs_for(&c.fields)))
        }
        json_keys::KIND => bolt(json_keys::JsonKeysConfig::parse(config).map(|_| json_keys::outputs())),
        // The shell block, not `config`, describes a shell component; its outputs are
        // declared in the manifest.
        SHELL => Some(Ok(KindInfo {
            role: None,
            outputs: Vec::new(),
        })),
        other => squall_connectors::describe(other, config).map(|r| {
            r.map(|(role, outputs)| KindInfo {
                role: Some(role),
                outputs,
            })
        }),
    }
}

/// A fresh instance of `kind`.
fn build(kind: &str, config: &Config) -> Result<Instance, ComponentError> {
    let invalid = |e: ConfigError| ComponentError(format!("{kind}: invalid config: {e}"));
    Ok(match kind {
        const_spout::KIND => Instance::Spout(Box::new(const_spout::ConstSpout::new(
            &const_spout::ConstConfig::parse(config).map_err(invalid)?,
        ))),
        sequence::KIND => Instance::Spout(Box::new(sequence::SequenceSpout::new(
            &sequence::SequenceConfig::parse(config).map_err(invalid)?,
        ))),
        random_sentence::KIND => Instance::Spout(Box::new(random_sentence::RandomSentenceSpout::new(
            &random_sentence::RandomSentenceConfig::parse(config).map_err(invalid)?,
        ))),
        json_lines::KIND => Instance::Spout(Box::new(json_lines::JsonLinesSpout::new(
            &json_lines::JsonLinesConfig::parse(config).map_err(invalid)?,
        ))),
        split_words::KIND => Instance::Bolt(
            split_words::SplitWords::new(&split_words::SplitWordsConfig::parse(config).map_err(invalid)?)
                .boxed(),
        ),
        count::KIND => Instance::Bolt(
            count::CountBolt::new(&count::CountConfig::parse(config).map_err(invalid)?).boxed(),
        ),
        identity::KIND => {
            identity::IdentityConfig::parse(config).map_err(invalid)?;
            Instance::Bolt(Box::new(identity::IdentityBolt))
        }
        null::KIND => {
            null::check(config).map_err(invalid)?;
            Instance::Bolt(Box::new(null::NullBolt))
        }
        log::KIND => {
            Instance::Bolt(log::LogBolt::new(&log::LogConfig::parse(config).map_err(invalid)?).boxed())
        }
        fail_some::KIND => Instance::Bolt(Box::new(fail_some::FailSomeBolt::new(
            &fail_some::FailSomeConfig::parse(config).map_err(invalid)?,
        ))),
        json_keys::KIND => Instance::Bolt(
            json_keys::JsonKeys::new(&json_keys::JsonKeysConfig::parse(config).map_err(invalid)?).boxed(),
        ),
        // Built from the plan's `shell` block by the factory methods, never from a config.
        SHELL => {
            return Err(ComponentError::new(
                "shell components are built from their `shell` block, not from a config",
            ))
        }
        other => match squall_connectors::build(other, config) {
            Some(built) => match built? {
                squall_connectors::Built::Spout(s) => Instance::Spout(s),
                squall_connectors::Built::Bolt(b) => Instance::Bolt(b),
            },
            None => {
                return Err(ComponentError(format!(
                    "unknown component kind {other:?}; known kinds: {}",
                    KINDS.join(", ")
                )))
            }
        },
    })
}

impl Catalog for Builtins {
    fn describe(&self, kind: &str, config: &Config) -> Option<Result<KindInfo, String>> {
        describe(kind, config).map(|r| r.map_err(|e| e.to_string()))
    }

    fn kinds(&self) -> Vec<String> {
        KINDS.iter().map(|k| (*k).to_owned()).collect()
    }
}

impl ComponentFactory for Builtins {
    fn spout(&self, component: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError> {
        if component.kind == SHELL {
            return squall_multilang::spout_for(component);
        }
        match build(&component.kind, &component.config)? {
            Instance::Spout(s) => Ok(s),
            Instance::Bolt(_) => Err(ComponentError(format!(
                "{:?} is a bolt kind and cannot run as spout {:?}",
                component.kind, component.name
            ))),
        }
    }

    fn bolt(&self, component: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError> {
        if component.kind == SHELL {
            return squall_multilang::bolt_for(component);
        }
        match build(&component.kind, &component.config)? {
            Instance::Bolt(b) => Ok(b),
            Instance::Spout(_) => Err(ComponentError(format!(
                "{:?} is a spout kind and cannot run as bolt {:?}",
                component.kind, component.name
            ))),
        }
    }

    /// In-memory kinds, local file reads and the live feeds (a reader thread fills a
    /// channel) return within microseconds;
    /// `shell` (subprocess round trips) and `redis-counter` (network) keep their own thread.
    fn cooperative(&self, component: &ComponentPlan) -> bool {
        let blocking = [SHELL, squall_connectors::redis_counter::KIND];
        KINDS.contains(&component.kind.as_str()) && !blocking.contains(&component.kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kind_is_described_with_an_empty_config_except_json_lines() {
        for kind in Builtins.kinds() {
            let got = Builtins.describe(&kind, &Config::new());
            match kind.as_str() {
                json_lines::KIND => {
                    assert!(matches!(got, Some(Err(ref e)) if e.contains("\"path\"")))
                }
                json_keys::KIND => {
                    assert!(matches!(got, Some(Err(ref e)) if e.contains("\"keys\"")))
                }
                "websocket" | "sse" => {
                    assert!(
                        matches!(got, Some(Err(ref e)) if e.contains("\"url\"")),
                        "{kind}: {got:?}"
                    )
                }
                SHELL => assert_eq!(
                    got,
                    Some(Ok(KindInfo {
                        role: None,
                        outputs: Vec::new()
                    }))
                ),
                _ => assert!(matches!(got, Some(Ok(_))), "{kind}: {got:?}"),
            }
        }
        assert_eq!(Builtins.describe("nope", &Config::new()), None);
    }

    #[test]
    fn only_kinds_that_never_block_share_executor_threads() {
        let plan = |kind: &str| ComponentPlan {
            name: "c".into(),
            role: Role::Bolt,
            kind: kind.into(),
            parallelism: 1,
            tasks: vec![1],
            config: Config::new(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            tick: None,
            shell: None,
        };
        for kind in ["const", "identity", "null", "count", "websocket"] {
            assert!(Builtins.cooperative(&plan(kind)), "{kind}");
        }
        for kind in [SHELL, "redis-counter", "no-such-kind"] {
            assert!(!Builtins.cooperative(&plan(kind)), "{kind}");
        }
    }

    #[test]
    fn shell_is_built_from_the_plan_shell_block() {
        let plan = |shell: Option<squall_model::ShellSpec>| ComponentPlan {
            name: "py".into(),
            role: Role::Bolt,
            kind: SHELL.into(),
            parallelism: 1,
            tasks: vec![1],
            config: Config::new(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            tick: None,
            shell,
        };
        let err = Builtins.bolt(&plan(None)).err().map(|e| e.0);
        assert_eq!(
            err.as_deref(),
            Some("shell component \"py\" has no `shell` block (command, args, env, workingDir)")
        );
        let spec = squall_model::ShellSpec {
            command: "python3".into(),
            args: vec!["x.py".into()],
            env: Default::default(),
            working_dir: None,
        };
        assert!(Builtins.bolt(&plan(Some(spec.clone()))).is_ok());
        assert!(Builtins.spout(&plan(Some(spec))).is_ok());
    }
}
