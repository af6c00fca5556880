//! A topology across real worker processes on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::{cluster, dump_logs, total, wait_for};

/// One cluster at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const SPREAD: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: spread}
spec:
  ackers: 3
  messageTimeoutSeconds: 10
  spouts:
    - {name: ids, component: sequence, config: {count: 30000}}
  bolts:
    - {name: pass, component: identity, parallelism: 3, config: {fields: [n]}, inputs: [{from: ids, grouping: {type: fields, fields: [n]}}]}
    - {name: sink, component: null, parallelism: 2, inputs: [{from: pass, grouping: {type: shuffle}}]}
"#;

#[test]
fn three_workers_ack_every_tuple_exactly_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), SPREAD, 3, None, &[]);
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "ids").acked >= 30_000
    });
    let ids = total(&s, "ids");
    if ids.acked != 30_000 {
        dump_logs(&c);
    }
    assert_eq!(ids.acked, 30_000, "{s:#?}");
    assert_eq!(ids.failed, 0);
    assert_eq!(total(&s, "pass").executed, 30_000);
    assert_eq!(total(&s, "sink").executed, 30_000);
    // The ackers are spread: every worker runs one, so trees cross processes both ways.
    for i in 0..3 {
        let page = c.scrape_one(i).unwrap();
        let ackers = page
            .iter()
            .find(|(n, l, _)| n == "squall_acked_total" && l.get("role").is_some_and(|r| r == "acker"))
            .map(|s| s.2)
            .unwrap_or(0.0);
        assert!(ackers > 0.0, "worker {i} acked nothing");
    }
    c.stop(Duration::from_secs(5));
}

const ENDLESS: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: endless}
spec:
  ackers: 1
  messageTimeoutSeconds: 4
  spouts:
    - {name: ids, component: const, config: {rate: 5000, payload: "p"}}
  bolts:
    - {name: sink, component: null, inputs: [{from: ids}]}
"#;

/// The value of `name=` in the last log line containing `marker`, colours removed.
fn logged(log: &str, marker: &str, name: &str) -> Option<u64> {
    let line = support::plain(log.lines().rev().find(|l| l.contains(marker))?);
    let line = line.as_str();
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn executed(c: &squall_worker::supervisor::Cluster, i: usize, component: &str) -> f64 {
    c.scrape_one(i)
        .unwrap_or_default()
        .iter()
        .filter(|(n, l, _)| {
            n == "squall_executed_total" && l.get("component").is_some_and(|x| x == component)
        })
        .map(|s| s.2)
        .sum()
}

#[test]
fn sigterm_deactivates_drains_and_exits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // __acker → w0, ids → w1, sink → w0: the spout side's trees cross to w0 and back.
    let mut c = cluster(dir.path(), ENDLESS, 2, None, &[]);
    c.auto_restart = false;
    wait_for(&mut c, Duration::from_secs(20), |s| total(s, "ids").acked > 2_000);
    let started = std::time::Instant::now();
    let status = c.terminate(1, Duration::from_secs(10)).expect("exits by itself");
    assert!(status.success(), "{status:?}");
    // Drained well within the message timeout: in-flight trees were completed, not failed.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let log = support::logs(&c, 1);
    assert!(
        log.contains("deactivating spouts and draining") && log.contains("stopped"),
        "{log}"
    );
    // The spout's final counts: every tree it started completed before the exit.
    let drained = "drained: no tree in flight";
    let emitted = logged(&log, drained, "emitted").unwrap_or_else(|| panic!("no drain line:\n{log}"));
    assert!(emitted > 2_000, "{log}");
    assert_eq!(logged(&log, drained, "acked"), Some(emitted), "{log}");
    assert_eq!(logged(&log, drained, "failed"), Some(0), "{log}");
    assert_eq!(logged(&log, drained, "pending"), Some(0), "{log}");
    // The other worker keeps serving, and its sink saw each of those tuples exactly once:
    // nothing in flight was lost on the way out. (Executors publish their counters every
    // so often, so give the count a moment to show.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while executed(&c, 0, "sink") < emitted as f64 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(executed(&c, 0, "sink"), emitted as f64);
    c.stop(Duration::from_secs(5));
}

