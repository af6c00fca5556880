//! Throughput of one shell bolt, for the benchmark harness: a Rust spout emits `tuples`
//! one-field tuples, the shell bolt under test passes each on, a Rust sink acks them.
//! [`python_baseline`] times the same Python work without Squall, so the difference is
//! the protocol's own cost (pipes, framing, the host's JSON).
//!
//! Throughput is taken between 10% and 90% of the tuples reaching the sink: the
//! children's start (an interpreter importing streamparse takes a good part of a second)
//! and the drain at the end are left out, as the baseline leaves out its interpreter's
//! start.
//!
//! The bolt MUST take `[payload]` and emit one field on `default` (e.g.
//! `streamparse_run squall_bench.PassBolt` from `multilang/python`).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_engine::{
    Bolt, BoltOutput, ComponentError, ComponentFactory, EngineOptions, Spout, SpoutOutput, Topology, Tuple,
    Value, Values,
};
use squall_model::{
    validate, Catalog, ComponentPlan, Config, KindInfo, Role, ShellSpec, StreamSpec, TopologyManifest,
    DEFAULT_STREAM,
};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BoltBench {
    /// The bolt's subprocess.
    pub shell: ShellSpec,
    /// Tuples to send through it.
    pub tuples: u64,
    /// The text each tuple carries.
    pub payload: String,
    /// Acking on (one acker) or off.
    pub acking: bool,
    /// Executors (and child processes) of the bolt.
    pub parallelism: u32,
    /// Topology config (e.g. `squall.multilang.max.pending`).
    pub config: Config,
    /// Longest the run may take.
    pub limit: Duration,
}

/// A measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Tuples counted: those that reached the sink inside the measured window.
    pub tuples: u64,
    /// The measured window: from 10% to 90% of the tuples at the sink.
    pub elapsed: Duration,
    /// From the topology's start (children started) until every tuple was acked.
    pub total: Duration,
}

impl BenchReport {
    /// Tuples per second.
    pub fn per_second(&self) -> f64 {
        self.tuples as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Why a measurement failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The generated topology did not validate or start.
    #[error("bench topology: {0}")]
    Setup(String),
    /// Not every tuple went through in time.
    #[error("only {done} of {tuples} tuples were acked within {limit:?}")]
    TooSlow {
        /// Acked so far.
        done: u64,
        /// Wanted.
        tuples: u64,
        /// The limit.
        limit: Duration,
    },
    /// The baseline script failed.
    #[error("python baseline: {0}")]
    Baseline(String),
}

const SOURCE: &str = "bench-source";
const SINK: &str = "bench-sink";

struct Kinds;

impl Catalog for Kinds {
    fn describe(&self, kind: &str, _config: &Config) -> Option<Result<KindInfo, String>> {
        let (role, outputs) = match kind {
            SOURCE => (
                Some(Role::Spout),
                vec![StreamSpec::new(DEFAULT_STREAM, &["payload"])],
            ),
            SINK => (Some(Role::Bolt), Vec::new()),
            "shell" => (None, Vec::new()),
            _ => return None,
        };
        Some(Ok(KindInfo::new(role, outputs)))
    }

    fn kinds(&self) -> Vec<String> {
        vec![SOURCE.into(), SINK.into(), "shell".into()]
    }
}

struct Factory {
    tuples: u64,
    payload: Value,
    /// Tuples the sink has acked, read by the measuring loop.
    sunk: Arc<AtomicU64>,
}

impl ComponentFactory for Factory {
    fn spout(&self, c: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError> {
        match c.kind.as_str() {
            SOURCE => Ok(Box::new(Source {
                left: self.tuples,
                pending: 0,
                payload: self.payload.clone(),
            })),
            _ => crate::spout_for(c),
        }
    }

    fn bolt(&self, c: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError> {
        match c.kind.as_str() {
            SINK => Ok(Box::new(Sink(self.sunk.clone()))),
            _ => crate::bolt_for(c),
        }
    }

    /// The source and the sink return within microseconds and share the executor pool,
    /// as the built-in kinds do in a topology; the shell bolt keeps its own thread.
    fn cooperative(&self, c: &ComponentPlan) -> bool {
        c.kind == SOURCE || c.kind == SINK
    }
}

/// Emits `left` tuples; finished when all were acked (failures are replayed).
struct Source {
    left: u64,
    pending: u64,
    payload: Value,
}

impl Spout for Source {
    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        if self.left == 0 {
            return Ok(());
        }
        let mut v = Values::new();
        v.push(self.payload.clone());
        out.emit(v, Some(Value::Int(0)))?;
        self.left -= 1;
        self.pending += 1;
        Ok(())
    }

    fn ack(&mut self, _msg_id: Value) {
        self.pending = self.pending.saturating_sub(1);
    }

    fn fail(&mut self, _msg_id: Value) {
        self.pending = self.pending.saturating_sub(1);
        self.left += 1;
    }

    fn is_finished(&self) -> bool {
        self.left == 0 && self.pending == 0
    }
}

struct Sink(Arc<AtomicU64>);

impl Bolt for Sink {
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        out.ack(input);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Notes when the sink's count first reaches 10% and 90% of the tuples.
struct Window {
    from: u64,
    to: u64,
    start: Option<(Instant, u64)>,
    end: Option<(Instant, u64)>,
}

impl Window {
    fn new(tuples: u64) -> Window {
        Window {
            from: tuples / 10,
            to: (tuples - tuples / 10).max(tuples / 10 + 1),
            start: None,
            end: None,
        }
    }

