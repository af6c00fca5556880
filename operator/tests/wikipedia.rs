//! The Wikipedia-edits example (examples/wikipedia-edits/topology.yaml) run by the
//! operator on two worker pods, fed by the bundled edit feed (in process) and counting into
//! a real redis-server, both on loopback.
//!
//! What "the counts match" means:
//! - with nothing failing, exactly: every sorted-set member's score in Redis equals the
//!   count computed from the data set (`squall_feed::talk_keys`, written independently of
//!   the `json-keys` bolt), and the spout acked each reliable event once;
//! - with a worker killed mid-run (at-least-once), every event is still counted: every
//!   member is present with a score at least the expected one, and no member appears that
//!   the data set does not have. Scores may exceed it: a replayed tree recounts the keys
//!   of the events it carried (Storm's guarantee, without exactly-once state).
//!
//! Needs `make k8s-bins`, a built `squall-worker` and redis-server (`make test-operator`).

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use squall_feed::DataSet;
use squall_model::crd::{Phase, Topology};
use squall_model::TopologyManifest;

mod support;

use support::wiki::*;
use support::*;

/// The example with the feed's and Redis's addresses, two workers and the test image.
fn wikipedia(feed_url: &str, redis_port: u16, timeout_s: i64) -> Result<Topology> {
    let mut m = TopologyManifest::from_file(&repo().join("examples/wikipedia-edits/topology.yaml"))?;
    m.spec.workers = 2;
    m.spec.message_timeout_seconds = timeout_s;
    m.spec.pod = Some(squall_model::PodSettings {
        image: Some(WORKER_IMAGE.into()),
        ..Default::default()
    });
    let spout = m.spec.spouts.first_mut().context("no spout")?;
    spout.config.insert("url".into(), feed_url.into());
    spout.config.insert("replay_delay_ms".into(), 10.into());
    let counts = m
        .spec
        .bolts
        .iter_mut()
        .find(|b| b.name == "counts")
        .context("no counts bolt")?;
    counts
        .config
        .insert("url".into(), format!("redis://127.0.0.1:{redis_port}").into());
    let mut t = Topology::new(&m.metadata.name, m.spec);
    t.metadata.namespace = Some(NS.into());
    Ok(t)
}

/// A metric of the `edits` spout summed over the worker pods.
async fn spout_metric(pods: &Api<Pod>, name: &str) -> Option<u64> {
    let list = pods
        .list(&ListParams::default().labels("squall.dev/topology=wikipedia-edits"))
        .await
        .ok()?;
    let mut total = 0.0;
    for p in list.items {
        let ip = p.status.and_then(|s| s.pod_ip)?;
        let text = http_get(&format!("{ip}:9464"), "/metrics").await?;
        total += squall_worker::prom::parse(&text)
            .iter()
            .filter(|s| s.0 == name && s.1.get("component").map(String::as_str) == Some("edits"))
            .map(|s| s.2)
            .sum::<f64>();
    }
    Some(total as u64)
}

async fn wait_running(cluster: &TestCluster, topos: &Api<Topology>) -> Result<()> {
    eventually(
        "wikipedia-edits Running",
        Duration::from_secs(30),
        cluster.dir(),
        || async { (topos.get("wikipedia-edits").await.ok()?.status?.phase == Phase::Running).then_some(()) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn wikipedia_edits_counts_match_the_replayed_events_even_with_a_worker_killed() -> Result<()> {
    bounded_for(Duration::from_secs(180), async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, 4, 1);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let redis = Redis::start(cluster.dir())?;
        let data = DataSet::new(squall_feed::DEFAULT_SEED).with_malformed_every(500);

        // 1. Nothing fails: the counts are exact, each event acked once.
        let n = 5_000;
        let (want, reliable) = expected(&data, n);
        let server = Feed::start(n, 0, data)?;
        let url = server.url()?;
        topos
            .create(&PostParams::default(), &wikipedia(&url, redis.port, 30)?)
            .await?;
        wait_running(&cluster, &topos).await?;
        let got = eventually(
            "exact counts in Redis",
            Duration::from_secs(40),
            cluster.dir(),
            || async {
                let got = redis.counts()?;
                (got == want).then_some(got)
            },
        )
        .await;
        ensure!(
            got.is_ok(),
            "counts differ: got {:?}\nwant {want:?}",
            redis.counts()
        );
        eventually(
            "every event acked once",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let acked = spout_metric(&pods, "squall_acked_total").await?;
                let pending = spout_metric(&pods, "squall_pending").await?;
                (acked == reliable && pending == 0).then_some(())
            },
        )
        .await?;
        ensure!(spout_metric(&pods, "squall_failed_total").await == Some(0));

        // 2. Again from scratch, slower, with the spout's worker killed -9 mid-run.
        topos.delete("wikipedia-edits", &DeleteParams::default()).await?;
        eventually(
            "first run gone",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let gone = topos.get_opt("wikipedia-edits").await.ok()?.is_none()
                    && pods
                        .list(&ListParams::default().labels("squall.dev/topology=wikipedia-edits"))
                        .await
                        .ok()?
                        .items
                        .is_empty();
                gone.then_some(())
            },
        )
        .await?;
        drop(server);
        ensure!(redis.cli(&["FLUSHALL"]).as_deref() == Some("OK"));
        let n = 20_000;
        let (want, _) = expected(&data, n);
        let server = Feed::start(n, 2_000, data)?;
        let url = server.url()?;
        topos
            .create(&PostParams::default(), &wikipedia(&url, redis.port, 5)?)
            .await?;
        wait_running(&cluster, &topos).await?;
        eventually(
            "counting under way",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let c = redis.counts()?;
                (c.get("bot")?.values().sum::<u64>() > 2_000).then_some(())
            },
        )
        .await?;
        // The spout's executor is dealt first, to worker 0.
        let victim = pods.get("wikipedia-edits-0").await?;
        let uid = victim.uid().context("pod uid")?;
        let pid = pid_of_pod(&uid).context("worker process not found")?;
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status()?;
        ensure!(killed.success(), "kill -9 {pid} failed");
        let done = eventually(
            "every event counted",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let got = redis.counts()?;
                at_least(&got, &want).then_some(got)
            },
        )
        .await;
        let got = match done {
            Ok(got) => got,
            Err(e) => anyhow::bail!("{e}: got {:?}\nwant at least {want:?}", redis.counts()),
        };
        let total = |c: &Counts| c.get("bot").map_or(0, |m| m.values().sum::<u64>());
        tracing::info!(
            expected = total(&want),
            counted = total(&got),
            "events counted after a kill -9 (at-least-once)"
        );
        drop(server);
        operator.abort();
        Ok(())
    })
    .await
}
