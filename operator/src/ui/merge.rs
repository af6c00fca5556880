//! One topology's sample from its workers' figures: pure, so it is unit-tested without a
//! cluster. The graph, executors and tasks come from the stored spec's plan; the figures
//! from every worker that answered, summed per component and grouped per executor.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use squall_control::figures::{ComponentFigures, Counters, LatencyFigures, TaskFigures};
use squall_control::WorkerFigures;
use squall_model::crd::{Phase, Topology};
use squall_model::{DesiredState, Plan, Role};
use squall_ui::{
    ComponentKind, ComponentSample, Edge, ErrorReport, ExecutorSample, Figures, InputSample, Lags, Latency,
    OutputSample, PartitionLag, Status, StreamRows, TopologyInfo, TopologySample,
};

use crate::DATA_PORT;

/// Executor rows one topology's sample holds at most. Past it, a row stands for a
/// component's tasks on one worker; past that too, there are no rows (the components'
/// totals remain). Rows are what a sample grows with, and every sample is kept for a
/// while in each window.
pub const MAX_ROWS: usize = 512;

/// A worker that answered: its pod and what it counted.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The pod's name (the worker's id).
    pub pod: String,
    /// The pod's IP.
    pub ip: String,
    /// Its figures.
    pub figures: WorkerFigures,
}

/// Remembers when each component's last error was first seen: workers keep the message
/// only, so its time is the first sample that showed it.
#[derive(Debug, Default)]
pub struct ErrorClock(BTreeMap<(String, String), (String, SystemTime)>);

impl ErrorClock {
    fn seen(&mut self, topology: &str, component: &str, message: &str, now: SystemTime) -> SystemTime {
        let key = (topology.to_owned(), component.to_owned());
        let entry = self.0.entry(key).or_insert_with(|| (message.to_owned(), now));
        if entry.0 != message {
            *entry = (message.to_owned(), now);
        }
        entry.1
    }

    /// Forgets the topologies `keep` says no.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.0.retain(|(t, _), _| keep(t));
    }
}

/// The API's id of a topology: namespace and name. Namespaces hold no dot, so the first
/// dot splits them again.
pub fn topology_id(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// Namespace and name of an id made by [`topology_id`].
pub fn parse_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('.')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
}

/// Storm's status of a topology, from what its spec asks and its phase.
pub fn status(t: &Topology) -> Status {
    let phase = t.status.as_ref().map(|s| s.phase);
    if t.metadata.deletion_timestamp.is_some() || phase == Some(Phase::Killing) {
        Status::Killed
    } else if t.status.as_ref().is_some_and(|s| s.drain_deadline.is_some()) {
        Status::Rebalancing
    } else if t.spec.desired_state == DesiredState::Inactive {
        Status::Inactive
    } else {
        Status::Active
    }
}

fn latency(l: &LatencyFigures) -> Latency {
    Latency {
        count: l.buckets.iter().map(|(_, n)| n).sum::<u64>() + l.overflow,
        sum_us: l.sum_us,
    }
}

fn figures(c: &Counters) -> Figures {
    Figures {
        emitted: c.emitted,
        transferred: c.transferred,
        executed: c.executed,
        acked: c.acked,
        failed: c.failed,
        errors: c.errors,
        busy: Some(Duration::from_nanos(c.busy_ns)),
        backpressure: Duration::from_nanos(c.backpressure_ns),
        execute_latency: latency(&c.execute),
        process_latency: latency(&c.process),
        complete_latency: latency(&c.complete),
    }
}

fn zero() -> Figures {
    Figures {
        busy: Some(Duration::ZERO),
        ..Figures::default()
    }
}

fn uptime(a: &Answer) -> Duration {
    Duration::from_millis(a.figures.uptime_ms.unwrap_or(0))
}

/// Storm's executor id of a task range.
fn executor_id(tasks: &[u32]) -> String {
    match (tasks.first(), tasks.last()) {
        (Some(a), Some(b)) => format!("[{a}-{b}]"),
        _ => "[]".to_owned(),
    }
}

