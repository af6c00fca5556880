//! What the control-plane tests share: the echo image and its container, readiness.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

pub const ECHO_IMAGE: &str = "squall.dev/http-echo:test";

pub fn echo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_testenv-http-echo"))
}

/// The echo server's container: answers on the pod IP's port 8080 with its pod's name
/// and address, ready once it answers.
pub fn echo_container() -> Value {
    json!({
        "name": "echo",
        "image": ECHO_IMAGE,
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PORT", "value": "8080"},
        ],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    })
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
