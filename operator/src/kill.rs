//! Storm's kill with wait, run before the finalizer lets a topology's children go, and
//! the deletion of those children.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use squall_model::crd::{Phase, Topology};

use crate::change::CurrentAssignment;
use crate::context::{current_assignment, publish, write_status, Context, Error};
use crate::lifecycle::{kill_deadline, Lifecycle, Observation, Step};
use crate::{probe, resources, FIELD_MANAGER, HTTP_PORT, TOPOLOGY_LABEL};

/// The HTTP endpoints of the workers of an assignment, or an empty list when one has no
/// pod with an IP (then it cannot report, and the drain runs to its deadline).
pub(crate) fn worker_http(pods: &[Pod], current: Option<&CurrentAssignment>) -> Vec<String> {
    let Some(current) = current else {
        return Vec::new();
    };
    let addresses: Option<Vec<String>> = current
        .assignment
        .workers
        .iter()
        .map(|w| {
            let pod = pods.iter().find(|p| p.name_any() == w.id)?;
            let ip = pod.status.as_ref()?.pod_ip.as_ref()?;
            Some(format!("{ip}:{HTTP_PORT}"))
        })
        .collect();
    // An unreachable address makes the probe answer "not drained".
    addresses.unwrap_or_else(|| vec!["0.0.0.0:0".to_owned()])
}

/// Storm's `kill -w`, before the finalizer lets the children go: marks the topology
/// Killing, then takes the [`Lifecycle::Killing`] transitions (deactivate its spouts
/// through the assignment, wait), and says how long to wait before looking again, or
/// `None` once every tree has drained or the wait has passed.
pub(crate) async fn kill_wait(t: &Topology, ctx: &Context) -> Result<Option<Duration>, Error> {
    let ns = t.namespace().ok_or(Error::NoNamespace)?;
    let name = t.name_any();
    let api: Api<Topology> = Api::namespaced(ctx.client.clone(), &ns);
    let wait_s = t
        .spec
        .kill_wait_seconds
        .unwrap_or(t.spec.message_timeout_seconds)
        .max(0);
    let wait = Duration::from_secs(u64::try_from(wait_s).unwrap_or(0));
    let mut status = t.status.clone().unwrap_or_default();
    if status.phase != Phase::Killing {
        status.phase = Phase::Killing;
        status.drain_deadline = None;
        // The object may already be gone from under us; nothing to record then.
        if let Err(e) = write_status(&api, &name, &status).await {
            tracing::debug!(topology = %name, error = %e, "status before deletion not written");
        }
        publish(
            ctx,
            t,
            "Killing",
            format!("topology deleted; spouts deactivated, waiting up to {wait_s} s for in-flight trees"),
            false,
        )
        .await;
    }
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let stored = cms.get_opt(&resources::configmap_name(&name)).await?;
    let current = current_assignment(stored, &ctx.config.workers.limits);
    let now = jiff::Timestamp::now();
    let deleted_at = t.metadata.deletion_timestamp.as_ref().map_or(now, |d| d.0);
    let lifecycle = Lifecycle::observe(current.as_ref(), None, Some(kill_deadline(deleted_at, wait)));
    let mut o = Observation::new(current.as_ref(), None, now);
    if lifecycle.asks(&o).drained {
        if let Some(c) = &current {
            let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
                .list(&ListParams::default().labels(&format!("{TOPOLOGY_LABEL}={name}")))
                .await?
                .items;
            o.drained = probe::drained(&worker_http(&pods, Some(c)), c.assignment.generation).await;
        }
    }
    let transition = lifecycle.next(&o)?;
    match (transition.step, transition.write) {
        (Step::Deactivate, Some(off)) => {
            let cm = resources::configmap(t, &off)?;
            cms.patch(
                &resources::configmap_name(&name),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(cm),
            )
            .await?;
            tracing::info!(topology = %name, generation = off.assignment.generation, "spouts deactivated for the kill");
            // Give the workers a moment to pick it up before asking them.
            Ok(Some(Duration::from_secs(1)))
        }
        (Step::Release, _) => {
            // With no assignment nothing ran to drain: the workers just go.
            if current.is_some() {
                let drained = o.drained;
                let how = if drained {
                    "in-flight trees drained"
                } else {
                    "kill wait passed with trees in flight; their spouts are gone with them"
                };
                tracing::info!(topology = %name, drained, "killing the workers");
                publish(ctx, t, "Killed", format!("{how}; removing the workers"), !drained).await;
            }
            Ok(None)
        }
        _ => Ok(Some(Duration::from_secs(1))),
    }
}

pub(crate) async fn cleanup(t: Arc<Topology>, ctx: &Context) -> Result<Action, Error> {
    let ns = t.namespace().ok_or(Error::NoNamespace)?;
    ctx.config.metrics.phase(format!("{ns}/{}", t.name_any()), None);
    // The children carry owner references, but the garbage collector learns about a new CRD
    // only at its next discovery resync (30 s); deleting them here makes `kubectl delete`
    // prompt. The StatefulSet's pods go with it (a built-in kind the collector knows).
    let name = t.name_any();
    let dp = DeleteParams::background();
    ignore_missing(
        Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
            .delete(&name, &dp)
            .await,
    )?;
    ignore_missing(
        Api::<Service>::namespaced(ctx.client.clone(), &ns)
            .delete(&resources::service_name(&name), &dp)
            .await,
    )?;
    ignore_missing(
        Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .delete(&resources::configmap_name(&name), &dp)
            .await,
    )?;
    ignore_missing(
        Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ns)
            .delete(&resources::network_policy_name(&name), &dp)
            .await,
    )?;
    let account = resources::worker_account_name(&name);
    ignore_missing(
        Api::<RoleBinding>::namespaced(ctx.client.clone(), &ns)
            .delete(&account, &dp)
            .await,
    )?;
    ignore_missing(
        Api::<Role>::namespaced(ctx.client.clone(), &ns)
            .delete(&account, &dp)
            .await,
    )?;
    ignore_missing(
        Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns)
            .delete(&account, &dp)
            .await,
    )?;
    if let Ok(mut book) = ctx.leases.lock() {
        book.forget(&format!("{ns}/{name}"));
    }
    Ok(Action::await_change())
}

pub(crate) fn ignore_missing<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
