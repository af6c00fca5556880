//! Test components and a tiny catalog for whole-topology tests of the engine.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use squall_engine::{
    values, Basic, BasicBolt, Bolt, BoltOutput, ComponentError, ComponentFactory, Spout, SpoutOutput,
    Topology, Tuple, Value,
};
use squall_model::{validate, Catalog, ComponentPlan, Config, KindInfo, Plan, Role, TopologyManifest};

/// What the spouts saw: per message id, how often it was acked and failed.
#[derive(Default)]
pub struct Ledger {
    pub acks: Mutex<BTreeMap<i64, u32>>,
    pub fails: Mutex<BTreeMap<i64, u32>>,
    pub fail_times: Mutex<Vec<Duration>>,
    pub received: AtomicU64,
    pub ticks: AtomicU64,
    pub seen: Mutex<BTreeMap<i64, u32>>,
    /// Whether `gate` bolts may go on, and how many of their calls began.
    pub gate: Mutex<bool>,
    pub gate_cv: Condvar,
    pub gate_entered: AtomicU64,
}

impl Ledger {
    pub fn open_gate(&self) {
        *self.gate.lock().unwrap() = true;
        self.gate_cv.notify_all();
    }
    pub fn acked_ids(&self) -> usize {
        self.acks.lock().unwrap().len()
    }
    pub fn total_fails(&self) -> u32 {
        self.fails.lock().unwrap().values().sum()
    }
}

/// Emits ids 0..count once each, replays failed ids, finished when all are acked.
pub struct ReplaySpout {
    next: i64,
    count: i64,
    replay: VecDeque<i64>,
    outstanding: BTreeMap<i64, Instant>,
    ledger: Arc<Ledger>,
    reliable: bool,
}

impl Spout for ReplaySpout {
    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        let id = match self.replay.pop_front() {
            Some(id) => id,
            None if self.next < self.count => {
                self.next += 1;
                self.next - 1
            }
            None => return Ok(()),
        };
        self.outstanding.insert(id, Instant::now());
        let msg = self.reliable.then_some(Value::Int(id));
        out.emit(values![id], msg)?;
        Ok(())
    }
    fn ack(&mut self, msg_id: Value) {
        let id = msg_id.as_i64().unwrap();
        self.outstanding.remove(&id);
        *self.ledger.acks.lock().unwrap().entry(id).or_default() += 1;
    }
    fn fail(&mut self, msg_id: Value) {
        let id = msg_id.as_i64().unwrap();
        if let Some(t) = self.outstanding.remove(&id) {
            self.ledger.fail_times.lock().unwrap().push(t.elapsed());
        }
        *self.ledger.fails.lock().unwrap().entry(id).or_default() += 1;
        self.replay.push_back(id);
    }
    fn is_finished(&self) -> bool {
        self.next >= self.count && self.replay.is_empty() && self.outstanding.is_empty()
    }
}

/// Re-emits its input; fails or panics on the inputs whose id hashes into the given shares,
/// but only the first time it sees them (so replays succeed eventually).
pub struct Flaky {
    fail_pct: u64,
    panic_pct: u64,
    ledger: Arc<Ledger>,
}

impl BasicBolt for Flaky {
    fn execute(&mut self, input: &Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let id = input.get(0).and_then(Value::as_i64).ok_or("no id")?;
        let times = {
            let mut seen = self.ledger.seen.lock().unwrap();
            let n = seen.entry(id).or_default();
            *n += 1;
            *n
        };
        let h = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        if times == 1 && h % 100 < self.panic_pct {
            panic!("injected panic on id {id}");
        }
        if times == 1 && h % 100 < self.panic_pct + self.fail_pct {
            return Err(ComponentError::new(format!("injected failure on id {id}")));
        }
        out.emit(&[], values![id])?;
        Ok(())
    }
}

/// Counts what it receives, acks everything.
pub struct Sink {
    ledger: Arc<Ledger>,
    delay: Duration,
    ack: bool,
}

impl Bolt for Sink {
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if input.is_tick() {
            self.ledger.ticks.fetch_add(1, Ordering::Relaxed);
            out.ack(input);
            return Ok(());
        }
        self.ledger.received.fetch_add(1, Ordering::Relaxed);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if self.ack {
            out.ack(input);
        }
        Ok(())
    }
}

/// Even ids go out on `default`, odd ones on `odd`.
pub struct Parity;

