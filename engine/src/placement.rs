//! Running part of a topology: which tasks live in this process, and the queues that
//! connect it to the processes running the rest.
//!
//! The engine still knows nothing about the network. Messages for a task in another
//! process go to that process's *outbound* queue, a bounded queue like any executor's;
//! the host drains it onto whatever link it has. Messages arriving from other processes
//! enter through [`Inbound`], which routes them to local executors with the same back
//! pressure as local traffic: when a local queue is full, the inbound side waits, so the
//! link stops reading and the remote senders fill up and stop in turn.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use squall_model::Plan;

use crate::fabric::{Fabric, Msg, Outbox};
use crate::queue::BatchQueue;
use crate::tuple::Schema;

/// Where each task of a plan runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Tasks run by this process. Each executor (a group of tasks, as
    /// `ComponentPlan::executor_tasks` splits them) must be wholly local or wholly remote.
    pub local: BTreeSet<u32>,
    /// Tasks of every other process, one entry per process, in the host's own order.
    pub remote: Vec<BTreeSet<u32>>,
}

impl Placement {
    /// Every task in this process.
    pub fn all_local(plan: &Plan) -> Self {
        Placement {
            local: plan
                .components
                .iter()
                .flat_map(|c| c.tasks.iter().copied())
                .collect(),
            remote: Vec::new(),
        }
    }

    /// Whether `task` runs here.
    pub fn is_local(&self, task: u32) -> bool {
        self.local.contains(&task)
    }
}

/// The queues connecting a partial topology to its peers.
pub struct Links {
    /// One bounded queue per entry of `Placement::remote`, in that order: everything
    /// this process sends to that peer. The host registers itself as the consumer
    /// (`BatchQueue::set_consumer`) and drains it.
    pub outbound: Vec<Arc<BatchQueue<Msg>>>,
    /// Where messages from peers come in.
    pub inbound: Inbound,
    /// Schema ids for encoding tuples on the wire.
    pub schemas: Arc<WireSchemas>,
}

/// The entry point for messages from other processes.
#[derive(Clone)]
pub struct Inbound {
    pub(crate) fabric: Arc<Fabric>,
    pub(crate) batch: usize,
}

impl Inbound {
    /// An outbox that routes messages to this process's executors by task id (a message
    /// for a task that is not local goes on to the peer that runs it). Use one per
    /// receiving thread: `send` each message, then `flush`; while `is_blocked`, call
    /// `wait_for_room` and park — that is the back pressure a link must apply.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(Arc::clone(&self.fabric), self.batch)
    }

    /// Whether a task has a queue here (local executor or a known peer).
    pub fn routes(&self, task: u32) -> bool {
        self.fabric.routes(task)
    }
}

/// Numbers for every declared stream of a plan, identical in every process running the
/// same plan, so a tuple's schema travels as two integers.
pub struct WireSchemas {
    by_id: Vec<Vec<&'static Schema>>,
    ids: HashMap<usize, (u32, u32)>,
}

impl WireSchemas {
    /// The table for a plan: components in plan order, streams in declaration order.
    pub fn new(plan: &Plan) -> Self {
        let mut by_id = Vec::new();
        let mut ids = HashMap::new();
        for (ci, c) in plan.components.iter().enumerate() {
            let mut streams = Vec::new();
            for (si, s) in c.outputs.iter().enumerate() {
                let schema = Schema::intern(&c.name, &s.stream, &s.fields);
                ids.insert(schema as *const Schema as usize, (ci as u32, si as u32));
                streams.push(schema);
            }
            by_id.push(streams);
        }
        WireSchemas { by_id, ids }
    }

    /// The ids of a schema, if it belongs to the plan.
    pub fn id_of(&self, schema: &'static Schema) -> Option<(u32, u32)> {
        self.ids.get(&(schema as *const Schema as usize)).copied()
    }

    /// The schema for ids received from a peer.
    pub fn schema(&self, component: u32, stream: u32) -> Option<&'static Schema> {
        self.by_id.get(component as usize)?.get(stream as usize).copied()
    }
}
