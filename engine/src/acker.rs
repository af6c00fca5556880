//! The XOR ledger of an acker task (Storm's `Acker`).
//!
//! For every spout tuple (root id) the acker keeps one 64-bit value: the XOR of every
//! edge id that was created (init, and the children a bolt adds when it acks) and every
//! edge id that was acked. Each edge enters the value twice, so the value is zero exactly
//! when every tuple of the tree has been acked. Entries that see no traffic for two to
//! three message timeouts are dropped: by then the spout has failed the tuple itself.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Hashes root ids for the maps keyed by them: a spout task's pending trees and an
/// acker's ledger.
///
/// A spout task numbers its roots consecutively from a random start, and an acker owns
/// every `stride`-th root ([`crate::fabric::Fabric::acker_for`]), so `root / stride` is
/// consecutive within one map. As the bucket index it keeps the trees in flight in
/// neighbouring buckets: a lookup touches the cache lines of that window rather than a
/// random line of a table larger than the core's cache. Its low bits are copied to the
/// top, where the map takes its 7-bit tag, so that neighbours have different tags.
#[derive(Clone, Copy, Debug)]
pub struct RootHash {
    stride: u64,
}

impl RootHash {
    /// For a map holding every `stride`-th root (at least 1).
    pub fn with_stride(stride: u64) -> Self {
        RootHash {
            stride: stride.max(1),
        }
    }
}

impl Default for RootHash {
    fn default() -> Self {
        RootHash::with_stride(1)
    }
}

impl BuildHasher for RootHash {
    type Hasher = RootHasher;

    fn build_hasher(&self) -> RootHasher {
        RootHasher {
            stride: self.stride,
            value: 0,
        }
    }
}

/// The hasher of [`RootHash`].
#[derive(Clone, Copy, Debug)]
pub struct RootHasher {
    stride: u64,
    value: u64,
}

impl Hasher for RootHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.value ^ (self.value << 57)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.value = self.value.rotate_left(8) ^ u64::from(*b);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        // The branch spares the division for every spout's map and for a single acker.
        self.value = if self.stride == 1 { n } else { n / self.stride };
    }
}

/// A map keyed by root ids.
pub type IdMap<V> = HashMap<u64, V, RootHash>;

#[derive(Debug, Clone)]
struct Entry {
    val: u64,
    /// The spout task to notify; unknown until the init arrives.
    spout_task: Option<u32>,
    failed: bool,
    generation: u64,
}

impl Entry {
    /// What the spout hears, once the entry knows its spout and is settled.
    fn outcome(&self, root: u64) -> Option<Outcome> {
        let spout_task = self.spout_task?;
        if self.failed {
            Some(Outcome::Failed { spout_task, root })
        } else if self.val == 0 {
            Some(Outcome::Complete { spout_task, root })
        } else {
            None
        }
    }
}

/// What the acker tells a spout task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The tree of `root` is fully processed.
    Complete {
        /// Spout task to tell.
        spout_task: u32,
        /// Root id.
        root: u64,
    },
    /// The tree of `root` failed.
    Failed {
        /// Spout task to tell.
        spout_task: u32,
        /// Root id.
        root: u64,
    },
}

/// The ledger itself, free of threads and queues so it can be tested alone.
#[derive(Default)]
pub struct Ledger {
    entries: IdMap<Entry>,
    generation: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// An empty ledger of one of `ackers` acker tasks, which owns every `ackers`-th root.
    pub fn for_acker_of(ackers: usize) -> Self {
        Ledger {
            entries: IdMap::with_hasher(RootHash::with_stride(ackers as u64)),
            generation: 0,
        }
    }

    /// Trees being tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no tree is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Applies `change` to the entry of `root` with one hash lookup, and settles it: an
    /// entry that completes or fails is removed (or never stored), so a tree whose init
    /// comes last costs no insert at all.
    fn apply(&mut self, root: u64, change: impl FnOnce(&mut Entry)) -> Option<Outcome> {
        match self.entries.entry(root) {
            MapEntry::Occupied(mut o) => {
                change(o.get_mut());
                let outcome = o.get().outcome(root);
                if outcome.is_some() {
                    o.remove();
                }
                outcome
            }
            MapEntry::Vacant(v) => {
                let mut e = Entry {
                    val: 0,
                    spout_task: None,
                    failed: false,
                    generation: self.generation,
                };
                change(&mut e);
                let outcome = e.outcome(root);
                if outcome.is_none() {
                    v.insert(e);
                }
                outcome
            }
        }
    }

