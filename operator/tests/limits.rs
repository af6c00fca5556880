//! No manifest can take the operator down: the malformed corpus against the real API
//! server and the operator, and a typo'd Topology next to a healthy one under the chart's
//! operator pods. Needs `make k8s-bins` and a built `squall-worker` (`make test-operator`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_model::crd::{Phase, Topology};

mod support;

use support::*;

#[derive(serde::Deserialize)]
struct Case {
    file: String,
    mistake: String,
    cluster: ClusterExpectation,
}

/// One of the two, as `{refused: …}` or `{operator: …}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// `kubectl apply` fails, saying this.
    refused: Option<String>,
    /// Stored; the operator then fails it with this in `lastError`, or `ok`.
    operator: Option<String>,
}

enum ClusterExpectation {
    Refused(String),
    Operator(String),
}

impl<'de> serde::Deserialize<'de> for ClusterExpectation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Expected::deserialize(d)? {
            Expected {
                refused: Some(r),
                operator: None,
            } => Ok(ClusterExpectation::Refused(r)),
            Expected {
                refused: None,
                operator: Some(o),
            } => Ok(ClusterExpectation::Operator(o)),
            _ => Err(serde::de::Error::custom("want exactly one of refused, operator")),
        }
    }
}

fn corpus_dir() -> PathBuf {
    repo().join("tests/manifests/malformed")
}

fn corpus() -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(corpus_dir().join("expectations.yaml"))?;
    Ok(serde_yaml_ng::from_str(&text)?)
}

/// The `metadata.name` a corpus file would be stored under.
fn stored_name(file: &str) -> String {
    file.trim_end_matches(".yaml")
        .trim_end_matches(".json")
        .to_owned()
}

#[tokio::test]
async fn the_malformed_corpus_is_refused_by_the_api_server_or_failed_by_the_operator() -> Result<()> {
    bounded_for(Duration::from_secs(180), async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, 10, 2);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let cases = corpus()?;
        ensure!(cases.len() >= 15, "the corpus lost its cases");
        let mut stored = Vec::new();
        for case in &cases {
            let out = cluster
                .kubectl()
                .args(["apply", "-n", NS, "-f"])
                .arg(corpus_dir().join(&case.file))
                .output()?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            match &case.cluster {
                ClusterExpectation::Refused(want) => {
                    ensure!(
                        !out.status.success(),
                        "{} ({}) was accepted",
                        case.file,
                        case.mistake
                    );
                    ensure!(
                        stderr.contains(want.as_str()),
                        "{}: want {want:?} in the refusal: {stderr}",
                        case.file
                    );
                    ensure!(
                        topos.get_opt(&stored_name(&case.file)).await?.is_none(),
                        "{}: refused, yet stored",
                        case.file
                    );
                }
                ClusterExpectation::Operator(_) => {
                    ensure!(out.status.success(), "{}: refused: {stderr}", case.file);
                    stored.push(case);
                }
            }
        }
        // Every stored one is judged, the deeply nested ones included: none of them stops
        // the operator from reading the others.
        for case in stored {
            let name = stored_name(&case.file);
            let status = eventually(
                "the operator's verdict",
                Duration::from_secs(30),
                cluster.dir(),
                || async { topos.get(&name).await.ok()?.status },
            )
            .await
            .with_context(|| format!("{}: no status", case.file))?;
            match &case.cluster {
                ClusterExpectation::Operator(want) if want == "ok" => ensure!(
                    status.phase != Phase::Failed,
                    "{}: failed: {:?}",
                    case.file,
                    status.last_error
                ),
                ClusterExpectation::Operator(want) => {
                    let error = status.last_error.unwrap_or_default();
                    ensure!(
                        status.phase == Phase::Failed && error.contains(want.as_str()),
                        "{}: want Failed with {want:?}, got {:?}: {error}",
                        case.file,
                        status.phase
                    );
                }
                ClusterExpectation::Refused(_) => {}
            }
        }
        ensure!(!operator.is_finished(), "the operator stopped");
        operator.abort();
        Ok(())
    })
    .await
}

/// Pid of the process whose environment has `KEY=value`.
fn pid_with_env(key: &str, value: &str) -> Option<i32> {
    let needle = format!("{key}={value}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let env = std::fs::read(e.path().join("environ")).ok()?;
        env.split(|b| *b == 0)
            .any(|kv| kv == needle.as_bytes())
            .then_some(pid)
    })
}

/// Peak resident memory of a process over its life, in KiB.
fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The chart's memory limit for the operator, in KiB (`resources.limits.memory`, Mi).
fn chart_memory_limit_kib() -> Result<u64> {
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        repo().join("charts/squall-operator/values.yaml"),
    )?)?;
    let limit = values["resources"]["limits"]["memory"]
        .as_str()
        .context("resources.limits.memory")?;
    let mib: u64 = limit.trim_end_matches("Mi").parse().context("a limit in Mi")?;
    Ok(mib * 1024)
}

