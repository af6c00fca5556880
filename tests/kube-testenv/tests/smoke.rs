//! Smoke tests of the test control plane and the node agent. They need the
//! binaries from `make k8s-bins` and fail (not skip) without them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client};
use kube_testenv::{eventually, init_tracing, TestCluster, KUBERNETES_VERSION};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{echo_binary, echo_container, pod_ready, ECHO_IMAGE};

const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Clusters are heavy on 2 cores: run the tests one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs one test body serialized and bounded in time.
async fn bounded<F: std::future::Future<Output = Result<()>>>(body: F) -> Result<()> {
    init_tracing();
    let _guard = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .context("test timed out")?
}

async fn http_get(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

fn node_ready(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

async fn wait_node_ready(cluster: &TestCluster, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(cluster.client());
    eventually("node Ready", Duration::from_secs(60), cluster.dir(), || async {
        let n = nodes.get_opt(name).await.ok().flatten()?;
        let untainted = n.spec.as_ref().and_then(|s| s.taints.as_ref()).is_none_or(|t| {
            t.iter()
                .all(|t| !t.key.starts_with("node.kubernetes.io/not-ready"))
        });
        (node_ready(&n).as_deref() == Some("True") && untainted).then_some(())
    })
    .await?;
    Ok(())
}

fn kubectl_apply(cluster: &TestCluster, file: &Path) -> Result<()> {
    let out = cluster.kubectl().arg("apply").arg("-f").arg(file).output()?;
    ensure!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn cluster_starts_crd_schema_validation_rejects_bad_fields_and_helm_sees_version() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let client = cluster.client();
        let version = client.apiserver_version().await?;
        assert_eq!(version.git_version, format!("v{KUBERNETES_VERSION}"));

        // kubectl works against the cluster and reports the stamped version.
        let out = cluster.kubectl().args(["version", "-o", "json"]).output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "kubectl version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            text.matches(&format!("v{KUBERNETES_VERSION}")).count() >= 2,
            "unexpected kubectl version: {text}"
        );

        let crd = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/smoke-crd.yaml");
        kubectl_apply(&cluster, &crd)?;
        let out = cluster
            .kubectl()
            .args([
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/widgets.smoke.squall.dev",
            ])
            .output()?;
        ensure!(
            out.status.success(),
            "CRD not established: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let gvk = GroupVersionKind::gvk("smoke.squall.dev", "v1alpha1", "Widget");
        let widgets: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk));
        let widget = |name: &str, spec: serde_json::Value| -> Result<DynamicObject> {
            Ok(serde_json::from_value(json!({
                "apiVersion": "smoke.squall.dev/v1alpha1", "kind": "Widget",
                "metadata": {"name": name}, "spec": spec,
            }))?)
        };
        // The discovery cache may lag behind Established for a moment.
        eventually(
            "valid widget accepted",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                widgets
                    .create(
                        &PostParams::default(),
                        &widget("good", json!({"replicas": 3})).ok()?,
                    )
                    .await
                    .ok()
            },
        )
        .await?;

        let rejected = |name: &'static str, spec: serde_json::Value, needle: &'static str| {
            let widgets = widgets.clone();
            let obj = widget(name, spec);
            async move {
                match widgets.create(&PostParams::default(), &obj?).await {
                    Ok(_) => bail!("widget {name} was accepted but must be rejected"),
                    Err(kube::Error::Api(s)) => {
                        ensure!(s.code == 422, "expected 422 Invalid for {name}, got {s:?}");
                        ensure!(
                            s.message.contains(needle),
                            "{name}: message {:?} lacks {needle:?}",
                            s.message
                        );
                        Ok(())
                    }
                    Err(e) => bail!("unexpected error for {name}: {e}"),
                }
            }
        };
        rejected("wrong-type", json!({"replicas": "lots"}), "spec.replicas").await?;
        rejected("too-small", json!({"replicas": 0}), "spec.replicas").await?;
        rejected("bad-enum", json!({"replicas": 1, "size": "huge"}), "spec.size").await?;
        rejected("missing", json!({"size": "small"}), "spec.replicas").await?;
        rejected(
            "cel",
            json!({"replicas": 20, "size": "large"}),
            "limited to 10 replicas",
        )
        .await?;

        // Helm accepts the chart's kubeVersion range and renders the server version.
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/smoke-chart");
        let out = cluster.helm().args(["install", "smoke"]).arg(&chart).output()?;
        ensure!(
            out.status.success(),
            "helm install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm = cms.get("smoke-capabilities").await?;
        let seen = cm.data.and_then(|d| d.get("kubeVersion").cloned());
        assert_eq!(seen, Some(format!("v{KUBERNETES_VERSION}")));
        Ok(())
    })
    .await
}

fn echo_deployment(name: &str, replicas: i32) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [echo_container()],
                },
            },
        },
    }))?)
}

