//! Per-task metrics: counters the executors add to once per batch, latency histograms
//! merged in periodically, and the snapshot the CLI (and later workers) read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::tuple::Schema;

/// Largest latency recorded, in microseconds (one hour); longer ones count as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latency histograms keep microseconds at two significant digits. They start small and
/// grow to the largest value recorded (at most `MAX_LATENCY_US`): sized for the full
/// hour up front, every task would hold ~27 KB per histogram (six per task) whether or
/// not it ever records a sample.
#[allow(clippy::expect_used)]
fn new_histogram() -> Histogram<u64> {
    Histogram::new(2).expect("two significant digits are valid")
}

/// Shared counters of one task.
#[derive(Default)]
pub struct TaskCounters {
    /// Tuples emitted (once per emit, whatever the fan-out).
    pub emitted: AtomicU64,
    /// Tuples sent to tasks (once per target).
    pub transferred: AtomicU64,
    /// Tuples executed (bolts).
    pub executed: AtomicU64,
    /// Tuples acked (bolts: inputs acked; spouts: trees completed).
    pub acked: AtomicU64,
    /// Tuples failed (bolts: inputs failed; spouts: trees failed or timed out).
    pub failed: AtomicU64,
    /// Spout trees failed by timeout.
    pub timed_out: AtomicU64,
    /// Estimated busy time in `execute`/`next_tuple`, nanoseconds.
    pub busy_ns: AtomicU64,
    /// Time the executor could not send because a queue downstream was full, nanoseconds.
    pub backpressure_ns: AtomicU64,
    /// Messages dropped because no queue serves their task (a placement gap).
    pub unroutable: AtomicU64,
    /// Time a spout was not asked for tuples because max spout pending was reached.
    pub skipped_max_pending_ns: AtomicU64,
    /// Errors reported (component errors and panics).
    pub errors: AtomicU64,
    /// Task restarts after a panic.
    pub restarts: AtomicU64,
    /// Spout trees in flight now (gauge).
    pub pending: AtomicU64,
}

/// Latency histograms of one task, in microseconds.
pub struct TaskLatencies {
    /// Bolts: time inside `execute`, sampled.
    pub execute: Histogram<u64>,
    /// Bolts: time from starting a tuple to acking it, sampled.
    pub process: Histogram<u64>,
    /// Spouts: time from emit to the tree's completion.
    pub complete: Histogram<u64>,
}

impl Default for TaskLatencies {
    fn default() -> Self {
        TaskLatencies {
            execute: new_histogram(),
            process: new_histogram(),
            complete: new_histogram(),
        }
    }
}

impl TaskLatencies {
    /// Adds another set of histograms into this one.
    pub fn merge(&mut self, other: &TaskLatencies) {
        // Both sides use the same bounds, so adding cannot fail.
        let _ = self.execute.add(&other.execute);
        let _ = self.process.add(&other.process);
        let _ = self.complete.add(&other.complete);
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.execute.reset();
        self.process.reset();
        self.complete.reset();
    }

    pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
        let _ = h.record(Self::micros(d));
    }

    /// A latency as recorded: whole microseconds, at least 1, at most an hour.
    pub(crate) fn micros(d: Duration) -> u64 {
        (d.as_micros() as u64).clamp(1, MAX_LATENCY_US)
    }
}

/// Everything shared about one task.
pub struct TaskMetrics {
    /// Component name.
    pub component: String,
    /// Task id.
    pub task: u32,
    /// Counters.
    pub counters: TaskCounters,
    /// Latencies.
    pub latencies: Mutex<TaskLatencies>,
    /// The last error reported, with its message.
    pub last_error: Mutex<Option<String>>,
    /// The component's own counters.
    pub custom: crate::component::Counters,
    /// Per output stream and per input, cumulative; locked once per publication.
    pub streams: Mutex<StreamStats>,
}