impl BasicBolt for Parity {
    fn execute(&mut self, input: &Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let id = input.get(0).and_then(Value::as_i64).ok_or("no id")?;
        let stream = if id % 2 == 0 { "default" } else { "odd" };
        out.emit_on(stream, &[], values![id])?;
        Ok(())
    }
}

/// Fails ids divisible by 5, acks the rest.
pub struct Judge;

impl Bolt for Judge {
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let id = input.get(0).and_then(Value::as_i64).ok_or("no id")?;
        if id % 5 == 0 {
            out.fail(input);
        } else {
            out.ack(input);
        }
        Ok(())
    }
}

/// Identity bolt that acks with Basic semantics.
pub struct Pass;

impl BasicBolt for Pass {
    fn execute(&mut self, input: &Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        out.emit(&[], input.values().iter().cloned().collect())?;
        Ok(())
    }
}

/// Routes each id to consumer task `tasks[id % n]` over a direct stream, checking that
/// `emit_direct` reports exactly that task.
pub struct Router {
    targets: Vec<u32>,
}

impl Bolt for Router {
    fn prepare(&mut self, ctx: &squall_engine::TaskContext) -> Result<(), ComponentError> {
        self.targets = ctx.tasks_of("direct-sink").to_vec();
        if self.targets.is_empty() {
            return Err("no direct-sink tasks".into());
        }
        Ok(())
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let id = input.get(0).and_then(Value::as_i64).ok_or("no id")?;
        let task = self.targets[id as usize % self.targets.len()];
        let sent = out
            .emit_direct(task, "routed", &[&input], values![id, i64::from(task)])?
            .to_vec();
        assert_eq!(sent, vec![task]);
        // Emitting direct to a task that does not subscribe is an error, not a silent drop.
        assert!(out
            .emit_direct(9999, "routed", &[&input], values![id, 0i64])
            .is_err());
        out.ack(input);
        Ok(())
    }
}

/// Checks that each tuple arrived at the task it was sent to.
pub struct DirectSink {
    me: u32,
    ledger: Arc<Ledger>,
}

impl Bolt for DirectSink {
    fn prepare(&mut self, ctx: &squall_engine::TaskContext) -> Result<(), ComponentError> {
        self.me = ctx.task_id;
        Ok(())
    }
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let meant = input.field("task").and_then(Value::as_i64).ok_or("no task")?;
        if meant == i64::from(self.me) {
            self.ledger.received.fetch_add(1, Ordering::Relaxed);
        }
        out.ack(input);
        Ok(())
    }
}

/// Holds every tuple for `hold_ms`, resetting its timeout every 200 ms, then acks it.
pub struct Holder {
    held: Vec<(Instant, Instant, Tuple)>,
    hold: Duration,
}

impl Bolt for Holder {
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let now = Instant::now();
        if !input.is_tick() {
            self.held.push((now, now, input));
        }
        let mut keep = Vec::new();
        for (since, mut last_reset, t) in self.held.drain(..) {
            if now.duration_since(since) >= self.hold {
                out.ack(t);
            } else {
                if now.duration_since(last_reset) >= Duration::from_millis(200) {
                    out.reset_timeout(&t);
                    last_reset = now;
                }
                keep.push((since, last_reset, t));
            }
        }
        self.held = keep;
        Ok(())
    }
}

/// A plain bolt that returns an error for odd ids without acking or failing them.
pub struct Erring;

impl Bolt for Erring {
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let id = input.get(0).and_then(Value::as_i64).ok_or("no id")?;
        if id % 2 == 1 {
            return Err(ComponentError::new(format!("odd id {id}")));
        }
        out.ack(input);
        Ok(())
    }
}

/// Buffers inputs and acks them all from `poll`, counting flushes in its own counter.
pub struct Buffering {
    held: Vec<Tuple>,
    counters: Option<squall_engine::Counters>,
}

impl Bolt for Buffering {
    fn prepare(&mut self, ctx: &squall_engine::TaskContext) -> Result<(), ComponentError> {
        self.counters = Some(ctx.counters.clone());
        Ok(())
    }
    fn execute(&mut self, input: Tuple, _out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        self.held.push(input);
        Ok(())
    }
    fn poll(&mut self, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        if self.held.is_empty() {
            return Ok(());
        }
        if let Some(c) = &self.counters {
            c.add("flushes", 1);
            c.add("flushed", self.held.len() as u64);
        }
        for t in self.held.drain(..) {
            out.ack(t);
        }
        Ok(())
    }
}

