//! Minimal-disruption changes and Storm's kill with wait, on the real control plane:
//! deactivate → activate without an engine restart, a rebalance that drains first, a
//! rebalance edited back mid-drain, and a `kubectl delete` that deactivates, lets
//! in-flight trees complete, then removes the workers. Needs `make k8s-bins` and a built
//! `squall-worker` (`make test-operator`).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use kube_testenv::{eventually, TestCluster};
use squall_control::WorkerStatus;
use squall_model::crd::{Phase, Topology};
use squall_model::DesiredState;

mod support;

use support::*;

/// The `/metrics` pages of the `numbers` worker pods that answered.
async fn pages(pods: &Api<Pod>) -> Vec<Vec<squall_worker::prom::Sample>> {
    let Ok(list) = pods
        .list(&ListParams::default().labels("squall.dev/topology=numbers"))
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in list.items {
        let Some(ip) = p.status.and_then(|s| s.pod_ip) else {
            continue;
        };
        if let Some(text) = http_get(&format!("{ip}:9464"), "/metrics").await {
            out.push(squall_worker::prom::parse(&text));
        }
    }
    out
}

/// The `/status` of the `numbers` worker pods that answered, read as the operator reads it.
async fn statuses(pods: &Api<Pod>) -> Vec<WorkerStatus> {
    let Ok(list) = pods
        .list(&ListParams::default().labels("squall.dev/topology=numbers"))
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in list.items {
        let Some(ip) = p.status.and_then(|s| s.pod_ip) else {
            continue;
        };
        if let Ok(s) = squall_operator::probe::status(&format!("{ip}:9464")).await {
            out.push(s);
        }
    }
    out
}

/// Engines started, summed over both workers' statuses; `None` unless both answered.
fn engine_starts(statuses: &[WorkerStatus]) -> Option<u64> {
    (statuses.len() == 2).then(|| statuses.iter().map(|s| s.engine_starts).sum())
}

/// A metric summed over pages, only samples whose `component` label is `component` when
/// one is given.
fn sum(pages: &[Vec<squall_worker::prom::Sample>], name: &str, component: Option<&str>) -> u64 {
    let total: f64 = pages
        .iter()
        .flatten()
        .filter(|s| s.0 == name)
        .filter(|s| component.is_none_or(|c| s.1.get("component").map(String::as_str) == Some(c)))
        .map(|s| s.2)
        .sum();
    total as u64
}

/// Both workers answered, with their spouts in the given state.
fn both_workers(pages: &[Vec<squall_worker::prom::Sample>], active: bool) -> bool {
    pages.len() == 2 && sum(pages, "squall_worker_active", None) == if active { 2 } else { 0 }
}

async fn set_state(topos: &Api<Topology>, state: DesiredState) -> Result<()> {
    edit_topology(topos, "numbers", |t| t.spec.desired_state = state).await?;
    Ok(())
}

async fn set_sink_parallelism(topos: &Api<Topology>, parallelism: i32) -> Result<()> {
    edit_topology(topos, "numbers", |t| t.spec.bolts[0].parallelism = parallelism).await?;
    Ok(())
}

/// Sends `signal` (`-STOP`, `-CONT`) to a worker process.
fn signal(pid: i32, signal: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill {signal} {pid} failed");
    Ok(())
}

