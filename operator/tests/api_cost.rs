//! What a running topology costs the API server, read from the kube-apiserver's own
//! `apiserver_request_total` (GET /metrics) on the real control plane.
//!
//! Three worker pods run a topology to `Running` with the in-process operator on the
//! production Lease timing (10 s duration, 2 s renewal). Then the operator is stopped (the
//! workers keep running), so its reconciles, which read the ConfigMap and list the Leases,
//! are not counted, and the counters are sampled over a window (60 s, or
//! `SQUALL_TEST_API_COST_SECONDS`).
//!
//! What is counted: every request the API server served in the window on `configmaps` and
//! `leases`, by verb and scope. The metric has no user label, so besides the workers this
//! includes the control plane's own: its informers re-open a watch every 5-10 minutes, the
//! API server renews its identity Lease (PUT, every 10 s) and the test node agent its node
//! Lease (server-side apply, the workers' verb too, every 2 s). So the workers' Lease
//! writes are counted separately, as the changes a watch on their Leases sees. A watch is
//! counted when it ends: the workers' watches stay open through the window (they are
//! re-opened every 290 s, about 0.2 requests per worker per minute), so the open ones are
//! checked through the `apiserver_longrunning_requests` gauge instead.
//!
//! Asserted: ConfigMap requests ≤ 2 per worker per minute (a GET a second would be 60), one
//! open ConfigMap watch per worker, Lease writes at the configured renewal rate; and a
//! ConfigMap change reaches every worker's files within 1 s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_model::crd::Topology;
use squall_worker::configmap::MANIFEST_KEY;

mod support;

use support::*;

const WORKERS: usize = 3;

/// Lease timing of the workers: the production defaults.
const LEASE_SECONDS: u64 = 10;
const RENEW_SECONDS: u64 = 2;

const SELECTOR: &str = "squall.dev/topology=numbers";

