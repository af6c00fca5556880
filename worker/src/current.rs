//! What this worker runs now: the one owner of its assignment generation and plan hash.
//! The dialing side says them in its hello, the receiving side checks peers' hellos
//! against them, and `/status` reports them; only the host, applying an assignment,
//! changes them.

use parking_lot::RwLock;
use squall_proto::wire::Hello;

/// The generation and plan hash, changed together so no reader sees one without the other.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Now {
    generation: u64,
    plan_hash: String,
}

/// This worker's identity and the plan it runs.
#[derive(Debug)]
pub struct CurrentPlan {
    worker: String,
    topology: String,
    now: RwLock<Now>,
}

impl CurrentPlan {
    /// Worker `worker` of `topology`, on assignment `generation` of plan `plan_hash`.
    pub fn new(worker: &str, topology: &str, generation: u64, plan_hash: &str) -> Self {
        CurrentPlan {
            worker: worker.to_owned(),
            topology: topology.to_owned(),
            now: RwLock::new(Now {
                generation,
                plan_hash: plan_hash.to_owned(),
            }),
        }
    }

    /// This worker's id in the assignment.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The topology's name.
    pub fn topology(&self) -> &str {
        &self.topology
    }

    /// Generation of the assignment last applied.
    pub fn generation(&self) -> u64 {
        self.now.read().generation
    }

    /// [`squall_control::plan_hash`] of the plan last applied; peers must share it.
    pub fn plan_hash(&self) -> String {
        self.now.read().plan_hash.clone()
    }

    /// The hello this worker opens its links with.
    pub fn hello(&self) -> Hello {
        let now = self.now.read();
        Hello {
            protocol: squall_proto::PROTOCOL,
            topology: self.topology.clone(),
            plan_hash: now.plan_hash.clone(),
            generation: now.generation,
            worker_id: self.worker.clone(),
        }
    }

    /// Records an applied assignment.
    pub(crate) fn set(&self, generation: u64, plan_hash: &str) {
        let mut now = self.now.write();
        now.generation = generation;
        if now.plan_hash != plan_hash {
            plan_hash.clone_into(&mut now.plan_hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_follows_what_was_applied() {
        let c = CurrentPlan::new("w0", "t", 1, "aaaa");
        c.set(2, "bbbb");
        let h = c.hello();
        assert_eq!((h.generation, h.plan_hash.as_str()), (2, "bbbb"));
        assert_eq!((h.worker_id.as_str(), h.topology.as_str()), ("w0", "t"));
        assert_eq!(h.protocol, squall_proto::PROTOCOL);
        assert_eq!((c.generation(), c.plan_hash()), (2, "bbbb".to_owned()));
    }
}
