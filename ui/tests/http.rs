//! The API over real HTTP: a server on 127.0.0.1:0, a hyper client, synthetic samples.
//! Field names and shapes are Storm's (docs/STORM-UI-REST-API.md of Apache Storm).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use squall_ui::{Options, PartitionLag};
use support::{call, get, serve, word_count, Recorder, SPOUT_RATE};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn has_all(v: &Value, want: &[&str]) {
    let have = keys(v);
    for k in want {
        assert!(have.contains(k), "missing {k:?} in {have:?}");
    }
}

/// A topology that has run 20 minutes, sampled every 10 s.
async fn running() -> (support::Served, std::net::SocketAddr, Recorder) {
    let control = Recorder::default();
    let served = serve(control.clone(), Options::default()).await;
    for t in (0..=1200).step_by(10) {
        served.feed(word_count(t)).await;
    }
    let addr = served.addr;
    (served, addr, control)
}

#[tokio::test]
async fn summaries_have_storms_fields() {
    let (_ui, addr, _) = running().await;
    let c = get(addr, "/api/v1/cluster/summary").await;
    has_all(
        &c,
        &[
            "stormVersion",
            "supervisors",
            "topologies",
            "slotsTotal",
            "slotsUsed",
            "slotsFree",
            "executorsTotal",
            "tasksTotal",
        ],
    );
    assert_eq!(
        (c["topologies"].as_u64(), c["executorsTotal"].as_u64()),
        (Some(1), Some(5))
    );

    let s = get(addr, "/api/v1/topology/summary").await;
    let t = &s["topologies"][0];
    has_all(
        t,
        &[
            "id",
            "name",
            "status",
            "uptime",
            "uptimeSeconds",
            "tasksTotal",
            "workersTotal",
            "executorsTotal",
        ],
    );
    assert_eq!(t["id"], "wc");
    assert_eq!(t["name"], "word-count");
    assert_eq!(t["status"], "ACTIVE");
    assert_eq!(t["uptime"], "20m 0s");
    assert_eq!(t["uptimeSeconds"], 1200);
}

