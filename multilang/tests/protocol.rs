//! The host against a hand-written child that breaks the protocol on purpose
//! (`multilang/python/fake_child.py`): each fault restarts the child with an error that
//! names the component and task, and the replayed tuples still complete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{
    alive, drain, fake, fake_bolt_topology, faulty_bolt, last_error, manifest, plan, scratch, start,
    try_start, wait_until,
};

#[test]
fn invalid_json_restarts_the_child_with_a_clear_error() {
    let m = faulty_bolt("json", "invalid-json", "");
    let e = last_error(&m);
    assert!(
        e.contains("shell child of \"bad\" task ") && e.contains("restarted: protocol error: invalid JSON"),
        "{e}"
    );
    assert!(
        e.contains("this is not json"),
        "the error quotes the message: {e}"
    );
}

#[test]
fn an_unknown_command_restarts_the_child() {
    let m = faulty_bolt("json", "unknown-command", "");
    let e = last_error(&m);
    assert!(e.contains("protocol error: unknown command \"dance\""), "{e}");
}

#[test]
fn an_oversized_message_restarts_the_child() {
    let m = faulty_bolt(
        "json",
        "oversized",
        r#""squall.multilang.max.message.bytes": 1024"#,
    );
    let e = last_error(&m);
    assert!(e.contains("protocol error: message exceeds 1024 bytes"), "{e}");
}

#[test]
fn a_hanging_spout_child_is_restarted_after_the_subprocess_timeout() {
    let dir = scratch("spout-hang");
    let marker = dir.join("marker");
    let yaml = manifest(
        "spout-hang",
        &dir,
        r#""squall.multilang.timeout.secs": 2"#,
        &format!(
            r#"
  spouts:
    - name: src
      component: shell
      shell: {}
      outputs: [{{fields: [n]}}]
  bolts:
    - {{name: sink, component: "null", inputs: [{{from: src}}]}}
"#,
            fake("json", "spout-hang", &marker),
        ),
    );
    let topo = start(&yaml);
    wait_until(
        Duration::from_secs(30),
        || {
            let m = topo.metrics();
            let src = m.component("src").unwrap();
            src.custom.get("child_restarts") == Some(&1) && src.total.acked >= 20 && topo.pending() == 0
        },
        || format!("{:#?}", topo.metrics()),
    );
    let m = topo.shutdown();
    assert!(marker.exists());
    let src = m.component("src").unwrap();
    assert_eq!(src.total.emitted, 20, "ten from each child");
    assert_eq!(src.total.acked, 20);
    let e = src.last_error.clone().unwrap_or_default();
    assert!(
        e.contains("shell child of \"src\" task ") && e.contains("subprocess timeout"),
        "{e}"
    );
}

#[test]
fn a_child_that_stops_reading_stops_the_bolt_taking_input_then_is_restarted() {
    let dir = scratch("deaf");
    let marker = dir.join("marker");
    let yaml = fake_bolt_topology(
        &dir,
        "json",
        "deaf",
        5000,
        r#""squall.multilang.max.pending": 5, "squall.multilang.timeout.secs": 3"#,
    );
    let topo = start(&yaml);
    std::thread::sleep(Duration::from_millis(1500));
    // The child reads nothing: the pipe and the writer's buffer (64 KiB each, about 1700
    // tuples) fill, then the 5-tuple queue, then `execute` waits instead of taking more.
    let m = topo.metrics();
    let bad = m.component("bad").unwrap();
    assert!(marker.exists());
    assert!(
        bad.total.executed < 2500,
        "execute took {} tuples from a deaf child's queue",
        bad.total.executed
    );
    assert_eq!(
        bad.custom.get("child_restarts"),
        None,
        "not restarted before the timeout"
    );
    let m = drain(topo, Duration::from_secs(60));
    let bad = m.component("bad").unwrap();
    assert_eq!(bad.custom.get("child_restarts"), Some(&1));
    assert!(
        last_error(&m).contains("subprocess heartbeat timeout"),
        "{}",
        last_error(&m)
    );
    assert_eq!(m.component("numbers").unwrap().total.acked, 5000);
}

