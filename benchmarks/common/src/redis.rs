//! A redis-server child for a benchmark run, and the check of the counts a counting
//! pipeline left in it against the truth.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use squall_connectors::resp::{Connection, RedisAddr, Reply, RespError};

/// What can go wrong with the server or its counts.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("starting redis-server (run `make redis-server` to install it): {0}")]
    Start(#[source] std::io::Error),
    #[error("redis-server did not answer on port {0} within 10 s")]
    NoAnswer(u16),
    #[error("redis: {0}")]
    Resp(#[from] RespError),
    #[error("redis: {0}")]
    Unexpected(String),
    #[error("counts in Redis are wrong: {0}")]
    Counts(String),
}

/// A redis-server child on a free loopback port, without persistence; killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Result<Self, RedisError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(RedisError::Start)?
            .port();
        let dir = tempfile::Builder::new()
            .prefix("squall-bench-redis-")
            .tempdir()
            .map_err(RedisError::Start)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(RedisError::Start)?;
        let r = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = r.connect() {
                if matches!(c.command(&[b"PING"]), Ok(Reply::Simple(_))) {
                    return Ok(r);
                }
            }
            if Instant::now() > deadline {
                return Err(RedisError::NoAnswer(port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.address())
    }

    pub fn connect(&self) -> Result<Connection, RedisError> {
        let addr = RedisAddr::parse(&self.address()).map_err(RedisError::Unexpected)?;
        Ok(Connection::open(&addr, Duration::from_secs(10))?)
    }

    pub fn command(&self, args: &[&str]) -> Result<Reply, RedisError> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        Ok(self.connect()?.command(&args)?)
    }

    /// member → score of a sorted set.
    pub fn zset(&self, key: &str) -> Result<BTreeMap<String, u64>, RedisError> {
        let Reply::Array(Some(items)) = self.command(&["ZRANGE", key, "0", "-1", "WITHSCORES"])? else {
            return Err(RedisError::Unexpected(format!("ZRANGE {key}: not an array")));
        };
        let text = |r: &Reply| match r {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        Ok(items
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (text(&c[0]), text(&c[1]).parse::<f64>().unwrap_or(-1.0) as u64))
            .collect())
    }

    /// `INFO commandstats` as command → (calls, µs).
    pub fn commandstats(&self) -> Result<BTreeMap<String, (u64, u64)>, RedisError> {
        let Reply::Bulk(Some(info)) = self.command(&["INFO", "commandstats"])? else {
            return Err(RedisError::Unexpected("INFO commandstats: not text".into()));
        };
        let mut out = BTreeMap::new();
        for line in String::from_utf8_lossy(&info).lines() {
            let Some((name, rest)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            out.insert(name.to_owned(), (field("calls"), field("usec")));
        }
        Ok(out)
    }

    /// Compares the sorted sets with `want` (set → member → count): every count exact
    /// (`exact`) or at least the truth (at-least-once), and no member that `want` lacks.
    /// Returns how many counts were checked and by how much they exceed the truth in all.
    pub fn check_counts(
        &self,
        want: &BTreeMap<String, BTreeMap<String, u64>>,
        exact: bool,
    ) -> Result<(u64, u64), RedisError> {
        let (mut members, mut over) = (0u64, 0u64);
        for (set, expected) in want {
            let got = self.zset(set)?;
            for (member, n) in expected {
                let g = got.get(member).copied().unwrap_or(0);
                members += 1;
                if (exact && g != *n) || g < *n {
                    return Err(RedisError::Counts(format!("{set} {member} is {g}, not {n}")));
                }
                over += g - n;
            }
            if let Some(extra) = got.keys().find(|m| !expected.contains_key(*m)) {
                return Err(RedisError::Counts(format!(
                    "{set} holds {extra:?}, which no edit gives"
                )));
            }
        }
        Ok((members, over))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
