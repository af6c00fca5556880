//! The Wikipedia example's Kafka topology (examples/wikipedia-edits/topology-kafka.yaml,
//! exactly-once counts) run by the operator on two worker pods, reading a real broker
//! (kafka-testenv) and counting into a real redis-server, both on loopback:
//!
//! - a worker pod's process killed -9 mid-stream: the node agent restarts it, the
//!   replays are counted once, and the sorted sets equal the data set's counts exactly;
//! - then two rebalances (the parser's, then the spout's parallelism changed in the
//!   Topology spec: the operator deactivates, drains and applies the new plan), each
//!   while a batch is counted: exact again.
//!
//! Needs `make k8s-bins`, a built `squall-worker`, redis-server and the Kafka jars
//! (`make test-operator`).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use kube_testenv::eventually;
use redis_testenv::Counts;
use squall_feed::{expected_counts, talk_keys, DataSet, DEFAULT_SEED};
use squall_kafka::feed::{publish_edits, Publish};
use squall_model::crd::{Phase, Topology};

mod support;

use support::*;

const NAME: &str = "wikipedia-edits-kafka";
const TOPIC: &str = "edits";

/// The data set's counts of edits `0..n`.
fn expected(n: u64) -> Counts {
    let data = DataSet::new(DEFAULT_SEED);
    let keys: Vec<String> = (0..n).flat_map(|i| talk_keys(&data.edit(i))).collect();
    expected_counts(keys.iter().map(String::as_str))
}

fn counted(c: &Counts) -> u64 {
    c.get("bot").map_or(0, |m| m.values().sum())
}

/// Publishes edits `from..from+count` at `rate` per second on a thread of its own.
fn publish(bootstrap: &str, from: u64, count: u64, rate: u64) -> std::thread::JoinHandle<Result<u64>> {
    let p = Publish {
        bootstrap: bootstrap.to_owned(),
        topic: TOPIC.to_owned(),
        rate,
        count: Some(count),
        from,
    };
    std::thread::spawn(move || {
        Ok(publish_edits(
            &p,
            &DataSet::new(DEFAULT_SEED),
            &AtomicBool::new(false),
        )?)
    })
}

/// The example against this broker: offsets committed and retries capped often enough
/// for a test.
fn topology(env: &ExampleCluster, bootstrap: &str) -> Result<Topology> {
    env.example(
        "topology-kafka.yaml",
        5,
        &[
            ("bootstrap_servers", bootstrap.into()),
            ("offset_commit_period_ms", 500.into()),
            ("retry_max_delay_ms", 1000.into()),
        ],
    )
}

/// The components with executors on pod `name`.
async fn hosted(pods: &Api<Pod>, name: &str) -> Option<Vec<String>> {
    let ip = pods.get(name).await.ok()?.status?.pod_ip?;
    let text = http_get(&format!("{ip}:9464"), "/metrics").await?;
    Some(
        squall_worker::prom::parse(&text)
            .into_iter()
            .filter(|s| s.0 == "squall_executors" && s.2 > 0.0)
            .filter_map(|s| s.1.get("component").cloned())
            .collect(),
    )
}

/// Waits until the counts equal `want`, then until the spouts have nothing pending, and
/// checks they still do (a late replay would show).
async fn exact(env: &ExampleCluster, want: &Counts, what: &str) -> Result<()> {
    let got = eventually(what, Duration::from_secs(90), env.cluster.dir(), || async {
        let got = env.counts()?;
        (got == *want).then_some(got)
    })
    .await;
    ensure!(
        got.is_ok(),
        "{what}: counts differ: got {:?}\nwant {want:?}",
        env.counts()
    );
    let _ = eventually(
        "nothing pending",
        Duration::from_secs(20),
        env.cluster.dir(),
        || async { (env.spout_metric(NAME, "squall_pending").await? == 0).then_some(()) },
    )
    .await;
    ensure!(
        env.counts().as_ref() == Some(want),
        "{what}: counted twice after settling: got {:?}\nwant {want:?}",
        env.counts()
    );
    Ok(())
}

