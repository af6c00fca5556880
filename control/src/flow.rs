//! Min-cost flow by successive shortest paths (Dijkstra on reduced costs), for the
//! rebalance: small graphs, integer costs, some negative, no negative cycle.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

struct Edge {
    to: usize,
    cap: i64,
    cost: i64,
}

/// A flow network. Edges must be added in topological order of their tails (every edge
/// into a node before any edge out of it), which the initial potentials rely on.
pub struct Network {
    edges: Vec<Edge>,
    out: Vec<Vec<usize>>,
}

impl Network {
    /// A network of `nodes` nodes and no edges.
    pub fn new(nodes: usize) -> Self {
        Network {
            edges: Vec::new(),
            out: vec![Vec::new(); nodes],
        }
    }

    /// Adds an edge and returns its id, for [`Network::flow`].
    pub fn edge(&mut self, from: usize, to: usize, cap: i64, cost: i64) -> usize {
        let id = self.edges.len();
        self.edges.push(Edge { to, cap, cost });
        self.edges.push(Edge {
            to: from,
            cap: 0,
            cost: -cost,
        });
        self.out[from].push(id);
        self.out[to].push(id + 1);
        id
    }

    /// The flow on edge `id`.
    pub fn flow(&self, id: usize) -> i64 {
        self.edges[id + 1].cap
    }

    /// Sends as much as can go from `source` to `sink` at the least total cost; returns
    /// the amount sent. Primal-dual: after each shortest-path search, a maximum flow over
    /// the edges of zero reduced cost, so the searches number the distinct path costs,
    /// not the units sent.
    pub fn run(&mut self, source: usize, sink: usize) -> i64 {
        let mut potential = self.initial_potentials(source);
        let mut sent = 0;
        loop {
            let dist = self.shortest(source, &potential);
            if dist[sink] == i64::MAX {
                break;
            }
            // A node not reached now is never reached again: augmenting adds edges only
            // between reached nodes, so its potential does not matter.
            for (p, d) in potential.iter_mut().zip(&dist) {
                if *d != i64::MAX {
                    *p += *d;
                }
            }
            while let Some(level) = self.levels(source, sink, &potential) {
                sent += self.blocking(source, sink, &level, &potential);
            }
        }
        sent
    }

    fn tail(&self, id: usize) -> usize {
        self.edges[id ^ 1].to
    }

    /// Whether edge `id` has room and zero reduced cost.
    fn admissible(&self, id: usize, potential: &[i64]) -> bool {
        let e = &self.edges[id];
        e.cap > 0 && e.cost + potential[self.tail(id)] - potential[e.to] == 0
    }

    /// Breadth-first levels over admissible edges, or `None` when `sink` is not reached.
    fn levels(&self, source: usize, sink: usize, potential: &[i64]) -> Option<Vec<usize>> {
        let mut level = vec![usize::MAX; self.out.len()];
        level[source] = 0;
        let mut queue = std::collections::VecDeque::from([source]);
        while let Some(v) = queue.pop_front() {
            for &id in &self.out[v] {
                let to = self.edges[id].to;
                if level[to] == usize::MAX && self.admissible(id, potential) {
                    level[to] = level[v] + 1;
                    queue.push_back(to);
                }
            }
        }
        (level[sink] != usize::MAX).then_some(level)
    }

    /// Augments along admissible paths that climb the levels until none is left (Dinic's
    /// blocking flow, iterative so long paths need no deep stack); returns the amount.
    fn blocking(&mut self, source: usize, sink: usize, level: &[usize], potential: &[i64]) -> i64 {
        let mut next = vec![0usize; self.out.len()];
        let mut path: Vec<usize> = Vec::new();
        let mut sent = 0;
        let mut v = source;
        loop {
            if v == sink {
                let push = path.iter().map(|id| self.edges[*id].cap).min().unwrap_or(0);
                for id in &path {
                    self.edges[*id].cap -= push;
                    self.edges[*id ^ 1].cap += push;
                }
                sent += push;
                path.clear();
                v = source;
                continue;
            }
            let step = self.out[v][next[v]..]
                .iter()
                .position(|&id| level[self.edges[id].to] == level[v] + 1 && self.admissible(id, potential));
            match step {
                Some(k) => {
                    next[v] += k;
                    let id = self.out[v][next[v]];
                    path.push(id);
                    v = self.edges[id].to;
                }
                None => {
                    next[v] = self.out[v].len();
                    let Some(id) = path.pop() else { return sent };
                    v = self.tail(id);
                    next[v] += 1;
                }
            }
        }
    }

    /// Shortest distances from `source` over the original edges, relaxed once in the
    /// order they were added: exact on a graph built in topological order.
    fn initial_potentials(&self, source: usize) -> Vec<i64> {
        let mut dist = vec![i64::MAX; self.out.len()];
        dist[source] = 0;
        for (i, e) in self.edges.iter().enumerate().step_by(2) {
            let from = self.edges[i + 1].to;
            if dist[from] != i64::MAX && e.cap > 0 {
                dist[e.to] = dist[e.to].min(dist[from] + e.cost);
            }
        }
        // A node unreachable now stays so: augmenting adds edges only between reachable
        // nodes. Its potential never matters.
        dist.iter().map(|d| if *d == i64::MAX { 0 } else { *d }).collect()
    }

    /// Dijkstra on reduced costs: the distance to each node (`i64::MAX` if unreached).
    fn shortest(&self, source: usize, potential: &[i64]) -> Vec<i64> {
        let n = self.out.len();
        let mut dist = vec![i64::MAX; n];
        let mut heap = BinaryHeap::new();
        dist[source] = 0;
        heap.push(Reverse((0i64, source)));
        while let Some(Reverse((d, v))) = heap.pop() {
            if d > dist[v] {
                continue;
            }
            for &id in &self.out[v] {
                let e = &self.edges[id];
                if e.cap <= 0 {
                    continue;
                }
                let next = d + e.cost + potential[v] - potential[e.to];
                if next < dist[e.to] {
                    dist[e.to] = next;
                    heap.push(Reverse((next, e.to)));
                }
            }
        }
        dist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_greedy_choice_is_undone_when_it_costs_more_later() {
        // Items 1 and 2, slots 3 and 4 of one unit each: item 1 gains 5 in slot 3 and 4 in
        // slot 4, item 2 gains 5 in slot 3 only. The best is 1 → 4, 2 → 3 (9, not 5).
        let (source, sink) = (0, 5);
        let mut n = Network::new(6);
        n.edge(source, 1, 1, 0);
        n.edge(source, 2, 1, 0);
        let one_three = n.edge(1, 3, 1, -5);
        let one_four = n.edge(1, 4, 1, -4);
        let two_three = n.edge(2, 3, 1, -5);
        n.edge(2, 4, 1, 0);
        n.edge(3, sink, 1, 0);
        n.edge(4, sink, 1, 0);
        assert_eq!(n.run(source, sink), 2);
        assert_eq!(
            (n.flow(one_three), n.flow(one_four), n.flow(two_three)),
            (0, 1, 1)
        );
    }
}
