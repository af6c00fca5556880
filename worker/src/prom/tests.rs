//! Round trips: pages rendered, read back and merged.

#![allow(clippy::unwrap_used)]
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use squall_control::WorkerStatus;
use squall_engine::metrics::{latency_bucket_bounds, LatencyBuckets};
use squall_engine::{ComponentSnapshot, Snapshot, Stats};

use super::merge::Summed;
use super::parse::parse_line;
use super::*;
use crate::stats::{InboundStats, LinkStats};

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
        gauges: BTreeMap::new(),
        finished: false,
    }
}

/// A page with the fine buckets, as the supervisor reads them.
fn page(worker: &str, components: Vec<ComponentSnapshot>) -> String {
    page_with(worker, components, Buckets::Fine)
}

fn page_with(worker: &str, components: Vec<ComponentSnapshot>, buckets: Buckets) -> String {
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
        buckets,
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
    let name = "squall_complete_latency_seconds";
    assert_eq!(value(&format!("{name}_bucket"), "spout", Some("+Inf")), Some(4.0));
    let le100 = exported_bounds().iter().find(|b| b.1 >= 100).unwrap().1;
    let le100 = (le100 as f64 / 1e6).to_string();
    assert_eq!(value(&format!("{name}_bucket"), "spout", Some(&le100)), Some(3.0));
    assert_eq!(
        value(&format!("{name}_bucket"), "spout", Some("0.000004")),
        Some(0.0)
    );
    assert_eq!(value(&format!("{name}_count"), "spout", None), Some(4.0));
    assert_eq!(
        value("squall_complete_latency_max_seconds", "spout", None),
        Some((1u64 << 28) as f64 / 1e6)
    );
    assert_eq!(
        value("squall_execute_latency_seconds_count", "bolt", None),
        Some(3.0)
    );
    assert_eq!(
        value("squall_process_latency_seconds_sum", "bolt", None),
        Some(0.070007)
    );
    // A component without samples exports no latency series.
    assert!(!samples
        .iter()
        .any(|(n, l, _)| n.contains("latency") && l.get("component").map(String::as_str) == Some("idle")));
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
        let s = Summed {
            cumulative: exported.iter().map(|&(j, _)| (j, u64::from(j >= i))).collect(),
            total: 1,
            sum: 0,
            max: u64::MAX,
        };
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
    let foreign = "squall_complete_latency_seconds_bucket{component=\"spout\",role=\"spout\",le=\"0.0000015\"} 1000\n\
                   squall_complete_latency_seconds_bucket{component=\"spout\",role=\"spout\",le=\"7000\"} 1000\n";
    let clean = merge(&[parse(&text)]);
    let mixed = merge(&[parse(&format!("{text}{foreign}"))]);
    assert_eq!(mixed, clean);
    assert_eq!(clean.component("spout").unwrap().total.complete_us.p50, 2);
}

/// A page with every family: links, tasks, and samples in every histogram.
fn full_page(buckets: Buckets) -> String {
    let b = buckets_of(&[2, 90, 4_000, 250_000, 3_000_000]);
    let stats = Stats {
        emitted: 5,
        busy_ns: 1_500_000_001,
        backpressure_ns: 7,
        complete_us: b.percentiles(),
        complete_buckets: b.clone(),
        execute_buckets: b.clone(),
        process_buckets: b,
        streams: two_streams(),
        ..Stats::default()
    };
    page_with("w0", vec![component("c", "bolt", 1, stats)], buckets)
}

/// A bolt's per-stream figures: two output streams, two inputs.
fn two_streams() -> squall_engine::StreamStats {
    use squall_engine::{InputStats, OutputStats};
    let out = |stream: &str, emitted| OutputStats {
        stream: stream.into(),
        emitted,
        transferred: 2 * emitted,
    };
    let input = |stream: &str, executed| InputStats {
        component: "p\"x".into(),
        stream: stream.into(),
        executed,
        acked: executed - 1,
        failed: 1,
        execute_count: 2,
        execute_sum_us: 1_234_567,
        process_count: 1,
        process_sum_us: 89,
    };
    squall_engine::StreamStats {
        outputs: vec![out("default", 5), out("errors", 3)],
        inputs: vec![input("default", 9), input("errors", 4)],
    }
}

#[test]
fn per_stream_figures_read_back_and_add_up_across_workers() {
    let text = full_page(Buckets::Fine);
    check_well_formed(&text);
    let page = parse(&text);
    let merged = merge(&[page.clone(), page]);
    let c = merged.component("c").unwrap();
    let mut want = two_streams();
    want.add(&two_streams());
    assert_eq!(c.total.streams, want);
    assert_eq!(c.total.streams.inputs[0].execute_sum_us, 2 * 1_234_567);
}

