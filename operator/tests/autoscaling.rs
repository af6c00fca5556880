//! The autoscaler on a real control plane. A websocket spout reads the bundled edit feed
//! into a bolt that costs 4 ms a tuple (`identity` with `cost_micros`), so one executor
//! takes about 240 tuples/s:
//! - step up: at 600 tuples/s the feed's backlog grows at the spout; the operator raises
//!   the bolt's parallelism until the backlog is gone and the complete latency is stable;
//! - step down: at 100 tuples/s it lowers it again, not before the scale-down delay;
//! - throughout, every engine's spout trees are all acked (acked = emitted once drained),
//!   none fails, and every rebalance drained its trees before the new plan;
//! - the rebalances stay within what the stabilization interval allows;
//! - in metrics-only mode the same load is recommended for, told in an Event and the
//!   status, and nothing changes.
//!
//! The measured times and rebalance counts are printed (`--nocapture`) and written up in
//! operator/README.md. Needs `make k8s-bins` and a built `squall-worker`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_feed::DataSet;
use squall_model::crd::{ComponentAutoscalerStatus, Phase, Topology};

mod support;

use support::wiki::Feed;
use support::*;

const NAME: &str = "edits";
/// Seconds, as in the topology below.
const STABILIZATION: u64 = 15;
const SCALE_DOWN_DELAY: u64 = 12;
const HIGH_RATE: u64 = 600;
const LOW_RATE: u64 = 100;

fn manifest(url: &str, metrics_only: bool) -> Result<Topology> {
    topology(&format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {NAME}}}
spec:
  workers: 2
  messageTimeoutSeconds: 30
  maxSpoutPending: 1000
  pod: {{image: squall/worker:test}}
  spouts:
    - name: feed
      component: websocket
      config: {{url: "{url}", channel_capacity: 4000, retry_buffer: 2000, replay_delay_ms: 10}}
  bolts:
    - name: costly
      component: identity
      config: {{fields: [event], cost_micros: 4000}}
      inputs: [{{from: feed}}]
    - name: sink
      component: "null"
      inputs: [{{from: costly}}]
  autoscaling:
    enabled: true
    metricsOnly: {metrics_only}
    maxParallelism: 8
    metricsWindowSeconds: 8
    stabilizationIntervalSeconds: {STABILIZATION}
    scaleDownDelaySeconds: {SCALE_DOWN_DELAY}
    catchUpDurationSeconds: 20
"#
    ))
}

/// What one spout engine's counters showed at most.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Engine {
    emitted: f64,
    acked: f64,
    failed: f64,
}

/// Spout counts per engine (pod uid, engine start): a restarted engine starts its counters
/// afresh, so its predecessor's are kept here.
type Ledger = Arc<Mutex<BTreeMap<(String, u64), Engine>>>;

/// `name` of component `component` (any, when `None`) summed over a /metrics page.
fn sum(samples: &[squall_worker::prom::Sample], name: &str, component: Option<&str>) -> f64 {
    samples
        .iter()
        .filter(|s| s.0 == name)
        .filter(|s| component.is_none() || s.1.get("component").map(String::as_str) == component)
        .map(|s| s.2)
        .sum()
}

