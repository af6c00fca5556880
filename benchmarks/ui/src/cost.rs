//! What the UI costs a busy worker: one real `squall-worker` process runs ConstSpout →
//! NullBolt at a fixed rate, and its CPU time (utime + stime from /proc) is measured over
//! equal windows, alternately with no one asking for its figures and with the operator's
//! own client (`squall_operator::probe::figures`) asking at the operator's period and at
//! a much shorter one. Each round runs every mode once, in a rotated order, so drift in
//! the machine's load falls on every mode alike; each mode is compared with the baseline
//! of its own round.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use squall_bench_common::{load_average, machine_busy, process_cpu, threads_cpu};
use squall_model::{Plan, TopologyManifest};
use squall_worker::supervisor::{Cluster, ClusterSpec};

use crate::Args;

/// The engine's executor threads are named `squall-exec-N`.
const EXECUTOR_THREADS: &str = "squall-exec";

/// How the worker is asked for its figures in one mode.
#[derive(Clone, Debug)]
pub struct Mode {
    pub label: String,
    /// `None`: not at all (the baseline); zero: back to back.
    pub period: Option<Duration>,
}

/// One window of one mode.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// The worker's CPU over the window, in cores (1.0 = one core busy).
    pub cores: f64,
    /// The CPU of its threads other than the executors' (HTTP, gRPC, timers), in cores:
    /// where `/figures` is answered, and not elastic as the executors' is.
    pub serving: f64,
    /// `GET /figures` answered within the window.
    pub calls: u64,
    /// CPU seconds per thread name over the window.
    pub threads: BTreeMap<String, f64>,
}

/// What the cost part measured.
pub struct Outcome {
    pub rate: u64,
    /// Tuples the sink executed per second, over all rounds.
    pub measured_rate: f64,
    pub modes: Vec<Mode>,
    /// `windows[round][mode]`.
    pub windows: Vec<Vec<Window>>,
    /// Size of one `/figures` answer of this worker, bytes.
    pub figures_bytes: usize,
    /// Non-empty buckets of the widest latency distribution in that answer (a real
    /// worker's, against which the stand-ins' figures are shaped).
    pub real_buckets: usize,
    /// 1-minute load average at the start of each round.
    pub loads: Vec<f64>,
    /// What the rest of the machine (neither the worker nor this process) used over the
    /// measured rounds, in cores: other builds beside the benchmark.
    pub others_cores: f64,
    pub window: Duration,
}

impl Outcome {
    /// Added CPU of mode `m` as a share of its round's baseline, one value per round.
    pub fn added(&self, m: usize) -> Vec<f64> {
        self.windows
            .iter()
            .map(|w| (w[m].cores - w[0].cores) / w[0].cores.max(1e-9))
            .collect()
    }

    /// Extra CPU seconds of mode `m` over the baseline per `/figures` answer, outside the
    /// executors' threads, per round.
    pub fn per_call(&self, m: usize) -> Vec<f64> {
        self.windows
            .iter()
            .filter(|w| w[m].calls > 0)
            .map(|w| (w[m].serving - w[0].serving) * self.window.as_secs_f64() / w[m].calls as f64)
            .collect()
    }
}

fn manifest(rate: u64) -> String {
    format!(
        "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {{name: bench-ui}}\nspec:\n  ackers: 0\n  spouts:\n    - {{name: spout, component: const, config: {{reliable: false, rate: {rate}}}}}\n  bolts:\n    - {{name: sink, component: \"null\", inputs: [{{from: spout}}]}}\n"
    )
}

fn plan_of(path: &Path) -> Result<Plan> {
    let m = TopologyManifest::from_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    squall_model::validate(&m, &squall_catalog::BuiltinKinds).map_err(|e| anyhow::anyhow!("{e}"))
}

fn executed(c: &Cluster) -> u64 {
    c.scrape().component("sink").map_or(0, |s| s.total.executed)
}

