//! Everything `aphex render` emits for a config, in apply order: RBAC, the
//! WorkflowTemplate, the EventSource and Sensor (when GitHub is configured),
//! plus the pipeline's CloudFormation template.

use aphex_config::Config;
use serde_json::Value;

use crate::yaml::{YamlError, to_yaml, to_yaml_documents};

/// Inputs a renderer cannot derive from the config.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// The pipeline stack's `WorkflowExecutionRoleArn` output; a placeholder when `None`.
    pub executor_role_arn: Option<String>,
    /// The pipeline stack's `PullRequestRoleArn` output; a placeholder when `None`.
    pub pr_role_arn: Option<String>,
    /// The pipeline stack's `ArtifactBucketName` output: when known, a
    /// ConfigMap `<pipeline>-pipeline-stack` carrying it is rendered too.
    pub artifact_bucket: Option<String>,
}

/// One Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The object's `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// The object.
    pub value: Value,
}

impl Manifest {
    fn new(value: Value) -> Self {
        let field = |p: &str| {
            value
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Manifest {
            kind: field("/kind"),
            name: field("/metadata/name"),
            namespace: field("/metadata/namespace"),
            value,
        }
    }

    /// A file name unique within one render: `<nn>-<namespace>-<kind>-<name>.yaml`
    /// (`_cluster` for cluster-wide objects), the number keeping apply
    /// order when a directory is applied.
    pub fn file_name(&self, index: usize) -> String {
        let namespace = if self.namespace.is_empty() {
            "_cluster"
        } else {
            &self.namespace
        };
        format!(
            "{:02}-{}-{}-{}.yaml",
            index + 1,
            namespace,
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }
}

/// Whether `text`, a file in a directory `aphex render --out` writes to,
/// is one of pipeline `pipeline`'s manifests: a YAML object carrying our
/// `app.kubernetes.io/managed-by` label and that pipeline's
/// `aphex.dev/pipeline` label. Other pipelines' files (several may share a
/// directory) and anything else are not.
pub fn is_manifest_of(text: &str, pipeline: &str) -> bool {
    let Ok(value) = serde_saphyr::from_str::<Value>(text) else {
        return false;
    };
    let labels = &value["metadata"]["labels"];
    labels[crate::workflow::MANAGED_BY_LABEL] == "aphex"
        && labels[crate::workflow::PIPELINE_LABEL] == pipeline
}

/// Everything rendered for one config.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Kubernetes objects, in apply order.
    pub manifests: Vec<Manifest>,
    /// The pipeline's CloudFormation template.
    pub pipeline_stack: Value,
}

/// File name of the pipeline stack's template in `--out` directories.
pub const PIPELINE_STACK_FILE: &str = "pipeline-stack.template.json";

/// The ConfigMap the stage pods read the pipeline stack's outputs from.
fn stack_outputs(config: &Config, bucket: &str, options: &RenderOptions) -> Value {
    let mut data = serde_json::json!({"ArtifactBucketName": bucket});
    if let Some(arn) = &options.executor_role_arn {
        data["WorkflowExecutionRoleArn"] = serde_json::json!(arn);
    }
    if let Some(arn) = &options.pr_role_arn {
        data["PullRequestRoleArn"] = serde_json::json!(arn);
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": crate::workflow::stack_outputs_config_map(config),
            "namespace": config.settings().namespace(),
            "labels": crate::workflow::labels(config),
        },
        "data": data,
    })
}

/// Renders every object of a validated config. Nothing here resolves stack
/// order (the WorkflowTemplate has one task per stage, not per stack), so a
/// config that loaded always renders.
pub fn render(config: &Config, options: &RenderOptions) -> Rendered {
    // The admission policy first: it must hold before RBAC grants anything.
    let mut values = crate::admission::admission_policy(config);
    values.extend(crate::rbac::rbac(
        config,
        options.executor_role_arn.as_deref(),
        options.pr_role_arn.as_deref(),
    ));
    if let Some(bucket) = &options.artifact_bucket {
        values.push(stack_outputs(config, bucket, options));
    }
    values.push(crate::workflow::workflow_template(config));
    values.extend(crate::events::event_source(config));
    values.extend(crate::events::sensor(config));
    Rendered {
        manifests: values.into_iter().map(Manifest::new).collect(),
        pipeline_stack: crate::cloudformation::pipeline_stack(config),
    }
}

impl Rendered {
    /// The object of `kind` (the first, when several).
    pub fn get(&self, kind: &str) -> Option<&Value> {
        self.manifests.iter().find(|m| m.kind == kind).map(|m| &m.value)
    }

    /// Every manifest as one multi-document YAML stream.
    pub fn manifests_yaml(&self) -> Result<String, YamlError> {
        let values: Vec<&Value> = self.manifests.iter().map(|m| &m.value).collect();
        to_yaml_documents(&values)
    }

    /// The pipeline stack template as pretty JSON with a final newline.
    pub fn pipeline_stack_json(&self) -> String {
        let mut s =
            serde_json::to_string_pretty(&self.pipeline_stack).expect("a JSON value always serializes");
        s.push('\n');
        s
    }

    /// One `(file name, contents)` per object, then the pipeline stack template.
    pub fn files(&self) -> Result<Vec<(String, String)>, YamlError> {
        let mut out = Vec::with_capacity(self.manifests.len() + 1);
        for (i, m) in self.manifests.iter().enumerate() {
            out.push((m.file_name(i), to_yaml(&m.value)?));
        }
        out.push((PIPELINE_STACK_FILE.to_owned(), self.pipeline_stack_json()));
        Ok(out)
    }
}
