//! `squall submit FILE [--wait]`: server-side apply of the manifest's Topology.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use squall_model::crd::{Phase, Topology};
use squall_model::{Limits, TopologyManifest};

use super::{ClusterArgs, Remote, FIELD_MANAGER};
use crate::validate;

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The Topology manifest (YAML).
    file: PathBuf,
    /// Wait until the topology is Ready (or has Failed, with its message).
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub async fn run(args: SubmitArgs, limits: &Limits) -> anyhow::Result<()> {
    // The same checks as `squall validate`, so nothing the operator would reject is sent.
    validate::load(&args.file, &[], limits).map_err(|e| one_problem(&args.file, e))?;
    let manifest = TopologyManifest::from_file_within(&args.file, limits)
        .map_err(|e| validate::Invalid(e.to_string()))?;
    let mut cluster = args.cluster.clone();
    if cluster.namespace.is_none() {
        cluster.namespace = manifest.metadata.namespace.clone();
    }
    let remote = Remote::connect(&cluster, false).await?;
    let name = manifest.metadata.name.clone();
    let applied = apply(&remote, manifest).await?;
    let generation = applied.metadata.generation.unwrap_or_default();
    println!(
        "topology {name} submitted to namespace {} (generation {generation})",
        remote.namespace
    );
    if args.wait {
        wait_ready(&remote, &name, generation, Duration::from_secs(args.timeout)).await?;
        println!("topology {name} is Ready");
    }
    Ok(())
}

/// Applies the manifest as the `squall` field manager, taking over fields it set before
/// under another manager (as `kubectl apply --server-side --force-conflicts` does).
async fn apply(remote: &Remote, manifest: TopologyManifest) -> anyhow::Result<Topology> {
    let name = manifest.metadata.name.clone();
    let mut topology = Topology::new(&name, manifest.spec);
    topology.metadata.namespace = Some(remote.namespace.clone());
    let non_empty = |m: std::collections::BTreeMap<String, String>| (!m.is_empty()).then_some(m);
    topology.metadata.labels = non_empty(manifest.metadata.labels);
    topology.metadata.annotations = non_empty(manifest.metadata.annotations);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    remote
        .topologies()
        .patch(&name, &params, &Patch::Apply(&topology))
        .await
        .map_err(|e| remote.error(e, Some(&name)))
}

/// Polls until the operator has seen `generation` and says Ready=True, or Failed.
pub async fn wait_ready(
    remote: &Remote,
    name: &str,
    generation: i64,
    within: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let t = remote.topology(name).await?;
        if let Some(status) = &t.status {
            let current = status.observed_generation.unwrap_or_default() >= generation;
            if current && status.phase == Phase::Failed {
                let why = status
                    .last_error
                    .clone()
                    .or_else(|| ready(&t).map(|c| c.message.clone()))
                    .unwrap_or_default();
                anyhow::bail!("topology {name} failed: {}", super::one_line(&why));
            }
            if current && ready(&t).is_some_and(|c| c.status == "True") {
                return Ok(());
            }
        }
        anyhow::ensure!(
            start.elapsed() < within,
            "topology {name} not Ready after {}s (phase {})",
            within.as_secs(),
            t.status.as_ref().map_or("none", |s| s.phase.as_str())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ready(t: &Topology) -> Option<&squall_model::crd::TopologyCondition> {
    t.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")
}

/// A manifest with a single problem reports it as one line, `FILE: PATH: message`;
/// several keep `squall validate`'s list, one line each.
fn one_problem(file: &std::path::Path, err: anyhow::Error) -> anyhow::Error {
    match err.downcast::<validate::Invalid>() {
        Ok(validate::Invalid(text)) => {
            let lines: Vec<&str> = text.trim().lines().collect();
            match lines.as_slice() {
                [_, problem] => validate::Invalid(format!("{}: {}", file.display(), problem.trim())),
                _ => validate::Invalid(text),
            }
            .into()
        }
        Err(other) => other,
    }
}