#[test]
fn sigterm_with_stuck_trees_stops_ready_and_exits_after_the_message_timeout() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), ENDLESS, 2, None, &[]);
    c.auto_restart = false;
    wait_for(&mut c, Duration::from_secs(20), |s| total(s, "ids").acked > 2_000);
    // Without the acker side, w1's pending trees can never complete: its drain must give
    // up at the message timeout (4 s) and exit anyway.
    c.kill9(0);
    let http = c.http_addr(1);
    let get = |path| squall_worker::http::get(http, path, Duration::from_secs(2));
    assert!(get("/readyz").is_ok(), "ready before the SIGTERM");
    let started = std::time::Instant::now();
    c.sigterm(1);
    // While it drains it is alive but not ready, so no new traffic is sent its way.
    let mut unready_alive = false;
    while !unready_alive && c.is_running(1) && started.elapsed() < Duration::from_secs(3) {
        unready_alive = get("/readyz").is_err() && get("/healthz").is_ok_and(|b| b == "ok\n");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        unready_alive,
        "/readyz must fail and /healthz answer while draining"
    );
    let status = c.wait_exit(1, Duration::from_secs(20)).expect("exits by itself");
    assert!(status.success(), "{status:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "it waited for the trees: {waited:?}"
    );
    let log = support::logs(&c, 1);
    // Either it gave up with trees pending, or they timed out (failed, to be replayed)
    // just before the drain's deadline; never "completed".
    let gave_up = logged(&log, "stopping with trees still in flight", "pending").is_some_and(|p| p > 0);
    let timed_out = logged(&log, "drained: no tree in flight", "failed").is_some_and(|f| f > 0);
    assert!(gave_up || timed_out, "{log}");
    c.stop(Duration::from_secs(5));
}

// No acker and unreliable: nothing is ever replayed, so order and count are exact.
// Executors are dealt ids#0 → w0, ids#1 → w1, out#0 → w0, out#1 → w1: each bolt task
// gets a local and a remote source task, the spouts unthrottled.
const ORDERED: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: ordered}
spec:
  ackers: 0
  spouts:
    - {name: ids, component: sequence, parallelism: 2, config: {count: 30000, reliable: false}}
  bolts:
    - {name: out, component: log, parallelism: 2, inputs: [{from: ids, grouping: {type: shuffle}}]}
"#;

/// (bolt task, number) of every tuple a worker's `log` bolt logged, in log order.
fn logged_tuples(log: &str) -> Vec<(u32, u64)> {
    log.lines()
        .map(support::plain)
        .filter(|l| l.contains(" tuple ") && l.contains("values="))
        .map(|l| {
            let num = |from: &str| -> u64 {
                let at = l.find(from).unwrap() + from.len();
                let digits: String = l[at..]
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().unwrap()
            };
            (num(" task=") as u32, num("values="))
        })
        .collect()
}

#[test]
fn each_source_task_reaches_each_target_task_in_order_across_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), ORDERED, 2, None, &[]);
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "out").executed >= 30_000
    });
    assert_eq!(total(&s, "out").executed, 30_000, "{s:#?}");
    // Stop first: the log then holds every line.
    c.stop(Duration::from_secs(10));
    let mut last: std::collections::BTreeMap<(u32, u64), u64> = Default::default();
    let mut seen = 0usize;
    let mut remote = 0usize;
    for i in 0..2 {
        for (task, n) in logged_tuples(&support::logs(&c, i)) {
            // Spout task i of 2 emits the numbers ≡ i (mod 2), in increasing order.
            let source = n % 2;
            if let Some(prev) = last.insert((task, source), n) {
                assert!(n > prev, "task {task} got {n} after {prev} from source {source}");
            }
            seen += 1;
            // ids#k runs on worker k: a tuple logged on the other worker crossed a link.
            remote += usize::from(source != i as u64);
        }
    }
    assert_eq!(seen, 30_000, "every tuple logged once");
    assert!(remote > 5_000, "tuples crossed the links: {remote}");
    assert_eq!(last.len(), 4, "every source task reached every target task");
}
