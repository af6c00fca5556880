//! A streamparse topology class, as the helper read it, turned into a Topology manifest.
//!
//! Everything that has a Squall equivalent is carried over; everything else is a
//! [`Refusal`] naming the source line, and all of them are reported at once.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use squall_model::{
    ComponentSpec, Config, DesiredState, GroupingKind, GroupingSpec, InputSpec, Metadata, Serializer,
    ShellSpec, StreamSpec, TopologyManifest, TopologySpec, API_VERSION, DEFAULT_MESSAGE_TIMEOUT_SECONDS,
    KIND,
};

/// The program streamparse runs Python components with, found through PATH.
pub const STREAMPARSE_RUN: &str = "streamparse_run";

/// A topology class as the helper reports it.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TopologyRead {
    /// The class name.
    pub class: String,
    /// Its line.
    pub line: u32,
    /// Its `config` attribute.
    #[serde(default)]
    pub config: Config,
    /// The line of `config = ...`.
    pub config_line: Option<u32>,
    /// The project's config.json, when there is one.
    #[serde(default)]
    pub project: Option<ProjectRead>,
    /// Where scripts of non-streamparse Python shell components are relative to (`src/`).
    pub src_root: PathBuf,
    /// Spouts and bolts in the class's order.
    pub components: Vec<ComponentRead>,
}

/// One spec of the class.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRead {
    pub name: String,
    pub line: u32,
    pub role: String,
    /// `module.Class` of the component.
    pub class: String,
    /// An integer, or streamparse's per-environment map.
    pub par: Value,
    #[serde(default)]
    pub config: Config,
    #[serde(default)]
    pub outputs: Vec<StreamRead>,
    #[serde(default)]
    pub inputs: Vec<InputRead>,
    /// The directory the component's module is imported from; none when installed.
    pub module_root: Option<PathBuf>,
    pub shell: Option<ShellRead>,
    /// The Java class of a JavaSpout or JavaBolt.
    pub java: Option<String>,
}

/// What a streamparse project's config.json says of the serializer.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRead {
    /// The config.json read.
    pub file: PathBuf,
    /// Its top-level `serializer`.
    #[serde(default)]
    pub serializer: Option<Value>,
    /// `envs.NAME.serializer`, where set.
    #[serde(default)]
    pub env_serializers: BTreeMap<String, Value>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct StreamRead {
    pub stream: String,
    pub fields: Vec<String>,
    #[serde(default)]
    pub direct: bool,
}

#[derive(Deserialize, Debug, Clone)]
pub struct InputRead {
    pub component: String,
    pub stream: String,
    pub grouping: GroupingRead,
}

#[derive(Deserialize, Debug, Clone)]
pub struct GroupingRead {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub fields: Vec<String>,
    /// The Java class of a custom grouping.
    pub class: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct ShellRead {
    pub command: String,
    pub script: String,
}

/// Something of the class that Squall cannot run, at a line of the topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: Option<u32>,
    pub message: String,
}

/// Every refusal of one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusals(pub Vec<Refusal>);

impl Refusals {
    /// One line per refusal, `FILE:LINE: message`.
    pub fn render(&self, file: &Path) -> String {
        let n = self.0.len();
        let mut out = format!(
            "{}: {n} part{} of the topology cannot be carried over:",
            file.display(),
            if n == 1 { "" } else { "s" }
        );
        for r in &self.0 {
            match r.line {
                Some(line) => out.push_str(&format!("\n  {}:{line}: {}", file.display(), r.message)),
                None => out.push_str(&format!("\n  {}: {}", file.display(), r.message)),
            }
        }
        out
    }
}

/// Storm settings that are typed fields of a Squall topology.
const WORKERS: &str = "topology.workers";
const ACKERS: &str = "topology.acker.executors";
const TIMEOUT: &str = "topology.message.timeout.secs";
const PENDING: &str = "topology.max.spout.pending";
const TICK: &str = "topology.tick.tuple.freq.secs";

/// How the manifest is written: its name, and the directory it is written to, which the
/// `workingDir` of each component is relative to.
pub struct Target<'a> {
    pub name: Option<&'a str>,
    pub manifest_dir: &'a Path,
}

