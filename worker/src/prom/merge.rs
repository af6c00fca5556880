//! Summing several workers' pages into one snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use squall_engine::metrics::{latency_bucket_bounds, LatencyBuckets};
use squall_engine::{ComponentSnapshot, Percentiles, Snapshot, Stats};

use super::{micros_of, Sample, HISTOGRAMS};

fn role(s: &str) -> &'static str {
    match s {
        "spout" => "spout",
        "acker" => "acker",
        _ => "bolt",
    }
}

/// One histogram summed over pages: cumulative counts per finite bound the pages had
/// (by index among the engine's bounds), then `+Inf`.
#[derive(Default)]
pub(super) struct Summed {
    pub(super) cumulative: BTreeMap<usize, u64>,
    pub(super) total: u64,
    pub(super) sum: u64,
    pub(super) max: u64,
}

impl Summed {
    /// Adds one sample of a page if it belongs to a latency histogram; false if not.
    fn add(
        all: &mut BTreeMap<(String, usize), Summed>,
        comp: &str,
        name: &str,
        le: Option<&str>,
        v: f64,
    ) -> bool {
        let Some((which, part)) = HISTOGRAMS.iter().enumerate().find_map(|(i, h)| {
            if name == h.max {
                return Some((i, "max"));
            }
            let part = name.strip_prefix(h.name)?;
            ["_bucket", "_sum", "_count"].contains(&part).then_some((i, part))
        }) else {
            return false;
        };
        let s = all.entry((comp.to_owned(), which)).or_default();
        match (part, le) {
            ("max", _) => s.max = s.max.max(micros_of(v)),
            ("_sum", _) => s.sum += micros_of(v),
            ("_bucket", Some("+Inf")) => s.total += v as u64,
            ("_bucket", Some(le)) => {
                // Bounds that are not the engine's (another build) are skipped, not misfiled.
                let at = le
                    .parse::<f64>()
                    .ok()
                    .map(|le| le * 1e6)
                    .filter(|us| us.is_finite() && (us - us.round()).abs() < 1e-3)
                    .and_then(|us| latency_bucket_bounds().binary_search(&(us.round() as u64)).ok());
                if let Some(i) = at {
                    *s.cumulative.entry(i).or_default() += v as u64;
                }
            }
            _ => {}
        }
        true
    }

    /// A quantile from the buckets: the geometric middle of the one holding its rank (at
    /// most the maximum), or the maximum above the last bound.
    pub(super) fn quantile(&self, q: f64) -> u64 {
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let bounds = latency_bucket_bounds();
        let mut lo = 1;
        for (&i, &cumulative) in &self.cumulative {
            let hi = bounds[i];
            if cumulative >= rank {
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

    /// As engine buckets: each exported bucket's samples at its upper bound.
    fn buckets(&self) -> LatencyBuckets {
        let mut counts = vec![0; latency_bucket_bounds().len()];
        let mut below = 0;
        for (&i, &c) in &self.cumulative {
            counts[i] = c.saturating_sub(below);
            below = below.max(c);
        }
        LatencyBuckets {
            counts,
            overflow: self.total.saturating_sub(below),
            sum: self.sum,
            max: self.max,
        }
    }
}

/// A component's own gauge (`squall_<name>` with the component's labels and its own,
/// as `render_component_gauges` writes it) back under its series key, summed over pages.
fn component_gauge(c: &mut ComponentSnapshot, name: &str, labels: &BTreeMap<String, String>, v: u64) {
    const COMPONENT_LABELS: [&str; 4] = ["topology", "worker", "component", "role"];
    let Some(gauge) = name.strip_prefix("squall_") else {
        return;
    };
    let own: Vec<(&str, &str)> = labels
        .iter()
        .filter(|(k, _)| !COMPONENT_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    *c.gauges
        .entry(squall_engine::gauge_series(gauge, &own))
        .or_insert(0) += v;
}

/// Adds a per-stream or per-input sample of a page (see `render_streams`); false if
/// `name` is none of those families.
fn stream_sample(c: &mut ComponentSnapshot, name: &str, labels: &BTreeMap<String, String>, v: f64) -> bool {
    let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or_default();
    let n = v as u64;
    let streams = &mut c.total.streams;
    if name.starts_with("squall_stream_") {
        let o = streams.output_mut(label("stream"));
        match name {
            "squall_stream_emitted_total" => o.emitted += n,
            "squall_stream_transferred_total" => o.transferred += n,
            _ => {}
        }
        return true;
    }
    if !name.starts_with("squall_input_") {
        return false;
    }
    let i = streams.input_mut(label("source_component"), label("source_stream"));
    match name {
        "squall_input_executed_total" => i.executed += n,
        "squall_input_acked_total" => i.acked += n,
        "squall_input_failed_total" => i.failed += n,
        "squall_input_execute_samples_total" => i.execute_count += n,
        "squall_input_execute_seconds_total" => i.execute_sum_us += micros_of(v),
        "squall_input_process_samples_total" => i.process_count += n,
        "squall_input_process_seconds_total" => i.process_sum_us += micros_of(v),
        _ => {}
    }
    true
}

/// Sums the components of several workers' pages into one snapshot. Counters and gauges
/// add up (components' own gauges too, under their series keys); latency histograms add up bucket by bucket, so p50/p99 are those of all the
/// workers' samples together (within [`EXPORTED_BUCKET_ERROR`](super::EXPORTED_BUCKET_ERROR)
/// from [fine](super::Buckets::Fine) pages, within a bucket from standard ones),
/// the maximum is the largest and the mean comes from the summed sums.
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
                gauges: BTreeMap::new(),
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
                "squall_busy_seconds_total" => t.busy_ns += (v * 1e9).round() as u64,
                "squall_backpressure_seconds_total" => t.backpressure_ns += (v * 1e9).round() as u64,
                "squall_pending" => t.pending += n,
                "squall_queue_depth" => c.queue_depth += n,
                "squall_queue_capacity" => c.queue_capacity += n,
                "squall_executors" => c.executors += n as u32,
                "squall_task_info" => {
                    if let Some(task) = labels.get("task").and_then(|t| t.parse().ok()) {
                        c.tasks.push((task, Stats::default()));
                    }
                }
                other if stream_sample(c, other, labels, *v) => {}
                other => {
                    let le = labels.get("le").map(String::as_str);
                    if !Summed::add(&mut histograms, comp, other, le, *v) {
                        component_gauge(c, other, labels, n);
                    }
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
