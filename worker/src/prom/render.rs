//! The worker's `/metrics` page.

use std::fmt::Write as _;

use squall_engine::{ComponentSnapshot, Snapshot, Stats};

use squall_control::WorkerStatus;

use super::{seconds_of_micros, Buckets, HISTOGRAMS};
use crate::stats::{get, InboundStats, LinkStats};

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A family's `# HELP` and `# TYPE` lines.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

type Getter = fn(&Stats) -> u64;
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
];

/// Counters of time, kept in nanoseconds and shown in seconds.
const SECONDS_COUNTERS: &[(&str, Getter, &str)] = &[
    (
        "squall_busy_seconds_total",
        |s| s.busy_ns,
        "Time spent executing, summed over executors.",
    ),
    (
        "squall_backpressure_seconds_total",
        |s| s.backpressure_ns,
        "Time blocked on a full queue downstream, summed over executors.",
    ),
];

const GAUGES: &[(&str, GaugeOf, &str)] = &[
    (
        "squall_pending",
        |c| c.total.pending,
        "Spouts: trees emitted and not yet acked or failed.",
    ),
    (
        "squall_queue_depth",
        |c| c.queue_depth,
        "Tuples waiting in the component's input queues.",
    ),
    (
        "squall_queue_capacity",
        |c| c.queue_capacity,
        "Capacity of the component's input queues.",
    ),
    (
        "squall_executors",
        |c| u64::from(c.executors),
        "Executors (threads) of the component on this worker.",
    ),
    (
        "squall_spout_finished",
        |c| u64::from(c.finished),
        "Spouts: 1 once every task has emitted all it will.",
    ),
];

