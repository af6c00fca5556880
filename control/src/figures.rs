//! What a worker counted, served as JSON on `GET /figures`: cumulative figures per
//! component and per task, for the operator's Storm UI API. Apart from `/status`, which
//! the drain checks read every second and must stay small, and from `/metrics`, whose
//! text format would need a parser in the operator.
//!
//! Every list is bounded by the worker that writes it ([`MAX_FIGURE_TASKS`],
//! [`MAX_ERROR_CHARS`], [`MAX_FIGURE_GAUGES`], [`MAX_GAUGE_SERIES_CHARS`]) and the reader takes at most [`MAX_FIGURES_BYTES`] of it, then
//! checks it with [`WorkerFigures::check`].

use serde::{Deserialize, Serialize};

/// Where a worker serves its [`WorkerFigures`], on its HTTP port.
pub const FIGURES_PATH: &str = "/figures";

/// The most a reader takes of a figures body. A worker lists at most
/// [`MAX_FIGURE_TASKS`] tasks and [`MAX_FIGURE_COMPONENTS`] components, each with
/// counters and three sparse latency distributions over the same ~130 bounds: 6 KiB each
/// at worst, so about 7.5 MiB in all, plus [`MAX_FIGURE_GAUGES`] gauges of at most
/// [`MAX_GAUGE_SERIES_CHARS`] (under 0.6 MiB) and [`MAX_FIGURE_STREAMS`] per-stream rows
/// of at most 2 × [`MAX_STREAM_NAME_CHARS`] and eight counters (under 3 MiB). Anything
/// longer is not a worker's answer.
pub const MAX_FIGURES_BYTES: usize = 12 << 20;

/// Tasks a worker lists one by one; beyond this it lists components only and says how
/// many tasks it left out ([`WorkerFigures::tasks_omitted`]).
pub const MAX_FIGURE_TASKS: usize = 1024;

/// Components one worker's figures may hold (the model's default limit on components,
/// plus the ackers).
pub const MAX_FIGURE_COMPONENTS: usize = 257;

/// Components' own gauges (`Counters::set_gauge`) one worker lists at most, over all its
/// components; beyond this it leaves the rest out.
pub const MAX_FIGURE_GAUGES: usize = 2048;

/// A gauge's series key (`name` or `name{k="v",...}`) is at most this long; a worker
/// leaves longer ones out.
pub const MAX_GAUGE_SERIES_CHARS: usize = 256;

/// Per-stream rows (outputs and inputs together) one worker lists at most, over all its
/// components; beyond this it leaves the rest out.
pub const MAX_FIGURE_STREAMS: usize = 4096;

/// A stream or component name in a per-stream row is at most this long (the model's
/// names are far shorter); a worker leaves longer rows out.
pub const MAX_STREAM_NAME_CHARS: usize = 256;

/// A last error's text is cut to this many characters.
pub const MAX_ERROR_CHARS: usize = 1024;

/// Buckets one latency distribution may hold: the workers' exported bounds are about
/// 130 (1 µs wide up to 16 µs, then four per doubling up to about 134 s).
pub const MAX_LATENCY_BUCKETS: usize = 512;

/// What a component is to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FigureRole {
    /// A source of tuples.
    Spout,
    /// A consumer of tuples.
    Bolt,
    /// A system component acking tuple trees.
    Acker,
}

/// A latency distribution in fixed buckets: only buckets holding samples are listed, as
/// `[upper bound µs, samples]` with bounds ascending. The bounds are the same in every
/// worker (those of the workers' fine `/metrics?buckets=fine` histograms), so distributions of any number
/// of tasks and workers add up exactly, bucket by bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyFigures {
    /// `[upper bound µs, samples]`, bounds ascending and distinct, samples non-zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<(u64, u64)>,
    /// Samples above the last bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overflow: u64,
    /// Sum of all samples, µs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sum_us: u64,
}

impl LatencyFigures {
    /// Samples in all buckets and above them.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum::<u64>() + self.overflow
    }

    fn check(&self) -> Result<(), FiguresError> {
        if self.buckets.len() > MAX_LATENCY_BUCKETS {
            return Err(FiguresError::TooMany {
                what: "latency buckets",
                limit: MAX_LATENCY_BUCKETS,
            });
        }
        if self.buckets.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(FiguresError::Unordered);
        }
        Ok(())
    }
}

/// Cumulative counters of a task or of a component, since its engine started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Tuples emitted (once per emit, whatever the fan-out).
    pub emitted: u64,
    /// Tuples sent to tasks (once per receiving task).
    pub transferred: u64,
    /// Tuples executed (bolts).
    pub executed: u64,
    /// Bolts: inputs acked. Spouts: trees completed.
    pub acked: u64,
    /// Bolts: inputs failed. Spouts: trees failed or timed out.
    pub failed: u64,
    /// Errors reported.
    pub errors: u64,
    /// Time spent executing, ns.
    pub busy_ns: u64,
    /// Time blocked on a full queue downstream, ns.
    pub backpressure_ns: u64,
    /// Spouts: trees in flight now (a gauge).
    pub pending: u64,
    /// Spouts: emit of a tree's root to its completion.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub complete: LatencyFigures,
    /// Bolts: time inside `execute` (sampled).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub execute: LatencyFigures,
    /// Bolts: receipt of a tuple to its ack (sampled).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub process: LatencyFigures,
}

