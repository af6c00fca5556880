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
