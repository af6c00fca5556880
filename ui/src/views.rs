//! Storm's pages from a topology's [`History`]: every figure is a window's difference
//! between two samples, divided by the time between them where it is a rate.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::{
    BoltRow, ClusterSummary, ComponentError, ComponentPage, ComponentWindowStats, ExecutorStats, GraphEdge,
    InputStats, LastError, Node, OutputStats, PartitionLagRow, Rates, SpoutLag, SpoutLagResult, SpoutRow,
    TopologyLag, TopologyPage, TopologyRow, Visualization, WindowStats,
};
use crate::sample::{ComponentKind, ComponentSample, ErrorReport, Figures, TopologySample};
use crate::window::{History, Span, Window};

/// Storm's three decimals.
pub fn fmt3(v: f64) -> String {
    format!("{:.3}", if v.is_finite() { v } else { 0.0 })
}

/// Storm's uptime strings: `45s`, `29m 19s`, `3h 0m 5s`, `1d 0h 0m 0s`.
pub fn pretty_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// Percent-encodes everything but unreserved characters (Storm's `encodedId`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn delta(now: &Figures, base: Option<&Figures>) -> Figures {
    match base {
        Some(b) => now.since(b),
        None => now.clone(),
    }
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

fn rates(d: &Figures, seconds: f64) -> Rates {
    Rates {
        emitted: per_second(d.emitted, seconds),
        transferred: per_second(d.transferred, seconds),
        executed: per_second(d.executed, seconds),
        acked: per_second(d.acked, seconds),
        failed: per_second(d.failed, seconds),
    }
}

/// Storm's capacity of `executors` executors over `seconds`: the fraction of that time
/// they spent executing. From busy time when the source measures it, else from the mean
/// execute latency times the tuples executed (Storm's own formula).
pub fn capacity(d: &Figures, executors: u32, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    let busy_ms = match d.busy {
        Some(b) => b.as_secs_f64() * 1e3,
        None => d.execute_latency.mean_ms() * d.executed as f64,
    };
    busy_ms / (seconds * 1000.0 * f64::from(executors.max(1)))
}

/// Fraction of `seconds` that `executors` executors spent blocked on full queues.
fn backpressure(d: &Figures, executors: u32, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    d.backpressure.as_secs_f64() / (seconds * f64::from(executors.max(1)))
}

/// A component's figures in a window.
fn component_delta(span: &Span<'_>, c: &ComponentSample) -> Figures {
    let base = span.base.and_then(|b| b.component(&c.id)).map(|b| &b.totals);
    delta(&c.totals, base)
}

/// The figures of executor row `row` of `c` in a window.
fn row_delta(span: &Span<'_>, c: &ComponentSample, row: usize) -> Figures {
    let now = &c.by_executor[row];
    let base = span
        .base
        .and_then(|b| b.component(&c.id))
        .and_then(|b| b.by_executor.iter().find(|e| e.id == now.id))
        .map(|e| &e.figures);
    delta(&now.figures, base)
}

/// Storm's capacity of a bolt over the last 10 minutes: the busiest executor's.
pub fn component_capacity(h: &History, c: &ComponentSample) -> f64 {
    let span = h.span(Window::TenMinutes);
    let Some(c) = span.newest.component(&c.id) else {
        return 0.0;
    };
    if c.by_executor.is_empty() {
        return capacity(&component_delta(&span, c), c.executors, span.seconds);
    }
    (0..c.by_executor.len())
        .map(|i| capacity(&row_delta(&span, c, i), c.by_executor[i].executors, span.seconds))
        .fold(0.0, f64::max)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn last_error(e: Option<&ErrorReport>, now: SystemTime) -> LastError {
    let Some(e) = e else {
        return LastError::default();
    };
    LastError {
        last_error: e.message.clone(),
        error_host: e.host.clone(),
        error_port: e.port,
        error_worker_log_link: String::new(),
        error_time: Some(unix_secs(e.time)),
        error_lapsed_secs: Some(now.duration_since(e.time).unwrap_or_default().as_secs()),
    }
}

/// `cluster/summary` over every topology.
pub fn cluster_summary<'a>(all: impl Iterator<Item = &'a History>, version: &str) -> ClusterSummary {
    let (mut topologies, mut workers, mut executors, mut tasks) = (0, 0, 0, 0);
    let mut hosts = std::collections::BTreeSet::new();
    for h in all {
        let s = h.newest();
        topologies += 1;
        workers += u64::from(s.info.workers);
        executors += s.executors_total();
        tasks += s.tasks_total();
        for c in &s.components {
            hosts.extend(c.by_executor.iter().map(|e| e.host.clone()));
        }
    }
    ClusterSummary {
        storm_version: version.to_owned(),
        // Hosts running executors stand for Storm's supervisors; at least one runs the API.
        supervisors: (hosts.len() as u64).max(1),
        topologies,
        slots_total: workers,
        slots_used: workers,
        slots_free: 0,
        executors_total: executors,
        tasks_total: tasks,
        scheduler_display_resource: false,
    }
}

