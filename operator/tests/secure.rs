//! Secure by default, on the real control plane (PodSecurity admission and RBAC are the
//! API server's own):
//!
//! - the chart installs into a namespace enforcing the `restricted` Pod Security Standard
//!   and its operator pod is admitted and runs; its ClusterRole and leader Role grant
//!   exactly `squall_operator::access::OPERATOR_ACCESS`, nothing missing, nothing extra;
//! - the operator, run with the chart's ServiceAccount token (so any call beyond those
//!   permissions is refused), runs two topologies in another restricted namespace: every
//!   worker pod is admitted and runs, and tuples are acked;
//! - the worker pod template is refused there when any one of its restricted settings
//!   is taken out;
//! - Secrets: no topology's workers may read another's or list them; the operator holds
//!   exactly the Secret verbs of its table;
//! - each topology's NetworkPolicy selects exactly its worker pods, admits to port 7000
//!   exactly those, and to port 9464 exactly the operator's pods and the Prometheus the
//!   chart names. The node agent does not enforce policies: the selectors are evaluated
//!   by the API server against the real pods' labels. Deleting the topology removes its
//!   policy;
//! - the UI REST API (token and access reviews, list, activate, deactivate, rebalance,
//!   kill) and the leader election work with the chart's ServiceAccount too; the API
//!   server's audit log shows every permission of the table requested, bar a listed few
//!   that each say why they are held.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use serde_json::json;
use squall_model::crd::Topology;
use squall_operator::access::{operator_triples, rule_triples, Scope};

mod support;

use support::*;

/// Where the chart goes.
const SYSTEM: &str = "squall-system";
/// Where the topologies go.
const APPS: &str = "apps";
/// The chart's release, hence its ServiceAccount, ClusterRole and Deployment.
const RELEASE: &str = "squall";

async fn restricted_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

fn helm_install(cluster: &TestCluster) -> Result<()> {
    let out = cluster
        .helm()
        .args(["install", RELEASE])
        .arg(repo().join("charts/squall-operator"))
        .args(["--namespace", SYSTEM])
        .args(["--set", "image.repository=squall/operator,image.tag=test"])
        .args(["--set", &format!("workerImage={WORKER_IMAGE}")])
        // One replica, reconciling only its own namespace: the topologies are run by the
        // operator of this test, under the chart's ServiceAccount.
        .args(["--set", &format!("replicas=1,watchNamespace={SYSTEM}")])
        .args(["--set", "networkPolicy.prometheus.enabled=true"])
        .output()?;
    ensure!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A pod that passes the restricted standard; its image is not on the node, so it never
/// runs: it only carries labels for the selectors to (not) match.
fn decoy(name: &str, labels: serde_json::Value) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "c",
                "image": "squall/decoy:none",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))?)
}

/// The operator's pods and the Prometheus the chart names, with look-alikes beside them.
async fn peers_and_decoys(cluster: &TestCluster, client: &Client) -> Result<()> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "monitoring"}}))?,
        )
        .await?;
    let pods = [
        (
            "monitoring",
            "prometheus-0",
            json!({"app.kubernetes.io/name": "prometheus"}),
        ),
        (
            "monitoring",
            "grafana-0",
            json!({"app.kubernetes.io/name": "grafana"}),
        ),
        (
            APPS,
            "prometheus-elsewhere",
            json!({"app.kubernetes.io/name": "prometheus"}),
        ),
        (
            SYSTEM,
            "another-operator",
            json!({"app.kubernetes.io/name": "squall-operator", "app.kubernetes.io/instance": "other"}),
        ),
        (
            APPS,
            "another-worker",
            json!({"app.kubernetes.io/name": "squall-worker", "squall.dev/topology": "nobody"}),
        ),
    ];
    for (ns, name, labels) in pods {
        let pod = decoy(name, labels)?;
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        // A new namespace's default ServiceAccount comes a moment after it.
        eventually(
            &format!("pod {ns}/{name}"),
            Duration::from_secs(20),
            cluster.dir(),
            || async { api.create(&PostParams::default(), &pod).await.ok() },
        )
        .await?;
    }
    Ok(())
}

