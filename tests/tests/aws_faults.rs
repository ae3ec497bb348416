//! AWS faults injected for real into `aphex-aws`'s adapters: the fault proxy
//! of `aphex-testkit` sits between the real AWS SDK and the emulator (the
//! SDK configuration's endpoint is the proxy) and answers chosen calls with
//! a fault. Each service's throttling, in its own protocol, is retried and,
//! when it persists, reported naming the service, the call and the error;
//! and every call whose answer can be lost (`CreateChangeSet`,
//! `ExecuteChangeSet`, `DeleteStack`, `CompleteMultipartUpload`,
//! `PutObject`) is carried through when it is.

use aphex_aws::client::{MAX_ATTEMPTS, describe};
use aphex_aws::cloudwatch::CloudWatchMetrics;
use aphex_aws::deployer::CloudFormationDeployer;
use aphex_aws::discovery::{DiscoveryError, discover_cluster};
use aphex_aws::s3::{S3ArtifactStore, S3RunRecorder};
use aphex_stages::ports::{ArtifactStore, Metric, MetricUnit, MetricsSink, RunRecorder};
use aphex_stages::record::{RunRecord, Status};
use aphex_testkit::fault_proxy::{Canned, Exchange, Fault, FaultProxy, Outcome, Rule};
use aphex_tests::bootstrap::{assets_bucket, prepare_bootstrap};
use aphex_tests::e2e::{stack_creates, stack_status};
use aphex_tests::stacks::{
    Recorder, deploy, environment, failing_template, fast_polls, fixture, large_template, parameter_template,
};
use aphex_tests::{DEFAULT_ACCOUNT, REGION, artifact_metadata, emulator, new_bucket, noise, unique_name};
use aws_config::SdkConfig;

/// A fault proxy in front of the emulator.
fn proxy() -> FaultProxy {
    FaultProxy::start(emulator().endpoint()).expect("starting the fault proxy")
}

/// The emulator's SDK configuration (Aphex's retry policy), through `proxy`.
async fn through(proxy: &FaultProxy) -> SdkConfig {
    emulator()
        .aws_config()
        .await
        .to_builder()
        .endpoint_url(proxy.endpoint())
        .build()
}

/// How many of `exchanges` reached the emulator.
fn reached(exchanges: &[Exchange]) -> usize {
    exchanges.iter().filter(|e| e.reached_emulator()).count()
}

/// A run record of pipeline `pipeline`.
fn run(pipeline: &str, id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        pipeline: pipeline.into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: None,
        started_at: "2026-11-22T01:02:03Z".into(),
        ended_at: None,
        status: Status::Running,
        url: None,
        stages: Vec::new(),
    }
}

fn metric() -> Metric {
    Metric {
        name: "Run".into(),
        value: 1.0,
        unit: MetricUnit::Count,
        dimensions: vec![("pipeline".into(), unique_name("faults"))],
    }
}

#[tokio::test]
async fn every_service_s_throttling_is_retried_in_its_own_protocol() {
    let proxy = proxy();
    let config = through(&proxy).await;
    let retried = MAX_ATTEMPTS - 1;
    for action in ["ListExports", "GetCallerIdentity", "PutObject", "PutMetricData"] {
        proxy.add_rule(Rule::on(action, Fault::Throttle).times(retried));
    }
    let bucket = new_bucket(&emulator().aws_config().await, "aphex-faults").await;

    // CloudFormation (Query XML `Throttling`): the exports are read at last
    // (none has this prefix, which is what discovery then says).
    let discovered = discover_cluster(&config, &unique_name("Nothing")).await;
    assert!(
        matches!(discovered, Err(DiscoveryError::Missing { .. })),
        "{discovered:?}"
    );
    // STS (Query XML `Throttling`).
    let identity = aphex_aws::sts::caller_identity(&config)
        .await
        .expect("GetCallerIdentity through throttling");
    assert_eq!(identity.account, DEFAULT_ACCOUNT);
    // S3 (REST XML `SlowDown`, 503).
    S3RunRecorder::new(&config, &bucket)
        .record(&run("throttled", "r1"))
        .await
        .expect("PutObject through SlowDown");
    // CloudWatch (RPC v2 CBOR `Throttling`).
    CloudWatchMetrics::new(&config)
        .emit(&[metric()])
        .await
        .expect("PutMetricData through throttling");

    for (action, service) in [
        ("ListExports", "cloudformation"),
        ("GetCallerIdentity", "sts"),
        ("PutObject", "s3"),
        ("PutMetricData", "monitoring"),
    ] {
        let calls = proxy.calls(action);
        assert_eq!(calls.len(), MAX_ATTEMPTS as usize, "{action}: {calls:#?}");
        assert!(calls.iter().all(|e| e.call.service == service), "{calls:#?}");
        assert_eq!(
            calls.last().map(|e| &e.outcome),
            Some(&Outcome::Forwarded(200)),
            "{action}: the last attempt got through"
        );
    }
}

