//! The figures the autoscaler decides on: samples of every worker's cumulative counters,
//! summed per component, kept over the metrics window, and the rates between the window's
//! ends. Pure: the caller samples and says when.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use squall_autoscaler::{Edge, Figures, Graph, Role, Source};
use squall_control::figures::FigureRole;
use squall_control::WorkerFigures;
use squall_model::TopologySpec;

/// A live spout's backlog gauge (see `squall_connectors::live::counters`).
const BACKLOG: &str = "source_backlog";
/// Its bound.
const BACKLOG_BOUND: &str = "source_backlog_bound";
/// The Kafka spout's lag series start with this.
const KAFKA_LAG: &str = "kafka_consumer_lag";
/// A backlog this full of its bound holds the source back.
const SATURATED: f64 = 0.9;

/// One component's counters summed over every worker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Spout or bolt.
    pub spout: bool,
    /// Executors over all workers.
    pub executors: u32,
    /// Tuples executed.
    pub executed: u64,
    /// Tuples emitted.
    pub emitted: u64,
    /// Time executing, ns.
    pub busy_ns: u64,
    /// Tuples executed per producer.
    pub inputs: BTreeMap<String, u64>,
    /// Source backlog now (live feed buffer plus Kafka lag).
    pub backlog: u64,
    /// The live feed buffer's bound (0: none).
    pub backlog_bound: u64,
}

/// Every component at one moment, from every worker of one assignment.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// When the figures were read.
    pub at: Instant,
    /// The assignment generation every worker ran.
    pub generation: u64,
    /// By component.
    pub components: BTreeMap<String, Totals>,
}

impl Sample {
    /// The sum of `workers`' figures, or `None` unless all ran assignment `generation`.
    pub fn of(at: Instant, generation: u64, workers: &[WorkerFigures]) -> Option<Sample> {
        let mut components: BTreeMap<String, Totals> = BTreeMap::new();
        for w in workers {
            if w.generation != generation || w.uptime_ms.is_none() {
                return None;
            }
            for c in &w.components {
                if c.role == FigureRole::Acker {
                    continue;
                }
                let t = components.entry(c.name.clone()).or_default();
                t.spout = c.role == FigureRole::Spout;
                t.executors += c.executors;
                t.executed += c.totals.executed;
                t.emitted += c.totals.emitted;
                t.busy_ns += c.totals.busy_ns;
                for i in &c.inputs {
                    *t.inputs.entry(i.component.clone()).or_default() += i.executed;
                }
                for (series, v) in &c.gauges {
                    if series == BACKLOG || series.starts_with(KAFKA_LAG) {
                        t.backlog += v;
                    } else if series == BACKLOG_BOUND {
                        t.backlog_bound += v;
                    }
                }
            }
        }
        Some(Sample {
            at,
            generation,
            components,
        })
    }
}

/// One topology's samples over its window.
#[derive(Clone, Debug, Default)]
pub struct Window {
    samples: VecDeque<Sample>,
}

impl Window {
    /// Whether a sample is due: the last is `period` old, or there is none.
    pub fn due(&self, now: Instant, period: Duration) -> bool {
        self.samples
            .back()
            .is_none_or(|s| now.saturating_duration_since(s.at) >= period)
    }

