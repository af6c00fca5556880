//! The cluster verbs on a real control plane: the built `squall` binary with
//! `--kubeconfig` against kube-testenv's API server, the node agent running worker pods
//! and the operator in this process. Needs `make k8s-bins` and a built `squall-worker`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use kube::Api;
use kube_testenv::TestCluster;
use squall_model::crd::{Phase, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_squall");
const WORKER_IMAGE: &str = "squall/worker:test";
const NS: &str = "default";

const PIPELINE: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: numbers}
spec:
  workers: 2
  messageTimeoutSeconds: 5
  maxSpoutPending: 200
  pod: {image: squall/worker:test}
  spouts:
    - {name: numbers, component: sequence, parallelism: 2}
  bolts:
    - name: sink
      component: "null"
      parallelism: 2
      inputs: [{from: numbers}]
"#;

/// Exit code, stdout and stderr of one `squall` run.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// A failure reported as one line on stderr that contains `needle`.
    fn fails_with(&self, needle: &str) -> Result<()> {
        ensure!(self.code != 0, "expected a failure, got {}", self.stdout);
        let lines: Vec<&str> = self.stderr.trim().lines().collect();
        ensure!(
            lines.len() == 1 && lines[0].contains(needle),
            "expected one line with {needle:?} on stderr, got {:?}",
            self.stderr
        );
        Ok(())
    }

    fn ok(self) -> Result<Self> {
        ensure!(self.code == 0, "squall failed ({}): {}", self.code, self.stderr);
        Ok(self)
    }
}

/// Runs `squall` off the runtime's threads, so the in-process operator keeps going.
async fn squall(kubeconfig: &Path, args: &[&str]) -> Result<Out> {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("RUST_LOG");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    Ok(Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn worker_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary has no target directory")?;
    let bin = dir.join("squall-worker");
    ensure!(
        bin.exists(),
        "{} missing: run `cargo build -p squall-worker` first",
        bin.display()
    );
    Ok(bin)
}

async fn install_crd(cluster: &TestCluster) -> Result<()> {
    let crd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/topology.yaml");
    Ok(cluster.apply_crd(&crd, "topologies.squall.dev")?)
}

fn spawn_operator(
    client: &kube::Client,
) -> tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>> {
    tokio::spawn(squall_operator::controller::run(
        client.clone(),
        squall_operator::controller::Config {
            workers: squall_operator::resources::WorkerDefaults {
                image: WORKER_IMAGE.to_owned(),
                python_image: None,
                lease_duration_seconds: 10,
                lease_renew_seconds: 2,
                cert_validity: squall_operator::resources::DEFAULT_CERT_VALIDITY,
                ca_overlap: squall_operator::resources::DEFAULT_CA_OVERLAP,
                limits: squall_model::Limits {
                    raise_with: squall_operator::RAISE_WITH.to_owned(),
                    ..squall_model::Limits::default()
                },
                network: Default::default(),
            },
            namespace: Some(NS.to_owned()),
            instance: "test".to_owned(),
            metrics: Default::default(),
        },
    ))
}

/// The admin kubeconfig `text` with the token of a ServiceAccount that no role binds.
fn as_nobody(cluster: &TestCluster, text: &str) -> Result<String> {
    for args in [
        &["create", "serviceaccount", "nobody", "--namespace", NS][..],
        &["create", "token", "nobody", "--namespace", NS][..],
    ] {
        let out = cluster.kubectl().args(args).output()?;
        ensure!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[1] == "token" {
            let token = String::from_utf8(out.stdout)?.trim().to_owned();
            let start = text.find("users:").context("no users in kubeconfig")?;
            let end = text.find("contexts:").context("no contexts in kubeconfig")?;
            let user = format!("users:\n- name: admin\n  user:\n    token: {token}\n");
            return Ok(format!("{}{user}{}", &text[..start], &text[end..]));
        }
    }
    anyhow::bail!("no token")
}

/// Polls `check` every 300 ms for up to `within`.
async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        ensure!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The phase of `numbers` once the operator has seen its current generation.
async fn current_phase(topos: &Api<Topology>) -> Option<(Phase, i64)> {
    let t = topos.get("numbers").await.ok()?;
    let s = t.status?;
    let generation = t.metadata.generation?;
    (s.observed_generation == Some(generation)).then_some((s.phase, generation))
}

/// The ACKED column of component `name` in `squall status` output.
fn acked(table: &str, name: &str) -> Option<u64> {
    let header: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("COMPONENT"))?
        .split_whitespace()
        .collect();
    let col = header.iter().position(|h| *h == "ACKED")?;
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    row.split_whitespace().nth(col)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_verbs_drive_a_topology_through_its_life() -> Result<()> {
    tokio::time::timeout(Duration::from_secs(240), verbs())
        .await
        .context("test timed out")?
}

async fn verbs() -> Result<()> {
    let cluster = TestCluster::start().await?;
    let kc = cluster.kubeconfig_path().to_path_buf();
    squall(&kc, &["list"]).await?.fails_with("CRD installed")?;
    install_crd(&cluster).await?;
    let _node = cluster
        .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
        .await?;
    let client = cluster.client();
    let operator = spawn_operator(&client);
    let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("numbers.yaml");
    std::fs::write(&file, PIPELINE)?;
    let file = file.display().to_string();

    // Errors first, while nothing exists: each is one line naming what is at fault.
    squall(&kc, &["status", "missing"]).await?.fails_with("missing")?;
    squall(&kc, &["kill", "missing"]).await?.fails_with("not found")?;
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        PIPELINE.replace("inputs: [{from: numbers}]", "inputs: [{from: nowhere}]"),
    )?;
    let out = squall(&kc, &["submit", &bad.display().to_string()]).await?;
    out.fails_with("spec.bolts[0].inputs[0].from")?;
    let closed = dir.path().join("closed.kubeconfig");
    let text = std::fs::read_to_string(&kc)?;
    let server = cluster.server_url();
    std::fs::write(&closed, text.replace(&server, "https://127.0.0.1:1"))?;
    squall(&closed, &["list"])
        .await?
        .fails_with("cannot reach the cluster")?;
    let nobody = dir.path().join("nobody.kubeconfig");
    std::fs::write(&nobody, as_nobody(&cluster, &text)?)?;
    squall(&nobody, &["list"]).await?.fails_with("forbidden")?;

    // submit --wait returns once Ready; list shows it Running.
    let out = squall(&kc, &["submit", &file, "--wait", "--timeout", "90"])
        .await?
        .ok()?;
    ensure!(out.stdout.contains("Ready"), "{}", out.stdout);
    let out = squall(&kc, &["list"]).await?.ok()?;
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("numbers"))
        .context("no row")?;
    ensure!(row.contains("Running") && row.contains("2/2"), "{}", out.stdout);

    // status: the figures grow between two reads.
    let first = until("acked in status", Duration::from_secs(30), || async {
        let out = squall(&kc, &["status", "numbers"]).await?;
        Ok(acked(&out.stdout, "numbers").filter(|n| *n > 0))
    })
    .await?;
    until("acked growing", Duration::from_secs(30), || async {
        let out = squall(&kc, &["status", "numbers"]).await?;
        Ok(acked(&out.stdout, "numbers").filter(|n| *n > first))
    })
    .await?;

    squall(&kc, &["deactivate", "numbers"]).await?.ok()?;
    until("Inactive", Duration::from_secs(30), || async {
        Ok(current_phase(&topos).await.filter(|p| p.0 == Phase::Inactive))
    })
    .await?;
    squall(&kc, &["activate", "numbers"]).await?.ok()?;
    let (_, before) = until("Running again", Duration::from_secs(30), || async {
        Ok(current_phase(&topos).await.filter(|p| p.0 == Phase::Running))
    })
    .await?;

    squall(&kc, &["rebalance", "numbers", "-e", "nope=2"])
        .await?
        .fails_with("no component nope")?;
    squall(&kc, &["rebalance", "numbers", "-n", "2", "-e", "sink=3"])
        .await?
        .ok()?;
    until("rebalanced and Running", Duration::from_secs(60), || async {
        Ok(current_phase(&topos)
            .await
            .filter(|p| p.0 == Phase::Running && p.1 > before))
    })
    .await?;
    let t = topos.get("numbers").await?;
    ensure!(t.spec.bolts[0].parallelism == 3, "{:?}", t.spec.bolts);

    logs(&kc).await?;

    let out = squall(&kc, &["kill", "numbers", "-w", "1"]).await?.ok()?;
    ensure!(out.stdout.contains("killed"), "{}", out.stdout);
    ensure!(
        topos.get_opt("numbers").await?.is_none(),
        "still there after kill"
    );
    squall(&kc, &["status", "numbers"])
        .await?
        .fails_with("not found")?;
    operator.abort();
    Ok(())
}