    /// The spout emitted `root` to targets whose edges XOR to `xor`.
    pub fn init(&mut self, root: u64, xor: u64, spout_task: u32) -> Option<Outcome> {
        self.apply(root, |e| {
            e.val ^= xor;
            e.spout_task = Some(spout_task);
        })
    }

    /// A bolt acked an edge of `root` (its edge XOR the edges of its anchored children).
    pub fn ack(&mut self, root: u64, val: u64) -> Option<Outcome> {
        self.apply(root, |e| e.val ^= val)
    }

    /// A bolt failed a tuple of `root`.
    pub fn fail(&mut self, root: u64) -> Option<Outcome> {
        self.apply(root, |e| e.failed = true)
    }

    /// A bolt asked for more time: keeps the entry alive and returns the spout task to tell.
    pub fn reset_timeout(&mut self, root: u64) -> Option<u32> {
        let generation = self.generation;
        let e = self.entries.get_mut(&root)?;
        e.generation = generation;
        e.spout_task
    }

    /// Called once per message timeout: forgets trees untouched for two rotations.
    /// Returns how many were dropped.
    pub fn rotate(&mut self) -> usize {
        self.generation += 1;
        let keep_from = self.generation.saturating_sub(2);
        let before = self.entries.len();
        self.entries.retain(|_, e| e.generation >= keep_from);
        before - self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grouping::Rng;

    #[test]
    fn linear_tree_completes_only_at_the_end() {
        let mut l = Ledger::new();
        let (root, e1, e2) = (42, 0xaaaa, 0x5555_1234);
        assert_eq!(l.init(root, e1, 7), None);
        // Bolt 1 acks e1 and anchors a child e2.
        assert_eq!(l.ack(root, e1 ^ e2), None);
        // Bolt 2 acks e2.
        assert_eq!(l.ack(root, e2), Some(Outcome::Complete { spout_task: 7, root }));
        assert!(l.is_empty());
    }

    #[test]
    fn acks_before_init_are_kept() {
        let mut l = Ledger::new();
        assert_eq!(l.ack(1, 0xf0), None);
        assert_eq!(l.len(), 1);
        assert_eq!(
            l.init(1, 0xf0, 3),
            Some(Outcome::Complete {
                spout_task: 3,
                root: 1
            })
        );
    }

    #[test]
    fn ack_value_zero_before_init_does_not_complete() {
        let mut l = Ledger::new();
        assert_eq!(l.ack(1, 0), None, "no spout task known yet");
        assert_eq!(l.init(1, 0x10, 2), None);
        assert_eq!(
            l.ack(1, 0x10),
            Some(Outcome::Complete {
                spout_task: 2,
                root: 1
            })
        );
    }

    #[test]
    fn fail_wins_and_waits_for_init() {
        let mut l = Ledger::new();
        assert_eq!(l.fail(9), None);
        assert_eq!(
            l.init(9, 0x1, 4),
            Some(Outcome::Failed {
                spout_task: 4,
                root: 9
            })
        );
        assert!(l.is_empty());
    }

    /// A tuple anchored to two trees (multi-anchoring): each tree needs its ack.
    #[test]
    fn multi_anchored_child_holds_both_trees() {
        let mut l = Ledger::new();
        let (r1, a) = (100, 0x11);
        let (r2, b) = (200, 0x22);
        l.init(r1, a, 1);
        l.init(r2, b, 1);
        // A bolt joins A (r1) and B (r2) into C with edge c, anchored to both.
        let c = 0x4400;
        assert_eq!(l.ack(r1, a ^ c), None);
        assert_eq!(l.ack(r2, b ^ c), None);
        // C carries {r1: c, r2: c}; acking it completes both.
        assert_eq!(
            l.ack(r1, c),
            Some(Outcome::Complete {
                spout_task: 1,
                root: r1
            })
        );
        assert_eq!(
            l.ack(r2, c),
            Some(Outcome::Complete {
                spout_task: 1,
                root: r2
            })
        );
    }

    /// Random trees with fan-out: acked in a random order, each
    /// completes exactly when its last tuple is acked, never before.
    #[test]
    fn random_trees_with_fanout() {
        let mut rng = Rng::seeded(2024);
        for _ in 0..300 {
            let mut l = Ledger::new();
            let root = rng.next_id();
            // Live tuples: (edge id, ack value accumulated from children).
            let fanout = 1 + rng.below(4);
            let mut live: Vec<(u64, u64)> = Vec::new();
            let mut init = 0;
            for _ in 0..fanout {
                let e = rng.next_id();
                init ^= e;
                live.push((e, 0));
            }
            let mut outcome = l.init(root, init, 1);
            let mut created = fanout;
            while !live.is_empty() {
                assert_eq!(outcome, None, "completed while {} tuples are live", live.len());
                let i = rng.below(live.len());
                let (edge, mut ack_val) = live.swap_remove(i);
                // The acked tuple may emit children anchored to it (bounded tree size).
                if created < 40 {
                    for _ in 0..rng.below(3) {
                        let child = rng.next_id();
                        ack_val ^= child;
                        live.push((child, 0));
                        created += 1;
                    }
                }
                outcome = l.ack(root, edge ^ ack_val);
            }
            assert_eq!(outcome, Some(Outcome::Complete { spout_task: 1, root }));
        }
    }

    #[test]
    fn untouched_entries_expire_after_two_to_three_rotations() {
        let mut l = Ledger::new();
        l.init(1, 5, 1);
        assert_eq!(l.rotate(), 0);
        assert_eq!(l.rotate(), 0);
        assert_eq!(l.rotate(), 1);
        l.init(2, 5, 1);
        l.rotate();
        l.rotate();
        assert_eq!(l.reset_timeout(2), Some(1));
        assert_eq!(l.rotate(), 0, "reset_timeout keeps it alive");
    }

    /// An acker's share of consecutive roots lands in consecutive buckets, with tags
    /// that differ between neighbours.
    #[test]
    fn an_ackers_roots_hash_to_neighbouring_buckets() {
        let hash = RootHash::with_stride(3);
        let start = 0xdead_beef_0000_0002u64;
        let hashes: Vec<u64> = (0..200).map(|k| hash.hash_one(start + 3 * k)).collect();
        for pair in hashes.windows(2) {
            assert_eq!(
                pair[1] & 0xffff,
                (pair[0] + 1) & 0xffff,
                "bucket index steps by one"
            );
            assert_ne!(pair[1] >> 57, pair[0] >> 57, "the map's tags differ");
        }
        let spout = RootHash::default();
        assert_eq!(
            spout.hash_one(41u64) & 0xff,
            41,
            "a spout's map uses the root itself"
        );
    }

    /// Trees with consecutive roots, interleaved and settled out of order, through the
    /// ledger of one of three ackers: each completes exactly when its last edge is acked.
    #[test]
    fn consecutive_roots_of_one_acker_settle_independently() {
        let mut rng = Rng::seeded(7);
        let mut l = Ledger::for_acker_of(3);
        let start = u64::MAX - 3 * 500; // wraps past zero on the way
        let mut open: Vec<(u64, u64)> = Vec::new();
        for k in 0..2000u64 {
            let root = start.wrapping_add(3 * k).max(1);
            let edge = rng.next_id();
            assert_eq!(l.init(root, edge, 2), None);
            open.push((root, edge));
            if open.len() > 100 {
                let (root, edge) = open.swap_remove(rng.below(open.len()));
                assert_eq!(l.ack(root, edge), Some(Outcome::Complete { spout_task: 2, root }));
            }
        }
        assert_eq!(l.len(), open.len());
        for (root, edge) in open {
            assert_eq!(l.ack(root, edge), Some(Outcome::Complete { spout_task: 2, root }));
        }
        assert!(l.is_empty());
    }
}
