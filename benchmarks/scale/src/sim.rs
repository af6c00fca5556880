//! Simulated nodes and workers: a stand-in kubelet in this process that runs every pod
//! scheduled to its Node as a few tokio tasks speaking the worker's side of the contract.
//!
//! Each simulated worker, like `squall-worker` on Kubernetes:
//! - renews its Lease with `squall_worker::lease::renew` (the worker's own code: a
//!   server-side apply every renewal period), on its own client;
//! - follows its ConfigMap with `squall_worker::configmap::follow_with` (the worker's own
//!   list+watch by name, resumed, re-listed on 410), on another client, into files;
//! - re-reads the assignment file every 250 ms, as the worker does, and "runs" the
//!   generation it names at once (no engine: a real one takes a few ms more to start);
//! - serves `GET /status` (`squall_control::WorkerStatus`) on its pod IP, port 9464.
//!
//! The stand-in kubelet registers the Node (Ready, room for 1,000 pods), renews the node
//! Lease and status every 2 s, gives each pod its own loopback IP (127.201.x.y), reports it
//! Running and Ready once its HTTP port listens, and on deletion stops it and removes the
//! pod.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use squall_control::{Assignment, WorkerStatus, MANIFEST_KEY, STATUS_PATH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The simulated Node's name.
pub const NODE: &str = "sim-node";
const HTTP_PORT: u16 = 9464;
const TOPOLOGY_LABEL: &str = "squall.dev/topology";
/// How often the worker re-reads its assignment file.
const POLL: Duration = Duration::from_millis(250);

/// What one simulated worker runs, shared with its `/status` server and the benchmark.
#[derive(Debug, Default)]
pub struct WorkerState {
    pub status: WorkerStatus,
    /// When each generation was first run.
    pub ran_at: BTreeMap<u64, Instant>,
}

/// Every simulated worker by pod name (`TOPOLOGY-N`).
#[derive(Clone, Default)]
pub struct Fleet {
    workers: Arc<Mutex<HashMap<String, Arc<Mutex<WorkerState>>>>>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Fleet {
    /// Stops every simulated worker.
    pub fn stop_all(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            for task in t.drain(..) {
                task.abort();
            }
        }
    }

    fn insert(&self, pod: &str, state: Arc<Mutex<WorkerState>>) {
        if let Ok(mut w) = self.workers.lock() {
            w.insert(pod.to_owned(), state);
        }
    }

    fn remove(&self, pod: &str) {
        if let Ok(mut w) = self.workers.lock() {
            w.remove(pod);
        }
    }

    /// For the workers of `topology` (pods `TOPOLOGY-N`, `n` of them): when the last of them
    /// first ran `generation` or later, once all have.
    pub fn all_ran(&self, topology: &str, n: usize, generation: u64) -> Option<Instant> {
        let w = self.workers.lock().ok()?;
        let mut last: Option<Instant> = None;
        for i in 0..n {
            let state = w.get(&format!("{topology}-{i}"))?.lock().ok()?;
            let at = *state.ran_at.range(generation..).next()?.1;
            last = Some(last.map_or(at, |l: Instant| l.max(at)));
        }
        last
    }

    pub fn len(&self) -> usize {
        self.workers.lock().map_or(0, |w| w.len())
    }
}

/// Registers the Node and keeps it Ready.
pub async fn register_node(client: &Client) -> Result<tokio::task::JoinHandle<()>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: kube::api::ObjectMeta {
            name: Some(NODE.into()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), NODE.to_owned()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    };
    let uid = nodes
        .create(&PostParams::default(), &node)
        .await?
        .metadata
        .uid
        .context("node without uid")?;
    node_heartbeat(client, &uid, true).await?;
    let client = client.clone();
    Ok(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Err(e) = node_heartbeat(&client, &uid, false).await {
                tracing::warn!(error = %e, "node heartbeat failed");
            }
        }
    }))
}

