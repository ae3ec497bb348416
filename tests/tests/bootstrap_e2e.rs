//! `aphex_stages::bootstrap` end to end with the real adapters: the
//! pipeline stack deployed on the emulator (cluster discovery, the CDK
//! bootstrap roles), every manifest applied through `KubeApplier` to the
//! in-process fake API server. What the cluster holds afterwards is what
//! `aphex bootstrap` leaves: the executor's IRSA annotation is the stack's
//! role, the stack-outputs ConfigMap names the stack's bucket.

use std::time::Duration;

use aphex_aws::deployer::DeployOptions;
use aphex_aws::pipeline_stack::AwsPipelineStackUpdater;
use aphex_k8s::KubeApplier;
use aphex_k8s::fake::Fake;
use aphex_stages::bootstrap::{Change, Ports, bootstrap};
use aphex_stages::ports::{DeployProgress, StackEvent};
use aphex_tests::bootstrap::prepare_bootstrap;
use aphex_tests::cluster::prepare_cluster;
use aphex_tests::e2e::unique_account;
use aphex_tests::{REGION, emulator};

struct NoProgress;
impl DeployProgress for NoProgress {
    fn event(&self, _: &StackEvent) {}
}

const CONFIG: &str = r#"
version: "1.0"
pipeline:
  name: shop
  cluster: { name: demo }
  github: { owner: acme, repo: shop }
build: { commands: ["true"] }
environments:
  - { name: dev, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }] }
"#;

#[tokio::test]
async fn bootstrap_deploys_the_stack_then_applies_every_manifest_with_its_outputs() {
    let account = unique_account();
    let aws = emulator().aws_config_in(&account).await;
    prepare_bootstrap(&account, REGION).await.expect("bootstrapping");
    prepare_cluster(&aws, &account, "demo")
        .await
        .expect("the cluster's exports");
    let stack = AwsPipelineStackUpdater::new(aws.clone()).with_options(DeployOptions {
        poll_initial: Duration::from_millis(100),
        poll_max: Duration::from_millis(500),
        wait_timeout: Duration::from_secs(120),
        force: false,
    });
    let fake = Fake::serving(&[
        "v1",
        "rbac.authorization.k8s.io/v1",
        "admissionregistration.k8s.io/v1",
        "argoproj.io/v1alpha1",
    ]);
    let applier = KubeApplier::new(fake.client());
    let config = aphex_config::load_str("aphex-config.yaml", CONFIG).expect("a valid config");
    let ports = || Ports {
        stack: &stack,
        applier: &applier,
    };

    let report = bootstrap(&config, ports(), &NoProgress, &|| Ok("s3cret".to_owned()))
        .await
        .expect("bootstrap succeeds");
    assert!(report.stack.changed);
    let output = |key: &str| {
        report
            .stack
            .outputs
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.value.clone())
            .unwrap_or_else(|| panic!("no {key}"))
    };
    let sa = fake
        .object("/api/v1/namespaces/argo/serviceaccounts/aphex-shop")
        .expect("the executor's ServiceAccount was applied");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        output("WorkflowExecutionRoleArn")
    );
    let stack_outputs = fake
        .object("/api/v1/namespaces/argo/configmaps/shop-pipeline-stack")
        .expect("the stack-outputs ConfigMap was applied");
    assert!(
        stack_outputs["data"]
            .to_string()
            .contains(&output("ArtifactBucketName")),
        "{stack_outputs}"
    );
    let secret = fake
        .object("/api/v1/namespaces/argo-events/secrets/shop-webhook")
        .expect("the webhook Secret was created");
    assert_eq!(secret["stringData"]["secret"], "s3cret");
    for path in [
        "/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtemplates/shop",
        "/apis/argoproj.io/v1alpha1/namespaces/argo-events/eventsources/shop-github",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/argo/roles/shop-executor",
    ] {
        assert!(
            fake.object(path).is_some(),
            "{path} was not applied: {:?}",
            report.objects
        );
    }
    assert!(
        report.objects.iter().all(|(_, c)| *c == Change::Created),
        "{:?}",
        report.objects
    );

    // Again: the stack and every object unchanged, the secret kept.
    let again = bootstrap(&config, ports(), &NoProgress, &|| Ok("other".to_owned()))
        .await
        .expect("a second bootstrap succeeds");
    assert!(!again.stack.changed);
    assert_eq!(
        again.webhook_secret.expect("github is configured").state,
        aphex_stages::bootstrap::SecretState::Kept
    );
    assert!(
        again.objects.iter().all(|(_, c)| *c == Change::Unchanged),
        "{:?}",
        again.objects
    );
    let secret = fake
        .object("/api/v1/namespaces/argo-events/secrets/shop-webhook")
        .unwrap();
    assert_eq!(secret["stringData"]["secret"], "s3cret");
}
