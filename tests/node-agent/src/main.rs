//! `squall-node-agent --config agent.json [--kubeconfig path]`
//!
//! SIGTERM/SIGINT stop the agent (processes get SIGTERM, then SIGKILL);
//! SIGUSR1 loses the node (heartbeats stop, processes are killed) and the
//! agent then idles until SIGTERM, so the Node goes NotReady.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::{bail, Context};
use kube::config::{KubeConfigOptions, Kubeconfig};
use squall_node_agent::{AgentConfig, NodeAgent};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut config_path: Option<PathBuf> = None;
    let mut kubeconfig: Option<PathBuf> = std::env::var_os("KUBECONFIG").map(PathBuf::from);
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--config") => config_path = args.next().map(PathBuf::from),
            Some("--kubeconfig") => kubeconfig = args.next().map(PathBuf::from),
            _ => bail!("usage: squall-node-agent --config FILE [--kubeconfig FILE] (got {a:?})"),
        }
    }
    let config_path = config_path.context("--config FILE is required")?;
    let mut config = AgentConfig::from_file(&config_path)?;
    // Pods here have no service-account mount; without a kubeconfig an operator run as a
    // pod cannot reach the API server at all, so lend it the agent's own unless the
    // config names another.
    if config.pod_kubeconfig.is_none() {
        // Absolute, since containers run in their own working directories.
        config.pod_kubeconfig = kubeconfig.as_deref().map(std::path::absolute).transpose()?;
    }
    let client_config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let client = kube::Client::try_from(client_config)?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut agent = NodeAgent::start(client, config).await?;
    tracing::info!(nodes = ?agent.nodes(), "agent running");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = usr1.recv() => {
            tracing::warn!("SIGUSR1: losing node(s)");
            agent.lose().await;
            tokio::select! { _ = term.recv() => {} _ = int.recv() => {} }
            return Ok(());
        }
    }
    agent.stop().await;
    Ok(())
}
