//! The fabric: every executor's receive queue, which queue serves which task, and the
//! per-executor outbox that batches messages per destination queue.
//!
//! The engine knows nothing about the network: a remote task is served by a queue like
//! any other, drained by whatever transport the host process wires to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::queue::BatchQueue;
use crate::tuple::Packet;

/// Everything that travels between tasks.
///
/// Kept at most 128 bytes (checked below): the engine moves every message at least twice
/// per hop (into a batch, out of it), and on x86-64 a move of up to 128 bytes is a few
/// inline loads and stores where a larger one is a call to `memmove`. Acking traffic is
/// its own small enum so that the tuple's layout alone sets the size.
#[derive(Debug)]
pub enum Msg {
    /// A tuple for the task it names.
    Tuple(Packet),
    /// Acking traffic, for an acker or a spout.
    Control(Control),
}

const _: () = assert!(
    std::mem::size_of::<Msg>() <= 128,
    "Msg grew past 128 bytes: its moves become memmove calls"
);

/// Acking traffic between spouts, bolts and ackers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// To an acker: a spout emitted `root` with edges XORing to `xor`.
    AckInit {
        /// Acker task.
        task: u32,
        /// Root id.
        root: u64,
        /// XOR of the edges.
        xor: u64,
        /// Emitting spout task.
        spout_task: u32,
    },
    /// To an acker: a tuple of `root` was acked.
    Ack {
        /// Acker task.
        task: u32,
        /// Root id.
        root: u64,
        /// Its edge XOR its children's edges.
        val: u64,
    },
    /// To an acker: a tuple of `root` failed.
    Fail {
        /// Acker task.
        task: u32,
        /// Root id.
        root: u64,
    },
    /// To an acker: restart `root`'s timeout.
    Reset {
        /// Acker task.
        task: u32,
        /// Root id.
        root: u64,
    },
    /// To a spout: the tree of `root` completed or failed.
    Done {
        /// Spout task.
        task: u32,
        /// Root id.
        root: u64,
        /// Whether it failed.
        failed: bool,
    },
    /// To a spout: restart `root`'s timeout.
    SpoutReset {
        /// Spout task.
        task: u32,
        /// Root id.
        root: u64,
    },
}

impl Control {
    /// The destination task.
    pub fn task(&self) -> u32 {
        match self {
            Control::AckInit { task, .. }
            | Control::Ack { task, .. }
            | Control::Fail { task, .. }
            | Control::Reset { task, .. }
            | Control::Done { task, .. }
            | Control::SpoutReset { task, .. } => *task,
        }
    }
}

impl Msg {
    /// The destination task.
    #[inline]
    pub fn task(&self) -> u32 {
        match self {
            Msg::Tuple(p) => p.task(),
            Msg::Control(c) => c.task(),
        }
    }
}

/// No queue serves this task.
pub const NO_QUEUE: u32 = u32::MAX;

/// The queues of a topology and the task → queue map.
pub struct Fabric {
    /// Receive queues, by index.
    pub queues: Vec<Arc<BatchQueue<Msg>>>,
    /// Task id → queue index (`NO_QUEUE` when none).
    pub task_queue: Vec<u32>,
    /// Acker task ids; empty when acking is off.
    pub ackers: Vec<u32>,
}

impl Fabric {
    /// The acker that owns `root` (the same on every worker).
    #[inline]
    pub fn acker_for(&self, root: u64) -> u32 {
        // Callers only ask when ackers exist.
        let n = self.ackers.len().max(1) as u64;
        self.ackers.get((root % n) as usize).copied().unwrap_or(0)
    }

    /// Whether some queue serves `task`.
    pub fn routes(&self, task: u32) -> bool {
        self.queue_of(task).is_some()
    }

    #[inline]
    fn queue_of(&self, task: u32) -> Option<usize> {
        match self.task_queue.get(task as usize) {
            Some(&q) if q != NO_QUEUE => Some(q as usize),
            _ => None,
        }
    }
}

/// `Outbox::slot_of` entry for a queue this outbox has not sent to yet.
const NO_SLOT: u32 = u32::MAX;

/// The buffer for one destination queue.
struct Slot {
    queue: usize,
    buf: Vec<Msg>,
}

