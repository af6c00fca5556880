//! Assignment changes while running: a worker that comes back at a new address, then a
//! dead worker's tasks moved to another. Workers whose tasks stay keep running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::{cluster, dump_logs, hosts, logs, metric, total, wait_for, wait_until};

const STARTS: &str = "squall_worker_engine_starts_total";
const UPTIME: &str = "squall_uptime_seconds";

/// One cluster at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const COUNT: u64 = 40_000;

// __acker → w0, ids → w1, pass → w2, sink → w0.
const MANIFEST: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: moving}
spec:
  ackers: 1
  messageTimeoutSeconds: 3
  maxSpoutPending: 1000
  spouts:
    - {name: ids, component: const, config: {count: 40000, rate: 8000, payload: "x"}}
  bolts:
    - {name: pass, component: identity, config: {fields: [payload]}, inputs: [{from: ids}]}
    - {name: sink, component: null, inputs: [{from: pass}]}
"#;

#[test]
fn peers_follow_a_moved_worker_and_unchanged_workers_keep_running() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), MANIFEST, 3, None, &[]);
    c.auto_restart = false;
    wait_for(&mut c, Duration::from_secs(20), |s| {
        total(s, "ids").acked >= 5_000
    });
    let (up0, up1) = (metric(&c, 0, UPTIME), metric(&c, 1, UPTIME));

    // w2 comes back elsewhere: w0 and w1 keep their engines and dial the new address.
    c.kill9(2);
    let moved_to = c.move_worker(2).unwrap();
    c.restart(2).unwrap();
    c.wait_ready(Duration::from_secs(10)).unwrap();
    let before = total(&c.scrape(), "ids").acked;
    let s = wait_for(&mut c, Duration::from_secs(8), |s| {
        total(s, "ids").acked > before + 2_000
    });
    if total(&s, "ids").acked <= before + 2_000 {
        dump_logs(&c);
    }
    assert!(
        total(&s, "ids").acked > before + 2_000,
        "resumes through {moved_to}"
    );
    assert!(
        metric(&c, 0, UPTIME) > up0 && metric(&c, 1, UPTIME) > up1,
        "w0 and w1 were not restarted"
    );
    assert!(logs(&c, 0).contains("peer moved"));

    // w2 dies for good; its tasks go to w1. w0's tasks do not change: it keeps running.
    c.kill9(2);
    let mut a = c.assignment().clone();
    let gone = a.workers.remove(2);
    a.workers[1].tasks.extend(gone.tasks);
    a.generation += 1;
    let up0 = metric(&c, 0, UPTIME);
    c.set_assignment(a).unwrap();
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "ids").acked >= COUNT
    });
    if total(&s, "ids").acked < COUNT {
        dump_logs(&c);
    }
    // w1 restarted its engine (its tasks changed), so its spout replayed from the start
    // and completed every id: nothing was lost.
    assert_eq!(total(&s, "ids").acked, COUNT, "{s:#?}");
    assert!(metric(&c, 0, UPTIME) > up0, "w0 kept running");
    assert!(logs(&c, 0).contains("rerouting without a restart"));
    assert!(logs(&c, 1).contains("restarting its engine"));
    c.stop(Duration::from_secs(5));
}

// Executors sort by component name and are dealt round-robin: __acker → w0, a_pass → w1,
// b_sink → w2, c_ids → w0. The spout and the acker share w0, which the rebalance below
// leaves alone, so the spout's counts span the whole run.
const SWAP: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: swap}
spec:
  ackers: 1
  messageTimeoutSeconds: 3
  maxSpoutPending: 1000
  spouts:
    - {name: c_ids, component: const, config: {count: 40000, rate: 8000, payload: "x"}}
  bolts:
    - {name: a_pass, component: identity, config: {fields: [payload]}, inputs: [{from: c_ids}]}
    - {name: b_sink, component: null, inputs: [{from: a_pass}]}
"#;

/// A rebalance while tuples flow: the bolts move between two live workers. Tuples queued
/// for a moved task are re-routed to its new worker; those inside an engine that
/// restarted are failed by timeout and replayed. The spout, which never restarts, sees
/// every one of its ids acked: nothing is silently dropped.
#[test]
fn moving_bolts_between_live_workers_reroutes_or_replays_every_tuple() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), SWAP, 3, None, &[]);
    c.auto_restart = false;
    assert!(hosts(&c, 0, "c_ids") && hosts(&c, 0, "__acker"));
    assert!(hosts(&c, 1, "a_pass") && hosts(&c, 2, "b_sink"));
    let s = wait_for(&mut c, Duration::from_secs(20), |s| {
        total(s, "c_ids").acked >= 5_000
    });
    let at_move = total(&s, "c_ids");
    assert!(
        at_move.acked < COUNT / 2,
        "tuples still flow at the move: {at_move:?}"
    );

    let mut a = c.assignment().clone();
    let (t1, t2) = (a.workers[1].tasks.clone(), a.workers[2].tasks.clone());
    a.workers[1].tasks = t2;
    a.workers[2].tasks = t1;
    a.generation += 1;
    c.set_assignment(a).unwrap();
    // Both bolt workers pick the change up and restart their engines; w0 reroutes.
    wait_until(Duration::from_secs(20), || {
        metric(&c, 1, STARTS) >= 2.0 && metric(&c, 2, STARTS) >= 2.0
    });
    assert!(
        hosts(&c, 1, "b_sink") && hosts(&c, 2, "a_pass"),
        "the bolts moved"
    );

    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "c_ids").acked >= COUNT && total(s, "c_ids").pending == 0
    });
    let ids = total(&s, "c_ids");
    if ids.acked != COUNT {
        dump_logs(&c);
    }
    // w0 never restarted its engine, so these are the same spout's counts from the start:
    // every id acked exactly once, and every emit either acked or failed (then replayed).
    assert_eq!(metric(&c, 0, STARTS), 1.0, "w0 kept its engine");
    assert_eq!(ids.acked, COUNT, "{s:#?}");
    assert_eq!(ids.pending, 0);
    assert_eq!(ids.emitted, ids.acked + ids.failed, "{ids:?}");
    assert!(logs(&c, 0).contains("rerouting without a restart"));
    eprintln!(
        "moved at {} acked; replays after the move: {}",
        at_move.acked, ids.failed
    );
    c.stop(Duration::from_secs(5));
}