fn row(a: &Answer, id: String, executors: u32, f: Figures) -> ExecutorSample {
    ExecutorSample {
        id,
        executors,
        host: a.ip.clone(),
        port: u16::try_from(DATA_PORT).ok(),
        worker: Some(a.pod.clone()),
        uptime: uptime(a),
        figures: f,
    }
}

/// How executor rows are made for a topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rows {
    /// One per executor, from the tasks each worker lists.
    Executors,
    /// One per component and worker.
    Workers,
    /// None.
    Omitted,
}

fn rows_for(plan: &Plan, answers: &[&Answer]) -> Rows {
    let executors: usize = plan.components.iter().map(|c| c.parallelism as usize).sum();
    let listed = answers.iter().all(|a| a.figures.tasks_omitted == 0);
    if listed && executors <= MAX_ROWS {
        Rows::Executors
    } else if plan.components.len() * answers.len() <= MAX_ROWS {
        Rows::Workers
    } else {
        Rows::Omitted
    }
}

/// One executor row per executor of `c` whose tasks a worker listed.
fn executor_rows(
    c: &squall_model::ComponentPlan,
    parts: &[(&Answer, &ComponentFigures)],
) -> Vec<ExecutorSample> {
    let mut by_task: BTreeMap<u32, (&Answer, &TaskFigures)> = BTreeMap::new();
    for (a, part) in parts {
        for t in &part.tasks {
            by_task.insert(t.task, (a, t));
        }
    }
    c.executor_tasks()
        .iter()
        .filter_map(|tasks| {
            let (a, _) = by_task.get(tasks.first()?)?;
            let mut sum = zero();
            for (_, t) in tasks.iter().filter_map(|t| by_task.get(t)) {
                sum.add(&figures(&t.counters));
            }
            Some(row(a, executor_id(tasks), 1, sum))
        })
        .collect()
}

/// The component's rows per input and per output stream, summed over the workers. Streams
/// show only mean latencies, so theirs are kept as count and sum.
fn streams(
    c: &squall_model::ComponentPlan,
    parts: &[(&Answer, &ComponentFigures)],
    totals: &Figures,
) -> (Vec<InputSample>, Vec<OutputSample>) {
    let mut rows = StreamRows::default();
    for o in &c.outputs {
        rows.declare_output(&o.stream);
    }
    for i in &c.inputs {
        rows.declare_input(&i.from, &i.stream);
    }
    for (_, p) in parts {
        for o in &p.outputs {
            rows.add_output(&o.stream, o.emitted, o.transferred);
        }
        for i in &p.inputs {
            rows.add_input(
                &i.component,
                &i.stream,
                (i.executed, i.acked, i.failed),
                (i.execute_count, i.execute_sum_us),
                (i.process_count, i.process_sum_us),
            );
        }
    }
    rows.finish((c.role == Role::Spout).then_some(totals))
}