#[tokio::test]
async fn activation_is_in_place_rebalance_drains_and_kill_waits_for_trees() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, 4, 1);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let mut t = topology(PIPELINE)?;
        t.spec.kill_wait_seconds = Some(30);
        topos.create(&PostParams::default(), &t).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
        let _ = wait_acked_beyond(&cluster, &pods, 0).await?;
        let first = statuses(&pods).await;
        ensure!(
            engine_starts(&first) == Some(2) && first.iter().all(|s| s.engine_running && s.active),
            "each worker should have started its engine once: {first:?}"
        );

        // Deactivate: spouts stop, in-flight trees complete, the engines keep running.
        set_state(&topos, DesiredState::Inactive).await?;
        eventually(
            "Inactive on both workers",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let phase = topos.get("numbers").await.ok()?.status?.phase;
                (phase == Phase::Inactive && both_workers(&pages(&pods).await, false)).then_some(())
            },
        )
        .await?;
        let quiet = eventually(
            "trees drained",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let p = pages(&pods).await;
                (p.len() == 2 && sum(&p, "squall_worker_in_flight", None) == 0).then_some(p)
            },
        )
        .await?;
        let emitted = sum(&quiet, "squall_emitted_total", Some("numbers"));
        let acked = sum(&quiet, "squall_acked_total", Some("numbers"));
        ensure!(
            emitted > 0 && acked == emitted,
            "emitted {emitted}, acked {acked}"
        );
        ensure!(sum(&quiet, "squall_failed_total", Some("numbers")) == 0);
        // Several reload periods later the spouts have still emitted nothing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let later = pages(&pods).await;
        ensure!(
            later.len() == 2 && sum(&later, "squall_emitted_total", Some("numbers")) == emitted,
            "an inactive spout emitted"
        );
        ensure!(
            engine_starts(&statuses(&pods).await) == Some(2),
            "deactivation restarted an engine"
        );

        // Activate: tuples flow again, still on the same engines.
        set_state(&topos, DesiredState::Active).await?;
        let _ = wait_acked_beyond(&cluster, &pods, acked).await?;
        ensure!(
            engine_starts(&statuses(&pods).await) == Some(2),
            "activation restarted an engine"
        );

        // Rebalance (a parallelism change): deactivate, drain, then the new plan.
        let generation = topos
            .get("numbers")
            .await?
            .status
            .and_then(|s| s.assignment_generation)
            .context("no assignment generation")?;
        edit_topology(&topos, "numbers", |t| t.spec.bolts[0].parallelism = 3).await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        eventually(
            "rebalanced and Running",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let s = topos.get("numbers").await.ok()?.status?;
                let manifest = cms
                    .get("numbers-assignment")
                    .await
                    .ok()?
                    .data?
                    .remove("topology.yaml")?;
                // Deactivated, drained, loaded inactive, activated: three generations on.
                (s.phase == Phase::Running
                    && s.drain_deadline.is_none()
                    && s.assignment_generation >= Some(generation + 3)
                    && manifest.contains("parallelism: 3")
                    && !manifest.contains("Inactive"))
                .then_some(())
            },
        )
        .await?;
        let notes = eventually(
            "rebalance events",
            Duration::from_secs(10),
            cluster.dir(),
            || async {
                let draining = event_notes(&cluster, "numbers", "Draining").await;
                let done = event_notes(&cluster, "numbers", "Rebalanced").await;
                (!draining.is_empty() && !done.is_empty()).then_some((draining, done))
            },
        )
        .await?;
        ensure!(
            notes.0.iter().any(|n| n.contains("spouts deactivated"))
                && notes.1.iter().any(|n| n.contains("in-flight trees drained")),
            "the rebalance did not drain first: {notes:?}"
        );
        let _ = wait_acked_beyond(&cluster, &pods, 0).await?;
        let p = pages(&pods).await;
        ensure!(
            sum(&p, "squall_failed_total", Some("numbers")) == 0,
            "trees failed after the rebalance"
        );

        // Kill with wait: deactivate, drain, then the workers go.
        let deleted = Instant::now();
        topos.delete("numbers", &DeleteParams::default()).await?;
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
        let mut last_quiet: Option<Vec<Vec<squall_worker::prom::Sample>>> = None;
        let mut saw_killing = false;
        loop {
            ensure!(
                deleted.elapsed() < Duration::from_secs(40),
                "topology not gone 40 s after delete"
            );
            if let Ok(Some(t)) = topos.get_opt("numbers").await {
                saw_killing |= t.status.is_some_and(|s| s.phase == Phase::Killing);
            }
            // Drained while the workers were still wanted: the operator's doing, not the
            // workers' own drain on SIGTERM.
            let wanted = sets
                .get_opt("numbers")
                .await?
                .is_some_and(|s| s.metadata.deletion_timestamp.is_none());
            let p = pages(&pods).await;
            if wanted && both_workers(&p, false) && sum(&p, "squall_worker_in_flight", None) == 0 {
                last_quiet = Some(p);
            }
            let gone = topos.get_opt("numbers").await?.is_none()
                && pods
                    .list(&ListParams::default().labels("squall.dev/topology=numbers"))
                    .await?
                    .items
                    .is_empty();
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(secs = deleted.elapsed().as_secs_f64(), "killed with wait");
        ensure!(saw_killing, "phase Killing never seen");
        let quiet = last_quiet.context("the workers were never seen deactivated and drained before going")?;
        let emitted = sum(&quiet, "squall_emitted_total", Some("numbers"));
        let acked = sum(&quiet, "squall_acked_total", Some("numbers"));
        ensure!(
            emitted > 0 && acked == emitted && sum(&quiet, "squall_failed_total", Some("numbers")) == 0,
            "trees lost in the kill: emitted {emitted}, acked {acked}"
        );
        let killed = event_notes(&cluster, "numbers", "Killed").await;
        ensure!(
            killed.iter().any(|n| n.contains("in-flight trees drained")),
            "kill did not wait for the drain: {killed:?}"
        );
        operator.abort();
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_kill_waits_at_most_kill_wait_seconds_for_a_stuck_worker() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, 10, 2);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let mut t = topology(PIPELINE)?;
        t.spec.kill_wait_seconds = Some(6);
        topos.create(&PostParams::default(), &t).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
        let _ = wait_acked_beyond(&cluster, &pods, 0).await?;
        // A worker that answers nothing: it can never report drained.
        let (_, pid) = pod_process(&cluster, &pods, "numbers-1").await?;
        let stopped = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()?;
        ensure!(stopped.success(), "kill -STOP {pid} failed");
        let deleted = Instant::now();
        topos.delete("numbers", &DeleteParams::default()).await?;
        eventually(
            "finalizer released",
            Duration::from_secs(30),
            cluster.dir(),
            || async { topos.get_opt("numbers").await.ok()?.is_none().then_some(()) },
        )
        .await?;
        let waited = deleted.elapsed();
        tracing::info!(secs = waited.as_secs_f64(), "kill wait with a stuck worker");
        // The wait runs from the deletion timestamp (whole seconds), so allow a second less.
        ensure!(
            waited >= Duration::from_secs(5),
            "the kill did not wait for the stuck worker: {waited:?}"
        );
        let killed = event_notes(&cluster, "numbers", "Killed").await;
        ensure!(
            killed.iter().any(|n| n.contains("kill wait passed")),
            "no kill-wait-expired event: {killed:?}"
        );
        // Let the stopped process go, so the node agent can finish it.
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status();
        operator.abort();
        Ok(())
    })
    .await
}

