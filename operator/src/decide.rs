//! Observe → decide → act: the decisions as pure functions of what was observed.

use squall_control::{Assignment, MANIFEST_KEY};
use squall_model::crd::{Phase, TopologyCondition, TopologyStatus};
use squall_model::{Plan, TopologyManifest};

pub use crate::change::CurrentAssignment;
use crate::change::{is_active, same_plan};
use crate::lifecycle::{Asks, Lifecycle, Observation, Step};

/// A worker pod as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPod {
    /// Pod name; also the worker id.
    pub name: String,
    /// StatefulSet ordinal (the number after the last `-`).
    pub ordinal: Option<i32>,
    /// Pod IP once it has one.
    pub ip: Option<String>,
    /// Readiness condition.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Its worker's Lease (held by this pod) was not renewed within its duration.
    pub lease_expired: bool,
    /// Bound to a node that is not Ready: no kubelet will run or finish it there.
    pub node_lost: bool,
}

/// Everything a decision depends on.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The validated plan, or why the spec was rejected.
    pub plan: Result<&'a Plan, String>,
    /// The manifest the workers should run.
    pub manifest: &'a TopologyManifest,
    /// `spec.workers`.
    pub workers: i32,
    /// `spec.desiredState` is Inactive.
    pub inactive: bool,
    /// The worker pods.
    pub pods: &'a [ObservedPod],
    /// The ConfigMap's assignment, if any.
    pub current: Option<&'a CurrentAssignment>,
    /// The status as last written.
    pub previous: Option<&'a TopologyStatus>,
    /// Label selector of the worker pods.
    pub selector: &'a str,
    /// Now: condition transition times and the drain deadline.
    pub now: jiff::Timestamp,
    /// Every worker of the current assignment reported its spouts off and no tree in
    /// flight (asked only when [`asks`] says the next step needs it).
    pub drained: bool,
    /// Every worker runs an engine on the current assignment's generation (likewise).
    pub workers_current: bool,
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The status to write.
    pub status: TopologyStatus,
    /// A new assignment to write into the ConfigMap, with its manifest.
    pub write: Option<CurrentAssignment>,
    /// Events to publish: (reason, note, is a warning).
    pub events: Vec<(String, String, bool)>,
    /// Pods to delete at once (their worker's Lease expired); the StatefulSet recreates them.
    pub replace: Vec<String>,
    /// A step waits on the workers (a drain, or loading a plan before activation): look
    /// again soon.
    pub waiting: bool,
    /// Where the topology stands once this decision is carried out (as observed when the
    /// spec is rejected: nothing changes then).
    pub lifecycle: Lifecycle,
}

/// The worker ids and addresses an assignment needs: pods with ordinals below the worker
/// count, all with an IP, or `None` while some are missing.
pub fn worker_addresses(pods: &[ObservedPod], workers: i32, port: i32) -> Option<Vec<(String, String)>> {
    let mut live: Vec<&ObservedPod> = pods
        .iter()
        .filter(|p| !p.terminating && p.ordinal.is_some_and(|o| o < workers) && p.ip.is_some())
        .collect();
    live.sort_by_key(|p| p.ordinal);
    if live.len() != usize::try_from(workers).ok()? {
        return None;
    }
    Some(
        live.iter()
            .filter_map(|p| Some((p.name.clone(), format!("{}:{port}", p.ip.as_ref()?))))
            .collect(),
    )
}

/// The assignment to write, if the current one does not fit the pods or the manifest.
/// The first one deals executors round-robin over the workers in ordinal order; later
/// ones are rebalanced from the current one ([`Assignment::rebalanced`]): workers keep
/// their tasks by id, so a worker that only moved to a new address keeps its tasks, and
/// a scale-up moves only the new workers' share. Workers whose tasks and slice of the
/// plan stay the same keep their engines.
pub fn next_assignment(
    plan: &Plan,
    manifest: &TopologyManifest,
    workers: &[(String, String)],
    current: Option<&CurrentAssignment>,
    last_generation: u64,
) -> Option<CurrentAssignment> {
    let generation = current.map_or(last_generation, |c| c.assignment.generation) + 1;
    let fresh = match current {
        Some(c) => Assignment::rebalanced(&c.assignment, plan, workers, generation),
        None => Assignment::round_robin(plan, MANIFEST_KEY.into(), workers, generation),
    };
    if let Some(c) = current {
        if c.manifest == *manifest && c.assignment.workers == fresh.workers {
            return None;
        }
    }
    Some(CurrentAssignment {
        assignment: fresh,
        manifest: manifest.clone(),
    })
}

