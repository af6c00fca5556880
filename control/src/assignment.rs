//! The assignment: which worker runs which tasks of which plan, and where each worker
//! listens. The operator writes it into a ConfigMap next to the manifest; a worker reads
//! it from a file, so a re-read on change is all it needs to follow rebalances.
//!
//! A first assignment deals executors round-robin; later ones are [rebalanced] from the
//! one before, so that only the tasks the balance requires move, and only the workers
//! whose tasks change restart their engines.
//!
//! [rebalanced]: Assignment::rebalanced

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use squall_model::Plan;

/// Why an assignment does not fit its plan.
#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    /// The task lists do not fit the plan.
    #[error("assignment generation {generation}: {message}")]
    Tasks {
        /// Generation.
        generation: u64,
        /// What is wrong.
        message: String,
    },
    /// This worker is not in the assignment.
    #[error("worker {0:?} is not in the assignment")]
    UnknownWorker(String),
}

/// One worker of an assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// Stable name (the pod name on Kubernetes).
    pub id: String,
    /// `host:port` of its gRPC data plane, as its peers dial it.
    pub address: String,
    /// Its tasks; every executor's tasks go to one worker.
    pub tasks: BTreeSet<u32>,
}

/// The document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The Topology manifest, relative to the assignment file's directory.
    pub manifest: PathBuf,
    /// Directory relative paths in component configs resolve against; the manifest's own
    /// directory when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<PathBuf>,
    /// Increases with every change.
    pub generation: u64,
    /// Every worker.
    pub workers: Vec<WorkerSpec>,
}

impl Assignment {
    /// Every task placed exactly once, executors whole, ids unique.
    pub fn check(&self, plan: &Plan) -> Result<(), AssignmentError> {
        let err = |message: String| AssignmentError::Tasks {
            generation: self.generation,
            message,
        };
        let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for w in &self.workers {
            if !ids.insert(w.id.as_str()) {
                return Err(err(format!("worker {:?} listed twice", w.id)));
            }
            for t in &w.tasks {
                if let Some(other) = owner.insert(*t, &w.id) {
                    return Err(err(format!("task {t} given to both {other:?} and {:?}", w.id)));
                }
            }
        }
        for c in &plan.components {
            for exec in c.executor_tasks() {
                let owners: BTreeSet<Option<&&str>> = exec.iter().map(|t| owner.get(t)).collect();
                if owners.contains(&None) {
                    return Err(err(format!("tasks {exec:?} of {:?} are not assigned", c.name)));
                }
                if owners.len() > 1 {
                    return Err(err(format!(
                        "the executor of {:?} with tasks {exec:?} is split between workers",
                        c.name
                    )));
                }
            }
        }
        let max = plan.components.iter().flat_map(|c| c.tasks.iter()).max().copied();
        if let Some((t, _)) = owner.iter().find(|(t, _)| Some(**t) > max) {
            return Err(err(format!("task {t} is not in the plan")));
        }
        Ok(())
    }

    /// The entry of a worker.
    pub fn worker(&self, id: &str) -> Result<&WorkerSpec, AssignmentError> {
        self.workers
            .iter()
            .find(|w| w.id == id)
            .ok_or_else(|| AssignmentError::UnknownWorker(id.to_owned()))
    }

    /// Deals executors (ackers included) round-robin over `workers` (id, address), in
    /// plan order, so every component and the ackers spread over all of them.
    pub fn round_robin(
        plan: &Plan,
        manifest: PathBuf,
        workers: &[(String, String)],
        generation: u64,
    ) -> Self {
        let mut specs: Vec<WorkerSpec> = workers
            .iter()
            .map(|(id, address)| WorkerSpec {
                id: id.clone(),
                address: address.clone(),
                tasks: BTreeSet::new(),
            })
            .collect();
        let mut i = 0;
        for c in &plan.components {
            for exec in c.executor_tasks() {
                if let Some(w) = specs.get_mut(i % workers.len().max(1)) {
                    w.tasks.extend(exec);
                }
                i += 1;
            }
        }
        Assignment {
            manifest,
            base_dir: None,
            generation,
            workers: specs,
        }
    }

