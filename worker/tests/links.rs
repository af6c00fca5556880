//! The data plane under abuse: malformed and truncated frames, a peer that accepts
//! connections but never reads, and TLS on the links.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use squall_proto::wire::{from_peer, Hello};
use squall_worker::assignment::{self, Loaded};
use squall_worker::codec::{exchange, Frame};
use squall_worker::supervisor::Cluster;
use squall_worker::tls::TlsFiles;
use support::{cluster, dump_logs, logs, metric, total, wait_for, wait_until};

static SERIAL: Mutex<()> = Mutex::new(());

const STEADY: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: steady}
spec:
  ackers: 1
  messageTimeoutSeconds: 3
  maxSpoutPending: 1000
  spouts:
    - {name: ids, component: const, config: {rate: 5000, payload: "abc"}}
  bolts:
    - {name: pass, component: identity, parallelism: 2, config: {fields: [payload]}, inputs: [{from: ids, grouping: {type: shuffle}}]}
    - {name: sink, component: null, inputs: [{from: pass}]}
"#;

/// Opens a link to worker `i` as a fake peer and sends `frames` after a good hello.
/// Returns what the worker answered: a welcome, then possibly an error status.
async fn dial(c: &Cluster, i: usize, id: &str, frames: Vec<Frame>) -> (bool, Option<tonic::Status>) {
    let loaded = Loaded::load(&c.assignment_path()).unwrap();
    let addr = &loaded.assignment.workers[i].address;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let hello = Hello {
        protocol: squall_proto::PROTOCOL,
        topology: loaded.plan.name.clone(),
        plan_hash: loaded.plan_hash.clone(),
        generation: loaded.assignment.generation,
        worker_id: id.to_owned(),
    };
    let mut all = vec![Frame::whole(squall_worker::wire::hello_frame(hello))];
    all.extend(frames);
    // Keep the request open after the frames, as a live peer would.
    let body = futures_util::stream::iter(all).chain(futures_util::stream::pending());
    let mut replies = exchange(channel, body).await.unwrap();
    let welcomed = matches!(
        replies.message().await,
        Ok(Some(m)) if matches!(m.kind, Some(from_peer::Kind::Welcome(_)))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::time::timeout_at(deadline, replies.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return (welcomed, None),
            Ok(Err(status)) => return (welcomed, Some(status)),
            Err(_) => return (welcomed, None),
        }
    }
}

use futures_util::StreamExt as _;

#[test]
fn malformed_and_truncated_frames_are_refused_and_the_link_comes_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), STEADY, 2, None, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Garbage where a batch should be.
    let garbage = Frame::whole(Bytes::from_static(b"\x12\x05\xff\xff\xff\xff\xff"));
    let (welcomed, status) = rt.block_on(dial(&c, 1, "intruder", vec![garbage]));
    assert!(welcomed);
    let status = status.expect("the link is closed with an error");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed frame"), "{status:?}");

    // A real batch cut short: its header promises more bytes than follow.
    let truncated = Frame::whole(Bytes::from_static(b"\x12\x20\x0a\x10\x0a\x0e\x08\x01"));
    let (_, status) = rt.block_on(dial(&c, 1, "intruder", vec![truncated]));
    assert_eq!(status.map(|s| s.code()), Some(tonic::Code::InvalidArgument));

    // The same peer reconnects with a well-formed (empty) batch: accepted, link stays up.
    let empty = Frame::batch(Bytes::new(), 0);
    let (welcomed, status) = rt.block_on(dial(&c, 1, "intruder", vec![empty]));
    assert!(welcomed && status.is_none(), "{status:?}");

    let log = logs(&c, 1);
    assert!(
        log.contains("malformed frame from peer") && log.contains("intruder"),
        "the error names the peer:\n{log}"
    );
    // The real links were untouched: the topology keeps completing trees.
    let before = total(&c.scrape(), "ids").acked;
    let s = wait_for(&mut c, Duration::from_secs(10), |s| {
        total(s, "ids").acked > before + 1000
    });
    assert!(total(&s, "ids").acked > before + 1000);
    c.stop(Duration::from_secs(5));
}

