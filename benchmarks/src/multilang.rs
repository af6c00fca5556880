//! One Python bolt over Storm's multilang protocol (JSON over pipes), against the same
//! Python work done in a plain loop without Squall: the difference is the protocol's cost.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use squall_model::{Config, ShellSpec};
use squall_multilang::bench::{bench_bolt, python_baseline, BoltBench};

/// Tuples per second of each run.
#[derive(Serialize, Deserialize)]
pub struct Multilang {
    pub tuples: u64,
    pub acking_on: f64,
    pub acking_off: f64,
    pub baseline: f64,
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
    let run = |acking: bool| -> Result<f64> {
        let b = BoltBench {
            shell: ShellSpec {
                command: venv.join("streamparse_run").display().to_string(),
                args: vec!["squall_bench.PassBolt".into()],
                env: Default::default(),
                working_dir: Some(python_dir.display().to_string()),
            },
            tuples,
            payload: "x".repeat(100),
            acking,
            parallelism: 1,
            config: Config::new(),
            limit: Duration::from_secs(120),
        };
        Ok(bench_bolt(&b).context("multilang bolt run")?.per_second())
    };
    Ok(Multilang {
        tuples,
        acking_on: run(true)?,
        acking_off: run(false)?,
        baseline: python_baseline(&venv.join("python"), &python_dir, tuples)
            .context("python baseline")?
            .per_second(),
    })
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
    s.push_str(&format!(
        "\nThe protocol's own cost per tuple, acking on: {:.1} µs (1/throughput − 1/baseline).\n",
        1e6 / m.acking_on.max(1.0) - 1e6 / m.baseline.max(1.0)
    ));
    s
}
