//! The agent task and the handle that controls it.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Client};
use nix::sys::signal::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::AgentConfig;
use crate::pods::{PodAddrs, PodManager};
use crate::process::Registry;
use crate::{node, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Running,
    /// Graceful stop: processes get SIGTERM and the stop grace period.
    Stopping,
    /// Node lost: no more heartbeats or status, processes SIGKILLed.
    Lost,
}

/// Entry point of the agent.
pub struct NodeAgent;

impl NodeAgent {
    /// Registers the configured Nodes (they are Ready when this returns) and
    /// starts heartbeats and the pod worker.
    pub async fn start(client: Client, config: AgentConfig) -> Result<AgentHandle> {
        config.validate()?;
        std::fs::create_dir_all(&config.work_dir)?;
        let addrs = PodAddrs::default();
        let (log_port, logs) = crate::server::serve(crate::server::Context {
            work_dir: config.work_dir.clone(),
            pods: addrs.clone(),
        })
        .await?;
        let mut uids = Vec::new();
        for name in &config.nodes {
            uids.push(node::register(&client, name, &config.node_labels, log_port).await?);
            tracing::info!(node = %name, "node registered");
        }
        let (mode_tx, mode_rx) = watch::channel(Mode::Running);
        let registry = Registry::recording(config.work_dir.join("pgids"));
        let mut tasks = Vec::new();
        for (name, uid) in config.nodes.iter().zip(uids) {
            tasks.push(tokio::spawn(heartbeat_loop(
                client.clone(),
                name.clone(),
                uid,
                Duration::from_secs(config.heartbeat_seconds),
                log_port,
                mode_rx.clone(),
            )));
        }
        let manager = PodManager::new(client.clone(), config.clone(), registry.clone(), addrs);
        let stop_grace = Duration::from_secs(config.stop_grace_seconds);
        let pods = tokio::spawn(pod_loop(client, manager, mode_rx, stop_grace));
        Ok(AgentHandle {
            nodes: config.nodes,
            mode: mode_tx,
            pods: Some(pods),
            heartbeats: tasks,
            logs: Some(logs),
            registry,
        })
    }
}

async fn heartbeat_loop(
    client: Client,
    name: String,
    uid: String,
    every: Duration,
    log_port: u16,
    mut mode: watch::Receiver<Mode>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = mode.changed() => if changed.is_err() { return },
        }
        if *mode.borrow() != Mode::Running {
            tracing::info!(node = %name, "heartbeats stopped");
            return;
        }
        if let Err(e) = node::heartbeat(&client, &name, Some(&uid), log_port).await {
            tracing::warn!(node = %name, error = %e, "heartbeat failed");
        }
    }
}

async fn pod_loop(
    client: Client,
    mut manager: PodManager,
    mut mode: watch::Receiver<Mode>,
    stop_grace: Duration,
) {
    let pods: Api<Pod> = Api::all(client);
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listed = std::collections::HashSet::new();
    loop {
        tokio::select! {
            changed = mode.changed() => {
                let m = if changed.is_err() { Mode::Lost } else { *mode.borrow() };
                match m {
                    Mode::Running => continue,
                    Mode::Stopping => manager.shutdown(stop_grace).await,
                    Mode::Lost => manager.kill_all().await,
                }
                tracing::info!(?m, "pod worker stopped");
                return;
            }
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(p))) => manager.applied(p).await,
                Some(Ok(watcher::Event::InitApply(p))) => {
                    listed.insert((p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default()));
                    manager.applied(p).await;
                }
                Some(Ok(watcher::Event::Delete(p))) => manager.deleted(&p),
                Some(Ok(watcher::Event::Init)) => listed.clear(),
                // A relist after a watch gap: pods deleted meanwhile never
                // got a Delete event, so drop what the list did not contain.
                Some(Ok(watcher::Event::InitDone)) => manager.retain_listed(&listed),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pod watch error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                None => return,
            },
            _ = tick.tick() => manager.tick().await,
        }
    }
}

/// Controls a running agent. Dropping it loses the nodes and SIGKILLs every
/// process the agent started.
pub struct AgentHandle {
    nodes: Vec<String>,
    mode: watch::Sender<Mode>,
    pods: Option<JoinHandle<()>>,
    heartbeats: Vec<JoinHandle<()>>,
    /// The kubelet endpoint (containerLogs, portForward); it runs until stopped.
    logs: Option<JoinHandle<()>>,
    registry: Registry,
}

impl AgentHandle {
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Simulates losing the node(s): heartbeats stop, status is no longer
    /// reported and all processes are killed at once. The Node objects stay,
    /// so the node lifecycle controller marks them NotReady after its grace
    /// period.
    pub async fn lose(&mut self) {
        self.mode.send_replace(Mode::Lost);
        self.registry.signal_all(Signal::SIGKILL);
        self.join().await;
    }

    /// Stops the agent like a kubelet shutdown: processes get SIGTERM, then
    /// SIGKILL after the configured stop grace. Nodes are left as they are.
    pub async fn stop(mut self) {
        self.mode.send_replace(Mode::Stopping);
        self.join().await;
    }

    async fn join(&mut self) {
        if let Some(l) = self.logs.take() {
            l.abort();
        }
        if let Some(p) = self.pods.take() {
            if let Err(e) = p.await {
                tracing::warn!(error = %e, "pod worker task failed");
            }
        }
        for h in self.heartbeats.drain(..) {
            if let Err(e) = h.await {
                tracing::warn!(error = %e, "heartbeat task failed");
            }
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Lost);
        self.registry.signal_all(Signal::SIGKILL);
        if let Some(p) = self.pods.take() {
            p.abort();
        }
        for h in &self.heartbeats {
            h.abort();
        }
        if let Some(l) = &self.logs {
            l.abort();
        }
    }
}
