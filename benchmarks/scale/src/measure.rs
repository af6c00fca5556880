//! What is read: the API server's request counters, CPU time of processes and threads, and
//! the operator's reconcile durations (from its own `reconciled` debug event).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Result};
use kube::Client;

/// `apiserver_request_total` summed by (resource, verb), all codes and scopes; resource
/// includes the subresource (`pods/status`).
pub type Requests = BTreeMap<(String, String), f64>;

/// The API server's `/metrics`: request counts and the open long-running requests (watches).
pub async fn requests(client: &Client) -> Result<(Requests, f64)> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut counts = Requests::new();
    let mut watches = 0.0;
    for (name, labels, value) in squall_worker::prom::parse(&text) {
        let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
        match name.as_str() {
            "apiserver_request_total" => {
                let mut resource = label("resource");
                let sub = label("subresource");
                if !sub.is_empty() {
                    resource = format!("{resource}/{sub}");
                }
                *counts.entry((resource, label("verb"))).or_default() += value;
            }
            "apiserver_longrunning_requests" if label("verb") == "WATCH" => watches += value,
            _ => {}
        }
    }
    ensure!(!counts.is_empty(), "no apiserver_request_total in /metrics");
    Ok((counts, watches))
}

/// `after - before`, per key, dropping zeros.
pub fn delta(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

/// CPU time of process `pid`, children not included.
pub use squall_bench_common::process_cpu;
/// Resident memory of process `pid`, in MiB.
pub use squall_bench_common::rss_mib;

/// CPU time of this process's threads named `name`.
pub use squall_bench_common::own_threads_cpu as threads_cpu;

/// Reconcile durations in ms, from the operator's `reconciled` debug event.
#[derive(Clone, Default)]
pub struct Reconciles(Arc<Mutex<Vec<u64>>>);

impl Reconciles {
    /// Takes the durations recorded so far.
    pub fn take(&self) -> Vec<u64> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

struct Ms(Option<u64>, bool);

impl tracing::field::Visit for Ms {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "ms" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}") == "reconciled" {
            self.1 = true;
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Reconciles {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut v = Ms(None, false);
        event.record(&mut v);
        if let (Some(ms), true) = (v.0, v.1) {
            if let Ok(mut all) = self.0.lock() {
                all.push(ms);
            }
        }
    }
}

/// The `q` quantile (0..1) of `v`, nearest rank.
pub use squall_bench_common::quantile;
