//! Exactly-once counting end to end, in one process, without Kafka: a test spout that
//! gives stable identities (records of partitions, replayed with the same content under
//! the same offset, with Kafka's floor) → `fail-some` → `json-keys` carrying the identity
//! with an index → `fail-some` → `redis-counter` with `exactly_once`, two tasks → a real
//! redis-server, killed and restarted mid-run. The sorted sets equal the data set's
//! counts exactly; without the mode they are at least those counts (and here more).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use squall_components::Builtins;
use squall_connectors::resp::Reply;
use squall_engine::{
    Bolt, ComponentError, ComponentFactory, EngineOptions, Spout, SpoutOutput, Topology, Value, Values,
};
use squall_feed::{expected_counts, talk_keys, DataSet, Message};
use squall_model::{validate, Catalog, ComponentPlan, Config, KindInfo, StreamSpec, TopologyManifest};
use support::{custom, wait_for, RedisServer};

const RECORDS: &str = "records";
const FIELDS: &[&str] = &["topic", "partition", "offset", "value", "floor"];

/// Records `0..per_partition` of each partition: the data set's event `partition *
/// per_partition + offset`. Like the Kafka spout in `atLeastOnce`: a failed record is
/// replayed with the same content and identity, and `floor` is one past the partition's
/// highest contiguous acked offset.
struct RecordsSpout {
    data: DataSet,
    per_partition: u64,
    next: Vec<u64>,
    acked: Vec<BTreeSet<u64>>,
    floor: Vec<u64>,
    replay: VecDeque<(usize, u64)>,
    turn: usize,
}

impl RecordsSpout {
    fn new(config: &Config) -> Self {
        let get = |k: &str| config.get(k).and_then(serde_json::Value::as_u64).unwrap();
        let partitions = get("partitions") as usize;
        RecordsSpout {
            data: DataSet::new(get("seed")),
            per_partition: get("per_partition"),
            next: vec![0; partitions],
            acked: vec![BTreeSet::new(); partitions],
            floor: vec![0; partitions],
            replay: VecDeque::new(),
            turn: 0,
        }
    }

    fn id(&self, msg_id: &Value) -> (usize, u64) {
        let n = msg_id.as_i64().unwrap() as u64;
        ((n / self.per_partition) as usize, n % self.per_partition)
    }
}

impl Spout for RecordsSpout {
    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        let (p, o) = match self.replay.pop_front() {
            Some(r) => r,
            None => {
                let partitions = self.next.len();
                let Some(p) = (0..partitions)
                    .map(|i| (self.turn + i) % partitions)
                    .find(|p| self.next[*p] < self.per_partition)
                else {
                    return Ok(());
                };
                self.turn = p + 1;
                self.next[p] += 1;
                (p, self.next[p] - 1)
            }
        };
        let n = p as u64 * self.per_partition + o;
        let values: Values = [
            Value::from_static("edits"),
            Value::Int(p as i64),
            Value::Int(o as i64),
            Value::from(self.data.text(n)),
            Value::Int(self.floor[p] as i64),
        ]
        .into_iter()
        .collect();
        out.emit(values, Some(Value::Int(n as i64)))?;
        Ok(())
    }

    fn ack(&mut self, msg_id: Value) {
        let (p, o) = self.id(&msg_id);
        self.acked[p].insert(o);
        while self.acked[p].remove(&self.floor[p]) {
            self.floor[p] += 1;
        }
    }

    fn fail(&mut self, msg_id: Value) {
        let id = self.id(&msg_id);
        self.replay.push_back(id);
    }
}

/// Builtins plus the `records` spout, which gives stable identities.
struct WithRecords;

impl Catalog for WithRecords {
    fn describe(&self, kind: &str, config: &Config) -> Option<Result<KindInfo, String>> {
        match kind {
            RECORDS => Some(Ok(squall_catalog::giving_spout(
                vec![StreamSpec::new("default", FIELDS)],
                true,
            ))),
            _ => Builtins.describe(kind, config),
        }
    }
    fn kinds(&self) -> Vec<String> {
        let mut k = Builtins.kinds();
        k.push(RECORDS.into());
        k
    }
}

