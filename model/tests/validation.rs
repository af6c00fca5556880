//! Validation messages: what a user sees for each kind of mistake, with the path of the
//! field at fault. The wording is part of the user interface, so it is pinned here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use squall_model::{
    validate, Catalog, Config, FieldBound, Identity, IndexLimit, KindInfo, Problem, Role, StreamSpec,
    TopologyManifest, ValidationErrors,
};

/// A small catalog of its own, so these tests do not depend on the built-in components.
struct TestCatalog;

impl Catalog for TestCatalog {
    fn describe(&self, kind: &str, config: &Config) -> Option<Result<KindInfo, String>> {
        // `index: N` on `parse` adds an `index` field below N; `limit: N` on `exact` needs
        // it, below N (as json-keys' index and redis-counter's tuples_per_record).
        let number = |key: &str| config.get(key).and_then(serde_json::Value::as_u64);
        let info = |role, outputs| Some(Ok(KindInfo::new(role, outputs)));
        let with = |role, fields: &[&str], identity| {
            Some(Ok(KindInfo {
                identity,
                ..KindInfo::new(Some(role), vec![StreamSpec::new("default", fields)])
            }))
        };
        match kind {
            // A spout giving stable identities (as kafka in atLeastOnce), a bolt carrying
            // them, and a sink needing them (as redis-counter with exactly_once).
            "records" => with(
                Role::Spout,
                &["part", "offset", "floor", "value"],
                Identity::Gives,
            ),
            "parse" => match number("index") {
                None => with(Role::Bolt, &["key", "part", "offset", "floor"], Identity::None),
                Some(n) => Some(Ok(KindInfo {
                    bounds: vec![FieldBound {
                        stream: "default".into(),
                        field: "index".into(),
                        limit: n,
                    }],
                    ..KindInfo::new(
                        Some(Role::Bolt),
                        vec![StreamSpec::new(
                            "default",
                            &["key", "part", "offset", "floor", "index"],
                        )],
                    )
                })),
            },
            "exact" => {
                let mut fields = vec![
                    ("source[0]".into(), "part".into()),
                    ("offset".into(), "offset".into()),
                    ("floor".into(), "floor".into()),
                ];
                let limit = number("limit").map(|limit| {
                    fields.push(("index".into(), "index".into()));
                    IndexLimit {
                        field: "index".into(),
                        setting: "tuples_per_record".into(),
                        limit,
                    }
                });
                Some(Ok(KindInfo {
                    identity: Identity::Needs {
                        key: "exactly_once".into(),
                        fields,
                        limit,
                    },
                    ..KindInfo::new(Some(Role::Bolt), vec![])
                }))
            }
            "lines" => info(Some(Role::Spout), vec![StreamSpec::new("default", &["line"])]),
            "split" => info(Some(Role::Bolt), vec![StreamSpec::new("default", &["word"])]),
            "sink" => info(Some(Role::Bolt), vec![]),
            "picky" => Some(Err("config key \"x\" is required".to_owned())),
            "shell" => info(None, vec![]),
            _ => None,
        }
    }