async fn wait_operator_pod(cluster: &TestCluster, client: &Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM);
    eventually(
        "the chart's operator pod admitted, running and ready",
        Duration::from_secs(40),
        cluster.dir(),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=squall-operator"))
                .await
                .ok()?;
            let running = list.items.iter().filter(|p| {
                pod_ready(p) && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            });
            (running.count() == 1).then_some(())
        },
    )
    .await?;
    Ok(())
}

/// The chart's ClusterRole and leader Role, as installed, against the operator's table;
/// and no other binding gives its ServiceAccount anything.
async fn chart_grants_exactly_the_table(client: &Client) -> Result<()> {
    let cluster_role = Api::<ClusterRole>::all(client.clone()).get(RELEASE).await?;
    let leader = Api::<Role>::namespaced(client.clone(), SYSTEM)
        .get(&format!("{RELEASE}-leader"))
        .await?;
    let mut granted = rule_triples(Scope::Cluster, &cluster_role.rules.unwrap_or_default());
    granted.extend(rule_triples(
        Scope::OwnNamespace,
        &leader.rules.unwrap_or_default(),
    ));
    let wanted = operator_triples();
    let missing: Vec<_> = wanted.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&wanted).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "the chart's RBAC differs from operator/src/access.rs: missing {missing:?}, extra {extra:?}"
    );
    let ours = |subjects: Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.unwrap_or_default().iter().any(|s| {
            s.kind == "ServiceAccount" && s.name == RELEASE && s.namespace.as_deref() == Some(SYSTEM)
        })
    };
    let cluster_roles: Vec<String> = Api::<ClusterRoleBinding>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|b| ours(b.subjects.clone()))
        .map(|b| b.role_ref.name)
        .collect();
    ensure!(
        cluster_roles == [RELEASE],
        "cluster roles bound: {cluster_roles:?}"
    );
    let mut roles = Vec::new();
    for ns in [SYSTEM, APPS, "default", "monitoring"] {
        let bindings = Api::<RoleBinding>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await?;
        roles.extend(
            bindings
                .items
                .into_iter()
                .filter(|b| ours(b.subjects.clone()))
                .map(|b| format!("{ns}/{}", b.role_ref.name)),
        );
    }
    ensure!(
        roles == [format!("{SYSTEM}/{RELEASE}-leader")],
        "roles bound: {roles:?}"
    );
    Ok(())
}

/// A ServiceAccount, as the API server authenticates its tokens.
struct Who {
    user: String,
    groups: Vec<String>,
}

