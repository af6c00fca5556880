#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// spout → parse → costly → sink, with `costly` executing `rate` tuples/s at `busy`.
fn pipeline(rate: f64, busy: f64, costly: u32, source: Option<Source>) -> (Graph, BTreeMap<String, Figures>) {
    let graph = Graph::new(
        [
            ("feed".to_owned(), Role::Spout),
            ("parse".to_owned(), Role::Bolt),
            ("costly".to_owned(), Role::Bolt),
            ("sink".to_owned(), Role::Bolt),
        ],
        vec![
            Edge {
                from: "feed".into(),
                to: "parse".into(),
                rate,
            },
            // The parser passes half of what it gets.
            Edge {
                from: "parse".into(),
                to: "costly".into(),
                rate: rate / 2.0,
            },
            Edge {
                from: "costly".into(),
                to: "sink".into(),
                rate: rate / 2.0,
            },
        ],
    );
    let light = |input: f64| Figures {
        input_rate: input,
        busy_share: 0.05,
        executors: 1,
        ..Figures::default()
    };
    let figures = BTreeMap::from([
        (
            "feed".to_owned(),
            Figures {
                emit_rate: rate,
                executors: 1,
                source,
                ..Figures::default()
            },
        ),
        ("parse".to_owned(), light(rate)),
        (
            "costly".to_owned(),
            Figures {
                input_rate: rate / 2.0,
                busy_share: busy,
                executors: costly,
                ..Figures::default()
            },
        ),
        ("sink".to_owned(), light(rate / 2.0)),
    ]);
    (graph, figures)
}

fn quick() -> Settings {
    Settings {
        stabilization_ms: 10_000,
        scale_down_delay_ms: 20_000,
        ..Settings::default()
    }
}

fn run(
    graph: &Graph,
    figures: &BTreeMap<String, Figures>,
    costly: u32,
    memory: &BTreeMap<String, Memory>,
    settings: &Settings,
    now: Millis,
) -> BTreeMap<String, Recommendation> {
    let parallelism = BTreeMap::from([
        ("feed".to_owned(), 1),
        ("parse".to_owned(), 1),
        ("costly".to_owned(), costly),
        ("sink".to_owned(), 1),
    ]);
    evaluate(&Input {
        graph,
        figures,
        parallelism: &parallelism,
        memory,
        settings,
        now,
    })
}

#[test]
fn a_saturated_bolt_behind_a_saturated_source_is_sized_past_its_bottleneck() {
    // 200/s reach the costly bolt, busy all the time: 200/s per executor. The feed's
    // backlog is at its bound, so the source sends more than the 400/s read.
    let source = Source {
        backlog: 1000.0,
        growth: 0.0,
        saturated: true,
    };
    let (graph, figures) = pipeline(400.0, 1.0, 1, Some(source));
    let recs = run(&graph, &figures, 1, &BTreeMap::new(), &quick(), 0);
    let costly = &recs["costly"];
    assert_eq!(costly.true_rate, Some(200.0));
    // Source at least 400 / 0.7 = 571/s, half of it here: 286/s over 200 × 0.7 → 3.
    assert_eq!((costly.current, costly.recommended), (1, 3), "{costly:?}");
    assert_eq!(costly.reason, Reason::Overloaded);
    assert!(costly.utilization.unwrap() > 1.0);
    assert_eq!(costly.memory.last_change, Some(0));
    assert!(!recs["parse"].changes(), "{:?}", recs["parse"]);
    assert_eq!(recs["feed"].reason, Reason::Spout);
}

#[test]
fn without_a_backlog_the_read_rate_is_the_target_and_the_boundary_holds() {
    // 3 executors at 2/3 busy for 400/s: utilization 0.67, inside 0.7 ± 0.3.
    let (graph, figures) = pipeline(800.0, 2.0 / 3.0, 3, None);
    let recs = run(&graph, &figures, 3, &BTreeMap::new(), &quick(), 0);
    assert_eq!(recs["costly"].reason, Reason::WithinBoundary);
    assert!(!recs["costly"].changes());
}

#[test]
fn a_scale_down_waits_for_its_delay_and_a_returning_load_cancels_it() {
    let settings = quick();
    // 3 executors 1/6 busy for 100/s: 200/s each, utilization 0.17 → 1 executor.
    let (graph, figures) = pipeline(200.0, 1.0 / 6.0, 3, None);
    let mut memory = BTreeMap::new();
    let recs = run(&graph, &figures, 3, &memory, &settings, 1_000);
    assert_eq!(recs["costly"].wanted, 1);
    assert!(!recs["costly"].changes());
    assert_eq!(
        recs["costly"].reason,
        Reason::ScaleDownDelayed { remaining_ms: 20_000 }
    );
    memory.insert("costly".to_owned(), recs["costly"].memory);
    let recs = run(&graph, &figures, 3, &memory, &settings, 15_000);
    assert!(!recs["costly"].changes(), "{:?}", recs["costly"]);
    memory.insert("costly".to_owned(), recs["costly"].memory);
    let recs = run(&graph, &figures, 3, &memory, &settings, 21_000);
    assert_eq!(recs["costly"].recommended, 1);
    // The load returning in between drops the pending scale-down.
    let (graph, busy) = pipeline(800.0, 2.0 / 3.0, 3, None);
    let recs = run(&graph, &busy, 3, &memory, &settings, 16_000);
    assert_eq!(recs["costly"].memory.scale_down_since, None);
}

