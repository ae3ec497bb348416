//! Local adapters for the ports: everything a run needs on one machine,
//! kept in plain files under one directory (`.aphex/` for `aphex run --local`).
//! Writes are atomic (temp file + rename), so a crash never leaves half a
//! record behind.

mod artifacts;
mod cluster;
mod metrics;
mod notify;
mod runs;

use std::path::Path;

pub use artifacts::DirArtifactStore;
pub use cluster::DirCluster;
pub use metrics::JsonLinesMetrics;
pub use notify::{NoopNotifier, WebhookNotifier, notification_text};
pub use runs::DirRunRecorder;

use crate::ports::PortError;

/// Wraps an IO error with what was being done.
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PortError {
    let context = context.into();
    move |source| PortError::Other {
        context,
        source: Box::new(source),
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// then a rename over the target.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PortError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io_err(format!("creating a temp file in {}", dir.display())))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io_err(format!("writing {}", path.display())))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err(format!("syncing {}", path.display())))?;
    tmp.persist(path)
        .map_err(|e| io_err(format!("renaming into {}", path.display()))(e.error))?;
    Ok(())
}