#[test]
fn a_peer_that_never_reads_does_not_wedge_the_others() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // __acker → w0, ids → w1, pass (2 executors) → w2 and w0, sink → w1.
    let mut c = cluster(dir.path(), STEADY, 3, None, &[]);
    c.auto_restart = false;
    let addr = assignment::read(&c.assignment_path()).unwrap().workers[2]
        .address
        .clone();
    c.kill9(2);
    // In w2's place: a listener that accepts and then never reads a byte.
    let listener = std::net::TcpListener::bind(&addr).unwrap();
    let held = std::thread::spawn(move || {
        let mut socks = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(25);
        while Instant::now() < until {
            if let Ok((s, _)) = listener.accept() {
                socks.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Never read: check nobody made us.
        let mut b = [0u8; 1];
        let _ = socks.first().map(|mut s| s.read(&mut b));
    });
    // Past the stall timeout (1 s) and one message timeout (3 s), trees keep completing
    // through the healthy pass executor on w0 in every window.
    std::thread::sleep(Duration::from_secs(4));
    let mut last = total(&c.scrape(), "ids").acked;
    for window in 0..3 {
        std::thread::sleep(Duration::from_secs(4));
        let now = total(&c.scrape(), "ids").acked;
        if now <= last + 500 {
            dump_logs(&c);
        }
        assert!(now > last + 500, "window {window}: acked {last} -> {now}");
        last = now;
    }
    let page = c.scrape_one(1).unwrap();
    let shed: f64 = page
        .iter()
        .filter(|(n, l, _)| n == "squall_link_shed_frames_total" && l.get("peer").is_some_and(|p| p == "w2"))
        .map(|s| s.2)
        .sum();
    assert!(shed > 0.0, "traffic for the stuck peer is shed");
    c.stop(Duration::from_secs(5));
    drop(held);
}

/// A new CA and a worker certificate it signed, as PEM: the CA's, the certificate's, the key's.
fn issue() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    // One certificate for every worker: the identity check compares topologies only.
    let uri = squall_control::identity::WorkerIdentity::new("default", "once", "w").uri();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn certs(dir: &std::path::Path) -> TlsFiles {
    let (ca, cert, key) = issue();
    let files = TlsFiles {
        cert: dir.join("worker.pem"),
        key: dir.join("worker.key"),
        ca: dir.join("ca.pem"),
    };
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    std::fs::write(&files.ca, ca).unwrap();
    files
}

const ONCE: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: once}
spec:
  ackers: 2
  spouts:
    - {name: ids, component: sequence, config: {count: 20000}}
  bolts:
    - {name: pass, component: identity, parallelism: 2, config: {fields: [n]}, inputs: [{from: ids, grouping: {type: fields, fields: [n]}}]}
"#;

#[test]
fn tls_links_carry_the_topology_and_refuse_plaintext() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let tls = certs(dir.path());
    let mut c = cluster(dir.path(), ONCE, 2, Some(tls), &[]);
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "ids").acked >= 20_000
    });
    if total(&s, "ids").acked != 20_000 {
        dump_logs(&c);
    }
    assert_eq!(total(&s, "ids").acked, 20_000);
    assert_eq!(total(&s, "ids").failed, 0);
    assert_eq!(total(&s, "pass").executed, 20_000);
    // A plaintext dialer gets nowhere.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = assignment::read(&c.assignment_path()).unwrap().workers[0]
        .address
        .clone();
    let plain = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await;
        match ch {
            Err(_) => false,
            Ok(ch) => {
                let body = futures_util::stream::iter(Vec::<Frame>::new());
                tokio::time::timeout(Duration::from_secs(2), exchange(ch, body))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
        }
    });
    assert!(!plain, "a plaintext link to a TLS worker must fail");
    c.stop(Duration::from_secs(5));
}

const RENEW: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: renew}
spec:
  ackers: 2
  spouts:
    - {name: ids, component: const, config: {count: 20000, rate: 2000}}
  bolts:
    - {name: pass, component: identity, parallelism: 2, config: {fields: [payload]}, inputs: [{from: ids, grouping: {type: shuffle}}]}
"#;

/// Writes `bytes` to `path` by rename, as the Secret mirror does.
fn replace(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_certificate_reload_renews_the_live_link_and_loses_no_tuple() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let tls = certs(dir.path());
    let mut c = cluster(dir.path(), RENEW, 2, Some(tls.clone()), &[]);
    let s = wait_for(&mut c, Duration::from_secs(30), |s| {
        total(s, "ids").acked >= 2_000
    });
    assert!(total(&s, "ids").acked < 20_000, "the reload must land mid-stream");
    let renewals = |c: &Cluster, i: usize| metric(c, i, "squall_worker_tls_link_renewals_total");
    assert_eq!(renewals(&c, 0) + renewals(&c, 1), 0.0);
    // A new CA signs the new certificate; the bundle trusts both, as during the
    // operator's overlap, so either worker may reload first.
    let (ca, cert, key) = issue();
    let mut bundle = std::fs::read_to_string(&tls.ca).unwrap();
    bundle.push_str(&ca);
    replace(&tls.ca, bundle.as_bytes());
    replace(&tls.key, key.as_bytes());
    replace(&tls.cert, cert.as_bytes());
    let renewed = wait_until(Duration::from_secs(10), || {
        renewals(&c, 0) >= 1.0 && renewals(&c, 1) >= 1.0
    });
    if !renewed {
        dump_logs(&c);
    }
    assert!(renewed, "both workers renew their link after the reload");
    let s = wait_for(&mut c, Duration::from_secs(60), |s| {
        total(s, "ids").acked >= 20_000
    });
    if total(&s, "ids").acked != 20_000 || total(&s, "ids").failed != 0 {
        dump_logs(&c);
    }
    assert_eq!(total(&s, "ids").acked, 20_000);
    assert_eq!(total(&s, "ids").failed, 0, "no tree failed: nothing was lost");
    assert_eq!(total(&s, "pass").executed, 20_000);
    for i in 0..2 {
        let log = logs(&c, i);
        for line in log.lines().filter(|l| l.contains("renew")) {
            eprintln!("worker {i}: {}", support::plain(line));
        }
        assert!(log.contains("link session renewed"), "worker {i}:\n{log}");
        assert!(!log.contains("did not drain"), "worker {i}:\n{log}");
        let reload: f64 = c
            .scrape_one(i)
            .unwrap()
            .iter()
            .filter(|(n, l, _)| {
                n == "squall_worker_tls_link_renewals_total" && l.get("reason").is_some_and(|r| r == "reload")
            })
            .map(|s| s.2)
            .sum();
        assert!(reload >= 1.0, "worker {i} renewed for its own reload");
        let expiry = metric(&c, i, "squall_worker_tls_link_certificate_expiry_seconds");
        assert!(expiry > 3600.0, "worker {i}: expiry in {expiry} s");
    }
    c.stop(Duration::from_secs(5));
}