#[tokio::test]
async fn a_typo_costs_its_author_an_error_not_the_cluster_its_operator() -> Result<()> {
    bounded_for(Duration::from_secs(240), async {
        let cluster = TestCluster::start().await?;
        let _node = start_node_with_operator(&cluster).await?;
        // The chart as users install it: two replicas (a leader and a standby), its limits.
        let out = cluster
            .helm()
            .args(["install", "squall"])
            .arg(repo().join("charts/squall-operator"))
            .args(["--namespace", "squall-system", "--create-namespace"])
            .args(["--set", "image.repository=squall/operator,image.tag=test"])
            .args(["--set", &format!("workerImage={WORKER_IMAGE}")])
            .args(["--set", "leaderElection.leaseSeconds=4"])
            .output()?;
        ensure!(
            out.status.success(),
            "helm install: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client = cluster.client();
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let op_pods: Api<Pod> = Api::namespaced(client.clone(), "squall-system");
        eventually(
            "healthy topology created",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                topos
                    .create(&PostParams::default(), &topology(PIPELINE).ok()?)
                    .await
                    .ok()
            },
        )
        .await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
        let operators: Vec<(String, i32)> = op_pods
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter_map(|p| {
                let name = p.name_any();
                Some((name.clone(), pid_with_env("POD_NAME", &name)?))
            })
            .collect();
        ensure!(operators.len() == 2, "operator processes: {operators:?}");

        // The API server refuses the typo with the CRD's bounds, naming the limit.
        let typo = corpus_dir().join("huge-parallelism.yaml");
        let out = cluster.kubectl().args(["create", "-n", NS, "-f"]).arg(&typo).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains("the operator's limit maxParallelism"),
            "the API server took parallelism 100000000: {stderr}"
        );

        // Were the CRD's bounds raised past the operator's own, the operator still refuses
        // it, without allocating for a hundred million executors.
        let raised = std::process::Command::new(env!("CARGO_BIN_EXE_squall-operator"))
            .args(["crd", "--limit", "maxParallelism=2000000000", "--limit", "maxTasks=2000000000"])
            .args(["--limit", "maxTotalTasks=2000000000", "--limit", "maxWorkers=2000000000"])
            .output()?;
        ensure!(raised.status.success(), "squall-operator crd failed");
        let crd_file = cluster.dir().join("raised-crd.yaml");
        std::fs::write(&crd_file, &raised.stdout)?;
        let out = cluster
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(&crd_file)
            .output()?;
        ensure!(out.status.success(), "raised CRD: {}", String::from_utf8_lossy(&out.stderr));
        let mut bad = topology(&std::fs::read_to_string(&typo)?)?;
        bad.metadata.name = Some("typo".into());
        bad.spec.workers = 100_000_000;
        eventually(
            "the raised CRD serves",
            Duration::from_secs(20),
            cluster.dir(),
            || async { topos.create(&PostParams::default(), &bad).await.ok() },
        )
        .await?;
        let status = eventually("typo Failed", Duration::from_secs(30), cluster.dir(), || async {
            let s = topos.get("typo").await.ok()?.status?;
            (s.phase == Phase::Failed).then_some(s)
        })
        .await?;
        let error = status.last_error.unwrap_or_default();
        for want in [
            "spec.spouts[0].parallelism: 100000000 is over the limit of 1024 executors per component (maxParallelism; raise it with the operator's --limit maxParallelism=N (chart value limits.maxParallelism))",
            "spec.workers: 100000000 is over the limit of 256 workers (maxWorkers;",
        ] {
            ensure!(error.contains(want), "lastError lacks {want:?}: {error}");
        }
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
        eventually("InvalidSpec event", Duration::from_secs(10), cluster.dir(), || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("InvalidSpec")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("typo")
                })
                .then_some(())
        })
        .await?;
        ensure!(
            Api::<StatefulSet>::namespaced(client.clone(), NS)
                .get_opt("typo")
                .await?
                .is_none(),
            "the typo got workers"
        );
        // A stored object nested past what JSON readers take does not stop the list either.
        let out = cluster
            .kubectl()
            .args(["apply", "-n", NS, "-f"])
            .arg(corpus_dir().join("deep-json.json"))
            .output()?;
        ensure!(out.status.success(), "deep-json: {}", String::from_utf8_lossy(&out.stderr));

        // The healthy topology is still managed: kill -9 of its worker is healed.
        let before = acked(&pods).await.unwrap_or(0);
        let victim = pods.get("numbers-0").await?;
        let pid = pid_of_pod(&victim.uid().context("pod uid")?).context("worker process not found")?;
        let killed_at = std::time::Instant::now();
        ensure!(std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?
            .success());
        processing_again(&cluster, &pods, "numbers-0", killed_at).await?;
        wait_acked_beyond(&cluster, &pods, before).await?;
        let deep = eventually("deep-json judged", Duration::from_secs(30), cluster.dir(), || async {
            let s = topos.get("deep-json").await.ok()?.status?;
            (s.phase == Phase::Failed).then_some(s)
        })
        .await?;
        ensure!(deep.last_error.unwrap_or_default().contains("nesting depth more than 100"));

        // Both operator processes lived through it, within the chart's memory limit.
        let limit = chart_memory_limit_kib()?;
        for (name, pid) in &operators {
            ensure!(
                pid_with_env("POD_NAME", name) == Some(*pid),
                "operator {name} restarted"
            );
            let peak = peak_rss_kib(*pid).context("operator process gone")?;
            println!("OPERATOR {name} peak RSS {} MiB (limit {} MiB)", peak / 1024, limit / 1024);
            ensure!(peak < limit, "operator {name} peaked at {peak} KiB, over {limit} KiB");
        }
        if op_pods.list(&ListParams::default()).await?.items.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.restart_count > 0))
        }) {
            bail!("an operator container restarted");
        }
        Ok(())
    })
    .await
}
