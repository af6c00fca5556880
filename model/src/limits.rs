//! Bounds on what one manifest may ask for.
//!
//! A manifest comes from outside: a typo such as `parallelism: 100000000` must cost its
//! author an error message, not the process reading it its memory. Every count that sizes
//! an allocation (executors, tasks, workers, components) and every property of the text
//! that sizes parse time (bytes, nesting) has a limit here. Storm's
//! `topology.max.task.parallelism` is the precedent; unlike it, an exceeded limit is an
//! error, never a silent clamp. The defaults fit one machine; each limit has a name under
//! which the program that reads the manifest lets an operator raise it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest time, in seconds, any duration of the spec may take (one day). Not
/// configurable: it only keeps deadlines computed from the spec inside the clock's range.
pub const MAX_SECONDS: i64 = 86_400;

/// The limits a manifest is checked against. Field names (camelCase) are the names under
/// which each limit is set, e.g. `maxParallelism=2048`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Size of the manifest text, in bytes.
    pub max_manifest_bytes: u64,
    /// Nesting depth of the manifest: the document is 1, `spec` 2, `spec.spouts` 3 and so
    /// on, free-form `config` values included.
    pub max_nesting_depth: u32,
    /// Spouts and bolts together.
    pub max_components: u32,
    /// Executors of one component (`parallelism`, and `ackers`).
    pub max_parallelism: u32,
    /// Tasks of one component (`tasks`).
    pub max_tasks: u32,
    /// Tasks of the whole topology, ackers included.
    pub max_total_tasks: u32,
    /// Worker processes (`workers`).
    pub max_workers: u32,
    /// How a user raises a limit, `{key}` standing for its name; set by the program that
    /// reads manifests, so the message names its own setting.
    #[serde(skip)]
    pub raise_with: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 1024 * 1024,
            max_nesting_depth: 32,
            max_components: 256,
            max_parallelism: 1024,
            max_tasks: 4096,
            max_total_tasks: 4096,
            max_workers: 256,
            raise_with: "--limit {key}=N".to_owned(),
        }
    }
}

/// One named limit, for messages and for setting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKey {
    /// [`Limits::max_manifest_bytes`].
    ManifestBytes,
    /// [`Limits::max_nesting_depth`].
    NestingDepth,
    /// [`Limits::max_components`].
    Components,
    /// [`Limits::max_parallelism`].
    Parallelism,
    /// [`Limits::max_tasks`].
    Tasks,
    /// [`Limits::max_total_tasks`].
    TotalTasks,
    /// [`Limits::max_workers`].
    Workers,
}

impl LimitKey {
    /// Every limit, in the order they are documented.
    pub const ALL: [LimitKey; 7] = [
        LimitKey::ManifestBytes,
        LimitKey::NestingDepth,
        LimitKey::Components,
        LimitKey::Parallelism,
        LimitKey::Tasks,
        LimitKey::TotalTasks,
        LimitKey::Workers,
    ];

    /// The name it is set under.
    pub fn name(self) -> &'static str {
        match self {
            LimitKey::ManifestBytes => "maxManifestBytes",
            LimitKey::NestingDepth => "maxNestingDepth",
            LimitKey::Components => "maxComponents",
            LimitKey::Parallelism => "maxParallelism",
            LimitKey::Tasks => "maxTasks",
            LimitKey::TotalTasks => "maxTotalTasks",
            LimitKey::Workers => "maxWorkers",
        }
    }

    /// What it counts, for messages.
    pub fn counts(self) -> &'static str {
        match self {
            LimitKey::ManifestBytes => "bytes",
            LimitKey::NestingDepth => "levels of nesting",
            LimitKey::Components => "spouts and bolts",
            LimitKey::Parallelism => "executors per component",
            LimitKey::Tasks => "tasks per component",
            LimitKey::TotalTasks => "tasks in the topology, ackers included",
            LimitKey::Workers => "workers",
        }
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LimitKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        LimitKey::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = LimitKey::ALL.iter().map(|k| k.name()).collect();
            format!("unknown limit {s:?}; limits: {}", names.join(", "))
        })
    }
}