/// `squall logs` reads the workers' logs through the API server's pods/log: all of
/// them, those of one component, and followed.
async fn logs(kc: &Path) -> Result<()> {
    let out = squall(kc, &["logs", "numbers"]).await?.ok()?;
    ensure!(
        out.stdout.lines().any(|l| l.starts_with("numbers-0 "))
            && out.stdout.lines().any(|l| l.starts_with("numbers-1 ")),
        "lines of both workers, each after its pod's name: {}{}",
        out.stdout,
        out.stderr
    );
    let out = squall(kc, &["logs", "numbers", "sink"]).await?.ok()?;
    ensure!(out.stdout.lines().all(|l| l.contains("sink")), "{}", out.stdout);
    // The spout shares the topology's name, which the workers' lines mention.
    let out = squall(kc, &["logs", "numbers", "numbers"]).await?.ok()?;
    ensure!(
        out.stdout.lines().count() > 0 && out.stdout.lines().all(|l| l.contains("numbers")),
        "lines about the spout: {}",
        out.stdout
    );
    let out = squall(kc, &["logs", "numbers", "--tail", "2"]).await?.ok()?;
    ensure!(
        out.stdout.lines().count() == 4,
        "two lines of each worker: {}",
        out.stdout
    );
    squall(kc, &["logs", "numbers", "nope"])
        .await?
        .fails_with("no component nope")?;

    // -f prints what is there and keeps going: a line arrives, and it is still running.
    let mut child = std::process::Command::new(BIN)
        .args(["logs", "numbers", "-f", "--kubeconfig"])
        .arg(kc)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    });
    let first = tokio::time::timeout(Duration::from_secs(15), first).await;
    let running = child.try_wait()?.is_none();
    child.kill()?;
    child.wait()?;
    let line = first.context("no line from logs -f within 15s")???;
    ensure!(
        line.starts_with("numbers-") && running,
        "logs -f: {line:?}, running {running}"
    );
    Ok(())
}
