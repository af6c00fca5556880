//! Test helpers: a real redis-server on a random loopback port, and the example topology.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use squall_components::Builtins;
use squall_connectors::resp::{Connection, RedisAddr, Reply};
use squall_engine::{EngineOptions, Snapshot, Topology};
use squall_model::{validate, TopologyManifest};

/// A redis-server child in a temporary directory, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback address it listens on (127.0.0.1 unless [`RedisServer::start_on`]).
    pub host: String,
    pub port: u16,
    dir: tempfile::TempDir,
    durable: bool,
}

fn free_port(host: &str) -> u16 {
    let l = std::net::TcpListener::bind((host, 0)).unwrap();
    l.local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a Redis. `durable`: append-only file fsynced before every reply, so a
    /// SIGKILL loses nothing Redis confirmed (what the restart test needs); otherwise no
    /// persistence at all.
    pub fn start(durable: bool) -> Self {
        Self::start_on("127.0.0.1", durable)
    }

    /// The same on another loopback address (`127.0.0.N`), apart from other tests' servers.
    pub fn start_on(host: &str, durable: bool) -> Self {
        let which = Command::new("redis-server").arg("--version").output();
        if !matches!(which, Ok(ref o) if o.status.success()) {
            panic!(
                "redis-server is not installed (or not on PATH): run `make redis-server` \
                 (Debian's redis-server package) and run the tests again"
            );
        }
        let mut s = RedisServer {
            child: None,
            host: host.to_owned(),
            port: free_port(host),
            dir: tempfile::tempdir().unwrap(),
            durable,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let dir = self.dir.path().display().to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            &self.host,
            "--save",
            "",
        ])
        .args(["--dir", &dir, "--logfile", "redis.log", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if self.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        self.child = Some(cmd.spawn().expect("spawning redis-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = Connection::open(&self.addr(), Duration::from_millis(500)) {
                if c.command(&[b"PING"]).is_ok() {
                    return;
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                panic!(
                    "redis-server did not answer PING on port {} within 10 s; log:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port and directory (reloading the append-only file).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }

    pub fn addr(&self) -> RedisAddr {
        RedisAddr::parse(&format!("{}:{}", self.host, self.port)).unwrap()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One command on a fresh connection.
    pub fn command(&self, args: &[&[u8]]) -> Reply {
        let mut c = Connection::open(&self.addr(), Duration::from_secs(2)).unwrap();
        c.command(args).unwrap()
    }

    /// Members and scores of a sorted set.
    pub fn zset(&self, key: &str) -> BTreeMap<String, f64> {
        let mut c = Connection::open(&self.addr(), Duration::from_secs(2)).unwrap();
        let r = c
            .command(&[b"ZRANGE", key.as_bytes(), b"0", b"-1", b"WITHSCORES"])
            .unwrap();
        let Reply::Array(Some(items)) = r else {
            panic!("ZRANGE {key}: {r:?}")
        };
        let text = |r: &Reply| match r {
            Reply::Bulk(Some(b)) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{other:?}"),
        };
        items
            .chunks(2)
            .map(|p| (text(&p[0]), text(&p[1]).parse::<f64>().unwrap()))
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
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
