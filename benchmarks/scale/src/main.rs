//! `squall-bench-scale` (`make bench-scale`): the operator in this process against a real
//! control plane (`kube-testenv`: etcd, kube-apiserver, controller manager, scheduler), with
//! every worker pod simulated in this process too (`sim`), at several sizes.
//!
//! Per size, on a fresh control plane: the CRD, one simulated Node, the operator (its own
//! tokio runtime, threads `squall-operator`, production Lease timing 10 s / 2 s), then
//! `TOPOLOGIES` topologies of `WORKERS` workers each. Once every worker runs its assignment:
//! a steady window (API server request rate by resource and verb from its
//! `apiserver_request_total`, CPU of kube-apiserver, etcd, the operator's threads and the
//! simulated workers' threads from `/proc`), then rounds of changes: every topology's
//! `desiredState` set to `Inactive`, then back to `Active`, all topologies at once. Per change
//! and topology: the time from the update to the operator's new assignment generation in the
//! ConfigMap (seen by a watch), and to every worker of the topology running it (each
//! simulated worker notes when it first runs a generation). Reconcile durations come from the
//! operator's own `reconciled` event.

mod measure;
mod report;
mod sim;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use kube_testenv::{ClusterOptions, TestCluster};
use squall_control::{Assignment, ASSIGNMENT_KEY};
use squall_model::crd::{Phase, Topology};
use squall_model::TopologyManifest;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use measure::Reconciles;

const NS: &str = "default";
const IMAGE: &str = "squall/worker:sim";
const LEASE_SECONDS: u64 = 10;
const RENEW_SECONDS: u64 = 2;
/// Threads of the operator's runtime, so its CPU is read apart from the rest.
const OPERATOR_THREADS: &str = "squall-operator";
/// Threads of everything else in this process: the simulated workers, kubelet, the bench.
const SIM_THREADS: &str = "sim-workers";

/// `TOPOLOGIESxWORKERS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub topologies: usize,
    pub workers: usize,
}

impl Size {
    pub fn total(&self) -> usize {
        self.topologies * self.workers
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (t, w) = s.split_once('x').ok_or("want TOPOLOGIESxWORKERS, e.g. 10x30")?;
        let n = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
        let size = Size {
            topologies: n(t)?,
            workers: n(w)?,
        };
        if size.topologies == 0 || size.workers == 0 {
            return Err("sizes start at 1x1".into());
        }
        Ok(size)
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}", self.topologies, self.workers)
    }
}

#[derive(clap::Parser, Debug, Clone)]
#[command(about = "The operator and simulated workers against a real API server, at several sizes")]
pub struct Args {
    /// Sizes as TOPOLOGIESxWORKERS, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1x30,10x30")]
    pub sizes: Vec<Size>,
    /// Seconds of the steady window.
    #[arg(long, default_value_t = 60)]
    pub window: u64,
    /// Rounds of changes (each: deactivate every topology, then activate it again).
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// BENCHMARKS.md to rewrite this benchmark's section of.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Latencies of one kind of change, in ms, one sample per topology and round.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    /// Update to the new generation in the ConfigMap.
    pub written: Vec<u64>,
    /// Update to every worker of the topology running it.
    pub everywhere: Vec<u64>,
}

/// What one size measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub size: Size,
    /// Creation of the topologies to every worker running its first assignment, active.
    pub startup: Duration,
    pub window: Duration,
    /// Requests in the steady window by (resource, verb).
    pub steady: measure::Requests,
    /// Watches open at the end of the window.
    pub watches: f64,
    /// Requests during the changes, and how long they took.
    pub changes: measure::Requests,
    pub changes_took: Duration,
    /// CPU seconds in the steady window.
    pub cpu_apiserver: Duration,
    pub cpu_etcd: Duration,
    pub cpu_operator: Duration,
    pub cpu_sim: Duration,
    /// kube-apiserver RSS at the end of the window, MiB.
    pub apiserver_rss: f64,
    /// Reconcile durations (ms) in the steady window and during the changes.
    pub reconciles_steady: Vec<u64>,
    pub reconciles_changes: Vec<u64>,
    pub deactivate: Latencies,
    pub activate: Latencies,
    /// 1-minute load average at the end of the window.
    pub load: f64,
}

fn main() -> Result<()> {
    let args: Args = clap::Parser::parse();
    let reconciles = Reconciles::default();
    let log = tracing_subscriber::fmt::layer().with_filter(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,kube_client=off,kube_runtime=error")
        }),
    );
    let capture = reconciles.clone().with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("squall_operator::controller", tracing::Level::DEBUG),
    );
    tracing_subscriber::registry().with(log).with(capture).init();

    let operator_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(OPERATOR_THREADS)
        .enable_all()
        .build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SIM_THREADS)
        .enable_all()
        .build()?;
    let mut outcomes = Vec::new();
    let mut failure = None;
    for size in &args.sizes {
        eprintln!("== {size}: {} workers", size.total());
        match rt.block_on(run_size(*size, &args, operator_rt.handle(), &reconciles)) {
            Ok(o) => {
                report::print(&o);
                outcomes.push(o);
            }
            Err(e) => {
                eprintln!("== {size} failed: {e:#}");
                failure = Some((*size, format!("{e:#}")));
                break;
            }
        }
    }
    if let Some(out) = &args.out {
        report::write(out, &args, &outcomes, failure.as_ref())?;
        eprintln!("wrote the squall-bench-scale section of {}", out.display());
    }
    operator_rt.shutdown_timeout(Duration::from_secs(1));
    rt.shutdown_timeout(Duration::from_secs(1));
    match failure {
        Some((size, e)) => bail!("{size}: {e}"),
        None => Ok(()),
    }
}

