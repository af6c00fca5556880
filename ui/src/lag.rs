//! Storm's Kafka spout lag, from the gauges a component keeps (`Counters::set_gauge` in
//! the engine): per partition, `kafka_consumer_lag`, `kafka_log_head_offset` and
//! `kafka_committed_offset`, each with the labels `topic` and `partition`.
//!
//! The engine knows gauges only as series keys, `name` or `name{k="v",...}` with label
//! values escaped as in Prometheus' text format; [`parse_series`] reads one back, bounded
//! in length and labels. [`Lags`] gathers the lag figures of a component's gauges from
//! any number of sources (tasks or workers), at most [`MAX_LAGS`] partitions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{debug, warn};

/// Gauge: per partition, the log head (high watermark) less the spout's floor.
pub const LAG_GAUGE: &str = "kafka_consumer_lag";
/// Gauge: per partition, the log head (high watermark).
pub const HEAD_GAUGE: &str = "kafka_log_head_offset";
/// Gauge: per partition, the consumer group's committed offset.
pub const COMMITTED_GAUGE: &str = "kafka_committed_offset";

/// Partitions one component's sample lists at most; more are left out (with a warning
/// the first time, then at debug level). Every sample is kept for a while in each
/// window, so this bounds what lag adds to a topology's history.
pub const MAX_LAGS: usize = 1024;

/// Longest series key read; longer ones are skipped.
pub const MAX_SERIES_CHARS: usize = 512;

/// Most labels a series key may have.
pub const MAX_SERIES_LABELS: usize = 16;

/// One partition's lag, as Storm's Kafka spout lag reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The group's committed offset, when known.
    pub committed: Option<u64>,
    /// The log head (high watermark).
    pub head: u64,
    /// Records behind the head.
    pub lag: u64,
}

/// A gauge's series key as its name and its labels (values unescaped), or `None` for a
/// key that is not one (or over [`MAX_SERIES_CHARS`] or [`MAX_SERIES_LABELS`]).
pub fn parse_series(series: &str) -> Option<(&str, Vec<(&str, String)>)> {
    if series.len() > MAX_SERIES_CHARS {
        return None;
    }
    let name_ok = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let Some((name, mut rest)) = series.split_once('{') else {
        return name_ok(series).then(|| (series, Vec::new()));
    };
    if !name_ok(name) {
        return None;
    }
    let mut labels = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return after.is_empty().then_some((name, labels));
        }
        if labels.len() == MAX_SERIES_LABELS {
            return None;
        }
        let (key, after) = rest.split_once("=\"")?;
        if !name_ok(key) {
            return None;
        }
        let (value, after) = unescape(after)?;
        labels.push((key, value));
        rest = after.strip_prefix(',').unwrap_or(after);
        if !after.starts_with([',', '}']) {
            return None;
        }
    }
}

