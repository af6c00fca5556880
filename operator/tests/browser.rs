//! The web UI in a real browser against the operator on the real control plane: the
//! word-count example applied with kubectl and Running on worker pods, the operator's UI
//! served in this process, and headless Chromium (squall-browser-test) opening it as a
//! person would. The page asks for a bearer token on the API's 401; the test types a
//! ServiceAccount's token (allowed to get, list and patch topologies), checks the graph
//! against the manifest, clicks Deactivate and Activate, and checks each through the
//! Kubernetes API: the Topology's `spec.desiredState` and `status.phase`. Screenshots go
//! to target/ui-screenshots/cluster-*.png.
//!
//! Needs `make k8s-bins`, a built `squall-worker` and Debian's chromium and
//! chromium-driver (`make test-operator` brings all three).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use kube::Api;
use kube_testenv::{eventually, TestCluster};
use squall_browser_test::Browser;
use squall_model::crd::{Phase, Topology};
use squall_model::{DesiredState, TopologyManifest};

mod support;

use support::*;

const ID: &str = "default.word-count";
/// The UI's sampling period here; the page refreshes on its own clock.
const PERIOD: Duration = Duration::from_secs(1);
/// How long the Topology may take to reach a phase after the spec asks for it.
const PHASE_WITHIN: Duration = Duration::from_secs(40);

fn word_count() -> Result<(std::path::PathBuf, TopologyManifest)> {
    let path = repo().join("examples/word-count/topology.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let manifest = TopologyManifest::from_yaml(&text, "word-count")?;
    Ok((path, manifest))
}

/// The graph the page must draw, from the manifest: nodes as `name spout|bolt`, edges
/// as `from->to stream grouping`, each sorted as the page's reading is.
fn manifest_graph(m: &TopologyManifest) -> (Vec<String>, Vec<String>) {
    let spouts = m.spec.spouts.iter().map(|s| format!("{} spout", s.name));
    let bolts = m.spec.bolts.iter().map(|b| format!("{} bolt", b.name));
    let mut nodes: Vec<String> = spouts.chain(bolts).collect();
    let mut edges: Vec<String> = m
        .spec
        .bolts
        .iter()
        .flat_map(|b| {
            b.inputs
                .iter()
                .map(move |i| format!("{}->{} {} {}", i.from, b.name, i.stream, i.grouping.kind.as_str()))
        })
        .collect();
    nodes.sort();
    edges.sort();
    (nodes, edges)
}

/// Waits until the Topology's spec asks for `desired` and its status reports `phase`.
async fn topology_reaches(
    cluster: &TestCluster,
    topos: &Api<Topology>,
    desired: DesiredState,
    phase: Phase,
) -> Result<()> {
    let what = format!("desiredState {desired:?} and phase {phase:?}");
    eventually(&what, PHASE_WITHIN, cluster.dir(), || async {
        let t = topos.get("word-count").await.ok()?;
        (t.spec.desired_state == desired && t.status?.phase == phase).then_some(())
    })
    .await?;
    Ok(())
}

/// Clicks the action `button` (`deactivate` or `activate`) and confirms; the page says it
/// succeeded and, once refreshed, shows `status` with the opposite button enabled.
async fn click_action(b: &Browser, button: &str, label: &str, status: &str, other: &str) -> Result<()> {
    b.until(
        &format!("{button} enabled"),
        Duration::from_secs(20),
        &format!("return !document.getElementById('act-{button}')?.disabled"),
    )
    .await?;
    b.act(&format!("#act-{button}"), "").await?;
    b.until(
        &format!("{label}'s answer"),
        Duration::from_secs(20),
        &format!(
            "const t = document.getElementById('action-result')?.textContent || ''; \
             return t.startsWith('{label}') && !t.endsWith('sent…')"
        ),
    )
    .await?;
    let said = b
        .js("return document.getElementById('action-result').textContent")
        .await?;
    ensure!(said == format!("{label}: success"), "the page said {said}");
    b.until(
        &format!("the page to show {status}"),
        Duration::from_secs(30),
        &format!(
            "return document.getElementById('status')?.textContent === '{status}' \
             && !document.getElementById('act-{other}').disabled"
        ),
    )
    .await?;
    Ok(())
}

/// Opens the topology page, answers the token prompt, and checks the graph drawn.
async fn open_with_token(b: &Browser, url: &str, token: &str, manifest: &TopologyManifest) -> Result<()> {
    match b.goto(url).await {
        // The prompt may open before the page has loaded: the navigation ends there.
        Err(e) if e.is_unexpected_alert_open() => {}
        other => other?,
    }
    let asked = b.answer_prompt(token, Duration::from_secs(30)).await?;
    ensure!(asked.contains("bearer token"), "the page asked: {asked}");
    b.until(
        "the graph",
        Duration::from_secs(30),
        "return !!document.querySelector('#graph-svg') && document.querySelectorAll('#graph .node').length > 0",
    )
    .await?;
    let kept = b.js("return sessionStorage.getItem('squall.token')").await?;
    ensure!(kept == token, "the page kept another token");
    let (nodes, edges) = b.drawn_graph().await?;
    let (want_nodes, want_edges) = manifest_graph(manifest);
    ensure!(
        want_nodes.len() == 4 && want_edges.len() == 3,
        "{want_nodes:?} {want_edges:?}"
    );
    ensure!(
        nodes == want_nodes,
        "nodes drawn {nodes:?}, manifest {want_nodes:?}"
    );
    ensure!(
        edges == want_edges,
        "edges drawn {edges:?}, manifest {want_edges:?}"
    );
    b.until(
        "the page to show ACTIVE",
        Duration::from_secs(30),
        "return document.getElementById('status')?.textContent === 'ACTIVE'",
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_and_activate_in_the_web_ui_switch_the_topology_on_the_cluster() -> Result<()> {
    bounded_for(Duration::from_secs(300), async {
        let (path, manifest) = word_count()?;
        let (cluster, _agent, operator) = cluster_with_operator().await?;
        let client = cluster.client();
        let out = cluster.kubectl().args(["apply", "-f"]).arg(&path).output()?;
        ensure!(
            out.status.success(),
            "apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        wait_running(&cluster, &topos, "word-count", Duration::from_secs(60)).await?;
        ensure!(topos.get("word-count").await?.spec.desired_state == DesiredState::Active);

        let (addr, _metrics, ui) = spawn_ui(&client, PERIOD).await?;
        let token = account(&client, "switcher", &["get", "list", "patch"]).await?;
        let b = Browser::start(env!("CARGO_TARGET_TMPDIR")).await?;
        open_with_token(&b, &format!("http://{addr}/topology/{ID}"), &token, &manifest).await?;
        b.screenshot("cluster-topology.png").await?;

        click_action(&b, "deactivate", "Deactivate", "INACTIVE", "activate").await?;
        // The click's success is the API's patch: the spec asks for it already.
        let t = topos.get("word-count").await?;
        ensure!(
            t.spec.desired_state == DesiredState::Inactive,
            "{:?}",
            t.spec.desired_state
        );
        topology_reaches(&cluster, &topos, DesiredState::Inactive, Phase::Inactive).await?;
        b.screenshot("cluster-deactivated.png").await?;

        click_action(&b, "activate", "Activate", "ACTIVE", "deactivate").await?;
        topology_reaches(&cluster, &topos, DesiredState::Active, Phase::Running).await?;
        b.screenshot("cluster-activated.png").await?;

        b.close().await?;
        ui.abort();
        operator.abort();
        Ok(())
    })
    .await
}