#[tokio::test]
async fn the_topology_page_has_storms_fields_and_windows() {
    let (_ui, addr, _) = running().await;
    let p = get(addr, "/api/v1/topology/wc?window=600").await;
    has_all(
        &p,
        &[
            "id",
            "name",
            "status",
            "uptime",
            "uptimeSeconds",
            "tasksTotal",
            "workersTotal",
            "executorsTotal",
            "msgTimeout",
            "window",
            "windowHint",
            "topologyStats",
            "spouts",
            "bolts",
        ],
    );
    assert_eq!(
        (p["window"].as_str(), p["windowHint"].as_str()),
        (Some("600"), Some("10m 0s"))
    );
    let windows: Vec<(&str, &str)> = p["topologyStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["window"].as_str().unwrap(), w["windowPretty"].as_str().unwrap()))
        .collect();
    assert_eq!(
        windows,
        [
            ("600", "10m 0s"),
            ("10800", "3h 0m 0s"),
            ("86400", "1d 0h 0m 0s"),
            (":all-time", "All time")
        ]
    );
    for w in p["topologyStats"].as_array().unwrap() {
        has_all(
            w,
            &["emitted", "transferred", "completeLatency", "acked", "failed"],
        );
    }
    // 10 minutes of a spout at 100/s; all time is 20 minutes.
    assert_eq!(p["topologyStats"][0]["acked"], SPOUT_RATE * 600);
    assert_eq!(p["topologyStats"][3]["acked"], SPOUT_RATE * 1200);

    let spout = &p["spouts"][0];
    has_all(
        spout,
        &[
            "spoutId",
            "executors",
            "tasks",
            "emitted",
            "transferred",
            "completeLatency",
            "acked",
            "failed",
            "lastError",
            "errorHost",
            "errorPort",
            "errorTime",
            "errorLapsedSecs",
            "errorWorkerLogLink",
        ],
    );
    assert_eq!(spout["spoutId"], "sentences");
    assert_eq!(spout["emitted"], SPOUT_RATE * 600);
    assert_eq!(spout["completeLatency"], "0.800");
    assert_eq!(
        (spout["lastError"].as_str(), spout["errorTime"].is_null()),
        (Some(""), true)
    );

    let bolts = p["bolts"].as_array().unwrap();
    let ids: Vec<&str> = bolts.iter().map(|b| b["boltId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["split", "count"], "system components only with sys=1");
    let count = &bolts[1];
    has_all(
        count,
        &[
            "boltId",
            "executors",
            "tasks",
            "emitted",
            "transferred",
            "capacity",
            "executeLatency",
            "executed",
            "processLatency",
            "acked",
            "failed",
            "lastError",
            "errorHost",
            "errorPort",
            "errorTime",
            "errorLapsedSecs",
        ],
    );
    assert_eq!(count["capacity"], "0.200");
    assert_eq!(count["lastError"], "boom");
    assert_eq!(
        (
            count["errorPort"].as_u64(),
            count["errorTime"].as_u64(),
            count["errorLapsedSecs"].as_u64()
        ),
        (Some(6700), Some(1_700_000_000), Some(100))
    );
    assert_eq!(bolts[0]["rates"]["executed"], 100.0);

    let sys = get(addr, "/api/v1/topology/wc?sys=1").await;
    assert_eq!(sys["bolts"].as_array().unwrap().len(), 3);
    assert_eq!(sys["window"], ":all-time", "Storm's default window");
}

#[tokio::test]
async fn the_component_page_has_executor_and_stream_figures() {
    let (_ui, addr, _) = running().await;
    let p = get(addr, "/api/v1/topology/wc/component/split?window=600").await;
    has_all(
        &p,
        &[
            "id",
            "name",
            "topologyId",
            "topologyStatus",
            "componentType",
            "window",
            "windowHint",
            "executors",
            "tasks",
            "componentErrors",
            "boltStats",
            "inputStats",
            "outputStats",
            "executorStats",
        ],
    );
    assert_eq!(
        (p["componentType"].as_str(), p["executors"].as_u64()),
        (Some("bolt"), Some(2))
    );
    assert_eq!(p["boltStats"].as_array().unwrap().len(), 4);
    let ex = p["executorStats"].as_array().unwrap();
    assert_eq!(ex.len(), 2);
    has_all(
        &ex[0],
        &[
            "id",
            "host",
            "port",
            "uptime",
            "uptimeSeconds",
            "emitted",
            "transferred",
            "capacity",
            "executeLatency",
            "executed",
            "processLatency",
            "acked",
            "failed",
        ],
    );
    let caps: Vec<&str> = ex.iter().map(|e| e["capacity"].as_str().unwrap()).collect();
    assert_eq!(caps, ["0.250", "0.500"]);
    assert_eq!(ex[1]["id"], "[3-3]");
    assert_eq!(ex[1]["executed"], 50 * 600);
    let input = &p["inputStats"][0];
    has_all(
        input,
        &[
            "component",
            "stream",
            "executeLatency",
            "processLatency",
            "executed",
            "acked",
            "failed",
        ],
    );
    assert_eq!(
        (input["component"].as_str(), input["executed"].as_u64()),
        (Some("sentences"), Some(SPOUT_RATE * 600))
    );
    has_all(&p["outputStats"][0], &["stream", "emitted", "transferred"]);

    let spout = get(addr, "/api/v1/topology/wc/component/sentences").await;
    assert_eq!(spout["componentType"], "spout");
    assert!(spout["spoutSummary"].is_array() && spout.get("boltStats").is_none());
    let errors = get(addr, "/api/v1/topology/wc/component/count").await;
    has_all(
        &errors["componentErrors"][0],
        &["error", "errorTime", "errorHost", "errorPort", "errorLapsedSecs"],
    );
}

#[tokio::test]
async fn the_visualization_is_the_graph() {
    let (_ui, addr, _) = running().await;
    let v = get(addr, "/api/v1/topology/wc/visualization").await;
    let nodes: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["sentences", "split", "count"]);
    let edges: Vec<(&str, &str, &str, &str)> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["stream"].as_str().unwrap(),
                e["grouping"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("sentences", "split", "default", "shuffle"),
            ("split", "count", "default", "fields")
        ]
    );
    let sys = get(addr, "/api/v1/topology/wc/visualization?sys=1").await;
    assert_eq!(sys["edges"].as_array().unwrap().len(), 3);
}

/// `wc` with a second spout, `edits`, reading two partitions of `edits` and one of
/// `more`: what a Kafka spout's gauges become.
fn with_kafka(t: u64) -> squall_ui::TopologySample {
    let mut s = word_count(t);
    let mut spout = s.components[0].clone();
    spout.id = "edits".into();
    let p = |topic: &str, partition, committed, head, lag| PartitionLag {
        topic: topic.into(),
        partition,
        committed,
        head,
        lag,
    };
    spout.lags = vec![
        p("edits", 0, Some(100 + t), 150 + t, 50),
        p("edits", 1, None, 7, 7),
        p("more", 3, Some(5), 5, 0),
    ];
    s.components.insert(1, spout);
    s
}

#[tokio::test]
async fn the_lag_is_storms_spout_lag_of_the_kafka_spouts_only() {
    let control = Recorder::default();
    let served = serve(control, Options::default()).await;
    let addr = served.addr;
    served.feed(word_count(10)).await;
    let v = get(addr, "/api/v1/topology/wc/lag").await;
    assert_eq!(v, serde_json::json!({}), "no Kafka spout: an empty object");

    served.feed(with_kafka(20)).await;
    let v = get(addr, "/api/v1/topology/wc/lag").await;
    assert_eq!(keys(&v), ["edits"], "the spout without lag is left out");
    assert_eq!(
        v["edits"],
        serde_json::json!({
            "spoutId": "edits",
            "spoutType": "KAFKA",
            "spoutLagResult": {
                "edits": {
                    "0": {"consumerCommittedOffset": 120, "logHeadOffset": 170, "lag": 50},
                    "1": {"consumerCommittedOffset": null, "logHeadOffset": 7, "lag": 7}
                },
                "more": {"3": {"consumerCommittedOffset": 5, "logHeadOffset": 5, "lag": 0}}
            }
        })
    );
    // Gauges are the newest sample's, whatever the window.
    served.feed(with_kafka(30)).await;
    let v = get(addr, "/api/v1/topology/wc/lag?window=600").await;
    assert_eq!(v["edits"]["spoutLagResult"]["edits"]["0"]["logHeadOffset"], 180);

    let (status, _, _) = call(addr, "GET", "/api/v1/topology/nope/lag", b"").await;
    assert_eq!(status, 404);
    let (status, allow, _) = call(addr, "POST", "/api/v1/topology/wc/lag", b"").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET")));
}

async fn error(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Option<String>, Value) {
    let (status, allow, body) = call(addr, method, path, body).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    has_all(&v, &["error", "errorMessage"]);
    assert!(
        v["error"].as_str().unwrap().starts_with(&status.to_string()),
        "{v}"
    );
    (status, allow, v)
}

#[tokio::test]
async fn bad_requests_get_4xx_with_storms_error_body() {
    let (_ui, addr, _) = running().await;
    assert_eq!(error(addr, "GET", "/api/v1/nothing", b"").await.0, 404);
    assert_eq!(error(addr, "GET", "/api/v1/topology/nope", b"").await.0, 404);
    assert_eq!(
        error(addr, "GET", "/api/v1/topology/wc/component/nope", b"")
            .await
            .0,
        404
    );
    let (status, _, v) = error(addr, "GET", "/api/v1/topology/wc?window=60", b"").await;
    assert_eq!(status, 400);
    assert!(v["errorMessage"].as_str().unwrap().contains(":all-time"), "{v}");
    assert_eq!(
        error(addr, "POST", "/api/v1/topology/wc/kill/soon", b"").await.0,
        400
    );
    assert_eq!(
        error(addr, "POST", "/api/v1/topology/wc/rebalance/0", b"{not json")
            .await
            .0,
        400
    );
    let (status, allow, _) = error(addr, "GET", "/api/v1/topology/wc/kill/0", b"").await;
    assert_eq!((status, allow.as_deref()), (405, Some("POST")));
    let (status, allow, _) = error(addr, "POST", "/api/v1/topology/summary", b"").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET")));
    let long = format!("/api/v1/topology/{}", "x".repeat(3000));
    let (status, _, v) = error(addr, "GET", &long, b"").await;
    assert_eq!(status, 414);
    assert!(v["errorMessage"].as_str().unwrap().contains("2048"), "{v}");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_naming_it() {
    let (_ui, addr, _) = running().await;
    let big = vec![b' '; 64 * 1024 + 1];
    let (status, _, v) = error(addr, "POST", "/api/v1/topology/wc/rebalance/0", &big).await;
    assert_eq!(status, 413);
    assert!(v["errorMessage"].as_str().unwrap().contains("65536 bytes"), "{v}");

    // Without a length up front: the body is cut off as it arrives.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = vec![b' '; 70 * 1024];
    let head = format!(
        "POST /api/v1/topology/wc/rebalance/0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&chunk).await;
    let _ = s.write_all(b"\r\n0\r\n\r\n").await;
    let mut answer = vec![0; 4096];
    let n = s.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("65536 bytes"), "{answer}");
}

#[tokio::test]
async fn actions_answer_storms_shape_and_reach_the_control() {
    let (_ui, addr, control) = running().await;
    let (status, _, body) = call(addr, "POST", "/api/v1/topology/wc/activate", b"").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"topologyOperation": "activate", "topologyId": "wc", "status": "success"})
    );
    let (status, _, body) = call(addr, "POST", "/api/v1/topology/wc/kill/3", b"").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["topologyOperation"],
        "kill"
    );

    assert_eq!(
        error(addr, "POST", "/api/v1/topology/nope/activate", b"").await.0,
        404
    );
    let (status, _, v) = error(addr, "POST", "/api/v1/topology/wc/deactivate", b"").await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (409, Some("already inactive"))
    );
    let body = br#"{"rebalanceOptions": {"numWorkers": 2, "executors": {"split": "4"}}}"#;
    let (status, allow, v) = error(addr, "POST", "/api/v1/topology/wc/rebalance/5", body).await;
    assert_eq!((status, allow.as_deref()), (405, Some("")));
    assert!(v["errorMessage"].as_str().unwrap().contains("not offered"), "{v}");
    assert_eq!(
        *control.seen.lock().unwrap(),
        [
            "activate wc",
            "kill wc 3",
            r#"rebalance wc 5 Some(2) {"split": 4}"#
        ]
    );
}

