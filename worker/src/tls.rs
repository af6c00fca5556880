//! Optional TLS on worker links: every worker presents a certificate signed by the
//! topology's CA and requires the same of its peers (mutual TLS).

use std::path::PathBuf;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// This worker's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that signs every worker's certificate.
    pub ca: PathBuf,
    /// The name peers' certificates are checked against (one name for all workers).
    pub server_name: String,
}

/// A TLS file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct TlsError {
    path: PathBuf,
    source: std::io::Error,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError {
        path: path.clone(),
        source,
    })
}

impl TlsFiles {
    /// Both sides' configurations.
    pub fn configs(&self) -> Result<(ServerTlsConfig, ClientTlsConfig), TlsError> {
        let identity = Identity::from_pem(read(&self.cert)?, read(&self.key)?);
        let ca = Certificate::from_pem(read(&self.ca)?);
        let server = ServerTlsConfig::new()
            .identity(identity.clone())
            .client_ca_root(ca.clone());
        let client = ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(identity)
            .domain_name(self.server_name.clone());
        Ok((server, client))
    }
}
