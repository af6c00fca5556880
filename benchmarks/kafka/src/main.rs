//! `make bench-kafka`: the Wikipedia-edits pipeline read from Kafka, Kafka → json-keys →
//! redis-counter, at-least-once against exactly-once in the same run.
//!
//! A real single-node broker (kafka-testenv, Apache Kafka in KRaft mode) and a real
//! redis-server, both on loopback and both children of this process, for this run only.
//! A topic of several partitions is pre-loaded with a bounded number of the bundled edits
//! (`squall feed kafka`'s publisher); then, round after round, the topology runs on the
//! in-process engine (the engine `squall run` uses, without the CLI's table) once in each
//! mode, the order alternating, from the topic's start with a fresh consumer group and an
//! emptied Redis, until every edit is acked. Each run checks the counts in Redis against
//! the data set: exact with exactly-once, at least the truth with at-least-once.
//!
//! Throughput is edits fully acked per second between 10% and 90% of the edits (the
//! consumer's start and the last trees' drain left out), the complete latency is the
//! engine's own (spout emit → tree acked) over the same span, CPU is user + system time of
//! this process, redis-server and the broker over the same span, and what every other
//! process of the machine used meanwhile is stated beside it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use kafka_testenv::KafkaBroker;
use squall_bench_common::redis::RedisServer;
use squall_bench_common::{
    load_average, machine, machine_busy, median, process_cpu, threads_cpu, write_section,
};
use squall_components::Builtins;
use squall_engine::{EngineOptions, Topology};
use squall_feed::{expected_counts, talk_keys, DataSet, DEFAULT_SEED};
use squall_model::{validate, TopologyManifest};

const BEGIN: &str = "<!-- squall-bench-kafka:begin -->";
const END: &str = "<!-- squall-bench-kafka:end -->";
const TOPIC: &str = "edits";

#[derive(Parser, Debug, Clone)]
#[command(about = "Kafka -> json-keys -> redis-counter, at-least-once against exactly-once")]
struct Args {
    /// Edits pre-loaded into the topic, and read by every run.
    #[arg(long, default_value_t = 300_000)]
    edits: u64,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Rounds; each runs both modes, the order alternating.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Modes to run: `alo`, `eo` or both (comma-separated).
    #[arg(long, default_value = "alo,eo")]
    modes: String,
    /// Executors of the kafka spout.
    #[arg(long, default_value_t = 2)]
    spouts: u32,
    /// Executors of json-keys.
    #[arg(long, default_value_t = 2)]
    parsers: u32,
    /// Executors of redis-counter.
    #[arg(long, default_value_t = 1)]
    counters: u32,
    /// redis-counter's batch_size (its default when absent).
    #[arg(long)]
    batch_size: Option<u64>,
    /// The engine's `squall.batch.size` (tuples an executor takes from its queue at once;
    /// its default when absent).
    #[arg(long)]
    engine_batch: Option<u64>,
    /// maxSpoutPending.
    #[arg(long, default_value_t = 10_000)]
    max_pending: u64,
    /// Write the section into this file (BENCHMARKS.md); print it otherwise.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    AtLeastOnce,
    ExactlyOnce,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::AtLeastOnce => "at-least-once",
            Mode::ExactlyOnce => "exactly-once",
        }
    }
}

/// The talk's parser keys, as in examples/wikipedia-edits/topology-kafka.yaml.
const KEYS: &str = r#"        keys:
          - {prefix: isanon_, path: is_anon}
          - {path: is_anon, then: anon_anon, else: anon_loggedin}
          - {path: is_bot, then: bot_bot, else: bot_human}
          - {prefix: action_, path: action}
          - {prefix: country_, path: geo_ip.country_name, optional: true}
"#;