/// Asks `addr` for its figures every `period`, as the operator's UI does, counting answers.
async fn poll(addr: SocketAddr, period: Duration, answered: Arc<AtomicU64>) {
    let addr = addr.to_string();
    let mut tick = (!period.is_zero()).then(|| tokio::time::interval(period));
    if let Some(t) = tick.as_mut() {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        // The operator's default answer timeout.
        if squall_operator::probe::figures(&addr, Duration::from_secs(2))
            .await
            .is_ok()
        {
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn thread_seconds(pid: u32) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    for (name, d) in threads_cpu(pid) {
        *by_name.entry(name).or_insert(0.0) += d.as_secs_f64();
    }
    by_name
}

/// One window of `mode` on the worker `pid` at `addr`.
fn measure(
    rt: &tokio::runtime::Runtime,
    pid: u32,
    addr: SocketAddr,
    mode: &Mode,
    window: Duration,
) -> Window {
    let answered = Arc::new(AtomicU64::new(0));
    let poller = mode
        .period
        .map(|p| rt.spawn(poll(addr, p, Arc::clone(&answered))));
    let (cpu0, threads0, calls0, t0) = (
        process_cpu(pid),
        thread_seconds(pid),
        answered.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(window);
    let (cpu1, threads1, calls1, t1) = (
        process_cpu(pid),
        thread_seconds(pid),
        answered.load(Ordering::Relaxed),
        Instant::now(),
    );
    if let Some(p) = poller {
        p.abort();
    }
    let threads: BTreeMap<String, f64> = threads1
        .into_iter()
        .map(|(name, s)| {
            let before = threads0.get(&name).copied().unwrap_or(0.0);
            (name, s - before)
        })
        .collect();
    let seconds = (t1 - t0).as_secs_f64();
    let serving: f64 = threads
        .iter()
        .filter(|(name, _)| !name.starts_with(EXECUTOR_THREADS))
        .map(|(_, s)| s)
        .sum();
    Window {
        cores: (cpu1 - cpu0).as_secs_f64() / seconds,
        serving: serving / seconds,
        calls: calls1 - calls0,
        threads,
    }
}

/// Starts the worker, warms it up and measures every mode in every round.
pub fn run(args: &Args, rt: &tokio::runtime::Runtime) -> Result<Outcome> {
    let dir = std::env::temp_dir().join(format!("squall-bench-ui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("topology.yaml");
    std::fs::write(&path, manifest(args.rate))?;
    let plan = plan_of(&path)?;
    let worker_bin = squall_bench_common::worker_binary()?;
    let mut c = Cluster::start(ClusterSpec {
        manifest: path,
        base_dir: None,
        plan,
        workers: 1,
        worker_bin,
        dir: dir.join("run"),
        tls: None,
        extra_args: Vec::new(),
        tasks: None,
    })?;
    c.auto_restart = false;
    c.wait_ready(Duration::from_secs(20))?;
    let result = measure_all(args, rt, &c);
    c.stop(Duration::from_secs(3));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_all(args: &Args, rt: &tokio::runtime::Runtime, c: &Cluster) -> Result<Outcome> {
    let pid = c.pid(0).context("the worker is not running")?;
    let addr = c.http_addr(0);
    let modes = vec![
        Mode {
            label: "no one asks (baseline)".into(),
            period: None,
        },
        Mode {
            label: format!(
                "`GET /figures` every {} s (the operator's default period)",
                args.period().as_secs_f64()
            ),
            period: Some(args.period()),
        },
        Mode {
            label: format!("`GET /figures` every {} ms", args.aggressive_ms),
            period: Some(Duration::from_millis(args.aggressive_ms)),
        },
        // Enough answers that their cost stands well above the machine's noise.
        Mode {
            label: "`GET /figures` back to back (the cost of one answer)".into(),
            period: Some(Duration::ZERO),
        },
    ];
    std::thread::sleep(Duration::from_secs(args.warmup));
    // Read again after the warm-up, so its latency distributions have filled.
    let figures = rt.block_on(squall_operator::probe::figures(
        &addr.to_string(),
        Duration::from_secs(2),
    ))?;
    let figures_bytes = serde_json::to_vec(&figures)?.len();
    let real_buckets = figures
        .components
        .iter()
        .flat_map(|c| [&c.totals.execute, &c.totals.process, &c.totals.complete])
        .map(|l| l.buckets.len())
        .max()
        .unwrap_or(0);
    let window = Duration::from_secs(args.window);
    let me = std::process::id();
    let (n0, t0) = (executed(c), Instant::now());
    let busy0 = machine_busy().saturating_sub(process_cpu(pid) + process_cpu(me));
    let (mut windows, mut loads) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        loads.push(load_average());
        let mut row = vec![Window::default(); modes.len()];
        // Rotated, so no mode always follows the same one.
        for k in 0..modes.len() {
            let m = (k + round) % modes.len();
            row[m] = measure(rt, pid, addr, &modes[m], window);
        }
        eprintln!(
            "  round {}: {}",
            round + 1,
            row.iter()
                .map(|w| format!("{:.1}% ({} calls)", 100.0 * w.cores, w.calls))
                .collect::<Vec<_>>()
                .join(", ")
        );
        windows.push(row);
    }
    let busy1 = machine_busy().saturating_sub(process_cpu(pid) + process_cpu(me));
    let measured_rate = executed(c).saturating_sub(n0) as f64 / t0.elapsed().as_secs_f64();
    let others_cores = busy1.saturating_sub(busy0).as_secs_f64() / t0.elapsed().as_secs_f64();
    Ok(Outcome {
        rate: args.rate,
        measured_rate,
        modes,
        windows,
        figures_bytes,
        real_buckets,
        loads,
        others_cores,
        window,
    })
}
