//! What a deploy killed midway leaves on a stack, and the next deploy taking
//! over from it, through the real deployer against the emulator: an
//! operation still in progress is waited for, a change set created and
//! never executed (a run killed between the two calls) is replaced, and
//! `UPDATE_ROLLBACK_FAILED` stops the deploy with the command that frees the
//! stack. States the emulator cannot reach (an operation still in progress
//! when the next deploy starts, `UPDATE_ROLLBACK_FAILED`) are recorded
//! `DescribeStacks` answers served by the fault proxy. The whole runner
//! killed and started again is `quickstart_killed.rs`.

use aphex_aws::deployer::CloudFormationDeployer;
use aphex_testkit::fault_proxy::{Canned, FaultProxy, Outcome, Rule};
use aphex_tests::e2e::{stack_creates, stack_status};
use aphex_tests::stacks::{Recorder, deploy, environment, fast_polls, fixture, parameter_template};
use aphex_tests::{DEFAULT_ACCOUNT, emulator, unique_name};
use aws_config::SdkConfig;

/// A fault proxy in front of the emulator, and the deployer going through it.
async fn deployer() -> (FaultProxy, CloudFormationDeployer) {
    let proxy = FaultProxy::start(emulator().endpoint()).expect("starting the fault proxy");
    let config = emulator()
        .aws_config()
        .await
        .to_builder()
        .endpoint_url(proxy.endpoint())
        .build();
    let deployer = CloudFormationDeployer::new(config).with_options(fast_polls());
    (proxy, deployer)
}

/// A made-up id of stack `name`, for a stack that exists only in answers.
fn made_up_id(name: &str) -> String {
    format!(
        "arn:aws:cloudformation:us-east-1:{DEFAULT_ACCOUNT}:stack/{name}/5b3a4c10-0000-11ef-8a2b-0e7a5c3d1f01"
    )
}

/// A `DescribeStacks` answer as CloudFormation gives it, for stack `name`
/// (of id `id`) in `status`.
fn described(name: &str, id: &str, status: &str, reason: &str) -> Canned {
    Canned::xml(
        200,
        format!(
            r#"<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">
  <DescribeStacksResult>
    <Stacks>
      <member>
        <StackId>{id}</StackId>
        <StackName>{name}</StackName>
        <CreationTime>2026-03-02T10:11:12.345Z</CreationTime>
        <LastUpdatedTime>2026-03-02T11:12:13.456Z</LastUpdatedTime>
        <StackStatus>{status}</StackStatus>
        <StackStatusReason>{reason}</StackStatusReason>
        <DisableRollback>false</DisableRollback>
        <EnableTerminationProtection>false</EnableTerminationProtection>
        <Capabilities><member>CAPABILITY_IAM</member></Capabilities>
        <Outputs/>
        <Tags/>
        <DriftInformation><StackDriftStatus>NOT_CHECKED</StackDriftStatus></DriftInformation>
      </member>
    </Stacks>
  </DescribeStacksResult>
  <ResponseMetadata><RequestId>7d1f3a52-0000-4c1e-9a0b-5e3f2d1c0b9a</RequestId></ResponseMetadata>
</DescribeStacksResponse>"#
        ),
    )
}

/// The value of the SSM parameter stack `name` made (its `ParameterName` output).
async fn parameter_value(config: &SdkConfig, outputs: &[aphex_stages::ports::StackOutput]) -> String {
    let parameter = &outputs
        .iter()
        .find(|o| o.key == "ParameterName")
        .expect("a ParameterName output")
        .value;
    aws_sdk_ssm::Client::new(config)
        .get_parameter()
        .name(parameter)
        .send()
        .await
        .expect("GetParameter")
        .parameter()
        .and_then(|p| p.value())
        .unwrap_or_default()
        .to_owned()
}

