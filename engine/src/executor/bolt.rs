//! Bolt executors: feed tuples and ticks to bolts, restart a task that panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{panic_message, record_error, Executor, ExecutorBase, Step, MAX_PARK, SAMPLE_EVERY};
use crate::collector::{BoltOutput, Routing};
use crate::component::{Bolt, TaskContext};
use crate::fabric::{Control, Fabric, Msg, Outbox};
use crate::metrics::{LocalCounts, TaskLatencies, TaskMetrics};
use crate::tuple::{MessageIds, Tuple};

/// What a bolt task emits, acks and counts through; kept apart from the instance so
/// both can be borrowed at once.
pub(crate) struct BoltIo {
    pub routing: Routing,
    pub counts: LocalCounts,
    pub latencies: TaskLatencies,
    pub errors: Vec<String>,
}

impl BoltIo {
    fn output<'a>(
        &'a mut self,
        base: &'a mut ExecutorBase,
        current: Option<(MessageIds, bool)>,
    ) -> BoltOutput<'a> {
        BoltOutput {
            routing: &mut self.routing,
            outbox: &mut base.outbox,
            counts: &mut self.counts,
            latencies: &mut self.latencies,
            fabric: &base.fabric,
            epoch: base.control.epoch,
            implicit: None,
            errors: &mut self.errors,
            current,
        }
    }
}

pub(crate) struct BoltTask {
    pub id: u32,
    pub instance: Option<Box<dyn Bolt>>,
    pub ctx: TaskContext,
    pub io: BoltIo,
    pub metrics: Arc<TaskMetrics>,
    pub seq: u64,
    pub retry_at: Option<Instant>,
}

pub(crate) struct BoltExecutor {
    base: ExecutorBase,
    tasks: Vec<BoltTask>,
    tick: Option<Duration>,
    next_tick: Option<Instant>,
    next_publish: Instant,
}

impl BoltExecutor {
    /// Runs every tuple of a batch taken from the queue, leaving `batch` empty.
    fn execute_batch(&mut self, batch: &mut Vec<Msg>) {
        for msg in batch.drain(..) {
            match msg {
                Msg::Tuple(p) => match self.base.slot(p.task(), self.tasks.len()) {
                    Some(i) => self.execute(i, Tuple::arrived(p)),
                    None => {
                        warn!(component = %self.base.plan.name, task = p.task(), "tuple for a task this executor does not run")
                    }
                },
                other => {
                    warn!(component = %self.base.plan.name, msg = ?other, "bolt received an unexpected message")
                }
            }
        }
    }

    pub fn new(base: ExecutorBase, tasks: Vec<BoltTask>, tick: Option<Duration>) -> Self {
        let now = Instant::now();
        BoltExecutor {
            base,
            tasks,
            tick,
            next_tick: tick.map(|t| now + t),
            next_publish: now,
        }
    }
}

impl Executor for BoltExecutor {
    fn step(&mut self) -> Step {
        let now = Instant::now();
        if let (Some(at), Some(period)) = (self.next_tick, self.tick) {
            if now >= at && !self.base.outbox.is_blocked() {
                for i in 0..self.tasks.len() {
                    self.execute(i, Tuple::tick(period.as_secs()));
                }
                self.next_tick = Some(at + period);
                self.base.outbox.flush();
            }
        }
        if self.base.outbox.is_blocked() && !self.base.outbox.flush() {
            self.publish(false);
            return self.base.wait_downstream(now);
        }
        let mut batch = std::mem::take(&mut self.base.inbox);
        let progress = if self.base.queue.pop_into(&mut batch) {
            let mut taken = 0;
            loop {
                taken += batch.len();
                self.execute_batch(&mut batch);
                self.poll_all();
                self.base.outbox.flush_ready();
                if !self.base.take_more(taken, now, &mut batch) {
                    break;
                }
            }
            true
        } else {
            self.poll_all();
            self.base.outbox.flush();
            false
        };
        self.base.inbox = batch;
        // Counters go out on every idle step (cheap); latency histograms at most every
        // PUBLISH_EVERY, since merging and clearing one walks its whole bucket array.
        let due = now >= self.next_publish;
        if due || !progress {
            self.publish(due);
            if due {
                self.next_publish = now + super::PUBLISH_EVERY;
            }
        }
        if progress {
            return Step::Busy;
        }
        if self.base.outbox.is_blocked() {
            return self.base.wait_downstream(now);
        }
        let mut wake = now + MAX_PARK;
        if let Some(at) = self.next_tick {
            wake = wake.min(at);
        }
        Step::Idle(wake)
    }

    fn shutdown(&mut self) {
        self.base.outbox.flush();
        for t in &mut self.tasks {
            if let Some(b) = t.instance.as_mut() {
                if catch_unwind(AssertUnwindSafe(|| b.cleanup())).is_err() {
                    warn!(component = %t.ctx.component, task = t.id, "bolt panicked in cleanup");
                }
            }
        }
        self.publish(true);
    }

    fn base(&self) -> &ExecutorBase {
        &self.base
    }
}