/// A rebalance that cannot drain (a worker stopped, so it never reports) is cancelled by
/// editing the spec back to the running plan: Event `RebalanceCancelled`, no drain
/// deadline, and once the worker runs again the spouts are back on, no engine restarted
/// and no new plan loaded.
#[tokio::test]
async fn a_rebalance_edited_back_mid_drain_is_cancelled() -> Result<()> {
    bounded_for(Duration::from_secs(150), async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        // A Lease long enough for the stopped worker to keep its pod.
        let operator = spawn_operator(&client, 40, 2);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let mut t = topology(PIPELINE)?;
        // A deadline that cannot pass during the test.
        t.spec.message_timeout_seconds = 120;
        let running = t.spec.bolts[0].parallelism;
        topos.create(&PostParams::default(), &t).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
        let _ = wait_acked_beyond(&cluster, &pods, 0).await?;
        eventually(
            "both engines up",
            Duration::from_secs(10),
            cluster.dir(),
            || async { (engine_starts(&statuses(&pods).await) == Some(2)).then_some(()) },
        )
        .await?;

        let (_, pid) = pod_process(&cluster, &pods, "numbers-1").await?;
        signal(pid, "-STOP")?;
        let stopped = async {
            set_sink_parallelism(&topos, running + 1).await?;
            eventually("draining", Duration::from_secs(20), cluster.dir(), || async {
                let s = topos.get("numbers").await.ok()?.status?;
                s.drain_deadline.is_some().then_some(())
            })
            .await?;
            set_sink_parallelism(&topos, running).await?;
            eventually("cancelled", Duration::from_secs(20), cluster.dir(), || async {
                let s = topos.get("numbers").await.ok()?.status?;
                let cancelled = event_notes(&cluster, "numbers", "RebalanceCancelled").await;
                (s.drain_deadline.is_none() && !cancelled.is_empty()).then_some(())
            })
            .await?;
            anyhow::Ok(())
        }
        .await;
        signal(pid, "-CONT")?;
        stopped?;

        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        eventually("active again", Duration::from_secs(30), cluster.dir(), || async {
            let manifest = cms
                .get("numbers-assignment")
                .await
                .ok()?
                .data?
                .remove("topology.yaml")?;
            let p = pages(&pods).await;
            (both_workers(&p, true)
                && !manifest.contains("Inactive")
                && !manifest.contains(&format!("parallelism: {}", running + 1)))
            .then_some(())
        })
        .await?;
        let _ = wait_acked_beyond(&cluster, &pods, acked(&pods).await.unwrap_or(0)).await?;
        ensure!(
            engine_starts(&statuses(&pods).await) == Some(2),
            "the cancelled rebalance restarted an engine"
        );
        let rebalanced = event_notes(&cluster, "numbers", "Rebalanced").await;
        ensure!(rebalanced.is_empty(), "a plan was loaded: {rebalanced:?}");
        operator.abort();
        Ok(())
    })
    .await
}
