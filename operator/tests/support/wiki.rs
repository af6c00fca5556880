//! What the Wikipedia-edits tests share: a real redis-server, the bundled edit feed, and
//! the counts the data set implies.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use squall_feed::{expected_counts, talk_keys, DataSet, FeedOptions, FeedServer, MalformedKind, Message};

pub type Counts = BTreeMap<String, BTreeMap<String, u64>>;

pub const SETS: &[&str] = &["isanon", "anon", "bot", "actions", "country"];

/// A redis-server on a free loopback port, killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start(dir: &std::path::Path) -> Result<Redis> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server is not installed: run `make redis-server`")?;
        let r = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.cli(&["PING"]).as_deref() != Some("PONG") {
            ensure!(Instant::now() < deadline, "redis-server did not answer PING");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }

    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Every counted sorted set: member → score.
    pub fn counts(&self) -> Option<Counts> {
        let mut out = Counts::new();
        for set in SETS {
            let text = self.cli(&["ZRANGE", set, "0", "-1", "WITHSCORES"])?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            let members: BTreeMap<String, u64> = lines
                .chunks(2)
                .filter_map(|p| Some((p.first()?.to_string(), p.get(1)?.parse::<f64>().ok()? as u64)))
                .collect();
            if !members.is_empty() {
                out.insert((*set).to_owned(), members);
            }
        }
        Some(out)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn expected(data: &DataSet, n: u64) -> (Counts, u64) {
    let mut keys = Vec::new();
    let mut reliable = 0;
    for i in 0..n {
        match data.message(i) {
            Message::Event(e) => {
                keys.extend(talk_keys(&e));
                reliable += 1;
            }
            Message::Malformed { kind, .. } => {
                // The parser rejects objects with missing fields; the spout emits those
                // reliably too (they are JSON objects), the rest go to its error stream.
                if kind == MalformedKind::MissingFields {
                    reliable += 1;
                }
            }
        }
    }
    (expected_counts(keys.iter().map(String::as_str)), reliable)
}

/// Every expected member present with at least its count, and nothing unexpected.
pub fn at_least(got: &Counts, want: &Counts) -> bool {
    let same_members = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((gs, gm), (ws, wm))| gs == ws && gm.keys().eq(wm.keys()));
    same_members
        && want.iter().all(|(s, m)| {
            m.iter()
                .all(|(k, n)| got.get(s).and_then(|g| g.get(k)).is_some_and(|g| g >= n))
        })
}

/// The feed server, which runs its own runtime: started and dropped on a plain thread, as
/// a runtime may not be started or dropped inside the test's.
pub struct Feed(Option<FeedServer>);

impl Feed {
    pub fn start(n: u64, rate: u64, data: DataSet) -> Result<Feed> {
        let opts = FeedOptions {
            ws: Some("127.0.0.1:0".parse()?),
            sse: None,
            rate,
            count: Some(n),
            data,
        };
        let server = std::thread::spawn(move || FeedServer::start(opts))
            .join()
            .map_err(|_| anyhow::anyhow!("feed thread panicked"))??;
        Ok(Feed(Some(server)))
    }

    pub fn url(&self) -> Result<String> {
        self.0
            .as_ref()
            .and_then(FeedServer::ws_url)
            .context("no websocket address")
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            let _ = std::thread::spawn(move || server.stop()).join();
        }
    }
}
