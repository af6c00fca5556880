//! The Wikipedia-edits case: the local edit feed (in this process, unpaced) → websocket
//! spout → json-keys → redis-counter → a redis-server child on a free loopback port.
//!
//! Bounded: the feed and Redis live only as long as the case (Redis is killed on drop),
//! and the case runs for the harness' warm-up plus window.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use squall_connectors::resp::{Connection, RedisAddr};
use squall_feed::{DataSet, FeedOptions, FeedServer, DEFAULT_SEED};

/// The example topology, with placeholders for the two addresses. Same shape as
/// examples/wikipedia-edits/topology.yaml, without the rejects logger.
pub const BODY: &str = r#"
  spouts:
    - name: spout
      component: websocket
      config: {url: "WS_URL", retry_buffer: 20000}
  bolts:
    - name: parser
      component: json-keys
      parallelism: 2
      config:
        field: event
        format: python
        keys:
          - {prefix: isanon_, path: is_anon}
          - {path: is_anon, then: anon_anon, else: anon_loggedin}
          - {path: is_bot, then: bot_bot, else: bot_human}
          - {prefix: action_, path: action}
          - {prefix: country_, path: geo_ip.country_name, optional: true}
      inputs: [{from: spout}]
    - name: sink
      component: redis-counter
      config: {url: "REDIS_URL", prefix: "bench:"}
      inputs: [{from: parser}]
"#;

/// Distinct events the feed cycles through.
pub const REPEAT: u64 = 5_000;

/// Redis and the feed for one run.
pub struct Env {
    redis: Child,
    redis_url: String,
    _dir: TempDir,
    feed: FeedServer,
}

/// A temporary directory removed on drop (Redis' working directory).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Env {
    pub fn start() -> Result<Self> {
        let port = free_port()?;
        let dir = TempDir(std::env::temp_dir().join(format!("squall-bench-redis-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0)?;
        let redis = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (run `make redis-server` to install it)")?;
        let mut env = Env {
            redis,
            redis_url: format!("redis://127.0.0.1:{port}"),
            _dir: dir,
            // The public feed is generated elsewhere; here its cost would be ours.
            feed: FeedServer::start_repeating(
                FeedOptions {
                    ws: Some("127.0.0.1:0".parse()?),
                    sse: None,
                    rate: 0,
                    count: None,
                    data: DataSet::new(DEFAULT_SEED),
                },
                REPEAT,
            )?,
        };
        let addr = RedisAddr::parse(&format!("127.0.0.1:{port}")).map_err(anyhow::Error::msg)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = Connection::open(&addr, Duration::from_millis(500)) {
                if c.command(&[b"PING"]).is_ok() {
                    break;
                }
            }
            if Instant::now() > deadline {
                let _ = env.redis.kill();
                bail!("redis-server did not answer on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(env)
    }

    /// The manifest body with the addresses filled in.
    pub fn body(&self) -> String {
        BODY.replace("WS_URL", &self.feed.ws_url().unwrap_or_default())
            .replace("REDIS_URL", &self.redis_url)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.redis.kill();
        let _ = self.redis.wait();
    }
}
