//! The Kubernetes adapter against a real Kubernetes API server: the
//! upstream CRD API server with Argo's full Workflow and WorkflowTemplate
//! CRDs (started by `cargo xtask test`; `aphex_testkit::kube_api`), which
//! checks every field against the CRDs' schemas, keeps managed fields and
//! refuses conflicts as a cluster does. Each test works in a namespace of
//! its own (the server holds objects in namespaces that do not exist).

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aphex_k8s::KubeApplier;
use aphex_stages::diff::strip_server_fields;
use aphex_stages::diff::{ObjectDiff, diff};
use aphex_stages::ports::ManifestApplier;
use aphex_template::render::{RenderOptions, render};
use aphex_testkit::kube_api::{KubeApi, kube_api};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Every config we ship or test rendering with: the two examples and the
/// renderer's full test configs.
const CONFIGS: &[&str] = &[
    "examples/seed/aphex-config.yaml",
    "examples/quickstart/aphex-config.yaml",
    "aphex-template/tests/data/seed.yaml",
    "aphex-template/tests/data/full.yaml",
    "aphex-template/tests/data/cross-account.yaml",
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &str) -> aphex_config::Config {
    aphex_config::load_file(&workspace().join(path)).unwrap_or_else(|d| panic!("{path} does not load: {d:?}"))
}

/// `object` moved into `namespace`.
fn in_namespace(mut object: Value, namespace: &str) -> Value {
    object["metadata"]["namespace"] = json!(namespace);
    object
}

fn argo(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind), plural)
}

/// An applier whose errors name the server's URL, as in a pod.
async fn applier(api: &KubeApi, namespace: &str) -> KubeApplier {
    let mut config = api.config().await;
    config.default_namespace = namespace.to_owned();
    KubeApplier::from_config(config).expect("an applier on the test server")
}

