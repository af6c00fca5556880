//! The executor scheduler: executors share at most as many threads as there are cores.
//!
//! # Why
//! One OS thread per executor puts four busy threads (spout, two bolts, acker) on a
//! two-core machine for the smallest acked pipeline; the kernel then time-slices them in
//! milliseconds, and those slices are the tail of the complete latency. Executors are
//! state machines instead ([`crate::executor::Step`]): a step does a bounded amount of
//! work (drain acks, push held output, take one input batch or call `next_tuple` a bounded
//! number of times) and never blocks on another executor, so any number of them can take
//! turns on one thread.
//!
//! # How
//! - **Cooperative executors** (ackers, and components whose factory says
//!   [`crate::ComponentFactory::cooperative`]) are placed on a pool of
//!   `EngineOptions::threads` threads (default: `available_parallelism`, topology config
//!   `squall.executor.threads`), never more than there are such executors. Placement is
//!   static: spouts take the first threads; bolts, in stage order (the longest path from
//!   a spout), go round the pool from the thread after the last spout; each acker goes to
//!   the least loaded thread, preferring threads without a spout. Neighbouring stages of
//!   a chain therefore tend to land on different threads and run at the same time rather
//!   than take turns, and a spout, which emits every tree and hears how each ends, shares
//!   its thread with as little as the pool allows. No pool thread is left empty.
//!   Measured on two threads: the acked spout → bolt → bolt pipeline settles 1.1-1.9×
//!   the trees it did with its spout and first bolt on one thread, and spout → bolt 1.2×
//!   with the spout alone rather than beside the acker.
//! - **Dedicated executors** (everything else) get a thread of their own, running the same
//!   loop with one executor. The default is dedicated because the engine cannot tell a
//!   component that blocks (a subprocess round trip, a network write, a sleep) from one
//!   that does not, and a blocking component on a shared thread stalls every executor
//!   there; a cooperative one on a dedicated thread costs only the thread.
//! - A thread steps its executors round-robin for as long as any of them makes progress.
//!   When none does, it yields a few times (work arriving within microseconds is picked up
//!   without a futex wake-up), then announces sleep on its queues and parks until the
//!   earliest deadline its executors asked for (tick tuples, message timeouts, spout
//!   back-off; at most `MAX_PARK`). A push to the queue of an executor waiting for input,
//!   room in a full downstream queue an executor waits on, a task's `Waker`, activation
//!   and stop all unpark it. A bolt or acker whose output is held does not listen to its
//!   queue (input is no use to it, and waking for it would spin); a spout does, because
//!   acks are work for it either way.
//! - A panic inside a component is caught where the component is called and restarts the
//!   task. A panic anywhere else in a step is caught per step too: that one
//!   executor is retired with an error log, and the others on its thread keep going.
//! - With `threads` at least the number of executors, every executor has its own thread
//!   (one executor per thread, as in Storm), which benchmarks compare against.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use squall_model::{ComponentPlan, Role};
use tracing::error;

use crate::executor::{panic_message, Control, Executor, Step, MAX_PARK};

/// Yields before a thread whose executors are all idle parks.
const SPIN_YIELDS: u32 = 50;

/// Threads for cooperative executors when the options leave it to the engine.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Where an executor may go: its role, whether it may share a pool thread, and its
/// component's stage (see [`stages`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placeable {
    pub role: Role,
    pub cooperative: bool,
    pub stage: u32,
}

