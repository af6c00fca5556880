//! `squall run --ui`: the Kafka spouts' lag (`GET /api/v1/topology/{id}/lag`) over a real
//! run against a real broker on loopback, in process and on worker processes. The
//! topology writes 200 numbers to a topic of two partitions with the `kafka-producer`
//! bolt, keyed so both partitions get records, and reads them back with the `kafka` spout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_testenv::KafkaBroker;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_squall");

/// The run under test, killed if the test fails before it ends.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One GET over a fresh connection: the JSON body of a 200.
fn get(addr: SocketAddr, path: &str) -> Value {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn start(cmd: &mut Command) -> (Run, SocketAddr) {
    let mut run = Run(cmd
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap());
    let mut out = BufReader::new(run.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "squall ended before printing the API's URL"
        );
        if let Some(rest) = line.split("http://").nth(1) {
            let addr = rest.split('/').next().unwrap().parse().unwrap();
            // Keep reading stdout so the run never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (run, addr);
        }
    }
}

fn manifest(dir: &std::path::Path, bootstrap: &str, topic: &str) -> PathBuf {
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: lag}}
spec:
  ackers: 1
  spouts:
    - name: numbers
      component: sequence
      config: {{count: 200, reliable: true}}
    - name: edits
      component: kafka
      config:
        bootstrap_servers: "{bootstrap}"
        topics: [{topic}]
        group_id: g-{topic}
        offset_commit_period_ms: 200
        lag_interval_ms: 200
  bolts:
    - name: produce
      component: kafka-producer
      config: {{bootstrap_servers: "{bootstrap}", topic: {topic}, key_field: n}}
      inputs: [{{from: numbers}}]
    - name: sink
      component: "null"
      inputs: [{{from: edits}}]
"#
    );
    let path = dir.join(format!("{topic}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Partition -> (committed, head, lag) of spout `edits`, topic `topic`.
fn lags(v: &Value, topic: &str) -> Vec<(String, Option<u64>, u64, u64)> {
    let Some(parts) = v["edits"]["spoutLagResult"][topic].as_object() else {
        return Vec::new();
    };
    parts
        .iter()
        .map(|(p, f)| {
            (
                p.clone(),
                f["consumerCommittedOffset"].as_u64(),
                f["logHeadOffset"].as_u64().unwrap(),
                f["lag"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Runs the topology and waits until the API shows all 200 records read and committed.
fn all_read_and_committed(broker: &KafkaBroker, topic: &str, extra: &[&str]) {
    broker.create_topic(topic, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path(), &broker.bootstrap(), topic);
    let worker = PathBuf::from(BIN).with_file_name("squall-worker");
    let (_run, addr) = start(
        Command::new(BIN)
            .args(["run", "--ui", "127.0.0.1:0", "--for", "90s", "--quiet"])
            .args(extra)
            .arg(&file)
            .env("SQUALL_WORKER_BIN", &worker),
    );
    let path = "/api/v1/topology/lag/lag";
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let v = get(addr, path);
        let l = lags(&v, topic);
        // Keyed records spread over both partitions; each must be read and committed.
        let done = l.len() == 2
            && l.iter().map(|x| x.2).sum::<u64>() >= 200
            && l.iter()
                .all(|(_, committed, head, lag)| *head > 0 && *committed == Some(*head) && *lag == 0);
        if done {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "{extra:?}: the lag never showed 200 records read and committed: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let spouts: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(spouts, ["edits"], "the sequence spout has no lag");
    assert_eq!(v["edits"]["spoutId"], "edits");
    assert_eq!(v["edits"]["spoutType"], "KAFKA");
    let parts: Vec<String> = lags(&v, topic).into_iter().map(|x| x.0).collect();
    assert_eq!(parts, ["0", "1"]);
}

#[test]
fn the_lag_of_a_kafka_spout_in_process_and_on_workers() {
    let broker = KafkaBroker::start().unwrap_or_else(|e| panic!("starting the Kafka broker: {e}"));
    all_read_and_committed(&broker, "in-process", &[]);
    let worker = PathBuf::from(BIN).with_file_name("squall-worker");
    assert!(
        worker.exists(),
        "{} is not built: run `cargo build -p squall-worker` or the workspace's tests",
        worker.display()
    );
    all_read_and_committed(&broker, "on-workers", &["--workers", "2"]);
}
