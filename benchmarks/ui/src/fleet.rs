//! The worker processes the operator's UI asks, stand-ins on loopback: topologies of many
//! components, each worker pod a stand-in serving `GET /figures` on its own loopback IP at
//! the workers' port (through the worker's own HTTP server, `squall_worker::http`). What the
//! API server holds for them (Topology objects and worker Pods whose IPs are these) is
//! created in a real control plane by [`crate::plane`].
//!
//! The figures are typed `WorkerFigures` for exactly the tasks the real round-robin
//! assignment gives each worker, with counters that grow with time and latency
//! distributions over the workers' own bucket bounds, so every window has figures.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use squall_control::figures::{ComponentFigures, Counters, FigureRole, LatencyFigures, TaskFigures};
use squall_control::{Assignment, WorkerFigures, WorkerStatus};
use squall_model::crd::Topology;
use squall_model::{Plan, Role, TopologyManifest};
use squall_worker::http::Endpoints;
use tokio::net::TcpListener;

/// Non-empty buckets of each stand-in latency distribution.
pub const LATENCY_BUCKETS: usize = 24;

/// The namespace every topology is in.
pub const NS: &str = "bench";

/// The shape of the fleet.
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
                outputs: Vec::new(),
                inputs: Vec::new(),
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

/// One topology of the fleet: what the control plane is to hold for it.
pub struct Member {
    /// The Topology object to create (no status yet).
    pub topology: Topology,
    /// Acker tasks of its plan.
    pub ackers: u32,
    /// Its worker pods: name and the loopback IP its stand-in serves on.
    pub pods: Vec<(String, Ipv4Addr)>,
    /// Its spouts' and bolts' names.
    pub components: Vec<String>,
}

impl Member {
    /// The id the UI knows it by, `namespace.name`.
    pub fn id(&self) -> String {
        format!(
            "{NS}.{}",
            self.topology.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

/// The stand-in workers, serving until their runtime ends, and what the control plane is
/// to hold for them.
pub struct Fleet {
    pub shape: Shape,
    /// `GET /figures` answered by all the stand-in workers.
    pub figures_answered: Arc<AtomicU64>,
    pub topologies: Vec<Member>,
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

/// Starts the stand-in workers on the current runtime.
pub async fn start(shape: Shape) -> Result<Fleet> {
    let answered = Arc::new(AtomicU64::new(0));
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
        let mut pods = Vec::new();
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
            pods.push((spec.id.clone(), ip));
        }
        let mut topology = Topology::new(&name, m.spec.clone());
        topology.metadata.namespace = Some(NS.to_owned());
        let components = plan
            .spec
            .spouts
            .iter()
            .chain(&plan.spec.bolts)
            .map(|c| c.name.clone())
            .collect();
        topologies.push(Member {
            topology,
            ackers: plan.ackers,
            pods,
            components,
        });
    }
    Ok(Fleet {
        shape,
        figures_answered: answered,
        topologies,
        figures_bytes,
        workers: shape.topologies * shape.workers,
    })
}
