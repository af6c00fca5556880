//! Operator metrics (Prometheus text) and health endpoints on a small HTTP/1 server:
//! `/metrics`, `/healthz`, `/readyz`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_model::crd::Phase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counters the controller updates.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    duration_us: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    phases: Mutex<BTreeMap<String, Phase>>,
    leading: AtomicBool,
    ui_sampled: AtomicU64,
    ui_omitted: AtomicU64,
    ui_unanswered: AtomicU64,
    autoscaler: Mutex<BTreeMap<String, Autoscaled>>,
}

/// What the autoscaler last decided for one topology (`ns/name`).
#[derive(Debug, Default)]
struct Autoscaled {
    components: BTreeMap<String, ComponentGauges>,
    rebalances: u64,
    recommendations: u64,
}

/// One component's autoscaler gauges.
#[derive(Debug, Default)]
struct ComponentGauges {
    current: u32,
    recommended: u32,
    utilization: Option<f64>,
    true_rate: Option<f64>,
}

/// A gauge family of the autoscaler: name, help, and its value for a component.
type GaugeFamily = (&'static str, &'static str, fn(&ComponentGauges) -> Option<f64>);
/// A counter family of the autoscaler: name, help, and its value for a topology.
type CounterFamily = (&'static str, &'static str, fn(&Autoscaled) -> u64);

const PHASES: [Phase; 6] = [
    Phase::Pending,
    Phase::Running,
    Phase::Degraded,
    Phase::Inactive,
    Phase::Killing,
    Phase::Failed,
];