/// The topology's line in `topology/summary`.
pub fn topology_row(s: &TopologySample) -> TopologyRow {
    let secs = s.uptime.as_secs();
    TopologyRow {
        id: s.info.id.clone(),
        name: s.info.name.clone(),
        status: s.info.status.as_str(),
        uptime: pretty_uptime(secs),
        uptime_seconds: secs,
        tasks_total: s.tasks_total(),
        workers_total: s.info.workers,
        executors_total: s.executors_total(),
        replication_count: 1,
    }
}

fn shown(c: &ComponentSample, sys: bool) -> bool {
    sys || !c.system
}

/// The topology's figures in one window: spouts' emits, transfers and trees.
fn window_stats(h: &History, w: Window) -> WindowStats {
    let span = h.span(w);
    let mut total = Figures::default();
    let mut spouts = Figures::default();
    for c in span.newest.components.iter().filter(|c| !c.system) {
        let d = component_delta(&span, c);
        total.emitted += d.emitted;
        total.transferred += d.transferred;
        total.executed += d.executed;
        if c.kind == ComponentKind::Spout {
            spouts.add(&d);
        }
    }
    // Storm counts acked, failed and the complete latency of trees, i.e. at the spouts.
    total.acked = spouts.acked;
    total.failed = spouts.failed;
    WindowStats {
        window_pretty: w.pretty(),
        window: w.param(),
        emitted: total.emitted,
        transferred: total.transferred,
        complete_latency: fmt3(spouts.complete_latency.mean_ms()),
        acked: total.acked,
        failed: total.failed,
        seconds: span.seconds,
        rates: rates(&total, span.seconds),
    }
}

fn spout_row(span: &Span<'_>, c: &ComponentSample) -> SpoutRow {
    let d = component_delta(span, c);
    SpoutRow {
        spout_id: c.id.clone(),
        encoded_spout_id: encode(&c.id),
        executors: c.executors,
        tasks: c.tasks,
        emitted: d.emitted,
        transferred: d.transferred,
        complete_latency: fmt3(d.complete_latency.mean_ms()),
        acked: d.acked,
        failed: d.failed,
        error: last_error(c.last_error.as_ref(), span.newest.taken_at),
        pending: c.pending,
        backpressure: fmt3(backpressure(&d, c.executors, span.seconds)),
        rates: rates(&d, span.seconds),
    }
}

fn bolt_row(h: &History, span: &Span<'_>, c: &ComponentSample) -> BoltRow {
    let d = component_delta(span, c);
    BoltRow {
        bolt_id: c.id.clone(),
        encoded_bolt_id: encode(&c.id),
        executors: c.executors,
        tasks: c.tasks,
        emitted: d.emitted,
        transferred: d.transferred,
        capacity: fmt3(component_capacity(h, c)),
        execute_latency: fmt3(d.execute_latency.mean_ms()),
        executed: d.executed,
        process_latency: fmt3(d.process_latency.mean_ms()),
        acked: d.acked,
        failed: d.failed,
        error: last_error(c.last_error.as_ref(), span.newest.taken_at),
        queue_depth: c.queue_depth,
        queue_capacity: c.queue_capacity,
        backpressure: fmt3(backpressure(&d, c.executors, span.seconds)),
        rates: rates(&d, span.seconds),
    }
}

/// `topology/{id}?window=`; system components only with `sys`.
pub fn topology_page(h: &History, w: Window, sys: bool) -> TopologyPage {
    let span = h.span(w);
    let s = span.newest;
    let comps = s.components.iter().filter(|c| shown(c, sys));
    let (spouts, bolts): (Vec<_>, Vec<_>) = comps.partition(|c| c.kind == ComponentKind::Spout);
    TopologyPage {
        head: topology_row(s),
        msg_timeout: s.info.message_timeout.as_secs(),
        window: w.param(),
        window_hint: w.pretty(),
        scheduler_display_resource: false,
        topology_stats: Window::ALL.into_iter().map(|w| window_stats(h, w)).collect(),
        spouts: spouts.into_iter().map(|c| spout_row(&span, c)).collect(),
        bolts: bolts.into_iter().map(|c| bolt_row(h, &span, c)).collect(),
    }
}

