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

use anyhow::{ensure, Result};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube_testenv::eventually;
use redis_testenv::Counts;
use squall_feed::DataSet;
use squall_model::crd::Topology;

mod support;

use support::wiki::*;
use support::*;

const NAME: &str = "wikipedia-edits";

/// The example reading this feed, replaying soon after a failure.
fn wikipedia(env: &ExampleCluster, feed_url: &str, timeout_s: i64) -> Result<Topology> {
    env.example(
        "topology.yaml",
        timeout_s,
        &[("url", feed_url.into()), ("replay_delay_ms", 10.into())],
    )
}

#[tokio::test]
async fn wikipedia_edits_counts_match_the_replayed_events_even_with_a_worker_killed() -> Result<()> {
    bounded_for(Duration::from_secs(180), async {
        let env = ExampleCluster::start().await?;
        let (cluster, topos, pods) = (&env.cluster, &env.topos, &env.pods);
        let data = DataSet::new(squall_feed::DEFAULT_SEED).with_malformed_every(500);

        // 1. Nothing fails: the counts are exact, each event acked once.
        let n = 5_000;
        let (want, reliable) = expected(&data, n);
        let server = Feed::start(n, 0, data)?;
        let url = server.url()?;
        topos
            .create(&PostParams::default(), &wikipedia(&env, &url, 30)?)
            .await?;
        wait_running(cluster, topos, NAME, Duration::from_secs(30)).await?;
        let got = eventually(
            "exact counts in Redis",
            Duration::from_secs(40),
            cluster.dir(),
            || async {
                let got = env.counts()?;
                (got == want).then_some(got)
            },
        )
        .await;
        ensure!(
            got.is_ok(),
            "counts differ: got {:?}\nwant {want:?}",
            env.counts()
        );
        eventually(
            "every event acked once",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let acked = env.spout_metric(NAME, "squall_acked_total").await?;
                let pending = env.spout_metric(NAME, "squall_pending").await?;
                (acked == reliable && pending == 0).then_some(())
            },
        )
        .await?;
        ensure!(env.spout_metric(NAME, "squall_failed_total").await == Some(0));

        // 2. Again from scratch, slower, with the spout's worker killed -9 mid-run.
        topos.delete(NAME, &DeleteParams::default()).await?;
        eventually(
            "first run gone",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let gone = topos.get_opt(NAME).await.ok()?.is_none()
                    && pods
                        .list(&ListParams::default().labels(&format!("squall.dev/topology={NAME}")))
                        .await
                        .ok()?
                        .items
                        .is_empty();
                gone.then_some(())
            },
        )
        .await?;
        drop(server);
        ensure!(env.redis.command(&["FLUSHALL"])? == redis_testenv::Reply::Status("OK".into()));
        let n = 20_000;
        let (want, _) = expected(&data, n);
        let server = Feed::start(n, 2_000, data)?;
        let url = server.url()?;
        topos
            .create(&PostParams::default(), &wikipedia(&env, &url, 5)?)
            .await?;
        wait_running(cluster, topos, NAME, Duration::from_secs(30)).await?;
        eventually(
            "counting under way",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let c = env.counts()?;
                (c.get("bot")?.values().sum::<u64>() > 2_000).then_some(())
            },
        )
        .await?;
        // The spout's executor is dealt first, to worker 0.
        let (_, pid) = pod_process(cluster, pods, &format!("{NAME}-0")).await?;
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status()?;
        ensure!(killed.success(), "kill -9 {pid} failed");
        let done = eventually(
            "every event counted",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let got = env.counts()?;
                at_least(&got, &want).then_some(got)
            },
        )
        .await;
        let got = match done {
            Ok(got) => got,
            Err(e) => anyhow::bail!("{e}: got {:?}\nwant at least {want:?}", env.counts()),
        };
        let total = |c: &Counts| c.get("bot").map_or(0, |m| m.values().sum::<u64>());
        tracing::info!(
            expected = total(&want),
            counted = total(&got),
            "events counted after a kill -9 (at-least-once)"
        );
        drop(server);
        Ok(())
    })
    .await
}
