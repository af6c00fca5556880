//! Follows the Secret the operator keeps a topology's worker certificates in and mirrors
//! this worker's part into files (`tls.crt`, `tls.key`, `ca.crt`), which [`crate::tls`]
//! re-reads when they change. Same list+watch as the assignment ConfigMap (see
//! [`crate::configmap`]), for the same reasons: no volume lag, and the test node agent
//! has no volumes.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use squall_control::identity::{cert_key, key_key, CA_CERT_KEY};

use crate::configmap::{follow_object, SyncError};
use crate::tls::TlsFiles;

/// Where to read from and write to.
#[derive(Clone, Debug)]
pub struct SecretSyncConfig {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// This worker's id (its pod name): its keys in the Secret.
    pub worker_id: String,
    /// The directory the files go to (created, readable by this user only).
    pub dir: PathBuf,
}

impl SecretSyncConfig {
    /// The files it writes.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.join("tls.crt"),
            key: self.dir.join("tls.key"),
            ca: self.dir.join("ca.crt"),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file only this user may read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    let io = |source| SyncError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

struct Mirror {
    cfg: SecretSyncConfig,
    last: Option<[Vec<u8>; 3]>,
}

impl Mirror {
    /// Writes this worker's certificate, key and the CA bundle when the Secret has all
    /// three and they changed; returns whether the files hold them.
    fn apply(&mut self, secret: &Secret) -> Result<bool, SyncError> {
        let Some(data) = secret.data.as_ref() else {
            return Ok(false);
        };
        let get = |k: &str| data.get(k).map(|b| b.0.clone());
        let (Some(cert), Some(key), Some(ca)) = (
            get(&cert_key(&self.cfg.worker_id)),
            get(&key_key(&self.cfg.worker_id)),
            get(CA_CERT_KEY),
        ) else {
            return Ok(false);
        };
        let current = [cert, key, ca];
        if self.last.as_ref() == Some(&current) {
            return Ok(true);
        }
        let files = self.cfg.files();
        // The CA bundle first (it holds the old and the new CA while one rolls over),
        // then the key and the certificate; the reader retries a mismatched pair.
        write_private(&files.ca, &current[2])?;
        write_private(&files.key, &current[1])?;
        write_private(&files.cert, &current[0])?;
        tracing::info!(secret = %self.cfg.name, "TLS certificate updated from the Secret");
        self.last = Some(current);
        Ok(true)
    }
}

/// Waits until the Secret holds this worker's certificate and the files are written, then
/// keeps them up to date from a background thread; returns the files.
pub fn start(cfg: SecretSyncConfig) -> Result<TlsFiles, SyncError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SyncError::Runtime)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.dir)
        .map_err(|source| SyncError::Io {
            path: cfg.dir.clone(),
            source,
        })?;
    let files = cfg.files();
    let client = rt.block_on(Client::try_default())?;
    let api: Api<Secret> = Api::namespaced(client, &cfg.namespace);
    let (tx, rx) = std::sync::mpsc::channel();
    let name = cfg.name.clone();
    let mut mirror = Mirror { cfg, last: None };
    std::thread::Builder::new()
        .name("tls-sync".into())
        .spawn(move || {
            let mut first = Some(tx);
            let mut write = |s: &Secret| match mirror.apply(s) {
                Ok(true) => {
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                    true
                }
                Ok(false) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "writing the TLS files failed");
                    false
                }
            };
            rt.block_on(follow_object(&api, &name, &mut write));
        })
        .map_err(SyncError::Runtime)?;
    rx.recv().map_err(|_| SyncError::Stopped)?;
    Ok(files)
}
