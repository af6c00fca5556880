//! Starting a topology in this process and controlling it: activate, deactivate,
//! metrics, drain detection and kill with wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use squall_model::{ComponentPlan, DesiredState, Plan, Role};
use tracing::info;

use crate::acker::{IdMap, Ledger};
use crate::collector::{Routing, SpoutState, StreamRoute};
use crate::component::{ComponentError, ComponentFactory, TaskContext, Waker};
use crate::executor::{
    AckerExecutor, AckerTask, BoltExecutor, BoltIo, BoltTask, Control, Executor, ExecutorBase,
    ExecutorGauges, SpoutExecutor, SpoutTask,
};
use crate::fabric::{Fabric, Msg, Outbox, NO_QUEUE};
use crate::grouping::{Grouper, Rng};
use crate::metrics::{
    stats_of, sum_stats, ComponentSnapshot, LocalCounts, LocalStreams, Snapshot, TaskLatencies, TaskMetrics,
};
use crate::placement::{Inbound, Links, Placement, WireSchemas};
use crate::queue::BatchQueue;
use crate::scheduler::{self, Placeable, Placed, Pool};
use crate::tuple::Schema;

/// Per-stream slots of a task: its routing's output streams and the plan's inputs.
fn streams_of(comp: &ComponentPlan, routing: &Routing) -> LocalStreams {
    LocalStreams::new(
        routing.streams.iter().map(|s| s.name.as_str()),
        comp.inputs.iter().map(|i| (i.from.as_str(), i.stream.as_str())),
    )
}

/// Engine settings that are not part of the topology's semantics.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Bound of each executor's receive queue, in tuples.
    pub queue_capacity: usize,
    /// Messages per batch handed to a queue.
    pub batch_size: usize,
    /// Threads shared by the cooperative executors (see the scheduler's docs); 0 means
    /// one per core. Executors of other components always get a thread of their own.
    pub threads: usize,
    /// Whether the pool runs on as few of its threads as the load needs (see the
    /// scheduler's docs) rather than on all of them.
    pub elastic: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            queue_capacity: 16_384,
            batch_size: 256,
            threads: 0,
            elastic: true,
        }
    }
}

impl EngineOptions {
    /// Reads overrides from the topology config (the keys of
    /// [`squall_model::engine_settings`]). Validation rejects a value the engine cannot
    /// use with an error naming the key; what is left here is the default for an unset
    /// key, and for `squall.executor.threads: 0` (one thread per core).
    pub fn from_plan(plan: &Plan) -> Self {
        use squall_model::engine_settings::{BATCH_SIZE, EXECUTOR_ELASTIC, EXECUTOR_THREADS, QUEUE_CAPACITY};
        let mut o = EngineOptions::default();
        // These come from user manifests, so any value must be safe: the queue bound and
        // batch size are only compared against, never allocated up front.
        let get = |k: &str| {
            plan.spec
                .config
                .get(k)
                .and_then(|v| v.as_u64())
                .filter(|v| *v > 0)
                .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        if let Some(v) = get(QUEUE_CAPACITY) {
            o.queue_capacity = v;
        }
        if let Some(v) = get(BATCH_SIZE) {
            o.batch_size = v;
        }
        if let Some(v) = get(EXECUTOR_THREADS) {
            o.threads = v;
        }
        if let Some(v) = plan.spec.config.get(EXECUTOR_ELASTIC).and_then(|v| v.as_bool()) {
            o.elastic = v;
        }
        o
    }
}

/// Why a topology could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A component could not be built or failed to open/prepare.
    #[error("component {component:?} task {task}: {error}")]
    Component {
        /// Component name.
        component: String,
        /// Task id.
        task: u32,
        /// What went wrong.
        error: ComponentError,
    },
    /// The placement does not fit the plan.
    #[error("placement: {0}")]
    Placement(String),
    /// A thread could not be started.
    #[error("starting executor thread {name}: {source}")]
    Thread {
        /// Thread name.
        name: String,
        /// OS error.
        source: std::io::Error,
    },
}

