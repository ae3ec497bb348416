//! `aphex_stages::bootstrap` against the directory cluster and a recording
//! pipeline stack updater: the order of the steps, what each run reports,
//! and that a second run keeps the webhook secret.

mod support;

use aphex_stages::bootstrap::{BootstrapError, Change, Ports, Report, SecretState, bootstrap};
use aphex_stages::local::DirCluster;
use aphex_stages::ports::{ClusterError, DeployProgress, ManifestApplier, PipelineStackUpdater, StackEvent};
use serde_json::{Value, json};
use support::*;

const CONFIG: &str = r#"
version: "1.0"
pipeline:
  name: shop
  cluster: { name: demo }
  github: { owner: acme, repo: shop, branch: main, webhookUrl: "https://hooks.example.com/shop" }
build: { commands: ["true"] }
environments:
  - { name: dev, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }] }
"#;

struct NoProgress;
impl DeployProgress for NoProgress {
    fn event(&self, _: &StackEvent) {}
}

/// Bootstraps `yaml` with these adapters; a new webhook secret is `secret`.
fn run(
    yaml: &str,
    stack: &dyn PipelineStackUpdater,
    applier: &dyn ManifestApplier,
    secret: &str,
) -> Result<Report, BootstrapError> {
    let ports = Ports { stack, applier };
    rt().block_on(bootstrap(&config(yaml), ports, &NoProgress, &|| {
        Ok(secret.to_owned())
    }))
}

fn config(yaml: &str) -> aphex_config::Config {
    aphex_config::load_str("aphex-config.yaml", yaml).expect("valid test config")
}

fn secret_value(cluster: &DirCluster, name: &str) -> String {
    let text = std::fs::read_to_string(cluster.path_of("Secret", "argo-events", name)).unwrap();
    let secret: Value = serde_json::from_str(&text).unwrap();
    secret["stringData"]["secret"].as_str().unwrap().to_owned()
}

#[test]
fn the_webhook_secret_is_handed_out_only_when_a_person_must_enter_it() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DirCluster::new(dir.path());
    let stack = RecordingStackUpdater::new(StackAnswer::Deployed { changed: true });
    let by_hand = CONFIG.replace(", webhookUrl: \"https://hooks.example.com/shop\"", "");
    assert_ne!(by_hand, CONFIG);
    let report = run(&by_hand, stack.as_ref(), &cluster, "paste-me").unwrap();
    assert_eq!(
        report.webhook_secret.unwrap().state,
        SecretState::CreatedToEnter("paste-me".to_owned())
    );
    let again = run(&by_hand, stack.as_ref(), &cluster, "other").unwrap();
    assert_eq!(again.webhook_secret.unwrap().state, SecretState::Kept);
}

