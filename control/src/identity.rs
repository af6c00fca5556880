//! Who a worker is on its links: the URI its certificate carries as subject alternative
//! name, `spiffe://squall.dev/ns/NAMESPACE/topology/NAME/worker/POD`, and the keys of the
//! Secret that delivers its certificate. The operator issues certificates with it; a
//! worker accepts a peer only when the peer's URI names the same namespace and topology.

/// The trust domain of every worker identity.
pub const TRUST_DOMAIN: &str = "squall.dev";
/// The Secret key holding the topology CA's certificate (PEM): what workers trust.
pub const CA_CERT_KEY: &str = "ca.crt";

/// The Secret key holding worker `pod`'s certificate (PEM).
pub fn cert_key(pod: &str) -> String {
    format!("{pod}.crt")
}

/// The Secret key holding worker `pod`'s private key (PKCS#8 PEM).
pub fn key_key(pod: &str) -> String {
    format!("{pod}.key")
}

/// A worker's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Namespace of the topology.
    pub namespace: String,
    /// The topology's name.
    pub topology: String,
    /// The worker (pod) name.
    pub worker: String,
}

impl WorkerIdentity {
    /// The identity of worker `worker` of topology `namespace/topology`.
    pub fn new(namespace: &str, topology: &str, worker: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            topology: topology.to_owned(),
            worker: worker.to_owned(),
        }
    }

    /// The URI a certificate carries.
    pub fn uri(&self) -> String {
        format!(
            "spiffe://{TRUST_DOMAIN}/ns/{}/topology/{}/worker/{}",
            self.namespace, self.topology, self.worker
        )
    }

    /// Reads a URI back; `None` for anything else (another trust domain or shape, or a
    /// part that is empty or holds a `/`).
    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("spiffe://")?.strip_prefix(TRUST_DOMAIN)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["", "ns", ns, "topology", t, "worker", w] if [ns, t, w].iter().all(|p| !p.is_empty()) => {
                Some(Self::new(ns, t, w))
            }
            _ => None,
        }
    }

    /// Whether `other` is a worker of the same topology.
    pub fn same_topology(&self, other: &Self) -> bool {
        self.namespace == other.namespace && self.topology == other.topology
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_and_other_shapes_are_refused() {
        let me = WorkerIdentity::new("ns", "wc", "wc-0");
        assert_eq!(me.uri(), "spiffe://squall.dev/ns/ns/topology/wc/worker/wc-0");
        assert_eq!(WorkerIdentity::parse(&me.uri()), Some(me.clone()));
        let peer = WorkerIdentity::new("ns", "wc", "wc-1");
        assert!(me.same_topology(&peer));
        assert!(!me.same_topology(&WorkerIdentity::new("ns", "other", "wc-0")));
        assert!(!me.same_topology(&WorkerIdentity::new("ns2", "wc", "wc-0")));
        for bad in [
            "spiffe://example.org/ns/ns/topology/wc/worker/wc-0",
            "spiffe://squall.dev/ns/ns/topology/wc/worker/",
            "spiffe://squall.dev/ns/ns/topology/wc/worker/a/b",
            "spiffe://squall.dev/ns//topology/wc/worker/w",
            "https://squall.dev/ns/ns/topology/wc/worker/w",
        ] {
            assert_eq!(WorkerIdentity::parse(bad), None, "{bad}");
        }
    }
}
