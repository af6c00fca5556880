//! How fast the operator's API answers over a full cluster: the operator's UI as it is
//! built in production (`squall_operator::ui::cluster_ui`: the cluster source that lists
//! topologies and pods and asks every worker for its figures, the merge, squall-ui's
//! histories and handlers, and the TokenReview/SubjectAccessReview authorizer with its
//! cache), served on loopback over a real control plane ([`crate::plane`]) that holds the
//! topologies and worker pods of the stand-in workers of [`crate::fleet`], and asked each
//! of Storm's read calls in turn by a client on its own thread, with the bearer token of a
//! ServiceAccount that the API server reviews.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use squall_bench_common::{machine_busy, own_threads_cpu, process_cpu};
use squall_operator::metrics::Metrics;
use squall_operator::ui::source::ClusterSource;
use squall_operator::ui::{cluster_ui, history_samples, merge, Settings};
use squall_ui::Source as _;

use crate::fleet::{self, Fleet, Shape};
use crate::plane::{self, Plane};
use crate::Args;

/// Threads of the operator's runtime here, to read its CPU by name.
pub const OPERATOR_THREADS: &str = "squall-op-ui";

/// The calls timed, as the web UI makes them.
pub const CALLS: [&str; 5] = [
    "cluster summary",
    "topology summary",
    "topology page, 10-minute window",
    "component page, 10-minute window",
    "visualization",
];

/// What the latency part measured.
pub struct Outcome {
    pub shape: Shape,
    pub settings: Settings,
    /// Microseconds per call kind, in the order of [`CALLS`].
    pub times: Vec<Vec<u64>>,
    /// Bytes of the answers per call kind (the largest).
    pub bytes: Vec<usize>,
    /// Executor rows of a component page (the most seen).
    pub executor_rows: usize,
    /// One sampling round of the whole cluster (`ClusterSource::sample`), ms each.
    pub rounds_ms: Vec<u64>,
    pub figures_bytes: usize,
    pub workers: usize,
    /// The operator runtime's CPU over the timed requests, in cores.
    pub operator_cores: f64,
    /// The control plane's processes' CPU meanwhile, in cores.
    pub plane_cores: f64,
    /// What the rest of the machine (neither this process nor the control plane) used
    /// meanwhile, in cores.
    pub others_cores: f64,
    pub took: Duration,
    /// kube-apiserver's version, as it reports it.
    pub apiserver: String,
    /// What the API server counted during the timed requests.
    pub topology_lists: u64,
    pub pod_lists: u64,
    pub token_reviews: u64,
    pub access_reviews: u64,
    pub figures_answered: u64,
    pub pace: Duration,
    /// Topologies a round keeps with the shipped memory budget.
    pub default_kept: usize,
    /// One topology's full history as the operator estimates it, bytes.
    pub history_bytes: usize,
}

/// One GET with a bearer token on a new connection: status and body.
fn call(addr: SocketAddr, path: &str, token: &str) -> Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: ui\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let at = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP head")?;
    let head = String::from_utf8_lossy(&out[..at]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    Ok((status, out.split_off(at + 4)))
}

fn path(kind: usize, topology: &str, component: &str) -> String {
    match kind {
        0 => "/api/v1/cluster/summary".to_owned(),
        1 => "/api/v1/topology/summary".to_owned(),
        2 => format!("/api/v1/topology/{topology}?window=600"),
        3 => format!("/api/v1/topology/{topology}/component/{component}?window=600"),
        _ => format!("/api/v1/topology/{topology}/visualization"),
    }
}

/// Executor rows of `samples`.
fn rows(samples: &[squall_ui::TopologySample]) -> usize {
    samples
        .iter()
        .map(|s| s.components.iter().map(|c| c.by_executor.len()).sum::<usize>())
        .sum()
}