/// Waits (bounded) for the emulator to finish an operation started by hand.
async fn settled(config: &SdkConfig, name: &str) -> Option<String> {
    for _ in 0..600 {
        let status = stack_status(config, name).await;
        if !status.as_deref().is_some_and(|s| s.ends_with("_IN_PROGRESS")) {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stack_status(config, name).await
}

#[tokio::test]
async fn an_operation_still_in_progress_is_waited_for_before_the_next_change_set() {
    let (proxy, deployer) = deployer().await;
    let config = emulator().aws_config().await;
    let env = environment(DEFAULT_ACCOUNT, None);
    let name = unique_name("aphex-in-flight");
    let export = format!("{name}-Export");
    deploy(
        &deployer,
        &env,
        &fixture(&name, &parameter_template("v1", &export)),
        &Recorder::default(),
    )
    .await
    .expect("the first deploy");

    // The killed run's update is still going when the next deploy starts.
    let id = aws_sdk_cloudformation::Client::new(&config)
        .describe_stacks()
        .stack_name(&name)
        .send()
        .await
        .expect("DescribeStacks")
        .stacks()[0]
        .stack_id()
        .expect("a stack id")
        .to_owned();
    let before = proxy.exchanges().len();
    proxy.add_rule(
        Rule::on(
            "DescribeStacks",
            described(&name, &id, "UPDATE_IN_PROGRESS", "User Initiated"),
        )
        .times(3),
    );
    let outcome = deploy(
        &deployer,
        &env,
        &fixture(&name, &parameter_template("v2", &export)),
        &Recorder::default(),
    )
    .await
    .expect("the deploy after waiting");
    assert!(outcome.changed);
    assert_eq!(parameter_value(&config, &outcome.outputs).await, "v2");
    let calls: Vec<_> = proxy.exchanges().split_off(before);
    let first_create = calls
        .iter()
        .position(|e| e.call.action == "CreateChangeSet")
        .expect("a change set was created");
    let waited = calls[..first_create]
        .iter()
        .filter(|e| e.call.action == "DescribeStacks" && e.outcome == Outcome::Canned(200))
        .count();
    assert_eq!(
        waited, 3,
        "every in-progress answer came before the change set: {calls:#?}"
    );
    assert_eq!(stack_creates(&config, &name).await, 1);
}

#[tokio::test]
async fn update_rollback_failed_stops_the_deploy_with_the_command_that_frees_the_stack() {
    let (proxy, deployer) = deployer().await;
    let env = environment(DEFAULT_ACCOUNT, None);
    let name = unique_name("aphex-rollback-failed");
    proxy.add_rule(
        Rule::on(
            "DescribeStacks",
            described(
                &name,
                &made_up_id(&name),
                "UPDATE_ROLLBACK_FAILED",
                "The following resource(s) failed to update: [Parameter].",
            ),
        )
        .always(),
    );
    let fx = fixture(&name, &parameter_template("v1", &format!("{name}-Export")));
    let err = deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect_err("a stack in UPDATE_ROLLBACK_FAILED cannot be deployed");
    assert_eq!(err.stack, name);
    for needle in [
        "UPDATE_ROLLBACK_FAILED".to_owned(),
        "failed to update: [Parameter]".to_owned(),
        format!("`aws cloudformation continue-update-rollback --stack-name {name}`"),
        "deploy again".to_owned(),
    ] {
        assert!(err.message.contains(&needle), "{needle}: {}", err.message);
    }
    assert!(
        proxy.calls("CreateChangeSet").is_empty() && proxy.calls("ExecuteChangeSet").is_empty(),
        "nothing was attempted on the stuck stack"
    );
}

#[tokio::test]
async fn a_change_set_a_killed_run_created_and_never_executed_is_replaced() {
    let (_proxy, deployer) = deployer().await;
    let config = emulator().aws_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let env = environment(DEFAULT_ACCOUNT, None);

    // A first create: the killed run's CREATE change set made the stack
    // (REVIEW_IN_PROGRESS) and was never executed.
    let name = unique_name("aphex-left-create");
    let export = format!("{name}-Export");
    let left = cfn
        .create_change_set()
        .stack_name(&name)
        .change_set_name("aphex-deploy")
        .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Create)
        .description("Deployed by Aphex [aphex-0123456789abcdef0123456789abcdef]")
        .template_body(parameter_template("stale", &export).to_string())
        .send()
        .await
        .expect("the killed run's change set");
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("REVIEW_IN_PROGRESS")
    );
    let outcome = deploy(
        &deployer,
        &env,
        &fixture(&name, &parameter_template("v1", &export)),
        &Recorder::default(),
    )
    .await
    .expect("deploy over the unexecuted CREATE change set");
    assert!(outcome.changed);
    assert_eq!(parameter_value(&config, &outcome.outputs).await, "v1");
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(stack_creates(&config, &name).await, 1);
    let gone = cfn
        .describe_change_set()
        .change_set_name(left.id().unwrap())
        .send()
        .await;
    assert!(gone.is_err(), "the left change set was replaced: {gone:?}");

    // An update: the stack was made by hand (the emulator keeps executed
    // change sets, and the left one must be the only one of its name).
    let name = unique_name("aphex-left-update");
    let export = format!("{name}-Export");
    cfn.create_stack()
        .stack_name(&name)
        .template_body(parameter_template("v1", &export).to_string())
        .send()
        .await
        .expect("CreateStack");
    assert_eq!(settled(&config, &name).await.as_deref(), Some("CREATE_COMPLETE"));
    let left = cfn
        .create_change_set()
        .stack_name(&name)
        .change_set_name("aphex-deploy")
        .description("Deployed by Aphex [aphex-0123456789abcdef0123456789abcdef]")
        .template_body(parameter_template("stale", &export).to_string())
        .send()
        .await
        .expect("the killed run's change set");
    let outcome = deploy(
        &deployer,
        &env,
        &fixture(&name, &parameter_template("v2", &export)),
        &Recorder::default(),
    )
    .await
    .expect("deploy over the unexecuted UPDATE change set");
    assert!(outcome.changed);
    assert_eq!(parameter_value(&config, &outcome.outputs).await, "v2");
    let gone = cfn
        .describe_change_set()
        .change_set_name(left.id().unwrap())
        .send()
        .await;
    assert!(gone.is_err(), "the left change set was replaced: {gone:?}");
}