fn condition(
    previous: Option<&TopologyStatus>,
    now: &str,
    generation: Option<i64>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> TopologyCondition {
    let status = if status { "True" } else { "False" }.to_owned();
    // The transition time moves only when the condition's status does.
    let since = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_owned());
    TopologyCondition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time: Some(since),
        observed_generation: generation,
    }
}

/// An Event to publish: reason, note, whether it is a warning.
type Event = (String, String, bool);

/// The decision for one reconcile: which pods to replace, then the assignment step and
/// the status it leads to.
pub fn decide(o: &Observed<'_>) -> Decision {
    let now = o.now.to_string();
    let cond = |t: &str, s: bool, r: &str, m: String| condition(o.previous, &now, o.generation, t, s, r, m);
    let mut events = Vec::new();
    let replace = replacements(o, &mut events);
    let ready = o
        .pods
        .iter()
        .filter(|p| {
            p.ready
                && !p.terminating
                && !p.lease_expired
                && !p.node_lost
                && p.ordinal.is_some_and(|i| i < o.workers)
        })
        .count();
    let ready = i32::try_from(ready).unwrap_or(i32::MAX);
    let mut status = TopologyStatus {
        observed_generation: o.generation,
        desired_workers: o.workers,
        ready_workers: ready,
        assignment_generation: o
            .current
            .and_then(|c| i64::try_from(c.assignment.generation).ok()),
        selector: Some(o.selector.to_owned()),
        ..TopologyStatus::default()
    };
    let plan = match &o.plan {
        Ok(plan) => *plan,
        Err(problem) => {
            // What runs keeps running, a drain included: its deadline stays for when the
            // spec is fixed (or edited back).
            let lifecycle = observe(o);
            status.drain_deadline = lifecycle.drain_deadline().map(|d| d.to_string());
            status.phase = Phase::Failed;
            status.last_error = Some(problem.clone());
            status.conditions = vec![
                cond("Ready", false, "InvalidSpec", problem.clone()),
                cond("Progressing", false, "InvalidSpec", "fix the spec".into()),
                cond("Degraded", false, "InvalidSpec", String::new()),
            ];
            if o.previous.map(|p| p.phase) != Some(Phase::Failed)
                || o.previous.and_then(|p| p.last_error.as_deref()) != Some(problem.as_str())
            {
                events.push(("InvalidSpec".into(), problem.clone(), true));
            }
            return Decision {
                status,
                write: None,
                events,
                replace,
                waiting: false,
                lifecycle,
            };
        }
    };
    status.ackers = i32::try_from(plan.ackers).ok();
    let step = assignment_step(o, plan, &mut events);
    status.drain_deadline = step.lifecycle.drain_deadline().map(|d| d.to_string());
    let draining = step.lifecycle.is_draining();
    let assigned = match (&step.write, o.current) {
        (Some(w), _) => Some(&w.assignment),
        (None, Some(c)) if same_plan(&c.manifest, o.manifest) || draining => Some(&c.assignment),
        _ => None,
    };
    if let Some(w) = &step.write {
        status.assignment_generation = i64::try_from(w.assignment.generation).ok();
        events.push((
            "Assigned".into(),
            format!(
                "assignment generation {} over {} workers",
                w.assignment.generation,
                w.assignment.workers.len()
            ),
            false,
        ));
    }
    let complete = assigned.is_some_and(|a| a.workers.len() == usize::try_from(o.workers).unwrap_or(0));
    phase_and_conditions(
        o,
        &mut status,
        complete && ready == o.workers,
        draining,
        &mut events,
    );
    Decision {
        status,
        write: step.write,
        events,
        replace,
        waiting: step.waiting,
        lifecycle: step.lifecycle,
    }
}

/// Pods to delete now: a lost node's, even while terminating (without a kubelet their
/// deletion never completes and the StatefulSet would never recreate them), and those
/// whose Lease expired.
fn replacements(o: &Observed<'_>, events: &mut Vec<Event>) -> Vec<String> {
    let replace: Vec<String> = o
        .pods
        .iter()
        .filter(|p| p.node_lost || (p.lease_expired && !p.terminating))
        .map(|p| p.name.clone())
        .collect();
    for p in o.pods.iter().filter(|p| replace.contains(&p.name)) {
        let (reason, why) = if p.node_lost {
            ("WorkerNodeLost", "is on a node that is not ready")
        } else {
            ("WorkerLeaseExpired", "stopped renewing its lease")
        };
        events.push((
            reason.into(),
            format!("worker {} {why}; replacing its pod", p.name),
            true,
        ));
    }
    replace
}

