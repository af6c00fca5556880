//! `squall-operator`: runs Topology resources on Kubernetes.
#![forbid(unsafe_code)]

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "squall-operator", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Worker image for topologies that name none.
    #[arg(
        long,
        env = "SQUALL_WORKER_IMAGE",
        default_value = "squall/worker:0.1.0",
        global = true
    )]
    worker_image: String,
    /// Lease duration of the workers, seconds: a worker not renewing for this long is replaced.
    #[arg(
        long,
        env = "SQUALL_LEASE_DURATION_SECONDS",
        default_value_t = 10,
        global = true
    )]
    lease_duration: u64,
    /// How often workers renew their Lease, seconds.
    #[arg(long, env = "SQUALL_LEASE_RENEW_SECONDS", default_value_t = 2, global = true)]
    lease_renew: u64,
    /// Watch only this namespace (all when unset).
    #[arg(long, env = "SQUALL_WATCH_NAMESPACE", global = true)]
    namespace: Option<String>,
    /// This instance's name in Events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME", default_value = "squall-operator", global = true)]
    instance: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run,
    /// Print the Topology CRD as YAML.
    Crd,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Crd) = args.command {
        print!("{}", squall_operator::crd_yaml().context("serializing the CRD")?);
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration (KUBECONFIG or in-cluster)")?;
    tracing::info!(image = %args.worker_image, namespace = ?args.namespace, "operator starting");
    squall_operator::controller::run(
        client,
        squall_operator::controller::Config {
            workers: squall_operator::resources::WorkerDefaults {
                image: args.worker_image,
                lease_duration_seconds: args.lease_duration,
                lease_renew_seconds: args.lease_renew,
            },
            namespace: args.namespace,
            instance: args.instance,
        },
    )
    .await
    .context("the controller stopped; is the Topology CRD installed (crds/topology.yaml)?")?;
    Ok(())
}
