//! The spout's partition refresher: a thread of its own that looks up the topics'
//! partitions every `partition_refresh_period_ms` (metadata requests block, `next_tuple`
//! must not), computes this task's share, and hands changes to the spout with where each
//! newly assigned partition starts.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use squall_catalog::kafka::{FirstPoll, KafkaSpoutConfig};
use tracing::{debug, info, warn};

use crate::assign::{partitions_for_task, TopicPartition};
use crate::KafkaError;

/// Longest a metadata or committed-offsets request of the refresher may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a newly assigned partition starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// The group's committed offset, or librdkafka's `auto.offset.reset` without one.
    Committed,
    /// The partition's first offset.
    Beginning,
    /// The partition's end.
    End,
}

impl Start {
    pub fn offset(self) -> Offset {
        match self {
            Start::Committed => Offset::Stored,
            Start::Beginning => Offset::Beginning,
            Start::End => Offset::End,
        }
    }
}

/// This task's partitions, each with where it starts if it is new to the task.
pub(crate) type Assignment = Vec<(TopicPartition, Start)>;

/// The running refresher; dropping it stops the thread (at its next wake-up).
pub(crate) struct Refresher {
    pub rx: mpsc::Receiver<Assignment>,
    _stop: mpsc::Sender<()>,
}

/// What the refresher needs to know.
pub(crate) struct RefreshSpec {
    pub config: KafkaSpoutConfig,
    pub client: ClientConfig,
    /// Commit metadata this topology writes: an offset committed with it is this
    /// topology's own (EARLIEST and LATEST then resume from it, as Storm's do).
    pub marker: String,
    pub task_index: usize,
    pub tasks: usize,
    pub name: String,
}

pub(crate) fn spawn(spec: RefreshSpec) -> Result<Refresher, KafkaError> {
    let client: BaseConsumer = spec.client.create()?;
    let (tx, rx) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("kafka-refresh-{}", spec.name))
        .spawn(move || run(&spec, &client, &tx, &stopped))
        .map_err(|e| KafkaError::Thread(e.to_string()))?;
    Ok(Refresher { rx, _stop: stop })
}

fn run(
    spec: &RefreshSpec,
    client: &BaseConsumer,
    tx: &mpsc::Sender<Assignment>,
    stopped: &mpsc::Receiver<()>,
) {
    let mut last: Option<Vec<TopicPartition>> = None;
    let mut known: HashSet<TopicPartition> = HashSet::new();
    let mut warned = false;
    loop {
        match lookup(client, &spec.config.topics) {
            Ok(all) => {
                warned = false;
                let mine = partitions_for_task(&all, spec.task_index, spec.tasks);
                if last.as_ref() != Some(&mine) {
                    let starts = starts(spec, client, &mine, &known);
                    known.extend(mine.iter().cloned());
                    info!(spout = %spec.name, partitions = ?mine, "kafka spout assignment");
                    if tx.send(starts).is_err() {
                        return;
                    }
                    last = Some(mine);
                }
            }
            Err(e) if !warned => {
                warned = true;
                warn!(spout = %spec.name, error = %e, "looking up the topics' partitions failed; keeping the current assignment and retrying");
            }
            Err(e) => debug!(spout = %spec.name, error = %e, "partition lookup failed again"),
        }
        match stopped.recv_timeout(spec.config.partition_refresh) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Every partition of `topics`; a topic that does not exist has none.
fn lookup(
    client: &BaseConsumer,
    topics: &[String],
) -> Result<Vec<TopicPartition>, rdkafka::error::KafkaError> {
    let mut out = Vec::new();
    for topic in topics {
        let md = client.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        for t in md.topics() {
            if t.error().is_some() {
                debug!(topic = t.name(), error = ?t.error(), "topic not available");
                continue;
            }
            out.extend(t.partitions().iter().map(|p| (t.name().to_owned(), p.id())));
        }
    }
    Ok(out)
}

/// Where each partition starts: the strategy decides for partitions new to this spout
/// instance; a partition seen before resumes from the committed offset.
fn starts(
    spec: &RefreshSpec,
    client: &BaseConsumer,
    mine: &[TopicPartition],
    known: &HashSet<TopicPartition>,
) -> Assignment {
    let fresh = match spec.config.first_poll {
        FirstPoll::Earliest => Start::Beginning,
        FirstPoll::Latest => Start::End,
        FirstPoll::UncommittedEarliest | FirstPoll::UncommittedLatest => Start::Committed,
    };
    let new: Vec<&TopicPartition> = mine.iter().filter(|tp| !known.contains(*tp)).collect();
    let mut ours: HashSet<TopicPartition> = HashSet::new();
    if fresh != Start::Committed && !new.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &new {
            tpl.add_partition(t, *p);
        }
        match client.committed_offsets(tpl, REQUEST_TIMEOUT) {
            Ok(c) => {
                for e in c.elements() {
                    if e.offset().to_raw().is_some_and(|o| o >= 0) && e.metadata() == spec.marker {
                        ours.insert((e.topic().to_owned(), e.partition()));
                    }
                }
            }
            Err(e) => {
                warn!(spout = %spec.name, error = %e, "reading committed offsets failed; starting new partitions per the first-poll strategy")
            }
        }
    }
    mine.iter()
        .map(|tp| {
            let start = if known.contains(tp) || ours.contains(tp) {
                Start::Committed
            } else {
                fresh
            };
            (tp.clone(), start)
        })
        .collect()
}