    /// Adds `s`; a new generation or counters gone backwards (a restarted worker) start
    /// the window again. Keeps one sample older than `length`, the window's far end.
    pub fn push(&mut self, s: Sample, length: Duration) {
        let restarted = self.samples.back().is_some_and(|last| {
            last.generation != s.generation
                || s.components.iter().any(|(n, t)| {
                    last.components.get(n).is_some_and(|l| {
                        t.executed < l.executed || t.emitted < l.emitted || t.busy_ns < l.busy_ns
                    })
                })
        });
        if restarted {
            self.samples.clear();
        }
        let now = s.at;
        self.samples.push_back(s);
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|second| now.saturating_duration_since(second.at) >= length)
        {
            self.samples.pop_front();
        }
    }

    /// The generation the window's samples are of.
    pub fn generation(&self) -> Option<u64> {
        self.samples.back().map(|s| s.generation)
    }

    /// The figures over the window, once it spans `length`: per component, and the graph
    /// of `spec` with its edges' rates.
    pub fn figures(
        &self,
        spec: &TopologySpec,
        length: Duration,
    ) -> Option<(Graph, BTreeMap<String, Figures>)> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let span = last.at.saturating_duration_since(first.at);
        if span < length || span.is_zero() {
            return None;
        }
        let secs = span.as_secs_f64();
        let mut figures = BTreeMap::new();
        let mut edges = Vec::new();
        for (name, now) in &last.components {
            let then = first.components.get(name).cloned().unwrap_or_default();
            let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
            let busy = now.busy_ns.saturating_sub(then.busy_ns) as f64 / 1e9;
            let source =
                (now.spout && (now.backlog > 0 || now.backlog_bound > 0 || then.backlog > 0)).then(|| {
                    Source {
                        backlog: now.backlog as f64,
                        growth: (now.backlog as f64 - then.backlog as f64) / secs,
                        saturated: now.backlog_bound > 0
                            && now.backlog as f64 >= SATURATED * now.backlog_bound as f64,
                    }
                });
            figures.insert(
                name.clone(),
                Figures {
                    input_rate: rate(now.executed, then.executed),
                    emit_rate: rate(now.emitted, then.emitted),
                    busy_share: busy / secs / f64::from(now.executors.max(1)),
                    executors: now.executors,
                    source,
                },
            );
            for (from, n) in &now.inputs {
                let before = then.inputs.get(from).copied().unwrap_or(0);
                edges.push(Edge {
                    from: from.clone(),
                    to: name.clone(),
                    rate: rate(*n, before),
                });
            }
        }
        let components = spec
            .spouts
            .iter()
            .map(|s| (s.name.clone(), Role::Spout))
            .chain(spec.bolts.iter().map(|b| (b.name.clone(), Role::Bolt)));
        Some((Graph::new(components, edges), figures))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use squall_control::figures::{ComponentFigures, Counters, InputFigures};

    use super::*;

    fn worker(id: &str, generation: u64, executed: u64, busy_ns: u64, backlog: u64) -> WorkerFigures {
        let bolt = ComponentFigures {
            name: "b".into(),
            role: FigureRole::Bolt,
            executors: 1,
            totals: Counters {
                executed,
                busy_ns,
                ..Counters::default()
            },
            queue_depth: 0,
            queue_capacity: 10,
            last_error: None,
            tasks: vec![],
            gauges: BTreeMap::new(),
            outputs: vec![],
            inputs: vec![InputFigures {
                component: "s".into(),
                stream: "default".into(),
                executed,
                ..InputFigures::default()
            }],
        };
        let spout = ComponentFigures {
            name: "s".into(),
            role: FigureRole::Spout,
            totals: Counters {
                emitted: executed,
                ..Counters::default()
            },
            gauges: [(BACKLOG.to_owned(), backlog), (BACKLOG_BOUND.to_owned(), 1000)].into(),
            inputs: vec![],
            ..bolt.clone()
        };
        WorkerFigures {
            worker: id.into(),
            topology: "t".into(),
            generation,
            uptime_ms: Some(1),
            components: vec![spout, bolt],
            tasks_omitted: 0,
        }
    }

    fn spec() -> TopologySpec {
        let yaml = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  spouts: [{name: s, component: sequence}]\n  bolts: [{name: b, component: \"null\", inputs: [{from: s}]}]\n";
        squall_model::TopologyManifest::from_yaml(yaml, "t").unwrap().spec
    }

    #[test]
    fn rates_are_taken_between_the_window_ends_summed_over_workers() {
        let t0 = Instant::now();
        let len = Duration::from_secs(10);
        let mut w = Window::default();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for (s, executed, busy, backlog) in [
            (0, 0, 0, 0),
            (5, 500, 2_500_000_000, 100),
            (10, 1000, 5_000_000_000, 200),
        ] {
            let workers = [
                worker("w0", 3, executed, busy, backlog),
                worker("w1", 3, executed, busy, backlog),
            ];
            assert!(w.due(at(s), Duration::from_secs(1)));
            w.push(Sample::of(at(s), 3, &workers).unwrap(), len);
        }
        let (graph, f) = w.figures(&spec(), len).unwrap();
        assert_eq!(f["b"].input_rate, 200.0, "two workers of 100/s");
        assert_eq!(f["b"].executors, 2);
        assert_eq!(f["b"].busy_share, 0.5);
        let source = f["s"].source.clone().unwrap();
        assert_eq!(
            (source.backlog, source.growth, source.saturated),
            (400.0, 40.0, false)
        );
        assert_eq!(graph.edges().len(), 1);
        assert_eq!(graph.edges()[0].rate, 200.0);
        // A new generation starts the window again.
        w.push(Sample::of(at(11), 4, &[worker("w0", 4, 0, 0, 0)]).unwrap(), len);
        assert!(w.figures(&spec(), len).is_none());
        // Workers on different generations make no sample.
        assert!(Sample::of(at(12), 4, &[worker("w0", 4, 0, 0, 0), worker("w1", 3, 0, 0, 0)]).is_none());
    }
}
