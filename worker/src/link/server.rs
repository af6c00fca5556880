//! The receiving end of `Link.Exchange`: checks the dialer's hello, then feeds its
//! frames to a receiving thread and answers with periodic back-pressure status.
//!
//! With mutual TLS, a reload of this worker's certificate or CA bundle sends `Renew` on
//! every incoming link up then: the dialer opens a new session, verified against the new
//! files on both sides, and ends this one. A dialer that has not done so within
//! [`super::RENEW_GRACE`] has its stream ended here, so no session outlives the trust it
//! was verified under by more than that.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use prost::Message as _;
use squall_proto::wire::{from_peer, to_peer, BackPressure, FromPeer, Renew, ToPeer, Welcome};
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::codec::ReceiverCodec;
use crate::current::CurrentPlan;
use crate::engine_slot::EngineSlot;
use crate::stats::{add, Drops, InboundStats};

/// Largest frame accepted.
pub const MAX_FRAME: usize = 16 << 20;

/// What the receiving side checks and where it delivers.
pub struct ServerCtx {
    /// What this worker runs: peers must run the same topology and plan.
    pub current: Arc<CurrentPlan>,
    /// The running engine.
    pub slot: Arc<EngineSlot>,
    /// Counters.
    pub stats: Arc<InboundStats>,
    /// Messages dropped on delivery, by reason.
    pub drops: Arc<Drops>,
    /// Set when the worker stops.
    pub stop: Arc<AtomicBool>,
    /// Mutual TLS, when on: its reloads ask the dialers for new sessions.
    pub tls: Option<Arc<crate::tls::TlsLinks>>,
}

type Replies = Pin<Box<dyn Stream<Item = Result<FromPeer, Status>> + Send>>;

/// The `squall.wire.v1.Link` service.
#[derive(Clone)]
pub struct LinkService {
    ctx: Arc<ServerCtx>,
}

impl LinkService {
    /// A service delivering into `ctx`.
    pub fn new(ctx: Arc<ServerCtx>) -> Self {
        LinkService { ctx }
    }
}

impl NamedService for LinkService {
    const NAME: &'static str = "squall.wire.v1.Link";
}

impl Service<http::Request<tonic::body::Body>> for LinkService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let ctx = Arc::clone(&self.ctx);
        Box::pin(async move {
            if req.uri().path() != squall_proto::EXCHANGE_PATH {
                return Ok(Status::unimplemented(format!("no method {}", req.uri().path())).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ReceiverCodec).max_decoding_message_size(MAX_FRAME);
            Ok(grpc.streaming(Exchange(ctx), req).await)
        })
    }
}

struct Exchange(Arc<ServerCtx>);

impl Service<Request<Streaming<Bytes>>> for Exchange {
    type Response = Response<Replies>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Replies>, Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Streaming<Bytes>>) -> Self::Future {
        let ctx = Arc::clone(&self.0);
        Box::pin(accept(ctx, req))
    }
}

