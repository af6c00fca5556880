//! Every Kubernetes permission the operator holds, with the reason it needs it.
//!
//! The chart's ClusterRole and leader Role must grant exactly these: `tests/secure.rs`
//! compares them with what helm installs on a real API server, both ways, runs the
//! operator under them (an API call missing here fails there with 403), and checks in the
//! API server's audit log that each permission here is requested or says why not.
//! The workers' Role (`rbac.rs`) may only grant what is here too: Kubernetes lets a
//! subject grant only permissions it holds (`the_workers_role_needs_nothing_beyond_the_table`).

/// Where a permission applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every namespace (the chart's ClusterRole).
    Cluster,
    /// The operator's own namespace only (the chart's leader Role).
    OwnNamespace,
}

/// Verbs on one resource.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource, or `resource/subresource`.
    pub resource: &'static str,
    /// The verbs.
    pub verbs: &'static [&'static str],
    /// Where.
    pub scope: Scope,
    /// What in the operator uses them.
    pub why: &'static str,
}

const fn cluster(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    why: &'static str,
) -> Access {
    Access {
        group,
        resource,
        verbs,
        scope: Scope::Cluster,
        why,
    }
}

/// The operator's permissions. Server-side apply needs `patch`, and `create` the first
/// time it creates an object.
pub const OPERATOR_ACCESS: &[Access] = &[
    cluster(
        "squall.dev",
        "topologies",
        &["get", "list", "watch", "patch", "delete"],
        "the controller watches; the finalizer helper patches; the autoscaler patches \
         parallelism and workers; the UI reads, patches \
         (activate, deactivate, rebalance) and deletes (kill) after the caller's own review",
    ),
    cluster(
        "squall.dev",
        "topologies/status",
        &["patch"],
        "status by server-side apply",
    ),
    cluster(
        "squall.dev",
        "topologies/finalizers",
        &["update"],
        "owner references with blockOwnerDeletion, where OwnerReferencesPermissionEnforcement is on",
    ),
    cluster(
        "apps",
        "statefulsets",
        &["list", "watch", "create", "patch", "delete"],
        "the worker StatefulSet: applied, watched as owned, deleted by the kill",
    ),
    cluster(
        "",
        "services",
        &["create", "patch", "delete"],
        "the headless worker Service: applied, deleted by the kill",
    ),
    cluster(
        "",
        "configmaps",
        &["get", "list", "watch", "create", "patch", "delete"],
        "the assignment ConfigMap: read, applied, watched as owned, deleted by the kill; \
         get, list and watch are also granted to the workers",
    ),
    cluster(
        "",
        "pods",
        &["list", "watch", "delete"],
        "worker pods observed, and deleted when their Lease expires or node is lost",
    ),
    cluster(
        "",
        "nodes",
        &["get"],
        "a worker on a node that is not Ready is replaced",
    ),
    cluster(
        "coordination.k8s.io",
        "leases",
        &["list", "get", "create", "patch"],
        "worker Leases listed to find hung workers; get, create and patch only because \
         the workers' Role grants them",
    ),
    cluster(
        "",
        "serviceaccounts",
        &["create", "patch", "delete"],
        "each topology's worker ServiceAccount",
    ),
    cluster(
        "rbac.authorization.k8s.io",
        "roles",
        &["create", "patch", "delete"],
        "each topology's worker Role",
    ),
    cluster(
        "rbac.authorization.k8s.io",
        "rolebindings",
        &["create", "patch", "delete"],
        "each topology's worker RoleBinding",
    ),
    cluster(
        "",
        "secrets",
        &["get", "list", "watch", "create", "patch"],
        "each topology's CA and worker certificates: read, applied; list and watch only \
         because the workers are granted them on their own certificate Secret",
    ),
    cluster(
        "networking.k8s.io",
        "networkpolicies",
        &["create", "patch", "delete"],
        "each topology's NetworkPolicy",
    ),
    cluster(
        "authentication.k8s.io",
        "tokenreviews",
        &["create"],
        "the UI identifies each caller's bearer token",
    ),
    cluster(
        "authorization.k8s.io",
        "subjectaccessreviews",
        &["create"],
        "the UI asks whether the caller may do what it asks",
    ),
    cluster(
        "events.k8s.io",
        "events",
        &["create", "patch"],
        "Events, and their series",
    ),
    Access {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        scope: Scope::OwnNamespace,
        why: "the leader Lease: read, created once, then replaced with its resourceVersion",
    },
];

/// One permission: (scope, group, resource, verb).
pub type Triple = (Scope, String, String, String);

/// [`OPERATOR_ACCESS`] as one entry per verb.
pub fn operator_triples() -> std::collections::BTreeSet<Triple> {
    OPERATOR_ACCESS
        .iter()
        .flat_map(|a| {
            a.verbs.iter().map(|v| {
                (
                    a.scope,
                    a.group.to_owned(),
                    a.resource.to_owned(),
                    (*v).to_owned(),
                )
            })
        })
        .collect()
}

/// What RBAC rules grant, one entry per (group, resource, verb), in `scope`. Rules
/// narrowed by `resourceNames` count as granting the verb (they grant a part of it).
pub fn rule_triples(
    scope: Scope,
    rules: &[k8s_openapi::api::rbac::v1::PolicyRule],
) -> std::collections::BTreeSet<Triple> {
    let mut out = std::collections::BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    out.insert((scope, g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use squall_model::crd::Topology;

    #[test]
    fn the_workers_role_needs_nothing_beyond_the_table() {
        let yaml = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\n\
                    spec: {spouts: [{name: s, component: sequence}]}\n";
        let m = squall_model::TopologyManifest::from_yaml(yaml, "t").unwrap_or_else(|e| panic!("{e}"));
        let mut t = Topology::new("t", m.spec);
        t.meta_mut().namespace = Some("ns".into());
        t.meta_mut().uid = Some("u".into());
        let role = crate::rbac::role(&t, 3).unwrap_or_else(|e| panic!("{e}"));
        let granted = rule_triples(Scope::Cluster, &role.rules.unwrap_or_default());
        assert!(!granted.is_empty());
        let held = operator_triples();
        let missing: Vec<_> = granted.difference(&held).collect();
        assert!(
            missing.is_empty(),
            "the workers' Role grants what the operator does not hold: {missing:?}"
        );
    }

    #[test]
    fn no_wildcards() {
        for a in OPERATOR_ACCESS {
            assert!(
                !a.verbs.contains(&"*") && a.resource != "*" && a.group != "*",
                "{a:?}"
            );
        }
    }
}
