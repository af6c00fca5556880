//! `redis-counter`'s exactly-once mode against a real redis-server: the batch script
//! (through [`Applier`], what the bolt calls per flush) under replays, duplicates, out of
//! order deliveries, two tasks sharing a source, a Redis restart, and a property test
//! over random interleavings of all of these.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use squall_connectors::redis_counter::exactly_once::{
    Applied, Applier, ApplyError, Identities, RecordId, Sources,
};
use squall_connectors::resp::{Connection, Reply};
use support::RedisServer;

type Counts = BTreeMap<String, BTreeMap<String, f64>>;

const NOW: &str = "1700000000";

fn connect(redis: &RedisServer) -> Connection {
    Connection::open(&redis.addr(), Duration::from_secs(5)).unwrap()
}

/// A tuple's identity, its source as text (the counter's [`RecordId`] numbers it).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Id {
    source: String,
    offset: u64,
    floor: u64,
    index: Option<u64>,
}

/// Tuples per record the tests' appliers take.
const TUPLES: u32 = 16;

fn applier(prefix: &str, aggregate: bool) -> Applier {
    Applier::new(prefix, aggregate, TUPLES)
}

fn id(source: &str, offset: u64, floor: u64, index: Option<u64>) -> Id {
    Id {
        source: source.to_owned(),
        offset,
        floor,
        index,
    }
}

/// One tuple: a `category_value` key and its identity.
#[derive(Clone, Debug)]
struct Item {
    key: String,
    id: Id,
}

fn apply(applier: &mut Applier, conn: &mut Connection, items: &[Item]) -> Result<Applied, ApplyError> {
    let mut sources = Sources::default();
    let batch: Vec<(&str, RecordId)> = items
        .iter()
        .map(|i| {
            let id = RecordId {
                source: sources.intern(&i.id.source),
                offset: i.id.offset,
                floor: i.id.floor,
                index: i.id.index.unwrap_or(0) as u32,
            };
            (i.key.as_str(), id)
        })
        .collect();
    applier.apply(conn, &sources, &batch, NOW)
}

/// The counters' sets a set of keys writes (`action_x` counts in `actions`).
fn sets_of<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    keys.into_iter()
        .filter_map(|k| k.split_once('_'))
        .map(|(c, _)| {
            if c == "action" {
                "actions".to_owned()
            } else {
                c.to_owned()
            }
        })
        .collect()
}

/// What counting each key once gives.
fn expected<'a>(keys: impl IntoIterator<Item = &'a str>) -> Counts {
    let mut out = Counts::new();
    for key in keys {
        let Some((c, v)) = key.split_once('_') else {
            continue;
        };
        let set = if c == "action" { "actions" } else { c };
        *out.entry(set.to_owned())
            .or_default()
            .entry(v.to_owned())
            .or_default() += 1.0;
    }
    out
}

fn read_counts(redis: &RedisServer, prefix: &str, sets: &BTreeSet<String>) -> Counts {
    sets.iter()
        .map(|s| (s.clone(), redis.zset(&format!("{prefix}{s}"))))
        .filter(|(_, m)| !m.is_empty())
        .collect()
}

/// A record's keys: one to four from a small vocabulary, so that sets and members repeat
/// across records (what `aggregate` merges).
fn record_keys(seed: u64) -> Vec<String> {
    let n = 1 + (seed % 4) as usize;
    let vocab = [
        "country_France",
        "country_Côte d'Ivoire",
        "bot_human",
        "action_edit",
        "action_create",
        "anon_anon",
    ];
    (0..n)
        .map(|i| vocab[(mix(seed.wrapping_add(i as u64)) % vocab.len() as u64) as usize].to_owned())
        .collect()
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The tuples of record `offset` of `source`, emitted with `floor`.
fn record(source: &str, offset: u64, floor: u64) -> Vec<Item> {
    record_keys(offset.wrapping_mul(31).wrapping_add(source.len() as u64))
        .into_iter()
        .enumerate()
        .map(|(i, key)| Item {
            key,
            id: id(source, offset, floor, Some(i as u64)),
        })
        .collect()
}

/// The keys matching a pattern.
fn keys_like(redis: &RedisServer, pattern: &str) -> BTreeSet<String> {
    match redis.command(&[b"KEYS", pattern.as_bytes()]) {
        Reply::Array(Some(r)) => r
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
                other => panic!("KEYS {pattern}: {other:?}"),
            })
            .collect(),
        other => panic!("KEYS {pattern}: {other:?}"),
    }
}

