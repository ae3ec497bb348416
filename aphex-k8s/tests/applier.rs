//! `KubeApplier` against the in-process fake API server
//! (`aphex_k8s::fake`), checking what was sent at the HTTP level.

mod common;

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
    assert!(patch.query.contains("fieldValidation=Strict"), "{}", patch.query);
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

/// The status code of the first `kube::Error::Api` in `error`'s sources.
fn api_status(error: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(kube::Error::Api(status)) = e.downcast_ref::<kube::Error>() {
            return Some(status.code);
        }
        next = e.source();
    }
    None
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
    let error = applier.apply(&[wt, sa]).await.unwrap_err();
    // The API server's answer is kept as kube's error, not only as text.
    assert_eq!(api_status(&error), Some(403), "{error:?}");
    let err = error.to_string();
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
#[tokio::test]
async fn the_pipeline_stage_creates_then_leaves_unchanged_then_changes_the_live_template() {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    common::created_then_unchanged_then_changed(|| KubeApplier::new(fake.client()), "shop", "argo").await;
}

#[tokio::test]
async fn the_pipeline_stage_refuses_a_changed_service_account_or_namespace_naming_both() {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    let config = common::pipeline_config("shop", "argo");
    common::run_pipeline_stage(KubeApplier::new(fake.client()), config.clone()).await;
    let path = "/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtemplates/shop";
    let patches = || fake.seen().iter().filter(|s| s.method == Method::PATCH).count();
    let before = patches();
    let run = |config| common::run_pipeline_stage_in(KubeApplier::new(fake.client()), config, Some("argo"));

    let mut other = config.clone();
    other.pipeline.as_mut().unwrap().service_account = Some("aphex-billing".to_owned());
    let err = run(other).await.unwrap_err();
    assert!(
        err.contains("`spec.serviceAccountName` is `aphex-shop` on the cluster but `aphex-billing` in this commit's config"),
        "{err}"
    );
    assert!(err.contains("only `aphex bootstrap` may change"), "{err}");
    assert_eq!(patches(), before, "nothing was applied");
    assert_eq!(
        fake.object(path).unwrap()["spec"]["serviceAccountName"],
        "aphex-shop"
    );

    let mut moved = config.clone();
    moved.pipeline.as_mut().unwrap().namespace = Some("ci".to_owned());
    let err = run(moved).await.unwrap_err();
    assert!(
        err.contains("the pipeline runs in namespace `argo` but this commit's config puts it in `ci`"),
        "{err}"
    );
    assert_eq!(patches(), before, "nothing was applied");

    // A live template without the pod settings (applied by an older
    // aphex) is refused too: upgrades go through bootstrap.
    let mut old = fake.object(path).unwrap();
    old["spec"].as_object_mut().unwrap().remove("securityContext");
    KubeApplier::new(fake.client()).apply(&[old]).await.unwrap();
    let err = run(config).await.unwrap_err();
    assert!(
        err.contains("`spec.securityContext` is (not set) on the cluster"),
        "{err}"
    );
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
    use aphex_stages::diff::{ObjectDiff, diff};
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

#[tokio::test]
async fn a_workflow_the_credentials_may_not_create_says_which_verbs_each_command_needs() {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    fake.forbid("workflows");
    let workflows = aphex_k8s::workflows::Workflows::new(fake.client(), "ci");
    let workflow = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "shop-"},
    });
    let error = workflows.create(&workflow).await.unwrap_err();
    assert!(
        matches!(error, aphex_k8s::workflows::WorkflowError::Kube { .. }),
        "{error:?}"
    );
    assert_eq!(
        api_status(&error),
        Some(403),
        "kube's error is the source: {error:?}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with("submitting a Workflow in namespace ci: 403 Forbidden: "),
        "{text}"
    );
    assert!(
        text.ends_with("`kubectl auth can-i patch workflows -n ci` checks)"),
        "{text}"
    );
}
