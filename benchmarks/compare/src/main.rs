//! `make bench-compare`: the same perf topologies on Apache Storm's in-process LocalCluster
//! (`benchmarks/storm`) and on Squall, each measurement in its own process, Storm and Squall
//! alternately for several rounds. Writes its own marked section of BENCHMARKS.md.
//!
//! - `squall-bench-compare run [--rounds N] [--seconds S] [--warmup W] [--cases A,B]
//!   [--kafka-records N] [--out FILE]`: the driver.
//! - `squall-bench-compare squall-multilang [--seconds S] [--warmup W] [--serializer json|msgpack]`:
//!   Squall's side of the multilang cases (ConstSpout → pystorm PassBolt → NullBolt, windowed
//!   like the others), one JSON line on stdout.
//! - `squall-bench-compare squall-kafka --bootstrap B --topic T --group G --redis HOST:PORT
//!   --records N`: Squall's side of the Kafka case (see `kafka`), one JSON line on stdout.
//! - `squall-bench-compare child-ceiling [--serializer json|msgpack]`: one pystorm child fed
//!   from a file, no host: the most any engine can get from it.
#![forbid(unsafe_code)]

mod kafka;
mod multilang;
mod report;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use squall_model::Serializer;

/// The multilang case with the msgpack serializer on Squall's side. Storm's side is its
/// `multilang-ack` run: ShellBolt with its default JSON serializer, the row this one
/// is compared against.
pub const MULTILANG_MSGPACK: &str = "multilang-msgpack-ack";

/// One measurement, as both sides print it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Run {
    pub throughput: f64,
    #[serde(default)]
    pub complete_p50_us: u64,
    #[serde(default)]
    pub complete_p99_us: u64,
    #[serde(default)]
    pub cpu_s_per_million: f64,
    #[serde(default)]
    pub peak_rss_kib: u64,
    #[serde(default)]
    pub failed: u64,
    /// The machine's 1-minute load average when the run started (set by the driver).
    #[serde(default)]
    pub load: f64,
}

/// A case both sides implement.
pub struct Case {
    pub name: &'static str,
    pub title: &'static str,
    pub acking: bool,
    /// Whether the engine alone bounds the row (no Python child, broker or Redis), which
    /// sets its throughput target.
    pub engine_bound: bool,
}

pub const CASES: &[Case] = &[
    Case {
        name: "const-null-noack",
        title: "ConstSpout → NullBolt, acking off",
        acking: false,
        engine_bound: true,
    },
    Case {
        name: "const-null-ack",
        title: "ConstSpout → NullBolt, acking on",
        acking: true,
        engine_bound: true,
    },
    Case {
        name: "const-id-null-noack",
        title: "ConstSpout → IdBolt → NullBolt, acking off",
        acking: false,
        engine_bound: true,
    },
    Case {
        name: "const-id-null-ack",
        title: "ConstSpout → IdBolt → NullBolt, acking on",
        acking: true,
        engine_bound: true,
    },
    Case {
        name: "wordcount-ack",
        title: "word count: sentences → split → fields-grouped count, acking on",
        acking: true,
        engine_bound: true,
    },
    Case {
        name: "multilang-ack",
        title: "ConstSpout → pystorm PassBolt (one Python child, JSON over pipes) → NullBolt, acking on",
        acking: true,
        engine_bound: false,
    },
    Case {
        name: MULTILANG_MSGPACK,
        title: "ConstSpout → the same unmodified PassBolt, msgpack on Squall (`serializer: msgpack`) against Storm's JSON multilang row (ShellBolt's default serializer) → NullBolt, acking on",
        acking: true,
        engine_bound: false,
    },
    Case {
        name: kafka::CASE,
        title: "Kafka (pre-loaded topic) → parser → Redis counter: KafkaSpout → parse bolt → Jedis bolt on Storm, kafka → json-keys → redis-counter on Squall, acking on",
        acking: true,
        engine_bound: false,
    },
];

pub struct Options {
    pub rounds: usize,
    pub seconds: u64,
    pub warmup: u64,
    pub out: Option<PathBuf>,
    pub java: String,
    pub jvm_opts: Vec<String>,
    pub storm_dir: PathBuf,
    pub profile: bool,
    /// Cases to run (all when empty).
    pub cases: Vec<String>,
    /// Edits pre-loaded into the Kafka case's topic, and partitions of the topic.
    pub kafka_records: u64,
    pub kafka_partitions: u32,
    /// The shell bolt's serializer (`squall-multilang`, `child-ceiling`).
    pub serializer: Serializer,
}

