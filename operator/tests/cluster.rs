//! The operator against a real control plane (kube-testenv) with worker pods run as local
//! processes by the node agent. Needs `make k8s-bins` and a built `squall-worker`
//! (`make test-operator` does both).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_model::crd::{Phase, Topology};

mod support;

use support::*;

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
        // Transition rules: a component keeps its kind and shell command under its name.
        let immutable: [(Edit, &str); 2] = [
            (
                |t| t.spec.bolts[0].component = "log".into(),
                "component is immutable",
            ),
            (
                |t| {
                    t.spec.bolts[0].shell = Some(squall_model::ShellSpec {
                        command: "python3".into(),
                        args: Vec::new(),
                        env: BTreeMap::new(),
                        working_dir: None,
                        serializer: Default::default(),
                    })
                },
                "shell.command is immutable",
            ),
        ];
        for (make, want) in immutable {
            match edit_topology(&api, "numbers", make).await {
                Err(kube::Error::Api(e)) => {
                    ensure!(e.code == 422, "want 422, got {}: {}", e.code, e.message);
                    ensure!(e.message.contains(want), "want {want:?} in {:?}", e.message);
                }
                Ok(_) => bail!("an in-place change accepted that should fail with {want:?}"),
                Err(e) => bail!("unexpected error {e}"),
            }
        }
        // Other fields (parallelism) change in place.
        edit_topology(&api, "numbers", |t| t.spec.bolts[0].parallelism = 3).await?;
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

/// Worker Lease duration of the healing test: 4 s, or `SQUALL_TEST_LEASE_SECONDS` (e.g. 10,
/// the default in production, to measure recovery with it).
fn lease_seconds() -> u64 {
    std::env::var("SQUALL_TEST_LEASE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s >= 2)
        .unwrap_or(4)
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
        let operator = spawn_operator(&client, lease_seconds(), (lease_seconds() / 4).max(1));
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let created = topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        let uid = created.uid().context("no uid")?;

        let t = wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
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
        let (_, pid) = pod_process(&cluster, &pods, "numbers-0").await?;
        let killed_at = std::time::Instant::now();
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
        ensure!(killed.success(), "kill -9 {pid} failed");
        // The recovery figure of operator/README.md: kill -9 → its tasks ack trees again.
        let took = processing_again(&cluster, &pods, "numbers-0", killed_at).await?;
        println!(
            "RECOVERY kill -9 of a worker -> its tasks processing again: {:.1} s",
            took.as_secs_f64()
        );
        // A target, not a timing assertion: only a generous bound (lease + 5 s, doubled).
        ensure!(
            took < Duration::from_secs(2 * (lease_seconds() + 5)),
            "recovery took {took:?}"
        );
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
        let took = processing_again(&cluster, &pods, "numbers-1", started).await?;
        println!(
            "RECOVERY SIGSTOP of a worker (lease {} s) -> replaced and processing again: {:.1} s",
            lease_seconds(),
            took.as_secs_f64()
        );
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
        edit_topology(&topos, "numbers", |t| t.spec.bolts[0].parallelism = 3).await?;
        eventually(
            "rebalanced and Running",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let s = topos.get("numbers").await.ok()?.status?;
                let manifest = Api::<ConfigMap>::namespaced(client.clone(), NS)
                    .get("numbers-assignment")
                    .await
                    .ok()?
                    .data?
                    .remove("topology.yaml")?;
                // The new plan, loaded and activated (after the drain of the old one).
                (s.phase == Phase::Running
                    && s.assignment_generation > Some(generation)
                    && manifest.contains("parallelism: 3")
                    && !manifest.contains("Inactive"))
                .then_some(())
            },
        )
        .await?;
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
        let _node = start_node_with_operator(&cluster).await?;
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
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(30)).await?;

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
        // Every replica, leading or standby, serves the UI API, and asks for a token.
        eventually(
            "the UI API on both replicas",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let mut refused = 0;
                for p in op_pods.list(&ListParams::default()).await.ok()?.items {
                    let Some(ip) = p.status.and_then(|s| s.pod_ip) else {
                        continue;
                    };
                    let answer = http_get(&format!("{ip}:8081"), "/api/v1/cluster/summary").await;
                    let status = answer.as_deref().and_then(|a| a.split_whitespace().nth(1));
                    refused += usize::from(status == Some("401"));
                }
                (refused >= 2).then_some(())
            },
        )
        .await?;

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
        let operator = spawn_operator(&client, 4, 1);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
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