/// What [`assignment_step`] decided.
struct AssignmentStep {
    write: Option<CurrentAssignment>,
    lifecycle: Lifecycle,
    waiting: bool,
}

/// The lifecycle as observed: the ConfigMap's assignment and the drain deadline last
/// written to the status (a deletion takes the other path, `kill`).
fn observe(o: &Observed<'_>) -> Lifecycle {
    let deadline = o.previous.and_then(|p| p.drain_deadline.as_deref());
    Lifecycle::observe(o.current, deadline, None)
}

/// What the lifecycle's next transition is decided on: the assignment the spec and the
/// pods call for, what the workers said, and now.
fn observation<'a>(o: &Observed<'a>, plan: &Plan) -> Observation<'a> {
    let addresses = worker_addresses(o.pods, o.workers, crate::DATA_PORT);
    // Generations only grow, also past a ConfigMap that is gone or unreadable: workers and
    // probes compare them.
    let last_generation = o
        .previous
        .and_then(|p| p.assignment_generation)
        .and_then(|g| u64::try_from(g).ok())
        .unwrap_or(0);
    // No new assignment means the current one fits.
    let wanted = addresses.and_then(|workers| {
        next_assignment(plan, o.manifest, &workers, o.current, last_generation).or_else(|| o.current.cloned())
    });
    Observation {
        current: o.current,
        wanted,
        drain_for: plan.message_timeout,
        drained: o.drained,
        workers_current: o.workers_current,
        now: o.now,
    }
}

/// Which questions to the workers the next step needs answered, before they are asked:
/// none for a rejected spec, whose decision writes nothing.
pub fn asks(o: &Observed<'_>) -> Asks {
    match &o.plan {
        Ok(plan) => observe(o).asks(&observation(o, plan)),
        Err(_) => Asks::default(),
    }
}

/// The next assignment to write, if any: the lifecycle's next transition, with its Events.
fn assignment_step(o: &Observed<'_>, plan: &Plan, events: &mut Vec<Event>) -> AssignmentStep {
    let from = observe(o);
    let observation = observation(o, plan);
    let t = match from.next(&observation) {
        Ok(t) => t,
        Err(e) => {
            // Unreachable by the table's tests; if it happens, write nothing and say so.
            events.push(("LifecycleRejected".into(), e.to_string(), true));
            return AssignmentStep {
                write: None,
                lifecycle: from,
                waiting: false,
            };
        }
    };
    if let Some(event) = transition_event(from, t.step, t.write.as_ref(), &observation) {
        events.push(event);
    }
    // Spouts wanted on but still off (a drain cancelled before the workers run the plan):
    // the activation follows as soon as they do.
    let activation_pending = t.to == Lifecycle::Inactive
        && observation
            .wanted
            .as_ref()
            .is_some_and(|w| is_active(&w.manifest));
    AssignmentStep {
        waiting: t.step == Step::Wait || activation_pending,
        write: t.write,
        lifecycle: t.to,
    }
}

/// The Event a transition of a rebalance makes, with a reason of its own per transition.
fn transition_event(
    from: Lifecycle,
    step: Step,
    write: Option<&CurrentAssignment>,
    o: &Observation<'_>,
) -> Option<Event> {
    let seconds = o.drain_for.as_secs();
    let (reason, note) = match (from, step) {
        (Lifecycle::Draining { .. }, Step::Deactivate) => (
            "Draining",
            format!(
                "spouts found on mid-drain; deactivated again, waiting up to {seconds} s for in-flight trees before the new plan"
            ),
        ),
        (_, Step::Deactivate) => (
            "Draining",
            format!("spouts deactivated; waiting up to {seconds} s for in-flight trees before the new plan"),
        ),
        (Lifecycle::Draining { deadline }, Step::Rebalance) => {
            let how = if o.now >= deadline {
                "drain deadline passed"
            } else {
                "in-flight trees drained"
            };
            (
                "Rebalanced",
                format!("{how}; loading the new plan, spouts off until every worker runs it"),
            )
        }
        (_, Step::CancelRebalance) => {
            let then = match write.or(o.current) {
                Some(a) if is_active(&a.manifest) => "spouts on again",
                _ if o.wanted.as_ref().is_some_and(|w| is_active(&w.manifest)) => {
                    "spouts off until every worker runs it"
                }
                _ => "spouts stay off as the spec says",
            };
            (
                "RebalanceCancelled",
                format!("the spec is back at the running plan; drain ended, {then}"),
            )
        }
        _ => return None,
    };
    Some((reason.to_owned(), note, false))
}

