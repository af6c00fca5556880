//! A control-plane outage must not restart healthy workers: the kube-apiserver is paused
//! (SIGSTOP) for longer than the worker Lease, the data plane keeps processing, and when
//! the server returns no healthy worker is replaced, while one that really hung during the
//! outage is. Needs `make k8s-bins` and a built `squall-worker` (`make test-operator`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_model::crd::Topology;

mod support;

use support::*;

const LEASE: u64 = 4;

/// `name` summed over one worker's /metrics page.
async fn metric(ip: &str, name: &str) -> Option<f64> {
    let text = http_get(&format!("{ip}:9464"), "/metrics").await?;
    let sum = squall_worker::prom::parse(&text)
        .iter()
        .filter(|s| s.0 == name)
        .map(|s| s.2)
        .sum();
    Some(sum)
}

/// Trees acked at the spouts, read from the workers themselves (the API server is away).
async fn acked_at(ips: &[String]) -> f64 {
    let mut total = 0.0;
    for ip in ips {
        total += metric(ip, "squall_acked_total").await.unwrap_or(0.0);
    }
    total
}

fn signal(pid: impl std::fmt::Display, sig: &str) -> Result<()> {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?
        .success();
    ensure!(ok, "kill {sig} {pid} failed");
    Ok(())
}

#[tokio::test]
async fn an_api_server_outage_longer_than_the_lease_replaces_only_the_worker_that_died() -> Result<()> {
    bounded_for(Duration::from_secs(150), async {
        let cluster = TestCluster::start().await?;
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        install_crd(&cluster).await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, LEASE, 1);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
        let _ = wait_acked_beyond(&cluster, &pods, 0).await?;

        let mut before: BTreeMap<String, (String, String, f64)> = BTreeMap::new();
        for name in ["numbers-0", "numbers-1"] {
            let p = pods.get(name).await?;
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .context("pod ip")?;
            let starts = metric(&ip, "squall_worker_engine_starts_total")
                .await
                .context("engine starts")?;
            before.insert(name.to_owned(), (p.uid().context("uid")?, ip, starts));
        }
        let ips: Vec<String> = before.values().map(|v| v.1.clone()).collect();
        let hung_pid = pid_of_pod(&before["numbers-1"].0).context("numbers-1's process")?;

        // Pause the API server for three lease durations.
        let apiserver = cluster.pid_of("kube-apiserver").context("kube-apiserver pid")?;
        let acked_before = acked_at(&ips).await;
        signal(apiserver, "-STOP")?;
        let paused = Instant::now();
        tokio::time::sleep(Duration::from_secs(LEASE + 1)).await;
        let acked_during = acked_at(&ips).await;
        // One worker really hangs during the outage.
        signal(hung_pid, "-STOP")?;
        tokio::time::sleep(Duration::from_secs(3 * LEASE).saturating_sub(paused.elapsed())).await;
        signal(apiserver, "-CONT")?;
        let back = Instant::now();
        println!(
            "OUTAGE kube-apiserver paused {:.1} s",
            paused.elapsed().as_secs_f64()
        );
        ensure!(
            acked_during > acked_before + 100.0,
            "the data plane stalled with the API server: {acked_before} -> {acked_during}"
        );

        // The hung worker is replaced within the lease and some seconds of the return.
        let hung_uid = before["numbers-1"].0.clone();
        eventually(
            "numbers-1 replaced",
            Duration::from_secs(3 * (LEASE + 5)),
            cluster.dir(),
            || async {
                let p = pods.get("numbers-1").await.ok()?;
                (p.uid()? != hung_uid && pod_ready(&p)).then_some(())
            },
        )
        .await?;
        let took = back.elapsed();
        println!(
            "OUTAGE hung worker replaced {:.1} s after the API server returned",
            took.as_secs_f64()
        );
        ensure!(
            took < Duration::from_secs(2 * (LEASE + 5)),
            "replacing the hung worker took {took:?}"
        );
        // The healthy one was kept: same pod, same engine, and it processes.
        let kept = pods.get("numbers-0").await?;
        ensure!(
            kept.uid().as_deref() == Some(before["numbers-0"].0.as_str()),
            "the healthy worker's pod was recreated"
        );
        let _ = wait_acked_beyond(&cluster, &pods, acked_during as u64).await?;
        let ip = &before["numbers-0"].1;
        let starts = metric(ip, "squall_worker_engine_starts_total")
            .await
            .context("starts")?;
        ensure!(
            starts == before["numbers-0"].2,
            "the healthy worker's engine restarted: {} -> {starts}",
            before["numbers-0"].2
        );
        let _ = signal(hung_pid, "-KILL");
        ensure!(!operator.is_finished(), "the operator stopped");
        operator.abort();
        Ok(())
    })
    .await
}
