//! Runs the pods bound to the agent's nodes as process groups and reports
//! their status, like the kubelet's pod workers.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::config::AgentConfig;
use crate::node::HOST_IP;
use crate::process::{self, Proc, Registry, SpawnSpec};
use crate::{env, probe, Error};

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Hands out distinct loopback addresses after the configured base.
pub struct IpPool {
    base: u32,
    used: BTreeSet<u32>,
}

impl IpPool {
    pub fn new(base: Ipv4Addr) -> Self {
        Self {
            base: u32::from(base),
            used: BTreeSet::new(),
        }
    }
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        // Skip .0 and .255 so addresses never look like network/broadcast ones.
        let limit = 0x7fff_ffffu32.saturating_sub(self.base).min(60_000);
        (1..=limit)
            .map(|i| self.base + i)
            .filter(|a| !matches!(a & 0xff, 0 | 255))
            .find(|a| !self.used.contains(a))
            .inspect(|a| {
                self.used.insert(*a);
            })
            .map(Ipv4Addr::from)
    }
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }
}

/// The loopback IP of every pod this agent runs, by namespace and name, for the
/// kubelet server's port-forward. Entries appear and go in the same step as the pod
/// worker's own record of the pod, so a lookup never sees an IP already handed back
/// to the pool.
#[derive(Clone, Default)]
pub struct PodAddrs(Arc<RwLock<HashMap<Key, (String, Ipv4Addr)>>>);

impl PodAddrs {
    /// The IP of a pod that is running here; with `uid`, only if it is that pod.
    pub fn lookup(&self, namespace: &str, name: &str, uid: Option<&str>) -> Option<Ipv4Addr> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        let (pod_uid, ip) = map.get(&(namespace.to_owned(), name.to_owned()))?;
        uid.is_none_or(|u| u == pod_uid).then_some(*ip)
    }
    fn insert(&self, k: Key, uid: String, ip: Ipv4Addr) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, (uid, ip));
    }
    fn remove(&self, k: &Key) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(k);
    }
}

#[derive(Clone)]
struct Exit {
    code: i32,
    signal: Option<i32>,
    started: Timestamp,
    finished: Timestamp,
}

