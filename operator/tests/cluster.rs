//! The operator against a real control plane (kube-testenv) with worker pods run as local
//! processes by the node agent. Needs `make k8s-bins` and a built `squall-worker`
//! (`make test-operator` does both).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_model::crd::{Phase, Topology};
use squall_model::TopologyManifest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORKER_IMAGE: &str = "squall/worker:test";
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
const NS: &str = "default";

/// Clusters are heavy on 2 cores: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bounded<F: std::future::Future<Output = Result<()>>>(body: F) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=off")),
        )
        .with_test_writer()
        .try_init();
    let _guard = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .context("test timed out")?
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `squall-worker` from the same target directory as this test (deps/ is one level down).
fn worker_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary has no target directory")?;
    let bin = dir.join("squall-worker");
    ensure!(
        bin.exists(),
        "{} missing: run `cargo build -p squall-worker` first (make test-operator does)",
        bin.display()
    );
    Ok(bin)
}

async fn install_crd(cluster: &TestCluster) -> Result<()> {
    let out = cluster
        .kubectl()
        .args(["apply", "-f"])
        .arg(repo().join("crds/topology.yaml"))
        .output()?;
    ensure!(
        out.status.success(),
        "CRD apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cluster
        .kubectl()
        .args([
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/topologies.squall.dev",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "CRD not established: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn topology(yaml: &str) -> Result<Topology> {
    let m = TopologyManifest::from_yaml(yaml, "<test>")?;
    let mut t = Topology::new(&m.metadata.name, m.spec);
    t.meta_mut().namespace = Some(NS.to_owned());
    Ok(t)
}

/// A change that makes a valid topology invalid.
type Edit = fn(&mut Topology);

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

#[tokio::test]
async fn crd_schema_and_cel_rules_are_enforced_by_the_server() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        // Every example manifest is a valid resource.
        for ex in [
            "examples/word-count/topology.yaml",
            "examples/wikipedia-edits/topology.yaml",
            "examples/wikipedia-edits/topology-python.yaml",
        ] {
            let out = cluster
                .kubectl()
                .args(["apply", "--dry-run=server", "-f"])
                .arg(repo().join(ex))
                .output()?;
            ensure!(
                out.status.success(),
                "{ex}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let api: Api<Topology> = Api::namespaced(cluster.client(), NS);
        let bad = |f: Edit| -> Result<Topology> {
            let mut t = topology(PIPELINE)?;
            f(&mut t);
            Ok(t)
        };
        let cases: [(Edit, &str); 5] = [
            (
                |t| t.spec.spouts[0].parallelism = 0,
                "parallelism must be at least 1",
            ),
            (|t| t.spec.workers = 0, "workers must be at least 1"),
            (
                |t| {
                    t.spec.bolts[0].parallelism = 3;
                    t.spec.bolts[0].tasks = Some(2);
                },
                "tasks must be at least parallelism",
            ),
            (
                |t| t.spec.bolts[0].name = "numbers".into(),
                "component names must be unique",
            ),
            (
                |t| {
                    let dup = t.spec.bolts[0].clone();
                    t.spec.bolts.push(dup);
                },
                "Duplicate value",
            ),
        ];
        for (make, want) in cases {
            match api.create(&PostParams::default(), &bad(make)?).await {
                Err(kube::Error::Api(e)) => {
                    ensure!(e.code == 422, "want 422, got {}: {}", e.code, e.message);
                    ensure!(e.message.contains(want), "want {want:?} in {:?}", e.message);
                }
                Ok(_) => bail!("accepted a topology that should fail with {want:?}"),
                Err(e) => bail!("unexpected error {e}"),
            }
        }
        // The scale subresource and printer columns exist.
        api.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        let out = cluster
            .kubectl()
            .args(["scale", "topo/numbers", "--replicas=3"])
            .output()?;
        ensure!(
            out.status.success(),
            "scale: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            api.get("numbers").await?.spec.workers == 3,
            "scale did not set spec.workers"
        );
        let out = cluster.kubectl().args(["get", "topo", "numbers"]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            text.contains("PHASE") && text.contains("WORKERS") && text.contains("READY"),
            "{text}"
        );
        Ok(())
    })
    .await
}

async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// Trees acked at the `numbers` spout, summed over the running worker pods.
async fn acked(pods: &Api<Pod>) -> Option<u64> {
    let list = pods
        .list(&ListParams::default().labels("squall.dev/topology=numbers"))
        .await
        .ok()?;
    let mut total = 0;
    for p in list.items {
        let Some(ip) = p.status.and_then(|s| s.pod_ip) else {
            continue;
        };
        let Some(text) = http_get(&format!("{ip}:9464"), "/metrics").await else {
            continue;
        };
        total += text
            .lines()
            .filter(|l| l.starts_with("squall_acked_total{") && l.contains("component=\"numbers\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

async fn wait_acked_beyond(cluster: &TestCluster, pods: &Api<Pod>, floor: u64) -> Result<u64> {
    eventually(
        "tuples acked across workers",
        Duration::from_secs(30),
        cluster.dir(),
        || async { acked(pods).await.filter(|n| *n > floor + 100) },
    )
    .await
    .map_err(Into::into)
}

fn owned_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true) && o.kind == "Topology")
}

/// The pid of the process running a pod, found by the pod uid in its environment.
fn pid_of_pod(uid: &str) -> Option<i32> {
    let needle = format!("POD_UID={uid}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let env = std::fs::read(e.path().join("environ")).ok()?;
        env.split(|b| *b == 0)
            .any(|kv| kv == needle.as_bytes())
            .then_some(pid)
    })
}

#[tokio::test]
async fn topology_runs_heals_and_is_garbage_collected() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        let operator = tokio::spawn(squall_operator::controller::run(
            client.clone(),
            squall_operator::controller::Config {
                workers: squall_operator::resources::WorkerDefaults {
                    image: WORKER_IMAGE.to_owned(),
                    lease_duration_seconds: 4,
                    lease_renew_seconds: 1,
                },
                namespace: Some(NS.to_owned()),
                instance: "test".to_owned(),
                metrics: Default::default(),
            },
        ));
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let created = topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        let uid = created.uid().context("no uid")?;

        let t = eventually(
            "topology Running",
            Duration::from_secs(40),
            cluster.dir(),
            || async {
                let t = topos.get("numbers").await.ok()?;
                (t.status.as_ref()?.phase == Phase::Running).then_some(t)
            },
        )
        .await?;
        let status = t.status.context("no status")?;
        ensure!(status.ready_workers == 2 && status.observed_generation == t.metadata.generation);
        ensure!(status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"));

        let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
            .get("numbers")
            .await?;
        let svc = Api::<Service>::namespaced(client.clone(), NS)
            .get("numbers-workers")
            .await?;
        let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
            .get("numbers-assignment")
            .await?;
        ensure!(
            owned_by(&sts.metadata, &uid) && owned_by(&svc.metadata, &uid) && owned_by(&cm.metadata, &uid)
        );
        ensure!(
            svc.spec.and_then(|s| s.cluster_ip).as_deref() == Some("None"),
            "service not headless"
        );

        // Tuples flow between the two worker pods.
        let before = wait_acked_beyond(&cluster, &pods, 0).await?;

        // A spec the server accepts but the operator's deeper validation rejects.
        let mut broken = topology(PIPELINE)?;
        broken.metadata.name = Some("broken".into());
        broken.spec.bolts[0].inputs[0].from = "nowhere".into();
        topos.create(&PostParams::default(), &broken).await?;
        let status = eventually(
            "broken topology Failed",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let s = topos.get("broken").await.ok()?.status?;
                (s.phase == Phase::Failed).then_some(s)
            },
        )
        .await?;
        let error = status.last_error.unwrap_or_default();
        ensure!(
            error.contains("nowhere"),
            "lastError does not name the problem: {error}"
        );
        ensure!(status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "InvalidSpec"));
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
        eventually(
            "InvalidSpec event",
            Duration::from_secs(10),
            cluster.dir(),
            || async {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items
                    .iter()
                    .any(|e| {
                        e.reason.as_deref() == Some("InvalidSpec")
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                    })
                    .then_some(())
            },
        )
        .await?;
        ensure!(
            Api::<StatefulSet>::namespaced(client.clone(), NS)
                .get_opt("broken")
                .await?
                .is_none(),
            "an invalid topology got workers"
        );

        // kill -9 one worker process: the pod's container restarts and its tasks run again.
        let victim = pods.get("numbers-0").await?;
        let victim_uid = victim.uid().context("pod uid")?;
        let pid = pid_of_pod(&victim_uid).context("worker process of numbers-0 not found")?;
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        ensure!(killed.success(), "kill -9 {pid} failed");
        eventually(
            "numbers-0 restarted",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let p = pods.get("numbers-0").await.ok()?;
                let restarts = p.status?.container_statuses?.first()?.restart_count;
                (restarts >= 1).then_some(())
            },
        )
        .await?;
        let _ = wait_acked_beyond(&cluster, &pods, before).await?;

        // A hung worker (SIGSTOP) stops renewing its Lease: the operator replaces its pod,
        // and its tasks run again at the new pod's address.
        let hung = pods.get("numbers-1").await?;
        let hung_uid = hung.uid().context("pod uid")?;
        let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
        let lease = leases.get("numbers-1").await?;
        ensure!(lease.spec.and_then(|s| s.holder_identity).as_deref() == Some(hung_uid.as_str()));
        let pid = pid_of_pod(&hung_uid).context("worker process of numbers-1 not found")?;
        let stopped = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()?;
        ensure!(stopped.success(), "kill -STOP {pid} failed");
        let started = std::time::Instant::now();
        eventually(
            "numbers-1 replaced and ready",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let p = pods.get("numbers-1").await.ok()?;
                let ready = p
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (p.uid().as_deref() != Some(hung_uid.as_str()) && ready).then_some(())
            },
        )
        .await?;
        tracing::info!(secs = started.elapsed().as_secs_f64(), "hung worker replaced");
        let floor = acked(&pods).await.unwrap_or(0);
        let _ = wait_acked_beyond(&cluster, &pods, floor).await?;

        // A parallelism change: a new assignment generation with the new plan, and the
        // workers pick it up and process again.
        let generation = topos
            .get("numbers")
            .await?
            .status
            .and_then(|s| s.assignment_generation)
            .context("no assignment generation")?;
        let mut t = topos.get("numbers").await?;
        t.spec.bolts[0].parallelism = 3;
        topos.replace("numbers", &PostParams::default(), &t).await?;
        eventually(
            "rebalanced and Running",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let s = topos.get("numbers").await.ok()?.status?;
                (s.phase == Phase::Running && s.assignment_generation > Some(generation)).then_some(())
            },
        )
        .await?;
        let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
            .get("numbers-assignment")
            .await?;
        let manifest = cm
            .data
            .and_then(|d| d.get("topology.yaml").cloned())
            .unwrap_or_default();
        ensure!(
            manifest.contains("parallelism: 3"),
            "manifest not updated:\n{manifest}"
        );
        let floor = acked(&pods).await.unwrap_or(0);
        let _ = wait_acked_beyond(&cluster, &pods, floor).await?;

        // Delete the topology: the finalizer runs, then the garbage collector removes children.
        topos.delete("numbers", &DeleteParams::default()).await?;
        eventually(
            "children garbage-collected",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let gone_t = topos.get_opt("numbers").await.ok()?.is_none();
                let gone_s = Api::<StatefulSet>::namespaced(client.clone(), NS)
                    .get_opt("numbers")
                    .await
                    .ok()?
                    .is_none();
                let gone_c = Api::<ConfigMap>::namespaced(client.clone(), NS)
                    .get_opt("numbers-assignment")
                    .await
                    .ok()?
                    .is_none();
                let gone_p = pods
                    .list(&ListParams::default().labels("squall.dev/topology=numbers"))
                    .await
                    .ok()?
                    .items
                    .is_empty();
                (gone_t && gone_s && gone_c && gone_p).then_some(())
            },
        )
        .await?;
        operator.abort();
        Ok(())
    })
    .await
}

