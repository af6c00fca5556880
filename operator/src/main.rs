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
    /// Worker image of topologies with `shell` components that name no image: the worker
    /// with Python, pystorm and streamparse. Without it they get --worker-image.
    #[arg(long, env = "SQUALL_PYTHON_WORKER_IMAGE", global = true)]
    python_worker_image: Option<String>,
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
    /// Validity of each worker's link certificate, hours; renewed with a third left.
    #[arg(
        long,
        env = "SQUALL_WORKER_CERT_VALIDITY_HOURS",
        default_value_t = 24,
        global = true
    )]
    worker_cert_validity_hours: u64,
    /// After the topology CA is replaced and every worker certificate re-issued by its
    /// successor, the old CA stays trusted this many seconds, then it is dropped.
    #[arg(long, env = "SQUALL_CA_OVERLAP_SECONDS", default_value_t = 600, global = true)]
    ca_overlap_seconds: u64,
    /// Run only while holding the leader Lease (for more than one replica).
    #[arg(long, env = "SQUALL_LEADER_ELECTION", global = true)]
    leader_election: bool,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default", global = true)]
    leader_namespace: String,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "SQUALL_LEADER_LEASE",
        default_value = "squall-operator-leader",
        global = true
    )]
    leader_lease: String,
    /// Leader Lease duration, seconds; a new leader takes over within this.
    #[arg(
        long,
        env = "SQUALL_LEADER_LEASE_SECONDS",
        default_value_t = 15,
        global = true
    )]
    leader_lease_seconds: u64,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(
        long = "http",
        env = "SQUALL_OPERATOR_HTTP",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    http: std::net::SocketAddr,
    /// Address of Storm's UI REST API (`/api/v1/...`), or `off`. A port of its own: its
    /// callers and its bounds (connections, bodies, timeouts) are not the probes' and
    /// the scraper's, and a busy UI must never fail a liveness probe.
    #[arg(
        long = "ui",
        env = "SQUALL_OPERATOR_UI",
        default_value = "0.0.0.0:8081",
        global = true
    )]
    ui: String,
    /// How often the UI asks the workers for their figures, seconds.
    #[arg(long, env = "SQUALL_UI_PERIOD_SECONDS", default_value_t = 5, global = true)]
    ui_period_seconds: u64,
    /// Topologies the UI samples at most; the rest are left out (logged, and counted in
    /// squall_operator_ui_topologies_omitted).
    #[arg(long, env = "SQUALL_UI_MAX_TOPOLOGIES", default_value_t = 100, global = true)]
    ui_max_topologies: u32,
    /// Memory the UI's histories may take, MiB (estimated); topologies past it are left out.
    #[arg(long, env = "SQUALL_UI_MEMORY_MIB", default_value_t = 64, global = true)]
    ui_memory_mib: usize,
    /// Watch only this namespace (all when unset).
    #[arg(long, env = "SQUALL_WATCH_NAMESPACE", global = true)]
    namespace: Option<String>,
    /// Limits on what a Topology may ask for, `name=value,...`; the defaults for those
    /// not named. Workers get the same. A CRD made by `crd` with the same limits lets the
    /// API server refuse first.
    #[arg(long, env = "SQUALL_LIMITS", default_value = "", global = true)]
    limits: String,
    /// One limit, `name=value` (repeatable; after `--limits`).
    #[arg(long = "limit", value_name = "NAME=VALUE", global = true)]
    limit: Vec<String>,
    /// Labels of the operator's own pods (`k=v,k=v`): the topologies' NetworkPolicies let
    /// only these pods, in the operator's namespace, reach the workers' HTTP port.
    #[arg(
        long,
        env = "SQUALL_OPERATOR_POD_LABELS",
        default_value = "app.kubernetes.io/name=squall-operator",
        global = true
    )]
    operator_pod_labels: String,
    /// Who else may reach the workers' HTTP port (Prometheus): a JSON list of
    /// NetworkPolicy peers.
    #[arg(long, env = "SQUALL_METRICS_PEERS", default_value = "", global = true)]
    metrics_peers: String,
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

