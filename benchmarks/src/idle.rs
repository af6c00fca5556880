//! `squall-bench idle-executors`: many mostly idle executors in one process. Memory must
//! grow with use rather than with the number of executors or the declared queue bounds,
//! and stopping must not take longer than running did.
//!
//! Each case runs in its own process (so its peak RSS is its own): start, run
//! [`RUN`], then Storm's kill with wait (deactivate, let in-flight trees finish, stop),
//! timed from the request until every executor thread has been joined.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use squall_components::Builtins;
use squall_engine::{EngineOptions, Topology};
use squall_model::{validate, TopologyManifest};

use crate::proc_stats;

/// How long each case runs before the stop request; part of the target's definition.
pub const RUN: Duration = Duration::from_secs(3);
/// The peak RSS target for 1,000 executors, in bytes (500 MB).
const RSS_TARGET_BYTES: u64 = 500_000_000;
/// The stop-time target: shorter than the run.
const STOP_TARGET: Duration = Duration::from_secs(3);
/// Marker name of this benchmark's section of BENCHMARKS.md.
const SECTION: &str = "squall-bench-idle-executors";

/// One topology shape at one parallelism.
pub struct IdleCase {
    pub name: &'static str,
    title: &'static str,
    parallelism: u32,
    /// A bolt of the same parallelism subscribes with shuffle: every spout executor can
    /// send to every bolt executor's queue.
    fanout: bool,
    /// `squall.executor.threads`; unset means the default (one per core).
    threads: Option<u32>,
    /// Whether the targets apply (the 1,000-executor cases; the others are references).
    targeted: bool,
}

pub const IDLE_CASES: &[IdleCase] = &[
    IdleCase {
        name: "spout-10",
        title: "const spout ×10, no consumer (reference)",
        parallelism: 10,
        fanout: false,
        threads: None,
        targeted: false,
    },
    IdleCase {
        name: "spout-1000",
        title: "const spout ×1000, no consumer",
        parallelism: 1000,
        fanout: false,
        threads: None,
        targeted: true,
    },
    IdleCase {
        name: "fanout-10",
        title: "const spout ×10 → shuffle → null bolt ×10 (reference)",
        parallelism: 10,
        fanout: true,
        threads: None,
        targeted: false,
    },
    IdleCase {
        name: "fanout-1000",
        title: "const spout ×1000 → shuffle → null bolt ×1000",
        parallelism: 1000,
        fanout: true,
        threads: None,
        targeted: true,
    },
    IdleCase {
        name: "spout-1000/threads",
        title: "const spout ×1000, no consumer, `squall.executor.threads: 1000, squall.executor.elastic: false` (a thread per executor)",
        parallelism: 1000,
        fanout: false,
        threads: Some(1000),
        targeted: true,
    },
];

/// What one case measured.
#[derive(Serialize, Deserialize)]
pub struct IdleResult {
    pub name: String,
    pub executors: u32,
    pub threads: usize,
    pub start_ms: f64,
    pub rss_started_kib: u64,
    pub peak_rss_kib: u64,
    /// Trees completed during the run (proof that the executors did work).
    pub acked: u64,
    pub failed: u64,
    /// Trees in flight when the stop was requested, and after it returned.
    pub pending_at_stop: u64,
    pub pending_after: u64,
    pub stop_ms: f64,
    /// CPU seconds (user + system) the process used during the run.
    pub cpu_s: f64,
}

/// Total rate of the spout component, tuples per second: low enough that the executors
/// are idle nearly all the time, high enough that every path (emit, ack, completion) runs.
const RATE: u32 = 200;

fn manifest(case: &IdleCase) -> String {
    let p = case.parallelism;
    let mut yaml = String::from(
        "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: idle}\nspec:\n  ackers: 1\n  maxSpoutPending: 10\n  messageTimeoutSeconds: 30\n",
    );
    if let Some(t) = case.threads {
        // A thread per executor, all at work: the model before the shared pool.
        yaml.push_str(&format!(
            "  config: {{squall.executor.threads: {t}, squall.executor.elastic: false}}\n"
        ));
    }
    yaml.push_str(&format!(
        "  spouts:\n    - {{name: spout, component: const, parallelism: {p}, config: {{rate: {RATE}}}}}\n"
    ));
    if case.fanout {
        yaml.push_str(&format!(
            "  bolts:\n    - {{name: sink, component: \"null\", parallelism: {p}, inputs: [{{from: spout, grouping: {{type: shuffle}}}}]}}\n"
        ));
    }
    yaml
}

