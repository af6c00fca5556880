//! Leader election through a `coordination.k8s.io` Lease, so two operator replicas never
//! reconcile at once. Every write is a compare-and-swap: creating fails if the Lease
//! exists, updating carries the `resourceVersion` read, so of two candidates racing for
//! an expired Lease exactly one wins (the other gets 409 Conflict). Expiry is judged by
//! the local clock from when this candidate last saw the record change, as client-go
//! does, so clock skew between replicas does not matter.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

/// What identifies one renewal by one holder: (holderIdentity, renewTime).
type Record = (Option<String>, Option<MicroTime>);

/// One candidate for leadership.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The other holder's record as last seen (holder, renewTime) and when it was seen.
    seen: Option<(Record, Instant)>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    /// A candidate `identity` for Lease `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            seen: None,
        }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(self.duration.as_secs()).ok(),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease; `Ok(true)` while this candidate leads.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let held_by_me = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let next = if held_by_me {
            self.spec(spec.acquire_time.clone(), spec.lease_transitions.unwrap_or(0))
        } else {
            let record = (spec.holder_identity.clone(), spec.renew_time.clone());
            let vacant = spec.holder_identity.as_deref().is_none_or(str::is_empty);
            let expired = match &self.seen {
                Some((r, at)) if *r == record => at.elapsed() >= self.duration,
                _ => {
                    self.seen = Some((record, Instant::now()));
                    false
                }
            };
            if !vacant && !expired {
                return Ok(false);
            }
            self.spec(None, spec.lease_transitions.unwrap_or(0).saturating_add(1))
        };
        // The read resourceVersion stays in the metadata: a concurrent writer makes this 409.
        lease.spec = Some(next);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => {
                self.seen = None;
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate leads, trying every `retry`.
    pub async fn acquire(&mut self, retry: Duration) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "leader election failed; retrying"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renews every `renew` until leadership is lost (another holder, or no successful
    /// renewal for the lease duration); then returns, and the caller must stop acting.
    pub async fn keep(&mut self, renew: Duration) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(renew).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "renewing leadership failed");
                    // Stop before the others may take over, not after.
                    if last_ok.elapsed() + renew >= self.duration {
                        return;
                    }
                }
            }
        }
    }
}
