//! Shared by the cluster test files: one control plane per test, run one at a time.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource};
use kube_testenv::{eventually, TestCluster};
use redis_testenv::{Counts, Options, RedisServer};
use squall_model::crd::Topology;
use squall_model::TopologyManifest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod wiki;

pub const WORKER_IMAGE: &str = "squall/worker:test";
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);
pub const NS: &str = "default";

/// Clusters are heavy on 2 cores: one test at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn bounded<F: std::future::Future<Output = Result<()>>>(body: F) -> Result<()> {
    bounded_for(TEST_TIMEOUT, body).await
}

/// [`bounded`] with another limit, for the longer end-to-end runs.
pub async fn bounded_for<F: std::future::Future<Output = Result<()>>>(
    limit: Duration,
    body: F,
) -> Result<()> {
    kube_testenv::init_tracing();
    let _guard = SERIAL.lock().await;
    tokio::time::timeout(limit, body)
        .await
        .context("test timed out")?
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `squall-worker` from the same target directory as this test (deps/ is one level down).
pub fn worker_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary has no target directory")?;
    let bin = dir.join("squall-worker");
    ensure!(
        bin.exists(),
        "{} missing: run `cargo build -p squall-worker` first (make test-operator does)",
        bin.display()
    );
    Ok(bin)
}

pub async fn install_crd(cluster: &TestCluster) -> Result<()> {
    Ok(cluster.apply_crd(&repo().join("crds/topology.yaml"), "topologies.squall.dev")?)
}

pub fn topology(yaml: &str) -> Result<Topology> {
    let m = TopologyManifest::from_yaml(yaml, "<test>")?;
    let mut t = Topology::new(&m.metadata.name, m.spec);
    t.meta_mut().namespace = Some(NS.to_owned());
    Ok(t)
}

/// A change that makes a valid topology invalid.
pub type Edit = fn(&mut Topology);

/// Reads topology `name`, applies `f` and replaces it, reading again when the operator's
/// status write came between (409): a read-modify-write races every status update.
pub async fn edit_topology(
    topos: &Api<Topology>,
    name: &str,
    f: impl Fn(&mut Topology),
) -> kube::Result<Topology> {
    let mut tries = 0;
    loop {
        let mut t = topos.get(name).await?;
        f(&mut t);
        match topos.replace(name, &PostParams::default(), &t).await {
            Err(kube::Error::Api(e)) if e.code == 409 && tries < 10 => tries += 1,
            r => return r,
        }
    }
}

pub const PIPELINE: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: numbers}
spec:
  workers: 2
  messageTimeoutSeconds: 5
  maxSpoutPending: 200
  pod: {image: squall/worker:test}
  spouts:
    - {name: numbers, component: sequence, parallelism: 2}
  bolts:
    - name: sink
      component: "null"
      parallelism: 2
      inputs: [{from: numbers}]
"#;

pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// Trees acked at the `numbers` spout, summed over the running worker pods.
pub async fn acked(pods: &Api<Pod>) -> Option<u64> {
    let list = pods
        .list(&ListParams::default().labels("squall.dev/topology=numbers"))
        .await
        .ok()?;
    let mut total = 0;
    for p in list.items {
        let Some(ip) = p.status.and_then(|s| s.pod_ip) else {
            continue;
        };
        let Some(text) = http_get(&format!("{ip}:9464"), "/metrics").await else {
            continue;
        };
        total += text
            .lines()
            .filter(|l| l.starts_with("squall_acked_total{") && l.contains("component=\"numbers\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

pub async fn wait_acked_beyond(cluster: &TestCluster, pods: &Api<Pod>, floor: u64) -> Result<u64> {
    eventually(
        "tuples acked across workers",
        Duration::from_secs(30),
        cluster.dir(),
        || async { acked(pods).await.filter(|n| *n > floor + 100) },
    )
    .await
    .map_err(Into::into)
}

pub fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true) && o.kind == "Topology")
}

/// The pid of the process running a pod, found by the pod uid in its environment.
pub fn pid_of_pod(uid: &str) -> Option<i32> {
    let needle = format!("POD_UID={uid}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let env = std::fs::read(e.path().join("environ")).ok()?;
        env.split(|b| *b == 0)
            .any(|kv| kv == needle.as_bytes())
            .then_some(pid)
    })
}

