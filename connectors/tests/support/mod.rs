//! Test helpers: a real redis-server on a random loopback port, and the example topology.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_components::Builtins;
use squall_connectors::resp::{Connection, RedisAddr, Reply};
use squall_engine::{EngineOptions, Snapshot, Topology};
use squall_model::{validate, TopologyManifest};

/// A redis-server (redis-testenv's), read and written through this crate's own RESP
/// client.
pub struct RedisServer(redis_testenv::RedisServer);

impl RedisServer {
    /// Starts a Redis. `durable`: append-only file fsynced before every reply, so a
    /// SIGKILL loses nothing Redis confirmed (what the restart test needs); otherwise no
    /// persistence at all.
    pub fn start(durable: bool) -> Self {
        Self::start_on("127.0.0.1", durable)
    }

    /// The same on another loopback address (`127.0.0.N`), apart from other tests' servers.
    pub fn start_on(host: &str, durable: bool) -> Self {
        let options = redis_testenv::Options {
            durable,
            ..redis_testenv::Options::on(host.parse().unwrap())
        };
        Self(redis_testenv::RedisServer::start_with(options).unwrap_or_else(|e| panic!("{e}")))
    }

    /// SIGKILL: no shutdown, no final save.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Starts again on the same port and directory (reloading the append-only file).
    pub fn restart(&mut self) {
        self.0.restart().unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn addr(&self) -> RedisAddr {
        RedisAddr::parse(&self.0.addr()).unwrap()
    }

    /// One command on a fresh connection.
    pub fn command(&self, args: &[&[u8]]) -> Reply {
        let mut c = Connection::open(&self.addr(), Duration::from_secs(2)).unwrap();
        c.command(args).unwrap()
    }

    /// Members and scores of a sorted set.
    pub fn zset(&self, key: &str) -> BTreeMap<String, f64> {
        self.0.zset(key).unwrap_or_else(|e| panic!("{e}"))
    }
}

pub fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wikipedia-edits/topology.yaml")
}

/// The example topology with its spout reading `spout_url` (with kind `spout_kind`) and its
/// sink writing to `redis_url`.
pub fn start_example(spout_kind: &str, spout_url: &str, redis_url: &str) -> Topology {
    start_example_with(spout_kind, spout_url, redis_url, "")
}

/// The same, with a key prefix for the sink.
pub fn start_example_with(spout_kind: &str, spout_url: &str, redis_url: &str, prefix: &str) -> Topology {
    let mut m = TopologyManifest::from_file(&example_path()).unwrap();
    let spout = &mut m.spec.spouts[0];
    spout.component = spout_kind.to_owned();
    spout.config.insert("url".into(), spout_url.into());
    // Fast replays keep the restart test short.
    spout.config.insert("replay_delay_ms".into(), 10.into());
    let counts = m.spec.bolts.iter_mut().find(|b| b.name == "counts").unwrap();
    counts.config.insert("url".into(), redis_url.into());
    counts.config.insert("prefix".into(), prefix.into());
    counts.config.insert("backoff_initial_ms".into(), 20.into());
    counts.config.insert("backoff_max_ms".into(), 200.into());
    let plan = validate(&m, &Builtins).unwrap_or_else(|e| panic!("{e}"));
    Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).unwrap()
}

/// Waits until `done` holds for a snapshot, or panics after `limit` with the last one.
pub fn wait_for(
    topology: &Topology,
    limit: Duration,
    what: &str,
    done: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + limit;
    loop {
        let s = topology.metrics();
        if done(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}; metrics: {s:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn custom(s: &Snapshot, component: &str, counter: &str) -> u64 {
    s.component(component)
        .and_then(|c| c.custom.get(counter).copied())
        .unwrap_or(0)
}
