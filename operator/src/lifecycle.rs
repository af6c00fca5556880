//! A topology's lifecycle as a type: its states, observed afresh from the cluster on every
//! reconcile, and one transition function that says what to write next. Level-triggered:
//! nothing of the state lives only in the operator's memory, so a restarted or newly
//! elected operator picks up a drain or a kill where it stands.
//!
//! Every transition [`Lifecycle::next`] makes is a row of [`TRANSITIONS`]; anything else
//! is rejected with a [`LifecycleError`] instead of being written. Pure, unit-tested
//! without an API server.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::change::{classify, deactivated, is_active, Change, CurrentAssignment};

/// Where a topology stands, as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// No assignment in the ConfigMap (none yet, or unreadable): nothing runs.
    Unassigned,
    /// The assignment in the ConfigMap has its spouts on.
    Active,
    /// The assignment has its spouts off: a plan loading before its activation, or a
    /// topology its spec deactivates.
    Inactive,
    /// A rebalance deactivated the spouts and waits for in-flight trees before it writes
    /// the new plan, at most until `deadline` (`status.drainDeadline`).
    Draining {
        /// When the new plan goes in even with trees in flight.
        deadline: Timestamp,
    },
    /// Deleted: Storm's `kill -w`, the workers go once drained or at `deadline`.
    Killing {
        /// The deletion time plus the kill wait.
        deadline: Timestamp,
    },
}

/// A [`Lifecycle`] without its deadline: the rows of [`TRANSITIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// [`Lifecycle::Unassigned`].
    Unassigned,
    /// [`Lifecycle::Active`].
    Active,
    /// [`Lifecycle::Inactive`].
    Inactive,
    /// [`Lifecycle::Draining`].
    Draining,
    /// [`Lifecycle::Killing`].
    Killing,
}

/// What a transition does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Nothing to do: nothing differs, or some wanted pod has no address yet.
    Hold,
    /// Nothing to write yet: the workers are draining or loading a plan; look again soon.
    Wait,
    /// Write the wanted assignment (a first plan, a move, a deactivation, a plan change
    /// while the spouts are off).
    Assign,
    /// Write the current assignment with its spouts off at the next generation: a drain
    /// starts, for a rebalance or a kill.
    Deactivate,
    /// The drain is over (drained or past its deadline): write the new plan, spouts off.
    Rebalance,
    /// Switch the spouts on: every worker runs the plan.
    Activate,
    /// The spec is back at the running plan mid-drain: the drain ends, that plan stays.
    CancelRebalance,
    /// The kill may proceed: the workers go.
    Release,
}

impl Step {
    /// Whether the step writes an assignment: always, never, or `None` when it may.
    fn writes(self) -> Option<bool> {
        match self {
            Step::Hold | Step::Wait | Step::Release => Some(false),
            Step::Assign | Step::Deactivate | Step::Rebalance | Step::Activate => Some(true),
            Step::CancelRebalance => None,
        }
    }
}

/// Every legal transition: from, by, to. Entering [`Stage::Killing`] is not among them: a
/// deletion is observed, not decided, and no transition leaves it.
pub const TRANSITIONS: &[(Stage, Step, Stage)] = &[
    (Stage::Unassigned, Step::Hold, Stage::Unassigned),
    (Stage::Unassigned, Step::Assign, Stage::Inactive),
    (Stage::Active, Step::Hold, Stage::Active),
    (Stage::Active, Step::Assign, Stage::Active),
    (Stage::Active, Step::Assign, Stage::Inactive),
    (Stage::Active, Step::Deactivate, Stage::Draining),
    (Stage::Inactive, Step::Hold, Stage::Inactive),
    (Stage::Inactive, Step::Wait, Stage::Inactive),
    (Stage::Inactive, Step::Assign, Stage::Inactive),
    (Stage::Inactive, Step::Activate, Stage::Active),
    (Stage::Draining, Step::Hold, Stage::Draining),
    (Stage::Draining, Step::Wait, Stage::Draining),
    (Stage::Draining, Step::Deactivate, Stage::Draining),
    (Stage::Draining, Step::Rebalance, Stage::Inactive),
    (Stage::Draining, Step::CancelRebalance, Stage::Active),
    (Stage::Draining, Step::CancelRebalance, Stage::Inactive),
    (Stage::Killing, Step::Wait, Stage::Killing),
    (Stage::Killing, Step::Deactivate, Stage::Killing),
    (Stage::Killing, Step::Release, Stage::Killing),
];