impl Counters {
    fn check(&self) -> Result<(), FiguresError> {
        self.complete.check()?;
        self.execute.check()?;
        self.process.check()
    }
}

/// One task's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFigures {
    /// The task id.
    pub task: u32,
    /// Its counters.
    #[serde(flatten)]
    pub counters: Counters,
}

/// One component's figures on one worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentFigures {
    /// The component's name.
    pub name: String,
    /// Spout, bolt or acker.
    pub role: FigureRole,
    /// Executors of it on this worker.
    pub executors: u32,
    /// Summed over its tasks on this worker.
    pub totals: Counters,
    /// Tuples waiting in its receive queues on this worker now.
    pub queue_depth: u64,
    /// The bound of those queues.
    pub queue_capacity: u64,
    /// The last error any of its tasks here reported, cut to [`MAX_ERROR_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Its tasks on this worker, by id; empty when the worker left tasks out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskFigures>,
    /// Its own gauges by series key (`name` or `name{k="v",...}`, label values escaped as
    /// in Prometheus' text format), summed over its tasks on this worker; e.g. the Kafka
    /// spout's `kafka_consumer_lag{topic="t",partition="0"}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub gauges: std::collections::BTreeMap<String, u64>,
    /// Per output stream, summed over its tasks on this worker (absent from older workers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputFigures>,
    /// Per input `(component, stream)`, summed over its tasks on this worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputFigures>,
}

/// One output stream's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputFigures {
    /// The stream.
    pub stream: String,
    /// Tuples emitted on it.
    pub emitted: u64,
    /// Tuples sent from it to tasks (once per receiving task).
    pub transferred: u64,
}

/// One input's figures: a `(component, stream)` a bolt subscribes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputFigures {
    /// The source component.
    pub component: String,
    /// The source stream.
    pub stream: String,
    /// Tuples executed.
    pub executed: u64,
    /// Tuples acked.
    pub acked: u64,
    /// Tuples failed.
    pub failed: u64,
    /// Execute latency samples (sampled tuples) and their sum, µs.
    #[serde(default)]
    pub execute_count: u64,
    /// See `execute_count`.
    #[serde(default)]
    pub execute_sum_us: u64,
    /// Process latency samples and their sum, µs.
    #[serde(default)]
    pub process_count: u64,
    /// See `process_count`.
    #[serde(default)]
    pub process_sum_us: u64,
}

/// A worker's figures: what its engine counted, per component and task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerFigures {
    /// The worker's id in the assignment.
    pub worker: String,
    /// The topology it runs.
    pub topology: String,
    /// Generation of the assignment its engine runs.
    pub generation: u64,
    /// Time since its engine started, ms; `None` between engines (no components then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
    /// Components with tasks on this worker.
    #[serde(default)]
    pub components: Vec<ComponentFigures>,
    /// Tasks not listed one by one, as the worker holds more than [`MAX_FIGURE_TASKS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tasks_omitted: u64,
}

/// Figures that break the contract's bounds or order.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FiguresError {
    /// A list is longer than its bound.
    #[error("more {what} than the limit of {limit}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// Its bound.
        limit: usize,
    },
    /// Latency bounds not ascending.
    #[error("latency bucket bounds are not ascending")]
    Unordered,
}

impl WorkerFigures {
    /// Checks the bounds a reader relies on: list lengths, and bucket bounds ascending so
    /// distributions merge in one pass.
    pub fn check(&self) -> Result<(), FiguresError> {
        if self.components.len() > MAX_FIGURE_COMPONENTS {
            return Err(FiguresError::TooMany {
                what: "components",
                limit: MAX_FIGURE_COMPONENTS,
            });
        }
        let tasks: usize = self.components.iter().map(|c| c.tasks.len()).sum();
        if tasks > MAX_FIGURE_TASKS {
            return Err(FiguresError::TooMany {
                what: "tasks",
                limit: MAX_FIGURE_TASKS,
            });
        }
        let gauges: usize = self.components.iter().map(|c| c.gauges.len()).sum();
        if gauges > MAX_FIGURE_GAUGES {
            return Err(FiguresError::TooMany {
                what: "gauges",
                limit: MAX_FIGURE_GAUGES,
            });
        }
        if self
            .components
            .iter()
            .any(|c| c.gauges.keys().any(|k| k.len() > MAX_GAUGE_SERIES_CHARS))
        {
            return Err(FiguresError::TooMany {
                what: "characters in a gauge's series",
                limit: MAX_GAUGE_SERIES_CHARS,
            });
        }
        let streams: usize = self
            .components
            .iter()
            .map(|c| c.outputs.len() + c.inputs.len())
            .sum();
        if streams > MAX_FIGURE_STREAMS {
            return Err(FiguresError::TooMany {
                what: "per-stream rows",
                limit: MAX_FIGURE_STREAMS,
            });
        }
        let long = |s: &String| s.len() > MAX_STREAM_NAME_CHARS;
        if self.components.iter().any(|c| {
            c.outputs.iter().any(|o| long(&o.stream))
                || c.inputs.iter().any(|i| long(&i.component) || long(&i.stream))
        }) {
            return Err(FiguresError::TooMany {
                what: "characters in a stream's name",
                limit: MAX_STREAM_NAME_CHARS,
            });
        }
        for c in &self.components {
            c.totals.check()?;
            for t in &c.tasks {
                t.counters.check()?;
            }
        }
        Ok(())
    }
}

