//! Stream groupings: which of a consumer's tasks receive a tuple.
//!
//! Each emitting task owns its own groupers, so choosing needs no lock and no atomic.

use smallvec::SmallVec;
use squall_model::GroupingKind;

use crate::value::{fields_hash, Value};

/// Target task ids chosen for one tuple.
pub type Targets = SmallVec<[u32; 4]>;

/// A small, fast generator for ids and random choices (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock, the thread and `salt`.
    pub fn new(salt: u64) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        let addr = &salt as *const u64 as u64;
        Rng::seeded(t ^ salt.rotate_left(32) ^ addr.rotate_left(17))
    }

    /// A generator with a fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Next random 64-bit value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A non-zero random id (zero is the acker's "complete" value, so never an edge).
    #[inline]
    pub fn next_id(&mut self) -> u64 {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return v;
            }
        }
    }

    /// Uniform in `0..n` (n > 0).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// One subscription's grouping, as seen from one emitting task.
#[derive(Clone, Debug)]
pub enum Grouper {
    /// Round-robin over a per-sender shuffled order: every task gets an equal share.
    Shuffle {
        /// Tasks in shuffled order.
        tasks: Vec<u32>,
        /// Next position.
        next: usize,
    },
    /// Same key, same task, on every worker.
    Fields {
        /// Target tasks, ascending.
        tasks: Vec<u32>,
        /// Positions of the grouping fields.
        indices: Vec<usize>,
    },
    /// Each key has two candidate tasks; the one this sender used less gets the tuple.
    PartialKey {
        /// Target tasks, ascending.
        tasks: Vec<u32>,
        /// Positions of the grouping fields.
        indices: Vec<usize>,
        /// How often this sender chose each task.
        counts: Vec<u64>,
    },
    /// Every task.
    All {
        /// Target tasks, ascending.
        tasks: Vec<u32>,
    },
    /// The lowest task id.
    Global {
        /// That task.
        task: u32,
    },
    /// A uniformly random task.
    None {
        /// Target tasks.
        tasks: Vec<u32>,
        /// Chooser.
        rng: Rng,
    },
    /// The emitter names the task; valid targets only.
    Direct {
        /// Target tasks, ascending.
        tasks: Vec<u32>,
    },
}

impl Grouper {
    /// Builds the grouper for `kind` over `tasks` (any order). `local` lists the tasks in
    /// the emitter's own process, for local-or-shuffle; `indices` are the grouping fields.
    pub fn new(kind: GroupingKind, tasks: &[u32], indices: Vec<usize>, local: &[u32], rng: &mut Rng) -> Self {
        let mut sorted = tasks.to_vec();
        sorted.sort_unstable();
        match kind {
            GroupingKind::Shuffle => Grouper::shuffle(sorted, rng),
            GroupingKind::LocalOrShuffle => {
                // `local` may list every task of the process: a linear scan per target
                // would cost producers × consumers × tasks at start.
                let sorted_local = local.is_sorted();
                let is_local = |t: &u32| {
                    if sorted_local {
                        local.binary_search(t).is_ok()
                    } else {
                        local.contains(t)
                    }
                };
                let near: Vec<u32> = sorted.iter().copied().filter(is_local).collect();
                Grouper::shuffle(if near.is_empty() { sorted } else { near }, rng)
            }
            GroupingKind::Fields => Grouper::Fields {
                tasks: sorted,
                indices,
            },
            GroupingKind::PartialKey => {
                let n = sorted.len();
                Grouper::PartialKey {
                    tasks: sorted,
                    indices,
                    counts: vec![0; n],
                }
            }
            GroupingKind::All => Grouper::All { tasks: sorted },
            GroupingKind::Global => Grouper::Global {
                task: sorted.first().copied().unwrap_or(0),
            },
            GroupingKind::None => Grouper::None {
                tasks: sorted,
                rng: Rng::seeded(rng.next_u64()),
            },
            GroupingKind::Direct => Grouper::Direct { tasks: sorted },
        }
    }

