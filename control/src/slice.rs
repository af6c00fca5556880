//! What one worker's engine is built from, so a worker can tell whether a new assignment
//! needs a new engine or only new routes to its peers.
//!
//! An engine reads its own tasks, every component's shape (tasks, executors, streams,
//! subscriptions: it routes to and receives from all of them), the topology-wide settings
//! and config, and the config, shell command and tick of the components it hosts. It does
//! not read other components' config, activation (switched in place), the pod settings
//! or the kill wait (the operator's alone), nor the worker count, which counts only
//! through the default acker count.

use std::collections::BTreeSet;

use squall_model::{ComponentPlan, DesiredState, Plan, TopologySpec};

/// The part of a spec an engine reads; the rest is normalised away, so two specs that
/// differ only there give equal results. [`crate::plan_hash`] hashes this.
pub fn engine_spec(spec: &TopologySpec) -> TopologySpec {
    let mut s = spec.clone();
    // Spouts are switched on and off in running engines.
    s.desired_state = DesiredState::Active;
    // Read by the operator and the kubelet, never by an engine.
    s.pod = None;
    s.tls = None;
    s.kill_wait_seconds = None;
    // Read by the operator only: new settings restart no engine.
    s.autoscaling = None;
    // The worker count reaches the engine only as the default acker count.
    s.ackers = Some(spec.ackers.unwrap_or(spec.workers));
    s.workers = 1;
    s
}

/// What a worker's engine depends on: its tasks and the plan reduced to what the engine
/// reads with those tasks. An engine whose slice is unchanged by a new assignment keeps
/// running; the worker only gives it new routes.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineSlice {
    tasks: BTreeSet<u32>,
    plan: Plan,
}

impl EngineSlice {
    /// The slice of the engine running `local` tasks of `plan`.
    pub fn of(plan: &Plan, local: &BTreeSet<u32>) -> Self {
        let mut reduced = plan.clone();
        reduced.spec = engine_spec(&plan.spec);
        // The components below carry everything of these the engine reads, resolved.
        reduced.spec.spouts.clear();
        reduced.spec.bolts.clear();
        for c in &mut reduced.components {
            if !hosts(c, local) {
                // Only an executor reads its component's config, command and tick.
                c.config.clear();
                c.shell = None;
                c.tick = None;
            }
        }
        EngineSlice {
            tasks: local.clone(),
            plan: reduced,
        }
    }

    /// The engine's tasks.
    pub fn tasks(&self) -> &BTreeSet<u32> {
        &self.tasks
    }

    /// What differs from `other`, for the log line of a restart: `tasks`, `topology`
    /// (settings or config), or the names of the components that differ.
    pub fn differences(&self, other: &EngineSlice) -> Vec<String> {
        let mut out = Vec::new();
        if self.tasks != other.tasks {
            out.push("tasks".to_owned());
        }
        let (mut a, mut b) = (self.plan.clone(), other.plan.clone());
        a.components.clear();
        b.components.clear();
        if a != b {
            out.push("topology".to_owned());
        }
        let names: BTreeSet<&str> = self
            .plan
            .components
            .iter()
            .chain(&other.plan.components)
            .map(|c| c.name.as_str())
            .collect();
        for name in names {
            if self.plan.component(name) != other.plan.component(name) {
                out.push(name.to_owned());
            }
        }
        out
    }
}

fn hosts(c: &ComponentPlan, local: &BTreeSet<u32>) -> bool {
    c.tasks.iter().any(|t| local.contains(t))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use squall_model::{Catalog, Config, KindInfo, Role, StreamSpec, TopologyManifest};

    use super::*;

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

    const M: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: a}
spec:
  workers: 2
  ackers: 1
  spouts: [{name: s, component: sequence, config: {rate: 1}}]
  bolts: [{name: b, component: "null", config: {x: 1}, inputs: [{from: s}]}]
"#;

    fn plan(edit: impl FnOnce(&mut TopologyManifest)) -> Plan {
        let mut m = TopologyManifest::from_yaml(M, "t").unwrap();
        edit(&mut m);
        squall_model::validate(&m, &Kinds).unwrap()
    }

    fn tasks_of(p: &Plan, name: &str) -> BTreeSet<u32> {
        p.component(name).unwrap().tasks.iter().copied().collect()
    }

    #[test]
    fn a_component_config_change_reaches_only_the_engines_hosting_it() {
        let old = plan(|_| {});
        let new = plan(|m| {
            m.spec.bolts[0].config.insert("x".into(), 2.into());
        });
        let (b, s) = (tasks_of(&old, "b"), tasks_of(&old, "s"));
        assert_eq!(EngineSlice::of(&old, &s), EngineSlice::of(&new, &s));
        let (before, after) = (EngineSlice::of(&old, &b), EngineSlice::of(&new, &b));
        assert_ne!(before, after);
        assert_eq!(before.differences(&after), ["b"]);
    }

    #[test]
    fn what_no_engine_reads_changes_no_slice() {
        let old = plan(|_| {});
        let new = plan(|m| {
            m.spec.desired_state = DesiredState::Inactive;
            m.spec.kill_wait_seconds = Some(5);
            m.spec.workers = 3;
            m.spec.pod = Some(squall_model::PodSettings {
                image: Some("other".into()),
                ..Default::default()
            });
        });
        for c in &old.components {
            let local = c.tasks.iter().copied().collect();
            assert_eq!(EngineSlice::of(&old, &local), EngineSlice::of(&new, &local));
        }
    }

    #[test]
    fn the_default_acker_count_follows_the_worker_count() {
        let unset = |workers| {
            plan(|m| {
                m.spec.ackers = None;
                m.spec.workers = workers;
            })
        };
        let (two, three) = (unset(2), unset(3));
        let s = tasks_of(&two, "s");
        let (before, after) = (EngineSlice::of(&two, &s), EngineSlice::of(&three, &s));
        assert_ne!(before, after, "a third acker task");
        assert!(before.differences(&after).contains(&"__acker".to_owned()));
    }

    #[test]
    fn shape_and_topology_settings_reach_every_engine() {
        let old = plan(|_| {});
        let s = tasks_of(&old, "s");
        let wider = plan(|m| m.spec.bolts[0].parallelism = 2);
        assert_ne!(EngineSlice::of(&old, &s), EngineSlice::of(&wider, &s));
        let timeout = plan(|m| m.spec.message_timeout_seconds = 9);
        assert_eq!(
            EngineSlice::of(&old, &s).differences(&EngineSlice::of(&timeout, &s)),
            ["topology"]
        );
        let moved: BTreeSet<u32> = s.iter().chain(&tasks_of(&old, "b")).copied().collect();
        assert_eq!(
            EngineSlice::of(&old, &s).differences(&EngineSlice::of(&old, &moved)),
            ["tasks", "b"]
        );
    }
}