/// Each component's stage, by index in `components`: 0 for spouts, and for a bolt one
/// more than the highest stage among the components it reads from, that is its longest
/// path from a spout (0 when it reads from no known component). A cycle stops growing
/// after as many rounds as there are components. Ackers read from no one and get 0:
/// `assign` places them by role, not by stage.
pub(crate) fn stages(components: &[ComponentPlan]) -> Vec<u32> {
    let index: HashMap<&str, usize> = components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut stage = vec![0u32; components.len()];
    for _ in 0..components.len() {
        let mut changed = false;
        for (i, c) in components.iter().enumerate() {
            if c.role != Role::Bolt {
                continue;
            }
            let s = c
                .inputs
                .iter()
                .filter_map(|input| index.get(input.from.as_str()))
                .map(|&from| stage[from] + 1)
                .max()
                .unwrap_or(0);
            if s > stage[i] {
                stage[i] = s;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    stage
}

/// Groups executors onto threads; returns the indices of the executors of each thread:
/// one group per dedicated executor, then at most `shared` groups (never more than there
/// are cooperative executors) for the cooperative ones.
pub(crate) fn assign(execs: &[Placeable], shared: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = execs
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.cooperative)
        .map(|(i, _)| vec![i])
        .collect();
    let mut coop: Vec<usize> = (0..execs.len()).filter(|&i| execs[i].cooperative).collect();
    // Stable: executors of one component stay in order, so they spread over the pool.
    coop.sort_by_key(|&i| (execs[i].role == Role::Acker, execs[i].stage));
    let n = shared.max(1).min(coop.len());
    let first = groups.len();
    groups.extend((0..n).map(|_| Vec::new()));
    // Spouts take the first threads, and bolts (in stage order) go round the pool from the
    // thread after the last spout. Each acker then goes to the least loaded thread,
    // preferring threads without a spout. Bolts fill the threads after the spouts in
    // turn, so the threads left empty (if any) have no spout and are the least loaded:
    // ackers fill them first, and as `n` is at most the executors' count, none is left.
    let spouts = coop.iter().filter(|&&i| execs[i].role == Role::Spout).count();
    let (mut spout, mut bolt) = (0, 0);
    for i in coop {
        let thread = match execs[i].role {
            Role::Spout => {
                spout += 1;
                spout - 1
            }
            Role::Bolt => {
                bolt += 1;
                spouts + bolt - 1
            }
            Role::Acker => {
                let load = |t: &usize| (t % n < spouts, groups[first + t % n].len(), *t);
                (spouts..spouts + n).min_by_key(load).unwrap_or(0)
            }
        };
        groups[first + thread % n].push(i);
    }
    groups
}

/// Starts a thread stepping `group` until the topology stops.
pub(crate) fn spawn(
    name: String,
    group: Vec<Box<dyn Executor>>,
    control: Arc<Control>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(group, &control))
}

/// An executor on a thread, and whether its last step waits for input (rather than for
/// room downstream).
struct Slot {
    executor: Box<dyn Executor>,
    listening: bool,
}

fn run(group: Vec<Box<dyn Executor>>, control: &Control) {
    let me = std::thread::current();
    let mut group: Vec<Slot> = group
        .into_iter()
        .map(|executor| {
            executor.base().queue.set_consumer(me.clone());
            Slot {
                executor,
                listening: true,
            }
        })
        .collect();
    while !control.stop.load(Ordering::Acquire) {
        let mut busy = false;
        let mut wake_at: Option<Instant> = None;
        group.retain_mut(|s| {
            let at = match catch_unwind(AssertUnwindSafe(|| s.executor.step())) {
                Ok(Step::Busy) => {
                    busy = true;
                    return true;
                }
                Ok(Step::Idle(at)) => {
                    s.listening = true;
                    at
                }
                Ok(Step::Blocked(at)) => {
                    s.listening = false;
                    at
                }
                Err(p) => {
                    error!(component = %s.executor.base().plan.name, error = %panic_message(&*p), "executor panicked outside a component; its tasks stop");
                    return false;
                }
            };
            wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
            true
        });
        if !busy {
            idle(&group, wake_at);
        }
    }
    for s in &mut group {
        if catch_unwind(AssertUnwindSafe(|| s.executor.shutdown())).is_err() {
            error!(component = %s.executor.base().plan.name, "executor panicked while shutting down");
        }
    }
}

/// Waits for input, room downstream, a wake-up or the earliest deadline of the group.
fn idle(group: &[Slot], wake_at: Option<Instant>) {
    let now = Instant::now();
    let deadline = wake_at.map_or(now + MAX_PARK, |w| w.min(now + MAX_PARK));
    let listening = || group.iter().filter(|s| s.listening);
    let has_input = || listening().any(|s| !s.executor.base().queue.is_empty());
    for _ in 0..SPIN_YIELDS {
        if has_input() || Instant::now() >= deadline {
            return;
        }
        std::thread::yield_now();
    }
    for s in listening() {
        s.executor.base().queue.announce_sleep(true);
    }
    // Announce first, then look: a push in between is either seen here or unparks us.
    if !has_input() {
        let left = deadline.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            std::thread::park_timeout(left);
        }
    }
    for s in listening() {
        s.executor.base().queue.announce_sleep(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::InputSpec;

    fn exec(role: Role, cooperative: bool, stage: u32) -> Placeable {
        Placeable {
            role,
            cooperative,
            stage,
        }
    }

    #[test]
    fn dedicated_executors_get_a_thread_each_and_the_rest_share_the_pool() {
        let execs = [
            exec(Role::Acker, true, 0),
            exec(Role::Bolt, true, 2),
            exec(Role::Bolt, false, 1),
            exec(Role::Spout, true, 0),
            exec(Role::Bolt, true, 1),
        ];
        let groups = assign(&execs, 2);
        // In pipeline order: spout 3, the stage-1 bolt 4, the stage-2 bolt 1, acker 0.
        assert_eq!(groups, vec![vec![2], vec![3, 1], vec![4, 0]]);
    }

    #[test]
    fn neighbouring_stages_land_on_different_threads() {
        // A chain spout → a → b → c, listed in another order, with an acker.
        let execs = [
            exec(Role::Bolt, true, 3),
            exec(Role::Acker, true, 0),
            exec(Role::Bolt, true, 1),
            exec(Role::Bolt, true, 2),
            exec(Role::Spout, true, 0),
        ];
        let groups = assign(&execs, 2);
        assert_eq!(groups, vec![vec![4, 3], vec![2, 0, 1]]);
        let thread_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for (from, to) in [(4, 2), (2, 3), (3, 0)] {
            assert_ne!(thread_of(from), thread_of(to), "{from} feeds {to}");
        }
    }

    #[test]
    fn a_spout_shares_its_thread_with_as_little_as_the_pool_allows() {
        let execs = [
            exec(Role::Spout, true, 0),
            exec(Role::Bolt, true, 1),
            exec(Role::Acker, true, 0),
        ];
        // Two threads: the bolt and the acker share the one after the spout's.
        assert_eq!(assign(&execs, 2), vec![vec![0], vec![1, 2]]);
        // Three: the acker takes the empty thread.
        assert_eq!(assign(&execs, 3), vec![vec![0], vec![1], vec![2]]);
        // Ackers go to the least loaded thread without a spout, not the first one.
        let many = [
            exec(Role::Spout, true, 0),
            exec(Role::Bolt, true, 1),
            exec(Role::Bolt, true, 1),
            exec(Role::Bolt, true, 1),
            exec(Role::Bolt, true, 1),
            exec(Role::Acker, true, 0),
        ];
        assert_eq!(assign(&many, 3), vec![vec![0, 3], vec![1, 4], vec![2, 5]]);
        // Two spouts take both threads; the bolt and the acker follow round the pool.
        let two = [
            exec(Role::Spout, true, 0),
            exec(Role::Spout, true, 0),
            exec(Role::Bolt, true, 1),
            exec(Role::Acker, true, 0),
        ];
        assert_eq!(assign(&two, 2), vec![vec![0, 2], vec![1, 3]]);
    }

    /// Every shape of up to 3 spouts, 4 bolts and 3 ackers on pools of 1 to 5 threads:
    /// each executor is placed once, and no pool thread is empty.
    #[test]
    fn every_executor_once_and_no_pool_thread_empty() {
        for (s, b, a, shared) in (0..4).flat_map(|s| {
            (0..5).flat_map(move |b| (0..4).flat_map(move |a| (1..6).map(move |t| (s, b, a, t))))
        }) {
            let execs: Vec<Placeable> = (0..s)
                .map(|_| exec(Role::Spout, true, 0))
                .chain((0..b).map(|k| exec(Role::Bolt, true, 1 + k as u32 % 2)))
                .chain((0..a).map(|_| exec(Role::Acker, true, 0)))
                .collect();
            let groups = assign(&execs, shared);
            let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..execs.len()).collect::<Vec<_>>(), "{s} {b} {a} {shared}");
            assert_eq!(groups.len(), shared.min(execs.len()), "{s} {b} {a} {shared}");
            assert!(
                groups.iter().all(|g| !g.is_empty()),
                "{s} {b} {a} {shared}: {groups:?}"
            );
        }
    }

    #[test]
    fn the_pool_is_capped_by_the_cooperative_executors() {
        let execs = [exec(Role::Spout, true, 0), exec(Role::Bolt, true, 1)];
        assert_eq!(assign(&execs, 8), vec![vec![0], vec![1]]);
        assert_eq!(assign(&execs, 1), vec![vec![0, 1]]);
        assert_eq!(assign(&execs, 0), vec![vec![0, 1]], "0 threads still runs them");
        assert_eq!(assign(&[exec(Role::Bolt, false, 1)], 4), vec![vec![0]]);
        assert!(assign(&[], 4).is_empty());
    }

    fn component(name: &str, role: Role, from: &[&str]) -> ComponentPlan {
        ComponentPlan {
            name: name.to_owned(),
            role,
            kind: "k".to_owned(),
            parallelism: 1,
            tasks: vec![0],
            config: Default::default(),
            outputs: Vec::new(),
            inputs: from
                .iter()
                .map(|f| InputSpec {
                    from: (*f).to_owned(),
                    stream: "default".to_owned(),
                    grouping: Default::default(),
                })
                .collect(),
            tick: None,
            shell: None,
        }
    }

    #[test]
    fn a_stage_is_the_longest_path_from_a_spout() {
        // Sorted by name as in a plan: the names run against the pipeline.
        let components = [
            component("__acker", Role::Acker, &[]),
            component("count", Role::Bolt, &["split", "words"]),
            component("join", Role::Bolt, &["count", "words"]),
            component("split", Role::Bolt, &["words"]),
            component("words", Role::Spout, &[]),
        ];
        assert_eq!(stages(&components), vec![0, 2, 3, 1, 0]);
    }

    #[test]
    fn a_cycle_stops_growing() {
        let components = [
            component("a", Role::Bolt, &["b", "s"]),
            component("b", Role::Bolt, &["a"]),
            component("s", Role::Spout, &[]),
        ];
        let s = stages(&components);
        assert_eq!(s[2], 0);
        // Three rounds (one per component), in each of which a and b gain at most 2.
        assert!(s[0] >= 1 && s[1] >= 2 && s[0] <= 6 && s[1] <= 6, "{s:?}");
    }
}
