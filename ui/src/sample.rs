//! What a [`Source`](crate::Source) reports: cumulative figures of one topology at one
//! instant, per component, per executor and per stream where the source knows them.
//!
//! Every counter only grows while the topology runs, so the figures of a window are the
//! difference between two samples; nothing else is kept.

use std::time::{Duration, SystemTime};

/// One topology's figures at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct TopologySample {
    /// What the topology is; may change between samples (status, workers).
    pub info: TopologyInfo,
    /// Time since the topology started: the time axis of the windows. A smaller value
    /// than the previous sample's means the topology was restarted.
    pub uptime: Duration,
    /// Wall-clock time the sample was taken (for error ages).
    pub taken_at: SystemTime,
    /// Components, in the order to show them.
    pub components: Vec<ComponentSample>,
}

impl TopologySample {
    /// The component with this id.
    pub fn component(&self, id: &str) -> Option<&ComponentSample> {
        self.components.iter().find(|c| c.id == id)
    }

    /// Executors of every component, system ones included (as Storm counts them).
    pub fn executors_total(&self) -> u64 {
        self.components.iter().map(|c| u64::from(c.executors)).sum()
    }

    /// Tasks of every component, system ones included.
    pub fn tasks_total(&self) -> u64 {
        self.components.iter().map(|c| u64::from(c.tasks)).sum()
    }
}

/// What a topology is, as opposed to what it counted.
#[derive(Clone, Debug, PartialEq)]
pub struct TopologyInfo {
    /// The id in API paths; no `/`.
    pub id: String,
    /// The topology's name.
    pub name: String,
    /// Its status now.
    pub status: Status,
    /// Worker processes running it.
    pub workers: u32,
    /// How long a tuple tree may take before the spout fails it.
    pub message_timeout: Duration,
    /// The graph: one edge per subscription of a bolt to a stream.
    pub edges: Vec<Edge>,
}

/// Storm's topology statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Spouts are asked for tuples.
    Active,
    /// Spouts are not asked for tuples; in-flight trees complete.
    Inactive,
    /// Being moved or resized.
    Rebalancing,
    /// Being killed.
    Killed,
}

impl Status {
    /// Storm's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Inactive => "INACTIVE",
            Status::Rebalancing => "REBALANCING",
            Status::Killed => "KILLED",
        }
    }
}

/// A bolt's subscription to a stream of another component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The emitting component.
    pub from: String,
    /// The subscribing bolt.
    pub to: String,
    /// The stream.
    pub stream: String,
    /// The grouping, in the manifest's spelling (`shuffle`, `fields`, ...).
    pub grouping: String,
}

/// Spout or bolt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    /// A source of tuples.
    Spout,
    /// A consumer (and maybe producer) of tuples; system components such as ackers too.
    Bolt,
}

impl ComponentKind {
    /// Storm's spelling in `componentType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Spout => "spout",
            ComponentKind::Bolt => "bolt",
        }
    }
}

/// One component's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentSample {
    /// Component id.
    pub id: String,
    /// Spout or bolt.
    pub kind: ComponentKind,
    /// A system component (Storm's `__acker`): shown only with `sys=1`.
    pub system: bool,
    /// Executors (threads).
    pub executors: u32,
    /// Tasks (instances).
    pub tasks: u32,
    /// Summed over all executors.
    pub totals: Figures,
    /// Per executor, when the source knows them; empty otherwise. Together they cover
    /// the component.
    pub by_executor: Vec<ExecutorSample>,
    /// Per input `(component, stream)`, when known (bolts).
    pub inputs: Vec<InputSample>,
    /// Per output stream, when known.
    pub outputs: Vec<OutputSample>,
    /// Tuples waiting in the component's receive queues now (a gauge).
    pub queue_depth: u64,
    /// The bound of those queues.
    pub queue_capacity: u64,
    /// Spouts: tuple trees in flight now (a gauge).
    pub pending: u64,
    /// The last error any of its tasks reported.
    pub last_error: Option<ErrorReport>,
    /// Kafka spouts: the lag per partition now (gauges), by topic and partition, at
    /// most [`MAX_LAGS`](crate::lag::MAX_LAGS); gathered with [`Lags`](crate::lag::Lags).
    pub lags: Vec<crate::lag::PartitionLag>,
}

/// The figures of one executor, or of a group of executors the source cannot tell apart
/// (`executors` says how many).
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorSample {
    /// Storm's executor id, `[first-task-last-task]`, or another stable name.
    pub id: String,
    /// Executors this row stands for; 1 when the source reports executors one by one.
    pub executors: u32,
    /// Host running it.
    pub host: String,
    /// Port of the worker running it, if any.
    pub port: Option<u16>,
    /// The worker running it, if any.
    pub worker: Option<String>,
    /// Time since it started.
    pub uptime: Duration,
    /// Its cumulative figures.
    pub figures: Figures,
}

