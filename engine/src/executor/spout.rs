//! Spout executors: ask spouts for tuples, track their trees, fail what times out.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{panic_message, record_error, Executor, ExecutorBase, Step, SAMPLE_EVERY};
use crate::acker::IdMap;
use crate::collector::{Routing, SpoutOutput, SpoutState};
use crate::component::{Spout, TaskContext};
use crate::fabric::{Control, Msg};
use crate::metrics::{LocalCounts, TaskLatencies, TaskMetrics};

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
    base: ExecutorBase,
    tasks: Vec<SpoutTask>,
    max_pending: Option<usize>,
    timeout: Duration,
    was_active: bool,
    next_sweep: Instant,
    next_publish: Instant,
    /// Task asked first in the next `produce`.
    rr: usize,
    /// Idle steps in a row; the wait before the next look grows with it.
    idle_streak: u32,
    /// When the last step found a task at max pending (for the skipped-time metric).
    skipped_since: Option<Instant>,
    /// When tasks may next be asked for tuples (see [`GATHER`]).
    next_produce: Instant,
}

/// How long a spout that emitted and then caught up with its source (a task's
/// `next_tuple` emitted nothing, and no task stopped with more to give: its budget spent,
/// max pending, a full downstream queue) waits before it asks again, hearing acks
/// meanwhile.
/// Asking again at once, as each ack batch woke it, kept a paced or trickling source in
/// bursts of a few tuples, each carried through every stage and thread on its own: at a
/// fifth of the peak rate that cost as much CPU as the peak, and left no moment in which
/// the thread was out of work. Storm's spout wait strategy is the precedent; this wait
/// is short against the latency targets, and a spout that does not catch up (a source
/// with more to give) never waits.
const GATHER: Duration = Duration::from_micros(100);

impl SpoutExecutor {
    pub fn new(
        base: ExecutorBase,
        tasks: Vec<SpoutTask>,
        max_pending: Option<usize>,
        timeout: Duration,
    ) -> Self {
        let now = Instant::now();
        SpoutExecutor {
            base,
            tasks,
            max_pending,
            timeout,
            was_active: false,
            next_sweep: now + sweep_period(timeout),
            next_publish: now,
            rr: 0,
            idle_streak: 0,
            skipped_since: None,
            next_produce: now,
        }
    }

    fn follow_activation(&mut self) -> bool {
        let active = self.base.control.active.load(Ordering::Acquire);
        if active == self.was_active {
            return active;
        }
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
        self.was_active = active;
        active
    }
}

impl Executor for SpoutExecutor {
    fn step(&mut self) -> Step {
        if let Some(since) = self.skipped_since.take() {
            let slept = since.elapsed().as_nanos() as u64;
            for t in &self.tasks {
                t.metrics
                    .counters
                    .skipped_max_pending_ns
                    .fetch_add(slept, Ordering::Relaxed);
            }
        }
        let active = self.follow_activation();
        let mut progress = self.drain_input();
        let now = Instant::now();
        if now >= self.next_sweep {
            self.expire(now);
            self.next_sweep = now + sweep_period(self.timeout);
        }
        self.immediate_acks();
        self.base.outbox.flush_ready();
        let mut skipped = false;
        if active && !self.base.outbox.is_blocked() && now >= self.next_produce {
            // Emits are stamped with one clock read per step, not per tuple: the base of
            // their timeout and complete latency. It is read here, after the acks and the
            // hand-over (which may wake a thread), so a stamp precedes its emit only by
            // the spout's own calls before it in this step.
            let stamp = Instant::now();
            let (p, s, caught_up) = self.produce(stamp);
            progress |= p;
            skipped = s;
            if p && caught_up {
                self.next_produce = stamp + GATHER;
            }
            self.base.outbox.flush_ready();
        }
        self.immediate_acks();
        if !progress {
            // About to wait: nothing may stay behind in the outbox.
            self.base.outbox.flush();
        }
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
            self.idle_streak = 0;
            return Step::Busy;
        }
        if self.next_produce > now && !self.base.outbox.is_blocked() {
            // Gathering: acks (which unpark the thread) are drained meanwhile.
            return Step::Idle(self.next_produce);
        }
        if self.base.outbox.is_blocked() {
            // Acks are work even while output is held, so input still wakes a spout.
            return match self.base.wait_downstream(now) {
                Step::Blocked(at) => Step::Idle(at),
                step => step,
            };
        }
        // Idle spouts and spouts at max pending wait until an ack arrives (the queue wakes
        // the thread) or a while passes: 50 µs after work, growing to 1 ms (Storm's
        // default) while idle, so paced spouts emit in small bursts. The timeout sweep
        // waits for the same wake-ups: it is due every T/4 and may run up to 1 ms late.
        self.idle_streak = self.idle_streak.saturating_add(1);
        let wait = Duration::from_micros((25u64 << self.idle_streak.min(6)).min(1000));
        if skipped {
            self.skipped_since = Some(now);
        }
        Step::Idle(now + wait)
    }

    fn shutdown(&mut self) {
        self.base.outbox.flush();
        for t in &mut self.tasks {
            if catch_unwind(AssertUnwindSafe(|| t.instance.close())).is_err() {
                warn!(component = %t.ctx.component, task = t.id, "spout panicked in close");
            }
        }
        self.publish(true);
    }

    fn base(&self) -> &ExecutorBase {
        &self.base
    }
}

