//! The AWS adapters of `aphex-aws` (S3 artifact store and run recorder, STS
//! credential checker, CloudWatch metrics, cluster discovery) through the real
//! AWS SDK against the local emulator that `cargo xtask test` starts.

use std::path::Path;

use aphex_aws::cloudwatch::CloudWatchMetrics;
use aphex_aws::discovery::{self, DiscoveryError};
use aphex_aws::s3::{S3ArtifactStore, S3RunRecorder};
use aphex_aws::sts::StsCredentialChecker;
use aphex_config::Environment;
use aphex_stages::ports::{
    ArtifactMetadata, ArtifactStore, CredentialChecker, Metric, MetricUnit, MetricsSink, RunRecorder,
    StoreError,
};
use aphex_stages::record::{RunRecord, Status};
use aphex_tests::{Emulator, artifact_metadata as metadata_for, emulator, new_bucket, noise, unique_name};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;

async fn tags(config: &SdkConfig, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = aphex_aws::client::s3(config)
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get tags");
    let mut tags: Vec<(String, String)> = out
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

/// Stores `bytes` as an archive and fetches it back; returns what came back.
async fn round_trip(store: &S3ArtifactStore, dir: &Path, bytes: &[u8], meta: &ArtifactMetadata) -> Vec<u8> {
    let archive = dir.join("in.tar.zst");
    std::fs::write(&archive, bytes).unwrap();
    store.put(&archive, meta).await.expect("put");
    let dest = dir.join("out.tar.zst");
    let got = store.get(&meta.pipeline, &meta.run_id, &dest).await.expect("get");
    assert_eq!(&got, meta, "metadata comes back as stored");
    std::fs::read(&dest).unwrap()
}

#[tokio::test]
async fn artifact_round_trip_is_bit_identical_and_tagged() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-test").await;
    let store = S3ArtifactStore::new(&config, &bucket);
    assert_eq!(store.location(), format!("s3://{bucket}"));
    let dir = tempfile::tempdir().unwrap();
    let bytes = noise(300_000, 1);
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let meta = metadata_for(&bytes, "shop", "shop-x7k2p", commit);

    let back = round_trip(&store, dir.path(), &bytes, &meta).await;

    assert!(back == bytes, "the archive comes back bit-identical");
    let expected_tags = vec![
        ("commit-sha".to_owned(), commit.to_owned()),
        ("run-id".to_owned(), "shop-x7k2p".to_owned()),
        ("timestamp".to_owned(), "2026-11-22T01:02:03Z".to_owned()),
    ];
    assert_eq!(
        tags(&config, &bucket, "shop/artifacts/shop-x7k2p/artifacts.tar.zst").await,
        expected_tags
    );
    assert_eq!(
        tags(&config, &bucket, "shop/artifacts/shop-x7k2p/metadata.json").await,
        expected_tags
    );
    assert!(
        !dir.path().join("out.tar.zst.partial").exists(),
        "no partial file is left"
    );
}

#[tokio::test]
async fn large_archive_goes_up_as_a_multipart_upload() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-test").await;
    let part = 5 * 1024 * 1024;
    let store = S3ArtifactStore::new(&config, &bucket).with_multipart(part, part, 3);
    let dir = tempfile::tempdir().unwrap();
    // Two full parts and a short last one.
    let bytes = noise(2 * part as usize + 12_345, 2);
    let meta = metadata_for(
        &bytes,
        "shop",
        "shop-m9q",
        "feedfacefeedfacefeedfacefeedfacefeedface",
    );

    let back = round_trip(&store, dir.path(), &bytes, &meta).await;

    assert!(back == bytes, "the multipart archive comes back bit-identical");
    let key = "shop/artifacts/shop-m9q/artifacts.tar.zst";
    let head = aphex_aws::client::s3(&config)
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    // A multipart object's ETag ends in "-<number of parts>".
    let etag = head.e_tag().unwrap_or_default().trim_matches('"').to_owned();
    assert!(etag.ends_with("-3"), "expected a 3-part upload, ETag is {etag}");
    assert_eq!(head.content_length(), Some(bytes.len() as i64));
    assert_eq!(
        tags(&config, &bucket, key).await.len(),
        3,
        "the multipart object is tagged"
    );
}