impl BoltExecutor {
    fn execute(&mut self, i: usize, mut tuple: Tuple) {
        let t = &mut self.tasks[i];
        if t.instance.is_none() && !Self::try_revive(&self.base, t) {
            // The task cannot run: fail its input so the spout replays it later.
            let mut out = t.io.output(&mut self.base, None);
            out.fail(tuple);
            return;
        }
        let Some(instance) = t.instance.as_mut() else {
            return;
        };
        t.seq += 1;
        let sample = t.seq.is_multiple_of(SAMPLE_EVERY);
        let t0 = if sample {
            let now = Instant::now();
            tuple.stamp_ns = now.duration_since(self.base.control.epoch).as_nanos() as u64;
            Some(now)
        } else {
            None
        };
        let is_tick = tuple.is_tick();
        let schema = tuple.schema;
        let mut out = t.io.output(&mut self.base, Some((tuple.ids.clone(), false)));
        let r = catch_unwind(AssertUnwindSafe(|| instance.execute(tuple, &mut out)));
        // The input's ids come back with whether the bolt acked or failed it.
        let (roots, settled) = out.current.take().unwrap_or_default();
        let unsettled = !settled;
        let d = t0.map(|t0| t0.elapsed());
        if !is_tick {
            t.io.counts.executed += 1;
            if let Some(x) = t.io.counts.streams.input(schema) {
                x.executed += 1;
                if let Some(d) = d {
                    x.execute_count += 1;
                    x.execute_sum_us += TaskLatencies::micros(d);
                }
            }
        }
        if let Some(d) = d {
            TaskLatencies::record(&mut t.io.latencies.execute, d);
            t.io.counts.busy_ns += d.as_nanos() as u64 * SAMPLE_EVERY;
        }
        for e in t.io.errors.drain(..) {
            record_error(&t.metrics, &t.ctx.component, t.id, "bolt reported an error", &e);
        }
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                record_error(&t.metrics, &t.ctx.component, t.id, "bolt execute failed", &e.0);
                // An error with the input neither acked nor failed fails it now, rather
                // than leaving its tree to time out.
                if unsettled && !is_tick {
                    t.io.counts.failed += 1;
                    if let Some(x) = t.io.counts.streams.input(schema) {
                        x.failed += 1;
                    }
                    Self::fail_roots(&self.base.fabric, &mut self.base.outbox, &roots);
                }
            }
            Err(p) => {
                record_error(
                    &t.metrics,
                    &t.ctx.component,
                    t.id,
                    "bolt panicked; restarting the task",
                    &panic_message(&*p),
                );
                // The input in hand fails now (unless it was settled); inputs the old
                // instance held time out.
                if unsettled && !is_tick {
                    t.io.counts.failed += 1;
                    if let Some(x) = t.io.counts.streams.input(schema) {
                        x.failed += 1;
                    }
                    Self::fail_roots(&self.base.fabric, &mut self.base.outbox, &roots);
                }
                t.metrics.counters.restarts.fetch_add(1, Ordering::Relaxed);
                t.instance = None;
                t.retry_at = None;
                Self::try_revive(&self.base, t);
            }
        }
    }

    /// Gives every task its chance to do work not driven by a tuple.
    fn poll_all(&mut self) {
        for i in 0..self.tasks.len() {
            let t = &mut self.tasks[i];
            let Some(instance) = t.instance.as_mut() else {
                continue;
            };
            let mut out = t.io.output(&mut self.base, None);
            let r = catch_unwind(AssertUnwindSafe(|| instance.poll(&mut out)));
            for e in t.io.errors.drain(..) {
                record_error(&t.metrics, &t.ctx.component, t.id, "bolt reported an error", &e);
            }
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => record_error(&t.metrics, &t.ctx.component, t.id, "bolt poll failed", &e.0),
                Err(p) => {
                    record_error(
                        &t.metrics,
                        &t.ctx.component,
                        t.id,
                        "bolt panicked in poll; restarting the task",
                        &panic_message(&*p),
                    );
                    t.metrics.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    t.instance = None;
                    t.retry_at = None;
                    Self::try_revive(&self.base, t);
                }
            }
        }
    }

    fn fail_roots(fabric: &Fabric, outbox: &mut Outbox, roots: &crate::MessageIds) {
        if fabric.ackers.is_empty() {
            return;
        }
        for (root, _) in roots.iter() {
            let acker = fabric.acker_for(*root);
            outbox.send(
                acker,
                Msg::Control(Control::Fail {
                    task: acker,
                    root: *root,
                }),
            );
        }
    }

    /// Builds and prepares a new instance; on failure retries no more than once a second.
    fn try_revive(base: &ExecutorBase, t: &mut BoltTask) -> bool {
        let now = Instant::now();
        if t.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        let fresh = base.factory.bolt(&base.plan).and_then(|mut b| {
            catch_unwind(AssertUnwindSafe(|| b.prepare(&t.ctx)))
                .map_err(|p| crate::ComponentError(panic_message(&*p)))?
                .map(|_| b)
        });
        match fresh {
            Ok(b) => {
                t.instance = Some(b);
                t.retry_at = None;
                warn!(component = %t.ctx.component, task = t.id, "bolt task restarted");
                true
            }
            Err(e) => {
                record_error(
                    &t.metrics,
                    &t.ctx.component,
                    t.id,
                    "bolt restart failed; retrying in 1s",
                    &e.0,
                );
                t.retry_at = Some(now + Duration::from_secs(1));
                false
            }
        }
    }

    fn publish(&mut self, latencies: bool) {
        self.base.publish_held();
        for t in &mut self.tasks {
            t.io.counts.publish(&t.metrics);
            if latencies && (!t.io.latencies.execute.is_empty() || !t.io.latencies.process.is_empty()) {
                t.metrics.latencies.lock().merge(&t.io.latencies);
                t.io.latencies.reset();
            }
        }
        if let Some(t) = self.tasks.first() {
            self.base.drain_blocked_time(&t.metrics);
        }
    }
}
