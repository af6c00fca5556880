//! Prometheus text for `/metrics`, and reading it back: the local supervisor builds its
//! live table from what the workers export, as a Prometheus server would.
//!
//! [`render()`] writes a worker's page, [`parse()`] reads the samples of one back and
//! [`merge()`] sums several workers' pages into one snapshot. The latency histograms both
//! ends agree on (their families and bucket bounds) are defined here.

use squall_engine::metrics::{latency_bucket_bounds, LatencyBuckets};
use squall_engine::{Percentiles, Stats};

mod merge;
mod parse;
mod render;
#[cfg(test)]
mod tests;

pub use merge::merge;
pub use parse::{parse, Sample};
pub use render::render;

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