fn window() -> Duration {
    let secs = std::env::var("SQUALL_TEST_API_COST_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| (10..=100).contains(s))
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// `metric{resource, verb, scope}` for configmaps and leases, summed over the other labels
/// (code, group, version).
type Counts = BTreeMap<(String, String, String), f64>;

fn scrape(cluster: &TestCluster, metric: &str) -> Result<Counts> {
    let out = cluster.kubectl().args(["get", "--raw", "/metrics"]).output()?;
    ensure!(
        out.status.success(),
        "GET /metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut counts = Counts::new();
    for (name, labels, value) in squall_worker::prom::parse(&text) {
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        if name != metric || !matches!(label("resource").as_str(), "configmaps" | "leases") {
            continue;
        }
        *counts
            .entry((label("resource"), label("verb"), label("scope")))
            .or_default() += value;
    }
    Ok(counts)
}

/// Open ConfigMap watches, all scopes (one narrowed to a name has scope `resource`).
fn configmap_watches(open: &Counts) -> f64 {
    open.iter()
        .filter(|((r, v, _), _)| r == "configmaps" && v == "WATCH")
        .map(|(_, n)| n)
        .sum()
}

fn per_worker_minute(n: f64, window: Duration) -> f64 {
    n / WORKERS as f64 * 60.0 / window.as_secs_f64()
}

/// Counts the changes of the workers' Leases (one per renewal) until aborted.
fn count_lease_writes(
    leases: Api<Lease>,
    version: String,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<Instant>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let params = WatchParams::default().labels(SELECTOR).timeout(290);
        let Ok(stream) = leases.watch(&params, &version).await else {
            return;
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(event)) = stream.next().await {
            if matches!(event, WatchEvent::Modified(_)) {
                let _ = tx.send(Instant::now());
            }
        }
    });
    (task, rx)
}

/// Stops the operator, then samples the counters over `window`; returns the ConfigMap
/// requests and the workers' Lease writes, per worker per minute.
async fn measure(
    cluster: &TestCluster,
    operator: tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>>,
    watches_before: f64,
    window: Duration,
) -> Result<(f64, f64)> {
    operator.abort();
    let _ = operator.await;
    // Let the operator's closed watches be counted before the window starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leases: Api<Lease> = Api::namespaced(cluster.client(), NS);
    let version = leases
        .list(&ListParams::default().labels(SELECTOR))
        .await?
        .metadata
        .resource_version
        .context("no list version")?;
    let (watch, mut writes) = count_lease_writes(leases, version);

    let before = scrape(cluster, "apiserver_request_total")?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = scrape(cluster, "apiserver_request_total")?;
    let ended = Instant::now();
    let open = scrape(cluster, "apiserver_longrunning_requests")?;
    watch.abort();
    let mut lease_writes = 0.0;
    while let Ok(at) = writes.try_recv() {
        if (started..ended).contains(&at) {
            lease_writes += 1.0;
        }
    }
    let window = ended - started;

    println!(
        "API COST over {:.0} s, {WORKERS} workers, operator stopped; all requests, per worker per minute:",
        window.as_secs_f64()
    );
    let mut configmaps = 0.0;
    for (key @ (resource, verb, scope), n) in &after {
        let delta = n - before.get(key).copied().unwrap_or(0.0);
        if delta > 0.0 {
            println!(
                "API COST   {resource:<10} {verb:<6} {scope:<9} {delta:>4} requests = {:.2}",
                per_worker_minute(delta, window)
            );
        }
        if resource == "configmaps" {
            configmaps += delta;
        }
    }
    let watches = configmap_watches(&open) - watches_before;
    println!("API COST   ConfigMap watches opened since the start and still open: {watches}");
    let configmaps = per_worker_minute(configmaps, window);
    let lease_writes = per_worker_minute(lease_writes, window);
    println!(
        "API COST   ConfigMap requests {configmaps:.2} per worker per minute; Lease writes {lease_writes:.1} per worker per minute (renewal every {RENEW_SECONDS} s)"
    );
    ensure!(
        watches >= WORKERS as f64,
        "{watches} new ConfigMap watches open, want one per worker"
    );
    Ok((configmaps, lease_writes))
}

/// Appends a comment to the manifest in the ConfigMap (the plan stays the same) and
/// returns how long until every worker's manifest file holds it.
async fn change_reaches_workers(client: &kube::Client) -> Result<Duration> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let uids: Vec<String> = pods
        .list(&ListParams::default().labels(SELECTOR))
        .await?
        .items
        .iter()
        .filter_map(ResourceExt::uid)
        .collect();
    ensure!(uids.len() == WORKERS, "worker pods: {uids:?}");
    // The node agent runs pods as local processes sharing the host's /tmp
    // (`SQUALL_ASSIGNMENT` in resources.rs).
    let files: Vec<PathBuf> = uids
        .iter()
        .map(|uid| PathBuf::from(format!("/tmp/squall-{uid}")).join(MANIFEST_KEY))
        .collect();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let mut cm = cms.get("numbers-assignment").await?;
    let manifest = cm
        .data
        .as_mut()
        .and_then(|d| d.get_mut(MANIFEST_KEY))
        .context("no manifest in the ConfigMap")?;
    manifest.push_str("\n# changed by api_cost\n");
    let want = manifest.clone();
    let written = Instant::now();
    cms.replace("numbers-assignment", &PostParams::default(), &cm)
        .await?;
    let arrived = || {
        files
            .iter()
            .all(|f| std::fs::read_to_string(f).ok().as_deref() == Some(want.as_str()))
    };
    // Polled every 10 ms, finer than `eventually`, to measure the delay.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !arrived() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        written.elapsed()
    })
    .await
    .context("the ConfigMap change did not reach every worker in 10 s")
}

#[tokio::test]
async fn workers_follow_their_configmap_for_a_few_requests_a_minute() -> Result<()> {
    let window = window();
    bounded_for(Duration::from_secs(90) + window, async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let watches_before = configmap_watches(&scrape(&cluster, "apiserver_longrunning_requests")?);
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, LEASE_SECONDS, RENEW_SECONDS);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let mut t = topology(PIPELINE)?;
        t.spec.workers = WORKERS as i32;
        topos.create(&PostParams::default(), &t).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(50)).await?;
        // Steady state: every worker renews its Lease.
        let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
        eventually(
            "every worker's Lease",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let n = leases
                    .list(&ListParams::default().labels(SELECTOR))
                    .await
                    .ok()?
                    .items
                    .len();
                (n == WORKERS).then_some(())
            },
        )
        .await?;

        let (configmaps, lease_writes) = measure(&cluster, operator, watches_before, window).await?;
        ensure!(
            configmaps <= 2.0,
            "{configmaps:.2} ConfigMap requests per worker per minute"
        );
        // One write per renewal period (plus the request's own time), not more.
        let configured = 60.0 / RENEW_SECONDS as f64;
        ensure!(
            lease_writes >= configured / 2.0 && lease_writes <= configured + 1.0,
            "{lease_writes:.1} Lease writes per worker per minute, renewal every {RENEW_SECONDS} s"
        );

        let took = change_reaches_workers(&client).await?;
        println!(
            "API COST   a ConfigMap change reached all {WORKERS} workers' files in {} ms",
            took.as_millis()
        );
        ensure!(took < Duration::from_secs(1), "the change took {took:?}");
        Ok(())
    })
    .await
}