fn hget(redis: &RedisServer, key: &str, field: &str) -> Option<String> {
    match redis.command(&[b"HGET", key.as_bytes(), field.as_bytes()]) {
        Reply::Bulk(b) => b.map(|b| String::from_utf8(b).unwrap()),
        other => panic!("HGET {key} {field}: {other:?}"),
    }
}

fn getbit(redis: &RedisServer, key: &str, bit: u64) -> i64 {
    match redis.command(&[b"GETBIT", key.as_bytes(), bit.to_string().as_bytes()]) {
        Reply::Int(n) => n,
        other => panic!("GETBIT {key} {bit}: {other:?}"),
    }
}

#[test]
fn the_same_batch_applied_twice_counts_once() {
    let redis = RedisServer::start_on("127.0.0.21", false);
    let mut conn = connect(&redis);
    for aggregate in [true, false] {
        let prefix = format!("agg{aggregate}:");
        let mut applier = applier(&prefix, aggregate);
        let items: Vec<Item> = (0..50).flat_map(|o| record("edits:0", o, 0)).collect();
        let n = items.len() as u64;
        let first = apply(&mut applier, &mut conn, &items).unwrap();
        assert_eq!(
            first,
            Applied {
                applied: n,
                skipped: 0
            }
        );
        let again = apply(&mut applier, &mut conn, &items).unwrap();
        assert_eq!(
            again,
            Applied {
                applied: 0,
                skipped: n
            }
        );
        // Duplicates within one batch count once too.
        let mut doubled = items.clone();
        doubled.extend(record("edits:0", 50, 0));
        doubled.extend(record("edits:0", 50, 0));
        let third = apply(&mut applier, &mut conn, &doubled).unwrap();
        let fresh = record("edits:0", 50, 0).len() as u64;
        assert_eq!(
            third,
            Applied {
                applied: fresh,
                skipped: n + fresh
            }
        );
        let r50 = record("edits:0", 50, 0);
        let keys: Vec<&str> = items.iter().chain(&r50).map(|i| i.key.as_str()).collect();
        assert_eq!(
            read_counts(&redis, &prefix, &sets_of(keys.iter().copied())),
            expected(keys.iter().copied()),
            "aggregate {aggregate}"
        );
        // The talk's layout: the time stamps of actions, in their own set.
        let stamped: BTreeMap<String, f64> = redis.zset(&format!("{prefix}action"));
        assert_eq!(stamped.keys().collect::<Vec<_>>(), ["create", "edit"]);
        assert!(stamped.values().all(|t| *t == 1_700_000_000.0));
    }
}

#[test]
fn batches_larger_than_the_scripts_chunks_count_once() {
    // The script looks identities up a thousand at a time: duplicates across its chunks,
    // and a batch of several sources, are found all the same.
    let redis = RedisServer::start_on("127.0.0.27", false);
    let mut conn = connect(&redis);
    let mut applier = applier("big:", false);
    let once: Vec<Item> = (0..1_500)
        .flat_map(|o| record(if o % 3 == 0 { "a" } else { "b" }, o, 0))
        .collect();
    let mut batch = once.clone();
    batch.extend(once.iter().rev().take(2_500).cloned());
    let got = apply(&mut applier, &mut conn, &batch).unwrap();
    assert_eq!(
        got,
        Applied {
            applied: once.len() as u64,
            skipped: 2_500
        }
    );
    assert_eq!(
        apply(&mut applier, &mut conn, &batch).unwrap(),
        Applied {
            applied: 0,
            skipped: batch.len() as u64
        }
    );
    let keys: Vec<&str> = once.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        read_counts(&redis, "big:", &sets_of(keys.iter().copied())),
        expected(keys.iter().copied())
    );
}