#[tokio::test]
async fn throttling_on_every_attempt_fails_naming_the_service_the_call_and_the_error() {
    let proxy = proxy();
    let config = through(&proxy).await;
    for action in ["ListExports", "GetCallerIdentity", "PutObject", "PutMetricData"] {
        proxy.add_rule(Rule::on(action, Fault::Throttle).always());
    }
    let bucket = new_bucket(&emulator().aws_config().await, "aphex-faults").await;

    let listed = discover_cluster(&config, "AphexCluster-x-").await;
    let Err(err @ DiscoveryError::List(_)) = listed else {
        panic!("expected a failed ListExports, got {listed:?}");
    };
    let cfn = describe(&err);
    let sts = aphex_aws::sts::caller_identity(&config)
        .await
        .unwrap_err()
        .to_string();
    let s3 = S3RunRecorder::new(&config, &bucket)
        .record(&run("throttled", "r1"))
        .await
        .unwrap_err()
        .to_string();
    let cloudwatch = CloudWatchMetrics::new(&config)
        .emit(&[metric()])
        .await
        .unwrap_err()
        .to_string();
    for (text, expected) in [
        (
            &cfn,
            "CloudFormation ListExports: AWS error code Throttling: Rate exceeded",
        ),
        (
            &sts,
            "STS GetCallerIdentity failed (AWS error code Throttling): Rate exceeded",
        ),
        (
            &s3,
            "S3 PutObject: AWS error code SlowDown: Please reduce your request rate.",
        ),
        (
            &cloudwatch,
            "CloudWatch PutMetricData: AWS error code Throttling: Rate exceeded",
        ),
    ] {
        assert!(text.contains(expected), "{expected:?} in {text:?}");
    }
    for action in ["ListExports", "GetCallerIdentity", "PutObject", "PutMetricData"] {
        assert_eq!(
            proxy.calls(action).len(),
            MAX_ATTEMPTS as usize,
            "{action} is tried {MAX_ATTEMPTS} times"
        );
    }
}

#[tokio::test]
async fn a_create_change_set_whose_answer_was_lost_is_not_made_twice() {
    let proxy = proxy();
    let config = emulator().aws_config().await;
    let deployer = CloudFormationDeployer::new(through(&proxy).await).with_options(fast_polls());
    let env = environment(DEFAULT_ACCOUNT, None);

    // The emulator takes the SDK's second CreateChangeSet as a new one
    // (AWS knows it by its client token): the change set it names is used.
    let name = unique_name("aphex-lost-create");
    proxy.add_rule(Rule::on("CreateChangeSet", Fault::CloseAfterForward));
    let fx = fixture(&name, &parameter_template("v1", &format!("{name}-Export")));
    let outcome = deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect("deploy through a lost CreateChangeSet answer");
    assert!(outcome.changed);
    assert_eq!(
        reached(&proxy.calls("CreateChangeSet")),
        2,
        "the SDK sent it again"
    );
    assert_eq!(
        stack_creates(&config, &name).await,
        1,
        "the stack is created once"
    );
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );

    // AWS without the token answers the second one `AlreadyExistsException`
    // (recorded answer): the change set the lost attempt made is used.
    let name = unique_name("aphex-lost-create");
    proxy.add_rule(Rule::on("CreateChangeSet", Fault::CloseAfterForward));
    proxy.add_rule(
        Rule::on(
            "CreateChangeSet",
            Canned::query_error(
                400,
                "AlreadyExistsException",
                "ChangeSet [aphex-deploy] already exists",
            ),
        )
        .after(1),
    );
    let before = proxy.calls("CreateChangeSet").len();
    let fx = fixture(&name, &parameter_template("v1", &format!("{name}-Export")));
    let outcome = deploy(&deployer, &env, &fx, &Recorder::default())
        .await
        .expect("deploy through AlreadyExistsException");
    assert!(outcome.changed);
    let calls = proxy.calls("CreateChangeSet");
    assert_eq!(calls.len() - before, 2, "{calls:#?}");
    assert_eq!(calls[before + 1].outcome, Outcome::Canned(400));
    assert_eq!(stack_creates(&config, &name).await, 1);
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
}

