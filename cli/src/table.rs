//! Plain-text tables: the live metrics view of `squall run`, its final summary, and
//! `squall kinds`.

use std::time::Duration;

use squall_engine::{ComponentSnapshot, Percentiles, Snapshot, Stats};

/// A table of text cells: the first `left` columns are left-aligned (names), the rest
/// right-aligned (numbers).
pub struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl Grid {
    pub fn new(header: &[&str], numeric_from: usize) -> Self {
        Grid {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            left: if numeric_from == 0 {
                header.len()
            } else {
                numeric_from
            },
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate().take(cols) {
                let cell = r.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("  ");
                }
                if i < self.left {
                    line.push_str(&format!("{cell:<w$}"));
                } else {
                    line.push_str(&format!("{cell:>w$}"));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

const HEADER: [&str; 13] = [
    "COMPONENT",
    "ROLE",
    "EXEC/TASKS",
    "EMITTED",
    "ACKED",
    "FAILED",
    "EMIT/S",
    "ACK/S",
    "LATENCY p50/p99",
    "CAPACITY",
    "BACKPR",
    "QUEUE",
    "ERRORS",
];

/// The per-component metrics table, rows in the order of `order` (the manifest's, so the
/// data flows top to bottom; unlisted components such as ackers come last). Rates,
/// capacity and back pressure are computed over the interval since `before`, or over the
/// whole run when there is none.
/// Component names in manifest order (spouts, then bolts), the order tables list them in.
pub fn manifest_order(plan: &squall_model::Plan) -> Vec<String> {
    plan.spec
        .spouts
        .iter()
        .chain(&plan.spec.bolts)
        .map(|c| c.name.clone())
        .collect()
}

pub fn metrics(now: &Snapshot, before: Option<&Snapshot>, order: &[String]) -> String {
    let span = now
        .uptime
        .saturating_sub(before.map(|b| b.uptime).unwrap_or_default());
    let mut grid = Grid::new(&HEADER, 2);
    let mut components: Vec<&ComponentSnapshot> = now.components.iter().collect();
    components.sort_by_key(|c| order.iter().position(|n| *n == c.name).unwrap_or(order.len()));
    for c in &components {
        let prev = before.and_then(|b| b.component(&c.name)).map(|p| &p.total);
        grid.row(row(c, prev, span));
    }
    let mut out = grid.render();
    for c in &components {
        if let Some(err) = &c.last_error {
            out.push_str(&format!("last error in {}: {err}\n", c.name));
        }
    }
    // Components' own counters (reconnects, malformed input, child restarts, ...).
    for c in &components {
        if !c.custom.is_empty() {
            let counters: Vec<String> = c.custom.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("counters of {}: {}\n", c.name, counters.join(" ")));
        }
    }
    out.push_str(
        "latency: complete latency for spouts, execute latency for bolts; capacity: share of time busy per executor\n",
    );
    out
}

fn row(c: &ComponentSnapshot, prev: Option<&Stats>, span: Duration) -> Vec<String> {
    let t = &c.total;
    let zero = Stats::default();
    let p = prev.unwrap_or(&zero);
    let secs = span.as_secs_f64();
    let rate = |now: u64, then: u64| {
        if secs > 0.0 {
            format!("{:.0}", now.saturating_sub(then) as f64 / secs)
        } else {
            "-".to_owned()
        }
    };
    // Storm's capacity: the share of the interval the executors spent executing.
    let per_executor = |now: u64, then: u64| {
        let execs = f64::from(c.executors.max(1));
        if span.is_zero() {
            0.0
        } else {
            now.saturating_sub(then) as f64 / span.as_nanos() as f64 / execs
        }
    };
    let latency = match c.role {
        "spout" => percentiles(&t.complete_us),
        "bolt" => percentiles(&t.execute_us),
        _ => "-".to_owned(),
    };
    vec![
        c.name.clone(),
        c.role.to_owned(),
        format!("{}/{}", c.executors, c.tasks.len()),
        t.emitted.to_string(),
        t.acked.to_string(),
        t.failed.to_string(),
        rate(t.emitted, p.emitted),
        rate(t.acked, p.acked),
        latency,
        // Ackers do not measure busy time; 0.000 would read as idle.
        if c.role == "acker" && t.busy_ns == 0 {
            "-".to_owned()
        } else {
            format!("{:.3}", per_executor(t.busy_ns, p.busy_ns))
        },
        format!(
            "{:.1}%",
            100.0 * per_executor(t.backpressure_ns, p.backpressure_ns).min(1.0)
        ),
        format!("{}/{}", c.queue_depth, c.queue_capacity),
        t.errors.to_string(),
    ]
}

fn percentiles(p: &Percentiles) -> String {
    if p.count == 0 {
        "-".to_owned()
    } else {
        format!("{}/{}", micros(p.p50), micros(p.p99))
    }
}

/// A latency in microseconds, in the unit that keeps it short.
pub fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// `1m05s`-style durations for humans.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_aligns_names_left_and_numbers_right() {
        let mut g = Grid::new(&["NAME", "N"], 1);
        g.row(vec!["a".into(), "100".into()]);
        g.row(vec!["long-name".into(), "2".into()]);
        assert_eq!(g.render(), "NAME         N\na          100\nlong-name    2\n");
    }

    #[test]
    fn latencies_pick_a_short_unit() {
        assert_eq!(micros(12), "12µs");
        assert_eq!(micros(1_500), "1.5ms");
        assert_eq!(micros(2_500_000), "2.50s");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(2_500)), "2.5s");
        assert_eq!(duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(duration(Duration::from_secs(3_725)), "1h02m05s");
    }
}
