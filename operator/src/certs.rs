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
//! validity left, or when the `squall.dev/rotate-ca` annotation takes a new value; its
//! successor signs every worker certificate at once, and workers trust both CAs for the
//! overlap (`Policy::ca_overlap`, counted from that re-issue, and never past the old
//! CA's expiry), so no link is refused while they pick the new files up. Then the old CA
//! leaves the bundle, and a certificate it signed is refused.

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
/// The annotation that, set to a new value, makes the operator replace the topology's CA.
pub const ROTATE_CA_ANNOTATION: &str = "squall.dev/rotate-ca";
/// On the CA Secret: the value of [`ROTATE_CA_ANNOTATION`] its CA was made for.
const CA_ROTATED_FOR: &str = "squall.dev/ca-rotated-for";
/// On the CA Secret: until when (Unix seconds) the previous CA stays trusted.
const PREVIOUS_UNTIL: &str = "squall.dev/previous-ca-trusted-until";
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
    /// How long a replaced CA stays trusted after its successor re-issued every worker
    /// certificate.
    pub ca_overlap: Duration,
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

/// A topology CA: its certificate, key and predecessor still trusted (until when).
struct Ca {
    cert_pem: String,
    key_pem: String,
    previous: Option<(String, OffsetDateTime)>,
    /// The [`ROTATE_CA_ANNOTATION`] value it was made for.
    rotated_for: String,
}

impl Ca {
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CertError> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    /// What workers trust.
    fn bundle(&self) -> String {
        let mut b = self.cert_pem.clone();
        if let Some((p, _)) = &self.previous {
            b.push_str(p);
        }
        b
    }

    /// The CA Secret's data and annotations.
    fn secret(&self, t: &Topology) -> Result<Secret, CertError> {
        let mut d = BTreeMap::from([
            ("tls.crt".to_owned(), self.cert_pem.clone()),
            ("tls.key".to_owned(), self.key_pem.clone()),
        ]);
        let mut notes = BTreeMap::from([(CA_ROTATED_FOR.to_owned(), self.rotated_for.clone())]);
        if let Some((p, until)) = &self.previous {
            d.insert("previous.crt".to_owned(), p.clone());
            notes.insert(PREVIOUS_UNTIL.to_owned(), until.unix_timestamp().to_string());
        }
        let mut s = secret(ca_secret_name(&t.name_any()), t, d)?;
        s.metadata.annotations = Some(notes);
        Ok(s)
    }
}

/// The CA stored in `s`, with its expiry.
fn stored_ca(s: &Secret) -> Option<(Ca, OffsetDateTime)> {
    let cert_pem = pem_text(s, "tls.crt")?;
    let (not_after, _) = read_cert(&cert_pem)?;
    let previous = pem_text(s, "previous.crt").and_then(|p| {
        let (expiry, _) = read_cert(&p)?;
        // Without a recorded end (an older operator wrote it): trusted until it expires.
        let until = s
            .annotations()
            .get(PREVIOUS_UNTIL)
            .and_then(|u| u.parse::<i64>().ok())
            .and_then(|u| OffsetDateTime::from_unix_timestamp(u).ok())
            .map_or(expiry, |u| u.min(expiry));
        Some((p, until))
    });
    let ca = Ca {
        cert_pem,
        key_pem: pem_text(s, "tls.key")?,
        previous,
        rotated_for: s.annotations().get(CA_ROTATED_FOR).cloned().unwrap_or_default(),
    };
    Some((ca, not_after))
}

fn new_ca(
    ns: &str,
    name: &str,
    policy: &Policy,
    previous: Option<(String, OffsetDateTime)>,
    rotated_for: String,
) -> Result<Ca, CertError> {
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
        rotated_for,
    })
}

/// What [`current_ca`] decided.
#[derive(Debug, PartialEq, Eq)]
enum CaChange {
    /// The stored CA stays, as it is.
    None,
    /// The stored CA stays; its predecessor's overlap ended and it leaves the bundle.
    DropPrevious,
    /// A new CA: every worker certificate must be issued again.
    New,
}

