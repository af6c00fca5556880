//! Where the figures come from and where actions go: implemented by whoever serves the
//! API (the CLI over a local run, the operator over a cluster), so this crate needs
//! neither the engine nor the data plane.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::sample::TopologySample;

/// Yields the current figures of every topology it knows.
pub trait Source: Send + Sync + 'static {
    /// One sample per running topology. A topology missing from the answer is gone (its
    /// history is dropped); `None` means no answer this time (a slow or unreachable
    /// backend), and every history is kept as it is. Called periodically, off the request
    /// path: it may take a while (scraping workers), but should not block the runtime's
    /// threads.
    fn sample(&self) -> impl Future<Output = Option<Vec<TopologySample>>> + Send;
}

/// Carries out Storm's topology actions.
///
/// Each returns once the action is accepted, as Storm's do: a kill with a wait answers
/// at once and kills after the wait.
pub trait Control: Send + Sync + 'static {
    /// Lets the spouts emit.
    fn activate(&self, id: &str) -> impl Future<Output = Result<(), ControlError>> + Send;
    /// Stops asking the spouts for tuples; in-flight trees complete.
    fn deactivate(&self, id: &str) -> impl Future<Output = Result<(), ControlError>> + Send;
    /// Deactivates for `wait`, then redistributes the topology as `options` say.
    fn rebalance(
        &self,
        id: &str,
        wait: Duration,
        options: RebalanceOptions,
    ) -> impl Future<Output = Result<(), ControlError>> + Send;
    /// Deactivates for `wait`, then stops the topology.
    fn kill(&self, id: &str, wait: Duration) -> impl Future<Output = Result<(), ControlError>> + Send;
}

/// Storm's `rebalanceOptions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebalanceOptions {
    /// The new number of workers, if it changes.
    pub num_workers: Option<u32>,
    /// New executor counts per component.
    pub executors: BTreeMap<String, u32>,
}

/// Why an action was not carried out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// No topology with that id.
    #[error("topology {0:?} not found")]
    NotFound(String),
    /// The topology exists but the action cannot apply now (e.g. it is being killed).
    #[error("{0}")]
    Refused(String),
    /// This deployment does not offer the action (e.g. rebalance in local mode).
    #[error("{0}")]
    Unsupported(String),
}

/// A control that offers nothing: every action is [`ControlError::Unsupported`]. For
/// read-only deployments.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOnly;

impl ReadOnly {
    fn refuse(what: &str) -> Result<(), ControlError> {
        Err(ControlError::Unsupported(format!(
            "{what} is not offered: this API is read-only"
        )))
    }
}

impl Control for ReadOnly {
    async fn activate(&self, _: &str) -> Result<(), ControlError> {
        Self::refuse("activate")
    }
    async fn deactivate(&self, _: &str) -> Result<(), ControlError> {
        Self::refuse("deactivate")
    }
    async fn rebalance(&self, _: &str, _: Duration, _: RebalanceOptions) -> Result<(), ControlError> {
        Self::refuse("rebalance")
    }
    async fn kill(&self, _: &str, _: Duration) -> Result<(), ControlError> {
        Self::refuse("kill")
    }
}
