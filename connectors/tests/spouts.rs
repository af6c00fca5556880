//! The live-feed spouts against the feed server, without Redis: reconnection and
//! malformed messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use squall_components::Builtins;
use squall_engine::{EngineOptions, Topology};
use squall_feed::{DataSet, FeedOptions, FeedServer, MalformedKind, Message};
use squall_model::{validate, TopologyManifest};
use support::{custom, wait_for};

fn start(kind: &str, url: &str) -> Topology {
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: spouts}}
spec:
  ackers: 1
  maxSpoutPending: 1000
  spouts:
    - name: feed
      component: {kind}
      config: {{url: "{url}", backoff_initial_ms: 20, backoff_max_ms: 100}}
  bolts:
    - {{name: sink, component: "null", inputs: [{{from: feed}}]}}
    - {{name: errors, component: "null", inputs: [{{from: feed, stream: errors}}]}}
"#
    );
    let m = TopologyManifest::from_yaml(&yaml, "test").unwrap();
    let plan = validate(&m, &Builtins).unwrap_or_else(|e| panic!("{e}"));
    Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).unwrap()
}

fn serve(addr: &str, ws: bool, count: u64, data: DataSet) -> FeedServer {
    let a = Some(addr.parse().unwrap());
    FeedServer::start(FeedOptions {
        ws: if ws { a } else { None },
        sse: if ws { None } else { a },
        rate: 0,
        count: Some(count),
        data,
    })
    .unwrap()
}

#[test]
fn websocket_spout_reconnects_after_the_server_goes_away_and_counts_malformed() {
    let data = DataSet::new(3).with_malformed_every(10);
    let first = serve("127.0.0.1:0", true, 100, data);
    let addr = first.ws_addr().unwrap();
    let topology = start("websocket", &first.ws_url().unwrap());
    // Messages 9, 19, 29, …: truncated, not JSON, an array, an object missing fields.
    // The shape check rejects all but the last kind (the parser's job).
    let rejected_per_100 = (0..100)
        .filter(|&i| match data.message(i) {
            Message::Malformed { kind, .. } => kind != MalformedKind::MissingFields,
            Message::Event(_) => false,
        })
        .count() as u64;
    let s = wait_for(
        &topology,
        Duration::from_secs(30),
        "the first 100 messages",
        |s| custom(s, "feed", "malformed") + s.component("feed").unwrap().total.acked >= 100,
    );
    assert_eq!(custom(&s, "feed", "malformed"), rejected_per_100);
    assert_eq!(custom(&s, "feed", "reconnects"), 0);
    first.stop();
    // Down for a while: attempts fail and back off.
    std::thread::sleep(Duration::from_millis(400));
    let second = serve(&addr.to_string(), true, 100, data);
    // A websocket has no resume: the new connection replays the set from the start.
    let s = wait_for(
        &topology,
        Duration::from_secs(30),
        "the second 100 messages",
        |s| custom(s, "feed", "malformed") + s.component("feed").unwrap().total.acked >= 200,
    );
    topology.shutdown();
    assert!(
        custom(&s, "feed", "reconnects") >= 2,
        "{:?}",
        s.component("feed").unwrap().custom
    );
    assert!(custom(&s, "feed", "connect_failures") >= 1);
    assert_eq!(s.component("feed").unwrap().total.failed, 0);
    assert_eq!(second.connections(), 1);
}
