//! Starting, watching and tearing down the control-plane processes.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use squall_node_agent::{AgentConfig, AgentHandle, ImageSpec, NodeAgent};

use crate::{bin_dir, certs, Error, Result, BINARIES};

static CLUSTER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Knobs for [`TestCluster::start_with`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// kube-controller-manager `--node-monitor-grace-period`: how long a node
    /// may miss heartbeats before it is marked NotReady.
    pub node_monitor_grace_period: Duration,
    /// Upper bound for the whole start-up.
    pub start_timeout: Duration,
    /// Keep the directory (logs, data, certificates) even on success.
    pub keep_dir: bool,
    /// Extra kube-apiserver flags, e.g. `--feature-gates=...`.
    pub extra_apiserver_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            node_monitor_grace_period: Duration::from_secs(10),
            start_timeout: Duration::from_secs(120),
            keep_dir: std::env::var_os("K8S_KEEP_LOGS").is_some_and(|v| !v.is_empty() && v != "0"),
            extra_apiserver_args: Vec::new(),
        }
    }
}

struct Managed {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A running control plane. Dropping it kills every process group it
/// started and removes its directory, unless the thread is panicking (a
/// failed test) or the directory is to be kept: then the path and the tail
/// of each log are printed.
pub struct TestCluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    client: Option<Client>,
    procs: Vec<Managed>,
    api_port: u16,
    keep: bool,
    agent_seq: AtomicU8,
    /// Third octet of every pod address of this cluster; see [`PodOctet`].
    pod_octet: PodOctet,
}

/// Reserves distinct free loopback ports. They are released before the
/// servers bind them, so another process (a cluster of a test binary running
/// beside this one) could take one in between; the window is short and the
/// kernel does not hand a just-released ephemeral port out again at once, and a
/// lost race shows as a server that failed to bind, with its log.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

