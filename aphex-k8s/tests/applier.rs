//! `KubeApplier` against the in-process fake API server
//! (`aphex_k8s::fake`), checking what was sent at the HTTP level.

use aphex_k8s::KubeApplier;
use aphex_k8s::fake::Fake;
use aphex_stages::ports::ManifestApplier;
use http::Method;
use serde_json::{Value, json};

/// The WorkflowTemplate the pipeline stage applies, rendered from the seed
/// example.
fn workflow_template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/seed/aphex-config.yaml");
    let config = aphex_config::load_file(std::path::Path::new(path)).expect("the seed example loads");
    aphex_stages::stages::pipeline::render_manifests(&config).remove(0)
}

fn id(m: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    (
        s(&m["kind"]),
        s(&m["metadata"]["namespace"]),
        s(&m["metadata"]["name"]),
    )
}

#[tokio::test]
async fn applies_with_server_side_apply_then_reads_back_what_it_applied() {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    let applier = KubeApplier::new(fake.client());
    let wt = workflow_template();
    let (kind, ns, name) = id(&wt);

    assert_eq!(
        applier.current(&kind, &ns, &name).await.unwrap(),
        None,
        "nothing applied yet"
    );
    applier.apply(std::slice::from_ref(&wt)).await.unwrap();

    let patch = fake
        .seen()
        .into_iter()
        .find(|s| s.method == Method::PATCH)
        .expect("a PATCH was sent");
    assert_eq!(
        patch.path,
        format!("/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflowtemplates/{name}")
    );
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert!(patch.query.contains("fieldManager=aphex"), "{}", patch.query);
    assert!(patch.query.contains("force=true"), "{}", patch.query);
    assert!(
        patch.query.contains("fieldValidation=Strict"),
        "{}",
        patch.query
    );
    assert_eq!(patch.body, wt, "the manifest is sent as rendered");

    let live = applier
        .current(&kind, &ns, &name)
        .await
        .unwrap()
        .expect("applied");
    assert_eq!(
        live["metadata"]["uid"], "0d9b7f5e-uid",
        "the live object, server fields and all"
    );
    assert_eq!(live["spec"], wt["spec"]);
}

#[tokio::test]
async fn discovery_is_asked_once_per_kind() {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    let applier = KubeApplier::new(fake.client());
    let wt = workflow_template();
    let (kind, ns, name) = id(&wt);
    applier.current(&kind, &ns, &name).await.unwrap();
    applier.apply(&[wt.clone(), wt]).await.unwrap();
    let discoveries = fake
        .seen()
        .iter()
        .filter(|s| s.path == "/apis/argoproj.io/v1alpha1")
        .count();
    assert_eq!(discoveries, 1);
    let patches = fake.seen().iter().filter(|s| s.method == Method::PATCH).count();
    assert_eq!(patches, 2);
}

#[tokio::test]
async fn a_cluster_without_argo_says_what_to_install() {
    let fake = Fake::serving(&["v1"]);
    let applier = KubeApplier::new(fake.client());
    let wt = workflow_template();
    let (kind, ns, name) = id(&wt);
    for err in [
        applier.current(&kind, &ns, &name).await.unwrap_err(),
        applier.apply(&[wt]).await.unwrap_err(),
    ] {
        let text = format!("{err}");
        assert!(
            text.contains("does not serve WorkflowTemplate in argoproj.io/v1alpha1"),
            "{text}"
        );
        assert!(text.contains("is Argo Workflows installed"), "{text}");
    }
    assert!(
        fake.seen().iter().all(|s| s.method != Method::PATCH),
        "nothing applied"
    );
}

#[tokio::test]
async fn a_refused_apply_names_the_object_and_the_role() {
    let fake = Fake::serving(&["argoproj.io/v1alpha1", "v1"]);
    let wt = workflow_template();
    let (_, ns, name) = id(&wt);
    fake.forbid(&name);
    let applier = KubeApplier::new(fake.client());
    let sa =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "after", "namespace": ns}});
    let err = applier.apply(&[wt, sa]).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("applying WorkflowTemplate {ns}/{name}")),
        "{err}"
    );
    assert!(err.contains("403 Forbidden"), "{err}");
    assert!(err.contains("in a pod, the executor's Role"), "{err}");
    assert!(err.contains("`aphex bootstrap` needs a kubeconfig"), "{err}");
    let patched: Vec<String> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::PATCH)
        .map(|s| s.path)
        .collect();
    assert_eq!(patched.len(), 1, "it stops at the first failure: {patched:?}");
}

#[tokio::test]
async fn an_object_without_a_namespace_goes_to_the_clients_default_one() {
    let fake = Fake::serving(&["v1"]);
    let applier = KubeApplier::new(fake.client());
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}});
    applier.apply(&[sa]).await.unwrap();
    let patch = fake
        .seen()
        .into_iter()
        .find(|s| s.method == Method::PATCH)
        .unwrap();
    assert_eq!(patch.path, "/api/v1/namespaces/aphex/serviceaccounts/runner");
}

#[tokio::test]
async fn a_manifest_without_a_name_is_refused_before_any_request() {
    let fake = Fake::serving(&["v1"]);
    let applier = KubeApplier::new(fake.client());
    let err = applier
        .apply(&[json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {}})])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no apiVersion, kind or metadata.name"), "{err}");
    assert!(fake.seen().is_empty());
}