fn service_account(ns: &str, name: &str) -> Who {
    Who {
        user: format!("system:serviceaccount:{ns}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    }
}

/// Whether `who` may `verb` `resource` (`resource/subresource`) of `group`, in `ns`
/// (none: cluster-wide), on the object `name` (none: any), by a SubjectAccessReview.
async fn may(
    client: &Client,
    who: &Who,
    ns: Option<&str>,
    (group, resource, verb): (&str, &str, &str),
    name: Option<&str>,
) -> Result<bool> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(who.user.clone()),
            groups: Some(who.groups.clone()),
            resource_attributes: Some(ResourceAttributes {
                namespace: ns.map(Into::into),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                verb: Some(verb.into()),
                name: name.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The operator may do all of its table, where the table says, and the leader Lease's
/// `update` nowhere else; of Secrets exactly the verbs the table lists.
async fn operator_reviews(client: &Client) -> Result<()> {
    let operator = service_account(SYSTEM, RELEASE);
    let wanted = operator_triples();
    for (scope, group, resource, verb) in &wanted {
        let ns = match scope {
            Scope::Cluster => APPS,
            Scope::OwnNamespace => SYSTEM,
        };
        let ok = may(client, &operator, Some(ns), (group, resource, verb), None).await?;
        ensure!(ok, "the operator may not {verb} {group}/{resource} in {ns}");
    }
    let lease_update = ("coordination.k8s.io", "leases", "update");
    ensure!(
        !may(client, &operator, Some(APPS), lease_update, None).await?,
        "the operator may update Leases outside its namespace"
    );
    for verb in ["get", "list", "watch", "create", "update", "patch", "delete"] {
        let listed = wanted.contains(&(Scope::Cluster, String::new(), "secrets".into(), verb.into()));
        let ok = may(client, &operator, Some(APPS), ("", "secrets", verb), None).await?;
        ensure!(
            ok == listed,
            "the operator's {verb} on secrets: allowed {ok}, listed {listed}"
        );
    }
    Ok(())
}

/// No topology's workers read another topology's Secrets or list Secrets; each still
/// reads its own assignment (so the reviews ask about the right identity).
async fn worker_secret_reviews(client: &Client) -> Result<()> {
    for (me, them) in [("numbers", "other"), ("other", "numbers")] {
        let who = service_account(APPS, &format!("{me}-worker"));
        let own = format!("{me}-assignment");
        ensure!(
            may(client, &who, Some(APPS), ("", "configmaps", "get"), Some(&own)).await?,
            "{me}'s workers cannot read their own assignment"
        );
        for name in [
            format!("{them}-ca"),
            format!("{them}-worker-tls"),
            them.to_owned(),
        ] {
            for verb in ["get", "list", "watch"] {
                let ok = may(client, &who, Some(APPS), ("", "secrets", verb), Some(&name)).await?;
                ensure!(!ok, "{me}'s workers may {verb} Secret {name}");
            }
        }
        for verb in ["list", "watch"] {
            let ok = may(client, &who, Some(APPS), ("", "secrets", verb), None).await?;
            ensure!(!ok, "{me}'s workers may {verb} the namespace's Secrets");
        }
    }
    Ok(())
}

/// A token for the chart's ServiceAccount.
async fn chart_token(client: &Client) -> Result<String> {
    Ok(kube_testenv::rbac::token(client, SYSTEM, RELEASE).await?)
}

/// The workers' network settings exactly as the chart passes them to its operator.
async fn chart_network_settings(client: &Client) -> Result<squall_operator::resources::NetworkSettings> {
    let d = Api::<Deployment>::namespaced(client.clone(), SYSTEM)
        .get(RELEASE)
        .await?;
    let env = d
        .spec
        .template
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.env)
        .unwrap_or_default();
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    let labels = value("SQUALL_OPERATOR_POD_LABELS");
    ensure!(!labels.is_empty(), "the chart passes no operator pod labels");
    Ok(squall_operator::resources::NetworkSettings::parse(
        Some(SYSTEM.to_owned()),
        &labels,
        &value("SQUALL_METRICS_PEERS"),
    )?)
}

/// `k=v,k in (a,b),...`: a label selector as the API's `labelSelector` parameter.
fn selector_param(s: &LabelSelector) -> Result<String> {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => bail!("operator {other}"),
        });
    }
    Ok(parts.join(","))
}

/// The pods (`ns/name`) a NetworkPolicy peer admits, for a policy in `policy_ns`: the
/// API server evaluates both selectors against the real objects.
async fn peer_pods(client: &Client, policy_ns: &str, peer: &NetworkPolicyPeer) -> Result<BTreeSet<String>> {
    ensure!(peer.ip_block.is_none(), "an ipBlock peer: {peer:?}");
    let namespaces: Vec<String> = match &peer.namespace_selector {
        Some(s) => Api::<Namespace>::all(client.clone())
            .list(&ListParams::default().labels(&selector_param(s)?))
            .await?
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect(),
        None => vec![policy_ns.to_owned()],
    };
    let pods = selector_param(&peer.pod_selector.clone().unwrap_or_default())?;
    let mut out = BTreeSet::new();
    for ns in namespaces {
        let list = Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default().labels(&pods))
            .await?;
        out.extend(list.items.iter().map(|p| format!("{ns}/{}", p.name_any())));
    }
    Ok(out)
}

