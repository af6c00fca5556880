//! `sse`: a spout reading Server-Sent Events in the format of Wikimedia EventStreams
//! (`event: message`, `id: <token>`, `data: <json>`), resuming with `Last-Event-ID`.
//!
//! # Emits
//! - `default` stream, fields `[event]`: the `data` of each `message` event (several
//!   `data:` lines joined with newlines). With `reliable` (default) it carries a message
//!   id and is replayed when its tree fails.
//! - `errors` stream, fields `[event, error]`: events whose data does not have the shape
//!   of a JSON object (with `validate`), unreliably; counted as `malformed`.
//!
//! # Config
//! - `url` (string, required): `http://host:port/path` (plain HTTP/1.1; no TLS).
//! - `reliable`, `retry_buffer`, `replay_delay_ms`, `channel_capacity`, `validate`,
//!   `backoff_initial_ms`, `backoff_max_ms`: as for [`websocket`](crate::websocket).
//!
//! # Guarantees
//! - MUST reconnect on its own with capped exponential backoff and jitter after a refused
//!   connection, a status other than 200, an error or the end of the response; each new
//!   request carries `Last-Event-ID` with the id of the last event received, so the
//!   server resumes after it: no event is skipped or received twice across a reconnect
//!   when the server honours the header. Counted: `reconnects`, `connect_failures`.
//! - MUST parse the SSE format fully: `\n`, `\r\n` and `\r` line ends, comments, `data`
//!   spread over several lines, `retry:` (raises the first reconnection delay), events of
//!   another type than `message` (ignored), chunked transfer encoding.
//! - MUST re-emit failed events still in the retry buffer, as the websocket spout does.
//! - Gauges `source_backlog` and `source_backlog_bound`, as the websocket spout's.
//! - NOT guaranteed: the resume token lives in memory. A restarted process starts without
//!   one (the server decides where: EventStreams starts at "now"), and events in the
//!   channel or the retry buffer when the process dies are lost.

use std::time::Duration;

use bytestring::ByteString;
use squall_engine::{ComponentError, Spout, SpoutOutput, TaskContext, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tracing::{info, warn};

use squall_catalog::sse::HttpUrl;

use crate::backoff::Backoff;
use crate::live::{counters, LiveSpout, Sink};

pub use squall_catalog::sse::{parse, SseConfig, KIND};

/// One dispatched SSE event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
    /// The last event id after this event (it persists across events, as in browsers).
    pub id: Option<String>,
}

/// Incremental SSE parser (the WHATWG event-stream interpretation).
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    skip_lf: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    /// Reconnection time announced by the server, in ms.
    pub retry_ms: Option<u64>,
}

impl SseParser {
    /// The id to send as `Last-Event-ID`.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Forgets a partly received event (after the connection dropped), keeping the id.
    pub fn reset_partial(&mut self) {
        self.line.clear();
        self.skip_lf = false;
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }

    /// Feeds bytes; calls `on_event` for each complete event.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(SseEvent)) {
        for &b in bytes {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.skip_lf = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.process_line(&line) {
                        on_event(ev);
                    }
                    self.line = line;
                    self.line.clear();
                }
                _ => self.line.push(b),
            }
        }
    }

    fn process_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.find(':') {
            Some(i) => {
                let v = &text[i + 1..];
                (&text[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&text[..], ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        })
    }
}

/// Decodes `Transfer-Encoding: chunked` incrementally.
#[derive(Debug, Default)]
pub(crate) struct Dechunker {
    buf: Vec<u8>,
    /// Bytes of the current chunk still to pass through.
    remaining: usize,
    /// Expecting the CRLF that ends a chunk's data.
    need_crlf: bool,
    done: bool,
}