impl TaskMetrics {
    pub(crate) fn new(component: &str, task: u32) -> Self {
        TaskMetrics {
            component: component.to_owned(),
            task,
            counters: TaskCounters::default(),
            latencies: Mutex::new(TaskLatencies::default()),
            last_error: Mutex::new(None),
            custom: Default::default(),
            streams: Mutex::new(StreamStats::default()),
        }
    }
}

/// Figures of one output stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// Stream name.
    pub stream: String,
    /// Tuples emitted on it.
    pub emitted: u64,
    /// Tuples sent to tasks from it (once per target).
    pub transferred: u64,
}

/// Figures of one input, a `(component, stream)` a bolt subscribes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Source component.
    pub component: String,
    /// Source stream.
    pub stream: String,
    /// Tuples executed.
    pub executed: u64,
    /// Tuples acked.
    pub acked: u64,
    /// Tuples failed.
    pub failed: u64,
    /// Execute latency samples (the sampled tuples, as the histograms have).
    pub execute_count: u64,
    /// Sum of those samples, µs.
    pub execute_sum_us: u64,
    /// Process latency samples.
    pub process_count: u64,
    /// Sum of those samples, µs.
    pub process_sum_us: u64,
}

impl InputStats {
    /// Zeroes the counts, keeping the names (no allocation).
    fn clear_counts(&mut self) {
        let InputStats {
            component: _,
            stream: _,
            executed,
            acked,
            failed,
            execute_count,
            execute_sum_us,
            process_count,
            process_sum_us,
        } = self;
        for n in [
            executed,
            acked,
            failed,
            execute_count,
            execute_sum_us,
            process_count,
            process_sum_us,
        ] {
            *n = 0;
        }
    }

    fn add(&mut self, o: &InputStats) {
        self.executed += o.executed;
        self.acked += o.acked;
        self.failed += o.failed;
        self.execute_count += o.execute_count;
        self.execute_sum_us += o.execute_sum_us;
        self.process_count += o.process_count;
        self.process_sum_us += o.process_sum_us;
    }
}

/// Per-stream figures of a task or a component: output streams in declaration order,
/// inputs as the plan lists them, then any other source seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Per output stream.
    pub outputs: Vec<OutputStats>,
    /// Per input.
    pub inputs: Vec<InputStats>,
}

impl StreamStats {
    /// The row of output stream `stream`, added at zero if missing.
    pub fn output_mut(&mut self, stream: &str) -> &mut OutputStats {
        let i = match self.outputs.iter().position(|y| y.stream == stream) {
            Some(i) => i,
            None => {
                self.outputs.push(OutputStats {
                    stream: stream.to_owned(),
                    ..Default::default()
                });
                self.outputs.len() - 1
            }
        };
        &mut self.outputs[i]
    }

    /// The row of input `(component, stream)`, added at zero if missing.
    pub fn input_mut(&mut self, component: &str, stream: &str) -> &mut InputStats {
        let i = match self
            .inputs
            .iter()
            .position(|y| y.component == component && y.stream == stream)
        {
            Some(i) => i,
            None => {
                self.inputs.push(InputStats {
                    component: component.to_owned(),
                    stream: stream.to_owned(),
                    ..Default::default()
                });
                self.inputs.len() - 1
            }
        };
        &mut self.inputs[i]
    }

    /// Adds another task's figures into these, by stream and by input.
    pub fn add(&mut self, o: &StreamStats) {
        for x in &o.outputs {
            let y = self.output_mut(&x.stream);
            y.emitted += x.emitted;
            y.transferred += x.transferred;
        }
        for x in &o.inputs {
            self.input_mut(&x.component, &x.stream).add(x);
        }
    }
}