/// The phase and the Ready, Progressing and Degraded conditions, with an Event when the
/// phase changes.
fn phase_and_conditions(
    o: &Observed<'_>,
    status: &mut TopologyStatus,
    all_ready: bool,
    draining: bool,
    events: &mut Vec<Event>,
) {
    let now = o.now.to_string();
    let cond = |t: &str, s: bool, r: &str, m: String| condition(o.previous, &now, o.generation, t, s, r, m);
    let prev_phase = o.previous.map(|p| p.phase);
    let was_up = matches!(
        prev_phase,
        Some(Phase::Running | Phase::Degraded | Phase::Inactive)
    );
    let progress = format!("{} of {} workers ready", status.ready_workers, o.workers);
    status.phase = if all_ready && o.inactive {
        Phase::Inactive
    } else if all_ready {
        Phase::Running
    } else if was_up {
        Phase::Degraded
    } else {
        Phase::Pending
    };
    let degraded = status.phase == Phase::Degraded;
    status.conditions = vec![
        cond(
            "Ready",
            all_ready,
            if all_ready {
                "AllWorkersReady"
            } else {
                "WorkersNotReady"
            },
            progress.clone(),
        ),
        if draining {
            cond(
                "Progressing",
                true,
                "Rebalancing",
                "spouts deactivated; in-flight trees draining before the new plan".into(),
            )
        } else {
            cond(
                "Progressing",
                !all_ready,
                if all_ready { "Stable" } else { "CreatingWorkers" },
                progress.clone(),
            )
        },
        cond(
            "Degraded",
            degraded,
            if degraded { "WorkersNotReady" } else { "AsExpected" },
            if degraded { progress.clone() } else { String::new() },
        ),
    ];
    if prev_phase != Some(status.phase) {
        events.push((status.phase.as_str().to_owned(), progress, degraded));
    }
}