#[tokio::test]
async fn leader_election_is_exclusive_and_fails_over_within_the_lease_duration() -> Result<()> {
    use squall_operator::leader::Elector;
    bounded(async {
        let cluster = TestCluster::start().await?;
        let client = cluster.client();
        let duration = Duration::from_secs(3);
        let mut a = Elector::new(client.clone(), NS, "leader", "a", duration);
        let mut b = Elector::new(client.clone(), NS, "leader", "b", duration);
        // Both race for a Lease that does not exist yet: exactly one wins.
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        let (ra, rb) = (ra?, rb?);
        ensure!(ra != rb, "both or neither became leader: {ra} {rb}");
        let (mut leader, mut follower, follower_id) = if ra { (a, b, "b") } else { (b, a, "a") };
        ensure!(leader.try_acquire_or_renew().await?, "the leader could not renew");
        // The follower waits while the leader renews.
        for _ in 0..4 {
            ensure!(
                !follower.try_acquire_or_renew().await?,
                "took a lease that was being renewed"
            );
            tokio::time::sleep(Duration::from_millis(700)).await;
            ensure!(
                leader.try_acquire_or_renew().await?,
                "the leader lost a renewed lease"
            );
        }
        // The leader stops renewing: the follower takes over after the duration, not before.
        let stopped = std::time::Instant::now();
        loop {
            if follower.try_acquire_or_renew().await? {
                break;
            }
            ensure!(
                stopped.elapsed() < duration + Duration::from_secs(3),
                "no takeover"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = stopped.elapsed();
        ensure!(
            took >= duration,
            "took over after {took:?}, before the lease expired"
        );
        ensure!(
            !leader.try_acquire_or_renew().await?,
            "the old leader still thinks it leads"
        );
        let lease = Api::<Lease>::namespaced(client, NS).get("leader").await?;
        let spec = lease.spec.context("lease without spec")?;
        ensure!(spec.holder_identity.as_deref() == Some(follower_id));
        ensure!(
            spec.lease_transitions == Some(1),
            "transitions {:?}",
            spec.lease_transitions
        );
        Ok(())
    })
    .await
}

/// Ready condition of a pod.
fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn leader_of(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("squall-operator-leader")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn helm_installed_operator_pods_fail_over_and_rebalance_on_scale() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let _node = cluster
            .start_node_agent(
                "node-a",
                [
                    (WORKER_IMAGE, worker_binary()?),
                    (
                        "squall/operator:test",
                        PathBuf::from(env!("CARGO_BIN_EXE_squall-operator")),
                    ),
                ],
            )
            .await?;
        let out = cluster
            .helm()
            .args(["install", "squall"])
            .arg(repo().join("charts/squall-operator"))
            .args(["--namespace", "squall-system", "--create-namespace"])
            .args(["--set", "image.repository=squall/operator,image.tag=test"])
            .args(["--set", &format!("workerImage={WORKER_IMAGE}")])
            .args(["--set", "leaderElection.leaseSeconds=4"])
            .args([
                "--set",
                "workerLease.durationSeconds=4,workerLease.renewSeconds=1",
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "helm install: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client = cluster.client();
        let leases: Api<Lease> = Api::namespaced(client.clone(), "squall-system");
        let op_pods: Api<Pod> = Api::namespaced(client.clone(), "squall-system");
        let first = eventually(
            "an operator replica leads",
            Duration::from_secs(30),
            cluster.dir(),
            || async { leader_of(&leases).await },
        )
        .await?;

        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        // The CRD came from the chart's crds/; the API may need a moment to serve it.
        eventually(
            "topology created",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                topos
                    .create(&PostParams::default(), &topology(PIPELINE).ok()?)
                    .await
                    .ok()
            },
        )
        .await?;
        eventually(
            "topology Running",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let t = topos.get("numbers").await.ok()?;
                (t.status?.phase == Phase::Running).then_some(())
            },
        )
        .await?;

        // Kill the leading replica: the other one takes over within the lease duration.
        match op_pods
            .delete(&first, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => {}
            // Already gone (it lost the lease and restarted): the takeover is checked below anyway.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        let killed = std::time::Instant::now();
        let second = eventually(
            "another replica leads",
            Duration::from_secs(20),
            cluster.dir(),
            || async { leader_of(&leases).await.filter(|h| *h != first) },
        )
        .await?;
        tracing::info!(from = %first, to = %second, secs = killed.elapsed().as_secs_f64(), "leader failover");
        // The leader's /metrics counts reconciles and shows the Running topology.
        let ip = op_pods
            .get(&second)
            .await?
            .status
            .and_then(|s| s.pod_ip)
            .context("no pod IP")?;
        let text = eventually(
            "operator metrics",
            Duration::from_secs(15),
            cluster.dir(),
            || async {
                http_get(&format!("{ip}:8080"), "/metrics")
                    .await
                    .filter(|t| t.contains("squall_operator_leading 1"))
            },
        )
        .await?;
        ensure!(text.contains("squall_operator_reconciles_total"), "{text}");

        // Scale through the scale subresource: the new leader rebalances over 3 workers.
        let out = cluster
            .kubectl()
            .args(["scale", "topo/numbers", "--replicas=3"])
            .output()?;
        ensure!(
            out.status.success(),
            "scale: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        eventually(
            "3 workers Running",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let s = topos.get("numbers").await.ok()?.status?;
                let ready = pods
                    .list(&ListParams::default().labels("squall.dev/topology=numbers"))
                    .await
                    .ok()?
                    .items
                    .iter()
                    .filter(|p| pod_ready(p))
                    .count();
                (s.phase == Phase::Running && s.ready_workers == 3 && ready == 3).then_some(())
            },
        )
        .await?;
        let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
            .get("numbers-assignment")
            .await?;
        let doc = cm
            .data
            .and_then(|d| d.get("assignment.yaml").cloned())
            .unwrap_or_default();
        ensure!(
            doc.contains("numbers-2"),
            "assignment without the third worker:\n{doc}"
        );
        let floor = acked(&pods).await.unwrap_or(0);
        wait_acked_beyond(&cluster, &pods, floor).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn workers_of_a_lost_node_move_to_another_node() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let mut agents = BTreeMap::new();
        for node in ["node-a", "node-b"] {
            agents.insert(
                node.to_owned(),
                cluster
                    .start_node_agent(node, [(WORKER_IMAGE, worker_binary()?)])
                    .await?,
            );
        }
        install_crd(&cluster).await?;
        let client = cluster.client();
        let operator = tokio::spawn(squall_operator::controller::run(
            client.clone(),
            squall_operator::controller::Config {
                workers: squall_operator::resources::WorkerDefaults {
                    image: WORKER_IMAGE.to_owned(),
                    lease_duration_seconds: 4,
                    lease_renew_seconds: 1,
                },
                namespace: Some(NS.to_owned()),
                instance: "test".to_owned(),
                metrics: Default::default(),
            },
        ));
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        eventually(
            "topology Running",
            Duration::from_secs(40),
            cluster.dir(),
            || async { (topos.get("numbers").await.ok()?.status?.phase == Phase::Running).then_some(()) },
        )
        .await?;
        let lost = pods
            .get("numbers-0")
            .await?
            .spec
            .and_then(|s| s.node_name)
            .context("numbers-0 not bound")?;
        let survivor = if lost == "node-a" { "node-b" } else { "node-a" };
        let mut agent = agents.remove(&lost).context("no agent for the node")?;
        agent.lose().await;
        let started = std::time::Instant::now();
        eventually(
            "workers Running on the surviving node",
            Duration::from_secs(50),
            cluster.dir(),
            || async {
                let list = pods
                    .list(&ListParams::default().labels("squall.dev/topology=numbers"))
                    .await
                    .ok()?
                    .items;
                let moved = list.len() == 2
                    && list.iter().all(|p| {
                        pod_ready(p) && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(survivor)
                    });
                let running = topos.get("numbers").await.ok()?.status?.phase == Phase::Running;
                (moved && running).then_some(())
            },
        )
        .await?;
        tracing::info!(
            secs = started.elapsed().as_secs_f64(),
            "workers moved off the lost node"
        );
        let floor = acked(&pods).await.unwrap_or(0);
        wait_acked_beyond(&cluster, &pods, floor).await?;
        operator.abort();
        Ok(())
    })
    .await
}
