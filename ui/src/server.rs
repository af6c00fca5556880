//! The HTTP side: sampling the source periodically into each topology's history, and
//! answering requests from those histories, every request bounded in size and time.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::api::{ActionDone, ErrorBody, TopologySummary};
use crate::assets;
use crate::auth::{Authorize, Decision, Open, Verb};
use crate::error::ApiError;
use crate::route::{self, Action, Query, Route};
use crate::sample::TopologySample;
use crate::source::{Control, Source};
use crate::views;
use crate::window::History;

/// How the API samples and what it accepts.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often the source is sampled; the newest figures are at most this old.
    pub period: Duration,
    /// Samples each bounded window keeps (its length ÷ this is its resolution).
    pub resolution: u32,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Longest path and query together, bytes.
    pub max_path: usize,
    /// Largest request head (request line and headers), bytes; at least 8192.
    pub max_head: usize,
    /// A request not answered within this is answered 408.
    pub request_timeout: Duration,
    /// A connection that has not sent a whole request head within this is closed.
    pub header_timeout: Duration,
    /// A connection is closed after this long, even if kept alive.
    pub connection_lifetime: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// What `stormVersion` says.
    pub version: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            period: Duration::from_secs(1),
            resolution: 20,
            max_body: 64 * 1024,
            max_path: 2048,
            max_head: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(120),
            max_connections: 64,
            version: concat!("squall ", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

struct Inner<S, C, A> {
    source: S,
    control: C,
    auth: A,
    options: Options,
    histories: Mutex<BTreeMap<String, History>>,
}

/// Storm's REST API over a [`Source`] and a [`Control`], each request authorized by an
/// [`Authorize`] hook ([`Open`] unless given one).
pub struct Ui<S, C, A = Open> {
    inner: Arc<Inner<S, C, A>>,
}

impl<S, C, A> Clone for Ui<S, C, A> {
    fn clone(&self) -> Self {
        Ui {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Source, C: Control> Ui<S, C, Open> {
    /// An API with no samples yet, open to every caller (for loopback).
    pub fn new(source: S, control: C, options: Options) -> Self {
        Ui::with_authorizer(source, control, Open, options)
    }
}

impl<S: Source, C: Control, A: Authorize> Ui<S, C, A> {
    /// An API with no samples yet whose requests `auth` authorizes.
    pub fn with_authorizer(source: S, control: C, auth: A, options: Options) -> Self {
        Ui {
            inner: Arc::new(Inner {
                source,
                control,
                auth,
                options,
                histories: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Asks the source for a sample now and records it, if it answers.
    pub async fn sample_now(&self) {
        match self.inner.source.sample().await {
            Some(samples) => self.record(samples),
            None => debug!("the source gave no sample this time; keeping the histories"),
        }
    }

    /// Records one sample per topology; topologies missing from `samples` are dropped.
    pub fn record(&self, samples: Vec<TopologySample>) {
        let mut all = self.inner.histories();
        let ids: std::collections::BTreeSet<String> = samples.iter().map(|s| s.info.id.clone()).collect();
        all.retain(|id, _| ids.contains(id));
        for s in samples {
            match all.get_mut(&s.info.id) {
                Some(h) => h.push(s),
                None => {
                    let id = s.info.id.clone();
                    all.insert(id, History::new(s, self.inner.options.resolution));
                }
            }
        }
    }

    /// Samples held for topology `id` (each window's, counted once), if it is known.
    pub fn samples_held(&self, id: &str) -> Option<usize> {
        self.inner.histories().get(id).map(History::len)
    }

    /// Samples the source every period and serves `listener` until dropped.
    pub async fn serve(&self, listener: TcpListener) {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, period_ms = self.inner.options.period.as_millis() as u64, "serving Storm's REST API");
        }
        let sampler = async {
            let mut tick = tokio::time::interval(self.inner.options.period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.sample_now().await;
            }
        };
        tokio::select! {
            () = sampler => {}
            () = self.accept(listener) => {}
        }
    }

    async fn accept(&self, listener: TcpListener) {
        let permits = Arc::new(Semaphore::new(self.inner.options.max_connections.max(1)));
        loop {
            // Waiting for a permit before accepting leaves extra clients in the backlog.
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let sock = match listener.accept().await {
                Ok((sock, _)) => sock,
                Err(e) => {
                    warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                connection(inner, sock).await;
                drop(permit);
            });
        }
    }
}

impl<S, C, A> Inner<S, C, A> {
    fn histories(&self) -> MutexGuard<'_, BTreeMap<String, History>> {
        // A panic while holding the lock leaves whole histories behind: still usable.
        self.histories.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn connection<S: Source, C: Control, A: Authorize>(inner: Arc<Inner<S, C, A>>, sock: TcpStream) {
    let o = &inner.options;
    let lifetime = o.connection_lifetime;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(o.header_timeout)
        .max_buf_size(o.max_head.max(8192));
    let svc_inner = Arc::clone(&inner);
    let svc = service_fn(move |req| {
        let inner = Arc::clone(&svc_inner);
        async move { Ok::<_, Infallible>(handle(&inner, req).await) }
    });
    match tokio::time::timeout(lifetime, builder.serve_connection(TokioIo::new(sock), svc)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "connection ended with an error"),
        Err(_) => debug!(
            lifetime_s = lifetime.as_secs(),
            "connection closed at the end of its lifetime"
        ),
    }
}

async fn handle<S: Source, C: Control, A: Authorize>(
    inner: &Inner<S, C, A>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // The web UI's pages and assets; everything under /api/ goes on to the API.
    if let Some(r) = assets::answer(&req) {
        let response = r.unwrap_or_else(|e| error_response(&e));
        debug!(%method, path = %truncated(&path), status = response.status().as_u16(), "page");
        return response;
    }
    let timeout = inner.options.request_timeout;
    let result = match tokio::time::timeout(timeout, answer(inner, req)).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::Timeout(timeout)),
    };
    let response = match result {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => error_response(&e),
    };
    debug!(%method, path = %truncated(&path), status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

/// Paths in logs are at most this long (they come from outside).
fn truncated(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let status = e.status();
    let body = ErrorBody {
        error: format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
        error_message: e.to_string(),
    };
    let mut r = json(status, serde_json::to_vec(&body).unwrap_or_default());
    match e {
        ApiError::MethodNotAllowed { allow, .. } => {
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        // The scheme the caller is to authenticate with (RFC 6750).
        ApiError::Unauthorized(_) => {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        _ => {}
    }
    r
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::Internal(format!("encoding the answer: {e}")))
}

async fn answer<S: Source, C: Control, A: Authorize>(
    inner: &Inner<S, C, A>,
    req: Request<Incoming>,
) -> Result<Vec<u8>, ApiError> {
    let o = &inner.options;
    let uri = req.uri();
    let len = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    if len > o.max_path {
        return Err(ApiError::UriTooLong { limit: o.max_path });
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > o.max_body as u64) {
        return Err(ApiError::BodyTooLarge { limit: o.max_body });
    }
    let route = route::parse(uri.path())?;
    let query = Query::parse(uri.query())?;
    let wanted = route.method();
    if req.method().as_str() != wanted {
        return Err(ApiError::MethodNotAllowed {
            allow: wanted,
            message: format!("{} takes {wanted} only", truncated(uri.path())),
        });
    }
    // Before the body is read or anything looked up: an unauthorized caller learns
    // neither whether the topology exists nor what the body would have done.
    let (topology, verb) = route.access();
    allowed(inner.auth.authorize(req.headers(), topology, verb).await)?;
    match route {
        Route::Action(id, action) => {
            let body = read_body(req, o.max_body).await?;
            act(inner, id, action, &body).await
        }
        Route::ClusterSummary | Route::TopologySummary => {
            let visible = visible(inner, req.headers()).await?;
            page(inner, &route, &query, Some(&visible))
        }
        read => page(inner, &read, &query, None),
    }
}

/// A decision as the request's outcome.
fn allowed(d: Decision) -> Result<(), ApiError> {
    match d {
        Decision::Allow => Ok(()),
        Decision::Deny(m) => Err(ApiError::Forbidden(m)),
        Decision::Unauthenticated(m) => Err(ApiError::Unauthorized(m)),
        Decision::Unavailable(m) => Err(ApiError::Unavailable(m)),
    }
}

/// The topologies a list shows this caller: those the hook allows to list, one by one.
async fn visible<S, C, A: Authorize>(
    inner: &Inner<S, C, A>,
    headers: &http::HeaderMap,
) -> Result<BTreeSet<String>, ApiError> {
    let ids: Vec<String> = inner.histories().keys().cloned().collect();
    let mut out = BTreeSet::new();
    for id in ids {
        match inner.auth.authorize(headers, Some(&id), Verb::List).await {
            Decision::Allow => {
                out.insert(id);
            }
            Decision::Deny(_) => {}
            other => allowed(other)?,
        }
    }
    Ok(out)
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::BodyTooLarge { limit }),
        Err(e) => Err(ApiError::BadRequest(format!("reading the request body: {e}"))),
    }
}

async fn act<S: Source, C: Control, A>(
    inner: &Inner<S, C, A>,
    id: String,
    action: Action,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let c = &inner.control;
    let operation = action.name();
    match action {
        Action::Activate => c.activate(&id).await?,
        Action::Deactivate => c.deactivate(&id).await?,
        Action::Rebalance(wait) => {
            let options = route::rebalance_options(body)?;
            c.rebalance(&id, wait, options).await?;
        }
        Action::Kill(wait) => c.kill(&id, wait).await?,
    }
    info!(topology = %id, operation, "topology action accepted");
    to_json(&ActionDone {
        topology_operation: operation,
        topology_id: id,
        status: "success",
    })
}

/// A read: answered from the histories alone, never from the source. A list shows only
/// the topologies in `visible`, when given.
fn page<S, C, A>(
    inner: &Inner<S, C, A>,
    route: &Route,
    q: &Query,
    visible: Option<&BTreeSet<String>>,
) -> Result<Vec<u8>, ApiError> {
    let all = inner.histories();
    let history = |id: &str| {
        all.get(id)
            .ok_or_else(|| ApiError::NotFound(format!("topology {id:?} not found")))
    };
    let listed = || {
        all.iter()
            .filter(|(id, _)| visible.is_none_or(|v| v.contains(*id)))
            .map(|(_, h)| h)
    };
    match route {
        Route::ClusterSummary => to_json(&views::cluster_summary(listed(), &inner.options.version)),
        Route::TopologySummary => to_json(&TopologySummary {
            topologies: listed().map(|h| views::topology_row(h.newest())).collect(),
            scheduler_display_resource: false,
        }),
        Route::Topology(id) => to_json(&views::topology_page(history(id)?, q.window, q.sys)),
        Route::Visualization(id) => to_json(&views::visualization(history(id)?, q.window, q.sys)),
        Route::Lag(id) => to_json(&views::lag(history(id)?)),
        Route::Component(id, comp) => {
            let h = history(id)?;
            let c = h.newest().component(comp).ok_or_else(|| {
                ApiError::NotFound(format!("component {comp:?} not found in topology {id:?}"))
            })?;
            to_json(&views::component_page(h, c, q.window))
        }
        Route::Action(..) => Err(ApiError::Internal("an action routed as a read".into())),
    }
}

impl Route {
    /// The one method the route takes.
    fn method(&self) -> &'static str {
        match self {
            Route::Action(..) => "POST",
            _ => "GET",
        }
    }

    /// What the route touches, as the [`Authorize`] hook is asked.
    fn access(&self) -> (Option<&str>, Verb) {
        match self {
            Route::ClusterSummary | Route::TopologySummary => (None, Verb::List),
            Route::Topology(id) | Route::Visualization(id) | Route::Lag(id) | Route::Component(id, _) => {
                (Some(id), Verb::Get)
            }
            Route::Action(id, Action::Kill(_)) => (Some(id), Verb::Delete),
            Route::Action(id, _) => (Some(id), Verb::Patch),
        }
    }
}