#[test]
fn targets_follow_the_edges_ratios_from_the_source() {
    let settings = Settings::default();
    let source = Source {
        backlog: 0.0,
        growth: 100.0,
        saturated: false,
    };
    let (graph, figures) = pipeline(400.0, 1.0, 1, Some(source));
    let t = rates::targets(&graph, &figures, &settings);
    assert_eq!(t["feed"], 500.0);
    assert_eq!(t["parse"], 500.0);
    assert_eq!(t["costly"], 250.0);
    assert_eq!(t["sink"], 250.0);
}

#[test]
fn workers_follow_executors_per_worker_up_to_the_cap() {
    assert_eq!(workers_for(8, 2, 4, 10), 2);
    assert_eq!(workers_for(9, 2, 4, 10), 3);
    assert_eq!(workers_for(100, 2, 4, 5), 5);
    assert_eq!(workers_for(3, 4, 4, 2), 4, "never fewer than now");
}

#[test]
fn reasons_read_as_sentences() {
    assert_eq!(
        Reason::ScaleDownDelayed { remaining_ms: 1_500 }.to_string(),
        "scale-down recommended; applied in 2 s unless the load returns"
    );
}

fn figures_strategy() -> impl Strategy<Value = (f64, f64, u32, f64)> {
    // (rate into the costly bolt, busy share, its executors, source factor)
    (1.0f64..5_000.0, 0.0f64..1.0, 1u32..40, 0.5f64..4.0)
}

fn settings_strategy() -> impl Strategy<Value = Settings> {
    (
        0.2f64..1.0,
        0.0f64..0.5,
        1u32..5,
        0u32..30,
        0u64..50_000,
        0u64..100_000,
    )
        .prop_map(|(target, boundary, min, span, stab, delay)| Settings {
            target_utilization: target,
            boundary,
            bounds: Bounds { min, max: min + span },
            stabilization_ms: stab,
            scale_down_delay_ms: delay,
            ..Settings::default()
        })
}

proptest! {
    #[test]
    fn a_change_is_never_outside_the_bounds(
        (rate, busy, costly, _) in figures_strategy(),
        settings in settings_strategy(),
    ) {
        let (graph, figures) = pipeline(rate * 2.0, busy, costly, None);
        let recs = run(&graph, &figures, costly, &BTreeMap::new(), &settings, 0);
        for r in recs.values().filter(|r| r.changes()) {
            prop_assert!(r.recommended >= settings.bounds.min && r.recommended <= settings.bounds.max, "{r:?}");
        }
        prop_assert!(recs["costly"].wanted >= settings.bounds.min && recs["costly"].wanted <= settings.bounds.max);
    }

    #[test]
    fn nothing_changes_inside_the_boundary(
        (rate, busy, costly, _) in figures_strategy(),
        settings in settings_strategy(),
    ) {
        let (graph, figures) = pipeline(rate * 2.0, busy, costly, None);
        let recs = run(&graph, &figures, costly, &BTreeMap::new(), &settings, 0);
        let r = &recs["costly"];
        let inside = r.utilization.is_some_and(|u| (u - settings.target_utilization).abs() <= settings.boundary);
        if inside && settings.bounds.clamp(costly) == costly {
            prop_assert!(!r.changes(), "{r:?}");
            prop_assert_eq!(r.wanted, costly);
        }
    }

    /// Over a run of evaluations with changing load, each applied as recommended: no two
    /// changes of a component within the stabilization interval, and every scale-down
    /// recommended without a break for the scale-down delay before it.
    #[test]
    fn changes_are_paced_by_stabilization_and_scale_down_delay(
        loads in prop::collection::vec(figures_strategy(), 1..40),
        steps in prop::collection::vec(100u64..20_000, 40),
        settings in settings_strategy(),
    ) {
        let mut memory = BTreeMap::new();
        let mut costly = settings.bounds.min;
        let mut now = 0;
        let mut last_change: Option<Millis> = None;
        let mut down_since: Option<Millis> = None;
        for ((rate, busy, _, factor), step) in loads.into_iter().zip(steps) {
            now += step;
            let source = Source { backlog: 0.0, growth: 0.0, saturated: factor > 3.0 };
            let (graph, figures) = pipeline(rate * 2.0, busy, costly, Some(source));
            let recs = run(&graph, &figures, costly, &memory, &settings, now);
            let r = &recs["costly"];
            let wants_down = r.wanted < costly;
            if r.changes() {
                if let Some(t) = last_change {
                    prop_assert!(now - t >= settings.stabilization_ms, "changed at {t} and {now}");
                }
                if r.recommended < costly && settings.scale_down_delay_ms > 0 {
                    let since = down_since.unwrap_or(now);
                    prop_assert!(now - since >= settings.scale_down_delay_ms, "down at {now}, wanted since {since}");
                }
                last_change = Some(now);
                down_since = None;
                costly = r.recommended;
            } else if wants_down {
                down_since = down_since.or(Some(now));
            } else {
                down_since = None;
            }
            // A scale-down wanted while stabilizing starts no delay.
            if r.memory.scale_down_since.is_none() {
                down_since = None;
            }
            memory.insert("costly".to_owned(), r.memory);
        }
    }
}