#[tokio::test]
async fn corrupt_archive_is_detected_and_named() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-test").await;
    let store = S3ArtifactStore::new(&config, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let bytes = noise(10_000, 3);
    let commit = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";
    let meta = metadata_for(&bytes, "shop", "shop-c0f", commit);
    let archive = dir.path().join("in.tar.zst");
    std::fs::write(&archive, &bytes).unwrap();
    store.put(&archive, &meta).await.unwrap();
    // Someone overwrites the archive behind the metadata's back.
    let mut tampered = bytes.clone();
    tampered[5_000] ^= 0xff;
    let key = "shop/artifacts/shop-c0f/artifacts.tar.zst".to_owned();
    aphex_aws::client::s3(&config)
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(tampered.into())
        .send()
        .await
        .unwrap();

    let dest = dir.path().join("out.tar.zst");
    let err = store
        .get("shop", "shop-c0f", &dest)
        .await
        .expect_err("a tampered archive must not restore");

    match &err {
        StoreError::Corrupt {
            what,
            expected,
            actual,
        } => {
            assert_eq!(what, &format!("s3://{bucket}/{key}"));
            assert_eq!(expected, &meta.sha256);
            assert_ne!(actual, &meta.sha256);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&key),
        "the message names the object: {err}"
    );
    assert!(
        !dest.exists(),
        "the corrupt archive is not left where it would be unpacked"
    );
}

