//! The ValidatingAdmissionPolicy, evaluated: every CEL expression it
//! renders runs (with `cel`, a CEL interpreter) on what our pipelines write
//! (admitted) and on hostile edits of it (each refused with its rule's
//! message), the way the API server applies a policy: match conditions,
//! then variables, then each validation in order. Cases are data, checked
//! through [`admit`].

mod common;

use aphex_template::admission::admission_policy;
use aphex_template::rbac::{pull_request_service_account, user_of, workflow_service_account};
use aphex_template::{RenderOptions, render};
use cel::{Context, Program};
use common::{CONFIGS, config};
use serde_json::{Value, json};

fn eval(expression: &str, object: &Value, user: &str, variables: &Value) -> Result<bool, String> {
    let program =
        Program::compile(expression).map_err(|e| format!("`{expression}` does not compile: {e}"))?;
    let mut ctx = Context::default();
    ctx.add_variable("object", object.clone()).unwrap();
    ctx.add_variable("request", json!({"userInfo": {"username": user}}))
        .unwrap();
    ctx.add_variable("variables", variables.clone()).unwrap();
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("`{expression}` gave {other:?}, not a bool")),
        // failurePolicy: Fail: an expression that errors refuses the object.
        Err(e) => Err(format!("`{expression}` failed: {e}")),
    }
}

/// What the API server decides for `object` written by `user`: `Ok` when
/// admitted (or not matched), else the refusing rule's message.
fn admit(policy: &Value, user: &str, object: &Value) -> Result<(), String> {
    let spec = &policy["spec"];
    for condition in spec["matchConditions"].as_array().unwrap() {
        if !eval(
            condition["expression"].as_str().unwrap(),
            object,
            user,
            &json!({}),
        )? {
            return Ok(());
        }
    }
    let mut variables = json!({});
    for v in spec["variables"].as_array().unwrap() {
        let program = Program::compile(v["expression"].as_str().unwrap()).unwrap();
        let mut ctx = Context::default();
        ctx.add_variable("object", object.clone()).unwrap();
        let value = program.execute(&ctx).map_err(|e| e.to_string())?;
        variables[v["name"].as_str().unwrap()] = value.json().map_err(|e| e.to_string())?;
    }
    for rule in spec["validations"].as_array().unwrap() {
        let expression = rule["expression"].as_str().unwrap();
        if !eval(expression, object, user, &variables).map_err(|e| format!("error: {e}"))? {
            return Err(rule["message"].as_str().unwrap().to_owned());
        }
    }
    Ok(())
}

struct Setup {
    policy: Value,
    template: Value,
    workflows: Vec<Value>,
    executor: String,
    sensor: String,
}

fn setup(name: &str) -> Setup {
    let config = config(name);
    let rendered = render(&config, &RenderOptions::default());
    let policy = rendered.get("ValidatingAdmissionPolicy").unwrap().clone();
    let settings = config.settings();
    let workflows = rendered
        .get("Sensor")
        .map(|s| {
            s["spec"]["triggers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["template"]["argoWorkflow"]["source"]["resource"].clone())
                .collect()
        })
        .unwrap_or_default();
    Setup {
        policy,
        template: rendered.get("WorkflowTemplate").unwrap().clone(),
        workflows,
        executor: user_of(settings.namespace(), &workflow_service_account(&config)),
        sensor: user_of(
            settings.events_namespace(),
            &aphex_template::events::sensor_service_account(&config),
        ),
    }
}

#[test]
fn what_the_pipeline_writes_is_admitted() {
    for name in CONFIGS {
        let s = setup(name);
        assert_eq!(admit(&s.policy, &s.executor, &s.template), Ok(()), "{name}");
        for wf in &s.workflows {
            assert_eq!(admit(&s.policy, &s.sensor, wf), Ok(()), "{name}: {wf}");
        }
        // The pipeline stage's restart on a new topology, submitted as the
        // workflow account.
        let restart = aphex_template::submit::restart_workflow(&config(name), SHA, "my-app-x7k2p", None);
        assert_eq!(
            admit(&s.policy, &s.executor, &restart),
            Ok(()),
            "{name}: {restart}"
        );
    }
}

/// A commit SHA.
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A template by name.
fn template<'a>(wt: &'a mut Value, name: &str) -> &'a mut Value {
    wt["spec"]["templates"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no template {name}"))
}