#[test]
fn first_run_creates_everything_and_a_second_keeps_the_webhook_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DirCluster::new(dir.path());
    let stack = RecordingStackUpdater::new(StackAnswer::Deployed { changed: true });

    let first = run(CONFIG, stack.as_ref(), &cluster, "first-secret").unwrap();
    assert_eq!(first.stack.stack_name, "aphex-shop");
    let secret = first.webhook_secret.as_ref().unwrap();
    assert_eq!(
        (secret.namespace.as_str(), secret.name.as_str()),
        ("argo-events", "shop-webhook")
    );
    // Argo Events registers the webhook (webhookUrl is set): the value stays
    // in the cluster.
    assert_eq!(secret.state, SecretState::Created);
    assert_eq!(secret_value(&cluster, "shop-webhook"), "first-secret");
    assert_eq!(
        first.webhook_url.as_deref(),
        Some("https://hooks.example.com/shop")
    );
    assert_eq!(first.webhook_endpoint.as_deref(), Some("/shop"));
    let kinds: Vec<&str> = first
        .objects
        .iter()
        .map(|(o, _)| o.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds[0], "Secret",
        "the webhook secret goes before the EventSource reading it"
    );
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "WorkflowTemplate",
        "EventSource",
        "Sensor",
    ] {
        assert!(kinds.contains(&kind), "{kind} not applied: {kinds:?}");
    }
    assert!(
        first.objects.iter().all(|(_, c)| *c == Change::Created),
        "{:?}",
        first.objects
    );
    // The executor's IRSA annotation carries the stack's role, not a placeholder.
    let sa = rt()
        .block_on(cluster.current("ServiceAccount", "argo", "aphex-shop"))
        .unwrap()
        .expect("the executor's ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/aphex-exec"
    );
    assert_eq!(first.todo.len(), 1, "{:?}", first.todo);
    assert!(
        first.todo[0].contains("create secret generic github-token"),
        "{:?}",
        first.todo
    );

    // The token Secret appears; bootstrap runs again.
    rt().block_on(cluster.apply(&[json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "github-token", "namespace": "argo-events"},
        "stringData": {"token": "ghp_x"},
    })]))
    .unwrap();
    let second = run(CONFIG, stack.as_ref(), &cluster, "second-secret").unwrap();
    assert_eq!(
        second.webhook_secret.unwrap().state,
        SecretState::Kept,
        "the secret is kept"
    );
    assert_eq!(secret_value(&cluster, "shop-webhook"), "first-secret");
    assert!(
        second.objects.iter().all(|(_, c)| *c == Change::Unchanged),
        "{:?}",
        second.objects
    );
    assert!(second.todo.is_empty(), "{:?}", second.todo);
    assert_eq!(stack.calls(), ["shop", "shop"]);
}

#[test]
fn without_a_cluster_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DirCluster::new(dir.path().join("cluster"));
    let stack = RecordingStackUpdater::new(StackAnswer::Deployed { changed: true });
    let no_cluster = CONFIG.replace("  cluster: { name: demo }\n", "");
    let err = run(&no_cluster, stack.as_ref(), &cluster, "s").unwrap_err();
    assert!(matches!(err, BootstrapError::NoCluster), "{err}");
    assert!(err.to_string().contains("--cluster NAME"), "{err}");
    assert!(stack.calls().is_empty());
    assert!(!dir.path().join("cluster").exists());
}

/// A cluster that cannot be read (no Argo CRDs, wrong kubeconfig).
struct Unreachable;

#[async_trait::async_trait]
impl ManifestApplier for Unreachable {
    fn describe(&self) -> String {
        "an unreachable cluster".to_owned()
    }
    async fn current(&self, _: &str, _: &str, _: &str) -> Result<Option<Value>, ClusterError> {
        Err(ClusterError::Refused {
            context: "finding WorkflowTemplate".to_owned(),
            why: "the cluster does not serve WorkflowTemplate".to_owned(),
        })
    }
    async fn apply(&self, _: &[Value]) -> Result<(), ClusterError> {
        unreachable!("nothing is applied to a cluster that could not be read")
    }
}

#[test]
fn an_unreadable_cluster_stops_before_the_stack_is_deployed() {
    let stack = RecordingStackUpdater::new(StackAnswer::Deployed { changed: true });
    let err = run(CONFIG, stack.as_ref(), &Unreachable, "s")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("checking the cluster (an unreachable cluster)"),
        "{err}"
    );
    assert!(err.contains("does not serve WorkflowTemplate"), "{err}");
    assert!(stack.calls().is_empty(), "no stack without a cluster to use it");
}

#[test]
fn a_failed_stack_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DirCluster::new(dir.path().join("cluster"));
    let stack = RecordingStackUpdater::new(StackAnswer::Fails("ROLLBACK_COMPLETE: role name taken"));
    let err = run(CONFIG, stack.as_ref(), &cluster, "s")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("deploying the pipeline stack aphex-shop"),
        "{err}"
    );
    assert!(err.contains("role name taken"), "{err}");
    assert!(!dir.path().join("cluster").exists(), "nothing applied");
}

#[test]
fn random_secrets_are_64_hex_digits_and_differ() {
    let a = aphex_stages::bootstrap::random_secret().unwrap();
    let b = aphex_stages::bootstrap::random_secret().unwrap();
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_ne!(a, b);
}
