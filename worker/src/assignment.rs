//! The assignment as a worker uses it: the document ([`squall_control::Assignment`]) read
//! from a file with the manifest it names, checked against its plan, and this worker's
//! view of it for the engine.

use std::path::{Path, PathBuf};

use squall_engine::Placement;
use squall_model::{DesiredState, Limits, Plan, TopologyManifest};

pub use squall_control::{Assignment, WorkerSpec};

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
    /// The document does not fit its plan, or does not name this worker.
    #[error(transparent)]
    Invalid(#[from] squall_control::AssignmentError),
}

/// An assignment with its plan loaded and checked.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The document.
    pub assignment: Assignment,
    /// The validated plan.
    pub plan: Plan,
    /// [`squall_control::plan_hash`] of the manifest; peers with another hash are refused.
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

impl Loaded {
    /// Reads the document and the manifest it names, and checks one against the other,
    /// within the default [`Limits`].
    pub fn load(path: &Path) -> Result<Loaded, AssignmentError> {
        Self::load_within(path, &Limits::default())
    }

    /// Reads the document and the manifest it names, and checks one against the other;
    /// the manifest is held to `limits` (the operator's, passed to its workers).
    pub fn load_within(path: &Path, limits: &Limits) -> Result<Loaded, AssignmentError> {
        let assignment = read(path)?;
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
        let plan_hash = squall_control::plan_hash(&manifest).map_err(|e| bad(e.to_string()))?;
        assignment.check(&plan)?;
        Ok(Loaded {
            assignment,
            plan,
            plan_hash,
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
    use std::collections::BTreeSet;

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
            Loaded::load(&dir.path().join("a.yaml")).unwrap()
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
}
