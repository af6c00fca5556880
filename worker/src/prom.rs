//! Prometheus text for `/metrics`, and reading it back: the local supervisor builds its
//! live table from what the workers export, as a Prometheus server would.
//!
//! [`render()`] writes a worker's page, [`parse()`] reads the samples of one back and
//! [`merge()`] sums several workers' pages into one snapshot. The latency histograms both
//! ends agree on (their families and bucket bounds) are defined here.
//!
//! Names follow Prometheus' conventions: base units (seconds), `_total` on counters. A
//! plain scrape gets [`Buckets::Standard`] (under 20 buckets per histogram); the supervisor
//! asks for [`Buckets::Fine`] ([`FINE_PATH`]) because its live table and the benchmarks
//! report quantiles from the merged buckets.

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

/// The `/metrics` page with [`Buckets::Fine`].
pub const FINE_PATH: &str = "/metrics?buckets=fine";

/// Which bounds a page's latency histograms have. Both are subsets of the engine's
/// bounds, so every exported bucket is an exact sum of engine buckets and the pages of
/// any number of workers add up exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Buckets {
    /// [`standard_bounds`]: what a Prometheus server scrapes unless it asks for more.
    #[default]
    Standard,
    /// [`exported_bounds`]: `?buckets=fine`, quantiles within [`EXPORTED_BUCKET_ERROR`].
    Fine,
}

impl Buckets {
    /// From the query string of a `/metrics` request (`buckets=fine`; anything else is
    /// the standard page).
    pub fn of_query(query: &str) -> Self {
        if query.split('&').any(|kv| kv == "buckets=fine") {
            Buckets::Fine
        } else {
            Buckets::Standard
        }
    }

    /// The bounds, each with its index among the engine's bounds.
    pub fn bounds(self) -> &'static [(usize, u64)] {
        match self {
            Buckets::Standard => standard_bounds(),
            Buckets::Fine => exported_bounds(),
        }
    }
}

/// A latency histogram family: its name, its largest-sample gauge, what it measures.
struct Histo {
    name: &'static str,
    max: &'static str,
    help: &'static str,
    of: fn(&Stats) -> &LatencyBuckets,
    of_mut: fn(&mut Stats) -> (&mut LatencyBuckets, &mut Percentiles),
}

/// Fine buckets are 1 µs wide up to here ...
const EXPORT_UNIT_UP_TO: u64 = 16;
/// ... then this many per doubling, up to the engine's last bound.
const EXPORT_PER_DOUBLING: f64 = 4.0;

/// Largest relative error of a quantile estimated from the fine buckets, summed over
/// any number of pages (below the last bound): half a bucket on a log scale,
/// sqrt(2^(1/4) * (1 + 1/128)) - 1 or 9.5%, and rounding to a microsecond; a test checks
/// every bucket. The engine's own buckets are twice as fine, but would double the page.
pub const EXPORTED_BUCKET_ERROR: f64 = 0.10;

/// Standard buckets: two per decade (the engine bound nearest to 10^(k/2) µs) from 1 µs
/// to 100 s, then the engine's last bound (about 134 s). Eighteen finite bounds: a
/// dashboard's `histogram_quantile` needs no more, and every component of every worker
/// pays for each one on every scrape.
const STANDARD_DECADES: u32 = 8;

/// The index among the engine's bounds of the one nearest to `us` on a log scale.
fn nearest_engine_bound(engine: &[u64], us: f64) -> usize {
    let i = engine.partition_point(|b| (*b as f64) < us);
    match (i.checked_sub(1), engine.get(i)) {
        (Some(lo), Some(hi)) if us / engine[lo] as f64 <= *hi as f64 / us => lo,
        (Some(lo), None) => lo,
        _ => i,
    }
}

/// The bounds of the standard histogram buckets, each with its index among the engine's
/// bounds.
pub fn standard_bounds() -> &'static [(usize, u64)] {
    static BOUNDS: std::sync::OnceLock<Vec<(usize, u64)>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        let engine = latency_bucket_bounds();
        let mut out: Vec<(usize, u64)> = Vec::new();
        let targets = (0..=2 * STANDARD_DECADES).map(|k| 10f64.powf(f64::from(k) / 2.0));
        for i in targets
            .map(|us| nearest_engine_bound(engine, us))
            .chain(engine.len().checked_sub(1))
        {
            if out.last().is_none_or(|(j, _)| i > *j) {
                out.push((i, engine[i]));
            }
        }
        out
    })
}

/// The bounds of the fine histogram buckets, each with its index among the engine's
/// bounds.
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

/// Microseconds as the seconds a page shows: the shortest decimal that reads back as the
/// same number, so [`micros_of`] recovers the exact count.
fn seconds_of_micros(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Seconds read from a page as whole microseconds.
fn micros_of(seconds: f64) -> u64 {
    (seconds * 1e6).round() as u64
}

/// Latencies as histograms in seconds: they add up across workers (`histogram_quantile`
/// over a sum by `le`).
const HISTOGRAMS: &[Histo] = &[
    Histo {
        name: "squall_complete_latency_seconds",
        max: "squall_complete_latency_max_seconds",
        help: "Spouts: emit to tree completion.",
        of: |s| &s.complete_buckets,
        of_mut: |s| (&mut s.complete_buckets, &mut s.complete_us),
    },
    Histo {
        name: "squall_execute_latency_seconds",
        max: "squall_execute_latency_max_seconds",
        help: "Bolts: time inside execute (sampled).",
        of: |s| &s.execute_buckets,
        of_mut: |s| (&mut s.execute_buckets, &mut s.execute_us),
    },
    Histo {
        name: "squall_process_latency_seconds",
        max: "squall_process_latency_max_seconds",
        help: "Bolts: start of a tuple to its ack (sampled).",
        of: |s| &s.process_buckets,
        of_mut: |s| (&mut s.process_buckets, &mut s.process_us),
    },
];
