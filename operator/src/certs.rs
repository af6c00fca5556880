//! Each topology's certificates for mutual TLS between its workers (rcgen).
//!
//! - `NAME-ca`: the topology's CA, certificate and key (`tls.crt`, `tls.key`), plus the
//!   previous CA's certificate while it is still valid (`previous.crt`). Read by the
//!   operator alone: the workers' Role does not name it.
//! - `NAME-worker-tls`: for each worker pod, `POD.crt` and `POD.key`, whose certificate
//!   carries the URI `spiffe://squall.dev/ns/NS/topology/NAME/worker/POD`, and `ca.crt`,
//!   the CAs to trust (current and previous). The workers watch it.
//!
//! Both are owned by the Topology. A worker's certificate is issued again when it has
//! less than a third of its validity left, when the CA changed, when its identity is not
//! the expected one, or when the Topology's `squall.dev/rotate-certificates` annotation
//! takes a new value. The CA is replaced when it has less than a third of its own
//! validity left; its successor signs the new certificates, and workers trust both until
//! the old one expires, so no link is refused while they pick the new ones up.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use squall_control::identity::{cert_key, key_key, WorkerIdentity, CA_CERT_KEY};
use squall_model::crd::Topology;
use time::OffsetDateTime;

use crate::resources::{meta, owner, BuildError};
use crate::FIELD_MANAGER;

/// The annotation that, set to a new value, makes the operator issue every worker
/// certificate of the topology again.
pub const ROTATE_ANNOTATION: &str = "squall.dev/rotate-certificates";
/// On the worker Secret: the value of [`ROTATE_ANNOTATION`] its certificates were issued for.
const ROTATED_FOR: &str = "squall.dev/rotated-for";
/// How long a topology CA is valid, as a multiple of a worker certificate's validity.
const CA_LIFETIMES: u32 = 30;

/// The Secret holding a topology's CA.
pub fn ca_secret_name(topology: &str) -> String {
    format!("{topology}-ca")
}

/// The Secret holding a topology's worker certificates.
pub fn worker_secret_name(topology: &str) -> String {
    format!("{topology}-worker-tls")
}

/// Why certificates could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused.
    #[error("issuing a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    /// A validity out of range.
    #[error("certificate validity: {0}")]
    Time(String),
    /// Owner or name missing.
    #[error(transparent)]
    Build(#[from] BuildError),
}

fn pem_text(s: &Secret, key: &str) -> Option<String> {
    let bytes = s.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Not-after, and the worker identity, of the first certificate of `pem`.
fn read_cert(pem: &str) -> Option<(OffsetDateTime, Option<WorkerIdentity>)> {
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = der.parse_x509().ok()?;
    let not_after = cert.validity().not_after.to_datetime();
    let id = cert.subject_alternative_name().ok().flatten().and_then(|san| {
        san.value.general_names.iter().find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => WorkerIdentity::parse(u),
            _ => None,
        })
    });
    Some((not_after, id))
}

/// What the issuing depends on.
pub struct Policy {
    /// Validity of a worker certificate.
    pub validity: Duration,
    /// Now.
    pub now: OffsetDateTime,
}

impl Policy {
    fn span(&self, times: u32) -> Result<time::Duration, CertError> {
        time::Duration::try_from(self.validity * times).map_err(|e| CertError::Time(e.to_string()))
    }

    /// Whether something valid until `not_after` for `life` must be renewed: less than a
    /// third of its life left.
    fn due(&self, not_after: OffsetDateTime, life: time::Duration) -> bool {
        not_after - self.now < life / 3
    }
}

/// A topology CA: its certificate, key and predecessor still trusted.
struct Ca {
    cert_pem: String,
    key_pem: String,
    previous: Option<String>,
}

impl Ca {
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CertError> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    /// What workers trust.
    fn bundle(&self) -> String {
        let mut b = self.cert_pem.clone();
        if let Some(p) = &self.previous {
            b.push_str(p);
        }
        b
    }
}

fn new_ca(ns: &str, name: &str, policy: &Policy, previous: Option<String>) -> Result<Ca, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("squall topology {ns}/{name} CA"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = policy.now - time::Duration::minutes(5);
    params.not_after = policy.now + policy.span(CA_LIFETIMES)?;
    let key = KeyPair::generate()?;
    let key_pem = key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(params, key)?;
    Ok(Ca {
        cert_pem: ca.pem(),
        key_pem,
        previous,
    })
}

