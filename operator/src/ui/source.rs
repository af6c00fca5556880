//! The cluster as a [`Source`]: every period, the topologies with workers, each one's
//! worker pods, and what each worker counted (`GET /figures`), read concurrently and
//! merged per topology. Bounded whatever the cluster holds: at most
//! [`Settings::max_topologies`] topologies are read per round, and the samples kept must
//! fit [`Settings::memory_budget`]; what does not is left out, logged and counted.

use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt as _};
use squall_model::crd::{Phase, Topology};
use squall_model::Plan;
use squall_ui::{Source, TopologySample};
use tracing::{debug, info, warn};

use super::merge::{self, Answer, ErrorClock};
use super::Settings;
use crate::metrics::Metrics;
use crate::{probe, HTTP_PORT, TOPOLOGY_LABEL};

/// Workers asked for their figures at once: bounds the answers held in memory together
/// (each at most `MAX_FIGURES_BYTES`) and the sockets open.
const CONCURRENT_ASKS: usize = 16;

/// Why a round could not list what to sample; the histories are kept as they are.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Listing topologies or pods failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// A topology worth sampling: it has workers and a valid plan.
struct Target {
    ns: String,
    topology: Topology,
    plan: Plan,
    /// `(pod name, pod IP)` of its worker pods.
    pods: Vec<(String, String)>,
}

/// Samples the cluster's topologies for the UI.
pub struct ClusterSource {
    client: Client,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    errors: Mutex<ErrorClock>,
    /// Topologies left out last round, to log only changes.
    omitted: Mutex<u64>,
}

impl ClusterSource {
    /// A source reading the cluster through `client` as `settings` say.
    pub fn new(client: Client, settings: Arc<Settings>, metrics: Arc<Metrics>) -> Self {
        ClusterSource {
            client,
            settings,
            metrics,
            errors: Mutex::new(ErrorClock::default()),
            omitted: Mutex::new(0),
        }
    }

