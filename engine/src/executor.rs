//! Executors: one thread each, running one or more tasks of one component.
//!
//! Every loop follows the same rules: drain what the executor must always drain (acks at
//! spouts), push held output downstream, then do new work only if nothing is held, and
//! park when there is nothing to do. A full downstream queue therefore stops a bolt from
//! taking input and a spout from being asked for tuples, which is all back pressure is.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_model::ComponentPlan;
use tracing::{error, warn};

use crate::acker::{IdMap, Ledger, Outcome};
use crate::collector::{BoltOutput, Routing, SpoutOutput, SpoutState};
use crate::component::{Bolt, ComponentFactory, Spout, TaskContext};
use crate::fabric::{Fabric, Msg, Outbox};
use crate::metrics::{LocalCounts, TaskLatencies, TaskMetrics};
use crate::queue::BatchQueue;
use crate::tuple::Tuple;

/// One latency sample every this many tuples (Storm samples 5%).
const SAMPLE_EVERY: u64 = 16;
/// Longest a parked executor sleeps before looking at its timers again.
const MAX_PARK: Duration = Duration::from_millis(10);

/// State every executor shares with the topology handle.
pub(crate) struct Control {
    pub active: AtomicBool,
    pub stop: AtomicBool,
    pub epoch: Instant,
}

/// Gauges an executor publishes for drain detection.
#[derive(Default)]
pub(crate) struct ExecutorGauges {
    /// Messages held in the outbox.
    pub held: AtomicUsize,
    /// Set by spout executors once every task is finished.
    pub finished: AtomicBool,
    /// Iterations, so a watcher can tell an executor is alive.
    pub loops: AtomicU64,
}

/// Common parts of every executor.
pub(crate) struct ExecutorBase {
    pub plan: Arc<ComponentPlan>,
    pub queue: Arc<BatchQueue<Msg>>,
    pub fabric: Arc<Fabric>,
    pub outbox: Outbox,
    pub control: Arc<Control>,
    pub gauges: Arc<ExecutorGauges>,
    pub factory: Arc<dyn ComponentFactory>,
    /// Index of each local task in `tasks`, by task id offset from the first task.
    pub first_task: u32,
    /// The batch being processed; its storage goes back to the queue on the next pop.
    pub inbox: Vec<Msg>,
}

impl ExecutorBase {
    fn slot(&self, task: u32, n: usize) -> Option<usize> {
        let i = task.checked_sub(self.first_task)? as usize;
        (i < n).then_some(i)
    }

    fn publish_held(&self) {
        self.gauges.held.store(self.outbox.len(), Ordering::Relaxed);
    }

    fn drain_blocked_time(&mut self, metrics: &TaskMetrics) {
        if !self.outbox.blocked.is_zero() {
            metrics
                .counters
                .backpressure_ns
                .fetch_add(self.outbox.blocked.as_nanos() as u64, Ordering::Relaxed);
            self.outbox.blocked = Duration::ZERO;
        }
    }

