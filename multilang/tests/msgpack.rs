//! `serializer: msgpack` where JSON has no counterpart: values JSON cannot carry, a Python
//! exception reported through msgpack, and a hand-written msgpack child that breaks the
//! bounds on purpose (`fake_msgpack_child.py`). The streamparse scenarios both serializers
//! share run under msgpack in `python.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{
    faulty_bolt, last_error, manifest, numbers, pipeline, records, scratch, shell, start, wait_acked,
};

#[test]
fn values_of_every_type_cross_msgpack_both_ways() {
    let dir = scratch("types");
    let yaml = manifest(
        "types",
        &dir,
        "",
        &format!(
            r#"
  spouts:
    - name: src
      component: shell
      shell: {spout}
      outputs: [{{fields: [a, b, c, d, e, f, g, h]}}]
  bolts:
    - name: types
      component: shell
      shell: {types}
      outputs: [{{fields: [names, text]}}]
      inputs: [{{from: src}}]
    - name: record
      component: shell
      shell: {record}
      inputs: [{{from: types}}]
"#,
            spout = shell("TypesSpout", "msgpack"),
            types = shell("TypesBolt", "msgpack"),
            record = shell("RecordingBolt", "json"),
        ),
    );
    let topo = start(&yaml);
    wait_acked(&topo, "src", 1, Duration::from_secs(60));
    topo.shutdown();
    let recs = records(&dir);
    assert_eq!(recs.len(), 1, "{recs:?}");
    // What the bolt's Python saw after child → host → child: bytes stayed bytes, and the
    // int key became text (the engine's maps have text keys, ordered).
    assert_eq!(
        recs[0].values,
        [
            serde_json::json!("NoneType,bool,int,float,str,list,dict,bytes"),
            serde_json::json!("[None, True, -3, 2.5, 'é', [1, [2]], {'2': 'two', 'k': 1}, b'\\x00\\xff']"),
        ]
    );
}

#[test]
fn a_python_exception_in_a_msgpack_bolt_is_reported_and_its_inputs_replayed() {
    let dir = scratch("raise");
    let yaml = pipeline("raise", &dir, 200, r#"{"test.raise_at": 50}"#, ["msgpack"; 3])
        .replace(&shell("FlakyBolt", "msgpack"), &shell("RaisingBolt", "msgpack"));
    let topo = start(&yaml);
    let m = wait_acked(&topo, "numbers", 200, Duration::from_secs(90));
    topo.shutdown();
    assert!(dir.join("marker").exists(), "the bolt raised");
    let bolt = m.component("flaky").unwrap();
    assert_eq!(bolt.custom.get("child_restarts"), Some(&1), "{bolt:?}");
    let spout = m.component("numbers").unwrap();
    assert!(
        spout.total.failed >= 1,
        "the raising child's inputs were failed: {spout:?}"
    );
    assert_eq!(spout.total.emitted, 200 + spout.total.failed, "and replayed");
    assert_eq!(numbers(&records(&dir)), (0..200).collect(), "nothing lost");
    // pystorm's `error` command arrived as the component's error (the restart's error
    // follows it, so look at both counts rather than the last one).
    assert!(bolt.total.errors >= 2, "{bolt:?}");
}

#[test]
fn malformed_msgpack_restarts_the_child_with_a_clear_error() {
    let e = last_error(&faulty_bolt("msgpack", "malformed", ""));
    assert!(
        e.contains("shell child of \"bad\" task ")
            && e.contains("restarted: protocol error: invalid msgpack: byte 0xc1 is never used in msgpack"),
        "{e}"
    );
}

#[test]
fn a_msgpack_message_nested_too_deep_names_the_setting_that_raises_the_limit() {
    let e = last_error(&faulty_bolt("msgpack", "deep", ""));
    assert!(
        e.contains("shell child of \"bad\" task ")
            && e.contains(
                "protocol error: message nests deeper than 128 levels (the limit is squall.multilang.max.message.depth; raise it there)"
            ),
        "{e}"
    );
}

#[test]
fn an_oversized_msgpack_message_names_the_setting_that_raises_the_limit() {
    let e = last_error(&faulty_bolt(
        "msgpack",
        "oversized",
        r#""squall.multilang.max.message.bytes": 1024"#,
    ));
    assert!(
        e.contains(
            "protocol error: message exceeds 1024 bytes (the limit is squall.multilang.max.message.bytes; raise it there)"
        ),
        "{e}"
    );
}