impl Exit {
    fn from_status(status: ExitStatus, started: Timestamp) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let signal = status.signal();
        Self {
            code: status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0)),
            signal,
            started,
            finished: Timestamp::now(),
        }
    }
    fn state(&self) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: self.code,
                signal: self.signal,
                reason: Some(if self.code == 0 { "Completed" } else { "Error" }.into()),
                started_at: Some(Time(self.started)),
                finished_at: Some(Time(self.finished)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

struct ContainerRt {
    spec: Container,
    program: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The image's working directory, used when the container names none.
    image_working_dir: Option<PathBuf>,
    /// Why the container cannot start, reported as a waiting reason.
    blocked: Option<(String, String)>,
    proc: Option<Proc>,
    started_at: Option<Timestamp>,
    started_instant: Option<Instant>,
    restart_count: i32,
    last_exit: Option<Exit>,
    /// Final exit when the container will not run again.
    done: Option<Exit>,
    next_start: Option<Instant>,
    backoff: Duration,
    ready: bool,
    next_probe: Option<Instant>,
    probe_failures: i32,
}

struct PodRt {
    pod: Pod,
    uid: String,
    ip: Ipv4Addr,
    dir: PathBuf,
    start_time: Timestamp,
    containers: Vec<ContainerRt>,
    ready_since: (bool, Timestamp),
    terminating: Option<(Instant, bool)>,
    last_reported: Option<serde_json::Value>,
}

type Key = (String, String);

pub struct PodManager {
    client: Client,
    config: AgentConfig,
    registry: Registry,
    pool: IpPool,
    pods: HashMap<Key, PodRt>,
    addrs: PodAddrs,
}

fn key(pod: &Pod) -> Key {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

impl PodManager {
    pub fn new(client: Client, config: AgentConfig, registry: Registry, addrs: PodAddrs) -> Self {
        let pool = IpPool::new(config.pod_ip_base);
        Self {
            client,
            config,
            registry,
            pool,
            pods: HashMap::new(),
            addrs,
        }
    }

    fn ours(&self, pod: &Pod) -> bool {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        node.is_some_and(|n| self.config.nodes.iter().any(|m| m == n))
    }

    /// A pod was added or changed.
    pub async fn applied(&mut self, pod: Pod) {
        if !self.ours(&pod) {
            return;
        }
        let k = key(&pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(rt) = self.pods.get(&k) {
            if rt.uid != uid {
                // Same name, new object: the old pod is gone for good.
                self.forget(&k);
            }
        }
        if let Some(rt) = self.pods.get_mut(&k) {
            let deleting = pod.metadata.deletion_timestamp.is_some();
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
                .unwrap_or(30);
            rt.pod = pod;
            if deleting && rt.terminating.is_none() {
                tracing::info!(ns = %k.0, pod = %k.1, grace, "pod deleted, stopping containers");
                rt.terminating = Some((
                    Instant::now() + Duration::from_secs(grace.max(0).unsigned_abs()),
                    false,
                ));
                for c in &rt.containers {
                    if let Some(p) = &c.proc {
                        process::signal_group(p.pgid, Signal::SIGTERM);
                    }
                }
            }
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            // Nothing runs for it here: finalize right away.
            self.finalize(&k.0, &k.1, &uid).await;
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            return; // finished under a previous agent; never rerun
        }
        if let Err(e) = self.start_pod(pod, k.clone(), uid).await {
            tracing::warn!(ns = %k.0, pod = %k.1, error = %e, "cannot start pod");
        }
    }

    /// The pod object is gone from the API (e.g. force-deleted).
    pub fn deleted(&mut self, pod: &Pod) {
        let k = key(pod);
        if self
            .pods
            .get(&k)
            .is_some_and(|rt| Some(&rt.uid) == pod.metadata.uid.as_ref())
        {
            self.forget(&k);
        }
    }

    /// Forgets (and kills) pods missing from a complete relist.
    pub fn retain_listed(&mut self, listed: &std::collections::HashSet<Key>) {
        let gone: Vec<Key> = self
            .pods
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            tracing::info!(ns = %k.0, pod = %k.1, "pod vanished while not watching; killing");
            self.forget(&k);
        }
    }

    fn forget(&mut self, k: &Key) {
        if let Some(rt) = self.pods.remove(k) {
            self.addrs.remove(k);
            for c in rt.containers {
                if let Some(p) = c.proc {
                    process::signal_group(p.pgid, Signal::SIGKILL);
                    self.registry.remove(p.pgid);
                }
            }
            self.pool.release(rt.ip);
        }
    }

    async fn start_pod(&mut self, pod: Pod, k: Key, uid: String) -> crate::Result<()> {
        let ip = self.pool.allocate().ok_or(Error::NoFreeIp)?;
        let dir = self.config.work_dir.join(format!("{}_{}_{}", k.0, k.1, uid));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            self.pool.release(ip);
            return Err(e.into());
        }
        tracing::info!(ns = %k.0, pod = %k.1, %ip, "starting pod");
        let fields = env::PodFields {
            pod: &pod,
            pod_ip: ip.to_string(),
            host_ip: HOST_IP.to_string(),
        };
        let mut containers = Vec::new();
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let mut rt = ContainerRt {
                spec: c.clone(),
                program: None,
                args: Vec::new(),
                env: Vec::new(),
                blocked: None,
                proc: None,
                started_at: None,
                started_instant: None,
                restart_count: 0,
                last_exit: None,
                done: None,
                next_start: Some(Instant::now()),
                backoff: Duration::from_secs(1),
                ready: false,
                next_probe: None,
                probe_failures: 0,
                image_working_dir: None,
            };
            let image = c.image.clone().unwrap_or_default();
            match (
                self.config.lookup_image(&image),
                env::resolve(&self.client, &fields, c).await,
            ) {
                (None, _) => {
                    rt.blocked = Some(("ErrImageNeverPull".into(), Error::UnknownImage(image).to_string()));
                }
                (_, Err(e)) => rt.blocked = Some(("CreateContainerConfigError".into(), e.to_string())),
                (Some(img), Ok(mut vars)) => {
                    // The image's ENV first, so the container's own variables win.
                    let image_env = img.env.iter().filter(|(k, _)| !vars.iter().any(|(v, _)| v == *k));
                    vars.splice(
                        0..0,
                        image_env.map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(),
                    );
                    rt.image_working_dir = img.working_dir.clone();
                    if let Some(kc) = &self.config.pod_kubeconfig {
                        if !vars.iter().any(|(k, _)| k == "KUBECONFIG") {
                            vars.push(("KUBECONFIG".into(), kc.display().to_string()));
                        }
                    }
                    // The mapped binary plays the image entrypoint: command[0]
                    // is replaced by it, the rest are leading arguments.
                    let mut args: Vec<String> = match &c.command {
                        Some(cmd) if !cmd.is_empty() => cmd[1..].to_vec(),
                        _ => Vec::new(),
                    };
                    match &c.args {
                        Some(a) => args.extend(a.iter().cloned()),
                        None if c.command.as_ref().is_none_or(|v| v.is_empty()) => {
                            args.extend(img.args.iter().cloned())
                        }
                        None => {}
                    }
                    rt.args = args
                        .iter()
                        .map(|a| env::narrow_wildcard(&env::expand(a, &vars), &fields.pod_ip))
                        .collect();
                    for (_, v) in vars.iter_mut() {
                        *v = env::narrow_wildcard(v, &fields.pod_ip);
                    }
                    rt.program = Some(img.binary.clone());
                    rt.env = vars;
                }
            }
            containers.push(rt);
        }
        self.addrs.insert(k.clone(), uid.clone(), ip);
        self.pods.insert(
            k,
            PodRt {
                pod,
                uid,
                ip,
                dir,
                start_time: Timestamp::now(),
                containers,
                ready_since: (false, Timestamp::now()),
                terminating: None,
                last_reported: None,
            },
        );
        Ok(())
    }

    /// Periodic work: reap, restart, probe, finalize and report.
    pub async fn tick(&mut self) {
        let keys: Vec<Key> = self.pods.keys().cloned().collect();
        for k in keys {
            let Some(rt) = self.pods.get_mut(&k) else {
                continue;
            };
            let now = Instant::now();
            reap(rt, &self.registry, &k);
            start_due(rt, &self.registry, &k, now);
            probe_due(rt, now).await;
            if let Some((deadline, killed)) = rt.terminating {
                if rt.containers.iter().all(|c| c.proc.is_none()) {
                    let uid = rt.uid.clone();
                    self.forget(&k);
                    self.finalize(&k.0, &k.1, &uid).await;
                    continue;
                }
                if !killed && Instant::now() >= deadline {
                    tracing::info!(pod = %k.1, "grace period over, killing");
                    for c in &rt.containers {
                        if let Some(p) = &c.proc {
                            process::signal_group(p.pgid, Signal::SIGKILL);
                        }
                    }
                    rt.terminating = Some((deadline, true));
                }
            }
            report(&self.client, &k, rt).await;
        }
    }

    /// Removes the pod object once its processes are gone, as the kubelet
    /// does with a zero-grace delete guarded by the uid.
    async fn finalize(&self, ns: &str, name: &str, uid: &str) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let dp = DeleteParams::default()
            .grace_period(0)
            .preconditions(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            });
        match api.delete(name, &dp).await {
            Ok(_) => tracing::info!(%ns, pod = %name, "pod finalized"),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(%ns, pod = %name, error = %e, "final delete failed"),
        }
    }

    /// Stops every container: SIGTERM, then SIGKILL after `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        self.registry.signal_all(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            let alive = self
                .pods
                .values_mut()
                .flat_map(|p| p.containers.iter_mut())
                .any(|c| {
                    c.proc
                        .as_mut()
                        .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
                });
            if !alive || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.kill_all().await;
    }

    /// SIGKILLs everything at once (node lost) and reaps the processes, so
    /// their sockets are closed when this returns.
    pub async fn kill_all(&mut self) {
        self.registry.signal_all(Signal::SIGKILL);
        for c in self.pods.values_mut().flat_map(|p| p.containers.iter_mut()) {
            if let Some(p) = &mut c.proc {
                if tokio::time::timeout(Duration::from_secs(2), p.child.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(pgid = p.pgid, "process did not die after SIGKILL");
                }
            }
        }
        let keys: Vec<Key> = self.pods.keys().cloned().collect();
        for k in keys {
            self.forget(&k);
        }
    }
}

