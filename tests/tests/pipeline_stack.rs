//! The pipeline's own stack end to end on the emulator, as the pipeline stage
//! deploys it: cluster discovery, the template rendered with the discovered
//! OIDC provider, the CDK bootstrap deploy role of the home account, a change
//! set run as the bootstrap execution role; then IAM's view of the trust
//! policy and a second run that changes nothing. Each test has an account of
//! its own, so the fixed stack and export names never meet.

use std::sync::Mutex;
use std::time::Duration;

use aphex_aws::deployer::DeployOptions;
use aphex_aws::pipeline_stack::AwsPipelineStackUpdater;
use aphex_stages::ports::{DeployProgress, PipelineStackUpdater, StackEvent, StackOutcome};
use aphex_tests::bootstrap::prepare_bootstrap;
use aphex_tests::cluster::{issuer, prepare_cluster};
use aphex_tests::e2e::{stack_status, unique_account};
use aphex_tests::{REGION, emulator};

#[derive(Default)]
struct Recorder(Mutex<Vec<StackEvent>>);

impl DeployProgress for Recorder {
    fn event(&self, event: &StackEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// Fast polling: the emulator finishes operations in well under a second.
fn options() -> DeployOptions {
    DeployOptions {
        poll_initial: Duration::from_millis(100),
        poll_max: Duration::from_millis(500),
        wait_timeout: Duration::from_secs(120),
        force: false,
    }
}

fn config(cluster: &str) -> aphex_config::Config {
    let yaml = format!(
        r#"
version: "1.0"
pipeline:
  name: shop
  cluster: {{ name: {cluster} }}
build: {{ commands: ["true"] }}
environments:
  - {{ name: dev, region: us-east-1, account: "123456789012", stacks: [{{ name: A, path: a.ts }}] }}
"#
    );
    aphex_config::load_str("aphex-config.yaml", &yaml).expect("a valid config")
}

fn output<'a>(outcome: &'a StackOutcome, key: &str) -> &'a str {
    outcome
        .outputs
        .iter()
        .find(|o| o.key == key)
        .unwrap_or_else(|| panic!("no output {key} in {outcome:?}"))
        .value
        .as_str()
}

/// IAM returns policy documents URL-encoded (RFC 3986).
fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII");
                out.push(u8::from_str_radix(hex, 16).expect("a %XX escape"));
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

#[tokio::test]
async fn the_rendered_pipeline_stack_deploys_as_the_bootstrap_roles_and_a_second_run_changes_nothing() {
    let account = unique_account();
    let aws = emulator().aws_config_in(&account).await;
    prepare_bootstrap(&account, REGION).await.expect("bootstrapping");
    let cluster = prepare_cluster(&aws, &account, "demo")
        .await
        .expect("the cluster's exports");
    let updater = AwsPipelineStackUpdater::new(aws.clone()).with_options(options());
    let config = config("demo");

    let progress = Recorder::default();
    let first = updater
        .update(&config, &progress)
        .await
        .expect("the pipeline stack deploys");
    assert!(first.changed);
    assert_eq!(first.stack_name, "aphex-shop");
    assert!(
        progress
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.logical_id == "WorkflowExecutionRole"),
        "the stack's events are progress"
    );
    assert!(!output(&first, "ArtifactBucketName").is_empty());
    let role_arn = output(&first, "WorkflowExecutionRoleArn");
    assert!(role_arn.contains(&format!(":{account}:role/")), "{role_arn}");
    assert_eq!(
        stack_status(&aws, "aphex-shop").await.as_deref(),
        Some("CREATE_COMPLETE")
    );

    // IAM's own view: a plain policy with the issuer written into the keys.
    let role_name = role_arn.rsplit('/').next().expect("a role name");
    let role = aws_sdk_iam::Client::new(&aws)
        .get_role()
        .role_name(role_name)
        .send()
        .await
        .expect("GetRole")
        .role
        .expect("a role");
    let document = role.assume_role_policy_document.expect("a trust policy");
    let policy: serde_json::Value = serde_json::from_str(&url_decode(&document))
        .unwrap_or_else(|e| panic!("the trust policy is JSON ({e}): {document}"));
    let statement = &policy["Statement"][0];
    assert_eq!(
        statement["Principal"]["Federated"],
        cluster.oidc_provider_arn.as_str()
    );
    assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
    let issuer = issuer(REGION, "demo");
    let keys = &statement["Condition"]["StringEquals"];
    assert_eq!(
        keys[format!("{issuer}:sub")],
        "system:serviceaccount:argo:aphex-shop",
        "{policy}"
    );
    assert_eq!(keys[format!("{issuer}:aud")], "sts.amazonaws.com", "{policy}");

    let second = updater
        .update(&config, &Recorder::default())
        .await
        .expect("the second deploy");
    assert!(!second.changed, "same config, same template: nothing to change");
    assert_eq!(second.outputs, first.outputs);
}

#[tokio::test]
async fn a_cluster_without_exports_fails_naming_the_exports_and_the_prefix() {
    let account = unique_account();
    let aws = emulator().aws_config_in(&account).await;
    prepare_bootstrap(&account, REGION).await.expect("bootstrapping");
    let updater = AwsPipelineStackUpdater::new(aws.clone()).with_options(options());

    let err = updater
        .update(&config("nowhere"), &Recorder::default())
        .await
        .expect_err("nothing to discover");
    assert_eq!(err.stack, "aphex-shop");
    for export in ["ClusterName", "OIDCProviderArn", "KubectlRoleArn"] {
        assert!(
            err.message.contains(&format!("AphexCluster-nowhere-{export}")),
            "{err}"
        );
    }
    assert!(err.message.contains("prefix `AphexCluster-nowhere-`"), "{err}");
    assert_eq!(
        stack_status(&aws, "aphex-shop").await,
        None,
        "nothing was deployed"
    );
}
