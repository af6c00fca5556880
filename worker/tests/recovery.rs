//! kill -9 of a worker while a replayable spout runs: nothing is lost (at-least-once),
//! the restarted worker rejoins, and processing resumes within 5 s of the restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{cluster, dump_logs, hosts, total, wait_for};

/// One cluster at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const COUNT: u64 = 60_000;
/// The recovery bound: trees complete again this soon after the restart.
const RESUME_WITHIN: Duration = Duration::from_secs(5);

// Components sort by name and executors are dealt round-robin over w0, w1, w2:
// __acker → w0, ids → w1, pass → w2, sink → w0. So w0 is the acker side, w1 the spout
// side and w2 the bolt side.
const MANIFEST: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: recover}
spec:
  ackers: 1
  messageTimeoutSeconds: 3
  maxSpoutPending: 2000
  spouts:
    - {name: ids, component: const, config: {count: 60000, rate: 20000, payload: "0123456789"}}
  bolts:
    - {name: pass, component: identity, config: {fields: [payload]}, inputs: [{from: ids}]}
    - {name: sink, component: null, inputs: [{from: pass}]}
"#;

fn kill_and_recover(victim: usize, role: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), MANIFEST, 3, None, &[]);
    c.auto_restart = false;
    assert!(hosts(&c, victim, role), "worker {victim} should run {role}");
    // Let it get going, then kill.
    let s = wait_for(&mut c, Duration::from_secs(20), |s| {
        total(s, "ids").acked >= 10_000
    });
    assert!(total(&s, "ids").acked >= 10_000, "no progress before the kill");
    c.kill9(victim);
    std::thread::sleep(Duration::from_millis(800));
    let before = total(&c.scrape(), "ids").acked;
    c.restart(victim).unwrap();
    let restarted = Instant::now();
    c.wait_ready(Duration::from_secs(10)).unwrap();
    let ready = restarted.elapsed();
    // Resumed: trees complete again (for the spout side, the new spout's own count).
    let base = if victim == 1 { 0 } else { before };
    // The 5 s count from the restart, not from readiness: progress must show in a scrape
    // started within them.
    let (s, resumed) = loop {
        let at = restarted.elapsed();
        let s = c.scrape();
        if total(&s, "ids").acked > base + 1000 {
            break (s, Some(at));
        }
        if restarted.elapsed() >= RESUME_WITHIN {
            break (s, None);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(resumed) = resumed else {
        dump_logs(&c);
        panic!("no progress within {RESUME_WITHIN:?} of restarting the {role} worker: {s:#?}");
    };
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "ids").acked >= COUNT
    });
    if total(&s, "ids").acked < COUNT {
        dump_logs(&c);
    }
    assert_eq!(
        total(&s, "ids").acked,
        COUNT,
        "every event fully processed: {s:#?}"
    );
    assert!(total(&s, "sink").executed > 0);
    eprintln!(
        "{role} side: ready {ready:?}, resumed {resumed:?} after the restart; replays: {}",
        total(&s, "ids").failed
    );
    c.stop(Duration::from_secs(5));
}

#[test]
fn killing_the_acker_side_loses_nothing() {
    kill_and_recover(0, "__acker");
}

#[test]
fn killing_the_spout_side_loses_nothing() {
    kill_and_recover(1, "ids");
}

#[test]
fn killing_the_bolt_side_loses_nothing() {
    kill_and_recover(2, "pass");
}
