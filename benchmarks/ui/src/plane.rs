//! The control plane the operator's UI reads: a real one (`kube-testenv`: etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler built from Kubernetes' Go
//! modules by `make k8s-bins`, on loopback, RBAC on), holding what the operator would have
//! made of the fleet of [`crate::fleet`]: the Topology CRD, each Topology with its status
//! Running (written through the status subresource, as the operator writes it), and each
//! topology's worker Pods with the operator's labels and, as their `status.podIP`, the
//! loopback IP of their stand-in worker. No kubelet runs the pods and no scheduler binds
//! them: their status is written as a kubelet would write it.
//!
//! The caller of the UI is a ServiceAccount bound by a Role to get, list and patch
//! topologies, with a token from the TokenRequest API; the API server's own request
//! counters (`apiserver_request_total`) say what the UI asked of it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_testenv::{eventually, ClusterOptions, TestCluster};
use serde_json::json;
use squall_model::crd::{Phase, Topology, TopologyCondition, TopologyStatus};

use crate::fleet::{Fleet, Member, NS};

/// The image the worker pods name; nothing pulls it.
const IMAGE: &str = "squall/worker:bench";
/// A scheduler no one runs, so that the pods stay as created (no node runs them).
const SCHEDULER: &str = "squall-bench-ui-none";
/// The ServiceAccount the timed client calls the UI as.
pub const CALLER: &str = "ui-caller";
/// What its Role allows on topologies: reads (a list shows only what it may get) and
/// the actions of `patch`.
pub const CALLER_VERBS: [&str; 3] = ["get", "list", "patch"];
/// The control plane's processes, whose CPU is read apart from the rest of the machine.
pub const PROCESSES: [&str; 4] = [
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kube-scheduler",
];

/// A started control plane holding the fleet; dropping it stops it.
pub struct Plane {
    pub cluster: TestCluster,
    /// The caller's bearer token.
    pub token: String,
    /// kube-apiserver's `gitVersion`, as it reports it.
    pub version: String,
}

impl Plane {
    /// CPU time of the control plane's processes so far.
    pub fn cpu(&self) -> Duration {
        PROCESSES
            .iter()
            .filter_map(|p| self.cluster.pid_of(p))
            .map(squall_bench_common::process_cpu)
            .sum()
    }
}

/// Starts the control plane and fills it with `fleet`.
pub async fn start(fleet: &Fleet) -> Result<Plane> {
    let cluster = TestCluster::start_with(ClusterOptions {
        start_timeout: Duration::from_secs(240),
        ..ClusterOptions::default()
    })
    .await?;
    install_crd(&cluster)?;
    let client = cluster.client();
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NS.to_owned());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    // Pods are admitted once the namespace's default ServiceAccount exists.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    eventually(
        "the default ServiceAccount",
        Duration::from_secs(60),
        cluster.dir(),
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await?;
    for member in &fleet.topologies {
        populate(&client, member).await?;
    }
    let token = caller(&client).await?;
    let version = client.apiserver_version().await?.git_version;
    Ok(Plane {
        cluster,
        token,
        version,
    })
}

fn install_crd(cluster: &TestCluster) -> Result<()> {
    let crd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/topology.yaml");
    Ok(cluster.apply_crd(&crd, "topologies.squall.dev")?)
}

/// The status the operator writes for a topology whose workers are all ready.
fn running(generation: Option<i64>, name: &str, workers: i32, ackers: u32) -> TopologyStatus {
    let now = jiff::Timestamp::now().to_string();
    let progress = format!("{workers} of {workers} workers ready");
    let cond = |type_: &str, status: bool, reason: &str, message: &str| TopologyCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: Some(now.clone()),
        observed_generation: generation,
    };
    TopologyStatus {
        phase: Phase::Running,
        observed_generation: generation,
        conditions: vec![
            cond("Ready", true, "AllWorkersReady", &progress),
            cond("Progressing", false, "Stable", &progress),
            cond("Degraded", false, "AsExpected", ""),
        ],
        desired_workers: workers,
        ready_workers: workers,
        ackers: i32::try_from(ackers).ok(),
        assignment_generation: Some(1),
        selector: Some(squall_operator::resources::selector_string(name)),
        ..TopologyStatus::default()
    }
}

/// One topology: the object, its status, its worker pods and theirs.
async fn populate(client: &Client, member: &Member) -> Result<()> {
    let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
    let created = topos.create(&PostParams::default(), &member.topology).await?;
    let name = created
        .metadata
        .name
        .clone()
        .context("a Topology without a name")?;
    let workers = i32::try_from(member.pods.len())?;
    let status = running(created.metadata.generation, &name, workers, member.ackers);
    topos
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for (pod, ip) in &member.pods {
        let mut p = Pod::default();
        p.metadata.name = Some(pod.clone());
        p.metadata.labels = Some(squall_operator::resources::selector_labels(&name));
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "worker".to_owned(),
                image: Some(IMAGE.to_owned()),
                ..Container::default()
            }],
            scheduler_name: Some(SCHEDULER.to_owned()),
            ..PodSpec::default()
        });
        pods.create(&PostParams::default(), &p).await?;
        let ip = ip.to_string();
        let status = json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }});
        pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
            .await
            .with_context(|| format!("the status of pod {pod}"))?;
    }
    Ok(())
}

/// The caller's ServiceAccount, its Role and binding, and a token for it from the
/// TokenRequest API.
async fn caller(client: &Client) -> Result<String> {
    let topologies = (squall_model::GROUP, "topologies");
    Ok(kube_testenv::rbac::account_token(client, NS, CALLER, topologies, &CALLER_VERBS).await?)
}

/// What the API server counted (`apiserver_request_total`), summed over codes and scopes,
/// by resource (with its subresource: `pods/status`) and verb.
pub type Requests = BTreeMap<(String, String), f64>;

/// The API server's request counters now.
pub async fn requests(client: &Client) -> Result<Requests> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut counts = Requests::new();
    for (name, labels, value) in squall_worker::prom::parse(&text) {
        if name != "apiserver_request_total" {
            continue;
        }
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let mut resource = label("resource");
        let sub = label("subresource");
        if !sub.is_empty() {
            resource = format!("{resource}/{sub}");
        }
        *counts.entry((resource, label("verb"))).or_default() += value;
    }
    ensure!(!counts.is_empty(), "no apiserver_request_total in /metrics");
    Ok(counts)
}

/// Requests on `resource` (with `verb`, if given) between `before` and `after`.
pub fn asked(before: &Requests, after: &Requests, resource: &str, verb: Option<&str>) -> u64 {
    let sum = |r: &Requests| -> f64 {
        r.iter()
            .filter(|((res, v), _)| res == resource && verb.is_none_or(|want| v == want))
            .map(|(_, n)| n)
            .sum()
    };
    (sum(after) - sum(before)).max(0.0).round() as u64
}