/// The CA to use: the stored one, or a new one when there is none, it is due, or the
/// topology's [`ROTATE_CA_ANNOTATION`] asks for one; and what changed.
fn current_ca(stored: Option<&Secret>, t: &Topology, policy: &Policy) -> Result<(Ca, CaChange), CertError> {
    let (ns, name) = (t.namespace().unwrap_or_default(), t.name_any());
    let wanted = t
        .annotations()
        .get(ROTATE_CA_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let life = policy.span(CA_LIFETIMES)?;
    match stored.and_then(stored_ca) {
        Some((ca, not_after)) if !policy.due(not_after, life) && ca.rotated_for == wanted => {
            // The overlap is over (or the predecessor expired): nothing it signed is
            // trusted any more.
            match ca.previous {
                Some((_, until)) if until <= policy.now => {
                    Ok((Ca { previous: None, ..ca }, CaChange::DropPrevious))
                }
                _ => Ok((ca, CaChange::None)),
            }
        }
        Some((old, not_after)) => {
            // Its successor re-issues every worker certificate in this same pass, so the
            // overlap starts now.
            let overlap =
                time::Duration::try_from(policy.ca_overlap).map_err(|e| CertError::Time(e.to_string()))?;
            let until = (policy.now + overlap).min(not_after);
            let keep = (not_after > policy.now).then_some((old.cert_pem, until));
            Ok((new_ca(&ns, &name, policy, keep, wanted)?, CaChange::New))
        }
        None => Ok((new_ca(&ns, &name, policy, None, wanted)?, CaChange::New)),
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
    let (ca, ca_change) = current_ca(stored_ca, t, policy)?;
    let ca_changed = ca_change == CaChange::New;
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
    let ca_secret = match ca_change {
        CaChange::None => None,
        CaChange::New | CaChange::DropPrevious => Some(ca.secret(t)?),
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
    ca_overlap: Duration,
) -> Result<bool, crate::context::Error> {
    let ns = t.namespace().ok_or(crate::context::Error::NoNamespace)?;
    let name = t.name_any();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let stored_ca = api.get_opt(&ca_secret_name(&name)).await?;
    let stored = api.get_opt(&worker_secret_name(&name)).await?;
    let workers: Vec<String> = (0..replicas.max(0)).map(|i| format!("{name}-{i}")).collect();
    let policy = Policy {
        validity,
        ca_overlap,
        now: OffsetDateTime::now_utc(),
    };
    let (ca, certs) = plan(t, &workers, stored_ca.as_ref(), stored.as_ref(), &policy)?;
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    if let Some(ca) = ca {
        let previous = ca.data.as_ref().is_some_and(|d| d.contains_key("previous.crt"));
        api.patch(&ca_secret_name(&name), &ssa, &Patch::Apply(ca)).await?;
        tracing::info!(topology = %name, previous_trusted = previous, "topology CA written");
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

    const OVERLAP: Duration = Duration::from_secs(600);

    fn at(now: OffsetDateTime) -> Policy {
        Policy {
            validity: Duration::from_secs(3600),
            ca_overlap: OVERLAP,
            now,
        }
    }

    fn annotated(key: &str, value: &str) -> Topology {
        let mut t = topology(None);
        t.meta_mut().annotations = Some(BTreeMap::from([(key.to_owned(), value.to_owned())]));
        t
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
        // The predecessor is trusted for the overlap, not until it expires.
        let until = late + time::Duration::try_from(OVERLAP).unwrap();
        assert_eq!(
            new_ca.annotations()[PREVIOUS_UNTIL],
            until.unix_timestamp().to_string()
        );
    }

    #[test]
    fn a_ca_replaced_on_request_is_trusted_for_the_overlap_then_dropped() {
        let workers = vec!["t-0".to_owned(), "t-1".to_owned()];
        let t0 = OffsetDateTime::now_utc();
        let (ca, certs) = plan(&topology(None), &workers, None, None, &at(t0)).unwrap();
        let (ca, certs) = (ca.unwrap(), certs.unwrap());
        let old_ca = pem_text(&ca, "tls.crt").unwrap();
        let old_cert = pem_text(&certs, "t-0.crt").unwrap();

        // Asked for: a new CA now, every worker certificate issued again, both CAs trusted.
        let asked = annotated(ROTATE_CA_ANNOTATION, "1");
        let t1 = t0 + time::Duration::minutes(1);
        let (ca1, certs1) = plan(&asked, &workers, Some(&ca), Some(&certs), &at(t1)).unwrap();
        let (ca1, certs1) = (ca1.unwrap(), certs1.unwrap());
        let new_ca = pem_text(&ca1, "tls.crt").unwrap();
        assert_ne!(new_ca, old_ca);
        assert_eq!(pem_text(&ca1, "previous.crt").unwrap(), old_ca);
        assert_eq!(ca1.annotations()[CA_ROTATED_FOR], "1");
        for w in &workers {
            assert_ne!(pem_text(&certs1, &cert_key(w)), pem_text(&certs, &cert_key(w)));
        }
        assert_ne!(pem_text(&certs1, "t-0.crt").unwrap(), old_cert);
        assert_eq!(
            pem_text(&certs1, CA_CERT_KEY).unwrap(),
            format!("{new_ca}{old_ca}")
        );

        // Within the overlap the same annotation changes nothing.
        let inside = t1 + time::Duration::try_from(OVERLAP / 2).unwrap();
        let (a, b) = plan(&asked, &workers, Some(&ca1), Some(&certs1), &at(inside)).unwrap();
        assert!(a.is_none() && b.is_none());

        // After it, the old CA leaves the CA Secret and the bundle; the new one stays.
        let after = t1 + time::Duration::try_from(OVERLAP).unwrap();
        let (ca2, certs2) = plan(&asked, &workers, Some(&ca1), Some(&certs1), &at(after)).unwrap();
        let (ca2, certs2) = (ca2.unwrap(), certs2.unwrap());
        assert_eq!(pem_text(&ca2, "tls.crt").unwrap(), new_ca);
        assert!(pem_text(&ca2, "previous.crt").is_none());
        assert!(!ca2.annotations().contains_key(PREVIOUS_UNTIL));
        assert_eq!(pem_text(&certs2, CA_CERT_KEY).unwrap(), new_ca);

        // And then it is stable.
        let later = after + time::Duration::minutes(1);
        let (a, b) = plan(&asked, &workers, Some(&ca2), Some(&certs2), &at(later)).unwrap();
        assert!(a.is_none() && b.is_none());

        // Another value replaces it again.
        let again = annotated(ROTATE_CA_ANNOTATION, "2");
        let (ca3, _) = plan(&again, &workers, Some(&ca2), Some(&certs2), &at(later)).unwrap();
        let ca3 = ca3.unwrap();
        assert_ne!(pem_text(&ca3, "tls.crt").unwrap(), new_ca);
        assert_eq!(pem_text(&ca3, "previous.crt").unwrap(), new_ca);
    }

    #[test]
    fn a_previous_ca_is_never_trusted_past_its_own_expiry() {
        let t0 = OffsetDateTime::now_utc();
        let (ca, _) = plan(&topology(None), &["t-0".to_owned()], None, None, &at(t0)).unwrap();
        let ca = ca.unwrap();
        // An overlap longer than what the old CA has left ends at its expiry.
        let policy = Policy {
            ca_overlap: Duration::from_secs(3600 * u64::from(CA_LIFETIMES) * 2),
            ..at(t0)
        };
        let (ca1, _) = plan(
            &annotated(ROTATE_CA_ANNOTATION, "x"),
            &["t-0".to_owned()],
            Some(&ca),
            None,
            &policy,
        )
        .unwrap();
        let ca1 = ca1.unwrap();
        let (old_expiry, _) = read_cert(&pem_text(&ca, "tls.crt").unwrap()).unwrap();
        assert_eq!(
            ca1.annotations()[PREVIOUS_UNTIL],
            old_expiry.unix_timestamp().to_string()
        );
        // A CA made while the annotation is already set is not replaced for it.
        let (fresh, _) = plan(
            &annotated(ROTATE_CA_ANNOTATION, "x"),
            &["t-0".to_owned()],
            None,
            None,
            &at(t0),
        )
        .unwrap();
        let fresh = fresh.unwrap();
        let (a, _) = plan(
            &annotated(ROTATE_CA_ANNOTATION, "x"),
            &["t-0".to_owned()],
            Some(&fresh),
            None,
            &at(t0 + time::Duration::minutes(1)),
        )
        .unwrap();
        assert!(a.is_none());
    }
}
