//! Placing executors on workers as evenly as round-robin does (each worker's count of
//! every component's executors, and of all executors, within one of every other
//! worker's), while keeping as many tasks as possible on the worker that holds them now.
//!
//! It is a min-cost flow: source → executor → (component, worker) → worker → sink. The
//! guaranteed part of each per-component and per-worker share is an edge whose cost
//! (`-big`) outweighs every task kept, so the balance is met first; among balanced
//! placements, an executor sent to a worker earns minus the tasks of it that worker
//! holds. Executors no worker holds any task of go through one pool per component.

use crate::flow::Network;

/// One executor to place.
#[derive(Clone, Debug)]
pub struct Executor {
    /// Index of its component.
    pub group: usize,
    /// Its task count.
    pub size: u32,
    /// The workers holding some of its tasks now, with how many.
    pub held: Vec<(usize, u32)>,
}

/// Fewest and most of `total` items each of `n` bins gets when dealt evenly.
fn share(total: usize, n: usize) -> (i64, i64) {
    let lo = total / n;
    (lo as i64, (lo + usize::from(total % n > 0)) as i64)
}

/// The worker of each executor, or `None` for no worker at all.
pub fn place(executors: &[Executor], groups: usize, workers: usize) -> Option<Vec<usize>> {
    if workers == 0 {
        return executors.is_empty().then(Vec::new);
    }
    if let Some(kept) = already_balanced(executors, groups, workers) {
        return Some(kept);
    }
    let graph = Graph::build(executors, groups, workers);
    graph.solve(executors)
}

