//! The engine's figures as the API's samples: an in-process [`Snapshot`], or the
//! snapshots the CLI merges from the workers' `/metrics` pages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use squall_engine::metrics::LatencyBuckets;
use squall_engine::{ComponentSnapshot, Snapshot, Stats};
use squall_model::{Plan, Role};
use squall_ui::{
    ComponentKind, ComponentSample, Edge, ErrorReport, ExecutorSample, Figures, InputSample, Lags, Latency,
    OutputSample, PartitionLag, Status, StreamRows, TopologyInfo, TopologySample,
};

/// Where a local run's executors are, for the API's `host`.
pub const LOCAL_HOST: &str = "localhost";

/// Remembers when each component's last error was first seen: the engine keeps the
/// message only, so its time is the first sample that showed it.
#[derive(Default)]
pub struct ErrorClock(BTreeMap<String, (String, SystemTime)>);

impl ErrorClock {
    fn report(
        &mut self,
        component: &str,
        message: Option<&String>,
        now: SystemTime,
        host: &str,
    ) -> Option<ErrorReport> {
        let message = message?;
        let seen = self
            .0
            .entry(component.to_owned())
            .or_insert_with(|| (message.clone(), now));
        if seen.0 != *message {
            *seen = (message.clone(), now);
        }
        Some(ErrorReport {
            message: message.clone(),
            time: seen.1,
            host: host.to_owned(),
            port: None,
            worker: None,
        })
    }
}

/// The graph and settings of the plan.
pub fn info(plan: &Plan, status: Status, workers: u32) -> TopologyInfo {
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
    TopologyInfo {
        id: plan.name.clone(),
        name: plan.name.clone(),
        status,
        workers,
        message_timeout: plan.message_timeout,
        edges,
    }
}

fn latency(b: &LatencyBuckets) -> Latency {
    Latency {
        count: b.counts.iter().sum::<u64>() + b.overflow,
        sum_us: b.sum,
    }
}

/// The API's figures of the engine's.
pub fn figures(s: &Stats) -> Figures {
    Figures {
        emitted: s.emitted,
        transferred: s.transferred,
        executed: s.executed,
        acked: s.acked,
        failed: s.failed,
        errors: s.errors,
        busy: Some(Duration::from_nanos(s.busy_ns)),
        backpressure: Duration::from_nanos(s.backpressure_ns),
        execute_latency: latency(&s.execute_buckets),
        process_latency: latency(&s.process_buckets),
        complete_latency: latency(&s.complete_buckets),
    }
}

/// Storm's executor id of a task range.
fn executor_id(tasks: &[u32]) -> String {
    match (tasks.first(), tasks.last()) {
        (Some(a), Some(b)) => format!("[{a}-{b}]"),
        _ => "[]".to_owned(),
    }
}

/// The Kafka spouts' lag per partition from the gauges of one or more snapshots of a
/// component (one per process: see `Lags` for partitions two of them name).
fn lags<'a>(name: &str, parts: impl IntoIterator<Item = &'a ComponentSnapshot>) -> Vec<PartitionLag> {
    let mut lags = Lags::default();
    for c in parts {
        lags.add(c.gauges.iter().map(|(k, v)| (k.as_str(), *v)));
    }
    lags.finish(name)
}

/// The component's rows per input and per output stream: the plan's, then any other the
/// engine counted. Streams show only mean latencies, so theirs are kept as count and sum.
fn streams(
    p: Option<&squall_model::ComponentPlan>,
    c: &ComponentSnapshot,
    totals: &Figures,
) -> (Vec<InputSample>, Vec<OutputSample>) {
    let mut rows = StreamRows::default();
    for o in p.map(|p| p.outputs.as_slice()).unwrap_or_default() {
        rows.declare_output(&o.stream);
    }
    for i in p.map(|p| p.inputs.as_slice()).unwrap_or_default() {
        rows.declare_input(&i.from, &i.stream);
    }
    for o in &c.total.streams.outputs {
        rows.add_output(&o.stream, o.emitted, o.transferred);
    }
    for i in &c.total.streams.inputs {
        rows.add_input(
            &i.component,
            &i.stream,
            (i.executed, i.acked, i.failed),
            (i.execute_count, i.execute_sum_us),
            (i.process_count, i.process_sum_us),
        );
    }
    rows.finish((c.role == "spout").then_some(totals))
}