/// The topology of examples/wikipedia-edits/topology-kafka.yaml (without its rejects
/// logger), reading the topic from its start. At-least-once is the same pipeline as the
/// websocket example's: the parser carries no identity and the counter has no
/// `exactly_once`.
fn manifest(args: &Args, mode: Mode, bootstrap: &str, group: &str, redis_url: &str) -> String {
    let eo = mode == Mode::ExactlyOnce;
    let carry = if eo {
        "        carry: [topic, partition, offset, floor]\n        index: index\n"
    } else {
        ""
    };
    let batch = args
        .batch_size
        .map(|b| format!("        batch_size: {b}\n"))
        .unwrap_or_default();
    let exactly_once = if eo {
        "        exactly_once: {source: [topic, partition], offset: offset, floor: floor, index: index}\n"
    } else {
        ""
    };
    let config = args
        .engine_batch
        .map(|b| format!("  config: {{squall.batch.size: {b}}}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {{name: bench-kafka}}
spec:
{config}  ackers: 1
  messageTimeoutSeconds: 30
  maxSpoutPending: {pending}
  spouts:
    - name: edits
      component: kafka
      parallelism: {spouts}
      config:
        bootstrap_servers: "{bootstrap}"
        topics: [{TOPIC}]
        group_id: {group}
        first_poll_offset_strategy: EARLIEST
        offset_commit_period_ms: 5000
  bolts:
    - name: parser
      component: json-keys
      parallelism: {parsers}
      config:
        field: value
{carry}        format: python
{KEYS}      inputs: [{{from: edits, grouping: {{type: shuffle}}}}]
    - name: counts
      component: redis-counter
      parallelism: {counters}
      config:
        url: "{redis_url}"
        prefix: ""
{batch}{exactly_once}      inputs: [{{from: parser, grouping: {{type: shuffle}}}}]
"#,
        pending = args.max_pending,
        spouts = args.spouts,
        parsers = args.parsers,
        counters = args.counters,
    )
}

/// CPU time so far of every process in process group `pgid` (the broker: a watchdog
/// shell and its JVM).
fn group_cpu(pgid: u32) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|t| {
                // After the command name: state, ppid, pgrp.
                t.rfind(')')
                    .and_then(|c| t.get(c + 2..)?.split_whitespace().nth(2)?.parse::<u32>().ok())
                    == Some(pgid)
            })
        })
        .map(process_cpu)
        .sum()
}

/// CPU and time at one instant of a run.
#[derive(Clone)]
struct Mark {
    threads: BTreeMap<String, Duration>,
    at: Instant,
    acked: u64,
    own: Duration,
    redis: Duration,
    broker: Duration,
    busy: Duration,
}

/// One run of one mode.
#[derive(Clone, Debug)]
struct RunResult {
    round: u32,
    mode: Mode,
    events_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    /// CPU seconds per million edits: this process (the engine), redis-server, the broker.
    cpu_own: f64,
    cpu_redis: f64,
    cpu_broker: f64,
    /// Cores other processes used meanwhile.
    others_cores: f64,
    load: f64,
    failed: u64,
    duplicates: u64,
    /// Redis command time per edit (µs) and the script's (EVALSHA) share of it.
    redis_us_per_edit: f64,
    evalsha_us_per_call: f64,
    tuples_per_call: f64,
    check: String,
    /// The engine's CPU by thread name, seconds per million edits, most first.
    threads: Vec<(String, f64)>,
}

struct Env {
    broker: KafkaBroker,
    redis: RedisServer,
    want: BTreeMap<String, BTreeMap<String, u64>>,
    keys_per_edit: f64,
}

