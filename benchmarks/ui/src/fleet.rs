//! The cluster the operator's UI reads, stood in on loopback: topologies of many
//! components, each worker pod a stand-in serving `GET /figures` on its own loopback IP at
//! the workers' port (through the worker's own HTTP server, `squall_worker::http`), and a
//! stand-in API server answering the five requests the UI makes: list topologies, list a
//! topology's pods, TokenReview and SubjectAccessReview (always yes, counted).
//!
//! The figures are typed `WorkerFigures` for exactly the tasks the real round-robin
//! assignment gives each worker, with counters that grow with time and latency
//! distributions over the workers' own bucket bounds, so every window has figures.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use squall_control::figures::{ComponentFigures, Counters, FigureRole, LatencyFigures, TaskFigures};
use squall_control::{Assignment, WorkerFigures, WorkerStatus};
use squall_model::crd::{Phase, Topology, TopologyStatus};
use squall_model::{Plan, Role, TopologyManifest};
use squall_worker::http::Endpoints;
use tokio::net::TcpListener;

/// Non-empty buckets of each stand-in latency distribution.
pub const LATENCY_BUCKETS: usize = 24;

/// The namespace every topology is in.
pub const NS: &str = "bench";

/// The shape of the stood-in cluster.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub topologies: usize,
    pub components: usize,
    pub workers: usize,
    pub parallelism: usize,
}

/// A topology of `shape.components` components: a quarter spouts (at least one), the
/// rest bolts in chains from them, each with `parallelism` executors of two tasks.
fn manifest(name: &str, shape: Shape) -> String {
    let spouts = (shape.components / 4).max(1);
    let p = shape.parallelism;
    let mut y = format!(
        "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {{name: {name}}}\nspec:\n  workers: {}\n  ackers: {}\n  spouts:\n",
        shape.workers, shape.workers
    );
    for s in 0..spouts {
        y += &format!(
            "    - {{name: spout-{s:02}, component: const, parallelism: {p}, tasks: {}}}\n",
            2 * p
        );
    }
    y += "  bolts:\n";
    for b in 0..shape.components.saturating_sub(spouts) {
        // Bolt b reads spout b (the first of each chain) or the bolt `spouts` before it.
        let from = if b < spouts {
            format!("spout-{b:02}")
        } else {
            format!("bolt-{:02}", b - spouts)
        };
        let grouping = if b % 2 == 0 {
            "shuffle"
        } else {
            "fields, fields: [payload]"
        };
        y += &format!(
            "    - {{name: bolt-{b:02}, component: identity, parallelism: {p}, tasks: {}, inputs: [{{from: {from}, grouping: {{type: {grouping}}}}}]}}\n",
            2 * p
        );
    }
    y
}

/// One stand-in worker: its figures at engine start, per second of uptime.
struct StandIn {
    template: WorkerFigures,
    started: Instant,
    answered: Arc<AtomicU64>,
}

/// A latency distribution of `per_s` samples a second around bucket `at` of the workers'
/// exported bounds.
fn latency(per_s: u64, at: usize) -> LatencyFigures {
    let bounds = squall_worker::prom::exported_bounds();
    let buckets: Vec<(u64, u64)> = bounds
        .iter()
        .skip(at.saturating_sub(8))
        .take(LATENCY_BUCKETS)
        .enumerate()
        .map(|(i, &(_, le))| (le, (per_s / (1 + (i as u64).abs_diff(8))).max(1)))
        .collect();
    let sum_us = buckets.iter().map(|(le, n)| le * n).sum();
    LatencyFigures {
        buckets,
        overflow: 0,
        sum_us,
    }
}

fn counters(role: Role, per_s: u64) -> Counters {
    let spout = role == Role::Spout;
    Counters {
        emitted: per_s,
        transferred: per_s,
        executed: if spout { 0 } else { per_s },
        acked: per_s,
        failed: 0,
        errors: 0,
        busy_ns: per_s * 900,
        backpressure_ns: per_s * 20,
        pending: 0,
        complete: if spout {
            latency(per_s / 20, 60)
        } else {
            LatencyFigures::default()
        },
        execute: if spout {
            LatencyFigures::default()
        } else {
            latency(per_s / 20, 20)
        },
        process: if spout {
            LatencyFigures::default()
        } else {
            latency(per_s / 20, 30)
        },
    }
}

