//! `squall status NAME`: the live table of local mode, from the figures of the
//! topology's worker pods merged per component.
//!
//! Pods are read at their pod IP on the workers' port, so this works where the pod
//! network is reachable (in the cluster, or on a node); from outside, port-forward to
//! the operator's API or run it from a pod.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kube::api::ListParams;
use squall_worker::prom::{self, Sample};

use super::{ClusterArgs, Remote, TOPOLOGY_LABEL, WORKER_PORT};
use crate::table;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The topology.
    name: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// How long one worker may take to answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let remote = Remote::connect(&args.cluster, false).await?;
    let t = remote.topology(&args.name).await?;
    let addrs = worker_addrs(&remote, &args.name).await?;
    let asked = addrs.len();
    // The worker client is blocking; scrape off the runtime's thread.
    let pages = tokio::task::spawn_blocking(move || scrape(&addrs)).await?;
    let status = t.status.as_ref();
    println!(
        "topology {}: {}, workers {}, generation {}, figures from {} of {asked} pods",
        args.name,
        status.map_or("-", |s| s.phase.as_str()),
        status.map_or("-".to_owned(), |s| format!(
            "{}/{}",
            s.ready_workers, s.desired_workers
        )),
        t.metadata.generation.unwrap_or_default(),
        pages.len(),
    );
    anyhow::ensure!(
        !pages.is_empty(),
        "topology {}: no worker answered on port {WORKER_PORT} (pod IPs are reachable only from the cluster network)",
        args.name
    );
    let order: Vec<String> = t
        .spec
        .spouts
        .iter()
        .chain(&t.spec.bolts)
        .map(|c| c.name.clone())
        .collect();
    print!("{}", table::metrics(&prom::merge(&pages), None, &order));
    Ok(())
}

/// The `/metrics` address of every worker pod of `name` that has an IP.
async fn worker_addrs(remote: &Remote, name: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let pods = remote
        .pods()
        .list(&ListParams::default().labels(&format!("{TOPOLOGY_LABEL}={name}")))
        .await
        .map_err(|e| remote.error(e, Some(name)))?;
    Ok(pods
        .items
        .into_iter()
        .filter_map(|p| p.status?.pod_ip?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, WORKER_PORT))
        .collect())
}

/// The parsed pages of the workers that answered.
fn scrape(addrs: &[SocketAddr]) -> Vec<Vec<Sample>> {
    addrs
        .iter()
        .filter_map(|a| squall_worker::http::get(*a, prom::FINE_PATH, SCRAPE_TIMEOUT).ok())
        .map(|text| prom::parse(&text))
        .collect()
}