/// Notes containers whose process has exited and schedules their restart as the
/// pod's restart policy says, with the kubelet's doubling back-off.
fn reap(rt: &mut PodRt, registry: &Registry, k: &Key) {
    let restart_policy = rt
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let now = Instant::now();
    for c in &mut rt.containers {
        let Some(p) = &mut c.proc else {
            continue;
        };
        let status = match p.child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "try_wait failed");
                continue;
            }
        };
        let exit = Exit::from_status(status, c.started_at.unwrap_or_else(Timestamp::now));
        // Reap leftovers of the group: the container is over.
        process::signal_group(p.pgid, Signal::SIGKILL);
        registry.remove(p.pgid);
        c.proc = None;
        c.ready = false;
        let restart = rt.terminating.is_none()
            && match restart_policy.as_str() {
                "Never" => false,
                "OnFailure" => exit.code != 0,
                _ => true,
            };
        tracing::info!(pod = %k.1, container = %c.spec.name, code = exit.code, restart, "container exited");
        if restart {
            if c.started_instant.is_some_and(|s| s.elapsed() > MAX_BACKOFF) {
                c.backoff = Duration::from_secs(1);
            }
            c.next_start = Some(now + c.backoff);
            c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
            c.last_exit = Some(exit);
        } else {
            c.done = Some(exit);
            c.next_start = None;
        }
    }
}

