//! `aphex destroy` end to end: a pipeline bootstrapped onto the emulator
//! and the fake API server (served on a loopback port for the binary), an
//! environment stack recorded by a deploy, then the real `aphex` binary
//! deletes what bootstrap made and the named environment's stacks, keeps an
//! object another pipeline owns and the retained artifact bucket.

use std::process::Command;
use std::time::Duration;

use aphex_aws::deployer::DeployOptions;
use aphex_aws::pipeline_stack::AwsPipelineStackUpdater;
use aphex_k8s::KubeApplier;
use aphex_k8s::fake::Fake;
use aphex_stages::bootstrap::{Ports, bootstrap};
use aphex_stages::ports::{DeployProgress, StackEvent};
use aphex_tests::bootstrap::prepare_bootstrap;
use aphex_tests::cluster::prepare_cluster;
use aphex_tests::e2e::{aphex_bin, unique_account};
use aphex_tests::{REGION, emulator};
use serde_json::json;

struct NoProgress;
impl DeployProgress for NoProgress {
    fn event(&self, _: &StackEvent) {}
}

fn config(account: &str) -> String {
    format!(
        r#"
version: "1.0"
pipeline:
  name: shop
  cluster: {{ name: demo }}
  github: {{ owner: acme, repo: shop }}
build: {{ commands: ["true"] }}
environments:
  - name: dev
    region: us-east-1
    account: "{account}"
    stacks: [{{ name: A, path: a.ts }}, {{ name: B, path: b.ts, dependsOn: [A] }}]
"#
    )
}

/// A stack standing for what a deploy made.
const APP_TEMPLATE: &str = r#"{"Resources": {"P": {"Type": "AWS::SSM::Parameter",
    "Properties": {"Type": "String", "Value": "x"}}}}"#;

async fn create_stack(cfn: &aws_sdk_cloudformation::Client, name: &str) {
    cfn.create_stack()
        .stack_name(name)
        .template_body(APP_TEMPLATE)
        .send()
        .await
        .unwrap();
    loop {
        let out = cfn.describe_stacks().stack_name(name).send().await.unwrap();
        let status = out.stacks()[0].stack_status().unwrap().as_str().to_owned();
        if status == "CREATE_COMPLETE" {
            return;
        }
        assert!(status.ends_with("IN_PROGRESS"), "{name}: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn exists(cfn: &aws_sdk_cloudformation::Client, name: &str) -> bool {
    match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => out
            .stacks()
            .first()
            .is_some_and(|s| s.stack_status().unwrap().as_str() != "DELETE_COMPLETE"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn destroy_deletes_what_bootstrap_made_and_the_named_stacks_and_keeps_the_bucket() {
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
    let text = config(&account);
    let config = aphex_config::load_str("aphex-config.yaml", &text).expect("a valid config");
    let ports = Ports {
        stack: &stack,
        applier: &applier,
    };
    let report = bootstrap(&config, ports, &NoProgress, &|| Ok("s3cret".to_owned()))
        .await
        .expect("bootstrap succeeds");
    let bucket = report
        .stack
        .outputs
        .iter()
        .find(|o| o.key == "ArtifactBucketName")
        .expect("the stack names its bucket")
        .value
        .clone();
    // Another pipeline's object under a name this one renders: kept.
    let foreign = "/api/v1/namespaces/argo/configmaps/shop-pipeline-stack";
    let mut other = fake.object(foreign).unwrap();
    other["metadata"]["labels"] = json!({"aphex.dev/pipeline": "other"});
    fake.put(foreign, other);

    // What a deploy of dev made, as its run record names it.
    let cfn = aws_sdk_cloudformation::Client::new(&aws);
    create_stack(&cfn, "dev-a").await;
    create_stack(&cfn, "dev-b").await;
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join(".aphex/runs/shop")).unwrap();
    let stack_result = |name: &str, stack: &str| json!({"name": name, "stackName": stack, "status": "succeeded", "millis": 1});
    let record = json!({
        "id": "shop-1", "pipeline": "shop", "commit": "a".repeat(40), "branch": "main",
        "startedAt": "2026-01-01T00:00:00Z", "status": "succeeded",
        "stages": [{"name": "deploy-dev", "startedAt": "2026-01-01T00:00:00Z", "status": "succeeded",
            "stacks": [stack_result("A", "dev-a"), stack_result("B", "dev-b")]}],
    });
    std::fs::write(
        repo.path().join(".aphex/runs/shop/shop-1.json"),
        record.to_string(),
    )
    .unwrap();
    std::fs::write(repo.path().join("aphex-config.yaml"), &text).unwrap();
    let address = fake.serve();
    std::fs::write(
        repo.path().join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: 'http://{address}'}}\n\
             users:\n- name: jane\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: jane}}\n\
             current-context: fake\n"
        ),
    )
    .unwrap();

    let output = Command::new(aphex_bin())
        .args(["destroy", "--yes", "--stacks", "dev", "--repo"])
        .arg(repo.path())
        .current_dir(repo.path())
        .envs(emulator().child_env())
        .env("AWS_ACCESS_KEY_ID", &account)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("KUBECONFIG", repo.path().join("kubeconfig"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // B depends on A: B goes first.
    let b = stderr
        .find("deleting stack dev-b of environment dev")
        .expect(&stderr);
    let a = stderr
        .find("deleting stack dev-a of environment dev")
        .expect(&stderr);
    assert!(b < a, "{stderr}");
    assert!(stderr.contains("stack aphex-shop: deleted"), "{stderr}");
    assert!(
        stderr.contains(&format!("kept: the artifact bucket {bucket}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("ConfigMap argo/shop-pipeline-stack: kept"),
        "{stderr}"
    );
    for name in ["aphex-shop", "dev-a", "dev-b"] {
        assert!(!exists(&cfn, name).await, "{name} still exists");
    }
    aws_sdk_s3::Client::new(&aws)
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the artifact bucket is retained");
    let left: Vec<String> = fake
        .objects("/")
        .into_iter()
        .filter(|(_, o)| o["metadata"]["labels"]["aphex.dev/pipeline"] == "shop")
        .map(|(p, _)| p)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(fake.object(foreign).is_some());
    for path in [
        "/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtemplates/shop",
        "/api/v1/namespaces/argo-events/secrets/shop-webhook",
    ] {
        assert!(fake.object(path).is_none(), "{path} was not deleted");
    }
}
