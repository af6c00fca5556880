//! The Squall topology model.
//!
//! One type, [`TopologySpec`], describes a topology. The CLI reads it from a manifest
//! ([`TopologyManifest`]), [`validate`] checks it against a [`Catalog`] of component kinds
//! and produces the [`Plan`] that the engine executes, and the operator turns the same type
//! into the CRD.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bounded;
#[cfg(feature = "crd")]
pub mod crd;
mod depth;
pub mod engine_settings;
mod identity;
mod limits;
mod manifest;
mod plan;
mod spec;
mod validate;

pub use bounded::MAX_VALUE_DEPTH;
pub use depth::value_depth;
pub use identity::{Identity, IndexLimit};
pub use limits::{LimitKey, Limits, MAX_SECONDS};
pub use manifest::{ManifestError, Metadata, TopologyManifest, API_VERSION, GROUP, KIND, VERSION};
pub use plan::{ComponentPlan, Plan, Role, ACKER_COMPONENT};
pub use spec::{
    AutoscalingSpec, ComponentAutoscaling, ComponentSpec, Config, DesiredState, GroupingKind, GroupingSpec,
    InputSpec, PodSettings, Serializer, ShellSpec, StreamSpec, TlsMode, TlsSettings, TopologySpec,
    DEFAULT_MESSAGE_TIMEOUT_SECONDS, DEFAULT_STREAM, STREAMPARSE_RUN,
};
pub use validate::{
    validate, validate_within, Catalog, FieldBound, KindInfo, Problem, ValidationErrors, MAX_PROBLEMS,
};
