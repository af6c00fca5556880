//! The worker itself: loads the assignment, runs the engine on its tasks, keeps links to
//! its peers, follows assignment changes, and shuts down gracefully.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use squall_components::Builtins;
use squall_control::{DropCounts, EngineSlice, WorkerStatus};
use squall_engine::{EngineError, EngineOptions, Snapshot, Topology};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::assignment::{Assignment, AssignmentError, Loaded, View};
use crate::current::CurrentPlan;
use crate::engine_slot::EngineSlot;
use crate::link::client::{self, DialSettings};
use crate::link::server::{LinkService, ServerCtx};
use crate::pump::{self, PeerPort, RouteTable, Routes};
use crate::stats::{self, Drops, InboundStats, LinkStats};
use crate::tls::{Refusal, TlsError, TlsFiles, TlsLinks};

/// Frames queued per peer between the pump and its link: with 64 KiB frames, the most a
/// slow peer can hold of this worker's memory besides the engine's bounded queues.
pub const PEER_FRAMES: usize = 8;
/// HTTP/2 flow-control windows of worker links.
pub const WINDOW: u32 = 2 << 20;
/// How soon a failed engine start is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// How to run a worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's id in the assignment.
    pub id: String,
    /// The assignment file, re-read when it changes and on SIGHUP.
    pub assignment: PathBuf,
    /// Where to serve the data plane; the worker's address in the assignment by default.
    pub listen: Option<SocketAddr>,
    /// Where to serve `/metrics`, `/status`, `/healthz` and `/readyz`.
    pub http: SocketAddr,
    /// TLS on links, when set.
    pub tls: Option<TlsFiles>,
    /// Shed a peer that takes no frame for this long; a third of the message timeout
    /// (1 to 10 s) by default.
    pub stall: Option<Duration>,
    /// How often to look at the assignment file.
    pub reload_every: Duration,
    /// What a manifest may ask for; the operator passes its own to its workers.
    pub limits: squall_model::Limits,
    /// Where relative paths of the manifest (a `shell` command, `workingDir`) resolve, in
    /// place of the assignment's own base directory.
    pub base_dir: Option<PathBuf>,
}

