//! The worker's `GET /figures` ([`WorkerFigures`]): the engine's snapshot per component
//! and per task, with latencies in the fine buckets of `/metrics?buckets=fine`
//! ([`exported_bounds`]), so the UI's means and quantiles are those of the fine page.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use squall_control::figures::{
    error_text, ComponentFigures, Counters, FigureRole, InputFigures, LatencyFigures, OutputFigures,
    TaskFigures, MAX_FIGURE_GAUGES, MAX_FIGURE_STREAMS, MAX_FIGURE_TASKS, MAX_GAUGE_SERIES_CHARS,
    MAX_STREAM_NAME_CHARS,
};
use squall_control::{WorkerFigures, WorkerStatus};
use squall_engine::metrics::LatencyBuckets;
use squall_engine::{Snapshot, Stats, StreamStats};

use crate::prom::exported_bounds;

/// The engine's buckets summed into the exported ones. Every exported bound is an engine
/// bound, so each exported bucket is an exact sum of engine buckets.
fn latency(b: &LatencyBuckets) -> LatencyFigures {
    let mut buckets = Vec::new();
    let mut next = 0;
    for &(i, le) in exported_bounds() {
        let n: u64 = b
            .counts
            .iter()
            .skip(next)
            .take((i + 1).saturating_sub(next))
            .sum();
        next = i + 1;
        if n > 0 {
            buckets.push((le, n));
        }
    }
    // Engine buckets past the last exported bound (none with the current bounds) count
    // as above it.
    let beyond: u64 = b.counts.iter().skip(next).sum();
    LatencyFigures {
        buckets,
        overflow: b.overflow + beyond,
        sum_us: b.sum,
    }
}

fn counters(s: &Stats) -> Counters {
    Counters {
        emitted: s.emitted,
        transferred: s.transferred,
        executed: s.executed,
        acked: s.acked,
        failed: s.failed,
        errors: s.errors,
        busy_ns: s.busy_ns,
        backpressure_ns: s.backpressure_ns,
        pending: s.pending,
        complete: latency(&s.complete_buckets),
        execute: latency(&s.execute_buckets),
        process: latency(&s.process_buckets),
    }
}

static GAUGES_WARNED: AtomicBool = AtomicBool::new(false);

/// A component's gauges within the figures' bounds: series keys of at most
/// [`MAX_GAUGE_SERIES_CHARS`], and no more than `room` of them (what is left of
/// [`MAX_FIGURE_GAUGES`] for the worker). What is left out is logged, as a warning the
/// first time.
fn gauges(component: &str, all: &BTreeMap<String, u64>, room: &mut usize) -> BTreeMap<String, u64> {
    let fits = all.iter().filter(|(k, _)| k.len() <= MAX_GAUGE_SERIES_CHARS);
    let out: BTreeMap<String, u64> = fits.take(*room).map(|(k, v)| (k.clone(), *v)).collect();
    *room -= out.len();
    let left_out = all.len() - out.len();
    if left_out > 0 {
        if GAUGES_WARNED.swap(true, Ordering::Relaxed) {
            tracing::debug!(component, left_out, "gauges left out of /figures");
        } else {
            tracing::warn!(
                component,
                left_out,
                limit = MAX_FIGURE_GAUGES,
                max_chars = MAX_GAUGE_SERIES_CHARS,
                "gauges left out of /figures: over the worker's limit, or series keys too long (logged once; then at debug level)"
            );
        }
    }
    out
}

/// A component's per-stream rows within the figures' bounds: names of at most
/// [`MAX_STREAM_NAME_CHARS`], and no more rows than `room` (what is left of
/// [`MAX_FIGURE_STREAMS`] for the worker). Rows left out are logged.
fn streams(component: &str, s: &StreamStats, room: &mut usize) -> (Vec<OutputFigures>, Vec<InputFigures>) {
    let fits = |n: &str| n.len() <= MAX_STREAM_NAME_CHARS;
    let outputs: Vec<OutputFigures> = s
        .outputs
        .iter()
        .filter(|o| fits(&o.stream))
        .take(*room)
        .map(|o| OutputFigures {
            stream: o.stream.clone(),
            emitted: o.emitted,
            transferred: o.transferred,
        })
        .collect();
    *room -= outputs.len();
    let inputs: Vec<InputFigures> = s
        .inputs
        .iter()
        .filter(|i| fits(&i.component) && fits(&i.stream))
        .take(*room)
        .map(|i| InputFigures {
            component: i.component.clone(),
            stream: i.stream.clone(),
            executed: i.executed,
            acked: i.acked,
            failed: i.failed,
            execute_count: i.execute_count,
            execute_sum_us: i.execute_sum_us,
            process_count: i.process_count,
            process_sum_us: i.process_sum_us,
        })
        .collect();
    *room -= inputs.len();
    let left_out = s.outputs.len() + s.inputs.len() - outputs.len() - inputs.len();
    if left_out > 0 {
        tracing::debug!(component, left_out, "per-stream rows left out of /figures");
    }
    (outputs, inputs)
}