async fn running_pods(client: &Client, app: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    Ok(pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items)
}

#[tokio::test]
async fn deployment_runs_on_node_agent_and_is_garbage_collected() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let client = cluster.client();
        let _agent = cluster
            .start_node_agent("node-a", [(ECHO_IMAGE, echo_binary())])
            .await?;
        wait_node_ready(&cluster, "node-a").await?;

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        deployments
            .create(&PostParams::default(), &echo_deployment("echo", 2)?)
            .await?;
        let pods = eventually(
            "2 ready echo pods",
            Duration::from_secs(90),
            cluster.dir(),
            || async {
                let pods = running_pods(&client, "echo").await.ok()?;
                (pods.len() == 2 && pods.iter().all(pod_ready)).then_some(pods)
            },
        )
        .await?;

        let mut ips = BTreeSet::new();
        for pod in &pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let status = pod.status.clone().unwrap_or_default();
            assert_eq!(
                pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
                Some("node-a")
            );
            assert_eq!(status.phase.as_deref(), Some("Running"));
            let ip: std::net::Ipv4Addr = status.pod_ip.as_deref().context("no pod IP")?.parse()?;
            ensure!(
                ip.is_loopback() && ip != std::net::Ipv4Addr::LOCALHOST,
                "pod IP {ip} not a dedicated loopback IP"
            );
            ips.insert(ip);
            let cs = &status.container_statuses.unwrap_or_default()[0];
            assert!(cs.ready && cs.state.as_ref().is_some_and(|s| s.running.is_some()));
            // The process really serves on its own pod IP, with its own name.
            let body = http_get(SocketAddr::new(ip.into(), 8080)).await?;
            ensure!(
                body.contains(&format!("pod={name} ip={ip}")),
                "unexpected answer from {ip}: {body}"
            );
        }
        assert_eq!(ips.len(), 2, "pod IPs must be distinct");

        // Deleting the owner: GC removes ReplicaSet and pods, the agent
        // stops the processes and finalizes the pods.
        deployments.delete("echo", &DeleteParams::background()).await?;
        eventually(
            "echo pods garbage-collected",
            Duration::from_secs(60),
            cluster.dir(),
            || async { running_pods(&client, "echo").await.ok()?.is_empty().then_some(()) },
        )
        .await?;
        for ip in ips {
            let addr = SocketAddr::new(ip.into(), 8080);
            ensure!(
                TcpStream::connect(addr).await.is_err(),
                "process on {addr} still serving after GC"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn lost_node_goes_not_ready_and_its_processes_die() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let client = cluster.client();
        let mut agent = cluster
            .start_node_agent("node-b", [(ECHO_IMAGE, echo_binary())])
            .await?;
        wait_node_ready(&cluster, "node-b").await?;

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        deployments
            .create(&PostParams::default(), &echo_deployment("lost", 1)?)
            .await?;
        let ip = eventually(
            "ready pod on node-b",
            Duration::from_secs(90),
            cluster.dir(),
            || async {
                let pods = running_pods(&client, "lost").await.ok()?;
                let p = pods.into_iter().find(pod_ready)?;
                p.status?.pod_ip?.parse::<std::net::Ipv4Addr>().ok()
            },
        )
        .await?;
        let addr = SocketAddr::new(ip.into(), 8080);
        ensure!(http_get(addr).await.is_ok(), "pod not serving before the loss");

        agent.lose().await;
        ensure!(
            TcpStream::connect(addr).await.is_err(),
            "process still serving after the node was lost"
        );
        let nodes: Api<Node> = Api::all(client.clone());
        let started = std::time::Instant::now();
        let status = eventually(
            "node-b NotReady",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let n = nodes.get_opt("node-b").await.ok().flatten()?;
                node_ready(&n).filter(|s| s != "True")
            },
        )
        .await?;
        tracing::info!(?status, after = ?started.elapsed(), "node-b no longer Ready");
        assert_eq!(
            status, "Unknown",
            "a node that stops heartbeating is marked Unknown"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn missing_binaries_fail_with_a_clear_message() -> Result<()> {
    // Point at an empty directory in a child process so this test does not
    // race the others over K8S_BIN_DIR.
    if std::env::var_os("KUBE_TESTENV_CHILD").is_some() {
        let err = match TestCluster::start().await {
            Ok(_) => bail!("start must fail without binaries"),
            Err(e) => e.to_string(),
        };
        ensure!(
            err.contains("not found") && err.contains("make k8s-bins"),
            "unclear error: {err}"
        );
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let empty = std::env::temp_dir().join(format!("kube-testenv-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty)?;
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "missing_binaries_fail_with_a_clear_message",
            "--nocapture",
        ])
        .env("KUBE_TESTENV_CHILD", "1")
        .env("K8S_BIN_DIR", &empty)
        .output()?;
    let _ = std::fs::remove_dir(&empty);
    ensure!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}
