//! One Python bolt over Storm's multilang protocol (JSON over pipes), against the same
//! Python work done in a plain loop without Squall: the difference is the protocol's cost.
//! The same bolt with the msgpack serializer, and with two children instead of one, in
//! the same run, so their ratios to the JSON row are measured side by side.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use squall_model::{Config, Serializer, ShellSpec};
use squall_multilang::bench::{bench_bolt, python_baseline, BoltBench};

/// Tuples per second of each run.
#[derive(Serialize, Deserialize)]
pub struct Multilang {
    pub tuples: u64,
    pub acking_on: f64,
    pub acking_off: f64,
    pub baseline: f64,
    /// Acking on, `serializer: msgpack`.
    pub msgpack_acking_on: f64,
    /// Acking on, msgpack, parallelism 2 (two children).
    pub msgpack_two_children: f64,
    /// Acking on, JSON, parallelism 2.
    pub json_two_children: f64,
    /// Cores the machine has, and its 1-minute load average when the runs started.
    pub cores: usize,
    pub load_before: f64,
}

pub fn measure(tuples: u64) -> Result<Multilang> {
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
    let run = |acking: bool, serializer: Serializer, parallelism: u32| -> Result<f64> {
        let b = BoltBench {
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
        };
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
    Ok(Multilang {
        tuples,
        acking_on: run(true, Serializer::Json, 1)?,
        acking_off: run(false, Serializer::Json, 1)?,
        baseline: python_baseline(&venv.join("python"), &python_dir, tuples)
            .context("python baseline")?
            .per_second(),
        msgpack_acking_on: run(true, Serializer::Msgpack, 1)?,
        msgpack_two_children: run(true, Serializer::Msgpack, 2)?,
        json_two_children: run(true, Serializer::Json, 2)?,
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
    let row = |name: &str, v: f64| {
        format!(
            "| {name} | {:.1} k | {:.0}% |\n",
            v / 1e3,
            100.0 * v / m.baseline.max(1.0)
        )
    };
    let mut s = String::from("## One Python bolt over multilang\n\n");
    s.push_str(&format!(
        "A Rust spout sends {} one-field tuples (100-byte text) through one streamparse bolt (`squall_bench.PassBolt`, one child process) to a Rust sink. The baseline runs the same Python per-tuple work in a plain loop, without Squall, pipes or JSON.\n\n",
        m.tuples
    ));
    s.push_str("| run | tuples/s | vs the plain Python loop |\n|---|---|---|\n");
    s.push_str(&row("Python loop, no Squall (baseline)", m.baseline));
    s.push_str(&row("through Squall, acking off", m.acking_off));
    s.push_str(&row("through Squall, acking on", m.acking_on));
    s.push_str(&row("through Squall, acking on, msgpack", m.msgpack_acking_on));
    s.push_str(&row(
        "through Squall, acking on, JSON, 2 children",
        m.json_two_children,
    ));
    s.push_str(&row(
        "through Squall, acking on, msgpack, 2 children",
        m.msgpack_two_children,
    ));
    s.push_str(&format!(
        "\nThe protocol's own cost per tuple, acking on: {:.1} µs with JSON, {:.1} µs with msgpack (1/throughput − 1/baseline).\n",
        1e6 / m.acking_on.max(1.0) - 1e6 / m.baseline.max(1.0),
        1e6 / m.msgpack_acking_on.max(1.0) - 1e6 / m.baseline.max(1.0)
    ));
    s.push_str(&format!(
        "msgpack against JSON (acking on, one child): {:.2}×. Two children against one: {:.2}× with JSON, {:.2}× with msgpack ({} cores, load average {:.2} before the runs).\n",
        ratio(m.msgpack_acking_on, m.acking_on),
        ratio(m.json_two_children, m.acking_on),
        ratio(m.msgpack_two_children, m.msgpack_acking_on),
        m.cores,
        m.load_before
    ));
    s
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(1e-9)
}
