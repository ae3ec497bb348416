//! Local adapters for the ports: everything a run needs on one machine,
//! kept in plain files under one directory (`.aphex/` for `aphex run --local`).
//! Writes are atomic (temp file + rename + directory sync, see
//! [`crate::files`]), so a crash never leaves half a record behind, and
//! private (`0700` directories, `0600` files). [`NoopDeployer`] is the
//! deployer of `--deployer fake`: it deploys nothing.

mod artifacts;
mod cluster;
pub(crate) mod deployer;
mod metrics;
mod notify;
mod runs;

use std::path::Path;

pub use artifacts::DirArtifactStore;
pub use cluster::DirCluster;
pub use deployer::NoopDeployer;
pub use metrics::JsonLinesMetrics;
pub use notify::{NoopNotifier, WebhookNotifier};
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

/// Writes `bytes` to `path` atomically ([`crate::files::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PortError> {
    crate::files::write_atomic(path, bytes).map_err(io_err(format!("writing {}", path.display())))
}
