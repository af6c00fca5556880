//! Test helpers: a real broker shared by a test binary, producing and reading committed
//! offsets with rdkafka, and a `gate` bolt that records what it gets and acks, fails or
//! holds it as the test says. Every wait is bounded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_testenv::KafkaBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use squall_components::Builtins;
use squall_engine::{
    Bolt, BoltOutput, ComponentError, ComponentFactory, EngineOptions, Snapshot, Spout, TaskContext,
    Topology, Tuple, Value, Waker,
};
use squall_model::{validate, ComponentPlan, TopologyManifest};

/// One broker for the whole test binary (tests use topics and groups of their own). The
/// broker's watchdog kills it when the binary exits.
pub fn broker() -> &'static KafkaBroker {
    static BROKER: OnceLock<KafkaBroker> = OnceLock::new();
    BROKER.get_or_init(|| KafkaBroker::start().unwrap_or_else(|e| panic!("starting the Kafka broker: {e}")))
}

/// Writes `values` to `topic` (partition `partition`, or the partitioner's choice), and
/// waits until the broker acknowledged them all.
pub fn produce(bootstrap: &str, topic: &str, partition: Option<i32>, values: &[Vec<u8>]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for v in values {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(v.as_slice());
        if let Some(part) = partition {
            r = r.partition(part);
        }
        let mut r = Some(r);
        while let Some(rec) = r.take() {
            if let Err((e, rec)) = p.send(rec) {
                assert!(format!("{e}").contains("Queue full"), "{e}");
                p.poll(Duration::from_millis(10));
                r = Some(rec);
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Text values `prefix-0` ... `prefix-(n-1)`.
pub fn texts(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{prefix}-{i}").into_bytes()).collect()
}

/// The group's committed offsets of these partitions (`None`: nothing committed).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: &[i32]) -> Vec<Option<i64>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    // A busy broker may still be loading the group's coordinator: that answer is retried.
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        match c.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(got) => break got,
            Err(e) if Instant::now() < deadline && is_transient(&e) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("committed offsets of {group} on {topic}: {e}"),
        }
    };
    partitions
        .iter()
        .map(|p| match got.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

fn is_transient(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
        )
    )
}

/// Waits until `done` holds, or panics after `limit` naming `what` and the last value.
pub fn wait_until<T: std::fmt::Debug>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let v = probe();
        if done(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}; last: {v:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the gate does with a delivery of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Ack,
    /// Fail the first n deliveries, then ack.
    FailTimes(u32),
    /// Fail every delivery.
    FailAlways,
    /// Keep the tuple un-acked until released.
    Hold,
}

/// One tuple the gate got.
#[derive(Clone, Debug)]
pub struct Seen {
    pub stream: String,
    pub task: i32,
    pub values: Vec<Value>,
    pub fields: Vec<String>,
    pub at: Instant,
}

impl Seen {
    pub fn int(&self, field: &str) -> i64 {
        let i = self.fields.iter().position(|f| f == field).unwrap();
        self.values[i].as_i64().unwrap()
    }

    pub fn text(&self, field: &str) -> String {
        let i = self.fields.iter().position(|f| f == field).unwrap();
        self.values[i].as_str().unwrap_or("").to_owned()
    }

    /// (partition, offset).
    pub fn coords(&self) -> (i64, i64) {
        (self.int("partition"), self.int("offset"))
    }
}

/// The gate's shared state, which the test reads and steers.
#[derive(Default)]
pub struct Gate {
    pub seen: Mutex<Vec<Seen>>,
    /// By (partition, offset); absent: ack.
    pub actions: Mutex<HashMap<(i64, i64), Action>>,
    released: Mutex<HashSet<(i64, i64)>>,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn default_stream(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.stream == "default")
            .collect()
    }

    pub fn set(&self, partition: i64, offset: i64, a: Action) {
        self.actions.lock().unwrap().insert((partition, offset), a);
    }

    /// Acks the held tuple of (partition, offset) at the gate's next poll.
    pub fn release(&self, partition: i64, offset: i64) {
        self.actions
            .lock()
            .unwrap()
            .insert((partition, offset), Action::Ack);
        self.released.lock().unwrap().insert((partition, offset));
        if let Some(w) = self.waker.lock().unwrap().as_ref() {
            w.wake();
        }
    }
}

