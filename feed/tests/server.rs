//! The feed server over real sockets: websocket and SSE framing, resume, pacing, idling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use squall_feed::{DataSet, FeedOptions, FeedServer};
use tokio_tungstenite::tungstenite::Message;

fn server(ws: bool, rate: u64, count: u64, data: DataSet) -> FeedServer {
    let any = Some("127.0.0.1:0".parse().unwrap());
    FeedServer::start(FeedOptions {
        ws: if ws { any } else { None },
        sse: if ws { None } else { any },
        rate,
        count: Some(count),
        data,
    })
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads up to `n` text messages, or fewer if none arrives for `idle`.
async fn read_ws(url: &str, n: usize, idle: Duration) -> Vec<String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(idle, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => got.push(t.to_string()),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("websocket ended: {other:?}"),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn websocket_sends_one_event_per_text_message_then_idles() {
    let data = DataSet::new(5).with_malformed_every(7);
    let s = server(true, 0, 50, data);
    let url = s.ws_url().unwrap();
    let got = runtime().block_on(read_ws(&url, 60, Duration::from_millis(300)));
    let want: Vec<String> = (0..50).map(|i| data.text(i)).collect();
    assert_eq!(got, want, "exactly the data set, in order, then nothing");
    assert_eq!(s.sent(), 50);
    let from = runtime().block_on(read_ws(&format!("{url}?from=45"), 10, Duration::from_millis(300)));
    assert_eq!(from, want[45..].to_vec());
}

#[test]
fn websocket_is_paced_per_connection() {
    let s = server(true, 500, 100, DataSet::new(1));
    let url = s.ws_url().unwrap();
    let t0 = Instant::now();
    let got = runtime().block_on(read_ws(&url, 100, Duration::from_secs(5)));
    let took = t0.elapsed();
    assert_eq!(got.len(), 100);
    assert!(
        took >= Duration::from_millis(150),
        "100 events at 500/s took {took:?}"
    );
}

/// Messages received within `span`.
async fn count_for<S: futures_util::Stream + Unpin>(ws: &mut S, span: Duration) -> u64 {
    let end = tokio::time::Instant::now() + span;
    let mut n = 0;
    while let Ok(Some(_)) = tokio::time::timeout_at(end, ws.next()).await {
        n += 1;
    }
    n
}

#[test]
fn a_rate_change_applies_to_open_connections_from_then_on() {
    let s = server(true, 50, 100_000, DataSet::new(1));
    let url = s.ws_url().unwrap();
    runtime().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let slow = count_for(&mut ws, Duration::from_millis(600)).await;
        s.set_rate(2_000);
        assert_eq!(s.rate(), 2_000);
        let fast = count_for(&mut ws, Duration::from_millis(600)).await;
        // 30 at 50/s, 1,200 at 2,000/s, each with slack for a loaded machine.
        assert!(slow <= 40, "{slow} messages in 0.6 s at 50/s");
        assert!(fast >= 400, "{fast} messages in 0.6 s at 2,000/s");
    });
}

fn sse_request(addr: std::net::SocketAddr, head: &str, want_events: usize) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.matches("event: message").count() < want_events {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    text
}

#[test]
fn sse_uses_event_streams_framing_and_resumes_after_last_event_id() {
    let data = DataSet::new(9);
    let s = server(false, 0, 10, data);
    let addr = s.sse_addr().unwrap();
    let text = sse_request(
        addr,
        "GET /v2/stream/recentchange HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: 4\r\n\r\n",
        5,
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/event-stream"), "{head}");
    let expected: String = (5..10)
        .map(|i| format!("event: message\nid: {i}\ndata: {}\n\n", data.text(i)))
        .collect();
    assert_eq!(body, format!("retry: 1000\n\n{expected}"));
    assert_eq!(s.last_resumed_at(), Some(5));

    let text = sse_request(addr, "GET /?from=8 HTTP/1.1\r\nHost: x\r\n\r\n", 2);
    assert!(text.contains("\nid: 8\n") && text.contains("\nid: 9\n") && !text.contains("\nid: 7\n"));

    let text = sse_request(addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 1);
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
}
