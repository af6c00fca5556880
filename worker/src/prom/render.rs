//! The worker's `/metrics` page.

use std::fmt::Write as _;

use squall_engine::{ComponentSnapshot, Percentiles, Snapshot, Stats};

use squall_control::WorkerStatus;

use super::{exported_bounds, HISTOGRAMS};
use crate::stats::{get, InboundStats, LinkStats};

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

type Getter = fn(&Stats) -> u64;
type LatencyOf = fn(&Stats) -> Percentiles;
type GaugeOf = fn(&ComponentSnapshot) -> u64;
type LinkOf = fn(&LinkStats) -> u64;

const COUNTERS: &[(&str, Getter, &str)] = &[
    ("squall_emitted_total", |s| s.emitted, "Tuples emitted."),
    (
        "squall_transferred_total",
        |s| s.transferred,
        "Tuples sent to tasks.",
    ),
    ("squall_executed_total", |s| s.executed, "Tuples executed."),
    (
        "squall_acked_total",
        |s| s.acked,
        "Tuples acked (spouts: trees completed).",
    ),
    (
        "squall_failed_total",
        |s| s.failed,
        "Tuples failed (spouts: trees failed or timed out).",
    ),
    (
        "squall_timed_out_total",
        |s| s.timed_out,
        "Spout trees failed by timeout.",
    ),
    (
        "squall_errors_total",
        |s| s.errors,
        "Errors reported by components.",
    ),
    (
        "squall_restarts_total",
        |s| s.restarts,
        "Task restarts after a panic.",
    ),
    (
        "squall_unroutable_total",
        |s| s.unroutable,
        "Messages dropped because no process serves their task.",
    ),
    (
        "squall_busy_nanoseconds_total",
        |s| s.busy_ns,
        "Time spent executing.",
    ),
    (
        "squall_backpressure_nanoseconds_total",
        |s| s.backpressure_ns,
        "Time blocked on a full queue downstream.",
    ),
];

const LATENCIES: &[(&str, LatencyOf)] = &[
    ("squall_complete_latency_microseconds", |s| s.complete_us),
    ("squall_execute_latency_microseconds", |s| s.execute_us),
    ("squall_process_latency_microseconds", |s| s.process_us),
];

fn render_histograms(out: &mut String, snap: &Snapshot, labels: &dyn Fn(&ComponentSnapshot) -> String) {
    for h in HISTOGRAMS {
        let (name, max) = (h.name, h.max);
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", h.help);
        for c in &snap.components {
            let b = (h.of)(&c.total);
            let count = b.count();
            if count == 0 {
                continue;
            }
            let l = labels(c);
            let (mut cumulative, mut next) = (0, 0);
            for &(i, le) in exported_bounds() {
                cumulative += b.counts.iter().skip(next).take(i + 1 - next).sum::<u64>();
                next = i + 1;
                let _ = writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{{l}}} {}\n{name}_count{{{l}}} {count}", b.sum);
        }
        let _ = writeln!(out, "# HELP {max} Largest sample of {name}.\n# TYPE {max} gauge");
        for c in &snap.components {
            let b = (h.of)(&c.total);
            if b.count() > 0 {
                let _ = writeln!(out, "{max}{{{}}} {}", labels(c), b.max);
            }
        }
    }
}

/// The worker's own series, from the same [`WorkerStatus`] it serves on `/status`.
fn render_worker(out: &mut String, base: &str, status: &WorkerStatus) {
    let _ = writeln!(out, "# HELP squall_worker_generation Assignment generation this worker runs.\n# TYPE squall_worker_generation gauge");
    let _ = writeln!(out, "squall_worker_generation{{{base}}} {}", status.generation);
    let _ = writeln!(
        out,
        "# HELP squall_worker_engine_starts_total Engines started by this worker process.\n\
         # TYPE squall_worker_engine_starts_total counter\n\
         squall_worker_engine_starts_total{{{base}}} {}",
        status.engine_starts
    );
    // Absent while no engine runs (between plans), so that gap never reads as "drained".
    if status.engine_running {
        let _ = writeln!(
            out,
            "# HELP squall_worker_active Whether this worker's spouts are active.\n\
             # TYPE squall_worker_active gauge\n\
             squall_worker_active{{{base}}} {}\n\
             # HELP squall_worker_in_flight Spout trees pending plus tuples queued on this worker.\n\
             # TYPE squall_worker_in_flight gauge\n\
             squall_worker_in_flight{{{base}}} {}",
            u8::from(status.active),
            status.in_flight
        );
    }
}

