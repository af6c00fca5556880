//! Only what changed restarts. A scale-up from 3 to 4 workers moves the fewest tasks a
//! balanced assignment allows, and only the workers that give tasks up restart their
//! engines (besides the new one starting); then a config change of the sink restarts only
//! the workers hosting the sink. Engine starts are each worker's
//! `squall_worker_engine_starts_total`; trees keep being acked and none fails. Needs
//! `make k8s-bins` and a built `squall-worker` (`make test-operator`); `K8S_KEEP_LOGS=1`
//! keeps the cluster's files, the workers' logs among them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_control::{Assignment, WorkerStatus, ASSIGNMENT_KEY, MANIFEST_KEY, STATUS_PATH};
use squall_model::crd::{Phase, Topology};

mod support;

use support::*;

// Executors in task order: 4 ackers, 2 `numbers`, 2 `sink`, all of one task. Dealt
// round-robin over 3 workers they are 3, 3 and 2 per worker; over 4, two each, so the
// new worker must take 2 tasks and the two workers holding 3 give one each.
const TOPOLOGY: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: numbers}
spec:
  workers: 3
  ackers: 4
  messageTimeoutSeconds: 5
  maxSpoutPending: 200
  pod: {image: squall/worker:test}
  spouts:
    - {name: numbers, component: sequence, parallelism: 2}
  bolts:
    - name: sink
      component: log
      parallelism: 2
      config: {every: 1000000}
      inputs: [{from: numbers}]
"#;

/// The fewest tasks the scale-up can move: the new worker's share (see [`TOPOLOGY`]).
const FEWEST_MOVES: usize = 2;

/// What one worker engine's counters showed at most.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    acked: f64,
    failed: f64,
}

/// Spout counts per engine (pod uid, engine start), sampled while the test runs: a
/// restarted engine starts its counters afresh, so its predecessor's are kept here.
type Ledger = Arc<Mutex<BTreeMap<(String, u64), Counts>>>;

/// `name` (of the `numbers` spout, when `spout`) summed over a /metrics page.
fn sum(samples: &[squall_worker::prom::Sample], name: &str, spout: bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.0 == name)
        .filter(|s| !spout || s.1.get("component").map(String::as_str) == Some("numbers"))
        .map(|s| s.2)
        .sum()
}

/// Samples every worker's spout counts into `ledger` until aborted.
fn sample(pods: Api<Pod>, ledger: Ledger) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let list = pods
                .list(&ListParams::default().labels("squall.dev/topology=numbers"))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for p in list {
                let (Some(uid), Some(ip)) = (p.uid(), p.status.and_then(|s| s.pod_ip)) else {
                    continue;
                };
                let Some(text) = http_get(&format!("{ip}:9464"), "/metrics").await else {
                    continue;
                };
                let samples = squall_worker::prom::parse(&text);
                let starts = sum(&samples, "squall_worker_engine_starts_total", false) as u64;
                if starts == 0 {
                    continue;
                }
                let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
                let c = l.entry((uid, starts)).or_default();
                c.acked = c.acked.max(sum(&samples, "squall_acked_total", true));
                c.failed = c.failed.max(sum(&samples, "squall_failed_total", true));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// A worker's `/status`.
async fn status(ip: &str) -> Option<WorkerStatus> {
    let answer = http_get(&format!("{ip}:9464"), STATUS_PATH).await?;
    serde_json::from_str(answer.split_once("\r\n\r\n")?.1).ok()
}

/// The assignment once it has `workers` workers, a manifest that `wanted` accepts and is
/// active, and every worker runs it with its spouts on; with each worker's status.
async fn settled(
    cluster: &TestCluster,
    client: &kube::Client,
    workers: usize,
    wanted: impl Fn(&str) -> bool,
) -> Result<(Assignment, BTreeMap<String, WorkerStatus>)> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let wanted = &wanted;
    eventually(
        "the assignment applied and active",
        Duration::from_secs(60),
        cluster.dir(),
        || async {
            let data = configmaps.get("numbers-assignment").await.ok()?.data?;
            let manifest = data.get(MANIFEST_KEY)?;
            let a: Assignment = serde_yaml_ng::from_str(data.get(ASSIGNMENT_KEY)?).ok()?;
            if a.workers.len() != workers || !wanted(manifest) || manifest.contains("Inactive") {
                return None;
            }
            let mut statuses = BTreeMap::new();
            for w in &a.workers {
                let ip = pods.get(&w.id).await.ok()?.status?.pod_ip?;
                let s = status(&ip).await?;
                if !s.running(a.generation) || !s.active {
                    return None;
                }
                statuses.insert(w.id.clone(), s);
            }
            Some((a, statuses))
        },
    )
    .await
    .map_err(Into::into)
}

fn starts(statuses: &BTreeMap<String, WorkerStatus>) -> BTreeMap<String, u64> {
    statuses
        .iter()
        .map(|(id, s)| (id.clone(), s.engine_starts))
        .collect()
}

fn tasks(a: &Assignment) -> BTreeMap<String, BTreeSet<u32>> {
    a.workers
        .iter()
        .map(|w| (w.id.clone(), w.tasks.clone()))
        .collect()
}

/// Tasks whose worker differs between `a` and `b`.
fn moved(a: &Assignment, b: &Assignment) -> usize {
    let owners = |x: &Assignment| -> BTreeMap<u32, String> {
        x.workers
            .iter()
            .flat_map(|w| w.tasks.iter().map(|t| (*t, w.id.clone())))
            .collect()
    };
    let (before, after) = (owners(a), owners(b));
    after.iter().filter(|(t, w)| before.get(t) != Some(w)).count()
}

