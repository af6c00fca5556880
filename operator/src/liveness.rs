//! Whether a worker is dead, judged on what this operator has seen.
//!
//! A Lease's `renewTime` is written by the worker and read through the API server; while
//! the API server is away (an upgrade, an etcd stall) no worker can renew and this
//! operator cannot look, so comparing `renewTime` with the clock would condemn every
//! worker the moment the server returns. Kubernetes' node lifecycle controller avoids that
//! by judging a lease on when *it* last saw the lease change; so does this book:
//!
//! - a Lease is expired only after the operator, looking all along, has seen no renewal
//!   for the Lease's duration;
//! - a gap in looking longer than the duration (the API server was away, this operator
//!   just started or just gained leadership) starts every judgement over, so a full
//!   duration passes before any worker is replaced;
//! - when most of a topology's workers look dead at once (Leases unrenewed, or their node
//!   not ready: after an outage the node controller misjudges nodes the same way), the
//!   caller asks each one's data plane for its typed status before replacing it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;

/// One Lease as last seen.
#[derive(Clone, Debug)]
struct Seen {
    holder: Option<String>,
    renewed: Option<String>,
    /// When this operator saw the current renewal first.
    changed_at: Instant,
}

#[derive(Debug, Default)]
struct TopologyBook {
    /// When this operator last listed the topology's Leases.
    looked_at: Option<Instant>,
    leases: HashMap<String, Seen>,
}

/// What this operator has seen of every topology's worker Leases.
#[derive(Debug, Default)]
pub struct LeaseBook {
    topologies: HashMap<String, TopologyBook>,
}

impl LeaseBook {
    /// Records a fresh list of one topology's Leases, taken at `now` (after the response
    /// arrived), and returns the holders (pod uids) whose Lease has not been renewed for
    /// its whole duration while this operator was looking. `fallback` is the duration of
    /// a Lease that names none.
    pub fn observe(
        &mut self,
        topology: &str,
        leases: &[Lease],
        now: Instant,
        fallback: Duration,
    ) -> BTreeSet<String> {
        let book = self.topologies.entry(topology.to_owned()).or_default();
        let gap = book.looked_at.map(|t| now.saturating_duration_since(t));
        book.looked_at = Some(now);
        let mut expired = BTreeSet::new();
        let mut next = HashMap::with_capacity(leases.len());
        for lease in leases {
            let spec = lease.spec.as_ref();
            let holder = spec.and_then(|s| s.holder_identity.clone());
            let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0.to_string());
            let duration = spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(fallback, Duration::from_secs);
            // Blind for longer than the duration: nothing seen since says anything.
            let blind = gap.is_none_or(|g| g > duration);
            let seen = match book.leases.remove(&lease.name_any()) {
                Some(s) if s.holder == holder && s.renewed == renewed && !blind => s,
                _ => Seen {
                    holder: holder.clone(),
                    renewed,
                    changed_at: now,
                },
            };
            if now.saturating_duration_since(seen.changed_at) > duration {
                if let Some(h) = &holder {
                    expired.insert(h.clone());
                }
            }
            next.insert(lease.name_any(), seen);
        }
        book.leases = next;
        expired
    }

    /// Forgets a deleted topology.
    pub fn forget(&mut self, topology: &str) {
        self.topologies.remove(topology);
    }
}

/// Whether most of `workers` look dead at once: then the API server, not the workers, is
/// the likelier fault, and each is asked before it is replaced.
pub fn most_look_dead(dead: usize, workers: usize) -> bool {
    dead * 2 > workers
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::*;

    fn lease(name: &str, holder: &str, renewed_secs: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(10),
                renew_time: Some(MicroTime(
                    jiff::Timestamp::from_second(1_700_000_000 + renewed_secs).unwrap_or_default(),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_lease_expires_after_its_duration_unrenewed_while_looking() {
        let mut book = LeaseBook::default();
        let t0 = Instant::now();
        let mut renew = 0;
        for i in 0..=20u64 {
            // w-0 renews every 2 s; w-1 stops at 4 s.
            if i % 2 == 0 {
                renew = i as i64;
            }
            let w1 = renew.min(4);
            let expired = book.observe(
                "t",
                &[lease("t-0", "uid-0", renew), lease("t-1", "uid-1", w1)],
                t0 + S * i as u32,
                10 * S,
            );
            assert!(!expired.contains("uid-0"), "a renewing worker expired at {i} s");
            // w-1 was last seen renewed at 4 s: expired once more than 10 s passed.
            assert_eq!(expired.contains("uid-1"), i > 14, "at {i} s");
        }
    }

    #[test]
    fn a_gap_longer_than_the_duration_starts_every_judgement_over() {
        let mut book = LeaseBook::default();
        let t0 = Instant::now();
        let leases = [lease("t-0", "uid-0", 0), lease("t-1", "uid-1", 0)];
        assert!(book.observe("t", &leases, t0, 10 * S).is_empty());
        // The API server was away for a minute: nothing renewed, nothing judged.
        assert!(book.observe("t", &leases, t0 + 60 * S, 10 * S).is_empty());
        // Back: the workers renew, and nobody is replaced.
        let renewed = [lease("t-0", "uid-0", 62), lease("t-1", "uid-1", 62)];
        assert!(book.observe("t", &renewed, t0 + 63 * S, 10 * S).is_empty());
        // One really died during the outage: it goes a full duration after the return.
        let mut t = 63;
        while t < 80 {
            t += 2;
            let leases = [lease("t-0", "uid-0", t), lease("t-1", "uid-1", 62)];
            let expired = book.observe("t", &leases, t0 + S * t as u32, 10 * S);
            assert_eq!(expired.contains("uid-1"), t > 73, "at {t} s");
            assert!(!expired.contains("uid-0"));
        }
    }

    #[test]
    fn a_new_operator_waits_a_full_duration() {
        let mut book = LeaseBook::default();
        let t0 = Instant::now();
        // A lease last renewed long ago, seen for the first time: not judged yet.
        let old = [lease("t-0", "uid-0", -3600)];
        assert!(book.observe("t", &old, t0, 10 * S).is_empty());
        assert!(book.observe("t", &old, t0 + 5 * S, 10 * S).is_empty());
        assert!(book.observe("t", &old, t0 + 10 * S, 10 * S).is_empty());
        assert_eq!(book.observe("t", &old, t0 + 11 * S, 10 * S).len(), 1);
        // A replaced pod (new holder) starts over.
        let new = [lease("t-0", "uid-9", -3600)];
        assert!(book.observe("t", &new, t0 + 12 * S, 10 * S).is_empty());
        book.forget("t");
        assert!(book.topologies.is_empty());
    }

    #[test]
    fn most_look_dead_needs_more_than_half() {
        assert!(most_look_dead(1, 1));
        assert!(!most_look_dead(0, 1));
        assert!(!most_look_dead(1, 2));
        assert!(most_look_dead(2, 2));
        assert!(most_look_dead(2, 3));
        assert!(!most_look_dead(2, 4));
    }
}
