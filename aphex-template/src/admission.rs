//! The ValidatingAdmissionPolicy that makes "a pipeline can only ever run as
//! itself" a rule of the API server, not only of our code. It applies to
//! every Workflow and WorkflowTemplate that one of this pipeline's service
//! accounts creates or updates (the Sensor submitting runs, the pipeline
//! stage patching its template), and admits only:
//!
//! - Workflows that start this pipeline's WorkflowTemplate at `main` or
//!   `validate-pr`, with parameters and nothing else (no inline templates,
//!   no service account, no pod settings of their own);
//! - this pipeline's WorkflowTemplate, running as this pipeline's service
//!   accounts, with exactly the pod settings `aphex render` writes (no
//!   token but the pipeline stage's, the security contexts, no volumes, no
//!   pod patches, no templates of other WorkflowTemplates, only the
//!   Secrets and ConfigMaps it names today).
//!
//! The policy is rendered from the config like everything else, so what it
//! pins changes only when `aphex bootstrap` applies it; the pipeline stage
//! refuses such changes earlier, with a clearer message
//! (`aphex_stages::stages::pipeline`). Tests evaluate every expression on
//! allowed and hostile objects (`tests/admission.rs`). See docs/security.md.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::rbac::{
    argo_executor_service_account, pull_request_service_account, user_of, workflow_service_account,
};
use crate::workflow::{
    GITHUB_TOKEN_ENV, MAIN_ENTRYPOINT, PIPELINE_STAGE_TEMPLATE, SLACK_WEBHOOK_ENV, VALIDATE_PR_ENTRYPOINT,
    container_security_context, labels, pod_security_context, stack_outputs_config_map,
};

/// The API version of the policy and its binding.
pub const ADMISSION_API: &str = "admissionregistration.k8s.io/v1";

/// The keys a pipeline's WorkflowTemplate `spec` may have: what we render.
const TEMPLATE_SPEC_KEYS: &[&str] = &[
    "entrypoint",
    "serviceAccountName",
    "automountServiceAccountToken",
    "executor",
    "securityContext",
    "arguments",
    "onExit",
    "activeDeadlineSeconds",
    "podGC",
    "ttlStrategy",
    "workflowMetadata",
    "templates",
];
/// The keys one of its templates may have.
const TEMPLATE_KEYS: &[&str] = &[
    "name",
    "inputs",
    "outputs",
    "activeDeadlineSeconds",
    "retryStrategy",
    "serviceAccountName",
    "automountServiceAccountToken",
    "container",
    "dag",
    "suspend",
    "synchronization",
    "parallelism",
];
/// The keys of a template's container.
const CONTAINER_KEYS: &[&str] = &["image", "command", "args", "env", "resources", "securityContext"];
/// The keys of a DAG task (no `templateRef`, `inline` or hooks: a task runs
/// a template of this WorkflowTemplate, and nothing else).
const TASK_KEYS: &[&str] = &["name", "template", "arguments", "dependencies", "depends", "when"];
/// The keys of a Workflow's `spec` when one of the pipeline's accounts
/// creates it.
const WORKFLOW_SPEC_KEYS: &[&str] = &["workflowTemplateRef", "arguments", "entrypoint"];

/// The cluster-wide name of the policy and its binding: unique per
/// pipeline and namespace.
pub fn policy_name(config: &Config) -> String {
    format!(
        "{}.{}.aphex.dev",
        config.pipeline_name(),
        config.settings().namespace()
    )
}

/// A CEL string literal (single-quoted; our values are names, but escape anyway).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A CEL list of string literals.
fn list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| lit(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// A CEL literal of a JSON value (maps, lists, strings, booleans, numbers).
fn value(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let entries: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}: {}", lit(k), value(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::String(s) => lit(s),
        other => other.to_string(),
    }
}

fn rule(expression: String, message: String) -> Value {
    json!({"expression": expression, "message": message, "reason": "Forbidden"})
}

