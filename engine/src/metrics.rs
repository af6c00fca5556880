//! Per-task metrics: counters the executors add to once per batch, latency histograms
//! merged in periodically, and the snapshot the CLI (and later workers) read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Latency histograms keep microseconds up to one hour, at two significant digits.
#[allow(clippy::expect_used)]
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("constant histogram bounds are valid")
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
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let _ = h.record(us);
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
    }
    t.execute_us = Percentiles::of(&merged.execute);
    t.process_us = Percentiles::of(&merged.process);
    t.complete_us = Percentiles::of(&merged.complete);
    t
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
}

impl LocalCounts {
    pub(crate) fn publish(&mut self, to: &TaskCounters) {
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v != 0 {
                a.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        add(&to.emitted, &mut self.emitted);
        add(&to.transferred, &mut self.transferred);
        add(&to.executed, &mut self.executed);
        add(&to.acked, &mut self.acked);
        add(&to.failed, &mut self.failed);
        add(&to.timed_out, &mut self.timed_out);
        add(&to.busy_ns, &mut self.busy_ns);
    }
}
