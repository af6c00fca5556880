//! `squall feed kafka` and `squall run` of the Wikipedia example's Kafka topology, end to
//! end against a real broker (kafka-testenv) and a real redis-server, both on loopback:
//! the counts in Redis are those of the edits published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_testenv::KafkaBroker;
use redis_testenv::RedisServer;
use squall_feed::{expected_counts, talk_keys, DataSet, DEFAULT_SEED};

const BIN: &str = env!("CARGO_BIN_EXE_squall");
const EDITS: u64 = 2000;

#[test]
fn feed_kafka_then_run_the_kafka_example_counts_every_published_edit() {
    let broker = KafkaBroker::start_on(Ipv4Addr::new(127, 0, 0, 4)).unwrap();
    broker.create_topic("edits", 3).unwrap();
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));

    let feed = Command::new(BIN)
        .args([
            "feed",
            "kafka",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            "edits",
        ])
        .args(["--rate", "0", "--count", &EDITS.to_string()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&feed.stdout);
    assert!(
        feed.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&feed.stderr)
    );
    assert!(
        out.contains(&format!("feed: {EDITS} events published to edits")),
        "{out}"
    );

    let data = DataSet::new(DEFAULT_SEED);
    let keys: Vec<String> = (0..EDITS).flat_map(|i| talk_keys(&data.edit(i))).collect();
    let want = expected_counts(keys.iter().map(String::as_str));
    let sets: Vec<&str> = want.keys().map(String::as_str).collect();
    let reached = || {
        let got = redis.counts(&sets).unwrap_or_default();
        want.iter().all(|(set, members)| {
            let got = got.get(set);
            members
                .iter()
                .all(|(m, n)| got.and_then(|g| g.get(m)).is_some_and(|g| g >= n))
        })
    };

    // Runs until every count is reached (at most 120 s), then Ctrl-C (SIGINT): the run
    // stops, printing its summary.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/wikipedia-edits/topology-kafka.yaml"
    );
    let run = Command::new(BIN)
        .args(["run", example, "--for", "120s"])
        .arg("--set")
        .arg(format!(
            "spec.spouts.edits.config.bootstrap_servers={}",
            broker.bootstrap()
        ))
        .arg("--set")
        .arg(format!("spec.bolts.counts.config.url={}", redis.url()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !reached() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500)); // anything counted twice shows now
    let _ = Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status();
    let run = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    let summary = format!("{}{err}", String::from_utf8_lossy(&run.stdout));
    assert!(run.status.success(), "{summary}");

    // The example counts exactly once: every edit once, whatever was replayed.
    let got = redis.counts(&sets).unwrap();
    assert_eq!(got, want, "the run:\n{summary}");
}
