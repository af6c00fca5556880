//! How a wanted assignment differs from the running one: activation in place, an address
//! move, or a rebalance. Which step follows is [`crate::lifecycle`]'s. Pure functions,
//! unit-tested without an API server.

use squall_control::{plan_hash, Assignment};
use squall_model::{DesiredState, TopologyManifest};

/// The assignment in the ConfigMap now.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentAssignment {
    /// The assignment document.
    pub assignment: Assignment,
    /// The manifest next to it, parsed once where the ConfigMap is read.
    pub manifest: TopologyManifest,
}

/// What it takes to go from the current assignment to the wanted one.
///
/// Each worker restarts its engine only when its slice of the plan changes
/// ([`squall_control::EngineSlice`]: its tasks, the shape of every component, the
/// topology's settings and config, and the config of the components it hosts). Workers
/// whose slice stays keep their engines through any of these steps, and only reroute to
/// executors that moved between other workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing to write.
    None,
    /// Only what no engine reads differs: `desiredState` (workers switch their spouts
    /// without restarting), the pod settings (the StatefulSet rolls the pods) or the kill
    /// wait (the operator's own). The plan hash stays.
    Activation,
    /// Only worker addresses differ (a replaced pod): the moved worker starts, the others
    /// reroute without restarting.
    Move,
    /// The plan as engines read it (parallelism, config, components), or the tasks of
    /// some worker, differ: drain first. Then only the workers whose slice changed
    /// restart: a config change of one component restarts the workers hosting it, and a
    /// scale-up, rebalanced to move only the new workers' share
    /// ([`squall_control::Assignment::rebalanced`]), the workers that give tasks up and
    /// the new ones. A parallelism change alters the task layout every engine routes by,
    /// and so does a worker-count change while `spec.ackers` is unset (the acker count
    /// follows the worker count): every worker restarts then.
    Rebalance,
}

/// Whether a manifest asks for active spouts.
pub fn is_active(manifest: &TopologyManifest) -> bool {
    manifest.spec.desired_state == DesiredState::Active
}

/// The same manifest with its spouts deactivated.
pub fn deactivated(manifest: &TopologyManifest) -> TopologyManifest {
    let mut m = manifest.clone();
    m.spec.desired_state = DesiredState::Inactive;
    m
}

/// Classifies the step from `current` to `wanted`.
pub fn classify(current: &CurrentAssignment, wanted: &CurrentAssignment) -> Change {
    let tasks = |a: &CurrentAssignment| -> Vec<_> {
        a.assignment
            .workers
            .iter()
            .map(|w| (w.id.clone(), w.tasks.clone()))
            .collect()
    };
    if !same_plan(&current.manifest, &wanted.manifest) || tasks(current) != tasks(wanted) {
        return Change::Rebalance;
    }
    if current.assignment.workers != wanted.assignment.workers {
        return Change::Move;
    }
    if current.manifest != wanted.manifest {
        return Change::Activation;
    }
    Change::None
}

/// Whether two manifests describe the same plan, activation aside: the plan identity the
/// workers share ([`squall_control::plan_hash`]).
pub fn same_plan(a: &TopologyManifest, b: &TopologyManifest) -> bool {
    a == b || matches!((plan_hash(a), plan_hash(b)), (Ok(x), Ok(y)) if x == y)
}

/// Assignments for the tests of this module and of [`crate::lifecycle`].
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeSet;

    use squall_control::{Assignment, WorkerSpec};
    use squall_model::TopologyManifest;

    use super::CurrentAssignment;

    const M: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  workers: 2
  spouts: [{name: s, component: sequence, parallelism: 2}]
  bolts: [{name: b, component: "null", parallelism: 2, inputs: [{from: s}]}]
