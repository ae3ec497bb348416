//! The quick start end to end: the real `aphex run --local --store s3://...`
//! against the emulator deploys the pipeline's own stack (from a stand-in
//! cluster's exports), then both environments in dependency order, the
//! outputs reach the tests, the run record, artifact and metrics are stored,
//! a second run of the same commit deploys nothing, and an environment whose
//! account is not the one its credentials reach fails validate before any
//! deploy. The main test deploys prod to the quick start's own 111111111111;
//! otherwise each test works in accounts of its own (`unique_account`), so the
//! quick start's fixed stack and parameter names never collide; the pipeline's
//! own stack and its cluster's exports live in the default account `aphex`
//! runs as, under names of the test's own.

use aphex_aws::s3::{S3ArtifactStore, S3RunRecorder};
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::Status;
use aphex_tests::bootstrap::prepare_bootstrap;
use aphex_tests::cluster::prepare_cluster;
use aphex_tests::e2e::{AppRepo, event_range, stack_status, unique_account};
use aphex_tests::{DEFAULT_ACCOUNT, REGION, emulator, unique_name};
use sha2::{Digest, Sha256};

/// The quick start's second account (reached by assuming a role).
const PROD_ACCOUNT: &str = "111111111111";

/// The quick start in accounts `dev` and `prod`, pipeline `pipeline` on
/// cluster `cluster`.
fn quickstart(pipeline: &str, cluster: &str, dev: &str, prod: &str) -> AppRepo {
    AppRepo::quickstart(|config| {
        let config = config
            .replace("000000000000", dev)
            .replace("111111111111", prod)
            .replace("\n  name: quickstart\n", &format!("\n  name: {pipeline}\n"))
            .replace(
                "cluster: { name: demo }",
                &format!("cluster: {{ name: {cluster} }}"),
            );
        assert!(config.contains(pipeline), "the config names the pipeline");
        assert!(config.contains(cluster), "the config names the cluster");
        config
    })
}

