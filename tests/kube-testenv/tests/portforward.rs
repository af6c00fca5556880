//! `kubectl port-forward` end to end: kubectl, the API server's pods/portforward, and
//! the node agent's kubelet endpoint speaking SPDY/3.1, to a pod serving HTTP on its
//! own loopback IP. Needs the binaries from `make k8s-bins`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::PostParams;
use kube::Api;
use kube_testenv::{eventually, init_tracing, TestCluster};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStderr};

mod common;
use common::{echo_binary, echo_container, pod_ready, ECHO_IMAGE};

const TEST_TIMEOUT: Duration = Duration::from_secs(240);
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `kubectl port-forward`, killed when dropped.
struct PortForward {
    child: Child,
    port: u16,
    stderr: ChildStderr,
}

impl PortForward {
    /// Starts `kubectl port-forward TARGET :REMOTE` and waits for its local port.
    async fn start(cluster: &TestCluster, target: &str, remote: u16) -> Result<Self> {
        let mut cmd = tokio::process::Command::from(cluster.kubectl());
        cmd.args([
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            &format!(":{remote}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting kubectl port-forward")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stdout).lines();
        // "Forwarding from 127.0.0.1:PORT -> REMOTE"
        let port = tokio::time::timeout(IO_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    let port = rest.split_whitespace().next().unwrap_or_default();
                    return Ok::<_, anyhow::Error>(Some(port.parse::<u16>()?));
                }
            }
            Ok(None)
        })
        .await
        .context("kubectl port-forward did not report its port")??;
        let mut pf = Self {
            child,
            port: 0,
            stderr,
        };
        let Some(port) = port else {
            bail!("kubectl port-forward exited: {}", pf.stop().await);
        };
        pf.port = port;
        // Keep draining stdout ("Handling connection for ...") so kubectl never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(pf)
    }

    /// Kills kubectl and returns what it wrote on stderr.
    async fn stop(&mut self) -> String {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(IO_TIMEOUT, self.child.wait()).await;
        let mut err = String::new();
        let _ = tokio::time::timeout(IO_TIMEOUT, self.stderr.read_to_string(&mut err)).await;
        err
    }
}

/// One HTTP/1.0 request on a fresh connection through the forward; the whole answer.
async fn http_get(port: u16) -> Result<String> {
    tokio::time::timeout(IO_TIMEOUT, async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    })
    .await
    .context("HTTP request through the port-forward timed out")?
}

fn echo_pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [echo_container()],
        },
    }))?)
}

async fn forwards_two_connections(
    cluster: &TestCluster,
    target: &str,
    remote: u16,
    want: &str,
) -> Result<()> {
    let mut pf = PortForward::start(cluster, target, remote).await?;
    for i in 0..2 {
        let answer = match http_get(pf.port).await {
            Ok(a) => a,
            Err(e) => bail!("request {i} via {target}: {e:#}; kubectl: {}", pf.stop().await),
        };
        ensure!(
            answer.starts_with("HTTP/1.0 200 OK") && answer.contains(want),
            "request {i} via {target}: unexpected answer {answer:?}"
        );
    }
    let stderr = pf.stop().await;
    ensure!(
        !stderr.contains("error") && !stderr.contains("Error"),
        "kubectl port-forward {target} reported errors: {stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_port_forward_reaches_pods_and_services() -> Result<()> {
    init_tracing();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = TestCluster::start().await?;
        let client = cluster.client();
        let _agent = cluster
            .start_node_agent("node-pf", [(ECHO_IMAGE, echo_binary())])
            .await?;
        let nodes: Api<Node> = Api::all(client.clone());
        eventually(
            "node-pf registered",
            Duration::from_secs(60),
            cluster.dir(),
            || async { nodes.get_opt("node-pf").await.ok().flatten().map(|_| ()) },
        )
        .await?;

        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        pods.create(&PostParams::default(), &echo_pod("web")?).await?;
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        });
        services
            .create(&PostParams::default(), &serde_json::from_value(svc)?)
            .await?;
        let ip = eventually(
            "pod web ready",
            Duration::from_secs(90),
            cluster.dir(),
            || async {
                let p = pods.get_opt("web").await.ok().flatten().filter(pod_ready)?;
                p.status?.pod_ip
            },
        )
        .await?;
        let want = format!("pod=web ip={ip}");

        forwards_two_connections(&cluster, "pod/web", 8080, &want).await?;
        // kubectl resolves the Service to a pod and port 80 to the container's 8080.
        forwards_two_connections(&cluster, "svc/web", 80, &want).await?;

        // Nothing listens on the pod's port 9: the connection closes without data and
        // the dial failure comes back on the error stream.
        let mut pf = PortForward::start(&cluster, "pod/web", 9).await?;
        let answer = http_get(pf.port).await.unwrap_or_default();
        ensure!(answer.is_empty(), "a closed pod port answered {answer:?}");
        let stderr = pf.stop().await;
        ensure!(
            stderr.contains("error forwarding port 9"),
            "kubectl did not report the failed dial: {stderr}"
        );
        Ok(())
    })
    .await
    .context("test timed out")?
}
