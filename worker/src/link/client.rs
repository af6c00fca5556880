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
//!
//! With mutual TLS a session is *renewed* when this worker reloads its certificate or CA
//! bundle, when the peer asks (`Renew`, after its own reload), and shortly before a
//! certificate the session was verified with expires. A renewal dials a new connection
//! (full handshake, no resumption) while the old one keeps sending; once the new one is
//! welcomed, the old one takes no more frames, its request side is closed, and its
//! receiver's answer ends once it has read every frame. Only then does the new one take
//! over, so frames keep their order and none is lost or replayed. A renewal that fails
//! is retried every second while the old session carries on, for at most
//! [`super::RENEW_GRACE`]; then the old session is closed as a lost one would be.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use squall_proto::wire::{from_peer, FromPeer};
use tokio::sync::{mpsc, watch};
use tonic::transport::Endpoint;
use tracing::{debug, info, warn};

use crate::codec::Frame;
use crate::current::CurrentPlan;
use crate::stats::{add, LinkStats};
use crate::tls::Renewal;

/// A session is renewed this long before a certificate it was verified with expires
/// (or at the expiry itself when less than twice this is left when it opens, so a
/// certificate nobody replaced ends its sessions instead of renewing them in a loop).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Between attempts at a renewal that failed.
const RENEW_RETRY: Duration = Duration::from_secs(1);

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
    frames: mpsc::Receiver<Frame>,
    address: watch::Receiver<String>,
    current: Arc<CurrentPlan>,
    settings: DialSettings,
    stats: Arc<LinkStats>,
) {
    let reloads = settings.tls.as_ref().map(|t| t.reloads());
    let mut link = Link {
        peer,
        frames,
        address,
        current,
        settings,
        stats,
        backlog: Backlog::default(),
        stuck_since: Some(Instant::now()),
        reloads,
    };
    link.run().await;
}

/// One open connection: its request side, the receiver's answers, and the earliest
/// expiry of the certificates it was verified with.
struct Session {
    tx: mpsc::Sender<Frame>,
    replies: tonic::Streaming<FromPeer>,
    expires: Option<SystemTime>,
}

/// How a session ended.
enum Outcome {
    /// `frames` closed: the link is over.
    Ended,
    /// Lost (closed, stalled, peer moved, renewal impossible): dial again.
    Lost(String),
    /// A renewal opened `new`; `old` must be drained before `new` sends.
    Renewed {
        old: Box<Session>,
        new: Box<Session>,
        why: Renewal,
    },
}

/// How [`Link::carry`]'s loop ended.
enum Stop {
    Ended,
    Lost(String),
    /// With the new session, and why.
    Renewed(Box<Session>, Renewal),
}

type Attempt = Pin<Box<dyn Future<Output = Result<Session, DialError>> + Send>>;

/// A renewal under way: its current attempt at a new session.
struct Renewing {
    why: Renewal,
    since: Instant,
    attempt: Attempt,
}

/// The state of one outgoing link.
struct Link {
    peer: String,
    frames: mpsc::Receiver<Frame>,
    address: watch::Receiver<String>,
    current: Arc<CurrentPlan>,
    settings: DialSettings,
    stats: Arc<LinkStats>,
    backlog: Backlog,
    /// Since when no frame could be handed to a connection; `None` while one works.
    stuck_since: Option<Instant>,
    /// This worker's certificate reloads (mutual TLS only).
    reloads: Option<watch::Receiver<u64>>,
}

