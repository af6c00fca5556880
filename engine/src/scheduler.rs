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
//!   [`crate::ComponentFactory::cooperative`]) share a pool of `EngineOptions::threads`
//!   threads (default: `available_parallelism`, topology config
//!   `squall.executor.threads`), never more than there are such executors. They are first
//!   grouped into one lane per pool thread: spouts take the first lanes; bolts, in stage
//!   order (the longest path from a spout), go round the pool from the lane after the last
//!   spout; each acker goes to the least loaded lane, preferring lanes without a spout.
//!   Neighbouring stages of a chain therefore tend to land in different lanes and, when
//!   the lanes run on different threads, run at the same time rather than take turns,
//!   and a spout, which emits every tree and hears how each ends, shares its lane with as
//!   little as the pool allows. No lane is left empty. Measured on two threads: the acked
//!   spout → bolt → bolt pipeline settles 1.1-1.9× the trees it did with its spout and
//!   first bolt in one lane, and spout → bolt 1.2× with the spout alone rather than
//!   beside the acker.
//! - **The pool is elastic** ([`Pool`]; `squall.executor.elastic: false` keeps every
//!   thread at work). It starts with one active thread stepping every lane, in pipeline
//!   order, and doubles its active threads when one of them has had no moment without
//!   work for `SATURATED`; it drops one when the messages its executors take per second
//!   would keep one thread fewer under `SHRINK_AT` of what it took when it last grew, and
//!   tries one fewer when its busy time suggests they might do, holding off longer each
//!   time that had to be undone. Thread `t` of `k` active steps lanes
//!   `t`, `t + k`, …; the rest stand by, parked. Why: on one thread a tuple, its ack and
//!   the completion move between executors with no wake-up of another core (tens of
//!   microseconds of the waker's time on a VM, and a core woken from halt may wait
//!   milliseconds for its host), and the other cores stay idle, which on a VM host also
//!   spares the running core from being descheduled for milliseconds, as two busy cores
//!   are. Measured on two cores: const-id-null-ack at half its peak kept a p99 complete
//!   latency near 100 µs on one active thread at under half the CPU per tree, against
//!   2-3 ms on two; past what one thread carries, two take over.
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
//!   room in a full downstream queue an executor waits on, a task's `Waker`, activation,
//!   a resize of the pool and stop all unpark it. A bolt or acker whose output is held
//!   does not listen to its queue (input is no use to it, and waking for it would spin);
//!   a spout does, because acks are work for it either way. A thread that takes a lane
//!   registers itself as the consumer of its executors' queues, so wake-ups follow the
//!   executors when the pool resizes.
//! - A panic inside a component is caught where the component is called and restarts the
//!   task. A panic anywhere else in a step is caught per step too: that one
//!   executor is retired with an error log, and the others on its thread keep going.
//! - With `threads` at least the number of executors and `squall.executor.elastic:
//!   false`, every executor has its own thread (one executor per thread, as in Storm),
//!   which benchmarks compare against.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use squall_model::{ComponentPlan, Role};
use tracing::{debug, error};

use crate::executor::{panic_message, Control, Executor, Step, MAX_PARK};
use crate::fabric::Msg;
use crate::queue::BatchQueue;

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
    // Pipeline order; executors of one component stay in order, so they spread over the pool.
    coop.sort_by_key(|&i| order_key(&execs[i], i));
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