/// Polls `check` every 200 ms until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, dir: &Path, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.into(),
                secs: timeout.as_secs(),
                dir: dir.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl TestCluster {
    /// Starts a cluster with default options.
    pub async fn start() -> Result<Self> {
        Self::start_with(ClusterOptions::default()).await
    }

    pub async fn start_with(opts: ClusterOptions) -> Result<Self> {
        let bins = bin_dir();
        for name in BINARIES {
            let path = bins.join(name);
            if !path.is_file() {
                return Err(Error::MissingBinary {
                    name: (*name).into(),
                    path,
                });
            }
        }
        reap_stale_clusters();
        // Claimed first: with every octet taken there is nothing to clean up.
        let pod_octet = PodOctet::claim()?;
        let seq = CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{seq}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        let mut cluster = Self {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            client: None,
            procs: Vec::new(),
            api_port: 0,
            keep: opts.keep_dir,
            agent_seq: AtomicU8::new(0),
            pod_octet,
        };
        let timeout = opts.start_timeout;
        match tokio::time::timeout(timeout, cluster.boot(&bins, &opts)).await {
            Ok(Ok(())) => Ok(cluster),
            Ok(Err(e)) => {
                cluster.keep = true;
                Err(e)
            }
            Err(_) => {
                cluster.keep = true;
                Err(Error::Timeout {
                    what: "cluster start".into(),
                    secs: timeout.as_secs(),
                    dir: cluster.dir.clone(),
                })
            }
        }
    }

    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) -> Result<()> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Own group, so teardown reaches anything the server forks.
            .process_group(0)
            .spawn()?;
        tracing::debug!(name, pid = child.id(), "started");
        record_pgid(&self.dir.join("pgids"), child.id());
        self.procs.push(Managed { name, child, log });
        Ok(())
    }

    /// Fails fast with the log tail when a server died.
    fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(Error::ProcessExited {
                    what: p.name.into(),
                    status: status.to_string(),
                    log: p.log.clone(),
                    tail: tail(&p.log, 3000),
                });
            }
        }
        Ok(())
    }

    async fn boot(&mut self, bins: &Path, opts: &ClusterOptions) -> Result<()> {
        let d = self.dir.clone();
        let p = |x: &Path| x.display().to_string();
        let certs = certs::generate(&d.join("pki"))?;
        let ports = free_ports(5)?;
        let (etcd_client, etcd_peer, api, kcm, sched) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
        self.api_port = api;

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        self.spawn(
            "etcd",
            &bins.join("etcd"),
            &[
                "--name=default".into(),
                format!("--data-dir={}", p(&d.join("etcd"))),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                // Test data is throw-away: skip fsync, it dominates latency on CI disks.
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;

        let server = format!("https://127.0.0.1:{api}");
        let mut args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            // Without it the apiserver looks for a default route and exits offline.
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api}"),
            format!("--cert-dir={}", p(&d.join("apiserver"))),
            format!("--tls-cert-file={}", p(&certs.serving_crt)),
            format!("--tls-private-key-file={}", p(&certs.serving_key)),
            format!("--client-ca-file={}", p(&certs.ca_crt)),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!("--service-account-issuer={server}"),
            format!("--service-account-key-file={}", p(&certs.sa_pub)),
            format!("--service-account-signing-key-file={}", p(&certs.sa_key)),
            // The "kubernetes" Endpoints would point at 127.0.0.1, which
            // endpoint validation rejects; nothing here routes service IPs.
            "--endpoint-reconciler-type=none".into(),
            "--profiling=false".into(),
        ];
        args.extend(opts.extra_apiserver_args.iter().cloned());
        // etcd first: the apiserver retries, but a dead etcd should name itself.
        let dir = d.clone();
        eventually("etcd to listen", Duration::from_secs(30), &dir, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", etcd_client))
                .await
                .ok()
        })
        .await?;
        self.check_alive()?;
        self.spawn("kube-apiserver", &bins.join("kube-apiserver"), &args)?;

        std::fs::write(&self.kubeconfig, certs::kubeconfig(&server, &certs))?;
        let client = client_for(&self.kubeconfig).await?;
        self.client = Some(client.clone());
        let deadline = Instant::now() + opts.start_timeout;
        loop {
            self.check_alive()?;
            let req = http::Request::get("/readyz").body(Vec::new());
            if let Ok(req) = req {
                if client.request_text(req).await.is_ok_and(|t| t.trim() == "ok") {
                    break;
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "kube-apiserver /readyz".into(),
                    secs: opts.start_timeout.as_secs(),
                    dir: d,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        let kc = p(&self.kubeconfig);
        let common = |port: u16, name: &str| {
            vec![
                format!("--kubeconfig={kc}"),
                format!("--authentication-kubeconfig={kc}"),
                format!("--authorization-kubeconfig={kc}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", p(&d.join(name))),
                "--leader-elect=false".into(),
            ]
        };
        let mut kcm_args = common(kcm, "kube-controller-manager");
        kcm_args.extend([
            format!("--service-account-private-key-file={}", p(&certs.sa_key)),
            format!("--root-ca-file={}", p(&certs.ca_crt)),
            format!("--cluster-signing-cert-file={}", p(&certs.ca_crt)),
            format!("--cluster-signing-key-file={}", p(&certs.ca_key)),
            "--controllers=*".into(),
            format!(
                "--node-monitor-grace-period={}s",
                opts.node_monitor_grace_period.as_secs().max(2)
            ),
            "--node-monitor-period=1s".into(),
        ]);
        self.spawn(
            "kube-controller-manager",
            &bins.join("kube-controller-manager"),
            &kcm_args,
        )?;
        self.spawn(
            "kube-scheduler",
            &bins.join("kube-scheduler"),
            &common(sched, "kube-scheduler"),
        )?;

        // Pods are only admitted once the service-account controller made
        // the "default" ServiceAccount, so wait for it before handing out.
        let sas: Api<ServiceAccount> = Api::namespaced(client, "default");
        let deadline = Instant::now() + opts.start_timeout;
        loop {
            self.check_alive()?;
            if sas.get_opt("default").await.ok().flatten().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "default ServiceAccount".into(),
                    secs: opts.start_timeout.as_secs(),
                    dir: d,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A client authenticated as cluster admin (group system:masters).
    pub fn client(&self) -> Client {
        match &self.client {
            Some(c) => c.clone(),
            None => unreachable!("a started cluster always has a client"),
        }
    }

    /// Path of the admin kubeconfig (usable with kubectl, helm, or KUBECONFIG).
    /// The pid of one of the control plane's processes (`kube-apiserver`, `etcd`, ...), to
    /// pause or kill it in a failure test.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.procs.iter().find(|p| p.name == name).map(|p| p.child.id())
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster's directory: logs/, pki/, etcd data, agent work dirs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://127.0.0.1:<port>` of the apiserver.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// `kubectl --kubeconfig <this cluster>`, ready for more arguments.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(bin_dir().join("kubectl"));
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }

    /// `kubectl apply -f crd_file`, then waits (up to 60 s) until the CRD named `crd` is
    /// Established, so objects of its kind can be created at once.
    pub fn apply_crd(&self, crd_file: &Path, crd: &str) -> Result<()> {
        let run = |step: &str, mut cmd: Command| -> Result<()> {
            let out = cmd.output()?;
            if out.status.success() {
                return Ok(());
            }
            Err(Error::Kubectl {
                step: format!("{step} ({crd})"),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        };
        let mut apply = self.kubectl();
        apply.args(["apply", "-f"]).arg(crd_file);
        run("kubectl apply", apply)?;
        let mut wait = self.kubectl();
        wait.args(["wait", "--for=condition=Established", "--timeout=60s"])
            .arg(format!("crd/{crd}"));
        run("kubectl wait", wait)
    }

    /// `helm --kubeconfig <this cluster>` with its cache/config dirs inside
    /// the cluster directory, ready for more arguments.
    pub fn helm(&self) -> Command {
        let mut c = Command::new(bin_dir().join("helm"));
        let home = self.dir.join("helm");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"));
        c
    }

    /// Keeps the directory after the cluster is dropped.
    pub fn keep_dir(&mut self) {
        self.keep = true;
    }

    /// Starts a node agent for one Node, mapping images to binaries. Each
    /// agent gets its own pod address range 127.<n>.<c>.0 upward (n from 1, c fixed per
    /// cluster), and
    /// its containers get KUBECONFIG pointing at the admin kubeconfig.
    pub async fn start_node_agent<I, K, B>(&self, node: &str, images: I) -> Result<AgentHandle>
    where
        I: IntoIterator<Item = (K, B)>,
        K: Into<String>,
        B: Into<PathBuf>,
    {
        let mut config = AgentConfig::new(node, self.dir.join("agents").join(node));
        config.pod_kubeconfig = Some(self.kubeconfig.clone());
        config.images = images
            .into_iter()
            .map(|(k, b)| (k.into(), ImageSpec::new(b)))
            .collect::<BTreeMap<_, _>>();
        self.start_node_agent_with(config).await
    }

    /// Starts a node agent with a full configuration. Its pod IP base is
    /// replaced by a fresh range unless it is already outside 127.0.x.x.
    pub async fn start_node_agent_with(&self, mut config: AgentConfig) -> Result<AgentHandle> {
        if config.pod_ip_base.octets()[1] == 0 {
            let n = self.agent_seq.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            config.pod_ip_base = Ipv4Addr::new(127, n, self.pod_octet.octet, 0);
        }
        Ok(NodeAgent::start(self.client(), config).await?)
    }

    fn teardown(&mut self) {
        for p in self.procs.iter().rev() {
            if let Ok(pid) = i32::try_from(p.child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in self.procs.iter_mut().rev() {
            while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(pid) = i32::try_from(p.child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = p.child.wait();
        }
    }
}

const DIR_PREFIX: &str = "squall-testenv-";
const KEPT_MARKER: &str = "KEPT";

fn record_pgid(path: &Path, pid: u32) {
    use std::io::Write;
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{pid}"));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "cannot record process group");
    }
}

/// True when `pid` still runs something of the cluster in `dir`: its
/// command line or working directory mentions the directory. This guards
/// against signalling an unrelated process that reused the id.
fn belongs_to(pid: i32, dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let needle = dir.as_os_str().as_encoded_bytes();
    let in_cmdline = !needle.is_empty() && cmdline.windows(needle.len()).any(|w| w == needle);
    in_cmdline || std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
}

/// Cleans up after test processes that died without dropping their
/// clusters (SIGKILL, timeout): kills their leftover process groups (control
/// plane and pod processes, which would otherwise hold ports and pod IPs)
/// and removes their directories unless they were kept for inspection.
fn reap_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
            continue; // owner still running
        }
        let dir = entry.path();
        let mut records = vec![dir.join("pgids")];
        if let Ok(agents) = std::fs::read_dir(dir.join("agents")) {
            records.extend(agents.flatten().map(|a| a.path().join("pgids")));
        }
        for record in records {
            let text = std::fs::read_to_string(&record).unwrap_or_default();
            for pgid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if pgid > 1 && belongs_to(pgid, &dir) {
                    tracing::info!(pgid, dir = %dir.display(), "killing leftover process group");
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
            }
        }
        if !dir.join(KEPT_MARKER).exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

async fn client_for(path: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.teardown();
        if self.keep || std::thread::panicking() {
            let _ = std::fs::write(self.dir.join(KEPT_MARKER), "");
            eprintln!(
                "kube-testenv: cluster files and logs kept in {}",
                self.dir.display()
            );
            for p in &self.procs {
                eprintln!("---- tail of {} ----\n{}", p.log.display(), tail(&p.log, 2000));
            }
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("kube-testenv: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// The third octet of a cluster's pod addresses, held for the cluster's life. Pods bind
/// fixed ports on their addresses, so two clusters running at once (test binaries run in
/// parallel) must never hand out the same address. The claim is a listening socket on
/// `127.255.<octet>.254`: the kernel gives each address to one socket, lets it go when the
/// process dies however it dies, and the sockets are close-on-exec, so the cluster's
/// children do not inherit them.
struct PodOctet {
    octet: u8,
    _claim: TcpListener,
}

/// Outside the kernel's default ephemeral range (32768-60999), so no client socket takes
/// it first.
const OCTET_CLAIM_PORT: u16 = 64_999;

impl PodOctet {
    /// Claims the first free octet (1..=250: 0 stays free, and a few above for pods
    /// counted past 255) from a varying start, so clusters started one after another in
    /// a process are unlikely to reuse the addresses a slow pod of the last one may still
    /// hold.
    fn claim() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let start = (std::process::id() ^ nanos.rotate_left(7)).wrapping_mul(0x9e37_79b9) >> 24;
        let mut last = None;
        for i in 0..250u32 {
            let octet = u8::try_from((start + i) % 250 + 1).unwrap_or(1);
            match TcpListener::bind((Ipv4Addr::new(127, 255, octet, 254), OCTET_CLAIM_PORT)) {
                Ok(claim) => return Ok(Self { octet, _claim: claim }),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::NoPodOctet(
            last.map_or_else(|| "none tried".into(), |e| e.to_string()),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn claimed_octets_are_distinct_while_held() {
        let held: Vec<PodOctet> = (0..20).map(|_| PodOctet::claim().unwrap()).collect();
        let mut octets: Vec<u8> = held.iter().map(|c| c.octet).collect();
        octets.sort_unstable();
        octets.dedup();
        assert_eq!(octets.len(), held.len(), "an octet was handed out twice");
        assert!(octets.iter().all(|o| (1..=250).contains(o)));
        // A held octet cannot be claimed by anyone else, this process included.
        let taken = held[0].octet;
        let again = TcpListener::bind((Ipv4Addr::new(127, 255, taken, 254), OCTET_CLAIM_PORT));
        assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
    }
}
