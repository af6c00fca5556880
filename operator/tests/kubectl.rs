//! What `kubectl` shows of a topology on the real API server: Events that each read as
//! the change they report, and the `-o wide` columns.

mod support;

use std::time::Duration;

use anyhow::{ensure, Result};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource as _};
use kube_testenv::{eventually, TestCluster};
use squall_model::crd::Topology;
use squall_operator::events::{EventRecorder, Note};
use support::*;

async fn events_about(cluster: &TestCluster, name: &str) -> Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(cluster.client(), NS);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect())
}

#[tokio::test]
async fn repeated_events_form_a_series_and_different_notes_stay_apart() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), NS);
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("subject".into());
        let cm = cms.create(&PostParams::default(), &cm).await?;
        let regarding: ObjectReference = cm.object_ref(&());
        let recorder = EventRecorder::new(cluster.client(), "squall-operator", "test-0");
        let note = |n| Note {
            reason: "Assigned",
            action: "Reconcile",
            note: n,
            warning: false,
        };
        for n in [
            "generation 1 over 1 workers",
            "generation 1 over 1 workers",
            "generation 2 over 3 workers",
        ] {
            recorder.publish(&note(n), &regarding).await?;
        }
        let events = events_about(&cluster, "subject").await?;
        let summary: Vec<(Option<String>, Option<i32>)> = events
            .iter()
            .map(|e| (e.note.clone(), e.series.as_ref().map(|s| s.count)))
            .collect();
        ensure!(events.len() == 2, "two distinct Events expected: {summary:?}");
        ensure!(
            summary.contains(&(Some("generation 1 over 1 workers".into()), Some(2))),
            "the repeated note is one Event with a series of 2: {summary:?}"
        );
        ensure!(
            summary.contains(&(Some("generation 2 over 3 workers".into()), None)),
            "the new note is an Event of its own: {summary:?}"
        );
        // A note over the API server's 1 kB limit is cut, not refused.
        recorder.publish(&note(&"x".repeat(5000)), &regarding).await?;
        ensure!(
            events_about(&cluster, "subject").await?.len() == 3,
            "the long note was not published"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn each_scale_reads_as_itself_and_wide_output_tells_the_assignment() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let _node = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, 10, 2);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        wait_running(&cluster, &topos, "numbers", Duration::from_secs(40)).await?;
        for workers in [3, 1] {
            let patch = serde_json::json!({"spec": {"workers": workers}});
            topos
                .patch("numbers", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            eventually(
                "the scaled topology Running",
                Duration::from_secs(60),
                cluster.dir(),
                || async {
                    let t = topos.get("numbers").await.ok()?;
                    let s = t.status?;
                    (s.phase == squall_model::crd::Phase::Running && s.ready_workers == workers).then_some(())
                },
            )
            .await?;
        }
        let assigned: Vec<String> = events_about(&cluster, "numbers")
            .await?
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Assigned"))
            .filter_map(|e| e.note)
            .collect();
        for workers in [2, 3, 1] {
            ensure!(
                assigned
                    .iter()
                    .any(|n| n.ends_with(&format!("over {workers} workers"))),
                "no Assigned Event for {workers} workers: {assigned:?}"
            );
        }
        let t = topos.get("numbers").await?;
        let generation = t.status.as_ref().and_then(|s| s.assignment_generation);
        let out = cluster
            .kubectl()
            .args(["get", "topo", "numbers", "-o", "wide"])
            .output()?;
        ensure!(
            out.status.success(),
            "kubectl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        ensure!(
            header
                == [
                    "NAME",
                    "PHASE",
                    "WORKERS",
                    "READY",
                    "AGE",
                    "STATE",
                    "ASSIGNMENT",
                    "ACKERS",
                    "REASON"
                ],
            "columns: {text}"
        );
        let generation = generation.map(|g| g.to_string()).unwrap_or_default();
        // One acker per worker by default: 1 after the last scale.
        ensure!(
            row.len() == 9
                && row[5] == "Active"
                && row[6] == generation
                && row[7] == "1"
                && !row[8].is_empty(),
            "row: {text} (assignment generation {generation})"
        );
        operator.abort();
        Ok(())
    })
    .await
}
