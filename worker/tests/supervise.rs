//! The local supervisor (`squall run --workers N`): it restarts a worker that exits, and
//! can move a dead worker's tasks to the living, while a replayable spout runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use squall_worker::supervisor::Cluster;
use support::{cluster, dump_logs, metric, total, wait_for};

const COUNT: u64 = 40_000;

// __acker → w0, ids → w1, pass → w2, sink → w0: w2 is the bolt side.
const MANIFEST: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: supervised}
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

/// Polls the supervisor until `done` or the timeout; whether `done` held.
fn poll_until(c: &mut Cluster, timeout: Duration, mut done: impl FnMut(&mut Cluster) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        c.poll().unwrap();
        if done(c) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_supervisor_restarts_a_dead_worker_then_moves_its_tasks_to_the_living() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), MANIFEST, 3, None, &[]);
    assert!(c.auto_restart, "restarting is the default");
    wait_for(&mut c, Duration::from_secs(20), |s| {
        total(s, "ids").acked >= 5_000
    });

    // Killed from outside, as a crash would: the supervisor notices and starts it again.
    let old = c.pid(2).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let back = poll_until(&mut c, Duration::from_secs(10), |c| {
        c.restarts(2) == 1 && c.pid(2).is_some_and(|p| p != old)
    });
    assert!(back, "the supervisor restarted w2");
    c.wait_ready(Duration::from_secs(10)).unwrap();
    let before = total(&c.scrape(), "ids").acked;
    let s = wait_for(&mut c, Duration::from_secs(10), |s| {
        total(s, "ids").acked > before + 2_000
    });
    assert!(
        total(&s, "ids").acked > before + 2_000,
        "the restarted bolt side rejoined"
    );

    // Now it is gone for good: its tasks go to the others and it is not restarted.
    assert!(c.reassign_away(2).unwrap());
    c.kill9(2);
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "ids").acked >= COUNT && total(s, "ids").pending == 0
    });
    if total(&s, "ids").acked != COUNT {
        dump_logs(&c);
    }
    assert!(!c.is_running(2) && c.restarts(2) == 1, "w2 stays down");
    assert!(
        c.assignment().workers.iter().all(|w| w.id != "w2"),
        "w2 is out of the assignment"
    );
    let page = c.scrape();
    assert!(
        page.component("pass").is_some_and(|p| p.executors == 1),
        "pass runs elsewhere"
    );
    // The spout's worker kept its engine, so these counts span the whole run: every id
    // acked once despite the crash and the move.
    assert_eq!(
        metric(&c, 1, "squall_worker_engine_starts_total"),
        1.0,
        "the spout side never restarted"
    );
    let ids = total(&s, "ids");
    assert_eq!(ids.acked, COUNT, "{s:#?}");
    assert_eq!(ids.emitted, ids.acked + ids.failed, "{ids:?}");
    c.stop(Duration::from_secs(5));
}