struct ExecutorInfo {
    component: usize,
    queue: Arc<BatchQueue<Msg>>,
    gauges: Arc<ExecutorGauges>,
    role: Role,
}

/// A running topology.
pub struct Topology {
    plan: Plan,
    control: Arc<Control>,
    executors: Vec<ExecutorInfo>,
    metrics: Vec<Vec<Arc<TaskMetrics>>>,
    threads: Vec<JoinHandle<()>>,
    /// The pool of the cooperative executors, if there are any.
    pool: Option<Arc<Pool>>,
    started: Instant,
    stopped: AtomicBool,
    local: std::collections::BTreeSet<u32>,
}

impl Topology {
    /// Starts every task of `plan` in this process.
    pub fn start(
        plan: &Plan,
        factory: Arc<dyn ComponentFactory>,
        opts: EngineOptions,
    ) -> Result<Topology, EngineError> {
        Topology::start_placed(plan, factory, opts, &Placement::all_local(plan)).map(|(t, _)| t)
    }

    /// Starts the tasks `placement` gives this process; messages for the others go to
    /// the returned links' outbound queues.
    pub fn start_placed(
        plan: &Plan,
        factory: Arc<dyn ComponentFactory>,
        opts: EngineOptions,
        placement: &Placement,
    ) -> Result<(Topology, Links), EngineError> {
        let plan = plan.clone();
        let control = Arc::new(Control {
            active: AtomicBool::new(plan.spec.desired_state == DesiredState::Active),
            stop: AtomicBool::new(false),
            epoch: Instant::now(),
        });
        let layout = Layout::new(&plan, placement, opts.queue_capacity)?;
        let metrics = task_metrics_of(&plan);
        let mut builder = ExecutorBuilder {
            plan: &plan,
            factory: &factory,
            control: &control,
            fabric: &layout.fabric,
            metrics: &metrics,
            batch_size: opts.batch_size,
            tasks_by_component: plan
                .components
                .iter()
                .map(|c| (c.name.clone(), c.tasks.clone()))
                .collect(),
            local_tasks: placement.local.iter().copied().collect(),
            rng: Rng::new(0x5ca1_ab1e),
            stages: scheduler::stages(&plan.components),
        };
        let mut executors = Vec::new();
        // Placed on threads only once all are built, so the scheduler sees them together.
        let mut built = Vec::new();
        for (ei, (ci, tasks)) in layout.executors.iter().enumerate() {
            let (info, executor) = builder.executor(ei, *ci, tasks)?;
            executors.push(info);
            built.push(executor);
        }
        let shared = match opts.threads {
            0 => scheduler::default_threads(),
            n => n,
        };
        let Threads {
            handles: threads,
            pool,
        } = spawn_threads(built, shared, opts.elastic, &control)?;
        info!(topology = %plan.name, executors = executors.len(), threads = threads.len(), shared, tasks = placement.local.len(), peers = layout.outbound.len(), "topology started");
        let links = Links {
            outbound: layout.outbound,
            inbound: Inbound {
                fabric: layout.fabric,
                batch: opts.batch_size,
            },
            schemas: Arc::new(WireSchemas::new(&plan)),
        };
        let topology = Topology {
            plan,
            control,
            executors,
            metrics,
            threads,
            pool,
            started: Instant::now(),
            stopped: AtomicBool::new(false),
            local: placement.local.clone(),
        };
        Ok((topology, links))
    }

    /// The plan this topology runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Threads running this process's executors: the shared pool plus one per dedicated
    /// executor.
    pub fn executor_threads(&self) -> usize {
        self.threads.len()
    }