impl ComponentFactory for WithRecords {
    fn spout(&self, c: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError> {
        match c.kind.as_str() {
            RECORDS => Ok(Box::new(RecordsSpout::new(&c.config))),
            _ => Builtins.spout(c),
        }
    }
    fn bolt(&self, c: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError> {
        Builtins.bolt(c)
    }
}

const PARTITIONS: u64 = 4;
const PER_PARTITION: u64 = 750;
const SEED: u64 = 5;

fn manifest(redis_url: &str, exactly_once: bool) -> String {
    let eo = if exactly_once {
        "\n        exactly_once: {source: [topic, partition], offset: offset, floor: floor, index: index}"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: exactly-once}}
spec:
  ackers: 1
  messageTimeoutSeconds: 30
  maxSpoutPending: 400
  spouts:
    - name: kafka
      component: records
      config: {{partitions: {PARTITIONS}, per_partition: {PER_PARTITION}, seed: {SEED}}}
  bolts:
    - name: flaky-in
      component: fail-some
      config: {{fail_percent: 3, seed: 1, fields: [topic, partition, offset, value, floor]}}
      inputs: [{{from: kafka}}]
    - name: parser
      component: json-keys
      parallelism: 2
      config:
        field: value
        format: python
        keys:
          - {{prefix: isanon_, path: is_anon}}
          - {{path: is_anon, then: anon_anon, else: anon_loggedin}}
          - {{path: is_bot, then: bot_bot, else: bot_human}}
          - {{prefix: action_, path: action}}
          - {{prefix: country_, path: geo_ip.country_name, optional: true}}
        carry: [topic, partition, offset, floor]
        index: index
      inputs: [{{from: flaky-in}}]
    # Fails some keys after others of the same record were counted: their replays
    # count twice without the mode.
    - name: flaky
      component: fail-some
      parallelism: 2
      config: {{fail_percent: 4, seed: 7, fields: [key, topic, partition, offset, floor, index]}}
      inputs: [{{from: parser}}]
    - name: counts
      component: redis-counter
      parallelism: 2
      config:
        url: {redis_url}
        batch_size: 64
        backoff_initial_ms: 20
        backoff_max_ms: 200{eo}
      inputs: [{{from: flaky, grouping: {{type: fields, fields: [key]}}}}]
"#
    )
}

fn start(redis_url: &str, exactly_once: bool) -> Topology {
    let m = TopologyManifest::from_yaml(&manifest(redis_url, exactly_once), "eo.yaml").unwrap();
    let plan = validate(&m, &WithRecords).unwrap_or_else(|e| panic!("{e}"));
    Topology::start(&plan, Arc::new(WithRecords), EngineOptions::from_plan(&plan)).unwrap()
}

const SETS: &[&str] = &["isanon", "anon", "bot", "actions", "country"];

fn expected() -> BTreeMap<String, BTreeMap<String, f64>> {
    let data = DataSet::new(SEED);
    let mut keys = Vec::new();
    for i in 0..PARTITIONS * PER_PARTITION {
        let Message::Event(e) = data.message(i) else {
            panic!("no malformed events in this data set")
        };
        keys.extend(talk_keys(&e));
    }
    expected_counts(keys.iter().map(String::as_str))
        .into_iter()
        .map(|(s, m)| (s, m.into_iter().map(|(k, n)| (k, n as f64)).collect()))
        .collect()
}

fn counts(redis: &RedisServer) -> BTreeMap<String, BTreeMap<String, f64>> {
    SETS.iter()
        .map(|s| ((*s).to_owned(), redis.zset(s)))
        .filter(|(_, m)| !m.is_empty())
        .collect()
}

