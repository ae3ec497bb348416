//! The directory "cluster": applied manifests land one file per object at
//! `<root>/<namespace>/<kind>/<name>.json` (`_cluster` for objects without a
//! namespace), so a second apply shows exactly which objects changed.
//! Submitted Workflows (a restart) land there too, under `workflow/`.

use std::path::PathBuf;

use async_trait::async_trait;

use super::write_atomic;
use crate::ports::{ClusterError, ManifestApplier, SubmitError, Submitted, WorkflowSubmitter};

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

/// Submitted Workflows land beside the applied objects, at
/// `<root>/<namespace>/workflow/<name>.json`, created once: a second
/// submission of a name writes nothing.
#[async_trait]
impl WorkflowSubmitter for DirCluster {
    fn describe(&self) -> String {
        format!("directory cluster {}", self.root.display())
    }

    async fn find(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, SubmitError> {
        let context = || format!("listing Workflows in {}", self.root.display());
        let namespaces = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(SubmitError::Other {
                    context: context(),
                    source: Box::new(e),
                });
            }
        };
        let mut names = Vec::new();
        for ns in namespaces.flatten() {
            let Ok(files) = std::fs::read_dir(ns.path().join("workflow")) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let workflow: serde_json::Value = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| SubmitError::Refused {
                        context: context(),
                        why: format!("{} is not a readable Workflow: remove it", path.display()),
                    })?;
                let has = |(k, v): &(&str, &str)| workflow["metadata"]["labels"][*k].as_str() == Some(*v);
                if labels.iter().all(has)
                    && !aphex_template::submit::has_finished(&workflow)
                    && let Some(name) = workflow["metadata"]["name"].as_str()
                {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    async fn submit(&self, workflow: &serde_json::Value) -> Result<Submitted, SubmitError> {
        let (kind, ns, name) = identity(workflow).map_err(|e| SubmitError::Refused {
            context: "submitting a Workflow".to_owned(),
            why: e.to_string(),
        })?;
        let path = self.path_of(&kind, &ns, &name);
        if path.exists() {
            return Ok(Submitted::AlreadyExists(name));
        }
        let mut bytes = serde_json::to_vec_pretty(workflow).expect("a Workflow serializes");
        bytes.push(b'\n');
        crate::files::write_atomic(&path, &bytes).map_err(|e| SubmitError::Other {
            context: format!("submitting Workflow {name}"),
            source: Box::new(e),
        })?;
        Ok(Submitted::Created(name))
    }
}