fn run(args: &Args, env: &Env, round: u32, mode: Mode) -> Result<RunResult> {
    let redis = &env.redis;
    redis.command(&["FLUSHALL"])?;
    redis.command(&["CONFIG", "RESETSTAT"])?;
    let group = format!("bench-{}-{round}-{}", mode.name(), std::process::id());
    let yaml = manifest(args, mode, &env.broker.bootstrap(), &group, &redis.url());
    let m = TopologyManifest::from_yaml(&yaml, "bench-kafka")?;
    let plan = validate(&m, &Builtins).map_err(|e| anyhow!("{e}"))?;
    let me = std::process::id();
    // redis-testenv runs redis-server under a watchdog shell that leads its process group.
    let (redis_pgid, broker_pid) = (redis.pid().unwrap_or(0), env.broker.pid().unwrap_or(0));
    let topo =
        Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan)).context("starting")?;
    let n = args.edits;
    let (lo, hi) = (n / 10, n - n / 10);
    let mark = |acked: u64| {
        let (own, redis, broker) = (process_cpu(me), group_cpu(redis_pgid), group_cpu(broker_pid));
        let mut threads = BTreeMap::new();
        for (name, d) in threads_cpu(me) {
            *threads.entry(name).or_insert(Duration::ZERO) += d;
        }
        Mark {
            threads,
            at: Instant::now(),
            acked,
            own,
            redis,
            broker,
            busy: machine_busy(),
        }
    };
    let (mut start, mut end): (Option<Mark>, Option<Mark>) = (None, None);
    let mut latency = (0, 0);
    let mut last = (Instant::now(), 0u64);
    let load = load_average();
    let snapshot = loop {
        std::thread::sleep(Duration::from_millis(20));
        let s = topo.metrics();
        let acked = s.component("edits").map_or(0, |c| c.total.acked);
        if start.is_none() && acked >= lo {
            start = Some(mark(acked));
            topo.reset_latencies();
        }
        if start.is_some() && end.is_none() && acked >= hi {
            end = Some(mark(acked));
            let c = s.component("edits").context("no spout")?;
            latency = (c.total.complete_us.p50, c.total.complete_us.p99);
        }
        if acked >= n {
            break s;
        }
        if acked > last.1 {
            last = (Instant::now(), acked);
        } else if last.0.elapsed() > Duration::from_secs(60) {
            let snap = topo.shutdown();
            bail!(
                "{} round {round}: stuck at {acked} of {n} edits acked for 60 s: {snap:?}",
                mode.name()
            );
        }
    };
    topo.shutdown();
    let (Some(a), Some(b)) = (start, end) else {
        bail!("no measured span");
    };
    let mut threads: Vec<(String, f64)> = b
        .threads
        .iter()
        .map(|(name, d)| {
            let before = a.threads.get(name).copied().unwrap_or(Duration::ZERO);
            (name.clone(), d.saturating_sub(before).as_secs_f64())
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let events = (b.acked - a.acked) as f64;
    let secs = (b.at - a.at).as_secs_f64();
    let per_m = |d: Duration| d.as_secs_f64() / (events / 1e6);
    let others = b
        .busy
        .saturating_sub(a.busy)
        .saturating_sub((b.own - a.own) + (b.redis - a.redis) + (b.broker - a.broker));
    threads.iter_mut().for_each(|(_, d)| *d /= events / 1e6);
    threads.sort_by(|x, y| y.1.total_cmp(&x.1));
    let counts = snapshot.component("counts").context("no counter")?;
    let stats = redis.commandstats()?;
    let total_us: u64 = stats.values().map(|(_, us)| us).sum();
    let (calls, eval_us) = stats.get("evalsha").copied().unwrap_or((0, 0));
    let tuples = env.keys_per_edit * n as f64;
    let check = check(redis, &env.want, mode)?;
    Ok(RunResult {
        round,
        mode,
        events_per_s: events / secs,
        p50_us: latency.0,
        p99_us: latency.1,
        cpu_own: per_m(b.own - a.own),
        cpu_redis: per_m(b.redis - a.redis),
        cpu_broker: per_m(b.broker - a.broker),
        others_cores: others.as_secs_f64() / secs,
        load,
        failed: snapshot.component("edits").map_or(0, |c| c.total.failed),
        duplicates: counts.custom.get("duplicates").copied().unwrap_or(0),
        redis_us_per_edit: total_us as f64 / n as f64,
        evalsha_us_per_call: if calls > 0 {
            eval_us as f64 / calls as f64
        } else {
            0.0
        },
        tuples_per_call: if calls > 0 { tuples / calls as f64 } else { 0.0 },
        check,
        threads,
    })
}

/// Compares Redis with the data set: every count exact (exactly-once) or at least the
/// truth (at-least-once). Returns what the section says of it; an error when wrong.
fn check(redis: &RedisServer, want: &BTreeMap<String, BTreeMap<String, u64>>, mode: Mode) -> Result<String> {
    let (mut members, mut over) = (0u64, 0u64);
    for (set, expected) in want {
        let got = redis.zset(set)?;
        for (member, n) in expected {
            let g = got.get(member).copied().unwrap_or(0.0) as u64;
            members += 1;
            match mode {
                Mode::ExactlyOnce if g != *n => bail!("exactly-once: {set} {member} is {g}, not {n}"),
                Mode::AtLeastOnce if g < *n => bail!("at-least-once: {set} {member} is {g}, under {n}"),
                _ => over += g - n,
            }
        }
        if let Some(extra) = got.keys().find(|m| !expected.contains_key(*m)) {
            bail!("{set} holds {extra:?}, which no edit gives");
        }
    }
    Ok(match mode {
        Mode::ExactlyOnce => format!("{members} counts exact"),
        Mode::AtLeastOnce if over == 0 => format!("{members} counts ≥ truth (all exact)"),
        Mode::AtLeastOnce => format!("{members} counts ≥ truth ({over} over)"),
    })
}

fn threads_line(threads: &[(String, f64)]) -> String {
    threads
        .iter()
        .take(6)
        .map(|(n, d)| format!("{n} {d:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else {
        format!("{:.1} k", v / 1e3)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let modes: Vec<Mode> = args
        .modes
        .split(',')
        .map(|m| match m.trim() {
            "alo" => Ok(Mode::AtLeastOnce),
            "eo" => Ok(Mode::ExactlyOnce),
            other => Err(anyhow!("--modes: {other:?} is neither alo nor eo")),
        })
        .collect::<Result<_>>()?;
    let date = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M %Z").to_string();
    let t0 = Instant::now();
    let broker = KafkaBroker::start_on(Ipv4Addr::LOCALHOST).context("starting the Kafka broker")?;
    broker.create_topic(TOPIC, args.partitions)?;
    eprintln!(
        "broker up at {} in {:.1} s",
        broker.bootstrap(),
        t0.elapsed().as_secs_f64()
    );
    let data = DataSet::new(DEFAULT_SEED);
    let t1 = Instant::now();
    let published = squall_kafka::feed::publish_edits(
        &squall_kafka::feed::Publish {
            bootstrap: broker.bootstrap(),
            topic: TOPIC.to_owned(),
            rate: 0,
            count: Some(args.edits),
            from: 0,
        },
        &data,
        &AtomicBool::new(false),
    )?;
    if published != args.edits {
        bail!("published {published} of {} edits", args.edits);
    }
    let publish_rate = published as f64 / t1.elapsed().as_secs_f64();
    eprintln!("{published} edits published at {}/s", fmt_rate(publish_rate));
    let keys: Vec<String> = (0..args.edits).flat_map(|i| talk_keys(&data.edit(i))).collect();
    let keys_per_edit = keys.len() as f64 / args.edits as f64;
    let want = expected_counts(keys.iter().map(String::as_str));
    drop(keys);
    let env = Env {
        broker,
        redis: RedisServer::start()?,
        want,
        keys_per_edit,
    };
    let mut results = Vec::new();
    for round in 0..args.rounds {
        let mut order = modes.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for mode in order {
            let r = run(&args, &env, round, mode)?;
            eprintln!(
                "round {round} {:>13}: {}/s, p99 {} ms, CPU s/M: engine {:.2} redis {:.2} broker {:.2}, others {:.2} cores, redis {:.1} µs/edit, EVALSHA {:.0} µs/call ({:.0} tuples), {}",
                mode.name(),
                fmt_rate(r.events_per_s),
                r.p99_us / 1000,
                r.cpu_own,
                r.cpu_redis,
                r.cpu_broker,
                r.others_cores,
                r.redis_us_per_edit,
                r.evalsha_us_per_call,
                r.tuples_per_call,
                r.check
            );
            eprintln!("  engine threads, CPU s / M edits: {}", threads_line(&r.threads));
            results.push(r);
        }
    }
    let section = render(&args, &date, publish_rate, keys_per_edit, &results);
    match &args.out {
        Some(path) => {
            write_section(path, BEGIN, END, &section)?;
            eprintln!("wrote its section of {}", path.display());
        }
        None => println!("{section}"),
    }
    Ok(())
}

fn render(args: &Args, date: &str, publish_rate: f64, keys_per_edit: f64, results: &[RunResult]) -> String {
    let by = |mode: Mode| -> Vec<&RunResult> { results.iter().filter(|r| r.mode == mode).collect() };
    let med =
        |rs: &[&RunResult], f: fn(&RunResult) -> f64| median(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
    let (alo, eo) = (by(Mode::AtLeastOnce), by(Mode::ExactlyOnce));
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n## Kafka → parser → Redis: at-least-once against exactly-once\n\n");
    s.push_str(&format!(
        "Generated by `make bench-kafka` (`squall-bench-kafka --edits {} --partitions {} --rounds {} --out BENCHMARKS.md`); rewrites only this section.\n\n",
        args.edits, args.partitions, args.rounds
    ));
    s.push_str(&format!("- Date: {date}\n- Machine: {}\n", machine()));
    s.push_str(&format!(
        "- A real broker (kafka-testenv: Apache Kafka, KRaft, one node) and a real redis-server (no persistence), both on loopback. The topic `{TOPIC}` has {} partitions, pre-loaded with {} bundled edits ({:.2} counter keys each) at {}/s by `squall feed kafka`'s publisher.\n",
        args.partitions,
        args.edits,
        keys_per_edit,
        fmt_rate(publish_rate)
    ));
    s.push_str(&format!(
        "- The topology is examples/wikipedia-edits/topology-kafka.yaml without its rejects logger (kafka ×{}, json-keys ×{}, redis-counter ×{}{}, maxSpoutPending {} per spout task, one acker), run on the in-process engine as `squall run` runs it. Exactly-once: the parser carries each edit's identity and redis-counter has `exactly_once` (one Lua script per flush). At-least-once: the same pipeline without either, as the websocket example counts. Each run reads the whole topic from its start with a fresh consumer group into an emptied Redis; the modes alternate, {} rounds of each.\n",
        args.spouts,
        args.parsers,
        args.counters,
        args.batch_size.map(|b| format!(", batch_size {b}")).unwrap_or_default(),
        args.max_pending,
        args.rounds
    ));
    s.push_str("- events/s: edits fully acked (every key counted in Redis) per second, between 10% and 90% of the edits acked, so the consumer's start and the drain are left out. Complete latency: the engine's (spout emit → tree acked) over the same span; the spout runs unpaced, so it is mostly time queued behind maxSpoutPending. CPU: user + system seconds per million edits over the same span, of the engine (this process), redis-server and the broker. Redis: command time per edit from `INFO commandstats`, the script's time per `EVALSHA` and the tuples it carries. Others: cores used by every other process of the machine over the span.\n\n");
    s.push_str("| round | mode | events/s | complete p50 | complete p99 | CPU s / M edits: engine | redis | broker | Redis µs / edit | µs / EVALSHA (tuples) | others (cores) | counts |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {} ms | {} ms | {:.2} | {:.2} | {:.2} | {:.1} | {} | {:.2} | {}{} |\n",
            r.round + 1,
            r.mode.name(),
            fmt_rate(r.events_per_s),
            r.p50_us / 1000,
            r.p99_us / 1000,
            r.cpu_own,
            r.cpu_redis,
            r.cpu_broker,
            r.redis_us_per_edit,
            if r.tuples_per_call > 0.0 {
                format!("{:.0} ({:.0})", r.evalsha_us_per_call, r.tuples_per_call)
            } else {
                "–".to_owned()
            },
            r.others_cores,
            r.check,
            if r.failed > 0 || r.duplicates > 0 {
                format!("; {} trees failed, {} duplicates skipped", r.failed, r.duplicates)
            } else {
                String::new()
            }
        ));
    }
    // Ratios within a round: the two modes ran back to back on the same machine state.
    let ratios: Vec<f64> = (0..args.rounds)
        .filter_map(|round| {
            let a = results
                .iter()
                .find(|r| r.round == round && r.mode == Mode::AtLeastOnce)?;
            let e = results
                .iter()
                .find(|r| r.round == round && r.mode == Mode::ExactlyOnce)?;
            Some(e.events_per_s / a.events_per_s)
        })
        .collect();
    let ok = |b: bool| if b { "met" } else { "**missed**" };
    let eo_rate = med(&eo, |r| r.events_per_s);
    let ratio = median(&ratios);
    s.push_str("\n| mode (median of rounds) | events/s | complete p99 | CPU s / M edits (engine + redis + broker) |\n|---|---|---|---|\n");
    for (mode, rs) in [(Mode::AtLeastOnce, &alo), (Mode::ExactlyOnce, &eo)] {
        if rs.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "| {} | {} | {:.0} ms | {:.2} + {:.2} + {:.2} |\n",
            mode.name(),
            fmt_rate(med(rs, |r| r.events_per_s)),
            med(rs, |r| r.p99_us as f64) / 1000.0,
            med(rs, |r| r.cpu_own),
            med(rs, |r| r.cpu_redis),
            med(rs, |r| r.cpu_broker),
        ));
    }
    if !eo.is_empty() {
        s.push_str(&format!(
            "\nTargets: exactly-once ≥ 100 k events/s: {} ({}/s); ",
            ok(eo_rate >= 100_000.0),
            fmt_rate(eo_rate)
        ));
    }
    if !ratios.is_empty() {
        s.push_str(&format!(
            "exactly-once ≥ 70% of at-least-once: {} ({:.0}%, median of the rounds' ratios: {}).\n",
            ok(ratio >= 0.7),
            ratio * 100.0,
            ratios
                .iter()
                .map(|r| format!("{:.0}%", r * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !alo.is_empty() && !eo.is_empty() {
        let total = |rs: &[&RunResult]| med(rs, |r| r.cpu_own + r.cpu_redis + r.cpu_broker);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        s.push_str(&format!(
            "\nWhere exactly-once's cost goes (medians, CPU s per million edits): the engine {:+.2} (the parser carries four identity fields on each of an edit's {:.1} keys; the counter reads each key's identity and computes its bit), Redis {:+.2} (the script: per key one bit in its partition's bitmap of the offset's chunk; per chunk and batch the bytes the batch's bits span are read, OR-ed with its mask in Lua and written back; chunks below the floor deleted; {:.1} µs of Redis command time per edit), the broker {:+.2}. With the machine's {} cores to themselves and nothing else running, the three together would bound exactly-once at about {}/s and at-least-once at about {}/s (cores / CPU per edit).\n",
            med(&eo, |r| r.cpu_own) - med(&alo, |r| r.cpu_own),
            keys_per_edit,
            med(&eo, |r| r.cpu_redis) - med(&alo, |r| r.cpu_redis),
            med(&eo, |r| r.redis_us_per_edit),
            med(&eo, |r| r.cpu_broker) - med(&alo, |r| r.cpu_broker),
            cores,
            fmt_rate(cores / total(&eo) * 1e6),
            fmt_rate(cores / total(&alo) * 1e6),
        ));
    }
    if let Some(last) = results.last().map(|r| r.round) {
        s.push_str("\nThe engine's CPU by thread in the last round (CPU s per million edits; `edits`, `parser` and `counts` executors run on the shared `squall-exec-*` threads unless they may block: redis-counter's on `counts-*`; `rdk:*` are librdkafka's):\n\n");
        for r in results.iter().filter(|r| r.round == last) {
            s.push_str(&format!("- {}: {}\n", r.mode.name(), threads_line(&r.threads)));
        }
    }
    let others = median(&results.iter().map(|r| r.others_cores).collect::<Vec<_>>());
    let loads = results
        .iter()
        .map(|r| r.load)
        .fold((f64::MAX, 0.0f64), |(a, b), l| (a.min(l), b.max(l)));
    s.push_str(&format!(
        "\nOther work on the machine: processes other than the engine, Redis and the broker used {:.2} cores (median over the runs; the machine has {}), and the 1-minute load average at the runs' starts was {:.1} to {:.1}{}. The engine, Redis and the broker share what is left, so events/s follow the load of the moment; CPU per edit is the steadier figure.\n",
        others,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loads.0,
        loads.1,
        if others > 0.2 { " (other builds and tests ran beside it)" } else { " (otherwise quiet)" }
    ));
    s.push_str(END);
    s.push('\n');
    s
}
