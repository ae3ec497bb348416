//! `aphex render`: every manifest of the pipeline as YAML (stdout, or one
//! file per object in `--out DIR` together with the pipeline stack template),
//! and the shared config loading of the commands that start from a config.

use std::path::PathBuf;

use aphex_template::{RenderOptions, render};

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex render`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  aphex render | kubectl apply -f -\n  aphex render --out manifests/\n  aphex render --pipeline-stack > pipeline.template.json"
)]
pub struct Args {
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// Write one file per object, plus pipeline-stack.template.json, into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the pipeline's CloudFormation template (JSON) instead of the manifests.
    #[arg(long, conflicts_with = "out")]
    pub pipeline_stack: bool,
    /// The pipeline stack's WorkflowExecutionRoleArn output, for the executor's
    /// IRSA annotation (a placeholder otherwise).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The pipeline stack's PullRequestRoleArn output, for the pull-request
    /// service account's IRSA annotation (a placeholder otherwise).
    #[arg(long, value_name = "ARN")]
    pub pr_role_arn: Option<String>,
    /// The pipeline stack's ArtifactBucketName output: also renders the
    /// ConfigMap `<pipeline>-pipeline-stack` the stage pods read it from.
    #[arg(long, value_name = "NAME")]
    pub artifact_bucket: Option<String>,
}

/// Runs `aphex render`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let config = super::validate::load_config(&args.path)?;
    let options = RenderOptions {
        executor_role_arn: args.role_arn,
        pr_role_arn: args.pr_role_arn,
        artifact_bucket: args.artifact_bucket,
    };
    let rendered = render(&config, &options);
    if config.settings().github.is_none() {
        eprintln!(
            "note: no `pipeline.github` in {}: the EventSource and Sensor are not rendered",
            args.path.display()
        );
    }
    let mut out = Out::lock();
    if args.pipeline_stack {
        out.write_str(&rendered.pipeline_stack_json())?;
        return Ok(Exit::Ok);
    }
    let Some(dir) = args.out else {
        out.write_str(&rendered.manifests_yaml()?)?;
        return Ok(Exit::Ok);
    };
    let files = rendered.files()?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::usage(format!("cannot create {}: {e}", dir.display())))?;
    let written: std::collections::HashSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
        writeln!(out, "{}", path.display())?;
    }
    // `kubectl apply -f DIR` would re-create an object the config no longer
    // has (an EventSource after `github` was removed, a renumbered file), so
    // files of this pipeline that this render did not write go.
    let removed = prune_stale(&dir, &written, config.pipeline_name()).map_err(CliError::usage)?;
    for path in removed {
        eprintln!("removed {} (no longer rendered)", path.display());
    }
    Ok(Exit::Ok)
}

/// Removes files in `dir` that an earlier `aphex render --out` of the same
/// pipeline wrote and this one did not: numbered manifests (`NN-....yaml`)
/// labelled as that pipeline's ([`aphex_template::render::is_manifest_of`]).
/// Anything else, another pipeline's manifests included, is left alone.
fn prune_stale(
    dir: &std::path::Path,
    written: &std::collections::HashSet<String>,
    pipeline: &str,
) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let numbered = name.split_once('-').is_some_and(|(n, rest)| {
            n.len() >= 2 && n.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
        });
        if written.contains(&name) || !numbered || !name.ends_with(".yaml") {
            continue;
        }
        let path = entry.path();
        let ours = std::fs::read_to_string(&path).is_ok_and(|text| render::is_manifest_of(&text, pipeline));
        if ours {
            std::fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}