/// POSTs `object` (a create, as the Sensor and `aphex trigger` submit a
/// Workflow) with `fieldValidation=Strict`: an unknown field is an error,
/// never silently dropped.
async fn create_strict(client: &Client, plural: &str, object: &Value) -> Result<Value, kube::Error> {
    let namespace = object["metadata"]["namespace"].as_str().expect("a namespace");
    let request = http::Request::post(format!(
        "/apis/argoproj.io/v1alpha1/namespaces/{namespace}/{plural}?fieldValidation=Strict"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(object).expect("JSON"))
    .expect("a request");
    client.request::<Value>(request).await
}

/// The Workflows the rendered Sensor submits, with the parameters it takes
/// from GitHub's real deliveries filled in as Argo Events does: a push for
/// the deploy trigger, a pull request for the validate one.
fn sensor_workflows(sensor: &Value) -> Vec<(String, Value)> {
    let reference = workspace().join("../shared/reference/github-webhooks");
    let payload = |file: &str| -> Value {
        let path = reference.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "reading {} ({e}): CI provides ../shared/reference next to the repository",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("a JSON payload")
    };
    let triggers = sensor["spec"]["triggers"].as_array().expect("triggers");
    triggers
        .iter()
        .map(|t| {
            let name = t["template"]["name"].as_str().expect("a trigger name").to_owned();
            let (event, file) = match name.as_str() {
                "deploy" => ("push", "push-with-new-branch.json"),
                _ => ("pull_request", "pull_request-opened.json"),
            };
            let envelope = aphex_template::simulate::event_envelope(event, &payload(file));
            let workflow = aphex_testkit::sensor::submitted_workflow(t, &envelope);
            (name, workflow)
        })
        .collect()
}

#[tokio::test]
async fn every_rendered_workflow_template_and_workflow_is_accepted_strictly_and_kept_whole() {
    let api = kube_api();
    let mut workflows = 0;
    for path in CONFIGS {
        let config = load(path);
        let namespace = api.namespace("strict");
        let client = api.client(&namespace).await;
        let rendered = render(&config, &RenderOptions::default());
        let template = in_namespace(
            rendered
                .get("WorkflowTemplate")
                .expect("a WorkflowTemplate")
                .clone(),
            &namespace,
        );
        // Through the applier, as the pipeline stage and `aphex bootstrap` apply it.
        applier(&api, &namespace)
            .await
            .apply(std::slice::from_ref(&template))
            .await
            .unwrap_or_else(|e| panic!("{path}: the WorkflowTemplate is refused: {e}"));
        let name = template["metadata"]["name"].as_str().unwrap();
        let live = Api::<DynamicObject>::namespaced_with(
            client.clone(),
            &namespace,
            &argo("WorkflowTemplate", "workflowtemplates"),
        )
        .get(name)
        .await
        .unwrap();
        assert_eq!(
            strip_server_fields(&serde_json::to_value(live).unwrap()),
            template,
            "{path}: the server keeps the WorkflowTemplate exactly as rendered (nothing pruned or defaulted)"
        );

        let Some(sensor) = rendered.get("Sensor") else {
            continue;
        };
        for (trigger, workflow) in sensor_workflows(sensor) {
            let workflow = in_namespace(workflow, &namespace);
            let created = create_strict(&client, "workflows", &workflow)
                .await
                .unwrap_or_else(|e| panic!("{path}: the {trigger} trigger's Workflow is refused: {e}"));
            let name = created["metadata"]["name"].as_str().expect("a generated name");
            let live = Api::<DynamicObject>::namespaced_with(
                client.clone(),
                &namespace,
                &argo("Workflow", "workflows"),
            )
            .get(name)
            .await
            .unwrap();
            let live = serde_json::to_value(live).unwrap();
            assert_eq!(live["spec"], workflow["spec"], "{path}: {trigger}");
            assert_eq!(
                live["metadata"]["labels"], workflow["metadata"]["labels"],
                "{path}: {trigger}"
            );
            assert_eq!(
                live["spec"]["workflowTemplateRef"]["name"],
                template["metadata"]["name"]
            );
            workflows += 1;
        }
    }
    assert!(
        workflows >= 2,
        "some configs render a Sensor with both triggers: {workflows}"
    );
}

#[tokio::test]
async fn an_unknown_field_is_refused_naming_it_not_silently_dropped() {
    let api = kube_api();
    let namespace = api.namespace("unknown");
    let mut template = in_namespace(
        render(&load(CONFIGS[0]), &RenderOptions::default())
            .get("WorkflowTemplate")
            .unwrap()
            .clone(),
        &namespace,
    );
    let entrypoint = template["spec"]["entrypoint"].take();
    template["spec"]["entrypiont"] = entrypoint;
    let applier = applier(&api, &namespace).await;
    let err = applier
        .apply(std::slice::from_ref(&template))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("applying WorkflowTemplate"), "{err}");
    assert!(
        err.contains(".spec.entrypiont: field not declared in schema"),
        "the error names the field: {err}"
    );
    assert!(
        err.contains("is the installed Argo older"),
        "and says what to check: {err}"
    );
    let name = template["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        applier
            .current("WorkflowTemplate", &namespace, name)
            .await
            .unwrap(),
        None,
        "nothing was stored"
    );

    let mut workflow = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "w-", "namespace": namespace},
        "spec": {"workflowTemplateRef": {"name": name}, "argumnets": {}},
    });
    let err = create_strict(&api.client(&namespace).await, "workflows", &workflow)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("argumnets"), "{err}");
    workflow["spec"].as_object_mut().unwrap().remove("argumnets");
    create_strict(&api.client(&namespace).await, "workflows", &workflow)
        .await
        .expect("without the misspelled field it is accepted");
}

/// The pipeline stage itself, applying through `KubeApplier`: its log says
/// what a re-run and a changed config do to the live template.
#[tokio::test]
async fn the_pipeline_stage_creates_then_leaves_unchanged_then_changes_the_live_template() {
    let api = kube_api();
    let namespace = api.namespace("stage");
    let config = api.config().await;
    common::created_then_unchanged_then_changed(
        || KubeApplier::from_config(config.clone()).unwrap(),
        "shop",
        &namespace,
    )
    .await;
}

