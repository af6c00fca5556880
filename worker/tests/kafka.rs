//! The `kafka` spout on two real worker processes: its tasks split the partitions
//! between the workers, and each worker's `/metrics` reports the consumer lag of the
//! partitions it reads (`squall_kafka_consumer_lag{topic, partition}`), against a real
//! broker (kafka-testenv) on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kafka_testenv::KafkaBroker;
use squall_feed::{DataSet, DEFAULT_SEED};
use squall_kafka::feed::{publish_edits, Publish};
use support::{cluster, dump_logs, wait_until};

const EDITS: u64 = 400;

#[test]
fn two_workers_split_the_partitions_and_export_their_lag() {
    let broker = KafkaBroker::start_on(Ipv4Addr::new(127, 0, 0, 9)).unwrap();
    broker.create_topic("lagged", 4).unwrap();
    let publish = Publish {
        bootstrap: broker.bootstrap(),
        topic: "lagged".into(),
        rate: 0,
        count: Some(EDITS),
        from: 0,
    };
    let sent = publish_edits(&publish, &DataSet::new(DEFAULT_SEED), &AtomicBool::new(false)).unwrap();
    assert_eq!(sent, EDITS);
    // Every tuple fails, so nothing is ever done: each partition's lag stays its size.
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: lag}}
spec:
  ackers: 1
  workers: 2
  spouts:
    - name: kafka
      component: kafka
      parallelism: 2
      config: {{bootstrap_servers: "{}", topics: [lagged], lag_interval_ms: 200, retry_delay_period_ms: 100}}
  bolts:
    - name: fail
      component: fail-some
      config: {{fail_percent: 100, fields: [value]}}
      inputs: [{{from: kafka}}]
"#,
        broker.bootstrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), &yaml, 2, None, &[]);
    // Per worker: partition -> lag.
    let lags = |i: usize| -> BTreeMap<String, f64> {
        c.scrape_one(i)
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, l, _)| {
                n == "squall_kafka_consumer_lag" && l.get("topic").is_some_and(|t| t == "lagged")
            })
            .map(|(_, l, v)| (l.get("partition").cloned().unwrap_or_default(), v))
            .collect()
    };
    let total =
        |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| a.values().chain(b.values()).sum::<f64>();
    let ok = wait_until(Duration::from_secs(60), || {
        let (a, b) = (lags(0), lags(1));
        a.len() == 2 && b.len() == 2 && total(&a, &b) == EDITS as f64
    });
    let (a, b) = (lags(0), lags(1));
    if !ok {
        dump_logs(&c);
    }
    assert!(ok, "worker 0: {a:?}, worker 1: {b:?}");
    // Disjoint, and together every partition: round-robin over the sorted partitions.
    let mut all: Vec<&String> = a.keys().chain(b.keys()).collect();
    all.sort();
    assert_eq!(all, ["0", "1", "2", "3"]);
    let evens = |m: &BTreeMap<String, f64>| m.keys().all(|p| p == "0" || p == "2");
    assert!(evens(&a) != evens(&b), "{a:?} {b:?}");
}
