//! Acker executors: keep the XOR ledger and tell spouts which trees completed or failed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{Executor, ExecutorBase, Step, MAX_PARK};
use crate::acker::{Ledger, Outcome};
use crate::fabric::{Control, Msg};
use crate::metrics::{LocalCounts, TaskMetrics};

pub(crate) struct AckerTask {
    pub id: u32,
    pub ledger: Ledger,
    pub metrics: Arc<TaskMetrics>,
    pub counts: LocalCounts,
}

pub(crate) struct AckerExecutor {
    base: ExecutorBase,
    tasks: Vec<AckerTask>,
    timeout: Duration,
    next_rotate: Instant,
    next_publish: Instant,
}

impl AckerExecutor {
    pub fn new(base: ExecutorBase, tasks: Vec<AckerTask>, timeout: Duration) -> Self {
        let now = Instant::now();
        AckerExecutor {
            base,
            tasks,
            timeout,
            next_rotate: now + timeout,
            next_publish: now,
        }
    }

    fn publish(&mut self) {
        self.base.publish_held();
        for t in &mut self.tasks {
            t.counts.publish(&t.metrics);
            t.metrics
                .counters
                .pending
                .store(t.ledger.len() as u64, Ordering::Relaxed);
        }
    }
}

impl Executor for AckerExecutor {
    fn step(&mut self) -> Step {
        let now = Instant::now();
        if now >= self.next_rotate {
            for t in &mut self.tasks {
                let dropped = t.ledger.rotate();
                if dropped > 0 {
                    warn!(
                        task = t.id,
                        dropped, "acker forgot trees untouched for two message timeouts"
                    );
                }
            }
            self.next_rotate = now + self.timeout;
        }
        if self.base.outbox.is_blocked() && !self.base.outbox.flush() {
            return self.base.wait_downstream(now);
        }
        let mut batch = std::mem::take(&mut self.base.inbox);
        let progress = if self.base.queue.pop_into(&mut batch) {
            let mut taken = 0;
            loop {
                taken += batch.len();
                for msg in batch.drain(..) {
                    self.handle(msg);
                }
                self.base.outbox.flush_ready();
                if !self.base.take_more(taken, now, &mut batch) {
                    break;
                }
            }
            true
        } else {
            self.base.outbox.flush();
            false
        };
        self.base.inbox = batch;
        if now >= self.next_publish || !progress {
            self.publish();
            self.next_publish = now + Duration::from_millis(50);
        }
        if progress {
            Step::Busy
        } else if self.base.outbox.is_blocked() {
            self.base.wait_downstream(now)
        } else {
            Step::Idle((now + MAX_PARK).min(self.next_rotate))
        }
    }

    fn shutdown(&mut self) {
        self.base.outbox.flush();
        self.publish();
    }

    fn base(&self) -> &ExecutorBase {
        &self.base
    }
}

impl AckerExecutor {
    fn handle(&mut self, msg: Msg) {
        let Some(i) = self.base.slot(msg.task(), self.tasks.len()) else {
            return;
        };
        let t = &mut self.tasks[i];
        t.counts.executed += 1;
        let Msg::Control(control) = msg else {
            return;
        };
        let outcome = match control {
            Control::AckInit {
                root,
                xor,
                spout_task,
                ..
            } => t.ledger.init(root, xor, spout_task),
            Control::Ack { root, val, .. } => t.ledger.ack(root, val),
            Control::Fail { root, .. } => t.ledger.fail(root),
            Control::Reset { root, .. } => {
                if let Some(spout) = t.ledger.reset_timeout(root) {
                    self.base
                        .outbox
                        .send(spout, Msg::Control(Control::SpoutReset { task: spout, root }));
                }
                None
            }
            Control::Done { .. } | Control::SpoutReset { .. } => None,
        };
        match outcome {
            Some(Outcome::Complete { spout_task, root }) => {
                t.counts.acked += 1;
                self.base.outbox.send(
                    spout_task,
                    Msg::Control(Control::Done {
                        task: spout_task,
                        root,
                        failed: false,
                    }),
                );
            }
            Some(Outcome::Failed { spout_task, root }) => {
                t.counts.failed += 1;
                self.base.outbox.send(
                    spout_task,
                    Msg::Control(Control::Done {
                        task: spout_task,
                        root,
                        failed: true,
                    }),
                );
            }
            None => {}
        }
    }
}