impl Stage {
    /// The legal transitions out of this stage: by which step, to which stage.
    pub fn after(self) -> impl Iterator<Item = (Step, Stage)> {
        TRANSITIONS
            .iter()
            .filter(move |(from, _, _)| *from == self)
            .map(|&(_, step, to)| (step, to))
    }
}

/// A transition that [`TRANSITIONS`] does not allow, or a state observed inconsistently.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// Not a row of [`TRANSITIONS`].
    #[error("no transition from {from:?} by {step:?} to {to:?}")]
    Illegal {
        /// The state it starts from.
        from: Stage,
        /// The step.
        step: Step,
        /// The state it would reach.
        to: Stage,
    },
    /// The step writes an assignment when it must not, or the other way round.
    #[error("{step:?} {}", if *.wrote { "wrote an assignment it must not" } else { "wrote no assignment" })]
    Write {
        /// The step.
        step: Step,
        /// Whether it wrote one.
        wrote: bool,
    },
    /// A deadline moved without a drain starting.
    #[error("the deadline of {0:?} moved by {1:?}")]
    Deadline(Stage, Step),
    /// A state that needs an assignment observed without one.
    #[error("{0:?} observed without an assignment")]
    NoAssignment(Stage),
}

/// What the workers, the pods and the spec say, for the next transition.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// The assignment in the ConfigMap, as [`Lifecycle::observe`] was given it.
    pub current: Option<&'a CurrentAssignment>,
    /// The assignment the spec and the pods call for (the current one when it fits), or
    /// `None` while some wanted pod has no address.
    pub wanted: Option<CurrentAssignment>,
    /// How long a drain waits for in-flight trees: the message timeout.
    pub drain_for: Duration,
    /// Every worker of the current assignment runs it with its spouts off and no tree in
    /// flight.
    pub drained: bool,
    /// Every worker runs an engine on the current assignment's generation.
    pub workers_current: bool,
    /// Now.
    pub now: Timestamp,
}

impl<'a> Observation<'a> {
    /// An observation before the workers are asked anything, with no time to drain (set
    /// `drain_for` where a rebalance may start).
    pub fn new(
        current: Option<&'a CurrentAssignment>,
        wanted: Option<CurrentAssignment>,
        now: Timestamp,
    ) -> Self {
        Observation {
            current,
            wanted,
            drain_for: Duration::ZERO,
            drained: false,
            workers_current: false,
            now,
        }
    }
}

/// Which questions to the workers (`GET /status`) the next transition needs answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asks {
    /// Whether the current assignment's trees have drained.
    pub drained: bool,
    /// Whether every worker runs the current assignment's generation.
    pub workers_current: bool,
}

/// One transition: the state it leads to, the step, and the assignment to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The state after it.
    pub to: Lifecycle,
    /// What it does.
    pub step: Step,
    /// The assignment to write into the ConfigMap, with its manifest.
    pub write: Option<CurrentAssignment>,
}

impl Transition {
    fn to(to: Lifecycle, step: Step, write: Option<CurrentAssignment>) -> Self {
        Transition { to, step, write }
    }

    fn stay(at: Lifecycle, step: Step) -> Self {
        Transition::to(at, step, None)
    }
}

/// The same assignment with the manifest's spouts off.
fn inactive(mut a: CurrentAssignment) -> CurrentAssignment {
    a.manifest = deactivated(&a.manifest);
    a
}

/// The current assignment with its spouts off at the next generation, so every worker
/// notices the change: the first write of a drain.
fn switched_off(c: &CurrentAssignment) -> CurrentAssignment {
    let mut assignment = c.assignment.clone();
    assignment.generation += 1;
    CurrentAssignment {
        assignment,
        manifest: deactivated(&c.manifest),
    }
}

/// `at + wait`, or `on_overflow` when that is past what a timestamp holds.
fn plus(at: Timestamp, wait: Duration, on_overflow: Timestamp) -> Timestamp {
    SignedDuration::try_from(wait)
        .ok()
        .and_then(|w| at.checked_add(w).ok())
        .unwrap_or(on_overflow)
}

/// When a kill stops waiting for trees: the deletion plus the wait. A wait past what a
/// timestamp holds ends at once rather than holding the deletion forever.
pub fn kill_deadline(deleted_at: Timestamp, wait: Duration) -> Timestamp {
    plus(deleted_at, wait, deleted_at)
}

/// Whether a kill may proceed to deleting the workers: once every tree has drained or the
/// wait (Storm's `kill -w`) has passed since the deletion was requested.
pub fn kill_may_proceed(deleted_at: Timestamp, wait: Duration, drained: bool, now: Timestamp) -> bool {
    drained || now >= kill_deadline(deleted_at, wait)
}

