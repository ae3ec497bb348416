//! Kubernetes identities and permissions. A pipeline has four service
//! accounts, each with only what its pods need:
//!
//! - the **workflow** account (`pipeline.serviceAccount`, default
//!   `aphex-<pipeline>`): the stage pods of deploy runs, with the workflow
//!   role (IRSA); its Kubernetes token reaches only the pipeline stage's
//!   pod, whose Role may get and patch this pipeline's WorkflowTemplate
//!   and list and create Workflows (the restart on a new topology);
//! - the **pull-request** account (`<workflow account>.pr`): the pods of
//!   `validate-pr`, with the read-only pull-request role (IRSA) and no
//!   Kubernetes permission at all;
//! - the **Argo executor** account (`<workflow account>.argo-executor`):
//!   only Argo's own `wait`/`init` containers get its token (a Secret Argo
//!   mounts for them, `executor.serviceAccountName`), to report outputs
//!   through WorkflowTaskResults; the stage's own container never sees it;
//! - the **Sensor** account (`<pipeline>-sensor`, in the Argo Events
//!   namespace), allowed to create Workflows.
//!
//! The derived names use a `.`, which no pipeline name (a DNS label) has,
//! so one pipeline's derived account is never another pipeline's account.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::events::sensor_service_account;
use crate::workflow::labels;

/// The IRSA annotation value when the pipeline stack's
/// `WorkflowExecutionRoleArn` output is not known (rendering offline).
pub const PLACEHOLDER_ROLE_ARN: &str = "arn:aws:iam::000000000000:role/aphex-placeholder-run-bootstrap";
/// The pull-request account's IRSA annotation when the stack's
/// `PullRequestRoleArn` output is not known.
pub const PLACEHOLDER_PR_ROLE_ARN: &str = "arn:aws:iam::000000000000:role/aphex-placeholder-pr-run-bootstrap";
/// The annotation EKS reads the IRSA role from.
pub const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

const RBAC_API: &str = "rbac.authorization.k8s.io/v1";

/// The workflow account: deploy runs' pods.
pub fn workflow_service_account(config: &Config) -> String {
    config.settings().service_account(config.pipeline_name())
}

/// The pull-request account: `validate-pr`'s pods.
pub fn pull_request_service_account(config: &Config) -> String {
    format!("{}.pr", workflow_service_account(config))
}

/// The account of Argo's executor containers (outputs reporting).
pub fn argo_executor_service_account(config: &Config) -> String {
    format!("{}.argo-executor", workflow_service_account(config))
}

/// The Secret holding the Argo executor account's token, named so Argo
/// finds it (`<account>.service-account-token`).
pub fn argo_executor_token_secret(config: &Config) -> String {
    format!("{}.service-account-token", argo_executor_service_account(config))
}

/// The Kubernetes user name of a service account.
pub fn user_of(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

fn meta(config: &Config, name: &str, namespace: &str) -> Value {
    json!({"name": name, "namespace": namespace, "labels": labels(config)})
}

fn role(config: &Config, name: &str, namespace: &str, rules: Value) -> Value {
    json!({"apiVersion": RBAC_API, "kind": "Role", "metadata": meta(config, name, namespace), "rules": rules})
}

fn binding(config: &Config, name: &str, namespace: &str, sa: &str, sa_namespace: &str) -> Value {
    json!({
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": meta(config, name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": sa_namespace}],
    })
}

fn service_account(config: &Config, name: &str, namespace: &str, role_arn: Option<&str>) -> Value {
    let mut metadata = meta(config, name, namespace);
    if let Some(arn) = role_arn {
        metadata["annotations"] = json!({IRSA_ANNOTATION: arn});
    }
    // Pods that need a token say so themselves (only the pipeline stage).
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata, "automountServiceAccountToken": false})
}

/// Every RBAC object, in apply order. `role_arn` and `pr_role_arn` are the
/// pipeline stack's `WorkflowExecutionRoleArn` and `PullRequestRoleArn`
/// outputs, or `None` for the placeholders.
pub fn rbac(config: &Config, role_arn: Option<&str>, pr_role_arn: Option<&str>) -> Vec<Value> {
    let settings = config.settings();
    let name = config.pipeline_name();
    let ns = settings.namespace();
    let events_ns = settings.events_namespace();
    let workflow = workflow_service_account(config);
    let argo_executor = argo_executor_service_account(config);
    let sensor = sensor_service_account(config);
    let pipeline_role = format!("{name}-executor");
    let argo_executor_role = format!("{name}.argo-executor");
    let sensor_role = format!("{name}-sensor");
    vec![
        service_account(
            config,
            &workflow,
            ns,
            Some(role_arn.unwrap_or(PLACEHOLDER_ROLE_ARN)),
        ),
        role(
            config,
            &pipeline_role,
            ns,
            // The pipeline stage rewrites this pipeline's template, and only
            // it: RBAC and the Argo Events objects stay with bootstrap. When
            // the topology changed it restarts the run: it looks for a
            // restart of the commit (list) and submits one (create). RBAC
            // cannot name the Workflow a create makes; the admission policy
            // admits only Workflows that start this pipeline's template
            // with parameters alone.
            json!([
                {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "resourceNames": [name], "verbs": ["get", "patch"]},
                {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "list"]},
            ]),
        ),
        binding(config, &pipeline_role, ns, &workflow, ns),
        service_account(
            config,
            &pull_request_service_account(config),
            ns,
            Some(pr_role_arn.unwrap_or(PLACEHOLDER_PR_ROLE_ARN)),
        ),
        service_account(config, &argo_executor, ns, None),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": argo_executor_token_secret(config),
                "namespace": ns,
                "labels": labels(config),
                "annotations": {"kubernetes.io/service-account.name": argo_executor},
            },
            "type": "kubernetes.io/service-account-token",
        }),
        role(
            config,
            &argo_executor_role,
            ns,
            // The Argo executor reports outputs through these (Argo >= 3.4).
            json!([
                {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
            ]),
        ),
        binding(config, &argo_executor_role, ns, &argo_executor, ns),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(config, &sensor, events_ns)}),
        role(
            config,
            &sensor_role,
            ns,
            json!([
                {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
                // Submitting from a template reads it first.
                {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "resourceNames": [name], "verbs": ["get"]},
            ]),
        ),
        binding(config, &sensor_role, ns, &sensor, events_ns),
    ]
}