async fn metric_sum(name: &str, dimensions: &[(&str, &str)]) -> f64 {
    let config = emulator().aws_config().await;
    aphex_tests::e2e::metric_statistics(&config, name, dimensions)
        .await
        .0
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_deploys_in_order_records_everything_and_a_second_run_changes_nothing() {
    let emulator = emulator();
    // prod is the quick start's own second account, as in the demo: the
    // only test that deploys there, so its fixed stack names are free on
    // the fresh emulator `cargo xtask test` starts.
    let (dev, prod) = (unique_account(), PROD_ACCOUNT.to_owned());
    for account in [&dev, &prod] {
        prepare_bootstrap(account, REGION).await.expect("bootstrapping");
    }
    let prod_config = aphex_tests::bootstrap::account_config(&prod, REGION).await;
    assert_eq!(
        stack_status(&prod_config, "QuickstartApp").await,
        None,
        "account {prod} already holds the quick start's stacks: this test needs a fresh emulator \
         (`cargo xtask test` starts one)"
    );
    let base = emulator.aws_config().await;
    let bucket = unique_name("aphex-qs-store");
    aphex_aws::client::s3(&base)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("creating the store bucket");
    let pipeline = unique_name("qs");
    // The pipeline's home is the account of the credentials `aphex` runs with
    // (the default one): its cluster's exports and its own stack live there,
    // under names of this test's own.
    let cluster = unique_name("cluster");
    prepare_bootstrap(DEFAULT_ACCOUNT, REGION)
        .await
        .expect("bootstrapping the home account");
    prepare_cluster(&base, DEFAULT_ACCOUNT, &cluster)
        .await
        .expect("the cluster's exports");
    let repo = quickstart(&pipeline, &cluster, &dev, &prod);
    let store = format!("s3://{bucket}");

    let first = repo.aphex(&["run", "--local", "--yes", "--store", &store]);
    assert_eq!(first.code, Some(0), "{}", first.text());

    // The pipeline stage deployed the pipeline's own stack first, in the home
    // account, and logged its outputs.
    let pipeline_stack = format!("aphex-{pipeline}");
    assert!(
        first
            .stderr
            .contains(&format!("pipeline stack {pipeline_stack}: deployed")),
        "{}",
        first.text()
    );
    assert_eq!(
        stack_status(&base, &pipeline_stack).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    for key in ["ArtifactBucketName", "WorkflowExecutionRoleArn"] {
        assert!(
            first.stderr.contains(&format!("pipeline stack output {key} = ")),
            "{key}: {}",
            first.text()
        );
    }

    // Every stack deployed, in each account, in a correct order: Shared
    // (exports the queue ARN) before App (imports it), App before Audit
    // (dependsOn in the config only).
    for (env, account) in [("dev", &dev), ("prod", &prod)] {
        let config = aphex_tests::bootstrap::account_config(account, REGION).await;
        let mut ranges = Vec::new();
        for stack in ["QuickstartShared", "QuickstartApp", "QuickstartAudit"] {
            assert_eq!(
                stack_status(&config, stack).await.as_deref(),
                Some("CREATE_COMPLETE"),
                "{stack} in {env} ({account})"
            );
            ranges.push((stack, event_range(&config, stack).await));
        }
        for pair in ranges.windows(2) {
            let ((a, (_, a_end)), (b, (b_start, _))) = (pair[0], pair[1]);
            assert!(
                a_end <= b_start,
                "{env}: {a} must finish ({a_end}) before {b} starts ({b_start})"
            );
        }
        let described = aws_sdk_cloudformation::Client::new(&config)
            .describe_stacks()
            .stack_name("QuickstartApp")
            .send()
            .await
            .expect("DescribeStacks");
        let arn = described.stacks()[0].stack_id().unwrap_or_default().to_owned();
        assert!(
            arn.contains(&format!(":{account}:")),
            "{env}'s stacks land in its account {account}: {arn}"
        );
    }
    assert!(
        first.stdout.matches(" deployed ").count().eq(&7),
        "seven stacks deployed, the pipeline's own and three per environment:\n{}",
        first.text()
    );

    // The outputs reached the tests (the quick start's test checks each one
    // and the account), and they are CloudFormation's.
    assert!(
        first.stderr.matches("all outputs present").count() == 2,
        "both environments' tests saw every output:\n{}",
        first.text()
    );
    let outputs_dir = first.summary_line("outputs");
    let outputs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{outputs_dir}/prod/outputs.json")).expect("prod outputs"),
    )
    .unwrap();
    let topic = outputs["QuickstartApp"]["TopicArn"].as_str().expect("TopicArn");
    assert!(topic.contains(&format!(":{prod}:")), "{topic}");

    // The run record, in S3.
    let recorder = S3RunRecorder::new(&base, &bucket);
    let runs = recorder.list(&pipeline, 10).await.expect("listing runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let record = &runs[0];
    assert_eq!(record.status, Status::Succeeded);
    assert_eq!(record.commit, repo.commit);
    assert_eq!(
        first.summary_line("record"),
        format!("{store}/{}", S3RunRecorder::run_key(record))
    );
    let names: Vec<&str> = record.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "validate",
            "build",
            "pipeline",
            "deploy-dev",
            "test-dev",
            "deploy-prod",
            "test-prod"
        ]
    );

    // The artifact: stored once under the run, tagged, and what comes back
    // is bit for bit what was built (its SHA-256 recorded at build time).
    let s3 = aphex_aws::client::s3(&base);
    let key = S3ArtifactStore::archive_key(&pipeline, &record.id);
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("the archive");
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let meta_key = S3ArtifactStore::metadata_key(&pipeline, &record.id);
    let meta = s3
        .get_object()
        .bucket(&bucket)
        .key(&meta_key)
        .send()
        .await
        .expect("its metadata");
    let meta: aphex_stages::ports::ArtifactMetadata =
        serde_json::from_slice(&meta.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), meta.sha256);
    assert_eq!(bytes.len() as u64, meta.size);
    let build = record.stages.iter().find(|s| s.name == "build").unwrap();
    assert_eq!(build.artifact_bytes, Some(meta.size));
    let tags = s3
        .get_object_tagging()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("the archive's tags");
    let tag = |k: &str| {
        tags.tag_set()
            .iter()
            .find(|t| t.key() == k)
            .map(|t| t.value().to_owned())
    };
    assert_eq!(tag("commit-sha").as_deref(), Some(repo.commit.as_str()));
    assert_eq!(tag("run-id").as_deref(), Some(record.id.as_str()));
    assert_eq!(tag("timestamp"), Some(meta.timestamp.clone()));
    let unpacked = tempfile::tempdir().unwrap();
    let archive = unpacked.path().join("a.tar.zst");
    std::fs::write(&archive, &bytes).unwrap();
    let out = unpacked.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    aphex_stages::artifact::unpack(&archive, &out, &meta, std::path::Path::new("aphex-config.yaml"))
        .expect("unpacking");
    assert!(
        unpacked
            .path()
            .join("out/artifacts/build-manifest.json")
            .is_file()
    );

    // The metrics, read back from CloudWatch.
    for (env, stack) in [("dev", "QuickstartShared"), ("prod", "QuickstartAudit")] {
        let dims = [
            ("pipeline", pipeline.as_str()),
            ("environment", env),
            ("stack", stack),
        ];
        assert_eq!(
            metric_sum("DeploymentSucceeded", &dims).await,
            1.0,
            "{env}/{stack}"
        );
        assert!(
            metric_sum("StackDeployDuration", &dims).await > 0.0,
            "{env}/{stack}"
        );
    }
    // The pipeline's own stack, deployed by the pipeline stage, is measured
    // by that stage.
    let dims = [
        ("pipeline", pipeline.as_str()),
        ("stage", "pipeline"),
        ("stack", pipeline_stack.as_str()),
    ];
    assert_eq!(metric_sum("DeploymentSucceeded", &dims).await, 1.0);
    let dims = [("pipeline", pipeline.as_str()), ("stage", "deploy-prod")];
    assert!(metric_sum("StageDuration", &dims).await > 0.0);
    let dims = [("pipeline", pipeline.as_str()), ("status", "succeeded")];
    assert!(metric_sum("WorkflowDuration", &dims).await > 0.0);
    let dims = [("pipeline", pipeline.as_str())];
    assert_eq!(metric_sum("ArtifactBytes", &dims).await, meta.size as f64);

    // `aphex history --store` reads the record back.
    let history = repo.aphex(&["history", "--store", &store, "--format", "json"]);
    assert_eq!(history.code, Some(0), "{}", history.text());
    assert!(history.stdout.contains(&record.id), "{}", history.text());

    // The same commit again: every stack is a no-op, and the summary says so.
    let second = repo.aphex(&["run", "--local", "--yes", "--store", &store]);
    assert_eq!(second.code, Some(0), "{}", second.text());
    assert!(
        second
            .stderr
            .contains(&format!("pipeline stack {pipeline_stack}: unchanged")),
        "{}",
        second.text()
    );
    assert_eq!(
        second
            .stdout
            .matches("nothing deployed: every stack was already up to date")
            .count(),
        3,
        "the pipeline stage and both deploy stages: {}",
        second.text()
    );
    let runs = recorder.list(&pipeline, 10).await.expect("listing runs");
    assert_eq!(runs.len(), 2);
    let latest = &runs[0];
    assert_ne!(latest.id, record.id, "newest first");
    let stacks: Vec<_> = latest.stages.iter().flat_map(|s| &s.stacks).collect();
    assert_eq!(stacks.len(), 7);
    for st in stacks {
        assert_eq!(st.status, Status::Succeeded, "{st:?}");
        assert_eq!(st.changed, Some(false), "{} changed on the second run", st.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_in_another_account_than_its_credentials_reach_fails_validate() {
    let (dev, prod, configured) = (unique_account(), unique_account(), unique_account());
    prepare_bootstrap(&dev, REGION).await.expect("bootstrapping");
    // prod's role is in `prod`, but the environment says `configured`.
    let repo = AppRepo::quickstart(|config| {
        config
            .replace("000000000000", &dev)
            .replace(
                "roleArn: arn:aws:iam::111111111111:",
                &format!("roleArn: arn:aws:iam::{prod}:"),
            )
            .replace("111111111111", &configured)
    });
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let record = run.local_record();
    assert_eq!(record["status"], "failed");
    let validate = &record["stages"][0];
    assert_eq!(validate["name"], "validate");
    assert_eq!(validate["status"], "failed");
    let error = validate["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("prod") && error.contains(&configured) && error.contains(&prod),
        "the error names the environment, the expected and the actual account: {error}"
    );
    for stage in record["stages"].as_array().unwrap().iter().skip(1) {
        assert_eq!(stage["status"], "skipped", "{stage}");
    }
    // Nothing deployed, not even the environment whose account is right.
    let config = aphex_tests::bootstrap::account_config(&dev, REGION).await;
    for stack in ["QuickstartShared", "QuickstartApp", "QuickstartAudit"] {
        assert_eq!(stack_status(&config, stack).await, None, "{stack}");
    }
}
