//! The CloudFormation stack deployer and the pipeline stack deployer of
//! `aphex-aws`, through the real AWS SDK against the local emulator that
//! `cargo xtask test` starts: create, update, no-op, failure with root
//! causes, recovery from ROLLBACK_COMPLETE, templates through S3, assets,
//! outputs and exports, streamed events, docker assets refused, a
//! cross-account deploy through an assumed role, and an unchanged stack
//! skipped without a change set.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aphex_aws::deployer::{CloudFormationDeployer, DeployOptions, deterministic_zip};
use aphex_aws::pipeline_stack::{PipelineStack, PipelineStackDeployer};
use aphex_stages::assembly::{
    AwsEnvironment, CloudAssembly, DockerImageAsset, FileAsset, FileDestination, Packaging, StackArtifact,
};
use aphex_stages::ports::{DeployRequest, StackDeployer, StackOutcome};
use aphex_testkit::fault_proxy::FaultProxy;
use aphex_tests::bootstrap::{account_config, assets_bucket, prepare_bootstrap};
use aphex_tests::stacks::{
    Fixture, Recorder, deploy, environment, failing_template, fast_polls, fixture, large_template,
    parameter_template,
};
use aphex_tests::{DEFAULT_ACCOUNT, REGION, emulator, unique_name};
use aws_config::SdkConfig;
use serde_json::json;

const OTHER_ACCOUNT: &str = "111111111111";

async fn deployer() -> CloudFormationDeployer {
    CloudFormationDeployer::new(emulator().aws_config().await).with_options(fast_polls())
}

async fn stack_status(config: &SdkConfig, name: &str) -> Option<String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    match cfn.describe_stacks().stack_name(name).send().await {
        Ok(out) => out.stacks()[0].stack_status().map(|s| s.as_str().to_owned()),
        Err(_) => None,
    }
}

fn output<'a>(outcome: &'a StackOutcome, key: &str) -> &'a aphex_stages::ports::StackOutput {
    outcome
        .outputs
        .iter()
        .find(|o| o.key == key)
        .unwrap_or_else(|| panic!("output {key} missing from {:?}", outcome.outputs))
}