#[test]
fn replays_after_later_records_are_skipped_and_late_first_deliveries_applied_across_two_tasks() {
    let redis = RedisServer::start_on("127.0.0.22", false);
    // Two counter tasks, each with its own connection and applier, sharing one source.
    let (mut a, mut b) = (applier("t:", true), applier("t:", true));
    let (mut ca, mut cb) = (connect(&redis), connect(&redis));
    let src = "wiki:3";
    // Task A: records 0..10, and only the first two keys of record 10.
    let mut first: Vec<Item> = (0..10).flat_map(|o| record(src, o, 0)).collect();
    let r10 = record(src, 10, 0);
    first.extend(r10.iter().take(2).cloned());
    apply(&mut a, &mut ca, &first).unwrap();
    // Task B, later: records 12..20 emitted after 0..10 were acked (floor 10), before
    // record 11 was ever delivered; then replays of 3 and 7 with their old floor, the
    // whole of record 10 again (its tree failed), and record 11 for the first time, with
    // an old floor: out of order, on the other task.
    let mut second: Vec<Item> = (12..20).flat_map(|o| record(src, o, 10)).collect();
    second.extend(record(src, 3, 0));
    second.extend(record(src, 7, 2));
    second.extend(r10.iter().cloned());
    second.extend(record(src, 11, 5));
    let got = apply(&mut b, &mut cb, &second).unwrap();
    let replayed = (record(src, 3, 0).len() + record(src, 7, 0).len() + r10.len().min(2)) as u64;
    assert_eq!(
        got.skipped, replayed,
        "replays skipped; new tuples applied: {got:?}"
    );
    assert_eq!(got.applied, second.len() as u64 - replayed);
    // Later deliveries below the raised floor are skipped without their members.
    let late = apply(&mut a, &mut ca, &record(src, 4, 0)).unwrap();
    assert_eq!(late.applied, 0);
    let all: Vec<Item> = (0..20).flat_map(|o| record(src, o, 0)).collect();
    let keys: Vec<&str> = all.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        read_counts(&redis, "t:", &sets_of(keys.iter().copied())),
        expected(keys.iter().copied())
    );
    // The floor is the highest seen (10); offsets 0 to 19 fit in chunk 0, which holds it.
    let state = format!("t:squall:eo:{{{src}}}");
    assert_eq!(hget(&redis, &state, "floor").as_deref(), Some("10"));
    assert_eq!(
        keys_like(&redis, "t:squall:eo:*"),
        BTreeSet::from([state.clone(), format!("{state}:0")])
    );
}

#[test]
fn floor_trimming_keeps_the_state_bounded() {
    let redis = RedisServer::start_on("127.0.0.23", false);
    let mut conn = connect(&redis);
    // 1024 bits an offset: 64 offsets a chunk, so the floor passes many chunks.
    let mut applier = Applier::new("b:", true, 1024);
    let state = "b:squall:eo:{s:0}";
    let (batch, records) = (50u64, 5_000u64);
    let mut largest = 0;
    let mut all_keys: Vec<String> = Vec::new();
    for start in (0..records).step_by(batch as usize) {
        // Every earlier batch was acked when this one was emitted: floor = its start.
        let items: Vec<Item> = (start..start + batch)
            .flat_map(|o| record("s:0", o, start))
            .collect();
        all_keys.extend(items.iter().map(|i| i.key.clone()));
        apply(&mut applier, &mut conn, &items).unwrap();
        // Only the chunks at or above the floor: at most the two a batch spans.
        let chunks = keys_like(&redis, &format!("{state}:*"));
        let floor_chunk = start / 64;
        assert!(
            chunks
                .iter()
                .all(|k| k.rsplit(':').next().unwrap().parse::<u64>().unwrap() >= floor_chunk),
            "chunks below the floor's ({floor_chunk}) kept: {chunks:?}"
        );
        largest = largest.max(chunks.len());
    }
    assert!(largest <= 2, "{largest} chunks kept at once");
    assert_eq!(
        hget(&redis, state, "floor").as_deref(),
        Some((records - batch).to_string().as_str())
    );
    assert_eq!(
        hget(&redis, state, "top").as_deref(),
        Some(((records - 1) / 64).to_string().as_str())
    );
    let keys: Vec<&str> = all_keys.iter().map(String::as_str).collect();
    assert_eq!(
        read_counts(&redis, "b:", &sets_of(keys.iter().copied())),
        expected(keys.iter().copied())
    );
}

