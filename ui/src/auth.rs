//! Who may do what: a hook asked before every request is answered, with the request's
//! headers and what it touches. Whoever serves the API decides; [`Open`] (the default,
//! for an API on loopback in local mode) lets everyone do everything.

use std::future::Future;

use http::HeaderMap;

/// What a request does to a topology, in Kubernetes' verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// Reads one topology's pages (topology, component, visualization).
    Get,
    /// Lists topologies (cluster and topology summaries).
    List,
    /// Changes a topology (activate, deactivate, rebalance).
    Patch,
    /// Kills a topology.
    Delete,
}

impl Verb {
    /// The Kubernetes verb.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// The answer of an [`Authorize`] hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// The caller is known but may not (403); the text says what was refused.
    Deny(String),
    /// The caller could not be identified (401): no credentials, or bad ones.
    Unauthenticated(String),
    /// The decision could not be made now (503), e.g. the authority did not answer.
    Unavailable(String),
}

/// Decides whether a request may go ahead. Asked for every request before it is
/// answered:
///
/// - a read of one topology's pages: `(Some(id), Get)`;
/// - an action: `(Some(id), Patch)` for activate, deactivate and rebalance,
///   `(Some(id), Delete)` for kill;
/// - a list (cluster and topology summaries): first `(None, List)`, which identifies the
///   caller (and may refuse them), then `(Some(id), List)` for each topology there is:
///   the answer lists only those allowed, counts only them, and hides a denied one.
pub trait Authorize: Send + Sync + 'static {
    /// The decision for a request with `headers` doing `verb` on `topology`.
    fn authorize(
        &self,
        headers: &HeaderMap,
        topology: Option<&str>,
        verb: Verb,
    ) -> impl Future<Output = Decision> + Send;
}

/// Lets every request through: for an API served on loopback to its own user, as
/// `squall run --ui` does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Open;

impl Authorize for Open {
    async fn authorize(&self, _: &HeaderMap, _: Option<&str>, _: Verb) -> Decision {
        Decision::Allow
    }
}