    /// Waits until held output can move, or `timeout`.
    fn wait_downstream(&self, timeout: Duration) {
        self.outbox.wait_for_room();
        if !self.outbox.has_room() {
            std::thread::park_timeout(timeout);
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

fn record_error(metrics: &TaskMetrics, component: &str, task: u32, what: &str, msg: &str) {
    metrics.counters.errors.fetch_add(1, Ordering::Relaxed);
    *metrics.last_error.lock() = Some(format!("{what}: {msg}"));
    error!(component, task, error = msg, "{what}");
}

// ---------------------------------------------------------------------------------------
// Spouts

pub(crate) struct SpoutTask {
    pub id: u32,
    pub instance: Box<dyn Spout>,
    pub ctx: TaskContext,
    pub routing: Routing,
    pub state: SpoutState,
    pub metrics: Arc<TaskMetrics>,
    pub counts: LocalCounts,
    pub latencies: TaskLatencies,
    pub finished: bool,
}

pub(crate) struct SpoutExecutor {
    pub base: ExecutorBase,
    pub tasks: Vec<SpoutTask>,
    pub max_pending: Option<usize>,
    pub timeout: Duration,
}

impl SpoutExecutor {
    pub fn run(mut self) {
        let mut was_active = false;
        let mut next_sweep = Instant::now() + sweep_period(self.timeout);
        let mut next_publish = Instant::now();
        let mut rr = 0usize;
        let mut idle_streak = 0u32;
        while !self.base.control.stop.load(Ordering::Acquire) {
            self.base.gauges.loops.fetch_add(1, Ordering::Relaxed);
            let active = self.base.control.active.load(Ordering::Acquire);
            if active != was_active {
                for t in &mut self.tasks {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        if active {
                            t.instance.activate()
                        } else {
                            t.instance.deactivate()
                        }
                    }));
                    if let Err(p) = r {
                        record_error(
                            &t.metrics,
                            &t.ctx.component,
                            t.id,
                            "spout panicked in activate/deactivate",
                            &panic_message(&*p),
                        );
                    }
                }
                was_active = active;
            }
            let mut progress = self.drain_input();
            if progress {
                idle_streak = 0;
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.expire(now);
                next_sweep = now + sweep_period(self.timeout);
            }
            self.immediate_acks();
            self.base.outbox.flush_ready();
            let mut skipped = false;
            if active && !self.base.outbox.is_blocked() {
                let (p, s) = self.produce(&mut rr, now);
                if p {
                    idle_streak = 0;
                }
                progress |= p;
                skipped = s;
                self.base.outbox.flush_ready();
            }
            self.immediate_acks();
            if !progress {
                // About to wait: nothing may stay behind in the outbox.
                self.base.outbox.flush();
            }
            if now >= next_publish || !progress {
                self.publish(now);
                next_publish = now + Duration::from_millis(50);
            }
            if !progress {
                let wait = if self.base.outbox.is_blocked() {
                    self.base.wait_downstream(Duration::from_millis(1));
                    continue;
                } else {
                    // Idle spouts and spouts at max pending sleep until an ack arrives (the
                    // queue wakes us) or a while passes: 50 µs after work, growing to 1 ms
                    // (Storm's default) while idle, so paced spouts emit in small bursts.
                    idle_streak = idle_streak.saturating_add(1);
                    Duration::from_micros((25u64 << idle_streak.min(6)).min(1000))
                };
                let t0 = Instant::now();
                self.base.queue.park_consumer(wait);
                if skipped {
                    let slept = t0.elapsed().as_nanos() as u64;
                    for t in &self.tasks {
                        t.metrics
                            .counters
                            .skipped_max_pending_ns
                            .fetch_add(slept, Ordering::Relaxed);
                    }
                }
            }
        }
        self.base.outbox.flush();
        for t in &mut self.tasks {
            if catch_unwind(AssertUnwindSafe(|| t.instance.close())).is_err() {
                warn!(component = %t.ctx.component, task = t.id, "spout panicked in close");
            }
        }
        self.publish(Instant::now());
    }

    fn drain_input(&mut self) -> bool {
        let mut any = false;
        let mut batch = std::mem::take(&mut self.base.inbox);
        while self.base.queue.pop_into(&mut batch) {
            any = true;
            let now = Instant::now();
            for msg in batch.drain(..) {
                let Some(i) = self.base.slot(msg.task(), self.tasks.len()) else {
                    continue;
                };
                let t = &mut self.tasks[i];
                match msg {
                    Msg::Done { root, failed, .. } => {
                        let Some(p) = t.state.pending.remove(&root) else {
                            continue;
                        };
                        let r = if failed {
                            t.counts.failed += 1;
                            catch_unwind(AssertUnwindSafe(|| t.instance.fail(p.msg_id)))
                        } else {
                            t.counts.acked += 1;
                            TaskLatencies::record(
                                &mut t.latencies.complete,
                                now.saturating_duration_since(p.emitted),
                            );
                            catch_unwind(AssertUnwindSafe(|| t.instance.ack(p.msg_id)))
                        };
                        if let Err(p) = r {
                            record_error(
                                &t.metrics,
                                &t.ctx.component,
                                t.id,
                                "spout panicked in ack/fail",
                                &panic_message(&*p),
                            );
                            self.restart(i);
                        }
                    }
                    Msg::SpoutReset { root, .. } => {
                        if let Some(p) = t.state.pending.get_mut(&root) {
                            p.since = now;
                        }
                    }
                    other => {
                        warn!(component = %t.ctx.component, task = t.id, msg = ?other, "spout received an unexpected message")
                    }
                }
            }
        }
        self.base.inbox = batch;
        any
    }