    /// Threads of the shared pool that step executors now (see the scheduler's docs):
    /// between 1 and the pool's size while the pool is elastic, 0 without cooperative
    /// executors.
    pub fn active_pool_threads(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.active())
    }

    /// Lets spouts emit.
    pub fn activate(&self) {
        self.control.active.store(true, Ordering::Release);
        self.wake_all();
    }

    /// Stops asking spouts for tuples; in-flight trees still complete.
    pub fn deactivate(&self) {
        self.control.active.store(false, Ordering::Release);
        self.wake_all();
    }

    /// Whether spouts are active.
    pub fn is_active(&self) -> bool {
        self.control.active.load(Ordering::Acquire)
    }

    fn wake_all(&self) {
        for h in &self.threads {
            h.thread().unpark();
        }
    }

    /// Spout trees in flight across the topology.
    pub fn pending(&self) -> u64 {
        self.metrics
            .iter()
            .zip(&self.plan.components)
            .filter(|(_, c)| c.role == Role::Spout)
            .flat_map(|(m, _)| m.iter())
            .map(|m| m.counters.pending.load(Ordering::Relaxed))
            .sum()
    }

    fn quiet_once(&self) -> bool {
        self.executors.iter().all(|e| {
            e.queue.is_empty()
                && e.gauges.held.load(Ordering::Relaxed) == 0
                && (e.role != Role::Spout || e.gauges.finished.load(Ordering::Acquire))
        }) && self.pending() == 0
    }

    /// True once every spout is finished (finite spouts only) and every tuple has been
    /// processed: no pending trees, empty queues, nothing held. Checked twice, apart.
    pub fn is_drained(&self) -> bool {
        if !self.quiet_once() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(60));
        self.quiet_once()
    }

    /// Forgets the latency samples gathered so far (e.g. after a warm-up).
    pub fn reset_latencies(&self) {
        for m in self.metrics.iter().flatten() {
            m.latencies.lock().reset();
        }
    }

    /// A metrics snapshot.
    pub fn metrics(&self) -> Snapshot {
        let mut components = Vec::new();
        for (ci, comp) in self.plan.components.iter().enumerate() {
            let mut tasks = Vec::new();
            let mut merged = TaskLatencies::default();
            let mut last_error = None;
            let mut custom = std::collections::BTreeMap::new();
            let mut gauges = std::collections::BTreeMap::new();
            // A process reports the tasks it runs; its peers report theirs.
            let here = self.metrics[ci].iter().filter(|m| self.local.contains(&m.task));
            let executors = self.executors.iter().filter(|e| e.component == ci).count() as u32;
            if executors == 0 {
                continue;
            }
            for m in here {
                for (k, v) in m.custom.snapshot() {
                    *custom.entry(k).or_insert(0) += v;
                }
                for (k, v) in m.custom.gauges() {
                    *gauges.entry(k).or_insert(0) += v;
                }
                let (s, lat) = stats_of(m);
                merged.merge(&lat);
                if let Some(e) = m.last_error.lock().clone() {
                    last_error = Some(e);
                }
                tasks.push((m.task, s));
            }
            let (depth, cap) =
                self.executors
                    .iter()
                    .filter(|e| e.component == ci)
                    .fold((0u64, 0u64), |(d, c), e| {
                        // Bounds may be huge (user config): saturate rather than wrap.
                        (
                            d.saturating_add(e.queue.len() as u64),
                            c.saturating_add(e.queue.capacity() as u64),
                        )
                    });
            components.push(ComponentSnapshot {
                name: comp.name.clone(),
                role: comp.role.as_str(),
                executors,
                total: sum_stats(&tasks, &merged),
                tasks,
                queue_depth: depth,
                queue_capacity: cap,
                last_error,
                custom,
                gauges,
                finished: comp.role == Role::Spout
                    && self
                        .executors
                        .iter()
                        .filter(|e| e.component == ci)
                        .all(|e| e.gauges.finished.load(Ordering::Acquire)),
            });
        }
        Snapshot {
            uptime: self.started.elapsed(),
            components,
        }
    }

    /// Storm's kill with wait: deactivates, waits up to `wait` for in-flight trees to
    /// finish, then stops every executor. Returns the final metrics.
    pub fn kill(mut self, wait: Duration) -> Snapshot {
        self.deactivate();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && self.pending() > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop_and_join();
        self.metrics()
    }

    /// Stops every executor now and waits for the threads.
    pub fn shutdown(mut self) -> Snapshot {
        self.stop_and_join();
        self.metrics()
    }

    fn stop_and_join(&mut self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.control.stop.store(true, Ordering::Release);
        self.wake_all();
        for h in self.threads.drain(..) {
            let name = h.thread().name().unwrap_or("executor").to_owned();
            if h.join().is_err() {
                tracing::error!(thread = %name, "executor thread panicked outside a component");
            }
        }
        info!(topology = %self.plan.name, "topology stopped");
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Where messages go in this process: a queue per local executor, then one per peer.
struct Layout {
    /// Component index and tasks of each local executor; executor `i` reads
    /// `fabric.queues[i]`.
    executors: Vec<(usize, Vec<u32>)>,
    fabric: Arc<Fabric>,
    /// One queue per peer, also in `fabric.queues` after the executors' queues.
    outbound: Vec<Arc<BatchQueue<Msg>>>,
}

impl Layout {
    /// Checks that `placement` fits `plan` and maps every task to the queue that serves it.
    fn new(plan: &Plan, placement: &Placement, capacity: usize) -> Result<Layout, EngineError> {
        let max_task = plan
            .components
            .iter()
            .flat_map(|c| c.tasks.iter().copied())
            .max()
            .unwrap_or(0);
        let mut task_queue = vec![NO_QUEUE; max_task as usize + 1];
        let executors = Layout::local_executors(plan, placement, &mut task_queue)?;
        let mut queues: Vec<Arc<BatchQueue<Msg>>> = executors
            .iter()
            .map(|_| Arc::new(BatchQueue::new(capacity)))
            .collect();
        let outbound = Layout::peer_queues(placement, &mut task_queue, queues.len(), capacity)?;
        queues.extend(outbound.iter().cloned());
        let ackers = plan
            .components
            .iter()
            .find(|c| c.role == Role::Acker)
            .map(|c| c.tasks.clone())
            .unwrap_or_default();
        let fabric = Arc::new(Fabric {
            queues,
            task_queue,
            ackers,
        });
        Ok(Layout {
            executors,
            fabric,
            outbound,
        })
    }

    /// The executors with tasks here, in plan order; points their tasks at queues `0..`.
    fn local_executors(
        plan: &Plan,
        placement: &Placement,
        task_queue: &mut [u32],
    ) -> Result<Vec<(usize, Vec<u32>)>, EngineError> {
        let mut executors = Vec::new();
        for (ci, comp) in plan.components.iter().enumerate() {
            for tasks in comp.executor_tasks() {
                let here = tasks.iter().filter(|t| placement.is_local(**t)).count();
                if here == 0 {
                    continue;
                }
                if here != tasks.len() {
                    return Err(EngineError::Placement(format!(
                        "executor of {:?} with tasks {tasks:?} is split between processes; place executors whole",
                        comp.name
                    )));
                }
                for t in &tasks {
                    task_queue[*t as usize] = executors.len() as u32;
                }
                executors.push((ci, tasks));
            }
        }
        Ok(executors)
    }

    /// One outbound queue per peer; points the peer's tasks at queue `first + peer`.
    fn peer_queues(
        placement: &Placement,
        task_queue: &mut [u32],
        first: usize,
        capacity: usize,
    ) -> Result<Vec<Arc<BatchQueue<Msg>>>, EngineError> {
        let mut outbound = Vec::new();
        for tasks in &placement.remote {
            let q = Arc::new(BatchQueue::new(capacity));
            for t in tasks {
                match task_queue.get_mut(*t as usize) {
                    Some(slot) if *slot == NO_QUEUE => *slot = (first + outbound.len()) as u32,
                    Some(_) => {
                        return Err(EngineError::Placement(format!(
                            "task {t} is placed in two processes"
                        )))
                    }
                    None => return Err(EngineError::Placement(format!("task {t} is not in the plan"))),
                }
            }
            outbound.push(q);
        }
        Ok(outbound)
    }
}

/// Every task's metrics, by component index then task index, local or not.
fn task_metrics_of(plan: &Plan) -> Vec<Vec<Arc<TaskMetrics>>> {
    plan.components
        .iter()
        .map(|c| {
            c.tasks
                .iter()
                .map(|t| Arc::new(TaskMetrics::new(&c.name, *t)))
                .collect()
        })
        .collect()
}

/// An executor built, its tasks opened or prepared, not yet on a thread.
struct Built {
    name: String,
    /// What placement reads.
    place: Placeable,
    executor: Box<dyn Executor>,
}

/// What every executor of this process is built from.
struct ExecutorBuilder<'a> {
    plan: &'a Plan,
    factory: &'a Arc<dyn ComponentFactory>,
    control: &'a Arc<Control>,
    fabric: &'a Arc<Fabric>,
    metrics: &'a [Vec<Arc<TaskMetrics>>],
    batch_size: usize,
    tasks_by_component: Vec<(String, Vec<u32>)>,
    /// Local-or-shuffle prefers the tasks of this process.
    local_tasks: Vec<u32>,
    /// Seeds every task's routing in executor order, so a plan always routes the same way.
    rng: Rng,
    /// Each component's stage ([`scheduler::stages`]).
    stages: Vec<u32>,
}