    fn kinds(&self) -> Vec<String> {
        [
            "exact", "lines", "parse", "picky", "records", "shell", "sink", "split",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

const HEADER: &str = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata:\n  name: t\n";

fn problems(spec: &str) -> Vec<Problem> {
    let text = format!("{HEADER}spec:\n{spec}");
    let manifest = TopologyManifest::from_yaml(&text, "test.yaml").expect("manifest parses");
    match validate(&manifest, &TestCatalog) {
        Ok(_) => panic!("expected validation problems for:\n{spec}"),
        Err(ValidationErrors(p)) => p,
    }
}

fn lines(spec: &str) -> Vec<String> {
    problems(spec).iter().map(|p| p.to_string()).collect()
}

fn assert_has(spec: &str, expected: &str) {
    let got = lines(spec);
    assert!(
        got.iter().any(|l| l == expected),
        "expected problem\n  {expected}\ngot\n  {}",
        got.join("\n  ")
    );
}

#[test]
fn a_good_topology_validates() {
    let text = format!(
        "{HEADER}spec:\n  spouts:\n    - {{name: src, component: lines}}\n  bolts:\n    - name: words\n      component: split\n      parallelism: 2\n      inputs: [{{from: src}}]\n"
    );
    let manifest = TopologyManifest::from_yaml(&text, "t.yaml").unwrap();
    let plan = validate(&manifest, &TestCatalog).unwrap();
    assert_eq!(plan.component("words").unwrap().tasks.len(), 2);
}

#[test]
fn unknown_kind_lists_the_known_kinds() {
    assert_has(
        "  spouts:\n    - {name: src, component: lnes}\n",
        "spec.spouts[0].component: unknown component kind \"lnes\"; known kinds: exact, lines, parse, picky, records, shell, sink, split",
    );
}

#[test]
fn unknown_input_component_lists_the_components() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines}\n  bolts:\n    - {name: w, component: split, inputs: [{from: sorce}]}\n",
        "spec.bolts[0].inputs[0].from: unknown component \"sorce\"; components: src, w",
    );
}

#[test]
fn unknown_stream_lists_the_declared_streams() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines}\n  bolts:\n    - {name: w, component: split, inputs: [{from: src, stream: edits}]}\n",
        "spec.bolts[0].inputs[0].stream: component \"src\" declares no stream \"edits\"; declared: default",
    );
}

#[test]
fn undeclared_grouping_field_names_stream_and_declared_fields() {
    // The documented example, word for word: `edits` declares a `word` field and `counts`
    // mistypes it.
    let spec = "  spouts:\n    - name: edits\n      component: lines\n      outputs: [{fields: [word]}]\n  bolts:\n    - name: words\n      component: split\n      inputs: [{from: edits}]\n    - name: counts\n      component: sink\n      inputs:\n        - from: edits\n          grouping: {type: fields, fields: [wrd]}\n";
    assert_eq!(
        lines(spec),
        vec![
            "spec.bolts[1].inputs[0].grouping.fields[0]: field \"wrd\" is not declared on stream edits/default; declared: word"
        ]
    );
}

#[test]
fn fields_grouping_without_fields() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines}\n  bolts:\n    - {name: w, component: split, inputs: [{from: src, grouping: {type: fields}}]}\n",
        "spec.bolts[0].inputs[0].grouping.fields: fields grouping needs at least one field",
    );
}

#[test]
fn duplicate_names_point_at_the_first_use() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines}\n  bolts:\n    - {name: src, component: split, inputs: [{from: src}]}\n",
        "spec.bolts[0].name: duplicate component name \"src\" (first used at spec.spouts[0])",
    );
}

#[test]
fn parallelism_below_one() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines, parallelism: 0}\n",
        "spec.spouts[0].parallelism: must be at least 1, got 0",
    );
}

#[test]
fn tasks_below_parallelism() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines, parallelism: 4, tasks: 2}\n",
        "spec.spouts[0].tasks: must be at least parallelism (4), got 2",
    );
}

#[test]
fn direct_grouping_needs_a_direct_stream() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines}\n  bolts:\n    - {name: w, component: split, inputs: [{from: src, grouping: {type: direct}}]}\n",
        "spec.bolts[0].inputs[0].grouping.type: direct grouping needs a direct stream, and src/default is not declared direct",
    );
}

#[test]
fn direct_stream_needs_direct_grouping() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines, outputs: [{fields: [line], direct: true}]}\n  bolts:\n    - {name: w, component: split, inputs: [{from: src}]}\n",
        "spec.bolts[0].inputs[0].grouping.type: src/default is a direct stream and can only be consumed with direct grouping",
    );
}

#[test]
fn kind_used_in_the_wrong_role() {
    assert_has(
        "  spouts:\n    - {name: src, component: split}\n",
        "spec.spouts[0].component: \"split\" is a bolt kind and cannot be used as a spout",
    );
}

