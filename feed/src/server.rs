//! The feed server: websocket and SSE endpoints replaying a [`DataSet`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tracing::{debug, info, warn};

use crate::data::DataSet;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The feed serves this machine only.
    #[error("{0} is not a loopback address: the feed server binds 127.0.0.0/8 or [::1] only")]
    NotLoopback(SocketAddr),
    /// Neither endpoint was asked for.
    #[error("nothing to serve: give a websocket address, an SSE address, or both")]
    NoEndpoint,
    /// Binding failed (address in use, ...).
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("starting the feed runtime: {0}")]
    Runtime(std::io::Error),
}

/// What to serve, where and how fast.
#[derive(Clone, Debug)]
pub struct FeedOptions {
    /// Websocket address.
    pub ws: Option<SocketAddr>,
    /// SSE address.
    pub sse: Option<SocketAddr>,
    /// Messages per second per connection; 0 means as fast as the client reads.
    pub rate: u64,
    /// Messages per connection, counted from index 0 (a resumed connection sends the rest).
    pub count: Option<u64>,
    /// The data set, with its malformed messages.
    pub data: DataSet,
}

/// A running feed server. Dropping it stops it.
pub struct FeedServer {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    ws: Option<SocketAddr>,
    sse: Option<SocketAddr>,
    stats: Arc<Stats>,
    rate: Arc<AtomicU64>,
}

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    sent: AtomicU64,
    /// Last `Last-Event-ID` an SSE client resumed from, plus one (0: none yet).
    last_resume: AtomicU64,
}

/// Shared per-server settings handed to every connection.
struct Shared {
    /// Messages per second per connection, changed by [`FeedServer::set_rate`].
    rate: Arc<AtomicU64>,
    count: Option<u64>,
    data: DataSet,
    /// Pre-rendered messages when `repeat` is set.
    cache: Vec<Utf8Bytes>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
}

/// Messages sent per write burst when the rate is unlimited: enough to amortise a flush.
const BURST: u64 = 256;
/// Pacing period for rate-limited connections.
const TICK: Duration = Duration::from_millis(5);
/// Comment interval on an idle SSE connection, so proxies and clients see it alive.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Longest request head the SSE endpoint reads.
const MAX_HEAD: usize = 16 * 1024;

impl FeedServer {
    /// Binds the endpoints and starts serving on a background runtime (two threads).
    pub fn start(opts: FeedOptions) -> Result<Self, FeedError> {
        Self::start_inner(opts, None)
    }

    /// For load tests: like [`FeedServer::start`], but message `i` is message
    /// `i % repeat`, rendered once at start, so the server spends its time sending rather
    /// than generating. Ids (SSE) stay `i`.
    pub fn start_repeating(opts: FeedOptions, repeat: u64) -> Result<Self, FeedError> {
        Self::start_inner(opts, Some(repeat))
    }

    fn start_inner(opts: FeedOptions, repeat: Option<u64>) -> Result<Self, FeedError> {
        if opts.ws.is_none() && opts.sse.is_none() {
            return Err(FeedError::NoEndpoint);
        }
        for addr in opts.ws.iter().chain(&opts.sse) {
            if !addr.ip().is_loopback() {
                return Err(FeedError::NotLoopback(*addr));
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("squall-feed")
            .enable_all()
            .build()
            .map_err(FeedError::Runtime)?;
        let (stop, stop_rx) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        let rate = Arc::new(AtomicU64::new(opts.rate));
        let cache = match repeat {
            Some(k) if k > 0 => (0..k).map(|i| Utf8Bytes::from(opts.data.text(i))).collect(),
            _ => Vec::new(),
        };
        let shared = Arc::new(Shared {
            rate: Arc::clone(&rate),
            count: opts.count,
            data: opts.data,
            cache,
            stats: Arc::clone(&stats),
            stop: stop_rx,
        });
        let bind = |addr: SocketAddr| {
            runtime
                .block_on(TcpListener::bind(addr))
                .map_err(|source| FeedError::Bind { addr, source })
        };
        let ws = opts.ws.map(bind).transpose()?;
        let sse = opts.sse.map(bind).transpose()?;
        let ws_addr = ws.as_ref().and_then(|l| l.local_addr().ok());
        let sse_addr = sse.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(l) = ws {
            runtime.spawn(accept_loop(l, Arc::clone(&shared), Endpoint::Ws));
        }
        if let Some(l) = sse {
            runtime.spawn(accept_loop(l, Arc::clone(&shared), Endpoint::Sse));
        }
        info!(ws = ?ws_addr, sse = ?sse_addr, rate = opts.rate, count = ?opts.count, seed = opts.data.seed(), "feed server listening");
        Ok(FeedServer {
            runtime: Some(runtime),
            stop,
            ws: ws_addr,
            sse: sse_addr,
            stats,
            rate,
        })
    }

    /// The websocket address actually bound (port 0 resolved).
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws
    }

    /// The SSE address actually bound.
    pub fn sse_addr(&self) -> Option<SocketAddr> {
        self.sse
    }

    /// `ws://…/` URL of the websocket endpoint.
    pub fn ws_url(&self) -> Option<String> {
        self.ws.map(|a| format!("ws://{a}/"))
    }

    /// `http://…/v2/stream/recentchange` URL of the SSE endpoint.
    pub fn sse_url(&self) -> Option<String> {
        self.sse.map(|a| format!("http://{a}/v2/stream/recentchange"))
    }

    /// Connections accepted so far (both endpoints).
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Messages sent so far (all connections).
    pub fn sent(&self) -> u64 {
        self.stats.sent.load(Ordering::Relaxed)
    }

    /// The index the last SSE connection with a `Last-Event-ID` resumed at, if any.
    pub fn last_resumed_at(&self) -> Option<u64> {
        self.stats.last_resume.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Changes the rate of every connection from now on (0: as fast as clients read); what
    /// a connection owed at the old rate is forgotten. A live feed's step up or down.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
        info!(rate, "feed rate changed");
    }

    /// The rate connections are paced at now.
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Stops serving and closes every connection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Ws,
    Sse,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, endpoint: Endpoint) {
    let mut stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let r = match endpoint {
                        Endpoint::Ws => serve_ws(stream, &shared).await,
                        Endpoint::Sse => serve_sse(stream, &shared).await,
                    };
                    match r {
                        Ok(sent) => debug!(%peer, ?endpoint, sent, "feed connection closed"),
                        Err(e) => debug!(%peer, ?endpoint, error = %e, "feed connection ended"),
                    }
                });
            }
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                warn!(?endpoint, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Shared {
    /// The text of message `i`.
    fn text(&self, i: u64) -> Utf8Bytes {
        match self.cache.len() as u64 {
            0 => Utf8Bytes::from(self.data.text(i)),
            k => self.cache[(i % k) as usize].clone(),
        }
    }
}

/// `from=N` in a request target's query, if present and numeric.
fn query_from(target: &str) -> Option<u64> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("from="))
        .and_then(|v| v.parse().ok())
}