#[tokio::test]
async fn creates_then_skips_an_unchanged_stack_then_updates_it() {
    let name = unique_name("aphex-cfn-lifecycle");
    let export = format!("{name}-ParameterName");
    let deployer = deployer().await;
    let env = environment(DEFAULT_ACCOUNT, None);
    let config = emulator().aws_config().await;

    let mut fx = fixture(&name, &parameter_template("v1", &export));
    fx.stack.parameters.insert("Greeting".into(), "bonjour".into());
    fx.stack.tags.insert("team".into(), "platform".into());
    fx.stack.termination_protection = true;

    // Create: outputs with export names, parameters applied, events streamed.
    let progress = Recorder::default();
    let created = deploy(&deployer, &env, &fx, &progress).await.expect("create");
    assert!(created.changed);
    assert_eq!(created.stack_name, name);
    assert_eq!(
        output(&created, "ParameterName").export_name.as_deref(),
        Some(export.as_str())
    );
    assert!(!output(&created, "ParameterName").value.is_empty());
    assert_eq!(output(&created, "Greeting").value, "bonjour");
    assert_eq!(output(&created, "Greeting").export_name, None);
    let events = progress.events();
    assert!(
        events.iter().any(|e| e.logical_id == "Param"
            && e.resource_type == "AWS::SSM::Parameter"
            && e.status == "CREATE_COMPLETE"),
        "no CREATE_COMPLETE event for Param in {events:#?}"
    );
    assert!(events.iter().all(|e| e.stack == name && !e.timestamp.is_empty()));
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );

    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let described = cfn.describe_stacks().stack_name(&name).send().await.unwrap();
    let stack = &described.stacks()[0];
    assert_eq!(stack.enable_termination_protection(), Some(true));
    let tags: BTreeMap<_, _> = stack
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect();
    assert_eq!(tags.get("team").map(String::as_str), Some("platform"));
    let exports = cfn.list_exports().send().await.unwrap();
    assert!(
        exports
            .exports()
            .iter()
            .any(|e| e.name() == Some(export.as_str()))
    );

    // The same template again: a no-op, no events, and no change set left.
    let progress = Recorder::default();
    let again = deploy(&deployer, &env, &fx, &progress)
        .await
        .expect("no-op deploy");
    assert!(!again.changed);
    assert_eq!(again.outputs, created.outputs);
    assert!(
        progress.events().is_empty(),
        "a no-op streamed {:#?}",
        progress.events()
    );
    let change_sets = cfn.list_change_sets().stack_name(&name).send().await.unwrap();
    assert!(
        change_sets.summaries().is_empty(),
        "the empty change set was left behind: {:?}",
        change_sets.summaries()
    );

    // A new value: an update, with only its own events streamed.
    let mut changed = fixture(&name, &parameter_template("v2", &export));
    changed.stack = StackArtifact {
        template_file: changed.stack.template_file.clone(),
        ..fx.stack.clone()
    };
    let progress = Recorder::default();
    let updated = deploy(&deployer, &env, &changed, &progress)
        .await
        .expect("update");
    assert!(updated.changed);
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("UPDATE_COMPLETE")
    );
    let events = progress.events();
    assert!(
        events.iter().any(|e| e.status == "UPDATE_COMPLETE"),
        "{events:#?}"
    );
    assert!(
        events.iter().all(|e| !e.status.starts_with("CREATE_")),
        "old events replayed: {events:#?}"
    );
    let ssm = aws_sdk_ssm::Client::new(&config);
    let value = ssm
        .get_parameter()
        .name(&output(&updated, "ParameterName").value)
        .send()
        .await
        .unwrap();
    assert_eq!(value.parameter().unwrap().value(), Some("v2"));
}

/// A deployer whose calls go through a fault proxy (faulting nothing): its
/// log shows which calls were made.
async fn observed(options: DeployOptions) -> (FaultProxy, CloudFormationDeployer) {
    let proxy = FaultProxy::start(emulator().endpoint()).expect("starting the fault proxy");
    let config = emulator()
        .aws_config()
        .await
        .to_builder()
        .endpoint_url(proxy.endpoint())
        .build();
    (proxy, CloudFormationDeployer::new(config).with_options(options))
}

#[tokio::test]
async fn an_unchanged_stack_makes_no_change_set_and_a_changed_parameter_or_tag_does() {
    let name = unique_name("aphex-cfn-skip");
    let export = format!("{name}-Export");
    let (proxy, deployer) = observed(fast_polls()).await;
    let env = environment(DEFAULT_ACCOUNT, None);
    let config = emulator().aws_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let change_sets = || proxy.calls("CreateChangeSet").len();

    let mut fx = fixture(&name, &parameter_template("v1", &export));
    fx.stack.parameters.insert("Greeting".into(), "bonjour".into());
    fx.stack.tags.insert("team".into(), "platform".into());
    let created = deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect("create");
    assert!(created.changed);
    assert_eq!(change_sets(), 1);

    // The same template, parameters and tags: skipped, with the outputs
    // as deployed, after reading the stack and its template once each.
    let before = proxy.exchanges().len();
    let again = deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect("unchanged deploy");
    assert!(!again.changed);
    assert_eq!(again.outputs, created.outputs);
    assert_eq!(change_sets(), 1, "no change set for an unchanged stack");
    let actions: Vec<String> = proxy.exchanges()[before..]
        .iter()
        .map(|e| e.call.action.clone())
        .collect();
    assert_eq!(actions, ["DescribeStacks", "GetTemplate"], "the calls of a skip");
    let listed = cfn.list_change_sets().stack_name(&name).send().await.unwrap();
    assert!(listed.summaries().is_empty(), "{:?}", listed.summaries());

    // Termination protection is no change set's business: set, still skipped.
    fx.stack.termination_protection = true;
    let protected = deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect("protect");
    assert!(!protected.changed);
    assert_eq!(change_sets(), 1);
    let described = cfn.describe_stacks().stack_name(&name).send().await.unwrap();
    assert_eq!(described.stacks()[0].enable_termination_protection(), Some(true));

    // Forced: a change set all the same (empty, so nothing changes).
    let (forced_proxy, forced) = observed(DeployOptions {
        force: true,
        ..fast_polls()
    })
    .await;
    let outcome = deploy(&forced, &env, &fx, &Recorder::default())
        .await
        .expect("forced deploy");
    assert!(!outcome.changed);
    assert_eq!(forced_proxy.calls("CreateChangeSet").len(), 1, "forced");
    assert!(
        forced_proxy.calls("GetTemplate").is_empty(),
        "a forced deploy compares nothing"
    );

    // A changed parameter: a change set, executed.
    fx.stack.parameters.insert("Greeting".into(), "hola".into());
    let updated = deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect("update");
    assert!(updated.changed);
    assert_eq!(change_sets(), 2, "a changed parameter makes a change set");
    assert_eq!(output(&updated, "Greeting").value, "hola");

    // A changed tag: a change set too.
    fx.stack.tags.insert("team".into(), "infra".into());
    deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect("retag");
    assert_eq!(change_sets(), 3, "a changed tag makes a change set");
}

