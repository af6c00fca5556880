//! Asks workers, through their `GET /status` ([`WorkerStatus`]), whether they run the
//! current plan and whether their trees have drained.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use squall_control::{WorkerStatus, MAX_STATUS_BYTES, STATUS_PATH};

/// Longest a worker may take to answer; a silent one counts as not drained.
const ANSWER: Duration = Duration::from_secs(2);

/// Why a worker's status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer within [`ANSWER`].
    #[error("no answer within {ANSWER:?}")]
    Timeout,
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
    /// The body is not a worker status.
    #[error("not a worker status: {0}")]
    Json(#[from] serde_json::Error),
}

async fn fetch(addr: &str) -> Result<WorkerStatus, ProbeError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let request = hyper::Request::get(STATUS_PATH)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())?;
    let exchange = async move {
        let response = sender.send_request(request).await?;
        if response.status() != hyper::StatusCode::OK {
            return Err(ProbeError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_STATUS_BYTES)
            .collect()
            .await
            .map_err(|e| ProbeError::Body(e.to_string()))?
            .to_bytes();
        Ok(serde_json::from_slice(&body)?)
    };
    // The connection is driven beside the exchange; it ends once the sender is dropped.
    let (status, _) = tokio::join!(exchange, conn);
    status
}

/// The status of the worker whose HTTP endpoint is `addr` (`ip:port`), within [`ANSWER`].
pub async fn status(addr: &str) -> Result<WorkerStatus, ProbeError> {
    tokio::time::timeout(ANSWER, fetch(addr))
        .await
        .unwrap_or(Err(ProbeError::Timeout))
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
        assert!(matches!(err, Err(ProbeError::Timeout)), "{err:?}");
        assert!(started.elapsed() < ANSWER * 2);
        assert!(
            !running(&["127.0.0.1:1".to_owned()], 1).await,
            "nothing listens there"
        );
    }
}