/// Paces one connection: how many messages may go out now.
struct Pacer {
    source: Arc<AtomicU64>,
    rate: u64,
    started: tokio::time::Instant,
    allowed_sent: u64,
}

impl Pacer {
    fn new(source: &Arc<AtomicU64>) -> Self {
        Pacer {
            source: Arc::clone(source),
            rate: source.load(Ordering::Relaxed),
            started: tokio::time::Instant::now(),
            allowed_sent: 0,
        }
    }

    /// Waits until at least one message may be sent and returns how many.
    async fn next_burst(&mut self) -> u64 {
        loop {
            let rate = self.source.load(Ordering::Relaxed);
            if rate != self.rate {
                // A new rate counts from now.
                self.rate = rate;
                self.started = tokio::time::Instant::now();
                self.allowed_sent = 0;
            }
            if self.rate == 0 {
                return BURST;
            }
            let due = (self.started.elapsed().as_secs_f64() * self.rate as f64) as u64;
            if due > self.allowed_sent {
                let n = (due - self.allowed_sent).min(BURST * 16);
                self.allowed_sent += n;
                return n;
            }
            tokio::time::sleep(TICK).await;
        }
    }
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
async fn serve_ws(stream: TcpStream, shared: &Shared) -> Result<u64, String> {
    let mut start = 0;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        start = query_from(target).unwrap_or(0);
        Ok(resp)
    };
    let ws = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::accept_hdr_async(stream, callback),
    )
    .await
    .map_err(|_| "websocket handshake timed out".to_owned())?
    .map_err(|e| format!("websocket handshake: {e}"))?;
    let (mut tx, mut rx) = ws.split();
    // The reader only notices the client leaving; the feed ignores what clients send.
    let (gone_tx, mut gone) = watch::channel(false);
    let reader = tokio::spawn(async move {
        while let Some(Ok(_)) = rx.next().await {}
        let _ = gone_tx.send(true);
    });
    let mut stop = shared.stop.clone();
    let mut pacer = Pacer::new(&shared.rate);
    let mut next = start;
    let end = shared.count.unwrap_or(u64::MAX);
    let result = loop {
        if next >= end {
            // Done: stay open and idle until the client or the server goes.
            tokio::select! {
                _ = gone.changed() => break Ok(next - start),
                _ = stop.changed() => break Ok(next - start),
            }
        }
        let n = tokio::select! {
            n = pacer.next_burst() => n,
            _ = gone.changed() => break Ok(next - start),
            _ = stop.changed() => break Ok(next - start),
        };
        let upto = next.saturating_add(n).min(end);
        let before = next;
        let mut failed = None;
        while next < upto {
            if let Err(e) = tx.feed(WsMessage::Text(shared.text(next))).await {
                failed = Some(e);
                break;
            }
            next += 1;
        }
        if let Some(e) = failed {
            break Err(format!("websocket send: {e}"));
        }
        if let Err(e) = tx.flush().await {
            break Err(format!("websocket flush: {e}"));
        }
        shared.stats.sent.fetch_add(next - before, Ordering::Relaxed);
    };
    reader.abort();
    result
}