/// The pipeline stage itself, applying through `KubeApplier` to the fake:
/// its log says what a re-run and a changed config do to the live template.
mod pipeline_stage {
    use std::sync::Arc;

    use aphex_stages::context::{Ports, RunInfo, StageContext};
    use aphex_stages::fake::RecordingDeployer;
    use aphex_stages::local::{DirArtifactStore, DirRunRecorder, JsonLinesMetrics, NoopNotifier};
    use aphex_stages::process::{Cancel, Exec};
    use aphex_stages::redact::Redactor;
    use aphex_stages::report::CollectingReporter;
    use aphex_stages::stages::pipeline;

    use super::*;

    const CONFIG: &str = r#"
version: "1.0"
pipeline: { name: shop, namespace: argo }
build: { commands: ["true"] }
environments:
  - { name: dev, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }] }
"#;

    /// Runs the pipeline stage on `config` against `fake`; its log.
    async fn run(fake: &Fake, config: aphex_config::Config) -> String {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let reporter = Arc::new(CollectingReporter::default());
        let ctx = StageContext {
            run: RunInfo {
                id: "run-1".to_owned(),
                pipeline: config.pipeline_name().to_owned(),
                commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
                branch: Some("main".to_owned()),
                repo: "https://github.com/acme/shop.git".to_owned(),
            },
            config,
            config_file: "aphex-config.yaml".to_owned(),
            checkout: dir.path().join("checkout"),
            work: dir.path().join("work"),
            logs: dir.path().join("logs"),
            ports: Ports {
                artifacts: Arc::new(DirArtifactStore::new(state.join("artifacts"))),
                runs: Arc::new(DirRunRecorder::new(state.join("runs"))),
                deployer: Arc::new(RecordingDeployer::new()),
                applier: Arc::new(KubeApplier::new(fake.client())),
                metrics: Arc::new(JsonLinesMetrics::new(state.join("metrics.jsonl"))),
                notifier: Arc::new(NoopNotifier),
                credentials: None,
                pipeline_stack: None,
            },
            exec: Exec {
                reporter: reporter.clone(),
                redactor: Redactor::new(),
                cancel: Cancel::new(),
            },
        };
        pipeline::run(&ctx).await.expect("the pipeline stage succeeds");
        reporter.text()
    }

    #[tokio::test]
    async fn creates_then_leaves_unchanged_then_changes_the_live_template() {
        let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
        let config = aphex_config::load_str("aphex-config.yaml", CONFIG).unwrap();

        let log = run(&fake, config.clone()).await;
        assert!(log.contains("WorkflowTemplate argo/shop: created"), "{log}");
        assert!(
            log.contains("applied 1 manifests to the Kubernetes API server"),
            "{log}"
        );

        // The live object carries server fields; the stage must not call
        // that a change.
        let log = run(&fake, config.clone()).await;
        assert!(log.contains("WorkflowTemplate argo/shop: unchanged"), "{log}");
        assert!(log.contains("no topology change"), "{log}");

        let mut grown = config;
        let mut prod = grown.environments[0].clone();
        prod.name = "prod".to_owned();
        grown.environments.push(prod);
        let log = run(&fake, grown).await;
        assert!(log.contains("WorkflowTemplate argo/shop: changed"), "{log}");
        assert!(log.contains("topology: + environment prod"), "{log}");
    }
}

#[tokio::test]
async fn a_missing_namespace_is_named_as_the_likely_cause() {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    let wt = workflow_template();
    let (_, ns, name) = id(&wt);
    fake.without_namespace(&ns);
    let err = KubeApplier::new(fake.client())
        .apply(&[wt])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("applying WorkflowTemplate {ns}/{name}: 404 NotFound")),
        "{err}"
    );
    assert!(err.contains("does the namespace exist?"), "{err}");
}

#[tokio::test]
async fn diff_says_missing_then_same_then_changed_ignoring_server_fields() {
    use aphex_k8s::diff::{ObjectDiff, diff};
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    let applier = KubeApplier::new(fake.client());
    let wt = workflow_template();
    let object = format!("WorkflowTemplate {}/{}", id(&wt).1, id(&wt).2);

    let before = diff(&applier, std::slice::from_ref(&wt)).await.unwrap();
    assert!(matches!(&before[..], [ObjectDiff::Missing { .. }]), "{before:?}");
    assert_eq!(before[0].object(), object);

    applier.apply(std::slice::from_ref(&wt)).await.unwrap();
    let after = diff(&applier, std::slice::from_ref(&wt)).await.unwrap();
    assert_eq!(
        after,
        [ObjectDiff::Same {
            object: object.clone()
        }],
        "server fields are not a change"
    );

    let mut edited = wt.clone();
    edited["spec"]["activeDeadlineSeconds"] = json!(60);
    let changed = diff(&applier, &[edited]).await.unwrap();
    match &changed[..] {
        [ObjectDiff::Changed { live, rendered, .. }] => {
            assert_eq!(rendered["spec"]["activeDeadlineSeconds"], 60);
            assert_eq!(
                live["spec"]["activeDeadlineSeconds"],
                wt["spec"]["activeDeadlineSeconds"]
            );
            assert!(
                live["metadata"].get("uid").is_none(),
                "server fields are stripped: {live}"
            );
        }
        other => panic!("{other:?}"),
    }
}