/// A hostile edit of the pipeline's WorkflowTemplate and the words the
/// refusal must contain.
type Edit = (&'static str, fn(&mut Value), &'static str);

#[test]
fn hostile_workflow_templates_are_refused() {
    let cases: Vec<Edit> = vec![
        (
            "another pipeline's service account",
            |wt| wt["spec"]["serviceAccountName"] = json!("aphex-other"),
            "must run as service account `aphex-my-app`",
        ),
        (
            "no service account (the namespace's default)",
            |wt| drop(wt["spec"].as_object_mut().unwrap().remove("serviceAccountName")),
            "must run as service account",
        ),
        (
            "another Argo executor account",
            |wt| wt["spec"]["executor"]["serviceAccountName"] = json!("aphex-other.argo-executor"),
            "with Argo executor",
        ),
        (
            "a template's service account",
            |wt| template(wt, "stage")["serviceAccountName"] = json!("aphex-other"),
            "a template may only run as",
        ),
        (
            "a token for every pod",
            |wt| wt["spec"]["automountServiceAccountToken"] = json!(true),
            "automountServiceAccountToken: false",
        ),
        (
            "a token for the build pods",
            |wt| template(wt, "stage")["automountServiceAccountToken"] = json!(true),
            "only `pipeline-stage` gets a Kubernetes token",
        ),
        (
            "the token-holding template as the pull-request account",
            |wt| template(wt, "pipeline-stage")["serviceAccountName"] = json!("aphex-my-app.pr"),
            "only `pipeline-stage` gets a Kubernetes token",
        ),
        (
            "root pods",
            |wt| wt["spec"]["securityContext"]["runAsNonRoot"] = json!(false),
            "securityContext",
        ),
        (
            "no pod security context",
            |wt| drop(wt["spec"].as_object_mut().unwrap().remove("securityContext")),
            "securityContext",
        ),
        (
            "a privileged container",
            |wt| template(wt, "stage")["container"]["securityContext"]["privileged"] = json!(true),
            "every container keeps securityContext",
        ),
        (
            "capabilities back",
            |wt| {
                template(wt, "stage")["container"]["securityContext"]["capabilities"] =
                    json!({"add": ["SYS_ADMIN"]})
            },
            "every container keeps securityContext",
        ),
        (
            "a pod spec patch",
            |wt| wt["spec"]["podSpecPatch"] = json!(r#"{"hostPID": true}"#),
            "only the fields `aphex render` writes",
        ),
        (
            "a template's pod spec patch",
            |wt| template(wt, "stage")["podSpecPatch"] = json!(r#"{"hostNetwork": true}"#),
            "no pod spec patch",
        ),
        (
            "the host network",
            |wt| wt["spec"]["hostNetwork"] = json!(true),
            "host network",
        ),
        (
            "a hostPath volume",
            |wt| wt["spec"]["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]),
            "volumes",
        ),
        (
            "another pipeline's token Secret as a volume",
            |wt| template(wt, "stage")["volumes"] = json!([{"name": "t", "secret": {"secretName": "aphex-other.argo-executor.service-account-token"}}]),
            "volumes",
        ),
        (
            "a sidecar",
            |wt| template(wt, "stage")["sidecars"] = json!([{"name": "x", "image": "busybox"}]),
            "sidecar",
        ),
        (
            "a script template",
            |wt| template(wt, "stage")["script"] = json!({"image": "busybox", "source": "id"}),
            "scripts",
        ),
        (
            "pod metadata (annotations other webhooks act on)",
            |wt| wt["spec"]["podMetadata"] = json!({"annotations": {"x": "y"}}),
            "pod metadata",
        ),
        (
            "template defaults",
            |wt| wt["spec"]["templateDefaults"] = json!({"serviceAccountName": "aphex-other"}),
            "template defaults",
        ),
        (
            "another Secret in the environment",
            |wt| {
                template(wt, "stage")["container"]["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "T", "valueFrom": {"secretKeyRef": {"name": "other-webhook", "key": "secret"}}}))
            },
            "reads only the Secrets and ConfigMaps",
        ),
        (
            "a whole Secret as the environment",
            |wt| {
                template(wt, "stage")["container"]["envFrom"] =
                    json!([{"secretRef": {"name": "other-webhook"}}])
            },
            "every container keeps",
        ),
        (
            "a volume mount",
            |wt| {
                template(wt, "stage")["container"]["volumeMounts"] = json!([{"name": "x", "mountPath": "/x"}])
            },
            "every container keeps",
        ),
        (
            "another pipeline's template from a task",
            |wt| {
                let dag = template(wt, "main");
                dag["dag"]["tasks"][0]["templateRef"] = json!({"name": "other", "template": "pr-stage"});
            },
            "a DAG task may only run a template of this WorkflowTemplate",
        ),
        (
            "an inline template in a task",
            |wt| template(wt, "main")["dag"]["tasks"][0]["inline"] = json!({"container": {"image": "x"}}),
            "a DAG task may only run a template of this WorkflowTemplate",
        ),
        (
            "another pipeline's WorkflowTemplate",
            |wt| wt["metadata"]["name"] = json!("other"),
            "may write only its own WorkflowTemplate",
        ),
    ];
    let s = setup("full.yaml");
    assert_eq!(workflow_service_account(&config("full.yaml")), "aphex-my-app");
    assert_eq!(
        pull_request_service_account(&config("full.yaml")),
        "aphex-my-app.pr"
    );
    for (what, edit, words) in cases {
        let mut wt = s.template.clone();
        edit(&mut wt);
        match admit(&s.policy, &s.executor, &wt) {
            Ok(()) => panic!("{what}: admitted"),
            Err(m) => assert!(
                m.contains(words),
                "{what}: refused with {m:?}, expected {words:?}"
            ),
        }
    }
}

/// A named change that turns a pipeline's own Workflow hostile.
type Tamper = (&'static str, fn(&mut Value));

#[test]
fn hostile_workflows_are_refused() {
    let cases: Vec<Tamper> = vec![
        ("its own service account", |wf| {
            wf["spec"]["serviceAccountName"] = json!("aphex-other")
        }),
        ("another pipeline's template", |wf| {
            wf["spec"]["workflowTemplateRef"]["name"] = json!("other")
        }),
        ("a cluster template", |wf| {
            wf["spec"]["workflowTemplateRef"]["clusterScope"] = json!(true)
        }),
        ("no template at all", |wf| {
            let spec = wf["spec"].as_object_mut().unwrap();
            spec.remove("workflowTemplateRef");
            spec.insert(
                "templates".into(),
                json!([{"name": "x", "container": {"image": "busybox"}}]),
            );
            spec.insert("entrypoint".into(), json!("x"));
        }),
        ("the token-holding template as entrypoint", |wf| {
            wf["spec"]["entrypoint"] = json!("pipeline-stage")
        }),
        ("inline templates merged over the pipeline's", |wf| {
            wf["spec"]["templates"] = json!([{"name": "stage", "podSpecPatch": "{}"}])
        }),
        ("a pod spec patch", |wf| wf["spec"]["podSpecPatch"] = json!("{}")),
        ("artifacts as arguments", |wf| {
            wf["spec"]["arguments"]["artifacts"] = json!([{"name": "a"}])
        }),
    ];
    let s = setup("full.yaml");
    assert_eq!(s.workflows.len(), 2, "a deploy and a validate-pr trigger");
    for (what, edit) in cases {
        for original in &s.workflows {
            let mut wf = original.clone();
            edit(&mut wf);
            let refused = admit(&s.policy, &s.sensor, &wf).expect_err(what);
            assert!(
                refused.contains("must start WorkflowTemplate my-app"),
                "{what}: {refused}"
            );
        }
    }
}

#[test]
fn the_policy_binds_only_this_pipelines_accounts() {
    let s = setup("full.yaml");
    let mut hostile = s.template.clone();
    hostile["spec"]["serviceAccountName"] = json!("anything");
    // An operator (or Argo's controller) is not this pipeline's account:
    // RBAC, not this policy, decides what they may do.
    assert_eq!(admit(&s.policy, "kubernetes-admin", &hostile), Ok(()));
    let other = setup("cross-account.yaml");
    assert_eq!(admit(&s.policy, &other.executor, &hostile), Ok(()));
    // Every account of the pipeline is bound, the pull-request one included.
    let config = config("full.yaml");
    let pr = user_of(
        config.settings().namespace(),
        &pull_request_service_account(&config),
    );
    assert!(admit(&s.policy, &pr, &hostile).is_err());
    // And each pipeline's policy has its own cluster-wide name.
    let names: Vec<Value> = CONFIGS
        .iter()
        .map(|n| admission_policy(&common::config(n))[0]["metadata"]["name"].clone())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names[0] != names[1] && names[1] != names[2]);
}
