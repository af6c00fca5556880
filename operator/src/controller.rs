//! The kube-runtime Controller: observe the topology and its pods, decide, write the
//! status, then act (children by server-side apply, the assignment ConfigMap, Events).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, ResourceExt};
use squall_model::crd::Topology;
use squall_model::DesiredState;

use crate::change::CurrentAssignment;
use crate::context::{current_assignment, publish, write_status, Context};
pub use crate::context::{Config, Error};
use crate::decide::{asks, decide, ordinal, Observed, ObservedPod};
use crate::events::EventRecorder;
use crate::liveness::LeaseBook;
use crate::resources;
use crate::{kill, probe, FIELD_MANAGER, HTTP_PORT, TOPOLOGY_LABEL};

/// The finalizer that marks the topology as Killing before its children go.
pub const FINALIZER: &str = "squall.dev/cleanup";

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod as decide sees it; `expired` holds the pod uids whose Lease this operator has seen
/// go unrenewed for its duration (a pod with no Lease yet is not judged: it may be starting).
fn observe_pod(p: &Pod, expired: &BTreeSet<String>, lost_nodes: &[String]) -> ObservedPod {
    let name = p.name_any();
    let status = p.status.as_ref();
    let node = p.spec.as_ref().and_then(|s| s.node_name.as_ref());
    ObservedPod {
        node_lost: node.is_some_and(|n| lost_nodes.contains(n)),
        lease_expired: p.metadata.uid.as_ref().is_some_and(|u| expired.contains(u)),
        ordinal: ordinal(&name),
        ip: status.and_then(|s| s.pod_ip.clone()).filter(|ip| !ip.is_empty()),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        terminating: p.metadata.deletion_timestamp.is_some(),
        name,
    }
}

/// When most of a topology's workers look dead at once (Lease unrenewed or node not
/// ready), the control plane is the likelier fault, as after an API server outage: a
/// worker that answers with its status on its own HTTP port is kept.
async fn keep_answering_workers(ctx: &Context, t: &Topology, pods: &mut [ObservedPod], workers: i32) {
    let looks_dead = |p: &ObservedPod| (p.lease_expired && !p.terminating) || p.node_lost;
    let wanted = usize::try_from(workers).unwrap_or(0);
    let dead = pods
        .iter()
        .filter(|p| looks_dead(p) && p.ordinal.is_some_and(|o| o < workers))
        .count();
    if !crate::liveness::most_look_dead(dead, wanted) {
        return;
    }
    for p in pods.iter_mut().filter(|p| looks_dead(p)) {
        let Some(ip) = &p.ip else { continue };
        if probe::status(&format!("{ip}:{HTTP_PORT}")).await.is_ok() {
            let why = if p.node_lost {
                "is on a node that is not ready"
            } else {
                "has not renewed its Lease"
            };
            p.lease_expired = false;
            p.node_lost = false;
            tracing::warn!(topology = %t.name_any(), pod = %p.name, why, "the worker answers; kept");
            let note = format!(
                "worker {} {why}, but answers on its own port; kept, as most workers of the topology look dead at once",
                p.name
            );
            publish(ctx, t, "WorkerKept", note, true).await;
        }
    }
}

/// The topology's worker pods, as listed and as decide sees them: each pod's Lease judged
/// on this operator's observations, its node's readiness, and, when most look dead at
/// once, its own answer.
async fn observe_pods(
    ctx: &Context,
    t: &Topology,
    ns: &str,
    name: &str,
) -> Result<(Vec<Pod>, Vec<ObservedPod>), Error> {
    let client = ctx.client.clone();
    let mine = ListParams::default().labels(&format!("{TOPOLOGY_LABEL}={name}"));
    let leases = Api::<Lease>::namespaced(client.clone(), ns)
        .list(&mine)
        .await?
        .items;
    let pod_list = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&mine)
        .await?
        .items;
    // The nodes the pods are bound to, once each; a node that is gone counts as lost.
    let nodes: Api<Node> = Api::all(client.clone());
    let mut lost_nodes = Vec::new();
    let mut names: Vec<&String> = pod_list
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.as_ref())
        .collect();
    names.sort();
    names.dedup();
    for n in names {
        if !nodes.get_opt(n).await?.as_ref().is_some_and(node_ready) {
            lost_nodes.push(n.clone());
        }
    }
    let expired = ctx.leases.lock().map_or_else(
        |_| BTreeSet::new(),
        |mut book| {
            let fallback = Duration::from_secs(ctx.config.workers.lease_duration_seconds);
            book.observe(&format!("{ns}/{name}"), &leases, Instant::now(), fallback)
        },
    );
    let mut pods: Vec<ObservedPod> = pod_list
        .iter()
        .map(|p| observe_pod(p, &expired, &lost_nodes))
        .collect();
    keep_answering_workers(ctx, t, &mut pods, t.spec.workers).await;
    Ok((pod_list, pods))
}

