//! The `kafka` spout's lag gauges against a real broker: per partition the lag, the log
//! head and the group's committed offset, as the UI's spout lag reads them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_spout_publishes_lag_log_head_and_committed_offset_per_partition() {
    let b = broker();
    b.create_topic("heads", 2).unwrap();
    produce(&b.bootstrap(), "heads", Some(0), &texts("a", 10));
    produce(&b.bootstrap(), "heads", Some(1), &texts("b", 4));
    let config = json!({
        "bootstrap_servers": b.bootstrap(),
        "topics": ["heads"],
        "group_id": "g-heads",
        "offset_commit_period_ms": 100,
        "partition_refresh_period_ms": 500,
        "lag_interval_ms": 100,
    });
    let (topo, gate) = start_spout("heads", 1, config);
    gate.set(0, 3, Action::Hold);
    wait_until(LIMIT, "14 records", || gate.default_stream().len(), |n| *n == 14);
    let series =
        |name: &str, p: &str| squall_engine::gauge_series(name, &[("topic", "heads"), ("partition", p)]);
    let figures = |p: &str| {
        let s = topo.metrics();
        [
            "kafka_consumer_lag",
            "kafka_log_head_offset",
            "kafka_committed_offset",
        ]
        .map(|name| gauge(&s, "kafka", &series(name, p)))
    };
    // Partition 0: offset 3 held, so the floor and the commit stay at 3.
    wait_until(
        LIMIT,
        "lag 7, head 10, committed 3",
        || figures("0"),
        |f| *f == [Some(7), Some(10), Some(3)],
    );
    wait_until(
        LIMIT,
        "partition 1 done",
        || figures("1"),
        |f| *f == [Some(0), Some(4), Some(4)],
    );

    gate.release(0, 3);
    wait_until(
        LIMIT,
        "lag 0, committed 10",
        || figures("0"),
        |f| *f == [Some(0), Some(10), Some(10)],
    );
    produce(&b.bootstrap(), "heads", Some(1), &texts("b", 3));
    wait_until(LIMIT, "head 7", || figures("1")[1], |h| *h == Some(7));
    topo.shutdown();
}
