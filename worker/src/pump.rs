//! The outbound pump: one thread drains the engine's outbound queues (one per remote
//! executor), encodes their messages into frames per peer, and hands the frames to the
//! peers' link tasks.
//!
//! Frames are sealed at `FRAME_BYTES`, when the oldest message in them is older than
//! `MAX_HOLD`, or as soon as the queues run dry, so light traffic goes out at once and
//! heavy traffic in large frames. A peer whose link cannot take a frame keeps it here and
//! its queues are not drained: they fill, and the executors sending to them wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use squall_engine::fabric::Msg;
use squall_engine::queue::BatchQueue;
use squall_engine::WireSchemas;
use tokio::sync::mpsc;
use tracing::warn;

use crate::codec::Frame;
use crate::stats::{add, Drops, LinkStats};

/// Seal a frame at this many bytes.
pub const FRAME_BYTES: usize = 64 * 1024;
/// Never hold a message longer than this before sealing its frame.
pub const MAX_HOLD: Duration = Duration::from_millis(1);

/// Where a peer's frames go.
#[derive(Clone)]
pub struct PeerPort {
    /// Peer id.
    pub id: String,
    /// Its link task.
    pub tx: mpsc::Sender<Frame>,
    /// Its counters.
    pub stats: Arc<LinkStats>,
}

/// Which peer serves each outbound queue now; replaced whole when the assignment changes.
#[derive(Clone, Default)]
pub struct Routes {
    /// By outbound queue index: index into `peers`, or `None` when no peer runs it.
    pub by_queue: Vec<Option<usize>>,
    /// The peers.
    pub peers: Vec<PeerPort>,
}

/// Shared between the pump and the worker that updates routes.
#[derive(Default)]
pub struct RouteTable {
    routes: RwLock<Arc<Routes>>,
    version: AtomicU64,
}

impl RouteTable {
    /// Replaces the routes.
    pub fn set(&self, routes: Routes) {
        *self.routes.write() = Arc::new(routes);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn get(&self) -> (u64, Arc<Routes>) {
        let v = self.version.load(Ordering::Acquire);
        (v, Arc::clone(&self.routes.read()))
    }
}

/// Capacity of a frame buffer: a frame is sealed once past `FRAME_BYTES`, so this leaves
/// room for the message that crosses the mark.
const BUFFER_BYTES: usize = FRAME_BYTES + 4096;
/// Frames handed over whose buffers may come back, per peer. More than a link holds in
/// flight (its channel, its session and HTTP/2's buffers), so the oldest has usually been
/// written out when a buffer is wanted; past this many the oldest is forgotten.
const SENT_KEPT: usize = 24;
/// Buffers kept for reuse per peer once the link has written their frames.
const SPARE_KEPT: usize = 2;

/// Frame buffers, reused once the link has written their frames out. A fresh 68 KiB
/// allocation per frame came back from the allocator as untouched pages: the page faults
/// of filling them cost the pump a quarter of its time.
#[derive(Default)]
struct Buffers {
    /// Bodies of frames handed over, oldest first (one reference each).
    sent: VecDeque<Bytes>,
    spare: Vec<BytesMut>,
}

impl Buffers {
    /// Remembers a frame's body so its buffer can come back once written. One that grew
    /// for an oversized message is not reused, so it is not kept either.
    fn sent(&mut self, body: &Bytes, capacity: usize) {
        self.reclaim();
        if capacity > 2 * BUFFER_BYTES {
            return;
        }
        if self.sent.len() >= SENT_KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back(body.clone());
    }

    /// Moves the buffers whose frames have been written out (only this handle is left)
    /// to the spares, oldest first, and forgets those beyond the spares' bound.
    fn reclaim(&mut self) {
        while let Some(oldest) = self.sent.pop_front() {
            match oldest.try_into_mut() {
                Ok(b) if self.spare.len() < SPARE_KEPT => self.spare.push(b),
                Ok(_) => {}
                Err(still_sent) => {
                    self.sent.push_front(still_sent);
                    break;
                }
            }
        }
    }

    /// An empty buffer of `BUFFER_BYTES` or more: a reclaimed one if there is one, else
    /// a new one.
    fn take(&mut self) -> BytesMut {
        self.reclaim();
        match self.spare.pop() {
            Some(mut b) => {
                b.clear();
                b.reserve(BUFFER_BYTES);
                b
            }
            None => BytesMut::with_capacity(BUFFER_BYTES),
        }
    }

    /// Lets go of every kept buffer: an idle peer holds no memory for reuse.
    fn release(&mut self) {
        self.sent.clear();
        self.spare.clear();
    }
}

struct Pending {
    body: BytesMut,
    messages: u32,
    since: Option<Instant>,
    held: Option<Frame>,
    buffers: Buffers,
}

impl Pending {
    fn new() -> Self {
        Pending {
            body: BytesMut::with_capacity(BUFFER_BYTES),
            messages: 0,
            since: None,
            held: None,
            buffers: Buffers::default(),
        }
    }

