//! The `kafka` spout against a real broker (one per test binary, on loopback): commits,
//! retries, partition split, the errors stream, lag, back pressure, atMostOnce.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use squall_engine::Topology;
use support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn config(topic: &str, group: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "bootstrap_servers": broker().bootstrap(),
        "topics": [topic],
        "group_id": group,
        "offset_commit_period_ms": 100,
        "partition_refresh_period_ms": 500,
        "lag_interval_ms": 100,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A topic of a test's own on the shared broker, read by the group `g-<topic>`.
struct Topic {
    name: &'static str,
    group: String,
    bootstrap: String,
}

impl Topic {
    /// Creates `name` with `partitions` partitions.
    fn create(name: &'static str, partitions: u32) -> Topic {
        let b = broker();
        b.create_topic(name, partitions).unwrap();
        Topic {
            name,
            group: format!("g-{name}"),
            bootstrap: b.bootstrap(),
        }
    }

    /// Writes `values` to `partition`.
    fn produce(&self, partition: i32, values: &[Vec<u8>]) {
        produce(&self.bootstrap, self.name, Some(partition), values);
    }

    /// A topology named after the topic: its spout (`tasks` tasks, the group's config
    /// with `extra`) into the gate.
    fn spout(&self, tasks: usize, extra: serde_json::Value) -> (Topology, Arc<Gate>) {
        self.spout_as(self.name, tasks, extra)
    }

    /// The same under another topology name.
    fn spout_as(&self, topology: &str, tasks: usize, extra: serde_json::Value) -> (Topology, Arc<Gate>) {
        start_spout(topology, tasks, config(self.name, &self.group, extra))
    }

    /// The group's committed offsets of `partitions` (`None`: nothing committed).
    fn committed(&self, partitions: &[i32]) -> Vec<Option<i64>> {
        committed(&self.bootstrap, &self.group, self.name, partitions)
    }

    /// Waits until the group's commit of partition 0 is `offset`.
    fn wait_committed(&self, offset: i64) {
        let what = format!("commit of {offset}");
        wait_until(LIMIT, &what, || self.committed(&[0])[0], |c| *c == Some(offset));
    }

    /// Waits until `topo`'s spout reports a lag of partition 0 that `done` accepts.
    fn wait_lag(&self, topo: &Topology, what: &str, done: impl Fn(&Option<u64>) -> bool) {
        let series =
            squall_engine::gauge_series("kafka_consumer_lag", &[("topic", self.name), ("partition", "0")]);
        wait_until(LIMIT, what, || gauge(&topo.metrics(), "kafka", &series), done);
    }
}

#[test]
fn commits_stop_at_the_highest_contiguous_acked_offset_until_the_gap_is_acked() {
    let t = Topic::create("gap", 1);
    t.produce(0, &texts("gap", 10));
    let (topo, gate) = t.spout(1, json!({}));
    gate.set(0, 3, Action::Hold);
    wait_until(LIMIT, "10 records", || gate.default_stream().len(), |n| *n == 10);

    // 0..2 and 4..9 acked, 3 held: the commit stays at 3, the first offset not done.
    t.wait_committed(3);
    std::thread::sleep(Duration::from_millis(600)); // several commit periods
    assert_eq!(t.committed(&[0]), [Some(3)], "never past the un-acked offset");
    for s in gate.default_stream() {
        let (offset, floor) = (s.int("offset"), s.int("floor"));
        assert!(floor <= offset.min(3), "offset {offset}: floor {floor}");
        assert_eq!(s.text("value"), format!("gap-{offset}"));
        assert_eq!(s.text("topic"), "gap");
    }
    // Lag: high watermark 10 minus floor 3.
    t.wait_lag(&topo, "lag 7", |l| *l == Some(7));

    gate.release(0, 3);
    t.wait_committed(10);
    t.wait_lag(&topo, "lag 0", |l| *l == Some(0));
    let s = topo.shutdown();
    assert_eq!(s.component("kafka").unwrap().total.acked, 10);
}

#[test]
fn a_failed_record_is_emitted_again_after_its_backoff_and_never_skipped() {
    let t = Topic::create("retry", 1);
    t.produce(0, &texts("retry", 20));
    let (topo, gate) = t.spout(
        1,
        json!({"retry_delay_period_ms": 50, "retry_max_delay_ms": 1000}),
    );
    gate.set(0, 5, Action::FailTimes(3));
    gate.set(0, 7, Action::FailTimes(2));
    t.wait_committed(20);
    let seen = gate.default_stream();
    let mut by_offset: BTreeMap<i64, Vec<&support::Seen>> = BTreeMap::new();
    for s in &seen {
        by_offset.entry(s.int("offset")).or_default().push(s);
    }
    assert_eq!(by_offset.len(), 20, "every offset emitted");
    for (o, v) in &by_offset {
        let want = match o {
            5 => 4,
            7 => 3,
            _ => 1,
        };
        assert_eq!(v.len(), want, "offset {o}");
        // Same content and identity on every delivery; floor never goes down.
        for w in v.windows(2) {
            assert_eq!(w[0].text("value"), w[1].text("value"));
            assert!(w[1].int("floor") >= w[0].int("floor"));
        }
    }
    // Exponential backoff: 50, 100, 200 ms between the deliveries of offset 5.
    let at: Vec<Instant> = by_offset[&5].iter().map(|s| s.at).collect();
    for (i, w) in at.windows(2).enumerate() {
        let gap = w[1] - w[0];
        let min = Duration::from_millis(50 << i);
        assert!(gap >= min.mul_f64(0.9), "retry {}: {gap:?} < {min:?}", i + 1);
    }
    let s = topo.shutdown();
    assert_eq!(custom(&s, "kafka", "retried"), 5);
    assert_eq!(custom(&s, "kafka", "given_up"), 0);
}

#[test]
fn a_record_past_its_max_retries_is_given_up_and_committed() {
    let t = Topic::create("giveup", 1);
    t.produce(0, &texts("giveup", 5));
    let (topo, gate) = t.spout(1, json!({"retry_max_retries": 2}));
    gate.set(0, 1, Action::FailAlways);
    t.wait_committed(5);
    let n = gate
        .default_stream()
        .iter()
        .filter(|s| s.int("offset") == 1)
        .count();
    assert_eq!(n, 3, "first delivery and two retries");
    assert_eq!(custom(&topo.shutdown(), "kafka", "given_up"), 1);
}

/// Every record's (partition, spout task), from a run of `tasks` tasks that reads until
/// all 5 partitions are committed at `end`.
fn split(topic: &Topic, tasks: usize, end: i64) -> BTreeMap<i64, BTreeSet<i32>> {
    let (topo, gate) = topic.spout(tasks, json!({}));
    wait_until(
        LIMIT,
        "every partition committed",
        || topic.committed(&[0, 1, 2, 3, 4]),
        |c| c.iter().all(|o| *o == Some(end)),
    );
    let mut out: BTreeMap<i64, BTreeSet<i32>> = BTreeMap::new();
    for s in gate.default_stream() {
        out.entry(s.int("partition")).or_default().insert(s.task);
    }
    topo.shutdown();
    out
}

#[test]
fn partitions_are_split_over_the_spout_tasks_and_a_rebalance_resumes_from_the_commits() {
    let t = Topic::create("split", 5);
    for p in 0..5 {
        t.produce(p, &texts(&format!("p{p}"), 4));
    }
    // Two tasks: each partition read by one task only, all covered, both tasks busy.
    let two = split(&t, 2, 4);
    assert_eq!(two.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert!(two.values().all(|t| t.len() == 1), "{two:?}");
    let tasks: BTreeSet<i32> = two.values().flatten().copied().collect();
    assert_eq!(tasks.len(), 2);
    // Round-robin over the sorted partitions: 0, 2, 4 on one task, 1, 3 on the other.
    assert_eq!(two[&0], two[&2]);
    assert_eq!(two[&0], two[&4]);
    assert_ne!(two[&0], two[&1]);

    // The same group with three tasks (a rebalance): only the new records are read.
    for p in 0..5 {
        t.produce(p, &texts(&format!("q{p}"), 3));
    }
    let three = split(&t, 3, 7);
    assert!(three.values().all(|t| t.len() == 1), "{three:?}");
    let tasks: BTreeSet<i32> = three.values().flatten().copied().collect();
    assert_eq!(tasks.len(), 3);
}

#[test]
fn undecodable_records_go_to_the_errors_stream_and_never_stall_the_partition() {
    let t = Topic::create("json", 1);
    let values: Vec<Vec<u8>> = vec![
        br#"{"user": "ann", "n": 1}"#.to_vec(),
        b"{not json".to_vec(),
        b"[1, 2]".to_vec(),
        vec![0xff, 0xfe],
        br#"{"user": "bob"}"#.to_vec(),
    ];
    t.produce(0, &values);
    let (topo, gate) = t.spout(1, json!({"translation": "json", "fields": ["user", "n"]}));
    t.wait_committed(5);
    let ok = gate.default_stream();
    assert_eq!(ok.len(), 2);
    assert_eq!(
        ok[0].fields,
        ["user", "n", "topic", "partition", "offset", "floor"]
    );
    assert_eq!(
        (ok[0].text("user"), ok[0].int("n"), ok[0].int("offset")),
        ("ann".into(), 1, 0)
    );
    assert_eq!(
        (ok[1].text("user"), ok[1].values[1].clone(), ok[1].int("offset")),
        ("bob".into(), squall_engine::Value::Null, 4)
    );
    let errors: Vec<_> = gate.seen().into_iter().filter(|s| s.stream == "errors").collect();
    assert_eq!(errors.len(), 3);
    assert_eq!(
        errors[0].fields,
        ["topic", "partition", "offset", "value", "error"]
    );
    let coords: Vec<(String, i64, i64)> = errors
        .iter()
        .map(|e| (e.text("topic"), e.int("partition"), e.int("offset")))
        .collect();
    assert_eq!(
        coords,
        [
            ("json".into(), 0, 1),
            ("json".into(), 0, 2),
            ("json".into(), 0, 3)
        ]
    );
    assert!(
        errors[0].text("error").starts_with("invalid JSON"),
        "{:?}",
        errors[0]
    );
    assert_eq!(errors[0].text("value"), "{not json");
    assert_eq!(custom(&topo.shutdown(), "kafka", "undecodable"), 3);
}

#[test]
fn max_uncommitted_offsets_holds_back_new_records_until_a_commit() {
    let t = Topic::create("bound", 1);
    t.produce(0, &texts("bound", 20));
    let (topo, gate) = t.spout(
        1,
        json!({"max_uncommitted_offsets": 5, "offset_commit_period_ms": 2000}),
    );
    // Whenever looked at, at most 5 records are emitted beyond the committed offset (read
    // after the count: a commit in between only raises it). No timing is assumed, so a
    // slow machine cannot make a commit land "early".
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let emitted = gate.default_stream().len() as i64;
        let committed = t.committed(&[0])[0].unwrap_or(0);
        assert!(
            emitted <= committed + 5,
            "{emitted} records emitted with {committed} committed"
        );
        if emitted == 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {emitted} of 20 emitted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(custom(&topo.shutdown(), "kafka", "paused") >= 3);
}

#[test]
fn at_most_once_commits_before_emitting_and_never_replays() {
    let t = Topic::create("amo", 1);
    t.produce(0, &texts("amo", 10));
    let (topo, gate) = t.spout(1, json!({"processing_guarantee": "atMostOnce"}));
    for o in 0..10 {
        gate.set(0, o, Action::FailAlways);
    }
    wait_until(LIMIT, "10 records", || gate.default_stream().len(), |n| *n >= 10);
    // The commit came before the records: it is already there.
    assert_eq!(t.committed(&[0]), [Some(10)]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gate.default_stream().len(), 10, "failed records are not replayed");
    let s = topo.shutdown();
    assert_eq!(s.component("kafka").unwrap().total.failed, 0, "no message ids");
}

#[test]
fn first_poll_strategies() {
    let t = Topic::create("first", 1);
    t.produce(0, &texts("first", 4));
    // UNCOMMITTED_LATEST without a commit starts at the end: only what comes later.
    let (topo, gate) = t.spout(1, json!({"first_poll_offset_strategy": "UNCOMMITTED_LATEST"}));
    // The assignment is in place once the spout reports lag for the partition.
    t.wait_lag(&topo, "the assignment", Option::is_some);
    t.produce(0, &texts("later", 2));
    wait_until(
        LIMIT,
        "the later records",
        || gate.default_stream().len(),
        |n| *n >= 2,
    );
    let offsets: Vec<i64> = gate.default_stream().iter().map(|s| s.int("offset")).collect();
    assert_eq!(offsets, [4, 5]);
    topo.shutdown();
    // EARLIEST ignores another topology's commit (g-first is at 6) and reads from 0.
    let earliest = json!({"first_poll_offset_strategy": "EARLIEST"});
    let (topo, gate) = t.spout_as("other", 1, earliest.clone());
    wait_until(LIMIT, "all 6", || gate.default_stream().len(), |n| *n >= 6);
    topo.shutdown();
    // EARLIEST again for the topology that committed last: it resumes from its commit.
    t.produce(0, &texts("last", 1));
    let (topo, gate) = t.spout_as("other", 1, earliest);
    wait_until(
        LIMIT,
        "the new record",
        || gate.default_stream().len(),
        |n| *n >= 1,
    );
    std::thread::sleep(Duration::from_millis(500));
    let offsets: Vec<i64> = gate.default_stream().iter().map(|s| s.int("offset")).collect();
    assert_eq!(offsets, [6]);
    topo.shutdown();
}

#[test]
fn partitions_added_to_a_topic_are_picked_up_at_the_next_refresh() {
    let t = Topic::create("grow", 1);
    t.produce(0, &texts("p0", 3));
    let (topo, gate) = t.spout(2, json!({}));
    wait_until(LIMIT, "partition 0", || gate.default_stream().len(), |n| *n >= 3);
    broker().add_partitions("grow", 2).unwrap();
    // Keep producing to partition 1 until the spout's refresh picked it up.
    let deadline = Instant::now() + LIMIT;
    while !gate.default_stream().iter().any(|s| s.int("partition") == 1) {
        assert!(Instant::now() < deadline, "partition 1 never read");
        t.produce(1, &texts("p1", 1));
        std::thread::sleep(Duration::from_millis(500));
    }
    let seen = gate.default_stream();
    let task = |p: i64| {
        seen.iter()
            .filter(|s| s.int("partition") == p)
            .map(|s| s.task)
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(task(0).len(), 1);
    assert_eq!(task(1).len(), 1);
    assert_ne!(task(0), task(1), "the new partition went to the other task");
    // Read from its first offset: nothing was committed for it (UNCOMMITTED_EARLIEST).
    assert_eq!(
        seen.iter()
            .filter(|s| s.int("partition") == 1)
            .map(|s| s.int("offset"))
            .min(),
        Some(0)
    );
    topo.shutdown();
}