impl Metrics {
    /// One reconcile took `took`.
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_us.fetch_add(us, Ordering::Relaxed);
    }

    /// One reconcile failed for `reason`.
    pub fn failed(&self, reason: &'static str) {
        if let Ok(mut f) = self.failures.lock() {
            *f.entry(reason).or_default() += 1;
        }
    }

    /// The phase of topology `key` (`ns/name`); `None` when it is gone.
    pub fn phase(&self, key: String, phase: Option<Phase>) {
        if let Ok(mut p) = self.phases.lock() {
            match phase {
                Some(phase) => p.insert(key, phase),
                None => p.remove(&key),
            };
        }
    }

    /// Whether this replica runs the controller.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }

    /// One round of the UI's sampling: `sampled` topologies kept, `omitted` left out
    /// (over the count or memory cap), `unanswered` workers whose figures were not read.
    pub fn ui_round(&self, sampled: u64, omitted: u64, unanswered: u64) {
        self.ui_sampled.store(sampled, Ordering::Relaxed);
        self.ui_omitted.store(omitted, Ordering::Relaxed);
        self.ui_unanswered.fetch_add(unanswered, Ordering::Relaxed);
    }

    /// The autoscaler evaluated topology `key`: its `recs`, and whether it rebalanced.
    pub fn autoscaled(
        &self,
        key: &str,
        recs: &BTreeMap<String, squall_autoscaler::Recommendation>,
        rebalanced: bool,
    ) {
        let Ok(mut a) = self.autoscaler.lock() else { return };
        let entry = a.entry(key.to_owned()).or_default();
        entry.components = recs
            .iter()
            .map(|(n, r)| {
                let g = ComponentGauges {
                    current: r.current,
                    recommended: r.recommended,
                    utilization: r.utilization,
                    true_rate: r.true_rate,
                };
                (n.clone(), g)
            })
            .collect();
        entry.recommendations += recs.values().filter(|r| r.changes()).count() as u64;
        entry.rebalances += u64::from(rebalanced);
    }

    /// Topology `key` no longer autoscales (or is gone).
    pub fn autoscaler_gone(&self, key: &str) {
        if let Ok(mut a) = self.autoscaler.lock() {
            a.remove(key);
        }
    }

    fn render_autoscaler(&self, out: &mut String) {
        let Ok(a) = self.autoscaler.lock() else { return };
        let gauges: [GaugeFamily; 4] = [
            ("parallelism", "Executors of the component now.", |c| {
                Some(f64::from(c.current))
            }),
            (
                "recommended_parallelism",
                "Executors the autoscaler recommends.",
                |c| Some(f64::from(c.recommended)),
            ),
            (
                "utilization",
                "Target rate over what the executors take at their true rate.",
                |c| c.utilization,
            ),
            (
                "true_rate",
                "Tuples per second one executor takes when busy all the time.",
                |c| c.true_rate,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP squall_operator_autoscaler_{name} {help}\n# TYPE squall_operator_autoscaler_{name} gauge");
            for (topology, t) in a.iter() {
                for (component, c) in &t.components {
                    if let Some(v) = value(c) {
                        let _ = writeln!(
                            out,
                            "squall_operator_autoscaler_{name}{{topology=\"{topology}\",component=\"{component}\"}} {v}"
                        );
                    }
                }
            }
        }
        let counters: [CounterFamily; 2] = [
            ("rebalances_total", "Rebalances the autoscaler asked for.", |t| {
                t.rebalances
            }),
            (
                "recommendations_total",
                "Parallelism changes recommended, applied or not.",
                |t| t.recommendations,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP squall_operator_autoscaler_{name} {help}\n# TYPE squall_operator_autoscaler_{name} counter");
            for (topology, t) in a.iter() {
                let _ = writeln!(
                    out,
                    "squall_operator_autoscaler_{name}{{topology=\"{topology}\"}} {}",
                    value(t)
                );
            }
        }
    }

    fn render_ui(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP squall_operator_ui_topologies Topologies the UI sampled in its last round.
             # TYPE squall_operator_ui_topologies gauge
squall_operator_ui_topologies {}
             # HELP squall_operator_ui_topologies_omitted Topologies left out of the UI by its topology or memory cap.
             # TYPE squall_operator_ui_topologies_omitted gauge
squall_operator_ui_topologies_omitted {}
             # HELP squall_operator_ui_unanswered_total Workers whose figures the UI could not read.
             # TYPE squall_operator_ui_unanswered_total counter
squall_operator_ui_unanswered_total {}",
            load(&self.ui_sampled),
            load(&self.ui_omitted),
            load(&self.ui_unanswered)
        );
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP squall_operator_reconciles_total Reconciles run.\n# TYPE squall_operator_reconciles_total counter");
        let _ = writeln!(
            out,
            "squall_operator_reconciles_total {}",
            self.reconciles.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP squall_operator_reconcile_seconds_total Time spent reconciling.\n# TYPE squall_operator_reconcile_seconds_total counter");
        let secs = self.duration_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "squall_operator_reconcile_seconds_total {secs:.6}");
        let _ = writeln!(out, "# HELP squall_operator_reconcile_failures_total Failed reconciles by reason.\n# TYPE squall_operator_reconcile_failures_total counter");
        if let Ok(f) = self.failures.lock() {
            for (reason, n) in f.iter() {
                let _ = writeln!(
                    out,
                    "squall_operator_reconcile_failures_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP squall_operator_topologies Topologies by phase.\n# TYPE squall_operator_topologies gauge"
        );
        if let Ok(p) = self.phases.lock() {
            for phase in PHASES {
                let n = p.values().filter(|v| **v == phase).count();
                let _ = writeln!(
                    out,
                    "squall_operator_topologies{{phase=\"{}\"}} {n}",
                    phase.as_str()
                );
            }
        }
        let _ = writeln!(out, "# HELP squall_operator_leading Whether this replica runs the controller.\n# TYPE squall_operator_leading gauge");
        let _ = writeln!(
            out,
            "squall_operator_leading {}",
            u8::from(self.leading.load(Ordering::Relaxed))
        );
        self.render_ui(&mut out);
        self.render_autoscaler(&mut out);
        out
    }
}

async fn answer(mut stream: tokio::net::TcpStream, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let request = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/metrics" => ("200 OK", metrics.render()),
        // Standby replicas are healthy and ready too: they only wait for the lease.
        "/healthz" | "/readyz" => ("200 OK", "ok\n".to_owned()),
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Serves the endpoints until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics and health endpoints listening");
    loop {
        let (stream, _) = listener.accept().await?;
        let m = Arc::clone(&metrics);
        tokio::spawn(async move {
            if let Err(e) = answer(stream, m).await {
                tracing::debug!(error = %e, "http request failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_failures_and_phases() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(3));
        m.failed("kube_api");
        m.failed("kube_api");
        m.phase("ns/a".into(), Some(Phase::Running));
        m.phase("ns/b".into(), Some(Phase::Running));
        m.phase("ns/b".into(), None);
        let text = m.render();
        assert!(text.contains("squall_operator_reconciles_total 1\n"), "{text}");
        assert!(text.contains("squall_operator_reconcile_failures_total{reason=\"kube_api\"} 2\n"));
        assert!(text.contains("squall_operator_topologies{phase=\"Running\"} 1\n"));
        assert!(text.contains("squall_operator_topologies{phase=\"Failed\"} 0\n"));
        assert!(text.contains("squall_operator_leading 0\n"));
        m.ui_round(3, 2, 1);
        m.ui_round(3, 2, 1);
        let text = m.render();
        assert!(text.contains("squall_operator_ui_topologies 3\n"), "{text}");
        assert!(text.contains("squall_operator_ui_topologies_omitted 2\n"));
        assert!(text.contains("squall_operator_ui_unanswered_total 2\n"));
        let rec = squall_autoscaler::Recommendation {
            current: 1,
            recommended: 3,
            wanted: 3,
            utilization: Some(1.5),
            true_rate: Some(200.0),
            target_rate: 450.0,
            reason: squall_autoscaler::Reason::Overloaded,
            memory: squall_autoscaler::Memory::default(),
        };
        m.autoscaled("ns/a", &BTreeMap::from([("b".to_owned(), rec)]), true);
        let text = m.render();
        assert!(
            text.contains("squall_operator_autoscaler_parallelism{topology=\"ns/a\",component=\"b\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "squall_operator_autoscaler_recommended_parallelism{topology=\"ns/a\",component=\"b\"} 3\n"
        ));
        assert!(
            text.contains("squall_operator_autoscaler_utilization{topology=\"ns/a\",component=\"b\"} 1.5\n")
        );
        assert!(text.contains("squall_operator_autoscaler_rebalances_total{topology=\"ns/a\"} 1\n"));
        m.autoscaler_gone("ns/a");
        assert!(!m.render().contains("topology=\"ns/a\""));
    }
}