/// The CA to use: the stored one, or a new one when there is none or it is due; the
/// boolean says whether it is new.
fn current_ca(
    stored: Option<&Secret>,
    ns: &str,
    name: &str,
    policy: &Policy,
) -> Result<(Ca, bool), CertError> {
    let stored = stored.and_then(|s| {
        let ca = Ca {
            cert_pem: pem_text(s, "tls.crt")?,
            key_pem: pem_text(s, "tls.key")?,
            previous: pem_text(s, "previous.crt"),
        };
        let (not_after, _) = read_cert(&ca.cert_pem)?;
        Some((ca, not_after))
    });
    let life = policy.span(CA_LIFETIMES)?;
    match stored {
        Some((ca, not_after)) if !policy.due(not_after, life) => {
            // Drop a predecessor that expired: nothing it signed is valid any more.
            let previous = ca
                .previous
                .filter(|p| read_cert(p).is_some_and(|(t, _)| t > policy.now));
            Ok((Ca { previous, ..ca }, false))
        }
        Some((old, not_after)) => {
            let keep = (not_after > policy.now).then_some(old.cert_pem);
            Ok((new_ca(ns, name, policy, keep)?, true))
        }
        None => Ok((new_ca(ns, name, policy, None)?, true)),
    }
}

fn issue(
    issuer: &Issuer<'_, KeyPair>,
    id: &WorkerIdentity,
    policy: &Policy,
) -> Result<(String, String), CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, id.worker.clone());
    params.subject_alt_names = vec![SanType::URI(id.uri().try_into()?)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Each worker both dials and accepts.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = policy.now - time::Duration::minutes(5);
    params.not_after = policy.now + policy.span(1)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn secret(name: String, t: &Topology, data: BTreeMap<String, String>) -> Result<Secret, CertError> {
    let topology = t.metadata.name.clone().ok_or(BuildError::Unnamed)?;
    Ok(Secret {
        metadata: meta(name, t.metadata.namespace.clone(), &owner(t)?, &topology),
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    })
}

/// The Secrets to write: the CA's when it changed, the workers' when any certificate
/// changed; `None` for one that stays as it is.
pub fn plan(
    t: &Topology,
    workers: &[String],
    stored_ca: Option<&Secret>,
    stored: Option<&Secret>,
    policy: &Policy,
) -> Result<(Option<Secret>, Option<Secret>), CertError> {
    let name = t.name_any();
    let ns = t.namespace().unwrap_or_default();
    let (ca, ca_changed) = current_ca(stored_ca, &ns, &name, policy)?;
    let wanted_rotation = t
        .annotations()
        .get(ROTATE_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let rotated_for = stored
        .and_then(|s| s.annotations().get(ROTATED_FOR).cloned())
        .unwrap_or_default();
    let bundle = ca.bundle();
    let reissue_all = ca_changed
        || wanted_rotation != rotated_for
        || stored.and_then(|s| pem_text(s, CA_CERT_KEY)).as_deref() != Some(bundle.as_str());
    let life = policy.span(1)?;
    let issuer = ca.issuer()?;
    let mut data = BTreeMap::from([(CA_CERT_KEY.to_owned(), bundle)]);
    let mut changed = reissue_all;
    for w in workers {
        let id = WorkerIdentity::new(&ns, &name, w);
        let kept = stored.filter(|_| !reissue_all).and_then(|s| {
            let (cert, key) = (pem_text(s, &cert_key(w))?, pem_text(s, &key_key(w))?);
            let (not_after, found) = read_cert(&cert)?;
            (found.as_ref() == Some(&id) && !policy.due(not_after, life)).then_some((cert, key))
        });
        let (cert, key) = match kept {
            Some(pair) => pair,
            None => {
                changed = true;
                issue(&issuer, &id, policy)?
            }
        };
        data.insert(cert_key(w), cert);
        data.insert(key_key(w), key);
    }
    // A worker that left keeps no certificate behind.
    let keys = stored
        .and_then(|s| s.data.as_ref())
        .map(BTreeMap::len)
        .unwrap_or(0);
    changed |= keys != data.len();
    let ca_secret = if ca_changed {
        let mut d = BTreeMap::from([
            ("tls.crt".to_owned(), ca.cert_pem.clone()),
            ("tls.key".to_owned(), ca.key_pem.clone()),
        ]);
        if let Some(p) = &ca.previous {
            d.insert("previous.crt".to_owned(), p.clone());
        }
        Some(secret(ca_secret_name(&name), t, d)?)
    } else {
        None
    };
    let workers_secret = if changed {
        let mut s = secret(worker_secret_name(&name), t, data)?;
        s.metadata.annotations = Some(BTreeMap::from([(ROTATED_FOR.to_owned(), wanted_rotation)]));
        Some(s)
    } else {
        None
    };
    Ok((ca_secret, workers_secret))
}

/// Makes sure the topology's CA and its workers' certificates exist and are current;
/// returns whether the workers' Secret was written.
pub async fn ensure(
    client: &Client,
    t: &Topology,
    replicas: i32,
    validity: Duration,
) -> Result<bool, crate::context::Error> {
    let ns = t.namespace().ok_or(crate::context::Error::NoNamespace)?;
    let name = t.name_any();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stored_ca = api.get_opt(&ca_secret_name(&name)).await?;
    let stored = api.get_opt(&worker_secret_name(&name)).await?;
    let workers: Vec<String> = (0..replicas.max(0)).map(|i| format!("{name}-{i}")).collect();
    let policy = Policy {
        validity,
        now: OffsetDateTime::now_utc(),
    };
    let (ca, certs) = plan(t, &workers, stored_ca.as_ref(), stored.as_ref(), &policy)?;
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    if let Some(ca) = ca {
        api.patch(&ca_secret_name(&name), &ssa, &Patch::Apply(ca)).await?;
        tracing::info!(topology = %name, "topology CA issued");
    }
    let wrote = certs.is_some();
    if let Some(certs) = certs {
        api.patch(&worker_secret_name(&name), &ssa, &Patch::Apply(certs))
            .await?;
        tracing::info!(topology = %name, workers = workers.len(), "worker certificates written");
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kube::Resource as _;

    use super::*;

    fn topology(annotation: Option<&str>) -> Topology {
        let yaml = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\n\
                    spec: {spouts: [{name: s, component: sequence}]}\n";
        let m = squall_model::TopologyManifest::from_yaml(yaml, "t").unwrap();
        let mut t = Topology::new("t", m.spec);
        t.meta_mut().namespace = Some("ns".into());
        t.meta_mut().uid = Some("u".into());
        if let Some(a) = annotation {
            t.meta_mut().annotations = Some(BTreeMap::from([(ROTATE_ANNOTATION.to_owned(), a.to_owned())]));
        }
        t
    }

    fn at(now: OffsetDateTime) -> Policy {
        Policy {
            validity: Duration::from_secs(3600),
            now,
        }
    }

    #[test]
    fn certificates_are_kept_until_due_and_rotated_on_request() {
        let workers = vec!["t-0".to_owned(), "t-1".to_owned()];
        let t0 = OffsetDateTime::now_utc();
        let t = topology(None);
        let (ca, certs) = plan(&t, &workers, None, None, &at(t0)).unwrap();
        let (ca, certs) = (ca.unwrap(), certs.unwrap());
        let cert0 = pem_text(&certs, "t-0.crt").unwrap();
        let (_, id) = read_cert(&cert0).unwrap();
        assert_eq!(
            id.unwrap().uri(),
            "spiffe://squall.dev/ns/ns/topology/t/worker/t-0"
        );
        assert!(pem_text(&certs, "t-1.key").is_some());
        // The CA key never goes to the workers' Secret.
        assert!(!certs
            .data
            .as_ref()
            .unwrap()
            .values()
            .any(|v| v.0 == ca.data.as_ref().unwrap()["tls.key"].0));

        // Half-way through: nothing to write.
        let mid = t0 + time::Duration::minutes(30);
        let (a, b) = plan(&t, &workers, Some(&ca), Some(&certs), &at(mid)).unwrap();
        assert!(a.is_none() && b.is_none());

        // Less than a third left: new worker certificates from the same CA.
        let late = t0 + time::Duration::minutes(45);
        let (a, b) = plan(&t, &workers, Some(&ca), Some(&certs), &at(late)).unwrap();
        assert!(a.is_none());
        assert_ne!(pem_text(&b.unwrap(), "t-0.crt").unwrap(), cert0);

        // Asked for by annotation.
        let (a, b) = plan(&topology(Some("1")), &workers, Some(&ca), Some(&certs), &at(mid)).unwrap();
        assert!(a.is_none());
        let b = b.unwrap();
        assert_ne!(pem_text(&b, "t-0.crt").unwrap(), cert0);
        assert_eq!(b.annotations()[ROTATED_FOR], "1");

        // A scale-down drops the certificate of the worker that left.
        let (_, b) = plan(&t, &workers[..1], Some(&ca), Some(&certs), &at(mid)).unwrap();
        assert!(pem_text(&b.unwrap(), "t-1.crt").is_none());
    }

    #[test]
    fn a_ca_near_its_end_is_replaced_and_its_predecessor_still_trusted() {
        let workers = vec!["t-0".to_owned()];
        let t0 = OffsetDateTime::now_utc();
        let t = topology(None);
        let (ca, certs) = plan(&t, &workers, None, None, &at(t0)).unwrap();
        let (ca, certs) = (ca.unwrap(), certs.unwrap());
        let late = t0 + time::Duration::hours(i64::from(CA_LIFETIMES) * 3 / 4);
        let (new_ca, b) = plan(&t, &workers, Some(&ca), Some(&certs), &at(late)).unwrap();
        let (new_ca, b) = (new_ca.unwrap(), b.unwrap());
        let old = pem_text(&ca, "tls.crt").unwrap();
        assert_ne!(pem_text(&new_ca, "tls.crt").unwrap(), old);
        assert_eq!(pem_text(&new_ca, "previous.crt").unwrap(), old);
        assert!(pem_text(&b, CA_CERT_KEY).unwrap().contains(old.trim()));
    }
}
