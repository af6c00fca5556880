//! `squall run --ui ADDR`: Storm's REST API over a real run, read with a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_squall");

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .join("topology.yaml")
}

/// One request: status and JSON body.
fn call(addr: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    })
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let (status, v) = call(addr, "GET", path);
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// The run under test, killed if the test fails before it ends.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `squall run` with `--ui 127.0.0.1:0` and reads the API's address from the line
/// it prints.
fn start(cmd: &mut Command) -> (Run, SocketAddr, BufReader<std::process::ChildStdout>) {
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
            assert!(line.contains("/api/v1/"), "{line}");
            return (run, addr, out);
        }
    }
}

fn rest_of(mut out: BufReader<std::process::ChildStdout>) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut out, &mut s).unwrap();
    s
}

/// The id of the one topology the API lists.
fn topology_id(addr: SocketAddr) -> String {
    let s = get(addr, "/api/v1/topology/summary");
    let ts = s["topologies"].as_array().unwrap();
    assert_eq!(ts.len(), 1, "{s}");
    ts[0]["id"].as_str().unwrap().to_owned()
}

fn spout_emitted(addr: SocketAddr, id: &str) -> u64 {
    get(addr, &format!("/api/v1/topology/{id}"))["spouts"][0]["emitted"]
        .as_u64()
        .unwrap()
}

/// Waits until `f` holds, for at most 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn word_count_counts_grow_and_the_graph_is_the_manifests() {
    let (mut child, addr, out) = start(
        Command::new(BIN)
            .args(["run", "--ui", "127.0.0.1:0", "--for", "10s"])
            .arg(example("word-count")),
    );
    let id = topology_id(addr);
    assert_eq!(id, "word-count");
    let first = get(addr, &format!("/api/v1/topology/{id}"));
    assert_eq!(first["status"], "ACTIVE");
    let before = first["topologyStats"][3]["emitted"].as_u64().unwrap();
    // The API samples every second: the next sample must show more.
    eventually("the counts to grow", || {
        let now = get(addr, &format!("/api/v1/topology/{id}?window=600"));
        now["topologyStats"][3]["emitted"].as_u64().unwrap() > before
            && now["bolts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["executed"].as_u64().unwrap() > 0)
    });
    let page = get(addr, &format!("/api/v1/topology/{id}"));
    let bolts: Vec<&str> = page["bolts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["boltId"].as_str().unwrap())
        .collect();
    assert_eq!(bolts, ["split", "count", "log"]);

    let v = get(addr, &format!("/api/v1/topology/{id}/visualization"));
    let nodes: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["sentences", "split", "count", "log"]);
    let mut edges: Vec<String> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}->{} {} {}",
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["stream"].as_str().unwrap(),
                e["grouping"].as_str().unwrap()
            )
        })
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            "count->log default shuffle",
            "sentences->split default shuffle",
            "split->count default fields"
        ]
    );

    // Executors publish their counts per batch, so one executor's first
    // counts may reach the API a sample later than the other's.
    let split_page = || get(addr, &format!("/api/v1/topology/{id}/component/split?window=600"));
    eventually("both split executors to execute", || {
        split_page()["executorStats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["executed"].as_u64().unwrap() > 0)
    });
    let split = split_page();
    assert_eq!(split["executorStats"].as_array().unwrap().len(), 2, "{split}");
    assert_eq!(split["inputStats"][0]["component"], "sentences");

    let (status, v) = call(addr, "POST", &format!("/api/v1/topology/{id}/rebalance/0"));
    assert_eq!(status, 405, "{v}");
    assert!(v["errorMessage"].as_str().unwrap().contains("local mode"), "{v}");
    let (status, _) = call(addr, "GET", "/api/v1/topology/nope");
    assert_eq!(status, 404);

    let status = child.0.wait().unwrap();
    assert!(status.success());
    assert!(rest_of(out).contains("--for 10.0s elapsed"));
}