    /// Messages encoded and not yet handed to the link.
    fn unsent(&self) -> u64 {
        u64::from(self.messages) + self.held.as_ref().map_or(0, |f| u64::from(f.messages))
    }

    fn seal(&mut self) {
        if self.messages == 0 || self.held.is_some() {
            return;
        }
        // Swapped out whole rather than split off: a split-off frame shares its buffer
        // with the rest, which would then never be the frame's alone to come back.
        let next = self.buffers.take();
        let full = std::mem::replace(&mut self.body, next);
        let capacity = full.capacity();
        let body = full.freeze();
        self.buffers.sent(&body, capacity);
        self.held = Some(Frame::batch(body, self.messages));
        self.messages = 0;
        self.since = None;
    }

    /// Tries to hand the sealed frame over; true when nothing is held afterwards.
    fn offer(&mut self, port: &PeerPort) -> bool {
        let Some(frame) = self.held.take() else {
            return true;
        };
        match port.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(f)) => {
                self.held = Some(f);
                false
            }
            Err(mpsc::error::TrySendError::Closed(f)) => {
                add(&port.stats.dropped, u64::from(f.messages));
                true
            }
        }
    }
}

/// Idle rounds spent yielding before the pump parks: work arriving within microseconds
/// is picked up without a futex wake-up.
const SPIN_ROUNDS: u32 = 50;
/// Longest park while idle, so `stop` and route changes are seen without a wake-up.
const MAX_IDLE: Duration = Duration::from_millis(5);
/// Parks without work (about a second at `MAX_IDLE` each) after which the frame buffers
/// kept for reuse are let go, so an idle link holds none.
const RELEASE_AFTER: u32 = 200;

/// Parks until a producer pushes to any of `queues` or `timeout` passes. Every queue is
/// told first that its consumer sleeps, then all are checked: a push in between is either
/// seen by the check or unparks this thread.
fn park_on(queues: &[Arc<BatchQueue<Msg>>], timeout: Duration) {
    for q in queues {
        q.announce_sleep(true);
    }
    if queues.iter().all(|q| q.is_empty()) {
        std::thread::park_timeout(timeout);
    }
    for q in queues {
        q.announce_sleep(false);
    }
}