async fn accept(ctx: Arc<ServerCtx>, req: Request<Streaming<Bytes>>) -> Result<Response<Replies>, Status> {
    let remote = req
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut stream = req.into_inner();
    let first = match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
        Ok(Ok(Some(b))) => b,
        Ok(Ok(None)) => return Err(Status::invalid_argument("stream ended before hello")),
        Ok(Err(s)) => return Err(s),
        Err(_) => return Err(Status::deadline_exceeded("no hello within 10 s")),
    };
    let hello = match ToPeer::decode(first) {
        Ok(ToPeer {
            kind: Some(to_peer::Kind::Hello(h)),
        }) => h,
        Ok(_) => {
            add(&ctx.stats.malformed, 1);
            warn!(peer = %remote, "first message of a link is not a hello; refusing");
            return Err(Status::invalid_argument("the first message must be a hello"));
        }
        Err(e) => {
            add(&ctx.stats.malformed, 1);
            tracing::error!(peer = %remote, error = %e, "malformed hello; refusing the link");
            return Err(Status::invalid_argument(format!("malformed hello: {e}")));
        }
    };
    let (topology, plan_hash) = (ctx.current.topology(), ctx.current.plan_hash());
    let refuse = if hello.protocol != squall_proto::PROTOCOL {
        Some(format!(
            "protocol {} is not {}",
            hello.protocol,
            squall_proto::PROTOCOL
        ))
    } else if hello.topology != topology {
        Some(format!("topology {:?} is not {topology:?}", hello.topology))
    } else if hello.plan_hash != plan_hash {
        Some(format!(
            "plan {} is not this worker's plan {plan_hash}",
            hello.plan_hash
        ))
    } else {
        None
    };
    let peer = format!("{}@{remote}", hello.worker_id);
    if let Some(why) = refuse {
        add(&ctx.stats.refused, 1);
        warn!(peer = %peer, reason = %why, "refusing a peer that runs something else");
        return Err(Status::failed_precondition(why));
    }
    let generation = ctx.current.generation();
    if hello.generation != generation {
        info!(peer = %peer, theirs = hello.generation, ours = generation, "peer runs another assignment generation");
    }
    info!(peer = %peer, "incoming link open");

    let (frame_tx, frame_rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let (fail_tx, mut fail_rx) = tokio::sync::oneshot::channel();
    let blocked = Arc::new(AtomicBool::new(false));
    let receiving = super::inbound::Receiving {
        frames: frame_rx,
        failed: fail_tx,
        blocked: Arc::clone(&blocked),
        stop: Arc::clone(&ctx.stop),
    };
    {
        let (ctx, peer) = (Arc::clone(&ctx), peer.clone());
        std::thread::Builder::new()
            .name(format!("recv-{}", hello.worker_id))
            .spawn(move || {
                add(&ctx.stats.open, 1);
                super::inbound::run(&peer, receiving, &ctx.slot, &ctx.stats, &ctx.drops);
                ctx.stats.open.fetch_sub(1, Ordering::Relaxed);
            })
            .map_err(|e| Status::resource_exhausted(format!("no thread for the link: {e}")))?;
    }

    let (reply_tx, reply_rx) = tokio::sync::mpsc::channel::<Result<FromPeer, Status>>(4);
    let welcome = FromPeer {
        kind: Some(from_peer::Kind::Welcome(Welcome {
            worker_id: ctx.current.worker().to_owned(),
            generation,
        })),
    };
    let _ = reply_tx.send(Ok(welcome)).await;
    let received = Arc::clone(&ctx.stats);
    // Reloads from now on; the session was verified under the files in use now.
    let mut reloads = ctx.tls.as_ref().map(|t| t.reloads());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        // Set once a renewal was asked for: when this stream must have ended by.
        let mut renew_by: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(frame)) => {
                        // Awaiting room here is what stops reading when the receiver is full.
                        if frame_tx.send(frame).await.is_err() {
                            // The thread ended: a malformed frame (reported below) or shutdown.
                            if let Ok(e) = fail_rx.try_recv() {
                                let _ = reply_tx.send(Err(Status::invalid_argument(format!("malformed frame: {e}")))).await;
                            }
                            break;
                        }
                    }
                    Ok(None) => {
                        info!(peer = %peer, "incoming link closed by the peer");
                        break;
                    }
                    Err(status) => {
                        add(&received.malformed, u64::from(status.code() == tonic::Code::Internal));
                        tracing::error!(peer = %peer, error = %status, "incoming link failed");
                        break;
                    }
                },
                e = &mut fail_rx => {
                    if let Ok(e) = e {
                        let _ = reply_tx.send(Err(Status::invalid_argument(format!("malformed frame: {e}")))).await;
                    }
                    break;
                }
                _ = super::reloaded(&mut reloads), if renew_by.is_none() => {
                    info!(peer = %peer, "certificates reloaded; asking the peer to renew its session");
                    let renew = FromPeer { kind: Some(from_peer::Kind::Renew(Renew {})) };
                    let _ = reply_tx.send(Ok(renew)).await;
                    renew_by = Some(tokio::time::Instant::now() + super::RENEW_GRACE);
                }
                _ = sleep_until(renew_by) => {
                    warn!(peer = %peer, grace_s = super::RENEW_GRACE.as_secs(), "peer did not renew its session after a reload; ending the link");
                    let _ = reply_tx.send(Err(Status::unavailable("session not renewed after a certificate reload"))).await;
                    break;
                }
                _ = tick.tick() => {
                    let status = FromPeer { kind: Some(from_peer::Kind::Status(BackPressure {
                        blocked: blocked.load(Ordering::Relaxed),
                        received: crate::stats::get(&received.messages),
                    }))};
                    let _ = reply_tx.try_send(Ok(status));
                }
            }
        }
    });
    let replies: Replies = Box::pin(futures_util::stream::unfold(reply_rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    }));
    Ok(Response::new(replies))
}

/// Sleeps until `at`; never wakes without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