fn render_histograms(
    out: &mut String,
    snap: &Snapshot,
    labels: &dyn Fn(&ComponentSnapshot) -> String,
    buckets: Buckets,
) {
    for h in HISTOGRAMS {
        let (name, max) = (h.name, h.max);
        head(out, name, "histogram", h.help);
        for c in &snap.components {
            let b = (h.of)(&c.total);
            let count = b.count();
            if count == 0 {
                continue;
            }
            let l = labels(c);
            let (mut cumulative, mut next) = (0, 0);
            for &(i, le) in buckets.bounds() {
                cumulative += b.counts.iter().skip(next).take(i + 1 - next).sum::<u64>();
                next = i + 1;
                let le = seconds_of_micros(le);
                let _ = writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {count}");
            let sum = seconds_of_micros(b.sum);
            let _ = writeln!(out, "{name}_sum{{{l}}} {sum}\n{name}_count{{{l}}} {count}");
        }
        head(out, max, "gauge", &format!("Largest sample of {name}."));
        for c in &snap.components {
            let b = (h.of)(&c.total);
            if b.count() > 0 {
                let _ = writeln!(out, "{max}{{{}}} {}", labels(c), seconds_of_micros(b.max));
            }
        }
    }
}

type OutputOf = fn(&squall_engine::OutputStats) -> u64;
type InputOf = fn(&squall_engine::InputStats) -> u64;

/// Per output stream, labelled `stream`.
pub(super) const STREAM_COUNTERS: &[(&str, OutputOf, &str)] = &[
    (
        "squall_stream_emitted_total",
        |o| o.emitted,
        "Tuples emitted on one output stream.",
    ),
    (
        "squall_stream_transferred_total",
        |o| o.transferred,
        "Tuples sent to tasks from one output stream.",
    ),
];

/// Per input, labelled `source_component` and `source_stream`. Latencies are a count of
/// samples and a sum (counters, which add up across workers): the UI shows means only.
pub(super) const INPUT_COUNTERS: &[(&str, InputOf, &str)] = &[
    (
        "squall_input_executed_total",
        |i| i.executed,
        "Tuples of one input executed.",
    ),
    (
        "squall_input_acked_total",
        |i| i.acked,
        "Tuples of one input acked.",
    ),
    (
        "squall_input_failed_total",
        |i| i.failed,
        "Tuples of one input failed.",
    ),
    (
        "squall_input_execute_samples_total",
        |i| i.execute_count,
        "Execute latency samples of one input's tuples.",
    ),
    (
        "squall_input_process_samples_total",
        |i| i.process_count,
        "Process latency samples of one input's tuples.",
    ),
];

/// Sums of latency samples per input, kept in µs and shown in seconds.
pub(super) const INPUT_SECONDS: &[(&str, InputOf, &str)] = &[
    (
        "squall_input_execute_seconds_total",
        |i| i.execute_sum_us,
        "Time inside execute of one input's sampled tuples.",
    ),
    (
        "squall_input_process_seconds_total",
        |i| i.process_sum_us,
        "Time from receipt to ack of one input's sampled tuples.",
    ),
];

/// The per-stream and per-input families.
fn render_streams(out: &mut String, snap: &Snapshot, labels: &dyn Fn(&ComponentSnapshot) -> String) {
    for (name, get, help) in STREAM_COUNTERS {
        head(out, name, "counter", help);
        for c in &snap.components {
            for o in &c.total.streams.outputs {
                let _ = writeln!(
                    out,
                    "{name}{{{},stream=\"{}\"}} {}",
                    labels(c),
                    esc(&o.stream),
                    get(o)
                );
            }
        }
    }
    let input = |c: &ComponentSnapshot, i: &squall_engine::InputStats| {
        format!(
            "{},source_component=\"{}\",source_stream=\"{}\"",
            labels(c),
            esc(&i.component),
            esc(&i.stream)
        )
    };
    for (name, get, help) in INPUT_COUNTERS {
        head(out, name, "counter", help);
        for c in &snap.components {
            for i in &c.total.streams.inputs {
                let _ = writeln!(out, "{name}{{{}}} {}", input(c, i), get(i));
            }
        }
    }
    for (name, get, help) in INPUT_SECONDS {
        head(out, name, "counter", help);
        for c in &snap.components {
            for i in &c.total.streams.inputs {
                let _ = writeln!(out, "{name}{{{}}} {}", input(c, i), seconds_of_micros(get(i)));
            }
        }
    }
}

/// The components' own gauges (`Counters::set_gauge`): series `name{labels}` become
/// `squall_<name>{<component labels>,labels}`, one family per name.
fn render_component_gauges(out: &mut String, snap: &Snapshot, labels: &dyn Fn(&ComponentSnapshot) -> String) {
    let mut families: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for c in &snap.components {
        for (series, v) in &c.gauges {
            let (name, own) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or(rest)),
                None => (series.as_str(), ""),
            };
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                continue;
            }
            let sep = if own.is_empty() { "" } else { "," };
            families
                .entry(name)
                .or_default()
                .push(format!("squall_{name}{{{}{sep}{own}}} {v}", labels(c)));
        }
    }
    for (name, lines) in families {
        head(
            out,
            &format!("squall_{name}"),
            "gauge",
            "A component's own gauge (see the component's documentation).",
        );
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

/// The worker's own series, from the same [`WorkerStatus`] it serves on `/status`.
fn render_worker(out: &mut String, base: &str, status: &WorkerStatus) {
    head(
        out,
        "squall_worker_generation",
        "gauge",
        "Assignment generation this worker runs.",
    );
    let _ = writeln!(out, "squall_worker_generation{{{base}}} {}", status.generation);
    head(
        out,
        "squall_worker_engine_starts_total",
        "counter",
        "Engines started by this worker process.",
    );
    let _ = writeln!(
        out,
        "squall_worker_engine_starts_total{{{base}}} {}",
        status.engine_starts
    );
    // Absent while no engine runs (between plans), so that gap never reads as "drained".
    if status.engine_running {
        head(
            out,
            "squall_worker_active",
            "gauge",
            "Whether this worker's spouts are active.",
        );
        let _ = writeln!(out, "squall_worker_active{{{base}}} {}", u8::from(status.active));
        head(
            out,
            "squall_worker_in_flight",
            "gauge",
            "Spout trees pending plus tuples queued on this worker.",
        );
        let _ = writeln!(out, "squall_worker_in_flight{{{base}}} {}", status.in_flight);
    }
}

/// The whole `/metrics` page: the worker's own series from `status`, the engine's from
/// `snap`, then the data plane's. `buckets` picks the latency histograms' bounds.
pub fn render(
    status: &WorkerStatus,
    snap: Option<&Snapshot>,
    links: &[(String, &LinkStats)],
    inbound: &InboundStats,
    buckets: Buckets,
) -> String {
    let mut out = String::new();
    let base = format!(
        "topology=\"{}\",worker=\"{}\"",
        esc(&status.topology),
        esc(&status.worker)
    );
    render_worker(&mut out, &base, status);
    if let Some(snap) = snap {
        head(
            &mut out,
            "squall_uptime_seconds",
            "gauge",
            "Time since this worker's engine started.",
        );
        let _ = writeln!(
            out,
            "squall_uptime_seconds{{{base}}} {:.3}",
            snap.uptime.as_secs_f64()
        );
        let labels =
            |c: &ComponentSnapshot| format!("{base},component=\"{}\",role=\"{}\"", esc(&c.name), c.role);
        for (name, get, help) in COUNTERS {
            head(&mut out, name, "counter", help);
            for c in &snap.components {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(c), get(&c.total));
            }
        }
        for (name, get, help) in SECONDS_COUNTERS {
            head(&mut out, name, "counter", help);
            for c in &snap.components {
                let s = get(&c.total) as f64 / 1e9;
                let _ = writeln!(out, "{name}{{{}}} {s}", labels(c));
            }
        }
        for (name, get, help) in GAUGES {
            head(&mut out, name, "gauge", help);
            for c in &snap.components {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(c), get(c));
            }
        }
        head(
            &mut out,
            "squall_task_info",
            "gauge",
            "One series per task this worker runs.",
        );
        for c in &snap.components {
            for (t, _) in &c.tasks {
                let _ = writeln!(out, "squall_task_info{{{},task=\"{t}\"}} 1", labels(c));
            }
        }
        render_histograms(&mut out, snap, &labels, buckets);
        render_streams(&mut out, snap, &labels);
        render_component_gauges(&mut out, snap, &labels);
    }
    let connected = |s: &LinkStats| u64::from(s.connected.load(std::sync::atomic::Ordering::Relaxed));
    let blocked = |s: &LinkStats| u64::from(s.peer_blocked.load(std::sync::atomic::Ordering::Relaxed));
    let link: &[(&str, LinkOf, &str, &str)] = &[
        (
            "squall_link_frames_total",
            |s| get(&s.frames),
            "counter",
            "Frames handed to the connection to the peer.",
        ),
        (
            "squall_link_messages_total",
            |s| get(&s.messages),
            "counter",
            "Engine messages in those frames.",
        ),
        (
            "squall_link_bytes_total",
            |s| get(&s.bytes),
            "counter",
            "Bytes in those frames.",
        ),
        (
            "squall_link_dropped_total",
            |s| get(&s.dropped),
            "counter",
            "Messages discarded because the peer was unreachable or not reading (their trees time out and replay).",
        ),
        (
            "squall_link_shed_frames_total",
            |s| get(&s.shed_frames),
            "counter",
            "Frames taken into the backlog while the peer was shed.",
        ),
        (
            "squall_link_connects_total",
            |s| get(&s.connects),
            "counter",
            "Connections made to the peer.",
        ),
        (
            "squall_link_failures_total",
            |s| get(&s.failures),
            "counter",
            "Connections to the peer lost or refused.",
        ),
        (
            "squall_link_connected",
            connected,
            "gauge",
            "Whether a connection to the peer is up.",
        ),
        (
            "squall_link_peer_blocked",
            blocked,
            "gauge",
            "Whether the peer last reported itself blocked.",
        ),
    ];
    for (name, get, kind, help) in link {
        head(&mut out, name, kind, help);
        for (peer, s) in links {
            let _ = writeln!(out, "{name}{{{base},peer=\"{}\"}} {}", esc(peer), get(s));
        }
    }
    let inb: &[(&str, u64, &str, &str)] = &[
        (
            "squall_inbound_messages_total",
            get(&inbound.messages),
            "counter",
            "Messages from peers delivered to local executors (or forwarded).",
        ),
        (
            "squall_inbound_malformed_frames_total",
            get(&inbound.malformed),
            "counter",
            "Frames from peers refused as malformed.",
        ),
        (
            "squall_inbound_refused_peers_total",
            get(&inbound.refused),
            "counter",
            "Peers refused at hello (other topology, plan or protocol).",
        ),
        (
            "squall_inbound_links",
            get(&inbound.open),
            "gauge",
            "Incoming links open.",
        ),
    ];
    for (name, v, kind, help) in inb {
        head(&mut out, name, kind, help);
        let _ = writeln!(out, "{name}{{{base}}} {v}");
    }
    head(
        &mut out,
        "squall_worker_dropped_messages_total",
        "counter",
        "Messages the data plane dropped (their trees time out and replay).",
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