impl ExecutorBuilder<'_> {
    /// Executor `ei` of the layout, running `tasks` of component `ci`.
    fn executor(
        &mut self,
        ei: usize,
        ci: usize,
        tasks: &[u32],
    ) -> Result<(ExecutorInfo, Built), EngineError> {
        let comp = Arc::new(self.plan.components[ci].clone());
        let queue = Arc::clone(&self.fabric.queues[ei]);
        let gauges = Arc::new(ExecutorGauges::default());
        let info = ExecutorInfo {
            component: ci,
            queue: Arc::clone(&queue),
            gauges: Arc::clone(&gauges),
            role: comp.role,
        };
        let base = ExecutorBase {
            plan: Arc::clone(&comp),
            queue: Arc::clone(&queue),
            fabric: Arc::clone(self.fabric),
            outbox: Outbox::new(Arc::clone(self.fabric), self.batch_size),
            control: Arc::clone(self.control),
            gauges,
            factory: Arc::clone(self.factory),
            first_task: tasks.first().copied().unwrap_or(0),
            inbox: Vec::new(),
        };
        let name = format!("{}-{}", comp.name, ei);
        // Ackers are the engine's own and never block.
        let cooperative = comp.role == Role::Acker || self.factory.cooperative(&comp);
        let plan = self.plan;
        let executor: Box<dyn Executor> = match comp.role {
            Role::Spout => {
                let ts = self.spout_tasks(ci, &comp, tasks, &queue)?;
                let max_pending = plan
                    .max_spout_pending
                    .filter(|_| plan.ackers > 0)
                    .map(|p| p as usize);
                Box::new(SpoutExecutor::new(base, ts, max_pending, plan.message_timeout))
            }
            Role::Bolt => {
                let ts = self.bolt_tasks(ci, &comp, tasks, &queue)?;
                Box::new(BoltExecutor::new(base, ts, comp.tick))
            }
            Role::Acker => {
                let ts = tasks
                    .iter()
                    .map(|&t| AckerTask {
                        id: t,
                        ledger: Ledger::for_acker_of(self.fabric.ackers.len()),
                        metrics: self.task_metrics(ci, &comp, t),
                        counts: LocalCounts::default(),
                    })
                    .collect();
                Box::new(AckerExecutor::new(base, ts, plan.message_timeout))
            }
        };
        let built = Built {
            name,
            place: Placeable {
                role: comp.role,
                cooperative,
                stage: self.stages[ci],
            },
            executor,
        };
        Ok((info, built))
    }

    /// Builds and opens a spout instance per task.
    fn spout_tasks(
        &mut self,
        ci: usize,
        comp: &ComponentPlan,
        tasks: &[u32],
        queue: &Arc<BatchQueue<Msg>>,
    ) -> Result<Vec<SpoutTask>, EngineError> {
        let mut ts = Vec::new();
        for &t in tasks {
            let ctx = self.context(ci, comp, t, queue);
            let mut instance = self
                .factory
                .spout(comp)
                .map_err(|error| component_error(comp, t, error))?;
            instance
                .open(&ctx)
                .map_err(|error| component_error(comp, t, error))?;
            let routing = routing_for(self.plan, comp, t, &self.local_tasks, &mut self.rng);
            let counts = LocalCounts::with_streams(streams_of(comp, &routing));
            ts.push(SpoutTask {
                id: t,
                instance,
                ctx,
                routing,
                state: SpoutState {
                    pending: IdMap::default(),
                    next_root: self.rng.next_id(),
                    immediate_acks: Vec::new(),
                    errors: Vec::new(),
                },
                metrics: self.task_metrics(ci, comp, t),
                counts,
                latencies: TaskLatencies::default(),
                finished: false,
            });
        }
        Ok(ts)
    }

    /// Builds and prepares a bolt instance per task.
    fn bolt_tasks(
        &mut self,
        ci: usize,
        comp: &ComponentPlan,
        tasks: &[u32],
        queue: &Arc<BatchQueue<Msg>>,
    ) -> Result<Vec<BoltTask>, EngineError> {
        let mut ts = Vec::new();
        for &t in tasks {
            let ctx = self.context(ci, comp, t, queue);
            let mut instance = self
                .factory
                .bolt(comp)
                .map_err(|error| component_error(comp, t, error))?;
            instance
                .prepare(&ctx)
                .map_err(|error| component_error(comp, t, error))?;
            let routing = routing_for(self.plan, comp, t, &self.local_tasks, &mut self.rng);
            let counts = LocalCounts::with_streams(streams_of(comp, &routing));
            ts.push(BoltTask {
                id: t,
                instance: Some(instance),
                ctx,
                io: BoltIo {
                    routing,
                    counts,
                    latencies: TaskLatencies::default(),
                    errors: Vec::new(),
                },
                metrics: self.task_metrics(ci, comp, t),
                seq: 0,
                retry_at: None,
            });
        }
        Ok(ts)
    }

    /// The context of task `t` of component `ci`; its waker wakes `queue`'s consumer.
    fn context(&self, ci: usize, comp: &ComponentPlan, t: u32, queue: &Arc<BatchQueue<Msg>>) -> TaskContext {
        let plan = self.plan;
        TaskContext {
            topology: plan.name.clone(),
            component: comp.name.clone(),
            task_id: t,
            task_index: comp.tasks.iter().position(|x| *x == t).unwrap_or(0),
            component_tasks: comp.tasks.clone(),
            config: comp.config.clone(),
            topology_config: plan.spec.config.clone(),
            outputs: comp.outputs.clone(),
            message_timeout: plan.message_timeout,
            acking: plan.ackers > 0,
            tasks_by_component: self.tasks_by_component.clone(),
            inputs: comp
                .inputs
                .iter()
                .map(|i| {
                    let fields = plan
                        .component(&i.from)
                        .and_then(|c| c.output(&i.stream))
                        .map(|s| s.fields.clone())
                        .unwrap_or_default();
                    (i.from.clone(), i.stream.clone(), fields)
                })
                .collect(),
            base_dir: plan.base_dir.clone(),
            waker: {
                let q = Arc::clone(queue);
                Waker::new(Arc::new(move || q.wake_consumer()))
            },
            counters: self.task_metrics(ci, comp, t).custom.clone(),
        }
    }

    fn task_metrics(&self, ci: usize, comp: &ComponentPlan, t: u32) -> Arc<TaskMetrics> {
        let idx = comp.tasks.iter().position(|x| *x == t).unwrap_or(0);
        Arc::clone(&self.metrics[ci][idx])
    }
}