#[test]
fn config_errors_from_the_catalog_point_at_config() {
    assert_has(
        "  spouts:\n    - {name: src, component: lines}\n  bolts:\n    - {name: p, component: picky, inputs: [{from: src}]}\n",
        "spec.bolts[0].config: config key \"x\" is required",
    );
}

#[test]
fn bad_names_and_reserved_names() {
    let got =
        lines("  spouts:\n    - {name: Src, component: lines}\n    - {name: __sys, component: lines}\n");
    assert!(
        got.iter()
            .any(|l| l.starts_with("spec.spouts[0].name: \"Src\" must consist of lower-case letters")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|l| l.starts_with(
            "spec.spouts[1].name: \"__sys\": names starting with \"__\" are reserved"
        )),
        "{got:?}"
    );
}

#[test]
fn topology_level_settings() {
    let got =
        lines("  workers: 0\n  ackers: -1\n  messageTimeoutSeconds: 0\n  maxSpoutPending: 0\n  spouts: []\n");
    assert_eq!(
        got,
        vec![
            "spec.workers: must be at least 1, got 0",
            "spec.ackers: must be 0 (acking off) or more, got -1",
            "spec.messageTimeoutSeconds: must be at least 1, got 0",
            "spec.maxSpoutPending: must be between 1 and 4294967295, got 0",
            "spec.spouts: a topology needs at least one spout",
        ]
    );
}

#[test]
fn several_problems_are_reported_at_once() {
    let spec = "  spouts:\n    - {name: src, component: lines, parallelism: 0}\n  bolts:\n    - {name: w, component: splt, inputs: [{from: nowhere}]}\n    - {name: s, component: sink}\n";
    let got = problems(spec);
    let paths: Vec<&str> = got.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "spec.spouts[0].parallelism",
            "spec.bolts[0].component",
            "spec.bolts[0].inputs[0].from",
            "spec.bolts[1].inputs",
        ]
    );
    // The Display form counts them and lists one per line, as `squall validate` prints.
    let text = ValidationErrors(got).to_string();
    assert!(text.starts_with("4 problems in the topology:\n"), "{text}");
    assert_eq!(text.lines().count(), 5);
}