async fn node_heartbeat(client: &Client, uid: &str, full: bool) -> Result<()> {
    let now = jiff::Timestamp::now();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": NODE, "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": uid}]},
        "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": MicroTime(now)},
    });
    leases
        .patch(
            NODE,
            &PatchParams::apply("squall-bench-scale").force(),
            &Patch::Apply(lease),
        )
        .await?;
    let cond = |t: &str, s: &str| {
        json!({"type": t, "status": s, "reason": "Simulated", "message": "squall-bench-scale",
            "lastHeartbeatTime": Time(now), "lastTransitionTime": Time(now)})
    };
    let status = if full {
        let room = json!({"cpu": "64", "memory": "256Gi", "pods": "1000"});
        json!({"status": {"capacity": room, "allocatable": room,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "conditions": [cond("MemoryPressure", "False"), cond("DiskPressure", "False"),
                cond("PIDPressure", "False"), cond("Ready", "True")],
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "simulated", "containerRuntimeVersion": "sim://0",
                "kubeletVersion": "v1.37.2", "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": "amd64"}}})
    } else {
        let hb = |t: &str| json!({"type": t, "lastHeartbeatTime": Time(now)});
        json!({"status": {"conditions": [hb("MemoryPressure"), hb("DiskPressure"), hb("PIDPressure"), hb("Ready")]}})
    };
    Api::<Node>::all(client.clone())
        .patch_status(NODE, &PatchParams::default(), &Patch::Strategic(status))
        .await?;
    Ok(())
}

/// Hands out 127.201.x.y, reusing released addresses.
#[derive(Default)]
struct Ips {
    next: u32,
    free: Vec<Ipv4Addr>,
}

impl Ips {
    fn take(&mut self) -> Ipv4Addr {
        self.free.pop().unwrap_or_else(|| {
            let n = self.next;
            self.next += 1;
            Ipv4Addr::new(127, 201, (n / 250) as u8, (n % 250 + 1) as u8)
        })
    }
}

struct Running {
    ip: Ipv4Addr,
    tasks: Vec<tokio::task::AbortHandle>,
    name: String,
}