impl Lifecycle {
    /// The state as the cluster shows it: `kill_deadline` once the topology is deleted
    /// (see [`kill_deadline`]), else the ConfigMap's assignment and the status's
    /// `drainDeadline`. The ConfigMap comes first: a deadline with no assignment drains
    /// nothing, and one that does not parse is no deadline.
    pub fn observe(
        current: Option<&CurrentAssignment>,
        drain_deadline: Option<&str>,
        kill_deadline: Option<Timestamp>,
    ) -> Lifecycle {
        if let Some(deadline) = kill_deadline {
            return Lifecycle::Killing { deadline };
        }
        let Some(c) = current else {
            return Lifecycle::Unassigned;
        };
        match drain_deadline.and_then(|d| d.parse().ok()) {
            Some(deadline) => Lifecycle::Draining { deadline },
            None if is_active(&c.manifest) => Lifecycle::Active,
            None => Lifecycle::Inactive,
        }
    }

    /// The state without its deadline.
    pub fn stage(self) -> Stage {
        match self {
            Lifecycle::Unassigned => Stage::Unassigned,
            Lifecycle::Active => Stage::Active,
            Lifecycle::Inactive => Stage::Inactive,
            Lifecycle::Draining { .. } => Stage::Draining,
            Lifecycle::Killing { .. } => Stage::Killing,
        }
    }