#[tokio::test]
async fn a_change_set_another_client_left_under_the_same_name_is_replaced() {
    let proxy = proxy();
    let config = emulator().aws_config().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let deployer = CloudFormationDeployer::new(through(&proxy).await).with_options(fast_polls());
    let env = environment(DEFAULT_ACCOUNT, None);
    let name = unique_name("aphex-foreign-cs");
    let export = format!("{name}-Export");
    // Created by hand: the emulator keeps executed change sets, and the
    // foreign one must be the only one of its name, as it would be on AWS.
    cfn.create_stack()
        .stack_name(&name)
        .template_body(parameter_template("v1", &export).to_string())
        .send()
        .await
        .expect("create");
    for _ in 0..600 {
        if stack_status(&config, &name).await.as_deref() != Some("CREATE_IN_PROGRESS") {
            break;
        }
        // Waiting (bounded) for the emulator's create, not timing the test.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );

    // Another client's change set of that name appears between Aphex's
    // cleanup (answered without reaching the emulator) and its create
    // (refused as AWS refuses it).
    let foreign = cfn
        .create_change_set()
        .stack_name(&name)
        .change_set_name("aphex-deploy")
        .description("someone else's")
        .template_body(parameter_template("foreign", &export).to_string())
        .send()
        .await
        .expect("another client's change set");
    proxy.add_rule(Rule::on(
        "DeleteChangeSet",
        Canned::xml(
            200,
            "<DeleteChangeSetResponse><DeleteChangeSetResult/></DeleteChangeSetResponse>",
        ),
    ));
    proxy.add_rule(Rule::on(
        "CreateChangeSet",
        Canned::query_error(
            400,
            "AlreadyExistsException",
            "ChangeSet [aphex-deploy] already exists",
        ),
    ));
    let outcome = deploy(
        &deployer,
        &env,
        &fixture(&name, &parameter_template("v2", &export)),
        &Recorder::default(),
    )
    .await
    .expect("deploy after replacing the foreign change set");
    assert!(outcome.changed);
    let gone = cfn
        .describe_change_set()
        .change_set_name(foreign.id().expect("an id"))
        .send()
        .await;
    assert!(gone.is_err(), "the foreign change set was deleted: {gone:?}");
    let ssm = aws_sdk_ssm::Client::new(&config);
    let parameter = outcome
        .outputs
        .iter()
        .find(|o| o.key == "ParameterName")
        .expect("ParameterName")
        .value
        .clone();
    let value = ssm.get_parameter().name(&parameter).send().await.unwrap();
    assert_eq!(
        value.parameter().and_then(|p| p.value()),
        Some("v2"),
        "Aphex's template was deployed, not the other client's"
    );
}

#[tokio::test]
async fn an_execute_change_set_whose_answer_was_lost_is_waited_for() {
    let proxy = proxy();
    let config = emulator().aws_config().await;
    let deployer = CloudFormationDeployer::new(through(&proxy).await).with_options(fast_polls());
    let env = environment(DEFAULT_ACCOUNT, None);
    let name = unique_name("aphex-lost-execute");
    let export = format!("{name}-Export");

    for (value, status) in [("v1", "CREATE_COMPLETE"), ("v2", "UPDATE_COMPLETE")] {
        proxy.add_rule(Rule::on("ExecuteChangeSet", Fault::CloseAfterForward));
        let before = proxy.calls("ExecuteChangeSet").len();
        let progress = Recorder::default();
        let outcome = deploy(
            &deployer,
            &env,
            &fixture(&name, &parameter_template(value, &export)),
            &progress,
        )
        .await
        .unwrap_or_else(|e| panic!("{status} through a lost ExecuteChangeSet answer: {e}"));
        assert!(outcome.changed);
        let calls = proxy.calls("ExecuteChangeSet");
        assert_eq!(
            reached(&calls[before..]),
            2,
            "executed, then sent again by the SDK: {calls:#?}"
        );
        assert_eq!(stack_status(&config, &name).await.as_deref(), Some(status));
        assert!(
            progress
                .events()
                .iter()
                .any(|e| e.logical_id == name && e.status == status),
            "the operation was followed to its end: {:#?}",
            progress.events()
        );
    }
    assert_eq!(stack_creates(&config, &name).await, 1);
}

#[tokio::test]
async fn a_delete_stack_whose_answer_was_lost_is_repeated_safely() {
    let proxy = proxy();
    let config = emulator().aws_config().await;
    let deployer = CloudFormationDeployer::new(through(&proxy).await).with_options(fast_polls());
    let env = environment(DEFAULT_ACCOUNT, None);
    let name = unique_name("aphex-lost-delete");
    deploy(
        &deployer,
        &env,
        &fixture(&name, &failing_template()),
        &Recorder::default(),
    )
    .await
    .expect_err("the first create fails");
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("ROLLBACK_COMPLETE")
    );

    // The rolled-back stack is deleted before it is created again; the
    // delete's answer is lost and the SDK sends it again.
    proxy.add_rule(Rule::on("DeleteStack", Fault::CloseAfterForward));
    let outcome = deploy(
        &deployer,
        &env,
        &fixture(&name, &parameter_template("fixed", &format!("{name}-Export"))),
        &Recorder::default(),
    )
    .await
    .expect("re-create through a lost DeleteStack answer");
    assert!(outcome.changed);
    let deletes = proxy.calls("DeleteStack");
    assert!(
        matches!(
            deletes[0].outcome,
            Outcome::Faulted(Fault::CloseAfterForward, Some(_))
        ),
        "{deletes:#?}"
    );
    assert!(
        deletes[1].reached_emulator(),
        "sent again by the SDK: {deletes:#?}"
    );
    assert_eq!(
        stack_status(&config, &name).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        stack_creates(&config, &name).await,
        1,
        "the new stack is created once"
    );
}

