//! The S3 run recorder against the local emulator when stages of one run
//! record themselves at the same time (the `synth-<env>` tasks of
//! `validate-pr`, each in its own pod): every stage's entry survives,
//! `finalize` consolidates them into one run object, and listing counts runs,
//! never stage objects.

use std::sync::Arc;

use aphex_aws::s3::S3RunRecorder;
use aphex_stages::context::{Ports, RunInfo};
use aphex_stages::fake::RecordingDeployer;
use aphex_stages::local::{DirArtifactStore, DirCluster, JsonLinesMetrics, NoopNotifier};
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::{RunRecord, Status};
use aphex_stages::redact::Redactor;
use aphex_stages::report::CollectingReporter;
use aphex_stages::single;
use aphex_testkit::records::{header, stage};
use aphex_tests::{emulator, new_bucket};
use aws_config::SdkConfig;

/// How many stages start together.
const STAGES: usize = 8;

/// Every key under `prefix`.
async fn keys(config: &SdkConfig, bucket: &str, prefix: &str) -> Vec<String> {
    let out = aphex_aws::client::s3(config)
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key())
        .map(str::to_owned)
        .collect()
}

fn names(run: &RunRecord) -> Vec<&str> {
    run.stages.iter().map(|s| s.name.as_str()).collect()
}