/// Appends one event in EventStreams framing: `event: message`, `id: <id>`, one `data:`
/// line per line of `text`, and the blank line that ends the event.
pub fn sse_event(id: u64, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: message\nid: ");
    out.extend_from_slice(id.to_string().as_bytes());
    out.push(b'\n');
    for line in text.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// The request line's target and the `Last-Event-ID` header of an HTTP request head.
fn parse_head(head: &str) -> Result<(String, Option<String>), (u16, &'static str)> {
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err((400, "Bad Request"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err((400, "Bad Request"));
    }
    if method != "GET" {
        return Err((405, "Method Not Allowed"));
    }
    let last_id = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("last-event-id")
            .then(|| value.trim().to_owned())
    });
    Ok((target.to_owned(), last_id))
}

async fn serve_sse(mut stream: TcpStream, shared: &Shared) -> Result<u64, String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let read_head = async {
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading request: {e}"))?;
            if n == 0 {
                return Err("client closed before sending a request".to_owned());
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head.truncate(end);
                return Ok(());
            }
            if head.len() > MAX_HEAD {
                return Err("request head too long".to_owned());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .map_err(|_| "request head timed out".to_owned())??;
    let head = String::from_utf8_lossy(&head).into_owned();
    let (target, last_id) = match parse_head(&head) {
        Ok(v) => v,
        Err((code, reason)) => {
            let resp = format!("HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(resp.as_bytes()).await;
            return Err(format!("{code} {reason}"));
        }
    };
    let mut start = query_from(&target).unwrap_or(0);
    if let Some(id) = last_id {
        match id.parse::<u64>() {
            Ok(id) => {
                start = id.saturating_add(1);
                shared
                    .stats
                    .last_resume
                    .store(start.saturating_add(1), Ordering::Relaxed);
            }
            // Someone else's token: start over rather than refuse, as EventStreams does.
            Err(_) => warn!(last_event_id = %id, "unknown Last-Event-ID; replaying from the start"),
        }
    }
    let (mut rd, mut wr) = stream.into_split();
    let (gone_tx, mut gone) = watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut sink = [0u8; 256];
        while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
        let _ = gone_tx.send(true);
    });
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
    );
    // Tell EventSource clients to reconnect after a second, like the public service.
    out.extend_from_slice(b"retry: 1000\n\n");
    let mut stop = shared.stop.clone();
    let mut pacer = Pacer::new(&shared.rate);
    let mut next = start;
    let end = shared.count.unwrap_or(u64::MAX);
    let result = loop {
        if !out.is_empty() {
            if let Err(e) = wr.write_all(&out).await {
                break Err(format!("writing events: {e}"));
            }
            out.clear();
        }
        if next >= end {
            tokio::select! {
                _ = tokio::time::sleep(KEEPALIVE) => out.extend_from_slice(b": keepalive\n\n"),
                _ = gone.changed() => break Ok(next - start),
                _ = stop.changed() => break Ok(next - start),
            }
            continue;
        }
        let n = tokio::select! {
            n = pacer.next_burst() => n,
            _ = gone.changed() => break Ok(next - start),
            _ = stop.changed() => break Ok(next - start),
        };
        let upto = next.saturating_add(n).min(end);
        for i in next..upto {
            sse_event(i, &shared.text(i), &mut out);
        }
        shared.stats.sent.fetch_add(upto - next, Ordering::Relaxed);
        next = upto;
    };
    reader.abort();
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sse_framing() {
        let mut out = Vec::new();
        sse_event(7, "{\"a\":1}", &mut out);
        assert_eq!(out, b"event: message\nid: 7\ndata: {\"a\":1}\n\n");
        out.clear();
        sse_event(8, "two\r\nlines", &mut out);
        assert_eq!(out, b"event: message\nid: 8\ndata: two\ndata: lines\n\n");
    }

    #[test]
    fn request_heads() {
        let (target, id) =
            parse_head("GET /v2/stream/recentchange?from=5 HTTP/1.1\r\nHost: x\r\nlast-event-id: 41")
                .unwrap();
        assert_eq!(target, "/v2/stream/recentchange?from=5");
        assert_eq!(id.as_deref(), Some("41"));
        assert_eq!(query_from(&target), Some(5));
        assert_eq!(parse_head("POST / HTTP/1.1").unwrap_err().0, 405);
        assert_eq!(parse_head("nonsense").unwrap_err().0, 400);
        assert_eq!(query_from("/?x=1&from=12"), Some(12));
        assert_eq!(query_from("/"), None);
    }

    #[test]
    fn refuses_non_loopback_addresses() {
        let opts = FeedOptions {
            ws: Some("0.0.0.0:0".parse().unwrap()),
            sse: None,
            rate: 0,
            count: None,
            data: DataSet::new(1),
        };
        assert!(matches!(FeedServer::start(opts), Err(FeedError::NotLoopback(_))));
    }
}