/// Per-executor output buffers, one per destination queue actually sent to.
///
/// Nothing is allocated per possible destination: a topology of n executors would
/// otherwise cost every executor n buffers. A queue gets a slot (and its buffer its
/// storage) on the first message for it; after that `BatchQueue::try_push` swaps a
/// recycled vector into the slot, so the hot path neither allocates nor looks anything
/// up beyond two vector indexings.
pub struct Outbox {
    fabric: Arc<Fabric>,
    /// `slot_of[q - base]` is queue `q`'s index in `slots` (or `NO_SLOT`). It spans only
    /// the queues sent to so far, so it stays small for an executor with few consumers.
    slot_of: Vec<u32>,
    base: usize,
    slots: Vec<Slot>,
    /// Slots whose buffer is not empty.
    dirty: Vec<usize>,
    batch: usize,
    blocked_since: Option<Instant>,
    /// Whether the last push attempt to some queue was refused for lack of room.
    refused: bool,
    /// Messages for tasks no queue serves (counted, then dropped; the tree times out).
    pub unroutable: u64,
    /// Total time spent blocked, drained by the executor into its metrics.
    pub blocked: Duration,
    /// Root of the last `Ack` sent (see [`Outbox::send_ack`]).
    last_ack: u64,
}

impl Outbox {
    /// An outbox over `fabric` flushing a queue's buffer at `batch` messages. `batch` is
    /// only a threshold: no buffer is allocated until a message is sent.
    pub fn new(fabric: Arc<Fabric>, batch: usize) -> Self {
        Outbox {
            fabric,
            slot_of: Vec::new(),
            base: 0,
            slots: Vec::new(),
            dirty: Vec::new(),
            batch: batch.max(1),
            blocked_since: None,
            refused: false,
            unroutable: 0,
            blocked: Duration::ZERO,
            last_ack: 0,
        }
    }

    /// Queues a message for its task.
    #[inline]
    pub fn send(&mut self, task: u32, msg: Msg) {
        let Some(q) = self.fabric.queue_of(task) else {
            self.unroutable += 1;
            return;
        };
        let s = self.slot(q);
        self.push(q, s, msg);
    }

    /// Queues an acker's `Ack` for `root`, folded into the last message buffered for that
    /// acker when that is an `Ack` of the same root. The acker XORs every value into the
    /// root's entry, so one message carrying `a ^ b` does what `a` and `b` did; a bolt
    /// that handles several tuples of one tree in a row (the words of a sentence) then
    /// sends one message instead of one per tuple. The acker's `executed` count is of
    /// the messages it received, so it is lower than Storm's `__acker` count there.
    #[inline]
    pub fn send_ack(&mut self, acker: u32, root: u64, val: u64) {
        let Some(q) = self.fabric.queue_of(acker) else {
            self.unroutable += 1;
            return;
        };
        let s = self.slot(q);
        // Most acks are for another root than the last: one compare settles those.
        if std::mem::replace(&mut self.last_ack, root) == root {
            if let Some(Msg::Control(Control::Ack {
                task,
                root: r,
                val: v,
            })) = self.slots[s].buf.last_mut()
            {
                if *task == acker && *r == root {
                    *v ^= val;
                    return;
                }
            }
        }
        self.push(
            q,
            s,
            Msg::Control(Control::Ack {
                task: acker,
                root,
                val,
            }),
        );
    }

    /// Appends to slot `s` (queue `q`), handing the buffer over once it is a full batch.
    #[inline]
    fn push(&mut self, q: usize, s: usize, msg: Msg) {
        let buf = &mut self.slots[s].buf;
        if buf.is_empty() {
            self.dirty.push(s);
        }
        buf.push(msg);
        if buf.len() >= self.batch {
            if self.fabric.queues[q].try_push(buf) {
                self.dirty.retain(|d| *d != s);
            } else {
                self.refused = true;
            }
        }
    }

    /// The slot of queue `q`, created on first use.
    #[inline]
    fn slot(&mut self, q: usize) -> usize {
        match self.slot_of.get(q.wrapping_sub(self.base)) {
            Some(&s) if s != NO_SLOT => s as usize,
            _ => self.add_slot(q),
        }
    }

    #[cold]
    fn add_slot(&mut self, q: usize) -> usize {
        let len = self.slot_of.len();
        if len == 0 {
            self.base = q;
            self.slot_of.push(NO_SLOT);
        } else if q < self.base {
            // Grow at least twofold so that queues met in descending order cost
            // amortized O(1) each.
            let base = q.min(self.base.saturating_sub(len));
            self.slot_of
                .splice(0..0, std::iter::repeat_n(NO_SLOT, self.base - base));
            self.base = base;
        } else if q >= self.base + len {
            let queues = self.fabric.queues.len().max(q + 1);
            let want = (q - self.base + 1).max(2 * len).min(queues - self.base);
            self.slot_of.resize(want, NO_SLOT);
        }
        let s = self.slots.len();
        self.slots.push(Slot {
            queue: q,
            buf: Vec::new(),
        });
        // Slots are at most one per queue, and queue indices fit in u32 (`task_queue`).
        self.slot_of[q - self.base] = s as u32;
        s
    }