struct GateBolt {
    gate: Arc<Gate>,
    held: Vec<((i64, i64), Tuple)>,
    deliveries: HashMap<(i64, i64), u32>,
}

impl Bolt for GateBolt {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        *self.gate.waker.lock().unwrap() = Some(ctx.waker.clone());
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            return Ok(());
        }
        let seen = Seen {
            stream: input.source_stream().to_owned(),
            task: input.source_task(),
            values: input.values().to_vec(),
            fields: input.fields().to_vec(),
            at: Instant::now(),
        };
        let key = match (input.field("partition"), input.field("offset")) {
            (Some(Value::Int(p)), Some(Value::Int(o))) => (*p, *o),
            _ => (-1, -1),
        };
        self.gate.seen.lock().unwrap().push(seen);
        let n = self.deliveries.entry(key).or_insert(0);
        *n += 1;
        let action = self
            .gate
            .actions
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(Action::Ack);
        match action {
            Action::Ack => out.ack(input),
            Action::FailTimes(k) if *n <= k => out.fail(input),
            Action::FailTimes(_) => out.ack(input),
            Action::FailAlways => out.fail(input),
            Action::Hold => self.held.push((key, input)),
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let released = std::mem::take(&mut *self.gate.released.lock().unwrap());
        let (go, keep): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(k, _)| released.contains(k));
        self.held = keep;
        for (_, t) in go {
            out.ack(t);
        }
        Ok(())
    }
}

/// Builtins, with every bolt named `gate` built as a [`GateBolt`] on `gate`.
pub struct TestFactory {
    pub gate: Arc<Gate>,
}

impl ComponentFactory for TestFactory {
    fn spout(&self, c: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError> {
        Builtins.spout(c)
    }

    fn bolt(&self, c: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError> {
        if c.name == "gate" {
            return Ok(Box::new(GateBolt {
                gate: Arc::clone(&self.gate),
                held: Vec::new(),
                deliveries: HashMap::new(),
            }));
        }
        Builtins.bolt(c)
    }

    fn cooperative(&self, c: &ComponentPlan) -> bool {
        c.name != "gate" && Builtins.cooperative(c)
    }
}

/// A topology of a `kafka` spout (this config, `tasks` tasks) into the gate (both
/// streams).
pub fn start_spout(name: &str, tasks: usize, config: serde_json::Value) -> (Topology, Arc<Gate>) {
    let yaml = format!(
        r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: {name}}}
spec:
  ackers: 1
  messageTimeoutSeconds: 120
  spouts:
    - name: kafka
      component: kafka
      parallelism: {tasks}
      config: {config}
  bolts:
    - name: gate
      component: "null"
      inputs:
        - {{from: kafka, grouping: {{type: shuffle}}}}
        - {{from: kafka, stream: errors, grouping: {{type: shuffle}}}}
"#
    );
    let m = TopologyManifest::from_yaml(&yaml, "test").unwrap();
    let plan = validate(&m, &Builtins).unwrap_or_else(|e| panic!("{e}"));
    let gate = Arc::new(Gate::default());
    let factory = TestFactory {
        gate: Arc::clone(&gate),
    };
    let t = Topology::start(&plan, Arc::new(factory), EngineOptions::from_plan(&plan)).unwrap();
    (t, gate)
}

pub fn custom(s: &Snapshot, component: &str, counter: &str) -> u64 {
    s.component(component)
        .and_then(|c| c.custom.get(counter).copied())
        .unwrap_or(0)
}

pub fn gauge(s: &Snapshot, component: &str, series: &str) -> Option<u64> {
    s.component(component).and_then(|c| c.gauges.get(series).copied())
}

/// A topology from YAML, built with Builtins.
pub fn start_yaml(yaml: &str) -> Topology {
    let m = TopologyManifest::from_yaml(yaml, "test").unwrap();
    let plan = validate(&m, &Builtins).unwrap_or_else(|e| panic!("{e}"));
    Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).unwrap()
}

/// Every (key, value) of `topic`'s partitions, read from the start until `n` arrived (or
/// `limit` passed).
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    n: usize,
    limit: Duration,
) -> Vec<(Option<String>, String)> {
    use rdkafka::Message;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            out.push((text(m.key()), text(m.payload()).unwrap_or_default()));
        }
    }
    out
}
