//! The engine this worker runs now, swapped when its tasks change. Receiving threads
//! look it up per frame, so a restart of the engine needs no reconnection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use squall_engine::{Inbound, WireSchemas};

/// What the receiving side needs of an engine.
pub struct EngineIo {
    /// Increases with every engine start.
    pub epoch: u64,
    /// Where received messages go.
    pub inbound: Inbound,
    /// Wire schema ids of the plan.
    pub schemas: Arc<WireSchemas>,
}

/// The current engine, if one runs.
#[derive(Default)]
pub struct EngineSlot {
    current: RwLock<Option<Arc<EngineIo>>>,
    epoch: AtomicU64,
}

impl EngineSlot {
    /// The running engine's I/O, if any.
    pub fn get(&self) -> Option<Arc<EngineIo>> {
        self.current.read().clone()
    }

    /// Installs a new engine's I/O and returns its epoch.
    pub fn set(&self, inbound: Inbound, schemas: Arc<WireSchemas>) -> u64 {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        *self.current.write() = Some(Arc::new(EngineIo {
            epoch,
            inbound,
            schemas,
        }));
        epoch
    }

    /// No engine until the next `set`.
    pub fn clear(&self) {
        *self.current.write() = None;
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes whenever the engine does.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}