    fn immediate_acks(&mut self) {
        for i in 0..self.tasks.len() {
            if self.tasks[i].state.immediate_acks.is_empty() {
                continue;
            }
            let t = &mut self.tasks[i];
            let ids = std::mem::take(&mut t.state.immediate_acks);
            t.counts.acked += ids.len() as u64;
            let r = catch_unwind(AssertUnwindSafe(|| {
                for id in ids {
                    t.instance.ack(id);
                }
            }));
            if let Err(p) = r {
                record_error(
                    &t.metrics,
                    &t.ctx.component,
                    t.id,
                    "spout panicked in ack",
                    &panic_message(&*p),
                );
                self.restart(i);
            }
        }
    }

    /// Fails trees older than the message timeout: between T and T + T/4 after emit.
    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        for i in 0..self.tasks.len() {
            let t = &mut self.tasks[i];
            let expired: Vec<u64> = t
                .state
                .pending
                .iter()
                .filter(|(_, p)| now.saturating_duration_since(p.since) >= timeout)
                .map(|(r, _)| *r)
                .collect();
            if expired.is_empty() {
                continue;
            }
            t.counts.failed += expired.len() as u64;
            t.counts.timed_out += expired.len() as u64;
            let mut ids = Vec::with_capacity(expired.len());
            for r in expired {
                if let Some(p) = t.state.pending.remove(&r) {
                    ids.push(p.msg_id);
                }
            }
            let r = catch_unwind(AssertUnwindSafe(|| {
                for id in ids {
                    t.instance.fail(id);
                }
            }));
            if let Err(p) = r {
                record_error(
                    &t.metrics,
                    &t.ctx.component,
                    t.id,
                    "spout panicked in fail",
                    &panic_message(&*p),
                );
                self.restart(i);
            }
        }
    }

    /// Asks tasks for tuples. Returns (progress, skipped for max pending).
    fn produce(&mut self, rr: &mut usize, now: Instant) -> (bool, bool) {
        let n = self.tasks.len();
        let mut progress = false;
        let mut skipped = false;
        let budget = 256usize;
        for k in 0..n {
            let i = (*rr + k) % n;
            let mut calls = 0;
            while calls < budget && !self.base.outbox.is_blocked() {
                let t = &mut self.tasks[i];
                if t.finished {
                    break;
                }
                if let Some(max) = self.max_pending {
                    if t.state.pending.len() >= max {
                        skipped = true;
                        break;
                    }
                }
                let sample = t.counts.emitted.is_multiple_of(SAMPLE_EVERY);
                let mut out = SpoutOutput {
                    routing: &mut t.routing,
                    outbox: &mut self.base.outbox,
                    state: &mut t.state,
                    counts: &mut t.counts,
                    fabric: &self.base.fabric,
                    now,
                    emitted_now: 0,
                };
                let t0 = sample.then(Instant::now);
                let r = catch_unwind(AssertUnwindSafe(|| t.instance.next_tuple(&mut out)));
                let emitted = out.emitted_now;
                if let Some(t0) = t0 {
                    t.counts.busy_ns += t0.elapsed().as_nanos() as u64 * SAMPLE_EVERY;
                }
                calls += 1;
                for e in t.state.errors.drain(..) {
                    record_error(&t.metrics, &t.ctx.component, t.id, "spout reported an error", &e);
                }
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => record_error(
                        &t.metrics,
                        &t.ctx.component,
                        t.id,
                        "spout next_tuple failed",
                        &e.0,
                    ),
                    Err(p) => {
                        record_error(
                            &t.metrics,
                            &t.ctx.component,
                            t.id,
                            "spout panicked in next_tuple",
                            &panic_message(&*p),
                        );
                        self.restart(i);
                        break;
                    }
                }
                if emitted == 0 {
                    let t = &mut self.tasks[i];
                    if t.instance.is_finished() && t.state.pending.is_empty() {
                        t.finished = true;
                    }
                    break;
                }
                progress = true;
            }
        }
        *rr = (*rr + 1) % n.max(1);
        let all_finished = self.tasks.iter().all(|t| t.finished);
        self.base.gauges.finished.store(all_finished, Ordering::Release);
        (progress, skipped)
    }

    /// Replaces a task's instance after a panic. Its pending trees are failed into the
    /// new instance, so a replayable spout re-emits them.
    fn restart(&mut self, i: usize) {
        let t = &mut self.tasks[i];
        t.metrics.counters.restarts.fetch_add(1, Ordering::Relaxed);
        let fresh = self.base.factory.spout(&self.base.plan).and_then(|mut s| {
            catch_unwind(AssertUnwindSafe(|| s.open(&t.ctx)))
                .map_err(|p| crate::ComponentError(panic_message(&*p)))?
                .map(|_| s)
        });
        match fresh {
            Ok(mut s) => {
                if self.base.control.active.load(Ordering::Acquire) {
                    s.activate();
                }
                t.instance = s;
                let pending: IdMap<_> = std::mem::take(&mut t.state.pending);
                t.counts.failed += pending.len() as u64;
                let r = catch_unwind(AssertUnwindSafe(|| {
                    for (_, p) in pending {
                        t.instance.fail(p.msg_id);
                    }
                }));
                if r.is_err() {
                    warn!(component = %t.ctx.component, task = t.id, "restarted spout panicked in fail; its replays are lost to this instance");
                }
                warn!(component = %t.ctx.component, task = t.id, "spout task restarted");
            }
            Err(e) => {
                record_error(
                    &t.metrics,
                    &t.ctx.component,
                    t.id,
                    "spout restart failed; task stopped",
                    &e.0,
                );
                t.finished = true;
            }
        }
    }

    fn publish(&mut self, _now: Instant) {
        self.base.publish_held();
        for t in &mut self.tasks {
            t.counts.publish(&t.metrics.counters);
            t.metrics
                .counters
                .pending
                .store(t.state.pending.len() as u64, Ordering::Relaxed);
            if !t.latencies.complete.is_empty() || !t.latencies.execute.is_empty() {
                let mut shared = t.metrics.latencies.lock();
                shared.merge(&t.latencies);
                t.latencies.reset();
            }
        }
        if let Some(t) = self.tasks.first() {
            let m = Arc::clone(&t.metrics);
            self.base.drain_blocked_time(&m);
        }
    }
}

