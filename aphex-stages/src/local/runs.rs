//! The directory run recorder: one JSON document per run at
//! `<root>/<pipeline>/<run-id>.json`, replaced atomically on every update.

use std::path::PathBuf;

use async_trait::async_trait;

use super::{io_err, write_atomic};
use crate::ports::{PortError, RunRecorder};
use crate::record::RunRecord;

/// Run records in a directory.
#[derive(Debug, Clone)]
pub struct DirRunRecorder {
    root: PathBuf,
}

impl DirRunRecorder {
    /// A recorder rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirRunRecorder { root: root.into() }
    }

    /// The file of run `id`.
    pub fn path_of(&self, pipeline: &str, id: &str) -> PathBuf {
        self.root.join(pipeline).join(format!("{id}.json"))
    }
}

fn parse(path: &std::path::Path, bytes: &[u8]) -> Result<RunRecord, PortError> {
    serde_json::from_slice(bytes).map_err(|e| PortError::Other {
        context: format!("parsing run record {}", path.display()),
        source: Box::new(e),
    })
}

#[async_trait]
impl RunRecorder for DirRunRecorder {
    async fn record(&self, run: &RunRecord) -> Result<(), PortError> {
        let bytes = serde_json::to_vec_pretty(run).expect("run record serializes");
        write_atomic(&self.path_of(&run.pipeline, &run.id), &bytes)
    }

    async fn load(&self, pipeline: &str, id: &str) -> Result<Option<RunRecord>, PortError> {
        let path = self.path_of(pipeline, id);
        match std::fs::read(&path) {
            Ok(b) => parse(&path, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }

    async fn list(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>, PortError> {
        let dir = self.root.join(pipeline);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(format!("listing {}", dir.display()))(e)),
        };
        let mut runs = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(io_err(format!("listing {}", dir.display())))?
                .path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
                runs.push(parse(&path, &bytes)?);
            }
        }
        // RFC 3339 UTC timestamps sort as strings; the id breaks ties.
        runs.sort_by(|a, b| (&b.started_at, &b.id).cmp(&(&a.started_at, &a.id)));
        runs.truncate(limit);
        Ok(runs)
    }
}
