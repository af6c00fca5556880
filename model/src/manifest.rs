//! Reading a `Topology` manifest from YAML, as `kubectl apply` and `squall run` both take it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::depth;
use crate::limits::{LimitKey, Limits};
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
    /// Over a limit before parsing: too many bytes or too deeply nested.
    #[error("{origin}: {message}")]
    Limit {
        /// File name or `<input>`, with the line when one is at fault.
        origin: String,
        /// Which limit, by how much, and how to raise it.
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
    /// Reads a manifest from a file, within the default [`Limits`].
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        Self::from_file_within(path, &Limits::default())
    }

    /// Reads a manifest from a file; a file over `limits.max_manifest_bytes` is refused
    /// without being read whole.
    pub fn from_file_within(path: &Path, limits: &Limits) -> Result<Self, ManifestError> {
        use std::io::Read as _;
        let io = |source| ManifestError::Io {
            path: path.to_owned(),
            source,
        };
        let origin = path.display().to_string();
        let file = std::fs::File::open(path).map_err(io)?;
        if let Ok(meta) = file.metadata() {
            check_size(usize::try_from(meta.len()).unwrap_or(usize::MAX), &origin, limits)?;
        }
        let mut bytes = Vec::new();
        file.take(limits.max_manifest_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        check_size(bytes.len(), &origin, limits)?;
        let text = String::from_utf8(bytes).map_err(|e| ManifestError::Syntax {
            origin: origin.clone(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("not UTF-8: {e}"),
        })?;
        Self::from_yaml_within(&text, &origin, limits)
    }

    /// Parses a manifest within the default [`Limits`]; `origin` names the input in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ManifestError> {
        Self::from_yaml_within(text, origin, &Limits::default())
    }

    /// Parses a manifest after checking its size and nesting against `limits`, so that
    /// no input can make the parser's time or memory grow past what the limits allow.
    pub fn from_yaml_within(text: &str, origin: &str, limits: &Limits) -> Result<Self, ManifestError> {
        check_size(text.len(), origin, limits)?;
        // The scan may count a scalar list entry as a level; one level of slack keeps it
        // from refusing what the exact check on the parsed values accepts.
        let max_depth = limits.max_nesting_depth as usize;
        depth::scan_yaml(text, max_depth + 1).map_err(|e| ManifestError::Limit {
            origin: format!("{origin}:{}", e.line),
            message: limits.exceeded(LimitKey::NestingDepth, format!("nesting depth {}", e.depth)),
        })?;
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let manifest: TopologyManifest =
            serde_path_to_error::deserialize(de).map_err(|err| syntax_error(err, origin))?;
        if manifest.api_version != API_VERSION || manifest.kind != KIND {
            return Err(ManifestError::WrongKind {
                origin: origin.to_owned(),
                api_version: crate::limits::shorten(&manifest.api_version, 64),
                kind: crate::limits::shorten(&manifest.kind, 64),
            });
        }
        Ok(manifest)
    }

    /// Serializes back to YAML.
    pub fn to_yaml(&self) -> Result<String, serde_yaml_ng::Error> {
        serde_yaml_ng::to_string(self)
    }
}

fn check_size(len: usize, origin: &str, limits: &Limits) -> Result<(), ManifestError> {
    if len as u64 > limits.max_manifest_bytes {
        return Err(ManifestError::Limit {
            origin: origin.to_owned(),
            message: limits.exceeded(LimitKey::ManifestBytes, format!("a manifest of {len} bytes")),
        });
    }
    Ok(())
}

fn syntax_error(err: serde_path_to_error::Error<serde_yaml_ng::Error>, origin: &str) -> ManifestError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let (line, column) = inner.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    // Messages may quote the input; a long quote would bury the point.
    let mut message = crate::limits::shorten(&inner.to_string(), 400);
    // serde_yaml appends " at line L column C"; we print the location up front instead.
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    // serde_yaml may start its message with the path (or its parent) printed before it.
    if let Some((head, rest)) = message.split_once(": ") {
        if !head.is_empty() && path.starts_with(head) {
            message = rest.to_owned();
        }
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