/// Blocks in `execute` until the ledger's gate opens (at most a minute), then acks: a
/// component that waits on something outside the topology.
pub struct Gate {
    ledger: Arc<Ledger>,
}

impl Bolt for Gate {
    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        self.ledger.gate_entered.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut open = self.ledger.gate.lock().unwrap();
        while !*open && Instant::now() < deadline {
            open = self
                .ledger
                .gate_cv
                .wait_timeout(open, Duration::from_millis(500))
                .unwrap()
                .0;
        }
        out.ack(input);
        Ok(())
    }
}

pub struct Kinds {
    pub ledger: Arc<Ledger>,
}

fn num(c: &Config, k: &str, d: u64) -> u64 {
    c.get(k).and_then(|v| v.as_u64()).unwrap_or(d)
}

impl Catalog for Kinds {
    fn describe(&self, kind: &str, _config: &Config) -> Option<Result<KindInfo, String>> {
        let role = match kind {
            "replay" => Role::Spout,
            "flaky" | "sink" | "pass" | "router" | "direct-sink" | "holder" | "erring" | "buffering"
            | "gate" | "parity" | "judge" => Role::Bolt,
            _ => return None,
        };
        Some(Ok(KindInfo::new(Some(role), vec![])))
    }
    fn kinds(&self) -> Vec<String> {
        [
            "replay",
            "flaky",
            "sink",
            "pass",
            "router",
            "direct-sink",
            "holder",
            "gate",
            "parity",
            "judge",
        ]
        .map(String::from)
        .to_vec()
    }
}

impl ComponentFactory for Kinds {
    fn spout(&self, c: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError> {
        Ok(Box::new(ReplaySpout {
            next: 0,
            count: num(&c.config, "count", 1000) as i64,
            replay: VecDeque::new(),
            outstanding: BTreeMap::new(),
            ledger: Arc::clone(&self.ledger),
            reliable: c.config.get("reliable").and_then(|v| v.as_bool()).unwrap_or(true),
        }))
    }
    fn bolt(&self, c: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError> {
        let ledger = Arc::clone(&self.ledger);
        Ok(match c.kind.as_str() {
            "flaky" => Box::new(Basic(Flaky {
                fail_pct: num(&c.config, "fail", 0),
                panic_pct: num(&c.config, "panic", 0),
                ledger,
            })),
            "pass" => Box::new(Basic(Pass)),
            "router" => Box::new(Router { targets: vec![] }),
            "erring" => Box::new(Erring),
            "buffering" => Box::new(Buffering {
                held: Vec::new(),
                counters: None,
            }),
            "direct-sink" => Box::new(DirectSink { me: 0, ledger }),
            "gate" => Box::new(Gate { ledger }),
            "parity" => Box::new(Basic(Parity)),
            "judge" => Box::new(Judge),
            "holder" => Box::new(Holder {
                held: Vec::new(),
                hold: Duration::from_millis(num(&c.config, "hold_ms", 0)),
            }),
            _ => Box::new(Sink {
                ledger,
                delay: Duration::from_micros(num(&c.config, "delay_us", 0)),
                ack: c.config.get("ack").and_then(|v| v.as_bool()).unwrap_or(true),
            }),
        })
    }
    fn cooperative(&self, c: &ComponentPlan) -> bool {
        !Kinds::dedicated(c)
    }
}

impl Kinds {
    /// Test kinds share threads unless their config says `dedicated: true`, so every
    /// whole-topology test runs its executors on the shared pool.
    fn dedicated(c: &ComponentPlan) -> bool {
        c.config
            .get("dedicated")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
}

pub fn plan(yaml: &str, kinds: &Kinds) -> Plan {
    let m = TopologyManifest::from_yaml(yaml, "test").unwrap();
    validate(&m, kinds).unwrap_or_else(|e| panic!("{e}"))
}

pub fn start(yaml: &str) -> (Topology, Arc<Ledger>) {
    let ledger = Arc::new(Ledger::default());
    let kinds = Kinds {
        ledger: Arc::clone(&ledger),
    };
    let p = plan(yaml, &kinds);
    let opts = squall_engine::EngineOptions::from_plan(&p);
    let topo = Topology::start(&p, Arc::new(kinds), opts).unwrap();
    (topo, ledger)
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
