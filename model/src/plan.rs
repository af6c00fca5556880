//! The validated, resolved form of a topology: what the engine executes.

use std::path::PathBuf;
use std::time::Duration;

use crate::spec::{Config, InputSpec, ShellSpec, StreamSpec, TopologySpec};

/// Component name of the acker tasks (Storm's `__acker`).
pub const ACKER_COMPONENT: &str = "__acker";

/// Whether a component is a spout, a bolt or an acker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A source of tuples.
    Spout,
    /// A consumer (and maybe producer) of tuples.
    Bolt,
    /// A system acker task.
    Acker,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Spout => "spout",
            Role::Bolt => "bolt",
            Role::Acker => "acker",
        }
    }
}

/// One component with everything resolved: outputs filled from its kind's defaults,
/// task counts fixed and task ids assigned.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentPlan {
    /// Component name.
    pub name: String,
    /// Spout, bolt or acker.
    pub role: Role,
    /// Component kind (`__acker` for ackers).
    pub kind: String,
    /// Executors (threads).
    pub parallelism: u32,
    /// Task ids, contiguous and ascending.
    pub tasks: Vec<u32>,
    /// Component configuration.
    pub config: Config,
    /// Output streams, defaults included.
    pub outputs: Vec<StreamSpec>,
    /// Subscriptions (bolts only).
    pub inputs: Vec<InputSpec>,
    /// Tick tuple period, if any.
    pub tick: Option<Duration>,
    /// The subprocess, for `shell` components.
    pub shell: Option<ShellSpec>,
}

impl ComponentPlan {
    /// The declared output stream with this name.
    pub fn output(&self, stream: &str) -> Option<&StreamSpec> {
        self.outputs.iter().find(|s| s.stream == stream)
    }

    /// Splits this component's tasks over its executors as evenly as possible,
    /// in Storm's way: contiguous ranges, larger ones first.
    pub fn executor_tasks(&self) -> Vec<Vec<u32>> {
        let n = self.parallelism.max(1) as usize;
        let per = self.tasks.len() / n;
        let extra = self.tasks.len() % n;
        let mut out = Vec::with_capacity(n);
        let mut it = self.tasks.iter().copied();
        for i in 0..n {
            let take = per + usize::from(i < extra);
            out.push(it.by_ref().take(take).collect());
        }
        out
    }
}

/// A validated topology ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Topology name.
    pub name: String,
    /// The spec it was made from.
    pub spec: TopologySpec,
    /// All components, ackers included, sorted by name; task ids follow this order.
    pub components: Vec<ComponentPlan>,
    /// Message timeout.
    pub message_timeout: Duration,
    /// Acker task count (0 = acking off).
    pub ackers: u32,
    /// Max un-acked tuples per spout task.
    pub max_spout_pending: Option<u32>,
    /// Directory that relative paths in component configs are resolved against (the
    /// manifest's directory when it came from a file); `None` means the current directory.
    pub base_dir: Option<PathBuf>,
}

impl Plan {
    /// The component with this name.
    pub fn component(&self, name: &str) -> Option<&ComponentPlan> {
        self.components.iter().find(|c| c.name == name)
    }

    /// Total number of tasks.
    pub fn task_count(&self) -> u32 {
        self.components.iter().map(|c| c.tasks.len() as u32).sum()
    }

    /// The component owning a task id.
    pub fn component_of_task(&self, task: u32) -> Option<&ComponentPlan> {
        self.components.iter().find(|c| {
            c.tasks.first().is_some_and(|f| *f <= task) && c.tasks.last().is_some_and(|l| *l >= task)
        })
    }
}
