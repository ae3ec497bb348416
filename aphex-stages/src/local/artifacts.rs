//! The directory artifact store: `<root>/<pipeline>/<run-id>/` holds the
//! archive and `metadata.json` (commit SHA, run and timestamp included,
//! standing in for S3 object tags). Archives are copied as streams, never
//! read whole into memory; both files are written atomically, the metadata
//! last.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::write_atomic;
use crate::artifact::{ARCHIVE_NAME, sha256_file};
use crate::ports::{ArtifactMetadata, ArtifactStore, StoreError};
use crate::record::check_segment;

/// Artifacts in a directory.
#[derive(Debug, Clone)]
pub struct DirArtifactStore {
    root: PathBuf,
}

impl DirArtifactStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirArtifactStore { root: root.into() }
    }

    /// Directory of one run's artifacts.
    pub(crate) fn dir_of(&self, pipeline: &str, run_id: &str) -> PathBuf {
        self.root.join(pipeline).join(run_id)
    }
}

#[async_trait]
impl ArtifactStore for DirArtifactStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn put(&self, archive: &Path, metadata: &ArtifactMetadata) -> Result<(), StoreError> {
        check_segment("run id", &metadata.run_id)?;
        let dir = self.dir_of(&metadata.pipeline, &metadata.run_id);
        let mut from =
            std::fs::File::open(archive).map_err(StoreError::io(format!("reading {}", archive.display())))?;
        let stored = dir.join(ARCHIVE_NAME);
        crate::files::copy_atomic(&stored, &mut from)
            .map_err(StoreError::io(format!("writing {}", stored.display())))?;
        let meta = serde_json::to_vec_pretty(metadata).expect("metadata serializes");
        // Metadata last: an archive without metadata is treated as absent.
        write_atomic(&dir.join("metadata.json"), &meta, StoreError::io)
    }

    async fn get(&self, pipeline: &str, run_id: &str, dest: &Path) -> Result<ArtifactMetadata, StoreError> {
        check_segment("run id", run_id)?;
        let dir = self.dir_of(pipeline, run_id);
        let meta_path = dir.join("metadata.json");
        let meta = match std::fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    what: format!(
                        "artifacts of run {run_id} of {pipeline} in {}",
                        self.root.display()
                    ),
                });
            }
            Err(e) => return Err(StoreError::io(format!("reading {}", meta_path.display()))(e)),
        };
        let metadata: ArtifactMetadata =
            serde_json::from_slice(&meta).map_err(|source| StoreError::Metadata {
                context: format!("parsing {}", meta_path.display()),
                source,
            })?;
        let src = dir.join(ARCHIVE_NAME);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(StoreError::io(format!("creating {}", parent.display())))?;
        }
        std::fs::copy(&src, dest).map_err(StoreError::io(format!("copying {}", src.display())))?;
        let (size, actual) = sha256_file(dest).map_err(|source| StoreError::Archive {
            context: format!("hashing {}", dest.display()),
            source,
        })?;
        if actual != metadata.sha256 || size != metadata.size {
            // A corrupt archive must never be unpacked by mistake.
            let _ = std::fs::remove_file(dest);
            return Err(StoreError::Corrupt {
                what: src.display().to_string(),
                expected: metadata.sha256,
                actual,
            });
        }
        Ok(metadata)
    }
}