/// The component's figures over every worker's part of it.
fn component(
    id: &str,
    c: &squall_model::ComponentPlan,
    parts: &[(&Answer, &ComponentFigures)],
    rows: Rows,
    errors: &mut ErrorClock,
    now: SystemTime,
) -> ComponentSample {
    let mut totals = zero();
    let (mut depth, mut capacity, mut pending) = (0, 0, 0);
    // Kafka spouts' lag: each worker's partitions, merged (see `Lags`).
    let mut lags = Lags::default();
    for (_, p) in parts {
        totals.add(&figures(&p.totals));
        depth += p.queue_depth;
        capacity += p.queue_capacity;
        pending += p.totals.pending;
        lags.add(p.gauges.iter().map(|(k, v)| (k.as_str(), *v)));
    }
    let by_executor = match rows {
        Rows::Executors => executor_rows(c, parts),
        Rows::Workers => parts
            .iter()
            .map(|(a, p)| {
                let tasks: Vec<u32> = p.tasks.iter().map(|t| t.task).collect();
                let id = format!("{} {}", a.pod, executor_id(&tasks));
                row(a, id, p.executors.max(1), figures(&p.totals))
            })
            .collect(),
        Rows::Omitted => Vec::new(),
    };
    let last_error = parts.iter().find_map(|(a, p)| {
        let message = p.last_error.as_ref()?;
        Some(ErrorReport {
            message: message.clone(),
            time: errors.seen(id, &c.name, message, now),
            host: a.ip.clone(),
            port: u16::try_from(DATA_PORT).ok(),
            worker: Some(a.pod.clone()),
        })
    });
    let (inputs, outputs) = streams(c, parts, &totals);
    ComponentSample {
        id: c.name.clone(),
        kind: match c.role {
            Role::Spout => ComponentKind::Spout,
            Role::Bolt | Role::Acker => ComponentKind::Bolt,
        },
        system: c.role == Role::Acker,
        executors: c.parallelism,
        tasks: u32::try_from(c.tasks.len()).unwrap_or(u32::MAX),
        totals,
        by_executor,
        inputs,
        outputs,
        queue_depth: depth,
        queue_capacity: capacity,
        pending,
        last_error,
        lags: lags.finish(&c.name),
    }
}

/// The sample of topology `t` (namespace `ns`) whose plan is `plan`, from the workers
/// that answered. Its uptime is that of the oldest engine: a rebalance, which restarts
/// every engine, starts the history over; one worker's restart does not.
pub fn sample(
    ns: &str,
    t: &Topology,
    plan: &Plan,
    answers: &[Answer],
    errors: &mut ErrorClock,
) -> TopologySample {
    let now = SystemTime::now();
    let name = t.metadata.name.clone().unwrap_or_default();
    let id = topology_id(ns, &name);
    // Workers between engines have nothing to add.
    let answers: Vec<&Answer> = answers.iter().filter(|a| a.figures.uptime_ms.is_some()).collect();
    let rows = rows_for(plan, &answers);
    let order: Vec<&str> = plan
        .spec
        .spouts
        .iter()
        .chain(&plan.spec.bolts)
        .map(|c| c.name.as_str())
        .collect();
    let mut planned: Vec<&squall_model::ComponentPlan> = plan.components.iter().collect();
    planned.sort_by_key(|c| order.iter().position(|n| *n == c.name).unwrap_or(order.len()));
    let components = planned
        .into_iter()
        .map(|c| {
            let parts: Vec<(&Answer, &ComponentFigures)> = answers
                .iter()
                .filter_map(|a| Some((*a, a.figures.components.iter().find(|p| p.name == c.name)?)))
                .collect();
            component(&id, c, &parts, rows, errors, now)
        })
        .collect();
    let edges = plan
        .components
        .iter()
        .flat_map(|c| {
            c.inputs.iter().map(|i| Edge {
                from: i.from.clone(),
                to: c.name.clone(),
                stream: i.stream.clone(),
                grouping: i.grouping.kind.as_str().to_owned(),
            })
        })
        .collect();
    TopologySample {
        info: TopologyInfo {
            id,
            name,
            status: status(t),
            workers: u32::try_from(t.spec.workers).unwrap_or(0),
            message_timeout: plan.message_timeout,
            edges,
        },
        uptime: answers.iter().map(|a| uptime(a)).max().unwrap_or_default(),
        taken_at: now,
        components,
    }
}

