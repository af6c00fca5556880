//! One Python bolt over Storm's multilang protocol (JSON over pipes), against the same
//! Python work done in a plain loop without Squall: the difference is the protocol's cost.
//! The same bolt with the msgpack serializer, and with two children instead of one, in
//! the same run, so their ratios to the JSON row are measured side by side.
//!
//! The runs that are compared with each other (one child against two, JSON against
//! msgpack) alternate over several rounds, and the ratios are taken within a round: this
//! machine's speed can change by half within a minute, so only runs next to each other
//! compare.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use squall_model::{Config, Serializer, ShellSpec};
use squall_multilang::bench::{bench_bolt, python_baseline, BoltBench};

/// Rounds of the alternating runs.
const ROUNDS: usize = 3;

/// Tuples per second of the alternating runs of one round, all with acking on.
#[derive(Serialize, Deserialize, Clone, Copy)]
pub struct Round {
    /// The plain Python loop (no Squall), for the protocol's cost.
    pub baseline: f64,
    /// JSON, one child.
    pub json: f64,
    /// JSON, parallelism 2 (two children).
    pub json_two: f64,
    /// `serializer: msgpack`, one child.
    pub msgpack: f64,
    /// msgpack, two children.
    pub msgpack_two: f64,
}

/// The rounds, and the one run with acking off (tuples per second).
#[derive(Serialize, Deserialize)]
pub struct Multilang {
    pub tuples: u64,
    pub acking_off: f64,
    pub rounds: Vec<Round>,
    /// Cores the machine has, and its 1-minute load average when the runs started.
    pub cores: usize,
    pub load_before: f64,
}

impl Multilang {
    /// Median over the rounds of a figure of each round (a run's rate, or a ratio taken
    /// within the round).
    fn median(&self, f: impl Fn(&Round) -> f64) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

/// One acking-on run, with the CPU this process (the Rust side: spout, shell executors,
/// acker, sink) spent on it per tuple: what the host costs beside its children.
#[derive(Serialize, Deserialize)]
pub struct CpuRun {
    pub serializer: String,
    pub parallelism: u32,
    pub tuples: u64,
    pub per_second: f64,
    /// Microseconds of this process's CPU per tuple, start and drain included.
    pub host_us_per_tuple: f64,
}

/// `squall-bench multilang-cpu SERIALIZER[:PARALLELISM[:TUPLES]]`: one run, with the CPU
/// this process (the host, not the children) spent per tuple.
pub fn measure_cpu(serializer: Serializer, parallelism: u32, tuples: u64) -> Result<CpuRun> {
    let (venv, python_dir) = locate()?;
    let b = bench_spec(&venv, &python_dir, tuples, true, serializer, parallelism);
    let before = crate::proc_stats::cpu_seconds();
    let report = bench_bolt(&b).context("multilang bolt run")?;
    let cpu = crate::proc_stats::cpu_seconds() - before;
    Ok(CpuRun {
        serializer: serializer.as_str().to_owned(),
        parallelism,
        tuples,
        per_second: report.per_second(),
        host_us_per_tuple: 1e6 * cpu / tuples.max(1) as f64,
    })
}

fn locate() -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let venv = Path::new(".cache/venv/bin");
    if !venv.join("streamparse_run").exists() {
        bail!(
            "{} has no streamparse_run: run `make multilang-venv` first",
            venv.display()
        );
    }
    let python_dir = Path::new("multilang/python")
        .canonicalize()
        .context("multilang/python")?;
    let venv = venv.canonicalize().context("the venv")?;
    Ok((venv, python_dir))
}

fn bench_spec(
    venv: &Path,
    python_dir: &Path,
    tuples: u64,
    acking: bool,
    serializer: Serializer,
    parallelism: u32,
) -> BoltBench {
    BoltBench {
        shell: ShellSpec {
            command: venv.join("streamparse_run").display().to_string(),
            args: vec!["squall_bench.PassBolt".into()],
            env: Default::default(),
            working_dir: Some(python_dir.display().to_string()),
            serializer,
        },
        tuples,
        payload: "x".repeat(100),
        acking,
        parallelism,
        config: Config::new(),
        limit: Duration::from_secs(120),
    }
}

