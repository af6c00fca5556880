//! Asks workers, through their `GET /status` ([`WorkerStatus`]), whether they run the
//! current plan and whether their trees have drained; and reads what they counted
//! (`GET /figures`, [`WorkerFigures`]) for the UI. Every answer is bounded in time and
//! size.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use squall_control::{
    WorkerFigures, WorkerStatus, FIGURES_PATH, MAX_FIGURES_BYTES, MAX_STATUS_BYTES, STATUS_PATH,
};

/// Longest a worker may take to answer; a silent one counts as not drained.
const ANSWER: Duration = Duration::from_secs(2);

/// Why a worker's status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection could not be made.
    #[error("connecting: {0}")]
    Connect(#[from] std::io::Error),
    /// HTTP failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad address).
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    /// Not a 200 answer.
    #[error("answered {0}")]
    Status(hyper::StatusCode),
    /// The body was too long or cut short.
    #[error("body: {0}")]
    Body(String),
    /// The body is not what was asked for.
    #[error("not a worker's answer: {0}")]
    Json(#[from] serde_json::Error),
    /// The answer breaks the contract's bounds.
    #[error("invalid answer: {0}")]
    Invalid(#[from] squall_control::figures::FiguresError),
}

/// `GET path` of the worker at `addr`, its JSON body read up to `limit` bytes.
async fn fetch<T: DeserializeOwned>(addr: &str, path: &str, limit: usize) -> Result<T, ProbeError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())?;
    let exchange = async move {
        let response = sender.send_request(request).await?;
        if response.status() != hyper::StatusCode::OK {
            return Err(ProbeError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| ProbeError::Body(e.to_string()))?
            .to_bytes();
        Ok(serde_json::from_slice(&body)?)
    };
    // The connection is driven beside the exchange; it ends once the sender is dropped.
    let (answer, _) = tokio::join!(exchange, conn);
    answer
}

/// [`fetch`] within `within`.
async fn fetch_within<T: DeserializeOwned>(
    addr: &str,
    path: &str,
    limit: usize,
    within: Duration,
) -> Result<T, ProbeError> {
    tokio::time::timeout(within, fetch(addr, path, limit))
        .await
        .unwrap_or(Err(ProbeError::Timeout(within)))
}

/// The status of the worker whose HTTP endpoint is `addr` (`ip:port`), within [`ANSWER`].
pub async fn status(addr: &str) -> Result<WorkerStatus, ProbeError> {
    fetch_within(addr, STATUS_PATH, MAX_STATUS_BYTES, ANSWER).await
}

/// What the worker at `addr` (`ip:port` of its HTTP endpoint) counted, within `within`,
/// at most [`MAX_FIGURES_BYTES`] of it, checked against the contract's bounds.
pub async fn figures(addr: &str, within: Duration) -> Result<WorkerFigures, ProbeError> {
    let f: WorkerFigures = fetch_within(addr, FIGURES_PATH, MAX_FIGURES_BYTES, within).await?;
    f.check()?;
    Ok(f)
}

/// Whether every worker answers and `check` holds for its status.
async fn all(addresses: &[String], check: impl Fn(&WorkerStatus) -> bool) -> bool {
    for a in addresses {
        match status(a).await {
            Ok(s) if check(&s) => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::debug!(worker = %a, error = %e, "worker status not read");
                return false;
            }
        }
    }
    true
}

/// Whether every worker runs an engine on assignment `generation` or later: then spouts
/// may be activated without sending trees to a worker still on an older plan.
pub async fn running(addresses: &[String], generation: u64) -> bool {
    all(addresses, |s| s.running(generation)).await
}

/// Whether every worker (`ip:port` of its HTTP endpoint) runs assignment `generation` (the
/// one that deactivated its spouts) or later with no spout tree in flight. Spout trees
/// count where their spout runs until acked or failed, wherever their tuples are, so all
/// zero means no tree is in flight anywhere. Asked twice, apart, as a tuple between a
/// queue and a link shows in neither for a moment.
pub async fn drained(addresses: &[String], generation: u64) -> bool {
    if !all(addresses, |s| s.drained(generation)).await {
        return false;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    all(addresses, |s| s.drained(generation)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection server that answers anything with `reply`, raw.
    async fn serve_once(reply: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(&reply).await;
            // Hold the connection open: the client must not wait for the close.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        addr
    }

    fn answer(code: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_status_is_read_and_bad_answers_are_errors() {
        let s = WorkerStatus {
            worker: "t-0".into(),
            generation: 4,
            engine_running: true,
            ..WorkerStatus::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        let got = status(&serve_once(answer("200 OK", &json)).await).await.unwrap();
        assert_eq!(got, s);
        assert!(got.drained(4) && !got.drained(5));

        let err = status(&serve_once(answer("404 Not Found", "no")).await).await;
        assert!(matches!(err, Err(ProbeError::Status(_))), "{err:?}");
        let err = status(&serve_once(answer("200 OK", "# TYPE x gauge")).await).await;
        assert!(matches!(err, Err(ProbeError::Json(_))), "{err:?}");
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
            MAX_STATUS_BYTES + 1,
            " ".repeat(MAX_STATUS_BYTES + 1)
        );
        let err = status(&serve_once(huge.into_bytes()).await).await;
        assert!(matches!(err, Err(ProbeError::Body(_))), "{err:?}");
        // Headers and no body: the answer times out instead of hanging.
        let started = std::time::Instant::now();
        let err = status(&serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n".to_vec()).await).await;
        assert!(matches!(err, Err(ProbeError::Timeout(_))), "{err:?}");
        assert!(started.elapsed() < ANSWER * 2);
        assert!(
            !running(&["127.0.0.1:1".to_owned()], 1).await,
            "nothing listens there"
        );
    }

    #[tokio::test]
    async fn figures_are_read_bounded_and_checked() {
        let f = WorkerFigures {
            worker: "t-0".into(),
            uptime_ms: Some(10),
            ..WorkerFigures::default()
        };
        let json = serde_json::to_string(&f).unwrap();
        let within = Duration::from_secs(2);
        let got = figures(&serve_once(answer("200 OK", &json)).await, within)
            .await
            .unwrap();
        assert_eq!(got, f);
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
            MAX_FIGURES_BYTES + 1,
            " ".repeat(MAX_FIGURES_BYTES + 1)
        );
        let err = figures(&serve_once(huge.into_bytes()).await, within).await;
        assert!(matches!(err, Err(ProbeError::Body(_))), "{err:?}");
        let unordered = json.replace(
            "\"components\":[]",
            r#""components":[{"name":"s","role":"spout","executors":1,"totals":{"emitted":0,"transferred":0,"executed":0,"acked":0,"failed":0,"errors":0,"busyNs":0,"backpressureNs":0,"pending":0,"complete":{"buckets":[[9,1],[3,1]]}},"queueDepth":0,"queueCapacity":0}]"#,
        );
        let err = figures(&serve_once(answer("200 OK", &unordered)).await, within).await;
        assert!(matches!(err, Err(ProbeError::Invalid(_))), "{err:?}");
        let slow = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n".to_vec()).await;
        let err = figures(&slow, Duration::from_millis(200)).await;
        assert!(matches!(err, Err(ProbeError::Timeout(_))), "{err:?}");
    }
}
