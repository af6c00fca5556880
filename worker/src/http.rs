//! `/metrics`, `/status`, `/figures`, `/healthz` and `/readyz` on their own port: a few
//! lines of HTTP/1.1 are all a scraper, the operator and a kubelet probe need.

use std::sync::Arc;
use std::time::Duration;

use squall_control::{WorkerFigures, WorkerStatus, FIGURES_PATH, STATUS_PATH};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// What the endpoints report.
pub trait Endpoints: Send + Sync + 'static {
    /// The Prometheus page, its latency histograms with these bounds.
    fn metrics(&self, buckets: crate::prom::Buckets) -> String;
    /// What the operator reads, served as JSON on [`STATUS_PATH`].
    fn status(&self) -> WorkerStatus;
    /// What the engine counted, served as JSON on [`FIGURES_PATH`] for the operator's UI.
    fn figures(&self) -> WorkerFigures;
    /// Whether the worker runs its tasks and can take traffic.
    fn ready(&self) -> bool;
    /// Forgets latency samples so far (benchmarks call it after their warm-up).
    fn reset_latencies(&self);
}

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, endpoints: Arc<dyn Endpoints>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let e = Arc::clone(&endpoints);
        tokio::spawn(async move {
            if let Err(err) = tokio::time::timeout(Duration::from_secs(5), answer(sock, e)).await {
                debug!(error = %err, "http request timed out");
            }
        });
    }
}

async fn answer(mut sock: TcpStream, e: Arc<dyn Endpoints>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Requests are tiny; read until the end of the headers, at most 8 KiB.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            e.metrics(crate::prom::Buckets::of_query(query)),
        ),
        ("GET", STATUS_PATH) => match serde_json::to_string(&e.status()) {
            Ok(json) => ("200 OK", "application/json", json),
            Err(_) => ("500 Internal Server Error", "text/plain", "status\n".to_owned()),
        },
        ("GET", FIGURES_PATH) => match serde_json::to_string(&e.figures()) {
            Ok(json) => ("200 OK", "application/json", json),
            Err(_) => ("500 Internal Server Error", "text/plain", "figures\n".to_owned()),
        },
        ("GET", "/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        ("GET", "/readyz") if e.ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        ("GET", "/readyz") => ("503 Service Unavailable", "text/plain", "not ready\n".to_owned()),
        ("POST", "/reset-latencies") => {
            e.reset_latencies();
            ("200 OK", "text/plain", "reset\n".to_owned())
        }
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_owned()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(reply.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// A blocking GET for tests and the supervisor: the body of a 200 answer.
pub fn get(addr: std::net::SocketAddr, path: &str, timeout: Duration) -> std::io::Result<String> {
    request(addr, "GET", path, timeout)
}

/// A blocking request without a body: the body of a 200 answer.
pub fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_owned(),
        ));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    struct Fake {
        ready: AtomicBool,
        resets: AtomicU32,
    }

    impl Endpoints for Fake {
        fn metrics(&self, buckets: crate::prom::Buckets) -> String {
            format!("# TYPE up gauge\nup{{buckets=\"{buckets:?}\"}} 1\n")
        }
        fn status(&self) -> WorkerStatus {
            WorkerStatus {
                worker: "w0".into(),
                engine_running: self.ready(),
                generation: 3,
                ..WorkerStatus::default()
            }
        }
        fn figures(&self) -> WorkerFigures {
            WorkerFigures {
                worker: "w0".into(),
                uptime_ms: Some(5),
                ..WorkerFigures::default()
            }
        }
        fn ready(&self) -> bool {
            self.ready.load(Ordering::Relaxed)
        }
        fn reset_latencies(&self) {
            self.resets.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The status line of a raw request's answer.
    fn status(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        match request(addr, method, path, Duration::from_secs(5)) {
            Ok(_) => "HTTP/1.1 200 OK".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn probes_follow_readiness_and_metrics_are_served() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let fake = Arc::new(Fake {
            ready: AtomicBool::new(false),
            resets: AtomicU32::new(0),
        });
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(serve(listener, Arc::clone(&fake) as Arc<dyn Endpoints>));

        // Alive but not ready: a kubelet keeps the pod and sends it no traffic.
        assert_eq!(get(addr, "/healthz", Duration::from_secs(5)).unwrap(), "ok\n");
        assert_eq!(status(addr, "GET", "/readyz"), "HTTP/1.1 503 Service Unavailable");
        fake.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(addr, "/readyz", Duration::from_secs(5)).unwrap(), "ready\n");
        fake.ready.store(false, Ordering::Relaxed);
        assert_eq!(status(addr, "GET", "/readyz"), "HTTP/1.1 503 Service Unavailable");

        let json = get(addr, STATUS_PATH, Duration::from_secs(5)).unwrap();
        let got: WorkerStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(got, fake.status());
        assert!(json.contains("\"engineRunning\":false"), "{json}");
        let json = get(addr, FIGURES_PATH, Duration::from_secs(5)).unwrap();
        let got: WorkerFigures = serde_json::from_str(&json).unwrap();
        assert_eq!(got, fake.figures());
        assert_eq!(
            status(addr, "POST", STATUS_PATH),
            "HTTP/1.1 405 Method Not Allowed"
        );

        let page = get(addr, "/metrics?x=1", Duration::from_secs(5)).unwrap();
        assert_eq!(page, "# TYPE up gauge\nup{buckets=\"Standard\"} 1\n");
        let page = get(addr, crate::prom::FINE_PATH, Duration::from_secs(5)).unwrap();
        assert_eq!(page, "# TYPE up gauge\nup{buckets=\"Fine\"} 1\n");
        assert_eq!(status(addr, "GET", "/nope"), "HTTP/1.1 404 Not Found");
        assert_eq!(
            status(addr, "DELETE", "/metrics"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(fake.resets.load(Ordering::Relaxed), 0);
        request(addr, "POST", "/reset-latencies", Duration::from_secs(5)).unwrap();
        assert_eq!(fake.resets.load(Ordering::Relaxed), 1);
    }
}