/// About how many bytes `s` holds: what the memory cap counts.
pub fn approx_bytes(s: &TopologySample) -> usize {
    use std::mem::size_of;
    let info = s.info.id.len()
        + s.info.name.len()
        + s.info
            .edges
            .iter()
            .map(|e| size_of::<Edge>() + e.from.len() + e.to.len() + e.stream.len() + e.grouping.len())
            .sum::<usize>();
    let components: usize = s
        .components
        .iter()
        .map(|c| {
            let rows: usize = c
                .by_executor
                .iter()
                .map(|r| {
                    size_of::<ExecutorSample>()
                        + r.id.len()
                        + r.host.len()
                        + r.worker.as_ref().map_or(0, String::len)
                })
                .sum();
            let streams: usize = c
                .inputs
                .iter()
                .map(|i| size_of::<InputSample>() + i.component.len() + i.stream.len())
                .chain(
                    c.outputs
                        .iter()
                        .map(|o| size_of::<OutputSample>() + o.stream.len()),
                )
                .sum();
            let error = c.last_error.as_ref().map_or(0, |e| {
                size_of::<ErrorReport>()
                    + e.message.len()
                    + e.host.len()
                    + e.worker.as_ref().map_or(0, String::len)
            });
            let lags: usize = c
                .lags
                .iter()
                .map(|l| size_of::<PartitionLag>() + l.topic.len())
                .sum();
            size_of::<ComponentSample>() + c.id.len() + rows + streams + error + lags
        })
        .sum();
    size_of::<TopologySample>() + info + components
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use squall_control::figures::FigureRole;
    use squall_model::TopologyManifest;

    use super::*;

    const YAML: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: numbers}
spec:
  workers: 2
  spouts: [{name: numbers, component: sequence, parallelism: 2}]
  bolts: [{name: sink, component: "null", parallelism: 2, inputs: [{from: numbers}]}]
"#;

    fn topology() -> (Topology, Plan) {
        let m = TopologyManifest::from_yaml(YAML, "t").unwrap();
        let plan = squall_model::validate(&m, &squall_catalog::BuiltinKinds).unwrap();
        let mut t = Topology::new("numbers", m.spec);
        t.metadata.namespace = Some("default".into());
        (t, plan)
    }

    fn counters(acked: u64) -> Counters {
        Counters {
            emitted: acked + 1,
            acked,
            busy_ns: 1_000_000,
            complete: LatencyFigures {
                buckets: vec![(100, acked)],
                overflow: 1,
                sum_us: 50 * acked,
            },
            ..Counters::default()
        }
    }

    /// Worker `i` of two, running every component's task of its parity.
    fn answer(plan: &Plan, i: usize, uptime_ms: u64) -> Answer {
        let components = plan
            .components
            .iter()
            .filter_map(|c| {
                let tasks: Vec<TaskFigures> = c
                    .tasks
                    .iter()
                    .filter(|t| (**t as usize) % 2 == i)
                    .map(|t| TaskFigures {
                        task: *t,
                        counters: counters(u64::from(*t) * 10),
                    })
                    .collect();
                let mut totals = Counters::default();
                for t in &tasks {
                    totals.acked += t.counters.acked;
                    totals.emitted += t.counters.emitted;
                }
                (!tasks.is_empty()).then(|| ComponentFigures {
                    name: c.name.clone(),
                    role: FigureRole::Bolt,
                    executors: tasks.len() as u32,
                    totals,
                    queue_depth: 1,
                    queue_capacity: 100,
                    last_error: (c.name == "sink").then(|| "boom".to_owned()),
                    tasks,
                    gauges: Default::default(),
                    outputs: vec![],
                    inputs: vec![],
                })
            })
            .collect();
        Answer {
            pod: format!("numbers-{i}"),
            ip: format!("127.1.0.{}", i + 1),
            figures: WorkerFigures {
                worker: format!("numbers-{i}"),
                topology: "numbers".into(),
                generation: 1,
                uptime_ms: Some(uptime_ms),
                components,
                tasks_omitted: 0,
            },
        }
    }

    /// The shipped budget serves a cluster of 20 topologies of 20 components of 4
    /// executors each, whole (about 2.5 MiB a history): the estimate must not regress
    /// to keeping full latency distributions per sample (15 MiB a history).
    #[test]
    fn the_default_budget_holds_twenty_topologies_of_twenty_components() {
        use std::fmt::Write as _;
        let mut yaml = String::from(
            "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: numbers}\nspec:\n  workers: 2\n  spouts: [{name: c0, component: sequence, parallelism: 4}]\n  bolts:\n",
        );
        for i in 1..20 {
            let _ = writeln!(
                yaml,
                "    - {{name: c{i}, component: identity, parallelism: 4, inputs: [{{from: c{}}}]}}",
                i - 1
            );
        }
        let m = TopologyManifest::from_yaml(&yaml, "t").unwrap();
        let plan = squall_model::validate(&m, &squall_catalog::BuiltinKinds).unwrap();
        let mut t = Topology::new("numbers", m.spec);
        t.metadata.namespace = Some("default".into());
        let answers = [answer(&plan, 0, 4_000), answer(&plan, 1, 9_000)];
        let s = sample("default", &t, &plan, &answers, &mut ErrorClock::default());
        assert_eq!(s.components.iter().filter(|c| !c.system).count(), 20);
        assert!(s.executors_total() > 20 * 4, "{} executors", s.executors_total());
        let settings = crate::ui::Settings::default();
        let history = approx_bytes(&s) * crate::ui::history_samples(settings.resolution);
        assert!(
            history * 20 <= settings.memory_budget,
            "20 histories of {history} bytes need more than {} bytes",
            settings.memory_budget
        );
    }

    /// Per-stream rows of one component on one worker.
    fn streams(p: &mut ComponentFigures, outputs: &[(&str, u64)], inputs: &[(&str, &str, u64)]) {
        use squall_control::figures::{InputFigures, OutputFigures};
        p.outputs = outputs
            .iter()
            .map(|(s, n)| OutputFigures {
                stream: (*s).into(),
                emitted: *n,
                transferred: 2 * n,
            })
            .collect();
        p.inputs = inputs
            .iter()
            .map(|(c, s, n)| InputFigures {
                component: (*c).into(),
                stream: (*s).into(),
                executed: *n,
                acked: n - 1,
                failed: 1,
                execute_count: 2,
                execute_sum_us: 10 * n,
                process_count: 1,
                process_sum_us: 100 * n,
            })
            .collect();
    }

    #[test]
    fn two_workers_add_up_per_input_and_per_output_stream() {
        let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: numbers}