"#;

    /// A two-worker `sequence → null` manifest, edited.
    pub(crate) fn manifest(edit: impl FnOnce(&mut TopologyManifest)) -> TopologyManifest {
        let mut m = TopologyManifest::from_yaml(M, "t").unwrap_or_else(|e| panic!("{e}"));
        edit(&mut m);
        m
    }

    /// An assignment of generation 3 over two workers.
    pub(crate) fn current(
        manifest: TopologyManifest,
        addresses: [&str; 2],
        tasks: [&[u32]; 2],
    ) -> CurrentAssignment {
        CurrentAssignment {
            assignment: Assignment {
                manifest: "topology.yaml".into(),
                base_dir: None,
                generation: 3,
                workers: (0..2)
                    .map(|i| WorkerSpec {
                        id: format!("t-{i}"),
                        address: addresses[i].to_owned(),
                        tasks: tasks[i].iter().copied().collect::<BTreeSet<u32>>(),
                    })
                    .collect(),
            },
            manifest,
        }
    }

    pub(crate) fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{current, manifest};
    use super::*;

    #[test]
    fn changes_are_classified_by_what_the_workers_must_do() {
        let base = current(manifest(|_| {}), ["a:1", "b:1"], [&[1, 2], &[3, 4]]);
        assert_eq!(classify(&base, &base.clone()), Change::None);
        let off = current(
            manifest(|m| m.spec.desired_state = DesiredState::Inactive),
            ["a:1", "b:1"],
            [&[1, 2], &[3, 4]],
        );
        assert_eq!(classify(&base, &off), Change::Activation);
        assert_eq!(classify(&off, &base), Change::Activation);
        let moved = current(manifest(|_| {}), ["a:1", "c:1"], [&[1, 2], &[3, 4]]);
        assert_eq!(classify(&base, &moved), Change::Move);
        let parallelism = current(
            manifest(|m| m.spec.bolts[0].parallelism = 3),
            ["a:1", "b:1"],
            [&[1, 2], &[3, 4]],
        );
        assert_eq!(classify(&base, &parallelism), Change::Rebalance);
        let config = current(
            manifest(|m| {
                m.spec.config.insert("k".into(), serde_json::json!(1));
            }),
            ["a:1", "b:1"],
            [&[1, 2], &[3, 4]],
        );
        assert_eq!(classify(&base, &config), Change::Rebalance);
        let retasked = current(manifest(|_| {}), ["a:1", "b:1"], [&[1, 3], &[2, 4]]);
        assert_eq!(classify(&base, &retasked), Change::Rebalance);
        // A drained (deactivated) old plan to an active new one is still a rebalance.
        let drained_old = current(
            manifest(|m| m.spec.desired_state = DesiredState::Inactive),
            ["a:1", "b:1"],
            [&[1, 2], &[3, 4]],
        );
        assert_eq!(classify(&drained_old, &parallelism), Change::Rebalance);
    }

    #[test]
    fn a_scale_up_rebalances_only_the_new_share_and_pod_settings_reach_no_engine() {
        let with_ackers = |workers: i32| {
            manifest(|m| {
                m.spec.ackers = Some(2);
                m.spec.workers = workers;
            })
        };
        let plan = squall_model::validate(&with_ackers(2), &squall_catalog::BuiltinKinds)
            .unwrap_or_else(|e| panic!("{e}"));
        let addresses = |n: usize| -> Vec<(String, String)> {
            (0..n)
                .map(|i| (format!("t-{i}"), format!("10.0.0.{i}:7000")))
                .collect()
        };
        let before = CurrentAssignment {
            assignment: Assignment::round_robin(&plan, "topology.yaml".into(), &addresses(2), 3),
            manifest: with_ackers(2),
        };
        // What `decide::next_assignment` writes for a scale-up.
        let after = CurrentAssignment {
            assignment: Assignment::rebalanced(&before.assignment, &plan, &addresses(3), 4),
            manifest: with_ackers(3),
        };
        assert!(
            same_plan(&before.manifest, &after.manifest),
            "with spec.ackers set, the worker count is not part of the plan"
        );
        assert_eq!(classify(&before, &after), Change::Rebalance);
        for w in &before.assignment.workers {
            let kept = &after
                .assignment
                .workers
                .iter()
                .find(|x| x.id == w.id)
                .map(|x| x.tasks.clone());
            assert!(
                kept.as_ref().is_some_and(|k| k.is_subset(&w.tasks)),
                "{} only gives tasks up",
                w.id
            );
        }
        // Six single-task executors over three workers: the new one takes two.
        assert_eq!(after.assignment.workers[2].tasks.len(), 2);

        let mut repodded = before.clone();
        repodded.manifest.spec.pod = Some(squall_model::PodSettings {
            image: Some("squall/worker:next".into()),
            ..Default::default()
        });
        repodded.manifest.spec.kill_wait_seconds = Some(5);
        assert_eq!(classify(&before, &repodded), Change::Activation);
    }
}