#[test]
fn pages_keep_prometheus_naming_conventions() {
    for buckets in [Buckets::Standard, Buckets::Fine] {
        let text = full_page(buckets);
        check_well_formed(&text);
        let mut kinds = BTreeMap::new();
        let mut helps = BTreeSet::new();
        for line in text.lines().filter(|l| l.starts_with('#')) {
            let words: Vec<&str> = line.splitn(4, ' ').collect();
            if words[1] == "TYPE" {
                kinds.insert(words[2].to_owned(), words[3].to_owned());
            } else {
                helps.insert(words[2].to_owned());
            }
        }
        for (name, kind) in &kinds {
            assert!(helps.contains(name), "{name} has no HELP");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
            for unit in ["micro", "milli", "nano", "_us", "_ms", "_ns"] {
                assert!(!name.contains(unit), "{name}: not a base unit");
            }
            assert_ne!(kind, "summary", "{name}: summaries do not add up across workers");
        }
    }
    // The standard page is what Prometheus stores: under 20 buckets a series, +Inf included.
    let text = full_page(Buckets::Standard);
    let samples = parse(&text);
    let bucket_lines = samples
        .iter()
        .filter(|(n, _, _)| n == "squall_complete_latency_seconds_bucket")
        .count();
    assert_eq!(bucket_lines, standard_bounds().len() + 1);
    assert!(bucket_lines <= 20, "{bucket_lines}");
    let busy = samples
        .iter()
        .find(|(n, _, _)| n == "squall_busy_seconds_total")
        .unwrap();
    assert_eq!(busy.2, 1.500000001);
    let merged = merge(&[samples]);
    let c = merged.component("c").unwrap();
    assert_eq!((c.total.busy_ns, c.total.backpressure_ns), (1_500_000_001, 7));
}

#[test]
fn standard_bounds_are_two_a_decade_from_one_microsecond() {
    let engine = latency_bucket_bounds();
    let standard = standard_bounds();
    assert!(standard.iter().all(|(i, b)| engine[*i] == *b), "a subset");
    assert!(standard.windows(2).all(|w| w[0].0 < w[1].0), "rising");
    assert_eq!(standard.last().map(|b| b.1), engine.last().copied(), "same range");
    assert_eq!(standard.len(), 18);
    for (k, (_, b)) in standard.iter().take(17).enumerate() {
        let want = 10f64.powf(k as f64 / 2.0);
        let off = (*b as f64 / want).ln().abs();
        // Half an engine bucket (2^(1/16)) plus the rounding of the smallest ones.
        assert!(
            off <= (2f64.ln() / 16.0).max((3.5f64 / 3.16).ln()),
            "{b} for {want}"
        );
    }
}

#[test]
fn standard_pages_merge_to_the_bucket_of_the_true_quantile() {
    let samples: Vec<u64> = (0..1_000).map(|i| 400 + i % 300).collect();
    let pages = [
        parse(&page_with(
            "w0",
            vec![component("s", "spout", 1, spout_stats(&samples))],
            Buckets::Standard,
        )),
        parse(&page_with(
            "w1",
            vec![component("s", "spout", 2, spout_stats(&samples))],
            Buckets::Standard,
        )),
    ];
    let got = merge(&pages).component("s").unwrap().total.complete_us;
    assert_eq!(got.count, 2_000);
    assert_eq!(got.max, 699);
    // 400..700 µs lies in one standard bucket, (~320, ~1000]: p50 is its middle, capped
    // at the maximum.
    let (lo, hi) = standard_bounds()
        .windows(2)
        .map(|w| (w[0].1, w[1].1))
        .find(|(_, hi)| *hi >= 700)
        .unwrap();
    assert!(lo < 400, "{lo}");
    assert!(
        got.p50 > lo && got.p50 <= hi.min(699),
        "{} not in {lo}..{hi}",
        got.p50
    );
}

fn spout_stats(samples: &[u64]) -> Stats {
    let b = buckets_of(samples);
    Stats {
        emitted: samples.len() as u64,
        complete_us: b.percentiles(),
        complete_buckets: b,
        ..Stats::default()
    }
}

#[test]
fn the_query_string_picks_the_buckets() {
    assert_eq!(Buckets::of_query(""), Buckets::Standard);
    assert_eq!(Buckets::of_query("x=1"), Buckets::Standard);
    assert_eq!(Buckets::of_query("x=1&buckets=fine"), Buckets::Fine);
    assert_eq!(
        FINE_PATH.split_once('?').map(|q| Buckets::of_query(q.1)),
        Some(Buckets::Fine)
    );
}

#[test]
fn component_gauges_are_families_of_their_own_with_their_labels() {
    let mut c = component("kafka", "spout", 1, Stats::default());
    c.gauges.insert(
        squall_engine::gauge_series("kafka_consumer_lag", &[("topic", "edits"), ("partition", "0")]),
        42,
    );
    c.gauges.insert("Bad-Name".into(), 1);
    let text = page("w0", vec![c]);
    assert!(text.contains("# TYPE squall_kafka_consumer_lag gauge"), "{text}");
    assert!(
        text.contains(
            "squall_kafka_consumer_lag{topology=\"t\",worker=\"w0\",component=\"kafka\",role=\"spout\",topic=\"edits\",partition=\"0\"} 42"
        ),
        "{text}"
    );
    assert!(!text.contains("Bad-Name"));
    // The merging reader reads them back under their series keys (labels sorted).
    let merged = merge(&[parse(&text)]);
    assert_eq!(merged.components.len(), 1);
    assert_eq!(
        merged.components[0].gauges,
        BTreeMap::from([(
            squall_engine::gauge_series("kafka_consumer_lag", &[("partition", "0"), ("topic", "edits")]),
            42
        )])
    );
}
