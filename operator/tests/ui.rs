//! Storm's UI REST API over the real control plane: a 2-worker topology running, the
//! operator's API served in this process (as a standby replica would serve it: it is not
//! the controller), and three ServiceAccounts whose tokens come from the TokenRequest
//! API: a reader (get and list topologies), an actor (get, list, patch, delete) and one
//! with no rights. Who may do what is decided by the API server (TokenReview,
//! SubjectAccessReview); the figures must agree with the workers' own `/metrics`.
//! Needs `make k8s-bins` and a built `squall-worker` (`make test-operator`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use kube_testenv::{eventually, TestCluster};
use serde_json::Value;
use squall_model::crd::{Phase, Topology};
use squall_model::DesiredState;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

mod support;

use support::*;

/// The UI's sampling period here: figures are at most this old (plus one round's asks).
const PERIOD: Duration = Duration::from_secs(1);
const ID: &str = "default.numbers";

/// One request to the API: status and JSON body.
async fn call(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: ui\r\nConnection: close\r\nContent-Length: 0\r\n{auth}\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let (head, body) = out.split_once("\r\n\r\n").context("no HTTP head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    let body = serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?;
    Ok((status, body))
}

/// The `numbers` spout's acked trees as the UI shows them (all time), if it shows them.
async fn ui_acked(addr: SocketAddr, token: &str) -> Option<u64> {
    let (status, page) = call(addr, "GET", &format!("/api/v1/topology/{ID}"), Some(token))
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    page["spouts"]
        .as_array()?
        .iter()
        .find(|s| s["spoutId"] == "numbers")?["acked"]
        .as_u64()
}

fn status_of(v: &(u16, Value)) -> u16 {
    v.0
}

/// No token, no right, read-only: each refused with Storm's error body.
async fn refusals(addr: SocketAddr, reader: &str, nobody: &str) -> Result<()> {
    let page = format!("/api/v1/topology/{ID}");
    let (status, body) = call(addr, "GET", &page, None).await?;
    ensure!(
        status == 401 && body["error"] == "401 Unauthorized",
        "{status} {body}"
    );
    let (status, body) = call(addr, "GET", &page, Some("not-a-token")).await?;
    ensure!(status == 401, "a bad token: {status} {body}");
    let (status, body) = call(addr, "GET", &page, Some(nobody)).await?;
    ensure!(
        status == 403 && body["error"] == "403 Forbidden",
        "{status} {body}"
    );
    let message = body["errorMessage"].as_str().unwrap_or_default();
    ensure!(message.contains("cannot get topologies.squall.dev"), "{message}");
    let comp = format!("/api/v1/topology/{ID}/component/numbers");
    ensure!(status_of(&call(addr, "GET", &comp, Some(nobody)).await?) == 403);
    let (status, body) = call(addr, "GET", "/api/v1/topology/summary", Some(nobody)).await?;
    ensure!(
        status == 200 && body["topologies"] == Value::Array(vec![]),
        "{status} {body}"
    );
    let (status, body) = call(
        addr,
        "POST",
        &format!("/api/v1/topology/{ID}/deactivate"),
        Some(reader),
    )
    .await?;
    ensure!(status == 403, "the reader deactivated: {status} {body}");
    ensure!(
        body["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot patch"),
        "{body}"
    );
    let (status, _) = call(
        addr,
        "POST",
        &format!("/api/v1/topology/{ID}/kill/0"),
        Some(reader),
    )
    .await?;
    ensure!(status == 403, "the reader killed: {status}");
    Ok(())
}

/// The reader sees the topology, its figures growing and per executor, and the
/// figures agree with the workers' `/metrics` within one sample period.
async fn reader_sees_figures(
    cluster: &TestCluster,
    pods: &Api<Pod>,
    addr: SocketAddr,
    reader: &str,
) -> Result<()> {
    let dir = cluster.dir();
    let first = eventually("the topology page", Duration::from_secs(40), dir, || async {
        let seen = ui_acked(addr, reader).await.filter(|n| *n > 0);
        if seen.is_none() {
            // What the reader gets meanwhile, should it never show.
            let page = call(addr, "GET", &format!("/api/v1/topology/{ID}"), Some(reader)).await;
            println!("PAGE not yet: {page:?}");
        }
        seen
    })
    .await?;
    eventually(
        "acked growing on the page",
        Duration::from_secs(20),
        dir,
        || async { ui_acked(addr, reader).await.filter(|n| *n > first) },
    )
    .await?;
    let (_, summary) = call(addr, "GET", "/api/v1/topology/summary", Some(reader)).await?;
    ensure!(summary["topologies"][0]["id"] == ID, "{summary}");
    let (_, comp) = call(
        addr,
        "GET",
        &format!("/api/v1/topology/{ID}/component/numbers"),
        Some(reader),
    )
    .await?;
    let hosts: Vec<&str> = comp["executorStats"]
        .as_array()
        .context("executorStats")?
        .iter()
        .filter_map(|e| e["host"].as_str())
        .collect();
    ensure!(
        hosts.len() == 2 && hosts.iter().all(|h| h.starts_with("127.")),
        "{comp}"
    );
    // Read the workers, then (one period and a round later) the UI, then the workers:
    // the UI's newest sample lies between the two reads.
    let checked = eventually(
        "the UI between two reads of /metrics",
        Duration::from_secs(20),
        dir,
        || async {
            let before = acked(pods).await?;
            tokio::time::sleep(PERIOD * 2 + Duration::from_millis(500)).await;
            let shown = ui_acked(addr, reader).await?;
            let after = acked(pods).await?;
            println!("FIGURES /metrics before {before}, UI {shown}, /metrics after {after}");
            (before <= shown && shown <= after).then_some(shown)
        },
    )
    .await?;
    ensure!(checked > 0);
    Ok(())
}

/// The actor deactivates (the Topology goes Inactive, the UI's figures stop and equal
/// the workers' exactly) and activates again.
async fn actor_switches(
    cluster: &TestCluster,
    topos: &Api<Topology>,
    pods: &Api<Pod>,
    addr: SocketAddr,
    actor: &str,
) -> Result<()> {
    let dir = cluster.dir();
    let (status, body) = call(
        addr,
        "POST",
        &format!("/api/v1/topology/{ID}/deactivate"),
        Some(actor),
    )
    .await?;
    ensure!(status == 200, "{status} {body}");
    ensure!(
        body == serde_json::json!({"topologyOperation": "deactivate", "topologyId": ID, "status": "success"}),
        "{body}"
    );
    ensure!(topos.get("numbers").await?.spec.desired_state == DesiredState::Inactive);
    eventually("phase Inactive", Duration::from_secs(30), dir, || async {
        let t = topos.get("numbers").await.ok()?;
        (t.status?.phase == Phase::Inactive).then_some(())
    })
    .await?;
    let equal = eventually(
        "UI equal to /metrics once drained",
        Duration::from_secs(30),
        dir,
        || async {
            let before = acked(pods).await?;
            let (_, page) = call(addr, "GET", &format!("/api/v1/topology/{ID}"), Some(actor))
                .await
                .ok()?;
            let shown = ui_acked(addr, actor).await?;
            tokio::time::sleep(PERIOD * 2).await;
            let after = acked(pods).await?;
            (page["status"] == "INACTIVE" && before == after && ui_acked(addr, actor).await? == after)
                .then_some((shown, after))
        },
    )
    .await?;
    println!("FIGURES inactive: UI {} = /metrics {}", equal.0, equal.1);
    let (status, _) = call(
        addr,
        "POST",
        &format!("/api/v1/topology/{ID}/activate"),
        Some(actor),
    )
    .await?;
    ensure!(status == 200);
    eventually("phase Running again", Duration::from_secs(30), dir, || async {
        let t = topos.get("numbers").await.ok()?;
        (t.status?.phase == Phase::Running).then_some(())
    })
    .await?;
    eventually("acked growing again", Duration::from_secs(30), dir, || async {
        ui_acked(addr, actor).await.filter(|n| *n > equal.1)
    })
    .await?;
    Ok(())
}

/// Rebalances the API refuses with a clear message, then a kill with wait.
async fn actor_rebalances_and_kills(
    cluster: &TestCluster,
    topos: &Api<Topology>,
    addr: SocketAddr,
    actor: &str,
) -> Result<()> {
    let rebalance = |body: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let head = format!(
            "POST /api/v1/topology/{ID}/rebalance/0 HTTP/1.1\r\nHost: ui\r\nConnection: close\r\n\
             Authorization: Bearer {actor}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        anyhow::Ok(out)
    };
    let answer = rebalance(r#"{"rebalanceOptions": {"executors": {"nope": 2}}}"#).await?;
    ensure!(
        answer.starts_with("HTTP/1.1 409") && answer.contains("no component \\\"nope\\\""),
        "{answer}"
    );
    let answer = rebalance(r#"{"rebalanceOptions": {"executors": {"sink": 5000}}}"#).await?;
    ensure!(
        answer.starts_with("HTTP/1.1 409") && answer.contains("maxParallelism"),
        "{answer}"
    );
    ensure!(
        topos.get("numbers").await?.spec.bolts[0].parallelism == 2,
        "nothing changed"
    );

    let (status, _) = call(
        addr,
        "POST",
        &format!("/api/v1/topology/{ID}/kill/3"),
        Some(actor),
    )
    .await?;
    ensure!(status == 200);
    eventually(
        "the topology gone",
        Duration::from_secs(30),
        cluster.dir(),
        || async { topos.get_opt("numbers").await.ok()?.is_none().then_some(()) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_api_serves_the_cluster_to_each_caller_as_kubernetes_allows() -> Result<()> {
    bounded_for(Duration::from_secs(240), async {
        let (cluster, _agent, operator) = cluster_with_operator().await?;
        let client = cluster.client();
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
        wait_acked_beyond(&cluster, &pods, 0).await?;

        let (addr, metrics, ui) = spawn_ui(&client, PERIOD).await?;

        let reader = account(&client, "reader", &["get", "list"]).await?;
        let actor = account(&client, "actor", &["get", "list", "patch", "delete"]).await?;
        let nobody = account(&client, "nobody", &[]).await?;

        reader_sees_figures(&cluster, &pods, addr, &reader).await?;
        refusals(addr, &reader, &nobody).await?;
        ensure!(topos.get("numbers").await?.spec.desired_state == DesiredState::Active);
        actor_switches(&cluster, &topos, &pods, addr, &actor).await?;
        actor_rebalances_and_kills(&cluster, &topos, addr, &actor).await?;
        let text = metrics.render();
        ensure!(text.contains("squall_operator_ui_topologies_omitted 0"), "{text}");
        ui.abort();
        operator.abort();
        Ok(())
    })
    .await
}