#[test]
fn deactivate_stops_the_spouts_and_kill_ends_the_run() {
    let (mut child, addr, out) = start(
        Command::new(BIN)
            .args(["run", "--ui", "127.0.0.1:0", "--for", "60s", "--quiet"])
            .arg(example("word-count")),
    );
    let id = topology_id(addr);
    eventually("tuples", || spout_emitted(addr, &id) > 0);
    let (status, v) = call(addr, "POST", &format!("/api/v1/topology/{id}/deactivate"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["topologyOperation"], "deactivate");
    eventually("INACTIVE", || {
        get(addr, &format!("/api/v1/topology/{id}"))["status"] == "INACTIVE"
    });
    let stopped = spout_emitted(addr, &id);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        spout_emitted(addr, &id),
        stopped,
        "an inactive spout emits nothing"
    );
    let (status, _) = call(addr, "POST", &format!("/api/v1/topology/{id}/activate"));
    assert_eq!(status, 200);
    eventually("more tuples", || spout_emitted(addr, &id) > stopped);

    let started = Instant::now();
    let (status, v) = call(addr, "POST", &format!("/api/v1/topology/{id}/kill/0"));
    assert_eq!((status, v["status"].as_str()), (200, Some("success")));
    assert!(child.0.wait().unwrap().success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the kill ends the run"
    );
    assert!(rest_of(out).contains("killed through the REST API"));
}

#[test]
fn on_workers_the_api_reads_every_worker_and_switches_their_spouts() {
    let squall = PathBuf::from(BIN);
    let worker = squall.with_file_name("squall-worker");
    assert!(
        worker.exists(),
        "{} is not built: run `cargo build -p squall-worker` or the workspace's tests",
        worker.display()
    );
    let (mut child, addr, out) = start(
        Command::new(BIN)
            .args([
                "run",
                "--workers",
                "2",
                "--ui",
                "127.0.0.1:0",
                "--for",
                "60s",
                "--quiet",
            ])
            .arg(example("word-count"))
            .env("SQUALL_WORKER_BIN", &worker),
    );
    let id = topology_id(addr);
    eventually("tuples", || spout_emitted(addr, &id) > 0);
    let page = get(addr, &format!("/api/v1/topology/{id}"));
    assert_eq!(page["workersTotal"], 2);
    let count = get(addr, &format!("/api/v1/topology/{id}/component/count"));
    let workers: Vec<&str> = count["executorStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["worker"].as_str().unwrap())
        .collect();
    assert_eq!(
        workers.len(),
        2,
        "count's two executors are dealt to both workers: {count}"
    );
    // Per-stream rows come from the workers' pages, summed over both.
    eventually("count's input and output rows", || {
        let count = get(
            addr,
            &format!("/api/v1/topology/{id}/component/count?window=:all-time"),
        );
        let (input, output) = (&count["inputStats"][0], &count["outputStats"][0]);
        input["component"] == "split"
            && input["executed"].as_u64().unwrap() > 0
            && output["stream"] == "default"
            && output["emitted"].as_u64().unwrap() > 0
    });

    let (status, _) = call(addr, "POST", &format!("/api/v1/topology/{id}/deactivate"));
    assert_eq!(status, 200);
    eventually("INACTIVE", || {
        get(addr, &format!("/api/v1/topology/{id}"))["status"] == "INACTIVE"
    });
    // The workers switch their spouts when they see the new assignment.
    let mut last = spout_emitted(addr, &id);
    eventually("the spouts to stop", || {
        std::thread::sleep(Duration::from_millis(800));
        let now = spout_emitted(addr, &id);
        std::mem::replace(&mut last, now) == now
    });
    let (status, _) = call(addr, "POST", &format!("/api/v1/topology/{id}/kill/0"));
    assert_eq!(status, 200);
    assert!(child.0.wait().unwrap().success());
    assert!(rest_of(out).contains("killed through the REST API"));
}
