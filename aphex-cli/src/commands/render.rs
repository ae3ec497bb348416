//! `aphex render`: every manifest of the pipeline as YAML (stdout, or one
//! file per object in `--out DIR` together with the pipeline stack template),
//! and the shared config loading of the commands that start from a config.

use std::path::PathBuf;

use aphex_template::{RenderOptions, render};

use crate::exit::Exit;

/// Arguments of `aphex render`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  aphex render | kubectl apply -f -\n  aphex render --out manifests/\n  aphex render --pipeline-stack > pipeline.template.json"
)]
pub struct Args {
    /// The configuration file.
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
    /// The pipeline stack's ArtifactBucketName output: also renders the
    /// ConfigMap `<pipeline>-pipeline-stack` the stage pods read it from.
    #[arg(long, value_name = "NAME")]
    pub artifact_bucket: Option<String>,
}

/// Runs `aphex render`.
pub fn run(args: Args) -> Exit {
    let config = match super::validate::load_config(&args.path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = RenderOptions {
        executor_role_arn: args.role_arn,
        artifact_bucket: args.artifact_bucket,
    };
    let rendered = match render(&config, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}: {e}", args.path.display());
            return Exit::Failure;
        }
    };
    if config.settings().github.is_none() {
        eprintln!(
            "note: no `pipeline.github` in {}: the EventSource and Sensor are not rendered",
            args.path.display()
        );
    }
    if args.pipeline_stack {
        print!("{}", rendered.pipeline_stack_json());
        return Exit::Ok;
    }
    let Some(dir) = args.out else {
        return match rendered.manifests_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                Exit::Ok
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Failure
            }
        };
    };
    let files = match rendered.files() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return Exit::Usage;
    }
    for (name, contents) in files {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, contents) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Exit::Usage;
        }
        println!("{}", path.display());
    }
    Exit::Ok
}
