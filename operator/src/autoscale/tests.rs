#![allow(clippy::unwrap_used)]

use squall_autoscaler::Reason;
use squall_model::TopologyManifest;

use super::*;

fn topology(autoscaling: &str) -> Topology {
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: t}}
spec:
  workers: 1
  spouts: [{{name: s, component: sequence}}]
  bolts:
    - {{name: costly, component: identity, inputs: [{{from: s}}]}}
    - {{name: capped, component: "null", tasks: 4, inputs: [{{from: costly}}]}}
  autoscaling: {autoscaling}
"#
    );
    let m = TopologyManifest::from_yaml(&yaml, "t").unwrap();
    Topology::new("t", m.spec)
}

fn rec(current: u32, recommended: u32) -> Recommendation {
    Recommendation {
        current,
        recommended,
        wanted: recommended,
        utilization: Some(1.5),
        true_rate: Some(200.0),
        target_rate: 450.0,
        reason: Reason::Overloaded,
        memory: Memory {
            last_change: Some(1_000),
            scale_down_since: None,
        },
    }
}

#[test]
fn settings_take_the_spec_with_overrides_and_task_counts() {
    let t = topology("{enabled: true, maxParallelism: 8, components: [{name: costly, minParallelism: 2}]}");
    let s = settings(&t.spec, t.spec.autoscaling.as_ref().unwrap());
    assert_eq!(s.bounds_of("costly"), Bounds { min: 2, max: 8 });
    assert_eq!(
        s.bounds_of("capped"),
        Bounds { min: 1, max: 4 },
        "never more executors than tasks"
    );
    assert_eq!((s.stabilization_ms, s.scale_down_delay_ms), (300_000, 3_600_000));
}

#[test]
fn the_patch_tests_name_and_parallelism_and_adds_workers_past_the_bound() {
    let t = topology("{enabled: true, maxWorkers: 3, maxExecutorsPerWorker: 4}");
    let a = t.spec.autoscaling.clone().unwrap();
    let recs = BTreeMap::from([("costly".to_owned(), rec(1, 6)), ("capped".to_owned(), rec(1, 1))]);
    let (ops, spec) = patch(&t, &a, &recs);
    assert_eq!(
        ops,
        vec![
            json!({"op": "test", "path": "/spec/bolts/0/name", "value": "costly"}),
            json!({"op": "test", "path": "/spec/bolts/0/parallelism", "value": 1}),
            json!({"op": "replace", "path": "/spec/bolts/0/parallelism", "value": 6}),
            json!({"op": "test", "path": "/spec/workers", "value": 1}),
            // 8 executors at most 4 a worker.
            json!({"op": "replace", "path": "/spec/workers", "value": 2}),
        ]
    );
    assert_eq!(spec.bolts[0].parallelism, 6);
    let _: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
}

#[test]
fn a_spec_changed_by_its_user_restarts_the_stabilization_and_clears_applied() {
    let mut t = topology("{enabled: true}");
    t.spec.bolts[0].parallelism = 5;
    let previous = AutoscalerStatus {
        components: vec![
            ComponentAutoscalerStatus {
                name: "costly".into(),
                applied: Some(3),
                last_change: Some("1970-01-01T00:00:01Z".into()),
                ..Default::default()
            },
            ComponentAutoscalerStatus {
                name: "capped".into(),
                applied: Some(1),
                scale_down_since: Some("1970-01-01T00:00:02Z".into()),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let (memory, by_user) = memories(&t.spec, Some(&previous), 9_000);
    assert_eq!(by_user, vec!["costly".to_owned()]);
    assert_eq!(memory["costly"].last_change, Some(9_000));
    assert_eq!(memory["capped"].scale_down_since, Some(2_000));
    let recs = BTreeMap::from([("costly".to_owned(), rec(5, 5)), ("capped".to_owned(), rec(1, 2))]);
    let e = entries(&recs, Some(&previous), &memory, true, &by_user);
    assert_eq!(
        (e[0].name.as_str(), e[0].applied, e[0].last_decision.as_str()),
        ("capped", Some(2), "ScaleUp")
    );
    assert_eq!(
        (e[1].name.as_str(), e[1].applied, e[1].last_decision.as_str()),
        ("costly", None, "Hold")
    );
    assert_eq!(e[0].utilization_percent, Some(150));
    assert_eq!(e[0].last_change.as_deref(), Some("1970-01-01T00:00:01Z"));
    // Metrics only: a recommendation changes nothing, so the memory stays.
    let e = entries(&recs, Some(&previous), &memory, false, &by_user);
    assert_eq!(e[0].last_decision, "Recommended");
    assert_eq!(e[0].scale_down_since.as_deref(), Some("1970-01-01T00:00:02Z"));
}

#[test]
fn a_recommendation_reads_with_its_figures() {
    assert_eq!(
        describe("costly", &rec(1, 3)),
        "costly: parallelism 1 -> 3: utilization 150% at the target rate of 450 tuples/s, true rate 200 tuples/s per executor (utilization at the target rate above the boundary)"
    );
}

#[test]
fn the_last_decided_status_outlives_a_stale_cache_until_forgotten() {
    let w = Windows::default();
    assert_eq!(w.last("ns/t"), None);
    let s = AutoscalerStatus {
        rebalances: 2,
        ..Default::default()
    };
    w.remember("ns/t", Some(&s));
    w.remember("ns/t", None);
    assert_eq!(w.last("ns/t"), Some(s));
    w.forget("ns/t");
    assert_eq!(w.last("ns/t"), None);
}