/// The uid and worker process of pod `name`, once both exist: a pod may be between
/// restarts of its container at the moment a test looks, so a single look can miss it.
pub async fn pod_process(cluster: &TestCluster, pods: &Api<Pod>, name: &str) -> Result<(String, i32)> {
    eventually(
        &format!("the worker process of {name}"),
        Duration::from_secs(15),
        cluster.dir(),
        || async {
            let uid = kube::ResourceExt::uid(&pods.get(name).await.ok()?)?;
            let pid = pid_of_pod(&uid)?;
            Some((uid, pid))
        },
    )
    .await
    .map_err(Into::into)
}

/// Ready condition of a pod.
pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until pod `name` runs a worker process started after `since` whose spout tasks
/// have had trees acked: the worker's tasks are processing again. Returns the time from
/// `since`.
pub async fn processing_again(
    cluster: &TestCluster,
    pods: &Api<Pod>,
    name: &str,
    since: std::time::Instant,
) -> Result<Duration> {
    eventually(
        "worker processing again",
        Duration::from_secs(40),
        cluster.dir(),
        || async {
            let ip = pods.get(name).await.ok()?.status?.pod_ip?;
            let text = http_get(&format!("{ip}:9464"), "/metrics").await?;
            let samples = squall_worker::prom::parse(&text);
            let uptime = samples.iter().find(|s| s.0 == "squall_uptime_seconds")?.2;
            let acked: f64 = samples
                .iter()
                .filter(|s| s.0 == "squall_acked_total")
                .filter(|s| s.1.get("component").map(String::as_str) == Some("numbers"))
                .map(|s| s.2)
                .sum();
            (uptime < since.elapsed().as_secs_f64() && acked > 0.0).then(|| since.elapsed())
        },
    )
    .await
    .map_err(Into::into)
}

/// The operator in this process, watching `NS`, with workers on `WORKER_IMAGE` and the
/// given Lease timing; abort the handle to stop it.
pub fn spawn_operator(
    client: &kube::Client,
    lease_seconds: u64,
    renew_seconds: u64,
) -> tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>> {
    let lease = (lease_seconds, renew_seconds);
    spawn_operator_in(client, NS, lease, Default::default())
}

/// The operator in this process, watching `namespace`, with workers on `WORKER_IMAGE`,
/// the given Lease timing (duration, renewal) and network policy settings.
pub fn spawn_operator_in(
    client: &kube::Client,
    namespace: &str,
    lease: (u64, u64),
    network: squall_operator::resources::NetworkSettings,
) -> tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>> {
    spawn_operator_with(client, namespace, worker_defaults(lease, network))
}

/// The worker settings of the tests' operator: `WORKER_IMAGE`, the given Lease timing
/// (duration, renewal) and network policy settings, every other one at its default.
pub fn worker_defaults(
    (lease_seconds, renew_seconds): (u64, u64),
    network: squall_operator::resources::NetworkSettings,
) -> squall_operator::resources::WorkerDefaults {
    squall_operator::resources::WorkerDefaults {
        python_image: None,
        image: WORKER_IMAGE.to_owned(),
        lease_duration_seconds: lease_seconds,
        lease_renew_seconds: renew_seconds,
        cert_validity: squall_operator::resources::DEFAULT_CERT_VALIDITY,
        ca_overlap: squall_operator::resources::DEFAULT_CA_OVERLAP,
        limits: squall_model::Limits {
            raise_with: squall_operator::RAISE_WITH.to_owned(),
            ..squall_model::Limits::default()
        },
        network,
    }
}

/// The operator in this process, watching `namespace`, with the worker defaults given.
pub fn spawn_operator_with(
    client: &kube::Client,
    namespace: &str,
    workers: squall_operator::resources::WorkerDefaults,
) -> tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>> {
    spawn_operator_metered(client, namespace, workers, Default::default())
}

/// [`spawn_operator_with`], rendering its `/metrics` page into `metrics`.
pub fn spawn_operator_metered(
    client: &kube::Client,
    namespace: &str,
    workers: squall_operator::resources::WorkerDefaults,
    metrics: std::sync::Arc<squall_operator::metrics::Metrics>,
) -> tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>> {
    tokio::spawn(squall_operator::controller::run(
        client.clone(),
        squall_operator::controller::Config {
            workers,
            namespace: Some(namespace.to_owned()),
            instance: "test".to_owned(),
            metrics,
        },
    ))
}

/// The operator task [`spawn_operator`] returns.
pub type OperatorTask = tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>>;