#[tokio::test]
async fn kafka_exactly_once_counts_stay_exact_through_a_worker_kill_and_rebalances() -> Result<()> {
    bounded_for(Duration::from_secs(240), async {
        let env = ExampleCluster::start().await?;
        let (cluster, pods) = (&env.cluster, &env.pods);
        let broker = tokio::task::spawn_blocking(|| {
            kafka_testenv::KafkaBroker::start_on(Ipv4Addr::new(127, 0, 0, 12))
        })
        .await??;
        let bootstrap = broker.bootstrap();
        broker.create_topic(TOPIC, 4)?;

        env.topos
            .create(&PostParams::default(), &topology(&env, &bootstrap)?)
            .await?;
        wait_running(cluster, &env.topos, NAME, Duration::from_secs(60)).await?;

        // 1. kill -9 of a worker pod's process mid-stream.
        let (batch, rate) = (6_000u64, 1_000u64);
        let publisher = publish(&bootstrap, 0, batch, rate);
        eventually(
            "counting under way",
            Duration::from_secs(60),
            cluster.dir(),
            || async { (counted(&env.counts()?) > batch / 5).then_some(()) },
        )
        .await?;
        let (_, pid) = pod_process(cluster, pods, &format!("{NAME}-0")).await?;
        // The victim runs a spout task, a parser and the acker: the kill costs the spout
        // its uncommitted offsets, and in-flight trees their acks.
        let hosted = hosted(pods, &format!("{NAME}-0")).await.unwrap_or_default();
        for c in ["edits", "parser", "__acker"] {
            ensure!(hosted.iter().any(|h| h == c), "{NAME}-0 runs {hosted:?}, not {c}");
        }
        let at_kill = env.counts().map_or(0, |c| counted(&c));
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status()?;
        ensure!(killed.success(), "kill -9 {pid} failed");
        ensure!(at_kill < batch, "the kill came after the batch was counted");
        let restarted = eventually(
            "the killed worker restarted",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let (_, p) = pod_process(cluster, pods, &format!("{NAME}-0")).await.ok()?;
                (p != pid).then_some(p)
            },
        )
        .await?;
        ensure!(
            tokio::task::spawn_blocking(move || publisher.join())
                .await?
                .map_err(|_| anyhow::anyhow!("publisher panicked"))??
                == batch
        );
        exact(&env, &expected(batch), "exact counts after the kill").await?;
        tracing::info!(at_kill, pid, restarted, "kill -9 mid-stream: counts exact");

        // 2. Rebalances mid-stream: the parser, then the spout (its partitions split
        // over 3 tasks instead of 2), from 2 executors to 3.
        for (k, component) in [(1u64, "parser"), (2, "edits")] {
            let at = rebalance_mid_stream(&env, &bootstrap, k * batch, batch, rate, component).await?;
            exact(
                &env,
                &expected((k + 1) * batch),
                &format!("exact counts after rebalancing {component}"),
            )
            .await?;
            tracing::info!(at, component, "rebalance mid-stream: counts exact");
        }
        drop(broker);
        Ok(())
    })
    .await
}

/// The parallelism of spout or bolt `name`.
fn parallelism<'a>(t: &'a mut Topology, name: &str) -> Option<&'a mut i32> {
    let spouts = t.spec.spouts.iter_mut().map(|s| (&s.name, &mut s.parallelism));
    let bolts = t.spec.bolts.iter_mut().map(|b| (&b.name, &mut b.parallelism));
    spouts.chain(bolts).find(|(n, _)| *n == name).map(|(_, p)| p)
}

/// Publishes edits `from..from+batch`; once a fifth of them is counted, gives `component`
/// 3 executors in the Topology spec and waits for the operator's rebalance (deactivate,
/// drain, the new plan, activate). Returns the edits counted at the change.
async fn rebalance_mid_stream(
    env: &ExampleCluster,
    bootstrap: &str,
    from: u64,
    batch: u64,
    rate: u64,
    component: &str,
) -> Result<u64> {
    let topos = &env.topos;
    let generation = topos
        .get(NAME)
        .await?
        .status
        .and_then(|s| s.assignment_generation)
        .context("no assignment generation")?;
    let publisher = publish(bootstrap, from, batch, rate);
    eventually(
        "the batch under way",
        Duration::from_secs(60),
        env.cluster.dir(),
        || async { (counted(&env.counts()?) > from + batch / 5).then_some(()) },
    )
    .await?;
    let at = env.counts().map_or(0, |c| counted(&c));
    let mut t = edit_topology(topos, NAME, |t| {
        if let Some(p) = parallelism(t, component) {
            *p = 3;
        }
    })
    .await?;
    ensure!(
        parallelism(&mut t, component).copied() == Some(3),
        "no such component {component}"
    );
    ensure!(
        at < from + batch,
        "the rebalance came after the batch was counted"
    );
    eventually(
        "rebalanced and Running",
        Duration::from_secs(60),
        env.cluster.dir(),
        || async {
            let s = topos.get(NAME).await.ok()?.status?;
            (s.phase == Phase::Running
                && s.drain_deadline.is_none()
                && s.assignment_generation >= Some(generation + 3))
            .then_some(())
        },
    )
    .await?;
    ensure!(
        tokio::task::spawn_blocking(move || publisher.join())
            .await?
            .map_err(|_| anyhow::anyhow!("publisher panicked"))??
            == batch
    );
    Ok(at)
}
