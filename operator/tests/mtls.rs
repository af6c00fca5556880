//! Mutual TLS between workers, run by the operator, on the real control plane.
//!
//! Three topologies: `alpha` (mutual TLS, 2 workers, a stream of a known length), `beta`
//! (mutual TLS, another CA) and `plain` (`spec.tls.mode: Disabled`). Dialers that hold
//! no certificate, beta's certificate, or one signed by alpha's own CA but naming beta
//! are refused by alpha's workers before any tuple could pass (no welcome to a link), and
//! each refusal is counted on their `/metrics`; a dialer with an alpha identity is
//! welcomed, so the refusals are the certificates' doing. A rotation forced by annotation
//! mid-stream reaches both workers and new connections see the new certificate. Then the
//! CA is replaced on demand mid-stream, with an overlap of a few seconds: a certificate
//! of the old CA is still welcomed during it and refused (and counted) after it, and the
//! workers' links renew their sessions at each reload. Alpha's stream then completes with
//! every tuple acked once and none failed. `plain` runs without TLS, says so in its
//! status, and gets no Secrets. Needs `make k8s-bins` and a built `squall-worker` (`make
//! test-operator`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, TestCluster};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use squall_control::identity::{cert_key, key_key, WorkerIdentity};
use squall_model::crd::Topology;
use squall_model::TlsMode;
use squall_proto::wire::{from_peer, Hello};
use squall_worker::codec::{self, Frame};

mod support;

use support::*;

const COUNT: u64 = 40_000;
/// The operator's `--ca-overlap-seconds` here.
const CA_OVERLAP: Duration = Duration::from_secs(10);

const ALPHA: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: alpha}
spec:
  workers: 2
  messageTimeoutSeconds: 10
  maxSpoutPending: 200
  pod: {image: squall/worker:test}
  spouts:
    - {name: numbers, component: const, parallelism: 2, config: {count: 40000, rate: 1000}}
  bolts:
    - {name: sink, component: "null", parallelism: 2, inputs: [{from: numbers, grouping: {type: shuffle}}]}
"#;

const BETA: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: beta}
spec:
  workers: 1
  pod: {image: squall/worker:test}
  spouts:
    - {name: numbers, component: const, config: {rate: 10}}
  bolts:
    - {name: sink, component: "null", inputs: [{from: numbers}]}
"#;

const PLAIN: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: plain}
spec:
  workers: 2
  tls: {mode: Disabled}
  pod: {image: squall/worker:test}
  spouts:
    - {name: numbers, component: sequence, parallelism: 2, config: {count: 2000}}
  bolts:
    - {name: sink, component: "null", parallelism: 2, inputs: [{from: numbers, grouping: {type: shuffle}}]}
"#;

/// Accepts any server certificate: the test dials as an intruder, and what it checks is
/// the worker's judgement of the dialer, not the other way round.
#[derive(Debug)]
struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A dialer's TLS configuration: with this certificate and key (PEM), or none.
fn dialer(identity: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(algs)));
    let mut cfg = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key.as_bytes())?)?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Opens a link to `addr` as a peer would and says hello; `Ok` when welcomed (tuples
/// could follow), else why not.
async fn exchange(addr: &str, tls: Option<Arc<rustls::ClientConfig>>, hello: Hello) -> Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| s(&e))?
        .connect_timeout(Duration::from_secs(2));
    let channel = match tls {
        None => endpoint.connect().await.map_err(|e| s(&e))?,
        Some(cfg) => {
            let connector = tower::service_fn(move |uri: http::Uri| {
                let cfg = Arc::clone(&cfg);
                async move {
                    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
                    let tcp = tokio::net::TcpStream::connect(authority).await?;
                    let name = ServerName::try_from("squall-worker").map_err(std::io::Error::other)?;
                    let conn = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(conn))
                }
            });
            endpoint
                .connect_with_connector(connector)
                .await
                .map_err(|e| s(&e))?
        }
    };
    let first = Frame::whole(squall_worker::wire::hello_frame(hello));
    let body = futures_util::stream::iter(vec![first]).chain(futures_util::stream::pending());
    let two = Duration::from_secs(2);
    let mut replies = tokio::time::timeout(two, codec::exchange(channel, body))
        .await
        .map_err(|e| s(&e))?
        .map_err(|e| s(&e))?;
    match tokio::time::timeout(two, replies.message()).await {
        Ok(Ok(Some(m))) if matches!(m.kind, Some(from_peer::Kind::Welcome(_))) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// The hello alpha's own workers send now.
async fn hello_of(client: &kube::Client, topology: &str) -> Result<Hello> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get(&format!("{topology}-assignment"))
        .await?;
    let data = cm.data.context("assignment ConfigMap without data")?;
    let assignment: squall_control::Assignment =
        serde_yaml_ng::from_str(&data[squall_control::ASSIGNMENT_KEY])?;
    let manifest = squall_model::TopologyManifest::from_yaml(&data[squall_control::MANIFEST_KEY], "cm")?;
    Ok(Hello {
        protocol: squall_proto::PROTOCOL,
        topology: topology.to_owned(),
        plan_hash: squall_control::plan_hash(&manifest)?,
        generation: assignment.generation,
        worker_id: "intruder".to_owned(),
    })
}

