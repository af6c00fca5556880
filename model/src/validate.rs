//! Validation: every problem of a topology at once, each with the path of the field at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::depth::value_depth;
use crate::identity::{check_identities, Identity};
use crate::limits::{shorten, LimitKey, Limits, MAX_SECONDS};
use crate::manifest::TopologyManifest;
use crate::plan::{ComponentPlan, Plan, Role, ACKER_COMPONENT};
use crate::spec::{ComponentSpec, Config, GroupingKind, StreamSpec};

/// What a component kind is, as far as validation needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct KindInfo {
    /// The role the kind plays; `None` when it can be either (e.g. `shell`).
    pub role: Option<Role>,
    /// Output streams the kind declares by itself (used when the manifest declares none).
    pub outputs: Vec<StreamSpec>,
    /// What the kind, with this config, does with stable record identities.
    pub identity: Identity,
    /// Integer output fields whose values the kind bounds (e.g. `json-keys`' `index`).
    pub bounds: Vec<FieldBound>,
}

/// An integer field of an output stream whose values are always below `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldBound {
    /// The output stream.
    pub stream: String,
    /// The field.
    pub field: String,
    /// Every value is below this.
    pub limit: u64,
}

impl KindInfo {
    /// A kind of this role and these default outputs, with nothing to do with identities.
    pub fn new(role: Option<Role>, outputs: Vec<StreamSpec>) -> Self {
        KindInfo {
            role,
            outputs,
            identity: Identity::None,
            bounds: Vec::new(),
        }
    }
}

/// The component kinds a runtime knows how to build.
pub trait Catalog {
    /// Describes `kind` with this configuration: `None` when the kind is unknown,
    /// `Some(Err(..))` when the configuration is invalid.
    fn describe(&self, kind: &str, config: &Config) -> Option<Result<KindInfo, String>>;
    /// Every known kind, for error messages.
    fn kinds(&self) -> Vec<String>;
}

/// One problem, with the path of the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// e.g. `spec.bolts[2].inputs[0].grouping.fields[0]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a topology.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<Problem>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} problem{} in the topology:", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

pub(crate) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Problems listed at most; a manifest of thousands of mistakes gets the first ones and a
/// count, so the message (and a status or Event made of it) stays small.
pub const MAX_PROBLEMS: usize = 50;

/// Checks a manifest against a catalog within the default [`Limits`] and resolves it into
/// a [`Plan`].
pub fn validate(manifest: &TopologyManifest, catalog: &dyn Catalog) -> Result<Plan, ValidationErrors> {
    validate_within(manifest, catalog, &Limits::default())
}