/// Runs until `stop`; then tries for at most `drain` to send what is left.
pub fn run(
    queues: Vec<Arc<BatchQueue<Msg>>>,
    table: Arc<RouteTable>,
    schemas: Arc<WireSchemas>,
    stop: Arc<AtomicBool>,
    drain: Duration,
    drops: Arc<Drops>,
) {
    for q in &queues {
        q.set_consumer(std::thread::current());
    }
    let (mut version, mut routes) = table.get();
    let mut pending: Vec<Pending> = routes.peers.iter().map(|_| Pending::new()).collect();
    let mut buf: Vec<Msg> = Vec::new();
    let mut encoder = crate::wire::MsgEncoder::new(&schemas);
    let mut idle_rounds = 0u32;
    let mut unroutable = 0u64;
    let mut stop_at: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            let deadline = *stop_at.get_or_insert_with(|| Instant::now() + drain);
            let empty = queues.iter().all(|q| q.is_empty())
                && pending.iter().all(|p| p.held.is_none() && p.messages == 0);
            if empty || Instant::now() >= deadline {
                break;
            }
        }
        let (v, _) = (table.version.load(Ordering::Acquire), ());
        if v != version {
            // New routes: what is encoded for a peer still goes to that peer id if it stays.
            let (nv, nr) = table.get();
            let mut next: Vec<Pending> = nr.peers.iter().map(|_| Pending::new()).collect();
            for (i, old) in pending.drain(..).enumerate() {
                let id = &routes.peers[i].id;
                if let Some(j) = nr.peers.iter().position(|p| &p.id == id) {
                    next[j] = old;
                } else {
                    let n = old.unsent();
                    if n > 0 {
                        warn!(peer = %id, messages = n, "dropped messages encoded for a peer that left");
                        add(&drops.peer_removed, n);
                    }
                }
            }
            pending = next;
            version = nv;
            routes = nr;
        }
        let mut moved = false;
        for (qi, q) in queues.iter().enumerate() {
            let Some(Some(pi)) = routes.by_queue.get(qi).copied() else {
                // No peer runs these tasks now: drop (their trees time out and replay).
                if q.pop_into(&mut buf) {
                    unroutable += buf.len() as u64;
                    buf.clear();
                    moved = true;
                }
                continue;
            };
            let p = &mut pending[pi];
            if p.held.is_some() {
                continue;
            }
            if !q.pop_into(&mut buf) {
                continue;
            }
            moved = true;
            for m in buf.drain(..) {
                if encoder.encode(&m, &mut p.body) {
                    p.messages += 1;
                } else {
                    unroutable += 1;
                }
            }
            p.since.get_or_insert_with(Instant::now);
            if p.body.len() >= FRAME_BYTES {
                p.seal();
                p.offer(&routes.peers[pi]);
            }
        }
        let mut waiting = false;
        for (pi, p) in pending.iter_mut().enumerate() {
            if p.messages > 0 && (!moved || p.since.is_some_and(|s| s.elapsed() >= MAX_HOLD)) {
                p.seal();
            }
            if !p.offer(&routes.peers[pi]) {
                waiting = true;
            }
        }
        if unroutable > 0 {
            warn!(messages = unroutable, "dropped messages with no route to a peer");
            add(&drops.no_route, unroutable);
            unroutable = 0;
        }
        if moved {
            idle_rounds = 0;
        } else if waiting {
            // A link is full: its frames move when the link task drains, which does not
            // unpark this thread, so look again shortly.
            std::thread::park_timeout(Duration::from_micros(100));
        } else {
            idle_rounds += 1;
            if idle_rounds > SPIN_ROUNDS {
                if idle_rounds == SPIN_ROUNDS + RELEASE_AFTER {
                    pending.iter_mut().for_each(|p| p.buffers.release());
                }
                park_on(&queues, MAX_IDLE);
            } else {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use squall_engine::{MessageIds, Packet, Schema, Value, Values};

    use super::*;
    use crate::stats::get;

    const YAML: &str = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: p}\nspec:\n  ackers: 0\n  spouts: [{name: s, component: const}]\n  bolts: [{name: b, component: \"null\", inputs: [{from: s}]}]\n";

    fn tuples(n: usize) -> Vec<Msg> {
        let schema = Schema::intern("s", "default", &["payload".to_owned()]);
        (0..n)
            .map(|_| {
                let mut v = Values::new();
                v.push(Value::from("x"));
                Msg::Tuple(Packet::new(2, v, schema, 1, MessageIds::new()))
            })
            .collect()
    }

    /// A frame's buffer comes back only once the link has let go of it; one grown for an
    /// oversized message is not kept; and an idle pump keeps none.
    #[test]
    fn frame_buffers_come_back_only_once_written() {
        use bytes::BufMut as _;
        let mut b = Buffers::default();
        let seal = |b: &mut Buffers, mut buf: BytesMut| {
            buf.put_slice(&[7; 100]);
            let capacity = buf.capacity();
            let body = buf.freeze();
            b.sent(&body, capacity);
            body
        };
        let first = b.take();
        let at = first.as_ptr();
        let in_flight = seal(&mut b, first);
        assert_ne!(b.take().as_ptr(), at, "the link still holds the first frame");
        drop(in_flight);
        let again = b.take();
        assert_eq!(again.as_ptr(), at, "a written frame's buffer is reused");
        assert!(again.is_empty() && again.capacity() >= BUFFER_BYTES);

        let big = seal(&mut b, BytesMut::with_capacity(3 * BUFFER_BYTES));
        assert!(b.sent.is_empty(), "an oversized buffer is not kept");
        drop(big);

        drop(seal(&mut b, again));
        b.release();
        assert!(b.sent.is_empty() && b.spare.is_empty());
    }

    fn wait_for(what: &str, ok: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Messages that cannot reach a peer are counted by reason: a queue no peer serves,
    /// and frames held for a peer that then leaves the routes.
    #[test]
    fn every_dropped_message_is_counted_by_reason() {
        let m = squall_model::TopologyManifest::from_yaml(YAML, "test").unwrap();
        let plan = squall_model::validate(&m, &squall_components::Builtins).unwrap();
        let schemas = Arc::new(WireSchemas::new(&plan));
        let queue = Arc::new(BatchQueue::<Msg>::new(1024));
        // A peer whose link takes one frame and never reads it: the next frames are held.
        let (tx, _rx) = mpsc::channel(1);
        let port = PeerPort {
            id: "w1".into(),
            tx,
            stats: Arc::new(LinkStats::default()),
        };
        let table = Arc::new(RouteTable::default());
        table.set(Routes {
            by_queue: vec![Some(0)],
            peers: vec![port],
        });
        let (stop, drops) = (Arc::new(AtomicBool::new(false)), Arc::new(Drops::default()));
        let pump = {
            let (q, t, s, st, d) = (
                vec![Arc::clone(&queue)],
                Arc::clone(&table),
                Arc::clone(&schemas),
                Arc::clone(&stop),
                Arc::clone(&drops),
            );
            std::thread::spawn(move || run(q, t, s, st, Duration::ZERO, d))
        };
        // Two frames' worth: the first fills the channel, the second is held.
        for _ in 0..2 {
            let mut batch = tuples(200);
            while !queue.try_push(&mut batch) {
                std::thread::sleep(Duration::from_millis(1));
            }
            wait_for("the pump to take the batch", || queue.is_empty());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(get(&drops.peer_removed), 0);
        table.set(Routes {
            by_queue: vec![None],
            peers: Vec::new(),
        });
        wait_for("the held frame to be counted", || get(&drops.peer_removed) == 200);
        let mut batch = tuples(50);
        assert!(queue.try_push(&mut batch));
        wait_for("the unroutable batch to be counted", || {
            get(&drops.no_route) == 50
        });
        stop.store(true, Ordering::Relaxed);
        pump.thread().unpark();
        pump.join().unwrap();
        assert_eq!(get(&drops.peer_removed), 200, "only the held frame was lost");
    }
}