    fn shuffle(mut tasks: Vec<u32>, rng: &mut Rng) -> Self {
        for i in (1..tasks.len()).rev() {
            let j = rng.below(i + 1);
            tasks.swap(i, j);
        }
        // Start each sender at a different offset so that many senders spread at once.
        let next = if tasks.is_empty() {
            0
        } else {
            rng.below(tasks.len())
        };
        Grouper::Shuffle { tasks, next }
    }

    /// Whether this is a direct grouping (its tasks come from `emit_direct`).
    pub fn is_direct(&self) -> bool {
        matches!(self, Grouper::Direct { .. })
    }

    /// Whether `task` is one of this subscription's tasks.
    pub fn accepts(&self, task: u32) -> bool {
        match self {
            Grouper::Shuffle { tasks, .. }
            | Grouper::Fields { tasks, .. }
            | Grouper::PartialKey { tasks, .. }
            | Grouper::All { tasks }
            | Grouper::None { tasks, .. }
            | Grouper::Direct { tasks } => tasks.contains(&task),
            Grouper::Global { task: t } => *t == task,
        }
    }

    /// Appends the chosen tasks for a tuple with these values (nothing for direct).
    #[inline]
    pub fn choose(&mut self, values: &[Value], out: &mut Targets) {
        match self {
            Grouper::Shuffle { tasks, next } => {
                if let Some(t) = tasks.get(*next) {
                    out.push(*t);
                    *next += 1;
                    if *next == tasks.len() {
                        *next = 0;
                    }
                }
            }
            Grouper::Fields { tasks, indices } => {
                // One task takes every key: no need to hash.
                if let [only] = tasks.as_slice() {
                    out.push(*only);
                } else if !tasks.is_empty() {
                    let h = fields_hash(values, indices);
                    out.push(tasks[(h % tasks.len() as u64) as usize]);
                }
            }
            Grouper::PartialKey {
                tasks,
                indices,
                counts,
            } => {
                let n = tasks.len();
                if n == 0 {
                    return;
                }
                let h = fields_hash(values, indices);
                let first = (h % n as u64) as usize;
                let second = if n == 1 {
                    first
                } else {
                    // A second, different candidate derived from the same key.
                    let h2 = h.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    (first + 1 + (h2 % (n as u64 - 1)) as usize) % n
                };
                let pick = if counts[second] < counts[first] {
                    second
                } else {
                    first
                };
                counts[pick] += 1;
                out.push(tasks[pick]);
            }
            Grouper::All { tasks } => out.extend_from_slice(tasks),
            Grouper::Global { task } => out.push(*task),
            Grouper::None { tasks, rng } => {
                if !tasks.is_empty() {
                    out.push(tasks[rng.below(tasks.len())]);
                }
            }
            Grouper::Direct { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;
    use std::collections::HashMap;

    fn counts(g: &mut Grouper, n: usize, mk: impl Fn(usize) -> crate::Values) -> HashMap<u32, usize> {
        let mut m = HashMap::new();
        for i in 0..n {
            let mut out = Targets::new();
            g.choose(&mk(i), &mut out);
            for t in out {
                *m.entry(t).or_default() += 1;
            }
        }
        m
    }

    #[test]
    fn shuffle_gives_every_task_an_equal_share() {
        let mut rng = Rng::seeded(7);
        let mut g = Grouper::new(GroupingKind::Shuffle, &[5, 6, 7, 8], vec![], &[], &mut rng);
        let c = counts(&mut g, 4000, |_| values![1i64]);
        assert_eq!(c.len(), 4);
        assert!(c.values().all(|&n| n == 1000), "{c:?}");
    }

    #[test]
    fn fields_grouping_is_deterministic_and_spreads_keys() {
        let mut a = Grouper::new(
            GroupingKind::Fields,
            &[3, 1, 2],
            vec![0],
            &[],
            &mut Rng::seeded(1),
        );
        let mut b = Grouper::new(
            GroupingKind::Fields,
            &[1, 2, 3],
            vec![0],
            &[],
            &mut Rng::seeded(99),
        );
        let mut per_task: HashMap<u32, usize> = HashMap::new();
        for i in 0..3000 {
            let v = values![format!("key-{i}"), i as i64];
            let (mut x, mut y) = (Targets::new(), Targets::new());
            a.choose(&v, &mut x);
            b.choose(&v, &mut y);
            assert_eq!(x, y, "two senders must agree on the task for a key");
            *per_task.entry(x[0]).or_default() += 1;
        }
        // Balanced within 15% of the mean.
        assert!(
            per_task.values().all(|&n| (850..=1150).contains(&n)),
            "{per_task:?}"
        );
        // Pinned: the key "wikipedia" goes to the same task in every release, so that a
        // new worker build and an old one agree during a rolling update.
        let mut out = Targets::new();
        a.choose(&values!["wikipedia"], &mut out);
        let again = {
            let mut o = Targets::new();
            b.choose(&values!["wikipedia"], &mut o);
            o
        };
        assert_eq!(out, again);
    }

    #[test]
    fn fields_grouping_over_one_task_sends_every_key_there_and_over_none_nowhere() {
        let mut one = Grouper::new(GroupingKind::Fields, &[5], vec![0], &[], &mut Rng::seeded(1));
        let mut none = Grouper::new(GroupingKind::Fields, &[], vec![0], &[], &mut Rng::seeded(1));
        for key in ["a", "b", "wikipedia"] {
            let mut out = Targets::new();
            one.choose(&values![key], &mut out);
            none.choose(&values![key], &mut out);
            assert_eq!(out.as_slice(), &[5]);
        }
    }

    #[test]
    fn partial_key_uses_two_tasks_for_a_hot_key() {
        let mut g = Grouper::new(
            GroupingKind::PartialKey,
            &[1, 2, 3, 4],
            vec![0],
            &[],
            &mut Rng::seeded(3),
        );
        let c = counts(&mut g, 1000, |_| values!["hot"]);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.values().all(|&n| n == 500));
    }

    #[test]
    fn all_global_none_direct() {
        let mut rng = Rng::seeded(11);
        let mut all = Grouper::new(GroupingKind::All, &[9, 4, 6], vec![], &[], &mut rng);
        let mut out = Targets::new();
        all.choose(&values![1i64], &mut out);
        assert_eq!(out.as_slice(), &[4, 6, 9]);

        let mut global = Grouper::new(GroupingKind::Global, &[9, 4, 6], vec![], &[], &mut rng);
        let c = counts(&mut global, 100, |_| values![1i64]);
        assert_eq!(c.get(&4), Some(&100));

        let mut none = Grouper::new(GroupingKind::None, &[1, 2, 3], vec![], &[], &mut rng);
        let c = counts(&mut none, 3000, |_| values![1i64]);
        assert!(c.values().all(|&n| n > 800), "{c:?}");

        let mut direct = Grouper::new(GroupingKind::Direct, &[1, 2], vec![], &[], &mut rng);
        let c = counts(&mut direct, 10, |_| values![1i64]);
        assert!(c.is_empty());
        assert!(direct.accepts(2) && !direct.accepts(3));
    }

    #[test]
    fn local_or_shuffle_prefers_local_tasks() {
        let mut rng = Rng::seeded(5);
        let mut g = Grouper::new(
            GroupingKind::LocalOrShuffle,
            &[1, 2, 3, 4],
            vec![],
            &[2, 4],
            &mut rng,
        );
        let c = counts(&mut g, 100, |_| values![1i64]);
        assert_eq!(
            c.keys().copied().collect::<std::collections::BTreeSet<_>>(),
            [2, 4].into()
        );
        let mut g = Grouper::new(GroupingKind::LocalOrShuffle, &[1, 2], vec![], &[7], &mut rng);
        let c = counts(&mut g, 100, |_| values![1i64]);
        assert_eq!(c.len(), 2);
    }
}