/// The Secrets the pipeline's pods may read through `secretKeyRef`: the
/// notification webhook's, and the GitHub token's when runs post commit
/// statuses.
fn secrets(config: &Config) -> Vec<String> {
    let settings = config.settings();
    let slack = settings
        .notifications
        .as_ref()
        .and_then(|n| n.slack_webhook_secret.clone());
    let github = settings
        .github
        .as_ref()
        .filter(|_| settings.posts_github_status())
        .map(|gh| gh.token_secret().to_owned());
    slack.into_iter().chain(github).collect()
}

/// The users the policy applies to: the pipeline's four service accounts.
pub fn users(config: &Config) -> Vec<String> {
    let settings = config.settings();
    let ns = settings.namespace();
    vec![
        user_of(ns, &workflow_service_account(config)),
        user_of(ns, &pull_request_service_account(config)),
        user_of(ns, &argo_executor_service_account(config)),
        user_of(
            settings.events_namespace(),
            &crate::events::sensor_service_account(config),
        ),
    ]
}

/// The validations, in order: each one CEL expression over `object` (and
/// the policy's `variables`) with the message the API server returns.
pub fn validations(config: &Config) -> Vec<Value> {
    let name = config.pipeline_name();
    let sa = workflow_service_account(config);
    let pr_sa = pull_request_service_account(config);
    let executor = argo_executor_service_account(config);
    let accounts = list(&[sa.as_str(), pr_sa.as_str()]);
    let is_wt = "object.kind == 'WorkflowTemplate'";
    let is_wf = "object.kind == 'Workflow'";
    let spec = "object.spec";
    let env_rule = format!(
        "!has(t.container.env) || t.container.env.all(e, !has(e.valueFrom) || \
         (e.valueFrom.all(k, k in ['secretKeyRef', 'configMapKeyRef']) \
         && (!has(e.valueFrom.secretKeyRef) || e.valueFrom.secretKeyRef.name in {secrets}) \
         && (!has(e.valueFrom.configMapKeyRef) || e.valueFrom.configMapKeyRef.name in {config_maps})))",
        secrets = list(&secrets(config)),
        config_maps = list(&[stack_outputs_config_map(config)]),
    );
    vec![
        rule(
            format!(
                "!({is_wf}) || (has({spec}.workflowTemplateRef) && {spec}.workflowTemplateRef.name == {n} \
                 && !(has({spec}.workflowTemplateRef.clusterScope) && {spec}.workflowTemplateRef.clusterScope) \
                 && {spec}.all(k, k in {keys}) \
                 && (!has({spec}.entrypoint) || {spec}.entrypoint in {entries}) \
                 && (!has({spec}.arguments) || {spec}.arguments.all(k, k == 'parameters')))",
                n = lit(name),
                keys = list(WORKFLOW_SPEC_KEYS),
                entries = list(&[MAIN_ENTRYPOINT, VALIDATE_PR_ENTRYPOINT]),
            ),
            format!(
                "a Workflow submitted by pipeline {name} must start WorkflowTemplate {name} at `{MAIN_ENTRYPOINT}` or \
                 `{VALIDATE_PR_ENTRYPOINT}` with parameters only (no templates, service account or pod settings of its own)"
            ),
        ),
        rule(
            format!("!({is_wt}) || object.metadata.name == {}", lit(name)),
            format!("pipeline {name} may write only its own WorkflowTemplate, `{name}`"),
        ),
        rule(
            format!("!({is_wt}) || {spec}.all(k, k in {})", list(TEMPLATE_SPEC_KEYS)),
            format!(
                "WorkflowTemplate {name}: only the fields `aphex render` writes are allowed in spec (no pod spec \
                 patches, volumes, host network, pod metadata or template defaults); run `aphex bootstrap` to change them"
            ),
        ),
        rule(
            format!(
                "!({is_wt}) || (has({spec}.serviceAccountName) && {spec}.serviceAccountName == {sa} \
                 && has({spec}.executor) && has({spec}.executor.serviceAccountName) \
                 && {spec}.executor.serviceAccountName == {executor} && {spec}.executor.all(k, k == 'serviceAccountName'))",
                sa = lit(&sa),
                executor = lit(&executor),
            ),
            format!(
                "WorkflowTemplate {name} must run as service account `{sa}` with Argo executor `{executor}`: only \
                 `aphex bootstrap` may change them"
            ),
        ),
        rule(
            format!(
                "!({is_wt}) || (has({spec}.automountServiceAccountToken) && {spec}.automountServiceAccountToken == false \
                 && has({spec}.securityContext) && {spec}.securityContext == {pod})",
                pod = value(&pod_security_context()),
            ),
            format!(
                "WorkflowTemplate {name} must keep the pod settings `aphex render` writes \
                 (automountServiceAccountToken: false, securityContext {}): only `aphex bootstrap` may change them",
                pod_security_context()
            ),
        ),
        rule(
            format!(
                "!({is_wt}) || variables.templates.all(t, t.all(k, k in {keys}) \
                 && (!has(t.serviceAccountName) || t.serviceAccountName in {accounts}) \
                 && (!has(t.automountServiceAccountToken) || t.automountServiceAccountToken == false \
                     || (t.name == {pipeline_stage} && !has(t.serviceAccountName))))",
                keys = list(TEMPLATE_KEYS),
                pipeline_stage = lit(PIPELINE_STAGE_TEMPLATE),
            ),
            format!(
                "WorkflowTemplate {name}: a template may only run as {accounts}, only `{PIPELINE_STAGE_TEMPLATE}` gets a \
                 Kubernetes token, and templates have no pod spec patch, volumes, init or sidecar containers, scripts \
                 or resource templates"
            ),
        ),
        rule(
            format!(
                "!({is_wt}) || variables.templates.all(t, !has(t.container) || (t.container.all(k, k in {keys}) \
                 && has(t.container.securityContext) && t.container.securityContext == {container} && ({env_rule})))",
                keys = list(CONTAINER_KEYS),
                container = value(&container_security_context()),
            ),
            format!(
                "WorkflowTemplate {name}: every container keeps securityContext {} and reads only the Secrets and \
                 ConfigMaps `aphex render` names ({SLACK_WEBHOOK_ENV}'s and {GITHUB_TOKEN_ENV}'s Secrets, the pipeline stack's ConfigMap)",
                container_security_context()
            ),
        ),
        rule(
            format!(
                "!({is_wt}) || variables.templates.all(t, !has(t.dag) || !has(t.dag.tasks) \
                 || t.dag.tasks.all(task, task.all(k, k in {})))",
                list(TASK_KEYS)
            ),
            format!(
                "WorkflowTemplate {name}: a DAG task may only run a template of this WorkflowTemplate (no templateRef, \
                 inline template or hooks)"
            ),
        ),
    ]
}

/// The policy and its binding: cluster-wide objects, applied by
/// `aphex bootstrap` before the RBAC that grants the accounts anything.
pub fn admission_policy(config: &Config) -> Vec<Value> {
    let name = policy_name(config);
    vec![
        json!({
            "apiVersion": ADMISSION_API,
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels(config)},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": ["argoproj.io"],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["workflows", "workflowtemplates"],
                }]},
                "matchConditions": [{
                    "name": "pipeline-service-accounts",
                    "expression": format!("request.userInfo.username in {}", list(&users(config))),
                }],
                "variables": [{
                    "name": "templates",
                    "expression": "has(object.spec.templates) ? object.spec.templates : []",
                }],
                "validations": validations(config),
            },
        }),
        json!({
            "apiVersion": ADMISSION_API,
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": labels(config)},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        }),
    ]
}
