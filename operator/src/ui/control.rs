//! Storm's actions as changes to the Topology resource, which the (leading) operator
//! then reconciles: activate and deactivate set `spec.desiredState`, rebalance sets
//! `spec.workers` and components' `parallelism`, kill sets `spec.killWaitSeconds` and
//! deletes the topology.
//!
//! These writes are the operator's, with the operator's rights: they are made only after
//! the caller's own SubjectAccessReview allowed that verb on that topology (see `auth`),
//! and they are exactly the change the action names, never anything else.

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use squall_model::crd::Topology;
use squall_model::{Limits, TopologySpec};
use squall_ui::{Control, ControlError, RebalanceOptions};
use tracing::info;

use super::merge::parse_id;

/// Carries out Storm's actions on the cluster's Topology resources.
pub struct ClusterControl {
    client: Client,
    /// The only namespace served, when the operator watches one.
    namespace: Option<String>,
    /// What a rebalanced spec is checked against.
    limits: Limits,
}

impl ClusterControl {
    /// Actions through `client`, within `namespace` if set, rebalances within `limits`.
    pub fn new(client: Client, namespace: Option<String>, limits: Limits) -> Self {
        ClusterControl {
            client,
            namespace,
            limits,
        }
    }

    /// The API of the topology `id` names, and its name.
    fn locate<'a>(&self, id: &'a str) -> Result<(Api<Topology>, &'a str), ControlError> {
        let (ns, name) = parse_id(id).ok_or_else(|| ControlError::NotFound(id.to_owned()))?;
        if self.namespace.as_deref().is_some_and(|served| served != ns) {
            return Err(ControlError::NotFound(id.to_owned()));
        }
        Ok((Api::namespaced(self.client.clone(), ns), name))
    }

    async fn merge_patch(&self, id: &str, patch: Value) -> Result<(), ControlError> {
        let (api, name) = self.locate(id)?;
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| refused(id, e))?;
        Ok(())
    }

    async fn set_state(&self, id: &str, state: &str) -> Result<(), ControlError> {
        self.merge_patch(id, json!({"spec": {"desiredState": state}}))
            .await?;
        info!(topology = %id, state, "desired state set through the UI");
        Ok(())
    }
}

/// A failed API call as the action's outcome.
fn refused(id: &str, e: kube::Error) -> ControlError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ControlError::NotFound(id.to_owned()),
        kube::Error::Api(s) => {
            ControlError::Refused(format!("the API server refused ({}): {}", s.code, s.message))
        }
        other => ControlError::Refused(format!("the API server could not be asked: {other}")),
    }
}

/// The JSON patch that rebalances `t` as `options` say, checked first: every named
/// component must exist, and the spec it makes must pass validation within `limits`
/// (so an over-limit request is refused with the limit's message). Each changed
/// component is found again by a `test` of its name at its index, so a reordered list
/// fails the patch rather than resizing another component. `None` when nothing changes.
pub fn rebalance_patch(
    t: &Topology,
    options: &RebalanceOptions,
    limits: &Limits,
) -> Result<Option<Value>, ControlError> {
    let mut spec: TopologySpec = t.spec.clone();
    let mut ops = Vec::new();
    if let Some(n) = options.num_workers {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        spec.workers = n;
        ops.push(json!({"op": "add", "path": "/spec/workers", "value": n}));
    }
    for (component, count) in &options.executors {
        let count = i32::try_from(*count).unwrap_or(i32::MAX);
        let found = [("spouts", &mut spec.spouts), ("bolts", &mut spec.bolts)]
            .into_iter()
            .find_map(|(list, items)| {
                let (i, c) = items.iter_mut().enumerate().find(|(_, c)| c.name == *component)?;
                c.parallelism = count;
                Some((list, i))
            });
        let Some((list, i)) = found else {
            let names: Vec<&str> = t
                .spec
                .spouts
                .iter()
                .chain(&t.spec.bolts)
                .map(|c| c.name.as_str())
                .collect();
            return Err(ControlError::Refused(format!(
                "the topology has no component {component:?}; its components are {}",
                names.join(", ")
            )));
        };
        ops.push(json!({"op": "test", "path": format!("/spec/{list}/{i}/name"), "value": component}));
        ops.push(json!({"op": "add", "path": format!("/spec/{list}/{i}/parallelism"), "value": count}));
    }
    if ops.is_empty() {
        return Ok(None);
    }
    let changed = Topology { spec, ..t.clone() };
    let manifest = changed.manifest();
    let yaml = manifest
        .to_yaml()
        .map_err(|e| ControlError::Refused(format!("the rebalanced spec cannot be written: {e}")))?;
    squall_model::crd::plan_stored(&manifest, &yaml, &squall_catalog::BuiltinKinds, limits)
        .map_err(|problems| ControlError::Refused(format!("the rebalanced spec is not valid: {problems}")))?;
    Ok(Some(Value::Array(ops)))
}