/// A component without its per-executor rows: kind, counts, streams, gauges (the lag
/// from the gauges of `c`; `on_workers` sets it from each worker's own).
fn component(plan: &Plan, c: &ComponentSnapshot, error: Option<ErrorReport>) -> ComponentSample {
    let p = plan.component(&c.name);
    let totals = figures(&c.total);
    let (inputs, outputs) = streams(p, c, &totals);
    ComponentSample {
        id: c.name.clone(),
        kind: if c.role == "spout" {
            ComponentKind::Spout
        } else {
            ComponentKind::Bolt
        },
        system: c.role == Role::Acker.as_str(),
        executors: p.map_or(c.executors, |p| p.parallelism),
        tasks: p.map_or(c.tasks.len(), |p| p.tasks.len()) as u32,
        totals,
        by_executor: Vec::new(),
        inputs,
        outputs,
        queue_depth: c.queue_depth,
        queue_capacity: c.queue_capacity,
        pending: c.total.pending,
        last_error: error,
        lags: lags(&c.name, [c]),
    }
}

/// Sums the per-task figures of one executor.
fn executor_figures(c: &ComponentSnapshot, tasks: &[u32]) -> Figures {
    let mut sum = Figures {
        busy: Some(Duration::ZERO),
        ..Figures::default()
    };
    for (_, s) in c.tasks.iter().filter(|(t, _)| tasks.contains(t)) {
        sum.add(&figures(s));
    }
    sum
}

/// Components in the manifest's order (data flows top to bottom), system ones last.
fn in_manifest_order(plan: &Plan, mut components: Vec<ComponentSample>) -> Vec<ComponentSample> {
    let order = crate::table::manifest_order(plan);
    components.sort_by_key(|c| order.iter().position(|n| *n == c.id).unwrap_or(order.len()));
    components
}

/// A sample of an in-process run: one row per executor, tasks grouped as the plan
/// splits them.
pub fn in_process(plan: &Plan, snap: &Snapshot, status: Status, errors: &mut ErrorClock) -> TopologySample {
    let now = SystemTime::now();
    let components = snap
        .components
        .iter()
        .map(|c| {
            let error = errors.report(&c.name, c.last_error.as_ref(), now, LOCAL_HOST);
            let mut out = component(plan, c, error);
            if let Some(p) = plan.component(&c.name) {
                out.by_executor = p
                    .executor_tasks()
                    .iter()
                    .map(|tasks| ExecutorSample {
                        id: executor_id(tasks),
                        executors: 1,
                        host: LOCAL_HOST.to_owned(),
                        port: None,
                        worker: None,
                        uptime: snap.uptime,
                        figures: executor_figures(c, tasks),
                    })
                    .collect();
            }
            out
        })
        .collect();
    TopologySample {
        info: info(plan, status, 1),
        uptime: snap.uptime,
        taken_at: now,
        components: in_manifest_order(plan, components),
    }
}

/// One worker's figures: its id, where its `/metrics` is, and the snapshot of its page.
pub struct WorkerFigures<'a> {
    pub id: &'a str,
    pub http: SocketAddr,
    pub snapshot: &'a Snapshot,
}

