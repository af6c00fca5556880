//! The Kafka case, `kafka-redis-ack`: the talk's pipeline read from Kafka on both sides.
//! Storm: storm-kafka-client's KafkaSpout → a parser bolt → a Jedis counter
//! (`benchmarks/storm`, KafkaCase). Squall: `kafka` → `json-keys` → `redis-counter` as a
//! Topology manifest on the in-process engine (`squall-bench-compare squall-kafka`).
//!
//! The driver owns what both sides share, for the whole run: one broker (kafka-testenv,
//! KRaft, loopback), one topic pre-loaded with a bounded number of the bundled edits by
//! `squall feed kafka`'s publisher, and one redis-server (loopback). Before each run it
//! empties Redis and names a fresh consumer group, so each run reads the whole topic from
//! its start; after each, it checks every count in Redis against the data set.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use kafka_testenv::KafkaBroker;
use squall_bench_common::process_cpu;
use squall_bench_common::redis::RedisServer;
use squall_components::Builtins;
use squall_engine::{EngineOptions, Topology};
use squall_feed::{expected_counts, talk_keys, DataSet, DEFAULT_SEED};
use squall_model::{validate, TopologyManifest};

use crate::Run;

pub const CASE: &str = "kafka-redis-ack";
const TOPIC: &str = "edits";

/// The broker, its pre-loaded topic and Redis, shared by every run of the case.
pub struct KafkaEnv {
    broker: KafkaBroker,
    redis: RedisServer,
    want: BTreeMap<String, BTreeMap<String, u64>>,
    pub records: u64,
    pub partitions: u32,
    pub publish_rate: f64,
    /// Counts checked after each run, and by how much they exceeded the truth in all runs.
    pub checked: u64,
    pub over: u64,
}

impl KafkaEnv {
    pub fn start(records: u64, partitions: u32) -> Result<Self> {
        let broker = KafkaBroker::start_on(Ipv4Addr::LOCALHOST).context("starting the Kafka broker")?;
        broker.create_topic(TOPIC, partitions)?;
        let data = DataSet::new(DEFAULT_SEED);
        let t = Instant::now();
        let published = squall_kafka::feed::publish_edits(
            &squall_kafka::feed::Publish {
                bootstrap: broker.bootstrap(),
                topic: TOPIC.to_owned(),
                rate: 0,
                count: Some(records),
                from: 0,
            },
            &data,
            &AtomicBool::new(false),
        )?;
        if published != records {
            bail!("published {published} of {records} edits");
        }
        let publish_rate = published as f64 / t.elapsed().as_secs_f64();
        let keys: Vec<String> = (0..records).flat_map(|i| talk_keys(&data.edit(i))).collect();
        let want = expected_counts(keys.iter().map(String::as_str));
        Ok(KafkaEnv {
            broker,
            redis: RedisServer::start()?,
            want,
            records,
            partitions,
            publish_rate,
            checked: 0,
            over: 0,
        })
    }

    /// Empties Redis; returns the arguments naming the broker, the topic, a fresh group
    /// (`tag` tells the runs apart), Redis and the record count, as both sides take them.
    pub fn prepare(&self, tag: &str) -> Result<Vec<String>> {
        self.redis.command(&["FLUSHALL"])?;
        Ok([
            "--bootstrap".to_owned(),
            self.broker.bootstrap(),
            "--topic".into(),
            TOPIC.into(),
            "--group".into(),
            format!("compare-{tag}-{}", std::process::id()),
            "--redis".into(),
            self.redis.addr(),
            "--records".into(),
            self.records.to_string(),
        ]
        .to_vec())
    }

    /// After a run: every count in Redis at least the truth (at-least-once).
    pub fn check(&mut self, who: &str) -> Result<()> {
        let (members, over) = self
            .redis
            .check_counts(&self.want, false)
            .with_context(|| format!("after {who}'s run"))?;
        self.checked = members;
        self.over += over;
        Ok(())
    }
}

/// The `squall-kafka` verb's arguments (what [`KafkaEnv::prepare`] gives).
#[derive(Default)]
pub struct Target {
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    pub redis: String,
    pub records: u64,
}