/// A bolt's figures for the tuples of one input stream.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSample {
    /// The emitting component.
    pub component: String,
    /// The stream.
    pub stream: String,
    /// `executed`, `acked`, `failed` and the execute and process latencies count here.
    pub figures: Figures,
}

/// Builds a component's per-stream rows: the declared output streams and inputs first
/// (at zero until counted), then any others a source reported, each summed over the
/// parts (tasks, workers) that report it.
#[derive(Clone, Debug, Default)]
pub struct StreamRows {
    inputs: Vec<InputSample>,
    outputs: Vec<OutputSample>,
}

impl StreamRows {
    fn output_row(&mut self, stream: &str) -> &mut Figures {
        let i = match self.outputs.iter().position(|o| o.stream == stream) {
            Some(i) => i,
            None => {
                self.outputs.push(OutputSample {
                    stream: stream.to_owned(),
                    figures: Figures::default(),
                });
                self.outputs.len() - 1
            }
        };
        &mut self.outputs[i].figures
    }

    fn input_row(&mut self, component: &str, stream: &str) -> &mut Figures {
        let i = match self
            .inputs
            .iter()
            .position(|x| x.component == component && x.stream == stream)
        {
            Some(i) => i,
            None => {
                self.inputs.push(InputSample {
                    component: component.to_owned(),
                    stream: stream.to_owned(),
                    figures: Figures::default(),
                });
                self.inputs.len() - 1
            }
        };
        &mut self.inputs[i].figures
    }

    /// A declared output stream: listed even before anything is counted on it.
    pub fn declare_output(&mut self, stream: &str) {
        self.output_row(stream);
    }

    /// A declared input `(component, stream)`.
    pub fn declare_input(&mut self, component: &str, stream: &str) {
        self.input_row(component, stream);
    }

    /// Adds a part's figures of one output stream.
    pub fn add_output(&mut self, stream: &str, emitted: u64, transferred: u64) {
        let f = self.output_row(stream);
        f.emitted += emitted;
        f.transferred += transferred;
    }

    /// Adds a part's counts of one input as the engine and the workers keep them: tuples
    /// `(executed, acked, failed)`, then the execute and the process latency, each as
    /// `(samples, their sum in µs)`.
    pub fn add_input(
        &mut self,
        component: &str,
        stream: &str,
        (executed, acked, failed): (u64, u64, u64),
        (execute_count, execute_sum_us): (u64, u64),
        (process_count, process_sum_us): (u64, u64),
    ) {
        let f = self.input_row(component, stream);
        f.executed += executed;
        f.acked += acked;
        f.failed += failed;
        f.execute_latency.add(&Latency {
            count: execute_count,
            sum_us: execute_sum_us,
        });
        f.process_latency.add(&Latency {
            count: process_count,
            sum_us: process_sum_us,
        });
    }

    /// The rows, inputs then outputs. A spout's trees are counted per spout, not per
    /// stream, so with `spout_totals` a single output stream gets its acked, failed and
    /// complete latency (every tree is rooted on it); with several they stay zero.
    pub fn finish(mut self, spout_totals: Option<&Figures>) -> (Vec<InputSample>, Vec<OutputSample>) {
        if let (Some(t), [only]) = (spout_totals, self.outputs.as_mut_slice()) {
            only.figures.acked = t.acked;
            only.figures.failed = t.failed;
            only.figures.complete_latency = t.complete_latency;
        }
        (self.inputs, self.outputs)
    }
}

/// A component's figures for one of its output streams.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSample {
    /// The stream.
    pub stream: String,
    /// `emitted` and `transferred` count here (spouts: `acked`, `failed` and the complete
    /// latency of the trees rooted on this stream too).
    pub figures: Figures,
}

/// Cumulative counters and latencies since the start of whatever they describe.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
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
    /// Time spent executing, when the source measures it; capacity comes from it.
    pub busy: Option<Duration>,
    /// Time the executors could not send because a queue downstream was full.
    pub backpressure: Duration,
    /// Bolts: time inside `execute`.
    pub execute_latency: Latency,
    /// Bolts: time from receiving a tuple to acking it.
    pub process_latency: Latency,
    /// Spouts: time from emitting a tree's root to its completion.
    pub complete_latency: Latency,
}

impl Figures {
    /// The figures counted after `before`: each counter's difference (zero where a
    /// counter went down, as after a process restart).
    pub fn since(&self, before: &Figures) -> Figures {
        Figures {
            emitted: self.emitted.saturating_sub(before.emitted),
            transferred: self.transferred.saturating_sub(before.transferred),
            executed: self.executed.saturating_sub(before.executed),
            acked: self.acked.saturating_sub(before.acked),
            failed: self.failed.saturating_sub(before.failed),
            errors: self.errors.saturating_sub(before.errors),
            busy: self
                .busy
                .map(|b| b.saturating_sub(before.busy.unwrap_or_default())),
            backpressure: self.backpressure.saturating_sub(before.backpressure),
            execute_latency: self.execute_latency.since(&before.execute_latency),
            process_latency: self.process_latency.since(&before.process_latency),
            complete_latency: self.complete_latency.since(&before.complete_latency),
        }
    }