/// Starts the containers whose start is due; a terminating pod starts nothing.
fn start_due(rt: &mut PodRt, registry: &Registry, k: &Key, now: Instant) {
    for c in &mut rt.containers {
        if rt.terminating.is_some() {
            c.next_start = None;
            continue;
        }
        if c.proc.is_some() || c.blocked.is_some() || c.next_start.is_none_or(|t| t > now) {
            continue;
        }
        let Some(program) = c.program.clone() else {
            continue;
        };
        let log = rt.dir.join(format!("{}.log", c.spec.name));
        let cwd = c
            .spec
            .working_dir
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| c.image_working_dir.clone())
            .filter(|d| d.is_dir())
            .unwrap_or_else(|| rt.dir.clone());
        let spec = SpawnSpec {
            program: &program,
            args: &c.args,
            env: &c.env,
            cwd: &cwd,
            log: &log,
        };
        match process::spawn(&spec, registry) {
            Ok(p) => {
                if c.started_at.is_some() {
                    c.restart_count += 1;
                }
                c.proc = Some(p);
                c.started_at = Some(Timestamp::now());
                c.started_instant = Some(now);
                c.next_start = None;
                c.probe_failures = 0;
                c.next_probe = c.spec.readiness_probe.as_ref().map(|p| {
                    now + Duration::from_secs(
                        p.initial_delay_seconds.unwrap_or(0).max(0).unsigned_abs().into(),
                    )
                });
                c.ready = c.spec.readiness_probe.is_none();
            }
            Err(e) => {
                tracing::warn!(pod = %k.1, container = %c.spec.name, error = %e, "spawn failed");
                c.blocked = Some(("RunContainerError".into(), e.to_string()));
            }
        }
    }
}

/// Runs the readiness probes that are due, concurrently across the pod's containers.
async fn probe_due(rt: &mut PodRt, now: Instant) {
    let ip = IpAddr::V4(rt.ip);
    let due: Vec<usize> = rt
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.proc.is_some() && c.next_probe.is_some_and(|t| t <= now))
        .map(|(i, _)| i)
        .collect();
    let results = futures::future::join_all(due.iter().map(|&i| {
        let c = &rt.containers[i];
        async move {
            match &c.spec.readiness_probe {
                Some(p) => probe::run(p, &c.spec, ip).await,
                None => true,
            }
        }
    }))
    .await;
    for (i, ok) in due.into_iter().zip(results) {
        let c = &mut rt.containers[i];
        let Some(p) = &c.spec.readiness_probe else {
            continue;
        };
        if ok {
            c.probe_failures = 0;
            c.ready = true;
        } else {
            c.probe_failures += 1;
            if c.probe_failures >= p.failure_threshold.unwrap_or(3) || !c.ready {
                c.ready = false;
            }
        }
        let period = p.period_seconds.unwrap_or(10).max(1).unsigned_abs();
        c.next_probe = Some(Instant::now() + Duration::from_secs(period.into()));
    }
}