/// Local adapters for everything but the run recorder, which is S3's.
fn ports(state: &std::path::Path, runs: S3RunRecorder) -> Ports {
    Ports {
        artifacts: Arc::new(DirArtifactStore::new(state.join("artifacts"))),
        runs: Arc::new(runs),
        deployer: Arc::new(RecordingDeployer::new()),
        applier: Arc::new(DirCluster::new(state.join("cluster"))),
        metrics: Arc::new(JsonLinesMetrics::new(state.join("metrics.jsonl"))),
        notifier: Arc::new(NoopNotifier),
        credentials: None,
        pipeline_stack: None,
        statuses: None,
        workflows: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_stages_all_land_in_the_s3_record_and_finalize_consolidates_them() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-runs").await;
    let dir = tempfile::tempdir().unwrap();
    let ports = ports(dir.path(), S3RunRecorder::new(&config, &bucket));
    let run = RunInfo {
        id: "shop-pr-7x2k".to_owned(),
        pipeline: "shop".to_owned(),
        commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        branch: Some("feature".to_owned()),
        repo: "https://github.com/acme/shop".to_owned(),
        namespace: None,
        kind: aphex_stages::context::RunKind::Deploy,
        trigger: aphex_template::submit::Origin::Push,
        url: None,
        topology: None,
        sender: None,
    };
    // One task per pod, all released together, each with its own client.
    let barrier = Arc::new(tokio::sync::Barrier::new(STAGES));
    let tasks: Vec<_> = (0..STAGES)
        .map(|i| {
            let (run, barrier) = (run.clone(), barrier.clone());
            let ports = Ports {
                runs: Arc::new(S3RunRecorder::new(&config, &bucket)),
                ..ports.clone()
            };
            tokio::spawn(async move {
                let synth = stage(
                    &format!("synth-env{i}"),
                    &format!("2026-11-22T10:00:{i:02}Z"),
                    Status::Succeeded,
                );
                barrier.wait().await;
                single::record_stage(&ports, &run, synth).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("recording a stage");
    }
    let expected: Vec<String> = (0..STAGES).map(|i| format!("synth-env{i}")).collect();
    let loaded = ports.runs.load("shop", &run.id).await.unwrap().expect("recorded");
    assert_eq!(names(&loaded), expected, "every stage is kept, in start order");
    assert_eq!(loaded.status, Status::Running);
    assert_eq!(loaded.branch.as_deref(), Some("feature"));
    let listed = ports.runs.list("shop", 10).await.unwrap();
    assert_eq!(
        listed,
        std::slice::from_ref(&loaded),
        "one run, not one per stage"
    );
    let stage_keys = keys(&config, &bucket, &S3RunRecorder::stages_prefix("shop", &run.id)).await;
    assert_eq!(stage_keys.len(), STAGES, "{stage_keys:?}");

    let done = single::finalize_run(
        &ports,
        &CollectingReporter::default(),
        &Redactor::new(),
        &run,
        Some("Succeeded"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(done.stages, loaded.stages);
    assert_eq!(
        done.started_at, "2026-11-22T10:00:00Z",
        "the run starts with its first stage"
    );
    // The consolidated run object is where `aphex run` says it is.
    let run_key = S3RunRecorder::run_key(&done);
    let top: Vec<String> = keys(&config, &bucket, "shop/runs/")
        .await
        .into_iter()
        .filter(|k| !k.contains("/stages/"))
        .collect();
    assert_eq!(top, std::slice::from_ref(&run_key));
    assert_eq!(
        keys(&config, &bucket, "shop/runs/").await,
        [run_key],
        "finalize leaves one JSON object per run: the spent stage objects are gone"
    );
    assert_eq!(
        ports.runs.load("shop", &run.id).await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(ports.runs.list("shop", 10).await.unwrap(), [done]);
}

#[tokio::test]
async fn s3_list_counts_runs_and_never_stage_objects() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-runs").await;
    let recorder = S3RunRecorder::new(&config, &bucket);
    // A run object as older runners wrote it (stages inside), then a newer
    // runner's retry of its build: the stage object wins.
    let mut old = header("wf-old", "2026-11-19T08:00:00Z");
    old.stages = vec![
        stage("validate", "2026-11-19T08:00:00Z", Status::Succeeded),
        stage("build", "2026-11-19T08:00:10Z", Status::Failed),
    ];
    recorder.record(&old).await.unwrap();
    let rebuilt = stage("build", "2026-11-19T08:05:00Z", Status::Succeeded);
    recorder
        .record_stage(&header("wf-old", &rebuilt.started_at), &rebuilt)
        .await
        .unwrap();
    // Two runs with stage objects only (no finalize yet); one started
    // half a second after the other, which sorts first as a string.
    for (id, started) in [
        ("wf-new", "2026-11-21T09:00:00.5Z"),
        ("wf-mid", "2026-11-21T09:00:00Z"),
    ] {
        for name in ["synth-dev", "synth-prod"] {
            let s = stage(name, started, Status::Succeeded);
            recorder.record_stage(&header(id, started), &s).await.unwrap();
        }
    }
    // A run whose id ends like another's must not be mistaken for it.
    recorder
        .record(&header("x_wf-old", "2026-11-18T00:00:00Z"))
        .await
        .unwrap();

    let runs = recorder.list("shop", 10).await.unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["wf-new", "wf-mid", "wf-old", "x_wf-old"]);
    assert_eq!(names(&runs[0]), ["synth-dev", "synth-prod"]);
    assert_eq!(runs[2].stages[0], old.stages[0]);
    assert_eq!(runs[2].stages[1], rebuilt);
    let newest: Vec<String> = recorder
        .list("shop", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(newest, ["wf-new", "wf-mid"]);
    assert_eq!(
        recorder.load("shop", "wf-old").await.unwrap().as_ref(),
        Some(&runs[2])
    );
    assert_eq!(
        recorder.load("shop", "x_wf-old").await.unwrap().as_ref(),
        Some(&runs[3])
    );
    assert_eq!(recorder.load("shop", "synth-dev").await.unwrap(), None);
    assert!(recorder.list("other", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_log_pieces_round_trip_and_a_pull_requests_stay_under_pr() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-logs").await;
    let recorder = S3RunRecorder::new(&config, &bucket);
    recorder
        .put_log_chunk("shop", "wf-1", "build", 0, b"one\n")
        .await
        .unwrap();
    recorder
        .put_log_chunk("shop", "wf-1", "build", 1, b"two\n")
        .await
        .unwrap();
    recorder
        .put_log_chunk("shop", "wf-1", "deploy-dev", 0, b"three\n")
        .await
        .unwrap();
    // The growing piece is replaced, not added to.
    recorder
        .put_log_chunk("shop", "wf-1", "build", 1, b"two\nand more\n")
        .await
        .unwrap();
    let chunks = recorder.log_chunks("shop", "wf-1").await.unwrap();
    let listed: Vec<(&str, u64, u64)> = chunks
        .iter()
        .map(|c| (c.stage.as_str(), c.index, c.bytes))
        .collect();
    assert_eq!(listed, [("build", 0, 4), ("build", 1, 13), ("deploy-dev", 0, 6)]);
    assert_eq!(
        recorder.log_chunk("shop", "wf-1", "build", 1).await.unwrap(),
        b"two\nand more\n"
    );
    recorder
        .remove_log_chunk("shop", "wf-1", "build", 0)
        .await
        .unwrap();
    recorder
        .remove_log_chunk("shop", "wf-1", "build", 0)
        .await
        .unwrap();
    assert!(matches!(
        recorder.log_chunk("shop", "wf-1", "build", 0).await,
        Err(aphex_stages::ports::RecordError::NotFound { .. })
    ));
    // Logs never count as runs.
    assert!(recorder.list("shop", 10).await.unwrap().is_empty());

    // A pull request's run writes only under `<pipeline>/pr/` (all its role may write).
    let pr = S3RunRecorder::new(&config, &bucket).for_pull_requests();
    pr.put_log_chunk("shop", "wf-2", "validate", 0, b"pr\n")
        .await
        .unwrap();
    assert_eq!(
        keys(&config, &bucket, "shop/logs/wf-2/").await,
        Vec::<String>::new()
    );
    assert_eq!(
        keys(&config, &bucket, "shop/pr/logs/wf-2/").await,
        ["shop/pr/logs/wf-2/validate/00000000.log"]
    );
    assert_eq!(pr.log_chunks("shop", "wf-2").await.unwrap().len(), 1);

    // `aphex logs --store` reads both, whoever's run it is.
    let ended = stage("validate", "2026-11-21T09:00:00Z", Status::Succeeded);
    pr.record_stage(&header("wf-2", &ended.started_at), &ended)
        .await
        .unwrap();
    let ended = stage("build", "2026-11-21T09:00:00Z", Status::Succeeded);
    recorder
        .record_stage(&header("wf-1", &ended.started_at), &ended)
        .await
        .unwrap();
    let store = format!("s3://{bucket}");
    // wf-1's build lost its first piece above: its log says so.
    let cut = aphex_stages::log_upload::cut_note(1).unwrap();
    for (run, expected) in [
        ("wf-2", "==> validate <==\npr\n".to_owned()),
        (
            "wf-1",
            format!("==> build <==\n{cut}two\nand more\n\n==> deploy-dev <==\nthree\n"),
        ),
    ] {
        let out = std::process::Command::new(aphex_tests::e2e::aphex_bin())
            .args(["logs", run, "--store", &store])
            .envs(emulator().child_env())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}