fn text(s: &Secret, key: &str) -> Result<String> {
    let b = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("no {key} in {}", s.name_any()))?;
    Ok(String::from_utf8(b.0.clone())?)
}

/// A certificate for `id` signed by the CA in Secret `ca` (as a CA shared by two
/// topologies, or one that misissued, would sign it).
fn signed_by(ca: &Secret, id: &WorkerIdentity) -> Result<(String, String)> {
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &text(ca, "tls.crt")?,
        rcgen::KeyPair::from_pem(&text(ca, "tls.key")?)?,
    )?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = vec![rcgen::SanType::URI(id.uri().try_into()?)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Every sample of every worker pod of `topology`, by pod.
async fn samples(pods: &Api<Pod>, topology: &str) -> BTreeMap<String, Vec<squall_worker::prom::Sample>> {
    let mut out = BTreeMap::new();
    let Ok(list) = pods
        .list(&ListParams::default().labels(&format!("squall.dev/topology={topology}")))
        .await
    else {
        return out;
    };
    for p in list.items {
        let Some(ip) = p.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        if let Some(page) = http_get(&format!("{ip}:9464"), "/metrics").await {
            out.insert(p.name_any(), squall_worker::prom::parse(&page));
        }
    }
    out
}

fn sum(
    all: &BTreeMap<String, Vec<squall_worker::prom::Sample>>,
    name: &str,
    label: Option<(&str, &str)>,
) -> f64 {
    all.values()
        .flatten()
        .filter(|s| s.0 == name)
        .filter(|s| label.is_none_or(|(k, v)| s.1.get(k).map(String::as_str) == Some(v)))
        .map(|s| s.2)
        .sum()
}

fn refused(all: &BTreeMap<String, Vec<squall_worker::prom::Sample>>, pod: &str, reason: &str) -> f64 {
    all.get(pod)
        .into_iter()
        .flatten()
        .filter(|s| s.0 == "squall_worker_tls_refused_total")
        .filter(|s| s.1.get("direction").map(String::as_str) == Some("inbound"))
        .filter(|s| s.1.get("reason").map(String::as_str) == Some(reason))
        .map(|s| s.2)
        .sum()
}

async fn pod_addr(pods: &Api<Pod>, name: &str) -> Result<String> {
    let ip = pods
        .get(name)
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .context("pod without IP")?;
    Ok(format!("{ip}:7000"))
}

/// Intruders get no welcome from alpha-0 and are counted; an alpha identity is welcomed.
async fn intruders_are_refused(cluster: &TestCluster, client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let addr = pod_addr(&pods, "alpha-0").await?;
    let hello = hello_of(client, "alpha").await?;
    let before = samples(&pods, "alpha").await;
    let beta = secrets.get("beta-worker-tls").await?;
    let (beta_cert, beta_key) = (
        text(&beta, &cert_key("beta-0"))?,
        text(&beta, &key_key("beta-0"))?,
    );
    let alpha_ca = secrets.get("alpha-ca").await?;
    let posing = signed_by(&alpha_ca, &WorkerIdentity::new(NS, "beta", "beta-0"))?;
    let cases: [(&str, Option<Arc<rustls::ClientConfig>>, &str); 4] = [
        ("plaintext", None, "handshake"),
        ("TLS without a certificate", Some(dialer(None)?), "no_certificate"),
        (
            "beta's certificate",
            Some(dialer(Some((&beta_cert, &beta_key)))?),
            "untrusted",
        ),
        (
            "alpha's CA, beta's identity",
            Some(dialer(Some((&posing.0, &posing.1)))?),
            "other_topology",
        ),
    ];
    for (what, tls, reason) in cases {
        let r = exchange(&addr, tls, hello.clone()).await;
        ensure!(r.is_err(), "{what}: welcomed by alpha-0");
        tracing::info!(what, error = ?r.err(), "refused");
        let was = refused(&before, "alpha-0", reason);
        eventually(
            &format!("{what} counted as {reason}"),
            Duration::from_secs(10),
            cluster.dir(),
            || async { (refused(&samples(&pods, "alpha").await, "alpha-0", reason) > was).then_some(()) },
        )
        .await?;
    }
    let member = signed_by(&alpha_ca, &WorkerIdentity::new(NS, "alpha", "alpha-9"))?;
    exchange(&addr, Some(dialer(Some((&member.0, &member.1)))?), hello)
        .await
        .map_err(|e| anyhow!("an alpha identity must be welcomed: {e}"))?;
    Ok(())
}

/// The certificate alpha-0 serves to a new connection.
async fn served_cert(addr: &str, client: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let conn = tokio_rustls::TlsConnector::from(Arc::clone(client))
        .connect(ServerName::try_from("squall-worker")?, tcp)
        .await?;
    let certs = conn
        .get_ref()
        .1
        .peer_certificates()
        .context("no peer certificate")?;
    Ok(certs[0].as_ref().to_vec())
}

fn der(pem: &str) -> Result<Vec<u8>> {
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?.as_ref().to_vec())
}