/// Checks a manifest against a catalog and `limits`, and resolves it into a [`Plan`]. The
/// plan is built only when every count is within its limit, so its size is bounded by the
/// limits, whatever numbers the manifest holds.
pub fn validate_within(
    manifest: &TopologyManifest,
    catalog: &dyn Catalog,
    limits: &Limits,
) -> Result<Plan, ValidationErrors> {
    let mut c = Checker { problems: Vec::new() };
    let spec = &manifest.spec;
    check_name(&mut c, "metadata.name", &manifest.metadata.name, 63);
    check_limits(&mut c, spec, limits);
    if let Some(a) = &spec.autoscaling {
        check_autoscaling(&mut c, spec, a, limits);
    }

    if spec.workers < 1 {
        c.add(
            "spec.workers",
            format!("must be at least 1, got {}", spec.workers),
        );
    }
    if let Some(a) = spec.ackers {
        if a < 0 {
            c.add("spec.ackers", format!("must be 0 (acking off) or more, got {a}"));
        }
    }
    if spec.message_timeout_seconds < 1 {
        c.add(
            "spec.messageTimeoutSeconds",
            format!("must be at least 1, got {}", spec.message_timeout_seconds),
        );
    }
    if let Some(p) = spec.max_spout_pending {
        if p < 1 || p > i64::from(u32::MAX) {
            c.add(
                "spec.maxSpoutPending",
                format!("must be between 1 and {}, got {p}", u32::MAX),
            );
        }
    }
    if let Some(t) = spec.tick_tuple_frequency_seconds {
        if t < 1 {
            c.add(
                "spec.tickTupleFrequencySeconds",
                format!("must be at least 1, got {t}"),
            );
        }
    }
    crate::engine_settings::check(&mut c, &spec.config);
    if spec.spouts.is_empty() {
        c.add("spec.spouts", "a topology needs at least one spout");
    }

    // Names first, so inputs can be checked against them.
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    let all = spec
        .spouts
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("spec.spouts[{i}]"), Role::Spout, s))
        .chain(
            spec.bolts
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("spec.bolts[{i}]"), Role::Bolt, b)),
        )
        .collect::<Vec<_>>();
    for (path, _, comp) in &all {
        check_name(&mut c, &format!("{path}.name"), &comp.name, 63);
        if comp.name.starts_with("__") {
            c.add(
                format!("{path}.name"),
                format!(
                    "{:?}: names starting with \"__\" are reserved for system components",
                    comp.name
                ),
            );
        }
        if let Some(first) = seen.get(comp.name.as_str()) {
            c.add(
                format!("{path}.name"),
                format!("duplicate component name {:?} (first used at {first})", comp.name),
            );
        } else {
            seen.insert(&comp.name, path.clone());
        }
    }

    // Resolve each component's kind and outputs.
    let mut outputs: BTreeMap<&str, Vec<StreamSpec>> = BTreeMap::new();
    let mut identities: Vec<Identity> = Vec::with_capacity(all.len());
    let mut bounds: Vec<Vec<FieldBound>> = Vec::with_capacity(all.len());
    let mut unresolved: BTreeSet<&str> = BTreeSet::new();
    for (path, role, comp) in &all {
        let before = c.problems.len();
        let (resolved, identity, bound) = check_component(&mut c, catalog, path, *role, comp);
        identities.push(identity);
        bounds.push(bound);
        // A component whose kind or config is wrong has unknown default outputs: do not
        // pile "declares no stream" errors onto its consumers as well.
        let kind_failed = c.problems[before..]
            .iter()
            .any(|p| p.path == format!("{path}.component") || p.path == format!("{path}.config"));
        if kind_failed && comp.outputs.is_empty() {
            unresolved.insert(comp.name.as_str());
        }
        outputs.entry(&comp.name).or_insert(resolved);
    }

    for (path, role, comp) in &all {
        match role {
            Role::Spout if !comp.inputs.is_empty() => c.add(
                format!("{path}.inputs"),
                "a spout cannot have inputs; make it a bolt",
            ),
            Role::Bolt if comp.inputs.is_empty() => {
                c.add(format!("{path}.inputs"), "a bolt needs at least one input")
            }
            _ => {}
        }
        check_inputs(&mut c, path, comp, &outputs, &unresolved);
    }
    check_fed(&mut c, &all, spec.tick_tuple_frequency_seconds.is_some());
    check_identities(&mut c, &all, &identities, &bounds, &outputs, &unresolved);

    if !c.problems.is_empty() {
        let mut problems = c.problems;
        if problems.len() > MAX_PROBLEMS {
            let more = problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
            problems.push(Problem {
                path: "spec".into(),
                message: format!("{more} more problems not listed"),
            });
        }
        return Err(ValidationErrors(problems));
    }
    Ok(build_plan(manifest, &all, &outputs))
}

