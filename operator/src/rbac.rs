//! Per-topology worker identity: a ServiceAccount, and a Role that lets it read and watch
//! only its topology's assignment ConfigMap and keep only its own workers' Leases (by
//! name), bound together. All three are owned by the Topology, so they go with it.
//!
//! The operator must hold every permission it grants (Kubernetes' escalation check), so
//! its own rules cover configmaps `get`, `list`, `watch` and leases `get`, `create`,
//! `patch`.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use squall_model::crd::Topology;

pub use crate::resources::worker_account_name;
use crate::resources::{configmap_name, meta, owner, BuildError};

fn parts(
    t: &Topology,
) -> Result<
    (
        String,
        Option<String>,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ),
    BuildError,
> {
    let name = t.metadata.name.clone().ok_or(BuildError::Unnamed)?;
    Ok((name, t.metadata.namespace.clone(), owner(t)?))
}

/// The workers' ServiceAccount.
pub fn service_account(t: &Topology) -> Result<ServiceAccount, BuildError> {
    let (name, ns, owner) = parts(t)?;
    Ok(ServiceAccount {
        metadata: meta(worker_account_name(&name), ns, &owner, &name),
        ..ServiceAccount::default()
    })
}

/// The workers' Role. Leases are named after the worker pods (`NAME-0` …); `workers` is
/// how many may exist now (during a scale-down drain, the old count).
pub fn role(t: &Topology, workers: i32) -> Result<Role, BuildError> {
    let (name, ns, owner) = parts(t)?;
    let leases: Vec<String> = (0..workers.max(0)).map(|i| format!("{name}-{i}")).collect();
    let mut rules = vec![
        // The worker lists and watches with `fieldSelector=metadata.name=NAME`, which
        // the server authorizes against `resourceNames`; a list of all is refused.
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![configmap_name(&name)]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        },
        // Server-side apply: patch, and create (authorized with the name) the first time.
        PolicyRule {
            api_groups: Some(vec!["coordination.k8s.io".into()]),
            resources: Some(vec!["leases".into()]),
            resource_names: Some(leases),
            verbs: vec!["get".into(), "create".into(), "patch".into()],
            ..PolicyRule::default()
        },
    ];
    // With mutual TLS, the Secret of the workers' certificates (watched like the
    // ConfigMap); never the CA's.
    if t.spec.tls_mode() == squall_model::TlsMode::Mutual {
        rules.push(PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["secrets".into()]),
            resource_names: Some(vec![crate::certs::worker_secret_name(&name)]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        });
    }
    Ok(Role {
        metadata: meta(worker_account_name(&name), ns, &owner, &name),
        rules: Some(rules),
    })
}

/// Binds the Role to the ServiceAccount.
pub fn role_binding(t: &Topology) -> Result<RoleBinding, BuildError> {
    let (name, ns, owner) = parts(t)?;
    Ok(RoleBinding {
        metadata: meta(worker_account_name(&name), ns.clone(), &owner, &name),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: worker_account_name(&name),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: worker_account_name(&name),
            namespace: ns,
            ..Subject::default()
        }]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn the_role_names_only_this_topologys_configmap_and_leases() {
        let yaml = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\n\
                    spec: {spouts: [{name: s, component: sequence}]}\n";
        let m = squall_model::TopologyManifest::from_yaml(yaml, "t").unwrap_or_else(|e| panic!("{e}"));
        let mut t = Topology::new("t", m.spec);
        t.meta_mut().namespace = Some("ns".into());
        t.meta_mut().uid = Some("u".into());
        let r = role(&t, 2).unwrap_or_else(|e| panic!("{e}"));
        let rules = r.rules.unwrap_or_default();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[2].resource_names, Some(vec!["t-worker-tls".to_owned()]));
        assert_eq!(rules[0].resource_names, Some(vec!["t-assignment".to_owned()]));
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
        assert_eq!(
            rules[1].resource_names,
            Some(vec!["t-0".to_owned(), "t-1".to_owned()])
        );
        // Every rule is narrowed to names: list and watch then only work for a request
        // selecting one of them (fieldSelector metadata.name), never for a whole namespace.
        assert!(rules
            .iter()
            .all(|r| r.resource_names.as_ref().is_some_and(|n| !n.is_empty())));
        assert!(rules.iter().all(|r| !r.verbs.iter().any(|v| v == "*")));
        let b = role_binding(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.role_ref.name, "t-worker");
        assert_eq!(b.subjects.unwrap_or_default()[0].name, "t-worker");
        let sa = service_account(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sa.metadata.owner_references.map(|o| o[0].uid.clone()),
            Some("u".to_owned())
        );
    }
}