/// Forces a rotation mid-stream and checks both workers and new connections use it.
async fn rotation_mid_stream(cluster: &TestCluster, client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
    let acked = |all: &BTreeMap<String, Vec<squall_worker::prom::Sample>>| {
        sum(all, "squall_acked_total", Some(("component", "numbers")))
    };
    eventually(
        "alpha under way",
        Duration::from_secs(30),
        cluster.dir(),
        || async { (acked(&samples(&pods, "alpha").await) > 500.0).then_some(()) },
    )
    .await?;
    let old = text(&secrets.get("alpha-worker-tls").await?, &cert_key("alpha-0"))?;
    let patch =
        serde_json::json!({"metadata": {"annotations": {squall_operator::certs::ROTATE_ANNOTATION: "1"}}});
    topos
        .patch("alpha", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let new = eventually(
        "new certificates",
        Duration::from_secs(15),
        cluster.dir(),
        || async {
            let s = secrets.get("alpha-worker-tls").await.ok()?;
            text(&s, &cert_key("alpha-0")).ok().filter(|c| *c != old)
        },
    )
    .await?;
    let during = eventually(
        "both workers reloaded",
        Duration::from_secs(15),
        cluster.dir(),
        || async {
            let all = samples(&pods, "alpha").await;
            let each = all
                .values()
                .filter(|ss| {
                    ss.iter()
                        .any(|s| s.0 == "squall_worker_tls_reloads_total" && s.2 >= 1.0)
                })
                .count();
            (each == 2).then(|| acked(&all))
        },
    )
    .await?;
    ensure!(
        during < COUNT as f64,
        "the rotation must land mid-stream (acked {during})"
    );
    let secret = secrets.get("alpha-ca").await?;
    let member = signed_by(&secret, &WorkerIdentity::new(NS, "alpha", "alpha-9"))?;
    let served = served_cert(
        &pod_addr(&pods, "alpha-0").await?,
        &dialer(Some((&member.0, &member.1)))?,
    )
    .await?;
    ensure!(
        served == der(&new)?,
        "a new connection must get the rotated certificate"
    );
    ensure!(served != der(&old)?);
    Ok(())
}

/// Per alpha pod, the sum of `name`'s samples (with `label`, if given).
async fn per_pod(pods: &Api<Pod>, name: &str, label: Option<(&str, &str)>) -> BTreeMap<String, f64> {
    samples(pods, "alpha")
        .await
        .into_iter()
        .map(|(pod, ss)| {
            let one = BTreeMap::from([(pod.clone(), ss)]);
            (pod, sum(&one, name, label))
        })
        .collect()
}

/// Waits until both alpha workers loaded their certificates again since `before`;
/// returns how many of alpha's tuples were acked by then.
async fn both_reloaded(
    cluster: &TestCluster,
    pods: &Api<Pod>,
    before: &BTreeMap<String, f64>,
    what: &str,
) -> Result<f64> {
    let v = eventually(what, Duration::from_secs(20), cluster.dir(), || async {
        let now = per_pod(pods, "squall_worker_tls_reloads_total", None).await;
        let each = now
            .iter()
            .filter(|(pod, n)| **n > before.get(*pod).copied().unwrap_or(0.0))
            .count();
        if each < 2 {
            return None;
        }
        Some(sum(
            &samples(pods, "alpha").await,
            "squall_acked_total",
            Some(("component", "numbers")),
        ))
    })
    .await?;
    Ok(v)
}

/// Replaces alpha's CA on demand mid-stream: the old CA is trusted for the overlap, then
/// dropped; the links renew their sessions and a certificate of the old CA is refused.
async fn ca_replaced_mid_stream(cluster: &TestCluster, client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
    let addr = pod_addr(&pods, "alpha-0").await?;
    let hello = hello_of(client, "alpha").await?;
    let old_ca = secrets.get("alpha-ca").await?;
    let old_ca_cert = text(&old_ca, "tls.crt")?;
    // A member's certificate from the CA about to be replaced.
    let old_member = signed_by(&old_ca, &WorkerIdentity::new(NS, "alpha", "alpha-9"))?;
    let reloads = per_pod(&pods, "squall_worker_tls_reloads_total", None).await;
    let renewals = per_pod(&pods, "squall_worker_tls_link_renewals_total", None).await;
    let patch =
        serde_json::json!({"metadata": {"annotations": {squall_operator::certs::ROTATE_CA_ANNOTATION: "1"}}});
    topos
        .patch("alpha", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    eventually("a new CA", Duration::from_secs(15), cluster.dir(), || async {
        let s = secrets.get("alpha-ca").await.ok()?;
        (text(&s, "tls.crt").ok()? != old_ca_cert && text(&s, "previous.crt").ok()? == old_ca_cert)
            .then_some(())
    })
    .await?;
    let during = both_reloaded(
        cluster,
        &pods,
        &reloads,
        "both workers loaded the new CA's certificates",
    )
    .await?;
    ensure!(
        during < COUNT as f64,
        "the CA replacement must land mid-stream (acked {during})"
    );
    // Within the overlap the old CA is still trusted.
    exchange(
        &addr,
        Some(dialer(Some((&old_member.0, &old_member.1)))?),
        hello.clone(),
    )
    .await
    .map_err(|e| anyhow!("within the overlap the old CA must still be trusted: {e}"))?;
    let reloads = per_pod(&pods, "squall_worker_tls_reloads_total", None).await;
    eventually(
        "the old CA dropped after the overlap",
        CA_OVERLAP + Duration::from_secs(20),
        cluster.dir(),
        || async {
            let ca = secrets.get("alpha-ca").await.ok()?;
            let workers = secrets.get("alpha-worker-tls").await.ok()?;
            let bundle = text(&workers, squall_control::identity::CA_CERT_KEY).ok()?;
            (ca.data.as_ref()?.get("previous.crt").is_none() && !bundle.contains(old_ca_cert.trim()))
                .then_some(())
        },
    )
    .await?;
    let at_drop = both_reloaded(
        cluster,
        &pods,
        &reloads,
        "both workers loaded the bundle without the old CA",
    )
    .await?;
    tracing::info!(during, at_drop, "CA replaced, then the old one dropped");
    ensure!(
        at_drop < COUNT as f64,
        "the old CA must be dropped mid-stream (acked {at_drop})"
    );
    // The links renewed their sessions: at the replacement and at the drop, on each worker.
    let renewed = eventually(
        "renewals counted",
        Duration::from_secs(15),
        cluster.dir(),
        || async {
            let now = per_pod(&pods, "squall_worker_tls_link_renewals_total", None).await;
            let each = now
                .iter()
                .filter(|(pod, n)| **n >= renewals.get(*pod).copied().unwrap_or(0.0) + 2.0)
                .count();
            (each == 2).then_some(now)
        },
    )
    .await?;
    let all = samples(&pods, "alpha").await;
    let by_reason = |r: &str| sum(&all, "squall_worker_tls_link_renewals_total", Some(("reason", r)));
    let (reload, peer) = (by_reason("reload"), by_reason("peer"));
    tracing::info!(?renewed, reload, peer, "link renewals");
    ensure!(
        reload >= 4.0,
        "each worker renews its link at each of its reloads ({reload})"
    );
    let expiry = sum(&all, "squall_worker_tls_link_certificate_expiry_seconds", None);
    ensure!(
        expiry > 0.0,
        "links report when their certificates expire ({expiry})"
    );
    // After the overlap, a certificate of the old CA is refused and counted. (A reload
    // of a half-written set of files may have been the one counted above: the bundle
    // without the old CA is then loaded within another second.)
    let before = samples(&pods, "alpha").await;
    let old_tls = dialer(Some((&old_member.0, &old_member.1)))?;
    eventually(
        "the old CA's certificate refused",
        Duration::from_secs(10),
        cluster.dir(),
        || async {
            exchange(&addr, Some(Arc::clone(&old_tls)), hello.clone())
                .await
                .err()
        },
    )
    .await?;
    let was = refused(&before, "alpha-0", "untrusted");
    eventually(
        "the old CA's certificate counted as untrusted",
        Duration::from_secs(10),
        cluster.dir(),
        || async { (refused(&samples(&pods, "alpha").await, "alpha-0", "untrusted") > was).then_some(()) },
    )
    .await?;
    Ok(())
}

/// Alpha's stream ends with every tuple acked once: nothing was lost to the rotation or
/// to the intruders.
async fn alpha_complete(cluster: &TestCluster, client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let acked = |all: &BTreeMap<String, Vec<squall_worker::prom::Sample>>| {
        sum(all, "squall_acked_total", Some(("component", "numbers")))
    };
    let all = eventually(
        "alpha's stream complete",
        Duration::from_secs(60),
        cluster.dir(),
        || async {
            let all = samples(&pods, "alpha").await;
            (acked(&all) >= COUNT as f64).then_some(all)
        },
    )
    .await?;
    let numbers = Some(("component", "numbers"));
    let (emitted, failed) = (
        sum(&all, "squall_emitted_total", numbers),
        sum(&all, "squall_failed_total", numbers),
    );
    let executed = sum(&all, "squall_executed_total", Some(("component", "sink")));
    tracing::info!(emitted, acked = acked(&all), failed, executed, "alpha done");
    ensure!(
        acked(&all) == COUNT as f64 && failed == 0.0,
        "acked {} failed {failed}",
        acked(&all)
    );
    ensure!(
        executed == COUNT as f64,
        "the sink executed {executed}, not {COUNT}"
    );
    Ok(())
}

/// `plain` runs without TLS, says so, and has no Secrets nor a Secret in its Role.
async fn plaintext_by_spec(cluster: &TestCluster, client: &kube::Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
    let status = topos.get("plain").await?.status.context("no status")?;
    ensure!(
        status.tls == Some(TlsMode::Disabled),
        "plain's status: {:?}",
        status.tls
    );
    ensure!(secrets.get_opt("plain-worker-tls").await?.is_none());
    ensure!(secrets.get_opt("plain-ca").await?.is_none());
    let role = Api::<Role>::namespaced(client.clone(), NS)
        .get("plain-worker")
        .await?;
    ensure!(!role
        .rules
        .iter()
        .flatten()
        .any(|r| r.resources.iter().flatten().any(|x| x == "secrets")));
    let all = eventually(
        "plain's numbers acked",
        Duration::from_secs(30),
        cluster.dir(),
        || async {
            let all = samples(&pods, "plain").await;
            (sum(&all, "squall_acked_total", Some(("component", "numbers"))) >= 2000.0).then_some(all)
        },
    )
    .await?;
    ensure!(sum(&all, "squall_acked_total", Some(("component", "numbers"))) == 2000.0);
    ensure!(sum(&all, "squall_worker_tls", None) == 0.0);
    // Plaintext dialers reach it: it is the spec's choice.
    exchange(
        &pod_addr(&pods, "plain-0").await?,
        None,
        hello_of(client, "plain").await?,
    )
    .await
    .map_err(|e| anyhow!("plain must take plaintext links: {e}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_strangers_rotates_mid_stream_replaces_its_ca_and_can_be_turned_off() -> Result<()>
{
    bounded_for(Duration::from_secs(240), async {
        // The operator with a short CA overlap, so the old CA is dropped mid-stream.
        let cluster = kube_testenv::TestCluster::start().await?;
        install_crd(&cluster).await?;
        let _agent = cluster
            .start_node_agent("node-a", [(WORKER_IMAGE, worker_binary()?)])
            .await?;
        let client = cluster.client();
        let operator = spawn_operator_with(
            &client,
            NS,
            squall_operator::resources::WorkerDefaults {
                python_image: None,
                image: WORKER_IMAGE.to_owned(),
                lease_duration_seconds: 10,
                lease_renew_seconds: 2,
                cert_validity: squall_operator::resources::DEFAULT_CERT_VALIDITY,
                ca_overlap: CA_OVERLAP,
                limits: squall_model::Limits {
                    raise_with: squall_operator::RAISE_WITH.to_owned(),
                    ..squall_model::Limits::default()
                },
                network: Default::default(),
            },
        );
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        for yaml in [ALPHA, BETA, PLAIN] {
            topos.create(&PostParams::default(), &topology(yaml)?).await?;
        }
        for name in ["alpha", "beta", "plain"] {
            wait_running(&cluster, &topos, name, Duration::from_secs(90)).await?;
        }
        for name in ["alpha", "beta"] {
            let status = topos.get(name).await?.status.context("no status")?;
            ensure!(
                status.tls == Some(TlsMode::Mutual),
                "{name}'s status: {:?}",
                status.tls
            );
        }
        // The CA key stays in the operator's Secret; the workers' holds certificates.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
        let workers = secrets.get("alpha-worker-tls").await?;
        let keys: Vec<&String> = workers.data.iter().flatten().map(|(k, _)| k).collect();
        ensure!(
            keys == [
                "alpha-0.crt",
                "alpha-0.key",
                "alpha-1.crt",
                "alpha-1.key",
                "ca.crt"
            ],
            "{keys:?}"
        );
        let ca = secrets.get("alpha-ca").await?;
        let uid = topos.get("alpha").await?.uid().context("no uid")?;
        ensure!(owned_by(&ca.metadata, &uid) && owned_by(&workers.metadata, &uid));
        let role = Api::<Role>::namespaced(client.clone(), NS)
            .get("alpha-worker")
            .await?;
        let secret_names: Vec<String> = role
            .rules
            .iter()
            .flatten()
            .filter(|r| r.resources.iter().flatten().any(|x| x == "secrets"))
            .flat_map(|r| r.resource_names.clone().unwrap_or_default())
            .collect();
        ensure!(secret_names == ["alpha-worker-tls"], "{secret_names:?}");

        rotation_mid_stream(&cluster, &client).await?;
        ca_replaced_mid_stream(&cluster, &client).await?;
        intruders_are_refused(&cluster, &client).await?;
        alpha_complete(&cluster, &client).await?;
        plaintext_by_spec(&cluster, &client).await?;
        operator.abort();
        Ok(())
    })
    .await
}
