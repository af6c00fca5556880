//! Mutual TLS on worker links (rustls): every worker presents a certificate signed by its
//! topology's CA and requires the same of its peers. After the chain is verified, the
//! peer's identity (a `spiffe://squall.dev/ns/NS/topology/NAME/worker/POD` URI, see
//! [`squall_control::identity`]) must name this worker's own namespace and topology, read
//! from this worker's certificate; anything else is refused and counted on `/metrics`.
//!
//! The files are re-read when they change: new connections use the new certificate and
//! CA bundle, and every reload is announced ([`TlsLinks::reloads`]) so that links already
//! up renew their sessions (see [`crate::link::client`]): a session is only as trusted
//! as the chains verified at its handshake. Session resumption and tickets are off on
//! both sides, so each renewal verifies the chains in full.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use squall_control::identity::WorkerIdentity;

/// The name a dialer sends (SNI); identities are checked by URI, never by this name.
const SNI: &str = "squall-worker";

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// This worker's certificate chain; its URI names the topology and the worker.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA certificates to trust (one or more, so a CA can be rolled over).
    pub ca: PathBuf,
}

/// TLS files that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The certificate carries no worker identity URI.
    #[error("{0}: the certificate names no worker (no spiffe://squall.dev/... URI)")]
    NoIdentity(PathBuf),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The CA bundle could not make a verifier.
    #[error("TLS verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Why a handshake was refused, as the metric's `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A valid chain, but the identity names another topology (or none).
    OtherTopology,
    /// The chain does not lead to a trusted CA (another topology's CA, self-signed...).
    Untrusted,
    /// The dialer presented no certificate.
    NoCertificate,
    /// Not TLS, a protocol error, or too slow.
    Handshake,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::OtherTopology,
        Refusal::Untrusted,
        Refusal::NoCertificate,
        Refusal::Handshake,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::OtherTopology => "other_topology",
            Refusal::Untrusted => "untrusted",
            Refusal::NoCertificate => "no_certificate",
            Refusal::Handshake => "handshake",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// What an accept error means.
    pub fn of(error: &std::io::Error) -> Refusal {
        let tls = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        match tls {
            Some(rustls::Error::NoCertificatesPresented) => Refusal::NoCertificate,
            Some(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)) => {
                Refusal::OtherTopology
            }
            Some(rustls::Error::InvalidCertificate(_)) => Refusal::Untrusted,
            _ => Refusal::Handshake,
        }
    }
}

/// Refused handshakes: inbound (peers dialing this worker) and outbound (peers this worker
/// dialed), per reason.
#[derive(Debug, Default)]
pub struct Refusals {
    inbound: [AtomicU64; 4],
    outbound: [AtomicU64; 4],
}

impl Refusals {
    /// Counts an inbound refusal.
    pub fn inbound(&self, why: Refusal) {
        self.inbound[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn outbound(&self, why: Refusal) {
        self.outbound[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// `(direction, reason, count)` for every pair.
    pub fn counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (dir, counts) in [("inbound", &self.inbound), ("outbound", &self.outbound)] {
            for r in Refusal::ALL {
                out.push((dir, r.label(), counts[r.index()].load(Ordering::Relaxed)));
            }
        }
        out
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_err(path: &Path, what: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no certificate"));
    }
    Ok(certs)
}

/// The worker identity a certificate carries, if any.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<WorkerIdentity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => WorkerIdentity::parse(uri),
        _ => None,
    })
}

/// Checks a verified peer's identity against this worker's.
#[derive(Debug)]
struct Identity {
    me: WorkerIdentity,
}

impl Identity {
    fn check(&self, peer: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        match identity_of(peer) {
            Some(p) if self.me.same_topology(&p) => Ok(()),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }
}

/// The server side: webpki's client verifier, then the identity check.
#[derive(Debug)]
struct ClientCheck {
    inner: Arc<dyn ClientCertVerifier>,
    identity: Identity,
}

impl ClientCertVerifier for ClientCheck {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.identity.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The dialing side: the chain against the CA bundle (not the name: workers are dialed by
/// pod IP), then the identity check; refusals are counted as outbound.
#[derive(Debug)]
struct ServerCheck {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
    identity: Identity,
    refusals: Arc<Refusals>,
}

impl ServerCheck {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        self.identity.check(end_entity)
    }
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, now).inspect_err(|e| {
            let io = std::io::Error::other(e.clone());
            self.refusals.outbound(Refusal::of(&io));
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Both sides' configurations, and when this worker's certificate in them expires.
struct Configs {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    not_after: Option<SystemTime>,
}

/// When a certificate stops being valid, if it can be read.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let secs = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Both sides' configurations from the files.
fn configs(files: &TlsFiles, refusals: &Arc<Refusals>) -> Result<(Configs, WorkerIdentity), TlsError> {
    let chain = certs(&files.cert)?;
    let own_expiry = not_after(&chain[0]);
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| pem_err(&files.key, e))?;
    let me = identity_of(&chain[0]).ok_or_else(|| TlsError::NoIdentity(files.cert.clone()))?;
    let mut roots = RootCertStore::empty();
    for ca in certs(&files.ca)? {
        roots.add(ca)?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider)).build()?;
    let verifier = Arc::new(ClientCheck {
        inner,
        identity: Identity { me: me.clone() },
    });
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    // No resumption: a renewed link must verify both chains again, not resume a session
    // from before a rotation.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let check = ServerCheck {
        roots,
        algs: provider.signature_verification_algorithms,
        identity: Identity { me: me.clone() },
        refusals: Arc::clone(refusals),
    };
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(check))
        .with_client_auth_cert(chain, key)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    client.resumption = rustls::client::Resumption::disabled();
    let configs = Configs {
        server: Arc::new(server),
        client: Arc::new(client),
        not_after: own_expiry,
    };
    Ok((configs, me))
}

fn stamp(files: &TlsFiles) -> [Option<SystemTime>; 3] {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    [m(&files.cert), m(&files.key), m(&files.ca)]
}

/// Why a link renewed its TLS session, as the metric's `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// This worker reloaded its certificate or CA bundle.
    Reload,
    /// The peer reloaded its own and asked for a new session.
    Peer,
    /// A certificate the session was authenticated with is about to expire.
    Expiry,
}

