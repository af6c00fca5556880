//! The autoscaler on the reconcile path. While a topology with `spec.autoscaling.enabled`
//! runs its current plan, each reconcile may sample its workers' `GET /figures`
//! ([`window`]); once the samples span the metrics window, `squall_autoscaler` decides per
//! component, the decision goes to `status.autoscaler`, an Event and the operator's
//! `/metrics`, and, unless `metricsOnly`, the new parallelism goes into the spec by a JSON
//! patch: the same change a `squall rebalance` makes, which the lifecycle carries out as
//! its drain-safe rebalance (deactivate, drain, new plan, activate).
//!
//! The parallelism the autoscaler wrote is kept in the status (`applied`): a spec holding
//! another value was changed by its user, and the autoscaler starts again from it after a
//! stabilization interval instead of writing its own back at once.

pub mod window;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use squall_autoscaler::{Bounds, Memory, Millis, Recommendation, Settings};
use squall_model::crd::{AutoscalerStatus, ComponentAutoscalerStatus, Topology};
use squall_model::{AutoscalingSpec, TopologySpec};

use crate::change::CurrentAssignment;
use crate::context::{publish, Context, Error};
use crate::{kill, probe, FIELD_MANAGER};
use window::{Sample, Window};

/// Samples per window at most: the memory a topology's window takes is bounded whatever
/// its length.
const SAMPLES_PER_WINDOW: u32 = 20;
/// Longest a worker may take to answer with its figures.
const ANSWER: Duration = Duration::from_secs(2);

/// Every topology's window of samples, and the autoscaler status last decided, by
/// `ns/name`.
#[derive(Debug, Default)]
pub(crate) struct Windows(
    std::sync::Mutex<BTreeMap<String, Window>>,
    std::sync::Mutex<BTreeMap<String, AutoscalerStatus>>,
);

impl Windows {
    /// Forgets the topology `key`.
    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut w) = self.0.lock() {
            w.remove(key);
        }
        if let Ok(mut l) = self.1.lock() {
            l.remove(key);
        }
    }

    /// The status this operator last decided for `key`. The watch cache may still hold an
    /// older one right after the autoscaler's own spec patch, and carrying that over would
    /// take back `applied`, making the autoscaler's change look like its user's.
    pub(crate) fn last(&self, key: &str) -> Option<AutoscalerStatus> {
        self.1.lock().ok()?.get(key).cloned()
    }

    /// Keeps `status` as the last decided for `key`.
    pub(crate) fn remember(&self, key: &str, status: Option<&AutoscalerStatus>) {
        if let (Ok(mut l), Some(s)) = (self.1.lock(), status) {
            l.insert(key.to_owned(), s.clone());
        }
    }
}

/// The autoscaler's settings for `spec`: the bounds of a component with a set task count
/// stop at it, as a rebalance cannot run more executors than tasks.
pub fn settings(spec: &TopologySpec, a: &AutoscalingSpec) -> Settings {
    let to_u32 = |n: i32| u32::try_from(n.max(1)).unwrap_or(1);
    let ms = |s: i64| Millis::try_from(s.max(0)).unwrap_or(0).saturating_mul(1000);
    let bounds = Bounds {
        min: to_u32(a.min_parallelism),
        max: to_u32(a.max_parallelism),
    };
    let mut overrides = BTreeMap::new();
    for b in &spec.bolts {
        let own = a.components.iter().find(|o| o.name == b.name);
        let mut max = own.and_then(|o| o.max_parallelism).map_or(bounds.max, to_u32);
        if let Some(tasks) = b.tasks {
            max = max.min(to_u32(tasks));
        }
        let min = own.and_then(|o| o.min_parallelism).map_or(bounds.min, to_u32);
        overrides.insert(b.name.clone(), Bounds { min, max });
    }
    Settings {
        target_utilization: a.target_utilization,
        boundary: a.target_utilization_boundary,
        bounds,
        overrides,
        stabilization_ms: ms(a.stabilization_interval_seconds),
        scale_down_delay_ms: ms(a.scale_down_delay_seconds),
        catch_up_ms: ms(a.catch_up_duration_seconds),
    }
}

