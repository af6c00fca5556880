//! `squall feed kafka` and `squall run` of the Wikipedia example's Kafka topology, end to
//! end against a real broker (kafka-testenv) and a real redis-server, both on loopback:
//! the counts in Redis are those of the edits published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_testenv::KafkaBroker;
use squall_feed::{expected_counts, talk_keys, DataSet, DEFAULT_SEED};

const BIN: &str = env!("CARGO_BIN_EXE_squall");
const EDITS: u64 = 2000;

struct Redis(Child, u16, #[allow(dead_code)] tempfile::TempDir);

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run `make redis-server`");
        let r = Redis(child, port, dir);
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.1.to_string())
            .args(args)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// member -> score of a sorted set.
    fn zset(&self, key: &str) -> BTreeMap<String, u64> {
        let out = self.cli(&["ZRANGE", key, "0", "-1", "WITHSCORES"]);
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_owned(), c[1].parse().unwrap()))
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn feed_kafka_then_run_the_kafka_example_counts_every_published_edit() {
    let broker = KafkaBroker::start_on(Ipv4Addr::new(127, 0, 0, 4)).unwrap();
    broker.create_topic("edits", 3).unwrap();
    let redis = Redis::start();

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
    let reached = |r: &Redis| {
        want.iter().all(|(set, members)| {
            let got = r.zset(set);
            members
                .iter()
                .all(|(m, n)| got.get(m).copied().unwrap_or(0) >= *n)
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
        .arg(format!(
            "spec.bolts.counts.config.url=redis://127.0.0.1:{}",
            redis.1
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !reached(&redis) && Instant::now() < deadline {
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
    for (set, members) in &want {
        let got = redis.zset(set);
        for (member, n) in members {
            let g = got.get(member).copied().unwrap_or(0);
            assert_eq!(g, *n, "{set} {member}; the run:\n{summary}");
        }
    }
    assert_eq!(redis.zset("country").len(), want["country"].len());
}
