//! Squall's stream engine: executors, stream groupings, XOR acking, back pressure,
//! tick tuples and metrics, in one process.
//!
//! The engine knows nothing about Kubernetes or the network. `squall run` wires it in
//! one process; workers wire remote tasks to it through the same queues.
//!
//! # Guarantees
//! - With ackers > 0, every spout tuple emitted with a message id is eventually either
//!   acked (its whole tree was acked) or failed (a tuple failed, a task panicked while
//!   holding it, or the tree timed out between T and 1.25 T): at-least-once with a
//!   replaying spout.
//! - With ackers = 0, spouts are acked right after emit: at-most-once.
//! - Queues are bounded in tuples; a full queue stops its producers, up to the spouts.
//!   Nothing is dropped for lack of room.
//!
//! # Threads
//! Executors are step-able state machines. Those of components whose factory calls them
//! [`ComponentFactory::cooperative`] (and the ackers) share a pool of
//! [`EngineOptions::threads`] threads, one per core by default (topology config
//! `squall.executor.threads`), of which only as many work as the load needs
//! ([`EngineOptions::elastic`]); every other executor gets a thread of its own, because a
//! component that blocks on a shared thread would stall its neighbours. A full queue never
//! blocks a thread: the producer's step returns and its neighbours keep running. The
//! scheduler module's documentation has the details.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acker;
mod collector;
mod component;
mod executor;
pub mod fabric;
pub mod grouping;
pub mod metrics;
mod placement;
pub mod queue;
mod runtime;
mod scheduler;
mod tuple;
mod value;

pub use collector::{BoltOutput, SpoutOutput};
pub use component::{
    gauge_series, Basic, BasicBolt, Bolt, ComponentError, ComponentFactory, Counters, Spout, TaskContext,
    Waker,
};
pub use metrics::{ComponentSnapshot, InputStats, OutputStats, Percentiles, Snapshot, Stats, StreamStats};
pub use placement::{Inbound, Links, Placement, WireSchemas};
pub use runtime::{EngineError, EngineOptions, Topology};
pub use tuple::{MessageIds, Packet, Schema, Tuple, SYSTEM_COMPONENT, SYSTEM_TASK_ID, TICK_STREAM};
pub use value::{fields_hash, Value, Values};
