//! Prometheus text for `/metrics`, and reading it back: the local supervisor builds its
//! live table from what the workers export, as a Prometheus server would.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use squall_engine::metrics::{latency_bucket_bounds, LatencyBuckets};
use squall_engine::{ComponentSnapshot, Percentiles, Snapshot, Stats};

use squall_control::WorkerStatus;

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

/// A latency histogram family: its name, its largest-sample gauge, what it measures.
struct Histo {
    name: &'static str,
    max: &'static str,
    help: &'static str,
    of: fn(&Stats) -> &LatencyBuckets,
    of_mut: fn(&mut Stats) -> (&mut LatencyBuckets, &mut Percentiles),
}

/// Exported buckets are 1 µs wide up to here ...
const EXPORT_UNIT_UP_TO: u64 = 16;
/// ... then this many per doubling, up to the engine's last bound.
const EXPORT_PER_DOUBLING: f64 = 4.0;

/// Largest relative error of a quantile estimated from the exported buckets, summed over
/// any number of pages (below the last bound): half a bucket on a log scale,
/// sqrt(2^(1/4) * (1 + 1/128)) - 1 or 9.5%, and rounding to a microsecond; a test checks
/// every bucket. The engine's own buckets are twice as fine, but would double the page.
pub const EXPORTED_BUCKET_ERROR: f64 = 0.10;

/// The bounds of the exported histogram buckets, each with its index among the engine's
/// bounds. Every one is an engine bound, so an exported bucket is an exact sum of engine
/// buckets and the pages of any number of workers add up exactly.
pub fn exported_bounds() -> &'static [(usize, u64)] {
    static BOUNDS: std::sync::OnceLock<Vec<(usize, u64)>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        let engine = latency_bucket_bounds();
        let Some(&last) = engine.last() else {
            return Vec::new();
        };
        let log_spaced = (0..)
            .map(|k| 2f64.powf(f64::from(k) / EXPORT_PER_DOUBLING).round() as u64)
            .skip_while(|raw| *raw <= EXPORT_UNIT_UP_TO)
            .take_while(|raw| *raw <= last);
        let mut out: Vec<(usize, u64)> = Vec::new();
        for raw in (1..=EXPORT_UNIT_UP_TO).chain(log_spaced).chain([last]) {
            let i = engine.partition_point(|b| *b < raw);
            if i < engine.len() && out.last().is_none_or(|(j, _)| i > *j) {
                out.push((i, engine[i]));
            }
        }
        out
    })
}

/// Latencies as histograms at [`exported_bounds`]: unlike the summaries, their buckets
/// add up across workers (`histogram_quantile` over a sum by `le`).
const HISTOGRAMS: &[Histo] = &[
    Histo {
        name: "squall_complete_latency_us",
        max: "squall_complete_latency_max_us",
        help: "Spouts: emit to tree completion, microseconds.",
        of: |s| &s.complete_buckets,
        of_mut: |s| (&mut s.complete_buckets, &mut s.complete_us),
    },
    Histo {
        name: "squall_execute_latency_us",
        max: "squall_execute_latency_max_us",
        help: "Bolts: time inside execute, microseconds (sampled).",
        of: |s| &s.execute_buckets,
        of_mut: |s| (&mut s.execute_buckets, &mut s.execute_us),
    },
    Histo {
        name: "squall_process_latency_us",
        max: "squall_process_latency_max_us",
        help: "Bolts: start of a tuple to its ack, microseconds (sampled).",
        of: |s| &s.process_buckets,
        of_mut: |s| (&mut s.process_buckets, &mut s.process_us),
    },
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

/// One sample: name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// Reads the samples of a Prometheus text page (comments and malformed lines skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head.to_owned(), BTreeMap::new()),
        Some((name, rest)) => (name.to_owned(), parse_labels(rest.strip_suffix('}')?)?),
    };
    Some((name, labels, value))
}