/// What the shipped memory budget holds: topologies kept by one round with the default
/// settings, and the bytes a full history of one topology is estimated at (the
/// operator's own estimate, [`merge::approx_bytes`] times the samples a history keeps).
async fn budget(client: kube::Client) -> Result<(usize, usize)> {
    let settings = Settings::default();
    let source = ClusterSource::new(client, Arc::new(settings.clone()), Arc::new(Metrics::default()));
    let samples = source.sample().await.context("a sampling round failed")?;
    let one = samples.first().context("no topology fits the default budget")?;
    let history = merge::approx_bytes(one) * history_samples(settings.resolution);
    Ok((samples.len(), history))
}

/// Times `ClusterSource::sample` (the round the UI runs every period) `n` times.
async fn time_rounds(client: kube::Client, settings: &Settings, n: usize, expect: usize) -> Result<Vec<u64>> {
    let source = ClusterSource::new(client, Arc::new(settings.clone()), Arc::new(Metrics::default()));
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let samples = source.sample().await.context("a sampling round failed")?;
        out.push(t.elapsed().as_millis() as u64);
        ensure!(
            samples.len() == expect && rows(&samples) > 0,
            "a round sampled {} topologies ({} executor rows), not {expect}",
            samples.len(),
            rows(&samples)
        );
    }
    Ok(out)
}

/// Starts the stand-in workers and the control plane holding them, serves the operator's
/// UI over it and times every call.
pub fn run(args: &Args, fleet_rt: &tokio::runtime::Runtime) -> Result<Outcome> {
    let shape = Shape {
        topologies: args.topologies,
        components: args.components,
        workers: args.workers,
        parallelism: args.parallelism,
    };
    let fleet: Fleet = fleet_rt.block_on(fleet::start(shape))?;
    let started = Instant::now();
    let plane = fleet_rt.block_on(plane::start(&fleet))?;
    eprintln!(
        "  control plane up (kube-apiserver {}) and filled in {:.1} s",
        plane.version,
        started.elapsed().as_secs_f64()
    );
    let outcome = serve_and_time(args, fleet_rt, &fleet, &plane);
    // The cluster's processes are stopped within the runtime that started them.
    let _inside = fleet_rt.enter();
    drop(plane);
    outcome
}