fn manifest(t: &Target) -> String {
    format!(
        r#"apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: bench}}
spec:
  ackers: 1
  messageTimeoutSeconds: 30
  maxSpoutPending: 10000
  spouts:
    - name: spout
      component: kafka
      config: {{bootstrap_servers: "{bootstrap}", topics: [{topic}], group_id: "{group}"}}
  bolts:
    - name: parser
      component: json-keys
      config:
        field: value
        format: python
        keys:
          - {{prefix: isanon_, path: is_anon}}
          - {{path: is_anon, then: anon_anon, else: anon_loggedin}}
          - {{path: is_bot, then: bot_bot, else: bot_human}}
          - {{prefix: action_, path: action}}
          - {{prefix: country_, path: geo_ip.country_name, optional: true}}
      inputs: [{{from: spout}}]
    - name: counter
      component: redis-counter
      config: {{url: "redis://{redis}"}}
      inputs: [{{from: parser}}]
"#,
        bootstrap = t.bootstrap,
        topic = t.topic,
        group = t.group,
        redis = t.redis,
    )
}

/// Squall's side: the manifest on the in-process engine until every record is acked,
/// measured from 10% to 90% of them acked like the Storm side.
pub fn run(t: &Target) -> Result<Run> {
    if t.records < 10 {
        bail!("{CASE} needs --records N (at least 10) and the broker's and Redis' addresses");
    }
    let m = TopologyManifest::from_yaml(&manifest(t), CASE)?;
    let plan = validate(&m, &Builtins).map_err(|e| anyhow!("{e}"))?;
    let topo =
        Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).context("starting")?;
    let me = std::process::id();
    let n = t.records;
    let (lo, hi) = (n / 10, n - n / 10);
    // (acked, when, CPU) at 10% and at 90%.
    let (mut start, mut end) = (None, None);
    let mut latency = (0, 0);
    let mut last = (Instant::now(), 0u64);
    let snapshot = loop {
        std::thread::sleep(Duration::from_millis(20));
        let s = topo.metrics();
        let acked = s.component("spout").map_or(0, |c| c.total.acked);
        if start.is_none() && acked >= lo {
            start = Some((acked, Instant::now(), process_cpu(me)));
            topo.reset_latencies();
        }
        if start.is_some() && end.is_none() && acked >= hi {
            end = Some((acked, Instant::now(), process_cpu(me)));
            let c = s.component("spout").context("no spout")?;
            latency = (c.total.complete_us.p50, c.total.complete_us.p99);
        }
        if acked >= n {
            break s;
        }
        if acked > last.1 {
            last = (Instant::now(), acked);
        } else if last.0.elapsed() > Duration::from_secs(60) {
            topo.shutdown();
            bail!("stuck at {acked} of {n} records acked for 60 s");
        }
    };
    topo.shutdown();
    let (Some(a), Some(b)) = (start, end) else {
        bail!("no measured span");
    };
    let events = (b.0 - a.0) as f64;
    Ok(Run {
        throughput: events / (b.1 - a.1).as_secs_f64(),
        complete_p50_us: latency.0,
        complete_p99_us: latency.1,
        cpu_s_per_million: (b.2 - a.2).as_secs_f64() / (events / 1e6),
        peak_rss_kib: crate::multilang::peak_rss_kib(),
        failed: snapshot.component("spout").map_or(0, |c| c.total.failed),
        load: 0.0,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_validates_with_the_talks_pipeline() {
        let t = Target {
            bootstrap: "127.0.0.1:9092".into(),
            topic: TOPIC.into(),
            group: "g".into(),
            redis: "127.0.0.1:6379".into(),
            records: 100,
        };
        let m = TopologyManifest::from_yaml(&manifest(&t), CASE).unwrap();
        validate(&m, &Builtins).expect("the Kafka case's manifest is valid");
        let kinds: Vec<&str> = m
            .spec
            .spouts
            .iter()
            .map(|s| s.component.as_str())
            .chain(m.spec.bolts.iter().map(|b| b.component.as_str()))
            .collect();
        assert_eq!(kinds, ["kafka", "json-keys", "redis-counter"]);
    }
}