/// The manifest for `read`, or every part that cannot be carried over.
pub fn convert(read: &TopologyRead, target: &Target<'_>) -> Result<TopologyManifest, Refusals> {
    let mut refusals = Vec::new();
    let mut spec = TopologySpec {
        workers: 1,
        ackers: None,
        message_timeout_seconds: DEFAULT_MESSAGE_TIMEOUT_SECONDS,
        kill_wait_seconds: None,
        max_spout_pending: None,
        tick_tuple_frequency_seconds: None,
        desired_state: DesiredState::Active,
        config: Config::new(),
        spouts: Vec::new(),
        bolts: Vec::new(),
        pod: None,
        tls: None,
        autoscaling: None,
    };
    topology_config(read, &mut spec, &mut refusals);
    let serializer = project_serializer(read, &mut refusals);
    for c in &read.components {
        let mut component = component(c, read, target.manifest_dir, &mut refusals);
        // streamparse passes its serializer to streamparse_run only (`-s NAME`).
        if let Some(sh) = component
            .shell
            .as_mut()
            .filter(|sh| sh.command == STREAMPARSE_RUN)
        {
            sh.serializer = serializer;
        }
        if c.role == "bolt" {
            spec.bolts.push(component);
        } else {
            spec.spouts.push(component);
        }
    }
    if !refusals.is_empty() {
        return Err(Refusals(refusals));
    }
    Ok(TopologyManifest {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        metadata: Metadata {
            name: target.name.map_or_else(|| kebab(&read.class), str::to_owned),
            ..Metadata::default()
        },
        spec,
        status: None,
    })
}

