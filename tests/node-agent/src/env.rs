//! Container environment: literal values, downward-API fields, ConfigMap and
//! Secret keys, and kubelet-style `$(VAR)` expansion.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

use crate::{Error, Result};

/// Values of downward-API fields known to the agent for one pod.
pub struct PodFields<'a> {
    pub pod: &'a Pod,
    pub pod_ip: String,
    pub host_ip: String,
}

impl PodFields<'_> {
    fn field(&self, path: &str) -> Option<String> {
        let meta = &self.pod.metadata;
        let spec = self.pod.spec.as_ref();
        let label_or_annotation = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
            let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
            Some(map.as_ref()?.get(key).cloned().unwrap_or_default())
        };
        match path {
            "metadata.name" => meta.name.clone(),
            "metadata.namespace" => meta.namespace.clone(),
            "metadata.uid" => meta.uid.clone(),
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
            "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
            "status.podIP" | "status.podIPs" => Some(self.pod_ip.clone()),
            "status.hostIP" | "status.hostIPs" => Some(self.host_ip.clone()),
            _ => label_or_annotation("metadata.labels['", &meta.labels)
                .or_else(|| label_or_annotation("metadata.annotations['", &meta.annotations)),
        }
    }
}

/// Resolves the environment of `container` in declaration order, so later
/// entries can refer to earlier ones with `$(NAME)`.
pub async fn resolve(
    client: &Client,
    fields: &PodFields<'_>,
    container: &Container,
) -> Result<Vec<(String, String)>> {
    let ns = fields.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        let value = if let Some(v) = &var.value {
            expand(v, &out)
        } else if let Some(src) = &var.value_from {
            if let Some(f) = &src.field_ref {
                fields.field(&f.field_path).ok_or_else(|| Error::Env {
                    name: var.name.clone(),
                    reason: format!("unsupported fieldRef {:?}", f.field_path),
                })?
            } else if let Some(r) = &src.config_map_key_ref {
                let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get_opt(&r.name)
                    .await?;
                match cm.and_then(|c| c.data).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(Error::Env {
                            name: var.name.clone(),
                            reason: format!("configmap {}/{} key {} not found", ns, r.name, r.key),
                        })
                    }
                }
            } else if let Some(r) = &src.secret_key_ref {
                let s = Api::<Secret>::namespaced(client.clone(), ns)
                    .get_opt(&r.name)
                    .await?;
                match s.and_then(|s| s.data).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(Error::Env {
                            name: var.name.clone(),
                            reason: format!("secret {}/{} key {} not found", ns, r.name, r.key),
                        })
                    }
                }
            } else {
                return Err(Error::Env {
                    name: var.name.clone(),
                    reason: "unsupported valueFrom source".into(),
                });
            }
        } else {
            String::new()
        };
        out.retain(|(k, _)| k != &var.name);
        out.push((var.name.clone(), value));
    }
    Ok(out)
}

/// Kubelet's `$(VAR)` expansion: known names are replaced, `$$` escapes a
/// `$`, and unknown references are left as they are.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// On a real node each pod has its own network namespace, so a wildcard bind
/// (`0.0.0.0:PORT`, `[::]:PORT`) reaches that pod alone. Here every pod shares
/// the host's, and two replicas binding the same wildcard port would clash; the
/// pod's own address is what the wildcard means inside a pod.
pub fn narrow_wildcard(value: &str, pod_ip: &str) -> String {
    for wildcard in ["0.0.0.0:", "[::]:"] {
        if let Some(port) = value.strip_prefix(wildcard) {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                return format!("{pod_ip}:{port}");
            }
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubelet_rules() {
        let env = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "x".to_string()),
        ];
        assert_eq!(expand("$(A)-$(B)", &env), "1-x");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(C) $A $(A", &env), "$(C) $A $(A");
        assert_eq!(expand("plain", &env), "plain");
    }

    #[test]
    fn downward_api_fields() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let f = PodFields {
            pod: &pod,
            pod_ip: "127.0.1.1".into(),
            host_ip: "127.0.0.1".into(),
        };
        assert_eq!(f.field("metadata.name").as_deref(), Some("p"));
        assert_eq!(f.field("metadata.namespace").as_deref(), Some("ns"));
        assert_eq!(f.field("status.podIP").as_deref(), Some("127.0.1.1"));
        assert_eq!(f.field("metadata.labels['app']").as_deref(), Some("web"));
        assert_eq!(f.field("metadata.labels['nope']").as_deref(), Some(""));
        assert_eq!(f.field("bogus"), None);
    }

    #[test]
    fn a_wildcard_bind_becomes_the_pod_address_and_nothing_else_changes() {
        assert_eq!(narrow_wildcard("0.0.0.0:8081", "127.1.2.3"), "127.1.2.3:8081");
        assert_eq!(narrow_wildcard("[::]:9464", "127.1.2.3"), "127.1.2.3:9464");
        for same in [
            "0.0.0.0",
            "0.0.0.0:http",
            "x0.0.0.0:1",
            "10.0.0.0:80",
            "--flag=0.0.0.0:1",
        ] {
            assert_eq!(narrow_wildcard(same, "127.1.2.3"), same);
        }
    }
}
