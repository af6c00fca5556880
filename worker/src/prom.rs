//! Prometheus text for `/metrics`, and reading it back: the local supervisor builds its
//! live table from what the workers export, as a Prometheus server would.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use squall_engine::{ComponentSnapshot, Percentiles, Snapshot, Stats};

use crate::stats::{get, InboundStats, LinkStats};

/// Labels every series of this worker carries.
pub struct Identity<'a> {
    /// Topology name.
    pub topology: &'a str,
    /// Worker id.
    pub worker: &'a str,
    /// Assignment generation.
    pub generation: u64,
}

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

/// The whole `/metrics` page.
pub fn render(
    id: &Identity<'_>,
    snap: Option<&Snapshot>,
    links: &[(String, &LinkStats)],
    inbound: &InboundStats,
) -> String {
    let mut out = String::new();
    let base = format!("topology=\"{}\",worker=\"{}\"", esc(id.topology), esc(id.worker));
    let _ = writeln!(out, "# HELP squall_worker_generation Assignment generation this worker runs.\n# TYPE squall_worker_generation gauge");
    let _ = writeln!(out, "squall_worker_generation{{{base}}} {}", id.generation);
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

/// Sums the components of several workers' pages into one snapshot. Counters and gauges
/// add up; latency medians are averaged by sample count and the p99 is the largest of the
/// workers' (an upper bound, since exact merging needs the histograms).
pub fn merge(pages: &[Vec<Sample>]) -> Snapshot {
    let mut comps: BTreeMap<String, ComponentSnapshot> = BTreeMap::new();
    let mut weights: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
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
                    let Some(which) = LATENCIES.iter().position(|(l, _)| other.starts_with(l)) else {
                        continue;
                    };
                    let p = match which {
                        0 => &mut t.complete_us,
                        1 => &mut t.execute_us,
                        _ => &mut t.process_us,
                    };
                    let key = (comp.clone(), LATENCIES[which].0.to_owned());
                    let w = weights.entry(key).or_default();
                    if other.ends_with("_count") {
                        p.count += n;
                        w.1 += *v;
                    } else if labels.get("quantile").map(String::as_str) == Some("0.99") {
                        p.p99 = p.p99.max(n);
                    } else {
                        // Median weighted below, once counts are known.
                        w.0 += *v;
                        p.p50 = n;
                    }
                }
            }
        }
    }
    // A component on one worker keeps its exact median; on several, the plain mean.
    for ((comp, lat), (sum, _)) in weights {
        let Some(c) = comps.get_mut(&comp) else { continue };
        let workers = pages
            .iter()
            .filter(|p| {
                p.iter().any(|(n, l, _)| {
                    n.starts_with(&lat)
                        && l.get("component") == Some(&comp)
                        && l.get("quantile").is_some_and(|q| q == "0.5")
                })
            })
            .count()
            .max(1);
        let which = LATENCIES.iter().position(|(l, _)| *l == lat).unwrap_or(0);
        let p = match which {
            0 => &mut c.total.complete_us,
            1 => &mut c.total.execute_us,
            _ => &mut c.total.process_us,
        };
        p.p50 = (sum / workers as f64) as u64;
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
    use super::*;

    #[test]
    fn a_rendered_page_reads_back() {
        let mut stats = Stats {
            emitted: 10,
            acked: 7,
            pending: 3,
            ..Stats::default()
        };
        stats.complete_us = Percentiles {
            count: 5,
            p50: 100,
            p99: 900,
            max: 900,
            mean: 120.0,
        };
        let snap = Snapshot {
            uptime: Duration::from_secs(3),
            components: vec![ComponentSnapshot {
                name: "s\"q".into(),
                role: "spout",
                executors: 1,
                total: stats,
                tasks: vec![(4, Stats::default())],
                queue_depth: 2,
                queue_capacity: 16,
                last_error: None,
                custom: BTreeMap::new(),
                finished: false,
            }],
        };
        let id = Identity {
            topology: "t",
            worker: "w0",
            generation: 2,
        };
        let link = LinkStats::default();
        let page = render(
            &id,
            Some(&snap),
            &[("w1".into(), &link)],
            &InboundStats::default(),
        );
        let a = parse(&page);
        let merged = merge(&[a.clone(), a]);
        let c = &merged.components[0];
        assert_eq!(c.name, "s\"q");
        assert_eq!(c.total.emitted, 20);
        assert_eq!(c.total.pending, 6);
        assert_eq!(c.tasks.len(), 2);
        assert_eq!(c.total.complete_us.p50, 100);
        assert_eq!(c.total.complete_us.p99, 900);
        assert_eq!(c.total.complete_us.count, 10);
    }
}