/// Threads started for a topology's executors.
struct Threads {
    handles: Vec<JoinHandle<()>>,
    /// The shared pool, if any executor is cooperative.
    pool: Option<Arc<Pool>>,
}

/// Puts the built executors on threads: one each for the dedicated ones, a pool of at
/// most `shared` for the cooperative ones (elastic unless `elastic` is false).
fn spawn_threads(
    built: Vec<Built>,
    shared: usize,
    elastic: bool,
    control: &Arc<Control>,
) -> Result<Threads, EngineError> {
    let roles: Vec<Placeable> = built.iter().map(|b| b.place).collect();
    let groups = scheduler::assign(&roles, shared);
    let mut slots: Vec<Option<(String, Box<dyn Executor>)>> =
        built.into_iter().map(|b| Some((b.name, b.executor))).collect();
    let mut handles = Vec::new();
    let (mut pool_names, mut pool_lanes) = (Vec::new(), Vec::new());
    for (gi, members) in groups.iter().enumerate() {
        let mut names = Vec::new();
        let lane: Vec<Placed> = members
            .iter()
            .filter_map(|&i| {
                let (name, executor) = slots[i].take()?;
                names.push(name);
                Some(Placed {
                    executor,
                    place: roles[i],
                    index: i,
                })
            })
            .collect();
        if members.first().is_some_and(|&i| roles[i].cooperative) {
            // Pool threads are numbered.
            pool_names.push(format!("squall-exec-{gi}"));
            pool_lanes.push(lane);
        } else {
            // A dedicated thread keeps its executor's name.
            let name = names.pop().unwrap_or_else(|| format!("squall-exec-{gi}"));
            handles.extend(start(vec![name], vec![lane], false, control)?.handles);
        }
    }
    if pool_lanes.is_empty() {
        return Ok(Threads { handles, pool: None });
    }
    let started = start(pool_names, pool_lanes, elastic, control)?;
    handles.extend(started.handles);
    Ok(Threads {
        handles,
        pool: Some(started.pool),
    })
}