fn component_window(h: &History, c: &ComponentSample, w: Window) -> ComponentWindowStats {
    let span = h.span(w);
    let d = span
        .newest
        .component(&c.id)
        .map(|c| component_delta(&span, c))
        .unwrap_or_default();
    let spout = c.kind == ComponentKind::Spout;
    ComponentWindowStats {
        window_pretty: w.pretty(),
        window: w.param(),
        emitted: d.emitted,
        transferred: d.transferred,
        complete_latency: spout.then(|| fmt3(d.complete_latency.mean_ms())),
        execute_latency: (!spout).then(|| fmt3(d.execute_latency.mean_ms())),
        executed: (!spout).then_some(d.executed),
        process_latency: (!spout).then(|| fmt3(d.process_latency.mean_ms())),
        acked: d.acked,
        failed: d.failed,
        seconds: span.seconds,
        rates: rates(&d, span.seconds),
    }
}

fn input_stats(span: &Span<'_>, c: &ComponentSample) -> Vec<InputStats> {
    let base = span.base.and_then(|b| b.component(&c.id));
    c.inputs
        .iter()
        .map(|i| {
            let before = base
                .and_then(|b| {
                    b.inputs
                        .iter()
                        .find(|x| x.component == i.component && x.stream == i.stream)
                })
                .map(|x| &x.figures);
            let d = delta(&i.figures, before);
            InputStats {
                component: i.component.clone(),
                encoded_component_id: encode(&i.component),
                stream: i.stream.clone(),
                execute_latency: fmt3(d.execute_latency.mean_ms()),
                process_latency: fmt3(d.process_latency.mean_ms()),
                executed: d.executed,
                acked: d.acked,
                failed: d.failed,
            }
        })
        .collect()
}

fn output_stats(span: &Span<'_>, c: &ComponentSample) -> Vec<OutputStats> {
    let base = span.base.and_then(|b| b.component(&c.id));
    let spout = c.kind == ComponentKind::Spout;
    c.outputs
        .iter()
        .map(|o| {
            let before = base
                .and_then(|b| b.outputs.iter().find(|x| x.stream == o.stream))
                .map(|x| &x.figures);
            let d = delta(&o.figures, before);
            OutputStats {
                stream: o.stream.clone(),
                emitted: d.emitted,
                transferred: d.transferred,
                complete_latency: spout.then(|| fmt3(d.complete_latency.mean_ms())),
                acked: spout.then_some(d.acked),
                failed: spout.then_some(d.failed),
            }
        })
        .collect()
}

fn executor_stats(h: &History, span: &Span<'_>, c: &ComponentSample) -> Vec<ExecutorStats> {
    // Capacity is Storm's "last 10 minutes" whatever the window asked for.
    let ten = h.span(Window::TenMinutes);
    let spout = c.kind == ComponentKind::Spout;
    (0..c.by_executor.len())
        .map(|i| {
            let e = &c.by_executor[i];
            let d = row_delta(span, c, i);
            let busy = (!spout).then(|| capacity(&row_delta(&ten, c, i), e.executors, ten.seconds));
            let secs = e.uptime.as_secs();
            ExecutorStats {
                id: e.id.clone(),
                encoded_id: encode(&e.id),
                host: e.host.clone(),
                port: e.port,
                worker: e.worker.clone(),
                uptime: pretty_uptime(secs),
                uptime_seconds: secs,
                emitted: d.emitted,
                transferred: d.transferred,
                complete_latency: spout.then(|| fmt3(d.complete_latency.mean_ms())),
                capacity: busy.map(fmt3),
                execute_latency: (!spout).then(|| fmt3(d.execute_latency.mean_ms())),
                executed: (!spout).then_some(d.executed),
                process_latency: (!spout).then(|| fmt3(d.process_latency.mean_ms())),
                acked: d.acked,
                failed: d.failed,
                worker_log_link: String::new(),
            }
        })
        .collect()
}