    /// The assignment of `plan` over `workers` (id, address, in order) that moves the
    /// fewest tasks away from the worker holding them in `previous`, among those as even
    /// as [`Assignment::round_robin`]'s: every worker's count of each component's
    /// executors, and of all executors, within one of every other worker's. Workers keep
    /// their tasks by id, whatever their address now, so a worker only added takes just
    /// its share, from the workers that hold more than theirs. `previous` need not fit
    /// `plan`: tasks it does not place, or places on workers that are gone, count as
    /// moved wherever they go.
    ///
    /// Rebalancing an assignment that is already balanced for the same workers returns
    /// its tasks unchanged, so the operator reaches a fixed point.
    pub fn rebalanced(
        previous: &Assignment,
        plan: &Plan,
        workers: &[(String, String)],
        generation: u64,
    ) -> Self {
        let index: BTreeMap<&str, usize> = workers
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.as_str(), i))
            .collect();
        let holder: BTreeMap<u32, usize> = previous
            .workers
            .iter()
            .filter_map(|w| Some((index.get(w.id.as_str()).copied()?, w)))
            .flat_map(|(i, w)| w.tasks.iter().map(move |t| (*t, i)))
            .collect();
        let mut executors = Vec::new();
        let mut items = Vec::new();
        for (group, c) in plan.components.iter().enumerate() {
            for exec in c.executor_tasks() {
                let mut held: BTreeMap<usize, u32> = BTreeMap::new();
                for w in exec.iter().filter_map(|t| holder.get(t)) {
                    *held.entry(*w).or_default() += 1;
                }
                items.push(crate::balance::Executor {
                    group,
                    size: exec.len() as u32,
                    held: held.into_iter().collect(),
                });
                executors.push(exec);
            }
        }
        let Some(placed) = crate::balance::place(&items, plan.components.len(), workers.len()) else {
            // Only without workers (round-robin then places nothing either): a balanced
            // placement always exists, and the flow finds one.
            return Assignment {
                base_dir: previous.base_dir.clone(),
                ..Self::round_robin(plan, previous.manifest.clone(), workers, generation)
            };
        };
        let mut specs: Vec<WorkerSpec> = workers
            .iter()
            .map(|(id, address)| WorkerSpec {
                id: id.clone(),
                address: address.clone(),
                tasks: BTreeSet::new(),
            })
            .collect();
        for (exec, w) in executors.into_iter().zip(placed) {
            specs[w].tasks.extend(exec);
        }
        Assignment {
            manifest: previous.manifest.clone(),
            base_dir: previous.base_dir.clone(),
            generation,
            workers: specs,
        }
    }

    /// The next generation with worker `dead` gone and its executors dealt round-robin to
    /// the others. Returns `None` when it is the only worker.
    pub fn without(&self, plan: &Plan, dead: &str) -> Option<Assignment> {
        let gone = self.workers.iter().find(|w| w.id == dead)?;
        let mut rest: Vec<WorkerSpec> = self.workers.iter().filter(|w| w.id != dead).cloned().collect();
        if rest.is_empty() {
            return None;
        }
        let mut i = 0;
        for c in &plan.components {
            for exec in c.executor_tasks() {
                if exec.iter().all(|t| gone.tasks.contains(t)) {
                    let n = rest.len();
                    rest[i % n].tasks.extend(exec);
                    i += 1;
                }
            }
        }
        Some(Assignment {
            generation: self.generation + 1,
            workers: rest,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use squall_model::{Catalog, Config, KindInfo, Role, StreamSpec, TopologyManifest};

    use super::*;

    /// The two kinds the tests use, without the engine behind the real catalog.
    struct Kinds;

    impl Catalog for Kinds {
        fn describe(&self, kind: &str, _: &Config) -> Option<Result<KindInfo, String>> {
            let (role, outputs) = match kind {
                "sequence" => (Role::Spout, vec![StreamSpec::new("default", &["n"])]),
                "null" => (Role::Bolt, Vec::new()),
                _ => return None,
            };
            Some(Ok(KindInfo::new(Some(role), outputs)))
        }

        fn kinds(&self) -> Vec<String> {
            vec!["sequence".into(), "null".into()]
        }
    }

    fn plan() -> Plan {
        let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: a}
spec:
  ackers: 2
  spouts: [{name: s, component: sequence, parallelism: 2}]
  bolts: [{name: b, component: null, parallelism: 3, inputs: [{from: s}]}]
"#;
        let m = TopologyManifest::from_yaml(yaml, "t").unwrap();
        squall_model::validate(&m, &Kinds).unwrap()
    }

    fn workers(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("w{i}"), format!("127.0.0.1:{}", 7000 + i)))
            .collect()
    }

    #[test]
    fn round_robin_places_everything_and_spreads_ackers() {
        let p = plan();
        let a = Assignment::round_robin(&p, "t.yaml".into(), &workers(3), 1);
        a.check(&p).unwrap();
        let ackers = &p.component("__acker").unwrap().tasks;
        let holders: BTreeSet<_> = a
            .workers
            .iter()
            .filter(|w| ackers.iter().any(|t| w.tasks.contains(t)))
            .map(|w| w.id.clone())
            .collect();
        assert_eq!(holders.len(), 2);
        assert!(a.workers.iter().all(|w| !w.tasks.is_empty()));
    }

    #[test]
    fn removing_a_worker_moves_only_its_executors() {
        let p = plan();
        let a = Assignment::round_robin(&p, "t.yaml".into(), &workers(3), 1);
        let b = a.without(&p, "w1").unwrap();
        b.check(&p).unwrap();
        assert_eq!(b.generation, 2);
        for w in &b.workers {
            let before = &a.worker(&w.id).unwrap().tasks;
            assert!(w.tasks.is_superset(before));
        }
        assert!(matches!(b.worker("w1"), Err(AssignmentError::UnknownWorker(_))));
    }

    #[test]
    fn bad_assignments_are_refused() {
        let p = plan();
        let mut a = Assignment::round_robin(&p, "t.yaml".into(), &workers(2), 1);
        let t = *a.workers[0].tasks.iter().next().unwrap();
        a.workers[1].tasks.insert(t);
        assert!(a.check(&p).unwrap_err().to_string().contains("given to both"));
        let mut a = Assignment::round_robin(&p, "t.yaml".into(), &workers(2), 1);
        a.workers[0].tasks.clear();
        assert!(a.check(&p).unwrap_err().to_string().contains("not assigned"));
        let mut a = Assignment::round_robin(&p, "t.yaml".into(), &workers(2), 1);
        a.workers[1].tasks.insert(99);
        assert!(a.check(&p).unwrap_err().to_string().contains("not in the plan"));
    }

    #[test]
    fn the_document_reads_back_and_refuses_unknown_fields() {
        let a = Assignment::round_robin(&plan(), crate::MANIFEST_KEY.into(), &workers(2), 7);
        let text = serde_yaml_ng::to_string(&a).unwrap();
        assert_eq!(serde_yaml_ng::from_str::<Assignment>(&text).unwrap(), a);
        let typo = text.replace("generation", "generatoin");
        assert!(serde_yaml_ng::from_str::<Assignment>(&typo).is_err());
    }

    /// Tasks whose worker (by id) differs between `a` and `b`, or that `a` does not place.
    fn moved(a: &Assignment, b: &Assignment, p: &Plan) -> usize {
        let owner = |x: &Assignment, t: u32| {
            x.workers
                .iter()
                .find(|w| w.tasks.contains(&t))
                .map(|w| w.id.clone())
        };
        p.components
            .iter()
            .flat_map(|c| c.tasks.iter())
            .filter(|t| owner(a, **t).is_none() || owner(a, **t) != owner(b, **t))
            .count()
    }

    /// Every worker's count of each component's executors, and of all, within one of
    /// every other worker's.
    fn balanced(a: &Assignment, p: &Plan) -> bool {
        let n = a.workers.len();
        let even =
            |counts: &[usize]| counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1;
        let mut totals = vec![0; n];
        for c in &p.components {
            let mut counts = vec![0; n];
            for exec in c.executor_tasks() {
                let w = a.workers.iter().position(|w| w.tasks.contains(&exec[0])).unwrap();
                counts[w] += 1;
                totals[w] += 1;
            }
            if !even(&counts) {
                return false;
            }
        }
        even(&totals)
    }

    fn plan_of(ackers: u32, components: &[(u32, u32)]) -> Plan {
        let mut yaml = format!(
            "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {{name: a}}\nspec:\n  ackers: {ackers}\n  spouts: [{{name: s0, component: sequence}}]\n  bolts:\n"
        );
        for (i, (parallelism, extra)) in components.iter().enumerate() {
            let tasks = parallelism + extra;
            yaml.push_str(&format!(
                "    - {{name: b{i}, component: \"null\", parallelism: {parallelism}, tasks: {tasks}, inputs: [{{from: s0}}]}}\n"
            ));
        }
        let m = TopologyManifest::from_yaml(&yaml, "t").unwrap();
        squall_model::validate(&m, &Kinds).unwrap()
    }

    fn named(ids: impl IntoIterator<Item = usize>) -> Vec<(String, String)> {
        ids.into_iter()
            .map(|i| (format!("w{i}"), format!("10.0.0.{i}:7000")))
            .collect()
    }

    #[test]
    fn a_scale_up_moves_only_the_new_workers_share() {
        let p = plan_of(3, &[(2, 0), (1, 0)]);
        let before = Assignment::round_robin(&p, "t.yaml".into(), &named(0..3), 1);
        let after = Assignment::rebalanced(&before, &p, &named(0..4), 2);
        after.check(&p).unwrap();
        assert!(balanced(&after, &p));
        assert_eq!(after.generation, 2);
        for w in &before.workers {
            assert!(
                after.worker(&w.id).unwrap().tasks.is_subset(&w.tasks),
                "{} only gives",
                w.id
            );
        }
        // 7 executors of one task each: the new worker takes one from two of the three.
        let new = &after.worker("w3").unwrap().tasks;
        assert_eq!(new.len(), 1);
        assert_eq!(moved(&before, &after, &p), 1);
        let changed = before
            .workers
            .iter()
            .filter(|w| after.worker(&w.id).unwrap().tasks != w.tasks)
            .count();
        assert_eq!(changed, 1);
    }

    #[test]
    fn a_balanced_assignment_is_a_fixed_point_and_moves_follow_ids() {
        let p = plan_of(2, &[(3, 1), (2, 0)]);
        let a = Assignment::round_robin(&p, "t.yaml".into(), &named(0..3), 4);
        let again = Assignment::rebalanced(&a, &p, &named(0..3), 5);
        assert_eq!(again.workers, a.workers);
        // A worker at a new address keeps its tasks.
        let mut moved_to = named(0..3);
        moved_to[1].1 = "10.0.0.9:7000".into();
        let b = Assignment::rebalanced(&a, &p, &moved_to, 5);
        assert_eq!(b.worker("w1").unwrap().tasks, a.worker("w1").unwrap().tasks);
        assert_eq!(b.worker("w1").unwrap().address, "10.0.0.9:7000");
        // Scaling down: the survivors keep everything they had.
        let c = Assignment::rebalanced(&a, &p, &named(0..2), 6);
        c.check(&p).unwrap();
        assert!(balanced(&c, &p));
        for w in &c.workers {
            assert!(w.tasks.is_superset(&a.worker(&w.id).unwrap().tasks));
        }
    }

    /// The fewest tasks any balanced placement over `workers` moves from `previous`.
    fn brute_force(previous: &Assignment, p: &Plan, workers: &[(String, String)]) -> usize {
        let executors: Vec<Vec<u32>> = p.components.iter().flat_map(|c| c.executor_tasks()).collect();
        let n = workers.len();
        let mut best = usize::MAX;
        let mut choice = vec![0usize; executors.len()];
        loop {
            let mut a = Assignment::round_robin(p, "t.yaml".into(), workers, 2);
            for w in &mut a.workers {
                w.tasks.clear();
            }
            for (exec, w) in executors.iter().zip(&choice) {
                a.workers[*w].tasks.extend(exec);
            }
            if balanced(&a, p) {
                best = best.min(moved(previous, &a, p));
            }
            // The next choice, as a number in base n.
            let Some(i) = choice.iter().position(|c| *c + 1 < n) else {
                break;
            };
            choice[i] += 1;
            for c in &mut choice[..i] {
                *c = 0;
            }
        }
        best
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        #[test]
        fn rebalancing_moves_the_fewest_tasks_a_balanced_placement_can(
            ackers in 0u32..3,
            components in proptest::collection::vec((1u32..4, 0u32..2), 0..3),
            old in 1usize..4,
            offset in 0usize..3,
            new in 1usize..4,
            owners in proptest::collection::vec(0usize..8, 16),
        ) {
            let p = plan_of(ackers, &components);
            let executors: usize = p.components.iter().map(|c| c.parallelism as usize).sum();
            proptest::prop_assume!(executors <= 7);
            // Any previous placement, balanced or not, of this plan's tasks or not.
            let mut previous = Assignment::round_robin(&p, "t.yaml".into(), &named(0..old), 1);
            for w in &mut previous.workers {
                w.tasks.clear();
            }
            for (t, o) in (1..=p.task_count()).zip(&owners) {
                if *o < old {
                    previous.workers[*o].tasks.insert(t);
                }
            }
            let workers = named(offset..offset + new);
            let next = Assignment::rebalanced(&previous, &p, &workers, 2);
            next.check(&p).unwrap();
            proptest::prop_assert!(balanced(&next, &p), "{next:?}");
            proptest::prop_assert_eq!(moved(&previous, &next, &p), brute_force(&previous, &p, &workers));
            let again = Assignment::rebalanced(&next, &p, &workers, 3);
            proptest::prop_assert_eq!(again.workers, next.workers);
        }
    }
}
