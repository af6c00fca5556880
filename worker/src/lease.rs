//! Liveness through a `coordination.k8s.io` Lease: the worker renews a Lease named after its
//! topology and worker every few seconds; the operator replaces a worker whose Lease
//! expires. A process that is stopped, wedged in the kernel or cut off from the API server
//! stops renewing, which pod status alone does not show.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// Field manager of the worker's Lease writes.
const FIELD_MANAGER: &str = "squall-worker";

/// Why the Lease could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// No client configuration.
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// No runtime or thread for the renewals.
    #[error("starting the lease thread: {0}")]
    Runtime(std::io::Error),
}

/// The Lease to keep.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// `holderIdentity`: the pod uid, so a recreated pod of the same name is told apart.
    pub holder: String,
    /// Pod name, for the owner reference (the Lease goes when the pod goes).
    pub pod_name: Option<String>,
    /// Labels, e.g. the topology.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `leaseDurationSeconds`.
    pub duration: Duration,
    /// Renewal period.
    pub renew_every: Duration,
}

fn lease(cfg: &LeaseConfig) -> Lease {
    let now = MicroTime(jiff::Timestamp::now());
    let owner = cfg.pod_name.as_ref().map(|pod| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.clone(),
            uid: cfg.holder.clone(),
            ..OwnerReference::default()
        }]
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(cfg.labels.clone()),
            owner_references: owner,
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(cfg.holder.clone()),
            lease_duration_seconds: i32::try_from(cfg.duration.as_secs()).ok(),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews the Lease on the caller's runtime for ever: one server-side apply every
/// `renew_every`. [`start`] runs it on its own thread; `benchmarks/scale` runs many.
pub async fn renew(api: Api<Lease>, cfg: LeaseConfig) {
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    loop {
        let body = lease(&cfg);
        match api.patch(&cfg.name, &pp, &Patch::Apply(&body)).await {
            Ok(_) => tracing::trace!(lease = %cfg.name, "lease renewed"),
            Err(e) => tracing::warn!(lease = %cfg.name, error = %e, "renewing the lease failed"),
        }
        tokio::time::sleep(cfg.renew_every).await;
    }
}

/// Renews the Lease from a background thread for the life of the process.
pub fn start(cfg: LeaseConfig) -> Result<(), LeaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LeaseError::Runtime)?;
    let client = rt.block_on(Client::try_default())?;
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    std::thread::Builder::new()
        .name("lease".into())
        .spawn(move || rt.block_on(renew(api, cfg)))
        .map_err(LeaseError::Runtime)?;
    Ok(())
}