    fn topologies(&self) -> Api<Topology> {
        match &self.settings.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// The topologies with workers, at most `max_topologies` of them (one page of the
    /// list: the API server never sends more), and how many more there are.
    async fn targets(&self) -> Result<(Vec<Target>, u64), SourceError> {
        let max = self.settings.max_topologies.max(1);
        let list = self.topologies().list(&ListParams::default().limit(max)).await?;
        let more = match (list.metadata.remaining_item_count, &list.metadata.continue_) {
            (Some(n), _) => u64::try_from(n).unwrap_or(0),
            // The server did not count the rest; there is at least one more.
            (None, Some(c)) if !c.is_empty() => 1,
            _ => 0,
        };
        let mut out = Vec::new();
        for t in list.items {
            let live = t.status.as_ref().is_some_and(|s| {
                matches!(
                    s.phase,
                    Phase::Running | Phase::Degraded | Phase::Inactive | Phase::Killing
                )
            });
            let Some(ns) = t.namespace().filter(|_| live) else {
                continue;
            };
            let manifest = t.manifest();
            let Ok(yaml) = manifest.to_yaml() else { continue };
            let catalog = &squall_catalog::BuiltinKinds;
            let Ok(plan) = squall_model::crd::plan_stored(&manifest, &yaml, catalog, &self.settings.limits)
            else {
                continue;
            };
            let pods = self.pods(&ns, &t).await?;
            out.push(Target {
                ns,
                topology: t,
                plan,
                pods,
            });
        }
        Ok((out, more))
    }

    /// The topology's worker pods with an IP, at most as many as the workers limit
    /// allows (twice, for a rebalance that adds workers before others leave).
    async fn pods(&self, ns: &str, t: &Topology) -> Result<Vec<(String, String)>, SourceError> {
        let limit = self.settings.limits.max_workers.saturating_mul(2).max(1);
        let selector = format!("{TOPOLOGY_LABEL}={}", t.name_any());
        let pods = Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels(&selector).limit(limit))
            .await?;
        Ok(pods
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| {
                let ip = p.status?.pod_ip.filter(|ip| !ip.is_empty())?;
                Some((p.metadata.name?, ip))
            })
            .collect())
    }

    /// Every target's workers' figures, asked concurrently; a worker that does not
    /// answer in time is left out. Answers come back per target, in target order.
    async fn ask(&self, targets: &[Target]) -> (Vec<Vec<Answer>>, u64) {
        let within = self.settings.answer_timeout;
        let jobs: Vec<(usize, String, String)> = targets
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.pods.iter().map(move |(pod, ip)| (i, pod.clone(), ip.clone())))
            .collect();
        let results: Vec<(usize, Option<Answer>)> = stream::iter(jobs)
            .map(|(i, pod, ip)| async move { (i, ask_one(pod, ip, within).await) })
            .buffer_unordered(CONCURRENT_ASKS)
            .collect()
            .await;
        let mut out: Vec<Vec<Answer>> = targets.iter().map(|_| Vec::new()).collect();
        let mut unanswered = 0;
        for (i, answer) in results {
            match (answer, out.get_mut(i)) {
                (Some(a), Some(v)) => v.push(a),
                _ => unanswered += 1,
            }
        }
        (out, unanswered)
    }

    /// One round: the samples that fit the memory budget, in namespace and name order.
    async fn round(&self) -> Result<Vec<TopologySample>, SourceError> {
        let (targets, more) = self.targets().await?;
        let (answers, unanswered) = self.ask(&targets).await;
        let per_sample = super::history_samples(self.settings.resolution);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let (mut kept, mut used, mut over) = (Vec::new(), 0usize, 0u64);
        for (target, answers) in targets.iter().zip(answers) {
            let mut answers = answers;
            answers.sort_by(|a, b| a.pod.cmp(&b.pod));
            let s = merge::sample(&target.ns, &target.topology, &target.plan, &answers, &mut errors);
            let cost = merge::approx_bytes(&s).saturating_mul(per_sample);
            if used.saturating_add(cost) > self.settings.memory_budget {
                over += 1;
                continue;
            }
            used += cost;
            kept.push(s);
        }
        let ids: std::collections::BTreeSet<&str> = kept.iter().map(|s| s.info.id.as_str()).collect();
        errors.retain(|t| ids.contains(t));
        drop(errors);
        let omitted = more + over;
        self.note_omitted(omitted, more, over);
        self.metrics.ui_round(kept.len() as u64, omitted, unanswered);
        debug!(
            topologies = kept.len(),
            unanswered,
            bytes = used,
            "ui sampled the cluster"
        );
        Ok(kept)
    }

    /// Logs when the number of topologies left out changes.
    fn note_omitted(&self, omitted: u64, over_count: u64, over_memory: u64) {
        let mut last = self.omitted.lock().unwrap_or_else(|p| p.into_inner());
        if *last == omitted {
            return;
        }
        *last = omitted;
        if omitted == 0 {
            info!("the UI shows every topology again");
        } else {
            warn!(
                omitted,
                over_count,
                over_memory,
                max_topologies = self.settings.max_topologies,
                memory_budget_bytes = self.settings.memory_budget,
                "the UI leaves topologies out: more than it may sample (--ui-max-topologies) or \
                 their histories would exceed its memory budget (--ui-memory-mib)"
            );
        }
    }
}

/// The figures of the worker in pod `pod` at `ip`, if it answers within `within`.
async fn ask_one(pod: String, ip: String, within: std::time::Duration) -> Option<Answer> {
    let addr = format!("{ip}:{HTTP_PORT}");
    match probe::figures(&addr, within).await {
        Ok(figures) => Some(Answer { pod, ip, figures }),
        Err(e) => {
            debug!(pod = %pod, worker = %addr, error = %e, "worker figures not read");
            None
        }
    }
}

impl Source for ClusterSource {
    async fn sample(&self) -> Option<Vec<TopologySample>> {
        match self.round().await {
            Ok(samples) => Some(samples),
            Err(e) => {
                warn!(error = %e, "the UI could not list the cluster; keeping what it had");
                None
            }
        }
    }
}
