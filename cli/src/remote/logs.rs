//! `squall logs NAME [COMPONENT] [-f]`: the worker pods' logs through the API server's
//! pods/log, like streamparse's `sparse tail`.

use futures::{AsyncBufReadExt as _, StreamExt as _, TryStreamExt as _};
use kube::api::{ListParams, LogParams};

use super::{ClusterArgs, Remote, TOPOLOGY_LABEL};

#[derive(clap::Args)]
pub struct LogsArgs {
    /// The topology.
    name: String,
    /// Only lines that mention this component.
    component: Option<String>,
    /// Keep printing lines as the workers write them.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Lines from the end of each pod's log (default: all).
    #[arg(long, value_name = "N")]
    tail: Option<i64>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let remote = Remote::connect(&args.cluster, args.follow).await?;
    let t = remote.topology(&args.name).await?;
    if let Some(c) = &args.component {
        let known = t.spec.spouts.iter().chain(&t.spec.bolts).any(|s| &s.name == c);
        anyhow::ensure!(known, "topology {} has no component {c}", args.name);
    }
    let mut pods: Vec<String> = remote
        .pods()
        .list(&ListParams::default().labels(&format!("{TOPOLOGY_LABEL}={}", args.name)))
        .await
        .map_err(|e| remote.error(e, Some(&args.name)))?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    pods.sort();
    anyhow::ensure!(!pods.is_empty(), "topology {} has no worker pods", args.name);
    let params = LogParams {
        follow: args.follow,
        tail_lines: args.tail,
        ..LogParams::default()
    };
    let keep = |line: &str| args.component.as_deref().is_none_or(|c| line.contains(c));
    if !args.follow {
        for pod in &pods {
            let text = remote
                .pods()
                .logs(pod, &params)
                .await
                .map_err(|e| log_error(&remote, &args.name, pod, e))?;
            for line in text.lines().filter(|l| keep(l)) {
                println!("{pod} {line}");
            }
        }
        return Ok(());
    }
    // One stream per pod, lines printed as they come from any of them.
    let mut streams = Vec::new();
    for pod in &pods {
        let reader = remote
            .pods()
            .log_stream(pod, &params)
            .await
            .map_err(|e| log_error(&remote, &args.name, pod, e))?;
        let pod = pod.clone();
        streams.push(reader.lines().map_ok(move |l| (pod.clone(), l)).boxed());
    }
    let mut all = futures::stream::select_all(streams);
    while let Some((pod, line)) = all.try_next().await? {
        if keep(&line) {
            println!("{pod} {line}");
        }
    }
    Ok(())
}

fn log_error(remote: &Remote, name: &str, pod: &str, e: kube::Error) -> anyhow::Error {
    let line = remote.error(e, Some(name));
    anyhow::anyhow!("logs of pod {pod}: {}", super::one_line(&line))
}