// As SWAP, with a sink whose config can change: __acker → w0, a_pass → w1, b_sink → w2,
// c_ids → w0.
const SINK_EVERY: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: reconfigure}
spec:
  ackers: 1
  messageTimeoutSeconds: 3
  maxSpoutPending: 1000
  spouts:
    - {name: c_ids, component: const, config: {count: 40000, rate: 8000, payload: "x"}}
  bolts:
    - {name: a_pass, component: identity, config: {fields: [payload]}, inputs: [{from: c_ids}]}
    - {name: b_sink, component: log, config: {every: 1000000}, inputs: [{from: a_pass}]}
"#;

/// A config change of one component restarts only the engine hosting it: the others
/// keep theirs (one engine start each), and the spout, never restarted, sees every id
/// acked; the sink's in-flight trees are replayed.
#[test]
fn a_config_change_restarts_only_the_workers_hosting_the_component() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), SINK_EVERY, 3, None, &[]);
    c.auto_restart = false;
    assert!(hosts(&c, 0, "c_ids") && hosts(&c, 1, "a_pass") && hosts(&c, 2, "b_sink"));
    wait_for(&mut c, Duration::from_secs(20), |s| {
        total(s, "c_ids").acked >= 3_000
    });

    support::write_manifest(
        dir.path(),
        &SINK_EVERY.replace("every: 1000000", "every: 2000000"),
    );
    let mut a = c.assignment().clone();
    a.generation += 1;
    c.set_assignment(a).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || metric(&c, 2, STARTS) >= 2.0),
        "the sink's worker did not restart:\n{}",
        logs(&c, 2)
    );
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "c_ids").acked >= COUNT && total(s, "c_ids").pending == 0
    });
    let ids = total(&s, "c_ids");
    if ids.acked != COUNT {
        dump_logs(&c);
    }
    let starts: Vec<f64> = (0..3).map(|i| metric(&c, i, STARTS)).collect();
    eprintln!("engine starts per worker: {starts:?}; replays: {}", ids.failed);
    assert_eq!(starts, [1.0, 1.0, 2.0], "only the sink's worker restarts");
    assert_eq!(ids.acked, COUNT, "{s:#?}");
    assert!(logs(&c, 0).contains("rerouting without a restart"));
    assert!(logs(&c, 1).contains("rerouting without a restart"));
    let restarted = logs(&c, 2);
    assert!(
        restarted.contains("restarting its engine") && restarted.contains("b_sink"),
        "the log names what changed:\n{restarted}"
    );
    c.stop(Duration::from_secs(5));
}

const BEFORE: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: reopen}
spec:
  ackers: 1
  spouts:
    - {name: src, component: const, config: {rate: 2000, payload: "x"}}
  bolts:
    - {name: sink, component: null, inputs: [{from: src}]}
"#;

// The same tasks, but the spout now reads a file that is not there yet.
const AFTER: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: reopen}
spec:
  ackers: 1
  spouts:
    - {name: src, component: json-lines, config: {path: lines.txt}}
  bolts:
    - {name: sink, component: null, inputs: [{from: src}]}
"#;

/// A new assignment whose engine cannot start leaves the worker alive but unready, and
/// it keeps trying: once the missing input appears the engine runs and trees complete.
#[test]
fn a_failed_engine_start_is_unready_and_retried() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), BEFORE, 1, None, &[]);
    c.auto_restart = false;
    wait_for(&mut c, Duration::from_secs(20), |s| total(s, "src").acked > 500);
    let http = c.http_addr(0);
    let get = |path| squall_worker::http::get(http, path, Duration::from_secs(2));

    support::write_manifest(dir.path(), AFTER);
    let mut a = c.assignment().clone();
    a.generation += 1;
    c.set_assignment(a).unwrap();
    // The engine stops (unready) before the new one fails to start (logged).
    let failed = || logs(&c, 0).contains("cannot start the engine");
    assert!(wait_until(Duration::from_secs(20), failed), "{}", logs(&c, 0));
    assert!(get("/readyz").is_err(), "not ready without an engine");
    assert!(get("/healthz").is_ok(), "but alive");

    let lines: String = (0..300).map(|i| format!("line {i}\n")).collect();
    std::fs::write(dir.path().join("lines.txt"), lines).unwrap();
    c.wait_ready(Duration::from_secs(20)).unwrap();
    let s = wait_for(&mut c, Duration::from_secs(20), |s| total(s, "src").acked >= 300);
    if total(&s, "src").acked != 300 {
        dump_logs(&c);
    }
    assert_eq!(total(&s, "src").acked, 300, "{s:#?}");
    c.stop(Duration::from_secs(5));
}
