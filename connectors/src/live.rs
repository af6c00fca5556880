//! What the websocket and SSE spouts share: a background thread that reads the feed into
//! a bounded channel, and the retry buffer that replays failed events.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytestring::ByteString;
use squall_engine::{ComponentError, Counters, SpoutOutput, TaskContext, Value, Values, Waker};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

pub use squall_catalog::live::{LiveConfig, ERROR_STREAM};

/// Counter names, shared by both spouts.
pub mod counters {
    /// Connection attempts after the first (each lost or failed connection causes one).
    pub const RECONNECTS: &str = "reconnects";
    /// Connection attempts that failed (refused, bad handshake, bad status).
    pub const CONNECT_FAILURES: &str = "connect_failures";
    /// Messages that were not a JSON object (sent to `errors`), or not text at all.
    pub const MALFORMED: &str = "malformed";
    /// Failed events emitted again from the retry buffer.
    pub const REPLAYED: &str = "replayed";
    /// Un-acked events pushed out of the full retry buffer (no longer replayable).
    pub const EVICTED: &str = "retry_buffer_evicted";
    /// Failed events that could not be replayed because they had been evicted.
    pub const LOST: &str = "lost";
    /// Gauge: messages read from the feed and waiting for the spout. Growing, the feed
    /// sends faster than the topology takes; at its bound, the feed is held back (TCP).
    pub const SOURCE_BACKLOG: &str = "source_backlog";
    /// Gauge: the bound of that backlog (`channel_capacity`).
    pub const SOURCE_BACKLOG_BOUND: &str = "source_backlog_bound";
}

/// The backlog gauge is set once per this many polls (it takes a lock).
const BACKLOG_EVERY: u32 = 64;

/// One message read from the feed.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub text: ByteString,
}

/// The background side's handle on the spout: a bounded channel and a wake-up.
#[derive(Clone)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Incoming>,
    idle: Arc<AtomicBool>,
    waker: Waker,
    pub counters: Counters,
    pub component: String,
}

impl Sink {
    /// Queues a message, waiting while the channel is full (which stops reading the
    /// socket: TCP back pressure). False once the spout is gone.
    pub async fn send(&self, text: ByteString) -> bool {
        if self.tx.send(Incoming { text }).await.is_err() {
            return false;
        }
        // Wake the executor only when the spout found the channel empty: one wake per
        // idle period, not one per message.
        if self.idle.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
        true
    }
}

/// The running background reader; dropping it stops the thread.
struct Background {
    _stop: oneshot::Sender<()>,
}

/// Starts `task` on a thread of its own with a single-threaded runtime.
fn spawn_reader<F>(
    name: &str,
    make: impl FnOnce() -> F + Send + 'static,
) -> Result<Background, ComponentError>
where
    F: Future<Output = ()>,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ComponentError(format!("starting the reader runtime: {e}")))?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                // Dropping the spout drops `stop`, which ends the reader wherever it waits.
                tokio::select! {
                    _ = make() => {}
                    _ = stopped => {}
                }
            });
        })
        .map_err(|e| ComponentError(format!("starting the reader thread: {e}")))?;
    Ok(Background { _stop: stop })
}

/// The spout side: drains the channel, keeps un-acked events, replays failed ones.
pub(crate) struct LiveSpout {
    config: LiveConfig,
    kind: &'static str,
    rx: Option<mpsc::Receiver<Incoming>>,
    idle: Arc<AtomicBool>,
    background: Option<Background>,
    buffer: RetryBuffer,
    counters: Counters,
    component: String,
    warned_malformed: bool,
    /// Polls since the backlog gauge was last set.
    polls: u32,
}