/// Pods (`ns/name`) in `ns` with a controller of `kind` whose name starts with `owner`.
async fn pods_owned(client: &Client, ns: &str, kind: &str, owner: &str) -> Result<BTreeSet<String>> {
    let list = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|o| o.kind == kind && o.name.starts_with(owner) && o.controller == Some(true))
        })
        .map(|p| format!("{ns}/{}", p.name_any()))
        .collect())
}

/// Topology `name`'s NetworkPolicy against the real pods.
async fn policy_selects_exactly(client: &Client, name: &str, uid: &str) -> Result<()> {
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), APPS)
        .get(&format!("{name}-workers"))
        .await?;
    ensure!(
        owned_by(&policy.metadata, uid),
        "policy not owned by the topology"
    );
    let spec = policy.spec.context("policy without spec")?;
    let workers = pods_owned(client, APPS, "StatefulSet", name).await?;
    ensure!(!workers.is_empty(), "no worker pods of {name}");
    let selected = peer_pods(
        client,
        APPS,
        &NetworkPolicyPeer {
            pod_selector: spec.pod_selector.clone(),
            namespace_selector: None,
            ip_block: None,
        },
    )
    .await?;
    ensure!(
        selected == workers,
        "the policy selects {selected:?}, the workers are {workers:?}"
    );
    ensure!(spec.policy_types == Some(vec!["Ingress".to_owned()]));
    let mut operators = pods_owned(client, SYSTEM, "ReplicaSet", RELEASE).await?;
    ensure!(operators.len() == 1, "operator pods {operators:?}");
    let intended_http = {
        operators.insert("monitoring/prometheus-0".to_owned());
        operators
    };
    let mut seen_ports = Vec::new();
    for rule in spec.ingress.unwrap_or_default() {
        let ports: Vec<_> = rule
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.port)
            .collect();
        let peers = rule.from.unwrap_or_default();
        ensure!(!peers.is_empty(), "a rule open to everyone on {ports:?}");
        let mut admitted = BTreeSet::new();
        for p in &peers {
            admitted.extend(peer_pods(client, APPS, p).await?);
        }
        match ports.as_slice() {
            [IntOrString::Int(7000)] => ensure!(admitted == workers, "port 7000 admits {admitted:?}"),
            [IntOrString::Int(9464)] => ensure!(admitted == intended_http, "port 9464 admits {admitted:?}"),
            other => bail!("unexpected ports {other:?}"),
        }
        seen_ports.extend(ports);
    }
    ensure!(seen_ports.len() == 2, "rules for {seen_ports:?}");
    Ok(())
}

/// The worker pod template is admitted (dry run) as it is, and refused with any one of
/// its restricted settings taken out.
async fn template_needs_every_setting(client: &Client) -> Result<()> {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), APPS)
        .get("numbers")
        .await?;
    let spec = sts.spec.template.spec.context("no pod spec")?;
    let c = &spec.containers[0];
    let sc = c
        .security_context
        .clone()
        .context("no container security context")?;
    ensure!(
        sc.read_only_root_filesystem == Some(true),
        "root filesystem writable"
    );
    ensure!(
        c.volume_mounts.iter().flatten().any(|m| m.mount_path == "/tmp"),
        "no writable /tmp"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let pod = |spec| Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("probe".into()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Pod::default()
    };
    pods.create(&dry, &pod(spec.clone()))
        .await
        .context("the worker pod template as it is")?;
    type Cut = fn(&mut k8s_openapi::api::core::v1::PodSpec);
    let cuts: [(&str, &str, Cut); 4] = [
        ("runAsNonRoot", "runAsNonRoot != true", |s| {
            if let Some(p) = s.security_context.as_mut() {
                p.run_as_non_root = None;
            }
            if let Some(c) = s.containers[0].security_context.as_mut() {
                c.run_as_non_root = None;
            }
        }),
        (
            "allowPrivilegeEscalation",
            "allowPrivilegeEscalation != false",
            |s| {
                if let Some(c) = s.containers[0].security_context.as_mut() {
                    c.allow_privilege_escalation = None;
                }
            },
        ),
        ("capabilities", "unrestricted capabilities", |s| {
            if let Some(c) = s.containers[0].security_context.as_mut() {
                c.capabilities = None;
            }
        }),
        ("seccompProfile", "seccompProfile", |s| {
            if let Some(p) = s.security_context.as_mut() {
                p.seccomp_profile = None;
            }
        }),
    ];
    for (setting, says, cut) in cuts {
        let mut s = spec.clone();
        cut(&mut s);
        match pods.create(&dry, &pod(s)).await {
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("violates PodSecurity") => {
                ensure!(e.message.contains(says), "without {setting}: {}", e.message);
            }
            other => bail!("without {setting} the pod was not refused: {other:?}"),
        }
    }
    Ok(())
}