#[test]
fn each_tuple_is_one_bit_of_its_sources_chunk() {
    let redis = RedisServer::start_on("127.0.0.28", false);
    let mut conn = connect(&redis);
    // 16 bits an offset, 4096 offsets a chunk: offsets 4095 and 4096 are in chunks 0 and 1.
    let mut applier = applier("pos:", true);
    let items = vec![
        Item {
            key: "bot_human".into(),
            id: id("e:1", 4095, 0, Some(15)),
        },
        Item {
            key: "bot_bot".into(),
            id: id("e:1", 4096, 0, Some(0)),
        },
        Item {
            key: "anon_anon".into(),
            id: id("e:1", 4096, 0, Some(3)),
        },
    ];
    let record_id = |offset, index| RecordId {
        source: 0,
        offset,
        floor: 0,
        index,
    };
    assert_eq!(applier.bit_of(&record_id(4095, 15)), (0, 4095 * 16 + 15));
    assert_eq!(applier.bit_of(&record_id(4096, 0)), (1, 0));
    assert_eq!(applier.bit_of(&record_id(4096, 3)), (1, 3));
    assert_eq!(applier.key_of("e:1", Some(1)), "pos:squall:eo:{e:1}:1");
    assert_eq!(apply(&mut applier, &mut conn, &items).unwrap().applied, 3);
    assert_eq!(getbit(&redis, "pos:squall:eo:{e:1}:0", 4095 * 16 + 15), 1);
    assert_eq!(getbit(&redis, "pos:squall:eo:{e:1}:0", 4095 * 16 + 14), 0);
    assert_eq!(getbit(&redis, "pos:squall:eo:{e:1}:1", 0), 1);
    assert_eq!(getbit(&redis, "pos:squall:eo:{e:1}:1", 3), 1);
    assert_eq!(getbit(&redis, "pos:squall:eo:{e:1}:1", 1), 0);
    // Index 1 of offset 4096 is a different tuple: applied; the others skipped.
    let mut more = items.clone();
    more.push(Item {
        key: "bot_human".into(),
        id: id("e:1", 4096, 0, Some(1)),
    });
    assert_eq!(
        apply(&mut applier, &mut conn, &more).unwrap(),
        Applied {
            applied: 1,
            skipped: 3
        }
    );
    // Raising the floor to 4096 deletes chunk 0 (wholly below it), keeps chunk 1.
    let raise = vec![Item {
        key: "bot_bot".into(),
        id: id("e:1", 4100, 4096, Some(0)),
    }];
    apply(&mut applier, &mut conn, &raise).unwrap();
    assert_eq!(
        keys_like(&redis, "pos:squall:eo:*"),
        BTreeSet::from([
            "pos:squall:eo:{e:1}".to_owned(),
            "pos:squall:eo:{e:1}:1".to_owned()
        ])
    );
    // A replay below the floor is skipped and recreates nothing.
    assert_eq!(
        apply(&mut applier, &mut conn, &items[..1]).unwrap(),
        Applied {
            applied: 0,
            skipped: 1
        }
    );
    assert_eq!(keys_like(&redis, "pos:squall:eo:*").len(), 2);
    let counted: Vec<&str> = ["bot_human", "bot_bot", "anon_anon", "bot_human", "bot_bot"].to_vec();
    assert_eq!(
        read_counts(&redis, "pos:", &sets_of(counted.iter().copied())),
        expected(counted.iter().copied())
    );
}