fn start(
    names: Vec<String>,
    lanes: Vec<Vec<Placed>>,
    elastic: bool,
    control: &Arc<Control>,
) -> Result<scheduler::Started, EngineError> {
    scheduler::spawn_pool(names, lanes, elastic, control).map_err(|e| {
        // The threads already started see the stop and exit.
        control.stop.store(true, Ordering::Release);
        EngineError::Thread {
            name: e.name,
            source: e.source,
        }
    })
}

fn component_error(comp: &ComponentPlan, task: u32, error: ComponentError) -> EngineError {
    EngineError::Component {
        component: comp.name.clone(),
        task,
        error,
    }
}

/// Routing of one task: for each declared stream, a grouper per subscribing bolt.
fn routing_for(plan: &Plan, comp: &ComponentPlan, task: u32, local: &[u32], rng: &mut Rng) -> Routing {
    let streams = comp
        .outputs
        .iter()
        .map(|s| {
            let subs = plan
                .components
                .iter()
                .flat_map(|c| c.inputs.iter().map(move |i| (c, i)))
                .filter(|(_, i)| i.from == comp.name && i.stream == s.stream)
                .map(|(consumer, i)| {
                    let idx = i
                        .grouping
                        .fields
                        .iter()
                        .filter_map(|f| s.fields.iter().position(|x| x == f))
                        .collect();
                    Grouper::new(i.grouping.kind, &consumer.tasks, idx, local, rng)
                })
                .collect();
            StreamRoute {
                name: s.stream.clone(),
                schema: Schema::intern(&comp.name, &s.stream, &s.fields),
                direct: s.direct,
                subs,
            }
        })
        .collect();
    Routing {
        task,
        streams,
        rng: Rng::new(u64::from(task).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ rng.next_u64()),
        targets: Default::default(),
    }
}