#[tokio::test]
async fn a_field_another_manager_took_is_shown_by_diff_then_taken_back_by_the_forced_apply() {
    let api = kube_api();
    let namespace = api.namespace("owners");
    let client = api.client(&namespace).await;
    let applier = applier(&api, &namespace).await;
    let template = in_namespace(common::pipeline_template("shop", "argo"), &namespace);
    let name = template["metadata"]["name"].as_str().unwrap().to_owned();
    let wts = Api::<DynamicObject>::namespaced_with(
        client,
        &namespace,
        &argo("WorkflowTemplate", "workflowtemplates"),
    );
    applier.apply(std::slice::from_ref(&template)).await.unwrap();

    // An operator raises the deadline by hand (`kubectl apply --server-side
    // --force-conflicts`), taking the field from aphex.
    let rendered_deadline = template["spec"]["activeDeadlineSeconds"].clone();
    assert!(
        rendered_deadline.is_u64(),
        "the template sets a deadline: {template}"
    );
    let theirs = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"activeDeadlineSeconds": 1},
    });
    wts.patch(
        &name,
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(&theirs),
    )
    .await
    .unwrap();

    // `aphex diff` shows it before anything is applied.
    let before = diff(&applier, std::slice::from_ref(&template)).await.unwrap();
    match &before[..] {
        [ObjectDiff::Changed { live, rendered, .. }] => {
            assert_eq!(live["spec"]["activeDeadlineSeconds"], 1);
            assert_eq!(rendered["spec"]["activeDeadlineSeconds"], rendered_deadline);
        }
        other => panic!("the hand edit is a change: {other:?}"),
    }

    // Without force, aphex's apply would stop at a conflict...
    let err = wts
        .patch(&name, &PatchParams::apply("aphex"), &Patch::Apply(&template))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.message.contains("kubectl")),
        "{err}"
    );
    // ...so it forces, and the field is aphex's again.
    applier.apply(std::slice::from_ref(&template)).await.unwrap();
    let after = diff(&applier, std::slice::from_ref(&template)).await.unwrap();
    assert!(matches!(&after[..], [ObjectDiff::Same { .. }]), "{after:?}");
    let err = wts
        .patch(&name, &PatchParams::apply("kubectl"), &Patch::Apply(&theirs))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.message.contains("aphex")),
        "the field is owned by aphex now: {err}"
    );
}

#[tokio::test]
async fn a_cluster_with_argo_workflows_but_not_argo_events_says_what_to_install() {
    let api = kube_api();
    let namespace = api.namespace("events");
    let rendered = render(
        &load("aphex-template/tests/data/full.yaml"),
        &RenderOptions::default(),
    );
    let sensor = in_namespace(rendered.get("Sensor").unwrap().clone(), &namespace);
    let err = applier(&api, &namespace)
        .await
        .apply(&[sensor])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not serve Sensor in argoproj.io/v1alpha1: is Argo Events installed"),
        "{err}"
    );
}

/// A TCP proxy to the test server, to stop as a server stops: the listener
/// closes and every open connection is cut.
struct Proxy {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn to(server: &str) -> Proxy {
        let target = server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Proxy { port, tasks }
    }

    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test]
async fn a_stopped_server_gives_the_clear_error_not_a_hang() {
    let api = kube_api();
    let namespace = api.namespace("stopped");
    let proxy = Proxy::to(api.server()).await;
    let url = format!("https://127.0.0.1:{}", proxy.port);
    let mut config = api.config().await;
    config.cluster_url = url.parse().unwrap();
    config.default_namespace = namespace.clone();
    let applier = KubeApplier::from_config(config).unwrap();
    let template = in_namespace(common::pipeline_template("shop", "argo"), &namespace);
    applier
        .apply(std::slice::from_ref(&template))
        .await
        .expect("applied while the server runs");

    proxy.stop();
    // A bound on the wait so that a hang fails the test rather than CI.
    let bound = Duration::from_secs(60);
    let name = template["metadata"]["name"].as_str().unwrap();
    for err in [
        tokio::time::timeout(bound, applier.current("WorkflowTemplate", &namespace, name))
            .await
            .expect("an answer, not a hang")
            .unwrap_err(),
        tokio::time::timeout(bound, applier.apply(std::slice::from_ref(&template)))
            .await
            .expect("an answer, not a hang")
            .unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains(&format!("cannot reach {url}")), "{text}");
        assert!(text.contains("is the cluster running"), "{text}");
    }
}

