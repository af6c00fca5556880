//! How a wanted assignment differs from the running one, and the Storm-like steps that
//! follow: activation in place, a drain before a rebalance, a drain before a kill. Pure
//! functions, unit-tested without an API server.

use std::time::Duration;

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

/// The same assignment with the manifest's spouts off.
fn inactive(mut a: CurrentAssignment) -> CurrentAssignment {
    a.manifest.spec.desired_state = DesiredState::Inactive;
    a
}

/// Whether two manifests describe the same plan, activation aside: the plan identity the
/// workers share ([`squall_control::plan_hash`]).
pub fn same_plan(a: &TopologyManifest, b: &TopologyManifest) -> bool {
    a == b || matches!((plan_hash(a), plan_hash(b)), (Ok(x), Ok(y)) if x == y)
}

/// What the workers have reported, for the next step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The drain deadline recorded when a rebalance deactivated the spouts.
    pub draining_until: Option<jiff::Timestamp>,
    /// Every worker runs the current assignment with its spouts off and no tree in flight.
    pub drained: bool,
    /// Every worker runs an engine on the current assignment generation.
    pub workers_current: bool,
    /// Now.
    pub now: jiff::Timestamp,
}

/// The next write towards the wanted assignment.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Write this now.
    Write(CurrentAssignment),
    /// Write this (the current assignment with its spouts off) and start the drain.
    Drain(CurrentAssignment),
    /// Write nothing yet: trees are draining, or workers are still loading a new plan.
    Wait,
}

/// Storm's rebalance, plus one guard against skew: deactivate, let in-flight trees
/// complete (at most until the deadline), write the new plan with its spouts still off,
/// and activate only once every worker runs it, so no tree is sent to a worker still on
/// the old plan. A first assignment starts the same way, inactive.
pub fn next_step(current: Option<&CurrentAssignment>, wanted: CurrentAssignment, p: Progress) -> Step {
    let Some(c) = current else {
        return Step::Write(inactive(wanted));
    };
    match classify(c, &wanted) {
        Change::None => Step::Write(wanted),
        // Same plan, same tasks: keep the current activation until it is switched.
        Change::Move if !is_active(&c.manifest) => Step::Write(inactive(wanted)),
        Change::Move => Step::Write(wanted),
        // Switching spouts on waits until every worker runs the plan; anything else (spouts
        // off, or a manifest that only reads differently) goes at once.
        Change::Activation
            if is_active(&wanted.manifest) && !is_active(&c.manifest) && !p.workers_current =>
        {
            Step::Wait
        }
        Change::Activation => Step::Write(wanted),
        Change::Rebalance => match p.draining_until {
            Some(deadline) if !p.drained && p.now < deadline => Step::Wait,
            Some(_) => Step::Write(inactive(wanted)),
            None if is_active(&c.manifest) => {
                let mut assignment = c.assignment.clone();
                assignment.generation += 1;
                let manifest = deactivated(&c.manifest);
                Step::Drain(CurrentAssignment { assignment, manifest })
            }
            None => Step::Write(inactive(wanted)),
        },
    }
}

/// Whether a kill may proceed to deleting the workers: once every tree has drained or the
/// wait (Storm's `kill -w`) has passed since the deletion was requested.
pub fn kill_may_proceed(
    deleted_at: jiff::Timestamp,
    wait: Duration,
    drained: bool,
    now: jiff::Timestamp,
) -> bool {
    let wait = jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX);
    drained
        || deleted_at
            .checked_add(wait)
            .map_or(true, |deadline| now >= deadline)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use squall_control::{Assignment, WorkerSpec};

    use super::*;

    const M: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  workers: 2
  spouts: [{name: s, component: sequence, parallelism: 2}]
  bolts: [{name: b, component: "null", parallelism: 2, inputs: [{from: s}]}]