/// The current placement, when every executor sits whole on one worker and the counts
/// are balanced: the flow's unique optimum then, found without it.
fn already_balanced(executors: &[Executor], groups: usize, workers: usize) -> Option<Vec<usize>> {
    let placed: Vec<usize> = executors
        .iter()
        .map(|e| match e.held.as_slice() {
            [(w, n)] if *n == e.size => Some(*w),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let mut per_group = vec![vec![0i64; workers]; groups];
    let mut per_worker = vec![0i64; workers];
    let mut group_sizes = vec![0usize; groups];
    for (e, w) in executors.iter().zip(&placed) {
        per_group[e.group][*w] += 1;
        per_worker[*w] += 1;
        group_sizes[e.group] += 1;
    }
    let within = |counts: &[i64], (lo, hi): (i64, i64)| counts.iter().all(|c| (lo..=hi).contains(c));
    let groups_ok = per_group
        .iter()
        .zip(&group_sizes)
        .all(|(counts, total)| within(counts, share(*total, workers)));
    (groups_ok && within(&per_worker, share(executors.len(), workers))).then_some(placed)
}

/// The network and the edges the answer is read from.
struct Graph {
    net: Network,
    workers: usize,
    /// Per executor: (worker, edge) for each worker holding some of it, and its pool edge.
    direct: Vec<Vec<(usize, usize)>>,
    pooled: Vec<usize>,
    /// Per component: the edge from its pool to each worker's share.
    from_pool: Vec<Vec<usize>>,
}

impl Graph {
    fn build(executors: &[Executor], groups: usize, workers: usize) -> Graph {
        let (source, sink) = (0, 1);
        let item = |i: usize| 2 + i;
        let pool = |g: usize| 2 + executors.len() + g;
        let share_node = |g: usize, w: usize| 2 + executors.len() + groups + g * workers + w;
        let worker = |w: usize| 2 + executors.len() + groups + groups * workers + w;
        let mut net = Network::new(2 + executors.len() + groups + groups * workers + workers);
        let big = executors.iter().map(|e| i64::from(e.size)).sum::<i64>() + 1;
        let mut group_sizes = vec![0usize; groups];
        for e in executors {
            group_sizes[e.group] += 1;
        }
        // Edges go in topological order of their tails (see `Network`).
        for i in 0..executors.len() {
            net.edge(source, item(i), 1, 0);
        }
        let mut direct = Vec::with_capacity(executors.len());
        let mut pooled = Vec::with_capacity(executors.len());
        for (i, e) in executors.iter().enumerate() {
            let held = e
                .held
                .iter()
                .map(|&(w, n)| (w, net.edge(item(i), share_node(e.group, w), 1, -i64::from(n))))
                .collect();
            direct.push(held);
            pooled.push(net.edge(item(i), pool(e.group), 1, 0));
        }
        let from_pool = (0..groups)
            .map(|g| {
                let cap = group_sizes[g] as i64;
                (0..workers)
                    .map(|w| net.edge(pool(g), share_node(g, w), cap, 0))
                    .collect()
            })
            .collect();
        for (g, size) in group_sizes.iter().enumerate() {
            let (lo, hi) = share(*size, workers);
            for w in 0..workers {
                bounded(&mut net, share_node(g, w), worker(w), (lo, hi), big);
            }
        }
        let (lo, hi) = share(executors.len(), workers);
        for w in 0..workers {
            bounded(&mut net, worker(w), sink, (lo, hi), big);
        }
        Graph {
            net,
            workers,
            direct,
            pooled,
            from_pool,
        }
    }

    fn solve(mut self, executors: &[Executor]) -> Option<Vec<usize>> {
        let sent = self.net.run(0, 1);
        if sent != executors.len() as i64 {
            return None;
        }
        let mut placed = vec![None; executors.len()];
        for (i, held) in self.direct.iter().enumerate() {
            placed[i] = held.iter().find(|(_, e)| self.net.flow(*e) > 0).map(|(w, _)| *w);
        }
        // Executors that came through a pool take its flows to the workers in order.
        let mut left: Vec<Vec<i64>> = self
            .from_pool
            .iter()
            .map(|edges| edges.iter().map(|e| self.net.flow(*e)).collect())
            .collect();
        for (i, e) in executors.iter().enumerate() {
            if self.net.flow(self.pooled[i]) > 0 {
                let w = (0..self.workers).find(|w| left[e.group][*w] > 0)?;
                left[e.group][w] -= 1;
                placed[i] = Some(w);
            }
        }
        placed.into_iter().collect()
    }
}

/// A share of `lo..=hi` units from `from` to `to`: `lo` of them must flow (cost `-big`),
/// the rest may.
fn bounded(net: &mut Network, from: usize, to: usize, (lo, hi): (i64, i64), big: i64) {
    if lo > 0 {
        net.edge(from, to, lo, -big);
    }
    if hi > lo {
        net.edge(from, to, hi - lo, 0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(group: usize, size: u32, worker: usize) -> Executor {
        Executor {
            group,
            size,
            held: vec![(worker, size)],
        }
    }

    #[test]
    fn a_new_worker_takes_one_executor_of_the_busiest_worker() {
        // Three single-executor components on worker 0, one on worker 1; worker 2 is new.
        let executors = [at(0, 1, 0), at(1, 1, 0), at(2, 1, 0), at(3, 1, 1)];
        let placed = place(&executors, 4, 3).unwrap();
        assert_eq!(placed.iter().filter(|w| **w == 2).count(), 1);
        assert_eq!(placed[3], 1, "worker 1 keeps its executor");
        assert_eq!(placed.iter().filter(|w| **w == 0).count(), 2);
    }

    #[test]
    fn the_smallest_executor_is_the_one_that_moves() {
        let executors = [at(0, 3, 0), at(0, 1, 0)];
        assert_eq!(place(&executors, 1, 2).unwrap(), [0, 1]);
    }

    #[test]
    fn executors_no_one_holds_fill_the_gaps() {
        let new = Executor {
            group: 0,
            size: 1,
            held: Vec::new(),
        };
        let executors = [at(0, 1, 0), new.clone(), new];
        let placed = place(&executors, 1, 3).unwrap();
        assert_eq!(placed[0], 0);
        assert_eq!(
            placed[1..]
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            2
        );
        assert_eq!(place(&[], 1, 0), Some(Vec::new()));
        assert_eq!(place(&executors, 1, 0), None);
    }
}