/// Worker `id`'s figures per second of uptime, for its `tasks` of `plan`.
fn template(plan: &Plan, id: &str, tasks: &std::collections::BTreeSet<u32>) -> WorkerFigures {
    let per_s = 10_000;
    let components = plan
        .components
        .iter()
        .filter(|c| c.tasks.iter().any(|t| tasks.contains(t)))
        .map(|c| {
            let mine: Vec<u32> = c.tasks.iter().copied().filter(|t| tasks.contains(t)).collect();
            let executors = c
                .executor_tasks()
                .iter()
                .filter(|e| e.iter().any(|t| tasks.contains(t)))
                .count();
            ComponentFigures {
                name: c.name.clone(),
                role: match c.role {
                    Role::Spout => FigureRole::Spout,
                    Role::Bolt => FigureRole::Bolt,
                    Role::Acker => FigureRole::Acker,
                },
                executors: u32::try_from(executors).unwrap_or(u32::MAX),
                totals: counters(c.role, per_s * mine.len() as u64),
                queue_depth: 12,
                queue_capacity: 16_384,
                last_error: None,
                gauges: Default::default(),
                tasks: mine
                    .iter()
                    .map(|&task| TaskFigures {
                        task,
                        counters: counters(c.role, per_s),
                    })
                    .collect(),
            }
        })
        .collect();
    WorkerFigures {
        worker: id.to_owned(),
        topology: plan.name.clone(),
        generation: 1,
        uptime_ms: Some(0),
        components,
        tasks_omitted: 0,
    }
}

fn scale(l: &mut LatencyFigures, by: f64) {
    for (_, n) in &mut l.buckets {
        *n = (*n as f64 * by) as u64;
    }
    l.sum_us = (l.sum_us as f64 * by) as u64;
}

fn grown(c: &mut Counters, by: f64) {
    for v in [
        &mut c.emitted,
        &mut c.transferred,
        &mut c.executed,
        &mut c.acked,
        &mut c.busy_ns,
        &mut c.backpressure_ns,
    ] {
        *v = (*v as f64 * by) as u64;
    }
    scale(&mut c.complete, by);
    scale(&mut c.execute, by);
    scale(&mut c.process, by);
}

impl Endpoints for StandIn {
    fn metrics(&self, _: squall_worker::prom::Buckets) -> String {
        String::new()
    }
    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            worker: self.template.worker.clone(),
            engine_running: true,
            generation: 1,
            ..WorkerStatus::default()
        }
    }
    fn figures(&self) -> WorkerFigures {
        self.answered.fetch_add(1, Ordering::Relaxed);
        let up = self.started.elapsed();
        // As if the engine had run an hour before the benchmark began.
        let secs = 3600.0 + up.as_secs_f64();
        let mut f = self.template.clone();
        f.uptime_ms = Some(u64::try_from((secs * 1000.0) as u128).unwrap_or(u64::MAX));
        for c in &mut f.components {
            grown(&mut c.totals, secs);
            for t in &mut c.tasks {
                grown(&mut t.counters, secs);
            }
        }
        f
    }
    fn ready(&self) -> bool {
        true
    }
    fn reset_latencies(&self) {}
}

/// What the stand-in API server was asked, by kind.
#[derive(Debug, Default)]
pub struct Asked {
    pub topology_lists: AtomicU64,
    pub pod_lists: AtomicU64,
    pub token_reviews: AtomicU64,
    pub access_reviews: AtomicU64,
}

/// The stood-in cluster, serving until its runtime ends.
pub struct Fleet {
    pub api: SocketAddr,
    pub asked: Arc<Asked>,
    /// `GET /figures` answered by all the stand-in workers.
    pub figures_answered: Arc<AtomicU64>,
    /// `(topology id, component names)` of every topology.
    pub topologies: Vec<(String, Vec<String>)>,
    /// Size of one worker's figures, bytes.
    pub figures_bytes: usize,
    pub workers: usize,
}

/// The loopback IP of worker `w` of topology `t`: one per pod, as pod IPs are.
fn pod_ip(t: usize, w: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        77,
        u8::try_from(t).unwrap_or(255),
        u8::try_from(w + 1).unwrap_or(255),
    )
}

