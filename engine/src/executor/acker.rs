//! Acker executors: keep the XOR ledger and tell spouts which trees completed or failed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{ExecutorBase, MAX_PARK};
use crate::acker::{Ledger, Outcome};
use crate::fabric::Msg;
use crate::metrics::{LocalCounts, TaskMetrics};

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