spec:
  workers: 2
  spouts: [{name: numbers, component: sequence, parallelism: 2}]
  bolts:
    - name: parse
      component: identity
      parallelism: 2
      inputs: [{from: numbers}]
      outputs: [{fields: [payload]}, {stream: errors, fields: [payload]}]
    - name: rejects
      component: "null"
      parallelism: 2
      inputs: [{from: parse}, {from: parse, stream: errors}]
"#;
        let m = TopologyManifest::from_yaml(yaml, "t").unwrap();
        let plan = squall_model::validate(&m, &squall_catalog::BuiltinKinds).unwrap();
        let mut t = Topology::new("numbers", m.spec);
        t.metadata.namespace = Some("default".into());
        let mut answers = [answer(&plan, 0, 1_000), answer(&plan, 1, 1_000)];
        for (w, a) in answers.iter_mut().enumerate() {
            let w = w as u64;
            for p in &mut a.figures.components {
                match p.name.as_str() {
                    "parse" => streams(p, &[("default", 10 + w), ("errors", 3 + w)], &[]),
                    // Worker 1 has seen no `errors` yet: its row is absent, not zero.
                    "rejects" if w == 1 => streams(p, &[], &[("parse", "default", 20)]),
                    "rejects" => streams(p, &[], &[("parse", "default", 10), ("parse", "errors", 4)]),
                    _ => {}
                }
            }
        }
        let s = sample("default", &t, &plan, &answers, &mut ErrorClock::default());
        let parse = s.components.iter().find(|c| c.id == "parse").unwrap();
        let outs: Vec<(&str, u64, u64)> = parse
            .outputs
            .iter()
            .map(|o| (o.stream.as_str(), o.figures.emitted, o.figures.transferred))
            .collect();
        assert_eq!(outs, [("default", 21, 42), ("errors", 7, 14)]);
        let ins: Vec<(&str, &str)> = parse
            .inputs
            .iter()
            .map(|i| (i.component.as_str(), i.stream.as_str()))
            .collect();
        assert_eq!(ins, [("numbers", "default")], "declared, not yet counted");
        assert_eq!(parse.inputs[0].figures.executed, 0);

        let rejects = s.components.iter().find(|c| c.id == "rejects").unwrap();
        let ins: Vec<(&str, &str, u64, u64, u64, Latency, Latency)> = rejects
            .inputs
            .iter()
            .map(|i| {
                let f = &i.figures;
                let (c, st) = (i.component.as_str(), i.stream.as_str());
                (
                    c,
                    st,
                    f.executed,
                    f.acked,
                    f.failed,
                    f.execute_latency,
                    f.process_latency,
                )
            })
            .collect();
        let lat = |count, sum_us| Latency { count, sum_us };
        assert_eq!(
            ins,
            [
                ("parse", "default", 30, 28, 2, lat(4, 300), lat(2, 3_000)),
                ("parse", "errors", 4, 3, 1, lat(2, 40), lat(1, 400)),
            ]
        );
        assert!(rejects.outputs.is_empty());
        // A spout's single stream carries its trees' figures.
        let spout = &s.components[0];
        assert_eq!(spout.outputs.len(), 1);
        assert_eq!(spout.outputs[0].figures.acked, spout.totals.acked);
    }

    #[test]
    fn ids_join_namespace_and_name_and_split_again() {
        assert_eq!(topology_id("default", "numbers"), "default.numbers");
        assert_eq!(parse_id("default.a.b"), Some(("default", "a.b")));
        assert_eq!(parse_id("numbers"), None);
        assert_eq!(parse_id(".x"), None);
    }

    #[test]
    fn the_status_follows_the_spec_and_the_phase() {
        let (mut t, _) = topology();
        assert_eq!(status(&t), Status::Active);
        t.spec.desired_state = DesiredState::Inactive;
        assert_eq!(status(&t), Status::Inactive);
        t.status = Some(squall_model::crd::TopologyStatus {
            drain_deadline: Some("2030-01-01T00:00:00Z".into()),
            ..Default::default()
        });
        assert_eq!(status(&t), Status::Rebalancing);
        t.status = Some(squall_model::crd::TopologyStatus {
            phase: Phase::Killing,
            ..Default::default()
        });
        assert_eq!(status(&t), Status::Killed);
    }

    #[test]
    fn workers_add_up_per_component_and_group_per_executor() {
        let (t, plan) = topology();
        let answers = [answer(&plan, 0, 4_000), answer(&plan, 1, 9_000)];
        let mut errors = ErrorClock::default();
        let s = sample("default", &t, &plan, &answers, &mut errors);
        assert_eq!(s.info.id, "default.numbers");
        assert_eq!((s.info.workers, s.uptime), (2, Duration::from_secs(9)));
        let ids: Vec<&str> = s.components.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["numbers", "sink", "__acker"], "manifest order, system last");
        let acker = &s.components[2];
        assert!(acker.system && acker.kind == ComponentKind::Bolt);
        assert_eq!(s.info.edges.iter().filter(|e| e.to == "sink").count(), 1);

        let spout = &s.components[0];
        let tasks = &plan.component("numbers").unwrap().tasks;
        let want: u64 = tasks.iter().map(|t| u64::from(*t) * 10).sum();
        assert_eq!((spout.totals.acked, spout.executors, spout.tasks), (want, 2, 2));
        assert_eq!((spout.queue_depth, spout.queue_capacity), (2, 200));
        // One row per executor, on the worker that runs it, latencies kept as means.
        assert_eq!(spout.by_executor.len(), 2);
        let row = &spout.by_executor[0];
        assert_eq!(row.id, format!("[{0}-{0}]", tasks[0]));
        let at = usize::from(tasks[0] % 2 == 1);
        assert_eq!(row.worker.as_deref(), Some(answers[at].pod.as_str()));
        assert_eq!(row.host, answers[at].ip);
        assert_eq!(
            row.figures.complete_latency.count,
            u64::from(tasks[0]) * 10 + 1,
            "the overflow counts"
        );
        let sink = &s.components[1];
        assert_eq!(sink.last_error.as_ref().unwrap().message, "boom");
        assert_eq!(sink.inputs.len(), 1);

        // The error's time is when it was first seen.
        let first = sink.last_error.as_ref().unwrap().time;
        let again = sample("default", &t, &plan, &answers, &mut errors);
        assert_eq!(again.components[1].last_error.as_ref().unwrap().time, first);
    }

    #[test]
    fn kafka_gauges_of_two_workers_become_one_spout_lag() {
        let (t, plan) = topology();
        let mut answers = [answer(&plan, 0, 4_000), answer(&plan, 1, 4_000)];
        let series =
            |name: &str, partition: u32| format!("{name}{{topic=\"edits\",partition=\"{partition}\"}}");
        // Each worker reads its own partitions; worker 1 also still reports partition 1,
        // which it is handing over to worker 0, with older figures.
        for (i, a) in answers.iter_mut().enumerate() {
            let spout = a
                .figures
                .components
                .iter_mut()
                .find(|c| c.name == "numbers")
                .unwrap();
            let i = i as u32;
            for p in [i, 1] {
                let stale = u64::from(p != i) * 10;
                spout
                    .gauges
                    .insert(series("kafka_consumer_lag", p), 5 + u64::from(p) - stale / 10);
                spout
                    .gauges
                    .insert(series("kafka_log_head_offset", p), 100 * u64::from(p + 1) - stale);
                spout
                    .gauges
                    .insert(series("kafka_committed_offset", p), 90 * u64::from(p + 1) - stale);
            }
            spout.gauges.insert("retried".into(), 1);
        }
        let s = sample("default", &t, &plan, &answers, &mut ErrorClock::default());
        let got: Vec<(u32, Option<u64>, u64, u64)> = s.components[0]
            .lags
            .iter()
            .map(|l| {
                assert_eq!(l.topic, "edits");
                (l.partition, l.committed, l.head, l.lag)
            })
            .collect();
        assert_eq!(got, [(0, Some(90), 100, 5), (1, Some(180), 200, 6)]);
        assert!(s.components[1].lags.is_empty(), "the sink has no gauges");
        let without = TopologySample {
            components: s
                .components
                .iter()
                .map(|c| ComponentSample {
                    lags: vec![],
                    ..c.clone()
                })
                .collect(),
            ..s.clone()
        };
        assert!(approx_bytes(&s) > approx_bytes(&without), "lags are costed");
    }

    #[test]
    fn missing_and_idle_workers_are_left_out_and_rows_shrink_when_tasks_are() {
        let (t, plan) = topology();
        let mut between = answer(&plan, 1, 0);
        between.figures.uptime_ms = None;
        let s = sample(
            "default",
            &t,
            &plan,
            &[answer(&plan, 0, 1_000), between],
            &mut ErrorClock::default(),
        );
        assert_eq!(s.components[0].by_executor.len(), 1, "one worker answered");

        let mut coarse = [answer(&plan, 0, 1_000), answer(&plan, 1, 1_000)];
        coarse[1].figures.tasks_omitted = 3;
        let full = sample(
            "default",
            &t,
            &plan,
            &[answer(&plan, 0, 1_000), answer(&plan, 1, 1_000)],
            &mut ErrorClock::default(),
        );
        let s = sample("default", &t, &plan, &coarse, &mut ErrorClock::default());
        let rows: Vec<&str> = s.components[0]
            .by_executor
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert!(rows.iter().all(|r| r.starts_with("numbers-")), "{rows:?}");
        assert!(
            approx_bytes(&full)
                > approx_bytes(&TopologySample {
                    components: vec![],
                    ..full.clone()
                })
        );
    }
}
