//! `squall-worker`: one worker process of a Squall topology.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use squall_worker::host::{self, WorkerConfig};
use squall_worker::tls::TlsFiles;
use tracing_subscriber::EnvFilter;

/// Runs the tasks an assignment gives this worker and links it to its peers.
#[derive(Parser)]
#[command(name = "squall-worker", version, about)]
struct Args {
    /// Assignment file (YAML or JSON): manifest, generation, workers with addresses and
    /// tasks. Re-read when it changes and on SIGHUP.
    #[arg(long, env = "SQUALL_ASSIGNMENT")]
    assignment: PathBuf,
    /// This worker's id in the assignment.
    #[arg(long, env = "SQUALL_WORKER_ID")]
    id: String,
    /// Address for the data plane; the worker's own address in the assignment by default.
    #[arg(long, env = "SQUALL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Address for /metrics, /status, /healthz and /readyz.
    #[arg(long = "http", env = "SQUALL_HTTP", default_value = "127.0.0.1:9464")]
    http: SocketAddr,
    /// TLS certificate (PEM) of this worker; with --tls-key and --tls-ca, turns TLS on.
    #[arg(long, env = "SQUALL_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "SQUALL_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that signs every worker's certificate.
    #[arg(long, env = "SQUALL_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Read this worker's certificate (keys `POD.crt`, `POD.key`, POD being --id) and the
    /// CA bundle (`ca.crt`) from this Secret, watched through the API, keep them in
    /// --tls-dir and turn mutual TLS on; instead of --tls-cert, --tls-key and --tls-ca.
    #[arg(
        long,
        env = "SQUALL_TLS_SECRET",
        conflicts_with = "tls_cert",
        requires = "tls_dir"
    )]
    tls_secret: Option<String>,
    /// Directory for the files of --tls-secret.
    #[arg(long, env = "SQUALL_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// Read the assignment and manifest from this ConfigMap (keys `assignment.yaml` and
    /// `topology.yaml`), watched through the API, and keep them in the `--assignment` file
    /// and its directory.
    #[arg(long, env = "SQUALL_ASSIGNMENT_CONFIGMAP")]
    assignment_configmap: Option<String>,
    /// Directory relative paths of the manifest (a `shell` command, `workingDir`) resolve
    /// against. Default: the working directory when following a ConfigMap, else the
    /// assignment's base directory (the manifest's own).
    #[arg(long, env = "SQUALL_BASE_DIR")]
    base_dir: Option<PathBuf>,
    /// Namespace of that ConfigMap.
    #[arg(long, env = "SQUALL_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Keep a coordination.k8s.io Lease of this name renewed (liveness for the operator).
    #[arg(long, env = "SQUALL_LEASE")]
    lease: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, env = "SQUALL_LEASE_DURATION_SECONDS", default_value_t = 10)]
    lease_duration: u64,
    /// Lease renewal period in seconds.
    #[arg(long, env = "SQUALL_LEASE_RENEW_SECONDS", default_value_t = 2)]
    lease_renew: u64,
    /// This pod's uid: the Lease's holder and owner.
    #[arg(long, env = "POD_UID")]
    pod_uid: Option<String>,
    /// This pod's name, for the Lease's owner reference.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Labels of the Lease, `k=v,k=v`.
    #[arg(long, env = "SQUALL_LEASE_LABELS", default_value = "")]
    lease_labels: String,
    /// Limits on what the manifest may ask for, `name=value,...` (e.g.
    /// `maxParallelism=2048`); the defaults for those not named.
    #[arg(long, env = "SQUALL_LIMITS", default_value = "", value_parser = parse_limits)]
    limits: squall_model::Limits,
    /// Shed a peer that takes no data for this many milliseconds (default: a third of the
    /// message timeout, 1 to 10 s).
    #[arg(long)]
    stall_ms: Option<u64>,
    /// Exit when the process that started this worker is gone: a local supervisor killed
    /// with SIGKILL cannot stop its workers itself. Not set on a cluster.
    #[arg(long)]
    exit_with_parent: bool,
    /// With `--exit-with-parent`: the pid of the process that starts this worker. A parent
    /// that died before the watch began (this worker already reparented) is then noticed
    /// too; without it, the parent is whichever process this worker has when it starts.
    #[arg(long, requires = "exit_with_parent")]
    parent_pid: Option<u32>,
}