#[tokio::test]
async fn missing_artifact_is_not_found() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-test").await;
    let store = S3ArtifactStore::new(&config, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let err = store
        .get("shop", "shop-none", &dir.path().join("out"))
        .await
        .expect_err("nothing stored");
    match err {
        StoreError::NotFound { what } => {
            assert_eq!(
                what,
                format!("s3://{bucket}/shop/artifacts/shop-none/metadata.json")
            )
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn run(pipeline: &str, id: &str, started_at: &str, status: Status) -> RunRecord {
    RunRecord {
        id: id.into(),
        pipeline: pipeline.into(),
        commit: "abc123".into(),
        branch: Some("main".into()),
        started_at: started_at.into(),
        ended_at: None,
        status,
        stages: Vec::new(),
        url: None,
    }
}

#[tokio::test]
async fn run_recorder_lists_newest_first() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-test").await;
    let recorder = S3RunRecorder::new(&config, &bucket);
    // Recorded out of order, one of them twice (running, then succeeded).
    recorder
        .record(&run("shop", "run-b", "2026-11-20T10:00:00Z", Status::Running))
        .await
        .unwrap();
    recorder
        .record(&run("shop", "run-c", "2026-11-21T09:00:00.5Z", Status::Failed))
        .await
        .unwrap();
    recorder
        .record(&run("shop", "run-a", "2026-11-19T23:59:59Z", Status::Succeeded))
        .await
        .unwrap();
    recorder
        .record(&run("shop", "run-b", "2026-11-20T10:00:00Z", Status::Succeeded))
        .await
        .unwrap();
    recorder
        .record(&run("other", "run-z", "2026-11-22T00:00:00Z", Status::Running))
        .await
        .unwrap();

    let all = recorder.list("shop", 10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["run-c", "run-b", "run-a"]);
    assert_eq!(
        all[1].status,
        Status::Succeeded,
        "a run recorded again is replaced, not duplicated"
    );

    let newest: Vec<String> = recorder
        .list("shop", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(newest, ["run-c", "run-b"]);
    assert!(recorder.list("shop", 0).await.unwrap().is_empty());

    let b = recorder
        .load("shop", "run-b")
        .await
        .unwrap()
        .expect("run-b is recorded");
    assert_eq!(b, run("shop", "run-b", "2026-11-20T10:00:00Z", Status::Succeeded));
    assert_eq!(
        recorder.load("shop", "run-z").await.unwrap(),
        None,
        "runs are kept per pipeline"
    );
    assert_eq!(recorder.load("shop", "nope").await.unwrap(), None);

    let keys = aphex_aws::client::s3(&config)
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("shop/runs/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys.contents().len(),
        3,
        "one JSON object per run under <pipeline>/runs/"
    );
}

fn environment(name: &str, account: &str, role_arn: Option<String>) -> Environment {
    let mut env = serde_json::json!({
        "name": name,
        "region": "us-east-1",
        "account": account,
        "stacks": [{ "name": "AppStack", "path": "lib/app.js" }],
    });
    if let Some(role) = role_arn {
        env["roleArn"] = role.into();
    }
    serde_json::from_value(env).expect("a valid environment")
}

#[tokio::test]
async fn sts_check_passes_in_the_default_account_through_the_bootstrap_role() {
    let checker = StsCredentialChecker::new(emulator().aws_config().await);
    let identity = checker
        .check(&environment("dev", "000000000000", None))
        .await
        .expect("dev reaches its account");
    assert_eq!(identity.account, "000000000000");
    assert!(
        identity
            .arn
            .contains("cdk-hnb659fds-deploy-role-000000000000-us-east-1"),
        "the CDK bootstrap deploy role was assumed: {}",
        identity.arn
    );
}

#[tokio::test]
async fn sts_check_assumes_the_environment_role_into_another_account() {
    let checker = StsCredentialChecker::new(emulator().aws_config().await);
    let role = "arn:aws:iam::111111111111:role/aphex-deploy".to_owned();
    let identity = checker
        .check(&environment("prod", "111111111111", Some(role)))
        .await
        .expect("prod reaches its account");
    assert_eq!(identity.account, "111111111111");
    assert!(
        identity.arn.contains("aphex-deploy"),
        "the environment's role was assumed: {}",
        identity.arn
    );
}

/// Credentials whose secret must never show up in a message.
async fn secret_config(emulator: &Emulator) -> SdkConfig {
    emulator
        .aws_config_with(Credentials::new(
            "test",
            "s3cr3t-never-print-me",
            None,
            None,
            "test",
        ))
        .await
}

#[tokio::test]
async fn sts_check_fails_clearly_on_an_account_mismatch() {
    let emulator = emulator();
    let checker = StsCredentialChecker::new(secret_config(&emulator).await);
    let role = "arn:aws:iam::111111111111:role/aphex-deploy".to_owned();
    let err = checker
        .check(&environment("staging", "222222222222", Some(role.clone())))
        .await
        .expect_err("the role lands in the wrong account")
        .to_string();
    for part in ["staging", "222222222222", "111111111111", role.as_str()] {
        assert!(err.contains(part), "the message names {part}: {err}");
    }
    assert!(!err.contains("s3cr3t"), "never a credential: {err}");
}

#[tokio::test]
async fn sts_check_fails_clearly_when_the_role_cannot_be_assumed() {
    let emulator = emulator();
    let checker = StsCredentialChecker::new(secret_config(&emulator).await);
    // Too short for a role ARN: STS rejects it with a validation error.
    let err = checker
        .check(&environment("qa", "111111111111", Some("bad-role".to_owned())))
        .await
        .expect_err("the role cannot be assumed")
        .to_string();
    for part in ["qa", "111111111111", "bad-role", "AWS error code"] {
        assert!(err.contains(part), "the message names {part}: {err}");
    }
    assert!(!err.contains("s3cr3t"), "never a credential: {err}");
}

async fn metric_sum(config: &SdkConfig, name: &str, dimensions: &[(&str, &str)]) -> (f64, f64) {
    aphex_tests::e2e::metric_statistics(config, name, dimensions).await
}

#[tokio::test]
async fn metrics_reach_cloudwatch_in_batches() {
    let config = emulator().aws_config().await;
    // A small batch size shows batching without the emulator's slow large batches.
    let sink = CloudWatchMetrics::new(&config).with_batch_size(2);
    let pipeline = unique_name("metrics");
    let stack_dims = |stack: &str| {
        vec![
            ("pipeline".to_owned(), pipeline.clone()),
            ("environment".to_owned(), "dev".to_owned()),
            ("stack".to_owned(), stack.to_owned()),
        ]
    };
    let mut metrics = vec![
        Metric {
            name: "DeploymentSucceeded".into(),
            value: 1.0,
            unit: MetricUnit::Count,
            dimensions: stack_dims("A"),
        },
        Metric {
            name: "StackDeployDuration".into(),
            value: 12.5,
            unit: MetricUnit::Seconds,
            dimensions: stack_dims("A"),
        },
        Metric {
            name: "DeploymentFailed".into(),
            value: 1.0,
            unit: MetricUnit::Count,
            dimensions: stack_dims("B"),
        },
    ];
    // Several PutMetricData calls' worth.
    metrics.extend((0..5).map(|_| Metric {
        name: "ArtifactBytes".into(),
        value: 2.0,
        unit: MetricUnit::Bytes,
        dimensions: vec![("pipeline".to_owned(), pipeline.clone())],
    }));

    sink.emit(&metrics).await.expect("emit");

    let dims = |stack| {
        [
            ("pipeline", pipeline.as_str()),
            ("environment", "dev"),
            ("stack", stack),
        ]
    };
    assert_eq!(
        metric_sum(&config, "DeploymentSucceeded", &dims("A")).await,
        (1.0, 1.0)
    );
    assert_eq!(
        metric_sum(&config, "StackDeployDuration", &dims("A")).await,
        (12.5, 1.0)
    );
    assert_eq!(
        metric_sum(&config, "DeploymentFailed", &dims("B")).await,
        (1.0, 1.0)
    );
    assert_eq!(
        metric_sum(&config, "DeploymentSucceeded", &dims("B")).await,
        (0.0, 0.0)
    );
    assert_eq!(
        metric_sum(&config, "ArtifactBytes", &[("pipeline", pipeline.as_str())]).await,
        (10.0, 5.0),
        "every batch arrived"
    );
}

/// Deploys a stack exporting `<prefix><suffix>` for each suffix.
async fn export_stack(config: &SdkConfig, prefix: &str, suffixes: &[&str]) {
    let outputs: serde_json::Map<String, serde_json::Value> = suffixes
        .iter()
        .map(|s| {
            let value = format!("{prefix}-{s}-value");
            (
                s.to_string(),
                serde_json::json!({ "Value": value, "Export": { "Name": format!("{prefix}{s}") } }),
            )
        })
        .collect();
    let template = serde_json::json!({
        "Resources": { "Marker": { "Type": "AWS::SSM::Parameter", "Properties": { "Type": "String", "Value": prefix } } },
        "Outputs": outputs,
    });
    let cfn = aws_sdk_cloudformation::Client::new(config);
    let stack = unique_name("cluster");
    cfn.create_stack()
        .stack_name(&stack)
        .template_body(template.to_string())
        .send()
        .await
        .expect("create stack");
    // Polls for the end state (bounded): the SDK's waiter sleeps 30 s first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = cfn
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .expect("describe stack");
        let status = out.stacks()[0]
            .stack_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        if status == "CREATE_COMPLETE" {
            return;
        }
        assert!(
            status.ends_with("IN_PROGRESS"),
            "the export stack ended in {status}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the export stack is still {status} after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn discovery_reads_the_cluster_exports() {
    let config = emulator().aws_config().await;
    let prefix = unique_name("Shared").replace('-', "");
    export_stack(
        &config,
        &prefix,
        &["ClusterName", "OIDCProviderArn", "KubectlRoleArn"],
    )
    .await;

    let found = discovery::discover_cluster(&config, &prefix)
        .await
        .expect("exports found");

    assert_eq!(found.cluster_name, format!("{prefix}-ClusterName-value"));
    assert_eq!(found.oidc_provider_arn, format!("{prefix}-OIDCProviderArn-value"));
    assert_eq!(found.kubectl_role_arn, format!("{prefix}-KubectlRoleArn-value"));
}

#[tokio::test]
async fn discovery_names_the_missing_exports_and_the_prefix() {
    let config = emulator().aws_config().await;
    let prefix = unique_name("Partial").replace('-', "");
    export_stack(&config, &prefix, &["ClusterName"]).await;

    let err = discovery::discover_cluster(&config, &prefix)
        .await
        .expect_err("two exports are missing");

    match &err {
        DiscoveryError::Missing {
            prefix: p,
            expected,
            missing,
        } => {
            assert_eq!(p, &prefix);
            assert_eq!(expected.len(), 3);
            assert_eq!(
                missing,
                &[
                    format!("{prefix}OIDCProviderArn"),
                    format!("{prefix}KubectlRoleArn")
                ]
            );
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    let message = err.to_string();
    for export in ["ClusterName", "OIDCProviderArn", "KubectlRoleArn"] {
        assert!(
            message.contains(&format!("{prefix}{export}")),
            "the message lists {export}: {message}"
        );
    }
    assert!(
        message.contains(&format!("prefix `{prefix}`")),
        "the message names the prefix: {message}"
    );
}

#[tokio::test]
async fn discovery_with_no_exports_at_all_lists_all_three() {
    let config = emulator().aws_config().await;
    let prefix = unique_name("Nothing").replace('-', "");
    let err = discovery::discover_cluster(&config, &prefix)
        .await
        .expect_err("nothing exported");
    match err {
        DiscoveryError::Missing { missing, .. } => assert_eq!(missing.len(), 3),
        other => panic!("expected Missing, got {other:?}"),
    }
}