/// A point-in-time copy of one task's or one component's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// See [`TaskCounters`].
    pub emitted: u64,
    /// See [`TaskCounters`].
    pub transferred: u64,
    /// See [`TaskCounters`].
    pub executed: u64,
    /// See [`TaskCounters`].
    pub acked: u64,
    /// See [`TaskCounters`].
    pub failed: u64,
    /// See [`TaskCounters`].
    pub timed_out: u64,
    /// See [`TaskCounters`].
    pub busy_ns: u64,
    /// See [`TaskCounters`].
    pub backpressure_ns: u64,
    /// See [`TaskCounters`].
    pub unroutable: u64,
    /// See [`TaskCounters`].
    pub skipped_max_pending_ns: u64,
    /// See [`TaskCounters`].
    pub errors: u64,
    /// See [`TaskCounters`].
    pub restarts: u64,
    /// See [`TaskCounters`].
    pub pending: u64,
    /// Execute latency percentiles (µs): p50, p99, mean.
    pub execute_us: Percentiles,
    /// Process latency percentiles (µs).
    pub process_us: Percentiles,
    /// Complete latency percentiles (µs), spouts.
    pub complete_us: Percentiles,
    /// Execute latencies in fixed buckets, which add up across processes.
    pub execute_buckets: LatencyBuckets,
    /// Process latencies in fixed buckets.
    pub process_buckets: LatencyBuckets,
    /// Complete latencies in fixed buckets.
    pub complete_buckets: LatencyBuckets,
    /// Per output stream and per input.
    pub streams: StreamStats,
}

/// A few figures of a latency distribution, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Metrics of one component: totals and per task.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentSnapshot {
    /// Component name.
    pub name: String,
    /// spout, bolt or acker.
    pub role: &'static str,
    /// Executors.
    pub executors: u32,
    /// Summed over tasks; latencies merged.
    pub total: Stats,
    /// Per task, by task id.
    pub tasks: Vec<(u32, Stats)>,
    /// Items waiting in this component's receive queues now.
    pub queue_depth: u64,
    /// Capacity of those queues.
    pub queue_capacity: u64,
    /// The last error reported by any task.
    pub last_error: Option<String>,
    /// The component's own counters, summed over tasks.
    pub custom: std::collections::BTreeMap<String, u64>,
    /// The component's own gauges by series (see `Counters::set_gauge`), summed over tasks.
    pub gauges: std::collections::BTreeMap<String, u64>,
    /// Spouts: every local task is finished (finite spouts only) with nothing pending.
    pub finished: bool,
}

/// Metrics of a whole topology at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Time since the topology started.
    pub uptime: Duration,
    /// Components in task-id order.
    pub components: Vec<ComponentSnapshot>,
}

impl Snapshot {
    /// The component with this name.
    pub fn component(&self, name: &str) -> Option<&ComponentSnapshot> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Emitted, acked, failed and pending trees summed over the spouts.
    pub fn spout_totals(&self) -> (u64, u64, u64, u64) {
        self.components
            .iter()
            .filter(|c| c.role == "spout")
            .fold((0, 0, 0, 0), |(e, a, f, p), c| {
                (
                    e + c.total.emitted,
                    a + c.total.acked,
                    f + c.total.failed,
                    p + c.total.pending,
                )
            })
    }
}

pub(crate) fn stats_of(m: &TaskMetrics) -> (Stats, TaskLatencies) {
    let c = &m.counters;
    let lat = m.latencies.lock();
    let mut copy = TaskLatencies::default();
    copy.merge(&lat);
    drop(lat);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let stats = Stats {
        emitted: load(&c.emitted),
        transferred: load(&c.transferred),
        executed: load(&c.executed),
        acked: load(&c.acked),
        failed: load(&c.failed),
        timed_out: load(&c.timed_out),
        busy_ns: load(&c.busy_ns),
        backpressure_ns: load(&c.backpressure_ns),
        unroutable: load(&c.unroutable),
        skipped_max_pending_ns: load(&c.skipped_max_pending_ns),
        errors: load(&c.errors),
        restarts: load(&c.restarts),
        pending: load(&c.pending),
        execute_us: Percentiles::of(&copy.execute),
        process_us: Percentiles::of(&copy.process),
        complete_us: Percentiles::of(&copy.complete),
        execute_buckets: LatencyBuckets::of(&copy.execute),
        process_buckets: LatencyBuckets::of(&copy.process),
        complete_buckets: LatencyBuckets::of(&copy.complete),
        streams: m.streams.lock().clone(),
    };
    (stats, copy)
}