#[test]
fn a_floor_inside_a_byte_and_a_span_of_several_slices() {
    let redis = RedisServer::start_on("127.0.0.30", false);
    let mut conn = connect(&redis);
    // One bit an offset: offsets 0 to 7 share a byte.
    let mut one = Applier::new("f:", true, 1);
    let at = |offsets: &[u64], floor: u64| -> Vec<Item> {
        offsets
            .iter()
            .map(|&o| Item {
                key: format!("n_{o}"),
                id: id("s", o, floor, None),
            })
            .collect()
    };
    let got = |applier: &mut Applier, conn: &mut Connection, items: Vec<Item>| {
        let a = apply(applier, conn, &items).unwrap();
        (a.applied, a.skipped)
    };
    assert_eq!(got(&mut one, &mut conn, at(&[1, 2], 0)), (2, 0));
    assert_eq!(got(&mut one, &mut conn, at(&[9], 5)), (1, 0));
    // 1 and 3 are below the floor (5): skipped, though 1's bit is in the same byte.
    assert_eq!(got(&mut one, &mut conn, at(&[1, 3, 6, 7], 5)), (2, 2));
    assert_eq!(got(&mut one, &mut conn, at(&[6, 7, 8], 5)), (1, 2));
    let n: BTreeMap<String, f64> = redis.zset("f:n");
    assert_eq!(
        n.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1", "2", "6", "7", "8", "9"],
        "each counted once"
    );
    assert!(n.values().all(|c| *c == 1.0), "{n:?}");
    // 16 bits an offset: offsets 0 to 4095 span 8 KiB, read and written in slices of
    // 4000 bytes; replays are found in every slice.
    let mut wide = applier("g:", true);
    let sparse: Vec<u64> = (0..4096).step_by(7).collect();
    let first = at(&sparse, 0);
    assert_eq!(got(&mut wide, &mut conn, first.clone()), (sparse.len() as u64, 0));
    let mut mixed: Vec<u64> = sparse.iter().step_by(2).copied().collect();
    let old = mixed.len() as u64;
    mixed.extend(sparse.iter().map(|o| o + 1).filter(|o| *o < 4096));
    let new = mixed.len() as u64 - old;
    assert_eq!(got(&mut wide, &mut conn, at(&mixed, 0)), (new, old));
    let counted: BTreeMap<String, f64> = redis.zset("g:n");
    assert_eq!(counted.len() as u64, sparse.len() as u64 + new);
    assert!(counted.values().all(|c| *c == 1.0));
}

