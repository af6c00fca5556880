//! What the Wikipedia-edits tests share: the bundled edit feed, the counted sets and the
//! counts the data set implies.

use anyhow::{Context, Result};
use squall_feed::{expected_counts, talk_keys, DataSet, FeedOptions, FeedServer, MalformedKind, Message};

pub use redis_testenv::Counts;

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

    /// Paces every connection at `rate` messages per second from now on.
    pub fn set_rate(&self, rate: u64) {
        if let Some(server) = &self.0 {
            server.set_rate(rate);
        }
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
