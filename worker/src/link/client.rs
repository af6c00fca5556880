//! The dialing end of `Link.Exchange`: one task per peer keeps a connection up, sends
//! the frames the pump gives it, and follows the peer's address when it changes.
//!
//! The pump hands frames over a bounded channel, so a slow peer holds at most that many
//! frames here, plus HTTP/2's window. A peer that cannot take frames for the stall
//! timeout and sends no status either (down, or accepting connections but not reading)
//! is *shed*: its frames are taken from the channel as they come into a backlog that
//! keeps only the newest megabyte, so the pump and every executor keep moving. The
//! backlog goes out first on the next connection; what it dropped times out at the
//! spouts and is replayed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_proto::wire::from_peer;
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint;
use tracing::{debug, info, warn};

use crate::codec::{DialerCodec, Frame};
use crate::current::CurrentPlan;
use crate::stats::{add, LinkStats};

/// While a peer is shed, the newest frames up to this many bytes wait for the next
/// connection (older ones are dropped): after a peer restarts, the freshest traffic, such
/// as completions for its new spouts' trees, still reaches it. Stale frames are harmless:
/// acks for forgotten trees are ignored.
const BACKLOG_BYTES: usize = 1 << 20;

/// Frames kept for the next connection, newest last, bounded by `BACKLOG_BYTES`.
#[derive(Default)]
struct Backlog {
    frames: std::collections::VecDeque<Frame>,
    bytes: usize,
}

impl Backlog {
    fn trim(&mut self, stats: &LinkStats) {
        while self.bytes > BACKLOG_BYTES {
            let Some(old) = self.frames.pop_front() else { break };
            self.bytes -= old.len();
            add(&stats.dropped, u64::from(old.messages));
        }
    }

    fn push(&mut self, f: Frame, stats: &LinkStats) {
        add(&stats.shed_frames, 1);
        self.bytes += f.len();
        self.frames.push_back(f);
        self.trim(stats);
    }

    /// Puts back a frame that could not be sent, ahead of the rest.
    fn unsend(&mut self, f: Frame, stats: &LinkStats) {
        self.bytes += f.len();
        self.frames.push_front(f);
        self.trim(stats);
    }

    fn pop(&mut self) -> Option<Frame> {
        let f = self.frames.pop_front()?;
        self.bytes -= f.len();
        Some(f)
    }
}

/// Settings shared by every outgoing link.
#[derive(Clone)]
pub struct DialSettings {
    /// Mutual TLS, when on.
    pub tls: Option<Arc<crate::tls::TlsLinks>>,
    /// After this long without being able to hand a frame over, shed the peer.
    pub stall: Duration,
    /// HTTP/2 windows, bytes.
    pub window: u32,
}