const FLOOD: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: flood}
spec:
  ackers: 0
  config: {squall.queue.capacity: 4096}
  spouts:
    - {name: ids, component: const, config: {reliable: false}}
  bolts:
    - {name: a, component: identity, config: {fields: [payload]}, inputs: [{from: ids}]}
    - {name: b, component: count, config: {key: payload}, inputs: [{from: a, grouping: {type: fields, fields: [payload]}}]}
    - {name: c, component: "null", inputs: [{from: b}]}
"#;

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// One worker's counters of `component`.
fn counters(c: &Cluster, i: usize, component: &str) -> squall_engine::Stats {
    let page = c.scrape_one(i).unwrap_or_default();
    total(&squall_worker::prom::merge(&[page]), component)
}

/// Messages the bounded buffers between the spout and `c` can hold, in FLOOD's messages
/// (each over 100 bytes on the wire). Per link crossing: the pump's open frame, the
/// `PEER_FRAMES` frames queued for the link, one in the link task, the stream's HTTP/2
/// window, the receiver's 4 frames and one being decoded, and the 1 MiB backlog kept for
/// a shed peer; per hop an outbound and a receive queue of `squall.queue.capacity`.
fn buffered_at_most() -> u64 {
    use squall_worker::host::{PEER_FRAMES, WINDOW};
    use squall_worker::pump::FRAME_BYTES;
    let link_bytes = (PEER_FRAMES + 1 + 1 + 4 + 1) * FRAME_BYTES + WINDOW as usize + (1 << 20);
    let per_hop = link_bytes as u64 / 100 + 2 * 4096;
    // ids → a → b → c: three hops, each across the link.
    3 * per_hop
}

#[test]
fn back_pressure_crosses_processes_and_memory_stays_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // a → w0, b → w1, c → w0, ids → w1: three link crossings, the spout unthrottled
    // (unreliable, no acker, so no max pending): only back pressure can slow it.
    let mut c = cluster(dir.path(), FLOOD, 2, None, &[]);
    let pids: Vec<u32> = (0..2).map(|i| c.pid(i).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(2));
    let early: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
    std::thread::sleep(Duration::from_secs(4));
    let late: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
    // The spout first, then the sink: scraping takes time, so this order can only
    // understate the gap between them, never overstate it.
    let spout = counters(&c, 1, "ids");
    let sink = counters(&c, 0, "c");
    // The spout outruns the bolts: it spent time blocked on full queues, i.e. the
    // receivers' back pressure reached it across the links.
    assert!(spout.backpressure_ns > 0, "{spout:?}");
    assert!(sink.executed > 0);
    // What the spout emitted and the sink has not executed yet sits in bounded buffers:
    // an unbounded sender would let the gap grow with the spout's head start.
    let gap = spout.emitted.saturating_sub(sink.executed);
    eprintln!(
        "emitted {}, executed by c {}, gap {gap} (bound {}); RSS {early:.0?} -> {late:.0?} MiB",
        spout.emitted,
        sink.executed,
        buffered_at_most()
    );
    assert!(gap <= buffered_at_most(), "gap {gap} beyond the buffers");
    // A busy receiver is waited for, never shed: nothing was dropped on any link.
    for i in 0..2 {
        let dropped: f64 = c
            .scrape_one(i)
            .unwrap_or_default()
            .iter()
            .filter(|(n, _, _)| n == "squall_link_dropped_total" || n == "squall_link_shed_frames_total")
            .map(|s| s.2)
            .sum();
        assert_eq!(dropped, 0.0, "worker {i} shed or dropped traffic of a busy peer");
    }
    for (e, l) in early.iter().zip(&late) {
        assert!(*l < 256.0, "RSS {l:.0} MiB");
        assert!(*l < e * 1.5 + 32.0, "RSS grew from {e:.0} to {l:.0} MiB");
    }
    c.stop(Duration::from_secs(5));
}
