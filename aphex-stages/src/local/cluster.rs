//! The directory "cluster": applied manifests land one file per object at
//! `<root>/<namespace>/<kind>/<name>.json` (`_cluster` for objects without a
//! namespace), so a second apply shows exactly which objects changed.

use std::path::PathBuf;

use async_trait::async_trait;

use super::write_atomic;
use crate::ports::{ClusterError, ManifestApplier};

/// A directory standing in for a cluster.
#[derive(Debug, Clone)]
pub struct DirCluster {
    root: PathBuf,
}

impl DirCluster {
    /// A cluster rooted at `root` (created on first apply).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirCluster { root: root.into() }
    }

    /// The file holding object `kind`/`name` in `namespace` (`""` for none).
    pub fn path_of(&self, kind: &str, namespace: &str, name: &str) -> PathBuf {
        let ns = if namespace.is_empty() {
            "_cluster"
        } else {
            namespace
        };
        self.root
            .join(ns)
            .join(kind.to_ascii_lowercase())
            .join(format!("{name}.json"))
    }
}

/// Why a manifest cannot be written to the directory cluster.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// It has no `kind`.
    #[error("a manifest has no `kind`")]
    NoKind,
    /// It has no name.
    #[error("a {kind} manifest has no `metadata.name`")]
    NoName {
        /// Its kind.
        kind: String,
    },
    /// Its kind, namespace or name would not make a file name of its own.
    #[error("{kind} `{name}` has a name that is not a valid object name")]
    BadName {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
    },
}

/// `(kind, namespace, name)` of a manifest, or what is missing.
pub(crate) fn identity(m: &serde_json::Value) -> Result<(String, String, String), ManifestError> {
    let kind = m["kind"].as_str().ok_or(ManifestError::NoKind)?;
    let name = m["metadata"]["name"]
        .as_str()
        .ok_or_else(|| ManifestError::NoName {
            kind: kind.to_owned(),
        })?;
    let ns = m["metadata"]["namespace"].as_str().unwrap_or("");
    let safe = |s: &str| !s.is_empty() && !s.contains(['/', '\\']) && s != "." && s != "..";
    if !safe(kind) || !safe(name) || (!ns.is_empty() && !safe(ns)) {
        return Err(ManifestError::BadName {
            kind: kind.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok((kind.to_owned(), ns.to_owned(), name.to_owned()))
}

#[async_trait]
impl ManifestApplier for DirCluster {
    fn describe(&self) -> String {
        format!("directory cluster {}", self.root.display())
    }

    async fn current(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, ClusterError> {
        let path = self.path_of(kind, namespace, name);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| ClusterError::Json {
                    context: format!("parsing {}", path.display()),
                    source,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClusterError::io(format!("reading {}", path.display()))(e)),
        }
    }

    async fn apply(&self, manifests: &[serde_json::Value]) -> Result<(), ClusterError> {
        // Check every object first: a bad one must not leave half an apply.
        let ids = manifests
            .iter()
            .map(identity)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ClusterError::Manifest {
                context: "applying manifests".to_owned(),
                source,
            })?;
        for (m, (kind, ns, name)) in manifests.iter().zip(ids) {
            let mut bytes = serde_json::to_vec_pretty(m).expect("manifest serializes");
            bytes.push(b'\n');
            write_atomic(&self.path_of(&kind, &ns, &name), &bytes, ClusterError::io)?;
        }
        Ok(())
    }
}
