//! `aphex trigger`, `status` and `approve` against a real Kubernetes API
//! server (the upstream CRD API server with Argo's full CRDs, started by
//! `cargo xtask test`; `aphex_testkit::kube_api`): the submitted Workflow
//! passes the CRD's schema with strict field validation, and an approval's
//! patch of the gate's node is accepted and kept. The test writes the
//! Workflow's status by hand, as Argo's controller would; each test works in
//! a namespace of its own.

use std::path::Path;
use std::process::{Command, Output};

use aphex_stages::ports::ManifestApplier as _;
use aphex_testkit::kube_api::{KubeApi, kube_api};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

const CONFIG: &str = r#"version: "1.0"
pipeline:
  name: shop
  github: { owner: my-org, repo: shop, branch: main }
build:
  commands: ["npm ci"]
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks: [{ name: Web, path: lib/web.ts }]
  - name: prod
    region: us-east-1
    account: "210987654321"
    approval: manual
    stacks: [{ name: Web, path: lib/web.ts }]
"#;

const SHA: &str = "4f0c3c8e5d2a1b0c9e8f7a6b5c4d3e2f1a0b9c8d";

fn aphex(api: &KubeApi, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(args)
        .current_dir(dir)
        .envs(api.child_env())
        .output()
        .expect("the aphex binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn workflows(api: &KubeApi, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    );
    Api::namespaced_with(api.client(namespace).await, namespace, &resource)
}

/// The status Argo writes while run `name` waits at the prod gate.
fn waiting_at_prod(name: &str) -> Value {
    let node = |id: &str, display: &str, kind: &str, phase: &str, started: &str| {
        json!({"id": id, "name": format!("{name}.{display}"), "displayName": display, "type": kind,
            "templateName": "stage", "phase": phase, "startedAt": started, "boundaryID": name})
    };
    let mut build = node(
        &format!("{name}-1"),
        "build",
        "Retry",
        "Succeeded",
        "2026-01-01T00:00:01Z",
    );
    build["finishedAt"] = json!("2026-01-01T00:02:01Z");
    let mut gate = node(
        &format!("{name}-2"),
        "approve-prod",
        "Suspend",
        "Running",
        "2026-01-01T00:10:00Z",
    );
    gate["templateName"] = json!("approval");
    gate["outputs"] =
        json!({"parameters": [{"name": "approved-by", "valueFrom": {"supplied": {}, "default": ""}}]});
    json!({
        "phase": "Running",
        "startedAt": "2026-01-01T00:00:00Z",
        "nodes": {
            name: {"id": name, "name": name, "displayName": name, "type": "DAG", "phase": "Running",
                "templateName": "main", "startedAt": "2026-01-01T00:00:00Z"},
            format!("{name}-1"): build,
            format!("{name}-2"): gate,
        },
    })
}

#[tokio::test]
async fn trigger_status_and_approve_work_on_real_workflows() {
    let api = kube_api();
    let namespace = api.namespace("cli");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), CONFIG).unwrap();
    // The pipeline's WorkflowTemplate, as bootstrap applies it.
    let config = aphex_config::load_str("aphex-config.yaml", CONFIG).unwrap();
    let mut template = aphex_template::workflow::workflow_template(&config);
    template["metadata"]["namespace"] = json!(namespace);
    let mut kube_config = api.config().await;
    kube_config.default_namespace = namespace.clone();
    let applier = aphex_k8s::KubeApplier::from_config(kube_config).unwrap();
    applier
        .apply(&[template])
        .await
        .expect("the WorkflowTemplate applies");

    let o = aphex(&api, dir.path(), &["trigger", "--commit", SHA, "-n", &namespace]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let name = out
        .strip_prefix("run ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let api_workflows = workflows(&api, &namespace).await;
    let created = serde_json::to_value(api_workflows.get(&name).await.unwrap()).unwrap();
    let labels = &created["metadata"]["labels"];
    assert_eq!(labels["aphex.dev/trigger"], "manual");
    // The kubeconfig's user.
    assert_eq!(labels["aphex.dev/sender"], "aphex-test");
    assert_eq!(created["spec"]["workflowTemplateRef"]["name"], "shop");
    assert_eq!(
        created["spec"]["arguments"]["parameters"][0],
        json!({"name": "commit-sha", "value": SHA})
    );

    let o = aphex(&api, dir.path(), &["status", "-n", &namespace]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let row = text(&o.stdout)
        .lines()
        .find(|l| l.starts_with(&name))
        .map(str::to_owned);
    let row = row.unwrap_or_else(|| panic!("{}", text(&o.stdout)));
    assert!(
        row.contains("manual") && row.contains("aphex-test") && row.contains(&SHA[..12]),
        "{row}"
    );

    // The controller's part.
    api_workflows
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": waiting_at_prod(&name)})),
        )
        .await
        .expect("the status a controller writes is accepted");
    let o = aphex(&api, dir.path(), &["status", &name, "-n", &namespace]);
    assert!(
        text(&o.stdout).contains(&format!("waiting for approval: aphex approve {name} --env prod")),
        "{}",
        text(&o.stdout)
    );

    let o = aphex(
        &api,
        dir.path(),
        &["approve", &name, "--env", "prod", "-n", &namespace],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let after = serde_json::to_value(api_workflows.get(&name).await.unwrap()).unwrap();
    let gate = &after["status"]["nodes"][format!("{name}-2")];
    assert_eq!(gate["phase"], "Succeeded");
    assert_eq!(gate["message"], "approved by aphex-test");
    assert!(gate["finishedAt"].is_string(), "{gate}");
    assert_eq!(
        gate["outputs"]["parameters"],
        json!([{"name": "approved-by", "value": "aphex-test"}])
    );
    // The other nodes are as the controller left them.
    assert_eq!(
        after["status"]["nodes"][format!("{name}-1")]["phase"],
        "Succeeded"
    );
    assert_eq!(after["status"]["phase"], "Running");

    let o = aphex(&api, dir.path(), &["status", &name, "-n", &namespace]);
    assert!(text(&o.stdout).contains("by aphex-test"), "{}", text(&o.stdout));
    let o = aphex(
        &api,
        dir.path(),
        &["approve", &name, "--env", "prod", "-n", &namespace, "--reject"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not waiting: it is Succeeded by aphex-test"),
        "{}",
        text(&o.stderr)
    );
}
