//! The component API: spouts, bolts, and the context they are started with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use squall_model::{ComponentPlan, Config, StreamSpec};

use crate::collector::{BoltOutput, SpoutOutput};
use crate::tuple::Tuple;
use crate::value::Value;

/// An error a component reports. The engine logs it with the component's name and task,
/// counts it, and fails the tuple in hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);

impl ComponentError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        ComponentError(msg.into())
    }
}

impl From<String> for ComponentError {
    fn from(s: String) -> Self {
        ComponentError(s)
    }
}

impl From<&str> for ComponentError {
    fn from(s: &str) -> Self {
        ComponentError(s.to_owned())
    }
}

/// What a task knows about itself and its topology when it starts.
#[derive(Clone, Debug)]
pub struct TaskContext {
    /// Topology name.
    pub topology: String,
    /// This component's name.
    pub component: String,
    /// This task's id.
    pub task_id: u32,
    /// Position of this task among its component's tasks (0-based).
    pub task_index: usize,
    /// All task ids of this component.
    pub component_tasks: Vec<u32>,
    /// This component's configuration.
    pub config: Config,
    /// The topology's configuration.
    pub topology_config: Config,
    /// Declared output streams.
    pub outputs: Vec<StreamSpec>,
    /// Message timeout of the topology.
    pub message_timeout: Duration,
    /// Whether acking is on.
    pub acking: bool,
    /// Task ids of every component, for components that emit direct.
    pub tasks_by_component: Vec<(String, Vec<u32>)>,
    /// The streams this component consumes: (source component, stream, fields).
    pub inputs: Vec<(String, String, Vec<String>)>,
    /// Directory relative paths in the config are resolved against.
    pub base_dir: Option<PathBuf>,
    /// Wakes this task's executor, e.g. from a thread that received data for it.
    pub waker: Waker,
    /// The task's own named counters, reported with its metrics.
    pub counters: Counters,
}

impl TaskContext {
    /// A context for unit tests of a component, outside any topology.
    pub fn for_test(component: &str, task_index: usize, tasks: usize, config: Config) -> Self {
        TaskContext {
            topology: "test".into(),
            component: component.into(),
            task_id: task_index as u32 + 1,
            task_index,
            component_tasks: (1..=tasks as u32).collect(),
            config,
            topology_config: Config::new(),
            outputs: Vec::new(),
            message_timeout: Duration::from_secs(30),
            acking: true,
            tasks_by_component: vec![(component.into(), (1..=tasks as u32).collect())],
            inputs: Vec::new(),
            base_dir: None,
            waker: Waker::noop(),
            counters: Counters::default(),
        }
    }

    /// Resolves a path from the config against [`TaskContext::base_dir`].
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        match &self.base_dir {
            Some(base) if p.is_relative() => base.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// Task ids of a component.
    pub fn tasks_of(&self, component: &str) -> &[u32] {
        self.tasks_by_component
            .iter()
            .find(|(c, _)| c == component)
            .map(|(_, t)| t.as_slice())
            .unwrap_or(&[])
    }
}

/// Wakes an executor that may be parked waiting for input.
#[derive(Clone)]
pub struct Waker(Option<Arc<dyn Fn() + Send + Sync>>);

impl Waker {
    pub(crate) fn new(f: Arc<dyn Fn() + Send + Sync>) -> Self {
        Waker(Some(f))
    }

    /// A waker that does nothing (tests).
    pub fn noop() -> Self {
        Waker(None)
    }

