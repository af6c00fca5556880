//! Per-topology worker identity on the real control plane (RBAC on): a topology's worker
//! ServiceAccount, with a real token, reads, lists and watches (by name) its own assignment
//! ConfigMap and its workers' certificate Secret, keeps its own workers' Leases, and
//! reaches neither its CA's Secret nor anything of another topology. No node agent: the operator creates
//! the account, Role and RoleBinding before any pod runs.

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::PostParams;
use kube::Api;
use kube_testenv::{eventually, TestCluster};
use squall_model::crd::Topology;

mod support;

use support::*;

/// `kubectl` as the holder of `token` only (no client certificate).
fn as_worker(cluster: &TestCluster, token: &str, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    let empty = cluster.dir().join("empty-kubeconfig");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n")?;
    // The same kubectl binary, without the admin kubeconfig the cluster's command carries.
    let mut cmd = std::process::Command::new(cluster.kubectl().get_program());
    cmd.arg(format!("--kubeconfig={}", empty.display()))
        .arg(format!("--server={}", cluster.server_url()))
        .args(["--insecure-skip-tls-verify=true", "--namespace", NS])
        .arg(format!("--token={token}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

fn lease(name: &str) -> String {
    format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {name}}}\n\
         spec: {{holderIdentity: test, leaseDurationSeconds: 10}}\n"
    )
}

fn forbidden(out: &Output) -> bool {
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("forbidden")
}

#[tokio::test]
async fn a_worker_account_reaches_only_its_own_topology() -> Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        install_crd(&cluster).await?;
        let client = cluster.client();
        let operator = spawn_operator(&client, 10, 2);
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        topos.create(&PostParams::default(), &topology(PIPELINE)?).await?;
        let mut other = topology(PIPELINE)?;
        other.metadata.name = Some("other".into());
        topos.create(&PostParams::default(), &other).await?;
        let roles: Api<Role> = Api::namespaced(client.clone(), NS);
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
        eventually(
            "worker accounts",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                let ok = roles.get_opt("numbers-worker").await.ok()??;
                let _ = roles.get_opt("other-worker").await.ok()??;
                accounts.get_opt("numbers-worker").await.ok()??;
                Some(ok)
            },
        )
        .await?;
        // The assignment ConfigMaps (written by the operator once pods have IPs; no pods
        // run here, so the test writes them).
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        for name in ["numbers-assignment", "other-assignment", "unrelated"] {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.into());
            cms.create(&PostParams::default(), &cm).await?;
        }
        let out = cluster
            .kubectl()
            .args(["create", "token", "numbers-worker", "--namespace", NS])
            .output()?;
        ensure!(
            out.status.success(),
            "token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout)?.trim().to_owned();
        ensure!(!token.is_empty(), "empty token");

        let own = as_worker(
            &cluster,
            &token,
            &["get", "configmap", "numbers-assignment"],
            None,
        )?;
        ensure!(
            own.status.success(),
            "own ConfigMap: {}",
            String::from_utf8_lossy(&own.stderr)
        );
        // List and watch narrowed to its own ConfigMap by name, as the worker follows it
        // (the watch ends after a second, at the server's timeout).
        let by_name = |name: &str, watch: bool| {
            format!(
                "/api/v1/namespaces/{NS}/configmaps?fieldSelector=metadata.name%3D{name}{}",
                if watch { "&watch=true&timeoutSeconds=1" } else { "" }
            )
        };
        for watch in [false, true] {
            let out = as_worker(
                &cluster,
                &token,
                &["get", "--raw", &by_name("numbers-assignment", watch)],
                None,
            )?;
            ensure!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("numbers-assignment"),
                "own ConfigMap by name (watch {watch}): {out:?}"
            );
            let out = as_worker(
                &cluster,
                &token,
                &["get", "--raw", &by_name("other-assignment", watch)],
                None,
            )?;
            ensure!(
                forbidden(&out),
                "another ConfigMap by name (watch {watch}) not forbidden: {out:?}"
            );
        }
        for args in [
            &["get", "configmaps", "--watch", "--request-timeout=2s"][..],
            &["get", "configmap", "other-assignment"][..],
            &["get", "configmap", "unrelated"][..],
            &["get", "configmaps"][..],
            &["get", "secrets"][..],
        ] {
            let out = as_worker(&cluster, &token, args, None)?;
            ensure!(forbidden(&out), "{args:?} not forbidden: {:?}", out);
        }
        // Mutual TLS: its own workers' certificates, by name and by a watch narrowed to
        // the name, as the worker follows them; never the CA (its key is the operator's
        // alone) nor another topology's certificates.
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), NS);
        eventually("certificate Secrets", Duration::from_secs(30), cluster.dir(), || async {
            secrets.get_opt("numbers-worker-tls").await.ok()??;
            secrets.get_opt("other-worker-tls").await.ok()??;
            secrets.get_opt("numbers-ca").await.ok()?
        })
        .await?;
        let own = as_worker(&cluster, &token, &["get", "secret", "numbers-worker-tls"], None)?;
        ensure!(own.status.success(), "own certificates: {own:?}");
        let watch = format!(
            "/api/v1/namespaces/{NS}/secrets?fieldSelector=metadata.name%3Dnumbers-worker-tls&watch=true&timeoutSeconds=1"
        );
        let out = as_worker(&cluster, &token, &["get", "--raw", &watch], None)?;
        ensure!(out.status.success(), "own certificates, watched: {out:?}");
        for name in ["numbers-ca", "other-worker-tls", "other-ca"] {
            let out = as_worker(&cluster, &token, &["get", "secret", name], None)?;
            ensure!(forbidden(&out), "Secret {name} not forbidden: {out:?}");
        }
        // Its own Leases by server-side apply, created the first time (create is
        // authorized with the name on apply) ...
        let apply = [
            "apply",
            "--server-side",
            "--field-manager=squall-worker",
            "-f",
            "-",
        ];
        let out = as_worker(&cluster, &token, &apply, Some(&lease("numbers-1")))?;
        ensure!(
            out.status.success(),
            "own Lease: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = as_worker(&cluster, &token, &apply, Some(&lease("numbers-1")))?;
        ensure!(out.status.success(), "own Lease renewal: {out:?}");
        // ... and no one else's: another topology's, or beyond its worker count.
        for name in ["other-0", "numbers-2"] {
            let out = as_worker(&cluster, &token, &apply, Some(&lease(name)))?;
            ensure!(forbidden(&out), "Lease {name} not forbidden: {out:?}");
        }
        let created = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), NS)
            .get("numbers-1")
            .await
            .context("the worker's Lease was not created")?;
        ensure!(created.spec.and_then(|s| s.holder_identity).as_deref() == Some("test"));
        operator.abort();
        Ok(())
    })
    .await
}