/// How long a pool thread must stay busy, never once out of work, before the pool puts
/// more threads to work. Short, so that a topology that needs more threads gets them
/// before its executors have built their working set (buffers, maps) on one thread:
/// glibc's malloc keeps memory freed on one thread in that thread's arena, so a working
/// set that moves to another thread is held twice. Growing by mistake (catching up after
/// a stall of the machine) is undone by the shrinking rules below.
const SATURATED: Duration = Duration::from_millis(50);
/// How often the first pool thread weighs whether one thread fewer would do.
const WEIGH_EVERY: Duration = Duration::from_millis(100);
/// Shortest window whose message rate is taken as the capacity of the threads at work.
const MIN_MEASURE: Duration = Duration::from_millis(20);
/// The pool drops one of its `k` active threads when the messages its executors take
/// per second are below this share of what `k - 1` threads took when they last ran out
/// of time (measured as the pool grew).
const SHRINK_AT: f64 = 0.9;
/// It also tries one thread fewer when its active threads were busy together for less
/// than this many cores per thread that would be left. Work spread over more threads
/// costs more (hand-offs, wake-ups): const-id-null-ack at 80% of what one thread carries
/// keeps two threads busy for 1.2 cores. So this rule is a trial, and the hold below
/// backs it off when the fewer threads run out of time again.
const TRY_BELOW: f64 = 1.5;
/// Wait after the pool grew before it may shrink again; doubled (up to `MAX_HOLD`) when
/// it had to grow within `REGRET` of shrinking, so a load near the boundary does not
/// make it flap.
const MIN_HOLD: Duration = Duration::from_secs(1);
const MAX_HOLD: Duration = Duration::from_secs(30);
const REGRET: Duration = Duration::from_secs(2);
/// Longest a standby pool thread sleeps between looks at the pool (it is unparked when
/// the pool grows, and on stop).
const STANDBY_PARK: Duration = Duration::from_secs(1);
/// Busy time is handed to the pool's account at least this often.
const ACCOUNT_EVERY: Duration = Duration::from_millis(10);

/// An executor on a thread: whether its last step waits for input (rather than for room
/// downstream), and the lane it goes back to.
struct Slot {
    executor: Box<dyn Executor>,
    listening: bool,
    lane: usize,
    /// Pipeline order ([`order_key`]): a thread steps its executors in this order, so a
    /// burst crosses a whole chain on one thread in one round.
    key: (bool, u32, usize),
}

/// Pipeline order: spouts and bolts by stage, ackers last, then the order they were built.
fn order_key(p: &Placeable, index: usize) -> (bool, u32, usize) {
    (p.role == Role::Acker, p.stage, index)
}

/// A lane: executors `assign` grouped for one pool thread, and whether a thread holds
/// them now.
struct Lane {
    slots: Vec<Slot>,
    taken: bool,
}

/// Threads that share lanes of executors. Thread `t` of `active` steps lanes `t`,
/// `t + active`, `t + 2 × active`, …; threads at or past `active` stand by.
///
/// An elastic pool starts with one active thread and doubles them (up to one per lane)
/// when a thread stays busy for `SATURATED`; it drops one when its message rate is
/// below what one thread fewer carried (`SHRINK_AT`), or tries one fewer when its busy
/// time suggests they might do (`TRY_BELOW`), holding off longer each time a shrink had
/// to be undone (`MIN_HOLD` to `MAX_HOLD`). A topology that one
/// thread can carry then runs on one: its hand-offs stay on that thread (no wake-ups of
/// another core, which cost tens of microseconds of the waker's time on a VM), and the
/// other cores stay free, which on a VM host also spares the running core from being
/// descheduled for milliseconds. A fixed pool keeps every thread active.
pub(crate) struct Pool {
    lanes: Vec<Mutex<Lane>>,
    active: AtomicUsize,
    elastic: bool,
    /// Busy nanoseconds of each thread since the last weighing.
    busy_ns: Vec<AtomicU64>,
    /// Every executor's queue, for the messages the pool takes per second.
    queues: Vec<Arc<BatchQueue<Msg>>>,
    threads: OnceLock<Vec<Thread>>,
    resize: Mutex<Resize>,
    control: Arc<Control>,
}

/// When the pool last grew, shrank and weighed, and what it measured.
struct Resize {
    grew: Instant,
    shrank: Option<Instant>,
    hold: Duration,
    weighed: Instant,
    /// Messages taken by the pool's executors, at the last weighing.
    popped: u64,
    /// Messages per second taken over the last weighing's window.
    rate: f64,
    /// Messages per second one thread took when the pool last grew (0: not measured).
    per_thread: f64,
}