/// The stand-in kubelet: follows the pods bound to [`NODE`] until aborted.
pub async fn kubelet(admin: Client, worker_config: kube::Config, fleet: Fleet, dir: PathBuf) {
    let pods: Api<Pod> = Api::all(admin.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={NODE}"));
    let mut events = std::pin::pin!(watcher(pods, cfg));
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut ips = Ips::default();
    while let Some(event) = events.next().await {
        let pods = match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![p],
            Ok(watcher::Event::Delete(p)) => {
                if let Some(uid) = p.uid() {
                    if let Some(r) = running.remove(&uid) {
                        stop(&fleet, r, &mut ips);
                    }
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch");
                continue;
            }
        };
        for pod in pods {
            let Some(uid) = pod.uid() else { continue };
            if pod.metadata.deletion_timestamp.is_some() {
                // The kubelet's part of a deletion: stop, then remove the object.
                if let Some(r) = running.remove(&uid) {
                    stop(&fleet, r, &mut ips);
                }
                let api: Api<Pod> = Api::namespaced(admin.clone(), &pod.namespace().unwrap_or_default());
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                let name = pod.name_any();
                tokio::spawn(async move {
                    let _ = api.delete(&name, &dp).await;
                });
                continue;
            }
            if running.contains_key(&uid) {
                continue;
            }
            let ip = ips.take();
            match start_worker(&admin, &worker_config, &fleet, &dir, &pod, ip).await {
                Ok(tasks) => {
                    running.insert(
                        uid,
                        Running {
                            ip,
                            tasks,
                            name: pod.name_any(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(pod = %pod.name_any(), error = %e, "starting a simulated worker failed");
                    ips.free.push(ip);
                }
            }
        }
    }
}

fn stop(fleet: &Fleet, r: Running, ips: &mut Ips) {
    for t in &r.tasks {
        t.abort();
    }
    fleet.remove(&r.name);
    ips.free.push(r.ip);
}

/// A plain `value` of the worker container's environment.
fn env(pod: &Pod, name: &str) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .first()?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

fn seconds(pod: &Pod, name: &str, default: u64) -> Duration {
    Duration::from_secs(env(pod, name).and_then(|v| v.parse().ok()).unwrap_or(default))
}

async fn start_worker(
    admin: &Client,
    worker_config: &kube::Config,
    fleet: &Fleet,
    dir: &Path,
    pod: &Pod,
    ip: Ipv4Addr,
) -> Result<Vec<tokio::task::AbortHandle>> {
    let name = pod.name_any();
    let ns = pod.namespace().unwrap_or_else(|| "default".into());
    let uid = pod.uid().context("pod without uid")?;
    let topology = pod.labels().get(TOPOLOGY_LABEL).cloned().unwrap_or_default();
    let configmap = env(pod, "SQUALL_ASSIGNMENT_CONFIGMAP").context("no SQUALL_ASSIGNMENT_CONFIGMAP")?;
    let listener = tokio::net::TcpListener::bind((ip, HTTP_PORT)).await?;
    let state = Arc::new(Mutex::new(WorkerState {
        status: WorkerStatus {
            worker: name.clone(),
            topology: topology.clone(),
            ..WorkerStatus::default()
        },
        ran_at: BTreeMap::new(),
    }));
    fleet.insert(&name, Arc::clone(&state));
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(serve(listener, Arc::clone(&state))).abort_handle());

    // Two clients, as the worker's Lease thread and ConfigMap thread each have their own.
    let lease = squall_worker::lease::LeaseConfig {
        namespace: ns.clone(),
        name: name.clone(),
        holder: uid.clone(),
        pod_name: Some(name.clone()),
        labels: BTreeMap::from([(TOPOLOGY_LABEL.to_owned(), topology.clone())]),
        duration: seconds(pod, "SQUALL_LEASE_DURATION_SECONDS", 10),
        renew_every: seconds(pod, "SQUALL_LEASE_RENEW_SECONDS", 2),
    };
    let leases: Api<Lease> = Api::namespaced(Client::try_from(worker_config.clone())?, &ns);
    tasks.push(tokio::spawn(squall_worker::lease::renew(leases, lease)).abort_handle());

    let files = dir.join(&uid);
    std::fs::create_dir_all(&files)?;
    let assignment = files.join("assignment.yaml");
    let sync = squall_worker::configmap::SyncConfig {
        namespace: ns.clone(),
        name: configmap,
        worker_id: name.clone(),
        assignment: assignment.clone(),
    };
    let cms: Api<ConfigMap> = Api::namespaced(Client::try_from(worker_config.clone())?, &ns);
    let (first, _) = std::sync::mpsc::channel();
    tasks.push(tokio::spawn(squall_worker::configmap::follow_with(cms, sync, first)).abort_handle());
    tasks.push(tokio::spawn(follow_file(assignment, state)).abort_handle());
    if let Ok(mut all) = fleet.tasks.lock() {
        all.retain(|t| !t.is_finished());
        all.extend(tasks.iter().cloned());
    }

    // Running and Ready: the HTTP port listens.
    let now = Time(jiff::Timestamp::now());
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    let status = json!({"status": {
        "phase": "Running", "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}], "startTime": now,
        "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
        "containerStatuses": [{"name": "worker", "image": "squall/worker:sim", "imageID": "sim://worker",
            "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}}],
    }});
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    tokio::spawn(async move {
        if let Err(e) = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(status))
            .await
        {
            tracing::warn!(pod = %name, error = %e, "pod status not written");
        }
    });
    Ok(tasks)
}

/// Re-reads the assignment every [`POLL`] and runs what it names.
async fn follow_file(assignment: PathBuf, state: Arc<Mutex<WorkerState>>) {
    let manifest = assignment.with_file_name(MANIFEST_KEY);
    let mut seen = None;
    loop {
        tokio::time::sleep(POLL).await;
        let Ok(modified) = std::fs::metadata(&assignment).and_then(|m| m.modified()) else {
            continue;
        };
        if seen == Some(modified) {
            continue;
        }
        seen = Some(modified);
        let Some(generation) = std::fs::read_to_string(&assignment)
            .ok()
            .and_then(|t| serde_yaml_ng::from_str::<Assignment>(&t).ok())
            .map(|a| a.generation)
        else {
            continue;
        };
        let active = std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|t| squall_model::TopologyManifest::from_yaml(&t, "sim").ok())
            .map(|m| m.spec.desired_state == squall_model::DesiredState::Active);
        let Some(active) = active else { continue };
        if let Ok(mut s) = state.lock() {
            if s.status.generation != generation {
                let plan_changed = !s.status.engine_running || s.status.active == active;
                s.status.generation = generation;
                s.status.engine_running = true;
                if plan_changed {
                    s.status.engine_starts += 1;
                }
                s.status.active = active;
                s.ran_at.entry(generation).or_insert_with(Instant::now);
            }
        }
    }
}

/// `GET /status` (and 200 for anything else, like `/readyz`), one request per connection.
async fn serve(listener: tokio::net::TcpListener, state: Arc<Mutex<WorkerState>>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                }
            }
            let path = String::from_utf8_lossy(&head)
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let body = if path == STATUS_PATH {
                state
                    .lock()
                    .ok()
                    .and_then(|s| serde_json::to_string(&s.status).ok())
                    .unwrap_or_default()
            } else {
                "ok\n".to_owned()
            };
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}
