//! Storm's perf topologies (storm-perf's ConstSpout/IdBolt/NullBolt and word count),
//! written as ordinary Squall manifests and run on the built-in components.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use squall_components::Builtins;
use squall_engine::{EngineOptions, Snapshot, Topology};
use squall_model::{validate, TopologyManifest};

use crate::proc_stats;

pub struct Case {
    pub name: &'static str,
    pub title: &'static str,
    acking: bool,
    /// Component whose executed count is the throughput when acking is off.
    sink: &'static str,
    body: &'static str,
}

const CONST_NULL: &str = r#"
  spouts:
    - {name: spout, component: const, config: {reliable: RELIABLE RATE}}
  bolts:
    - {name: sink, component: "null", inputs: [{from: spout}]}
"#;

const CONST_ID_NULL: &str = r#"
  spouts:
    - {name: spout, component: const, config: {reliable: RELIABLE RATE}}
  bolts:
    - {name: id, component: identity, inputs: [{from: spout}]}
    - {name: sink, component: "null", inputs: [{from: id}]}
"#;

const WORD_COUNT: &str = r#"
  spouts:
    - {name: spout, component: random-sentence, config: {seed: 7 RATE}}
  bolts:
    - {name: split, component: split-words, inputs: [{from: spout}]}
    - name: sink
      component: count
      inputs: [{from: split, grouping: {type: fields, fields: [word]}}]
"#;

pub const CASES: &[Case] = &[
    Case {
        name: "const-null-noack",
        title: "ConstSpout → NullBolt, acking off",
        acking: false,
        sink: "sink",
        body: CONST_NULL,
    },
    Case {
        name: "const-null-ack",
        title: "ConstSpout → NullBolt, acking on",
        acking: true,
        sink: "sink",
        body: CONST_NULL,
    },
    Case {
        name: "const-id-null-noack",
        title: "ConstSpout → IdBolt → NullBolt, acking off",
        acking: false,
        sink: "sink",
        body: CONST_ID_NULL,
    },
    Case {
        name: "const-id-null-ack",
        title: "ConstSpout → IdBolt → NullBolt, acking on",
        acking: true,
        sink: "sink",
        body: CONST_ID_NULL,
    },
    Case {
        name: "wordcount-ack",
        title: "word count: sentences → split → fields-grouped count, acking on",
        acking: true,
        sink: "sink",
        body: WORD_COUNT,
    },
    Case {
        name: "wikipedia-edits",
        title: "edit feed (websocket, unpaced, 5k pre-rendered events cycled) → json-keys ×2 → redis-counter → local Redis, acking on",
        acking: true,
        sink: "sink",
        body: crate::wikipedia::BODY,
    },
];

/// One measured run.
#[derive(Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub title: String,
    pub throughput: f64,
    pub emitted_per_s: f64,
    pub complete_p50_us: u64,
    pub complete_p99_us: u64,
    pub cpu_s_per_million: f64,
    pub peak_rss_kib: u64,
    pub failed: u64,
}

pub fn manifest(case: &Case, rate: Option<u64>) -> String {
    let header = if case.acking {
        "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: bench}\nspec:\n  ackers: 1\n  maxSpoutPending: 10000\n"
    } else {
        "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: bench}\nspec:\n  ackers: 0\n"
    };
    let rate = rate.map(|r| format!(", rate: {r}")).unwrap_or_default();
    let body = case
        .body
        .replace("RELIABLE", if case.acking { "true" } else { "false" })
        .replace(" RATE", &rate);
    format!("{header}{body}")
}

fn count(s: &Snapshot, case: &Case) -> u64 {
    if case.acking {
        s.component("spout").map(|c| c.total.acked).unwrap_or(0)
    } else {
        s.component(case.sink).map(|c| c.total.executed).unwrap_or(0)
    }
}

pub fn run_case(name: &str, warmup: Duration, window: Duration, rate: Option<u64>) -> Result<RunResult> {
    let case = CASES
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| anyhow!("unknown case {name:?}"))?;
    // Cases that talk to the outside get their Redis and feed here, for this run only.
    let env = if case.name == "wikipedia-edits" {
        Some(crate::wikipedia::Env::start()?)
    } else {
        None
    };
    let mut yaml = manifest(case, rate);
    if let Some(env) = &env {
        yaml = yaml.replace(case.body, &env.body());
    }
    // Threads shared by the executors (default: one per core, elastic), and with
    // SQUALL_BENCH_FIXED_POOL every pool thread at work; both together, with as many
    // threads as executors, give each its own thread, the engine's model before the
    // scheduler.
    let mut engine = Vec::new();
    if let Ok(t) = std::env::var("SQUALL_BENCH_THREADS") {
        let t: u64 = t.parse().context("SQUALL_BENCH_THREADS")?;
        engine.push(format!("squall.executor.threads: {t}"));
    }
    if std::env::var_os("SQUALL_BENCH_FIXED_POOL").is_some() {
        engine.push("squall.executor.elastic: false".to_owned());
    }
    if !engine.is_empty() {
        yaml = yaml.replacen(
            "spec:\n",
            &format!("spec:\n  config: {{{}}}\n", engine.join(", ")),
            1,
        );
    }
    let m = TopologyManifest::from_yaml(&yaml, name)?;
    let plan = validate(&m, &Builtins).map_err(|e| anyhow!("{e}"))?;
    let topo =
        Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).context("starting")?;
    std::thread::sleep(warmup);
    topo.reset_latencies();
    let s0 = topo.metrics();
    let cpu0 = proc_stats::cpu_seconds();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let s1 = topo.metrics();
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = proc_stats::cpu_seconds() - cpu0;
    let n = count(&s1, case).saturating_sub(count(&s0, case));
    if n == 0 {
        bail!("{name}: nothing completed in {elapsed:.1} s: {s1:?}");
    }
    let spout = s1.component("spout").context("no spout")?;
    let spout0 = s0.component("spout").context("no spout")?;
    let result = RunResult {
        name: name.to_owned(),
        title: case.title.to_owned(),
        throughput: n as f64 / elapsed,
        emitted_per_s: (spout.total.emitted - spout0.total.emitted) as f64 / elapsed,
        complete_p50_us: spout.total.complete_us.p50,
        complete_p99_us: spout.total.complete_us.p99,
        cpu_s_per_million: cpu / (n as f64 / 1e6),
        peak_rss_kib: proc_stats::peak_rss_kib(),
        failed: spout.total.failed - spout0.total.failed,
    };
    topo.shutdown();
    Ok(result)
}