/// Applies the children (identity before the pods that use it), writes the assignment,
/// replaces the pods judged dead, and says when to look again.
async fn act(
    ctx: &Context,
    t: &Topology,
    decision: &crate::decide::Decision,
    current: Option<&CurrentAssignment>,
) -> Result<Action, Error> {
    let ns = t.namespace().ok_or(Error::NoNamespace)?;
    let name = t.name_any();
    let client = ctx.client.clone();
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let pod_api = Api::<Pod>::namespaced(client.clone(), &ns);
    let in_effect = decision.write.as_ref().or(current);
    let replicas = match in_effect {
        Some(a) if decision.lifecycle.is_draining() => t
            .spec
            .workers
            .max(i32::try_from(a.assignment.workers.len()).unwrap_or(i32::MAX)),
        _ => t.spec.workers,
    };
    Api::<Service>::namespaced(client.clone(), &ns)
        .patch(
            &resources::service_name(&name),
            &ssa,
            &Patch::Apply(resources::service(t)?),
        )
        .await?;
    // Who may reach the workers, before they listen.
    Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .patch(
            &resources::network_policy_name(&name),
            &ssa,
            &Patch::Apply(resources::network_policy(t, &ctx.config.workers.network)?),
        )
        .await?;
    // The workers' identity before the pods that use it.
    let account = resources::worker_account_name(&name);
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .patch(&account, &ssa, &Patch::Apply(crate::rbac::service_account(t)?))
        .await?;
    Api::<Role>::namespaced(client.clone(), &ns)
        .patch(&account, &ssa, &Patch::Apply(crate::rbac::role(t, replicas)?))
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .patch(&account, &ssa, &Patch::Apply(crate::rbac::role_binding(t)?))
        .await?;
    // Certificates before the pods that wait for them.
    if t.spec.tls_mode() == squall_model::TlsMode::Mutual {
        let workers = &ctx.config.workers;
        crate::certs::ensure(&client, t, replicas, workers.cert_validity, workers.ca_overlap).await?;
    }
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .patch(
            &name,
            &ssa,
            &Patch::Apply(resources::statefulset(t, &ctx.config.workers, replicas)?),
        )
        .await?;
    if let Some(next) = &decision.write {
        let cm = resources::configmap(t, next)?;
        cms.patch(&resources::configmap_name(&name), &ssa, &Patch::Apply(cm))
            .await?;
        tracing::info!(topology = %name, generation = next.assignment.generation, "assignment written");
    }
    for pod in &decision.replace {
        // At once: the process is hung or unreachable, a grace period only delays its tasks.
        kill::ignore_missing(
            pod_api
                .delete(pod, &DeleteParams::default().grace_period(0))
                .await,
        )?;
        tracing::warn!(topology = %name, pod = %pod, "worker lease expired or node lost; pod replaced");
    }
    if decision.waiting || decision.lifecycle.is_draining() || decision.write.is_some() {
        // A step waits on the workers: ask them again soon.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Leases expire without any watch event: look again within a renewal period or so.
    let again = ctx.config.workers.lease_renew_seconds.clamp(1, 5);
    Ok(Action::requeue(Duration::from_secs(again)))
}

/// The autoscaler's step while the topology runs its current plan with nothing pending;
/// otherwise its last status is carried over (or dropped when autoscaling is off).
async fn autoscale(
    ctx: &Context,
    t: &Topology,
    pods: &[Pod],
    current: Option<&CurrentAssignment>,
    decision: &mut crate::decide::Decision,
) -> Result<(), Error> {
    let enabled = t.spec.autoscaling.as_ref().is_some_and(|a| a.enabled);
    let key = format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any());
    if !enabled {
        ctx.windows.forget(&key);
        ctx.config.metrics.autoscaler_gone(&key);
        return Ok(());
    }
    decision.status.autoscaler = ctx
        .windows
        .last(&key)
        .or_else(|| t.status.as_ref().and_then(|s| s.autoscaler.clone()));
    let settled = decision.status.phase == squall_model::crd::Phase::Running
        && !decision.lifecycle.is_draining()
        && decision.write.is_none()
        && !decision.waiting
        && t.metadata.deletion_timestamp.is_none();
    if let (Some(c), true) = (current, settled) {
        crate::autoscale::evaluate(ctx, t, pods, c, &mut decision.status.autoscaler).await?;
        ctx.windows.remember(&key, decision.status.autoscaler.as_ref());
    }
    Ok(())
}