fn parse_ms(s: Option<&String>) -> Option<Millis> {
    let t: jiff::Timestamp = s?.parse().ok()?;
    Millis::try_from(t.as_millisecond()).ok()
}

fn rfc3339(ms: Option<Millis>) -> Option<String> {
    let ms = i64::try_from(ms?).ok()?;
    jiff::Timestamp::from_millisecond(ms).ok().map(|t| t.to_string())
}

/// What the status remembers of each component, with a spec the user changed since the
/// autoscaler last wrote it counting as a change now (so it stabilizes from the user's
/// value). Also the components the user changed.
fn memories(
    spec: &TopologySpec,
    previous: Option<&AutoscalerStatus>,
    now: Millis,
) -> (BTreeMap<String, Memory>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut by_user = Vec::new();
    for c in previous.map(|p| p.components.as_slice()).unwrap_or_default() {
        let mut m = Memory {
            last_change: parse_ms(c.last_change.as_ref()),
            scale_down_since: parse_ms(c.scale_down_since.as_ref()),
        };
        let in_spec = spec.bolts.iter().chain(&spec.spouts).find(|x| x.name == c.name);
        if let (Some(applied), Some(x)) = (c.applied, in_spec) {
            if x.parallelism != applied {
                m = Memory {
                    last_change: Some(now),
                    scale_down_since: None,
                };
                by_user.push(c.name.clone());
            }
        }
        out.insert(c.name.clone(), m);
    }
    (out, by_user)
}

/// The sentence an Event and the status give for a recommendation.
pub fn describe(name: &str, r: &Recommendation) -> String {
    let pct = |u: f64| format!("{:.0}%", u * 100.0);
    let figures = match (r.utilization, r.true_rate) {
        (Some(u), Some(t)) => format!(
            "utilization {} at the target rate of {:.0} tuples/s, true rate {:.0} tuples/s per executor",
            pct(u),
            r.target_rate,
            t
        ),
        _ => format!("target rate {:.0} tuples/s", r.target_rate),
    };
    format!(
        "{name}: parallelism {} -> {}: {figures} ({})",
        r.current, r.recommended, r.reason
    )
}

/// The status entries for `recs`: `applied` follows what the autoscaler writes when it
/// acts, and metrics-only mode keeps each component's memory as it was when it only
/// recommends a change (nothing changed, so nothing stabilizes).
fn entries(
    recs: &BTreeMap<String, Recommendation>,
    previous: Option<&AutoscalerStatus>,
    memory: &BTreeMap<String, Memory>,
    acting: bool,
    by_user: &[String],
) -> Vec<ComponentAutoscalerStatus> {
    let to_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let round = |x: f64| x.round() as i64;
    recs.iter()
        .map(|(name, r)| {
            let before = previous.and_then(|p| p.components.iter().find(|c| &c.name == name));
            let kept = if r.changes() && !acting {
                memory.get(name).copied().unwrap_or_default()
            } else {
                r.memory
            };
            let decision = match (r.changes(), acting, r.recommended > r.current) {
                (false, _, _) => "Hold",
                (true, false, _) => "Recommended",
                (true, true, true) => "ScaleUp",
                (true, true, false) => "ScaleDown",
            };
            let applied = if acting && r.changes() {
                Some(to_i32(r.recommended))
            } else if by_user.contains(name) {
                None
            } else {
                before.and_then(|b| b.applied)
            };
            ComponentAutoscalerStatus {
                name: name.clone(),
                current: to_i32(r.current),
                recommended: to_i32(r.recommended),
                applied,
                utilization_percent: r.utilization.map(|u| round(u * 100.0)),
                true_rate: r.true_rate.map(round),
                target_rate: round(r.target_rate),
                last_decision: decision.to_owned(),
                reason: r.reason.to_string(),
                last_change: rfc3339(kept.last_change),
                scale_down_since: rfc3339(kept.scale_down_since),
            }
        })
        .collect()
}

