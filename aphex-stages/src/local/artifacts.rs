//! The directory artifact store: `<root>/<pipeline>/<commit-sha>/` holds the
//! archive and `metadata.json` (commit SHA and timestamp included, standing
//! in for S3 object tags).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{io_err, write_atomic};
use crate::artifact::{ARCHIVE_NAME, sha256_file};
use crate::ports::{ArtifactMetadata, ArtifactStore, PortError};

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

    /// Directory of one commit's artifacts.
    pub fn dir_of(&self, pipeline: &str, commit_sha: &str) -> PathBuf {
        self.root.join(pipeline).join(commit_sha)
    }
}

#[async_trait]
impl ArtifactStore for DirArtifactStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn put(&self, archive: &Path, metadata: &ArtifactMetadata) -> Result<(), PortError> {
        let dir = self.dir_of(&metadata.pipeline, &metadata.commit_sha);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let bytes = std::fs::read(archive).map_err(io_err(format!("reading {}", archive.display())))?;
        write_atomic(&dir.join(ARCHIVE_NAME), &bytes)?;
        let meta = serde_json::to_vec_pretty(metadata).expect("metadata serializes");
        // Metadata last: an archive without metadata is treated as absent.
        write_atomic(&dir.join("metadata.json"), &meta)
    }

    async fn get(
        &self,
        pipeline: &str,
        commit_sha: &str,
        dest: &Path,
    ) -> Result<ArtifactMetadata, PortError> {
        let dir = self.dir_of(pipeline, commit_sha);
        let meta_path = dir.join("metadata.json");
        let meta = match std::fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PortError::NotFound {
                    what: format!("artifacts of {pipeline}/{commit_sha} in {}", self.root.display()),
                });
            }
            Err(e) => return Err(io_err(format!("reading {}", meta_path.display()))(e)),
        };
        let metadata: ArtifactMetadata = serde_json::from_slice(&meta).map_err(|e| PortError::Other {
            context: format!("parsing {}", meta_path.display()),
            source: Box::new(e),
        })?;
        let src = dir.join(ARCHIVE_NAME);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        std::fs::copy(&src, dest).map_err(io_err(format!("copying {}", src.display())))?;
        let (_, actual) = sha256_file(dest).map_err(|e| PortError::Other {
            context: format!("hashing {}", dest.display()),
            source: Box::new(e),
        })?;
        if actual != metadata.sha256 {
            return Err(PortError::Corrupt {
                what: src.display().to_string(),
                expected: metadata.sha256,
                actual,
            });
        }
        Ok(metadata)
    }
}