/// The StatefulSet ordinal of a pod name (`NAME-3` → 3).
pub fn ordinal(pod: &str) -> Option<i32> {
    pod.rsplit_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::TopologyManifest;

    const MANIFEST: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  workers: 2
  spouts: [{name: s, component: sequence, parallelism: 2}]
  bolts: [{name: b, component: "null", parallelism: 2, inputs: [{from: s}]}]
"#;

    /// [`MANIFEST`], parsed.
    static PARSED: std::sync::LazyLock<TopologyManifest> = std::sync::LazyLock::new(|| {
        TopologyManifest::from_yaml(MANIFEST, "t").unwrap_or_else(|e| panic!("test manifest: {e}"))
    });

    fn plan() -> Plan {
        squall_model::validate(&PARSED, &squall_catalog::BuiltinKinds)
            .unwrap_or_else(|e| panic!("test manifest is invalid: {e}"))
    }

    fn pod(i: i32, ip: Option<&str>, ready: bool) -> ObservedPod {
        ObservedPod {
            name: format!("t-{i}"),
            ordinal: Some(i),
            ip: ip.map(str::to_owned),
            ready,
            terminating: false,
            lease_expired: false,
            node_lost: false,
        }
    }

    fn observed<'a>(
        plan: &'a Plan,
        pods: &'a [ObservedPod],
        current: Option<&'a CurrentAssignment>,
        previous: Option<&'a TopologyStatus>,
    ) -> Observed<'a> {
        Observed {
            generation: Some(1),
            plan: Ok(plan),
            manifest: &PARSED,
            workers: 2,
            inactive: false,
            pods,
            current,
            previous,
            selector: "squall.dev/topology=t",
            now: jiff::Timestamp::UNIX_EPOCH,
            drained: false,
            workers_current: false,
        }
    }

    #[test]
    fn no_assignment_until_every_worker_has_an_ip() {
        let plan = plan();
        let pods = [pod(0, Some("10.0.0.1"), false), pod(1, None, false)];
        let d = decide(&observed(&plan, &pods, None, None));
        assert_eq!(d.write, None);
        assert_eq!(d.status.phase, Phase::Pending);
        assert_eq!(d.status.desired_workers, 2);
        assert!(d.events.iter().any(|e| e.0 == "Pending"));
    }

    #[test]
    fn first_assignment_spreads_executors_then_running_when_ready() {
        let plan = plan();
        let pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        let d = decide(&observed(&plan, &pods, None, None));
        let w = d.write.clone().unwrap_or_else(|| panic!("no assignment"));
        assert_eq!(w.assignment.generation, 1);
        assert_eq!(w.assignment.workers.len(), 2);
        assert!(w.assignment.workers.iter().all(|w| !w.tasks.is_empty()));
        assert_eq!(w.assignment.workers[0].address, "10.0.0.1:7000");
        w.assignment.check(&plan).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.status.phase, Phase::Running);
        assert_eq!(d.status.assignment_generation, Some(1));
        // The same observation again changes nothing: no new generation, no events.
        let again = decide(&observed(&plan, &pods, Some(&w), Some(&d.status)));
        assert_eq!(again.write, None);
        assert!(again.events.is_empty());
        assert_eq!(again.status, d.status);
    }

    #[test]
    fn a_replaced_pod_keeps_its_tasks_at_a_new_address() {
        let plan = plan();
        let pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        let first = decide(&observed(&plan, &pods, None, None));
        let cur = first.write.clone().unwrap_or_else(|| panic!("no assignment"));
        let moved = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.9"), false)];
        let d = decide(&observed(&plan, &moved, Some(&cur), Some(&first.status)));
        let next = d.write.unwrap_or_else(|| panic!("no new assignment"));
        assert_eq!(next.assignment.generation, 2);
        assert_eq!(next.assignment.workers[1].address, "10.0.0.9:7000");
        assert_eq!(next.assignment.workers[1].tasks, cur.assignment.workers[1].tasks);
        assert_eq!(d.status.phase, Phase::Degraded);
        assert!(d
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "True"));
    }

    #[test]
    fn a_manifest_change_bumps_the_generation() {
        let plan = plan();
        let pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        let first = decide(&observed(&plan, &pods, None, None));
        let cur = first.write.clone().unwrap_or_else(|| panic!("no assignment"));
        let (m2, _) = manifest_with(|m| {
            m.metadata.labels.insert("k".into(), "v".into());
        });
        let mut o = observed(&plan, &pods, Some(&cur), Some(&first.status));
        o.manifest = &m2;
        let d = decide(&o);
        assert_eq!(d.write.map(|w| w.assignment.generation), Some(2));
    }

    #[test]
    fn an_invalid_spec_fails_with_a_condition_and_one_warning() {
        let plan = plan();
        let mut o = observed(&plan, &[], None, None);
        o.plan = Err("bolt b: unknown stream".to_owned());
        let d = decide(&o);
        assert_eq!(d.status.phase, Phase::Failed);
        assert_eq!(d.status.last_error.as_deref(), Some("bolt b: unknown stream"));
        assert!(d
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == "InvalidSpec"));
        assert_eq!(
            d.events,
            vec![(
                "InvalidSpec".to_owned(),
                "bolt b: unknown stream".to_owned(),
                true
            )]
        );
        o.previous = Some(&d.status);
        assert!(decide(&o).events.is_empty(), "the same problem is reported once");
    }

    #[test]
    fn inactive_and_scaled_down() {
        let plan = plan();
        let pods = [
            pod(0, Some("10.0.0.1"), true),
            pod(1, Some("10.0.0.2"), true),
            pod(2, Some("10.0.0.3"), true),
        ];
        let mut o = observed(&plan, &pods, None, None);
        o.inactive = true;
        let d = decide(&o);
        assert_eq!(d.status.phase, Phase::Inactive);
        assert_eq!(d.status.ready_workers, 2, "the third pod is beyond spec.workers");
        assert_eq!(d.write.map(|w| w.assignment.workers.len()), Some(2));
    }

    #[test]
    fn an_expired_lease_replaces_the_pod_and_degrades() {
        let plan = plan();
        let pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        let first = decide(&observed(&plan, &pods, None, None));
        let cur = first.write.clone().unwrap_or_else(|| panic!("no assignment"));
        let mut hung = pods.clone();
        hung[1].lease_expired = true;
        let d = decide(&observed(&plan, &hung, Some(&cur), Some(&first.status)));
        assert_eq!(d.replace, vec!["t-1".to_owned()]);
        assert_eq!(d.status.ready_workers, 1);
        assert_eq!(d.status.phase, Phase::Degraded);
        assert!(d.events.iter().any(|e| e.0 == "WorkerLeaseExpired" && e.2));
    }

    #[test]
    fn pods_on_a_lost_node_are_replaced_even_while_terminating() {
        let plan = plan();
        let mut pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        pods[0].node_lost = true;
        pods[0].terminating = true;
        let d = decide(&observed(&plan, &pods, None, None));
        assert_eq!(d.replace, vec!["t-0".to_owned()]);
        assert_eq!(d.status.ready_workers, 1);
        assert!(d.events.iter().any(|e| e.0 == "WorkerNodeLost"));
    }

    fn manifest_with(edit: impl FnOnce(&mut TopologyManifest)) -> (TopologyManifest, Plan) {
        let mut m = PARSED.clone();
        edit(&mut m);
        let plan =
            squall_model::validate(&m, &squall_catalog::BuiltinKinds).unwrap_or_else(|e| panic!("{e}"));
        (m, plan)
    }

    #[test]
    fn a_parallelism_change_deactivates_and_drains_before_the_new_plan() {
        let (m1, p1) = manifest_with(|_| {});
        let pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        let mut o = observed(&p1, &pods, None, None);
        o.manifest = &m1;
        let first = decide(&o);
        let mut cur = first.write.clone().unwrap_or_else(|| panic!("no assignment"));
        assert!(
            !crate::change::is_active(&cur.manifest),
            "a first plan starts inactive"
        );
        // Every worker runs it: the spouts are switched on.
        let mut o = observed(&p1, &pods, Some(&cur), Some(&first.status));
        o.manifest = &m1;
        assert_eq!(
            decide(&o).write,
            None,
            "activated before the workers run the plan"
        );
        o.workers_current = true;
        let on = decide(&o).write.unwrap_or_else(|| panic!("not activated"));
        assert_eq!(on.manifest, m1);
        assert_eq!(on.assignment.workers, cur.assignment.workers);
        cur = on;

        let (m2, p2) = manifest_with(|m| m.spec.bolts[0].parallelism = 3);
        let mut o = observed(&p2, &pods, Some(&cur), Some(&first.status));
        o.manifest = &m2;
        let d = decide(&o);
        let off = d
            .write
            .clone()
            .unwrap_or_else(|| panic!("no deactivation written"));
        assert!(
            !crate::change::is_active(&off.manifest),
            "spouts not deactivated first"
        );
        assert_eq!(
            off.assignment.workers, cur.assignment.workers,
            "tasks moved before the drain"
        );
        assert!(d.status.drain_deadline.is_some());
        assert_eq!(d.status.phase, Phase::Running);
        assert!(d
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason == "Rebalancing"));

        // Trees still in flight: nothing new is written, the deadline holds.
        let mut o = observed(&p2, &pods, Some(&off), Some(&d.status));
        o.manifest = &m2;
        let waiting = decide(&o);
        assert_eq!(waiting.write, None);
        assert_eq!(waiting.status.drain_deadline, d.status.drain_deadline);

        // Drained: the new plan with its spouts off, and the drain is over.
        o.drained = true;
        let done = decide(&o);
        let new = done
            .write
            .clone()
            .unwrap_or_else(|| panic!("new plan not written"));
        assert!(crate::change::same_plan(&new.manifest, &m2));
        assert!(!crate::change::is_active(&new.manifest));
        assert_eq!(new.assignment.generation, off.assignment.generation + 1);
        new.assignment.check(&p2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.status.drain_deadline, None);
        assert!(done.events.iter().any(|e| e.0 == "Rebalanced"));

        // Past the deadline without a drain: the new plan too.
        let mut o = observed(&p2, &pods, Some(&off), Some(&d.status));
        o.manifest = &m2;
        o.now = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(31);
        assert_eq!(decide(&o).write, Some(new.clone()));

        // Then active, once every worker runs it.
        let mut o = observed(&p2, &pods, Some(&new), Some(&done.status));
        o.manifest = &m2;
        o.workers_current = true;
        assert_eq!(decide(&o).write.map(|w| w.manifest), Some(m2.clone()));
    }

    #[test]
    fn deactivation_is_written_at_once_without_a_drain() {
        let (m1, p1) = manifest_with(|_| {});
        let pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        let mut o = observed(&p1, &pods, None, None);
        o.manifest = &m1;
        let first = decide(&o);
        let mut cur = first.write.clone().unwrap_or_else(|| panic!("no assignment"));
        cur.manifest = m1.clone();
        let (m2, p2) = manifest_with(|m| m.spec.desired_state = squall_model::DesiredState::Inactive);
        let mut o = observed(&p2, &pods, Some(&cur), Some(&first.status));
        o.manifest = &m2;
        o.inactive = true;
        let d = decide(&o);
        let w = d.write.unwrap_or_else(|| panic!("deactivation not written"));
        assert_eq!(w.manifest, m2);
        assert_eq!(w.assignment.workers, cur.assignment.workers);
        assert_eq!(d.status.drain_deadline, None);
        assert_eq!(d.status.phase, Phase::Inactive);
    }

    fn two_pods() -> [ObservedPod; 2] {
        [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)]
    }

    /// A topology running its first plan, spouts on, then the decision that starts the
    /// drain of a parallelism change.
    struct Drain {
        m1: TopologyManifest,
        p1: Plan,
        running: CurrentAssignment,
        m2: TopologyManifest,
        p2: Plan,
        off: CurrentAssignment,
        started: Decision,
    }

    fn drain(pods: &[ObservedPod]) -> Drain {
        let (m1, p1) = manifest_with(|_| {});
        let mut o = observed(&p1, pods, None, None);
        o.manifest = &m1;
        let first = decide(&o);
        let mut running = first.write.unwrap_or_else(|| panic!("no assignment"));
        running.manifest = m1.clone();
        let (m2, p2) = manifest_with(|m| m.spec.bolts[0].parallelism = 3);
        let mut o = observed(&p2, pods, Some(&running), Some(&first.status));
        o.manifest = &m2;
        assert_eq!(asks(&o), Asks::default(), "a drain starts without asking anyone");
        let started = decide(&o);
        let off = started.write.clone().unwrap_or_else(|| panic!("no deactivation"));
        Drain {
            m1,
            p1,
            running,
            m2,
            p2,
            off,
            started,
        }
    }

    fn reasons(d: &Decision) -> Vec<&str> {
        d.events.iter().map(|e| e.0.as_str()).collect()
    }

    #[test]
    fn a_drain_is_announced_and_asks_only_whether_it_drained() {
        let pods = two_pods();
        let d = drain(&pods);
        let deadline = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(30);
        assert_eq!(d.started.lifecycle, Lifecycle::Draining { deadline });
        assert_eq!(d.started.status.drain_deadline, Some(deadline.to_string()));
        assert_eq!(reasons(&d.started), ["Draining", "Assigned"]);
        let mut o = observed(&d.p2, &pods, Some(&d.off), Some(&d.started.status));
        o.manifest = &d.m2;
        assert_eq!(
            asks(&o),
            Asks {
                drained: true,
                workers_current: false
            }
        );
        o.now = deadline;
        assert_eq!(
            asks(&o),
            Asks::default(),
            "past the deadline the answer changes nothing"
        );
        let done = decide(&o);
        assert_eq!(done.lifecycle, Lifecycle::Inactive);
        assert!(done
            .events
            .iter()
            .any(|e| e.0 == "Rebalanced" && e.1.starts_with("drain deadline passed")));
    }

    #[test]
    fn the_spec_back_at_the_running_plan_cancels_the_drain_and_reactivates() {
        let pods = two_pods();
        let d = drain(&pods);
        let mut o = observed(&d.p1, &pods, Some(&d.off), Some(&d.started.status));
        o.manifest = &d.m1;
        assert_eq!(
            asks(&o),
            Asks {
                drained: false,
                workers_current: true
            }
        );
        let cancelled = decide(&o);
        assert_eq!(cancelled.write, None, "spouts on before the workers run the plan");
        assert_eq!(cancelled.lifecycle, Lifecycle::Inactive);
        assert!(cancelled.waiting, "the activation follows soon");
        assert_eq!(cancelled.status.drain_deadline, None);
        assert_eq!(reasons(&cancelled), ["RebalanceCancelled"]);
        assert!(!cancelled
            .status
            .conditions
            .iter()
            .any(|c| c.reason == "Rebalancing"));

        o.workers_current = true;
        let on = decide(&o);
        let w = on.write.clone().unwrap_or_else(|| panic!("not reactivated"));
        assert_eq!(w.manifest, d.m1);
        assert_eq!(w.assignment.workers, d.running.assignment.workers);
        assert_eq!(w.assignment.generation, d.off.assignment.generation + 1);
        assert_eq!(on.lifecycle, Lifecycle::Active);
        assert_eq!(reasons(&on), ["RebalanceCancelled", "Assigned"]);
        assert!(on.events[0].1.contains("spouts on again"), "{:?}", on.events);
    }

    #[test]
    fn an_invalid_spec_mid_drain_keeps_the_deadline_and_what_runs() {
        let pods = two_pods();
        let d = drain(&pods);
        let mut o = observed(&d.p2, &pods, Some(&d.off), Some(&d.started.status));
        o.manifest = &d.m2;
        o.plan = Err("bolt b: unknown stream".to_owned());
        assert_eq!(
            asks(&o),
            Asks::default(),
            "a rejected spec asks the workers nothing"
        );
        let failed = decide(&o);
        assert_eq!(failed.status.phase, Phase::Failed);
        assert_eq!(failed.write, None);
        assert_eq!(failed.lifecycle, d.started.lifecycle);
        assert_eq!(failed.status.drain_deadline, d.started.status.drain_deadline);

        // Fixed after the deadline passed: the drain ends with the new plan.
        let mut o = observed(&d.p2, &pods, Some(&d.off), Some(&failed.status));
        o.manifest = &d.m2;
        o.now = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(60);
        let fixed = decide(&o);
        let new = fixed
            .write
            .clone()
            .unwrap_or_else(|| panic!("new plan not written"));
        assert!(crate::change::same_plan(&new.manifest, &d.m2));
        assert!(reasons(&fixed).contains(&"Rebalanced"));
        assert_eq!(fixed.status.drain_deadline, None);
    }

    #[test]
    fn spouts_found_on_mid_drain_restart_the_drain() {
        let pods = two_pods();
        let d = drain(&pods);
        // The status says draining, the ConfigMap still has the spouts on (its write was
        // lost), and the deadline has passed.
        let mut o = observed(&d.p2, &pods, Some(&d.running), Some(&d.started.status));
        o.manifest = &d.m2;
        o.now = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(45);
        assert_eq!(asks(&o), Asks::default());
        let again = decide(&o);
        assert_eq!(again.write, Some(d.off.clone()), "not deactivated again");
        let deadline = o.now + jiff::SignedDuration::from_secs(30);
        assert_eq!(again.lifecycle, Lifecycle::Draining { deadline });
        assert_eq!(again.status.drain_deadline, Some(deadline.to_string()));
        assert!(again
            .events
            .iter()
            .any(|e| e.0 == "Draining" && e.1.starts_with("spouts found on mid-drain")));
    }

    #[test]
    fn a_drain_deadline_without_an_assignment_writes_the_first_plan() {
        let plan = plan();
        let pods = two_pods();
        let status = TopologyStatus {
            drain_deadline: Some("1970-01-01T00:00:30Z".into()),
            assignment_generation: Some(5),
            ..TopologyStatus::default()
        };
        let d = decide(&observed(&plan, &pods, None, Some(&status)));
        let first = d.write.clone().unwrap_or_else(|| panic!("no first plan"));
        assert!(!crate::change::is_active(&first.manifest));
        assert_eq!(first.assignment.generation, 6);
        assert_eq!(d.lifecycle, Lifecycle::Inactive);
        assert_eq!(d.status.drain_deadline, None);
        assert!(!reasons(&d).contains(&"Rebalanced"));
    }

    #[test]
    fn generations_keep_growing_without_a_readable_configmap() {
        let plan = plan();
        let pods = [pod(0, Some("10.0.0.1"), true), pod(1, Some("10.0.0.2"), true)];
        let first = decide(&observed(&plan, &pods, None, None));
        let mut status = first.status.clone();
        status.assignment_generation = Some(7);
        let d = decide(&observed(&plan, &pods, None, Some(&status)));
        assert_eq!(d.write.map(|w| w.assignment.generation), Some(8));
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal("my-topo-12"), Some(12));
        assert_eq!(ordinal("nodash"), None);
    }
}