    /// Adds `other` into these figures (busy time stays unknown if either lacks it).
    pub fn add(&mut self, other: &Figures) {
        self.emitted += other.emitted;
        self.transferred += other.transferred;
        self.executed += other.executed;
        self.acked += other.acked;
        self.failed += other.failed;
        self.errors += other.errors;
        self.busy = self.busy.zip(other.busy).map(|(a, b)| a + b);
        self.backpressure += other.backpressure;
        self.execute_latency.add(&other.execute_latency);
        self.process_latency.add(&other.process_latency);
        self.complete_latency.add(&other.complete_latency);
    }
}

/// A latency distribution as its count and sum: what the means Storm's API shows need,
/// and all a window's difference needs. Sources add up exactly, across tasks and
/// processes. Distributions stay with the workers' own metrics (Prometheus histograms);
/// keeping their buckets in every sample of every window would multiply the history's
/// memory for figures the API never shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Samples counted.
    pub count: u64,
    /// Sum of the samples, µs.
    pub sum_us: u64,
}

impl Latency {
    /// Mean in milliseconds; 0 without samples (as Storm shows an idle bolt).
    pub fn mean_ms(&self) -> f64 {
        match self.count {
            0 => 0.0,
            n => self.sum_us as f64 / n as f64 / 1000.0,
        }
    }

    /// The difference with an earlier figure of the same thing (zero where it went down,
    /// as after a process restart).
    pub fn since(&self, before: &Latency) -> Latency {
        Latency {
            count: self.count.saturating_sub(before.count),
            sum_us: self.sum_us.saturating_sub(before.sum_us),
        }
    }

    /// Adds another figure into this one.
    pub fn add(&mut self, other: &Latency) {
        self.count += other.count;
        self.sum_us += other.sum_us;
    }
}

/// The last error a component reported, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorReport {
    /// The message.
    pub message: String,
    /// When it was reported (or first seen, if the source only has the message).
    pub time: SystemTime,
    /// Host of the process that reported it.
    pub host: String,
    /// Port of the worker that reported it, if any.
    pub port: Option<u16>,
    /// The worker that reported it, if any.
    pub worker: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_adds_and_subtracts_and_means() {
        let mut a = Latency {
            count: 3,
            sum_us: 120,
        };
        a.add(&Latency {
            count: 5,
            sum_us: 5_000_000,
        });
        assert_eq!(
            a,
            Latency {
                count: 8,
                sum_us: 5_000_120
            }
        );
        let d = a.since(&Latency {
            count: 3,
            sum_us: 120,
        });
        assert_eq!(
            d,
            Latency {
                count: 5,
                sum_us: 5_000_000
            }
        );
        assert_eq!(d.mean_ms(), 1000.0);
        assert_eq!(Latency::default().mean_ms(), 0.0);
        assert_eq!(Latency { count: 1, sum_us: 1 }.since(&a), Latency::default());
    }

    #[test]
    fn stream_rows_sum_the_parts_of_each_input_declared_ones_first() {
        let mut rows = StreamRows::default();
        rows.declare_output("default");
        rows.declare_input("split", "default");
        rows.declare_input("idle", "default");
        rows.add_input("extra", "errors", (1, 0, 1), (0, 0), (0, 0));
        for _ in 0..2 {
            rows.add_input("split", "default", (10, 9, 1), (4, 400), (2, 1_000));
        }
        rows.add_output("default", 7, 14);
        let totals = Figures {
            acked: 5,
            ..Figures::default()
        };
        let (inputs, outputs) = rows.finish(Some(&totals));
        let names: Vec<_> = inputs
            .iter()
            .map(|i| (i.component.as_str(), i.stream.as_str()))
            .collect();
        assert_eq!(
            names,
            [("split", "default"), ("idle", "default"), ("extra", "errors")]
        );
        let split = &inputs[0].figures;
        assert_eq!((split.executed, split.acked, split.failed), (20, 18, 2));
        assert_eq!(
            split.execute_latency,
            Latency {
                count: 8,
                sum_us: 800
            }
        );
        assert_eq!(
            split.process_latency,
            Latency {
                count: 4,
                sum_us: 2_000
            }
        );
        assert_eq!(inputs[1].figures, Figures::default(), "declared, nothing counted");
        assert_eq!((inputs[2].figures.executed, inputs[2].figures.failed), (1, 1));
        let out = &outputs[0].figures;
        assert_eq!((out.emitted, out.transferred, out.acked), (7, 14, 5));
    }

    #[test]
    fn figures_since_saturates_after_a_restart() {
        let now = Figures {
            emitted: 5,
            busy: Some(Duration::from_secs(1)),
            ..Figures::default()
        };
        let before = Figures {
            emitted: 9,
            busy: Some(Duration::from_secs(3)),
            ..Figures::default()
        };
        let d = now.since(&before);
        assert_eq!((d.emitted, d.busy), (0, Some(Duration::ZERO)));
    }
}
