//! Assignment changes while running: a worker that comes back at a new address, then a
//! dead worker's tasks moved to another. Workers whose tasks stay keep running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{cluster, dump_logs, logs, total, wait_for};

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

fn uptime(c: &squall_worker::supervisor::Cluster, i: usize) -> f64 {
    c.scrape_one(i)
        .unwrap_or_default()
        .iter()
        .find(|(n, _, _)| n == "squall_uptime_seconds")
        .map(|s| s.2)
        .unwrap_or(0.0)
}

#[test]
fn peers_follow_a_moved_worker_and_unchanged_workers_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), MANIFEST, 3, None, &[]);
    c.auto_restart = false;
    wait_for(&mut c, Duration::from_secs(20), |s| {
        total(s, "ids").acked >= 5_000
    });
    let (up0, up1) = (uptime(&c, 0), uptime(&c, 1));

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
        uptime(&c, 0) > up0 && uptime(&c, 1) > up1,
        "w0 and w1 were not restarted"
    );
    assert!(logs(&c, 0).contains("peer moved"));

    // w2 dies for good; its tasks go to w1. w0's tasks do not change: it keeps running.
    c.kill9(2);
    let mut a = c.assignment().clone();
    let gone = a.workers.remove(2);
    a.workers[1].tasks.extend(gone.tasks);
    a.generation += 1;
    let up0 = uptime(&c, 0);
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
    assert!(uptime(&c, 0) > up0, "w0 kept running");
    assert!(logs(&c, 0).contains("rerouting without a restart"));
    assert!(logs(&c, 1).contains("restarting its engine"));
    c.stop(Duration::from_secs(5));
}