/// Storm's settings with a typed field become that field; the rest stays free-form.
fn topology_config(read: &TopologyRead, spec: &mut TopologySpec, refusals: &mut Vec<Refusal>) {
    let line = read.config_line.or(Some(read.line));
    for (key, value) in &read.config {
        let mut int = || {
            let n = value.as_i64();
            if n.is_none() {
                refusals.push(Refusal {
                    line,
                    message: format!("config {key:?}: {value} is not an integer"),
                });
            }
            n
        };
        match key.as_str() {
            WORKERS => spec.workers = int().map_or(1, clamp_i32),
            ACKERS => spec.ackers = int().map(clamp_i32),
            TIMEOUT => spec.message_timeout_seconds = int().unwrap_or(DEFAULT_MESSAGE_TIMEOUT_SECONDS),
            PENDING => spec.max_spout_pending = int(),
            TICK => spec.tick_tuple_frequency_seconds = int(),
            _ => {
                spec.config.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The serializer the project's config.json chooses (`serializer`, JSON when unset), the
/// same for every environment since Squall has none.
fn project_serializer(read: &TopologyRead, refusals: &mut Vec<Refusal>) -> Serializer {
    let Some(project) = &read.project else {
        return Serializer::Json;
    };
    let file = project.file.display();
    let parse = |v: &Value| match v.as_str() {
        Some("json") => Some(Serializer::Json),
        Some("msgpack") => Some(Serializer::Msgpack),
        _ => None,
    };
    let top = match &project.serializer {
        None | Some(Value::Null) => Serializer::Json,
        Some(v) => parse(v).unwrap_or_else(|| {
            refusals.push(Refusal {
                line: None,
                message: format!(
                    "{file}: serializer {v} is not supported: Squall's shell host speaks json and msgpack"
                ),
            });
            Serializer::Json
        }),
    };
    for (env, v) in &project.env_serializers {
        if parse(v) != Some(top) {
            refusals.push(Refusal {
                line: None,
                message: format!(
                    "{file}: serializer {v} of environment {env:?} differs from the project's {:?}: \
                     Squall has no `sparse` environments; set one serializer at the top of config.json",
                    top.as_str()
                ),
            });
        }
    }
    top
}

/// Out-of-range counts are left to validation, which names the limit; clamping keeps them
/// over it rather than wrapping into range.
fn clamp_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

fn component(
    c: &ComponentRead,
    read: &TopologyRead,
    dir: &Path,
    refusals: &mut Vec<Refusal>,
) -> ComponentSpec {
    let line = Some(c.line);
    let mut refuse = |message: String| {
        refusals.push(Refusal {
            line,
            message: format!("{} {} ({}): {message}", c.role, c.name, c.class),
        })
    };
    let shell = match (&c.shell, &c.java) {
        (_, Some(java)) => {
            refuse(format!(
                "a Java component ({java}) cannot be carried over; use a built-in kind \
                 (`squall kinds`: kafka, websocket, sse, ...) or a Python {}",
                c.role
            ));
            None
        }
        (Some(sh), None) => shell(sh, c, read, dir).map_err(&mut refuse).ok(),
        (None, None) => {
            refuse("neither a shell nor a Java component".to_owned());
            None
        }
    };
    let parallelism = match &c.par {
        Value::Number(n) if n.as_i64().is_some() => n.as_i64().map_or(1, clamp_i32),
        other => {
            refuse(format!(
                "par {other} per environment is not supported: give one number (Squall has no `sparse` environments)"
            ));
            1
        }
    };
    let mut config = Config::new();
    let mut tick = None;
    for (key, value) in &c.config {
        match key.as_str() {
            TICK => match value.as_i64() {
                Some(n) => tick = Some(n),
                None => refuse(format!("config {key:?}: {value} is not an integer")),
            },
            WORKERS | ACKERS | TIMEOUT | PENDING => refuse(format!(
                "config {key:?} per component is not supported: Squall sets it for the whole topology; \
                 move it to the topology's config"
            )),
            _ => {
                config.insert(key.clone(), value.clone());
            }
        }
    }
    let inputs = c
        .inputs
        .iter()
        .filter_map(|i| match grouping(&i.grouping) {
            Ok(grouping) => Some(InputSpec {
                from: i.component.clone(),
                stream: i.stream.clone(),
                grouping,
            }),
            Err(e) => {
                refuse(format!("input from {}/{}: {e}", i.component, i.stream));
                None
            }
        })
        .collect();
    ComponentSpec {
        name: c.name.clone(),
        component: "shell".to_owned(),
        shell,
        parallelism,
        tasks: None,
        config,
        outputs: c
            .outputs
            .iter()
            .map(|s| StreamSpec {
                stream: s.stream.clone(),
                fields: s.fields.clone(),
                direct: s.direct,
            })
            .collect(),
        inputs,
        tick_tuple_frequency_seconds: tick,
    }
}

/// `streamparse_run module.Class` run where the module is importable; a Python script
/// of a ShellBolt/ShellSpout run in `src/`, where Storm would have unpacked it.
fn shell(sh: &ShellRead, c: &ComponentRead, read: &TopologyRead, dir: &Path) -> Result<ShellSpec, String> {
    let args: Vec<String> = sh.script.split_whitespace().map(str::to_owned).collect();
    let root = if sh.command == STREAMPARSE_RUN {
        c.module_root.as_deref()
    } else if is_python(&sh.command) {
        Some(read.src_root.as_path())
    } else {
        return Err(format!(
            "runs `{} {}`, not Python; only Python components carry over (streamparse_run or python): \
             port it to Python or use a built-in kind (`squall kinds`)",
            sh.command, sh.script
        ));
    };
    Ok(ShellSpec {
        command: sh.command.clone(),
        args,
        env: BTreeMap::new(),
        working_dir: root.map(|r| relative(r, dir).display().to_string()),
        serializer: Serializer::Json,
    })
}

/// `python`, `python3`, `python3.11`, also by path.
fn is_python(command: &str) -> bool {
    let base = Path::new(command)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    base.strip_prefix("python")
        .is_some_and(|v| v.chars().all(|ch| ch.is_ascii_digit() || ch == '.'))
}

fn grouping(g: &GroupingRead) -> Result<GroupingSpec, String> {
    let kind = match g.kind.as_str() {
        "shuffle" => GroupingKind::Shuffle,
        "fields" => GroupingKind::Fields,
        "global" => GroupingKind::Global,
        "all" => GroupingKind::All,
        "none" => GroupingKind::None,
        "direct" => GroupingKind::Direct,
        "local_or_shuffle" => GroupingKind::LocalOrShuffle,
        "custom" => {
            return Err(format!(
                "custom grouping {} is not supported; Squall has shuffle, fields, partialKey, all, global, \
                 none, direct and localOrShuffle",
                g.class.as_deref().unwrap_or("?")
            ))
        }
        other => return Err(format!("unknown grouping {other:?}")),
    };
    Ok(GroupingSpec {
        kind,
        fields: if kind == GroupingKind::Fields {
            g.fields.clone()
        } else {
            Vec::new()
        },
    })
}

/// `WordCount` → `word-count`: a Kubernetes object name.
pub fn kebab(class: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for ch in class.chars() {
        if ch.is_ascii_uppercase() && prev_lower {
            out.push('-');
        }
        prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_owned();
    if trimmed.is_empty() {
        "topology".to_owned()
    } else {
        trimmed
    }
}

/// `target` relative to `base`, both absolute; `.` when they are the same.
pub fn relative(target: &Path, base: &Path) -> PathBuf {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (target, base) = (canon(target), canon(base));
    let t: Vec<Component<'_>> = target.components().collect();
    let b: Vec<Component<'_>> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for part in &t[common..] {
        out.push(part.as_os_str());
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A spout `words` (line 5) and a bolt `count` (line 6) fed by it with `grouping`.
    fn read_with(grouping: Value, outputs: Value) -> TopologyRead {
        serde_json::from_value(json!({
            "class": "WordCount",
            "line": 4,
            "config": {},
            "configLine": null,
            "srcRoot": "/p/src",
            "components": [
                {"name": "words", "line": 5, "role": "spout", "class": "spouts.Words", "par": 1,
                 "outputs": outputs, "inputs": [], "moduleRoot": "/p/src",
                 "shell": {"command": "streamparse_run", "script": "spouts.Words"}},
                {"name": "count", "line": 6, "role": "bolt", "class": "bolts.Count", "par": 2,
                 "config": {"limit": 3},
                 "outputs": [{"stream": "default", "fields": ["word", "count"], "direct": false}],
                 "inputs": [{"component": "words", "stream": "default", "grouping": grouping}],
                 "moduleRoot": "/p/src",
                 "shell": {"command": "streamparse_run", "script": "bolts.Count"}}
            ]
        }))
        .unwrap()
    }

    fn words_out() -> Value {
        json!([{"stream": "default", "fields": ["word"], "direct": false}])
    }

    fn to(dir: &str) -> Target<'_> {
        Target {
            name: None,
            manifest_dir: Path::new(dir),
        }
    }

    fn convert_grouping(grouping: Value, outputs: Value) -> GroupingSpec {
        let m = convert(&read_with(grouping, outputs), &to("/p")).unwrap();
        m.spec.bolts[0].inputs[0].grouping.clone()
    }

    #[test]
    fn every_streamparse_grouping_has_its_squall_kind() {
        for (streamparse, kind) in [
            ("shuffle", GroupingKind::Shuffle),
            ("global", GroupingKind::Global),
            ("all", GroupingKind::All),
            ("none", GroupingKind::None),
            ("local_or_shuffle", GroupingKind::LocalOrShuffle),
        ] {
            let g = convert_grouping(json!({"type": streamparse}), words_out());
            assert_eq!(g, GroupingSpec { kind, fields: vec![] }, "{streamparse}");
        }
        let g = convert_grouping(json!({"type": "fields", "fields": ["word"]}), words_out());
        assert_eq!(g.kind, GroupingKind::Fields);
        assert_eq!(g.fields, ["word"]);
        let direct = json!([{"stream": "default", "fields": ["word"], "direct": true}]);
        let m = convert(&read_with(json!({"type": "direct"}), direct), &to("/p")).unwrap();
        assert_eq!(m.spec.bolts[0].inputs[0].grouping.kind, GroupingKind::Direct);
        assert!(m.spec.spouts[0].outputs[0].direct);
    }

    #[test]
    fn components_become_streamparse_run_shells_with_their_settings() {
        let read = read_with(json!({"type": "fields", "fields": ["word"]}), words_out());
        let m = convert(&read, &to("/p/deploy")).unwrap();
        assert_eq!(m.metadata.name, "word-count");
        let count = &m.spec.bolts[0];
        assert_eq!(count.component, "shell");
        assert_eq!(
            count.shell,
            Some(ShellSpec {
                command: "streamparse_run".into(),
                args: vec!["bolts.Count".into()],
                env: BTreeMap::new(),
                working_dir: Some("../src".into()),
                serializer: Serializer::Json,
            })
        );
        assert_eq!(count.parallelism, 2);
        assert_eq!(count.config.get("limit"), Some(&json!(3)));
        assert_eq!(count.outputs, [StreamSpec::new("default", &["word", "count"])]);
        assert_eq!(count.inputs[0].from, "words");
        assert_eq!(m.spec.spouts[0].name, "words");
        // The manifest goes through validation as it is.
        squall_model::validate(&m, &squall_components::Builtins).unwrap();
    }

    #[test]
    fn named_streams_are_declared_and_subscribed() {
        let outputs = json!([
            {"stream": "default", "fields": ["word"], "direct": false},
            {"stream": "errors", "fields": ["event", "error"], "direct": false}
        ]);
        let mut read = read_with(json!({"type": "shuffle"}), outputs);
        read.components[1].inputs[0].stream = "errors".into();
        let m = convert(&read, &to("/p")).unwrap();
        assert_eq!(
            m.spec.spouts[0].outputs[1],
            StreamSpec::new("errors", &["event", "error"])
        );
        assert_eq!(m.spec.bolts[0].inputs[0].stream, "errors");
    }

    #[test]
    fn storm_settings_become_typed_fields_and_the_rest_stays_config() {
        let mut read = read_with(json!({"type": "shuffle"}), words_out());
        read.config = serde_json::from_value(json!({
            "topology.workers": 3, "topology.acker.executors": 2,
            "topology.message.timeout.secs": 60, "topology.max.spout.pending": 500,
            "topology.tick.tuple.freq.secs": 10, "redis.url": "redis://r:6379"
        }))
        .unwrap();
        read.components[1].config.insert(TICK.into(), json!(5));
        let s = convert(&read, &to("/p")).unwrap().spec;
        assert_eq!(
            (
                s.workers,
                s.ackers,
                s.message_timeout_seconds,
                s.max_spout_pending
            ),
            (3, Some(2), 60, Some(500))
        );
        assert_eq!(s.tick_tuple_frequency_seconds, Some(10));
        assert_eq!(s.config.keys().collect::<Vec<_>>(), ["redis.url"]);
        assert_eq!(s.bolts[0].tick_tuple_frequency_seconds, Some(5));
        assert!(!s.bolts[0].config.contains_key(TICK));
    }

    #[test]
    fn what_cannot_be_carried_over_is_refused_with_its_line() {
        let mut read = read_with(
            json!({"type": "custom", "class": "com.x.MyGrouping"}),
            words_out(),
        );
        read.config_line = Some(9);
        read.config.insert(PENDING.into(), json!("many"));
        read.components[0].shell = None;
        read.components[0].java = Some("org.apache.storm.kafka.spout.KafkaSpout".into());
        read.components[1].par = json!({"prod": 4});
        read.components[1].config.insert(WORKERS.into(), json!(2));
        read.components.push(ComponentRead {
            name: "split".into(),
            line: 7,
            class: "streamparse.storm.bolt.ShellBolt".into(),
            module_root: None,
            shell: Some(ShellRead {
                command: "node".into(),
                script: "splitsentence.js".into(),
            }),
            ..read.components[1].clone()
        });
        let Refusals(r) = convert(&read, &to("/p")).unwrap_err();
        let lines: Vec<_> = r.iter().map(|r| r.line).collect();
        assert_eq!(
            lines,
            [
                Some(9),
                Some(5),
                Some(6),
                Some(6),
                Some(6),
                Some(7),
                Some(7),
                Some(7),
                Some(7)
            ]
        );
        let text = Refusals(r).render(Path::new("topologies/t.py"));
        for expected in [
            "topologies/t.py: 9 parts of the topology cannot be carried over:",
            "topologies/t.py:9: config \"topology.max.spout.pending\": \"many\" is not an integer",
            "topologies/t.py:5: spout words (spouts.Words): a Java component (org.apache.storm.kafka.spout.KafkaSpout) cannot be carried over",
            "topologies/t.py:6: bolt count (bolts.Count): par {\"prod\":4} per environment is not supported",
            "topologies/t.py:6: bolt count (bolts.Count): config \"topology.workers\" per component is not supported",
            "topologies/t.py:6: bolt count (bolts.Count): input from words/default: custom grouping com.x.MyGrouping is not supported",
            "topologies/t.py:7: bolt split (streamparse.storm.bolt.ShellBolt): runs `node splitsentence.js`, not Python",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn python_shell_components_run_their_script_from_src() {
        let mut read = read_with(json!({"type": "shuffle"}), words_out());
        read.components[1].shell = Some(ShellRead {
            command: "python3".into(),
            script: "count.py --fast".into(),
        });
        let shell = convert(&read, &to("/p")).unwrap().spec.bolts[0]
            .shell
            .clone()
            .unwrap();
        assert_eq!(
            (shell.command.as_str(), shell.args.as_slice()),
            ("python3", &["count.py".to_owned(), "--fast".to_owned()][..])
        );
        assert_eq!(shell.working_dir.as_deref(), Some("src"));
        assert!(is_python("/usr/bin/python3.11") && is_python("python") && !is_python("pythonista"));
    }

    fn project(serializer: Value, envs: Value) -> Option<ProjectRead> {
        Some(ProjectRead {
            file: "/p/config.json".into(),
            serializer: Some(serializer),
            env_serializers: serde_json::from_value(envs).unwrap(),
        })
    }

    #[test]
    fn the_project_serializer_reaches_streamparse_run_components() {
        let mut read = read_with(json!({"type": "shuffle"}), words_out());
        read.project = project(json!("msgpack"), json!({"prod": "msgpack"}));
        read.components[1].shell = Some(ShellRead {
            command: "python3".into(),
            script: "count.py".into(),
        });
        let m = convert(&read, &to("/p")).unwrap();
        let spout = m.spec.spouts[0].shell.as_ref().unwrap();
        assert_eq!(spout.serializer, Serializer::Msgpack);
        // streamparse hands its serializer to streamparse_run only.
        assert_eq!(
            m.spec.bolts[0].shell.as_ref().unwrap().serializer,
            Serializer::Json
        );
        assert!(m.to_yaml().unwrap().contains("serializer: msgpack"));
        read.project = project(Value::Null, json!({}));
        let m = convert(&read, &to("/p")).unwrap();
        assert_eq!(
            m.spec.spouts[0].shell.as_ref().unwrap().serializer,
            Serializer::Json
        );
    }

    #[test]
    fn an_unknown_or_per_environment_serializer_is_refused() {
        let mut read = read_with(json!({"type": "shuffle"}), words_out());
        read.project = project(json!("pickle"), json!({}));
        let Refusals(r) = convert(&read, &to("/p")).unwrap_err();
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].message,
            "/p/config.json: serializer \"pickle\" is not supported: Squall's shell host speaks json and msgpack"
        );
        read.project = project(json!("json"), json!({"prod": "msgpack", "dev": "json"}));
        let Refusals(r) = convert(&read, &to("/p")).unwrap_err();
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].message.contains(
                "serializer \"msgpack\" of environment \"prod\" differs from the project's \"json\""
            ),
            "{r:?}"
        );
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(kebab("WordCount"), "word-count");
        assert_eq!(kebab("WikipediaEdits2"), "wikipedia-edits2");
        assert_eq!(kebab("HTTPTopology_v2"), "httptopology-v2");
        assert_eq!(kebab("__"), "topology");
        assert_eq!(
            relative(Path::new("/a/b/src"), Path::new("/a/b")),
            Path::new("src")
        );
        assert_eq!(
            relative(Path::new("/a/src"), Path::new("/a/b/c")),
            Path::new("../../src")
        );
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), Path::new("."));
    }
}
