//! The build stage: `build.commands` in order, stopping at the first
//! failure, then the artifacts packaged (tar + zstd, SHA-256, metadata) and
//! stored under `<pipeline>/<commit-sha>/`.

use super::{StageError, StageOutcome, run_commands, run_env};
use crate::artifact::{ARCHIVE_NAME, pack};
use crate::context::StageContext;
use crate::ports::ArtifactMetadata;

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
    let packed = pack(&ctx.checkout, &paths, &archive)?;
    let metadata = ArtifactMetadata {
        pipeline: ctx.run.pipeline.clone(),
        commit_sha: ctx.run.commit.clone(),
        timestamp: crate::time::now_rfc3339(),
        size: packed.size,
        sha256: packed.sha256.clone(),
        paths,
    };
    ctx.ports
        .artifacts
        .put(&archive, &metadata)
        .await
        .map_err(StageError::port(format!(
            "storing the artifacts in {}",
            ctx.ports.artifacts.location()
        )))?;
    ctx.info(
        STAGE,
        format!(
            "stored {} ({} bytes, sha256 {}) of {} under {}/{}/ in {}",
            ARCHIVE_NAME,
            packed.size,
            packed.sha256,
            metadata.paths.join(", "),
            ctx.run.pipeline,
            ctx.run.commit,
            ctx.ports.artifacts.location()
        ),
    );
    Ok(StageOutcome {
        artifact_bytes: Some(packed.size),
        ..StageOutcome::default()
    })
}