impl Control for ClusterControl {
    async fn activate(&self, id: &str) -> Result<(), ControlError> {
        self.set_state(id, "Active").await
    }

    async fn deactivate(&self, id: &str) -> Result<(), ControlError> {
        self.set_state(id, "Inactive").await
    }

    /// The wait is not used: before a new plan runs, the operator deactivates the spouts
    /// and drains in-flight trees itself, up to the message timeout.
    async fn rebalance(
        &self,
        id: &str,
        _wait: Duration,
        options: RebalanceOptions,
    ) -> Result<(), ControlError> {
        let (api, name) = self.locate(id)?;
        let t = api.get(name).await.map_err(|e| refused(id, e))?;
        let Some(ops) = rebalance_patch(&t, &options, &self.limits)? else {
            return Ok(());
        };
        let patch: json_patch::Patch = serde_json::from_value(ops)
            .map_err(|e| ControlError::Refused(format!("building the patch: {e}")))?;
        api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(|e| refused(id, e))?;
        info!(topology = %id, workers = ?options.num_workers, executors = ?options.executors, "rebalanced through the UI");
        Ok(())
    }

    /// Sets `spec.killWaitSeconds` to the wait, then deletes the topology: the operator
    /// deactivates it and waits for in-flight trees up to that long before its workers go.
    async fn kill(&self, id: &str, wait: Duration) -> Result<(), ControlError> {
        let secs = i64::try_from(wait.as_secs()).unwrap_or(i64::MAX);
        self.merge_patch(id, json!({"spec": {"killWaitSeconds": secs}}))
            .await?;
        let (api, name) = self.locate(id)?;
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(|e| refused(id, e))?;
        info!(topology = %id, wait_s = secs, "killed through the UI");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use squall_model::TopologyManifest;

    use super::*;

    fn topology() -> Topology {
        let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: numbers}
spec:
  spouts: [{name: numbers, component: sequence}]
  bolts: [{name: sink, component: "null", inputs: [{from: numbers}]}]
"#;
        let m = TopologyManifest::from_yaml(yaml, "t").unwrap();
        Topology::new("numbers", m.spec)
    }

    fn options(workers: Option<u32>, executors: &[(&str, u32)]) -> RebalanceOptions {
        RebalanceOptions {
            num_workers: workers,
            executors: executors
                .iter()
                .map(|(c, n)| ((*c).to_owned(), *n))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_rebalance_patches_workers_and_the_named_components_only() {
        let limits = Limits::default();
        let patch = rebalance_patch(&topology(), &options(Some(3), &[("sink", 4)]), &limits)
            .unwrap()
            .unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "add", "path": "/spec/workers", "value": 3},
                {"op": "test", "path": "/spec/bolts/0/name", "value": "sink"},
                {"op": "add", "path": "/spec/bolts/0/parallelism", "value": 4},
            ])
        );
        let _: json_patch::Patch = serde_json::from_value(patch).unwrap();
        assert_eq!(
            rebalance_patch(&topology(), &options(None, &[]), &limits).unwrap(),
            None
        );
    }

    #[test]
    fn unknown_components_and_limits_refuse_with_their_message() {
        let limits = Limits {
            raise_with: crate::RAISE_WITH.to_owned(),
            ..Limits::default()
        };
        let err = rebalance_patch(&topology(), &options(None, &[("nope", 2)]), &limits).unwrap_err();
        assert_eq!(
            err,
            ControlError::Refused(
                "the topology has no component \"nope\"; its components are numbers, sink".into()
            )
        );
        let err = rebalance_patch(&topology(), &options(None, &[("sink", 5000)]), &limits).unwrap_err();
        let ControlError::Refused(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("maxParallelism"), "{message}");
        let err = rebalance_patch(&topology(), &options(Some(100_000), &[]), &limits).unwrap_err();
        assert!(err.to_string().contains("maxWorkers"), "{err}");
    }
}