/// One request to a UI: the whole answer, head and body.
async fn ui_call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: ui\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// The UI REST API and the leader election, run with the chart's ServiceAccount as the
/// controller is: each of their calls must be within the chart's grants. The UI reviews a
/// caller's token, lists, deactivates, activates, rebalances `other` and kills `numbers`.
async fn ui_and_election_under_the_chart(
    cluster: &TestCluster,
    client: &Client,
    operator_client: &Client,
) -> Result<()> {
    let mut elector = squall_operator::leader::Elector::new(
        operator_client.clone(),
        SYSTEM,
        "secure-test-leader",
        "secure-test",
        Duration::from_secs(10),
    );
    for round in ["acquire", "renew"] {
        ensure!(
            elector.try_acquire_or_renew().await?,
            "leader Lease: {round} failed"
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let settings = squall_operator::ui::Settings {
        period: Duration::from_secs(1),
        namespace: Some(APPS.to_owned()),
        ..squall_operator::ui::Settings::default()
    };
    let metrics = std::sync::Arc::new(squall_operator::metrics::Metrics::default());
    let ui = tokio::spawn(squall_operator::ui::serve(
        operator_client.clone(),
        settings,
        metrics,
        listener,
    ));
    let verbs = ["get", "list", "patch", "delete"];
    let actor =
        kube_testenv::rbac::account_token(client, APPS, "actor", (squall_model::GROUP, "topologies"), &verbs)
            .await?;
    let ok = |answer: String, what: &str| {
        ensure!(answer.starts_with("HTTP/1.1 200"), "{what}: {answer}");
        Ok(answer)
    };
    // The UI lists what its sampler has read: the first round may still be on its way.
    eventually(
        "the UI's summary",
        Duration::from_secs(15),
        cluster.dir(),
        || async {
            let answer = ui_call(addr, "GET", "/api/v1/topology/summary", &actor, "")
                .await
                .ok()?;
            (answer.starts_with("HTTP/1.1 200") && answer.contains("apps.other")).then_some(())
        },
    )
    .await?;
    for action in ["deactivate", "activate"] {
        let path = format!("/api/v1/topology/{APPS}.other/{action}");
        ok(ui_call(addr, "POST", &path, &actor, "").await?, action)?;
    }
    let body = r#"{"rebalanceOptions": {"executors": {"sink": 1}}}"#;
    let path = format!("/api/v1/topology/{APPS}.other/rebalance/0");
    ok(ui_call(addr, "POST", &path, &actor, body).await?, "rebalance")?;
    let topos: Api<Topology> = Api::namespaced(client.clone(), APPS);
    ensure!(
        topos.get("other").await?.spec.bolts[0].parallelism == 1,
        "not rebalanced"
    );
    let path = format!("/api/v1/topology/{APPS}.numbers/kill/1");
    ok(ui_call(addr, "POST", &path, &actor, "").await?, "kill")?;
    ui.abort();
    Ok(())
}

/// The API server's audit log of the chart ServiceAccount's requests (metadata only), in
/// a directory of its own that goes with it.
struct Audit {
    dir: PathBuf,
}

impl Audit {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("squall-secure-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let user = service_account(SYSTEM, RELEASE).user;
        std::fs::write(
            dir.join("policy.yaml"),
            format!(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
                 - level: Metadata\n  users: [\"{user}\"]\n- level: None\n"
            ),
        )?;
        Ok(Audit { dir })
    }

    fn apiserver_args(&self) -> Vec<String> {
        vec![
            format!("--audit-policy-file={}", self.dir.join("policy.yaml").display()),
            format!("--audit-log-path={}", self.dir.join("audit.log").display()),
        ]
    }

    /// Each (scope, group, resource, verb) requested, and the requests refused.
    fn requests(&self) -> Result<(BTreeSet<squall_operator::access::Triple>, Vec<String>)> {
        let text = std::fs::read_to_string(self.dir.join("audit.log"))?;
        let (mut used, mut refused) = (BTreeSet::new(), Vec::new());
        for line in text.lines() {
            let e: serde_json::Value = serde_json::from_str(line)?;
            let Some(obj) = e.get("objectRef") else { continue };
            let field =
                |v: &serde_json::Value, k: &str| v.get(k).and_then(|s| s.as_str()).unwrap_or("").to_owned();
            let mut resource = field(obj, "resource");
            let sub = field(obj, "subresource");
            if !sub.is_empty() {
                resource = format!("{resource}/{sub}");
            }
            let (group, verb) = (field(obj, "apiGroup"), field(&e, "verb"));
            let own = field(obj, "namespace") == SYSTEM && resource == "leases";
            let scope = if own { Scope::OwnNamespace } else { Scope::Cluster };
            if e.pointer("/responseStatus/code").and_then(|c| c.as_u64()) == Some(403) {
                refused.push(format!("{verb} {group}/{resource}"));
            }
            used.insert((scope, group, resource, verb));
        }
        Ok((used, refused))
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Permissions of the table this test does not see requested, and why each is held.
const NOT_SEEN: &[(&str, &str, &str, &str)] = &[
    (
        "apps",
        "statefulsets",
        "create",
        "a server-side apply that creates is authorized inside its patch",
    ),
    ("", "services", "create", "as above"),
    ("", "configmaps", "create", "as above"),
    ("", "serviceaccounts", "create", "as above"),
    ("rbac.authorization.k8s.io", "roles", "create", "as above"),
    ("rbac.authorization.k8s.io", "rolebindings", "create", "as above"),
    ("networking.k8s.io", "networkpolicies", "create", "as above"),
    ("", "secrets", "create", "as above"),
    (
        "",
        "secrets",
        "list",
        "held only to grant the workers their certificate Secret",
    ),
    ("", "secrets", "watch", "as above"),
    (
        "",
        "pods",
        "delete",
        "only for a worker whose Lease expired or node was lost",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "only when an Event repeats (a series)",
    ),
    (
        "squall.dev",
        "topologies/finalizers",
        "update",
        "checked inside children's writes where OwnerReferencesPermissionEnforcement is on",
    ),
    (
        "coordination.k8s.io",
        "leases",
        "get",
        "granted on to the workers (escalation check, passed when their Role was applied)",
    ),
    ("coordination.k8s.io", "leases", "create", "as above"),
    ("coordination.k8s.io", "leases", "patch", "as above"),
];

/// Every permission of the table was requested here, or is one of [`NOT_SEEN`]; nothing
/// beyond the table was requested, and nothing was refused.
fn table_is_used(audit: &Audit) -> Result<()> {
    let (used, refused) = audit.requests()?;
    ensure!(
        refused.is_empty(),
        "requests of the operator refused: {refused:?}"
    );
    let wanted = operator_triples();
    let beyond: Vec<_> = used.difference(&wanted).collect();
    ensure!(
        beyond.is_empty(),
        "the operator requested beyond its table: {beyond:?}"
    );
    let not_seen: BTreeSet<_> = NOT_SEEN
        .iter()
        .map(|(g, r, v, _)| (Scope::Cluster, (*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    let stale: Vec<_> = not_seen.difference(&wanted).collect();
    ensure!(
        stale.is_empty(),
        "NOT_SEEN names what the table does not hold: {stale:?}"
    );
    let unused: Vec<_> = wanted
        .difference(&used)
        .filter(|t| !not_seen.contains(*t))
        .collect();
    ensure!(unused.is_empty(), "held but never requested: {unused:?}");
    Ok(())
}

/// Every worker pod of the namespace admitted, running and ready.
async fn all_workers_run(cluster: &TestCluster, pods: &Api<Pod>, count: usize) -> Result<()> {
    eventually(
        "every worker pod running",
        Duration::from_secs(30),
        cluster.dir(),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=squall-worker"))
                .await
                .ok()?;
            let running = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running == count).then_some(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn restricted_namespaces_least_privilege_and_network_policies() -> Result<()> {
    bounded_for(Duration::from_secs(240), async {
        let audit = Audit::new()?;
        let cluster = TestCluster::start_with(kube_testenv::ClusterOptions {
            extra_apiserver_args: audit.apiserver_args(),
            ..kube_testenv::ClusterOptions::default()
        })
        .await?;
        let client = cluster.client();
        let _node = start_node_with_operator(&cluster).await?;
        restricted_namespace(&client, SYSTEM).await?;
        restricted_namespace(&client, APPS).await?;
        helm_install(&cluster)?;
        wait_operator_pod(&cluster, &client).await?;
        chart_grants_exactly_the_table(&client).await?;
        peers_and_decoys(&cluster, &client).await?;

        // The operator of this test acts with the chart's ServiceAccount only.
        let operator_client = client_with_token(&cluster, &chart_token(&client).await?).await?;
        let network = chart_network_settings(&client).await?;
        let operator = spawn_operator_in(&operator_client, APPS, (10, 2), network);
        let topos: Api<Topology> = Api::namespaced(client.clone(), APPS);
        let mut numbers = topology(PIPELINE)?;
        numbers.metadata.namespace = Some(APPS.into());
        let mut other = numbers.clone();
        other.metadata.name = Some("other".into());
        other.spec.workers = 1;
        // The CRD came with the chart; the API may need a moment to serve it.
        eventually(
            "topologies created",
            Duration::from_secs(20),
            cluster.dir(),
            || async { topos.create(&PostParams::default(), &numbers).await.ok() },
        )
        .await?;
        topos.create(&PostParams::default(), &other).await?;
        let numbers = wait_running(&cluster, &topos, "numbers", Duration::from_secs(60)).await?;
        let other = wait_running(&cluster, &topos, "other", Duration::from_secs(30)).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
        all_workers_run(&cluster, &pods, 3).await?;
        wait_acked_beyond(&cluster, &pods, 0).await?;

        template_needs_every_setting(&client).await?;
        operator_reviews(&client).await?;
        worker_secret_reviews(&client).await?;
        for t in [&numbers, &other] {
            let uid = t.metadata.uid.clone().context("no uid")?;
            policy_selects_exactly(&client, &t.name_any(), &uid).await?;
        }

        // The kill (through the UI) removes the policy with the rest.
        ui_and_election_under_the_chart(&cluster, &client, &operator_client).await?;
        let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), APPS);
        eventually(
            "the topology and its policy gone",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let gone = topos.get_opt("numbers").await.ok()?.is_none()
                    && policies.get_opt("numbers-workers").await.ok()?.is_none();
                gone.then_some(())
            },
        )
        .await?;
        ensure!(
            policies.get_opt("other-workers").await?.is_some(),
            "the other topology's policy went too"
        );
        ensure!(!operator.is_finished(), "the operator stopped: {operator:?}");
        operator.abort();
        table_is_used(&audit)?;
        Ok(())
    })
    .await
}