impl LiveSpout {
    pub fn new(kind: &'static str, config: LiveConfig) -> Self {
        LiveSpout {
            kind,
            rx: None,
            idle: Arc::new(AtomicBool::new(false)),
            background: None,
            buffer: RetryBuffer::new(config.retry_buffer, config.replay_delay),
            counters: Counters::default(),
            component: String::new(),
            warned_malformed: false,
            polls: 0,
            config,
        }
    }

    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    /// Starts the reader; `reader` gets the sink and returns the task to run.
    pub fn open<F>(
        &mut self,
        ctx: &TaskContext,
        reader: impl FnOnce(Sink) -> F + Send + 'static,
    ) -> Result<(), ComponentError>
    where
        F: Future<Output = ()>,
    {
        self.counters = ctx.counters.clone();
        self.component = ctx.component.clone();
        let (tx, rx) = mpsc::channel(self.config.channel);
        let sink = Sink {
            tx,
            idle: Arc::clone(&self.idle),
            waker: ctx.waker.clone(),
            counters: ctx.counters.clone(),
            component: ctx.component.clone(),
        };
        let name = format!("{}-{}-{}", self.kind, ctx.component, ctx.task_id);
        self.background = Some(spawn_reader(&name, move || reader(sink))?);
        self.rx = Some(rx);
        let bound = u64::try_from(self.config.channel).unwrap_or(u64::MAX);
        self.counters.set_gauge(counters::SOURCE_BACKLOG_BOUND, bound);
        self.counters.set_gauge(counters::SOURCE_BACKLOG, 0);
        Ok(())
    }

    fn next_message(&mut self) -> Option<Incoming> {
        let rx = self.rx.as_mut()?;
        if let Ok(m) = rx.try_recv() {
            return Some(m);
        }
        // Announce idleness first, then look again: a message sent in between is either
        // seen now or wakes the executor (SeqCst on both sides: a store-then-load handshake).
        self.idle.store(true, Ordering::SeqCst);
        rx.try_recv().ok()
    }

    pub fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        self.polls += 1;
        if self.polls >= BACKLOG_EVERY {
            self.polls = 0;
            let waiting = self.rx.as_ref().map_or(0, |rx| rx.len());
            self.counters.set_gauge(
                counters::SOURCE_BACKLOG,
                u64::try_from(waiting).unwrap_or(u64::MAX),
            );
        }
        if let Some((id, text)) = self.buffer.next_replay(Instant::now()) {
            self.counters.add(counters::REPLAYED, 1);
            out.emit(values_of(text), Some(Value::Int(id)))?;
            return Ok(());
        }
        let Some(msg) = self.next_message() else {
            return Ok(());
        };
        if self.config.validate {
            if let Err(error) = check_object(&msg.text) {
                self.malformed(&error);
                let mut v = Values::new();
                v.push(Value::Str(msg.text));
                v.push(Value::from(error));
                out.emit_on(ERROR_STREAM, v, None)?;
                return Ok(());
            }
        }
        if !self.config.reliable {
            out.emit(values_of(msg.text), None)?;
            return Ok(());
        }
        let (id, evicted) = self.buffer.push(msg.text.clone());
        if evicted {
            self.counters.add(counters::EVICTED, 1);
        }
        out.emit(values_of(msg.text), Some(Value::Int(id)))?;
        Ok(())
    }

    fn malformed(&mut self, error: &str) {
        self.counters.add(counters::MALFORMED, 1);
        if !self.warned_malformed {
            self.warned_malformed = true;
            warn!(component = %self.component, kind = self.kind, error, "malformed message sent to the errors stream; further ones are counted and logged at debug");
        } else {
            debug!(component = %self.component, kind = self.kind, error, "malformed message");
        }
    }

    pub fn ack(&mut self, msg_id: Value) {
        if let Some(id) = msg_id.as_i64() {
            self.buffer.ack(id);
        }
    }

    pub fn fail(&mut self, msg_id: Value) {
        if let Some(id) = msg_id.as_i64() {
            if !self.buffer.fail(id, Instant::now()) {
                self.counters.add(counters::LOST, 1);
            }
        }
    }

    pub fn close(&mut self) {
        self.background = None;
        self.rx = None;
    }
}

/// Un-acked events kept for replay, bounded; the oldest is evicted when full.
#[derive(Debug)]
pub(crate) struct RetryBuffer {
    bound: usize,
    delay: Duration,
    next_id: i64,
    /// Un-acked events by message id; ids grow, so the first entry is the oldest.
    in_flight: BTreeMap<i64, ByteString>,
    /// Failed ids and when they may be emitted again.
    replay: VecDeque<(i64, Instant)>,
}