/// Every bolt must be reachable from a spout (or a bolt with tick tuples, which makes
/// tuples of its own). Cycles are allowed, as in Storm, but a cycle no spout feeds would
/// never see a tuple: that is a wiring mistake, not a topology.
fn check_fed(c: &mut Checker, all: &[(String, Role, &ComponentSpec)], topology_ticks: bool) {
    let index: BTreeMap<&str, usize> = all
        .iter()
        .enumerate()
        .map(|(i, (_, _, comp))| (comp.name.as_str(), i))
        .collect();
    let mut fed = vec![false; all.len()];
    let mut stack: Vec<usize> = Vec::new();
    for (i, (_, role, comp)) in all.iter().enumerate() {
        let ticks = comp.tick_tuple_frequency_seconds.is_some() || (topology_ticks && *role == Role::Bolt);
        if *role == Role::Spout || ticks {
            fed[i] = true;
            stack.push(i);
        }
    }
    // Consumers of each component, for a walk downstream.
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); all.len()];
    for (i, (_, _, comp)) in all.iter().enumerate() {
        for input in &comp.inputs {
            if let Some(&from) = index.get(input.from.as_str()) {
                consumers[from].push(i);
            }
        }
    }
    while let Some(i) = stack.pop() {
        for &j in &consumers[i] {
            if !fed[j] {
                fed[j] = true;
                stack.push(j);
            }
        }
    }
    for (i, (path, _, comp)) in all.iter().enumerate() {
        let known = comp
            .inputs
            .iter()
            .all(|input| index.contains_key(input.from.as_str()));
        if !fed[i] && !comp.inputs.is_empty() && known {
            c.add(
                format!("{path}.inputs"),
                "no spout feeds this bolt: its inputs come only from bolts that no spout reaches (a cycle); subscribe it, or a bolt of its cycle, to a spout",
            );
        }
    }
}

/// Counts, durations and nesting against their limits, before anything is sized by them.
fn check_limits(c: &mut Checker, spec: &crate::spec::TopologySpec, limits: &Limits) {
    let over = |key: LimitKey, v: i64| v > 0 && v as u64 > limits.get(key);
    if over(LimitKey::Workers, i64::from(spec.workers)) {
        c.add("spec.workers", limits.exceeded(LimitKey::Workers, spec.workers));
    }
    let ackers = spec.ackers.unwrap_or(spec.workers);
    if over(LimitKey::Parallelism, i64::from(ackers)) {
        let path = if spec.ackers.is_some() {
            "spec.ackers"
        } else {
            "spec.ackers (one per worker when unset)"
        };
        c.add(path, limits.exceeded(LimitKey::Parallelism, ackers));
    }
    let components = spec.spouts.len() + spec.bolts.len();
    if components as u64 > u64::from(limits.max_components) {
        c.add("spec", limits.exceeded(LimitKey::Components, components));
    }
    let mut total = i64::from(ackers.max(0));
    for (path, comp) in component_paths(spec) {
        if over(LimitKey::Parallelism, i64::from(comp.parallelism)) {
            c.add(
                format!("{path}.parallelism"),
                limits.exceeded(LimitKey::Parallelism, comp.parallelism),
            );
        }
        if let Some(t) = comp.tasks {
            if over(LimitKey::Tasks, i64::from(t)) {
                c.add(format!("{path}.tasks"), limits.exceeded(LimitKey::Tasks, t));
            }
        }
        total += i64::from(comp.task_count().max(0));
        check_seconds(
            c,
            &format!("{path}.tickTupleFrequencySeconds"),
            comp.tick_tuple_frequency_seconds,
        );
        check_depth(c, &format!("{path}.config"), 4, &comp.config, limits);
    }
    if over(LimitKey::TotalTasks, total) {
        c.add("spec", limits.exceeded(LimitKey::TotalTasks, total));
    }
    check_seconds(
        c,
        "spec.messageTimeoutSeconds",
        Some(spec.message_timeout_seconds),
    );
    check_seconds(c, "spec.killWaitSeconds", spec.kill_wait_seconds);
    check_seconds(
        c,
        "spec.tickTupleFrequencySeconds",
        spec.tick_tuple_frequency_seconds,
    );
    check_depth(c, "spec.config", 2, &spec.config, limits);
    if let Some(pod) = &spec.pod {
        if let Some(r) = &pod.resources {
            let depth = 3 + value_depth(&serde_json::Value::Object(r.clone()));
            depth_problem(c, "spec.pod.resources", depth, limits);
        }
        for (i, t) in pod.tolerations.iter().enumerate() {
            let depth = 4 + value_depth(&serde_json::Value::Object(t.clone()));
            depth_problem(c, &format!("spec.pod.tolerations[{i}]"), depth, limits);
        }
    }
}

