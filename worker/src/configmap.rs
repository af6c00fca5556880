//! Follows a ConfigMap that carries the assignment (`assignment.yaml`) and the manifest
//! (`topology.yaml`), as the operator writes them, and mirrors both into a directory as
//! files. The worker then reads them like any assignment file.
//!
//! Why not a ConfigMap volume: a mounted volume lags by the kubelet's sync period (up to a
//! minute) and the test node agent has no volumes; reading through the API costs one GET a
//! second and is the same on every kind of node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};

use crate::assignment::Assignment;

pub use squall_control::{ASSIGNMENT_KEY, MANIFEST_KEY};

/// Why the ConfigMap could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No client configuration (kubeconfig or in-cluster).
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The files could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// No runtime for the sync thread.
    #[error("starting the sync runtime: {0}")]
    Runtime(std::io::Error),
}

/// Where to read from and write to.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Namespace of the ConfigMap.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// This worker's id: the first sync waits until the assignment names it.
    pub worker_id: String,
    /// The assignment file to write; the manifest goes next to it.
    pub assignment: PathBuf,
    /// Poll period.
    pub every: Duration,
}

fn write_atomic(path: &Path, text: &str) -> Result<(), SyncError> {
    let io = |source| SyncError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Mirrors the ConfigMap once if it has both keys; returns whether the assignment names
/// this worker. Unchanged content is not rewritten, so the worker does not reload.
async fn sync_once(api: &Api<ConfigMap>, cfg: &SyncConfig, last: &mut Option<(String, String)>) -> bool {
    let cm = match api.get_opt(&cfg.name).await {
        Ok(Some(cm)) => cm,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(configmap = %cfg.name, error = %e, "reading the assignment ConfigMap failed");
            return false;
        }
    };
    let data = cm.data.unwrap_or_default();
    let (Some(assignment), Some(manifest)) = (data.get(ASSIGNMENT_KEY), data.get(MANIFEST_KEY)) else {
        return false;
    };
    let names_me = serde_yaml_ng::from_str::<Assignment>(assignment)
        .map(|a| a.workers.iter().any(|w| w.id == cfg.worker_id))
        .unwrap_or(false);
    if !names_me {
        return false;
    }
    let current = (assignment.clone(), manifest.clone());
    if last.as_ref() == Some(&current) {
        return true;
    }
    let dir = cfg.assignment.parent().unwrap_or(Path::new("."));
    // The manifest first: a new assignment generation may refer to a changed manifest.
    let written = write_atomic(&dir.join(MANIFEST_KEY), manifest)
        .and_then(|()| write_atomic(&cfg.assignment, assignment));
    match written {
        Ok(()) => {
            tracing::info!(configmap = %cfg.name, "assignment updated from the ConfigMap");
            *last = Some(current);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "writing the assignment failed");
            false
        }
    }
}

/// Waits until the ConfigMap assigns this worker and its files are written, then keeps
/// them up to date from a background thread for the life of the process.
pub fn start(cfg: SyncConfig) -> Result<(), SyncError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SyncError::Runtime)?;
    if let Some(dir) = cfg.assignment.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SyncError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let client = rt.block_on(Client::try_default())?;
    let api: Api<ConfigMap> = Api::namespaced(client, &cfg.namespace);
    let mut last = None;
    rt.block_on(async {
        while !sync_once(&api, &cfg, &mut last).await {
            tokio::time::sleep(cfg.every).await;
        }
    });
    std::thread::Builder::new()
        .name("assignment-sync".into())
        .spawn(move || {
            rt.block_on(async {
                loop {
                    tokio::time::sleep(cfg.every).await;
                    sync_once(&api, &cfg, &mut last).await;
                }
            })
        })
        .map_err(SyncError::Runtime)?;
    Ok(())
}