/// Serves Storm's UI REST API on its own port, on every replica (leading or not).
async fn start_ui(
    args: &Args,
    client: &kube::Client,
    limits: &squall_model::Limits,
    metrics: &std::sync::Arc<squall_operator::metrics::Metrics>,
) -> anyhow::Result<()> {
    if args.ui.eq_ignore_ascii_case("off") {
        tracing::info!("the UI REST API is off");
        return Ok(());
    }
    let addr: std::net::SocketAddr = args
        .ui
        .parse()
        .with_context(|| format!("--ui {:?}: an address (ip:port) or off", args.ui))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--ui: listening on {addr}"))?;
    let settings = squall_operator::ui::Settings {
        period: std::time::Duration::from_secs(args.ui_period_seconds.max(1)),
        max_topologies: args.ui_max_topologies.max(1),
        memory_budget: args.ui_memory_mib.max(1).saturating_mul(1 << 20),
        namespace: args.namespace.clone(),
        limits: limits.clone(),
        ..squall_operator::ui::Settings::default()
    };
    tokio::spawn(squall_operator::ui::serve(
        client.clone(),
        settings,
        std::sync::Arc::clone(metrics),
        listener,
    ));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut limits =
        squall_model::Limits::parse_list(&args.limits).map_err(|e| anyhow::anyhow!("--limits: {e}"))?;
    for l in &args.limit {
        limits.set(l).map_err(|e| anyhow::anyhow!("--limit: {e}"))?;
    }
    limits.raise_with = squall_operator::RAISE_WITH.to_owned();
    if let Some(Command::Crd) = args.command {
        print!(
            "{}",
            squall_operator::crd::crd_yaml(&limits).context("serializing the CRD")?
        );
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
    let metrics = std::sync::Arc::new(squall_operator::metrics::Metrics::default());
    let server = squall_operator::metrics::serve(args.http, std::sync::Arc::clone(&metrics));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "metrics and health endpoints stopped");
        }
    });
    start_ui(&args, &client, &limits, &metrics).await?;
    let network = squall_operator::resources::NetworkSettings::parse(
        Some(args.leader_namespace.clone()),
        &args.operator_pod_labels,
        &args.metrics_peers,
    )
    .context("the workers' network policy settings")?;
    let config = squall_operator::controller::Config {
        workers: squall_operator::resources::WorkerDefaults {
            image: args.worker_image,
            python_image: args.python_worker_image,
            lease_duration_seconds: args.lease_duration,
            lease_renew_seconds: args.lease_renew,
            cert_validity: std::time::Duration::from_secs(
                args.worker_cert_validity_hours.clamp(1, 24 * 365) * 3600,
            ),
            // Never longer than a certificate lives: the old CA would outlast all it signed.
            ca_overlap: std::time::Duration::from_secs(
                args.ca_overlap_seconds
                    .min(args.worker_cert_validity_hours.clamp(1, 24 * 365) * 3600),
            ),
            limits,
            network,
        },
        namespace: args.namespace,
        instance: args.instance.clone(),
        metrics: std::sync::Arc::clone(&metrics),
    };
    let controller = squall_operator::controller::run(client.clone(), config);
    if !args.leader_election {
        metrics.set_leading(true);
        return controller
            .await
            .context("the controller stopped; is the Topology CRD installed (crds/topology.yaml)?");
    }
    let duration = std::time::Duration::from_secs(args.leader_lease_seconds.max(2));
    let mut elector = squall_operator::leader::Elector::new(
        client,
        &args.leader_namespace,
        &args.leader_lease,
        &args.instance,
        duration,
    );
    tracing::info!(lease = %args.leader_lease, identity = %args.instance, "waiting for leadership");
    elector.acquire(duration / 4).await;
    tracing::info!(lease = %args.leader_lease, "leading");
    metrics.set_leading(true);
    tokio::select! {
        r = controller => r.context("the controller stopped; is the Topology CRD installed?"),
        () = elector.keep(duration / 3) => {
            // Exit rather than risk acting without the lease; the pod restarts as a candidate.
            anyhow::bail!("lost leadership of lease {}", args.leader_lease)
        }
    }
}