/// The JSON patch setting each changed component's parallelism, and the worker count
/// when executors per worker would exceed the bound. Each component is found by a `test`
/// of its name and of the parallelism decided from, so a concurrent edit fails the patch.
fn patch(
    t: &Topology,
    a: &AutoscalingSpec,
    recs: &BTreeMap<String, Recommendation>,
) -> (Vec<Value>, TopologySpec) {
    let mut spec = t.spec.clone();
    let mut ops = Vec::new();
    for (list, items) in [("spouts", &mut spec.spouts), ("bolts", &mut spec.bolts)] {
        for (i, c) in items.iter_mut().enumerate() {
            let Some(r) = recs.get(&c.name).filter(|r| r.changes()) else {
                continue;
            };
            let to = i32::try_from(r.recommended).unwrap_or(i32::MAX);
            ops.push(json!({"op": "test", "path": format!("/spec/{list}/{i}/name"), "value": c.name}));
            ops.push(json!({"op": "test", "path": format!("/spec/{list}/{i}/parallelism"), "value": c.parallelism}));
            ops.push(json!({"op": "replace", "path": format!("/spec/{list}/{i}/parallelism"), "value": to}));
            c.parallelism = to;
        }
    }
    let executors: i64 = spec
        .spouts
        .iter()
        .chain(&spec.bolts)
        .map(|c| i64::from(c.parallelism.max(0)))
        .sum();
    let to_u32 = |n: i64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let workers = squall_autoscaler::workers_for(
        to_u32(executors),
        to_u32(i64::from(spec.workers)),
        to_u32(i64::from(a.max_executors_per_worker)),
        to_u32(i64::from(a.max_workers.unwrap_or(spec.workers))),
    );
    let workers = i32::try_from(workers).unwrap_or(spec.workers);
    if !ops.is_empty() && workers != spec.workers {
        ops.push(json!({"op": "test", "path": "/spec/workers", "value": spec.workers}));
        ops.push(json!({"op": "replace", "path": "/spec/workers", "value": workers}));
        spec.workers = workers;
    }
    (ops, spec)
}

/// Reads every worker's figures into the topology's window when a sample is due; the
/// window's figures once it spans the metrics window.
async fn sample(
    ctx: &Context,
    key: &str,
    t: &Topology,
    pods: &[Pod],
    current: &CurrentAssignment,
    length: Duration,
) -> Option<(
    squall_autoscaler::Graph,
    BTreeMap<String, squall_autoscaler::Figures>,
)> {
    let period = (length / SAMPLES_PER_WINDOW).max(Duration::from_secs(1));
    let now = Instant::now();
    let due = ctx
        .windows
        .0
        .lock()
        .ok()?
        .entry(key.to_owned())
        .or_default()
        .due(now, period);
    if due {
        let mut answers = Vec::new();
        for addr in kill::worker_http(pods, Some(current)) {
            match probe::figures(&addr, ANSWER).await {
                Ok(f) => answers.push(f),
                Err(e) => {
                    tracing::debug!(topology = %key, worker = %addr, error = %e, "figures not read; no sample");
                    return None;
                }
            }
        }
        let s = Sample::of(now, current.assignment.generation, &answers)?;
        ctx.windows
            .0
            .lock()
            .ok()?
            .entry(key.to_owned())
            .or_default()
            .push(s, length);
    }
    let windows = ctx.windows.0.lock().ok()?;
    let w = windows.get(key)?;
    w.figures(&t.spec, length)
}