fn parse_labels(mut s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"")?;
        let mut val = String::new();
        let mut chars = rest.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => val.push('\n'),
                    Some((_, c)) => val.push(c),
                    None => return None,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => val.push(c),
            }
        }
        let end = end?;
        out.insert(k.trim_start_matches(',').to_owned(), val);
        s = rest[end + 1..].trim_start_matches(',');
    }
    Some(out)
}

fn role(s: &str) -> &'static str {
    match s {
        "spout" => "spout",
        "acker" => "acker",
        _ => "bolt",
    }
}

/// One histogram summed over pages: cumulative counts per finite bound, then `+Inf`.
#[derive(Default)]
struct Summed {
    cumulative: Vec<u64>,
    total: u64,
    sum: u64,
    max: u64,
}

impl Summed {
    /// Adds one sample of a page if it belongs to a latency histogram.
    fn add(all: &mut BTreeMap<(String, usize), Summed>, comp: &str, name: &str, le: Option<&str>, v: u64) {
        let Some((which, part)) = HISTOGRAMS.iter().enumerate().find_map(|(i, h)| {
            if name == h.max {
                return Some((i, "max"));
            }
            let part = name.strip_prefix(h.name)?;
            ["_bucket", "_sum", "_count"].contains(&part).then_some((i, part))
        }) else {
            return;
        };
        let bounds = latency_bucket_bounds();
        let s = all.entry((comp.to_owned(), which)).or_default();
        if s.cumulative.is_empty() {
            s.cumulative = vec![0; bounds.len()];
        }
        match (part, le) {
            ("max", _) => s.max = s.max.max(v),
            ("_sum", _) => s.sum += v,
            ("_bucket", Some("+Inf")) => s.total += v,
            ("_bucket", Some(le)) => {
                // Bounds that are not the engine's (another build) are skipped, not misfiled.
                let at = le
                    .parse::<f64>()
                    .ok()
                    .filter(|le| le.fract() == 0.0)
                    .and_then(|le| bounds.binary_search(&(le as u64)).ok());
                if let Some(i) = at {
                    s.cumulative[i] += v;
                }
            }
            _ => {}
        }
    }

    /// A quantile from the exported buckets: the geometric middle of the one holding its
    /// rank (at most the maximum), or the maximum above the last bound.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut lo = 1;
        for &(i, hi) in exported_bounds() {
            if self.cumulative.get(i).copied().unwrap_or(0) >= rank {
                let mid = ((lo as f64) * (hi as f64)).sqrt().round() as u64;
                return if self.max > 0 { mid.min(self.max) } else { mid };
            }
            lo = hi + 1;
        }
        self.max
    }

    fn percentiles(&self) -> Percentiles {
        if self.total == 0 {
            return Percentiles::default();
        }
        Percentiles {
            count: self.total,
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            max: self.max,
            mean: self.sum as f64 / self.total as f64,
        }
    }

    fn buckets(&self) -> LatencyBuckets {
        let mut counts = Vec::with_capacity(self.cumulative.len());
        let mut below = 0;
        for c in &self.cumulative {
            counts.push(c.saturating_sub(below));
            below = below.max(*c);
        }
        LatencyBuckets {
            counts,
            overflow: self.total.saturating_sub(below),
            sum: self.sum,
            max: self.max,
        }
    }
}

