//! Squall's built-in spouts and bolts, and [`Builtins`], the catalog that names them.
//!
//! [`Builtins`] is both the [`Catalog`] validation asks about kinds (role, default output
//! streams, config errors) and the [`ComponentFactory`] the engine builds tasks with. Its
//! catalog is `squall_catalog::BuiltinKinds`, which holds every kind's config type; the
//! factory builds from those same types, so a config that validates builds.
//!
//! The kinds, their roles and default outputs are listed in `squall-catalog`; each
//! module's documentation here (and in `squall-connectors` for `websocket`, `sse` and
//! `redis-counter`, in `squall-kafka` for `kafka` and `kafka-producer`) is the
//! component's specification.
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

pub use squall_catalog::{ConfigError, KINDS, SHELL};

use squall_catalog::BuiltinKinds;
use squall_engine::{Bolt, ComponentError, ComponentFactory, Spout};
use squall_model::{Catalog, ComponentPlan, Config, KindInfo};

/// The built-in component kinds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builtins;

/// A built kind: a spout or a bolt instance.
enum Instance {
    Spout(Box<dyn Spout>),
    Bolt(Box<dyn Bolt>),
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
            let c = identity::IdentityConfig::parse(config).map_err(invalid)?;
            Instance::Bolt(Box::new(identity::IdentityBolt::new(&c)))
        }
        null::KIND => {
            squall_catalog::null::check(config).map_err(invalid)?;
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
        other => match (
            squall_connectors::build(other, config),
            squall_kafka::build(other, config),
        ) {
            (Some(built), _) => match built? {
                squall_connectors::Built::Spout(s) => Instance::Spout(s),
                squall_connectors::Built::Bolt(b) => Instance::Bolt(b),
            },
            (None, Some(built)) => match built? {
                squall_kafka::Built::Spout(s) => Instance::Spout(s),
                squall_kafka::Built::Bolt(b) => Instance::Bolt(b),
            },
            (None, None) => {
                return Err(ComponentError(format!(
                    "unknown component kind {other:?}; known kinds: {}",
                    KINDS.join(", ")
                )))
            }
        },
    })
}

/// The catalog's answers, so validating with [`Builtins`] and building with it agree.
impl Catalog for Builtins {
    fn describe(&self, kind: &str, config: &Config) -> Option<Result<KindInfo, String>> {
        BuiltinKinds.describe(kind, config)
    }

    fn kinds(&self) -> Vec<String> {
        BuiltinKinds.kinds()
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

    /// In-memory kinds, local file reads, the live feeds (a reader thread fills a
    /// channel) and the Kafka kinds (librdkafka's queues and threads) return within
    /// microseconds;
    /// `shell` (subprocess round trips), `redis-counter` (network) and an `identity` with
    /// a cost (it sleeps) keep their own thread.
    fn cooperative(&self, component: &ComponentPlan) -> bool {
        let costly = component.kind == identity::KIND
            && component
                .config
                .get("cost_micros")
                .and_then(|v| v.as_u64())
                .unwrap_or(0)
                > 0;
        if costly {
            return false;
        }
        let blocking = [SHELL, squall_connectors::redis_counter::KIND];
        KINDS.contains(&component.kind.as_str()) && !blocking.contains(&component.kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::Role;

    #[test]
    fn the_catalog_is_squall_catalogs_and_every_kind_builds() {
        assert_eq!(Builtins.kinds(), BuiltinKinds.kinds());
        for kind in Builtins.kinds() {
            let config = Config::new();
            assert_eq!(
                Builtins.describe(&kind, &config),
                BuiltinKinds.describe(&kind, &config)
            );
            // What the catalog accepts builds, in the role it gave.
            if let Some(Ok(info)) = Builtins.describe(&kind, &config) {
                match (info.role, build(&kind, &config)) {
                    (Some(Role::Spout), Ok(Instance::Spout(_)))
                    | (Some(Role::Bolt), Ok(Instance::Bolt(_))) => {}
                    (None, _) => assert_eq!(kind, SHELL),
                    (role, _) => panic!("{kind}: described as {role:?}, not built as one"),
                }
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
        for kind in [
            "const",
            "identity",
            "null",
            "count",
            "websocket",
            "kafka",
            "kafka-producer",
        ] {
            assert!(Builtins.cooperative(&plan(kind)), "{kind}");
        }
        for kind in [SHELL, "redis-counter", "no-such-kind"] {
            assert!(!Builtins.cooperative(&plan(kind)), "{kind}");
        }
    }

    #[test]
    fn the_kafka_kinds_build_in_their_roles_without_touching_the_network() {
        let cfg = |v: serde_json::Value| -> Config { serde_json::from_value(v).unwrap() };
        let spout = cfg(serde_json::json!({"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]}));
        assert!(matches!(build("kafka", &spout), Ok(Instance::Spout(_))));
        let bolt = cfg(serde_json::json!({"bootstrap_servers": "127.0.0.1:1", "topic": "t"}));
        assert!(matches!(build("kafka-producer", &bolt), Ok(Instance::Bolt(_))));
        let err = build("kafka", &Config::new())
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            err.starts_with("kafka: invalid config: config key \"bootstrap_servers\" is required"),
            "{err}"
        );
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
            serializer: Default::default(),
        };
        assert!(Builtins.bolt(&plan(Some(spec.clone()))).is_ok());
        assert!(Builtins.spout(&plan(Some(spec))).is_ok());
    }
}