impl SpoutExecutor {
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
                    Msg::Control(Control::Done { root, failed, .. }) => {
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
                    Msg::Control(Control::SpoutReset { root, .. }) => {
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
            let ids = std::mem::take(&mut self.tasks[i].state.immediate_acks);
            self.tasks[i].counts.acked += ids.len() as u64;
            self.deliver(i, ids, true);
        }
    }

    /// Calls `ack` (or `fail`) for each id on task `i`; a panic restarts the task.
    fn deliver(&mut self, i: usize, ids: Vec<crate::Value>, ack: bool) {
        let t = &mut self.tasks[i];
        let r = catch_unwind(AssertUnwindSafe(|| {
            for id in ids {
                if ack {
                    t.instance.ack(id)
                } else {
                    t.instance.fail(id)
                }
            }
        }));
        if let Err(p) = r {
            let what = if ack {
                "spout panicked in ack"
            } else {
                "spout panicked in fail"
            };
            record_error(&t.metrics, &t.ctx.component, t.id, what, &panic_message(&*p));
            self.restart(i);
        }
    }

    /// Fails trees older than the message timeout: between T and T + T/4 after emit, as
    /// stamped (the step's clock read, before the spout's calls of that step).
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
            self.deliver(i, ids, false);
        }
    }

    /// Asks tasks for tuples. Returns (progress, skipped for max pending, caught up: some
    /// task's `next_tuple` emitted nothing and no task stopped with more to give).
    fn produce(&mut self, now: Instant) -> (bool, bool, bool) {
        let n = self.tasks.len();
        // Caught up: some task emitted nothing, and none stopped with more to give
        // (its budget spent, max pending, a full downstream queue, a restart).
        let (mut dry, mut more) = (false, false);
        let mut progress = false;
        let mut skipped = false;
        let budget = 256usize;
        for k in 0..n {
            let i = (self.rr + k) % n;
            let mut calls = 0;
            while calls < budget && !self.base.outbox.is_blocked() {
                let t = &mut self.tasks[i];
                if t.finished {
                    break;
                }
                if let Some(max) = self.max_pending {
                    if t.state.pending.len() >= max {
                        skipped = true;
                        more = true;
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
                        more = true;
                        break;
                    }
                }
                if emitted == 0 {
                    dry = true;
                    let t = &mut self.tasks[i];
                    if t.instance.is_finished() && t.state.pending.is_empty() {
                        t.finished = true;
                    }
                    break;
                }
                progress = true;
            }
            more |= calls == budget || self.base.outbox.is_blocked();
        }
        self.rr = (self.rr + 1) % n.max(1);
        let all_finished = self.tasks.iter().all(|t| t.finished);
        self.base.gauges.finished.store(all_finished, Ordering::Release);
        (progress, skipped, dry && !more)
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

    fn publish(&mut self, latencies: bool) {
        self.base.publish_held();
        for t in &mut self.tasks {
            t.counts.publish(&t.metrics);
            t.metrics
                .counters
                .pending
                .store(t.state.pending.len() as u64, Ordering::Relaxed);
            if latencies && (!t.latencies.complete.is_empty() || !t.latencies.execute.is_empty()) {
                let mut shared = t.metrics.latencies.lock();
                shared.merge(&t.latencies);
                t.latencies.reset();
            }
        }
        if let Some(t) = self.tasks.first() {
            self.base.drain_blocked_time(&t.metrics);
        }
    }
}

fn sweep_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
}