/// Sums the components of several workers' pages into one snapshot. Counters and gauges
/// add up; latency histograms add up bucket by bucket, so p50/p99 are those of all the
/// workers' samples together (within [`EXPORTED_BUCKET_ERROR`]), the maximum is
/// the largest and the mean comes from the summed sums.
pub fn merge(pages: &[Vec<Sample>]) -> Snapshot {
    let mut comps: BTreeMap<String, ComponentSnapshot> = BTreeMap::new();
    let mut histograms: BTreeMap<(String, usize), Summed> = BTreeMap::new();
    let mut uptime = 0f64;
    for page in pages {
        for (name, labels, v) in page {
            if name == "squall_uptime_seconds" {
                uptime = uptime.max(*v);
                continue;
            }
            let Some(comp) = labels.get("component") else {
                continue;
            };
            let c = comps.entry(comp.clone()).or_insert_with(|| ComponentSnapshot {
                name: comp.clone(),
                role: role(labels.get("role").map(String::as_str).unwrap_or("bolt")),
                executors: 0,
                total: Stats::default(),
                tasks: Vec::new(),
                queue_depth: 0,
                queue_capacity: 0,
                last_error: None,
                custom: BTreeMap::new(),
                // All of a spout's workers must say finished; see squall_spout_finished.
                finished: labels.get("role").map(String::as_str) == Some("spout"),
            });
            let n = *v as u64;
            let t = &mut c.total;
            match name.as_str() {
                "squall_emitted_total" => t.emitted += n,
                "squall_transferred_total" => t.transferred += n,
                "squall_executed_total" => t.executed += n,
                "squall_acked_total" => t.acked += n,
                "squall_failed_total" => t.failed += n,
                "squall_timed_out_total" => t.timed_out += n,
                "squall_errors_total" => t.errors += n,
                "squall_restarts_total" => t.restarts += n,
                "squall_unroutable_total" => t.unroutable += n,
                "squall_spout_finished" => c.finished &= n == 1,
                "squall_busy_nanoseconds_total" => t.busy_ns += n,
                "squall_backpressure_nanoseconds_total" => t.backpressure_ns += n,
                "squall_pending" => t.pending += n,
                "squall_queue_depth" => c.queue_depth += n,
                "squall_queue_capacity" => c.queue_capacity += n,
                "squall_executors" => c.executors += n as u32,
                "squall_task_info" => {
                    if let Some(task) = labels.get("task").and_then(|t| t.parse().ok()) {
                        c.tasks.push((task, Stats::default()));
                    }
                }
                other => {
                    // Latency summaries are skipped: their quantiles do not add up.
                    Summed::add(
                        &mut histograms,
                        comp,
                        other,
                        labels.get("le").map(String::as_str),
                        n,
                    );
                }
            }
        }
    }
    for ((comp, which), summed) in &histograms {
        let Some(c) = comps.get_mut(comp) else { continue };
        let (buckets, percentiles) = (HISTOGRAMS[*which].of_mut)(&mut c.total);
        *buckets = summed.buckets();
        *percentiles = summed.percentiles();
    }
    let mut components: Vec<ComponentSnapshot> = comps.into_values().collect();
    for c in &mut components {
        c.tasks.sort_by_key(|(t, _)| *t);
    }
    components.sort_by_key(|c| c.tasks.first().map(|t| t.0).unwrap_or(u32::MAX));
    Snapshot {
        uptime: Duration::from_secs_f64(uptime),
        components,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::{BTreeSet, HashSet};

    use super::*;

    /// What the engine would export for these samples (whole microseconds fall in the
    /// bucket of the first bound at or above them).
    fn buckets_of(samples: &[u64]) -> LatencyBuckets {
        let bounds = latency_bucket_bounds();
        let mut b = LatencyBuckets {
            counts: vec![0; bounds.len()],
            ..LatencyBuckets::default()
        };
        for s in samples {
            match b.counts.get_mut(bounds.partition_point(|x| x < s)) {
                Some(c) => *c += 1,
                None => b.overflow += 1,
            }
            b.sum += s;
            b.max = b.max.max(*s);
        }
        b
    }

    fn component(name: &str, role: &'static str, task: u32, total: Stats) -> ComponentSnapshot {
        ComponentSnapshot {
            name: name.into(),
            role,
            executors: 1,
            total,
            tasks: vec![(task, Stats::default())],
            queue_depth: 2,
            queue_capacity: 16,
            last_error: None,
            custom: BTreeMap::new(),
            finished: false,
        }
    }

    fn page(worker: &str, components: Vec<ComponentSnapshot>) -> String {
        let snap = Snapshot {
            uptime: Duration::from_secs(3),
            components,
        };
        let status = WorkerStatus {
            worker: worker.into(),
            topology: "t".into(),
            generation: 2,
            engine_running: true,
            ..WorkerStatus::default()
        };
        let link = LinkStats::default();
        render(
            &status,
            Some(&snap),
            &[("w1".into(), &link)],
            &InboundStats::default(),
        )
    }

    fn spout_page(worker: &str, samples: &[u64]) -> String {
        let b = buckets_of(samples);
        let total = Stats {
            emitted: samples.len() as u64,
            complete_us: b.percentiles(),
            complete_buckets: b,
            ..Stats::default()
        };
        page(worker, vec![component("spout", "spout", 1, total)])
    }

    /// Nearest rank, as hdrhistogram counts it.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1]
    }

    #[test]
    fn a_rendered_page_reads_back() {
        let b = buckets_of(&[90, 100, 110, 120, 900]);
        let stats = Stats {
            emitted: 10,
            acked: 7,
            pending: 3,
            complete_us: b.percentiles(),
            complete_buckets: b,
            ..Stats::default()
        };
        let a = parse(&page("w0", vec![component("s\"q", "spout", 4, stats)]));
        let merged = merge(&[a.clone(), a]);
        let c = &merged.components[0];
        assert_eq!(c.name, "s\"q");
        assert_eq!(c.total.emitted, 20);
        assert_eq!(c.total.pending, 6);
        assert_eq!(c.tasks.len(), 2);
        // The same distribution twice has the same quantiles, 110 estimated within its
        // bucket and 900 the maximum.
        let p50 = c.total.complete_us.p50 as f64;
        assert!((p50 / 110.0 - 1.0).abs() <= EXPORTED_BUCKET_ERROR, "{p50}");
        assert_eq!(c.total.complete_us.p99, 900);
        assert_eq!(c.total.complete_us.max, 900);
        assert_eq!(c.total.complete_us.count, 10);
        assert!((c.total.complete_us.mean - 264.0).abs() < 1e-9);
    }

    #[test]
    fn merged_percentiles_are_those_of_all_samples() {
        // One worker fast (~100 µs), one slow (~10 ms), different counts. In the first
        // case the old merge (mean of medians, max of p99s) would say p50 ~5 ms and
        // p99 ~11 ms where the truth is ~100 µs for both; in the second p50 is ~100 µs.
        for (fast_n, slow_n) in [(10_000u64, 50u64), (1_000, 300)] {
            let fast: Vec<u64> = (0..fast_n).map(|i| 90 + i % 21).collect();
            let slow: Vec<u64> = (0..slow_n).map(|i| 9_000 + (i * 37) % 2_001).collect();
            let pages = [parse(&spout_page("w0", &fast)), parse(&spout_page("w1", &slow))];
            let got = merge(&pages).component("spout").unwrap().total.complete_us;
            let mut all: Vec<u64> = fast.iter().chain(&slow).copied().collect();
            all.sort_unstable();
            assert_eq!(got.count, all.len() as u64);
            for (q, est) in [(0.5, got.p50), (0.99, got.p99)] {
                let want = exact(&all, q);
                let err = (est as f64 / want as f64 - 1.0).abs();
                assert!(
                    err <= EXPORTED_BUCKET_ERROR,
                    "{fast_n}/{slow_n} q{q}: {est} vs {want}"
                );
            }
            assert_eq!(got.max, *all.last().unwrap());
            let mean = all.iter().sum::<u64>() as f64 / all.len() as f64;
            assert!((got.mean - mean).abs() < 1e-6, "{} vs {mean}", got.mean);
        }
    }

    /// The label set of a sample without `le`, as text.
    fn series(labels: &BTreeMap<String, String>) -> String {
        let rest: Vec<String> = labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rest.join(",")
    }

    /// Checks the Prometheus text rules a scraper relies on; panics on the first breach.
    fn check_well_formed(text: &str) {
        let mut kinds: BTreeMap<String, String> = BTreeMap::new();
        let mut helps = HashSet::new();
        let mut closed = HashSet::new();
        let mut current: Option<String> = None;
        // Per histogram series: the last bound and cumulative count, `+Inf`, `_count`.
        let mut buckets: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
        let mut infs: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut counts: BTreeMap<(String, String), f64> = BTreeMap::new();
        for line in text.lines() {
            let words: Vec<&str> = line.splitn(4, ' ').collect();
            let family = if line.starts_with('#') {
                assert!(words.len() >= 4, "short comment: {line}");
                let family = words[2].to_owned();
                match words[1] {
                    "HELP" => assert!(helps.insert(family.clone()), "HELP twice: {line}"),
                    "TYPE" => {
                        assert!(["counter", "gauge", "summary", "histogram"].contains(&words[3]));
                        assert!(
                            kinds.insert(family.clone(), words[3].into()).is_none(),
                            "TYPE twice: {line}"
                        );
                    }
                    _ => panic!("unknown comment: {line}"),
                }
                family
            } else {
                let (name, labels, v) = parse_line(line).unwrap_or_else(|| panic!("malformed: {line}"));
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .filter_map(|s| name.strip_suffix(s))
                    .find(|f| matches!(kinds.get(*f).map(String::as_str), Some("histogram" | "summary")))
                    .unwrap_or(&name)
                    .to_owned();
                assert!(kinds.contains_key(&family), "sample before its TYPE: {line}");
                if kinds[&family] == "histogram" {
                    let key = (family.clone(), series(&labels));
                    if name.ends_with("_bucket") {
                        let le = &labels["le"];
                        if le == "+Inf" {
                            infs.insert(key.clone(), v);
                            assert!(buckets.get(&key).is_none_or(|b| b.1 <= v), "{line}");
                        } else {
                            let le: f64 = le.parse().unwrap();
                            let (last_le, last) = buckets.get(&key).copied().unwrap_or((f64::MIN, 0.0));
                            assert!(le > last_le && v >= last, "bucket out of order: {line}");
                            buckets.insert(key, (le, v));
                        }
                    } else if name.ends_with("_count") {
                        counts.insert(key, v);
                    }
                }
                family
            };
            // A family's lines come together: once another starts, it is done.
            if current.as_ref() != Some(&family) {
                assert!(!closed.contains(&family), "family {family} split: {line}");
                if let Some(prev) = current.replace(family.clone()) {
                    closed.insert(prev);
                }
            }
        }
        let series: BTreeSet<_> = buckets.keys().chain(infs.keys()).chain(counts.keys()).collect();
        assert!(!series.is_empty());
        for key in series {
            assert_eq!(infs.get(key), counts.get(key), "+Inf bucket != count for {key:?}");
            assert!(buckets.contains_key(key), "no finite buckets for {key:?}");
        }
    }

    #[test]
    fn the_page_is_well_formed_prometheus_text() {
        let spout = buckets_of(&[5, 80, 100, 1 << 28]);
        let bolt = buckets_of(&[3, 4, 70_000]);
        let components = vec![
            component(
                "spout",
                "spout",
                1,
                Stats {
                    complete_us: spout.percentiles(),
                    complete_buckets: spout,
                    ..Stats::default()
                },
            ),
            component(
                "bolt",
                "bolt",
                2,
                Stats {
                    execute_us: bolt.percentiles(),
                    execute_buckets: bolt.clone(),
                    process_buckets: bolt,
                    ..Stats::default()
                },
            ),
            component("idle", "bolt", 3, Stats::default()),
        ];
        let text = page("w0", components);
        check_well_formed(&text);
        let samples = parse(&text);
        let value = |name: &str, comp: &str, le: Option<&str>| {
            samples
                .iter()
                .find(|(n, l, _)| {
                    n == name
                        && l.get("component").map(String::as_str) == Some(comp)
                        && l.get("le").map(String::as_str) == le
                })
                .map(|s| s.2)
        };
        let name = "squall_complete_latency_us";
        assert_eq!(value(&format!("{name}_bucket"), "spout", Some("+Inf")), Some(4.0));
        let le100 = exported_bounds()
            .iter()
            .find(|b| b.1 >= 100)
            .unwrap()
            .1
            .to_string();
        assert_eq!(value(&format!("{name}_bucket"), "spout", Some(&le100)), Some(3.0));
        assert_eq!(value(&format!("{name}_bucket"), "spout", Some("4")), Some(0.0));
        assert_eq!(value(&format!("{name}_count"), "spout", None), Some(4.0));
        assert_eq!(
            value("squall_complete_latency_max_us", "spout", None),
            Some((1u64 << 28) as f64)
        );
        assert_eq!(value("squall_execute_latency_us_count", "bolt", None), Some(3.0));
        assert_eq!(
            value("squall_process_latency_us_sum", "bolt", None),
            Some(70_007.0)
        );
        // A component without samples exports no latency series.
        assert!(
            !samples
                .iter()
                .any(|(n, l, _)| n.contains("latency")
                    && l.get("component").map(String::as_str) == Some("idle"))
        );
        // The summaries stay for existing dashboards.
        assert_eq!(
            value("squall_complete_latency_microseconds_count", "spout", None),
            Some(4.0)
        );
    }

    #[test]
    fn exported_buckets_are_half_the_engine_s_within_their_documented_error() {
        let engine = latency_bucket_bounds();
        let exported = exported_bounds();
        assert_eq!(exported.last().map(|b| b.1), engine.last().copied(), "same range");
        assert!(
            exported.len() * 2 <= engine.len() + 16,
            "{} of {}",
            exported.len(),
            engine.len()
        );
        assert!(exported.iter().all(|(i, b)| engine[*i] == *b), "a subset");
        // Every value of every bucket, estimated as the merge does (the maximum far above).
        let mut lo = 1;
        for &(i, hi) in exported {
            let mut s = Summed {
                cumulative: vec![0; engine.len()],
                total: 1,
                sum: 0,
                max: u64::MAX,
            };
            for c in &mut s.cumulative[i..] {
                *c = 1;
            }
            let est = s.quantile(0.5) as f64;
            for x in [lo, hi] {
                let err = (est / x as f64 - 1.0).abs();
                assert!(err <= EXPORTED_BUCKET_ERROR, "bucket {lo}..={hi}: {est} for {x}");
            }
            lo = hi + 1;
        }
    }

    #[test]
    fn the_checker_catches_breaches() {
        let ok = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n";
        check_well_formed(ok);
        let bad = [
            ok.replace("h_count 2", "h_count 3"),
            ok.replace("} 1\n", "} 3\n"),
            format!("{ok}# TYPE h histogram\n"),
            format!("{ok}# TYPE g gauge\ng 1\nh_count 2\n"),
            ok.replace("# TYPE h histogram\n", ""),
        ];
        for text in bad {
            let caught = std::panic::catch_unwind(|| check_well_formed(&text));
            assert!(caught.is_err(), "accepted:\n{text}");
        }
    }

    #[test]
    fn buckets_at_foreign_bounds_are_skipped() {
        let text = spout_page("w0", &[1, 2, 3, 100]);
        let foreign = "squall_complete_latency_us_bucket{component=\"spout\",role=\"spout\",le=\"1.5\"} 1000\n\
                       squall_complete_latency_us_bucket{component=\"spout\",role=\"spout\",le=\"7e9\"} 1000\n";
        let clean = merge(&[parse(&text)]);
        let mixed = merge(&[parse(&format!("{text}{foreign}"))]);
        assert_eq!(mixed, clean);
        assert_eq!(clean.component("spout").unwrap().total.complete_us.p50, 2);
    }
}