fn sweep_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

// ---------------------------------------------------------------------------------------
// Bolts

pub(crate) struct BoltTask {
    pub id: u32,
    pub instance: Option<Box<dyn Bolt>>,
    pub ctx: TaskContext,
    pub routing: Routing,
    pub metrics: Arc<TaskMetrics>,
    pub counts: LocalCounts,
    pub latencies: TaskLatencies,
    pub errors: Vec<String>,
    pub seq: u64,
    pub retry_at: Option<Instant>,
}

pub(crate) struct BoltExecutor {
    pub base: ExecutorBase,
    pub tasks: Vec<BoltTask>,
    pub tick: Option<Duration>,
}

impl BoltExecutor {
    pub fn run(mut self) {
        let mut next_tick = self.tick.map(|t| Instant::now() + t);
        let mut next_publish = Instant::now();
        while !self.base.control.stop.load(Ordering::Acquire) {
            self.base.gauges.loops.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            if let (Some(at), Some(period)) = (next_tick, self.tick) {
                if now >= at && !self.base.outbox.is_blocked() {
                    for i in 0..self.tasks.len() {
                        self.execute(i, Tuple::tick(period.as_secs()));
                    }
                    next_tick = Some(at + period);
                    self.base.outbox.flush();
                }
            }
            if self.base.outbox.is_blocked() && !self.base.outbox.flush() {
                self.publish();
                self.base.wait_downstream(Duration::from_millis(1));
                continue;
            }
            let mut batch = std::mem::take(&mut self.base.inbox);
            let progress = if self.base.queue.pop_into(&mut batch) {
                for msg in batch.drain(..) {
                    match msg {
                        Msg::Tuple { task, tuple } => match self.base.slot(task, self.tasks.len()) {
                            Some(i) => self.execute(i, tuple),
                            None => {
                                warn!(component = %self.base.plan.name, task, "tuple for a task this executor does not run")
                            }
                        },
                        other => {
                            warn!(component = %self.base.plan.name, msg = ?other, "bolt received an unexpected message")
                        }
                    }
                }
                self.poll_all();
                self.base.outbox.flush_ready();
                true
            } else {
                self.poll_all();
                self.base.outbox.flush();
                false
            };
            self.base.inbox = batch;
            if now >= next_publish || !progress {
                self.publish();
                next_publish = now + Duration::from_millis(50);
            }
            if !progress && !self.base.outbox.is_blocked() {
                let mut wait = MAX_PARK;
                if let Some(at) = next_tick {
                    wait = wait.min(at.saturating_duration_since(Instant::now()));
                }
                self.base.queue.park_consumer(wait);
            }
        }
        self.base.outbox.flush();
        for t in &mut self.tasks {
            if let Some(b) = t.instance.as_mut() {
                if catch_unwind(AssertUnwindSafe(|| b.cleanup())).is_err() {
                    warn!(component = %t.ctx.component, task = t.id, "bolt panicked in cleanup");
                }
            }
        }
        self.publish();
    }