fn role(engine_role: &str) -> FigureRole {
    match engine_role {
        "spout" => FigureRole::Spout,
        "acker" => FigureRole::Acker,
        _ => FigureRole::Bolt,
    }
}

/// This worker's figures: `status` says who it is, `snap` is its engine's (`None`
/// between engines). Tasks are listed one by one up to [`MAX_FIGURE_TASKS`]; a worker
/// holding more lists its components only.
pub fn figures(status: &WorkerStatus, snap: Option<&Snapshot>) -> WorkerFigures {
    let mut out = WorkerFigures {
        worker: status.worker.clone(),
        topology: status.topology.clone(),
        generation: status.generation,
        ..WorkerFigures::default()
    };
    let Some(snap) = snap else {
        return out;
    };
    out.uptime_ms = Some(u64::try_from(snap.uptime.as_millis()).unwrap_or(u64::MAX));
    let tasks: usize = snap.components.iter().map(|c| c.tasks.len()).sum();
    let list_tasks = tasks <= MAX_FIGURE_TASKS;
    if !list_tasks {
        out.tasks_omitted = tasks as u64;
    }
    let mut room = MAX_FIGURE_GAUGES;
    let mut stream_room = MAX_FIGURE_STREAMS;
    out.components = snap
        .components
        .iter()
        .map(|c| {
            let (outputs, inputs) = streams(&c.name, &c.total.streams, &mut stream_room);
            ComponentFigures {
                outputs,
                inputs,
                gauges: gauges(&c.name, &c.gauges, &mut room),
                name: c.name.clone(),
                role: role(c.role),
                executors: c.executors,
                totals: counters(&c.total),
                queue_depth: c.queue_depth,
                queue_capacity: c.queue_capacity,
                last_error: c.last_error.as_deref().map(error_text),
                tasks: if list_tasks {
                    c.tasks
                        .iter()
                        .map(|(task, s)| TaskFigures {
                            task: *task,
                            counters: counters(s),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use squall_engine::metrics::latency_bucket_bounds;
    use squall_engine::{ComponentSnapshot, InputStats, OutputStats};

    use super::*;

    fn buckets(samples: &[(usize, u64)]) -> LatencyBuckets {
        let mut counts = vec![0; latency_bucket_bounds().len()];
        for &(i, n) in samples {
            counts[i] += n;
        }
        LatencyBuckets {
            counts,
            overflow: 1,
            sum: 12_345,
            max: 0,
        }
    }

    fn component(name: &str, role: &'static str, tasks: &[u32]) -> ComponentSnapshot {
        let out = |stream: &str, emitted, transferred| OutputStats {
            stream: stream.into(),
            emitted,
            transferred,
        };
        let streams = if role == "spout" {
            StreamStats {
                outputs: vec![out("default", 4, 4), out("errors", 3, 6)],
                inputs: vec![],
            }
        } else {
            StreamStats {
                outputs: vec![],
                inputs: vec![InputStats {
                    component: "s".into(),
                    stream: "errors".into(),
                    executed: 3,
                    acked: 2,
                    failed: 1,
                    execute_count: 1,
                    execute_sum_us: 10,
                    process_count: 1,
                    process_sum_us: 20,
                }],
            }
        };
        let stats = Stats {
            emitted: 7,
            acked: 5,
            busy_ns: 1_000,
            complete_buckets: buckets(&[(0, 2), (30, 3)]),
            streams,
            ..Stats::default()
        };
        ComponentSnapshot {
            name: name.into(),
            role,
            executors: tasks.len() as u32,
            total: stats.clone(),
            tasks: tasks.iter().map(|t| (*t, stats.clone())).collect(),
            queue_depth: 3,
            queue_capacity: 1024,
            last_error: Some("boom".into()),
            custom: Default::default(),
            gauges: Default::default(),
            finished: false,
        }
    }

    #[test]
    fn latencies_keep_every_sample_in_the_exported_buckets() {
        let b = buckets(&[(0, 2), (30, 3), (31, 4), (200, 1)]);
        let l = latency(&b);
        assert_eq!(l.count(), b.count());
        assert_eq!(l.sum_us, b.sum);
        assert!(l.buckets.windows(2).all(|w| w[0].0 < w[1].0));
        // Each sample lies at or under its exported bound.
        let engine = latency_bucket_bounds();
        let first = l.buckets.iter().find(|(le, _)| *le >= engine[30]).unwrap();
        assert!(first.1 >= 3, "{l:?}");
        assert_eq!(latency(&LatencyBuckets::default()), LatencyFigures::default());
    }

    #[test]
    fn a_snapshot_becomes_figures_per_component_and_task() {
        let status = WorkerStatus {
            worker: "t-1".into(),
            topology: "t".into(),
            generation: 4,
            ..WorkerStatus::default()
        };
        let between = figures(&status, None);
        assert_eq!((between.uptime_ms, between.components.len()), (None, 0));
        let snap = Snapshot {
            uptime: Duration::from_millis(2_500),
            components: vec![
                component("s", "spout", &[1, 2]),
                component("__acker", "acker", &[3]),
            ],
        };
        let f = figures(&status, Some(&snap));
        assert_eq!(f.check(), Ok(()));
        assert_eq!(
            (f.worker.as_str(), f.generation, f.uptime_ms),
            ("t-1", 4, Some(2_500))
        );
        let s = &f.components[0];
        assert_eq!((s.role, s.executors, s.queue_depth), (FigureRole::Spout, 2, 3));
        let stream = |x: &OutputFigures| (x.stream.clone(), x.emitted, x.transferred);
        assert_eq!(
            s.outputs.iter().map(stream).collect::<Vec<_>>(),
            vec![("default".to_owned(), 4, 4), ("errors".to_owned(), 3, 6)]
        );
        let i = &f.components[1].inputs[0];
        assert_eq!(
            (
                i.component.as_str(),
                i.stream.as_str(),
                i.executed,
                i.acked,
                i.failed
            ),
            ("s", "errors", 3, 2, 1)
        );
        assert_eq!(
            (
                i.execute_count,
                i.execute_sum_us,
                i.process_count,
                i.process_sum_us
            ),
            (1, 10, 1, 20)
        );
        assert_eq!(s.tasks.iter().map(|t| t.task).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!((s.totals.acked, s.totals.complete.count()), (5, 6));
        assert_eq!(s.last_error.as_deref(), Some("boom"));
        assert_eq!(f.components[1].role, FigureRole::Acker);
        assert!(s.gauges.is_empty());

        let mut kafka = component("k", "spout", &[5]);
        kafka.gauges = (0..MAX_FIGURE_GAUGES + 2)
            .map(|i| {
                (
                    format!("kafka_consumer_lag{{topic=\"t\",partition=\"{i}\"}}"),
                    i as u64,
                )
            })
            .collect();
        kafka.gauges.insert("x".repeat(MAX_GAUGE_SERIES_CHARS + 1), 1);
        let snap = Snapshot {
            uptime: Duration::from_secs(1),
            components: vec![kafka],
        };
        let f = figures(&status, Some(&snap));
        assert_eq!(
            f.components[0].gauges.len(),
            MAX_FIGURE_GAUGES,
            "bounded, long keys out"
        );
        assert_eq!(
            f.components[0].gauges["kafka_consumer_lag{topic=\"t\",partition=\"7\"}"],
            7
        );
        assert_eq!(f.check(), Ok(()));

        let many: Vec<u32> = (0..=MAX_FIGURE_TASKS as u32).collect();
        let big = Snapshot {
            uptime: Duration::from_secs(1),
            components: vec![component("b", "bolt", &many)],
        };
        let f = figures(&status, Some(&big));
        assert_eq!(f.tasks_omitted, many.len() as u64);
        assert!(f.components[0].tasks.is_empty() && f.check().is_ok());
    }
}