/// A label value up to its closing quote, unescaped, and what follows the quote.
fn unescape(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                e @ ('\\' | '"') => out.push(e),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// What one source said of one partition.
#[derive(Clone, Copy, Default)]
struct Said {
    committed: Option<u64>,
    head: Option<u64>,
    lag: Option<u64>,
}

impl Said {
    fn lag(self, topic: String, partition: u32) -> Option<PartitionLag> {
        let head = self.head.or(self.lag)?;
        Some(PartitionLag {
            topic,
            partition,
            committed: self.committed,
            head,
            lag: self
                .lag
                .unwrap_or_else(|| head.saturating_sub(self.committed.unwrap_or(head))),
        })
    }
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// One component's partitions, gathered from the gauges of its tasks or workers.
///
/// A partition is read by one task at a time, so sources normally name distinct
/// partitions and the result is their union. Should two name the same one (a hand-over
/// between two refreshes), each figure is the larger of the two: offsets only grow,
/// and a sum of offsets would mean nothing.
#[derive(Debug, Default)]
pub struct Lags {
    by_partition: BTreeMap<(String, u32), PartitionLag>,
    /// Partitions left out at [`MAX_LAGS`].
    pub dropped: usize,
}

impl Lags {
    /// Adds one source's gauges: `(series key, value)`; gauges other than the three lag
    /// gauges, or without a topic and a partition, are ignored.
    pub fn add<'a>(&mut self, gauges: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut said: BTreeMap<(String, u32), Said> = BTreeMap::new();
        for (series, value) in gauges {
            if !series.starts_with("kafka_") {
                continue;
            }
            let Some((name, labels)) = parse_series(series) else {
                continue;
            };
            let label = |k: &str| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| v);
            let (Some(topic), Some(partition)) = (label("topic"), label("partition")) else {
                continue;
            };
            let Ok(partition) = partition.parse::<u32>() else {
                continue;
            };
            let s = said.entry((topic.clone(), partition)).or_default();
            match name {
                LAG_GAUGE => s.lag = Some(value),
                HEAD_GAUGE => s.head = Some(value),
                COMMITTED_GAUGE => s.committed = Some(value),
                _ => {}
            }
        }
        for ((topic, partition), s) in said {
            let Some(new) = s.lag(topic, partition) else {
                continue;
            };
            self.merge(new);
        }
    }

    /// Adds one partition's figures (see the type for duplicates).
    pub fn merge(&mut self, new: PartitionLag) {
        let key = (new.topic.clone(), new.partition);
        if let Some(old) = self.by_partition.get_mut(&key) {
            old.head = old.head.max(new.head);
            old.lag = old.lag.max(new.lag);
            old.committed = old.committed.max(new.committed);
        } else if self.by_partition.len() < MAX_LAGS {
            self.by_partition.insert(key, new);
        } else {
            self.dropped += 1;
        }
    }

    /// The partitions by topic and partition; logs what the bound left out.
    pub fn finish(self, component: &str) -> Vec<PartitionLag> {
        if self.dropped > 0 {
            if WARNED.swap(true, Ordering::Relaxed) {
                debug!(
                    component,
                    dropped = self.dropped,
                    limit = MAX_LAGS,
                    "partitions left out of the spout lag"
                );
            } else {
                warn!(
                    component,
                    dropped = self.dropped,
                    limit = MAX_LAGS,
                    "more partitions than the UI's limit: the spout lag lists the first by topic and partition (logged once; then at debug level)"
                );
            }
        }
        self.by_partition.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn series_keys_read_back_with_their_escapes() {
        assert_eq!(parse_series("up"), Some(("up", vec![])));
        assert_eq!(
            parse_series(r#"kafka_consumer_lag{topic="a\"b\\c\nd",partition="3"}"#),
            Some((
                "kafka_consumer_lag",
                vec![("topic", "a\"b\\c\nd".to_owned()), ("partition", "3".to_owned())]
            ))
        );
        assert_eq!(parse_series("x{}"), Some(("x", vec![])));
        for bad in [
            "",
            "{a=\"b\"}",
            "x{a=\"b\"",
            "x{a=\"b\"}y",
            "x{a=b}",
            "x{a=\"b\"c=\"d\"}",
            "x{a-b=\"c\"}",
            "x{a=\"\\t\"}",
            "x y",
        ] {
            assert_eq!(parse_series(bad), None, "{bad:?}");
        }
        let long = format!("x{{a=\"{}\"}}", "v".repeat(MAX_SERIES_CHARS));
        assert_eq!(parse_series(&long), None);
        let many: Vec<String> = (0..=MAX_SERIES_LABELS).map(|i| format!("l{i}=\"v\"")).collect();
        assert_eq!(parse_series(&format!("x{{{}}}", many.join(","))), None);
    }

    fn series(name: &str, topic: &str, partition: u32) -> String {
        format!("{name}{{topic=\"{topic}\",partition=\"{partition}\"}}")
    }

    #[test]
    fn gauges_become_partitions_and_duplicates_keep_the_larger_figures() {
        let one = BTreeMap::from([
            (series(LAG_GAUGE, "t", 0), 5),
            (series(HEAD_GAUGE, "t", 0), 105),
            (series(COMMITTED_GAUGE, "t", 0), 100),
            (series(LAG_GAUGE, "t", 1), 7),
            (series(HEAD_GAUGE, "t", 1), 7),
            ("kafka_other{topic=\"t\",partition=\"2\"}".to_owned(), 1),
            ("kafka_consumer_lag{topic=\"t\"}".to_owned(), 1),
            ("retried".to_owned(), 3),
        ]);
        let two = BTreeMap::from([
            (series(LAG_GAUGE, "t", 0), 2),
            (series(HEAD_GAUGE, "t", 0), 110),
            (series(COMMITTED_GAUGE, "t", 0), 108),
            (series(HEAD_GAUGE, "u", 9), 40),
            (series(COMMITTED_GAUGE, "u", 9), 30),
        ]);
        let mut lags = Lags::default();
        lags.add(one.iter().map(|(k, v)| (k.as_str(), *v)));
        lags.add(two.iter().map(|(k, v)| (k.as_str(), *v)));
        let got = lags.finish("s");
        let p = |topic: &str, partition, committed, head, lag| PartitionLag {
            topic: topic.into(),
            partition,
            committed,
            head,
            lag,
        };
        assert_eq!(
            got,
            vec![
                p("t", 0, Some(108), 110, 5),
                p("t", 1, None, 7, 7),
                p("u", 9, Some(30), 40, 10),
            ]
        );
    }

    #[test]
    fn partitions_are_bounded() {
        let mut lags = Lags::default();
        for i in 0..(MAX_LAGS as u32 + 5) {
            lags.merge(PartitionLag {
                topic: "t".into(),
                partition: i,
                committed: None,
                head: 1,
                lag: 1,
            });
        }
        assert_eq!(lags.dropped, 5);
        assert_eq!(lags.finish("s").len(), MAX_LAGS);
    }
}
