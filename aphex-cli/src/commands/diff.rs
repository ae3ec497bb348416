//! `aphex diff [PATH] [--exit-code]`: what applying the rendered manifests
//! would change on the cluster (`aphex_k8s::diff`), each changed object as
//! a unified diff of its YAML.

use std::fmt::Write as _;
use std::path::PathBuf;

use aphex_k8s::diff::{ObjectDiff, diff};
use aphex_stages::ports::ManifestApplier;
use aphex_template::workflow::stack_outputs_config_map;
use aphex_template::yaml::to_yaml;
use aphex_template::{RenderOptions, render};

use crate::exit::Exit;

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
pub fn run(args: Args) -> Exit {
    let exit_code = args.exit_code;
    match compare_and_print(args) {
        // With --exit-code, 1 means "differs": a script must not take an
        // invalid config or an unreachable cluster for a difference.
        Exit::Failure if exit_code => Exit::Usage,
        code => code,
    }
}

fn compare_and_print(args: Args) -> Exit {
    let config = match super::validate::load_config(&args.path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let applier = match super::kube_applier().await {
            Ok(a) => a,
            Err(code) => return code,
        };
        match compare(&config, &applier).await {
            Ok(diffs) => {
                print!("{}", format(&diffs));
                let differs = diffs.iter().any(|d| !matches!(d, ObjectDiff::Same { .. }));
                if args.exit_code && differs {
                    Exit::Differs
                } else {
                    Exit::Ok
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Failure
            }
        }
    })
}

/// Renders with the live pipeline stack outputs and compares.
async fn compare(
    config: &aphex_config::Config,
    applier: &dyn ManifestApplier,
) -> Result<Vec<ObjectDiff>, String> {
    let settings = config.settings();
    let namespace = settings.namespace();
    let outputs_map = stack_outputs_config_map(config);
    let outputs = applier
        .current("ConfigMap", namespace, &outputs_map)
        .await
        .map_err(|e| e.to_string())?;
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
    diff(applier, &manifests).await.map_err(|e| e.to_string())
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