/// Starts the stand-in workers and API server on the current runtime.
pub async fn start(shape: Shape) -> Result<Fleet> {
    let answered = Arc::new(AtomicU64::new(0));
    let (mut items, mut pods) = (Vec::new(), BTreeMap::new());
    let mut topologies = Vec::new();
    let mut figures_bytes = 0;
    let port = u16::try_from(squall_operator::HTTP_PORT)?;
    for t in 0..shape.topologies {
        let name = format!("topology-{t:02}");
        let m = TopologyManifest::from_yaml(&manifest(&name, shape), &name)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let plan = squall_model::validate(&m, &squall_catalog::BuiltinKinds)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let ids: Vec<(String, String)> = (0..shape.workers)
            .map(|w| (format!("{name}-{w}"), format!("{}:7000", pod_ip(t, w))))
            .collect();
        let assignment = Assignment::round_robin(&plan, "topology.yaml".into(), &ids, 1);
        let mut list = Vec::new();
        for (w, spec) in assignment.workers.iter().enumerate() {
            let ip = pod_ip(t, w);
            let standin = StandIn {
                template: template(&plan, &spec.id, &spec.tasks),
                started: Instant::now(),
                answered: Arc::clone(&answered),
            };
            figures_bytes = serde_json::to_vec(&standin.figures())?.len();
            let listener = TcpListener::bind((ip, port))
                .await
                .with_context(|| format!("binding {ip}:{port} for a stand-in worker"))?;
            tokio::spawn(squall_worker::http::serve(listener, Arc::new(standin)));
            list.push(json!({
                "metadata": {"name": spec.id, "namespace": NS, "labels": {squall_operator::TOPOLOGY_LABEL: name}},
                "status": {"podIP": ip.to_string(), "phase": "Running"},
            }));
        }
        pods.insert(name.clone(), list);
        let mut object = Topology::new(&name, m.spec.clone());
        object.metadata.namespace = Some(NS.to_owned());
        object.metadata.generation = Some(1);
        object.status = Some(TopologyStatus {
            phase: Phase::Running,
            desired_workers: i32::try_from(shape.workers)?,
            ready_workers: i32::try_from(shape.workers)?,
            ..TopologyStatus::default()
        });
        items.push(serde_json::to_value(&object)?);
        let components = plan
            .spec
            .spouts
            .iter()
            .chain(&plan.spec.bolts)
            .map(|c| c.name.clone())
            .collect();
        topologies.push((format!("{NS}.{name}"), components));
    }
    let asked = Arc::new(Asked::default());
    let api = serve_api(items, pods, Arc::clone(&asked)).await?;
    Ok(Fleet {
        api,
        asked,
        figures_answered: answered,
        topologies,
        figures_bytes,
        workers: shape.topologies * shape.workers,
    })
}

/// The stand-in API server's answers, prepared once.
struct Api {
    topologies: Bytes,
    pods: BTreeMap<String, Bytes>,
    asked: Arc<Asked>,
}

async fn serve_api(
    items: Vec<serde_json::Value>,
    pods: BTreeMap<String, Vec<serde_json::Value>>,
    asked: Arc<Asked>,
) -> Result<SocketAddr> {
    let list = |kind: &str, version: &str, items| {
        Bytes::from(json!({"apiVersion": version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items}).to_string())
    };
    let api = Arc::new(Api {
        topologies: list("TopologyList", "squall.dev/v1alpha1", items),
        pods: pods
            .into_iter()
            .map(|(t, p)| (t, list("PodList", "v1", p)))
            .collect(),
        asked,
    });
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, Infallible>(answer(&api, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The value of `key` in a query string, percent-decoded.
fn query_value(query: &str, key: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?;
    squall_ui::route::percent_decode(raw, true).ok()
}

async fn answer(api: &Api, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let query = req.uri().query().unwrap_or("").to_owned();
    // The reviews echo nothing of what they were asked: only the body's end is awaited.
    let _ = req.into_body().collect().await;
    let ok = |body: Bytes| {
        let mut r = Response::new(Full::new(body));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    };
    let count = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
    match (method, path.as_str()) {
        (Method::GET, "/apis/squall.dev/v1alpha1/topologies") => {
            count(&api.asked.topology_lists);
            ok(api.topologies.clone())
        }
        (Method::GET, p) if p == format!("/api/v1/namespaces/{NS}/pods") => {
            count(&api.asked.pod_lists);
            let selector = query_value(&query, "labelSelector").unwrap_or_default();
            let name = selector.rsplit('=').next().unwrap_or_default();
            ok(api.pods.get(name).cloned().unwrap_or_else(|| {
                Bytes::from_static(
                    b"{\"apiVersion\":\"v1\",\"kind\":\"PodList\",\"metadata\":{},\"items\":[]}",
                )
            }))
        }
        (Method::POST, "/apis/authentication.k8s.io/v1/tokenreviews") => {
            count(&api.asked.token_reviews);
            ok(Bytes::from_static(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{},"status":{"authenticated":true,"user":{"username":"bench","groups":["system:authenticated"]}}}"#))
        }
        (Method::POST, "/apis/authorization.k8s.io/v1/subjectaccessreviews") => {
            count(&api.asked.access_reviews);
            ok(Bytes::from_static(br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{},"status":{"allowed":true}}"#))
        }
        _ => {
            let mut r = ok(Bytes::from_static(
                br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
            ));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}