#[tokio::test]
async fn a_complete_multipart_upload_whose_answer_was_lost_leaves_the_archive_whole() {
    let proxy = proxy();
    let bucket = new_bucket(&emulator().aws_config().await, "aphex-faults").await;
    let part = 5 * 1024 * 1024;
    let store = S3ArtifactStore::new(&through(&proxy).await, &bucket).with_multipart(part, part, 2);
    let dir = tempfile::tempdir().unwrap();
    let bytes = noise(part as usize + 54_321, 3);
    let meta = artifact_metadata(
        &bytes,
        "shop",
        "shop-c0ffee",
        "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff",
    );
    let archive = dir.path().join("in.tar.zst");
    std::fs::write(&archive, &bytes).unwrap();

    proxy.add_rule(Rule::on("CompleteMultipartUpload", Fault::CloseAfterForward));
    store
        .put(&archive, &meta)
        .await
        .expect("put through a lost CompleteMultipartUpload answer");
    assert_eq!(
        reached(&proxy.calls("CompleteMultipartUpload")),
        2,
        "completed, then sent again by the SDK"
    );
    assert_eq!(proxy.calls("AbortMultipartUpload").len(), 0, "nothing to abort");

    let dest = dir.path().join("out.tar.zst");
    store.get("shop", &meta.run_id, &dest).await.expect("get");
    assert!(std::fs::read(&dest).unwrap() == bytes, "the archive is whole");
}

#[tokio::test]
async fn a_put_object_whose_answer_was_lost_is_repeated_safely() {
    let proxy = proxy();
    let config = through(&proxy).await;
    let bucket = new_bucket(&emulator().aws_config().await, "aphex-faults").await;

    // The artifact store: the archive's PutObject is answered, then lost.
    let store = S3ArtifactStore::new(&config, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let bytes = noise(200_000, 4);
    let meta = artifact_metadata(
        &bytes,
        "shop",
        "shop-beef",
        "beefbeefbeefbeefbeefbeefbeefbeefbeefbeef",
    );
    let archive = dir.path().join("in.tar.zst");
    std::fs::write(&archive, &bytes).unwrap();
    proxy.add_rule(Rule::on("PutObject", Fault::CloseAfterForward));
    store
        .put(&archive, &meta)
        .await
        .expect("put through a lost PutObject answer");
    let puts = proxy.calls("PutObject");
    assert_eq!(reached(&puts[..2]), 2, "the archive was written twice: {puts:#?}");
    let dest = dir.path().join("out.tar.zst");
    store.get("shop", &meta.run_id, &dest).await.expect("get");
    assert!(std::fs::read(&dest).unwrap() == bytes);

    // The run recorder.
    let recorder = S3RunRecorder::new(&config, &bucket);
    proxy.add_rule(Rule::on("PutObject", Fault::CloseAfterForward));
    recorder
        .record(&run("lost", "r1"))
        .await
        .expect("record through a lost PutObject answer");
    let runs = recorder.list("lost", 10).await.expect("list");
    assert_eq!(runs.len(), 1, "recorded once: {runs:?}");

    // The deployer's template upload (a template over the inline limit).
    prepare_bootstrap(DEFAULT_ACCOUNT, REGION)
        .await
        .expect("bootstrap");
    let deployer = CloudFormationDeployer::new(config.clone()).with_options(fast_polls());
    let name = unique_name("aphex-lost-put");
    let before = proxy.calls("PutObject").len();
    proxy.add_rule(Rule::on("PutObject", Fault::CloseAfterForward));
    let outcome = deploy(
        &deployer,
        &environment(DEFAULT_ACCOUNT, None),
        &fixture(&name, &large_template(&format!("{name}-Export"))),
        &Recorder::default(),
    )
    .await
    .expect("deploy through a lost template upload answer");
    assert!(outcome.changed);
    assert_eq!(reached(&proxy.calls("PutObject")[before..]), 2);
    let listed = aphex_aws::client::s3(&emulator().aws_config().await)
        .list_objects_v2()
        .bucket(assets_bucket(DEFAULT_ACCOUNT, REGION))
        .prefix(format!("aphex/{name}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1, "one template object");
}