/// Workflows as the trigger, status and approve commands will find them:
/// submitted from the pipeline's template, listed by the pipeline's label,
/// read back with their parameters.
#[tokio::test]
async fn workflows_submitted_from_the_template_are_listed_by_pipeline_and_read_back() {
    let api = kube_api();
    let namespace = api.namespace("workflows");
    let client = api.client(&namespace).await;
    let config = load("aphex-template/tests/data/full.yaml");
    let rendered = render(&config, &RenderOptions::default());
    applier(&api, &namespace)
        .await
        .apply(&[in_namespace(
            rendered.get("WorkflowTemplate").unwrap().clone(),
            &namespace,
        )])
        .await
        .unwrap();
    let (_, deploy) = sensor_workflows(rendered.get("Sensor").unwrap())
        .into_iter()
        .find(|(t, _)| t == "deploy")
        .expect("a deploy trigger");
    let deploy = in_namespace(deploy, &namespace);
    let mut names = Vec::new();
    for _ in 0..2 {
        let created = create_strict(&client, "workflows", &deploy).await.unwrap();
        names.push(created["metadata"]["name"].as_str().unwrap().to_owned());
    }
    let selector = deploy["metadata"]["labels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    let workflows = Api::<DynamicObject>::namespaced_with(client, &namespace, &argo("Workflow", "workflows"));
    let mut listed: Vec<String> = workflows
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|w| w.metadata.name.unwrap())
        .collect();
    listed.sort();
    names.sort();
    assert_eq!(listed, names);
    let one = serde_json::to_value(workflows.get(&names[0]).await.unwrap()).unwrap();
    let parameters = one["spec"]["arguments"]["parameters"].as_array().unwrap();
    let commit = parameters
        .iter()
        .find(|p| p["name"] == "commit-sha")
        .expect("a commit-sha parameter");
    assert_eq!(
        commit["value"].as_str().unwrap().len(),
        40,
        "the push's commit: {commit}"
    );
}

/// `aphex approve`'s patch of a risk gate (`Workflows::decide`) as the
/// real server takes it: Argo's CRD accepts the node's phase, message,
/// finish time and its `approved-by` output set as `argo node set` leaves
/// it, and keeps them, for the `risk` task of dev's `gated-deploy` DAG (a
/// nested DAG node) as for an approval gate.
#[tokio::test]
async fn a_risk_gates_decision_is_accepted_and_kept_by_the_workflow_crd() {
    use aphex_k8s::workflows::{Decision, Workflows};

    let api = kube_api();
    let namespace = api.namespace("risk-gate");
    let client = api.client(&namespace).await;
    let workflows =
        Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &argo("Workflow", "workflows"));
    let supplied = |name: &str| json!({"name": name, "valueFrom": {"supplied": {}, "default": ""}});
    for (decision, who, message, phase) in [
        (Decision::Approve, "jane", "risk approved by jane", "Succeeded"),
        (
            Decision::Reject("not during the sale".to_owned()),
            "sam@example.com",
            "rejected by sam@example.com: not during the sale",
            "Failed",
        ),
    ] {
        let workflow = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": "shop-", "namespace": namespace},
            "spec": {"workflowTemplateRef": {"name": "shop"}}});
        let created = create_strict(&client, "workflows", &workflow).await.unwrap();
        let name = created["metadata"]["name"].as_str().unwrap().to_owned();
        // The controller's part: the run waits at dev's risk gate.
        let status = json!({"phase": "Running", "startedAt": "2026-01-01T00:00:00Z", "nodes": {
            name.clone(): {"id": name, "name": name, "displayName": name, "type": "DAG",
                "templateName": "main", "phase": "Running", "startedAt": "2026-01-01T00:00:00Z"},
            format!("{name}-d"): {"id": format!("{name}-d"), "name": format!("{name}.deploy-dev"),
                "displayName": "deploy-dev", "type": "DAG", "templateName": "gated-deploy",
                "phase": "Running", "startedAt": "2026-01-01T00:02:00Z", "boundaryID": name},
            format!("{name}-1"): {"id": format!("{name}-1"), "name": format!("{name}.deploy-dev.risk"),
                "displayName": "risk", "type": "Suspend", "templateName": "risk-gate",
                "phase": "Running", "startedAt": "2026-01-01T00:05:00Z", "boundaryID": format!("{name}-d"),
                "outputs": {"parameters": [supplied("approved-by")]}},
        }});
        workflows
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .expect("the status a controller writes is accepted");

        let gate = Workflows::new(client.clone(), &namespace)
            .decide(&name, "dev", &decision, who, "2026-01-01T01:00:00Z")
            .await
            .expect("the server accepts the decision");
        assert_eq!(gate.name, "risk-dev");
        let after = serde_json::to_value(workflows.get(&name).await.unwrap()).unwrap();
        let node = &after["status"]["nodes"][format!("{name}-1")];
        assert_eq!(node["phase"], phase, "{node}");
        assert_eq!(node["message"], message);
        assert_eq!(node["finishedAt"], "2026-01-01T01:00:00Z");
        assert_eq!(
            node["outputs"]["parameters"],
            json!([{"name": "approved-by", "value": who}])
        );
        assert_eq!(after["status"]["nodes"][&name]["phase"], "Running");
    }
}