/// Runs until every record is acked, killing and restarting Redis once a third is.
fn run(redis: &mut RedisServer, exactly_once: bool) -> squall_engine::Snapshot {
    let total = PARTITIONS * PER_PARTITION;
    let topology = start(&redis.url(), exactly_once);
    wait_for(
        &topology,
        Duration::from_secs(120),
        "a third of the records acked",
        |s| s.component("kafka").unwrap().total.acked > total / 3,
    );
    redis.kill();
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    let s = wait_for(&topology, Duration::from_secs(180), "every record acked", |s| {
        let k = s.component("kafka").unwrap();
        k.total.acked >= total && k.total.pending == 0
    });
    topology.shutdown();
    s
}

#[test]
fn with_exactly_once_the_sets_equal_the_counts_through_failures_and_a_redis_restart() {
    let mut redis = RedisServer::start_on("127.0.0.31", true);
    let s = run(&mut redis, true);
    let kafka = s.component("kafka").unwrap();
    assert_eq!(
        kafka.total.acked,
        PARTITIONS * PER_PARTITION,
        "each record acked once"
    );
    assert!(kafka.total.failed > 0, "failures were injected and replayed");
    assert!(
        custom(&s, "counts", "duplicates") > 0,
        "replays were skipped: {s:#?}"
    );
    assert!(
        custom(&s, "counts", "redis_errors") > 0,
        "the restart failed batches"
    );
    assert_eq!(custom(&s, "counts", "identity_errors"), 0);
    assert_eq!(counts(&redis), expected(), "counts in Redis");
    // The state is bounded by what was in flight: a floor per partition, and its chunks
    // from the floor's on (750 offsets fit in one chunk of 65536 / 16 offsets).
    for p in 0..PARTITIONS {
        let state = format!("squall:eo:{{edits:{p}}}");
        let floor = match redis.command(&[b"HGET", state.as_bytes(), b"floor"]) {
            Reply::Bulk(Some(f)) => String::from_utf8(f).unwrap().parse::<u64>().unwrap(),
            other => panic!("partition {p}: no floor: {other:?}"),
        };
        assert!(floor > 0, "partition {p}: a floor");
        let chunk = format!("{state}:0");
        match redis.command(&[b"STRLEN", chunk.as_bytes()]) {
            Reply::Int(n) => assert!(n <= 750 * 16 / 8, "partition {p}: {n} bytes of bits"),
            other => panic!("STRLEN {chunk}: {other:?}"),
        }
        assert!(
            matches!(
                redis.command(&[b"EXISTS", format!("{state}:1").as_bytes()]),
                Reply::Int(0)
            ),
            "partition {p}: no chunk beyond the offsets"
        );
    }
}

#[test]
fn without_exactly_once_replays_count_again() {
    let mut redis = RedisServer::start_on("127.0.0.32", true);
    let s = run(&mut redis, false);
    assert_eq!(
        s.component("kafka").unwrap().total.acked,
        PARTITIONS * PER_PARTITION
    );
    let (got, want) = (counts(&redis), expected());
    let mut over = 0.0;
    for (set, members) in &want {
        for (member, n) in members {
            let g = got.get(set).and_then(|m| m.get(member)).copied().unwrap_or(0.0);
            assert!(g >= *n, "{set} {member}: {g} < {n}");
            over += g - n;
        }
    }
    assert!(over > 0.0, "the failures after counting made replays count twice");
}

#[test]
fn validation_refuses_exactly_once_behind_a_spout_without_identities() {
    let text = manifest("redis://127.0.0.1:1", true).replace("component: records", "component: sequence");
    let m = TopologyManifest::from_yaml(&text, "eo.yaml").unwrap();
    let err = validate(&m, &WithRecords).unwrap_err().to_string();
    assert!(
        err.contains(
            "spec.bolts[3].config.exactly_once: needs stable record identities, but spout \"kafka\" (spec.spouts[0], kind \"sequence\") feeds it (kafka -> flaky-in -> parser -> flaky -> counts) and cannot give them"
        ),
        "{err}"
    );
}
