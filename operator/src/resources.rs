//! The child objects of a Topology, built from its spec.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use squall_control::{ASSIGNMENT_KEY, MANIFEST_KEY};
use squall_model::crd::Topology;

use crate::change::CurrentAssignment;
use crate::{DATA_PORT, HTTP_PORT, TOPOLOGY_LABEL};

/// Names of a topology's children.
pub fn service_name(topology: &str) -> String {
    format!("{topology}-workers")
}

/// The ServiceAccount (and Role, RoleBinding) of a topology's workers.
pub fn worker_account_name(topology: &str) -> String {
    format!("{topology}-worker")
}

/// The topology's NetworkPolicy.
pub fn network_policy_name(topology: &str) -> String {
    format!("{topology}-workers")
}

/// The ConfigMap carrying the assignment and manifest.
pub fn configmap_name(topology: &str) -> String {
    format!("{topology}-assignment")
}

/// Labels that select a topology's worker pods.
pub fn selector_labels(topology: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TOPOLOGY_LABEL.to_owned(), topology.to_owned()),
        ("app.kubernetes.io/name".to_owned(), "squall-worker".to_owned()),
    ])
}

/// `squall.dev/topology=NAME,...` for the scale subresource and pod lists.
pub fn selector_string(topology: &str) -> String {
    selector_labels(topology)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn meta(name: String, ns: Option<String>, owner: &OwnerReference, topology: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: ns,
        labels: Some(selector_labels(topology)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// Why children could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The topology has no name or uid yet.
    #[error("topology has no name or uid")]
    Unnamed,
    /// A free-form pod setting does not fit its Kubernetes type.
    #[error("spec.pod.{field}: {message}")]
    PodSetting {
        /// Which setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn owner(t: &Topology) -> Result<OwnerReference, BuildError> {
    use kube::Resource;
    t.controller_owner_ref(&()).ok_or(BuildError::Unnamed)
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// The headless Service through which workers are discovered.
pub fn service(t: &Topology) -> Result<Service, BuildError> {
    let name = t.metadata.name.clone().ok_or(BuildError::Unnamed)?;
    let port = |n: &str, p: i32| ServicePort {
        name: Some(n.to_owned()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        ..ServicePort::default()
    };
    Ok(Service {
        metadata: meta(
            service_name(&name),
            t.metadata.namespace.clone(),
            &owner(t)?,
            &name,
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![port("grpc", DATA_PORT), port("http", HTTP_PORT)]),
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The ConfigMap with the assignment and manifest.
pub fn configmap(t: &Topology, a: &CurrentAssignment) -> Result<ConfigMap, serde_yaml_ng::Error> {
    let name = t.metadata.name.clone().unwrap_or_default();
    let owner = t.controller_owner_ref(&());
    let mut m = meta(
        configmap_name(&name),
        t.metadata.namespace.clone(),
        &OwnerReference::default(),
        &name,
    );
    m.owner_references = owner.map(|o| vec![o]);
    Ok(ConfigMap {
        metadata: m,
        data: Some(BTreeMap::from([
            (
                ASSIGNMENT_KEY.to_owned(),
                serde_yaml_ng::to_string(&a.assignment)?,
            ),
            (MANIFEST_KEY.to_owned(), a.manifest.to_yaml()?),
        ])),
        ..ConfigMap::default()
    })
}

use kube::Resource as _;

fn from_value<T: serde::de::DeserializeOwned>(
    field: &'static str,
    v: serde_json::Value,
) -> Result<T, BuildError> {
    serde_json::from_value(v).map_err(|e| BuildError::PodSetting {
        field,
        message: e.to_string(),
    })
}

/// `prometheus.io/*` annotations on worker pods, for Prometheus configurations that find
/// pods by them (the chart's PodMonitor and ServiceMonitor need none).
pub fn scrape_annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), HTTP_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ])
}

/// What the operator's configuration gives every worker pod.
#[derive(Clone, Debug)]
pub struct WorkerDefaults {
    /// Image when the topology names none.
    pub image: String,
    /// Image when the topology names none and has `shell` components: the worker with
    /// Python, pystorm and streamparse. `image` when unset.
    pub python_image: Option<String>,
    /// Lease duration, seconds.
    pub lease_duration_seconds: u64,
    /// Lease renewal period, seconds.
    pub lease_renew_seconds: u64,
    /// What a spec may ask for: the operator validates with these, and its workers load
    /// the manifest with the same (`SQUALL_LIMITS`), so raising one raises both.
    pub limits: squall_model::Limits,
    /// Who may reach the workers' HTTP port besides each other's data port.
    pub network: NetworkSettings,
    /// Validity of the workers' link certificates (renewed with a third left).
    pub cert_validity: std::time::Duration,
    /// How long a replaced topology CA stays trusted after its successor re-issued the
    /// workers' certificates.
    pub ca_overlap: std::time::Duration,
}

/// The peers a topology's NetworkPolicy lets reach the workers' HTTP port (9464).
#[derive(Clone, Debug, Default)]
pub struct NetworkSettings {
    /// The operator's own namespace (its pods probe `/status` and read `/metrics`).
    pub operator_namespace: Option<String>,
    /// Labels of the operator's pods; none: no operator pod is let in (an operator run
    /// outside the cluster).
    pub operator_labels: BTreeMap<String, String>,
    /// Scrapers (Prometheus), as NetworkPolicy peers.
    pub metrics_peers: Vec<NetworkPolicyPeer>,
}

/// Why network settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetworkSettingsError {
    /// A label is not `key=value`.
    #[error("operator pod labels: {0:?} is not key=value")]
    Label(String),
    /// The peers are not a JSON list of NetworkPolicy peers.
    #[error("metrics peers: {0}")]
    Peers(#[from] serde_json::Error),
}

impl NetworkSettings {
    /// From the operator's settings: `operator_labels` as `k=v,k=v`, `metrics_peers` as a
    /// JSON list of NetworkPolicy peers (empty: none).
    pub fn parse(
        operator_namespace: Option<String>,
        operator_labels: &str,
        metrics_peers: &str,
    ) -> Result<Self, NetworkSettingsError> {
        let labels = operator_labels
            .split(',')
            .map(str::trim)
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => Err(NetworkSettingsError::Label(kv.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        let peers = if metrics_peers.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(metrics_peers)?
        };
        Ok(NetworkSettings {
            operator_namespace,
            operator_labels: labels,
            metrics_peers: peers,
        })
    }
}

/// Ingress to a topology's worker pods: the data port from its own workers only, the HTTP
/// port from the operator's pods and the configured scrapers only. Egress is not limited.
/// A rule with no peers would let everyone in, so the HTTP rule is left out when there
/// are none: then nothing reaches that port through the policy.
pub fn network_policy(t: &Topology, net: &NetworkSettings) -> Result<NetworkPolicy, BuildError> {
    let name = t.metadata.name.clone().ok_or(BuildError::Unnamed)?;
    let workers = || LabelSelector {
        match_labels: Some(selector_labels(&name)),
        ..LabelSelector::default()
    };
    let port = |p: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    };
    let mut http_peers = Vec::new();
    if !net.operator_labels.is_empty() {
        http_peers.push(NetworkPolicyPeer {
            // No namespace selector would mean the topology's own namespace.
            namespace_selector: net.operator_namespace.as_ref().map(|ns| LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    ns.clone(),
                )])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(net.operator_labels.clone()),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    http_peers.extend(net.metrics_peers.iter().cloned());
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(workers()),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port(DATA_PORT)]),
    }];
    if !http_peers.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(http_peers),
            ports: Some(vec![port(HTTP_PORT)]),
        });
    }
    Ok(NetworkPolicy {
        metadata: meta(
            network_policy_name(&name),
            t.metadata.namespace.clone(),
            &owner(t)?,
            &name,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(workers()),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    })
}