impl Link {
    async fn run(&mut self) {
        let mut handed_over: Option<Session> = None;
        loop {
            let session = match handed_over.take() {
                Some(s) => s,
                None => match self.dial().await {
                    Some(s) => s,
                    None => return,
                },
            };
            match self.carry(session).await {
                Outcome::Ended => return,
                Outcome::Lost(reason) => {
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.stats.set_cert_expiry(None);
                    add(&self.stats.failures, 1);
                    self.stuck_since.get_or_insert_with(Instant::now);
                    debug!(peer = %self.peer, reason = %reason, "outgoing link closed");
                }
                Outcome::Renewed { old, new, why } => {
                    let began = Instant::now();
                    let drained = drain(*old, self.settings.stall).await;
                    if let Some(tls) = &self.settings.tls {
                        tls.renewed(why);
                    }
                    let drain_ms = began.elapsed().as_millis() as u64;
                    if drained {
                        info!(peer = %self.peer, reason = why.label(), drain_ms, "link session renewed");
                    } else {
                        // Frames still in it are lost with it; their trees replay.
                        warn!(peer = %self.peer, reason = why.label(), drain_ms, "link session renewed; the old one did not drain in time");
                    }
                    handed_over = Some(*new);
                }
            }
        }
    }

    /// Dials until a session opens; `None` when the link should end.
    async fn dial(&mut self) -> Option<Session> {
        let mut backoff = Duration::from_millis(50);
        loop {
            let addr = self.address.borrow_and_update().clone();
            mark_seen(&mut self.reloads);
            let session = {
                let connecting = connect(&addr, &self.current, &self.settings);
                tokio::pin!(connecting);
                loop {
                    tokio::select! {
                        r = &mut connecting => break Some(r),
                        _ = self.address.changed() => break None,
                        f = self.frames.recv(), if shedding(self.stuck_since, self.settings.stall) => match f {
                            Some(f) => self.backlog.push(f, &self.stats),
                            None => return None,
                        },
                        _ = tokio::time::sleep(self.settings.stall) => {},
                    }
                }
            };
            match session {
                None => continue,
                Some(Ok(s)) => return Some(s),
                Some(Err(e)) => {
                    add(&self.stats.failures, 1);
                    debug!(peer = %self.peer, address = %addr, error = %e, "cannot reach peer; retrying");
                    if !self.wait(backoff).await {
                        return None;
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Starts a renewal: a new session to the same address, with the files in use now.
    fn renew(&mut self, why: Renewal) -> Renewing {
        // A reload of this worker's own files not yet handled is what this renewal
        // answers, whatever else asked for it at the same time.
        let own = self
            .reloads
            .as_ref()
            .is_some_and(|r| r.has_changed().unwrap_or(false));
        let why = if own { Renewal::Reload } else { why };
        mark_seen(&mut self.reloads);
        info!(peer = %self.peer, reason = why.label(), "renewing the link session");
        Renewing {
            why,
            since: Instant::now(),
            attempt: self.attempt(Duration::ZERO),
        }
    }

    fn attempt(&self, after: Duration) -> Attempt {
        let addr = self.address.borrow().clone();
        let (current, settings) = (Arc::clone(&self.current), self.settings.clone());
        Box::pin(async move {
            tokio::time::sleep(after).await;
            connect(&addr, &current, &settings).await
        })
    }

    /// Sends frames on `s` until it is lost, renewed, or the link ends.
    async fn carry(&mut self, mut s: Session) -> Outcome {
        add(&self.stats.connects, 1);
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.set_cert_expiry(s.expires);
        info!(peer = %self.peer, address = %*self.address.borrow(), "outgoing link open");
        let renew_at = s.expires.map(|t| renew_instant(t, SystemTime::now()));
        let mut renewing: Option<Renewing> = None;
        // A frame waiting for room on the connection, and since when.
        let mut pending: Option<(Frame, Instant)> = None;
        // The peer sends a status every 500 ms: a peer that is alive but busy is waited
        // for (back pressure); only one that neither reads nor answers is shed.
        let mut heard = Instant::now();
        let stall = self.settings.stall;
        let stop = loop {
            let stall_at = pending
                .as_ref()
                .map(|(_, since)| (*since).max(heard) + stall)
                .unwrap_or_else(|| Instant::now() + stall);
            if pending.is_none() {
                pending = self.backlog.pop().map(|f| (f, Instant::now()));
            }
            tokio::select! {
                f = self.frames.recv(), if pending.is_none() => {
                    let Some(f) = f else { break Stop::Ended };
                    pending = Some((f, Instant::now()));
                }
                permit = s.tx.reserve(), if pending.is_some() => {
                    let Some((f, _)) = pending.take() else { continue };
                    let (n, bytes) = (u64::from(f.messages), f.len() as u64);
                    match permit {
                        Ok(permit) => {
                            permit.send(f);
                            self.stuck_since = None;
                            add(&self.stats.frames, 1);
                            add(&self.stats.messages, n);
                            add(&self.stats.bytes, bytes);
                        }
                        Err(mpsc::error::SendError(())) => {
                            self.backlog.unsend(f, &self.stats);
                            break Stop::Lost("connection closed".to_owned());
                        }
                    }
                }
                _ = tokio::time::sleep_until(stall_at.into()), if pending.is_some() => {
                    if let Some((f, _)) = pending.take() {
                        self.backlog.unsend(f, &self.stats);
                    }
                    warn!(peer = %self.peer, stall_ms = stall.as_millis() as u64, "peer neither reads nor answers; shedding its traffic and reconnecting");
                    // Shed at once from here on, until a new connection takes a frame.
                    self.stuck_since = Some(Instant::now() - stall);
                    break Stop::Lost("peer stalled".to_owned());
                }
                r = s.replies.message() => match r {
                    Ok(Some(m)) => {
                        heard = Instant::now();
                        match m.kind {
                            Some(from_peer::Kind::Status(st)) => {
                                self.stats.peer_blocked.store(st.blocked, Ordering::Relaxed);
                            }
                            Some(from_peer::Kind::Renew(_)) if renewing.is_none() => {
                                renewing = Some(self.renew(Renewal::Peer));
                            }
                            _ => {}
                        }
                    }
                    Ok(None) => break Stop::Lost("peer ended the stream".to_owned()),
                    Err(status) => {
                        warn!(peer = %self.peer, code = ?status.code(), error = %status.message(), "peer closed the link with an error; reconnecting");
                        break Stop::Lost(status.message().to_owned());
                    }
                },
                _ = self.address.changed() => break Stop::Lost("peer moved".to_owned()),
                _ = super::reloaded(&mut self.reloads), if renewing.is_none() => {
                    renewing = Some(self.renew(Renewal::Reload));
                }
                _ = sleep_until(renew_at), if renewing.is_none() => {
                    renewing = Some(self.renew(Renewal::Expiry));
                }
                r = attempt(&mut renewing) => {
                    let Some(mut renewal) = renewing.take() else { continue };
                    match r {
                        Ok(new) => break Stop::Renewed(Box::new(new), renewal.why),
                        Err(e) if renewal.since.elapsed() >= super::RENEW_GRACE => {
                            warn!(peer = %self.peer, reason = renewal.why.label(), error = %e, "cannot renew the link session; closing it");
                            break Stop::Lost(format!("renewal failed: {e}"));
                        }
                        Err(e) => {
                            add(&self.stats.failures, 1);
                            warn!(peer = %self.peer, reason = renewal.why.label(), error = %e, "renewing the link session failed; retrying, the old one carries on");
                            renewal.attempt = self.attempt(RENEW_RETRY);
                            renewing = Some(renewal);
                        }
                    }
                }
            }
        };
        if let Some((f, _)) = pending.take() {
            self.backlog.unsend(f, &self.stats);
        }
        // The old session moves out only here: the loop's futures borrowed it.
        match stop {
            Stop::Ended => Outcome::Ended,
            Stop::Lost(why) => Outcome::Lost(why),
            Stop::Renewed(new, why) => Outcome::Renewed {
                old: Box::new(s),
                new,
                why,
            },
        }
    }

    /// Sleeps `pause`, taking frames into the backlog if shedding. False when the link
    /// should end.
    async fn wait(&mut self, pause: Duration) -> bool {
        let until = tokio::time::Instant::now() + pause;
        let stall = self.settings.stall;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                _ = self.address.changed() => return true,
                f = self.frames.recv(), if shedding(self.stuck_since, stall) => match f {
                    Some(f) => self.backlog.push(f, &self.stats),
                    None => return false,
                },
                _ = tokio::time::sleep(stall / 4), if !shedding(self.stuck_since, stall) => {},
            }
        }
    }
}

fn shedding(stuck_since: Option<Instant>, stall: Duration) -> bool {
    stuck_since.is_some_and(|t| t.elapsed() >= stall)
}

/// Marks every reload so far as handled: a session opened from now on uses its files.
fn mark_seen(reloads: &mut Option<watch::Receiver<u64>>) {
    if let Some(r) = reloads {
        r.borrow_and_update();
    }
}

/// The renewal under way's next result; never without one.
async fn attempt(renewing: &mut Option<Renewing>) -> Result<Session, DialError> {
    match renewing {
        Some(r) => r.attempt.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When to renew a session whose earliest certificate expires at `expires`.
fn renew_instant(expires: SystemTime, now: SystemTime) -> tokio::time::Instant {
    let left = expires.duration_since(now).unwrap_or_default();
    let ahead = if left >= EXPIRY_MARGIN * 2 {
        left - EXPIRY_MARGIN
    } else {
        left
    };
    tokio::time::Instant::now() + ahead
}

/// Ends a session that was replaced: no more frames go in, its request side closes, and
/// the receiver ends its answer once it has read everything sent. True when it did so
/// within `limit`.
async fn drain(old: Session, limit: Duration) -> bool {
    let Session { tx, mut replies, .. } = old;
    drop(tx);
    tokio::time::timeout(limit, async {
        loop {
            match replies.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

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
    // The earliest certificate expiry of the handshake, when TLS.
    let expires = Arc::new(parking_lot::Mutex::new(None));
    let channel = match &settings.tls {
        Some(tls) => {
            let tls = Arc::clone(tls);
            let expires = Arc::clone(&expires);
            // TLS by the worker's own configuration (reloaded on rotation, the peer's
            // identity checked), not tonic's.
            let connector = tower::service_fn(move |uri: http::Uri| {
                let (tls, expires) = (Arc::clone(&tls), Arc::clone(&expires));
                async move {
                    let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
                    let tcp = tokio::net::TcpStream::connect(authority).await?;
                    tcp.set_nodelay(true)?;
                    let (conn, at) = tls.connect(tcp).await?;
                    *expires.lock() = at;
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
    let frames = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let call = crate::codec::exchange(channel, frames);
    // A peer that accepts connections but never answers must not hold us here forever.
    let mut replies = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .map_err(|_| DialError("no answer to the link request within 2 s".into()))?
        .map_err(dial_err)?;
    match tokio::time::timeout(Duration::from_secs(2), replies.message()).await {
        Ok(Ok(Some(m))) if matches!(m.kind, Some(from_peer::Kind::Welcome(_))) => Ok(Session {
            tx,
            replies,
            expires: *expires.lock(),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ahead(expires_in: i64) -> Duration {
        let now = SystemTime::now();
        let expires = if expires_in >= 0 {
            now + Duration::from_secs(expires_in.unsigned_abs())
        } else {
            now - Duration::from_secs(expires_in.unsigned_abs())
        };
        let at = renew_instant(expires, now);
        at.saturating_duration_since(tokio::time::Instant::now())
    }

    #[test]
    fn sessions_renew_ahead_of_expiry_or_at_it_when_little_is_left() {
        let near = |d: Duration, secs: u64| d.abs_diff(Duration::from_secs(secs)) < Duration::from_secs(1);
        // A day left: a minute before.
        assert!(near(ahead(86_400), 86_340));
        // Less than two minutes left: at the expiry, not in a loop before it.
        assert!(near(ahead(90), 90));
        // Already past: now.
        assert!(near(ahead(-5), 0));
    }
}