/// Every worker's /metrics page, parsed.
async fn pages(pods: &Api<Pod>) -> Vec<(String, Vec<squall_worker::prom::Sample>)> {
    let list = pods
        .list(&ListParams::default().labels(&format!("squall.dev/topology={NAME}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in list {
        let (Some(uid), Some(ip)) = (p.uid(), p.status.and_then(|s| s.pod_ip)) else {
            continue;
        };
        if let Some(text) = http_get(&format!("{ip}:9464"), "/metrics").await {
            out.push((uid, squall_worker::prom::parse(&text)));
        }
    }
    out
}

/// Samples every worker's spout counts into `ledger` until aborted.
fn sample(pods: Api<Pod>, ledger: Ledger) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for (uid, samples) in pages(&pods).await {
                let starts = sum(&samples, "squall_worker_engine_starts_total", None) as u64;
                if starts == 0
                    || !samples
                        .iter()
                        .any(|s| s.1.get("component").map(String::as_str) == Some("feed"))
                {
                    continue;
                }
                let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
                let e = l.entry((uid, starts)).or_default();
                e.emitted = e.emitted.max(sum(&samples, "squall_emitted_total", Some("feed")));
                e.acked = e.acked.max(sum(&samples, "squall_acked_total", Some("feed")));
                e.failed = e.failed.max(sum(&samples, "squall_failed_total", Some("feed")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// The spout's source backlog and its complete latency (sum s, count), over the workers.
async fn spout_now(pods: &Api<Pod>) -> (f64, f64, f64) {
    let mut out = (0.0, 0.0, 0.0);
    for (_, s) in pages(pods).await {
        out.0 += sum(&s, "squall_source_backlog", Some("feed"));
        out.1 += sum(&s, "squall_complete_latency_seconds_sum", Some("feed"));
        out.2 += sum(&s, "squall_complete_latency_seconds_count", Some("feed"));
    }
    out
}

fn costly(t: &Topology) -> Option<ComponentAutoscalerStatus> {
    t.status
        .as_ref()?
        .autoscaler
        .as_ref()?
        .components
        .iter()
        .find(|c| c.name == "costly")
        .cloned()
}

fn parallelism(t: &Topology) -> i32 {
    t.spec
        .bolts
        .iter()
        .find(|b| b.name == "costly")
        .map_or(0, |b| b.parallelism)
}

fn rebalances(t: &Topology) -> i64 {
    t.status
        .as_ref()
        .and_then(|s| s.autoscaler.as_ref())
        .map_or(0, |a| a.rebalances)
}

/// Running the spec's own generation, no drain under way.
fn settled(t: &Topology) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.phase == Phase::Running
            && s.drain_deadline.is_none()
            && s.observed_generation == t.metadata.generation
    })
}

/// Waits until the costly bolt's parallelism satisfies `wanted`, the plan runs and the
/// spout's backlog is below 200; returns the topology.
async fn converged(
    cluster: &TestCluster,
    topos: &Api<Topology>,
    pods: &Api<Pod>,
    what: &str,
    wanted: impl Fn(i32) -> bool,
) -> Result<Topology> {
    let wanted = &wanted;
    Ok(
        eventually(what, Duration::from_secs(120), cluster.dir(), || async {
            let t = topos.get(NAME).await.ok()?;
            if !(settled(&t) && wanted(parallelism(&t))) {
                return None;
            }
            let c = costly(&t)?;
            let (backlog, _, _) = spout_now(pods).await;
            (c.current == parallelism(&t) && backlog < 200.0).then_some(t)
        })
        .await?,
    )
}

/// Mean complete latency of the spout's trees over `span`, s.
async fn mean_latency(pods: &Api<Pod>, span: Duration) -> f64 {
    let (_, s0, n0) = spout_now(pods).await;
    tokio::time::sleep(span).await;
    let (_, s1, n1) = spout_now(pods).await;
    if n1 > n0 {
        (s1 - s0) / (n1 - n0)
    } else {
        f64::NAN
    }
}

#[tokio::test]
async fn the_operator_sizes_a_costly_bolt_up_and_down_with_every_tree_acked() -> Result<()> {
    bounded_for(Duration::from_secs(300), async {
        let (cluster, _agent, operator) = cluster_with_operator_leased(4, 1).await?;
        let client = cluster.client();
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let feed = Feed::start(u64::MAX, HIGH_RATE, DataSet::new(squall_feed::DEFAULT_SEED))?;
        let ledger = Ledger::default();
        let sampler = sample(pods.clone(), Arc::clone(&ledger));

        topos.create(&PostParams::default(), &manifest(&feed.url()?, false)?).await?;
        let running = wait_running(&cluster, &topos, NAME, Duration::from_secs(60)).await?;
        let generation0 = running.metadata.generation.unwrap_or(0);
        let start = Instant::now();

        // 1. Step up: 600/s into about 240/s per executor.
        let up = converged(&cluster, &topos, &pods, "scaled up, backlog gone", |p| p >= 3).await?;
        let up_time = start.elapsed();
        let up_rebalances = rebalances(&up);
        let l1 = mean_latency(&pods, Duration::from_secs(3)).await;
        let l2 = mean_latency(&pods, Duration::from_secs(3)).await;
        let after = topos.get(NAME).await?;
        println!(
            "step up: parallelism 1 -> {} in {:.1} s with {up_rebalances} rebalances; complete latency {:.0} ms, then {:.0} ms",
            parallelism(&up),
            up_time.as_secs_f64(),
            l1 * 1e3,
            l2 * 1e3
        );
        ensure!(
            l1 < 2.0 && l2 < 2.0 && (l1 - l2).abs() <= 0.5 * l1.max(l2) + 0.05,
            "complete latency not stable: {l1} s then {l2} s"
        );
        ensure!(parallelism(&after) == parallelism(&up), "changed again while stable");
        let allowed = 1 + (up_time.as_secs() / STABILIZATION) as i64;
        ensure!(
            up_rebalances >= 1 && up_rebalances <= allowed,
            "{up_rebalances} rebalances in {up_time:?}; the stabilization interval allows {allowed}"
        );
        let notes = event_notes(&cluster, NAME, "Autoscaled").await;
        ensure!(
            notes.iter().any(|n| n.starts_with("costly: parallelism 1 -> ")),
            "no Autoscaled event for the step up: {notes:?}"
        );
        let c = costly(&up).context("no status for costly")?;
        ensure!(c.true_rate.is_some_and(|r| r > 100 && r < 400), "true rate {:?}", c.true_rate);

        // 2. Step down: 100/s; applied no sooner than the scale-down delay.
        feed.set_rate(LOW_RATE);
        let dropped = Instant::now();
        let high = parallelism(&up);
        let down = converged(&cluster, &topos, &pods, "scaled down", |p| p < high).await?;
        let down_time = dropped.elapsed();
        let down_rebalances = rebalances(&down) - up_rebalances;
        println!(
            "step down: parallelism {high} -> {} in {:.1} s with {down_rebalances} rebalances",
            parallelism(&down),
            down_time.as_secs_f64()
        );
        ensure!(down_time >= Duration::from_secs(SCALE_DOWN_DELAY), "scaled down after {down_time:?}");
        let allowed = 1 + (down_time.as_secs() / STABILIZATION) as i64;
        ensure!(down_rebalances >= 1 && down_rebalances <= allowed, "{down_rebalances} rebalances");
        let specs = down.metadata.generation.unwrap_or(0) - generation0;
        ensure!(
            specs == rebalances(&down),
            "{specs} spec changes, but the autoscaler counted {} rebalances",
            rebalances(&down)
        );

        let yielded = event_notes(&cluster, NAME, "AutoscalerYielded").await;
        ensure!(yielded.is_empty(), "its own changes taken for its user's: {yielded:?}");

        // 3. Every rebalance drained first; no tree failed; once deactivated and drained,
        // every engine acked what it emitted.
        let notes = event_notes(&cluster, NAME, "Rebalanced").await;
        ensure!(
            !notes.is_empty() && notes.iter().all(|n| n.contains("in-flight trees drained")),
            "a rebalance did not drain: {notes:?}"
        );
        topos
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"desiredState": "Inactive"}})),
            )
            .await?;
        eventually("deactivated and drained", Duration::from_secs(60), cluster.dir(), || async {
            let t = topos.get(NAME).await.ok()?;
            let l = ledger.lock().ok()?.clone();
            let quiet = t.status?.phase == Phase::Inactive
                && spout_pending(&pods).await == Some(0)
                && l.values().all(|e| e.emitted == e.acked);
            quiet.then_some(())
        })
        .await?;
        sampler.abort();
        let l = ledger.lock().unwrap_or_else(|e| e.into_inner()).clone();
        ensure!(l.len() >= 2, "engines seen: {l:?}");
        ensure!(
            l.values().all(|e| e.failed == 0.0 && e.emitted == e.acked),
            "an engine failed a tree or left some unacked: {l:?}"
        );
        let emitted: f64 = l.values().map(|e| e.emitted).sum();
        println!("{} spout engines, {emitted} trees emitted and acked, none failed", l.len());
        operator.abort();
        Ok(())
    })
    .await
}