/// Each worker's expected starts: one more where `restarted`, one for a new worker.
fn expected(
    before: &BTreeMap<String, u64>,
    ids: &BTreeSet<String>,
    restarted: &BTreeSet<String>,
) -> BTreeMap<String, u64> {
    ids.iter()
        .map(|id| {
            let was = before.get(id).copied().unwrap_or(0);
            (id.clone(), was + u64::from(restarted.contains(id) || was == 0))
        })
        .collect()
}

#[tokio::test]
async fn a_scale_up_and_a_config_change_restart_only_the_workers_they_change() -> Result<()> {
    bounded_for(Duration::from_secs(240), async {
        let mut cluster = TestCluster::start().await?;
        let result = scenario(&cluster).await;
        if result.is_err() {
            cluster.keep_dir();
        }
        result
    })
    .await
}

async fn scenario(cluster: &TestCluster) -> Result<()> {
    install_crd(cluster).await?;
    let _node = cluster
        .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
        .await?;
    let client = cluster.client();
    let operator = spawn_operator(&client, 4, 1);
    let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    topos.create(&PostParams::default(), &topology(TOPOLOGY)?).await?;
    wait_running(cluster, &topos, "numbers", Duration::from_secs(60)).await?;
    let ledger = Ledger::default();
    let sampler = sample(pods.clone(), Arc::clone(&ledger));
    let original = |m: &str| m.contains("every: 1000000");

    let (a1, s1) = settled(cluster, &client, 3, original).await?;
    let starts1 = starts(&s1);
    ensure!(starts1.values().all(|s| *s == 1), "one engine each: {starts1:?}");
    let floor = acked(&pods).await.unwrap_or(0);
    wait_acked_beyond(cluster, &pods, floor).await?;

    // Scale up: the new worker takes its share from those holding more than theirs.
    edit_topology(&topos, "numbers", |t| t.spec.workers = 4).await?;
    let (a2, s2) = settled(cluster, &client, 4, original).await?;
    let starts2 = starts(&s2);
    let (t1, t2) = (tasks(&a1), tasks(&a2));
    let gave: BTreeSet<String> = t1
        .iter()
        .filter(|(id, t)| t2.get(*id) != Some(t))
        .map(|(id, _)| id.clone())
        .collect();
    let scale_moves = moved(&a1, &a2);
    println!("RESTARTS engine starts per worker: {starts1:?} -> scale-up -> {starts2:?}");
    println!("RESTARTS scale-up moved {scale_moves} tasks (fewest possible {FEWEST_MOVES}); workers that gave tasks up: {gave:?}");
    ensure!(
        scale_moves == FEWEST_MOVES,
        "moved {scale_moves} tasks:\n{t1:?}\n{t2:?}"
    );
    ensure!(
        t1.iter()
            .all(|(id, t)| t2.get(id).is_some_and(|n| n.is_subset(t))),
        "a surviving worker was given tasks:\n{t1:?}\n{t2:?}"
    );
    let ids: BTreeSet<String> = s2.keys().cloned().collect();
    ensure!(
        starts2 == expected(&starts1, &ids, &gave),
        "only the workers whose tasks changed restart: {starts1:?} -> {starts2:?}, changed {gave:?}"
    );
    let floor = acked(&pods).await.unwrap_or(0);
    wait_acked_beyond(cluster, &pods, floor).await?;

    // A config change of the sink: only the workers hosting it restart.
    edit_topology(&topos, "numbers", |t| {
        if let Some(sink) = t.spec.bolts.iter_mut().find(|b| b.name == "sink") {
            sink.config.insert("every".into(), 2_000_000.into());
        }
    })
    .await?;
    let (a3, s3) = settled(cluster, &client, 4, |m| m.contains("every: 2000000")).await?;
    let starts3 = starts(&s3);
    ensure!(tasks(&a3) == t2, "a config change moved tasks");
    let manifest = squall_model::TopologyManifest::from_yaml(TOPOLOGY, "t")?;
    let plan = squall_model::validate(&manifest, &squall_catalog::BuiltinKinds)?;
    let sink = &plan.component("sink").context("no sink")?.tasks;
    let hosts: BTreeSet<String> = a3
        .workers
        .iter()
        .filter(|w| sink.iter().any(|t| w.tasks.contains(t)))
        .map(|w| w.id.clone())
        .collect();
    println!(
        "RESTARTS engine starts per worker: {starts2:?} -> sink config change -> {starts3:?}; sink on {hosts:?}"
    );
    ensure!(
        starts3 == expected(&starts2, &ids, &hosts),
        "only the sink's workers restart: {starts2:?} -> {starts3:?}, sink on {hosts:?}"
    );
    let floor = acked(&pods).await.unwrap_or(0);
    wait_acked_beyond(cluster, &pods, floor).await?;

    sampler.abort();
    let counts: Vec<Counts> = ledger
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .copied()
        .collect();
    let (acked, failed) = counts
        .iter()
        .fold((0.0, 0.0), |(a, f), c| (a + c.acked, f + c.failed));
    println!(
        "RESTARTS trees acked {acked}, failed {failed}, over {} engines",
        counts.len()
    );
    ensure!(failed == 0.0, "{failed} trees failed");
    ensure!(
        topos.get("numbers").await?.status.map(|s| s.phase) == Some(Phase::Running),
        "not Running at the end"
    );
    operator.abort();
    Ok(())
}
