//! Squall's side of the multilang case: `const` (reliable) → a shell bolt running
//! `streamparse_run squall_bench.PassBolt` (the bolt of `make bench`'s multilang row) →
//! `null`, one acker, maxSpoutPending 10,000, measured over a window after a warm-up like
//! squall-bench's other cases. Peak RSS and CPU are this process's (not the Python child's).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use squall_components::Builtins;
use squall_engine::{EngineOptions, Topology};
use squall_model::{validate, Serializer, ShellSpec, TopologyManifest};

use crate::Run;

pub fn run(warmup: Duration, window: Duration, serializer: Serializer) -> Result<Run> {
    let venv = Path::new(".cache/venv/bin/streamparse_run");
    if !venv.exists() {
        bail!("{} is missing: run `make multilang-venv` first", venv.display());
    }
    let shell = ShellSpec {
        command: venv.canonicalize()?.display().to_string(),
        args: vec!["squall_bench.PassBolt".into()],
        env: Default::default(),
        working_dir: Some(
            Path::new("multilang/python")
                .canonicalize()?
                .display()
                .to_string(),
        ),
        serializer,
    };
    // JSON is valid YAML: no quoting concerns for the paths.
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: bench}}
spec:
  ackers: 1
  maxSpoutPending: 10000
  spouts:
    - {{name: spout, component: const, config: {{reliable: true}}}}
  bolts:
    - name: shell
      component: shell
      shell: {shell}
      outputs: [{{fields: [value]}}]
      inputs: [{{from: spout}}]
    - {{name: sink, component: "null", inputs: [{{from: shell}}]}}
"#,
        shell = serde_json::to_string(&shell)?
    );
    let m = TopologyManifest::from_yaml(&yaml, "multilang-ack")?;
    let plan = validate(&m, &Builtins).map_err(|e| anyhow!("{e}"))?;
    let topo =
        Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).context("starting")?;
    let acked = |t: &Topology| t.metrics().component("spout").map_or(0, |c| c.total.acked);
    // Like the Storm side: the warm-up starts once tuples flow (the child has started).
    let t = Instant::now();
    while acked(&topo) == 0 {
        if t.elapsed() > Duration::from_secs(120) {
            topo.shutdown();
            bail!("nothing acked within 120 s of starting");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(warmup);
    topo.reset_latencies();
    let s0 = topo.metrics();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let s1 = topo.metrics();
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let spout0 = s0.component("spout").context("no spout")?;
    let spout = s1.component("spout").context("no spout")?;
    let n = spout.total.acked.saturating_sub(spout0.total.acked);
    let run = Run {
        throughput: n as f64 / elapsed,
        complete_p50_us: spout.total.complete_us.p50,
        complete_p99_us: spout.total.complete_us.p99,
        cpu_s_per_million: if n == 0 { 0.0 } else { cpu / (n as f64 / 1e6) },
        peak_rss_kib: peak_rss_kib(),
        failed: spout.total.failed.saturating_sub(spout0.total.failed),
        load: 0.0,
    };
    topo.shutdown();
    Ok(run)
}

/// User + system CPU seconds of this process (utime and stime of /proc/self/stat, at the
/// usual 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// VmHWM of this process, KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What one unmodified pystorm child can do with no host at all: `streamparse_run
/// squall_bench.PassBolt` (with `--serializer`) reading a handshake and `n` tuple messages
/// from a file, writing to a file. Returns tuples per second of the child's run, its
/// start-up (measured with one tuple) taken off. The child is single-threaded and its input
/// never waits, so this is its per-core ceiling: no engine, Storm's or Squall's, can feed
/// one child faster.
pub fn child_ceiling(n: usize, serializer: Serializer) -> Result<f64> {
    let bin = Path::new(".cache/venv/bin/streamparse_run");
    if !bin.exists() {
        bail!("{} is missing: run `make multilang-venv` first", bin.display());
    }
    let dir = std::env::temp_dir().join(format!("squall-child-ceiling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let once = |count: usize| -> Result<f64> {
        let input = dir.join(format!("in-{count}"));
        let output = dir.join(format!("out-{count}"));
        std::fs::write(&input, child_input(&dir, count, serializer)?).context("writing the child's input")?;
        let start = Instant::now();
        let status = std::process::Command::new(bin.canonicalize()?)
            .args(["--serializer", serializer.as_str(), "squall_bench.PassBolt"])
            .current_dir(Path::new("multilang/python").canonicalize()?)
            .stdin(std::fs::File::open(&input)?)
            .stdout(std::fs::File::create(&output)?)
            .stderr(std::process::Stdio::null())
            .status()
            .context("running streamparse_run")?;
        let took = start.elapsed().as_secs_f64();
        // pystorm exits with an error once its input ends; what counts is that it acked all.
        let out = std::fs::read(&output).unwrap_or_default();
        // The command's value: JSON text, or a msgpack str of 3 bytes.
        let ack: &[u8] = match serializer {
            Serializer::Json => b"\"ack\"",
            Serializer::Msgpack => b"\xa3ack",
        };
        let acks = out.windows(ack.len()).filter(|w| *w == ack).count();
        if acks != count {
            bail!("the child acked {acks} of {count} tuples (exit {status})");
        }
        Ok(took)
    };
    let result = (|| {
        let startup = once(1)?;
        let full = once(n)?;
        Ok(n as f64 / (full - startup).max(1e-3))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The handshake Storm sends, then `n` tuples like the const spout's (100 × `x`).
fn child_input(dir: &Path, n: usize, serializer: Serializer) -> Result<Vec<u8>> {
    let handshake = serde_json::json!({
        "conf": {},
        "context": {"taskid": 2, "componentid": "shell", "task->component": {"1": "spout", "2": "shell"}},
        "pidDir": dir.display().to_string(),
    });
    let payload = "x".repeat(100);
    let tuple = |i: usize| serde_json::json!({"id": i.to_string(), "comp": "spout", "stream": "default", "task": 1, "tuple": [payload]});
    let mut out = Vec::new();
    match serializer {
        Serializer::Json => {
            out.extend_from_slice(format!("{handshake}\nend\n").as_bytes());
            for i in 0..n {
                out.extend_from_slice(format!("{}\nend\n", tuple(i)).as_bytes());
            }
        }
        Serializer::Msgpack => {
            out.extend(rmp_serde::to_vec(&handshake).context("encoding the handshake")?);
            for i in 0..n {
                out.extend(rmp_serde::to_vec(&tuple(i)).context("encoding a tuple")?);
            }
        }
    }
    Ok(out)
}
