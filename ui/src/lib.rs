//! Storm's UI REST API (`/api/v1/...`) for Squall topologies.
//!
//! The crate knows nothing of the engine: whoever serves it implements [`Source`] (the
//! current cumulative figures of each topology, as a [`TopologySample`]), [`Control`]
//! (Storm's actions) and, to decide who may do what, [`Authorize`] ([`Open`] by
//! default). The CLI serves it over a local run; the operator, which does not link the
//! data plane, serves the same crate over a cluster.
//!
//! [`Ui`] samples the source every [`Options::period`] into a bounded history per
//! topology ([`window::History`]) and answers every read from those histories alone:
//! a window's figures are the difference between two samples. See the crate's README
//! for the endpoints, fields, windows and bounds.
#![forbid(unsafe_code)]

pub mod api;
mod assets;
mod auth;
mod error;
pub mod lag;
pub mod route;
pub mod sample;
mod server;
mod source;
pub mod views;
pub mod window;

pub use auth::{Authorize, Decision, Open, Verb};
pub use error::ApiError;
pub use lag::{Lags, PartitionLag};
pub use sample::{
    ComponentKind, ComponentSample, Edge, ErrorReport, ExecutorSample, Figures, InputSample, Latency,
    OutputSample, Status, StreamRows, TopologyInfo, TopologySample,
};
pub use server::{Options, Ui};
pub use source::{Control, ControlError, ReadOnly, RebalanceOptions, Source};
pub use window::Window;
