//! A topology across real worker processes on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{cluster, dump_logs, total, wait_for};

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

#[test]
fn sigterm_deactivates_drains_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    // __acker → w0, ids → w1, sink → w0.
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
        log.contains("deactivating spouts and draining")
            && log.contains("drained:")
            && log.contains("stopped"),
        "{log}"
    );
    // The other worker keeps serving.
    assert!(c.scrape_one(0).is_some());
    c.stop(Duration::from_secs(5));
}