    /// Wakes the executor; cheap, callable from any thread, any number of times.
    pub fn wake(&self) {
        if let Some(f) = &self.0 {
            f()
        }
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// Named counters a component keeps for itself (reconnects, malformed input, ...), and
/// gauges (values that go up and down, such as a consumer's lag).
/// Meant for events, not for every tuple: each update takes a lock.
#[derive(Clone, Default, Debug)]
pub struct Counters(pub(crate) Arc<Mutex<BTreeMap<String, u64>>>, Gauges);

/// A task's gauges, by series: a name, optionally with Prometheus labels.
#[derive(Clone, Default, Debug)]
pub(crate) struct Gauges(pub(crate) Arc<Mutex<BTreeMap<String, u64>>>);

/// The series key of a gauge: `name` or `name{k="v",...}`, label values escaped as in
/// Prometheus' text format.
pub fn gauge_series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

impl Counters {
    /// Adds `n` to the counter `name`.
    pub fn add(&self, name: &str, n: u64) {
        let mut m = self.0.lock();
        match m.get_mut(name) {
            Some(v) => *v += n,
            None => {
                m.insert(name.to_owned(), n);
            }
        }
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> u64 {
        self.0.lock().get(name).copied().unwrap_or(0)
    }

    /// All counters.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().clone()
    }

    /// Sets the gauge `series` (see [`gauge_series`]; a name of `[a-z0-9_]`, exported by
    /// a worker as `squall_<name>` with the component's labels and the series' own).
    pub fn set_gauge(&self, series: &str, value: u64) {
        let mut m = self.1 .0.lock();
        match m.get_mut(series) {
            Some(v) => *v = value,
            None => {
                m.insert(series.to_owned(), value);
            }
        }
    }

    /// Removes the gauge `series` (what it measured is gone, e.g. a partition moved away).
    pub fn remove_gauge(&self, series: &str) {
        self.1 .0.lock().remove(series);
    }

    /// All gauges, by series.
    pub fn gauges(&self) -> BTreeMap<String, u64> {
        self.1 .0.lock().clone()
    }
}

/// A source of tuples. All methods of one task are called from one thread.
pub trait Spout: Send {
    /// Called once before anything else.
    fn open(&mut self, _ctx: &TaskContext) -> Result<(), ComponentError> {
        Ok(())
    }
    /// Emit zero or more tuples. Must not block for long: acks, timeouts and
    /// back pressure are handled on the same thread between calls.
    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError>;
    /// The tree of the tuple emitted with `msg_id` was fully processed.
    fn ack(&mut self, _msg_id: Value) {}
    /// The tree of the tuple emitted with `msg_id` failed or timed out; replay it if you can.
    fn fail(&mut self, _msg_id: Value) {}
    /// The topology was activated (also after `open` when it starts active).
    fn activate(&mut self) {}
    /// The topology was deactivated; `next_tuple` will not be called until activation.
    fn deactivate(&mut self) {}
    /// Called once when the topology stops.
    fn close(&mut self) {}
    /// A finite spout returns true once it has nothing more to emit, ever (after replays).
    fn is_finished(&self) -> bool {
        false
    }
}

/// A consumer of tuples. All methods of one task are called from one thread.
///
/// A bolt owns each input and must eventually `ack` or `fail` it through the output
/// (or it times out). For the common case of "ack when done", implement [`BasicBolt`].
pub trait Bolt: Send {
    /// Called once before `execute`.
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), ComponentError> {
        Ok(())
    }
    /// Process one input. Returning an error reports it and fails the input if it was
    /// neither acked nor failed during this call; panicking does the same and also
    /// restarts the task. An input the bolt keeps for later stays its responsibility.
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError>;
    /// Called after every batch of input and before the executor waits for more: the
    /// place for work that is not driven by a tuple, such as flushing a buffer of writes
    /// or handling replies from a subprocess (wake the executor with the context's
    /// [`Waker`] when such work arrives).
    fn poll(&mut self, _out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        Ok(())
    }
    /// Called once when the topology stops.
    fn cleanup(&mut self) {}
}

/// A bolt that emits anchored to its input and acks it when `execute` returns `Ok`
/// (Storm's `IBasicBolt`); an `Err` fails the input.
pub trait BasicBolt: Send {
    /// See [`Bolt::prepare`].
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), ComponentError> {
        Ok(())
    }
    /// Process one input; every emit is anchored to it.
    fn execute(&mut self, input: &Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError>;
    /// See [`Bolt::cleanup`].
    fn cleanup(&mut self) {}
}

/// Adapts a [`BasicBolt`] into a [`Bolt`].
pub struct Basic<B>(pub B);

impl<B: BasicBolt> Bolt for Basic<B> {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.0.prepare(ctx)
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        out.anchor_to(&input);
        let result = self.0.execute(&input, out);
        out.clear_anchor_into(&input);
        match result {
            Ok(()) => {
                out.ack_ref(&input);
                Ok(())
            }
            Err(e) => {
                out.fail_ref(&input);
                Err(e)
            }
        }
    }

    fn cleanup(&mut self) {
        self.0.cleanup()
    }
}

/// Builds component instances; called once per task, and again when a task restarts.
pub trait ComponentFactory: Send + Sync {
    /// A spout instance for a task of `component`.
    fn spout(&self, component: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError>;
    /// A bolt instance for a task of `component`.
    fn bolt(&self, component: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError>;
    /// Whether every method of `component`'s instances returns within microseconds (no
    /// network or subprocess round trips, no sleeps), so its executor may share a thread
    /// with others. The default is no: a component that blocks on a shared thread stalls
    /// every executor there, while a cooperative one on its own thread only costs a thread.
    fn cooperative(&self, _component: &ComponentPlan) -> bool {
        false
    }
}