"#;

    fn manifest(edit: impl FnOnce(&mut TopologyManifest)) -> TopologyManifest {
        let mut m = TopologyManifest::from_yaml(M, "t").unwrap_or_else(|e| panic!("{e}"));
        edit(&mut m);
        m
    }

    fn current(manifest: TopologyManifest, addresses: [&str; 2], tasks: [&[u32]; 2]) -> CurrentAssignment {
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

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

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

    fn progress(draining_until: Option<jiff::Timestamp>, drained: bool, workers_current: bool) -> Progress {
        Progress {
            draining_until,
            drained,
            workers_current,
            now: ts("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn a_rebalance_deactivates_drains_loads_the_plan_inactive_then_activates() {
        let base = current(manifest(|_| {}), ["a:1", "b:1"], [&[1, 2], &[3, 4]]);
        let wanted = current(
            manifest(|m| m.spec.bolts[0].parallelism = 3),
            ["a:1", "b:1"],
            [&[1, 3], &[2, 4]],
        );
        let Step::Drain(off) = next_step(Some(&base), wanted.clone(), progress(None, false, true)) else {
            panic!("an active topology is not deactivated before a rebalance");
        };
        assert_eq!(off.assignment.generation, 4);
        assert_eq!(off.assignment.workers, base.assignment.workers);
        assert!(!is_active(&off.manifest));
        assert_eq!(classify(&base, &off), Change::Activation);

        let deadline = Some(ts("2026-01-01T00:00:30Z"));
        let step = |p: Progress| next_step(Some(&off), wanted.clone(), p);
        assert_eq!(step(progress(deadline, false, true)), Step::Wait);
        let mut late = progress(deadline, false, true);
        late.now = ts("2026-01-01T00:00:31Z");
        let Step::Write(loaded) = step(progress(deadline, true, true)) else {
            panic!("drained, but the new plan is not written");
        };
        assert_eq!(
            step(late),
            Step::Write(loaded.clone()),
            "the deadline ends the drain too"
        );
        assert!(
            !is_active(&loaded.manifest),
            "the new plan must start with its spouts off"
        );
        assert!(same_plan(&loaded.manifest, &wanted.manifest));
        assert_eq!(loaded.assignment.workers, wanted.assignment.workers);

        // Activation once every worker runs the new plan.
        assert_eq!(
            next_step(Some(&loaded), wanted.clone(), progress(None, false, false)),
            Step::Wait
        );
        assert_eq!(
            next_step(Some(&loaded), wanted.clone(), progress(None, false, true)),
            Step::Write(wanted.clone())
        );
    }

    #[test]
    fn first_plans_start_inactive_and_deactivation_or_moves_go_at_once() {
        let wanted = current(manifest(|_| {}), ["a:1", "b:1"], [&[1, 2], &[3, 4]]);
        let Step::Write(first) = next_step(None, wanted.clone(), progress(None, false, false)) else {
            panic!("no first assignment");
        };
        assert!(!is_active(&first.manifest));
        let off = current(
            manifest(|m| m.spec.desired_state = DesiredState::Inactive),
            ["a:1", "b:1"],
            [&[1, 2], &[3, 4]],
        );
        assert_eq!(
            next_step(Some(&wanted), off.clone(), progress(None, false, false)),
            Step::Write(off.clone()),
            "a deactivation waits for nothing"
        );
        let moved = current(manifest(|_| {}), ["a:1", "c:1"], [&[1, 2], &[3, 4]]);
        assert_eq!(
            next_step(Some(&wanted), moved.clone(), progress(None, false, false)),
            Step::Write(moved.clone())
        );
        // Same plan, both active, only the text differs: it reads as the same manifest.
        let text = format!("# reworded\n{}", wanted.manifest.to_yaml().unwrap_or_default());
        let mut reworded = wanted.clone();
        reworded.manifest = TopologyManifest::from_yaml(&text, "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(classify(&wanted, &reworded), Change::None);
        assert_eq!(
            next_step(Some(&wanted), reworded.clone(), progress(None, false, false)),
            Step::Write(reworded)
        );
        // A move while the activation is pending keeps the spouts off.
        let Step::Write(m) = next_step(Some(&first), moved, progress(None, false, false)) else {
            panic!("move not written");
        };
        assert!(!is_active(&m.manifest));
    }

    #[test]
    fn a_kill_waits_for_the_drain_or_the_wait() {
        let deleted = ts("2026-01-01T00:00:00Z");
        let wait = Duration::from_secs(30);
        assert!(!kill_may_proceed(
            deleted,
            wait,
            false,
            ts("2026-01-01T00:00:29Z")
        ));
        assert!(kill_may_proceed(deleted, wait, true, ts("2026-01-01T00:00:01Z")));
        assert!(kill_may_proceed(deleted, wait, false, ts("2026-01-01T00:00:30Z")));
        assert!(kill_may_proceed(deleted, Duration::ZERO, false, deleted));
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