async fn apply(t: Arc<Topology>, ctx: &Context) -> Result<Action, Error> {
    let ns = t.namespace().ok_or(Error::NoNamespace)?;
    let name = t.name_any();
    let client = ctx.client.clone();
    let topologies: Api<Topology> = Api::namespaced(client.clone(), &ns);

    // Observe.
    let manifest = t.manifest();
    let manifest_yaml = manifest.to_yaml()?;
    let plan = squall_model::crd::plan_stored(
        &manifest,
        &manifest_yaml,
        &squall_catalog::BuiltinKinds,
        &ctx.config.workers.limits,
    );
    let clock = jiff::Timestamp::now();
    let (pod_list, pods) = observe_pods(ctx, &t, &ns, &name).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let current = current_assignment(
        cms.get_opt(&resources::configmap_name(&name)).await?,
        &ctx.config.workers.limits,
    );

    // Decide, asking the workers only what the next step needs.
    let selector = resources::selector_string(&name);
    let mut observed = Observed {
        generation: t.metadata.generation,
        plan: plan.as_ref().map_err(Clone::clone),
        manifest: &manifest,
        workers: t.spec.workers,
        inactive: t.spec.desired_state == DesiredState::Inactive,
        pods: &pods,
        current: current.as_ref(),
        previous: t.status.as_ref(),
        selector: &selector,
        now: clock,
        drained: false,
        workers_current: false,
    };
    let asked = asks(&observed);
    if let Some(c) = &current {
        let workers = || kill::worker_http(&pod_list, Some(c));
        if asked.drained {
            observed.drained = probe::drained(&workers(), c.assignment.generation).await;
        }
        if asked.workers_current {
            observed.workers_current = probe::running(&workers(), c.assignment.generation).await;
        }
    }
    let mut decision = decide(&observed);
    decision.status.tls = Some(t.spec.tls_mode());
    autoscale(ctx, &t, &pod_list, current.as_ref(), &mut decision).await?;

    ctx.config
        .metrics
        .phase(format!("{ns}/{name}"), Some(decision.status.phase));
    // Status first, so a restarted operator sees what was decided.
    if t.status.as_ref() != Some(&decision.status) {
        write_status(&topologies, &name, &decision.status).await?;
    }
    for (reason, note, warning) in &decision.events {
        publish(ctx, &t, reason, note.clone(), *warning).await;
    }
    if plan.is_err() {
        // Keep what runs on the last valid spec; a fixed spec reconciles again.
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    act(ctx, &t, &decision, current.as_ref()).await
}

async fn reconcile(t: Arc<Topology>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = t.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Topology> = Api::namespaced(ctx.client.clone(), &ns);
    let started = std::time::Instant::now();
    if t.metadata.deletion_timestamp.is_some() && t.finalizers().iter().any(|f| f == FINALIZER) {
        if let Some(again) = kill::kill_wait(&t, &ctx).await? {
            ctx.config.metrics.reconciled(started.elapsed());
            return Ok(Action::requeue(again));
        }
    }
    let result = finalizer(&api, FINALIZER, t.clone(), |event| async {
        match event {
            Finalizer::Apply(t) => apply(t, &ctx).await,
            Finalizer::Cleanup(t) => kill::cleanup(t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.config.metrics.reconciled(started.elapsed());
    tracing::debug!(topology = %t.name_any(), ms = started.elapsed().as_millis() as u64, "reconciled");
    result
}

fn error_policy(t: Arc<Topology>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.config.metrics.failed(error.metric_label());
    tracing::warn!(topology = %t.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until SIGTERM/Ctrl-C.
pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    let (topologies, pods, sets, cms): (Api<Topology>, Api<Pod>, Api<StatefulSet>, Api<ConfigMap>) =
        match &config.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
    // Fail early with a hint when the CRD is missing.
    topologies.list(&ListParams::default().limit(1)).await?;
    let recorder = EventRecorder::new(client.clone(), FIELD_MANAGER, config.instance.clone());
    let ctx = Arc::new(Context {
        client,
        recorder,
        config,
        leases: std::sync::Mutex::new(LeaseBook::default()),
        windows: crate::autoscale::Windows::default(),
    });
    let labelled = watcher::Config::default().labels(TOPOLOGY_LABEL);
    Controller::new(topologies, watcher::Config::default())
        .owns(sets, labelled.clone())
        .owns(cms, labelled.clone())
        // Pods belong to the StatefulSet, not to the topology: map them by label.
        .watches(pods, labelled, |pod: Pod| {
            let ns = pod.namespace()?;
            let name = pod.labels().get(TOPOLOGY_LABEL)?.clone();
            Some(ObjectRef::<Topology>::new(&name).within(&ns))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
    Ok(())
}