fn component_paths(spec: &crate::spec::TopologySpec) -> impl Iterator<Item = (String, &ComponentSpec)> {
    let spouts = spec
        .spouts
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("spec.spouts[{i}]"), s));
    let bolts = spec
        .bolts
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("spec.bolts[{i}]"), b));
    spouts.chain(bolts)
}

/// `spec.autoscaling`: ratios in range, bounds ordered and within the limits, durations
/// positive and at most a day, overrides naming components.
fn check_autoscaling(
    c: &mut Checker,
    spec: &crate::spec::TopologySpec,
    a: &crate::spec::AutoscalingSpec,
    limits: &Limits,
) {
    const P: &str = "spec.autoscaling";
    let t = a.target_utilization;
    if !(t > 0.0 && t <= 1.0) {
        c.add(
            format!("{P}.targetUtilization"),
            format!("must be above 0 and at most 1, got {t}"),
        );
    }
    let b = a.target_utilization_boundary;
    if !(0.0..1.0).contains(&b) {
        c.add(
            format!("{P}.targetUtilizationBoundary"),
            format!("must be at least 0 and below 1, got {b}"),
        );
    }
    check_bounds(c, P, Some(a.min_parallelism), Some(a.max_parallelism), limits);
    if let Some(w) = a.max_workers {
        if w < spec.workers {
            c.add(
                format!("{P}.maxWorkers"),
                format!("must be at least workers ({}), got {w}", spec.workers),
            );
        } else if w as u64 > limits.get(LimitKey::Workers) {
            c.add(format!("{P}.maxWorkers"), limits.exceeded(LimitKey::Workers, w));
        }
    }
    if a.max_executors_per_worker < 1 {
        c.add(
            format!("{P}.maxExecutorsPerWorker"),
            format!("must be at least 1, got {}", a.max_executors_per_worker),
        );
    }
    let durations = [
        ("metricsWindowSeconds", a.metrics_window_seconds, 1),
        (
            "stabilizationIntervalSeconds",
            a.stabilization_interval_seconds,
            0,
        ),
        ("scaleDownDelaySeconds", a.scale_down_delay_seconds, 0),
        ("catchUpDurationSeconds", a.catch_up_duration_seconds, 1),
    ];
    for (field, v, least) in durations {
        if v < least {
            c.add(
                format!("{P}.{field}"),
                format!("must be at least {least}, got {v}"),
            );
        }
        check_seconds(c, &format!("{P}.{field}"), Some(v));
    }
    let names: Vec<&str> = spec
        .spouts
        .iter()
        .chain(&spec.bolts)
        .map(|x| x.name.as_str())
        .collect();
    for (i, o) in a.components.iter().enumerate() {
        let path = format!("{P}.components[{i}]");
        if !spec.bolts.iter().any(|x| x.name == o.name) {
            let what = if names.contains(&o.name.as_str()) {
                "is a spout; spouts are sized by their source".to_owned()
            } else {
                format!("names no bolt; the bolts are {}", bolt_names(spec))
            };
            c.add(
                format!("{path}.name"),
                format!("{:?} {what}", crate::limits::shorten(&o.name, 128)),
            );
        }
        let min = o.min_parallelism.or(Some(a.min_parallelism));
        let max = o.max_parallelism.or(Some(a.max_parallelism));
        check_bounds(c, &path, min, max, limits);
    }
}