#[test]
fn an_index_over_the_stride_is_refused_before_anything_is_written() {
    let redis = RedisServer::start_on("127.0.0.29", false);
    let mut conn = connect(&redis);
    let mut applier = Applier::new("st:", true, 4);
    let items = vec![
        Item {
            key: "bot_human".into(),
            id: id("s", 7, 0, Some(0)),
        },
        Item {
            key: "bot_bot".into(),
            id: id("s", 7, 0, Some(4)),
        },
    ];
    match apply(&mut applier, &mut conn, &items) {
        Err(ApplyError::Invalid(e)) => assert!(e.contains("tuples_per_record (4)"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(keys_like(&redis, "st:*").is_empty(), "nothing written");
    // The same source's bits written with another stride refuse the batch: bit 7 * 4 + 1
    // of one stride is another tuple's bit in the other.
    assert_eq!(apply(&mut applier, &mut conn, &items[..1]).unwrap().applied, 1);
    let mut wider = Applier::new("st:", true, 8);
    let other = vec![Item {
        key: "anon_anon".into(),
        id: id("s", 8, 0, Some(5)),
    }];
    match apply(&mut wider, &mut conn, &other) {
        Err(ApplyError::Refused(e)) => assert!(e.contains("holds bits of 4 tuples per record, not 8"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(redis.zset("st:anon").is_empty(), "nothing written");
}

#[test]
fn tuples_without_a_usable_identity_are_errors_not_panics() {
    use squall_catalog::redis_counter::ExactlyOnceConfig;
    use squall_engine::{Tuple, Value, Values};
    let config = ExactlyOnceConfig {
        source: vec!["topic".into(), "partition".into()],
        offset: "offset".into(),
        floor: "floor".into(),
        index: Some("index".into()),
        tuples_per_record: 8,
    };
    let mut ids = Identities::new(&config);
    let tuple = |values: Vec<Value>| {
        Tuple::detached(
            "parser",
            "default",
            &["key", "topic", "partition", "offset", "floor", "index"][..values.len()],
            values.into_iter().collect::<Values>(),
        )
    };
    let good = tuple(vec![
        Value::from_static("country_France"),
        Value::from_static("a:b\\c"),
        Value::Int(3),
        Value::Int(42),
        Value::Int(40),
        Value::Int(1),
    ]);
    let got = ids.of(&good).unwrap();
    assert_eq!(
        (ids.sources().text(got.source), got.offset, got.floor, got.index),
        (Some("a\\:b\\\\c:3"), 42, 40, 1),
        "text escaped, so sources stay distinct"
    );
    assert_eq!(ids.of(&good).unwrap(), got, "the same source, named once");
    assert_eq!(ids.sources().len(), 1);
    let mut err = |values: Vec<Value>| ids.of(&tuple(values)).unwrap_err();
    let base = || {
        vec![
            Value::from_static("k_v"),
            Value::from_static("t"),
            Value::Int(0),
            Value::Int(1),
            Value::Int(0),
            Value::Int(0),
        ]
    };
    assert!(err(base()[..4].to_vec()).starts_with("no identity field \"floor\" in input from parser/default"));
    let mut v = base();
    v[3] = Value::from_static("12");
    assert!(err(v).starts_with("identity field \"offset\" is Str"));
    let mut v = base();
    v[4] = Value::Int(-1);
    assert!(err(v).contains("not an integer from 0 to 9007199254740992"));
    let mut v = base();
    v[3] = Value::Int(i64::MAX);
    assert!(err(v).contains("\"offset\""));
    let mut v = base();
    v[2] = Value::Float(1.0);
    assert!(err(v).starts_with("source field \"partition\" is Float"));
    // An index the counter cannot tell apart from another record's tuple.
    let mut v = base();
    v[5] = Value::Int(8);
    assert_eq!(
        err(v),
        "identity field \"index\" is 8, not below exactly_once.tuples_per_record (8): its record gives more \
         tuples than the counter can tell apart; raise tuples_per_record"
    );
}

#[test]
fn a_wrong_key_type_refuses_the_whole_batch_and_writes_nothing() {
    let redis = RedisServer::start_on("127.0.0.24", false);
    let mut conn = connect(&redis);
    redis.command(&[b"SET", b"w:bot", b"not a sorted set"]);
    let mut applier = applier("w:", true);
    let items: Vec<Item> = vec![
        Item {
            key: "country_France".into(),
            id: id("s", 0, 0, Some(0)),
        },
        Item {
            key: "bot_human".into(),
            id: id("s", 0, 0, Some(1)),
        },
    ];
    match apply(&mut applier, &mut conn, &items) {
        Err(ApplyError::Refused(e)) => assert!(e.starts_with("WRONGTYPE w:bot holds a string"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(redis.zset("w:country").is_empty(), "nothing written");
    assert!(
        keys_like(&redis, "w:squall:eo:*").is_empty(),
        "no identity recorded"
    );
    // A bitmap or a state of the wrong type refuses it too.
    for (key, value) in [("w:squall:eo:{s}:0", "ZADD"), ("w:squall:eo:{s}", "SET")] {
        redis.command(&[b"DEL", b"w:bot"]);
        if value == "ZADD" {
            redis.command(&[b"ZADD", key.as_bytes(), b"1", b"x"]);
        } else {
            redis.command(&[b"SET", key.as_bytes(), b"x"]);
        }
        match apply(&mut applier, &mut conn, &items) {
            Err(ApplyError::Refused(e)) => {
                assert!(e.starts_with(&format!("WRONGTYPE {key} holds a ")), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(redis.zset("w:country").is_empty(), "nothing written");
        redis.command(&[b"DEL", key.as_bytes()]);
    }
    // Fixed, the replay applies all of it.
    redis.command(&[b"DEL", b"w:bot"]);
    assert_eq!(apply(&mut applier, &mut conn, &items).unwrap().applied, 2);
    // A server that lost its script cache gets the script again (NOSCRIPT → EVAL).
    redis.command(&[b"SCRIPT", b"FLUSH"]);
    assert_eq!(apply(&mut applier, &mut conn, &items).unwrap().skipped, 2);
}

/// Applies `batches` in order from a thread that retries each failed batch on a new
/// connection (as the spout replays and the bolt reconnects); some successful batches are
/// also replayed, as if their reply had been lost.
fn apply_with_retries(
    redis_addr: squall_connectors::resp::RedisAddr,
    batches: Vec<Vec<Item>>,
    progress: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
) -> u64 {
    let mut applier = applier("r:", true);
    let mut conn: Option<Connection> = None;
    let mut skipped = 0;
    for (n, batch) in batches.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "batch {n} never applied");
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match Connection::open(&redis_addr, Duration::from_secs(2)) {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
            };
            match apply(&mut applier, c, batch) {
                Ok(a) => {
                    skipped += a.skipped;
                    if n % 7 == 3 {
                        // The reply "lost": replayed, all skipped.
                        let again = apply(&mut applier, c, batch);
                        if let Ok(a) = again {
                            assert_eq!(a.applied, 0);
                            skipped += a.skipped;
                        }
                    }
                    break;
                }
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
            }
        }
        progress.store(n as u64 + 1, Ordering::Relaxed);
        // Paced, so that the restart lands mid-stream even on a loaded machine.
        std::thread::sleep(Duration::from_millis(2));
    }
    skipped
}

#[test]
fn a_redis_restart_mid_stream_with_replays_gives_exact_counts() {
    let mut redis = RedisServer::start_on("127.0.0.25", true);
    // Two sources, batches of 40 records, floors as a spout acking in order would give.
    let mut batches = Vec::new();
    let mut all_keys = Vec::new();
    for b in 0..300u64 {
        let src = if b % 2 == 0 { "k:0" } else { "k:1" };
        let start = (b / 2) * 40;
        let items: Vec<Item> = (start..start + 40)
            .flat_map(|o| record(src, o, start.saturating_sub(40)))
            .collect();
        all_keys.extend(items.iter().map(|i| i.key.clone()));
        batches.push(items);
    }
    let progress = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let worker = {
        let (addr, p, f) = (redis.addr(), Arc::clone(&progress), Arc::clone(&failures));
        std::thread::spawn(move || apply_with_retries(addr, batches, p, f))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while progress.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    redis.kill();
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    let skipped = worker.join().unwrap();
    assert!(failures.load(Ordering::Relaxed) > 0, "the restart failed batches");
    assert!(skipped > 0, "replays were skipped");
    let keys: Vec<&str> = all_keys.iter().map(String::as_str).collect();
    assert_eq!(
        read_counts(&redis, "r:", &sets_of(keys.iter().copied())),
        expected(keys.iter().copied())
    );
}

/// One tuple in flight to the counter: which tree of its record it belongs to.
#[derive(Clone, Debug)]
struct Delivery {
    item: Item,
    tree: u64,
}

/// A spout's view of one record: its current tree and the tuples of it not yet acked.
#[derive(Clone, Debug, Default)]
struct RecordState {
    tree: u64,
    unacked: BTreeSet<u64>,
    done: bool,
    emitted: bool,
}

/// Parameters of one random run.
#[derive(Clone, Debug)]
struct Run {
    seed: u64,
    sources: usize,
    records: u64,
    tasks: usize,
    max_batch: usize,
    fail_percent: u64,
    lost_percent: u64,
    timeout_percent: u64,
    aggregate: bool,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Storm's at-least-once, simulated: records emitted in order per source with the floor of
/// their source (one past its contiguous completed records), the counter's tuples
/// delivered in random batches to random tasks, batches failed before Redis saw them or
/// after (the reply lost), trees timed out and replayed while their tuples are still in
/// flight. Ends when every record is complete and every stale tuple delivered.
fn simulate(redis: &RedisServer, prefix: &str, run: &Run) -> (Counts, Counts) {
    let mut rng = Rng(run.seed);
    let sources: Vec<String> = (0..run.sources).map(|s| format!("topic:{s}")).collect();
    let mut state: Vec<Vec<RecordState>> =
        vec![vec![RecordState::default(); run.records as usize]; run.sources];
    let mut next_emit = vec![0u64; run.sources];
    let mut in_flight: Vec<Delivery> = Vec::new();
    let mut appliers: Vec<(Applier, Connection)> = (0..run.tasks)
        .map(|_| (applier(prefix, run.aggregate), connect(redis)))
        .collect();
    let floor = |st: &Vec<RecordState>| st.iter().position(|r| !r.done).unwrap_or(st.len()) as u64;
    let emit = |st: &mut RecordState, s: usize, o: u64, f: u64, in_flight: &mut Vec<Delivery>, tree: u64| {
        st.tree = tree;
        st.emitted = true;
        let items = record(&sources[s], o, f);
        st.unacked = (0..items.len() as u64).collect();
        in_flight.extend(items.into_iter().map(|item| Delivery { item, tree }));
    };
    let mut trees = 0u64;
    let mut steps = 0u64;
    loop {
        steps += 1;
        assert!(steps < 1_000_000, "the simulation does not end");
        let all_done = state.iter().all(|st| st.iter().all(|r| r.done));
        if all_done && in_flight.is_empty() {
            break;
        }
        let choice = rng.below(10);
        if choice < 3 {
            // Emit the next record of a source (up to 8 records pending per source).
            let s = rng.below(run.sources as u64) as usize;
            let o = next_emit[s];
            let pending = state[s].iter().filter(|r| r.emitted && !r.done).count();
            if o < run.records && pending < 8 {
                trees += 1;
                let f = floor(&state[s]);
                emit(&mut state[s][o as usize], s, o, f, &mut in_flight, trees);
                next_emit[s] += 1;
                continue;
            }
        }
        if choice == 3 && rng.below(100) < run.timeout_percent {
            // A tree times out: the record is replayed while its tuples are still in flight.
            let live: Vec<(usize, u64)> = (0..run.sources)
                .flat_map(|s| (0..run.records).map(move |o| (s, o)))
                .filter(|(s, o)| state[*s][*o as usize].emitted && !state[*s][*o as usize].done)
                .collect();
            if !live.is_empty() {
                let (s, o) = live[rng.below(live.len() as u64) as usize];
                trees += 1;
                let f = floor(&state[s]);
                emit(&mut state[s][o as usize], s, o, f, &mut in_flight, trees);
                continue;
            }
        }
        if in_flight.is_empty() {
            continue;
        }
        // Deliver a random batch to a random task.
        let n = 1 + rng.below(run.max_batch.min(in_flight.len()) as u64) as usize;
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let i = rng.below(in_flight.len() as u64) as usize;
            batch.push(in_flight.swap_remove(i));
        }
        let (applier, conn) = &mut appliers[rng.below(run.tasks as u64) as usize];
        let outcome = rng.below(100);
        let items: Vec<Item> = batch.iter().map(|d| d.item.clone()).collect();
        let acked = if outcome < run.fail_percent {
            false
        } else {
            apply(applier, conn, &items).unwrap();
            outcome >= run.fail_percent + run.lost_percent
        };
        let mut failed: BTreeSet<(usize, u64)> = BTreeSet::new();
        for d in batch {
            let s = sources.iter().position(|x| *x == d.item.id.source).unwrap();
            let o = d.item.id.offset;
            let st = &mut state[s][o as usize];
            if st.done || st.tree != d.tree {
                continue; // a stale tree's tuple: its ack or failure changes nothing
            }
            if acked {
                st.unacked.remove(&d.item.id.index.unwrap());
                if st.unacked.is_empty() {
                    st.done = true;
                }
            } else {
                failed.insert((s, o));
            }
        }
        for (s, o) in failed {
            // The tree failed: the spout replays the record, with the floor of now.
            trees += 1;
            let f = floor(&state[s]);
            emit(&mut state[s][o as usize], s, o, f, &mut in_flight, trees);
        }
    }
    let all: Vec<Item> = sources
        .iter()
        .flat_map(|s| (0..run.records).flat_map(move |o| record(s, o, 0)))
        .collect();
    let keys: Vec<&str> = all.iter().map(|i| i.key.as_str()).collect();
    (
        read_counts(redis, prefix, &sets_of(keys.iter().copied())),
        expected(keys.iter().copied()),
    )
}

#[test]
fn random_interleavings_of_deliveries_duplicates_and_failures_count_exactly_once() {
    let redis = RedisServer::start_on("127.0.0.26", false);
    let strategy = (
        any::<u64>(),
        1usize..=3,
        1u64..=40,
        1usize..=3,
        1usize..=12,
        0u64..=20,
        0u64..=15,
        0u64..=30,
        any::<bool>(),
    )
        .prop_map(
            |(
                seed,
                sources,
                records,
                tasks,
                max_batch,
                fail_percent,
                lost_percent,
                timeout_percent,
                aggregate,
            )| Run {
                seed,
                sources,
                records,
                tasks,
                max_batch,
                fail_percent,
                lost_percent,
                timeout_percent,
                aggregate,
            },
        );
    let mut runner = TestRunner::new(PropConfig {
        cases: 64,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let case = AtomicU64::new(0);
    let result = runner.run(&strategy, |run| {
        let prefix = format!("p{}:", case.fetch_add(1, Ordering::Relaxed));
        let (got, want) = simulate(&redis, &prefix, &run);
        prop_assert_eq!(got, want, "{:?}", run);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