impl Dechunker {
    /// Appends the decoded bytes of `input` to `out`; Err on a malformed encoding.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.buf.extend_from_slice(input);
        let mut pos = 0;
        loop {
            if self.done {
                self.buf.clear();
                return Ok(());
            }
            if self.remaining > 0 {
                let n = self.remaining.min(self.buf.len() - pos);
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&self.buf[pos..pos + n]);
                pos += n;
                self.remaining -= n;
                if self.remaining == 0 {
                    self.need_crlf = true;
                }
                continue;
            }
            let Some(eol) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                if self.buf.len() - pos > 1024 {
                    return Err("chunk size line too long".to_owned());
                }
                break;
            };
            let line = &self.buf[pos..pos + eol];
            pos += eol + 2;
            if self.need_crlf {
                if !line.is_empty() {
                    return Err("missing CRLF after chunk data".to_owned());
                }
                self.need_crlf = false;
                continue;
            }
            let size = std::str::from_utf8(line)
                .ok()
                .map(|s| s.split(';').next().unwrap_or("").trim())
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .ok_or_else(|| format!("bad chunk size line {:?}", String::from_utf8_lossy(line)))?;
            if size == 0 {
                self.done = true;
            } else {
                self.remaining = size;
            }
        }
        self.buf.drain(..pos);
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// Parses a response body as a connection does: `pieces` in the order they are read,
/// de-chunked when `chunked`, then split into events. Returns each event's type, data and
/// last id, or the de-chunking error. Public only for the fuzz targets in `fuzz/`, which
/// cannot reach the crate-private parsers.
#[doc(hidden)]
pub fn parse_body<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
    chunked: bool,
) -> Result<Vec<(String, String, Option<String>)>, String> {
    let mut parser = SseParser::default();
    let mut dechunker = chunked.then(Dechunker::default);
    let mut decoded = Vec::new();
    let mut events = Vec::new();
    for piece in pieces {
        let body: &[u8] = match dechunker.as_mut() {
            Some(d) => {
                decoded.clear();
                d.feed(piece, &mut decoded)?;
                &decoded
            }
            None => piece,
        };
        parser.feed(body, |ev| events.push((ev.event, ev.data, ev.id)));
        if dechunker.as_ref().is_some_and(Dechunker::is_done) {
            break;
        }
    }
    Ok(events)
}

/// How long connecting and receiving the response head may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;

/// Why one connection ended.
enum Ended {
    SpoutGone,
    Reason(String),
}

async fn connect_once(
    url: &HttpUrl,
    parser: &mut SseParser,
    sink: &Sink,
    received: &mut u64,
) -> Result<Ended, String> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(url.authority.as_str()))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: squall-sse\r\n",
        url.target, url.host
    );
    if let Some(id) = parser.last_id() {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("sending request: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let read_head = async {
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading response: {e}"))?;
            if n == 0 {
                return Err("connection closed before the response head".to_owned());
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(head.split_off(end + 4));
            }
            if head.len() > MAX_HEAD {
                return Err("response head too long".to_owned());
            }
        }
    };
    let rest = tokio::time::timeout(CONNECT_TIMEOUT, read_head)
        .await
        .map_err(|_| "response head timed out".to_owned())??;
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        let line = head.lines().next().unwrap_or("").to_owned();
        return Err(format!("unexpected response {line:?}"));
    }
    let chunked = head.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let mut dechunker = chunked.then(Dechunker::default);
    let mut decoded = Vec::new();
    let mut pending: Vec<ByteString> = Vec::new();
    let mut input = rest;
    loop {
        let body: &[u8] = match dechunker.as_mut() {
            Some(d) => {
                decoded.clear();
                d.feed(&input, &mut decoded)?;
                &decoded
            }
            None => &input,
        };
        parser.feed(body, |ev| {
            if ev.event == "message" {
                pending.push(ByteString::from(ev.data));
            }
        });
        for text in pending.drain(..) {
            *received += 1;
            if !sink.send(text).await {
                return Ok(Ended::SpoutGone);
            }
        }
        if dechunker.as_ref().is_some_and(Dechunker::is_done) {
            return Ok(Ended::Reason("response ended".to_owned()));
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading events: {e}"))?;
        if n == 0 {
            return Ok(Ended::Reason("connection closed by the server".to_owned()));
        }
        input.clear();
        input.extend_from_slice(&buf[..n]);
    }
}

