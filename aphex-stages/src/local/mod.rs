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
pub use cluster::{DirCluster, ManifestError};
pub use deployer::NoopDeployer;
pub use metrics::JsonLinesMetrics;
pub use notify::{NoopNotifier, WebhookNotifier};
pub use runs::DirRunRecorder;

/// Writes `bytes` to `path` atomically ([`crate::files::write_atomic`]);
/// `io` makes the port's error from what was being done (naming the file).
pub(crate) fn write_atomic<E, F>(path: &Path, bytes: &[u8], io: impl FnOnce(String) -> F) -> Result<(), E>
where
    F: FnOnce(std::io::Error) -> E,
{
    crate::files::write_atomic(path, bytes).map_err(io(format!("writing {}", path.display())))
}
