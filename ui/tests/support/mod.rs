//! A synthetic word-count topology whose counters grow linearly with uptime, a source
//! and a control driven by the tests, and a small HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use squall_ui::{
    ComponentKind, ComponentSample, Control, ControlError, Edge, ErrorReport, ExecutorSample, Figures,
    InputSample, Latency, Options, OutputSample, RebalanceOptions, Source, Status, TopologyInfo,
    TopologySample, Ui,
};

/// Tuples per second the spout emits (and trees it completes).
pub const SPOUT_RATE: u64 = 100;
/// Words per sentence: split emits this many per tuple executed.
pub const WORDS: u64 = 5;
/// Busy fractions of split's two executors: capacity is the larger.
pub const SPLIT_BUSY: [f64; 2] = [0.25, 0.5];

fn figures(t: u64, emitted: u64, executed: u64, busy: f64) -> Figures {
    Figures {
        emitted: emitted * t,
        transferred: emitted * t,
        executed: executed * t,
        acked: executed * t,
        failed: 0,
        errors: 0,
        busy: Some(Duration::from_secs_f64(busy * t as f64)),
        backpressure: Duration::from_secs_f64(0.1 * t as f64),
        execute_latency: Latency {
            count: executed * t,
            sum_us: 80 * executed * t,
        },
        process_latency: Latency::default(),
        complete_latency: Latency::default(),
    }
}

fn row(id: &str, t: u64, f: Figures) -> ExecutorSample {
    ExecutorSample {
        id: id.into(),
        executors: 1,
        host: "127.0.0.1".into(),
        port: None,
        worker: None,
        uptime: Duration::from_secs(t),
        figures: f,
    }
}

/// The synthetic topology `wc` at uptime `t` seconds.
pub fn word_count(t: u64) -> TopologySample {
    let mut spout = figures(t, SPOUT_RATE, 0, 0.1);
    spout.acked = SPOUT_RATE * t;
    spout.complete_latency = Latency {
        count: SPOUT_RATE * t,
        sum_us: 800 * SPOUT_RATE * t,
    };
    let half = SPOUT_RATE / 2;
    let split_rows: Vec<ExecutorSample> = SPLIT_BUSY
        .iter()
        .enumerate()
        .map(|(i, b)| {
            row(
                &format!("[{}-{}]", i + 2, i + 2),
                t,
                figures(t, half * WORDS, half, *b),
            )
        })
        .collect();
    let mut split_total = Figures::default();
    for r in &split_rows {
        split_total.add(&r.figures);
    }
    let count = figures(t, SPOUT_RATE * WORDS, SPOUT_RATE * WORDS, 0.2);
    let comp = |id: &str, kind, executors, totals: Figures, by_executor| ComponentSample {
        id: id.into(),
        kind,
        system: id.starts_with("__"),
        executors,
        tasks: executors,
        totals,
        by_executor,
        inputs: vec![],
        outputs: vec![],
        queue_depth: 3,
        queue_capacity: 1024,
        pending: 7,
        last_error: None,
        lags: vec![],
    };
    let mut split = comp("split", ComponentKind::Bolt, 2, split_total.clone(), split_rows);
    split.inputs = vec![InputSample {
        component: "sentences".into(),
        stream: "default".into(),
        figures: split_total.clone(),
    }];
    split.outputs = vec![OutputSample {
        stream: "default".into(),
        figures: split_total,
    }];
    let mut count = comp("count", ComponentKind::Bolt, 1, count, vec![]);
    count.last_error = Some(ErrorReport {
        message: "boom".into(),
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        host: "127.0.0.1".into(),
        port: Some(6700),
        worker: None,
    });
    let edge = |from: &str, to: &str, grouping: &str| Edge {
        from: from.into(),
        to: to.into(),
        stream: "default".into(),
        grouping: grouping.into(),
    };
    TopologySample {
        info: TopologyInfo {
            id: "wc".into(),
            name: "word-count".into(),
            status: Status::Active,
            workers: 1,
            message_timeout: Duration::from_secs(30),
            edges: vec![
                edge("sentences", "split", "shuffle"),
                edge("split", "count", "fields"),
                edge("count", "__acker", "direct"),
            ],
        },
        uptime: Duration::from_secs(t),
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100),
        components: vec![
            comp("sentences", ComponentKind::Spout, 1, spout, vec![]),
            split,
            count,
            comp("__acker", ComponentKind::Bolt, 1, Figures::default(), vec![]),
        ],
    }
}

/// A source that answers whatever the test set last.
#[derive(Clone, Default)]
pub struct Manual(pub Arc<Mutex<Vec<TopologySample>>>);

impl Source for Manual {
    async fn sample(&self) -> Option<Vec<TopologySample>> {
        Some(self.0.lock().unwrap().clone())
    }
}

/// A control that knows topology `wc`, records what it is asked, offers no rebalance,
/// and takes `kill_takes` to accept a kill.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<String>>>,
    pub kill_takes: Duration,
}

impl Recorder {
    fn known(&self, id: &str) -> Result<(), ControlError> {
        if id == "wc" {
            Ok(())
        } else {
            Err(ControlError::NotFound(id.into()))
        }
    }
}

impl Control for Recorder {
    async fn activate(&self, id: &str) -> Result<(), ControlError> {
        self.known(id)?;
        self.seen.lock().unwrap().push(format!("activate {id}"));
        Ok(())
    }
    async fn deactivate(&self, id: &str) -> Result<(), ControlError> {
        self.known(id)?;
        Err(ControlError::Refused("already inactive".into()))
    }
    async fn rebalance(&self, id: &str, wait: Duration, o: RebalanceOptions) -> Result<(), ControlError> {
        self.known(id)?;
        self.seen.lock().unwrap().push(format!(
            "rebalance {id} {} {:?} {:?}",
            wait.as_secs(),
            o.num_workers,
            o.executors
        ));
        Err(ControlError::Unsupported("rebalance is not offered here".into()))
    }
    async fn kill(&self, id: &str, wait: Duration) -> Result<(), ControlError> {
        self.known(id)?;
        tokio::time::sleep(self.kill_takes).await;
        self.seen
            .lock()
            .unwrap()
            .push(format!("kill {id} {}", wait.as_secs()));
        Ok(())
    }
}

/// A server on 127.0.0.1:0 over a [`Manual`] source, sampled only when it starts and
/// when tests call [`Served::feed`].
pub struct Served {
    pub ui: Ui<Manual, Recorder>,
    pub source: Manual,
    pub addr: SocketAddr,
}

impl Served {
    /// Makes `s` the source's answer and samples it.
    pub async fn feed(&self, s: TopologySample) {
        *self.source.0.lock().unwrap() = vec![s];
        self.ui.sample_now().await;
    }
}

pub async fn serve(control: Recorder, options: Options) -> Served {
    let source = Manual::default();
    let ui = Ui::new(
        source.clone(),
        control,
        Options {
            period: Duration::from_secs(3600),
            ..options
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ui.clone();
    tokio::spawn(async move { server.serve(listener).await });
    Served { ui, source, addr }
}

/// One request over a fresh connection: status, `Allow` header, body.
pub async fn call(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Option<String>, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let allow = resp
        .headers()
        .get(http::header::ALLOW)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, allow, body)
}

/// GET a JSON answer that must be 200.
pub async fn get(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, _, body) = call(addr, "GET", path, b"").await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}