/// A sample of a run on worker processes: components from the merged snapshot, and one
/// row per (component, worker), since a worker's page has figures per component, not
/// per executor.
pub fn on_workers(
    plan: &Plan,
    merged: &Snapshot,
    workers: &[WorkerFigures<'_>],
    status: Status,
) -> TopologySample {
    let components = merged
        .components
        .iter()
        .map(|c| {
            let mut out = component(plan, c, None);
            out.lags = lags(
                &c.name,
                workers.iter().filter_map(|w| w.snapshot.component(&c.name)),
            );
            for w in workers {
                let Some(part) = w.snapshot.component(&c.name) else {
                    continue;
                };
                let tasks: Vec<u32> = part.tasks.iter().map(|(t, _)| *t).collect();
                out.by_executor.push(ExecutorSample {
                    id: format!("{} {}", w.id, executor_id(&tasks)),
                    executors: part.executors.max(1),
                    host: w.http.ip().to_string(),
                    port: Some(w.http.port()),
                    worker: Some(w.id.to_owned()),
                    uptime: w.snapshot.uptime,
                    figures: figures(&part.total),
                });
            }
            out
        })
        .collect();
    TopologySample {
        info: info(plan, status, workers.len() as u32),
        uptime: merged.uptime,
        taken_at: SystemTime::now(),
        components: in_manifest_order(plan, components),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(gauges: &[(&str, u64)]) -> ComponentSnapshot {
        ComponentSnapshot {
            name: "edits".into(),
            role: "spout",
            executors: 1,
            total: Stats::default(),
            tasks: Vec::new(),
            queue_depth: 0,
            queue_capacity: 0,
            last_error: None,
            custom: BTreeMap::new(),
            gauges: gauges.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            finished: false,
        }
    }

    #[test]
    fn the_kafka_gauges_of_each_process_become_the_lag() {
        let s = |name, p: u32| {
            squall_engine::gauge_series(name, &[("topic", "t"), ("partition", &p.to_string())])
        };
        let (lag0, head0, committed0) = (
            s("kafka_consumer_lag", 0),
            s("kafka_log_head_offset", 0),
            s("kafka_committed_offset", 0),
        );
        let (lag1, head1) = (s("kafka_consumer_lag", 1), s("kafka_log_head_offset", 1));
        let one = snapshot(&[(&lag0, 3), (&head0, 10), (&committed0, 7), ("retried", 2)]);
        let two = snapshot(&[(&lag1, 4), (&head1, 4)]);
        let got = lags("edits", [&one, &two]);
        let want = vec![
            PartitionLag {
                topic: "t".into(),
                partition: 0,
                committed: Some(7),
                head: 10,
                lag: 3,
            },
            PartitionLag {
                topic: "t".into(),
                partition: 1,
                committed: None,
                head: 4,
                lag: 4,
            },
        ];
        assert_eq!(got, want);
        assert!(lags("edits", [&snapshot(&[("retried", 1)])]).is_empty());
    }
}

#[cfg(test)]
mod stream_tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Instant;

    use squall_engine::{EngineOptions, Topology};
    use squall_ui::views::component_page;
    use squall_ui::window::History;
    use squall_ui::Window;

    use super::*;

    /// A parser with two output streams feeding a bolt with two inputs, as the Wikipedia
    /// pipeline's `parser` and `rejects`: each stream and input gets its own row.
    const MANIFEST: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: streams}
spec:
  spouts:
    - {name: lines, component: json-lines, config: {path: events.jsonl}}
  bolts:
    - name: parser
      component: json-keys
      parallelism: 2
      config: {field: line, keys: [{prefix: k_, path: a}]}
      inputs: [{from: lines}]
    - name: rejects
      component: log
      config: {every: 1000}
      inputs: [{from: parser}, {from: parser, stream: errors}]
"#;

    fn row(v: &serde_json::Value, keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| v[*k].to_string()).collect()
    }

    #[test]
    fn the_component_page_lists_every_stream_with_its_own_figures() {
        let dir = std::env::temp_dir().join(format!("squall-streams-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Lines 0, 3, 6, 9 are not JSON: four go to `errors`, six give one key each.
        let lines: String = (0..10)
            .map(|i| {
                if i % 3 == 0 {
                    "not json\n"
                } else {
                    "{\"a\": \"x\"}\n"
                }
            })
            .collect();
        std::fs::write(dir.join("events.jsonl"), lines).unwrap();
        let file = dir.join("topology.yaml");
        std::fs::write(&file, MANIFEST).unwrap();
        let plan = crate::validate::load(&file, &[], &squall_model::Limits::default()).unwrap();
        let topo = Topology::start(
            &plan,
            Arc::new(squall_components::Builtins),
            EngineOptions::from_plan(&plan),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !topo.is_drained() {
            assert!(Instant::now() < deadline, "not drained: {:?}", topo.metrics());
            std::thread::sleep(Duration::from_millis(20));
        }
        let snap = topo.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
        let sample = in_process(&plan, &snap, Status::Active, &mut ErrorClock::default());
        let h = History::new(sample.clone(), 10);
        let page = |name: &str| {
            let c = sample.component(name).unwrap();
            serde_json::to_value(component_page(&h, c, Window::AllTime)).unwrap()
        };

        let parser = page("parser");
        let outs: Vec<Vec<String>> = parser["outputStats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| row(o, &["stream", "emitted", "transferred"]))
            .collect();
        assert_eq!(
            outs,
            [["\"default\"", "6", "6"], ["\"errors\"", "4", "4"]],
            "{parser}"
        );
        let ins = parser["inputStats"].as_array().unwrap();
        assert_eq!(ins.len(), 1, "{parser}");
        assert_eq!(
            row(&ins[0], &["component", "stream", "executed", "acked", "failed"]),
            ["\"lines\"", "\"default\"", "10", "10", "0"]
        );

        let rejects = page("rejects");
        let ins: Vec<Vec<String>> = rejects["inputStats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| row(i, &["component", "stream", "executed", "acked", "failed"]))
            .collect();
        assert_eq!(
            ins,
            [
                ["\"parser\"", "\"default\"", "6", "6", "0"],
                ["\"parser\"", "\"errors\"", "4", "4", "0"]
            ],
            "{rejects}"
        );
        assert!(rejects["outputStats"].as_array().unwrap().is_empty(), "{rejects}");
    }
}
