//! The `kafka-producer` bolt against a real broker: acks after the broker's, fails while
//! the broker is down, delivers once it is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use kafka_testenv::KafkaBroker;
use support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn pipeline(name: &str, lines: &std::path::Path, bootstrap: &str, topic: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  ackers: 1
  messageTimeoutSeconds: 60
  spouts:
    - name: lines
      component: json-lines
      config: {{path: "{}", fields: [k, v]}}
  bolts:
    - name: out
      component: kafka-producer
      config: {{bootstrap_servers: "{bootstrap}", topic: {topic}, key_field: k, value_field: v{extra}}}
      inputs: [{{from: lines}}]
"#,
        lines.display()
    )
}

fn lines(n: usize) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    let text: String = (0..n)
        .map(|i| format!("{{\"k\": \"key-{i}\", \"v\": \"value-{i}\"}}\n"))
        .collect();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn each_tuple_is_acked_once_the_broker_acknowledged_its_record() {
    let b = broker();
    b.create_topic("out", 2).unwrap();
    let file = lines(50);
    let topo = start_yaml(&pipeline("produce", file.path(), &b.bootstrap(), "out", ""));
    let s = wait_until(
        LIMIT,
        "50 acked",
        || topo.metrics(),
        |s| s.component("lines").unwrap().total.acked == 50,
    );
    assert_eq!(s.component("lines").unwrap().total.failed, 0);
    topo.shutdown();
    let got = consume(&b.bootstrap(), "out", &[0, 1], 50, LIMIT);
    let want: BTreeSet<(Option<String>, String)> = (0..50)
        .map(|i| (Some(format!("key-{i}")), format!("value-{i}")))
        .collect();
    assert_eq!(got.len(), 50, "exactly once: no retry happened");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
}

#[test]
fn tuples_fail_while_the_broker_is_down_and_are_delivered_once_it_is_back() {
    let mut b = KafkaBroker::start_on(Ipv4Addr::new(127, 0, 0, 3)).unwrap();
    b.create_topic("down", 1).unwrap();
    b.stop();
    let file = lines(20);
    let topo = start_yaml(&pipeline(
        "down",
        file.path(),
        &b.bootstrap(),
        "down",
        ", delivery_timeout_ms: 1000",
    ));
    let s = wait_until(
        LIMIT,
        "20 failures",
        || topo.metrics(),
        |s| s.component("lines").unwrap().total.failed >= 20,
    );
    assert_eq!(
        s.component("lines").unwrap().total.acked,
        0,
        "nothing acked without the broker"
    );
    assert!(custom(&s, "out", "delivery_failures") >= 20);

    b.restart().unwrap();
    wait_until(
        LIMIT,
        "all 20 acked",
        || topo.metrics(),
        |s| s.component("lines").unwrap().total.acked == 20,
    );
    topo.shutdown();
    // At least once: a record whose acknowledgement was lost is there twice.
    let mut got = consume(&b.bootstrap(), "down", &[0], 20, LIMIT);
    if got.iter().map(|(_, v)| v).collect::<BTreeSet<_>>().len() < 20 {
        got = consume(&b.bootstrap(), "down", &[0], 10_000, Duration::from_secs(5));
    }
    let values: BTreeSet<String> = got.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        values,
        (0..20).map(|i| format!("value-{i}")).collect::<BTreeSet<_>>()
    );
}