impl Renewal {
    const ALL: [Renewal; 3] = [Renewal::Reload, Renewal::Peer, Renewal::Expiry];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Renewal::Reload => "reload",
            Renewal::Peer => "peer",
            Renewal::Expiry => "expiry",
        }
    }
}

/// TLS of a worker's links: the current configurations, swapped when the files change.
pub struct TlsLinks {
    files: TlsFiles,
    current: RwLock<Configs>,
    me: WorkerIdentity,
    stamp: Mutex<[Option<SystemTime>; 3]>,
    /// Refused handshakes.
    pub refusals: Arc<Refusals>,
    /// Certificates loaded after the first; links watch it to renew their sessions.
    reloads: tokio::sync::watch::Sender<u64>,
    /// Link sessions renewed, by [`Renewal`].
    renewals: [AtomicU64; 3],
}

impl fmt::Debug for TlsLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsLinks")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl TlsLinks {
    /// Loads the files.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let refusals = Arc::new(Refusals::default());
        let stamp = stamp(&files);
        let (current, me) = configs(&files, &refusals)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(current),
            me,
            stamp: Mutex::new(stamp),
            refusals,
            reloads: tokio::sync::watch::Sender::new(0),
            renewals: Default::default(),
        }))
    }

    /// This worker's identity.
    pub fn identity(&self) -> &WorkerIdentity {
        &self.me
    }

    /// Re-reads the files if any changed; returns whether new configurations are in use.
    /// Files caught half-written, or with a certificate for another identity, leave the
    /// current ones in use; the next change is tried again.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        {
            let mut seen = self.stamp.lock();
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match configs(&self.files, &self.refusals) {
            Ok((configs, me)) if me == self.me => {
                *self.current.write() = configs;
                self.reloads.send_modify(|n| *n += 1);
                tracing::info!(worker = %me.worker, "TLS certificate reloaded; links renew their sessions");
                true
            }
            Ok((_, other)) => {
                tracing::warn!(expected = %self.me.uri(), found = %other.uri(), "new TLS certificate names another worker; keeping the current one");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the TLS files; keeping the current ones");
                false
            }
        }
    }

    /// Reloads so far; `changed()` wakes at each new one.
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Counts a renewed link session.
    pub fn renewed(&self, why: Renewal) {
        self.renewals[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Renewed link sessions for `why`.
    pub fn renewals(&self, why: Renewal) -> u64 {
        self.renewals[why as usize].load(Ordering::Relaxed)
    }

    /// Accepts with the current server configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.current.read().server))
    }

    /// Dials with the current client configuration; also returns the earliest expiry of
    /// the two certificates the session was authenticated with (this worker's and the
    /// peer's), after which it must be renewed.
    pub async fn connect(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<(
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        Option<SystemTime>,
    )> {
        let (client, own) = {
            let c = self.current.read();
            (Arc::clone(&c.client), c.not_after)
        };
        let connector = tokio_rustls::TlsConnector::from(client);
        let name = ServerName::try_from(SNI).map_err(std::io::Error::other)?;
        let conn = connector.connect(name, tcp).await?;
        let peer = conn
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(not_after);
        let earliest = match (own, peer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok((conn, earliest))
    }
}

/// The TLS series of `/metrics`: whether links are mutual TLS, reloads, refused
/// handshakes, renewed link sessions, and how long until the earliest expiry of a
/// certificate on an outgoing link (`link_expiry`; no series while no link is up).
pub fn render_metrics(
    out: &mut String,
    topology: &str,
    worker: &str,
    tls: Option<&TlsLinks>,
    link_expiry: Option<SystemTime>,
) {
    use std::fmt::Write as _;
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let base = format!("topology=\"{}\",worker=\"{}\"", esc(topology), esc(worker));
    let _ = writeln!(
        out,
        "# HELP squall_worker_tls Whether this worker's links are mutual TLS."
    );
    let _ = writeln!(out, "# TYPE squall_worker_tls gauge");
    let _ = writeln!(out, "squall_worker_tls{{{base}}} {}", u8::from(tls.is_some()));
    let Some(tls) = tls else { return };
    let _ = writeln!(
        out,
        "# HELP squall_worker_tls_reloads_total Certificates loaded since start, after the first."
    );
    let _ = writeln!(out, "# TYPE squall_worker_tls_reloads_total counter");
    let reloads = *tls.reloads.borrow();
    let _ = writeln!(out, "squall_worker_tls_reloads_total{{{base}}} {reloads}");
    let _ = writeln!(
        out,
        "# HELP squall_worker_tls_refused_total TLS handshakes refused, by direction and reason."
    );
    let _ = writeln!(out, "# TYPE squall_worker_tls_refused_total counter");
    for (direction, reason, n) in tls.refusals.counts() {
        let _ = writeln!(
            out,
            "squall_worker_tls_refused_total{{{base},direction=\"{direction}\",reason=\"{reason}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP squall_worker_tls_link_renewals_total Outgoing link sessions renewed with a full handshake, by reason."
    );
    let _ = writeln!(out, "# TYPE squall_worker_tls_link_renewals_total counter");
    for r in Renewal::ALL {
        let _ = writeln!(
            out,
            "squall_worker_tls_link_renewals_total{{{base},reason=\"{}\"}} {}",
            r.label(),
            tls.renewals(r)
        );
    }
    let Some(at) = link_expiry else { return };
    // Negative once expired: an alert on it should not need a second series.
    let left = match at.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    let _ = writeln!(
        out,
        "# HELP squall_worker_tls_link_certificate_expiry_seconds Seconds until the earliest expiry of a certificate in use on an outgoing link."
    );
    let _ = writeln!(
        out,
        "# TYPE squall_worker_tls_link_certificate_expiry_seconds gauge"
    );
    let _ = writeln!(
        out,
        "squall_worker_tls_link_certificate_expiry_seconds{{{base}}} {left:.0}"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

    use super::*;

    fn write(dir: &Path, uri: Option<&str>) -> TlsFiles {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let mut leaf = CertificateParams::new(vec!["squall-worker".to_owned()]).unwrap();
        if let Some(u) = uri {
            leaf.subject_alt_names.push(SanType::URI(u.try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ca).unwrap();
        let files = TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: dir.join("ca.crt"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(&files.ca, ca.pem()).unwrap();
        files
    }

    #[test]
    fn the_identity_comes_from_the_certificate_and_a_reload_must_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let me = WorkerIdentity::new("ns", "t", "t-0");
        let links = TlsLinks::load(write(dir.path(), Some(&me.uri()))).unwrap();
        assert_eq!(links.identity(), &me);
        // Resumption stays off: a renewed link must verify the chains again.
        assert_eq!(links.current.read().server.send_tls13_tickets, 0);
        let mut reloads = links.reloads();
        assert!(!links.reload_if_changed(), "nothing changed");
        // Another worker's certificate is not taken; the current one stays in use.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir.path(), Some(&WorkerIdentity::new("ns", "t", "t-1").uri()));
        assert!(!links.reload_if_changed());
        assert!(!reloads.has_changed().unwrap(), "no reload, no renewal");
        // A new certificate for the same worker is.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir.path(), Some(&me.uri()));
        assert!(links.reload_if_changed());
        // Links waiting on reloads are woken.
        assert!(reloads.has_changed().unwrap());
        assert_eq!(*reloads.borrow_and_update(), 1);
        let mut page = String::new();
        let soon = SystemTime::now() + Duration::from_secs(90);
        render_metrics(&mut page, "t", "t-0", Some(&links), Some(soon));
        assert!(page.contains("squall_worker_tls_reloads_total{topology=\"t\",worker=\"t-0\"} 1"));
        assert!(page.contains("direction=\"inbound\",reason=\"other_topology\"} 0"));
        assert!(page.contains(
            "squall_worker_tls_link_renewals_total{topology=\"t\",worker=\"t-0\",reason=\"peer\"} 0"
        ));
        let expiry = page
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "squall_worker_tls_link_certificate_expiry_seconds{topology=\"t\",worker=\"t-0\"} ",
                )
            })
            .unwrap();
        let left: f64 = expiry.parse().unwrap();
        assert!((85.0..=90.0).contains(&left), "{left}");
    }

    #[test]
    fn a_certificate_without_a_worker_identity_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(dir.path(), None);
        assert!(matches!(TlsLinks::load(files), Err(TlsError::NoIdentity(_))));
    }

    #[test]
    fn refusals_are_told_apart_by_the_rustls_error() {
        let err = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(
            Refusal::of(&err(rustls::Error::NoCertificatesPresented)),
            Refusal::NoCertificate
        );
        let app = rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure);
        assert_eq!(Refusal::of(&err(app)), Refusal::OtherTopology);
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(Refusal::of(&err(unknown)), Refusal::Untrusted);
        assert_eq!(Refusal::of(&std::io::Error::other("eof")), Refusal::Handshake);
    }
}
