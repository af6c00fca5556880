//! Node registration and heartbeats (node status plus a Lease in
//! kube-node-lease), which the node lifecycle controller watches.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::Result;

pub const HOST_IP: &str = "127.0.0.1";
const LEASE_NS: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
const MANAGER: &str = "squall-node-agent";

/// Creates the Node if needed and reports it Ready. Returns its uid.
/// `log_port` is the agent's containerLogs endpoint, reported as the kubelet's.
pub async fn register(
    client: &Client,
    name: &str,
    labels: &BTreeMap<String, String>,
    log_port: u16,
) -> Result<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut all_labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), go_arch().to_string()),
        ("squall.dev/node-agent".to_string(), "true".to_string()),
    ]);
    all_labels.extend(labels.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(all_labels.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let uid = match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => n.metadata.uid,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Re-registration (agent restarted): refresh labels, keep the object.
            let patched = nodes
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": all_labels}})),
                )
                .await?;
            patched.metadata.uid
        }
        Err(e) => return Err(e.into()),
    };
    let now = Timestamp::now();
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Strategic(full_status(now, log_port)),
        )
        .await?;
    heartbeat(client, name, uid.as_deref(), log_port).await?;
    Ok(uid.unwrap_or_default())
}

/// Architecture in Go's naming, as Kubernetes labels and node info use it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, now: Timestamp) -> serde_json::Value {
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": Time(now), "lastTransitionTime": Time(now),
    })
}

fn full_status(now: Timestamp, log_port: u16) -> serde_json::Value {
    let resources = json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": "localhost"}],
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok", now),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok", now),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok", now),
            condition("Ready", "True", "KubeletReady", "squall-node-agent is posting ready status", now),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": log_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "squall-node-agent",
            "containerRuntimeVersion": "process://0",
            "kubeletVersion": "v1.37.2", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": go_arch(),
        },
    }})
}

/// One heartbeat: renews the Lease and refreshes the conditions' heartbeat
/// times. Only lastHeartbeatTime changes, so a node that the controller
/// marked Unknown is set back to Ready with a new transition time.
pub async fn heartbeat(client: &Client, name: &str, uid: Option<&str>, log_port: u16) -> Result<()> {
    let now = Timestamp::now();
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NS);
    let owner = uid.map(|uid| json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]));
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NS},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": MicroTime(now)},
    });
    if let (Some(owner), Some(meta)) = (owner, lease.get_mut("metadata")) {
        meta["ownerReferences"] = owner;
    }
    leases
        .patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(lease))
        .await?;

    let nodes: Api<Node> = Api::all(client.clone());
    let current = nodes.get_status(name).await?;
    let ready_now = current
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let patch = if ready_now {
        let hb = |t: &str| json!({"type": t, "lastHeartbeatTime": Time(now)});
        json!({"status": {"conditions": [hb("MemoryPressure"), hb("DiskPressure"), hb("PIDPressure"), hb("Ready")]}})
    } else {
        full_status(now, log_port)
    };
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}
