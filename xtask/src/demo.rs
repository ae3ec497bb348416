//! `cargo xtask demo`: the README's main job. Today it validates the seed
//! configuration with the real `aphex` binary; it grows into the quick-start
//! pipeline run end to end against the local AWS emulator.

use anyhow::Result;

/// Runs the demo.
pub fn run() -> Result<()> {
    crate::cargo(&["run", "--quiet", "--package", "aphex-cli", "--", "validate", "examples/seed/aphex-config.yaml"])
}
