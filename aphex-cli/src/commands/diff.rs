//! `aphex diff [PATH] [--exit-code]`: what applying the rendered manifests
//! would change on the cluster (`aphex_stages::diff`), each changed object as
//! a unified diff of its YAML.

use std::fmt::Write as _;
use std::path::PathBuf;

use aphex_stages::diff::{ObjectDiff, diff};
use aphex_stages::ports::{ClusterError, ManifestApplier};
use aphex_template::workflow::stack_outputs_config_map;
use aphex_template::yaml::to_yaml;
use aphex_template::{RenderOptions, render};

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex diff\n  \
    aphex diff --exit-code || echo \"the cluster differs\"\n\n\
    Reads the cluster of the current kubeconfig (KUBECONFIG or ~/.kube/config). The pipeline\n\
    stack's outputs (the executor's role, the artifact bucket) come from the ConfigMap\n\
    <pipeline>-pipeline-stack that `aphex bootstrap` applied.\n\n\
    Exit status: 0 compared, 1 invalid config or the cluster could not be read, 2 usage error or\n\
    no Kubernetes client. With --exit-code (as diff(1)): 0 no difference, 1 differences, 2 any error.")]
pub struct Args {
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// Exit 1 when the cluster differs from what is rendered (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,
}

/// Runs `aphex diff`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let exit_code = args.exit_code;
    compare_and_print(args).map_err(|mut e| {
        // With --exit-code, 1 means "differs": a script must not take an
        // invalid config or an unreachable cluster for a difference.
        if exit_code && e.exit == Exit::Failure {
            e.exit = Exit::Usage;
        }
        e
    })
}

fn compare_and_print(args: Args) -> Result<Exit, CliError> {
    let config = super::validate::load_config(&args.path)?;
    super::runtime()?.block_on(async {
        let applier = super::kube_applier().await?;
        let diffs = compare(&config, &applier).await.map_err(CliError::failure)?;
        Out::lock().write_str(&format(&diffs))?;
        let differs = diffs.iter().any(|d| !matches!(d, ObjectDiff::Same { .. }));
        Ok(if args.exit_code && differs {
            Exit::Differs
        } else {
            Exit::Ok
        })
    })
}

/// Renders with the live pipeline stack outputs and compares.
async fn compare(
    config: &aphex_config::Config,
    applier: &dyn ManifestApplier,
) -> Result<Vec<ObjectDiff>, ClusterError> {
    let settings = config.settings();
    let namespace = settings.namespace();
    let outputs_map = stack_outputs_config_map(config);
    let outputs = applier.current("ConfigMap", namespace, &outputs_map).await?;
    let output = |key: &str| {
        outputs
            .as_ref()
            .and_then(|o| o["data"][key].as_str())
            .map(str::to_owned)
    };
    if outputs.is_none() {
        eprintln!(
            "note: no ConfigMap {namespace}/{outputs_map} on the cluster (not bootstrapped yet?): rendering with a placeholder role"
        );
    }
    let rendered = render(
        config,
        &RenderOptions {
            executor_role_arn: output("WorkflowExecutionRoleArn"),
            pr_role_arn: output("PullRequestRoleArn"),
            artifact_bucket: output("ArtifactBucketName"),
        },
    );
    let manifests: Vec<_> = rendered.manifests.into_iter().map(|m| m.value).collect();
    diff(applier, &manifests).await
}

/// One line per object (`+` missing, `~` changed, `=` the same), each
/// change followed by its unified diff, then a count.
fn format(diffs: &[ObjectDiff]) -> String {
    let mut out = String::new();
    let yaml = |v| to_yaml(v).unwrap_or_else(|e| format!("(not YAML: {e})\n"));
    let (mut missing, mut changed) = (0, 0);
    for d in diffs {
        match d {
            ObjectDiff::Missing { object, .. } => {
                missing += 1;
                let _ = writeln!(out, "+ {object} (not on the cluster)");
            }
            ObjectDiff::Changed {
                object,
                live,
                rendered,
            } => {
                changed += 1;
                let _ = writeln!(out, "~ {object}");
                let (live, rendered) = (yaml(live), yaml(rendered));
                let text = similar::TextDiff::from_lines(&live, &rendered);
                let _ = write!(
                    out,
                    "{}",
                    text.unified_diff().context_radius(3).header("live", "rendered")
                );
            }
            ObjectDiff::Same { object } => {
                let _ = writeln!(out, "= {object}");
            }
        }
    }
    let _ = writeln!(
        out,
        "{} objects: {missing} not on the cluster, {changed} changed, {} the same",
        diffs.len(),
        diffs.len() - missing - changed
    );
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_changed_object_shows_as_a_unified_diff_of_its_yaml() {
        let live = json!({"kind": "ConfigMap", "data": {"a": "1", "b": "2"}});
        let rendered = json!({"kind": "ConfigMap", "data": {"a": "1", "b": "3"}});
        let text = format(&[
            ObjectDiff::Changed {
                object: "ConfigMap argo/x".to_owned(),
                live,
                rendered: rendered.clone(),
            },
            ObjectDiff::Missing {
                object: "Sensor argo-events/y".to_owned(),
                rendered,
            },
            ObjectDiff::Same {
                object: "Role argo/z".to_owned(),
            },
        ]);
        assert!(
            text.starts_with("~ ConfigMap argo/x\n--- live\n+++ rendered\n"),
            "{text}"
        );
        assert!(text.contains("-  b: \"2\"\n+  b: \"3\"\n"), "{text}");
        assert!(
            text.contains("+ Sensor argo-events/y (not on the cluster)\n"),
            "{text}"
        );
        assert!(text.contains("= Role argo/z\n"), "{text}");
        assert!(
            text.ends_with("3 objects: 1 not on the cluster, 1 changed, 1 the same\n"),
            "{text}"
        );
    }
}