/// One evaluation when the window allows it: updates `status` (carried over otherwise),
/// publishes Events and metrics, and patches the spec when acting. The caller calls it
/// only while the topology runs its current plan with nothing pending.
pub(crate) async fn evaluate(
    ctx: &Context,
    t: &Topology,
    pods: &[Pod],
    current: &CurrentAssignment,
    status: &mut Option<AutoscalerStatus>,
) -> Result<(), Error> {
    let Some(a) = t.spec.autoscaling.as_ref().filter(|a| a.enabled) else {
        return Ok(());
    };
    let key = format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any());
    let length = Duration::from_secs(u64::try_from(a.metrics_window_seconds.max(1)).unwrap_or(1));
    let Some((graph, figures)) = sample(ctx, &key, t, pods, current, length).await else {
        return Ok(());
    };
    // The figures must be of the spec's own parallelism: otherwise a rebalance is pending.
    let parallelism: BTreeMap<String, u32> = t
        .spec
        .spouts
        .iter()
        .chain(&t.spec.bolts)
        .map(|c| (c.name.clone(), u32::try_from(c.parallelism.max(1)).unwrap_or(1)))
        .collect();
    if figures
        .iter()
        .any(|(n, f)| parallelism.get(n).is_some_and(|p| *p != f.executors))
    {
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    let now_ms = Millis::try_from(now.as_millisecond()).unwrap_or(0);
    let (memory, by_user) = memories(&t.spec, status.as_ref(), now_ms);
    let settings = settings(&t.spec, a);
    let recs = squall_autoscaler::evaluate(&squall_autoscaler::Input {
        graph: &graph,
        figures: &figures,
        parallelism: &parallelism,
        memory: &memory,
        settings: &settings,
        now: now_ms,
    });
    let acting = !a.metrics_only;
    for name in &by_user {
        let note = format!("{name}: parallelism set in the spec by its user; the autoscaler resumes from it after the stabilization interval");
        publish(ctx, t, "AutoscalerYielded", note, false).await;
    }
    let changed: Vec<(&String, &Recommendation)> = recs.iter().filter(|(_, r)| r.changes()).collect();
    let mut rebalances = status.as_ref().map_or(0, |s| s.rebalances);
    if acting && !changed.is_empty() {
        rebalances += i64::from(apply(ctx, t, a, &recs).await?);
    }
    let previous = status.clone();
    let mut next = AutoscalerStatus {
        mode: if acting { "Scaling" } else { "MetricsOnly" }.to_owned(),
        last_evaluation: Some(now.to_string()),
        rebalances,
        components: entries(&recs, previous.as_ref(), &memory, acting, &by_user),
    };
    if !acting {
        // Metrics only: the spec is the user's; nothing was applied.
        next.components.iter_mut().for_each(|c| c.applied = None);
    }
    for (name, r) in &changed {
        let was = previous
            .as_ref()
            .and_then(|p| p.components.iter().find(|c| &c.name == *name))
            .map(|c| c.recommended);
        // A recommendation only is told once, not at every evaluation.
        if acting || was != i32::try_from(r.recommended).ok() {
            let reason = if acting {
                "Autoscaled"
            } else {
                "ScalingRecommended"
            };
            publish(ctx, t, reason, describe(name, r), false).await;
        }
    }
    ctx.config
        .metrics
        .autoscaled(&key, &recs, acting && !changed.is_empty());
    tracing::debug!(topology = %key, changes = changed.len(), acting, "autoscaler evaluated");
    *status = Some(next);
    Ok(())
}

/// Writes the new parallelism into the spec; whether a rebalance was asked for.
async fn apply(
    ctx: &Context,
    t: &Topology,
    a: &AutoscalingSpec,
    recs: &BTreeMap<String, Recommendation>,
) -> Result<bool, Error> {
    let (ops, spec) = patch(t, a, recs);
    let changed = Topology { spec, ..t.clone() };
    let manifest = changed.manifest();
    let yaml = manifest.to_yaml()?;
    let limits = &ctx.config.workers.limits;
    if let Err(problems) =
        squall_model::crd::plan_stored(&manifest, &yaml, &squall_catalog::BuiltinKinds, limits)
    {
        let note = format!("the autoscaler's new parallelism is not valid, so it is not applied: {problems}");
        publish(ctx, t, "AutoscalingRefused", note, true).await;
        return Ok(false);
    }
    let Ok(p) = serde_json::from_value::<json_patch::Patch>(Value::Array(ops)) else {
        return Ok(false);
    };
    let ns = t.namespace().ok_or(Error::NoNamespace)?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match Api::<Topology>::namespaced(ctx.client.clone(), &ns)
        .patch(&t.name_any(), &params, &Patch::<()>::Json(p))
        .await
    {
        Ok(_) => {
            let sizes: Vec<String> = recs
                .iter()
                .filter(|(_, r)| r.changes())
                .map(|(n, r)| format!("{n}={}", r.recommended))
                .collect();
            tracing::info!(topology = %t.name_any(), components = %sizes.join(","), workers = changed.spec.workers, "autoscaler rebalances");
            Ok(true)
        }
        // The spec changed under the decision (a failed `test`): decide again on it.
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 => {
            tracing::info!(topology = %t.name_any(), message = %s.message, "spec changed under the autoscaler; deciding again");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