pub(crate) fn sum_stats(tasks: &[(u32, Stats)], merged: &TaskLatencies) -> Stats {
    let mut t = Stats::default();
    for (_, s) in tasks {
        t.emitted += s.emitted;
        t.transferred += s.transferred;
        t.executed += s.executed;
        t.acked += s.acked;
        t.failed += s.failed;
        t.timed_out += s.timed_out;
        t.busy_ns += s.busy_ns;
        t.backpressure_ns += s.backpressure_ns;
        t.unroutable += s.unroutable;
        t.skipped_max_pending_ns += s.skipped_max_pending_ns;
        t.errors += s.errors;
        t.restarts += s.restarts;
        t.pending += s.pending;
        t.streams.add(&s.streams);
    }
    t.execute_us = Percentiles::of(&merged.execute);
    t.process_us = Percentiles::of(&merged.process);
    t.complete_us = Percentiles::of(&merged.complete);
    t.execute_buckets = LatencyBuckets::of(&merged.execute);
    t.process_buckets = LatencyBuckets::of(&merged.process);
    t.complete_buckets = LatencyBuckets::of(&merged.complete);
    t
}

/// Buckets per doubling of latency: eight, as in Prometheus' native histogram schema 3.
const BUCKETS_PER_DOUBLING: u32 = 8;

/// Up to here buckets are 1 µs wide: narrower log buckets would round to whole
/// microseconds unevenly, and a quantile rounded to a microsecond would miss by over 5%.
const UNIT_BUCKETS_UP_TO: u64 = 24;

/// The last finite bucket bound, 2^27 µs (about 134 s, above the usual message timeouts).
const LAST_BUCKET_DOUBLING: u32 = 27;

/// Upper bounds (µs, inclusive) of the fixed latency buckets: 1 to 24 µs one by one, then
/// about 2^(k/8) up to 2^27, rounded to whole microseconds and then up to the end of an
/// HDR histogram cell, so that no cell straddles a bound and bucket counts are exact
/// counts of the samples.
///
/// Estimating a quantile from these buckets (the geometric middle of the bucket that holds
/// it, see [`LatencyBuckets::quantile`]) is within [`LATENCY_BUCKET_ERROR`] of the exact
/// value, however many processes' buckets were added up.
pub fn latency_bucket_bounds() -> &'static [u64] {
    static BOUNDS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        let cells = new_histogram();
        let mut out: Vec<u64> = (1..=UNIT_BUCKETS_UP_TO).collect();
        for k in 0..=BUCKETS_PER_DOUBLING * LAST_BUCKET_DOUBLING {
            let raw = 2f64.powf(f64::from(k) / f64::from(BUCKETS_PER_DOUBLING)).round() as u64;
            let bound = cells.highest_equivalent(raw);
            if out.last().is_none_or(|last| bound > *last) {
                out.push(bound);
            }
        }
        out
    })
}

/// Largest relative error of a quantile estimated from [`LatencyBuckets`] (below the last
/// bound): half a bucket on a log scale, sqrt(2^(1/8) * (1 + 1/128)) - 1 or 4.8%, and
/// rounding to a microsecond; a test checks every bucket.
pub const LATENCY_BUCKET_ERROR: f64 = 0.05;

/// A latency distribution in the fixed buckets of [`latency_bucket_bounds`]: what a
/// Prometheus histogram carries. Unlike quantiles, these add up across tasks and processes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyBuckets {
    /// Samples per bucket (not cumulative), one per bound; empty when there are none.
    pub counts: Vec<u64>,
    /// Samples above the last bound.
    pub overflow: u64,
    /// Sum of the samples, µs (HDR cell middles, so within 1%).
    pub sum: u64,
    /// Largest sample, µs (up to the end of its HDR cell).
    pub max: u64,
}

