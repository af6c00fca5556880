//! The assignment: which worker runs which tasks of which plan, and where each worker
//! listens. The operator writes it into a ConfigMap next to the manifest; a worker reads
//! it from a file, so a re-read on change is all it needs to follow rebalances.

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
            Some(Ok(KindInfo {
                role: Some(role),
                outputs,
            }))
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
}