    fn execute(&mut self, i: usize, mut tuple: Tuple) {
        let t = &mut self.tasks[i];
        if t.instance.is_none() && !Self::try_revive(&self.base, t) {
            // The task cannot run: fail its input so the spout replays it later.
            let mut out = BoltOutput {
                routing: &mut t.routing,
                outbox: &mut self.base.outbox,
                counts: &mut t.counts,
                latencies: &mut t.latencies,
                fabric: &self.base.fabric,
                epoch: self.base.control.epoch,
                implicit: None,
                errors: &mut t.errors,
                current: None,
            };
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
        let roots = tuple.ids.clone();
        let is_tick = tuple.is_tick();
        let mut out = BoltOutput {
            routing: &mut t.routing,
            outbox: &mut self.base.outbox,
            counts: &mut t.counts,
            latencies: &mut t.latencies,
            fabric: &self.base.fabric,
            epoch: self.base.control.epoch,
            implicit: None,
            errors: &mut t.errors,
            current: Some((roots.clone(), false)),
        };
        let r = catch_unwind(AssertUnwindSafe(|| instance.execute(tuple, &mut out)));
        let unsettled = out.input_unsettled();
        if !is_tick {
            t.counts.executed += 1;
        }
        if let Some(t0) = t0 {
            let d = t0.elapsed();
            TaskLatencies::record(&mut t.latencies.execute, d);
            t.counts.busy_ns += d.as_nanos() as u64 * SAMPLE_EVERY;
        }
        for e in t.errors.drain(..) {
            record_error(&t.metrics, &t.ctx.component, t.id, "bolt reported an error", &e);
        }
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                record_error(&t.metrics, &t.ctx.component, t.id, "bolt execute failed", &e.0);
                // An error with the input neither acked nor failed fails it now, rather
                // than leaving its tree to time out.
                if unsettled && !is_tick {
                    t.counts.failed += 1;
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
                    t.counts.failed += 1;
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
            let mut out = BoltOutput {
                routing: &mut t.routing,
                outbox: &mut self.base.outbox,
                counts: &mut t.counts,
                latencies: &mut t.latencies,
                fabric: &self.base.fabric,
                epoch: self.base.control.epoch,
                implicit: None,
                errors: &mut t.errors,
                current: None,
            };
            let r = catch_unwind(AssertUnwindSafe(|| instance.poll(&mut out)));
            for e in t.errors.drain(..) {
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
                Msg::Fail {
                    task: acker,
                    root: *root,
                },
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

    fn publish(&mut self) {
        self.base.publish_held();
        for t in &mut self.tasks {
            t.counts.publish(&t.metrics.counters);
            if !t.latencies.execute.is_empty() || !t.latencies.process.is_empty() {
                t.metrics.latencies.lock().merge(&t.latencies);
                t.latencies.reset();
            }
        }
        if let Some(t) = self.tasks.first() {
            let m = Arc::clone(&t.metrics);
            self.base.drain_blocked_time(&m);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Ackers

pub(crate) struct AckerTask {
    pub id: u32,
    pub ledger: Ledger,
    pub metrics: Arc<TaskMetrics>,
    pub counts: LocalCounts,
}

pub(crate) struct AckerExecutor {
    pub base: ExecutorBase,
    pub tasks: Vec<AckerTask>,
    pub timeout: Duration,
}

impl AckerExecutor {
    pub fn run(mut self) {
        let mut next_rotate = Instant::now() + self.timeout;
        let mut next_publish = Instant::now();
        while !self.base.control.stop.load(Ordering::Acquire) {
            self.base.gauges.loops.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            if now >= next_rotate {
                for t in &mut self.tasks {
                    let dropped = t.ledger.rotate();
                    if dropped > 0 {
                        warn!(
                            task = t.id,
                            dropped, "acker forgot trees untouched for two message timeouts"
                        );
                    }
                }
                next_rotate = now + self.timeout;
            }
            if self.base.outbox.is_blocked() && !self.base.outbox.flush() {
                self.base.wait_downstream(Duration::from_millis(1));
                continue;
            }
            let mut batch = std::mem::take(&mut self.base.inbox);
            let progress = if self.base.queue.pop_into(&mut batch) {
                for msg in batch.drain(..) {
                    self.handle(msg);
                }
                self.base.outbox.flush_ready();
                true
            } else {
                self.base.outbox.flush();
                false
            };
            self.base.inbox = batch;
            if now >= next_publish || !progress {
                self.base.publish_held();
                for t in &mut self.tasks {
                    t.counts.publish(&t.metrics.counters);
                    t.metrics
                        .counters
                        .pending
                        .store(t.ledger.len() as u64, Ordering::Relaxed);
                }
                next_publish = now + Duration::from_millis(50);
            }
            if !progress {
                self.base
                    .queue
                    .park_consumer(MAX_PARK.min(next_rotate.saturating_duration_since(Instant::now())));
            }
        }
    }

    fn handle(&mut self, msg: Msg) {
        let Some(i) = self.base.slot(msg.task(), self.tasks.len()) else {
            return;
        };
        let t = &mut self.tasks[i];
        t.counts.executed += 1;
        let outcome = match msg {
            Msg::AckInit {
                root,
                xor,
                spout_task,
                ..
            } => t.ledger.init(root, xor, spout_task),
            Msg::Ack { root, val, .. } => t.ledger.ack(root, val),
            Msg::Fail { root, .. } => t.ledger.fail(root),
            Msg::Reset { root, .. } => {
                if let Some(spout) = t.ledger.reset_timeout(root) {
                    self.base
                        .outbox
                        .send(spout, Msg::SpoutReset { task: spout, root });
                }
                None
            }
            _ => None,
        };
        match outcome {
            Some(Outcome::Complete { spout_task, root }) => {
                t.counts.acked += 1;
                self.base.outbox.send(
                    spout_task,
                    Msg::Done {
                        task: spout_task,
                        root,
                        failed: false,
                    },
                );
            }
            Some(Outcome::Failed { spout_task, root }) => {
                t.counts.failed += 1;
                self.base.outbox.send(
                    spout_task,
                    Msg::Done {
                        task: spout_task,
                        root,
                        failed: true,
                    },
                );
            }
            None => {}
        }
    }
}