fn manifest(name: &str, workers: usize) -> String {
    format!(
        r#"apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  workers: {workers}
  messageTimeoutSeconds: 5
  pod: {{image: {IMAGE}}}
  spouts:
    - {{name: numbers, component: sequence, parallelism: {workers}}}
  bolts:
    - {{name: sink, component: "null", parallelism: {workers}, inputs: [{{from: numbers}}]}}
"#
    )
}

fn install_crd(cluster: &TestCluster) -> Result<()> {
    let crd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds/topology.yaml");
    Ok(cluster.apply_crd(&crd, "topologies.squall.dev")?)
}

/// Generations of each topology's assignment as a watch on the ConfigMaps sees them.
type Generations = Arc<Mutex<HashMap<String, BTreeMap<u64, Instant>>>>;

fn watch_generations(client: Client) -> (Generations, tokio::task::JoinHandle<()>) {
    let seen: Generations = Arc::default();
    let out = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let cms: Api<ConfigMap> = Api::namespaced(client, NS);
        let cfg = watcher::Config::default().labels(squall_operator::TOPOLOGY_LABEL);
        let mut events = std::pin::pin!(watcher(cms, cfg));
        while let Some(event) = events.next().await {
            let (Ok(watcher::Event::Apply(cm)) | Ok(watcher::Event::InitApply(cm))) = event else {
                continue;
            };
            let now = Instant::now();
            let Some(topology) = cm.labels().get(squall_operator::TOPOLOGY_LABEL).cloned() else {
                continue;
            };
            let Some(generation) = cm
                .data
                .as_ref()
                .and_then(|d| d.get(ASSIGNMENT_KEY))
                .and_then(|a| serde_yaml_ng::from_str::<Assignment>(a).ok())
                .map(|a| a.generation)
            else {
                continue;
            };
            if let Ok(mut s) = seen.lock() {
                s.entry(topology).or_default().entry(generation).or_insert(now);
            }
        }
    });
    (out, task)
}

fn latest(seen: &Generations, topology: &str) -> u64 {
    seen.lock()
        .ok()
        .and_then(|s| s.get(topology)?.keys().next_back().copied())
        .unwrap_or(0)
}

/// The first generation after `after` and when it was seen.
fn next_generation(seen: &Generations, topology: &str, after: u64) -> Option<(u64, Instant)> {
    let s = seen.lock().ok()?;
    let (g, at) = s.get(topology)?.range(after + 1..).next()?;
    Some((*g, *at))
}

async fn run_size(
    size: Size,
    args: &Args,
    operator_rt: &tokio::runtime::Handle,
    reconciles: &Reconciles,
) -> Result<Outcome> {
    let cluster = TestCluster::start_with(ClusterOptions {
        node_monitor_grace_period: Duration::from_secs(40),
        start_timeout: Duration::from_secs(240),
        ..ClusterOptions::default()
    })
    .await?;
    install_crd(&cluster)?;
    let admin = cluster.client();
    let apiserver = cluster
        .pid_of("kube-apiserver")
        .context("no kube-apiserver pid")?;
    let etcd = cluster.pid_of("etcd").context("no etcd pid")?;
    let node = sim::register_node(&admin).await?;
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path())?;
    let worker_config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    let fleet = sim::Fleet::default();
    let files = tempfile::Builder::new().prefix("squall-bench-scale").tempdir()?;
    let kubelet = tokio::spawn(sim::kubelet(
        admin.clone(),
        worker_config.clone(),
        fleet.clone(),
        files.path().to_owned(),
    ));
    let (generations, observer) = watch_generations(admin.clone());

    let operator_config = worker_config.clone();
    let operator = operator_rt.spawn(async move {
        let client = Client::try_from(operator_config)?;
        squall_operator::controller::run(
            client,
            squall_operator::controller::Config {
                workers: squall_operator::resources::WorkerDefaults {
                    python_image: None,
                    image: IMAGE.to_owned(),
                    lease_duration_seconds: LEASE_SECONDS,
                    lease_renew_seconds: RENEW_SECONDS,
                    cert_validity: squall_operator::resources::DEFAULT_CERT_VALIDITY,
                    ca_overlap: squall_operator::resources::DEFAULT_CA_OVERLAP,
                    limits: squall_model::Limits {
                        raise_with: squall_operator::RAISE_WITH.to_owned(),
                        ..squall_model::Limits::default()
                    },
                    network: Default::default(),
                },
                namespace: Some(NS.to_owned()),
                instance: "bench-scale".to_owned(),
                metrics: Default::default(),
            },
        )
        .await
        .map_err(anyhow::Error::from)
    });

    let result = measure_size(
        size,
        args,
        &cluster,
        &admin,
        &fleet,
        &generations,
        reconciles,
        apiserver,
        etcd,
    )
    .await;
    operator.abort();
    fleet.stop_all();
    kubelet.abort();
    observer.abort();
    node.abort();
    drop(cluster);
    result
}

