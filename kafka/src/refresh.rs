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
    /// At this offset (the group's committed offset).
    At(i64),
    /// The partition's first offset.
    Beginning,
    /// The partition's end.
    End,
}

impl Start {
    pub fn offset(self) -> Offset {
        match self {
            Start::At(o) => Offset::Offset(o),
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
        // Until an assignment went out, look again soon after a failure.
        let mut wait = spec.config.partition_refresh;
        let step = lookup(client, &spec.config.topics).and_then(|all| {
            let mine = partitions_for_task(&all, spec.task_index, spec.tasks);
            if last.as_ref() == Some(&mine) {
                return Ok(None);
            }
            let starts = starts(spec, client, &mine, &known)?;
            Ok(Some((mine, starts)))
        });
        match step {
            Ok(None) => warned = false,
            Ok(Some((mine, starts))) => {
                warned = false;
                known.extend(mine.iter().cloned());
                info!(spout = %spec.name, partitions = ?starts, "kafka spout assignment");
                if tx.send(starts).is_err() {
                    return;
                }
                last = Some(mine);
            }
            Err(e) => {
                if last.is_none() {
                    wait = wait.min(Duration::from_millis(500));
                }
                if !warned {
                    warned = true;
                    warn!(spout = %spec.name, error = %e, "looking up the topics' partitions or committed offsets failed; keeping the current assignment and retrying");
                } else {
                    debug!(spout = %spec.name, error = %e, "partition lookup failed again");
                }
            }
        }
        match stopped.recv_timeout(wait) {
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

/// Where each partition starts: at the group's committed offset when there is one and
/// the strategy takes it (UNCOMMITTED_*: always; EARLIEST and LATEST: when this topology
/// committed it, or when the partition was this task's before); otherwise at the
/// beginning or the end, per the strategy.
fn starts(
    spec: &RefreshSpec,
    client: &BaseConsumer,
    mine: &[TopicPartition],
    known: &HashSet<TopicPartition>,
) -> Result<Assignment, rdkafka::error::KafkaError> {
    let (fresh, uncommitted) = match spec.config.first_poll {
        FirstPoll::Earliest => (Start::Beginning, false),
        FirstPoll::Latest => (Start::End, false),
        FirstPoll::UncommittedEarliest => (Start::Beginning, true),
        FirstPoll::UncommittedLatest => (Start::End, true),
    };
    let mut tpl = TopicPartitionList::new();
    for (t, p) in mine {
        tpl.add_partition(t, *p);
    }
    let committed = client.committed_offsets(tpl, REQUEST_TIMEOUT)?;
    Ok(mine
        .iter()
        .map(|tp| {
            let c = committed.find_partition(&tp.0, tp.1);
            let offset = c.as_ref().and_then(|e| e.offset().to_raw()).filter(|o| *o >= 0);
            let ours = c.as_ref().is_some_and(|e| e.metadata() == spec.marker);
            let start = match offset {
                Some(o) if uncommitted || ours || known.contains(tp) => Start::At(o),
                _ => fresh,
            };
            (tp.clone(), start)
        })
        .collect())
}
