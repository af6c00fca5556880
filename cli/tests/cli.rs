//! Runs the built `squall` binary on manifests written to a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_squall");

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn squall(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

const SEQUENCE: &str = "\
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata:
  name: seq
spec:
  spouts:
    - name: numbers
      component: sequence
      config: {count: 1000}
  bolts:
    - name: sink
      component: \"null\"
      inputs: [{from: numbers}]
";

const WORDS: &str = "\
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata:
  name: words
spec:
  spouts:
    - name: sentences
      component: random-sentence
  bolts:
    - name: split
      component: split-words
      parallelism: 2
      inputs: [{from: sentences}]
    - name: count
      component: count
      parallelism: 3
      tasks: 6
      inputs:
        - from: split
          grouping: {type: fields, fields: [word]}
";

/// The cells of the summary row of `component` in `squall run`'s output.
fn row<'a>(stdout: &'a str, component: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(component))
        .unwrap_or_else(|| panic!("no row for {component} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

#[test]
fn validate_ok_counts_components_and_tasks() {
    let dir = Dir::new();
    let path = dir.file("words.yaml", WORDS);
    let (code, out, err) = squall(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // 1 + 2 + 6 tasks and one acker.
    assert!(
        out.trim_end()
            .ends_with("words.yaml: ok (1 spout, 2 bolts, 10 tasks)"),
        "{out}"
    );
}

#[test]
fn validate_prints_every_problem_with_its_path() {
    let dir = Dir::new();
    let path = dir.file(
        "bad.yaml",
        &WORDS
            .replace("component: random-sentence", "component: random-sentense")
            .replace("parallelism: 2", "parallelism: 0")
            .replace("fields: [word]", "fields: [wrd]"),
    );
    let (code, out, err) = squall(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    // The count is not pinned: an unknown kind has no known outputs, which the model also
    // reports for its subscribers.
    assert!(err.contains("bad.yaml: "), "{err}");
    assert!(err.contains(" problems in the topology:\n"), "{err}");
    for expected in [
        "  spec.spouts[0].component: unknown component kind \"random-sentense\"; known kinds: ",
        "  spec.bolts[0].parallelism: must be at least 1, got 0",
        "  spec.bolts[1].inputs[0].grouping.fields[0]: field \"wrd\" is not declared on stream split/default; declared: word",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn yaml_syntax_errors_show_file_line_and_column() {
    let dir = Dir::new();
    let path = dir.file(
        "broken.yaml",
        "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: x}\nspec:\n  spouts: [\n   - a\n",
    );
    let (code, _, err) = squall(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    let expected = format!("{}:6:4: ", path.display());
    assert!(err.starts_with(&expected), "{err}");
}

#[test]
fn wrong_field_types_name_the_field_and_position() {
    let dir = Dir::new();
    let path = dir.file(
        "typed.yaml",
        &SEQUENCE.replace("name: sink", "name: sink\n      parallelism: two"),
    );
    let (code, _, err) = squall(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(":12:"), "{err}");
    assert!(err.contains("spec.bolts[0].parallelism"), "{err}");
}

#[test]
fn a_missing_file_is_a_plain_error() {
    let (code, _, err) = squall(&["validate", "/nonexistent/topology.yaml"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: /nonexistent/topology.yaml: "), "{err}");
}

#[test]
fn run_of_a_finite_topology_drains_and_reports_every_ack() {
    let dir = Dir::new();
    let path = dir.file("seq.yaml", SEQUENCE);
    let (code, out, err) = squall(&["run", path.to_str().unwrap(), "--for", "20s"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("all spouts finished and every tuple was processed"),
        "{out}"
    );
    let spout = row(&out, "numbers");
    assert_eq!(
        &spout[..6],
        ["numbers", "spout", "1/1", "1000", "1000", "0"],
        "{out}"
    );
    let sink = row(&out, "sink");
    assert_eq!(sink[4], "1000", "{out}");
    assert!(
        out.contains("spouts: 1000 emitted, 1000 acked, 0 failed, 0 pending"),
        "{out}"
    );
}

#[test]
fn run_for_stops_an_endless_topology() {
    let dir = Dir::new();
    let path = dir.file("words.yaml", WORDS);
    let started = std::time::Instant::now();
    let (code, out, err) = squall(&["run", path.to_str().unwrap(), "--for", "2s", "--quiet"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(out.contains("--for 2.0s elapsed"), "{out}");
    // --quiet leaves only the summary.
    assert!(!out.contains("running words"), "{out}");
    let acked: u64 = row(&out, "sentences")[4].parse().unwrap();
    assert!(acked > 0, "{out}");
    assert_eq!(row(&out, "count")[2], "3/6", "{out}");
}

#[test]
fn set_overrides_apply_before_validation() {
    let dir = Dir::new();
    let path = dir.file("seq.yaml", SEQUENCE);
    let (code, out, err) = squall(&[
        "run",
        path.to_str().unwrap(),
        "--quiet",
        "--set",
        "spec.spouts.numbers.config.count=300",
        "--set",
        "spec.bolts.sink.parallelism=3",
        "--set",
        "spec.ackers=0",
        "--set",
        "spec.config.squall.queue.capacity=64",
    ]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(row(&out, "numbers")[3], "300", "{out}");
    assert_eq!(row(&out, "sink")[2], "3/3", "{out}");
    // No ackers: no acker row; queue capacity is per executor.
    assert!(!out.contains("__acker"), "{out}");
    assert!(row(&out, "sink").contains(&"0/192"), "{out}");
}

#[test]
fn set_overrides_with_unknown_keys_fail_clearly() {
    let dir = Dir::new();
    let path = dir.file("seq.yaml", SEQUENCE);
    let path = path.to_str().unwrap();
    let cases = [
        (
            "spec.maxSpoutPendin=10",
            "--set spec.maxSpoutPendin=10: spec.maxSpoutPendin: unknown field `maxSpoutPendin`",
        ),
        (
            "spec.bolts.snk.parallelism=2",
            "--set spec.bolts.snk.parallelism=2: no bolt named \"snk\"; bolts: sink",
        ),
        (
            "spec.bolts.sink.parallelism=many",
            "--set spec.bolts.sink.parallelism=many: spec.bolts[0].parallelism: invalid type: string \"many\"",
        ),
        (
            "kind=Other",
            "--set kind=Other: only keys under spec. and metadata. can be set",
        ),
    ];
    for (set, expected) in cases {
        let (code, _, err) = squall(&["validate", path, "--set", set]);
        assert_eq!(code, 2, "{set}: {err}");
        assert!(err.starts_with(expected), "{set}: {err}");
    }
    // Not KEY=VALUE at all: a usage error from the argument parser.
    let (code, _, err) = squall(&["validate", path, "--set", "spec.ackers"]);
    assert_eq!(code, 2);
    assert!(err.contains("expected KEY=VALUE"), "{err}");
}

#[test]
fn graph_prints_nodes_and_labelled_edges_in_manifest_order() {
    let dir = Dir::new();
    let path = dir.file("words.yaml", WORDS);
    let (code, out, err) = squall(&["graph", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("digraph \"words\" {\n"), "{out}");
    let edges: Vec<&str> = out.lines().filter(|l| l.contains("->")).map(str::trim).collect();
    assert_eq!(
        edges,
        [
            "\"sentences\" -> \"split\" [label=\"shuffle\"];",
            "\"split\" -> \"count\" [label=\"fields(word)\"];",
        ]
    );
    assert!(out.contains("label=\"count\\ncount ×3, 6 tasks\""), "{out}");
    assert!(out.contains("\"sentences\" [shape=invhouse"), "{out}");
    assert!(out.contains("\"split\" [shape=box"), "{out}");
    // Stable: the same input gives the same bytes.
    assert_eq!(squall(&["graph", path.to_str().unwrap()]).1, out);
}

#[test]
fn graph_labels_non_default_streams() {
    let dir = Dir::new();
    let text = "\
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: streams}
spec:
  spouts:
    - name: src
      component: const
      outputs: [{stream: edits, fields: [payload]}]
  bolts:
    - {name: sink, component: \"null\", inputs: [{from: src, stream: edits, grouping: {type: all}}]}
";
    let path = dir.file("streams.yaml", text);
    let (code, out, err) = squall(&["graph", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"src\" -> \"sink\" [label=\"edits: all\"];"),
        "{out}"
    );
}

#[test]
fn kinds_lists_roles_and_default_outputs() {
    let (code, out, _) = squall(&["kinds"]);
    assert_eq!(code, 0);
    let line = |kind: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} in:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("sequence"), "sequence spout default: [n]");
    assert_eq!(line("count"), "count bolt default: [word, count]");
}

#[test]
fn the_word_count_example_validates() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/word-count/topology.yaml"
    );
    let (code, out, err) = squall(&["validate", example]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (1 spout, 3 bolts, 7 tasks)"), "{out}");
}

#[test]
fn version_flag() {
    let (code, out, _) = squall(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("squall "), "{out}");
}

#[test]
fn a_topology_that_fails_to_start_names_component_and_task() {
    let dir = Dir::new();
    // Shell components validate but cannot be built yet: a start-up failure.
    let path = dir.file(
        "shell.yaml",
        &SEQUENCE.replace(
            "component: \"null\"",
            "component: shell\n      shell: {command: python3}",
        ),
    );
    let (code, _, err) = squall(&["run", path.to_str().unwrap(), "--for", "2s"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: starting topology \"seq\": component \"sink\" task "),
        "{err}"
    );
}

#[test]
fn a_shell_command_on_no_path_directory_is_named_with_the_venv_and_path_searched() {
    let dir = Dir::new();
    let path = dir.file(
        "shell.yaml",
        &SEQUENCE.replace(
            "component: \"null\"",
            "component: shell\n      shell: {command: no_such_program_here, env: {PATH: /usr/bin}}",
        ),
    );
    let (code, _, err) = squall(&[
        "run",
        path.to_str().unwrap(),
        "--for",
        "2s",
        "--venv",
        "/opt/gone",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(r#"command "no_such_program_here" not found on PATH /opt/gone/bin:/usr/bin"#),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_run_with_a_summary() {
    let dir = Dir::new();
    // Endless: no count.
    let path = dir.file("forever.yaml", &SEQUENCE.replace("config: {count: 1000}", ""));
    let child = Command::new(BIN)
        .args(["run", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("interrupted (Ctrl-C)"), "{stdout}");
    let acked: u64 = row(&stdout, "numbers")[4].parse().unwrap();
    assert!(acked > 0, "{stdout}");
}

#[test]
fn validate_refuses_a_parser_giving_more_keys_per_record_than_the_counter_tells_apart() {
    let dir = Dir::new();
    let path = dir.file(
        "eo.yaml",
        "\
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata:
  name: eo
spec:
  spouts:
    - name: edits
      component: kafka
      config: {bootstrap_servers: 127.0.0.1:9092, topics: [edits]}
  bolts:
    - name: parser
      component: json-keys
      config:
        field: value
        keys: [{prefix: action_, path: action}, {prefix: bot_, path: bot}, {prefix: user_, path: user}]
        carry: [topic, partition, offset, floor]
        index: index
      inputs: [{from: edits}]
    - name: counts
      component: redis-counter
      config:
        exactly_once: {source: [topic, partition], offset: offset, floor: floor, index: index, tuples_per_record: 2}
      inputs: [{from: parser}]
",
    );
    let (code, out, err) = squall(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    let expected = "  spec.bolts[1].config.exactly_once.tuples_per_record: 2 is too small: component \"parser\" (spec.bolts[0], kind \"json-keys\") gives up to 3 tuples per record (its field \"index\" on stream default goes up to 2); set tuples_per_record to at least 3";
    assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    // With room for the three keys it validates.
    let fixed = std::fs::read_to_string(&path)
        .unwrap()
        .replace("tuples_per_record: 2", "tuples_per_record: 3");
    std::fs::write(&path, fixed).unwrap();
    let (code, out, err) = squall(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
}

#[test]
fn validate_refuses_exactly_once_counts_behind_a_spout_without_stable_identities() {
    let dir = Dir::new();
    let path = dir.file(
        "eo.yaml",
        "\
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata:
  name: eo
spec:
  spouts:
    - name: edits
      component: json-lines
      config: {path: edits.jsonl, fields: [partition, offset, floor, value]}
  bolts:
    - name: parser
      component: json-keys
      config:
        field: value
        keys: [{prefix: action_, path: action}]
        carry: [partition, offset, floor]
        index: index
      inputs: [{from: edits}]
    - name: counts
      component: redis-counter
      config:
        exactly_once: {source: [partition], offset: offset, floor: floor, index: idx}
      inputs: [{from: parser}]
",
    );
    let (code, out, err) = squall(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    for expected in [
        "  spec.bolts[1].config.exactly_once: needs stable record identities, but spout \"edits\" (spec.spouts[0], kind \"json-lines\") feeds it (edits -> parser -> counts) and cannot give them",
        "  spec.bolts[1].config.exactly_once.index: identity field \"idx\" is not declared on stream parser/default (inputs[0]); declared: key, partition, offset, floor, index",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}
