//! Reading a `Topology` manifest from YAML, as `kubectl apply` and `squall run` both take it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::TopologySpec;

/// The API group of Squall's resources.
pub const GROUP: &str = "squall.dev";
/// The served version of the Topology resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of a Topology manifest.
pub const API_VERSION: &str = "squall.dev/v1alpha1";
/// `kind` of a Topology manifest.
pub const KIND: &str = "Topology";

/// A whole Topology manifest: the same document a user `kubectl apply`s.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologyManifest {
    /// Must be `squall.dev/v1alpha1`.
    pub api_version: String,
    /// Must be `Topology`.
    pub kind: String,
    /// Object metadata; only the fields local mode uses are read.
    pub metadata: Metadata,
    /// The topology itself.
    pub spec: TopologySpec,
    /// Status written by the operator; ignored when reading.
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

/// The parts of Kubernetes object metadata that matter outside a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The topology's name.
    #[serde(default)]
    pub name: String,
    /// Namespace, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// YAML syntax or a value of the wrong type.
    #[error("{origin}:{line}:{column}: {field}{message}")]
    Syntax {
        /// File name or `<input>`.
        origin: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// Path of the offending field followed by `: `, or empty.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Parsed, but not a Topology.
    #[error("{origin}: expected apiVersion {API_VERSION} and kind {KIND}, found apiVersion {api_version:?} and kind {kind:?}")]
    WrongKind {
        /// File name or `<input>`.
        origin: String,
        /// What the document says.
        api_version: String,
        /// What the document says.
        kind: String,
    },
}

impl TopologyManifest {
    /// Reads a manifest from a file.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses a manifest; `origin` names the input in error messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ManifestError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let manifest: TopologyManifest =
            serde_path_to_error::deserialize(de).map_err(|err| syntax_error(err, origin))?;
        if manifest.api_version != API_VERSION || manifest.kind != KIND {
            return Err(ManifestError::WrongKind {
                origin: origin.to_owned(),
                api_version: manifest.api_version,
                kind: manifest.kind,
            });
        }
        Ok(manifest)
    }

    /// Serializes back to YAML.
    pub fn to_yaml(&self) -> Result<String, serde_yaml_ng::Error> {
        serde_yaml_ng::to_string(self)
    }
}

fn syntax_error(err: serde_path_to_error::Error<serde_yaml_ng::Error>, origin: &str) -> ManifestError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let (line, column) = inner.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    let mut message = inner.to_string();
    // serde_yaml appends " at line L column C"; we print the location up front instead.
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    let field = if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("{path}: ")
    };
    ManifestError::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        field,
        message,
    }
}