async fn read_feed(sink: Sink, config: SseConfig, seed: u64) {
    let url = match HttpUrl::parse(&config.url) {
        Ok(u) => u,
        Err(e) => {
            // parse() checked it already; say so rather than panic.
            warn!(component = %sink.component, url = %config.url, error = %e, "bad SSE URL; not connecting");
            return;
        }
    };
    let mut parser = SseParser::default();
    let mut backoff = Backoff::new(config.backoff, seed);
    let mut attempts = 0u64;
    loop {
        if attempts > 0 {
            sink.counters.add(counters::RECONNECTS, 1);
        }
        attempts += 1;
        let mut received = 0;
        info!(component = %sink.component, url = %config.url, last_event_id = ?parser.last_id(), "SSE connecting");
        match connect_once(&url, &mut parser, &sink, &mut received).await {
            Ok(Ended::SpoutGone) => return,
            Ok(Ended::Reason(r)) => {
                warn!(component = %sink.component, url = %config.url, received, reason = %r, "SSE stream ended; reconnecting")
            }
            Err(e) => {
                if received == 0 {
                    sink.counters.add(counters::CONNECT_FAILURES, 1);
                }
                warn!(component = %sink.component, url = %config.url, received, error = %e, "SSE connection failed");
            }
        }
        parser.reset_partial();
        if received > 0 {
            backoff.reset();
        }
        let mut delay = backoff.next_delay();
        if let Some(ms) = parser.retry_ms {
            // The server's `retry:` is a floor, not a reason to hammer it faster.
            delay = delay.max(Duration::from_millis(ms.min(config.backoff.max_ms)));
        }
        tokio::time::sleep(delay).await;
    }
}

/// The `sse` spout.
pub struct SseSpout {
    live: LiveSpout,
}

impl SseSpout {
    /// A spout with this configuration; it connects in `open`.
    pub fn new(config: SseConfig) -> Self {
        SseSpout {
            live: LiveSpout::new(KIND, config),
        }
    }
}

impl Spout for SseSpout {
    fn open(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        let config = self.live.config().clone();
        let seed = Backoff::seed_for(ctx.task_id);
        self.live.open(ctx, move |sink| read_feed(sink, config, seed))
    }

    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        self.live.next_tuple(out)
    }

    fn ack(&mut self, msg_id: Value) {
        self.live.ack(msg_id)
    }

    fn fail(&mut self, msg_id: Value) {
        self.live.fail(msg_id)
    }

    fn close(&mut self) {
        self.live.close()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn events(chunks: &[&[u8]]) -> (Vec<SseEvent>, SseParser) {
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for c in chunks {
            p.feed(c, |e| got.push(e));
        }
        (got, p)
    }

    #[test]
    fn parses_event_streams_framing() {
        let (got, p) = events(&[b"retry: 1000\n\n: comment\nevent: message\nid: 7\ndata: {\"a\":1}\n\n"]);
        assert_eq!(
            got,
            [SseEvent {
                event: "message".into(),
                data: "{\"a\":1}".into(),
                id: Some("7".into())
            }]
        );
        assert_eq!(p.retry_ms, Some(1000));
        assert_eq!(p.last_id(), Some("7"));
    }

    #[test]
    fn line_ends_split_across_chunks_and_multi_line_data() {
        let (got, p) = events(&[
            b"data: a\r",
            b"\ndata:b\r\rid: x",
            b"\r\n",
            b"event: other\ndata: c\n\n",
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, "a\nb");
        assert_eq!(got[0].event, "message");
        assert_eq!(got[0].id, None);
        assert_eq!(got[1].event, "other");
        assert_eq!(got[1].id.as_deref(), Some("x"));
        assert_eq!(p.last_id(), Some("x"));
    }

    #[test]
    fn events_without_data_are_not_dispatched_but_ids_persist() {
        let (got, p) = events(&[b"id: 5\n\nevent: message\n\n"]);
        assert!(got.is_empty());
        assert_eq!(p.last_id(), Some("5"));
    }

    #[test]
    fn partial_event_is_forgotten_on_reset() {
        let mut p = SseParser::default();
        let mut got = Vec::new();
        p.feed(b"id: 1\ndata: x\n\ndata: half", |e| got.push(e));
        p.reset_partial();
        p.feed(b"data: whole\n\n", |e| got.push(e));
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].data, "whole");
    }

    #[test]
    fn dechunks_across_boundaries() {
        let mut d = Dechunker::default();
        let mut out = Vec::new();
        for part in [
            &b"5\r\nhel"[..],
            b"lo\r",
            b"\n6;ext=1\r\n wor",
            b"ld\r\n0\r\n\r\n",
        ] {
            d.feed(part, &mut out).unwrap();
        }
        assert_eq!(out, b"hello world");
        assert!(d.is_done());
        let mut bad = Dechunker::default();
        assert!(bad.feed(b"zz\r\n", &mut Vec::new()).is_err());
    }
}
