//! Target rates: what each component must be able to take. A spout's is its source's
//! rate; a bolt's is the sum over its inputs of what each input carried in the window,
//! scaled by how far its producer's target is from what that producer saw. So an edge
//! keeps its observed output/input ratio (a filter passing half, a splitter making ten),
//! and a graph held back by its slowest bolt is sized for the rate its sources would send.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Figures, Settings};

/// What a component is to the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A source.
    Spout,
    /// A processing step.
    Bolt,
}

/// One subscription, with what it carried.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// The producer.
    pub from: String,
    /// The consumer.
    pub to: String,
    /// Tuples per second the consumer executed from the producer in the window.
    pub rate: f64,
}

/// Components and edges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    components: BTreeMap<String, Role>,
    edges: Vec<Edge>,
}

impl Graph {
    /// A graph of `components`; edges naming a component it lacks are left out.
    pub fn new(components: impl IntoIterator<Item = (String, Role)>, edges: Vec<Edge>) -> Self {
        let components: BTreeMap<String, Role> = components.into_iter().collect();
        let edges = edges
            .into_iter()
            .filter(|e| components.contains_key(&e.from) && components.contains_key(&e.to))
            .collect();
        Graph { components, edges }
    }

    /// Components by name.
    pub fn components(&self) -> impl Iterator<Item = (&String, Role)> {
        self.components.iter().map(|(n, r)| (n, *r))
    }

    /// Edges.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Components in an order where each comes after its producers; those on a cycle
    /// come last, by name, each with what its producers had by then.
    fn order(&self) -> Vec<&String> {
        let mut indegree: BTreeMap<&String, usize> = self.components.keys().map(|n| (n, 0)).collect();
        for e in &self.edges {
            if e.from != e.to {
                *indegree.entry(&e.to).or_default() += 1;
            }
        }
        let mut ready: BTreeSet<&String> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| *n)
            .collect();
        let mut out = Vec::with_capacity(self.components.len());
        let mut done = BTreeSet::new();
        while let Some(n) = ready.pop_first() {
            out.push(n);
            done.insert(n);
            for e in self.edges.iter().filter(|e| &e.from == n && e.from != e.to) {
                if let Some(d) = indegree.get_mut(&e.to) {
                    *d = d.saturating_sub(1);
                    if *d == 0 && !done.contains(&e.to) {
                        ready.insert(&e.to);
                    }
                }
            }
        }
        out.extend(self.components.keys().filter(|n| !done.contains(n)));
        out
    }
}

/// A spout's source rate: what it read, plus the backlog's growth and the backlog worked
/// off within the catch-up duration. A saturated backlog hides the true rate; it is then
/// taken as at least what was read over the target utilization, so each evaluation sizes
/// past the bottleneck until the backlog stops being saturated.
pub fn source_rate(f: &Figures, settings: &Settings) -> f64 {
    let Some(s) = &f.source else {
        return f.emit_rate;
    };
    let catch_up_s = (settings.catch_up_ms as f64 / 1000.0).max(1.0);
    let base = f.emit_rate + s.growth.max(0.0) + s.backlog.max(0.0) / catch_up_s;
    if s.saturated {
        base.max(f.emit_rate / settings.target_utilization.max(0.01))
    } else {
        base
    }
}

/// Every component's target rate, in tuples per second.
pub fn targets(
    graph: &Graph,
    figures: &BTreeMap<String, Figures>,
    settings: &Settings,
) -> BTreeMap<String, f64> {
    let mut target: BTreeMap<String, f64> = BTreeMap::new();
    // Target over observed: the factor its consumers' edges are scaled by.
    let mut scale: BTreeMap<&String, f64> = BTreeMap::new();
    for name in graph.order() {
        let f = figures.get(name).cloned().unwrap_or_default();
        let (t, observed) = match graph.components.get(name) {
            Some(Role::Spout) => (source_rate(&f, settings), f.emit_rate),
            _ => {
                let t: f64 = graph
                    .edges
                    .iter()
                    .filter(|e| &e.to == name)
                    .map(|e| e.rate.max(0.0) * scale.get(&e.from).copied().unwrap_or(1.0))
                    .sum();
                (t, f.input_rate)
            }
        };
        let factor = if observed > 0.0 { t / observed } else { 1.0 };
        scale.insert(name, if factor.is_finite() { factor } else { 1.0 });
        target.insert(name.clone(), t);
    }
    target
}
