//! Kubernetes identities and permissions: the executor ServiceAccount the
//! stage pods run as (with its IRSA role annotation), what it may do in the
//! cluster, and the Sensor's ServiceAccount, allowed to submit Workflows.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::events::sensor_service_account;
use crate::workflow::labels;

/// The IRSA annotation value when the pipeline stack's
/// `WorkflowExecutionRoleArn` output is not known (rendering offline).
pub const PLACEHOLDER_ROLE_ARN: &str = "arn:aws:iam::000000000000:role/aphex-placeholder-run-bootstrap";

const RBAC_API: &str = "rbac.authorization.k8s.io/v1";

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

/// Every RBAC object, in apply order. `role_arn` is the pipeline stack's
/// `WorkflowExecutionRoleArn` output, or `None` for [`PLACEHOLDER_ROLE_ARN`].
pub fn rbac(config: &Config, role_arn: Option<&str>) -> Vec<Value> {
    let settings = config.settings();
    let name = config.pipeline_name();
    let ns = settings.namespace();
    let events_ns = settings.events_namespace();
    let executor = settings.service_account(name);
    let sensor = sensor_service_account(config);
    let executor_role = format!("{name}-executor");
    let sensor_role = format!("{name}-sensor");
    let mut executor_meta = meta(config, &executor, ns);
    executor_meta["annotations"] =
        json!({"eks.amazonaws.com/role-arn": role_arn.unwrap_or(PLACEHOLDER_ROLE_ARN)});
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": executor_meta}),
        role(
            config,
            &executor_role,
            ns,
            json!([
                // The Argo executor reports outputs through these (Argo >= 3.4).
                {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
                // The pipeline stage rewrites this pipeline's template, and only
                // it: RBAC and the Argo Events objects stay with bootstrap.
                {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "resourceNames": [name], "verbs": ["get", "patch"]},
            ]),
        ),
        binding(config, &executor_role, ns, &executor, ns),
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