#[tokio::test]
async fn a_slow_action_times_out_with_408() {
    let control = Recorder {
        kill_takes: Duration::from_secs(5),
        ..Recorder::default()
    };
    let options = Options {
        request_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let served = serve(control, options).await;
    served.feed(word_count(10)).await;
    let addr = served.addr;
    let (status, _, v) = error(addr, "POST", "/api/v1/topology/wc/kill/0", b"").await;
    assert_eq!(status, 408);
    assert!(v["errorMessage"].as_str().unwrap().contains("200ms"), "{v}");
}

#[tokio::test]
async fn the_sampler_feeds_the_pages_and_forgets_topologies_that_are_gone() {
    let source = support::Manual::default();
    *source.0.lock().unwrap() = vec![word_count(10)];
    let ui = squall_ui::Ui::new(
        source.clone(),
        squall_ui::ReadOnly,
        Options {
            period: Duration::from_millis(20),
            ..Options::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ui.clone();
    tokio::spawn(async move { server.serve(listener).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut summary = get(addr, "/api/v1/topology/summary").await;
    while summary["topologies"].as_array().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        summary = get(addr, "/api/v1/topology/summary").await;
    }
    assert_eq!(summary["topologies"][0]["uptimeSeconds"], 10);
    let (status, allow, _) = call(addr, "POST", "/api/v1/topology/wc/activate", b"").await;
    assert_eq!(
        (status, allow.as_deref()),
        (405, Some("")),
        "a read-only API offers no actions"
    );

    source.0.lock().unwrap().clear();
    while ui.samples_held("wc").is_some() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(error(addr, "GET", "/api/v1/topology/wc", b"").await.0, 404);
}

#[tokio::test]
async fn heads_over_the_limit_are_refused() {
    let (_served, addr, _) = running().await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/v1/topology/summary HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "y".repeat(20 * 1024)
    );
    let _ = s.write_all(head.as_bytes()).await;
    let mut answer = vec![0; 1024];
    let n = s.read(&mut answer).await.unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}

/// Answers once, then never again.
struct OnceOnly(std::sync::atomic::AtomicBool);

impl squall_ui::Source for OnceOnly {
    async fn sample(&self) -> Option<Vec<squall_ui::TopologySample>> {
        let first = !self.0.swap(true, std::sync::atomic::Ordering::SeqCst);
        first.then(|| vec![word_count(42)])
    }
}

#[tokio::test]
async fn a_source_without_an_answer_keeps_the_histories() {
    let ui = squall_ui::Ui::new(
        OnceOnly(Default::default()),
        squall_ui::ReadOnly,
        Options {
            period: Duration::from_millis(10),
            ..Options::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ui.clone();
    tokio::spawn(async move { server.serve(listener).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(addr, "/api/v1/topology/wc").await["uptimeSeconds"], 42);
}