fn bolt_names(spec: &crate::spec::TopologySpec) -> String {
    let names: Vec<&str> = spec.bolts.iter().map(|b| b.name.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn check_bounds(c: &mut Checker, path: &str, min: Option<i32>, max: Option<i32>, limits: &Limits) {
    if let Some(m) = min.filter(|m| *m < 1) {
        c.add(
            format!("{path}.minParallelism"),
            format!("must be at least 1, got {m}"),
        );
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if hi < lo {
            c.add(
                format!("{path}.maxParallelism"),
                format!("must be at least minParallelism ({lo}), got {hi}"),
            );
        }
    }
    if let Some(hi) = max.filter(|hi| *hi > 0 && *hi as u64 > limits.get(LimitKey::Parallelism)) {
        c.add(
            format!("{path}.maxParallelism"),
            limits.exceeded(LimitKey::Parallelism, hi),
        );
    }
}

fn check_seconds(c: &mut Checker, path: &str, value: Option<i64>) {
    if let Some(v) = value.filter(|v| *v > MAX_SECONDS) {
        c.add(path, format!("{v} seconds is more than a day ({MAX_SECONDS})"));
    }
}

/// `parent` is the depth of the map holding `config` (the document is 1, `spec` 2).
fn check_depth(c: &mut Checker, path: &str, parent: usize, config: &Config, limits: &Limits) {
    if config.is_empty() {
        return;
    }
    let deepest = config.values().map(value_depth).max().unwrap_or(0);
    depth_problem(c, path, parent + 1 + deepest, limits);
}

fn depth_problem(c: &mut Checker, path: &str, depth: usize, limits: &Limits) {
    if depth as u64 > u64::from(limits.max_nesting_depth) {
        // Values deeper than the reader keeps were cut there: their depth is not known.
        let depth = if depth > crate::MAX_VALUE_DEPTH {
            format!("more than {}", crate::MAX_VALUE_DEPTH)
        } else {
            depth.to_string()
        };
        c.add(
            path,
            limits.exceeded(LimitKey::NestingDepth, format!("nesting depth {depth}")),
        );
    }
}

fn check_name(c: &mut Checker, path: &str, name: &str, max: usize) {
    if name.is_empty() {
        c.add(path, "must not be empty");
        return;
    }
    if name.len() > max {
        c.add(
            path,
            format!("{:?} is longer than {max} characters", shorten(name, max)),
        );
    }
    let ok = name
        .chars()
        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
        && name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !name.ends_with('-');
    if !ok {
        c.add(
            path,
            format!("{:?} must consist of lower-case letters, digits, '-' and '_', starting with a letter or digit and not ending with '-'", shorten(name, 80)),
        );
    }
}

fn check_component(
    c: &mut Checker,
    catalog: &dyn Catalog,
    path: &str,
    role: Role,
    comp: &ComponentSpec,
) -> (Vec<StreamSpec>, Identity, Vec<FieldBound>) {
    if comp.parallelism < 1 {
        c.add(
            format!("{path}.parallelism"),
            format!("must be at least 1, got {}", comp.parallelism),
        );
    }
    if let Some(t) = comp.tasks {
        if t < comp.parallelism.max(1) {
            c.add(
                format!("{path}.tasks"),
                format!("must be at least parallelism ({}), got {t}", comp.parallelism),
            );
        }
    }
    if let Some(t) = comp.tick_tuple_frequency_seconds {
        if t < 1 {
            c.add(
                format!("{path}.tickTupleFrequencySeconds"),
                format!("must be at least 1, got {t}"),
            );
        }
    }
    match (comp.component.as_str(), &comp.shell) {
        ("shell", None) => c.add(
            format!("{path}.shell"),
            "component \"shell\" needs a shell block with the command to run",
        ),
        (kind, Some(_)) if kind != "shell" => c.add(
            format!("{path}.shell"),
            format!("only components of kind \"shell\" take a shell block; this one is {kind:?}"),
        ),
        (_, Some(sh)) => {
            // The host passes the serializer to streamparse_run; arguments choosing
            // another would make the two ends speak different framings.
            let setting = sh.serializer.as_str();
            if let Some(given) = sh
                .args_serializer()
                .filter(|g| sh.runs_streamparse() && *g != setting)
            {
                c.add(
                    format!("{path}.shell.serializer"),
                    format!(
                        "is {setting:?} but args choose {:?}: set serializer and drop the argument",
                        shorten(given, 40)
                    ),
                );
            }
        }
        _ => {}
    }
    let mut resolved = comp.outputs.clone();
    let mut identity = Identity::None;
    let mut bounds = Vec::new();
    match catalog.describe(&comp.component, &comp.config) {
        None => {
            let kinds = catalog.kinds().join(", ");
            c.add(
                format!("{path}.component"),
                format!(
                    "unknown component kind {:?}; known kinds: {kinds}",
                    shorten(&comp.component, 80)
                ),
            );
        }
        Some(Err(msg)) => c.add(format!("{path}.config"), msg),
        Some(Ok(info)) => {
            if let Some(kind_role) = info.role {
                if kind_role != role {
                    c.add(
                        format!("{path}.component"),
                        format!(
                            "{:?} is a {} kind and cannot be used as a {}",
                            comp.component,
                            kind_role.as_str(),
                            role.as_str()
                        ),
                    );
                }
            }
            if resolved.is_empty() {
                resolved = info.outputs;
            }
            identity = info.identity;
            bounds = info.bounds;
        }
    }
    let mut streams = BTreeSet::new();
    for (i, s) in comp.outputs.iter().enumerate() {
        let spath = format!("{path}.outputs[{i}]");
        if s.stream.is_empty() {
            c.add(format!("{spath}.stream"), "must not be empty");
        } else if s.stream.starts_with("__") {
            c.add(
                format!("{spath}.stream"),
                format!("{:?}: stream names starting with \"__\" are reserved", s.stream),
            );
        }
        if !streams.insert(s.stream.as_str()) {
            c.add(
                format!("{spath}.stream"),
                format!("stream {:?} is declared twice", s.stream),
            );
        }
        let mut fields = BTreeSet::new();
        for (j, f) in s.fields.iter().enumerate() {
            if f.is_empty() {
                c.add(format!("{spath}.fields[{j}]"), "must not be empty");
            }
            if !fields.insert(f.as_str()) {
                c.add(
                    format!("{spath}.fields[{j}]"),
                    format!("field {f:?} is declared twice"),
                );
            }
        }
    }
    (resolved, identity, bounds)
}

fn check_inputs(
    c: &mut Checker,
    path: &str,
    comp: &ComponentSpec,
    outputs: &BTreeMap<&str, Vec<StreamSpec>>,
    unresolved: &BTreeSet<&str>,
) {
    let mut subscribed = BTreeSet::new();
    for (i, input) in comp.inputs.iter().enumerate() {
        let ipath = format!("{path}.inputs[{i}]");
        if !subscribed.insert((input.from.as_str(), input.stream.as_str())) {
            c.add(
                ipath.clone(),
                format!("subscribes to {}/{} twice", input.from, input.stream),
            );
        }
        let Some(streams) = outputs.get(input.from.as_str()) else {
            let known: Vec<&str> = outputs.keys().copied().collect();
            c.add(
                format!("{ipath}.from"),
                format!(
                    "unknown component {:?}; components: {}",
                    shorten(&input.from, 80),
                    known.join(", ")
                ),
            );
            continue;
        };
        if unresolved.contains(input.from.as_str()) {
            continue;
        }
        let Some(stream) = streams.iter().find(|s| s.stream == input.stream) else {
            let known: Vec<&str> = streams.iter().map(|s| s.stream.as_str()).collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            c.add(
                format!("{ipath}.stream"),
                format!(
                    "component {:?} declares no stream {:?}; declared: {known}",
                    input.from, input.stream
                ),
            );
            continue;
        };
        let g = &input.grouping;
        let gpath = format!("{ipath}.grouping");
        if g.kind.uses_fields() {
            if g.fields.is_empty() {
                c.add(
                    format!("{gpath}.fields"),
                    format!("{} grouping needs at least one field", g.kind.as_str()),
                );
            }
            for (j, f) in g.fields.iter().enumerate() {
                if !stream.fields.contains(f) {
                    c.add(
                        format!("{gpath}.fields[{j}]"),
                        format!(
                            "field {f:?} is not declared on stream {}/{}; declared: {}",
                            input.from,
                            input.stream,
                            stream.fields.join(", ")
                        ),
                    );
                }
            }
        } else if !g.fields.is_empty() {
            c.add(
                format!("{gpath}.fields"),
                format!(
                    "only fields and partialKey groupings take fields, not {}",
                    g.kind.as_str()
                ),
            );
        }
        match (g.kind == GroupingKind::Direct, stream.direct) {
            (true, false) => c.add(
                format!("{gpath}.type"),
                format!(
                    "direct grouping needs a direct stream, and {}/{} is not declared direct",
                    input.from, input.stream
                ),
            ),
            (false, true) => c.add(
                format!("{gpath}.type"),
                format!(
                    "{}/{} is a direct stream and can only be consumed with direct grouping",
                    input.from, input.stream
                ),
            ),
            _ => {}
        }
    }
}

fn build_plan(
    manifest: &TopologyManifest,
    all: &[(String, Role, &ComponentSpec)],
    outputs: &BTreeMap<&str, Vec<StreamSpec>>,
) -> Plan {
    let spec = &manifest.spec;
    // Validation has rejected negative values; the casts below cannot wrap.
    let ackers = spec.ackers.unwrap_or(spec.workers).max(0) as u32;
    let topo_tick = spec.tick_tuple_frequency_seconds;
    let mut components: Vec<ComponentPlan> = all
        .iter()
        .map(|(_, role, comp)| ComponentPlan {
            name: comp.name.clone(),
            role: *role,
            kind: comp.component.clone(),
            parallelism: comp.parallelism.max(1) as u32,
            tasks: vec![0; comp.task_count().max(1) as usize],
            config: comp.config.clone(),
            outputs: outputs.get(comp.name.as_str()).cloned().unwrap_or_default(),
            inputs: comp.inputs.clone(),
            tick: comp
                .tick_tuple_frequency_seconds
                .or(if *role == Role::Bolt { topo_tick } else { None })
                .map(|s| Duration::from_secs(s.max(1) as u64)),
            shell: comp.shell.clone(),
        })
        .collect();
    if ackers > 0 {
        components.push(ComponentPlan {
            name: ACKER_COMPONENT.to_owned(),
            role: Role::Acker,
            kind: ACKER_COMPONENT.to_owned(),
            parallelism: ackers,
            tasks: vec![0; ackers as usize],
            config: Config::new(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            tick: None,
            shell: None,
        });
    }
    // Storm numbers tasks from 1, contiguously per component in name order.
    components.sort_by(|a, b| a.name.cmp(&b.name));
    let mut next = 1u32;
    for comp in &mut components {
        for t in comp.tasks.iter_mut() {
            *t = next;
            next += 1;
        }
    }
    Plan {
        name: manifest.metadata.name.clone(),
        spec: spec.clone(),
        components,
        message_timeout: Duration::from_secs(spec.message_timeout_seconds.max(1) as u64),
        ackers,
        max_spout_pending: spec
            .max_spout_pending
            .map(|p| p.clamp(1, i64::from(u32::MAX)) as u32),
        base_dir: None,
    }
}
