//! `squall import streamparse` on real streamparse topologies, read by the real streamparse
//! from the venv `make multilang-venv` builds: the quickstart project `sparse quickstart`
//! creates and the talk's topology, each imported, validated and run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use squall_feed::{expected_counts, talk_keys, DataSet, FeedOptions, FeedServer, DEFAULT_SEED};
use squall_model::{GroupingKind, TopologyManifest};

const BIN: &str = env!("CARGO_BIN_EXE_squall");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's bin directory; fails (never skips) when the venv is missing.
fn venv_bin() -> PathBuf {
    let bin = repo().join(".cache/venv/bin");
    assert!(
        bin.join("streamparse_run").exists(),
        "{} is missing: run `make multilang-venv` to install pystorm and streamparse",
        bin.display()
    );
    std::fs::canonicalize(bin).unwrap()
}

/// `squall ARGS` in `dir` with the venv first on PATH, as an activated virtualenv has it.
fn command(dir: &Path, args: &[&str]) -> Command {
    let path = format!(
        "{}:{}",
        venv_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("VIRTUAL_ENV", venv_bin().parent().unwrap())
        .env_remove("SQUALL_PYTHON")
        .env("RUST_LOG", "warn,squall_multilang=info");
    cmd
}

fn squall(dir: &Path, args: &[&str]) -> (i32, String, String) {
    output(command(dir, args).output().unwrap())
}

fn output(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The cells of `component`'s row in the run's final summary.
fn row<'a>(stdout: &'a str, component: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(component))
        .unwrap_or_else(|| panic!("no row for {component} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

fn count(cells: &[&str], i: usize) -> u64 {
    cells[i].parse().unwrap()
}

fn quickstart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(venv_bin().join("sparse"))
        .args(["quickstart", "wordcount"])
        .current_dir(dir.path())
        // sparse refuses to run as root without it (Leiningen would wait for input).
        .env("LEIN_ROOT", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

#[test]
fn the_quickstart_project_imports_validates_and_counts_words() {
    let tmp = quickstart();
    let project = tmp.path().join("wordcount");
    let (code, out, err) = squall(
        &project,
        &[
            "import",
            "streamparse",
            "topologies/wordcount.py",
            "-o",
            "topology.yaml",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("topology.yaml: 1 spout(s), 1 bolt(s) from WordCount"),
        "{out}"
    );

    let m = TopologyManifest::from_file(&project.join("topology.yaml")).unwrap();
    assert_eq!(m.metadata.name, "word-count");
    let (spout, bolt) = (&m.spec.spouts[0], &m.spec.bolts[0]);
    assert_eq!(
        (spout.name.as_str(), bolt.name.as_str()),
        ("word_spout", "count_bolt")
    );
    let shell = bolt.shell.as_ref().unwrap();
    assert_eq!(shell.command, "streamparse_run");
    assert_eq!(shell.args, ["bolts.wordcount.WordCountBolt"]);
    assert_eq!(shell.working_dir.as_deref(), Some("src"));
    assert_eq!(bolt.parallelism, 2);
    assert_eq!(bolt.inputs[0].grouping.kind, GroupingKind::Fields);
    assert_eq!(bolt.inputs[0].grouping.fields, ["word"]);
    assert_eq!(spout.outputs[0].fields, ["word"]);
    assert_eq!(bolt.outputs[0].fields, ["word", "count"]);

    let (code, out, err) = squall(&project, &["validate", "topology.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = squall(&project, &["run", "topology.yaml", "--for", "6s", "--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    let spout = row(&out, "word_spout");
    let bolt = row(&out, "count_bolt");
    // Columns: name, role, executors/tasks, emitted, acked, failed.
    assert!(count(&spout, 3) > 100, "{out}");
    assert!(count(&bolt, 4) > 100, "the bolt acked what it counted:\n{out}");
    assert_eq!(count(&bolt, 5), 0, "{out}");
    // The bolt emitted [word, count] pairs, and its own log reports its running total.
    assert!(count(&bolt, 3) > 100, "{out}");
    assert!(
        err.contains("count_bolt") && err.contains(" words [pid="),
        "{err}"
    );
}

#[test]
fn a_msgpack_project_imports_as_msgpack_components_that_count_words() {
    let tmp = quickstart();
    let project = tmp.path().join("wordcount");
    // The project chooses msgpack the way streamparse reads it: config.json's serializer.
    let config_path = project.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["serializer"] = "msgpack".into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let (code, out, err) = squall(
        &project,
        &[
            "import",
            "streamparse",
            "topologies/wordcount.py",
            "-o",
            "topology.yaml",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(project.join("topology.yaml")).unwrap();
    assert_eq!(text.matches("serializer: msgpack").count(), 2, "{text}");
    let m = TopologyManifest::from_file(&project.join("topology.yaml")).unwrap();
    for c in m.spec.spouts.iter().chain(&m.spec.bolts) {
        assert_eq!(
            c.shell.as_ref().unwrap().serializer,
            squall_model::Serializer::Msgpack,
            "{}",
            c.name
        );
    }
    let (code, out, err) = squall(&project, &["run", "topology.yaml", "--for", "6s", "--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    let spout = row(&out, "word_spout");
    let bolt = row(&out, "count_bolt");
    assert!(count(&spout, 3) > 100, "{out}");
    assert!(count(&bolt, 4) > 100, "the bolt acked what it counted:\n{out}");
    assert_eq!(count(&bolt, 5), 0, "{out}");
    assert!(
        err.contains("count_bolt") && err.contains(" words [pid="),
        "the msgpack child's log commands arrive: {err}"
    );
}

const REFUSED: &str = r#"from streamparse import Bolt, Grouping, JavaSpout, ShellBolt, Stream, Topology


print("whatever a module prints does not disturb the import")


class Upper(Bolt):
    outputs = ["word"]

    def process(self, tup):
        self.emit([tup.values[0].upper()])


class Mixed(Topology):
    config = {"topology.workers": 2}
    sentences = JavaSpout.spec(
        full_class_name="org.apache.storm.kafka.spout.KafkaSpout", args_list=[], outputs=["sentence"]
    )
    split = ShellBolt.spec(command="node", script="splitsentence.js", inputs=[sentences], outputs=["word"])
    upper = Upper.spec(inputs={split: Grouping.custom_object("com.example.Hashing", [])})
    shout = Upper.spec(inputs={upper: Grouping.fields("word")}, par={"prod": 4, "dev": 1})
"#;

#[test]
fn what_cannot_be_carried_over_is_named_with_its_source_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("topologies")).unwrap();
    std::fs::write(tmp.path().join("topologies/mixed.py"), REFUSED).unwrap();
    let (code, out, err) = squall(
        tmp.path(),
        &["import", "streamparse", "topologies/mixed.py", "-o", "t.yaml"],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(!tmp.path().join("t.yaml").exists(), "nothing is written");
    for expected in [
        "topologies/mixed.py: 4 parts of the topology cannot be carried over:",
        "topologies/mixed.py:16: spout sentences (streamparse.storm.spout.JavaSpout): a Java component (org.apache.storm.kafka.spout.KafkaSpout)",
        "topologies/mixed.py:19: bolt split (streamparse.storm.bolt.ShellBolt): runs `node splitsentence.js`, not Python",
        "topologies/mixed.py:20: bolt upper (mixed.Upper): input from split/default: custom grouping com.example.Hashing is not supported",
        "topologies/mixed.py:21: bolt shout (mixed.Upper): par {\"dev\":1,\"prod\":4} per environment is not supported",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn errors_of_the_class_itself_come_from_streamparse_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("topologies")).unwrap();
    let text = "from streamparse import Bolt, Grouping, Spout, Topology\n\n\n\
                class Words(Spout):\n    outputs = [\"word\"]\n\n\n\
                class Bad(Topology):\n    words = Words.spec()\n    print(\"noise on stdout\")\n\
                \x20   count = Bolt.spec(inputs={words: Grouping.fields(\"wrd\")})\n";
    std::fs::write(tmp.path().join("topologies/bad.py"), text).unwrap();
    let (code, out, err) = squall(tmp.path(), &["import", "streamparse", "topologies/bad.py"]);
    assert_eq!(code, 2, "{out}{err}");
    // streamparse's own check, raised while the class is built, at the class statement.
    assert!(
        err.contains(
            "topologies/bad.py:8: ValueError: Field 'wrd' specified in grouping is not a valid output field"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_interpreter_or_streamparse_is_named() {
    let tmp = quickstart();
    let project = tmp.path().join("wordcount");
    let args = ["import", "streamparse", "topologies/wordcount.py", "--python"];
    let (code, _, err) = squall(&project, &[&args[..], &["/nowhere/bin/python"]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the Python interpreter `/nowhere/bin/python` was not found: name one with --python"),
        "{err}"
    );
    // An interpreter without site-packages cannot see streamparse.
    let bare = tmp.path().join("bare-python");
    std::fs::write(
        &bare,
        format!(
            "#!/bin/sh\nexec {} -S \"$@\"\n",
            venv_bin().join("python").display()
        ),
    )
    .unwrap();
    chmod_x(&bare);
    let (code, _, err) = squall(&project, &[&args[..], &[bare.to_str().unwrap()]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot import streamparse (ModuleNotFoundError"),
        "{err}"
    );
    assert!(err.contains(&format!("`{}`", bare.display())), "{err}");
}

#[test]
fn a_hung_interpreter_is_stopped_at_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("t.py"), "").unwrap();
    let hung = tmp.path().join("hung-python");
    std::fs::write(&hung, "#!/bin/sh\nexec sleep 60\n").unwrap();
    chmod_x(&hung);
    let started = Instant::now();
    let (code, _, err) = squall(
        tmp.path(),
        &[
            "import",
            "streamparse",
            "t.py",
            "--timeout",
            "1s",
            "--python",
            hung.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("did not finish reading the topology within 1s"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_interpreter_without_an_answer_or_with_too_much_of_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("t.py"), "").unwrap();
    let broken = tmp.path().join("broken-python");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'ImportError: boom' >&2\necho not json\nexit 3\n",
    )
    .unwrap();
    chmod_x(&broken);
    let args = ["import", "streamparse", "t.py", "--python"];
    let (code, _, err) = squall(tmp.path(), &[&args[..], &[broken.to_str().unwrap()]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("reading t.py exited with status 3 without an answer"),
        "{err}"
    );
    assert!(
        err.contains("its stderr ends with:\n    ImportError: boom"),
        "{err}"
    );

    let chatty = tmp.path().join("chatty-python");
    std::fs::write(&chatty, "#!/bin/sh\nhead -c 5000000 /dev/zero\n").unwrap();
    chmod_x(&chatty);
    let (code, _, err) = squall(tmp.path(), &[&args[..], &[chatty.to_str().unwrap()]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("wrote more than 4194304 bytes of answer"), "{err}");
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The committed example is what the importer makes of the committed class today.
#[test]
fn the_talks_streamparse_manifest_is_current() {
    let dir = repo().join("examples/wikipedia-edits");
    let (code, out, err) = squall(&dir, &["import", "streamparse", "python/topologies/wikipedia.py"]);
    assert_eq!(code, 0, "{err}");
    let committed = std::fs::read_to_string(dir.join("topology-streamparse.yaml")).unwrap();
    assert_eq!(
        out, committed,
        "regenerate it: cd examples/wikipedia-edits && squall import streamparse python/topologies/wikipedia.py -o topology-streamparse.yaml"
    );
}

/// A redis-server on a free loopback port, killed on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server: run `make multilang-venv`, which installs it");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child, port)
    }

    /// `ZRANGE key 0 -1 WITHSCORES` of every key but `action` (its scores are times).
    fn counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .args(["-p", &self.1.to_string()])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let keys = cli(&["--raw", "KEYS", "*"]);
        let mut out = BTreeMap::new();
        for key in keys.lines().filter(|k| !k.is_empty() && *k != "action") {
            let text = cli(&["--raw", "ZRANGE", key, "0", "-1", "WITHSCORES"]);
            let lines: Vec<&str> = text.lines().collect();
            let set = lines
                .chunks(2)
                .map(|p| (p[0].to_owned(), p[1].parse::<f64>().unwrap() as u64))
                .collect();
            out.insert(key.to_owned(), set);
        }
        out
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_talks_topology_imported_from_streamparse_counts_the_feed_in_redis() {
    const EDITS: u64 = 400;
    let data = DataSet::new(DEFAULT_SEED).with_malformed_every(50);
    let feed = FeedServer::start(FeedOptions {
        ws: None,
        sse: Some("127.0.0.1:0".parse().unwrap()),
        rate: 0,
        count: Some(EDITS),
        data,
    })
    .unwrap();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("wikipedia.yaml");
    let example = repo().join("examples/wikipedia-edits/python/topologies/wikipedia.py");
    let (code, out, err) = squall(
        dir.path(),
        &[
            "import",
            "streamparse",
            example.to_str().unwrap(),
            "-o",
            manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let sse = format!("spec.spouts.edits.config.url={}", feed.sse_url().unwrap());
    let url = format!("spec.bolts.counts.config.url=redis://127.0.0.1:{}", redis.1);
    let run = [
        "run",
        manifest.to_str().unwrap(),
        "--quiet",
        // Only a bound: the run is interrupted as soon as the counts are in.
        "--for",
        "180s",
        "--set",
        &sse,
        "--set",
        &url,
    ];
    let child = command(dir.path(), &run)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut keys = Vec::new();
    for i in (0..EDITS).filter(|i| !data.is_malformed(*i)) {
        keys.extend(talk_keys(&data.edit(i)));
    }
    let expected = expected_counts(keys.iter().map(String::as_str));
    // Python is slow on a loaded machine: wait for the counts rather than a fixed time.
    let deadline = Instant::now() + Duration::from_secs(120);
    while redis.counts() != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    // Ctrl-C: the run stops gracefully, letting in-flight trees complete, and prints its summary.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let (code, out, err) = output(child.wait_with_output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(redis.counts(), expected, "Redis holds exactly the feed's counts");
    let edits = row(&out, "edits");
    assert_eq!(
        (count(&edits, 4), count(&edits, 5)),
        (EDITS, 0),
        "every edit acked:\n{out}\n{err}"
    );
}
