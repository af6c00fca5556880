//! The assignment: which worker runs which tasks of which plan, and where each worker
//! listens. Read from a file (YAML or JSON) now; the operator will write the same
//! document into a ConfigMap mounted as that file, so a re-read on change is all a
//! worker needs to follow rebalances.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use squall_engine::Placement;
use squall_model::{DesiredState, Limits, Plan, TopologyManifest};

/// Why an assignment cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The document is not a valid assignment.
    #[error("{path}: {message}")]
    Syntax {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// The manifest it names is invalid.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// Manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
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
    /// Stable name (a pod name later).
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
    /// Every worker, this one included.
    pub workers: Vec<WorkerSpec>,
}

/// An assignment with its plan loaded and checked.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The document.
    pub assignment: Assignment,
    /// The validated plan.
    pub plan: Plan,
    /// Hash of the effective manifest without `desiredState`; peers with another hash are
    /// refused.
    pub plan_hash: String,
}

impl Loaded {
    /// Whether the manifest wants the spouts active.
    pub fn active(&self) -> bool {
        self.plan.spec.desired_state == DesiredState::Active
    }

    /// Whether `other` runs the same thing: same assignment, plan and activation.
    pub fn same_as(&self, other: &Loaded) -> bool {
        self.assignment == other.assignment
            && self.plan_hash == other.plan_hash
            && self.active() == other.active()
    }
}

impl Assignment {
    /// Reads the document (no plan).
    pub fn read(path: &Path) -> Result<Assignment, AssignmentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AssignmentError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|e| AssignmentError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads the document and the manifest it names, and checks one against the other,
    /// within the default [`Limits`].
    pub fn load(path: &Path) -> Result<Loaded, AssignmentError> {
        Self::load_within(path, &Limits::default())
    }

    /// Reads the document and the manifest it names, and checks one against the other;
    /// the manifest is held to `limits` (the operator's, passed to its workers).
    pub fn load_within(path: &Path, limits: &Limits) -> Result<Loaded, AssignmentError> {
        let assignment = Assignment::read(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let manifest_path = dir.join(&assignment.manifest);
        let bad = |message: String| AssignmentError::Manifest {
            path: manifest_path.clone(),
            message,
        };
        let manifest =
            TopologyManifest::from_file_within(&manifest_path, limits).map_err(|e| bad(e.to_string()))?;
        let mut plan = squall_model::validate_within(&manifest, &squall_components::Builtins, limits)
            .map_err(|e| bad(e.to_string()))?;
        plan.base_dir = Some(match &assignment.base_dir {
            Some(b) => dir.join(b),
            None => manifest_path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        });
        // Activation is applied in place, so it is not part of what peers must agree on.
        let mut hashed = manifest.clone();
        hashed.spec.desired_state = DesiredState::Active;
        let canonical = hashed.to_yaml().map_err(|e| bad(e.to_string()))?;
        let plan_hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()));
        assignment.check(&plan)?;
        Ok(Loaded {
            assignment,
            plan,
            plan_hash,
        })
    }

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

/// How one worker sees an assignment: its placement for the engine, with one remote entry
/// per remote executor, and which peer runs each of those executors now.
///
/// Remote tasks are grouped by executor rather than by peer so that when executors move
/// between *other* workers this worker's engine keeps running: only `owners` changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// For the engine.
    pub placement: Placement,
    /// Peer id running each `placement.remote` entry.
    pub owners: Vec<String>,
}

impl View {
    /// The view of worker `me`.
    pub fn of(plan: &Plan, assignment: &Assignment, me: &str) -> Result<View, AssignmentError> {
        let mine = &assignment.worker(me)?.tasks;
        let mut remote = Vec::new();
        let mut owners = Vec::new();
        for c in &plan.components {
            for exec in c.executor_tasks() {
                if exec.iter().any(|t| mine.contains(t)) {
                    continue;
                }
                let owner = assignment
                    .workers
                    .iter()
                    .find(|w| exec.first().is_some_and(|t| w.tasks.contains(t)))
                    .map(|w| w.id.clone())
                    .unwrap_or_default();
                remote.push(exec.into_iter().collect());
                owners.push(owner);
            }
        }
        Ok(View {
            placement: Placement {
                local: mine.clone(),
                remote,
            },
            owners,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        squall_model::validate(&m, &squall_components::Builtins).unwrap()
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
    }

    #[test]
    fn views_group_remote_tasks_by_executor() {
        let p = plan();
        let a = Assignment::round_robin(&p, "t.yaml".into(), &workers(2), 1);
        let v = View::of(&p, &a, "w0").unwrap();
        assert_eq!(v.placement.local, a.worker("w0").unwrap().tasks);
        assert_eq!(v.placement.remote.len(), v.owners.len());
        assert!(v.owners.iter().all(|o| o == "w1"));
        let all: usize =
            v.placement.remote.iter().map(BTreeSet::len).sum::<usize>() + v.placement.local.len();
        assert_eq!(all as u32, p.task_count());
    }

    #[test]
    fn activation_is_not_part_of_the_plan_hash() {
        let dir = tempfile::tempdir().unwrap();
        let load = |state: &str| {
            let yaml = format!(
                "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {{name: a}}\nspec:\n  \
                 desiredState: {state}\n  spouts: [{{name: s, component: sequence}}]\n"
            );
            std::fs::write(dir.path().join("t.yaml"), yaml).unwrap();
            let m = TopologyManifest::from_file(&dir.path().join("t.yaml")).unwrap();
            let p = squall_model::validate(&m, &squall_components::Builtins).unwrap();
            let a = Assignment::round_robin(&p, "t.yaml".into(), &workers(1), 1);
            std::fs::write(dir.path().join("a.yaml"), serde_yaml_ng::to_string(&a).unwrap()).unwrap();
            Assignment::load(&dir.path().join("a.yaml")).unwrap()
        };
        let on = load("Active");
        let off = load("Inactive");
        assert_eq!(
            on.plan_hash, off.plan_hash,
            "peers must keep talking across a deactivation"
        );
        assert!(on.active() && !off.active());
        assert!(!on.same_as(&off), "a deactivation must still reach the engine");
        assert!(on.same_as(&on.clone()));
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
    }
}
