//! The component API: spouts, bolts, and the context they are started with.

use std::time::Duration;

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
}

impl TaskContext {
    /// Task ids of a component.
    pub fn tasks_of(&self, component: &str) -> &[u32] {
        self.tasks_by_component
            .iter()
            .find(|(c, _)| c == component)
            .map(|(_, t)| t.as_slice())
            .unwrap_or(&[])
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
                out.ack(input);
                Ok(())
            }
            Err(e) => {
                out.fail(input);
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
}
