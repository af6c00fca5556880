//! Executors: one thread each, running one or more tasks of one component.
//!
//! Every loop follows the same rules: drain what the executor must always drain (acks at
//! spouts), push held output downstream, then do new work only if nothing is held, and
//! park when there is nothing to do. A full downstream queue therefore stops a bolt from
//! taking input and a spout from being asked for tuples, which is all back pressure is.

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
/// Longest a parked executor sleeps before looking at its timers again.
pub(super) const MAX_PARK: Duration = Duration::from_millis(10);

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

    /// Waits until held output can move, or `timeout`.
    pub(super) fn wait_downstream(&self, timeout: Duration) {
        self.outbox.wait_for_room();
        if !self.outbox.has_room() {
            std::thread::park_timeout(timeout);
        }
    }
}

pub(super) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
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