/// Runs one case in this process.
pub fn run_case(name: &str) -> Result<IdleResult> {
    let case = IDLE_CASES
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| anyhow!("unknown idle case {name:?}"))?;
    let m = TopologyManifest::from_yaml(&manifest(case), name)?;
    let plan = validate(&m, &Builtins).map_err(|e| anyhow!("{e}"))?;
    let t0 = Instant::now();
    let topo =
        Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).context("starting")?;
    let start_ms = t0.elapsed().as_secs_f64() * 1e3;
    let rss_started_kib = proc_stats::rss_kib();
    let cpu0 = proc_stats::cpu_seconds();
    std::thread::sleep(RUN);
    let cpu_s = proc_stats::cpu_seconds() - cpu0;
    let snap = topo.metrics();
    let executors = snap.components.iter().map(|c| c.executors).sum();
    let (_, acked, failed, _) = snap.spout_totals();
    let pending_at_stop = topo.pending();
    let threads = topo.executor_threads();
    // The same stop `squall run --for` makes: deactivate, wait for in-flight trees, stop.
    let t1 = Instant::now();
    let last = topo.kill(Duration::from_secs(30));
    let stop_ms = t1.elapsed().as_secs_f64() * 1e3;
    let (_, _, _, pending_after) = last.spout_totals();
    if acked == 0 {
        bail!("{name}: no tree completed in {RUN:?}");
    }
    Ok(IdleResult {
        name: name.to_owned(),
        executors,
        threads,
        start_ms,
        rss_started_kib,
        peak_rss_kib: proc_stats::peak_rss_kib(),
        acked,
        failed,
        pending_at_stop,
        pending_after,
        stop_ms,
        cpu_s,
    })
}

/// Milliseconds, with a decimal below ten.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// The markdown section for these results.
pub fn render(results: &[IdleResult]) -> String {
    let mut s = format!("<!-- {SECTION}:begin -->\n## Idle executors: memory and stop time\n\n");
    s.push_str(&format!(
        "Generated by `squall-bench idle-executors --out BENCHMARKS.md` (part of `make bench`).\n\n- Date: {}\n- Machine: {}\n",
        proc_stats::date(),
        proc_stats::machine()
    ));
    s.push_str(&format!(
        "- Each case runs in its own process: start, {} s of running, then a kill with wait (deactivate, let in-flight trees finish, stop: what `squall run --for` does), timed from the request until every executor thread has been joined. The const spout emits {RATE} tuples/s in total (acking on, maxSpoutPending 10), so each executor is idle nearly all the time; default queue bound (16,384) and batch size (256).\n- Target for 1,000 executors: peak RSS under 500 MB, and the stop of a 3 s run under 3 s.\n\n",
        RUN.as_secs()
    ));
    s.push_str("| case | executors | threads | start | RSS after start | peak RSS | CPU s during the run | trees acked | pending at stop → after | stop | target |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let targeted = IDLE_CASES.iter().any(|c| c.name == r.name && c.targeted);
        let title = IDLE_CASES
            .iter()
            .find(|c| c.name == r.name)
            .map_or("", |c| c.title);
        let target = if targeted {
            let rss_ok = r.peak_rss_kib * 1024 < RSS_TARGET_BYTES;
            let stop_ok = r.stop_ms < STOP_TARGET.as_secs_f64() * 1e3;
            format!("RSS < 500 MB: {}; stop < 3 s: {}", met(rss_ok), met(stop_ok))
        } else {
            String::new()
        };
        s.push_str(&format!(
            "| {} — {} | {} | {} | {} | {:.1} MiB | {:.1} MiB | {:.2} | {} | {} → {} | {} | {} |\n",
            r.name,
            title,
            r.executors,
            r.threads,
            ms(r.start_ms),
            r.rss_started_kib as f64 / 1024.0,
            r.peak_rss_kib as f64 / 1024.0,
            r.cpu_s,
            r.acked,
            r.pending_at_stop,
            r.pending_after,
            ms(r.stop_ms),
            target
        ));
    }
    s.push_str("\nAn executor holds what its tasks need (context, routing, metrics) plus buffers for the queues it has actually sent to and histogram cells for the latencies it has recorded: nothing per queue it could send to. The 1,000 × 1,000 fan-out row therefore costs the 1,000 extra bolt executors and the latency samples of the trees that completed, not a million buffers. Thread stacks are reserved, not resident: the row with a thread per executor costs about 10 KiB of RSS per thread. Its CPU column is the price of 1,000 threads each looking for work every millisecond (an idle spout's back-off), which the shared pool avoids.\n");
    s.push_str(&format!("<!-- {SECTION}:end -->\n"));
    s
}

/// Replaces this benchmark's marked section of `path`, or appends it.
pub fn write_section(path: &Path, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let begin = format!("<!-- {SECTION}:begin -->");
    let end = format!("<!-- {SECTION}:end -->");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => {
            let mut rest = &old[e + end.len()..];
            rest = rest.strip_prefix('\n').unwrap_or(rest);
            format!("{}{section}{rest}", &old[..b])
        }
        _ if old.is_empty() => section.to_owned(),
        _ => format!("{}\n\n{section}", old.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_case_is_a_valid_topology() {
        for case in IDLE_CASES {
            let m = TopologyManifest::from_yaml(&manifest(case), case.name).unwrap();
            let plan = validate(&m, &Builtins).unwrap();
            let spout = plan.component("spout").unwrap();
            assert_eq!(spout.tasks.len(), case.parallelism as usize, "{}", case.name);
            assert_eq!(plan.component("sink").is_some(), case.fanout, "{}", case.name);
        }
    }

    #[test]
    fn the_section_replaces_its_old_self_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("squall-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("B.md");
        std::fs::write(&p, "# B\n\ntext\n").unwrap();
        let one = format!("<!-- {SECTION}:begin -->\none\n<!-- {SECTION}:end -->\n");
        write_section(&p, &one).unwrap();
        let two = one.replace("one", "two");
        write_section(&p, &two).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, format!("# B\n\ntext\n\n{two}"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