pub fn measure(tuples: u64) -> Result<Multilang> {
    let (venv, python_dir) = locate()?;
    let run = |acking: bool, serializer: Serializer, parallelism: u32| -> Result<f64> {
        let b = bench_spec(&venv, &python_dir, tuples, acking, serializer, parallelism);
        Ok(bench_bolt(&b)
            .with_context(|| {
                format!(
                    "multilang bolt run ({}, parallelism {parallelism})",
                    serializer.as_str()
                )
            })?
            .per_second())
    };
    let load_before = load_average();
    let mut rounds = Vec::with_capacity(ROUNDS);
    let baseline = || -> Result<f64> {
        Ok(python_baseline(&venv.join("python"), &python_dir, tuples)
            .context("python baseline")?
            .per_second())
    };
    for _ in 0..ROUNDS {
        rounds.push(Round {
            baseline: baseline()?,
            json: run(true, Serializer::Json, 1)?,
            json_two: run(true, Serializer::Json, 2)?,
            msgpack: run(true, Serializer::Msgpack, 1)?,
            msgpack_two: run(true, Serializer::Msgpack, 2)?,
        });
    }
    Ok(Multilang {
        tuples,
        acking_off: run(false, Serializer::Json, 1)?,
        rounds,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        load_before,
    })
}

/// The 1-minute load average (0 where /proc/loadavg is missing).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

pub fn render(m: &Multilang) -> String {
    let baseline = m.median(|r| r.baseline);
    let row = |name: &str, v: f64| {
        format!(
            "| {name} | {:.1} k | {:.0}% |\n",
            v / 1e3,
            100.0 * v / baseline.max(1.0)
        )
    };
    let mut s = String::from("## One Python bolt over multilang\n\n");
    s.push_str(&format!(
        "A Rust spout sends {} one-field tuples (100-byte text) through one streamparse bolt (`squall_bench.PassBolt`, one child process) to a Rust sink. Throughput is taken between 10% and 90% of the tuples reaching the sink, so the children's start and the final drain are left out. The baseline runs the same Python per-tuple work in a plain loop, without Squall, pipes or JSON (its interpreter's start left out too).\n\n",
        m.tuples
    ));
    s.push_str(&format!(
        "The baseline and the acking-on runs alternate over {} rounds (baseline, JSON, JSON with 2 children, msgpack, msgpack with 2 children) and each row gives their median; the ratios below are taken within a round, then their median is given, since this machine's speed can change within a minute.\n\n",
        m.rounds.len()
    ));
    s.push_str("| run | tuples/s | vs the plain Python loop |\n|---|---|---|\n");
    s.push_str(&row("Python loop, no Squall (baseline)", baseline));
    s.push_str(&row("through Squall, acking off", m.acking_off));
    s.push_str(&row("through Squall, acking on", m.median(|r| r.json)));
    s.push_str(&row(
        "through Squall, acking on, msgpack",
        m.median(|r| r.msgpack),
    ));
    s.push_str(&row(
        "through Squall, acking on, JSON, 2 children",
        m.median(|r| r.json_two),
    ));
    s.push_str(&row(
        "through Squall, acking on, msgpack, 2 children",
        m.median(|r| r.msgpack_two),
    ));
    s.push_str(&format!(
        "\nThe protocol's own cost per tuple, acking on: {:.1} µs with JSON, {:.1} µs with msgpack (1/throughput − 1/baseline, within a round, median over rounds).\n",
        m.median(|r| 1e6 / r.json.max(1.0) - 1e6 / r.baseline.max(1.0)),
        m.median(|r| 1e6 / r.msgpack.max(1.0) - 1e6 / r.baseline.max(1.0))
    ));
    s.push_str(&format!(
        "msgpack against JSON (acking on, one child): {:.2}×. Two children against one: {:.2}× with JSON, {:.2}× with msgpack ({} cores, load average {:.2} before the runs).\n",
        m.median(|r| ratio(r.msgpack, r.json)),
        m.median(|r| ratio(r.json_two, r.json)),
        m.median(|r| ratio(r.msgpack_two, r.msgpack)),
        m.cores,
        m.load_before
    ));
    s.push_str("\n| round | Python loop | JSON | JSON, 2 children | msgpack | msgpack, 2 children | 2/1 JSON | 2/1 msgpack |\n|---|---|---|---|---|---|---|---|\n");
    for (i, r) in m.rounds.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {:.1} k | {:.1} k | {:.1} k | {:.1} k | {:.1} k | {:.2}× | {:.2}× |\n",
            i + 1,
            r.baseline / 1e3,
            r.json / 1e3,
            r.json_two / 1e3,
            r.msgpack / 1e3,
            r.msgpack_two / 1e3,
            ratio(r.json_two, r.json),
            ratio(r.msgpack_two, r.msgpack)
        ));
    }
    s
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(1e-9)
}