/// Runs the link to one peer until `frames` closes (the peer left the assignment).
pub async fn run(
    peer: String,
    mut frames: mpsc::Receiver<Frame>,
    mut address: watch::Receiver<String>,
    current: Arc<CurrentPlan>,
    settings: DialSettings,
    stats: Arc<LinkStats>,
) {
    // Since when no frame could be handed to a connection; `None` while one works.
    let mut stuck_since: Option<Instant> = Some(Instant::now());
    let mut backoff = Duration::from_millis(50);
    let mut backlog = Backlog::default();
    loop {
        let addr = address.borrow_and_update().clone();
        let connecting = connect(&addr, &current, &settings);
        tokio::pin!(connecting);
        let session = loop {
            tokio::select! {
                r = &mut connecting => break Some(r),
                _ = address.changed() => break None,
                f = frames.recv(), if shedding(stuck_since, settings.stall) => match f {
                    Some(f) => backlog.push(f, &stats),
                    None => return,
                },
                _ = tokio::time::sleep(settings.stall) => {},
            }
        };
        let (tx, mut replies) = match session {
            None => continue,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                add(&stats.failures, 1);
                debug!(peer = %peer, address = %addr, error = %e, "cannot reach peer; retrying");
                if !wait(
                    &mut frames,
                    &mut backlog,
                    &mut address,
                    &mut stuck_since,
                    &settings,
                    &stats,
                    backoff,
                )
                .await
                {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        add(&stats.connects, 1);
        stats.connected.store(true, Ordering::Relaxed);
        info!(peer = %peer, address = %addr, "outgoing link open");
        backoff = Duration::from_millis(50);
        // A frame waiting for room on the connection, and since when.
        let mut pending: Option<(Frame, Instant)> = None;
        // The peer sends a status every 500 ms: a peer that is alive but busy is waited
        // for (back pressure); only one that neither reads nor answers is shed.
        let mut heard = Instant::now();
        let closed = loop {
            let stall_at = pending
                .as_ref()
                .map(|(_, since)| (*since).max(heard) + settings.stall)
                .unwrap_or_else(|| Instant::now() + settings.stall);
            if pending.is_none() {
                pending = backlog.pop().map(|f| (f, Instant::now()));
            }
            tokio::select! {
                f = frames.recv(), if pending.is_none() => {
                    let Some(f) = f else { return };
                    pending = Some((f, Instant::now()));
                }
                permit = tx.reserve(), if pending.is_some() => {
                    let Some((f, _)) = pending.take() else { continue };
                    let (n, bytes) = (u64::from(f.messages), f.len() as u64);
                    match permit {
                        Ok(permit) => {
                            permit.send(f);
                            stuck_since = None;
                            add(&stats.frames, 1);
                            add(&stats.messages, n);
                            add(&stats.bytes, bytes);
                        }
                        Err(mpsc::error::SendError(())) => {
                            backlog.unsend(f, &stats);
                            break "connection closed".to_owned();
                        }
                    }
                }
                _ = tokio::time::sleep_until(stall_at.into()), if pending.is_some() => {
                    if let Some((f, _)) = pending.take() {
                        backlog.unsend(f, &stats);
                    }
                    warn!(peer = %peer, stall_ms = settings.stall.as_millis() as u64, "peer neither reads nor answers; shedding its traffic and reconnecting");
                    // Shed at once from here on, until a new connection takes a frame.
                    stuck_since = Some(Instant::now() - settings.stall);
                    break "peer stalled".to_owned();
                }
                r = replies.message() => match r {
                    Ok(Some(m)) => {
                        heard = Instant::now();
                        if let Some(from_peer::Kind::Status(s)) = m.kind {
                            stats.peer_blocked.store(s.blocked, Ordering::Relaxed);
                        }
                    }
                    Ok(None) => break "peer ended the stream".to_owned(),
                    Err(status) => {
                        warn!(peer = %peer, code = ?status.code(), error = %status.message(), "peer closed the link with an error; reconnecting");
                        break status.message().to_owned();
                    }
                },
                _ = address.changed() => break "peer moved".to_owned(),
            }
        };
        if let Some((f, _)) = pending.take() {
            backlog.unsend(f, &stats);
        }
        stats.connected.store(false, Ordering::Relaxed);
        add(&stats.failures, 1);
        stuck_since.get_or_insert_with(Instant::now);
        debug!(peer = %peer, reason = %closed, "outgoing link closed");
    }
}

fn shedding(stuck_since: Option<Instant>, stall: Duration) -> bool {
    stuck_since.is_some_and(|t| t.elapsed() >= stall)
}

/// Sleeps `pause`, taking frames into the backlog if shedding. False when the link should end.
async fn wait(
    frames: &mut mpsc::Receiver<Frame>,
    backlog: &mut Backlog,
    address: &mut watch::Receiver<String>,
    stuck_since: &mut Option<Instant>,
    settings: &DialSettings,
    stats: &LinkStats,
    pause: Duration,
) -> bool {
    let until = tokio::time::Instant::now() + pause;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return true,
            _ = address.changed() => return true,
            f = frames.recv(), if shedding(*stuck_since, settings.stall) => match f {
                Some(f) => backlog.push(f, stats),
                None => return false,
            },
            _ = tokio::time::sleep(settings.stall / 4), if !shedding(*stuck_since, settings.stall) => {},
        }
    }
}

type Session = (
    mpsc::Sender<Frame>,
    tonic::Streaming<squall_proto::wire::FromPeer>,
);

/// Why a connection attempt failed (logged, then retried).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DialError(String);

fn dial_err(e: impl std::fmt::Display) -> DialError {
    DialError(e.to_string())
}

/// Opens a link, saying what this worker runs now (read at every connect).
async fn connect(addr: &str, current: &CurrentPlan, settings: &DialSettings) -> Result<Session, DialError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(dial_err)?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .initial_stream_window_size(settings.window)
        .initial_connection_window_size(settings.window)
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(4))
        .keep_alive_while_idle(true);
    let channel = match &settings.tls {
        Some(tls) => {
            let tls = Arc::clone(tls);
            // TLS by the worker's own configuration (reloaded on rotation, the peer's
            // identity checked), not tonic's.
            let connector = tower::service_fn(move |uri: http::Uri| {
                let tls = Arc::clone(&tls);
                async move {
                    let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
                    let tcp = tokio::net::TcpStream::connect(authority).await?;
                    tcp.set_nodelay(true)?;
                    let conn = tls.connect(tcp).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(conn))
                }
            });
            endpoint
                .connect_with_connector(connector)
                .await
                .map_err(dial_err)?
        }
        None => endpoint.connect().await.map_err(dial_err)?,
    };
    let (tx, rx) = mpsc::channel::<Frame>(2);
    let first = Frame::whole(crate::wire::hello_frame(current.hello()));
    tx.send(first).await.map_err(dial_err)?;
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(dial_err)?;
    let path = http::uri::PathAndQuery::from_static(squall_proto::EXCHANGE_PATH);
    let call = grpc.streaming(tonic::Request::new(body), path, DialerCodec);
    // A peer that accepts connections but never answers must not hold us here forever.
    let mut replies = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .map_err(|_| DialError("no answer to the link request within 2 s".into()))?
        .map_err(dial_err)?
        .into_inner();
    match tokio::time::timeout(Duration::from_secs(2), replies.message()).await {
        Ok(Ok(Some(m))) if matches!(m.kind, Some(from_peer::Kind::Welcome(_))) => Ok((tx, replies)),
        Ok(Ok(_)) => Err(DialError(
            "peer answered the hello with something else than a welcome".into(),
        )),
        Ok(Err(status)) => {
            if status.code() == tonic::Code::FailedPrecondition {
                warn!(address = %addr, reason = %status.message(), "peer refused this worker");
            }
            Err(dial_err(status))
        }
        Err(_) => Err(DialError("no welcome within 2 s".into())),
    }
}
