//! The windows' arithmetic against a model: counters that grow linearly with uptime give
//! every window's figures, rates and capacity in closed form, whatever samples the
//! history kept; counters that grow at random are checked against the model's own
//! difference over the span the window reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use squall_ui::window::History;
use squall_ui::{views, Window};
use support::{word_count, SPLIT_BUSY, SPOUT_RATE, WORDS};

const RESOLUTION: u32 = 60;

fn bolt<'a>(page: &'a squall_ui::api::TopologyPage, id: &str) -> &'a squall_ui::api::BoltRow {
    page.bolts.iter().find(|b| b.bolt_id == id).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Checks every window of the history whose newest sample is at `now` seconds, given the
/// largest gap between two consecutive samples; the history began at `start`.
fn check_linear(h: &History, start: u64, now: u64, max_gap: u64) -> Result<(), TestCaseError> {
    for w in Window::ALL {
        let span = h.span(w);
        // A window longer than the topology's age starts at its start; otherwise it can
        // reach back no further than the first sample.
        let length = match w.length().map(|l| l.as_secs()) {
            Some(l) if l < now => l.min(now - start),
            _ => now,
        };
        let step = w.length().map_or(0, |l| l.as_secs() / u64::from(RESOLUTION));
        // The window starts at a kept sample: at most a step plus a gap after its start.
        prop_assert!(
            span.seconds <= length as f64,
            "{w:?}: {} > {length}",
            span.seconds
        );
        prop_assert!(
            span.seconds + (step + max_gap) as f64 >= length as f64,
            "{w:?}: {} covers too little of {length}",
            span.seconds
        );
        let page = views::topology_page(h, w, false);
        let secs = span.seconds;
        let stats = &page
            .topology_stats
            .iter()
            .find(|s| s.window == w.param())
            .unwrap();
        prop_assert_eq!(stats.seconds, secs);
        prop_assert_eq!(page.spouts[0].emitted as f64, SPOUT_RATE as f64 * secs);
        prop_assert_eq!(page.spouts[0].acked as f64, SPOUT_RATE as f64 * secs);
        let split = bolt(&page, "split");
        prop_assert_eq!(split.executed as f64, SPOUT_RATE as f64 * secs);
        prop_assert_eq!(split.emitted as f64, (SPOUT_RATE * WORDS) as f64 * secs);
        if secs > 0.0 {
            prop_assert!(close(split.rates.executed, SPOUT_RATE as f64));
            prop_assert!(close(page.spouts[0].rates.emitted, SPOUT_RATE as f64));
            prop_assert_eq!(&page.spouts[0].complete_latency, "0.800");
            prop_assert_eq!(&split.execute_latency, "0.080");
            prop_assert_eq!(&split.backpressure, "0.100");
        }
        // Capacity is over the last 10 minutes whatever the window, the busiest
        // executor's: busy seconds per second.
        if h.span(Window::TenMinutes).seconds > 0.0 {
            prop_assert_eq!(&split.capacity, &format!("{:.3}", SPLIT_BUSY[1]));
            prop_assert_eq!(&bolt(&page, "count").capacity, "0.200");
        }
    }
    Ok(())
}

/// Samples held: at most each bounded window's resolution plus two, and the newest.
fn bound() -> usize {
    3 * (RESOLUTION as usize + 2) + 1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn linear_counters_give_exact_windows(
        start in 0u64..2000,
        gaps in prop::collection::vec(1u64..900, 1..400),
    ) {
        let mut h = History::new(word_count(start), RESOLUTION);
        let mut now = start;
        let max_gap = gaps.iter().copied().max().unwrap_or(0);
        for g in gaps {
            now += g;
            h.push(word_count(now));
            check_linear(&h, start, now, max_gap)?;
            prop_assert!(h.len() <= bound(), "{} samples held", h.len());
        }
    }

    #[test]
    fn random_counters_are_the_difference_over_the_reported_span(
        steps in prop::collection::vec((1u64..600, 0u64..10_000), 1..300),
    ) {
        // The model: the cumulative count at every uptime sampled.
        let mut model = BTreeMap::from([(0u64, 0u64)]);
        let sample = |t: u64, total: u64| {
            let mut s = word_count(t);
            s.components[0].totals.emitted = total;
            s
        };
        let mut h = History::new(sample(0, 0), RESOLUTION);
        let (mut now, mut total) = (0, 0);
        for (gap, add) in steps {
            now += gap;
            total += add;
            model.insert(now, total);
            h.push(sample(now, total));
            for w in Window::ALL {
                let span = h.span(w);
                let from = now - span.seconds as u64;
                let want = total - model[&from];
                let page = views::topology_page(&h, w, false);
                prop_assert_eq!(page.spouts[0].emitted, want, "{:?} from {} to {}", w, from, now);
            }
        }
    }
}

#[test]
fn a_long_history_stays_bounded() {
    let mut h = History::new(word_count(0), RESOLUTION);
    // Two days sampled every second.
    for t in 1..=2 * 86_400 {
        h.push(word_count(t));
    }
    assert!(h.len() <= bound(), "{} samples held", h.len());
    check_linear(&h, 0, 2 * 86_400, 1).unwrap();
}

#[test]
fn a_restart_starts_the_history_over() {
    let mut h = History::new(word_count(5000), RESOLUTION);
    h.push(word_count(5600));
    h.push(word_count(30));
    let page = views::topology_page(&h, Window::TenMinutes, false);
    assert_eq!(page.spouts[0].emitted, SPOUT_RATE * 30);
    assert_eq!(h.span(Window::TenMinutes).seconds, 30.0);
}

#[test]
fn a_history_begun_late_starts_its_windows_at_the_first_sample() {
    // The API started when the topology had run for 2000 s: the 10-minute window holds
    // what was counted since the first sample, over the time since then.
    let mut h = History::new(word_count(2000), RESOLUTION);
    h.push(word_count(2010));
    let span = h.span(Window::TenMinutes);
    assert_eq!(span.seconds, 10.0);
    let page = views::topology_page(&h, Window::TenMinutes, false);
    assert_eq!(page.spouts[0].emitted, SPOUT_RATE * 10);
    // All time is every counter since the topology started.
    let page = views::topology_page(&h, Window::AllTime, false);
    assert_eq!(page.spouts[0].emitted, SPOUT_RATE * 2010);
    let _ = Duration::ZERO;
}

#[test]
fn capacity_without_busy_time_is_storms_formula() {
    // 600 executed at 80 µs over 600 s on one executor: 600 * 0.08 ms / 600 000 ms.
    let mut h = History::new(word_count(0), RESOLUTION);
    h.push(word_count(600));
    let c = h.newest().component("count").unwrap().clone();
    let mut no_busy = c.clone();
    no_busy.totals.busy = None;
    let d = &no_busy.totals;
    let want = d.execute_latency.mean_ms() * d.executed as f64 / (600.0 * 1000.0);
    assert!(close(views::capacity(d, 1, 600.0), want));
    assert!(close(views::component_capacity(&h, &c), 0.2));
}