/// `topology/{id}/component/{c}?window=`.
pub fn component_page(h: &History, c: &ComponentSample, w: Window) -> ComponentPage {
    let span = h.span(w);
    let s = span.newest;
    let spout = c.kind == ComponentKind::Spout;
    let windows: Vec<_> = Window::ALL
        .into_iter()
        .map(|w| component_window(h, c, w))
        .collect();
    let component_errors = c
        .last_error
        .iter()
        .map(|e| ComponentError {
            error: e.message.clone(),
            error_time: unix_secs(e.time),
            error_host: e.host.clone(),
            error_port: e.port,
            error_lapsed_secs: s.taken_at.duration_since(e.time).unwrap_or_default().as_secs(),
            error_worker_log_link: String::new(),
        })
        .collect();
    let (spout_summary, bolt_stats) = if spout {
        (Some(windows), None)
    } else {
        (None, Some(windows))
    };
    ComponentPage {
        id: c.id.clone(),
        encoded_id: encode(&c.id),
        name: s.info.name.clone(),
        topology_id: s.info.id.clone(),
        encoded_topology_id: encode(&s.info.id),
        topology_status: s.info.status.as_str(),
        component_type: c.kind.as_str(),
        window: w.param(),
        window_hint: w.pretty(),
        executors: c.executors,
        tasks: c.tasks,
        scheduler_display_resource: false,
        component_errors,
        spout_summary,
        bolt_stats,
        input_stats: (!spout).then(|| input_stats(&span, c)),
        output_stats: output_stats(&span, c),
        executor_stats: executor_stats(h, &span, c),
        capacity: (!spout).then(|| fmt3(component_capacity(h, c))),
        queue_depth: c.queue_depth,
        queue_capacity: c.queue_capacity,
    }
}

/// `topology/{id}/visualization?window=`: nodes with their figures, edges with stream
/// and grouping.
pub fn visualization(h: &History, w: Window, sys: bool) -> Visualization {
    let span = h.span(w);
    let s = span.newest;
    let nodes = s
        .components
        .iter()
        .filter(|c| shown(c, sys))
        .map(|c| {
            let d = component_delta(&span, c);
            let spout = c.kind == ComponentKind::Spout;
            Node {
                id: c.id.clone(),
                kind: c.kind.as_str(),
                executors: c.executors,
                tasks: c.tasks,
                capacity: fmt3(if spout { 0.0 } else { component_capacity(h, c) }),
                latency: fmt3(if spout {
                    d.complete_latency.mean_ms()
                } else {
                    d.execute_latency.mean_ms()
                }),
                emitted: d.emitted,
                transferred: d.transferred,
                queue_depth: c.queue_depth,
                queue_capacity: c.queue_capacity,
            }
        })
        .collect();
    let visible = |id: &str| s.component(id).is_some_and(|c| shown(c, sys));
    let edges = s
        .info
        .edges
        .iter()
        .filter(|e| visible(&e.from) && visible(&e.to))
        .map(|e| GraphEdge {
            from: e.from.clone(),
            to: e.to.clone(),
            stream: e.stream.clone(),
            grouping: e.grouping.clone(),
        })
        .collect();
    Visualization {
        topology_id: s.info.id.clone(),
        window: w.param(),
        nodes,
        edges,
    }
}

/// `topology/{id}/lag`: the newest sample's lag of each spout that has any.
pub fn lag(h: &History) -> TopologyLag {
    let mut out = TopologyLag::new();
    for c in &h.newest().components {
        if c.kind != ComponentKind::Spout || c.lags.is_empty() {
            continue;
        }
        let mut result = SpoutLagResult::new();
        for l in &c.lags {
            result.entry(l.topic.clone()).or_default().insert(
                l.partition.to_string(),
                PartitionLagRow {
                    consumer_committed_offset: l.committed,
                    log_head_offset: l.head,
                    lag: l.lag,
                },
            );
        }
        out.insert(
            c.id.clone(),
            SpoutLag {
                spout_id: c.id.clone(),
                spout_type: "KAFKA",
                spout_lag_result: result,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_strings() {
        assert_eq!(pretty_uptime(45), "45s");
        assert_eq!(pretty_uptime(1759), "29m 19s");
        assert_eq!(pretty_uptime(10_800), "3h 0m 0s");
        assert_eq!(pretty_uptime(86_400), "1d 0h 0m 0s");
        assert_eq!(fmt3(0.0484), "0.048");
        assert_eq!(fmt3(f64::NAN), "0.000");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