#[test]
fn shutdown_kills_the_childs_whole_process_group() {
    let dir = scratch("group");
    // The child writes its grandchild's pid to the marker.
    let marker = dir.join("marker");
    let topo = start(&fake_bolt_topology(&dir, "json", "grandchild", 10, ""));
    wait_until(
        Duration::from_secs(10),
        || marker.exists(),
        || "the child did not start its grandchild".into(),
    );
    let grandchild: i32 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert!(alive(grandchild));
    let m = drain(topo, Duration::from_secs(30));
    assert_eq!(m.component("numbers").unwrap().total.acked, 10);
    wait_until(
        Duration::from_secs(5),
        || !alive(grandchild),
        || format!("grandchild {grandchild} outlived the topology"),
    );
}

#[test]
fn a_child_that_cannot_start_fails_the_topology_start_naming_component_and_task() {
    let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: missing}
spec:
  spouts:
    - {name: numbers, component: sequence, config: {count: 1}}
  bolts:
    - name: ghost
      component: shell
      shell: {command: /nonexistent/python3, args: [x.py]}
      inputs: [{from: numbers}]
"#;
    let task = plan(yaml).component("ghost").unwrap().tasks[0];
    let err = try_start(yaml).err().expect("started without its child");
    assert_eq!(
        err,
        format!(
            "component \"ghost\" task {task}: shell child: command \"/nonexistent/python3\": /nonexistent/python3 does not exist"
        ),
    );
}

fn values_in(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn a_child_dying_mid_batch_fails_exactly_the_inputs_it_had_not_acked() {
    let dir = scratch("crash-after");
    let yaml = fake_bolt_topology(&dir, "json", "crash-after", 20, "");
    let m = drain(start(&yaml), Duration::from_secs(60));
    let first = values_in(&dir.join("marker.seen1"));
    let second = values_in(&dir.join("marker.seen2"));
    // Batched writes keep the order: the first child read 0, 1, 2, ... and died at 7.
    assert_eq!(first, (0..8).collect::<Vec<_>>());
    let bad = m.component("bad").unwrap();
    assert_eq!(bad.custom.get("child_restarts"), Some(&1), "{bad:?}");
    let e = last_error(&m);
    // Its death shows as EOF, or as a broken pipe if a write came first.
    assert!(
        e.contains("restarted: child exited") || e.contains("restarted: writing to the child failed"),
        "{e}"
    );
    let spout = m.component("numbers").unwrap();
    assert_eq!(spout.total.acked, 20);
    // The five acked inputs are never failed nor replayed; every other input reaches
    // the second child exactly once, replayed if the first child held it.
    let mut sorted = second.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (5..20).collect::<Vec<_>>(), "second child saw {second:?}");
    assert!(
        spout.total.failed >= 3,
        "5, 6 and 7 were held when it died: {spout:?}"
    );
    assert_eq!(
        spout.total.failed, bad.total.failed,
        "all failures are the restart's"
    );
    assert_eq!(spout.total.emitted, 20 + spout.total.failed);
}

#[test]
fn a_slow_child_holds_a_bounded_number_of_inputs() {
    let dir = scratch("slow");
    // Appended at an indent of two, the line is a key of `spec`.
    let yaml = fake_bolt_topology(&dir, "json", "slow", 1500, r#""squall.multilang.max.pending": 5"#)
        + "  maxSpoutPending: 100000\n";
    let topo = start(&yaml);
    let mut most_held = 0;
    wait_until(
        Duration::from_secs(120),
        || {
            if topo.is_drained() {
                return true;
            }
            let m = topo.metrics();
            let bad = m.component("bad").unwrap();
            most_held = most_held.max(bad.total.executed.saturating_sub(bad.total.acked));
            false
        },
        || format!("not drained: {:#?}", topo.metrics()),
    );
    let m = topo.shutdown();
    assert_eq!(m.component("numbers").unwrap().total.acked, 1500);
    // The spout may have all 1500 out at once; the bolt takes only what fits in its
    // 5-tuple queue and the pipe (64 KiB, about 900 of these messages), the rest waits
    // in the engine's bounded queue.
    assert!(
        most_held > 5 && most_held < 1200,
        "inputs held by the bolt at most: {most_held}"
    );
}
