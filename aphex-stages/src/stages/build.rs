//! The build stage: `build.commands` in order, stopping at the first
//! failure, then the artifacts packaged (tar + zstd, SHA-256, metadata) and
//! stored under this run (`<pipeline>/artifacts/<run-id>/`), where only
//! this run's deploy and test stages look.

use super::{StageError, StageOutcome, run_commands, run_env};
use crate::artifact::{ARCHIVE_NAME, pack};
use crate::context::StageContext;
use crate::ports::ArtifactMetadata;

/// The config file's name relative to the app's folder (where artifacts
/// are packed from and restored to): never an artifact.
pub(crate) fn config_name(ctx: &StageContext) -> std::path::PathBuf {
    std::path::Path::new(&ctx.config_file)
        .file_name()
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
}

const STAGE: &str = "build";

/// Runs the build stage.
pub async fn run(ctx: &StageContext) -> Result<StageOutcome, StageError> {
    run_commands(
        ctx,
        STAGE,
        "build.commands",
        "build",
        &ctx.config.build.commands,
        &run_env(ctx),
    )
    .await?;
    let paths = match &ctx.config.build.artifacts {
        Some(paths) if paths.is_empty() => {
            ctx.info(STAGE, "build.artifacts is empty: nothing to package");
            return Ok(StageOutcome::default());
        }
        Some(paths) => paths.clone(),
        None if ctx.checkout.join("artifacts").exists() => vec!["artifacts".to_owned()],
        None => {
            ctx.info(
                STAGE,
                "no build.artifacts configured and no artifacts/ directory: nothing to package",
            );
            return Ok(StageOutcome::default());
        }
    };
    let dir = ctx
        .fresh_dir("package")
        .map_err(StageError::io("creating a packaging directory"))?;
    let archive = dir.join(ARCHIVE_NAME);
    let packed = pack(&ctx.checkout, &paths, &config_name(ctx), &archive)?;
    let metadata = ArtifactMetadata {
        pipeline: ctx.run.pipeline.clone(),
        run_id: ctx.run.id.clone(),
        commit_sha: ctx.run.commit.clone(),
        timestamp: crate::time::now_rfc3339(),
        size: packed.size,
        sha256: packed.sha256.clone(),
        paths,
        unpacked_bytes: packed.unpacked_bytes,
        entries: packed.entries,
    };
    ctx.ports
        .artifacts
        .put(&archive, &metadata)
        .await
        .map_err(StageError::store(format!(
            "storing the artifacts in {}",
            ctx.ports.artifacts.location()
        )))?;
    ctx.info(
        STAGE,
        format!(
            "stored {} ({} bytes, sha256 {}; {} entries, {} bytes unpacked) of {} for run {} (commit {}) in {}",
            ARCHIVE_NAME,
            packed.size,
            packed.sha256,
            packed.entries,
            packed.unpacked_bytes,
            metadata.paths.join(", "),
            ctx.run.id,
            ctx.run.commit,
            ctx.ports.artifacts.location()
        ),
    );
    Ok(StageOutcome {
        artifact_bytes: Some(packed.size),
        ..StageOutcome::default()
    })
}