/// Trees in flight at the spout, over the workers.
async fn spout_pending(pods: &Api<Pod>) -> Option<u64> {
    let p = pages(pods).await;
    (!p.is_empty()).then(|| {
        p.iter()
            .map(|(_, s)| sum(s, "squall_pending", Some("feed")) as u64)
            .sum()
    })
}

#[tokio::test]
async fn metrics_only_recommends_and_changes_nothing() -> Result<()> {
    bounded_for(Duration::from_secs(180), async {
        let (cluster, _agent, operator, metrics) = cluster_with_metered_operator((4, 1)).await?;
        let client = cluster.client();
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let feed = Feed::start(u64::MAX, HIGH_RATE, DataSet::new(squall_feed::DEFAULT_SEED))?;
        topos
            .create(&PostParams::default(), &manifest(&feed.url()?, true)?)
            .await?;
        let running = wait_running(&cluster, &topos, NAME, Duration::from_secs(60)).await?;
        let assignment = running.status.as_ref().and_then(|s| s.assignment_generation);
        let recommended = eventually(
            "a recommendation",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let t = topos.get(NAME).await.ok()?;
                let c = costly(&t)?;
                (c.last_decision == "Recommended" && c.recommended > 1).then_some(c)
            },
        )
        .await?;
        let notes = eventually(
            "a ScalingRecommended event",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let n = event_notes(&cluster, NAME, "ScalingRecommended").await;
                (!n.is_empty()).then_some(n)
            },
        )
        .await?;
        ensure!(
            notes.iter().any(|n| n.starts_with("costly: parallelism 1 -> ")),
            "{notes:?}"
        );
        // Longer than a stabilization interval: still nothing changed.
        tokio::time::sleep(Duration::from_secs(STABILIZATION + 3)).await;
        let t = topos.get(NAME).await?;
        let status = t.status.clone().context("no status")?;
        let a = status.autoscaler.clone().context("no autoscaler status")?;
        println!(
            "metrics only: recommended {} for costly ({:?}%, true rate {:?}/s)",
            recommended.recommended, recommended.utilization_percent, recommended.true_rate
        );
        ensure!(a.mode == "MetricsOnly" && a.rebalances == 0, "{a:?}");
        ensure!(parallelism(&t) == 1, "the spec changed: {:?}", t.spec.bolts);
        ensure!(
            t.metadata.generation == running.metadata.generation,
            "the spec changed"
        );
        ensure!(
            status.assignment_generation == assignment,
            "the assignment changed"
        );
        ensure!(
            event_notes(&cluster, NAME, "Autoscaled").await.is_empty(),
            "autoscaled in metrics-only mode"
        );
        // The operator's /metrics page carries the recommendation too.
        let page = metrics.render();
        let line = |name: &str| {
            page.lines()
                .find(|l| {
                    l.starts_with(&format!("squall_operator_autoscaler_{name}{{"))
                        && l.contains(r#"component="costly""#)
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        ensure!(line("parallelism") == Some(1.0), "{page}");
        ensure!(line("recommended_parallelism").is_some_and(|r| r > 1.0), "{page}");
        ensure!(line("true_rate").is_some_and(|r| r > 0.0), "{page}");
        ensure!(
            page.lines()
                .any(|l| l.starts_with("squall_operator_autoscaler_rebalances_total{") && l.ends_with(" 0")),
            "{page}"
        );
        ensure!(
            page.lines().any(
                |l| l.starts_with("squall_operator_autoscaler_recommendations_total{") && !l.ends_with(" 0")
            ),
            "{page}"
        );
        operator.abort();
        Ok(())
    })
    .await
}
