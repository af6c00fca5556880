//! The Redis of a benchmark run (redis-testenv's server, without persistence), and the
//! check of the counts a counting pipeline left in it against the truth.

use std::collections::BTreeMap;
use std::ops::Deref;

use redis_testenv::Reply;

/// What can go wrong with the server or its counts.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis: {0}")]
    Server(#[from] redis_testenv::Error),
    #[error("redis: {0}")]
    Unexpected(String),
    #[error("counts in Redis are wrong: {0}")]
    Counts(String),
}

/// A redis-server child on a free loopback port; killed on drop.
pub struct RedisServer(redis_testenv::RedisServer);

impl Deref for RedisServer {
    type Target = redis_testenv::RedisServer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl RedisServer {
    pub fn start() -> Result<Self, RedisError> {
        Ok(RedisServer(redis_testenv::RedisServer::start()?))
    }

    /// `INFO commandstats` as command → (calls, µs).
    pub fn commandstats(&self) -> Result<BTreeMap<String, (u64, u64)>, RedisError> {
        let Reply::Bulk(Some(info)) = self.0.command(&["INFO", "commandstats"])? else {
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
            let got = self.0.zset(set)?;
            for (member, n) in expected {
                let g = got.get(member).copied().unwrap_or(0.0) as u64;
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