#[tokio::test]
async fn a_failed_create_names_the_root_cause_and_is_recreated_on_the_next_deploy() {
    let name = unique_name("aphex-cfn-failing");
    let deployer = deployer().await;
    let env = environment(DEFAULT_ACCOUNT, None);
    let config = emulator().aws_config().await;

    let broken = fixture(&name, &failing_template());
    let progress = Recorder::default();
    let err = deploy(&deployer, &env, &broken, &progress)
        .await
        .expect_err("a Bogus parameter type must fail");
    assert_eq!(err.stack, name);
    assert!(!err.root_causes.is_empty(), "no root cause in {err}");
    let cause = &err.root_causes[0];
    assert_eq!(cause.logical_id, "Broken");
    assert_eq!(cause.resource_type, "AWS::SSM::Parameter");
    assert!(cause.status.ends_with("_FAILED"), "{cause:?}");
    let reason = cause.reason.as_deref().expect("the root cause has a reason");
    let message = err.to_string();
    assert!(message.contains(&name), "{message}");
    assert!(
        message.contains("Broken") && message.contains(reason),
        "{message}"
    );
    assert!(message.contains("ROLLBACK_COMPLETE"), "{message}");
    assert!(
        err.root_causes
            .iter()
            .all(|e| !e.reason.as_deref().unwrap_or("").contains("cancelled"))
    );
    assert!(
        progress
            .events()
            .iter()
            .any(|e| e.logical_id == "Broken" && e.status.ends_with("_FAILED"))
    );
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("ROLLBACK_COMPLETE")
    );

    // Fixed: the rolled-back stack is deleted and created anew.
    let fixed = fixture(&name, &parameter_template("fixed", &format!("{name}-Export")));
    let progress = Recorder::default();
    let outcome = deploy(&deployer, &env, &fixed, &progress)
        .await
        .expect("re-create after ROLLBACK_COMPLETE");
    assert!(outcome.changed);
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    let events = progress.events();
    assert!(
        events.iter().any(|e| e.status == "DELETE_COMPLETE"),
        "the delete was not streamed: {events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.logical_id == "Param" && e.status == "CREATE_COMPLETE"),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_template_over_the_inline_limit_deploys_through_s3() {
    prepare_bootstrap(DEFAULT_ACCOUNT, REGION)
        .await
        .expect("bootstrap");
    let name = unique_name("aphex-cfn-large");
    let fx = fixture(&name, &large_template(&format!("{name}-Export")));
    let size = std::fs::metadata(&fx.stack.template_file).unwrap().len();
    assert!(size > 51_200, "template is only {size} bytes");

    let outcome = deploy(
        &deployer().await,
        &environment(DEFAULT_ACCOUNT, None),
        &fx,
        &Recorder::default(),
    )
    .await
    .expect("large template deploy");
    assert!(outcome.changed);

    let config = emulator().aws_config().await;
    let listed = aphex_aws::client::s3(&config)
        .list_objects_v2()
        .bucket(assets_bucket(DEFAULT_ACCOUNT, REGION))
        .prefix(format!("aphex/{name}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents().len(),
        1,
        "the template was not uploaded under aphex/{name}/"
    );
    let stored = aws_sdk_cloudformation::Client::new(&config)
        .get_template()
        .stack_name(&name)
        .send()
        .await
        .unwrap();
    assert!(stored.template_body().unwrap_or_default().contains("Note0699"));
}

/// A stack whose template and two file assets (a file, a zipped directory)
/// are published to the bootstrap bucket, as the CDK's synthesizer names them.
fn asset_fixture(name: &str, source: &Path) -> Fixture {
    let mut fx = fixture(name, &parameter_template("assets", &format!("{name}-Export")));
    let bucket = "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}".to_owned();
    let role = Some(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-file-publishing-role-${AWS::AccountId}-${AWS::Region}"
            .to_owned(),
    );
    let destination = |key: String| FileDestination {
        id: "current_account-current_region".into(),
        bucket_name: bucket.clone(),
        object_key: key,
        region: Some("${AWS::Region}".into()),
        assume_role_arn: role.clone(),
        assume_role_external_id: None,
    };
    let template_key = format!("{name}-template.json");
    fx.stack.stack_template_asset_object_url = Some(format!("s3://{bucket}/{template_key}"));
    fx.stack.assume_role_arn =
        Some("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}".into());
    fx.stack.cloudformation_execution_role_arn = Some(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-cfn-exec-role-${AWS::AccountId}-${AWS::Region}".into(),
    );
    fx.stack.assets.files = vec![
        FileAsset {
            id: "template".into(),
            path: fx.stack.template_file.clone(),
            packaging: Packaging::File,
            destinations: vec![destination(template_key)],
        },
        FileAsset {
            id: "config".into(),
            path: source.join("config.json"),
            packaging: Packaging::File,
            destinations: vec![destination(format!("{name}-config.json"))],
        },
        FileAsset {
            id: "site".into(),
            path: source.join("site"),
            packaging: Packaging::Zip,
            destinations: vec![destination(format!("{name}-site.zip"))],
        },
    ];
    fx
}

async fn object(config: &SdkConfig, bucket: &str, key: &str) -> Vec<u8> {
    let got = aphex_aws::client::s3(config)
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("s3://{bucket}/{key} missing: {e}"));
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn file_assets_and_the_template_asset_are_published_before_the_deploy() {
    prepare_bootstrap(DEFAULT_ACCOUNT, REGION)
        .await
        .expect("bootstrap");
    let name = unique_name("aphex-cfn-assets");
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("config.json"), br#"{"greeting":"hi"}"#).unwrap();
    std::fs::create_dir_all(source.path().join("site/css")).unwrap();
    std::fs::write(source.path().join("site/index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(source.path().join("site/css/style.css"), "h1{}").unwrap();
    let fx = asset_fixture(&name, source.path());

    let outcome = deploy(
        &deployer().await,
        &environment(DEFAULT_ACCOUNT, None),
        &fx,
        &Recorder::default(),
    )
    .await
    .expect("deploy with assets");
    assert!(outcome.changed);

    let config = emulator().aws_config().await;
    let bucket = assets_bucket(DEFAULT_ACCOUNT, REGION);
    assert_eq!(
        object(&config, &bucket, &format!("{name}-config.json")).await,
        br#"{"greeting":"hi"}"#
    );
    let mut expected_zip = std::io::Cursor::new(Vec::new());
    deterministic_zip(&source.path().join("site"), &mut expected_zip).unwrap();
    assert_eq!(
        object(&config, &bucket, &format!("{name}-site.zip")).await,
        expected_zip.into_inner()
    );
    let template = object(&config, &bucket, &format!("{name}-template.json")).await;
    assert_eq!(template, std::fs::read(&fx.stack.template_file).unwrap());
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
}

#[tokio::test]
async fn docker_image_assets_are_refused_naming_the_asset() {
    let name = unique_name("aphex-cfn-docker");
    let mut fx = fixture(&name, &parameter_template("docker", &format!("{name}-Export")));
    fx.stack.assets.docker_images = vec![DockerImageAsset {
        id: "abc123image".into(),
        directory: Some("asset.abc123image".into()),
    }];
    let err = deploy(
        &deployer().await,
        &environment(DEFAULT_ACCOUNT, None),
        &fx,
        &Recorder::default(),
    )
    .await
    .expect_err("docker image assets are not published");
    assert_eq!(err.stack, name);
    let message = err.to_string();
    assert!(message.contains("abc123image"), "{message}");
    assert!(message.contains("does not publish container images"), "{message}");
    // Refused before anything was deployed.
    assert_eq!(stack_status(&emulator().aws_config().await, &name).await, None);
}

#[tokio::test]
async fn a_stack_for_another_account_is_deployed_there_through_the_assumed_role() {
    prepare_bootstrap(OTHER_ACCOUNT, REGION).await.expect("bootstrap");
    let deployer = deployer().await;
    let home = emulator().aws_config().await;
    let other = account_config(OTHER_ACCOUNT, REGION).await;

    // The assembly's deploy role, placeholders filled with the environment's account.
    let name = unique_name("aphex-cfn-xacct");
    let mut fx = fixture(&name, &parameter_template("remote", &format!("{name}-Export")));
    fx.stack.assume_role_arn = Some(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}".into(),
    );
    deploy(
        &deployer,
        &environment(OTHER_ACCOUNT, None),
        &fx,
        &Recorder::default(),
    )
    .await
    .expect("cross-account deploy");
    assert_eq!(
        stack_status(&other, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        stack_status(&home, &name).await,
        None,
        "the stack landed in the caller's own account"
    );

    // The environment's roleArn wins over the assembly's role.
    let name = unique_name("aphex-cfn-rolearn");
    let fx = fixture(&name, &parameter_template("remote", &format!("{name}-Export")));
    let role = format!("arn:aws:iam::{OTHER_ACCOUNT}:role/aphex-deployer");
    deploy(
        &deployer,
        &environment(OTHER_ACCOUNT, Some(&role)),
        &fx,
        &Recorder::default(),
    )
    .await
    .expect("deploy with roleArn");
    assert_eq!(
        stack_status(&other, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(stack_status(&home, &name).await, None);
}

#[tokio::test]
async fn the_pipeline_stack_deploys_from_a_template_string_and_skips_when_unchanged() {
    let name = unique_name("aphex-pipeline-stack");
    let deployer = PipelineStackDeployer::new(emulator().aws_config().await).with_options(fast_polls());
    let stack = PipelineStack {
        stack_name: name.clone(),
        template: parameter_template("pipeline", &format!("{name}-Export")).to_string(),
        parameters: BTreeMap::from([("Greeting".to_owned(), "salut".to_owned())]),
        tags: BTreeMap::from([("aphex:pipeline".to_owned(), "e2e".to_owned())]),
        template_bucket: None,
        execution_role_arn: None,
    };
    let progress = Recorder::default();
    let first = deployer
        .deploy(&stack, &progress)
        .await
        .expect("pipeline stack create");
    assert!(first.changed);
    assert_eq!(output(&first, "Greeting").value, "salut");
    assert!(!progress.events().is_empty());
    let second = deployer
        .deploy(&stack, &Recorder::default())
        .await
        .expect("pipeline stack no-op");
    assert!(!second.changed);
    assert_eq!(second.outputs, first.outputs);
}

/// The `assets` fixture: a real `cdk synth` output (see tests/cdk-apps).
fn synthesized_assets() -> CloudAssembly {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../aphex-stages/tests/fixtures/assets");
    aphex_stages::assembly::read(&dir).expect("read the assets fixture (cargo xtask fixtures)")
}

fn synthesized_stack(assembly: &CloudAssembly, id: &str) -> StackArtifact {
    assembly
        .stacks
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no stack {id} in the fixture"))
        .clone()
}

#[tokio::test]
async fn a_synthesized_cdk_stack_deploys_with_its_assets_tags_and_protection() {
    prepare_bootstrap(DEFAULT_ACCOUNT, REGION)
        .await
        .expect("bootstrap");
    let assembly = synthesized_assets();
    let mut stack = synthesized_stack(&assembly, "FileAssets");
    // Its own name, so reruns against one emulator never meet.
    stack.stack_name = unique_name("aphex-cfn-synth");
    let request = DeployRequest {
        pipeline: "e2e",
        environment: &environment(DEFAULT_ACCOUNT, None),
        assembly: &assembly,
        stack: &stack,
    };
    let progress = Recorder::default();
    let outcome = deployer()
        .await
        .deploy(request, &progress)
        .await
        .expect("deploy the synthesized stack");
    assert!(outcome.changed);
    assert_eq!(
        output(&outcome, "SiteUrl").export_name.as_deref(),
        Some("SiteUrl")
    );

    let config = emulator().aws_config().await;
    let bucket = assets_bucket(DEFAULT_ACCOUNT, REGION);
    for asset in &stack.assets.files {
        let destination = &asset.destinations[0];
        let published = object(&config, &bucket, &destination.object_key).await;
        match asset.packaging {
            Packaging::File => assert_eq!(published, std::fs::read(&asset.path).unwrap(), "{}", asset.id),
            Packaging::Zip => {
                let mut zip = std::io::Cursor::new(Vec::new());
                deterministic_zip(&asset.path, &mut zip).unwrap();
                assert_eq!(published, zip.into_inner(), "{}", asset.id);
            }
        }
    }
    let described = aws_sdk_cloudformation::Client::new(&config)
        .describe_stacks()
        .stack_name(&stack.stack_name)
        .send()
        .await
        .unwrap();
    let deployed = &described.stacks()[0];
    assert_eq!(deployed.enable_termination_protection(), Some(true));
    assert!(
        deployed
            .tags()
            .iter()
            .any(|t| t.key() == Some("purpose") && t.value() == Some("fixture"))
    );
    assert!(
        progress
            .events()
            .iter()
            .any(|e| e.logical_id == "ConfigLocation84ED0695" && e.status == "CREATE_COMPLETE")
    );
}

#[tokio::test]
async fn a_synthesized_docker_image_asset_is_refused_naming_it() {
    let assembly = synthesized_assets();
    let mut stack = synthesized_stack(&assembly, "DockerAssets");
    stack.stack_name = unique_name("aphex-cfn-synth-docker");
    let image = stack
        .assets
        .docker_images
        .first()
        .expect("the fixture has a docker image asset")
        .id
        .clone();
    let request = DeployRequest {
        pipeline: "e2e",
        environment: &environment(DEFAULT_ACCOUNT, None),
        assembly: &assembly,
        stack: &stack,
    };
    let err = deployer()
        .await
        .deploy(request, &Recorder::default())
        .await
        .expect_err("images are not published");
    assert!(err.to_string().contains(&image), "{err}");
    assert_eq!(
        stack_status(&emulator().aws_config().await, &stack.stack_name).await,
        None
    );
}

/// A template whose create takes a while: a chain of parameters, each
/// waiting for the one before.
fn slow_template(count: usize) -> serde_json::Value {
    let resources: serde_json::Map<String, serde_json::Value> = (0..count)
        .map(|i| {
            let mut resource = json!({
                "Type": "AWS::SSM::Parameter",
                "Properties": { "Type": "String", "Value": format!("step {i}") }
            });
            if i > 0 {
                resource["DependsOn"] = json!(format!("Step{}", i - 1));
            }
            (format!("Step{i}"), resource)
        })
        .collect();
    json!({ "Resources": resources })
}

#[tokio::test]
async fn a_stack_mid_operation_is_waited_for_before_the_next_change_set() {
    let name = unique_name("aphex-cfn-busy");
    let config = emulator().aws_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    // Someone else starts a create and does not wait for it.
    cfn.create_stack()
        .stack_name(&name)
        .template_body(slow_template(40).to_string())
        .send()
        .await
        .expect("start a create");
    let busy = stack_status(&config, &name).await;
    assert_eq!(
        busy.as_deref(),
        Some("CREATE_IN_PROGRESS"),
        "the create ended before the deploy started"
    );

    let fx = fixture(&name, &parameter_template("after", &format!("{name}-Export")));
    let progress = Recorder::default();
    let outcome = deploy(
        &deployer().await,
        &environment(DEFAULT_ACCOUNT, None),
        &fx,
        &progress,
    )
    .await
    .expect("deploy after waiting");
    assert!(outcome.changed);
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("UPDATE_COMPLETE")
    );
    let events = progress.events();
    // The in-flight create was followed to its end, then the update ran.
    let created = events
        .iter()
        .position(|e| e.logical_id == name && e.status == "CREATE_COMPLETE");
    let updated = events
        .iter()
        .position(|e| e.logical_id == name && e.status == "UPDATE_COMPLETE");
    assert!(
        matches!((created, updated), (Some(c), Some(u)) if c < u),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_stack_synthesized_for_another_account_is_refused_before_anything_deploys() {
    let name = unique_name("aphex-cfn-wrong-account");
    let mut fx = fixture(&name, &parameter_template("x", &format!("{name}-Export")));
    fx.stack.environment = AwsEnvironment {
        account: DEFAULT_ACCOUNT.into(),
        region: REGION.into(),
    };
    let err = deploy(
        &deployer().await,
        &environment(OTHER_ACCOUNT, None),
        &fx,
        &Recorder::default(),
    )
    .await
    .expect_err("the stack targets another account");
    let message = err.to_string();
    assert!(
        message.contains(&format!("aws://{DEFAULT_ACCOUNT}/{REGION}"))
            && message.contains(&format!("aws://{OTHER_ACCOUNT}/{REGION}")),
        "{message}"
    );
    assert_eq!(
        stack_status(&account_config(OTHER_ACCOUNT, REGION).await, &name).await,
        None
    );
    assert_eq!(stack_status(&emulator().aws_config().await, &name).await, None);
}

#[tokio::test]
async fn a_stack_busy_past_the_wait_bound_fails_saying_so() {
    let name = unique_name("aphex-cfn-bound");
    let config = emulator().aws_config().await;
    aws_sdk_cloudformation::Client::new(&config)
        .create_stack()
        .stack_name(&name)
        .template_body(slow_template(40).to_string())
        .send()
        .await
        .expect("start a create");
    // No patience at all: the first poll that still sees the create running gives up.
    let impatient = CloudFormationDeployer::new(config.clone()).with_options(DeployOptions {
        wait_timeout: Duration::ZERO,
        ..fast_polls()
    });
    let fx = fixture(&name, &parameter_template("after", &format!("{name}-Export")));
    let err = deploy(
        &impatient,
        &environment(DEFAULT_ACCOUNT, None),
        &fx,
        &Recorder::default(),
    )
    .await
    .expect_err("the bound is zero");
    assert_eq!(err.stack, name);
    assert!(
        err.message.contains("still CREATE_IN_PROGRESS after 0 s"),
        "{err}"
    );
}
