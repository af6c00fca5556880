//! The spout's committer: a thread of its own with a client in the spout's group that
//! sends each commit synchronously and records the broker's answer. librdkafka reports
//! nothing back for an asynchronous manual commit, and a synchronous one would block
//! `next_tuple`; here the spout hands commits over and reads the outcomes when it likes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use squall_engine::Counters;
use tracing::{debug, warn};

use crate::assign::TopicPartition;
use crate::KafkaError;

/// Outcomes of commits, read by the spout.
#[derive(Default)]
pub(crate) struct Outcomes {
    /// Per partition, the highest offset the broker confirmed committed.
    pub confirmed: HashMap<TopicPartition, i64>,
    /// Partitions whose commit failed since the spout last looked.
    pub failed: Vec<TopicPartition>,
}

/// The running committer; dropping it ends the thread once queued commits are sent.
pub(crate) struct Committer {
    tx: Option<mpsc::Sender<Vec<(TopicPartition, i64)>>>,
    pub outcomes: Arc<Mutex<Outcomes>>,
}

impl Committer {
    pub fn spawn(
        client: &ClientConfig,
        marker: String,
        counters: Counters,
        name: &str,
    ) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = client.create()?;
        let (tx, rx) = mpsc::channel::<Vec<(TopicPartition, i64)>>();
        let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
        let shared = Arc::clone(&outcomes);
        let name = name.to_owned();
        std::thread::Builder::new()
            .name(format!("kafka-commit-{name}"))
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Merge what queued up meanwhile: the highest offset per partition.
                    let mut merged: BTreeMap<TopicPartition, i64> = BTreeMap::new();
                    for (tp, o) in std::iter::once(first).chain(rx.try_iter()).flatten() {
                        let e = merged.entry(tp).or_insert(o);
                        *e = (*e).max(o);
                    }
                    commit(&consumer, &merged, &marker, &shared, &counters, &name);
                }
            })
            .map_err(|e| KafkaError::Thread(e.to_string()))?;
        Ok(Committer {
            tx: Some(tx),
            outcomes,
        })
    }

    /// Queues a commit of these offsets.
    pub fn send(&self, offsets: Vec<(TopicPartition, i64)>) {
        if offsets.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            if tx.send(offsets.clone()).is_err() {
                self.outcomes
                    .lock()
                    .failed
                    .extend(offsets.into_iter().map(|(tp, _)| tp));
            }
        }
    }

    /// Waits up to `wait` until every offset in `offsets` is confirmed or failed.
    pub fn wait_for(&self, offsets: &[(TopicPartition, i64)], wait: Duration) {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            {
                let o = self.outcomes.lock();
                let settled = offsets
                    .iter()
                    .all(|(tp, off)| o.confirmed.get(tp).is_some_and(|c| c >= off) || o.failed.contains(tp));
                if settled {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn commit(
    consumer: &BaseConsumer,
    offsets: &BTreeMap<TopicPartition, i64>,
    marker: &str,
    shared: &Mutex<Outcomes>,
    counters: &Counters,
    name: &str,
) {
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in offsets {
        let mut e = tpl.add_partition(t, *p);
        let _ = e.set_offset(Offset::Offset(*o));
        e.set_metadata(marker);
    }
    counters.add(crate::spout::counters::COMMITS, 1);
    let result = consumer.commit(&tpl, CommitMode::Sync);
    let mut s = shared.lock();
    match result {
        Ok(()) => {
            for (tp, o) in offsets {
                let c = s.confirmed.entry(tp.clone()).or_insert(*o);
                *c = (*c).max(*o);
            }
            debug!(spout = name, ?offsets, "offsets committed");
        }
        Err(e) => {
            counters.add(crate::spout::counters::COMMIT_FAILURES, 1);
            warn!(spout = name, error = %e, "offset commit failed; it is sent again at the next commit");
            s.failed.extend(offsets.keys().cloned());
        }
    }
}
