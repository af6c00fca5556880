//! Node-agent behaviour against a real control plane: restart policies,
//! restart counts, environment sources, and deletion grace periods.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use kube_testenv::{eventually, TestCluster};
use serde_json::json;

const SHELL_IMAGE: &str = "squall.dev/shell:test";

fn shell_pod(name: &str, restart: &str, script: &str, out: &Path) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "main",
                "image": SHELL_IMAGE,
                // command[0] stands for the image entrypoint (/bin/sh here).
                "command": ["sh", "-c", script],
                "env": [
                    {"name": "OUT", "value": out.display().to_string()},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "MSG", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "msg"}}},
                    {"name": "BOTH", "value": "$(NS)-$(MSG)"},
                ],
            }],
        },
    }))?)
}

fn container_status(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first().cloned()
}

#[tokio::test]
async fn restart_policies_env_and_grace_periods() -> Result<()> {
    kube_testenv::init_tracing();
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start().await?;
        let client = cluster.client();
        let _agent = cluster
            .start_node_agent("node-s", [(SHELL_IMAGE, "/bin/sh")])
            .await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"msg": "hello"}}))?,
        )
        .await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let out = |n: &str| cluster.dir().join(format!("{n}.out"));
        let pp = PostParams::default();
        pods.create(
            &pp,
            &shell_pod("crasher", "OnFailure", "exit 3", &out("crasher"))?,
        )
        .await?;
        pods.create(
            &pp,
            &shell_pod(
                "done",
                "Never",
                "echo \"$BOTH\" > \"$OUT\" && test -f \"$KUBECONFIG\"",
                &out("done"),
            )?,
        )
        .await?;
        let graceful = "trap 'echo term > \"$OUT\"; exit 0' TERM; while true; do sleep 0.1; done";
        pods.create(&pp, &shell_pod("graceful", "Always", graceful, &out("graceful"))?)
            .await?;
        let stubborn = "trap '' TERM; while true; do sleep 0.1; done";
        pods.create(&pp, &shell_pod("stubborn", "Always", stubborn, &out("stubborn"))?)
            .await?;

        // OnFailure: the failing container is restarted with a growing count.
        let cs = eventually(
            "crasher restarted twice",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let cs = container_status(&pods.get("crasher").await.ok()?)?;
                (cs.restart_count >= 2).then_some(cs)
            },
        )
        .await?;
        let last = cs
            .last_state
            .and_then(|s| s.terminated)
            .context("no last terminated state")?;
        assert_eq!(last.exit_code, 3);

        // Never + exit 0: Succeeded, and the env was resolved and expanded
        // (exit 0 also proves KUBECONFIG was injected and exists).
        eventually(
            "done Succeeded",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let p = pods.get("done").await.ok()?;
                (p.status?.phase.as_deref() == Some("Succeeded")).then_some(())
            },
        )
        .await?;
        assert_eq!(std::fs::read_to_string(out("done"))?.trim(), "default-hello");

        for name in ["graceful", "stubborn"] {
            eventually("running", Duration::from_secs(60), cluster.dir(), || async {
                let cs = container_status(&pods.get(name).await.ok()?)?;
                cs.state?.running.map(|_| ())
            })
            .await?;
        }
        // A StatefulSet rolls out in order, which needs correct readiness.
        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
        sts.create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": "sts"},
                "spec": {
                    "replicas": 2,
                    "serviceName": "sts",
                    "selector": {"matchLabels": {"app": "sts"}},
                    "template": {
                        "metadata": {"labels": {"app": "sts"}},
                        "spec": {"containers": [{
                            "name": "main", "image": SHELL_IMAGE,
                            "command": ["sh", "-c", "while true; do sleep 0.2; done"],
                        }]},
                    },
                },
            }))?,
        )
        .await?;
        eventually(
            "StatefulSet 2/2 ready",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let s = sts.get("sts").await.ok()?;
                (s.status?.ready_replicas == Some(2)).then_some(())
            },
        )
        .await?;
        for name in ["sts-0", "sts-1"] {
            let p = pods.get(name).await?;
            ensure!(
                p.status.and_then(|s| s.phase).as_deref() == Some("Running"),
                "{name} not running"
            );
        }

        // SIGTERM is honoured: the trap runs and the pod goes quickly.
        let t = Instant::now();
        pods.delete("graceful", &DeleteParams::default().grace_period(10))
            .await?;
        eventually(
            "graceful gone",
            Duration::from_secs(30),
            cluster.dir(),
            || async { pods.get_opt("graceful").await.ok()?.is_none().then_some(()) },
        )
        .await?;
        ensure!(
            t.elapsed() < Duration::from_secs(8),
            "graceful pod took {:?}",
            t.elapsed()
        );
        assert_eq!(std::fs::read_to_string(out("graceful"))?.trim(), "term");

        // SIGTERM ignored: SIGKILL after the grace period, then finalized.
        let t = Instant::now();
        pods.delete("stubborn", &DeleteParams::default().grace_period(3))
            .await?;
        eventually(
            "stubborn gone",
            Duration::from_secs(30),
            cluster.dir(),
            || async { pods.get_opt("stubborn").await.ok()?.is_none().then_some(()) },
        )
        .await?;
        let took = t.elapsed();
        ensure!(
            took >= Duration::from_millis(2500) && took < Duration::from_secs(15),
            "stubborn pod took {took:?}"
        );
        Ok(())
    })
    .await
    .context("test timed out")?
}