fn main() -> Result<()> {
    let mut it = std::env::args().skip(1);
    let verb = it.next().unwrap_or_default();
    let mut o = Options {
        rounds: 3,
        seconds: 10,
        warmup: 5,
        out: None,
        java: "java".into(),
        jvm_opts: vec!["-Xmx1g".into()],
        storm_dir: PathBuf::from("benchmarks/storm"),
        profile: true,
        cases: Vec::new(),
        kafka_records: 300_000,
        kafka_partitions: 4,
        serializer: Serializer::Json,
    };
    let mut target = kafka::Target::default();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().with_context(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--rounds" => o.rounds = value("--rounds")?.parse().context("--rounds")?,
            "--seconds" => o.seconds = value("--seconds")?.parse().context("--seconds")?,
            "--warmup" => o.warmup = value("--warmup")?.parse().context("--warmup")?,
            "--out" => o.out = Some(PathBuf::from(value("--out")?)),
            "--java" => o.java = value("--java")?,
            "--jvm-opts" => {
                o.jvm_opts = value("--jvm-opts")?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            }
            "--storm-dir" => o.storm_dir = PathBuf::from(value("--storm-dir")?),
            "--no-profile" => o.profile = false,
            "--cases" => {
                o.cases = value("--cases")?
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect()
            }
            "--kafka-records" => o.kafka_records = value("--kafka-records")?.parse().context("--kafka-records")?,
            "--kafka-partitions" => {
                o.kafka_partitions = value("--kafka-partitions")?.parse().context("--kafka-partitions")?
            }
            "--serializer" => {
                o.serializer = match value("--serializer")?.as_str() {
                    "json" => Serializer::Json,
                    "msgpack" => Serializer::Msgpack,
                    other => bail!("--serializer: {other:?} is neither json nor msgpack"),
                }
            }
            "--bootstrap" => target.bootstrap = value("--bootstrap")?,
            "--topic" => target.topic = value("--topic")?,
            "--group" => target.group = value("--group")?,
            "--redis" => target.redis = value("--redis")?,
            "--records" => target.records = value("--records")?.parse().context("--records")?,
            other => bail!(
                "unknown argument {other:?}; usage: squall-bench-compare run|squall-multilang|squall-kafka \
                 [--rounds N] [--seconds S] [--warmup W] [--cases A,B] [--kafka-records N] [--kafka-partitions N] \
                 [--out FILE] [--jvm-opts '-Xmx1g'] [--no-profile]"
            ),
        }
    }
    match verb.as_str() {
        "child-ceiling" => {
            let n = 200_000;
            println!("{:.0} tuples/s", multilang::child_ceiling(n, o.serializer)?);
            Ok(())
        }
        "squall-multilang" => {
            let r = multilang::run(
                Duration::from_secs(o.warmup),
                Duration::from_secs(o.seconds),
                o.serializer,
            )?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        "squall-kafka" => {
            let r = kafka::run(&target)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        "run" => run(&o),
        other => bail!("unknown verb {other:?}: run, squall-multilang, squall-kafka"),
    }
}

/// All rounds of one case: Storm's and Squall's runs, in order.
pub struct Pairs {
    pub case: &'static Case,
    pub storm: Vec<Run>,
    pub squall: Vec<Run>,
}

fn run(o: &Options) -> Result<()> {
    let started = Instant::now();
    let logs = Path::new(".cache/bench-compare");
    std::fs::create_dir_all(logs).context("creating .cache/bench-compare")?;
    if let Some(c) = o
        .cases
        .iter()
        .find(|c| !CASES.iter().any(|k| k.name == c.as_str()))
    {
        let names: Vec<&str> = CASES.iter().map(|k| k.name).collect();
        bail!("--cases: unknown case {c:?}; the cases are {}", names.join(", "));
    }
    let mut pairs: Vec<Pairs> = CASES
        .iter()
        .filter(|case| o.cases.is_empty() || o.cases.iter().any(|c| c == case.name))
        .map(|case| Pairs {
            case,
            storm: Vec::new(),
            squall: Vec::new(),
        })
        .collect();
    let mut env = match pairs.iter().any(|p| p.case.name == kafka::CASE) {
        true => {
            eprintln!(
                "starting a Kafka broker and Redis, pre-loading {} edits",
                o.kafka_records
            );
            let env = kafka::KafkaEnv::start(o.kafka_records, o.kafka_partitions)?;
            eprintln!("  published at {:.0}/s", env.publish_rate);
            Some(env)
        }
        false => None,
    };
    for round in 1..=o.rounds {
        for p in &mut pairs {
            let name = p.case.name;
            eprintln!("round {round}/{}: {name}", o.rounds);
            let storm = side_run(o, true, name, round, env.as_mut(), logs)?;
            eprintln!(
                "  storm  {:>12.0}/s  p99 {:>7} µs  rss {:>7} KiB",
                storm.throughput, storm.complete_p99_us, storm.peak_rss_kib
            );
            let squall = side_run(o, false, name, round, env.as_mut(), logs)?;
            eprintln!(
                "  squall {:>12.0}/s  p99 {:>7} µs  rss {:>7} KiB",
                squall.throughput, squall.complete_p99_us, squall.peak_rss_kib
            );
            p.storm.push(storm);
            p.squall.push(squall);
        }
    }
    let ceiling = |case: &str, serializer: Serializer| {
        if !pairs.iter().any(|p| p.case.name == case) {
            return None;
        }
        eprintln!(
            "the Python child alone, no host, {} (the {case} row's ceiling)",
            serializer.as_str()
        );
        match multilang::child_ceiling(200_000, serializer) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("  could not measure it: {e:#}");
                None
            }
        }
    };
    let ceilings = report::Ceilings {
        json: ceiling("multilang-ack", Serializer::Json),
        msgpack: ceiling(MULTILANG_MSGPACK, Serializer::Msgpack),
    };
    let mut profiles = Vec::new();
    if o.profile {
        for p in &pairs {
            if report::misses(p).is_empty() {
                continue;
            }
            eprintln!("profiling Squall on {} (it misses a target)", p.case.name);
            match profile(o, p.case.name, logs, env.as_ref()) {
                Ok(top) => profiles.push((p.case.name, top)),
                Err(e) => profiles.push((p.case.name, vec![format!("profiling failed: {e:#}")])),
            }
        }
    }
    let md = report::render(
        o,
        &pairs,
        &profiles,
        ceilings,
        env.as_ref(),
        &java_version(&o.java),
        started.elapsed(),
    );
    match &o.out {
        Some(path) => {
            report::splice(path, &md)?;
            eprintln!("wrote the bench-compare section of {}", path.display());
        }
        None => print!("{md}"),
    }
    Ok(())
}