/// The operator's UI over `plane`, in its own runtime, with the cluster's admin
/// kubeconfig as the operator's tests run it; then the timed calls.
fn serve_and_time(
    args: &Args,
    fleet_rt: &tokio::runtime::Runtime,
    fleet: &Fleet,
    plane: &Plane,
) -> Result<Outcome> {
    let shape = fleet.shape;
    let op_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(OPERATOR_THREADS)
        .enable_all()
        .build()?;
    let kubeconfig = kube::config::Kubeconfig::read_from(plane.cluster.kubeconfig_path())?;
    let options = kube::config::KubeConfigOptions::default();
    let config = fleet_rt.block_on(kube::Config::from_custom_kubeconfig(kubeconfig, &options))?;
    let client = op_rt.block_on(async { kube::Client::try_from(config) })?;
    let (default_kept, history_bytes) = op_rt.block_on(budget(client.clone()))?;
    // Room for every topology's full history, so that all of them are served.
    let needed = history_bytes * shape.topologies;
    let settings = Settings {
        memory_budget: Settings::default().memory_budget.max(needed + needed / 10),
        ..Settings::default()
    };
    eprintln!(
        "  the default budget keeps {default_kept} of {} topologies ({:.1} MiB a history); raised to {:.0} MiB",
        shape.topologies,
        history_bytes as f64 / 1048576.0,
        settings.memory_budget as f64 / 1048576.0
    );
    let rounds_ms = op_rt.block_on(time_rounds(client.clone(), &settings, 5, shape.topologies))?;
    eprintln!(
        "  a sampling round of {} workers: {rounds_ms:?} ms",
        fleet.workers
    );
    let ui = cluster_ui(client, settings.clone(), Arc::new(Metrics::default()));
    let listener = op_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let served = ui.clone();
    op_rt.spawn(async move { served.serve(listener).await });
    // Two samples make a window with figures; wait for them in every topology.
    let deadline = Instant::now() + 4 * settings.period + Duration::from_secs(10);
    while !fleet
        .topologies
        .iter()
        .all(|m| ui.samples_held(&m.id()).is_some_and(|n| n >= 2))
    {
        if Instant::now() > deadline {
            bail!("the operator's UI did not sample every topology twice in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let timed = Timed {
        fleet_rt,
        fleet,
        plane,
        addr,
    };
    let outcome = time_calls(args, &timed, &settings, rounds_ms).map(|o| Outcome {
        default_kept,
        history_bytes,
        ..o
    });
    op_rt.shutdown_timeout(Duration::from_secs(1));
    outcome
}

/// What the timed calls go through and read.
struct Timed<'a> {
    fleet_rt: &'a tokio::runtime::Runtime,
    fleet: &'a Fleet,
    plane: &'a Plane,
    /// The UI's address.
    addr: SocketAddr,
}

fn time_calls(args: &Args, on: &Timed<'_>, settings: &Settings, rounds_ms: Vec<u64>) -> Result<Outcome> {
    let (fleet, plane) = (on.fleet, on.plane);
    let pace = Duration::from_millis(args.pace_ms);
    let (mut times, mut bytes) = (vec![Vec::new(); CALLS.len()], vec![0; CALLS.len()]);
    let admin = plane.cluster.client();
    let asked0 = on.fleet_rt.block_on(plane::requests(&admin))?;
    let answered0 = fleet.figures_answered.load(Ordering::Relaxed);
    let others = || {
        machine_busy()
            .saturating_sub(process_cpu(std::process::id()))
            .saturating_sub(plane.cpu())
    };
    let (cpu0, plane0, others0) = (own_threads_cpu(OPERATOR_THREADS), plane.cpu(), others());
    let t0 = Instant::now();
    let mut executor_rows = 0;
    for i in 0..args.requests {
        let member = &fleet.topologies[i % fleet.topologies.len()];
        let (id, components) = (member.id(), &member.components);
        let component = &components[(i / fleet.topologies.len()) % components.len()];
        for (kind, times) in times.iter_mut().enumerate() {
            let p = path(kind, &id, component);
            let t = Instant::now();
            let (status, body) = call(on.addr, &p, &plane.token)?;
            times.push(t.elapsed().as_micros() as u64);
            ensure!(status == 200, "{p}: {status} {}", String::from_utf8_lossy(&body));
            let page: serde_json::Value =
                serde_json::from_slice(&body).with_context(|| format!("{p}: not JSON"))?;
            if kind == 3 {
                executor_rows = page["executorStats"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .max(executor_rows);
            }
            bytes[kind] = bytes[kind].max(body.len());
            std::thread::sleep(pace);
        }
    }
    let took = t0.elapsed();
    let cores = |d: Duration| d.as_secs_f64() / took.as_secs_f64();
    let operator_cores = cores(own_threads_cpu(OPERATOR_THREADS).saturating_sub(cpu0));
    let plane_cores = cores(plane.cpu().saturating_sub(plane0));
    let others_cores = cores(others().saturating_sub(others0));
    let asked1 = on.fleet_rt.block_on(plane::requests(&admin))?;
    let asked = |resource: &str, verb: Option<&str>| plane::asked(&asked0, &asked1, resource, verb);
    Ok(Outcome {
        shape: fleet.shape,
        settings: settings.clone(),
        times,
        bytes,
        executor_rows,
        rounds_ms,
        figures_bytes: fleet.figures_bytes,
        workers: fleet.workers,
        operator_cores,
        plane_cores,
        others_cores,
        took,
        apiserver: plane.version.clone(),
        topology_lists: asked("topologies", Some("LIST")),
        pod_lists: asked("pods", Some("LIST")),
        token_reviews: asked("tokenreviews", None),
        access_reviews: asked("subjectaccessreviews", None),
        figures_answered: fleet.figures_answered.load(Ordering::Relaxed) - answered0,
        pace,
        default_kept: 0,
        history_bytes: 0,
    })
}