/// `text` cut to [`MAX_ERROR_CHARS`] characters.
pub fn error_text(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_empty(l: &LatencyFigures) -> bool {
    l.buckets.is_empty() && l.overflow == 0 && l.sum_us == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn figures() -> WorkerFigures {
        let counters = Counters {
            emitted: 10,
            acked: 9,
            busy_ns: 5_000,
            complete: LatencyFigures {
                buckets: vec![(100, 4), (200, 5)],
                overflow: 0,
                sum_us: 1_150,
            },
            ..Counters::default()
        };
        WorkerFigures {
            worker: "t-0".into(),
            topology: "t".into(),
            generation: 3,
            uptime_ms: Some(1_500),
            components: vec![ComponentFigures {
                name: "s".into(),
                role: FigureRole::Spout,
                executors: 1,
                totals: counters.clone(),
                queue_depth: 0,
                queue_capacity: 1024,
                last_error: Some(error_text(&"x".repeat(5000))),
                tasks: vec![TaskFigures { task: 1, counters }],
                gauges: [("kafka_consumer_lag{topic=\"t\",partition=\"0\"}".to_owned(), 42)].into(),
                outputs: vec![OutputFigures {
                    stream: "default".into(),
                    emitted: 10,
                    transferred: 20,
                }],
                inputs: vec![],
            }],
            tasks_omitted: 0,
        }
    }

    #[test]
    fn the_json_is_camel_case_compact_and_reads_back() {
        let f = figures();
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains("\"uptimeMs\":1500") && text.contains("\"busyNs\":5000"));
        assert!(text.contains("\"role\":\"spout\""));
        assert!(text.contains("\"buckets\":[[100,4],[200,5]]"), "{text}");
        assert!(!text.contains("\"execute\""), "empty distributions are left out");
        assert!(!text.contains("tasksOmitted"));
        assert!(
            text.contains(r#""outputs":[{"stream":"default","emitted":10,"transferred":20}]"#),
            "{text}"
        );
        assert!(!text.contains("\"inputs\""), "no inputs, no field");
        // Figures of a worker from before per-stream rows still read.
        let old = text.replace(
            r#","outputs":[{"stream":"default","emitted":10,"transferred":20}]"#,
            "",
        );
        let old: WorkerFigures = serde_json::from_str(&old).unwrap();
        assert!(old.components[0].outputs.is_empty());
        assert!(
            text.contains(r#""gauges":{"kafka_consumer_lag{topic=\"t\",partition=\"0\"}":42}"#),
            "{text}"
        );
        let back: WorkerFigures = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
        assert_eq!(
            back.components[0].last_error.as_ref().unwrap().len(),
            MAX_ERROR_CHARS
        );
        assert_eq!(back.components[0].totals.complete.count(), 9);
    }

    #[test]
    fn the_check_holds_the_bounds_and_the_bucket_order() {
        let mut f = figures();
        assert_eq!(f.check(), Ok(()));
        f.components[0].tasks[0].counters.complete.buckets = vec![(200, 1), (100, 1)];
        assert_eq!(f.check(), Err(FiguresError::Unordered));
        let mut f = figures();
        f.components[0].tasks = vec![TaskFigures::default(); MAX_FIGURE_TASKS + 1];
        assert!(matches!(
            f.check(),
            Err(FiguresError::TooMany { what: "tasks", .. })
        ));
        let mut f = figures();
        f.components[0].gauges = (0..=MAX_FIGURE_GAUGES).map(|i| (format!("g{i}"), 1)).collect();
        assert!(matches!(
            f.check(),
            Err(FiguresError::TooMany { what: "gauges", .. })
        ));
        let mut f = figures();
        f.components[0].gauges = [("g".repeat(MAX_GAUGE_SERIES_CHARS + 1), 1)].into();
        assert!(f.check().is_err());
        let mut f = figures();
        f.components[0].outputs = vec![OutputFigures::default(); MAX_FIGURE_STREAMS + 1];
        assert!(matches!(
            f.check(),
            Err(FiguresError::TooMany {
                what: "per-stream rows",
                ..
            })
        ));
        let mut f = figures();
        f.components[0].inputs = vec![InputFigures {
            component: "c".repeat(MAX_STREAM_NAME_CHARS + 1),
            ..Default::default()
        }];
        assert!(f.check().is_err());
        let mut f = figures();
        f.components = vec![f.components[0].clone(); MAX_FIGURE_COMPONENTS + 1];
        assert!(matches!(f.check(), Err(FiguresError::TooMany { .. })));
    }
}