impl Resize {
    /// A pool that has neither grown nor weighed yet.
    fn new(now: Instant) -> Self {
        Resize {
            grew: now,
            shrank: None,
            hold: MIN_HOLD,
            weighed: now,
            popped: 0,
            rate: 0.0,
            per_thread: 0.0,
        }
    }
}

impl Pool {
    /// Threads stepping lanes now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    fn wake_all(&self) {
        for t in self.threads.get().into_iter().flatten() {
            t.unpark();
        }
    }

    /// Messages taken by every executor of the pool so far.
    fn popped(&self) -> u64 {
        self.queues.iter().map(|q| q.popped()).sum()
    }

    /// Puts more threads to work: `from` active threads become twice as many. What they
    /// took per second since the last weighing, a window in which one of them ran out of
    /// time, is taken as what `from` threads can do.
    fn grow(&self, from: usize) {
        let to = (from * 2).min(self.lanes.len());
        if to <= from {
            return;
        }
        let now = Instant::now();
        // Under the lock that `weigh` shrinks under, so neither acts on the other's
        // half-made change.
        let mut r = self.resize.lock();
        if self
            .active
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        r.hold = match r.shrank {
            Some(at) if now.duration_since(at) < REGRET => (r.hold * 2).min(MAX_HOLD),
            _ => MIN_HOLD,
        };
        r.grew = now;
        // Too short a window says little: keep what was measured before.
        let window = now.duration_since(r.weighed);
        if window >= MIN_MEASURE {
            let taken = self.popped().saturating_sub(r.popped) as f64;
            r.per_thread = taken / window.as_secs_f64() / from as f64;
        }
        drop(r);
        debug!(from, to, "executor pool grows");
        self.wake_all();
    }

    /// Measures the last window and drops one active thread if the load would fit one
    /// fewer (see `SHRINK_AT` and `TRY_BELOW`).
    fn weigh(&self, now: Instant) {
        let mut r = self.resize.lock();
        let window = now.duration_since(r.weighed).as_secs_f64();
        if window <= 0.0 {
            return;
        }
        let popped = self.popped();
        r.rate = popped.saturating_sub(r.popped) as f64 / window;
        r.popped = popped;
        r.weighed = now;
        let busy: u64 = self.busy_ns.iter().map(|b| b.swap(0, Ordering::AcqRel)).sum();
        let k = self.active();
        if !self.elastic || k <= 1 || now.duration_since(r.grew) < r.hold {
            return;
        }
        let left = (k - 1) as f64;
        let load = busy as f64 / 1e9 / window;
        let fits = r.rate < left * r.per_thread * SHRINK_AT || load < left * TRY_BELOW;
        if fits
            && self
                .active
                .compare_exchange(k, k - 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            r.shrank = Some(now);
            let rate = r.rate;
            drop(r);
            debug!(from = k, to = k - 1, load, rate, "executor pool shrinks");
            self.wake_all();
        }
    }

    /// Takes the executors of `lanes`, waiting for a thread that still holds one to give
    /// it back (it has been told to, by the change of `active` or by stop). Gives up,
    /// handing back what it took, once `wanted()` turns false while it waits: the pool
    /// resized again, and the holder may now keep the lane.
    fn take(&self, lanes: &[usize], wanted: impl Fn() -> bool) -> Option<Vec<Slot>> {
        let me = std::thread::current();
        let mut mine = Vec::new();
        for (n, &i) in lanes.iter().enumerate() {
            loop {
                let mut lane = self.lanes[i].lock();
                if !lane.taken {
                    lane.taken = true;
                    for s in &lane.slots {
                        s.executor.base().queue.set_consumer(me.clone());
                    }
                    mine.append(&mut lane.slots);
                    break;
                }
                drop(lane);
                if !wanted() {
                    self.give_back(&mut mine, &lanes[..n]);
                    return None;
                }
                std::thread::yield_now();
            }
        }
        mine.sort_by_key(|s| s.key);
        Some(mine)
    }

    /// Gives executors back to their lanes and frees the lanes in `held`.
    fn give_back(&self, mine: &mut Vec<Slot>, held: &[usize]) {
        let mut lanes: Vec<_> = held.iter().map(|&i| (i, self.lanes[i].lock())).collect();
        for s in mine.drain(..) {
            if let Some((_, lane)) = lanes.iter_mut().find(|(i, _)| *i == s.lane) {
                lane.slots.push(s);
            }
        }
        for (_, lane) in &mut lanes {
            lane.taken = false;
        }
    }
}