impl RetryBuffer {
    pub fn new(bound: usize, delay: Duration) -> Self {
        RetryBuffer {
            bound: bound.max(1),
            delay,
            next_id: 1,
            in_flight: BTreeMap::new(),
            replay: VecDeque::new(),
        }
    }

    /// Keeps a new event; returns its message id and whether the oldest was evicted.
    pub fn push(&mut self, text: ByteString) -> (i64, bool) {
        let id = self.next_id;
        self.next_id += 1;
        // Full: the oldest event gives up its place; a live feed cannot wait for acks.
        let evicted = self.in_flight.len() >= self.bound && self.in_flight.pop_first().is_some();
        self.in_flight.insert(id, text);
        (id, evicted)
    }

    pub fn ack(&mut self, id: i64) {
        self.in_flight.remove(&id);
    }

    /// Schedules a replay; false when the event is no longer kept (it is lost).
    pub fn fail(&mut self, id: i64, now: Instant) -> bool {
        if self.in_flight.contains_key(&id) {
            self.replay.push_back((id, now + self.delay));
            true
        } else {
            false
        }
    }

    /// A failed event whose delay has passed, if any.
    pub fn next_replay(&mut self, now: Instant) -> Option<(i64, ByteString)> {
        while let Some(&(id, at)) = self.replay.front() {
            if at > now {
                return None;
            }
            self.replay.pop_front();
            // Acked meanwhile (a late ack after a timeout) or evicted: nothing to replay.
            if let Some(text) = self.in_flight.get(&id) {
                return Some((id, text.clone()));
            }
        }
        None
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }
}

fn values_of(text: ByteString) -> Values {
    let mut v = Values::new();
    v.push(Value::Str(text));
    v
}

/// Ok when `text` has the shape of one JSON object: `{` … `}` around optional
/// whitespace. Not a parse: that is the parser's job, and doing it twice would cost the
/// spout, the one component that cannot be parallelised, a third of its time.
pub(crate) fn check_object(text: &str) -> Result<(), String> {
    let t = text.trim();
    if t.starts_with('{') && t.ends_with('}') {
        Ok(())
    } else {
        Err("not a JSON object (does not start with { and end with })".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_buffer_replays_failed_events_after_the_delay() {
        let t0 = Instant::now();
        let mut b = RetryBuffer::new(10, Duration::from_millis(50));
        let (a, _) = b.push("a".into());
        let (c, _) = b.push("c".into());
        assert!(b.fail(a, t0));
        assert_eq!(b.next_replay(t0), None, "not before the delay");
        assert_eq!(
            b.next_replay(t0 + Duration::from_millis(50)),
            Some((a, "a".into()))
        );
        assert_eq!(
            b.next_replay(t0 + Duration::from_secs(1)),
            None,
            "once per failure"
        );
        b.ack(a);
        b.ack(c);
        assert_eq!(b.len(), 0);
        assert!(!b.fail(a, t0), "acked: nothing to replay");
    }

    #[test]
    fn retry_buffer_evicts_the_oldest_when_full() {
        let t0 = Instant::now();
        let mut b = RetryBuffer::new(2, Duration::ZERO);
        let (one, e1) = b.push("1".into());
        let (two, e2) = b.push("2".into());
        let (three, e3) = b.push("3".into());
        assert_eq!((e1, e2, e3), (false, false, true));
        assert_eq!(b.len(), 2);
        assert!(!b.fail(one, t0), "evicted: lost");
        assert!(b.fail(two, t0) && b.fail(three, t0));
        assert_eq!(b.next_replay(t0).map(|r| r.0), Some(two));
        b.ack(three);
        assert_eq!(b.next_replay(t0), None, "acked before its replay");
    }

    #[test]
    fn object_check() {
        assert!(check_object(" {\"a\": [1, 2]}\n").is_ok());
        assert!(check_object("[1]").unwrap_err().starts_with("not a JSON object"));
        assert!(check_object("{\"a\": ").is_err(), "truncated");
        assert!(check_object("{} x").is_err());
        assert!(check_object("").is_err());
    }
}