/// A control plane with the CRD, one node agent running `WORKER_IMAGE` as the worker
/// binary, and the operator in this process (Lease 10 s, renewed every 2 s). Keep the
/// agent for the test's length; abort the handle to stop the operator.
pub async fn cluster_with_operator() -> Result<(TestCluster, kube_testenv::AgentHandle, OperatorTask)> {
    cluster_with_operator_leased(10, 2).await
}

/// [`cluster_with_operator`] with another Lease timing.
pub async fn cluster_with_operator_leased(
    lease_seconds: u64,
    renew_seconds: u64,
) -> Result<(TestCluster, kube_testenv::AgentHandle, OperatorTask)> {
    let (cluster, agent, operator, _) = cluster_with_metered_operator((lease_seconds, renew_seconds)).await?;
    Ok((cluster, agent, operator))
}

/// [`cluster_with_operator_leased`] whose operator renders its `/metrics` page into the
/// returned [`Metrics`](squall_operator::metrics::Metrics).
pub async fn cluster_with_metered_operator(
    lease: (u64, u64),
) -> Result<(
    TestCluster,
    kube_testenv::AgentHandle,
    OperatorTask,
    std::sync::Arc<squall_operator::metrics::Metrics>,
)> {
    let cluster = TestCluster::start().await?;
    install_crd(&cluster).await?;
    let agent = cluster
        .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
        .await?;
    let metrics = std::sync::Arc::<squall_operator::metrics::Metrics>::default();
    let workers = worker_defaults(lease, Default::default());
    let operator = spawn_operator_metered(&cluster.client(), NS, workers, metrics.clone());
    Ok((cluster, agent, operator, metrics))
}

/// The sorted sets the Wikipedia examples count into (`action` holds timestamps: not
/// compared).
pub const SETS: &[&str] = &["isanon", "anon", "bot", "actions", "country"];

/// What the examples' end-to-end tests run against: [`cluster_with_operator_leased`] with
/// a 4 s Lease renewed every second (a killed worker's tasks move on quickly), and a
/// redis-server whose files and log stay in the cluster's directory. The operator is
/// aborted on drop.
pub struct ExampleCluster {
    operator: OperatorTask,
    pub redis: RedisServer,
    pub topos: Api<Topology>,
    pub pods: Api<Pod>,
    _agent: kube_testenv::AgentHandle,
    // Last: dropped after the agent, as a test's locals would be.
    pub cluster: TestCluster,
}

impl ExampleCluster {
    pub async fn start() -> Result<Self> {
        let (cluster, agent, operator) = cluster_with_operator_leased(4, 1).await?;
        let redis = RedisServer::start_with(Options {
            dir: Some(cluster.dir().join("redis")),
            ..Options::default()
        })?;
        let client = cluster.client();
        Ok(ExampleCluster {
            operator,
            redis,
            topos: Api::namespaced(client.clone(), NS),
            pods: Api::namespaced(client, NS),
            _agent: agent,
            cluster,
        })
    }

    /// The counted sorted sets now; `None` while Redis does not answer.
    pub fn counts(&self) -> Option<Counts> {
        self.redis.counts(SETS).ok()
    }