/// The whole `/metrics` page: the worker's own series from `status`, the engine's from
/// `snap`, then the data plane's.
pub fn render(
    status: &WorkerStatus,
    snap: Option<&Snapshot>,
    links: &[(String, &LinkStats)],
    inbound: &InboundStats,
) -> String {
    let mut out = String::new();
    let base = format!(
        "topology=\"{}\",worker=\"{}\"",
        esc(&status.topology),
        esc(&status.worker)
    );
    render_worker(&mut out, &base, status);
    if let Some(snap) = snap {
        let _ = writeln!(
            out,
            "# TYPE squall_uptime_seconds gauge\nsquall_uptime_seconds{{{base}}} {:.3}",
            snap.uptime.as_secs_f64()
        );
        let labels =
            |c: &ComponentSnapshot| format!("{base},component=\"{}\",role=\"{}\"", esc(&c.name), c.role);
        for (name, get, help) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for c in &snap.components {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(c), get(&c.total));
            }
        }
        let gauges: &[(&str, GaugeOf)] = &[
            ("squall_pending", |c| c.total.pending),
            ("squall_queue_depth", |c| c.queue_depth),
            ("squall_queue_capacity", |c| c.queue_capacity),
            ("squall_executors", |c| u64::from(c.executors)),
            ("squall_spout_finished", |c| u64::from(c.finished)),
        ];
        for (name, get) in gauges {
            let _ = writeln!(out, "# TYPE {name} gauge");
            for c in &snap.components {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(c), get(c));
            }
        }
        let _ = writeln!(out, "# TYPE squall_task_info gauge");
        for c in &snap.components {
            for (t, _) in &c.tasks {
                let _ = writeln!(out, "squall_task_info{{{},task=\"{t}\"}} 1", labels(c));
            }
        }
        for (name, get) in LATENCIES {
            let _ = writeln!(out, "# TYPE {name} summary");
            for c in &snap.components {
                let p = get(&c.total);
                if p.count == 0 {
                    continue;
                }
                let l = labels(c);
                let _ = writeln!(out, "{name}{{{l},quantile=\"0.5\"}} {}", p.p50);
                let _ = writeln!(out, "{name}{{{l},quantile=\"0.99\"}} {}", p.p99);
                let _ = writeln!(out, "{name}_count{{{l}}} {}", p.count);
            }
        }
        render_histograms(&mut out, snap, &labels);
    }
    let link: &[(&str, LinkOf, &str)] = &[
        ("squall_link_frames_total", |s| get(&s.frames), "counter"),
        ("squall_link_messages_total", |s| get(&s.messages), "counter"),
        ("squall_link_bytes_total", |s| get(&s.bytes), "counter"),
        ("squall_link_dropped_total", |s| get(&s.dropped), "counter"),
        (
            "squall_link_shed_frames_total",
            |s| get(&s.shed_frames),
            "counter",
        ),
        ("squall_link_connects_total", |s| get(&s.connects), "counter"),
        ("squall_link_failures_total", |s| get(&s.failures), "counter"),
        (
            "squall_link_connected",
            |s| u64::from(s.connected.load(std::sync::atomic::Ordering::Relaxed)),
            "gauge",
        ),
        (
            "squall_link_peer_blocked",
            |s| u64::from(s.peer_blocked.load(std::sync::atomic::Ordering::Relaxed)),
            "gauge",
        ),
    ];
    for (name, get, kind) in link {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (peer, s) in links {
            let _ = writeln!(out, "{name}{{{base},peer=\"{}\"}} {}", esc(peer), get(s));
        }
    }
    let inb: &[(&str, u64, &str)] = &[
        ("squall_inbound_messages_total", get(&inbound.messages), "counter"),
        (
            "squall_inbound_malformed_frames_total",
            get(&inbound.malformed),
            "counter",
        ),
        (
            "squall_inbound_refused_peers_total",
            get(&inbound.refused),
            "counter",
        ),
        ("squall_inbound_links", get(&inbound.open), "gauge"),
    ];
    for (name, v, kind) in inb {
        let _ = writeln!(out, "# TYPE {name} {kind}\n{name}{{{base}}} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP squall_worker_dropped_messages_total Messages the data plane dropped (their trees time out and replay).\n\
         # TYPE squall_worker_dropped_messages_total counter"
    );
    let drops = &status.drops;
    for (reason, n) in [
        ("no_route", drops.no_route),
        ("engine_restart", drops.engine_restart),
        ("peer_removed", drops.peer_removed),
    ] {
        let _ = writeln!(
            out,
            "squall_worker_dropped_messages_total{{{base},reason=\"{reason}\"}} {n}"
        );
    }
    out
}
