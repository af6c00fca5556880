//! `squall activate|deactivate|rebalance|kill`: changes to a Topology's spec that the
//! operator carries out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use squall_model::crd::Topology;
use squall_model::{DesiredState, Limits};

use super::{ClusterArgs, Remote, FIELD_MANAGER};

#[derive(clap::Args)]
pub struct StateArgs {
    /// The topology.
    name: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args)]
pub struct RebalanceArgs {
    /// The topology.
    name: String,
    /// The new number of workers.
    #[arg(short = 'n', long = "workers", value_name = "WORKERS")]
    workers: Option<i32>,
    /// A component's new parallelism (repeatable).
    #[arg(short = 'e', long = "executors", value_name = "COMPONENT=N", value_parser = parse_executors)]
    executors: Vec<(String, i32)>,
    /// The kubeconfig file.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The namespace (`-n` is the number of workers here, as in Storm).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// The topology.
    name: String,
    /// Seconds between deactivating the spouts and removing the workers.
    #[arg(short = 'w', long = "wait", value_name = "SECONDS")]
    wait: Option<i64>,
    /// Return once the deletion is asked for, without waiting for it to be gone.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn parse_executors(s: &str) -> Result<(String, i32), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected COMPONENT=N"))?;
    let n: i32 = n
        .parse()
        .map_err(|_| format!("`{s}`: N must be a whole number"))?;
    if name.is_empty() || n < 1 {
        return Err(format!("`{s}`: expected COMPONENT=N with N at least 1"));
    }
    Ok((name.to_owned(), n))
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

async fn merge_patch(remote: &Remote, name: &str, patch: serde_json::Value) -> anyhow::Result<Topology> {
    remote
        .topologies()
        .patch(name, &params(), &Patch::Merge(&patch))
        .await
        .map_err(|e| remote.error(e, Some(name)))
}

pub async fn set_state(args: StateArgs, state: DesiredState) -> anyhow::Result<()> {
    let remote = Remote::connect(&args.cluster, false).await?;
    // A merge patch on a missing object would be a 404 too, but say so before patching.
    remote.topology(&args.name).await?;
    merge_patch(&remote, &args.name, json!({"spec": {"desiredState": state}})).await?;
    let verb = match state {
        DesiredState::Active => "activated",
        DesiredState::Inactive => "deactivated",
    };
    println!("topology {} {verb}", args.name);
    Ok(())
}

pub async fn rebalance(args: RebalanceArgs, limits: &Limits) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.workers.is_some() || !args.executors.is_empty(),
        "nothing to rebalance: give -n WORKERS and/or -e COMPONENT=N"
    );
    let cluster = ClusterArgs {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        namespace: args.namespace.clone(),
    };
    let remote = Remote::connect(&cluster, false).await?;
    let mut t = remote.topology(&args.name).await?;
    rescale(&mut t, args.workers, &args.executors)?;
    // The same checks as `squall validate`, so a rebalance the operator would reject is
    // refused here with the path of the field at fault.
    squall_model::validate_within(&t.manifest(), &squall_components::Builtins, limits)
        .map_err(|e| crate::validate::Invalid(format!("rebalance of {}: {e}", args.name)))?;
    // Whole component lists (a merge patch replaces lists), guarded by the version read,
    // so a concurrent edit fails instead of being overwritten.
    let patch = json!({
        "metadata": {"resourceVersion": t.metadata.resource_version},
        "spec": {"workers": t.spec.workers, "spouts": t.spec.spouts, "bolts": t.spec.bolts},
    });
    let after = merge_patch(&remote, &args.name, patch).await?;
    println!(
        "topology {} rebalanced (generation {})",
        args.name,
        after.metadata.generation.unwrap_or_default()
    );
    Ok(())
}

/// Sets the workers and the named components' parallelism; a name that is no component
/// of the topology is an error listing those that are.
fn rescale(t: &mut Topology, workers: Option<i32>, executors: &[(String, i32)]) -> anyhow::Result<()> {
    let wanted: BTreeMap<&str, i32> = executors.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    let names: Vec<String> = t
        .spec
        .spouts
        .iter()
        .chain(&t.spec.bolts)
        .map(|c| c.name.clone())
        .collect();
    if let Some(unknown) = wanted.keys().find(|n| !names.iter().any(|m| m == *n)) {
        anyhow::bail!(
            "topology {} has no component {unknown} (it has: {})",
            t.metadata.name.as_deref().unwrap_or_default(),
            names.join(", ")
        );
    }
    for c in t.spec.spouts.iter_mut().chain(t.spec.bolts.iter_mut()) {
        if let Some(p) = wanted.get(c.name.as_str()) {
            c.parallelism = *p;
        }
    }
    if let Some(w) = workers {
        t.spec.workers = w;
    }
    Ok(())
}

pub async fn kill(args: KillArgs) -> anyhow::Result<()> {
    let remote = Remote::connect(&args.cluster, false).await?;
    let t = remote.topology(&args.name).await?;
    if let Some(w) = args.wait {
        anyhow::ensure!(w >= 0, "-w must be 0 or more seconds");
        merge_patch(&remote, &args.name, json!({"spec": {"killWaitSeconds": w}})).await?;
    }
    remote
        .topologies()
        .delete(&args.name, &DeleteParams::default())
        .await
        .map_err(|e| remote.error(e, Some(&args.name)))?;
    if args.no_wait {
        println!("topology {} is being killed", args.name);
        return Ok(());
    }
    // The operator drains for the kill wait, then lets the object go; allow it that
    // and some time to stop the workers.
    let drain = args.wait.or(t.spec.kill_wait_seconds).unwrap_or(30).max(0) as u64;
    let within = Duration::from_secs(drain + 120);
    let start = Instant::now();
    loop {
        match remote.topologies().get_opt(&args.name).await {
            Ok(None) => break,
            Ok(Some(_)) => {}
            Err(e) => return Err(remote.error(e, Some(&args.name))),
        }
        anyhow::ensure!(
            start.elapsed() < within,
            "topology {} still there after {}s",
            args.name,
            within.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("topology {} killed", args.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn topology() -> Topology {
        let m = squall_model::TopologyManifest::from_yaml(
            "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  \
             spouts: [{name: s, component: sequence}]\n  \
             bolts: [{name: b, component: \"null\", inputs: [{from: s}]}]\n",
            "t",
        )
        .unwrap();
        Topology::new("t", m.spec)
    }

    #[test]
    fn rescale_sets_workers_and_named_components() {
        let mut t = topology();
        rescale(&mut t, Some(3), &[("b".into(), 4)]).unwrap();
        assert_eq!(t.spec.workers, 3);
        assert_eq!(t.spec.bolts[0].parallelism, 4);
        assert_eq!(t.spec.spouts[0].parallelism, 1);
    }

    #[test]
    fn rescale_refuses_an_unknown_component() {
        let err = rescale(&mut topology(), None, &[("x".into(), 2)]).unwrap_err();
        assert_eq!(err.to_string(), "topology t has no component x (it has: s, b)");
    }

    #[test]
    fn executors_parse_as_name_and_count() {
        assert_eq!(parse_executors("sink=2").unwrap(), ("sink".to_owned(), 2));
        assert!(parse_executors("sink").is_err());
        assert!(parse_executors("sink=0").is_err());
    }
}