    /// An example topology (`examples/wikipedia-edits/<file>`) on two worker pods of the
    /// test image, with this message timeout, counting into this Redis; `spout` adds to its
    /// spout's config.
    pub fn example(
        &self,
        file: &str,
        timeout_s: i64,
        spout: &[(&str, serde_json::Value)],
    ) -> Result<Topology> {
        let mut m = TopologyManifest::from_file(&repo().join("examples/wikipedia-edits").join(file))?;
        m.spec.workers = 2;
        m.spec.message_timeout_seconds = timeout_s;
        m.spec.pod = Some(squall_model::PodSettings {
            image: Some(WORKER_IMAGE.into()),
            ..Default::default()
        });
        let config = &mut m.spec.spouts.first_mut().context("no spout")?.config;
        config.extend(spout.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let counts = m
            .spec
            .bolts
            .iter_mut()
            .find(|b| b.name == "counts")
            .context("no counts bolt")?;
        counts.config.insert("url".into(), self.redis.url().into());
        let mut t = Topology::new(&m.metadata.name, m.spec);
        t.meta_mut().namespace = Some(NS.into());
        Ok(t)
    }

    /// A metric of the `edits` spout of `topology`, summed over its worker pods.
    pub async fn spout_metric(&self, topology: &str, name: &str) -> Option<u64> {
        component_metric(&self.pods, topology, name, "edits").await
    }
}

impl Drop for ExampleCluster {
    fn drop(&mut self) {
        self.operator.abort();
    }
}

/// Waits up to `within` for topology `name` to report phase Running; returns it.
pub async fn wait_running(
    cluster: &TestCluster,
    topos: &Api<Topology>,
    name: &str,
    within: Duration,
) -> Result<Topology> {
    eventually("topology Running", within, cluster.dir(), || async {
        let t = topos.get(name).await.ok()?;
        (t.status.as_ref()?.phase == squall_model::crd::Phase::Running).then_some(t)
    })
    .await
    .map_err(Into::into)
}

/// The operator's UI (REST API and web pages) in this process on a free loopback port,
/// as a standby replica serves it (it is not the controller), sampling every `period`;
/// abort the handle to stop it.
pub async fn spawn_ui(
    client: &kube::Client,
    period: Duration,
) -> Result<(
    SocketAddr,
    Arc<squall_operator::metrics::Metrics>,
    tokio::task::JoinHandle<()>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let settings = squall_operator::ui::Settings {
        period,
        namespace: Some(NS.to_owned()),
        limits: squall_model::Limits {
            raise_with: squall_operator::RAISE_WITH.to_owned(),
            ..squall_model::Limits::default()
        },
        ..squall_operator::ui::Settings::default()
    };
    let metrics = Arc::new(squall_operator::metrics::Metrics::default());
    let ui = tokio::spawn(squall_operator::ui::serve(
        client.clone(),
        settings,
        Arc::clone(&metrics),
        listener,
    ));
    Ok((addr, metrics, ui))
}

/// A ServiceAccount `name`, bound to a Role allowing `verbs` on topologies (none: no
/// Role), and a token for it from the TokenRequest API.
pub async fn account(client: &kube::Client, name: &str, verbs: &[&str]) -> Result<String> {
    let topologies = (squall_model::GROUP, "topologies");
    Ok(kube_testenv::rbac::account_token(client, NS, name, topologies, verbs).await?)
}

/// A client of `cluster` that authenticates with `token` only (no client certificate).
pub async fn client_with_token(cluster: &TestCluster, token: &str) -> Result<kube::Client> {
    let admin = std::fs::read_to_string(cluster.kubeconfig_path())?;
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&admin)?;
    let users = doc
        .get_mut("users")
        .and_then(|u| u.as_sequence_mut())
        .context("kubeconfig without users")?;
    for u in users {
        let mut user = serde_yaml_ng::Mapping::new();
        user.insert("token".into(), token.into());
        u["user"] = serde_yaml_ng::Value::Mapping(user);
    }
    let kc = kube::config::Kubeconfig::from_yaml(&serde_yaml_ng::to_string(&doc)?)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A metric of `component`, summed over the worker pods of `topology`.
pub async fn component_metric(pods: &Api<Pod>, topology: &str, name: &str, component: &str) -> Option<u64> {
    let list = pods
        .list(&ListParams::default().labels(&format!("squall.dev/topology={topology}")))
        .await
        .ok()?;
    let mut total = 0.0;
    for p in list.items {
        let ip = p.status.and_then(|s| s.pod_ip)?;
        let text = http_get(&format!("{ip}:9464"), "/metrics").await?;
        total += squall_worker::prom::parse(&text)
            .iter()
            .filter(|s| s.0 == name && s.1.get("component").map(String::as_str) == Some(component))
            .map(|s| s.2)
            .sum::<f64>();
    }
    Some(total as u64)
}

/// The node agent `node-a`, running worker pods and the chart's operator pods.
pub async fn start_node_with_operator(cluster: &TestCluster) -> Result<kube_testenv::AgentHandle> {
    Ok(cluster
        .start_node_agent(
            "node-a",
            [
                (WORKER_IMAGE, worker_binary()?),
                (
                    "squall/operator:test",
                    PathBuf::from(env!("CARGO_BIN_EXE_squall-operator")),
                ),
            ],
        )
        .await?)
}

/// The notes of the Events with `reason` about Topology `topology` in the test namespace
/// (none when the list fails: callers poll).
pub async fn event_notes(cluster: &TestCluster, topology: &str, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), NS);
    let Ok(list) = events.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(topology)
        })
        .filter_map(|e| e.note)
        .collect()
}