/// The `restricted` Pod Security Standard for the worker pods: not root, no privilege
/// escalation, no capabilities, the runtime's default seccomp profile; and a read-only
/// root filesystem (the worker writes only under /tmp, an emptyDir). The user is fixed so
/// that images naming their user by name (which the kubelet cannot check) still start.
const WORKER_UID: i64 = 65532;

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(WORKER_UID),
        run_as_group: Some(WORKER_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// Default validity of a worker's link certificate.
pub const DEFAULT_CERT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Default time a replaced topology CA stays trusted beside its successor.
pub const DEFAULT_CA_OVERLAP: std::time::Duration = std::time::Duration::from_secs(600);

/// The mutual TLS settings of the worker container: the Secret its certificate comes
/// from and where the worker keeps the files (in its writable `/tmp`, per pod uid since
/// the test node agent's pods share the host's `/tmp`).
fn tls_env(t: &Topology, name: &str) -> Vec<EnvVar> {
    match t.spec.tls_mode() {
        squall_model::TlsMode::Mutual => vec![
            env("SQUALL_TLS_SECRET", &crate::certs::worker_secret_name(name)),
            env("SQUALL_TLS_DIR", "/tmp/squall-$(POD_UID)/tls"),
        ],
        squall_model::TlsMode::Disabled => Vec::new(),
    }
}

fn uses_shell(spec: &squall_model::TopologySpec) -> bool {
    spec.spouts.iter().chain(&spec.bolts).any(|c| c.shell.is_some())
}

/// The StatefulSet of worker pods.
///
/// `replicas` is `spec.workers` except while a scale-down drains: the workers leaving still
/// run the old plan's tasks until the new one is written.
pub fn statefulset(
    t: &Topology,
    defaults: &WorkerDefaults,
    replicas: i32,
) -> Result<StatefulSet, BuildError> {
    let default_image = match &defaults.python_image {
        Some(python) if uses_shell(&t.spec) => python.as_str(),
        _ => defaults.image.as_str(),
    };
    let name = t.metadata.name.clone().ok_or(BuildError::Unnamed)?;
    let pod = t.spec.pod.clone().unwrap_or_default();
    let mut labels = pod.labels.clone();
    labels.extend(selector_labels(&name));
    let resources: Option<ResourceRequirements> = pod
        .resources
        .map(|r| from_value("resources", serde_json::Value::Object(r)))
        .transpose()?;
    let tolerations: Vec<Toleration> = pod
        .tolerations
        .into_iter()
        .map(|v| from_value("tolerations", serde_json::Value::Object(v)))
        .collect::<Result<_, _>>()?;
    let container = Container {
        name: "worker".to_owned(),
        image: Some(pod.image.clone().unwrap_or_else(|| default_image.to_owned())),
        image_pull_policy: pod.image_pull_policy.clone(),
        env: Some(
            vec![
                field_env("POD_NAME", "metadata.name"),
                field_env("POD_NAMESPACE", "metadata.namespace"),
                field_env("POD_IP", "status.podIP"),
                field_env("POD_UID", "metadata.uid"),
                env("SQUALL_WORKER_ID", "$(POD_NAME)"),
                env("SQUALL_NAMESPACE", "$(POD_NAMESPACE)"),
                env("SQUALL_ASSIGNMENT_CONFIGMAP", &configmap_name(&name)),
                // Per pod uid: on the test node agent pods share the host's /tmp.
                env("SQUALL_ASSIGNMENT", "/tmp/squall-$(POD_UID)/assignment.yaml"),
                // The pod's own address, not the one in the assignment: a pod replaced
                // on another node starts before the assignment names its new address,
                // and would otherwise listen on its predecessor's.
                env("SQUALL_LISTEN", &format!("$(POD_IP):{DATA_PORT}")),
                env("SQUALL_HTTP", &format!("$(POD_IP):{HTTP_PORT}")),
                // The Lease is named after the pod: topology and worker ordinal.
                env("SQUALL_LEASE", "$(POD_NAME)"),
                env("SQUALL_LEASE_LABELS", &format!("{TOPOLOGY_LABEL}={name}")),
                env(
                    "SQUALL_LEASE_DURATION_SECONDS",
                    &defaults.lease_duration_seconds.to_string(),
                ),
                env(
                    "SQUALL_LEASE_RENEW_SECONDS",
                    &defaults.lease_renew_seconds.to_string(),
                ),
                env("SQUALL_LIMITS", &defaults.limits.to_list()),
            ]
            .into_iter()
            .chain(tls_env(t, &name))
            .collect(),
        ),
        ports: Some(vec![
            ContainerPort {
                name: Some("grpc".to_owned()),
                container_port: DATA_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: HTTP_PORT,
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/readyz".to_owned()),
                port: IntOrString::Int(HTTP_PORT),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(1),
            ..Probe::default()
        }),
        resources,
        security_context: Some(container_security()),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let grace = t.spec.message_timeout_seconds.saturating_add(5);
    Ok(StatefulSet {
        metadata: meta(name.clone(), t.metadata.namespace.clone(), &owner(t)?, &name),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(service_name(&name)),
            // Workers need no start order; replacing one must not wait for the others.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(scrape_annotations()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    node_selector: (!pod.node_selector.is_empty()).then_some(pod.node_selector),
                    tolerations: (!tolerations.is_empty()).then_some(tolerations),
                    // The topology's own account (see rbac.rs) unless the spec names one.
                    service_account_name: Some(
                        pod.service_account_name
                            .unwrap_or_else(|| worker_account_name(&name)),
                    ),
                    termination_grace_period_seconds: Some(grace),
                    security_context: Some(pod_security()),
                    volumes: Some(vec![Volume {
                        name: "tmp".to_owned(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn worker_pods_carry_scrape_annotations_and_the_spec_s_labels() {
        let yaml = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: wc, namespace: ns, uid: u1}
spec:
  pod: {labels: {team: a}}
  spouts: [{name: s, component: sequence}]
"#;
        let t: Topology = serde_yaml_ng::from_str(yaml).unwrap();
        let defaults = WorkerDefaults {
            image: "w".into(),
            python_image: None,
            lease_duration_seconds: 10,
            lease_renew_seconds: 2,
            limits: squall_model::Limits::default(),
            network: NetworkSettings::default(),
            cert_validity: DEFAULT_CERT_VALIDITY,
            ca_overlap: DEFAULT_CA_OVERLAP,
        };
        let s = statefulset(&t, &defaults, 2).unwrap();
        let meta = s.spec.template.metadata.unwrap();
        let a = meta.annotations.unwrap();
        assert_eq!(a["prometheus.io/scrape"], "true");
        assert_eq!(a["prometheus.io/port"], "9464");
        assert_eq!(a["prometheus.io/path"], "/metrics");
        let labels = meta.labels.unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[TOPOLOGY_LABEL], "wc");
        let env = |s: &StatefulSet| {
            let c = &s.spec.template.spec.as_ref().unwrap().containers[0];
            c.env
                .clone()
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.value))
                .collect::<BTreeMap<_, _>>()
        };
        let s = statefulset(&t, &defaults, 2).unwrap();
        assert_eq!(env(&s)["SQUALL_TLS_SECRET"].as_deref(), Some("wc-worker-tls"));
        assert_eq!(env(&s)["SQUALL_LISTEN"].as_deref(), Some("$(POD_IP):7000"));
        assert_eq!(env(&s)["SQUALL_HTTP"].as_deref(), Some("$(POD_IP):9464"));
        let mut off = t.clone();
        off.spec.tls = Some(squall_model::TlsSettings {
            mode: squall_model::TlsMode::Disabled,
        });
        assert!(!env(&statefulset(&off, &defaults, 2).unwrap()).contains_key("SQUALL_TLS_SECRET"));
    }

    #[test]
    fn the_policy_lets_workers_reach_port_7000_and_the_operator_and_scrapers_port_9464() {
        let yaml = "apiVersion: squall.dev/v1alpha1\nkind: Topology\n\
                    metadata: {name: wc, namespace: ns, uid: u1}\n\
                    spec: {spouts: [{name: s, component: sequence}]}\n";
        let t: Topology = serde_yaml_ng::from_str(yaml).unwrap();
        let net = NetworkSettings::parse(
            Some("ops".into()),
            "app.kubernetes.io/name=squall-operator, app.kubernetes.io/instance=squall",
            r#"[{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]"#,
        )
        .unwrap();
        let p = network_policy(&t, &net).unwrap();
        let spec = p.spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_labels,
            Some(selector_labels("wc"))
        );
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 2);
        let data = &rules[0];
        assert_eq!(data.ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(7000)));
        let peers = data.from.as_ref().unwrap();
        assert_eq!(peers.len(), 1);
        assert!(peers[0].namespace_selector.is_none(), "same namespace only");
        let http = &rules[1];
        assert_eq!(http.ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(9464)));
        let peers = http.from.as_ref().unwrap();
        assert_eq!(peers.len(), 2);
        let ns = peers[0].namespace_selector.as_ref().unwrap();
        assert_eq!(
            ns.match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
            "ops"
        );
        let pods = peers[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(pods["app.kubernetes.io/instance"], "squall");
        assert!(peers[1].namespace_selector.is_some());
        // No peers at all: the HTTP rule is left out, as an empty `from` admits everyone.
        let closed = network_policy(&t, &NetworkSettings::default()).unwrap();
        assert_eq!(closed.spec.unwrap().ingress.unwrap().len(), 1);
        assert!(NetworkSettings::parse(None, "novalue", "").is_err());
        assert!(NetworkSettings::parse(None, "", "{").is_err());
    }

    #[test]
    fn shell_topologies_get_the_python_image_unless_they_name_one() {
        let topo = |pod: &str| -> Topology {
            serde_yaml_ng::from_str(&format!(
                "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {{name: p, namespace: ns, uid: u1}}\nspec:\n  {pod}\n  spouts: [{{name: s, component: shell, shell: {{command: streamparse_run, args: [m.S]}}, outputs: [{{fields: [x]}}]}}]\n"
            ))
            .unwrap()
        };
        let mut defaults = WorkerDefaults {
            image: "squall/worker".into(),
            python_image: Some("squall/worker-python".into()),
            lease_duration_seconds: 10,
            lease_renew_seconds: 2,
            limits: squall_model::Limits::default(),
            network: NetworkSettings::default(),
            cert_validity: DEFAULT_CERT_VALIDITY,
            ca_overlap: DEFAULT_CA_OVERLAP,
        };
        let image = |t: &Topology, d: &WorkerDefaults| {
            let s = statefulset(t, d, 1).unwrap();
            s.spec.template.spec.unwrap().containers[0].image.clone().unwrap()
        };
        assert_eq!(image(&topo("pod: {}"), &defaults), "squall/worker-python");
        assert_eq!(image(&topo("pod: {image: my/app:1}"), &defaults), "my/app:1");
        defaults.python_image = None;
        assert_eq!(image(&topo("pod: {}"), &defaults), "squall/worker");
    }
}