impl LatencyBuckets {
    /// The buckets of a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencyBuckets::default();
        }
        let bounds = latency_bucket_bounds();
        let mut out = LatencyBuckets {
            counts: vec![0; bounds.len()],
            overflow: 0,
            sum: (h.mean() * h.len() as f64).round() as u64,
            max: h.max(),
        };
        for v in h.iter_recorded() {
            // A cell's highest value decides its bucket: bounds are cell ends.
            let i = bounds.partition_point(|b| *b < v.value_iterated_to());
            match out.counts.get_mut(i) {
                Some(c) => *c += v.count_at_value(),
                None => out.overflow += v.count_at_value(),
            }
        }
        out
    }

    /// Samples in all buckets.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.overflow
    }

    /// Adds another distribution into this one.
    pub fn add(&mut self, other: &LatencyBuckets) {
        if other.counts.is_empty() && other.overflow == 0 {
            return;
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.overflow += other.overflow;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (nearest rank, as hdrhistogram counts it): the geometric
    /// middle of the bucket holding that rank, at most the maximum; the maximum when the
    /// rank lies above the last bound. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let bounds = latency_bucket_bounds();
        let mut seen = 0;
        for (i, (c, hi)) in self.counts.iter().zip(bounds).enumerate() {
            seen += c;
            if seen >= rank {
                let lo = if i == 0 { 1 } else { bounds[i - 1] + 1 };
                let mid = ((lo as f64) * (*hi as f64)).sqrt().round() as u64;
                return if self.max > 0 { mid.min(self.max) } else { mid };
            }
        }
        self.max
    }

    /// Count, p50, p99, max and mean.
    pub fn percentiles(&self) -> Percentiles {
        let count = self.count();
        if count == 0 {
            return Percentiles::default();
        }
        Percentiles {
            count,
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.max,
            mean: self.sum as f64 / count as f64,
        }
    }
}

/// Local, unshared counters an executor accumulates between publications.
#[derive(Default)]
pub(crate) struct LocalCounts {
    pub emitted: u64,
    pub transferred: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub busy_ns: u64,
    /// Per output stream, by the routing's stream index, and per input.
    pub streams: LocalStreams,
}

/// A task's per-stream counts since the last publication. Slots are addressed by index
/// (the routing's stream index; an input's slot found by comparing interned schema
/// pointers), so counting allocates nothing and takes no lock.
#[derive(Default)]
pub(crate) struct LocalStreams {
    outputs: Vec<OutputStats>,
    inputs: Vec<InputStats>,
    /// Schemas seen, with their input slot: a tuple's schema is interned, so a pointer
    /// comparison finds its input (several schemas may share a slot).
    seen: Vec<(&'static Schema, usize)>,
    dirty: bool,
}

impl LocalStreams {
    /// Slots for these output streams (in the routing's order) and inputs.
    pub(crate) fn new<'a>(
        outputs: impl IntoIterator<Item = &'a str>,
        inputs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        LocalStreams {
            outputs: outputs
                .into_iter()
                .map(|s| OutputStats {
                    stream: s.to_owned(),
                    ..Default::default()
                })
                .collect(),
            inputs: inputs
                .into_iter()
                .map(|(c, s)| InputStats {
                    component: c.to_owned(),
                    stream: s.to_owned(),
                    ..Default::default()
                })
                .collect(),
            seen: Vec::new(),
            dirty: false,
        }
    }

    /// Counts an emit on output stream `idx` sent to `targets` tasks.
    #[inline]
    pub(crate) fn emitted(&mut self, idx: usize, targets: usize) {
        if let Some(o) = self.outputs.get_mut(idx) {
            o.emitted += 1;
            o.transferred += targets as u64;
            self.dirty = true;
        }
    }