#[allow(clippy::too_many_arguments)]
async fn measure_size(
    size: Size,
    args: &Args,
    cluster: &TestCluster,
    admin: &Client,
    fleet: &sim::Fleet,
    generations: &Generations,
    reconciles: &Reconciles,
    apiserver: u32,
    etcd: u32,
) -> Result<Outcome> {
    let topos: Api<Topology> = Api::namespaced(admin.clone(), NS);
    let names: Vec<String> = (0..size.topologies).map(|i| format!("scale-{i:02}")).collect();
    let created = Instant::now();
    for name in &names {
        let m = TopologyManifest::from_yaml(&manifest(name, size.workers), "bench")?;
        let mut t = Topology::new(name, m.spec);
        t.metadata.namespace = Some(NS.to_owned());
        topos.create(&PostParams::default(), &t).await?;
    }
    // Every topology Running, every worker on its topology's current generation.
    let deadline = Duration::from_secs(180 + 2 * size.total() as u64);
    loop {
        let mut done = 0;
        for name in &names {
            let t = topos.get(name).await?;
            let Some(status) = t.status else { continue };
            let g = status.assignment_generation.unwrap_or(0) as u64;
            if status.phase == Phase::Running && g > 0 && fleet.all_ran(name, size.workers, g).is_some() {
                done += 1;
            }
        }
        if done == names.len() {
            break;
        }
        if created.elapsed() > deadline {
            bail!(
                "after {:?}: {done} of {} topologies Running on every worker ({} simulated workers up); logs in {}",
                created.elapsed(),
                names.len(),
                fleet.len(),
                cluster.dir().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let startup = created.elapsed();
    eprintln!(
        "   every worker running after {:.1} s; settling",
        startup.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3 * RENEW_SECONDS + 4)).await;

    // The steady window.
    let (before, _) = measure::requests(admin).await?;
    let cpu = || {
        (
            measure::process_cpu(apiserver),
            measure::process_cpu(etcd),
            measure::threads_cpu(OPERATOR_THREADS),
            measure::threads_cpu(SIM_THREADS),
        )
    };
    let cpu0 = cpu();
    reconciles.take();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.window)).await;
    let (after, watches) = measure::requests(admin).await?;
    let cpu1 = cpu();
    let window = started.elapsed();
    let reconciles_steady = reconciles.take();
    let apiserver_rss = measure::rss_mib(apiserver);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    eprintln!("   steady window done ({:.0} s); changes", window.as_secs_f64());

    // The changes.
    let (before_changes, _) = measure::requests(admin).await?;
    let changes_started = Instant::now();
    let mut deactivate = Latencies::default();
    let mut activate = Latencies::default();
    for round in 0..args.rounds {
        for (state, into) in [("Inactive", &mut deactivate), ("Active", &mut activate)] {
            let base: Vec<u64> = names.iter().map(|n| latest(generations, n)).collect();
            let patch = serde_json::json!({"spec": {"desiredState": state}});
            let sent = futures::future::try_join_all(names.iter().map(|n| {
                let topos = topos.clone();
                let patch = patch.clone();
                async move {
                    let at = Instant::now();
                    topos
                        .patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    Ok::<_, kube::Error>(at)
                }
            }))
            .await?;
            let limit = Instant::now() + Duration::from_secs(60);
            let mut pending: Vec<usize> = (0..names.len()).collect();
            while !pending.is_empty() {
                pending.retain(|&i| {
                    let Some((g, written)) = next_generation(generations, &names[i], base[i]) else {
                        return true;
                    };
                    let Some(all) = fleet.all_ran(&names[i], size.workers, g) else {
                        return true;
                    };
                    into.written.push(ms(written.saturating_duration_since(sent[i])));
                    into.everywhere.push(ms(all.saturating_duration_since(sent[i])));
                    false
                });
                if Instant::now() > limit {
                    bail!(
                        "round {round}, {state}: {} topologies not changed after 60 s",
                        pending.len()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let changes_took = changes_started.elapsed();
    let (after_changes, _) = measure::requests(admin).await?;
    let reconciles_changes = reconciles.take();

    Ok(Outcome {
        size,
        startup,
        window,
        steady: measure::delta(&before, &after),
        watches,
        changes: measure::delta(&before_changes, &after_changes),
        changes_took,
        cpu_apiserver: cpu1.0.saturating_sub(cpu0.0),
        cpu_etcd: cpu1.1.saturating_sub(cpu0.1),
        cpu_operator: cpu1.2.saturating_sub(cpu0.2),
        cpu_sim: cpu1.3.saturating_sub(cpu0.3),
        apiserver_rss,
        reconciles_steady,
        reconciles_changes,
        deactivate,
        activate,
        load,
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