    fn observe(&mut self, now: Instant, count: u64) {
        if self.start.is_none() && count >= self.from {
            self.start = Some((now, count));
        }
        if self.end.is_none() && count >= self.to {
            self.end = Some((now, count));
        }
    }

    /// Tuples and time between the two marks; the whole run where they coincide (a run
    /// too short for the poll to tell them apart).
    fn measured(&self, tuples: u64, total: Duration) -> (u64, Duration) {
        match (self.start, self.end) {
            (Some((t0, n0)), Some((t1, n1))) if n1 > n0 && t1 > t0 => (n1 - n0, t1 - t0),
            _ => (tuples, total),
        }
    }
}

/// Runs the measurement.
pub fn bench_bolt(b: &BoltBench) -> Result<BenchReport, BenchError> {
    let setup = |e: String| BenchError::Setup(e);
    let json = |v: serde_json::Value| v.to_string();
    // JSON is valid YAML, which spares any quoting concerns.
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: multilang-bench}}
spec:
  ackers: {ackers}
  maxSpoutPending: 2000
  config: {config}
  spouts:
    - {{name: source, component: {SOURCE}}}
  bolts:
    - name: shell
      component: shell
      parallelism: {par}
      shell: {shell}
      outputs: [{{fields: [value]}}]
      inputs: [{{from: source}}]
    - {{name: sink, component: {SINK}, inputs: [{{from: shell}}]}}
"#,
        ackers = u32::from(b.acking),
        config = json(serde_json::to_value(&b.config).map_err(|e| setup(e.to_string()))?),
        par = b.parallelism.max(1),
        shell = json(serde_json::to_value(&b.shell).map_err(|e| setup(e.to_string()))?),
    );
    let manifest = TopologyManifest::from_yaml(&yaml, "bench").map_err(|e| setup(e.to_string()))?;
    let plan = validate(&manifest, &Kinds).map_err(|e| setup(e.to_string()))?;
    let sunk = Arc::new(AtomicU64::new(0));
    let factory = Arc::new(Factory {
        tuples: b.tuples,
        payload: Value::from(b.payload.as_str()),
        sunk: sunk.clone(),
    });
    let topo = Topology::start(&plan, factory, EngineOptions::default()).map_err(|e| setup(e.to_string()))?;
    let started = Instant::now();
    let mut window = Window::new(b.tuples);
    loop {
        window.observe(Instant::now(), sunk.load(Ordering::Relaxed));
        if window.end.is_some() && topo.is_drained() {
            break;
        }
        if started.elapsed() > b.limit {
            let done = sunk.load(Ordering::Relaxed);
            topo.shutdown();
            return Err(BenchError::TooSlow {
                done,
                tuples: b.tuples,
                limit: b.limit,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // `is_drained` confirms quiet twice, 60 ms apart; that wait is not the bolt's.
    let total = started.elapsed().saturating_sub(Duration::from_millis(60));
    topo.shutdown();
    let (tuples, elapsed) = window.measured(b.tuples, total);
    Ok(BenchReport {
        tuples,
        elapsed,
        total,
    })
}

/// Times `python squall_bench.py baseline N` in `python_dir`: the bolt's work per tuple
/// without Squall.
pub fn python_baseline(python: &Path, python_dir: &Path, tuples: u64) -> Result<BenchReport, BenchError> {
    let out = Command::new(python)
        .args(["squall_bench.py", "baseline", &tuples.to_string()])
        .current_dir(python_dir)
        .output()
        .map_err(|e| BenchError::Baseline(format!("running {}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(BenchError::Baseline(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| BenchError::Baseline(format!("unexpected output: {e}")))?;
    let secs = v
        .get("seconds")
        .and_then(serde_json::Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| BenchError::Baseline(format!("no seconds in {v}")))?;
    Ok(BenchReport {
        tuples,
        elapsed: Duration::from_secs_f64(secs),
        total: Duration::from_secs_f64(secs),
    })
}