    /// The input slot of tuples of this schema; `None` for ticks, which are no input.
    #[inline]
    pub(crate) fn input(&mut self, schema: &'static Schema) -> Option<&mut InputStats> {
        let i = match self.seen.iter().find(|(s, _)| std::ptr::eq(*s, schema)) {
            Some((_, i)) => *i,
            None => self.learn(schema)?,
        };
        self.dirty = true;
        self.inputs.get_mut(i)
    }

    /// First tuple of a schema: find its input by name, or add one (a source the plan
    /// does not list, e.g. a tuple handed in by a test). Once per schema, not per tuple.
    #[cold]
    fn learn(&mut self, schema: &'static Schema) -> Option<usize> {
        if std::ptr::eq(schema, Schema::tick()) {
            return None;
        }
        let i = match self
            .inputs
            .iter()
            .position(|x| x.component == schema.component && x.stream == schema.stream)
        {
            Some(i) => i,
            None => {
                self.inputs.push(InputStats {
                    component: schema.component.clone(),
                    stream: schema.stream.clone(),
                    ..Default::default()
                });
                self.inputs.len() - 1
            }
        };
        self.seen.push((schema, i));
        Some(i)
    }

    /// Adds the counts since the last publication into `to` and clears them.
    fn publish(&mut self, to: &Mutex<StreamStats>) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let mut shared = to.lock();
        // Slots only ever grow at the end, so the shared copy is index-aligned.
        for (i, o) in self.outputs.iter_mut().enumerate() {
            if shared.outputs.len() <= i {
                shared.outputs.push(OutputStats {
                    stream: o.stream.clone(),
                    ..Default::default()
                });
            }
            let y = &mut shared.outputs[i];
            y.emitted += std::mem::take(&mut o.emitted);
            y.transferred += std::mem::take(&mut o.transferred);
        }
        for (i, x) in self.inputs.iter_mut().enumerate() {
            if shared.inputs.len() <= i {
                shared.inputs.push(InputStats {
                    component: x.component.clone(),
                    stream: x.stream.clone(),
                    ..Default::default()
                });
            }
            shared.inputs[i].add(x);
            x.clear_counts();
        }
    }
}

impl LocalCounts {
    /// Counts with per-stream slots (see [`LocalStreams::new`]).
    pub(crate) fn with_streams(streams: LocalStreams) -> Self {
        LocalCounts {
            streams,
            ..Default::default()
        }
    }

    pub(crate) fn publish(&mut self, to: &TaskMetrics) {
        let c = &to.counters;
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v != 0 {
                a.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        add(&c.emitted, &mut self.emitted);
        add(&c.transferred, &mut self.transferred);
        add(&c.executed, &mut self.executed);
        add(&c.acked, &mut self.acked);
        add(&c.failed, &mut self.failed);
        add(&c.timed_out, &mut self.timed_out);
        add(&c.busy_ns, &mut self.busy_ns);
        self.streams.publish(&to.streams);
    }
}

#[cfg(test)]
mod latency_bucket_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn histogram_of(samples: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for s in samples {
            TaskLatencies::record(&mut h, Duration::from_micros(*s));
        }
        h
    }