#[test]
fn a_broken_kind_is_reported_once_not_again_at_its_consumers() {
    let got = lines(
        "  spouts:\n    - {name: src, component: lnes}\n  bolts:\n    - {name: words, component: split, inputs: [{from: src}]}\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("spec.spouts[0].component: unknown component kind"));
}

#[test]
fn a_cycle_fed_by_a_spout_is_allowed_and_one_no_spout_feeds_is_refused() {
    let fed = format!(
        "{HEADER}spec:\n  spouts: [{{name: src, component: lines}}]\n  bolts:\n    - {{name: a, component: split, inputs: [{{from: src}}, {{from: b}}]}}\n    - {{name: b, component: split, inputs: [{{from: a}}]}}\n"
    );
    let m = TopologyManifest::from_yaml(&fed, "t").unwrap();
    assert!(validate(&m, &TestCatalog).is_ok(), "Storm allows cycles");
    assert_has(
        "  spouts: [{name: src, component: lines}]\n  bolts:\n    - {name: a, component: split, inputs: [{from: b}]}\n    - {name: b, component: split, inputs: [{from: a}]}\n    - {name: c, component: sink, inputs: [{from: src}]}\n",
        "spec.bolts[0].inputs: no spout feeds this bolt: its inputs come only from bolts that no spout reaches (a cycle); subscribe it, or a bolt of its cycle, to a spout",
    );
    // A bolt with tick tuples makes tuples of its own, so its cycle is fed.
    let ticking = format!(
        "{HEADER}spec:\n  spouts: [{{name: src, component: lines}}]\n  bolts:\n    - {{name: a, component: split, tickTupleFrequencySeconds: 1, inputs: [{{from: b}}]}}\n    - {{name: b, component: split, inputs: [{{from: a}}]}}\n"
    );
    let m = TopologyManifest::from_yaml(&ticking, "t").unwrap();
    assert!(validate(&m, &TestCatalog).is_ok());
}

#[test]
fn counts_over_their_limits_name_the_path_the_limit_and_the_setting() {
    assert_has(
        "  workers: 100000000\n  spouts: [{name: src, component: lines, parallelism: 100000000, tasks: 2000000000}]\n",
        "spec.spouts[0].parallelism: 100000000 is over the limit of 1024 executors per component (maxParallelism; raise it with --limit maxParallelism=N)",
    );
    let got = lines(
        "  workers: 100000000\n  spouts: [{name: src, component: lines, parallelism: 100000000, tasks: 2000000000}]\n",
    );
    for want in [
        "spec.workers: 100000000 is over the limit of 256 workers (maxWorkers;",
        "spec.spouts[0].tasks: 2000000000 is over the limit of 4096 tasks per component (maxTasks;",
        "spec: 2100000000 is over the limit of 4096 tasks in the topology, ackers included (maxTotalTasks;",
        "spec.ackers (one per worker when unset): 100000000 is over the limit of 1024 executors per component (maxParallelism;",
    ] {
        assert!(got.iter().any(|l| l.starts_with(want)), "no {want:?} in {got:#?}");
    }
    assert_has(
        "  messageTimeoutSeconds: 9000000000000\n  spouts: [{name: src, component: lines}]\n",
        "spec.messageTimeoutSeconds: 9000000000000 seconds is more than a day (86400)",
    );
}

#[test]
fn limits_can_be_raised_and_lowered() {
    let text = format!("{HEADER}spec:\n  spouts: [{{name: src, component: lines, parallelism: 2000}}]\n");
    let m = TopologyManifest::from_yaml(&text, "t").unwrap();
    assert!(validate(&m, &TestCatalog).is_err());
    let mut limits = squall_model::Limits::default();
    limits.set("maxParallelism=4000").unwrap();
    let plan = squall_model::validate_within(&m, &TestCatalog, &limits).unwrap();
    assert_eq!(plan.task_count(), 2001, "2000 spout tasks and one acker");
    limits.set("maxTotalTasks=100").unwrap();
    assert!(squall_model::validate_within(&m, &TestCatalog, &limits).is_err());
}

#[test]
fn a_manifest_too_large_or_too_deep_is_refused_before_it_is_parsed() {
    let mut limits = squall_model::Limits::default();
    limits.set("maxManifestBytes=100").unwrap();
    let text = format!("{HEADER}spec:\n  spouts: [{{name: src, component: lines}}]\n");
    let err = TopologyManifest::from_yaml_within(&text, "t.yaml", &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("t.yaml: a manifest of {} bytes is over the limit of 100 bytes (maxManifestBytes; raise it with --limit maxManifestBytes=N)", text.len())
    );
    // 200 KB of brackets: refused at once, naming the line.
    let deep = format!(
        "{HEADER}spec:\n  config:\n    x: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let started = std::time::Instant::now();
    let err = TopologyManifest::from_yaml(&deep, "deep.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "deep.yaml:7: nesting depth 34 is over the limit of 32 levels of nesting (maxNestingDepth;"
        ),
        "{err}"
    );
    // Not a timing assertion: only a bound far above the scan's microseconds, far below the parser's minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Within the text bound but nested in config past the limit: the exact check names the field.
    let mut nested =
        String::from("{HEADER}spec:\n  spouts:\n  - name: src\n    component: lines\n    config:\n");
    nested = nested.replace("{HEADER}", HEADER);
    for i in 0..30 {
        nested.push_str(&" ".repeat(6 + 2 * i));
        nested.push_str("k:\n");
    }
    nested.push_str(&" ".repeat(66));
    nested.push_str("v: 1\n");
    let m = TopologyManifest::from_yaml_within(&nested, "t", &{
        let mut l = squall_model::Limits::default();
        l.set("maxNestingDepth=60").unwrap();
        l
    })
    .unwrap();
    let err = validate(&m, &TestCatalog).unwrap_err().to_string();
    assert!(
        err.contains("spec.spouts[0].config: nesting depth 35 is over the limit of 32"),
        "{err}"
    );
}

#[test]
fn a_bolt_needing_identities_fed_by_spouts_giving_them_validates() {
    let text = format!(
        "{HEADER}spec:\n  spouts:\n    - {{name: kafka, component: records}}\n  bolts:\n    - {{name: parser, component: parse, inputs: [{{from: kafka}}]}}\n    - {{name: counts, component: exact, inputs: [{{from: parser}}]}}\n"
    );
    let manifest = TopologyManifest::from_yaml(&text, "t.yaml").unwrap();
    validate(&manifest, &TestCatalog).unwrap();
}

#[test]
fn a_bolt_needing_identities_names_the_spout_that_cannot_give_them() {
    // Two spouts feed the parser; one of them gives no identities (and its stream lacks
    // the fields, which the parser's declared outputs hide from the sink).
    let spec = "  spouts:\n    - {name: kafka, component: records}\n    - {name: feed, component: lines}\n  bolts:\n    - {name: parser, component: parse, inputs: [{from: kafka}, {from: feed}]}\n    - {name: counts, component: exact, inputs: [{from: parser}]}\n";
    assert_eq!(
        lines(spec),
        ["spec.bolts[1].config.exactly_once: needs stable record identities, but spout \"feed\" (spec.spouts[1], kind \"lines\") \
          feeds it (feed -> parser -> counts) and cannot give them: its replays are not promised to carry the same content under \
          the same identity, so a replay could not be told from a new record; feed it from a spout that gives them (kafka with \
          processingGuarantee atLeastOnce), or remove exactly_once"]
    );
}

#[test]
fn identity_fields_must_be_declared_on_every_input_stream() {
    // Straight from the spout that gives them: fine. From a bolt dropping them: each
    // missing field is named with its config key and the stream.
    let spec = "  spouts:\n    - {name: kafka, component: records}\n  bolts:\n    - {name: words, component: split, inputs: [{from: kafka}]}\n    - {name: counts, component: exact, inputs: [{from: kafka}, {from: words}]}\n";
    assert_eq!(
        lines(spec),
        [
            "spec.bolts[1].config.exactly_once.source[0]: identity field \"part\" is not declared on stream words/default (inputs[1]); declared: word",
            "spec.bolts[1].config.exactly_once.offset: identity field \"offset\" is not declared on stream words/default (inputs[1]); declared: word",
            "spec.bolts[1].config.exactly_once.floor: identity field \"floor\" is not declared on stream words/default (inputs[1]); declared: word",
        ]
    );
}

#[test]
fn an_index_limit_below_the_parsers_bound_is_refused_at_the_setting() {
    // Through a pass-through bolt (shell, declaring the same fields) to the parser, whose
    // index goes up to 5; the counter stores indexes below 4.
    let spec = |limit: u64| {
        format!(
            "  spouts:\n    - {{name: kafka, component: records}}\n  bolts:\n    - {{name: parser, component: parse, config: {{index: 6}}, inputs: [{{from: kafka}}]}}\n    - name: pass\n      component: shell\n      shell: {{command: cat}}\n      outputs: [{{stream: default, fields: [key, part, offset, floor, index]}}]\n      inputs: [{{from: parser}}]\n    - {{name: counts, component: exact, config: {{limit: {limit}}}, inputs: [{{from: pass}}, {{from: parser}}]}}\n"
        )
    };
    assert_eq!(
        lines(&spec(4)),
        ["spec.bolts[2].config.exactly_once.tuples_per_record: 4 is too small: component \"parser\" (spec.bolts[0], kind \"parse\") \
          gives up to 6 tuples per record (its field \"index\" on stream default goes up to 5); set tuples_per_record to at least 6"]
    );
    let text = format!("{HEADER}spec:\n{}", spec(6));
    let manifest = TopologyManifest::from_yaml(&text, "t.yaml").unwrap();
    validate(&manifest, &TestCatalog).unwrap_or_else(|e| panic!("{e}"));
    // A maker without a declared bound (the shell bolt making the index itself) is left
    // to the counter's check at run time.
    let text = format!(
        "{HEADER}spec:\n  spouts:\n    - {{name: kafka, component: records}}\n  bolts:\n    - name: own\n      component: shell\n      shell: {{command: cat}}\n      outputs: [{{stream: default, fields: [key, part, offset, floor, index]}}]\n      inputs: [{{from: kafka}}]\n    - {{name: counts, component: exact, config: {{limit: 2}}, inputs: [{{from: own}}]}}\n"
    );
    let manifest = TopologyManifest::from_yaml(&text, "t.yaml").unwrap();
    validate(&manifest, &TestCatalog).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn identities_are_checked_through_cycles_and_shared_spouts_once() {
    // A cycle between two bolts, both fed by the same spout: the walk ends, and the spout
    // is named once.
    let spec = "  spouts:\n    - {name: feed, component: lines}\n  bolts:\n    - {name: a, component: parse, inputs: [{from: feed}, {from: counts}]}\n    - name: counts\n      component: exact\n      outputs: [{stream: default, fields: [key, part, offset, floor]}]\n      inputs: [{from: a}, {from: feed, stream: default}]\n";
    let got = lines(spec);
    let refusals: Vec<&String> = got.iter().filter(|l| l.contains("cannot give them")).collect();
    assert_eq!(refusals.len(), 1, "{got:#?}");
    // Found first on the shortest way up.
    assert!(refusals[0].contains("feeds it (feed -> counts)"), "{got:#?}");
}

#[test]
fn autoscaling_settings_are_checked_with_their_paths() {
    let spec = "  spouts:\n    - {name: src, component: lines}\n  bolts:\n    - {name: words, component: split, inputs: [{from: src}]}\n  autoscaling:\n    enabled: true\n    targetUtilization: 1.5\n    targetUtilizationBoundary: -0.1\n    minParallelism: 4\n    maxParallelism: 2\n    maxWorkers: 0\n    metricsWindowSeconds: 0\n    scaleDownDelaySeconds: 90000\n    components:\n      - {name: src, maxParallelism: 3}\n      - {name: nope}\n      - {name: words, minParallelism: 0, maxParallelism: 5000}\n";
    let got = lines(spec);
    let want = [
        "spec.autoscaling.targetUtilization: must be above 0 and at most 1, got 1.5",
        "spec.autoscaling.targetUtilizationBoundary: must be at least 0 and below 1, got -0.1",
        "spec.autoscaling.maxParallelism: must be at least minParallelism (4), got 2",
        "spec.autoscaling.maxWorkers: must be at least workers (1), got 0",
        "spec.autoscaling.metricsWindowSeconds: must be at least 1, got 0",
        "spec.autoscaling.scaleDownDelaySeconds: 90000 seconds is more than a day (86400)",
        "spec.autoscaling.components[0].name: \"src\" is a spout; spouts are sized by their source",
        "spec.autoscaling.components[1].name: \"nope\" names no bolt; the bolts are words",
        "spec.autoscaling.components[2].minParallelism: must be at least 1, got 0",
    ];
    for w in want {
        assert!(
            got.iter().any(|l| l == w),
            "expected\n  {w}\ngot\n  {}",
            got.join("\n  ")
        );
    }
    assert!(
        got.iter().any(|l| l
            .starts_with("spec.autoscaling.components[2].maxParallelism: 5000 is over the limit of 1024")),
        "{got:?}"
    );
}

#[test]
fn autoscaling_defaults_follow_flink() {
    let text = format!(
        "{HEADER}spec:\n  spouts:\n    - {{name: src, component: lines}}\n  autoscaling: {{enabled: true}}\n"
    );
    let manifest = TopologyManifest::from_yaml(&text, "t.yaml").unwrap();
    let a = manifest.spec.autoscaling.clone().unwrap();
    assert_eq!(
        a,
        squall_model::AutoscalingSpec {
            enabled: true,
            ..Default::default()
        }
    );
    assert_eq!((a.target_utilization, a.target_utilization_boundary), (0.7, 0.3));
    assert_eq!(
        (
            a.metrics_window_seconds,
            a.stabilization_interval_seconds,
            a.scale_down_delay_seconds
        ),
        (900, 300, 3600)
    );
    validate(&manifest, &TestCatalog).unwrap();
}

#[test]
fn a_shell_serializer_is_json_by_default_and_a_wrong_one_names_its_path() {
    let shell = |extra: &str| {
        format!(
            "{HEADER}spec:\n  spouts:\n    - name: py\n      component: shell\n      shell: {{command: streamparse_run{extra}}}\n      outputs: [{{fields: [w]}}]\n"
        )
    };
    let plain = TopologyManifest::from_yaml(&shell(""), "t.yaml").unwrap();
    let spec = plain.spec.spouts[0].shell.clone().unwrap();
    assert_eq!(spec.serializer, squall_model::Serializer::Json);
    // The default is not written back, so manifests without the setting round-trip as they were.
    assert!(!plain.to_yaml().unwrap().contains("serializer"));
    let packed = TopologyManifest::from_yaml(&shell(", serializer: msgpack"), "t.yaml").unwrap();
    assert_eq!(
        packed.spec.spouts[0].shell.as_ref().unwrap().serializer,
        squall_model::Serializer::Msgpack
    );
    assert!(packed.to_yaml().unwrap().contains("serializer: msgpack"));
    validate(&packed, &TestCatalog).unwrap();
    // streamparse_run arguments that choose another serializer than the setting.
    let clash = TopologyManifest::from_yaml(
        &shell(", args: [--serializer, json, spouts.Words], serializer: msgpack"),
        "t.yaml",
    )
    .unwrap();
    let ValidationErrors(p) = validate(&clash, &TestCatalog).unwrap_err();
    assert_eq!(
        p.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        ["spec.spouts[0].shell.serializer: is \"msgpack\" but args choose \"json\": set serializer and drop the argument"]
    );
    let err = TopologyManifest::from_yaml(&shell(", serializer: xml"), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.spouts[0].shell.serializer: unknown variant `xml`, expected `json` or `msgpack`"),
        "{err}"
    );
}

#[test]
fn engine_settings_of_the_wrong_type_name_the_key_and_what_it_takes() {
    let spouts = "  spouts:\n    - {name: src, component: lines}\n";
    let got = lines(&format!(
        "  config:\n    squall.executor.elastic: \"false\"\n    squall.executor.threads: -1\n    squall.queue.capacity: 0\n    squall.batch.size: \"256\"\n{spouts}"
    ));
    assert_eq!(
        got,
        vec![
            "spec.config.squall.queue.capacity: must be a positive integer, got 0",
            "spec.config.squall.batch.size: must be a positive integer, got \"256\"",
            "spec.config.squall.executor.threads: must be a non-negative integer, got -1",
            "spec.config.squall.executor.elastic: must be true or false, got \"false\"",
        ]
    );
    // Good values pass: threads 0 is one per core.
    let text = format!(
        "{HEADER}spec:\n  config: {{squall.executor.elastic: false, squall.executor.threads: 0, squall.queue.capacity: 64, squall.batch.size: 8}}\n{spouts}"
    );
    let manifest = TopologyManifest::from_yaml(&text, "t.yaml").unwrap();
    assert!(validate(&manifest, &TestCatalog).is_ok());
}