fn parse_limits(list: &str) -> Result<squall_model::Limits, String> {
    let mut limits = squall_model::Limits::parse_list(list)?;
    limits.raise_with = "the worker's SQUALL_LIMITS ({key}=N)".into();
    Ok(limits)
}

/// Ends the process once its parent is not `expected` (default: the parent it has now):
/// the parent died and this worker was reparented. Checked once before anything else
/// starts, so a worker whose parent is already gone does nothing, then every half second
/// on a thread of its own; a dead parent not yet reaped counts as dead.
fn exit_with_parent(expected: Option<u32>) {
    let parent = expected.unwrap_or_else(std::os::unix::process::parent_id);
    let exit_if_gone = move || {
        if std::os::unix::process::parent_id() != parent {
            tracing::warn!(parent, "the process that started this worker is gone; exiting");
            std::process::exit(1);
        }
    };
    exit_if_gone();
    let watch = move || loop {
        std::thread::sleep(Duration::from_millis(500));
        exit_if_gone();
    };
    if let Err(e) = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(watch)
    {
        tracing::warn!(error = %e, "cannot watch the parent process; this worker will outlive it");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if args.exit_with_parent {
        exit_with_parent(args.parent_pid);
    }
    // The lease first: a worker waiting for its assignment is alive too.
    if let Some(name) = args.lease.clone() {
        let labels = args
            .lease_labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let lease = squall_worker::lease::LeaseConfig {
            namespace: args.namespace.clone(),
            name,
            holder: args.pod_uid.clone().unwrap_or_else(|| args.id.clone()),
            pod_name: args.pod_uid.as_ref().and(args.pod_name.clone()),
            labels,
            duration: Duration::from_secs(args.lease_duration.max(1)),
            renew_every: Duration::from_secs(args.lease_renew.max(1)),
        };
        if let Err(e) = squall_worker::lease::start(lease) {
            tracing::error!(error = %e, "starting the lease failed");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(name) = args.assignment_configmap.clone() {
        let sync = squall_worker::configmap::SyncConfig {
            namespace: args.namespace.clone(),
            name,
            worker_id: args.id.clone(),
            assignment: args.assignment.clone(),
        };
        if let Err(e) = squall_worker::configmap::start(sync) {
            tracing::error!(error = %e, "following the assignment ConfigMap failed");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let tls = match (args.tls_cert, args.tls_key, args.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles { cert, key, ca }),
        _ => match (args.tls_secret, args.tls_dir) {
            (Some(name), Some(dir)) => {
                let sync = squall_worker::tls_secret::SecretSyncConfig {
                    namespace: args.namespace.clone(),
                    name,
                    worker_id: args.id.clone(),
                    dir,
                };
                match squall_worker::tls_secret::start(sync) {
                    Ok(files) => Some(files),
                    Err(e) => {
                        tracing::error!(error = %e, "following the TLS Secret failed");
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            _ => None,
        },
    };
    // From a ConfigMap the manifest has no directory of its own: its relative paths are the
    // image's, so they resolve against the working directory (the image's WORKDIR).
    let base_dir = args.base_dir.clone().or_else(|| {
        args.assignment_configmap
            .as_ref()
            .and_then(|_| std::env::current_dir().ok())
    });
    let cfg = WorkerConfig {
        id: args.id,
        assignment: args.assignment,
        listen: args.listen,
        http: args.http,
        tls,
        stall: args.stall_ms.map(Duration::from_millis),
        reload_every: Duration::from_millis(250),
        limits: args.limits,
        base_dir,
    };
    match host::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