    /// Nearest rank, as `LatencyBuckets::quantile` and hdrhistogram define it.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn bounds_rise_and_every_bucket_keeps_the_documented_error() {
        let bounds = latency_bucket_bounds();
        assert_eq!(bounds[0], 1);
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        assert!(*bounds.last().unwrap() >= 1 << 27);
        let mut lo = 1;
        for hi in bounds {
            // The estimate for a bucket is the same whatever its samples; the worst
            // sample is at either end.
            let mid = ((lo as f64) * (*hi as f64)).sqrt().round();
            for v in [lo, *hi] {
                let err = (mid / v as f64 - 1.0).abs();
                assert!(err <= LATENCY_BUCKET_ERROR, "bucket {lo}..={hi}: {err}");
            }
            lo = hi + 1;
        }
    }

    #[test]
    fn an_empty_histogram_has_no_buckets() {
        let b = LatencyBuckets::of(&new_histogram());
        assert_eq!(b, LatencyBuckets::default());
        assert_eq!(b.percentiles(), Percentiles::default());
    }

    #[test]
    fn samples_above_the_last_bound_overflow_and_report_the_maximum() {
        let b = LatencyBuckets::of(&histogram_of(&[10, 1 << 28, 1 << 29]));
        assert_eq!(b.overflow, 2);
        assert_eq!(b.count(), 3);
        assert_eq!(b.quantile(0.2), 10);
        let max = b.quantile(0.99);
        assert!((max as f64 / (1u64 << 29) as f64 - 1.0).abs() < 0.01, "{max}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn merged_buckets_give_the_percentiles_of_all_samples(
            parts in prop::collection::vec(
                (1u64..5_000_000, prop::collection::vec(0.5f64..2.0, 1..200)),
                1..4,
            ),
        ) {
            // Each part is one process: samples spread around its own centre.
            let mut all = Vec::new();
            let mut merged = LatencyBuckets::default();
            for (centre, spread) in &parts {
                let samples: Vec<u64> =
                    spread.iter().map(|f| ((*centre as f64) * f).max(1.0) as u64).collect();
                merged.add(&LatencyBuckets::of(&histogram_of(&samples)));
                all.extend(samples);
            }
            all.sort_unstable();
            prop_assert_eq!(merged.count(), all.len() as u64);
            for q in [0.5, 0.9, 0.99] {
                let (got, want) = (merged.quantile(q) as f64, exact(&all, q) as f64);
                prop_assert!((got / want - 1.0).abs() <= LATENCY_BUCKET_ERROR, "q {}: {} vs {}", q, got, want);
            }
            let max = merged.percentiles().max as f64;
            prop_assert!(max >= *all.last().unwrap() as f64);
            prop_assert!(max / *all.last().unwrap() as f64 <= 1.01);
        }
    }
}

#[cfg(test)]
mod stream_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn inputs_are_found_by_schema_ticks_are_none_and_publishing_adds_up() {
        let mut local = LocalStreams::new(["default", "errors"], [("a", "default"), ("a", "errors")]);
        let errors = Schema::intern("a", "errors", &["x".to_owned()]);
        // Another schema of the same input (other fields) shares its row.
        let errors_too = Schema::intern("a", "errors", &["y".to_owned()]);
        let stray = Schema::intern("z", "default", &[]);
        assert!(local.input(Schema::tick()).is_none());
        local.input(errors).unwrap().executed += 2;
        local.input(errors_too).unwrap().failed += 1;
        local.input(stray).unwrap().acked += 1;
        local.emitted(1, 3);
        local.emitted(7, 1); // no such stream: ignored, never a panic
        let shared = Mutex::new(StreamStats::default());
        local.publish(&shared);
        local.input(errors).unwrap().executed += 1;
        local.publish(&shared);
        local.publish(&shared); // nothing new: no lock, no change
        let s = shared.lock();
        let outs: Vec<_> = s
            .outputs
            .iter()
            .map(|o| (o.stream.as_str(), o.emitted, o.transferred))
            .collect();
        assert_eq!(outs, [("default", 0, 0), ("errors", 1, 3)]);
        let ins: Vec<_> = s
            .inputs
            .iter()
            .map(|i| {
                (
                    i.component.as_str(),
                    i.stream.as_str(),
                    i.executed,
                    i.acked,
                    i.failed,
                )
            })
            .collect();
        assert_eq!(
            ins,
            [
                ("a", "default", 0, 0, 0),
                ("a", "errors", 3, 0, 1),
                ("z", "default", 0, 1, 0)
            ]
        );
    }
}
