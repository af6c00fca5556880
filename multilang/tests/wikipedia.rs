//! The talk's pipeline with its Python bolts (`examples/wikipedia-edits/python/bolts.py`)
//! run unmodified: edit events → jsonParser → RedisBolt → a real redis-server. The counts
//! in Redis are checked against counts computed directly from the data set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use redis_testenv::RedisServer;
use squall_engine::Topology;
use squall_feed::{expected_counts, talk_keys, DataSet, DEFAULT_SEED};
use squall_model::TopologyManifest;
use support::{
    crash, drain, manifest, pid_of, repo, scratch, start, start_plan, validated, venv, venv_dir, wait_acked,
    wait_until,
};

type Counts = BTreeMap<String, BTreeMap<String, u64>>;

/// Every sorted set under `prefix` in `redis`, read with redis-py from the venv.
fn sorted_sets(redis: &RedisServer, prefix: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let script = format!(
        "import json, redis\n\
         r = redis.Redis(port={}, decode_responses=True)\n\
         print(json.dumps({{k[len('{prefix}'):]: dict(r.zrange(k, 0, -1, withscores=True)) for k in r.keys('{prefix}*')}}))",
        redis.port()
    );
    let out = Command::new(venv("python"))
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Writes messages `0..n` of the data set (every `malformed_every`-th one malformed) as
/// JSON lines; returns the file and the counts the
/// talk's bolts must leave in Redis.
fn events(dir: &Path, n: u64, malformed_every: u64) -> (PathBuf, Counts) {
    let data = DataSet::new(DEFAULT_SEED).with_malformed_every(malformed_every);
    let path = dir.join("events.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut keys = Vec::new();
    for i in 0..n {
        writeln!(f, "{}", data.text(i)).unwrap();
        if !data.is_malformed(i) {
            keys.extend(talk_keys(&data.edit(i)));
        }
    }
    f.flush().unwrap();
    (path, expected_counts(keys.iter().map(String::as_str)))
}

fn topology(name: &str, dir: &Path, events: &Path, redis_port: u16, small_window: bool) -> Topology {
    let run = venv("streamparse_run");
    let pydir = repo().join("examples/wikipedia-edits/python");
    let yaml = manifest(
        name,
        dir,
        "",
        &format!(
            r#"
  maxSpoutPending: {pending}
  spouts:
    - {{name: edits, component: json-lines, config: {{path: "{events}"}}}}
  bolts:
    - name: parser
      component: shell
      shell: {{command: "{run}", args: ["bolts.jsonParser"], workingDir: "{pydir}"}}
      outputs:
        - {{fields: [word]}}
        - {{stream: errors, fields: [event, error]}}
      inputs: [{{from: edits}}]
    - name: redis
      component: shell
      parallelism: 2
      shell: {{command: "{run}", args: ["bolts.RedisBolt"], workingDir: "{pydir}"}}
      config: {{url: "redis://127.0.0.1:{redis_port}", prefix: "{name}:"}}
      inputs: [{{from: parser}}]
    - {{name: parse-errors, component: "null", inputs: [{{from: parser, stream: errors}}]}}
"#,
            events = events.display(),
            run = run.display(),
            pydir = pydir.display(),
            // A small window keeps the run long enough to kill a child in the middle of it.
            pending = if small_window { 20 } else { 1000 },
        ),
    );
    start(&yaml)
}

fn as_counts(sets: &BTreeMap<String, BTreeMap<String, f64>>) -> Counts {
    sets.iter()
        .filter(|(k, _)| k.as_str() != "action")
        .map(|(k, m)| (k.clone(), m.iter().map(|(w, s)| (w.clone(), *s as u64)).collect()))
        .collect()
}

#[test]
fn python_parser_and_redis_bolt_count_exactly_what_the_data_set_holds() {
    let dir = scratch("exact");
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let (path, expected) = events(&dir, 1000, 50);
    let m = drain(
        topology("exact", &dir, &path, redis.port(), false),
        Duration::from_secs(90),
    );
    let edits = m.component("edits").unwrap();
    assert_eq!(edits.total.acked, 1000);
    assert_eq!(edits.total.failed, 0);
    // The 20 malformed messages went to the parser's errors stream, counted, not replayed.
    let parser = m.component("parser").unwrap();
    assert_eq!(parser.custom.get("metric.malformed"), Some(&20));
    assert_eq!(m.component("parse-errors").unwrap().total.executed, 20);
    let sets = sorted_sets(&redis, "exact:");
    assert_eq!(
        as_counts(&sets),
        expected,
        "Redis holds exactly the data set's counts"
    );
    // The `action` set holds, per action, when it was last seen.
    let actions: Vec<&String> = expected["actions"].keys().collect();
    assert_eq!(sets["action"].keys().collect::<Vec<_>>(), actions);
    assert!(sets["action"].values().all(|t| *t > 1.0e9));
}

#[test]
fn killing_the_python_parser_mid_run_loses_nothing() {
    let dir = scratch("kill");
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let (path, expected) = events(&dir, 3000, 0);
    let topo = topology("kill", &dir, &path, redis.port(), true);
    wait_until(
        Duration::from_secs(60),
        || topo.metrics().component("edits").unwrap().total.acked >= 500,
        || format!("no progress: {:#?}", topo.metrics()),
    );
    let task = topo.plan().component("parser").unwrap().tasks[0];
    crash(pid_of(&dir, "kill", "parser", task));
    let m = drain(topo, Duration::from_secs(120));
    let edits = m.component("edits").unwrap();
    assert_eq!(edits.total.acked, 3000, "every event completed");
    assert_eq!(
        m.component("parser").unwrap().custom.get("child_restarts"),
        Some(&1)
    );
    let got = as_counts(&sorted_sets(&redis, "kill:"));
    // At-least-once: every count is there, some possibly more than once.
    for (set, members) in &expected {
        for (member, n) in members {
            let have = got.get(set).and_then(|m| m.get(member)).copied().unwrap_or(0);
            assert!(have >= *n, "{set}/{member}: {have} < {n}");
        }
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "no other sets"
    );
}

/// `examples/wikipedia-edits/topology-python.yaml` itself, as `squall run` loads it (paths
/// relative to its directory, the checkout's venv on the children's PATH), against the
/// feed server and a Redis on free ports.
#[test]
fn the_python_example_topology_counts_the_feed_into_redis() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let n = 2000;
    let feed = squall_feed::FeedServer::start(squall_feed::FeedOptions {
        ws: Some("127.0.0.1:0".parse().unwrap()),
        sse: None,
        rate: 0,
        count: Some(n),
        data: DataSet::new(DEFAULT_SEED),
    })
    .unwrap();
    let file = repo().join("examples/wikipedia-edits/topology-python.yaml");
    let mut manifest = TopologyManifest::from_file(&file).unwrap();
    let spec = &mut manifest.spec;
    let edits = spec.spouts.iter_mut().find(|s| s.name == "edits").unwrap();
    edits.config.insert("url".into(), feed.ws_url().unwrap().into());
    let counts = spec.bolts.iter_mut().find(|b| b.name == "counts").unwrap();
    counts.config.insert("url".into(), redis.url().into());
    counts.config.insert("prefix".into(), "example:".into());
    let dir = scratch("example");
    spec.config.insert(
        "squall.multilang.pid.dir".into(),
        dir.join("pids").display().to_string().into(),
    );
    spec.config.insert(
        squall_multilang::settings::VENV.into(),
        venv_dir().display().to_string().into(),
    );
    let mut plan = validated(&manifest);
    plan.base_dir = file.parent().map(Path::to_path_buf);
    let topo = start_plan(&plan).unwrap_or_else(|e| panic!("{e}"));
    wait_acked(&topo, "edits", n, Duration::from_secs(90));
    let m = topo.shutdown();
    feed.stop();
    let edits = m.component("edits").unwrap();
    assert_eq!(edits.total.acked, n);
    assert_eq!(edits.total.failed, 0);
    let data = DataSet::new(DEFAULT_SEED);
    let keys: Vec<String> = (0..n).flat_map(|i| talk_keys(&data.edit(i))).collect();
    let expected = expected_counts(keys.iter().map(String::as_str));
    assert_eq!(as_counts(&sorted_sets(&redis, "example:")), expected);
}