impl Limits {
    /// The value of one limit.
    pub fn get(&self, key: LimitKey) -> u64 {
        match key {
            LimitKey::ManifestBytes => self.max_manifest_bytes,
            LimitKey::NestingDepth => u64::from(self.max_nesting_depth),
            LimitKey::Components => u64::from(self.max_components),
            LimitKey::Parallelism => u64::from(self.max_parallelism),
            LimitKey::Tasks => u64::from(self.max_tasks),
            LimitKey::TotalTasks => u64::from(self.max_total_tasks),
            LimitKey::Workers => u64::from(self.max_workers),
        }
    }

    /// Sets one limit from `name=value`, as `--limit` takes it. Counts must fit the
    /// spec's own integer fields, so the CRD can carry them as `maximum`s.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("{assignment:?}: expected NAME=VALUE, e.g. maxParallelism=2048"))?;
        let key: LimitKey = name.trim().parse()?;
        let value: u64 = value
            .trim()
            .parse()
            .map_err(|e| format!("{name}: {value:?} is not a whole number: {e}"))?;
        if value == 0 {
            return Err(format!("{name}: must be at least 1"));
        }
        // Counts become `maximum`s of the CRD's int32 fields.
        let small = || {
            u32::try_from(value)
                .ok()
                .filter(|v| *v <= i32::MAX as u32)
                .ok_or_else(|| format!("{name}: {value} is over {}", i32::MAX))
        };
        match key {
            LimitKey::ManifestBytes => self.max_manifest_bytes = value,
            LimitKey::NestingDepth if value > crate::MAX_VALUE_DEPTH as u64 => {
                return Err(format!(
                    "{name}: at most {} (free-form values are read no deeper)",
                    crate::MAX_VALUE_DEPTH
                ))
            }
            LimitKey::NestingDepth => self.max_nesting_depth = small()?,
            LimitKey::Components => self.max_components = small()?,
            LimitKey::Parallelism => self.max_parallelism = small()?,
            LimitKey::Tasks => self.max_tasks = small()?,
            LimitKey::TotalTasks => self.max_total_tasks = small()?,
            LimitKey::Workers => self.max_workers = small()?,
        }
        Ok(())
    }

    /// Defaults with each `name=value` of a comma-separated list applied (the form of the
    /// `SQUALL_LIMITS` environment variable); an empty list gives the defaults.
    pub fn parse_list(list: &str) -> Result<Limits, String> {
        let mut limits = Limits::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            limits.set(item)?;
        }
        Ok(limits)
    }

    /// The limits as a comma-separated `name=value` list, the inverse of [`Self::parse_list`].
    pub fn to_list(&self) -> String {
        LimitKey::ALL
            .iter()
            .map(|k| format!("{}={}", k.name(), self.get(*k)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The message for a value over a limit: the limit, what it counts and how to raise it.
    pub fn exceeded(&self, key: LimitKey, value: impl fmt::Display) -> String {
        format!(
            "{value} is over the limit of {} {} ({}; raise it with {})",
            self.get(key),
            key.counts(),
            key.name(),
            self.raise_with.replace("{key}", key.name())
        )
    }
}

/// At most `max` characters of a user's string, for echoing it in a message.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_set_by_name_and_round_trip_as_a_list() {
        let mut l = Limits::default();
        l.set("maxParallelism=2048").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.max_parallelism, 2048);
        assert!(l.set("maxParalelism=1").unwrap_err().contains("unknown limit"));
        assert!(l.set("maxTasks=0").unwrap_err().contains("at least 1"));
        assert!(l.set("maxTasks=4294967296").is_err());
        assert!(l.set("maxTasks=2147483648").is_err());
        assert!(l.set("maxTasks").unwrap_err().contains("NAME=VALUE"));
        let back = Limits::parse_list(&l.to_list()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, l);
        assert_eq!(
            Limits::parse_list("").unwrap_or_else(|e| panic!("{e}")),
            Limits::default()
        );
    }

    #[test]
    fn the_message_names_the_limit_and_the_setting() {
        let l = Limits {
            raise_with: "the chart value limits.{key}".into(),
            ..Limits::default()
        };
        let m = l.exceeded(LimitKey::Parallelism, 100_000_000);
        assert_eq!(
            m,
            "100000000 is over the limit of 1024 executors per component (maxParallelism; raise it with the chart value limits.maxParallelism)"
        );
    }

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("ééé", 2), "éé…");
        assert_eq!(shorten("ab", 2), "ab");
    }
}