/// An executor ready for a pool: where it may go, and its index among the topology's.
pub(crate) struct Placed {
    pub executor: Box<dyn Executor>,
    pub place: Placeable,
    pub index: usize,
}

/// A started pool and its threads.
pub(crate) struct Started {
    pub pool: Arc<Pool>,
    pub handles: Vec<JoinHandle<()>>,
}

/// A pool thread that could not be started.
pub(crate) struct SpawnError {
    pub name: String,
    pub source: std::io::Error,
}

/// Starts a pool stepping `lanes` (each non-empty) until the topology stops: one thread
/// per lane, named by `names`, of which only the first is active at first when `elastic`.
pub(crate) fn spawn_pool(
    names: Vec<String>,
    lanes: Vec<Vec<Placed>>,
    elastic: bool,
    control: &Arc<Control>,
) -> Result<Started, SpawnError> {
    let n = lanes.len();
    let queues = lanes
        .iter()
        .flatten()
        .map(|p| Arc::clone(&p.executor.base().queue))
        .collect();
    let now = Instant::now();
    let pool = Arc::new(Pool {
        lanes: lanes
            .into_iter()
            .enumerate()
            .map(|(lane, execs)| {
                let slots = execs
                    .into_iter()
                    .map(|p| Slot {
                        key: order_key(&p.place, p.index),
                        executor: p.executor,
                        listening: true,
                        lane,
                    })
                    .collect();
                Mutex::new(Lane { slots, taken: false })
            })
            .collect(),
        active: AtomicUsize::new(if elastic { 1 } else { n }),
        elastic: elastic && n > 1,
        busy_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
        queues,
        threads: OnceLock::new(),
        resize: Mutex::new(Resize::new(now)),
        control: Arc::clone(control),
    });
    let mut handles = Vec::with_capacity(n);
    for (t, name) in names.into_iter().enumerate() {
        let p = Arc::clone(&pool);
        match std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || pool_thread(&p, t))
        {
            Ok(h) => handles.push(h),
            Err(source) => return Err(SpawnError { name, source }),
        }
    }
    let _ = pool
        .threads
        .set(handles.iter().map(|h| h.thread().clone()).collect());
    pool.wake_all();
    Ok(Started { pool, handles })
}

/// One pool thread: steps the lanes its place in the pool gives it, stands by while the
/// pool needs fewer threads, and shuts its own lane's executors down on stop.
fn pool_thread(pool: &Pool, me: usize) {
    let control = &pool.control;
    let stopped = || control.stop.load(Ordering::Acquire);
    while !stopped() {
        let k = pool.active();
        if me >= k {
            std::thread::park_timeout(STANDBY_PARK);
            continue;
        }
        let lanes: Vec<usize> = (me..pool.lanes.len()).step_by(k).collect();
        let Some(mut mine) = pool.take(&lanes, || pool.active() == k && !stopped()) else {
            continue;
        };
        run(pool, me, k, &mut mine);
        pool.give_back(&mut mine, &lanes);
    }
    // Every thread gives its lanes back on stop, so this wait ends.
    let mut mine = pool.take(&[me], || true).unwrap_or_default();
    for s in &mut mine {
        if catch_unwind(AssertUnwindSafe(|| s.executor.shutdown())).is_err() {
            error!(component = %s.executor.base().plan.name, "executor panicked while shutting down");
        }
    }
    pool.give_back(&mut mine, &[me]);
}