/// Loads the assignment, with the configured base directory.
fn load(cfg: &WorkerConfig) -> Result<Loaded, AssignmentError> {
    let mut loaded = Loaded::load_within(&cfg.assignment, &cfg.limits)?;
    if let Some(dir) = &cfg.base_dir {
        loaded.plan.base_dir = Some(dir.clone());
    }
    Ok(loaded)
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Bad assignment or manifest.
    #[error(transparent)]
    Assignment(#[from] AssignmentError),
    /// The engine refused to start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A socket or thread.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The gRPC server.
    #[error("gRPC server: {0}")]
    Transport(String),
    /// The address in the assignment is not an IP address and no --listen was given.
    #[error("cannot listen on {0:?}; give --listen")]
    Address(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorkerError {
    let what = what.into();
    move |source| WorkerError::Io { what, source }
}

/// State the HTTP endpoints read.
struct Shared {
    current: Arc<CurrentPlan>,
    engine: Mutex<Option<Topology>>,
    links: Mutex<Vec<(String, Arc<LinkStats>)>>,
    inbound: Arc<InboundStats>,
    drops: Arc<Drops>,
    ready: AtomicBool,
    /// Engines started by this process; activation and reroutes must not add to it.
    engine_starts: AtomicU64,
    /// Mutual TLS on links, when on.
    tls: Option<Arc<TlsLinks>>,
}

impl Shared {
    /// The engine's snapshot and spout activation, or `None` between engines.
    fn engine_state(&self) -> Option<(Snapshot, bool)> {
        self.engine.lock().as_ref().map(|t| (t.metrics(), t.is_active()))
    }

    /// This worker's [`WorkerStatus`] with the engine as `engine` shows it.
    fn status_of(&self, engine: Option<&(Snapshot, bool)>) -> WorkerStatus {
        let in_flight = engine.map_or(0, |(snap, _)| {
            snap.components
                .iter()
                .map(|c| c.queue_depth + if c.role == "spout" { c.total.pending } else { 0 })
                .sum()
        });
        WorkerStatus {
            worker: self.current.worker().to_owned(),
            topology: self.current.topology().to_owned(),
            generation: self.current.generation(),
            engine_running: engine.is_some(),
            active: engine.is_some_and(|(_, active)| *active),
            in_flight,
            engine_starts: self.engine_starts.load(Ordering::Relaxed),
            drops: DropCounts {
                no_route: stats::get(&self.drops.no_route),
                engine_restart: stats::get(&self.drops.engine_restart),
                peer_removed: stats::get(&self.drops.peer_removed),
            },
        }
    }
}

impl crate::http::Endpoints for Shared {
    fn metrics(&self, buckets: crate::prom::Buckets) -> String {
        let engine = self.engine_state();
        let links = self.links.lock().clone();
        let refs: Vec<(String, &LinkStats)> = links.iter().map(|(p, s)| (p.clone(), s.as_ref())).collect();
        let mut page = crate::prom::render(
            &self.status_of(engine.as_ref()),
            engine.as_ref().map(|(snap, _)| snap),
            &refs,
            &self.inbound,
            buckets,
        );
        let link_expiry = refs.iter().filter_map(|(_, s)| s.cert_expiry()).min();
        crate::tls::render_metrics(
            &mut page,
            self.current.topology(),
            self.current.worker(),
            self.tls.as_deref(),
            link_expiry,
        );
        page
    }

    fn status(&self) -> WorkerStatus {
        self.status_of(self.engine_state().as_ref())
    }

    fn figures(&self) -> squall_control::WorkerFigures {
        let engine = self.engine_state();
        crate::figures::figures(
            &self.status_of(engine.as_ref()),
            engine.as_ref().map(|(snap, _)| snap),
        )
    }

    /// Ready while this worker serves (not draining) and an engine runs its tasks: a
    /// restart whose new engine failed to start leaves it unready, not falsely ready.
    /// Links to peers are not required: one dead peer must not take every living worker
    /// out of service; traffic for it is held, shed and replayed instead.
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.engine.lock().is_some()
    }

    fn reset_latencies(&self) {
        if let Some(t) = self.engine.lock().as_ref() {
            t.reset_latencies();
        }
    }
}

struct PeerLink {
    port: PeerPort,
    address: watch::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct EngineRun {
    pump: std::thread::JoinHandle<()>,
    pump_stop: Arc<AtomicBool>,
    view: View,
    /// What the engine was built from: while a new assignment leaves it equal, the
    /// engine keeps running.
    slice: EngineSlice,
}

struct Host {
    current: Arc<CurrentPlan>,
    shared: Arc<Shared>,
    slot: Arc<EngineSlot>,
    table: Arc<RouteTable>,
    dial: DialSettings,
    peers: BTreeMap<String, PeerLink>,
    engine: Option<EngineRun>,
    loaded: Loaded,
}

impl Host {
    /// Runs `loaded`: links to its peers, then a new engine only if this worker's slice
    /// of it changed; otherwise the running engine gets new routes (executors may have
    /// moved between other workers) and its spouts' activation.
    fn apply(&mut self, loaded: Loaded) -> Result<(), WorkerError> {
        let view = View::of(&loaded.plan, &loaded.assignment, self.current.worker())?;
        let generation = loaded.assignment.generation;
        self.current.set(generation, &loaded.plan_hash);
        self.follow_peers(&loaded.assignment);
        let slice = EngineSlice::of(&loaded.plan, &view.placement.local);
        let routes = self.routes(&view);
        match &mut self.engine {
            Some(run) if run.slice == slice => {
                info!(
                    generation,
                    "this worker's engine is unchanged; rerouting without a restart"
                );
                // Equal slices place the same executors here and elsewhere; only who
                // runs the remote ones may differ.
                debug_assert_eq!(run.view.placement, view.placement);
                self.table.set(routes);
                run.view = view;
                self.switch_activation(loaded.active(), generation);
            }
            running => {
                if let Some(run) = running {
                    let changed = run.slice.differences(&slice).join(", ");
                    info!(generation, %changed, "this worker's engine changed; restarting its engine");
                    self.stop_engine(Duration::ZERO);
                }
                self.table.set(routes);
                self.start_engine(&loaded, view, slice)?;
            }
        }
        self.loaded = loaded;
        Ok(())
    }

    /// Keeps one link per peer of `assignment`, following peers that moved.
    fn follow_peers(&mut self, assignment: &Assignment) {
        let me = self.current.worker();
        let wanted: BTreeMap<&str, &str> = assignment
            .workers
            .iter()
            .filter(|w| w.id != me)
            .map(|w| (w.id.as_str(), w.address.as_str()))
            .collect();
        self.peers.retain(|id, _| wanted.contains_key(id.as_str()));
        for (id, addr) in &wanted {
            if let Some(p) = self.peers.get(*id) {
                if *p.address.borrow() != *addr {
                    info!(peer = %id, address = %addr, "peer moved");
                    let _ = p.address.send((*addr).to_owned());
                }
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_FRAMES);
            let (atx, arx) = watch::channel((*addr).to_owned());
            let stats = Arc::new(LinkStats::default());
            let task = tokio::spawn(client::run(
                (*id).to_owned(),
                rx,
                arx,
                Arc::clone(&self.current),
                self.dial.clone(),
                Arc::clone(&stats),
            ));
            let port = PeerPort {
                id: (*id).to_owned(),
                tx,
                stats,
            };
            self.peers.insert(
                (*id).to_owned(),
                PeerLink {
                    port,
                    address: atx,
                    task,
                },
            );
        }
        *self.shared.links.lock() = self
            .peers
            .values()
            .map(|p| (p.port.id.clone(), Arc::clone(&p.port.stats)))
            .collect();
    }

    /// Switches the running engine's spouts to `active`, in place.
    fn switch_activation(&self, active: bool, generation: u64) {
        let engine = self.shared.engine.lock();
        let Some(t) = engine.as_ref() else { return };
        match (active, t.is_active()) {
            (true, false) => {
                info!(generation, "activating spouts in place");
                t.activate();
            }
            (false, true) => {
                info!(
                    generation,
                    "deactivating spouts in place; in-flight trees complete"
                );
                t.deactivate();
            }
            _ => {}
        }
    }

    fn routes(&self, view: &View) -> Routes {
        let peers: Vec<PeerPort> = self.peers.values().map(|p| p.port.clone()).collect();
        let by_queue = view
            .owners
            .iter()
            .map(|o| peers.iter().position(|p| &p.id == o))
            .collect();
        Routes { by_queue, peers }
    }

    fn start_engine(&mut self, loaded: &Loaded, view: View, slice: EngineSlice) -> Result<(), WorkerError> {
        let opts = EngineOptions::from_plan(&loaded.plan);
        let (topology, links) =
            Topology::start_placed(&loaded.plan, Arc::new(Builtins), opts, &view.placement)?;
        self.slot.set(links.inbound, Arc::clone(&links.schemas));
        let stop = Arc::new(AtomicBool::new(false));
        let pump = {
            let (table, schemas, stop, drops) = (
                Arc::clone(&self.table),
                Arc::clone(&links.schemas),
                Arc::clone(&stop),
                Arc::clone(&self.shared.drops),
            );
            let queues = links.outbound;
            std::thread::Builder::new()
                .name("pump".into())
                .spawn(move || pump::run(queues, table, schemas, stop, Duration::from_secs(1), drops))
                .map_err(io("starting the pump thread"))?
        };
        *self.shared.engine.lock() = Some(topology);
        self.shared.engine_starts.fetch_add(1, Ordering::Relaxed);
        info!(worker = %self.current.worker(), tasks = view.placement.local.len(), generation = loaded.assignment.generation, "engine running");
        self.engine = Some(EngineRun {
            pump,
            pump_stop: stop,
            view,
            slice,
        });
        Ok(())
    }

    /// Stops the engine. With a `drain` time, first deactivates the spouts and waits for
    /// in-flight trees and local queues to empty, at most that long.
    fn stop_engine(&mut self, drain: Duration) {
        let Some(run) = self.engine.take() else { return };
        if !drain.is_zero() {
            if let Some(t) = self.shared.engine.lock().as_ref() {
                t.deactivate();
            }
            let deadline = Instant::now() + drain;
            let mut quiet = 0;
            while Instant::now() < deadline && quiet < 3 {
                let busy = self.shared.engine.lock().as_ref().is_some_and(|t| {
                    let s = t.metrics();
                    s.components
                        .iter()
                        .any(|c| c.queue_depth > 0 || (c.role == "spout" && c.total.pending > 0))
                });
                quiet = if busy { 0 } else { quiet + 1 };
                std::thread::sleep(Duration::from_millis(50));
            }
            // The spouts' final counts, so a drain can be checked: emitted = acked + failed
            // + pending, and no pending tree when drained.
            let spouts = self
                .shared
                .engine
                .lock()
                .as_ref()
                .map(|t| t.metrics().spout_totals());
            let (emitted, acked, failed, pending) = spouts.unwrap_or_default();
            if quiet >= 3 {
                info!(
                    emitted,
                    acked, failed, pending, "drained: no tree in flight, local queues empty"
                );
            } else {
                warn!(
                    waited_s = drain.as_secs(),
                    emitted,
                    acked,
                    failed,
                    pending,
                    "stopping with trees still in flight; their spouts will replay them"
                );
            }
        }
        let topology = self.shared.engine.lock().take();
        if let Some(t) = topology {
            t.shutdown();
        }
        run.pump_stop.store(true, Ordering::Relaxed);
        if run.pump.join().is_err() {
            error!("the pump thread panicked");
        }
        self.slot.clear();
    }
}

/// Runs a worker until SIGTERM or Ctrl-C.
pub fn run(cfg: WorkerConfig) -> Result<(), WorkerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("squall-io")
        .enable_all()
        .build()
        .map_err(io("starting the runtime"))?;
    rt.block_on(serve(cfg))
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The gRPC server's task and the sender that shuts it down.
type GrpcServer = (
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    tokio::sync::oneshot::Sender<()>,
);

/// Binds the data plane and the HTTP endpoints and starts serving them; returns the gRPC
/// server's task and the sender that shuts it down.
async fn listen_and_serve(
    cfg: &WorkerConfig,
    listen: std::net::SocketAddr,
    shared: &Arc<Shared>,
    server: &Arc<ServerCtx>,
) -> Result<GrpcServer, WorkerError> {
    let grpc_listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(io(format!("listening on {listen}")))?;
    let http_listener = tokio::net::TcpListener::bind(cfg.http)
        .await
        .map_err(io(format!("listening on {}", cfg.http)))?;
    info!(worker = %cfg.id, grpc = %listen, http = %cfg.http, mutual_tls = shared.tls.is_some(), "worker listening");
    let endpoints: Arc<dyn crate::http::Endpoints> = Arc::clone(shared) as _;
    tokio::spawn(crate::http::serve(http_listener, endpoints));

    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let builder = tonic::transport::Server::builder()
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .tcp_nodelay(true)
        // A 64 KiB batch frame then crosses as one HTTP/2 DATA frame, not four of 16 KiB.
        .max_frame_size(Some(1 << 20))
        // Each accepted stream gets a receiving thread; peers need one stream each.
        .max_concurrent_streams(Some(16))
        .http2_keepalive_interval(Some(Duration::from_secs(2)))
        .http2_keepalive_timeout(Some(Duration::from_secs(4)));
    let service = LinkService::new(Arc::clone(server));
    let shutdown = async {
        let _ = shutdown_rx.await;
    };
    let grpc = match &shared.tls {
        Some(tls) => {
            let incoming = tls_incoming(grpc_listener, Arc::clone(tls));
            tokio::spawn(builder.serve_with_incoming_shutdown(service, incoming, shutdown))
        }
        None => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
            tokio::spawn(builder.serve_with_incoming_shutdown(service, incoming, shutdown))
        }
    };

    Ok((grpc, shutdown_tx))
}

/// At most this many TLS handshakes run at once; further connections are refused.
const MAX_HANDSHAKES: usize = 64;
/// A dialer that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

type TlsConn = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Accepted connections after a successful handshake; refusals are counted and dropped.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsLinks>,
) -> impl futures_util::Stream<Item = Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel::<Result<TlsConn, std::io::Error>>(16);
    tokio::spawn(async move {
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        while !tx.is_closed() {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "accepting a link failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                tls.refusals.inbound(Refusal::Handshake);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (tx, tls) = (tx.clone(), Arc::clone(&tls));
            tokio::spawn(async move {
                let _permit = permit;
                let why = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(tcp)).await {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                        return;
                    }
                    Ok(Err(e)) => (Refusal::of(&e), e.to_string()),
                    Err(_) => (Refusal::Handshake, "handshake timed out".to_owned()),
                };
                tls.refusals.inbound(why.0);
                // Debug: the rate is the dialer's to choose; the metric counts them all.
                tracing::debug!(%peer, reason = why.0.label(), error = %why.1, "TLS peer refused");
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// Applies every change of the assignment file (and SIGHUP) until SIGTERM or Ctrl-C.
async fn follow_assignment(
    cfg: &WorkerConfig,
    host: &mut Host,
    first: Option<WorkerError>,
) -> Result<(), WorkerError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io("installing the SIGTERM handler"))?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(io("installing the SIGHUP handler"))?;
    let mut seen = modified(&cfg.assignment);
    // Set while no engine runs because starting one failed: the assignment is applied
    // again then (a component's resource may have come back), unready meanwhile.
    let mut retry_at: Option<Instant> = None;
    if let Some(e) = first {
        error!(error = %e, retry_s = RETRY.as_secs(), "cannot start the engine; not ready, retrying");
        retry_at = Some(Instant::now() + RETRY);
    }
    loop {
        let why = tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hup.recv() => "SIGHUP",
            _ = tokio::time::sleep(cfg.reload_every) => {
                let now = modified(&cfg.assignment);
                let changed = now != seen;
                let due = retry_at.is_some_and(|t| Instant::now() >= t);
                if !changed && !due { continue }
                seen = now;
                if changed { "file changed" } else { "retrying the engine start" }
            }
        };
        match load(cfg) {
            Ok(l) if l.same_as(&host.loaded) && host.engine.is_some() => {}
            Ok(l) => {
                info!(
                    reason = why,
                    generation = l.assignment.generation,
                    "applying a new assignment"
                );
                retry_at = None;
                if let Err(e) = host.apply(l) {
                    if host.engine.is_some() {
                        error!(error = %e, "cannot apply the new assignment; keeping what runs");
                    } else {
                        error!(error = %e, retry_s = RETRY.as_secs(), "cannot start the engine; not ready, retrying");
                        retry_at = Some(Instant::now() + RETRY);
                    }
                }
            }
            Err(e) => warn!(error = %e, reason = why, "cannot read the assignment; keeping the current one"),
        }
    }

    Ok(())
}

async fn serve(cfg: WorkerConfig) -> Result<(), WorkerError> {
    let loaded = load(&cfg)?;
    let me = loaded
        .assignment
        .worker(&cfg.id)
        .map_err(AssignmentError::from)?
        .clone();
    let listen = match cfg.listen {
        Some(a) => a,
        None => me
            .address
            .parse()
            .map_err(|_| WorkerError::Address(me.address.clone()))?,
    };
    let tls = cfg.tls.clone().map(TlsLinks::load).transpose()?;
    let stop = Arc::new(AtomicBool::new(false));
    let slot = Arc::new(EngineSlot::default());
    let inbound = Arc::new(InboundStats::default());
    let drops = Arc::new(Drops::default());
    let current = Arc::new(CurrentPlan::new(
        &cfg.id,
        &loaded.plan.name,
        loaded.assignment.generation,
        &loaded.plan_hash,
    ));
    let shared = Arc::new(Shared {
        current: Arc::clone(&current),
        engine: Mutex::new(None),
        links: Mutex::new(Vec::new()),
        inbound: Arc::clone(&inbound),
        drops: Arc::clone(&drops),
        ready: AtomicBool::new(false),
        engine_starts: AtomicU64::new(0),
        tls: tls.clone(),
    });
    let server = Arc::new(ServerCtx {
        current: Arc::clone(&current),
        slot: Arc::clone(&slot),
        stats: Arc::clone(&inbound),
        drops: Arc::clone(&drops),
        stop: Arc::clone(&stop),
        tls: tls.clone(),
    });
    if let Some(tls) = &tls {
        info!(identity = %tls.identity().uri(), "mutual TLS on links");
        let tls = Arc::clone(tls);
        // Rotated files are picked up within a second; links already up then renew their
        // sessions (this worker's outgoing ones, and its peers' when asked).
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                tls.reload_if_changed();
            }
        });
    }

    let (grpc, shutdown_tx) = listen_and_serve(&cfg, listen, &shared, &server).await?;

    let timeout = loaded.plan.message_timeout;
    let stall = cfg
        .stall
        .unwrap_or_else(|| (timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(10)));
    let mut host = Host {
        current,
        shared: Arc::clone(&shared),
        slot,
        table: Arc::new(RouteTable::default()),
        dial: DialSettings {
            tls,
            stall,
            window: WINDOW,
        },
        peers: BTreeMap::new(),
        engine: None,
        loaded: loaded.clone(),
    };
    // A first engine start that fails (a `shell` component's program or module missing)
    // leaves the worker up, unready and retrying with the error logged, as a later one
    // does: a container restart loop would hide the reason.
    let first = host.apply(loaded).err();
    shared.ready.store(true, Ordering::Relaxed);

    follow_assignment(&cfg, &mut host, first).await?;

    info!(worker = %cfg.id, drain_s = timeout.as_secs(), "stopping: deactivating spouts and draining");
    shared.ready.store(false, Ordering::Relaxed);
    host.stop_engine(timeout);
    // Give the links a moment to hand over what the pump flushed.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline
        && host
            .peers
            .values()
            .any(|p| p.port.tx.capacity() < p.port.tx.max_capacity())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    host.peers.clear();
    let _ = shutdown_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(1), grpc).await;
    info!(worker = %cfg.id, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use squall_model::TopologyManifest;

    use super::*;
    use crate::http::Endpoints as _;

    fn shared() -> Shared {
        Shared {
            current: Arc::new(CurrentPlan::new("w0", "t", 1, "aaaa")),
            engine: Mutex::new(None),
            links: Mutex::new(Vec::new()),
            inbound: Arc::new(InboundStats::default()),
            drops: Arc::new(Drops::default()),
            ready: AtomicBool::new(false),
            engine_starts: AtomicU64::new(0),
            tls: None,
        }
    }

    fn engine() -> Topology {
        let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: t}
spec:
  spouts: [{name: s, component: sequence, config: {count: 10}}]
  bolts: [{name: b, component: null, inputs: [{from: s}]}]
"#;
        let m = TopologyManifest::from_yaml(yaml, "t").unwrap();
        let plan = squall_model::validate(&m, &Builtins).unwrap();
        Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).unwrap()
    }

    #[test]
    fn ready_only_while_serving_with_an_engine() {
        let s = shared();
        // Serving, but the engine failed to (re)start: not ready, and neither drain gauges
        // nor a status that could read as "nothing in flight".
        s.ready.store(true, Ordering::Relaxed);
        assert!(!s.ready());
        assert!(!s.metrics(Default::default()).contains("squall_worker_in_flight"));
        let between = s.status();
        assert!(!between.engine_running && !between.drained(1) && !between.running(1));

        *s.engine.lock() = Some(engine());
        assert!(s.ready());
        assert!(s.metrics(Default::default()).contains("squall_worker_in_flight{"));
        let running = s.status();
        assert!(running.engine_running && running.running(1) && !running.running(2));
        let figures = s.figures();
        assert!(figures.uptime_ms.is_some() && figures.components.iter().any(|c| c.name == "s"));
        assert_eq!((running.worker.as_str(), running.generation), ("w0", 1));

        // Draining after SIGTERM: the engine still runs, the worker is not ready.
        s.ready.store(false, Ordering::Relaxed);
        assert!(!s.ready());
        let engine = s.engine.lock().take();
        if let Some(t) = engine {
            t.shutdown();
        }
    }
}