/// Writes the pod's status when it differs from the last one written.
async fn report(client: &Client, k: &Key, rt: &mut PodRt) {
    let value = json!({ "status": build_status(rt) });
    if rt.last_reported.as_ref() == Some(&value) {
        return;
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &k.0);
    match api
        .patch_status(&k.1, &PatchParams::default(), &Patch::Strategic(&value))
        .await
    {
        Ok(_) => rt.last_reported = Some(value),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(pod = %k.1, error = %e, "status update failed"),
    }
}

fn build_status(rt: &mut PodRt) -> PodStatus {
    let statuses: Vec<ContainerStatus> = rt
        .containers
        .iter()
        .map(|c| {
            let state = if let Some(done) = &c.done {
                done.state()
            } else if c.proc.is_some() {
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: c.started_at.map(Time),
                    }),
                    ..Default::default()
                }
            } else {
                let (reason, message) = match (&c.blocked, &c.last_exit) {
                    (Some((r, m)), _) => (r.clone(), Some(m.clone())),
                    (None, Some(_)) => ("CrashLoopBackOff".to_string(), None),
                    (None, None) => ("ContainerCreating".to_string(), None),
                };
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason),
                        message,
                    }),
                    ..Default::default()
                }
            };
            ContainerStatus {
                name: c.spec.name.clone(),
                image: c.spec.image.clone().unwrap_or_default(),
                image_id: c
                    .program
                    .as_ref()
                    .map(|p| format!("file://{}", p.display()))
                    .unwrap_or_default(),
                container_id: c.proc.as_ref().map(|p| format!("process://{}", p.pgid)),
                ready: c.ready && c.proc.is_some(),
                started: Some(c.proc.is_some()),
                restart_count: c.restart_count,
                state: Some(state),
                last_state: c.last_exit.as_ref().map(Exit::state),
                ..Default::default()
            }
        })
        .collect();
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready) && rt.terminating.is_none();
    if all_ready != rt.ready_since.0 {
        rt.ready_since = (all_ready, Timestamp::now());
    }
    let never_started = rt
        .containers
        .iter()
        .any(|c| c.started_at.is_none() && c.done.is_none());
    let phase = if rt.containers.iter().all(|c| c.done.is_some()) {
        if rt
            .containers
            .iter()
            .all(|c| c.done.as_ref().is_some_and(|d| d.code == 0))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if never_started {
        "Pending"
    } else {
        "Running"
    };
    let cond = |t: &str, ok: bool, since: Timestamp| PodCondition {
        type_: t.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(Time(since)),
        ..Default::default()
    };
    let (ready, since) = rt.ready_since;
    PodStatus {
        phase: Some(phase.into()),
        host_ip: Some(HOST_IP.into()),
        host_ips: Some(vec![HostIP { ip: HOST_IP.into() }]),
        pod_ip: Some(rt.ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: rt.ip.to_string(),
        }]),
        start_time: Some(Time(rt.start_time)),
        conditions: Some(vec![
            cond("PodReadyToStartContainers", true, rt.start_time),
            cond("Initialized", true, rt.start_time),
            cond("ContainersReady", ready, since),
            cond("Ready", ready, since),
        ]),
        container_statuses: Some(statuses),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_pool_hands_out_distinct_loopback_addresses_and_reuses_released_ones() {
        let mut pool = IpPool::new(Ipv4Addr::new(127, 0, 1, 250));
        let a: Vec<Ipv4Addr> = (0..6).filter_map(|_| pool.allocate()).collect();
        assert_eq!(a.len(), 6);
        assert_eq!(a[0], Ipv4Addr::new(127, 0, 1, 251));
        assert!(a
            .iter()
            .all(|ip| ip.is_loopback() && ip.octets()[3] != 255 && ip.octets()[3] != 0));
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 6);
        pool.release(a[2]);
        assert_eq!(pool.allocate(), Some(a[2]));
    }
}
