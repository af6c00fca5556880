//! Executors: step-able state machines, each running one or more tasks of one component.
//!
//! A `step` does a bounded amount of work and says what happened (see [`Step`]); the
//! scheduler (`crate::scheduler`) decides which thread steps which executor. Every step
//! follows the same rules: drain what the executor must always drain (acks at spouts),
//! push held output downstream, then do new work only if nothing is held. A full
//! downstream queue therefore stops a bolt from taking input and a spout from being asked
//! for tuples, which is all back pressure is, and it never blocks the thread: the step
//! returns and the thread's other executors (possibly the very consumer that must make
//! room) keep running.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_model::ComponentPlan;
use tracing::error;

use crate::component::ComponentFactory;
use crate::fabric::{Fabric, Msg, Outbox};
use crate::metrics::TaskMetrics;
use crate::queue::BatchQueue;

mod acker;
mod bolt;
mod spout;

pub(crate) use acker::{AckerExecutor, AckerTask};
pub(crate) use bolt::{BoltExecutor, BoltIo, BoltTask};
pub(crate) use spout::{SpoutExecutor, SpoutTask};

/// One latency sample every this many tuples (Storm samples 5%).
pub(super) const SAMPLE_EVERY: u64 = 16;
/// Latency histograms are merged into the shared metrics at most this often.
pub(super) const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Longest a parked executor sleeps before looking at its timers again.
pub(crate) const MAX_PARK: Duration = Duration::from_millis(10);
/// How long an executor with held output waits for a wake-up before trying again.
const BLOCKED_RECHECK: Duration = Duration::from_millis(1);
/// Messages a bolt or acker takes from its queue in one step, in whole batches: at least
/// one, then more while the step is under `STEP_MESSAGES` messages and `STEP_TIME`. One
/// batch per step let a queue fed by several producers (an acker hears from every spout
/// and bolt) receive batches faster than it was stepped: a standing backlog that added a
/// millisecond to every tree while the thread still had idle time. The time bound keeps
/// a slow component from holding a shared thread longer than one batch of it takes.
const STEP_MESSAGES: usize = 1024;
const STEP_TIME: Duration = Duration::from_micros(200);

/// What one step of an executor did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// It did some work: step it again soon.
    Busy,
    /// Nothing to do before this instant unless its queue receives input (which unparks
    /// the stepping thread).
    Idle(Instant),
    /// Output is held for a full downstream queue: nothing to do before this instant
    /// unless that queue gets room (which unparks the stepping thread). Input does not
    /// help, so it must not wake the thread, or a blocked executor would spin.
    Blocked(Instant),
}

/// An executor as the scheduler sees it.
pub(crate) trait Executor: Send {
    /// Does a bounded amount of work. Never blocks on other executors.
    fn step(&mut self) -> Step;
    /// Flushes what it can, closes its tasks and publishes its final metrics.
    fn shutdown(&mut self);
    /// The common parts (queue, plan).
    fn base(&self) -> &ExecutorBase;
}

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
    pub(super) fn slot(&self, task: u32, n: usize) -> Option<usize> {
        let i = task.checked_sub(self.first_task)? as usize;
        (i < n).then_some(i)
    }

    pub(super) fn publish_held(&self) {
        self.gauges.held.store(self.outbox.len(), Ordering::Relaxed);
    }

    pub(super) fn drain_blocked_time(&mut self, metrics: &TaskMetrics) {
        if !self.outbox.blocked.is_zero() {
            metrics
                .counters
                .backpressure_ns
                .fetch_add(self.outbox.blocked.as_nanos() as u64, Ordering::Relaxed);
            self.outbox.blocked = Duration::ZERO;
        }
        if self.outbox.unroutable > 0 {
            tracing::warn!(component = %self.plan.name, dropped = self.outbox.unroutable, "messages for tasks no process serves; their trees time out and replay");
            metrics
                .counters
                .unroutable
                .fetch_add(self.outbox.unroutable, Ordering::Relaxed);
            self.outbox.unroutable = 0;
        }
    }

    /// Within a step that has taken `taken` messages since `started`: pops the next batch
    /// into `batch` if the step may go on (see `STEP_MESSAGES`) and one is queued.
    pub(super) fn take_more(&self, taken: usize, started: Instant, batch: &mut Vec<Msg>) -> bool {
        taken < STEP_MESSAGES
            && started.elapsed() < STEP_TIME
            && !self.outbox.is_blocked()
            && self.queue.pop_into(batch)
    }

    /// Held output could not move: asks the full queues to unpark this thread when they
    /// have room, and says when to look again regardless.
    pub(super) fn wait_downstream(&self, now: Instant) -> Step {
        self.outbox.wait_for_room();
        if self.outbox.has_room() {
            Step::Busy
        } else {
            Step::Blocked(now + BLOCKED_RECHECK)
        }
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

pub(super) fn record_error(metrics: &TaskMetrics, component: &str, task: u32, what: &str, msg: &str) {
    metrics.counters.errors.fetch_add(1, Ordering::Relaxed);
    *metrics.last_error.lock() = Some(format!("{what}: {msg}"));
    error!(component, task, error = msg, "{what}");
}