    /// Hands every buffer to its queue. Returns true when nothing is left behind.
    /// Executors call this before they park, so nothing waits on an idle executor.
    pub fn flush(&mut self) -> bool {
        self.push_out(true)
    }

    /// Hands over full buffers, and any buffer whose queue is empty (its consumer may be
    /// idle, so holding back would only add latency). A small buffer for a busy consumer
    /// waits to grow: batches stay large under load without a timer.
    pub fn flush_ready(&mut self) -> bool {
        self.push_out(false)
    }

    fn push_out(&mut self, force: bool) -> bool {
        let fabric = &self.fabric;
        let slots = &mut self.slots;
        let batch = self.batch;
        let mut refused = false;
        self.dirty.retain(|&s| {
            let Slot { queue, buf } = &mut slots[s];
            if buf.is_empty() {
                return false;
            }
            let queue = &fabric.queues[*queue];
            if !force && buf.len() < batch && !queue.is_empty() {
                return true;
            }
            if queue.try_push(buf) {
                false
            } else {
                refused = true;
                true
            }
        });
        self.refused = refused;
        let now_blocked = refused;
        match (now_blocked, self.blocked_since) {
            (true, None) => self.blocked_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.blocked += since.elapsed();
                self.blocked_since = None;
            }
            _ => {}
        }
        !now_blocked
    }

    /// Whether some messages wait for room downstream.
    pub fn is_blocked(&self) -> bool {
        self.refused
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.dirty.iter().map(|&s| self.slots[s].buf.len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Destination queues this outbox has sent to (and holds a buffer for).
    pub fn destinations(&self) -> usize {
        self.slots.len()
    }

    /// Buffer capacity held across all destinations, in messages: what the outbox costs
    /// in memory beyond its fixed size.
    pub fn buffered_capacity(&self) -> usize {
        self.slots.iter().map(|s| s.buf.capacity()).sum()
    }

    /// Asks every full destination queue to wake this thread when it has room.
    pub fn wait_for_room(&self) {
        for &s in &self.dirty {
            let Slot { queue, buf } = &self.slots[s];
            let queue = &self.fabric.queues[*queue];
            if !queue.has_room_for(buf.len()) {
                queue.wait_for_room();
            }
        }
    }

    /// Whether every held buffer would now be accepted.
    pub fn has_room(&self) -> bool {
        self.dirty.iter().all(|&s| {
            let Slot { queue, buf } = &self.slots[s];
            self.fabric.queues[*queue].has_room_for(buf.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two queues: task 0 (the acker) on queue 0, task 1 on queue 1.
    fn fabric() -> Arc<Fabric> {
        Arc::new(Fabric {
            queues: (0..2).map(|_| Arc::new(BatchQueue::new(1024))).collect(),
            task_queue: vec![0, 1],
            ackers: vec![0],
        })
    }

    fn acks(f: &Fabric) -> Vec<(u64, u64)> {
        let mut got = Vec::new();
        while let Some(b) = f.queues[0].try_pop() {
            for m in b {
                if let Msg::Control(Control::Ack { root, val, .. }) = m {
                    got.push((root, val));
                } else {
                    got.push((u64::MAX, 0));
                }
            }
        }
        got
    }

    #[test]
    fn acks_of_one_root_in_a_row_fold_into_one_message() {
        let f = fabric();
        let mut out = Outbox::new(Arc::clone(&f), 64);
        out.send_ack(0, 7, 0b0011);
        out.send_ack(0, 7, 0b0101);
        out.send_ack(0, 7, 0b1000);
        out.send_ack(0, 9, 1);
        // Another root in between: the next ack of 7 is its own message.
        out.send_ack(0, 7, 2);
        out.send_ack(0, 7, 2);
        assert!(out.flush());
        assert_eq!(acks(&f), vec![(7, 0b1110), (9, 1), (7, 0)]);
    }

    #[test]
    fn an_ack_never_folds_into_a_message_already_handed_over_or_of_another_kind() {
        let f = fabric();
        let mut out = Outbox::new(Arc::clone(&f), 64);
        out.send_ack(0, 7, 1);
        assert!(out.flush());
        out.send_ack(0, 7, 2);
        out.send(0, Msg::Control(Control::Fail { task: 0, root: 7 }));
        out.send_ack(0, 7, 4);
        // A message for another queue in between leaves the acker's buffer as it was.
        out.send(1, Msg::Control(Control::Reset { task: 1, root: 7 }));
        out.send_ack(0, 7, 8);
        assert!(out.flush());
        assert_eq!(acks(&f), vec![(7, 1), (7, 2), (u64::MAX, 0), (7, 12)]);
    }
}