/// How long one Kafka-case process may take: the JVM's or engine's start, then at least
/// 1,000 records a second.
fn kafka_limit(records: u64) -> Duration {
    Duration::from_secs(180 + records / 1000)
}

/// One measurement of one side (`storm`, else Squall) of `case` in round `round`. The
/// Kafka case gets a fresh consumer group and an emptied Redis first, and its counts are
/// checked after.
fn side_run(
    o: &Options,
    storm: bool,
    case: &str,
    round: usize,
    env: Option<&mut kafka::KafkaEnv>,
    logs: &Path,
) -> Result<Run> {
    let side = if storm { "storm" } else { "squall" };
    let log = logs.join(format!("{side}-{case}-{round}"));
    // LocalCluster's directories (ZooKeeper's and RocksDB's preallocated files, tens of MB)
    // go under java.io.tmpdir and outlive the JVM, which halts: one directory, removed after.
    let tmp = logs.join("storm-tmp");
    let command = |extra: &[String]| match storm {
        true => {
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).context("creating the JVM's temporary directory")?;
            Ok(storm_command(o, case, extra, &tmp))
        }
        false => squall_command(o, case, extra),
    };
    let result = match env.filter(|_| case == kafka::CASE) {
        Some(env) => {
            let extra = env.prepare(&format!("{side}-{round}"))?;
            measure(&command(&extra)?, kafka_limit(env.records), &log).and_then(|run| {
                env.check(side)?;
                Ok(run)
            })
        }
        None => measure(&command(&[])?, window_limit(o), &log),
    };
    if storm {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn window_limit(o: &Options) -> Duration {
    Duration::from_secs(o.warmup + o.seconds + 150)
}

fn storm_command(o: &Options, case: &str, extra: &[String], tmp: &Path) -> Vec<String> {
    let cp = format!(
        "{}:{}/*",
        o.storm_dir.join("target/storm-bench.jar").display(),
        o.storm_dir.join("target/lib").display()
    );
    // Storm's side of the msgpack row is its JSON multilang run (see MULTILANG_MSGPACK).
    let case = if case == MULTILANG_MSGPACK {
        "multilang-ack"
    } else {
        case
    };
    let mut cmd = vec![o.java.clone()];
    cmd.extend(o.jvm_opts.iter().cloned());
    cmd.push(format!("-Djava.io.tmpdir={}", tmp.display()));
    cmd.extend(
        [
            "-cp",
            &cp,
            "dev.squall.stormbench.StormBench",
            case,
            "--warmup",
            &o.warmup.to_string(),
            "--seconds",
            &o.seconds.to_string(),
        ]
        .map(str::to_owned),
    );
    cmd.extend(extra.iter().cloned());
    cmd
}

fn squall_command(o: &Options, case: &str, extra: &[String]) -> Result<Vec<String>> {
    let secs = o.seconds.to_string();
    let warm = o.warmup.to_string();
    if case == kafka::CASE {
        let me = std::env::current_exe().context("locating squall-bench-compare")?;
        let mut cmd = vec![me.display().to_string(), "squall-kafka".to_owned()];
        cmd.extend(extra.iter().cloned());
        return Ok(cmd);
    }
    if case == "multilang-ack" || case == MULTILANG_MSGPACK {
        let me = std::env::current_exe().context("locating squall-bench-compare")?;
        let serializer = if case == MULTILANG_MSGPACK {
            "msgpack"
        } else {
            "json"
        };
        return Ok([
            me.display().to_string().as_str(),
            "squall-multilang",
            "--seconds",
            &secs,
            "--warmup",
            &warm,
            "--serializer",
            serializer,
        ]
        .map(str::to_owned)
        .to_vec());
    }
    Ok([
        "target/release/squall-bench",
        "one",
        case,
        "--seconds",
        &secs,
        "--warmup",
        &warm,
    ]
    .map(str::to_owned)
    .to_vec())
}

/// Runs one measurement process, killed after `limit`; its JSON is the last stdout line
/// that starts with `{`. Output goes to `<log>.out` and `<log>.err`.
fn measure(cmd: &[String], limit: Duration, log: &Path) -> Result<Run> {
    let out_path = log.with_extension("out");
    let err_path = log.with_extension("err");
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let (program, args) = cmd.split_first().context("empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).context("stdout log")?)
        .stderr(File::create(&err_path).context("stderr log")?)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{cmd:?} did not finish within {limit:?}; see {}",
                err_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let line = out.lines().rev().find(|l| l.starts_with('{'));
    match line {
        Some(l) => {
            let mut run: Run = serde_json::from_str(l).with_context(|| format!("parsing {l:?}"))?;
            run.load = load;
            Ok(run)
        }
        None => bail!(
            "{cmd:?} exited with {status} and no result; see {}",
            err_path.display()
        ),
    }
}

/// One more Squall run of `case` under `perf record -g` (after the warm-up; for the Kafka
/// case, the whole run), and the top of `perf report --no-children --sort comm,sym`.
fn profile(o: &Options, case: &str, logs: &Path, env: Option<&kafka::KafkaEnv>) -> Result<Vec<String>> {
    let data = logs.join(format!("perf-{case}.data"));
    // perf refuses `-D 0`, so the Kafka run, profiled whole, gets no delay flag.
    let (extra, delay, limit) = match env.filter(|_| case == kafka::CASE) {
        Some(env) => (env.prepare("perf")?, None, kafka_limit(env.records)),
        None => (Vec::new(), Some(o.warmup * 1000), window_limit(o)),
    };
    let mut cmd = vec!["perf".to_owned(), "record".into(), "-g".into(), "-q".into()];
    if let Some(ms) = delay {
        cmd.extend(["-D".to_owned(), ms.to_string()]);
    }
    cmd.extend(["-o".to_owned(), data.display().to_string(), "--".into()]);
    cmd.extend(squall_command(o, case, &extra)?);
    measure(&cmd, limit, &logs.join(format!("perf-{case}")))?;
    let report = |sort: &str, rows: usize| -> Result<Vec<String>> {
        let out = Command::new("perf")
            .args([
                "report",
                "--no-children",
                "--sort",
                sort,
                "--stdio",
                "-g",
                "none",
                "-i",
            ])
            .arg(&data)
            .stderr(Stdio::null())
            .output()
            .context("running perf report")?;
        let rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#') && l.contains('%'))
            .take(rows)
            .map(|l| {
                let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
                l.chars().take(120).collect()
            })
            .collect();
        if rows.is_empty() {
            bail!("perf report printed nothing (exit {})", out.status);
        }
        Ok(rows)
    };
    let threads = report("comm", 6)?;
    let mut top = vec![format!("by thread: {}", threads.join(", "))];
    top.extend(report("comm,sym", 8)?);
    Ok(top)
}

fn java_version(java: &str) -> String {
    Command::new(java)
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .find(|l| l.contains("Runtime Environment"))
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown JVM".to_owned())
}

/// Median of some values (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