/// Steps `group` round-robin while the pool keeps `k` threads active and the topology runs.
fn run(pool: &Pool, me: usize, k: usize, group: &mut Vec<Slot>) {
    let control = &pool.control;
    // Start of the current busy stretch (for the account), and the last time the thread
    // ran out of work (for saturation).
    let mut mark = Instant::now();
    let mut last_rest = mark;
    let mut weighed = mark;
    while !control.stop.load(Ordering::Acquire) && pool.active() == k {
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
        let now = Instant::now();
        if !busy || now.duration_since(mark) >= ACCOUNT_EVERY {
            let spent = now.duration_since(mark).as_nanos() as u64;
            pool.busy_ns[me].fetch_add(spent, Ordering::Relaxed);
            mark = now;
        }
        if me == 0 && now.duration_since(weighed) >= WEIGH_EVERY {
            pool.weigh(now);
            weighed = now;
        }
        if busy {
            if pool.elastic && now.duration_since(last_rest) >= SATURATED {
                pool.grow(k);
                last_rest = now;
            }
            continue;
        }
        idle(group, wake_at);
        mark = Instant::now();
        last_rest = mark;
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
    use std::sync::atomic::AtomicBool;

    /// A pool of `n` lanes with no executors and no threads, for the lane hand-over.
    fn bare_pool(n: usize) -> Pool {
        let now = Instant::now();
        Pool {
            lanes: (0..n)
                .map(|_| {
                    Mutex::new(Lane {
                        slots: Vec::new(),
                        taken: false,
                    })
                })
                .collect(),
            active: AtomicUsize::new(1),
            elastic: true,
            busy_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            queues: Vec::new(),
            threads: OnceLock::new(),
            resize: Mutex::new(Resize::new(now)),
            control: Arc::new(Control {
                active: AtomicBool::new(true),
                stop: AtomicBool::new(false),
                epoch: now,
            }),
        }
    }

    fn taken(pool: &Pool) -> Vec<bool> {
        pool.lanes.iter().map(|l| l.lock().taken).collect()
    }

    #[test]
    fn a_thread_waiting_for_a_held_lane_gives_up_and_frees_what_it_took() {
        let pool = bare_pool(3);
        pool.lanes[2].lock().taken = true;
        // Still wanted for three looks, then the pool "resizes".
        let looks = AtomicUsize::new(0);
        let got = pool.take(&[0, 1, 2], || looks.fetch_add(1, Ordering::Relaxed) < 3);
        assert!(got.is_none(), "took a lane another thread holds");
        assert_eq!(looks.load(Ordering::Relaxed), 4, "it waited while wanted");
        assert_eq!(
            taken(&pool),
            vec![false, false, true],
            "lanes 0 and 1 freed, 2 untouched"
        );
        // Free lanes are taken at once, wanted or not, and given back.
        let got = pool.take(&[0, 1], || false);
        assert!(got.is_some(), "free lanes were not taken");
        let mut mine = got.unwrap_or_default();
        assert_eq!(taken(&pool), vec![true, true, true]);
        pool.give_back(&mut mine, &[0, 1]);
        assert_eq!(taken(&pool), vec![false, false, true]);
    }

    #[test]
    fn grow_doubles_up_to_the_lanes_and_measures_what_the_threads_took() {
        let pool = bare_pool(3);
        std::thread::sleep(MIN_MEASURE);
        pool.grow(1);
        assert_eq!(pool.active(), 2);
        // No queues, so nothing was taken: the measured capacity is 0 per thread.
        assert_eq!(pool.resize.lock().per_thread, 0.0);
        pool.grow(1);
        assert_eq!(pool.active(), 2, "a stale grow changes nothing");
        pool.grow(2);
        assert_eq!(pool.active(), 3, "capped at one thread per lane");
        pool.grow(3);
        assert_eq!(pool.active(), 3);
    }

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