    /// The deadline of a rebalance's drain (what `status.drainDeadline` shows).
    pub fn drain_deadline(self) -> Option<Timestamp> {
        match self {
            Lifecycle::Draining { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// Whether a rebalance is draining.
    pub fn is_draining(self) -> bool {
        self.drain_deadline().is_some()
    }

    /// The next transition, checked against [`TRANSITIONS`].
    pub fn next(self, o: &Observation<'_>) -> Result<Transition, LifecycleError> {
        let needs_current = || o.current.ok_or(LifecycleError::NoAssignment(self.stage()));
        let t = match self {
            Lifecycle::Unassigned => from_unassigned(o),
            Lifecycle::Active => from_active(needs_current()?, o),
            Lifecycle::Inactive => from_inactive(needs_current()?, o),
            Lifecycle::Draining { deadline } => from_draining(deadline, needs_current()?, o),
            Lifecycle::Killing { deadline } => from_killing(deadline, o),
        };
        self.check(&t)?;
        Ok(t)
    }

    /// Rejects what [`TRANSITIONS`] does not list, a write where the step makes none (or
    /// none where it must), and a deadline moved other than by a drain (re)starting.
    fn check(self, t: &Transition) -> Result<(), LifecycleError> {
        let (from, to) = (self.stage(), t.to.stage());
        if !TRANSITIONS.contains(&(from, t.step, to)) {
            return Err(LifecycleError::Illegal {
                from,
                step: t.step,
                to,
            });
        }
        let wrote = t.write.is_some();
        if t.step.writes().is_some_and(|must| must != wrote) {
            return Err(LifecycleError::Write { step: t.step, wrote });
        }
        let moved = match (self, t.to) {
            (Lifecycle::Draining { deadline: a }, Lifecycle::Draining { deadline: b }) => {
                a != b && t.step != Step::Deactivate
            }
            (Lifecycle::Killing { deadline: a }, Lifecycle::Killing { deadline: b }) => a != b,
            _ => false,
        };
        if moved {
            return Err(LifecycleError::Deadline(from, t.step));
        }
        Ok(())
    }

    /// What the next transition needs to know from the workers: a question is asked only
    /// when its answer can change the transition, which is found by asking [`Self::next`]
    /// with either answer (it is pure and cheap; the workers are neither).
    pub fn asks(self, o: &Observation<'_>) -> Asks {
        let with = |drained, workers_current| {
            let mut o = o.clone();
            o.drained = drained;
            o.workers_current = workers_current;
            self.next(&o)
        };
        let outcomes = [
            [with(false, false), with(false, true)],
            [with(true, false), with(true, true)],
        ];
        Asks {
            drained: outcomes[0] != outcomes[1],
            workers_current: outcomes[0][0] != outcomes[0][1] || outcomes[1][0] != outcomes[1][1],
        }
    }
}

/// A first plan starts with its spouts off; they go on once every worker runs it.
fn from_unassigned(o: &Observation<'_>) -> Transition {
    match &o.wanted {
        None => Transition::stay(Lifecycle::Unassigned, Step::Hold),
        Some(w) => Transition::to(Lifecycle::Inactive, Step::Assign, Some(inactive(w.clone()))),
    }
}

/// The state a written assignment leaves, by its spouts.
fn by_spouts(a: &CurrentAssignment) -> Lifecycle {
    if is_active(&a.manifest) {
        Lifecycle::Active
    } else {
        Lifecycle::Inactive
    }
}

/// Spouts on: moves and deactivations go at once; a new plan drains first.
fn from_active(c: &CurrentAssignment, o: &Observation<'_>) -> Transition {
    let Some(w) = &o.wanted else {
        return Transition::stay(Lifecycle::Active, Step::Hold);
    };
    match classify(c, w) {
        Change::None => Transition::stay(Lifecycle::Active, Step::Hold),
        Change::Activation | Change::Move => Transition::to(by_spouts(w), Step::Assign, Some(w.clone())),
        Change::Rebalance => start_drain(c, o),
    }
}

/// Storm's rebalance starts: spouts off, in-flight trees get the message timeout.
fn start_drain(c: &CurrentAssignment, o: &Observation<'_>) -> Transition {
    let deadline = plus(o.now, o.drain_for, Timestamp::MAX);
    Transition::to(
        Lifecycle::Draining { deadline },
        Step::Deactivate,
        Some(switched_off(c)),
    )
}

/// Spouts off: they go on only once every worker runs the plan, so no tree is sent to a
/// worker still on an older one; anything else goes at once with the spouts kept off.
fn from_inactive(c: &CurrentAssignment, o: &Observation<'_>) -> Transition {
    let Some(w) = &o.wanted else {
        return Transition::stay(Lifecycle::Inactive, Step::Hold);
    };
    match classify(c, w) {
        Change::None => Transition::stay(Lifecycle::Inactive, Step::Hold),
        Change::Activation if is_active(&w.manifest) && o.workers_current => {
            Transition::to(Lifecycle::Active, Step::Activate, Some(w.clone()))
        }
        Change::Activation if is_active(&w.manifest) => Transition::stay(Lifecycle::Inactive, Step::Wait),
        Change::Activation => Transition::to(Lifecycle::Inactive, Step::Assign, Some(w.clone())),
        // A moved worker or a new plan: the spouts stay off until every worker runs it.
        Change::Move | Change::Rebalance => {
            Transition::to(Lifecycle::Inactive, Step::Assign, Some(inactive(w.clone())))
        }
    }
}

/// A drain: wait for the trees (at most until the deadline), then write the new plan with
/// its spouts off. A drain survives pods coming and going and further spec edits; it ends
/// early when the spec is back at the running plan, and restarts when the spouts are found
/// on (the deactivation was lost or overwritten: going on would drop trees in flight).
fn from_draining(deadline: Timestamp, c: &CurrentAssignment, o: &Observation<'_>) -> Transition {
    let here = Lifecycle::Draining { deadline };
    let Some(w) = &o.wanted else {
        return Transition::stay(here, Step::Hold);
    };
    match classify(c, w) {
        Change::Rebalance if is_active(&c.manifest) => start_drain(c, o),
        Change::Rebalance if o.now >= deadline || o.drained => {
            Transition::to(Lifecycle::Inactive, Step::Rebalance, Some(inactive(w.clone())))
        }
        Change::Rebalance => Transition::stay(here, Step::Wait),
        // The running plan is wanted again: carry on as if no drain had begun.
        Change::None | Change::Activation | Change::Move => {
            let carry_on = if is_active(&c.manifest) {
                from_active(c, o)
            } else {
                from_inactive(c, o)
            };
            Transition::to(carry_on.to, Step::CancelRebalance, carry_on.write)
        }
    }
}

/// Storm's `kill -w`: spouts off, then the workers go once drained or at the deadline.
fn from_killing(deadline: Timestamp, o: &Observation<'_>) -> Transition {
    let here = Lifecycle::Killing { deadline };
    match o.current {
        // Nothing runs that could drain.
        None => Transition::stay(here, Step::Release),
        Some(c) if is_active(&c.manifest) => Transition::to(here, Step::Deactivate, Some(switched_off(c))),
        Some(_) if o.drained || o.now >= deadline => Transition::stay(here, Step::Release),
        Some(_) => Transition::stay(here, Step::Wait),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::change::fixtures::{current, manifest, ts};
    use crate::change::same_plan;

    const NOW: &str = "2026-01-01T00:00:00Z";
    const BEFORE: &str = "2026-01-01T00:00:20Z";
    const PAST: &str = "2025-12-31T23:59:50Z";
    const DRAIN: Duration = Duration::from_secs(30);

    /// The running plan, spouts on.
    fn on() -> CurrentAssignment {
        current(manifest(|_| {}), ["a:1", "b:1"], [&[1, 2], &[3, 4]])
    }

    /// The running plan, spouts off.
    fn off() -> CurrentAssignment {
        inactive(on())
    }

    /// The running plan with worker t-1 at a new address.
    fn moved() -> CurrentAssignment {
        current(manifest(|_| {}), ["a:1", "c:1"], [&[1, 2], &[3, 4]])
    }

    /// Another plan: a bolt's parallelism 2 → 3.
    fn rebalanced() -> CurrentAssignment {
        current(
            manifest(|m| m.spec.bolts[0].parallelism = 3),
            ["a:1", "b:1"],
            [&[1, 3], &[2, 4]],
        )
    }

    fn obs<'a>(
        current: Option<&'a CurrentAssignment>,
        wanted: Option<&CurrentAssignment>,
    ) -> Observation<'a> {
        Observation {
            drain_for: DRAIN,
            ..Observation::new(current, wanted.cloned(), ts(NOW))
        }
    }

    fn next(l: Lifecycle, o: &Observation<'_>) -> Transition {
        l.next(o).unwrap_or_else(|e| panic!("{l:?}: {e}"))
    }

    fn draining(deadline: &str) -> Lifecycle {
        Lifecycle::Draining {
            deadline: ts(deadline),
        }
    }

    #[test]
    fn a_rebalance_deactivates_drains_loads_the_plan_inactive_then_activates() {
        let base = on();
        let wanted = rebalanced();
        let active = Lifecycle::observe(Some(&base), None, None);
        assert_eq!(active, Lifecycle::Active);
        let start = next(active, &obs(Some(&base), Some(&wanted)));
        assert_eq!(start.step, Step::Deactivate);
        assert_eq!(start.to, draining("2026-01-01T00:00:30Z"));
        let off = start.write.unwrap_or_else(|| panic!("no deactivation"));
        assert_eq!(off.assignment.generation, 4);
        assert_eq!(off.assignment.workers, base.assignment.workers);
        assert!(!is_active(&off.manifest));
        assert_eq!(classify(&base, &off), Change::Activation);

        // Observed again from the ConfigMap and the status it leads to.
        let deadline = start.to.drain_deadline().map(|d| d.to_string());
        let l = Lifecycle::observe(Some(&off), deadline.as_deref(), None);
        assert_eq!(l, start.to);
        let mut o = obs(Some(&off), Some(&wanted));
        assert_eq!(next(l, &o), Transition::stay(l, Step::Wait));
        o.drained = true;
        let done = next(l, &o);
        assert_eq!((done.step, done.to), (Step::Rebalance, Lifecycle::Inactive));
        let loaded = done
            .write
            .unwrap_or_else(|| panic!("drained, but the new plan is not written"));
        assert!(
            !is_active(&loaded.manifest),
            "the new plan must start with its spouts off"
        );
        assert!(same_plan(&loaded.manifest, &wanted.manifest));
        assert_eq!(loaded.assignment.workers, wanted.assignment.workers);
        o.drained = false;
        o.now = ts("2026-01-01T00:00:31Z");
        assert_eq!(
            next(l, &o).write,
            Some(loaded.clone()),
            "the deadline ends the drain too"
        );

        // Activation once every worker runs the new plan.
        let l = Lifecycle::observe(Some(&loaded), None, None);
        assert_eq!(l, Lifecycle::Inactive);
        let mut o = obs(Some(&loaded), Some(&wanted));
        assert_eq!(next(l, &o), Transition::stay(l, Step::Wait));
        o.workers_current = true;
        assert_eq!(
            next(l, &o),
            Transition::to(Lifecycle::Active, Step::Activate, Some(wanted.clone()))
        );
    }

    #[test]
    fn first_plans_start_inactive_and_deactivation_or_moves_go_at_once() {
        let wanted = on();
        let none = Lifecycle::observe(None, None, None);
        assert_eq!(none, Lifecycle::Unassigned);
        assert_eq!(
            next(none, &obs(None, None)),
            Transition::stay(none, Step::Hold),
            "no plan until every pod has an address"
        );
        let first = next(none, &obs(None, Some(&wanted)));
        assert_eq!((first.step, first.to), (Step::Assign, Lifecycle::Inactive));
        let first = first.write.unwrap_or_else(|| panic!("no first assignment"));
        assert!(!is_active(&first.manifest));

        let l = Lifecycle::Active;
        assert_eq!(
            next(l, &obs(Some(&wanted), Some(&off()))),
            Transition::to(Lifecycle::Inactive, Step::Assign, Some(off())),
            "a deactivation waits for nothing"
        );
        assert_eq!(
            next(l, &obs(Some(&wanted), Some(&moved()))),
            Transition::to(Lifecycle::Active, Step::Assign, Some(moved()))
        );
        // Same plan, both active, only the text differs: nothing to write.
        let text = format!("# reworded\n{}", wanted.manifest.to_yaml().unwrap_or_default());
        let mut reworded = wanted.clone();
        reworded.manifest =
            squall_model::TopologyManifest::from_yaml(&text, "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(classify(&wanted, &reworded), Change::None);
        assert_eq!(
            next(l, &obs(Some(&wanted), Some(&reworded))),
            Transition::stay(l, Step::Hold)
        );
        // A move while the activation is pending keeps the spouts off.
        assert_eq!(
            next(Lifecycle::Inactive, &obs(Some(&first), Some(&moved()))),
            Transition::to(Lifecycle::Inactive, Step::Assign, Some(inactive(moved())))
        );
        // A new plan while the spouts are off needs no drain.
        assert_eq!(
            next(Lifecycle::Inactive, &obs(Some(&first), Some(&rebalanced()))),
            Transition::to(Lifecycle::Inactive, Step::Assign, Some(inactive(rebalanced())))
        );
    }

    #[test]
    fn a_kill_deactivates_then_waits_for_the_drain_or_the_wait() {
        let deleted = ts(NOW);
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
        assert_eq!(
            kill_deadline(deleted, Duration::MAX),
            deleted,
            "an endless wait holds nothing"
        );

        let kill = Some(kill_deadline(deleted, wait));
        let l = Lifecycle::observe(Some(&on()), Some(BEFORE), kill);
        assert_eq!(
            l,
            Lifecycle::Killing {
                deadline: ts("2026-01-01T00:00:30Z")
            }
        );
        let running = on();
        let t = next(l, &obs(Some(&running), None));
        assert_eq!((t.step, t.to), (Step::Deactivate, l));
        let off = t.write.unwrap_or_else(|| panic!("spouts not deactivated"));
        assert_eq!(off.assignment.generation, 4);
        assert!(!is_active(&off.manifest));

        let mut o = obs(Some(&off), None);
        o.now = ts("2026-01-01T00:00:29Z");
        assert_eq!(next(l, &o).step, Step::Wait);
        o.drained = true;
        assert_eq!(next(l, &o).step, Step::Release);
        o.drained = false;
        o.now = ts("2026-01-01T00:00:30Z");
        assert_eq!(next(l, &o).step, Step::Release);
        assert_eq!(next(l, &obs(None, None)).step, Step::Release, "nothing runs");
    }

    #[test]
    fn spouts_found_on_mid_drain_restart_the_drain() {
        // The deactivation was lost (its write failed after the status's) or overwritten:
        // writing the new plan now would drop the trees in flight.
        let running = on();
        let wanted = rebalanced();
        for deadline in [PAST, BEFORE] {
            let l = Lifecycle::observe(Some(&running), Some(deadline), None);
            assert_eq!(l, draining(deadline));
            let o = obs(Some(&running), Some(&wanted));
            assert_eq!(
                l.asks(&o),
                Asks::default(),
                "nothing to ask while the spouts are on"
            );
            assert_eq!(
                next(l, &o),
                Transition::to(
                    draining("2026-01-01T00:00:30Z"),
                    Step::Deactivate,
                    Some(switched_off(&running))
                ),
                "deadline {deadline}"
            );
        }
    }

    #[test]
    fn the_spec_back_at_the_running_plan_cancels_the_drain() {
        let drained_off = switched_off(&on());
        let l = Lifecycle::observe(Some(&drained_off), Some(BEFORE), None);
        for deadline_passed in [false, true] {
            let mut o = obs(Some(&drained_off), Some(&on()));
            if deadline_passed {
                o.now = ts("2026-01-01T00:01:00Z");
            }
            assert_eq!(
                l.asks(&o),
                Asks {
                    drained: false,
                    workers_current: true
                }
            );
            // The spouts go on again once every worker runs the plan, as after any load.
            o.workers_current = true;
            assert_eq!(
                next(l, &o),
                Transition::to(Lifecycle::Active, Step::CancelRebalance, Some(on()))
            );
            o.workers_current = false;
            assert_eq!(
                next(l, &o),
                Transition::to(Lifecycle::Inactive, Step::CancelRebalance, None)
            );
        }
        let mut back_off = drained_off.clone();
        back_off.assignment.generation = 3;
        assert_eq!(
            next(l, &obs(Some(&drained_off), Some(&back_off))),
            Transition::to(Lifecycle::Inactive, Step::CancelRebalance, None),
            "the spec is back at the running plan, inactive: nothing differs"
        );
        assert_eq!(
            next(l, &obs(Some(&drained_off), Some(&moved()))),
            Transition::to(
                Lifecycle::Inactive,
                Step::CancelRebalance,
                Some(inactive(moved()))
            ),
            "a pod moved meanwhile: spouts off until it runs the plan"
        );
        let running = on();
        let on_again = Lifecycle::observe(Some(&running), Some(BEFORE), None);
        assert_eq!(
            next(on_again, &obs(Some(&running), Some(&on()))),
            Transition::to(Lifecycle::Active, Step::CancelRebalance, None),
            "the spouts never went off: nothing to write"
        );
    }

    #[test]
    fn a_drain_deadline_without_an_assignment_writes_the_first_plan() {
        let l = Lifecycle::observe(None, Some(BEFORE), None);
        assert_eq!(l, Lifecycle::Unassigned, "nothing runs, nothing drains");
        assert_eq!(
            next(l, &obs(None, Some(&on()))),
            Transition::to(Lifecycle::Inactive, Step::Assign, Some(off()))
        );
        assert_eq!(
            Lifecycle::observe(Some(&on()), Some("not a time"), None),
            Lifecycle::Active
        );
    }

    #[test]
    fn a_drain_outlasts_missing_addresses_and_further_edits() {
        let drained_off = switched_off(&on());
        let l = Lifecycle::observe(Some(&drained_off), Some(BEFORE), None);
        for now in [NOW, "2026-01-01T00:01:00Z"] {
            let mut o = obs(Some(&drained_off), None);
            o.now = ts(now);
            assert_eq!(next(l, &o), Transition::stay(l, Step::Hold));
            assert_eq!(l.asks(&o), Asks::default());
        }
        // Another plan again: the same drain, the newest plan once it is over.
        let again = current(
            manifest(|m| m.spec.bolts[0].parallelism = 4),
            ["a:1", "b:1"],
            [&[1, 3], &[2, 4]],
        );
        let mut o = obs(Some(&drained_off), Some(&again));
        assert_eq!(
            l.asks(&o),
            Asks {
                drained: true,
                workers_current: false
            }
        );
        assert_eq!(next(l, &o), Transition::stay(l, Step::Wait));
        o.drained = true;
        assert_eq!(
            next(l, &o),
            Transition::to(Lifecycle::Inactive, Step::Rebalance, Some(inactive(again)))
        );
    }

    #[test]
    fn only_what_the_next_step_needs_is_asked() {
        let running = on();
        let first = off();
        let drained_off = switched_off(&on());
        let ask = |l: Lifecycle, o: &Observation<'_>| l.asks(o);
        let (nothing, drain, load) = (
            Asks::default(),
            Asks {
                drained: true,
                workers_current: false,
            },
            Asks {
                drained: false,
                workers_current: true,
            },
        );
        assert_eq!(ask(Lifecycle::Unassigned, &obs(None, Some(&running))), nothing);
        assert_eq!(
            ask(Lifecycle::Active, &obs(Some(&running), Some(&running))),
            nothing
        );
        assert_eq!(
            ask(Lifecycle::Active, &obs(Some(&running), Some(&rebalanced()))),
            nothing
        );
        assert_eq!(ask(Lifecycle::Inactive, &obs(Some(&first), Some(&running))), load);
        assert_eq!(
            ask(Lifecycle::Inactive, &obs(Some(&first), Some(&first))),
            nothing
        );
        assert_eq!(
            ask(draining(BEFORE), &obs(Some(&drained_off), Some(&rebalanced()))),
            drain
        );
        assert_eq!(
            ask(draining(PAST), &obs(Some(&drained_off), Some(&rebalanced()))),
            nothing
        );
        let killing = Lifecycle::Killing { deadline: ts(BEFORE) };
        assert_eq!(ask(killing, &obs(Some(&first), None)), drain);
        assert_eq!(ask(killing, &obs(Some(&running), None)), nothing);
        assert_eq!(ask(killing, &obs(None, None)), nothing);
        let killed = Lifecycle::Killing { deadline: ts(PAST) };
        assert_eq!(ask(killed, &obs(Some(&first), None)), nothing);
    }

    #[test]
    fn illegal_transitions_are_rejected() {
        let illegal = |from: Lifecycle, t: Transition| {
            let err = from.check(&t).err();
            assert!(err.is_some(), "{from:?} → {t:?} passed");
            err
        };
        assert!(matches!(
            illegal(
                Lifecycle::Unassigned,
                Transition::to(Lifecycle::Active, Step::Assign, Some(on()))
            ),
            Some(LifecycleError::Illegal { .. })
        ));
        illegal(
            Lifecycle::Inactive,
            Transition::to(draining(BEFORE), Step::Deactivate, Some(off())),
        );
        illegal(
            Lifecycle::Killing { deadline: ts(BEFORE) },
            Transition::stay(Lifecycle::Active, Step::Hold),
        );
        illegal(
            Lifecycle::Active,
            Transition::stay(Lifecycle::Unassigned, Step::Hold),
        );
        assert_eq!(
            illegal(
                Lifecycle::Active,
                Transition::to(Lifecycle::Active, Step::Assign, None)
            ),
            Some(LifecycleError::Write {
                step: Step::Assign,
                wrote: false
            })
        );
        illegal(
            Lifecycle::Active,
            Transition::to(Lifecycle::Active, Step::Hold, Some(on())),
        );
        assert_eq!(
            illegal(draining(BEFORE), Transition::stay(draining(PAST), Step::Wait)),
            Some(LifecycleError::Deadline(Stage::Draining, Step::Wait))
        );
        illegal(
            Lifecycle::Killing { deadline: ts(BEFORE) },
            Transition::to(
                Lifecycle::Killing { deadline: ts(PAST) },
                Step::Deactivate,
                Some(off()),
            ),
        );
        for l in [Lifecycle::Active, Lifecycle::Inactive, draining(BEFORE)] {
            assert_eq!(
                l.next(&obs(None, Some(&on()))),
                Err(LifecycleError::NoAssignment(l.stage()))
            );
        }
    }

    /// Every state as observed, against every kind of wanted assignment and every answer
    /// of the workers: `next` never errs (so it makes only the table's transitions), it
    /// reaches every row of the table, and the state it leads to is what the next
    /// reconcile observes once its write and the status have landed.
    #[test]
    fn next_makes_exactly_the_transitions_of_the_table() {
        let retasked = current(manifest(|_| {}), ["a:1", "b:1"], [&[1, 3], &[2, 4]]);
        let assignments = [
            on(),
            off(),
            switched_off(&on()),
            moved(),
            inactive(moved()),
            rebalanced(),
            inactive(rebalanced()),
            retasked,
        ];
        let currents: Vec<Option<&CurrentAssignment>> = std::iter::once(None)
            .chain(assignments.iter().map(Some))
            .collect();
        let kill_deadlines = [None, Some(ts(BEFORE)), Some(ts(PAST))];
        let mut reached = BTreeSet::new();
        for &c in &currents {
            for drain_deadline in [None, Some(BEFORE), Some(PAST), Some("garbage")] {
                for kill in kill_deadlines {
                    let from = Lifecycle::observe(c, drain_deadline, kill);
                    for &wanted in &currents {
                        for (drained, workers_current) in
                            [(false, false), (false, true), (true, false), (true, true)]
                        {
                            let o = Observation {
                                drained,
                                workers_current,
                                ..obs(c, wanted)
                            };
                            let t = next(from, &o);
                            reached.insert((from.stage(), t.step, t.to.stage()));
                            if kill.is_none() {
                                let deadline = t.to.drain_deadline().map(|d| d.to_string());
                                let landed = t.write.as_ref().or(c);
                                assert_eq!(
                                    Lifecycle::observe(landed, deadline.as_deref(), None),
                                    t.to,
                                    "{from:?} by {:?}",
                                    t.step
                                );
                            }
                        }
                    }
                }
            }
        }
        let table: BTreeSet<_> = TRANSITIONS.iter().copied().collect();
        assert_eq!(reached, table, "rows never reached, or reached outside the table");
        assert_eq!(table.len(), TRANSITIONS.len(), "a row is listed twice");
        for stage in [
            Stage::Unassigned,
            Stage::Active,
            Stage::Inactive,
            Stage::Draining,
            Stage::Killing,
        ] {
            assert!(stage.after().next().is_some(), "{stage:?} is a dead end");
        }
        assert!(Stage::Killing.after().all(|(_, to)| to == Stage::Killing));
    }
}
