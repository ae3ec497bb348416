//! `aphex history --store s3://BUCKET` against the emulator when runs ended
//! badly: a run whose finalize never ran (a run object or only stage
//! objects, still `running`) is shown as interrupted once older than the
//! workflow's deadline, a recent one stays running, and a record that cannot
//! be read (not JSON, or a newer format) is named by its key in a warning
//! and left out while the other runs are listed. The local folder's variant
//! is `aphex-cli/tests/history.rs`.

use aphex_aws::s3::S3RunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::{RunRecord, StageRecord, Status};
use aphex_tests::e2e::AppRepo;
use aphex_tests::{emulator, new_bucket, unique_name};

/// Long past any deadline.
const LONG_AGO: &str = "2020-01-02T03:04:05Z";

fn run(pipeline: &str, id: &str, started: &str, status: Status, stages: &[(&str, Status)]) -> RunRecord {
    RunRecord {
        id: id.into(),
        pipeline: pipeline.into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: Some("main".into()),
        started_at: started.into(),
        ended_at: (status != Status::Running).then(|| started.to_owned()),
        status,
        stages: stages
            .iter()
            .map(|(name, status)| StageRecord {
                name: (*name).into(),
                started_at: started.into(),
                ended_at: None,
                status: *status,
                error: None,
                stacks: Vec::new(),
                artifact_bytes: None,
                ends_run: None,
                approved_by: None,
                risks: Vec::new(),
            })
            .collect(),
        url: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overdue_run_is_interrupted_and_an_unreadable_record_is_skipped_with_a_warning() {
    let config = emulator().aws_config().await;
    let bucket = new_bucket(&config, "aphex-history").await;
    let recorder = S3RunRecorder::new(&config, &bucket);
    let pipeline = unique_name("history");
    let now = aphex_stages::time::now_rfc3339();
    let killed = run(
        &pipeline,
        "killed",
        LONG_AGO,
        Status::Running,
        &[("deploy-dev", Status::Running)],
    );
    recorder.record(&killed).await.unwrap();
    let lost = run(&pipeline, "lost", LONG_AGO, Status::Running, &[]);
    let stage = run(
        &pipeline,
        "lost",
        LONG_AGO,
        Status::Running,
        &[("deploy-prod", Status::Running)],
    );
    recorder.record_stage(&lost, &stage.stages[0]).await.unwrap();
    let going = run(
        &pipeline,
        "going",
        &now,
        Status::Running,
        &[("build", Status::Running)],
    );
    recorder.record(&going).await.unwrap();
    let done = run(
        &pipeline,
        "done",
        LONG_AGO,
        Status::Succeeded,
        &[("build", Status::Succeeded)],
    );
    recorder.record(&done).await.unwrap();
    // Unreadable ones, at the keys their runs would have.
    let s3 = aphex_aws::client::s3(&config);
    let broken_key = S3RunRecorder::run_key(&run(&pipeline, "broken", &now, Status::Running, &[]));
    let newer = serde_json::to_string(&run(&pipeline, "newer", &now, Status::Succeeded, &[]))
        .unwrap()
        .replace("\"succeeded\"", "\"paused\"");
    let newer_key = S3RunRecorder::run_key(&run(&pipeline, "newer", &now, Status::Running, &[]));
    for (key, body) in [(&broken_key, "{\"id\": \"bro".to_owned()), (&newer_key, newer)] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .expect("PutObject");
    }

    let repo = AppRepo::quickstart(|c| c);
    let store = format!("s3://{bucket}");
    let out = repo.aphex(&["history", "--store", &store, "--format", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.text());
    for key in [&broken_key, &newer_key] {
        let warning = out
            .stderr
            .lines()
            .find(|l| l.contains(key.as_str()))
            .unwrap_or_else(|| panic!("no warning names {key}: {}", out.text()));
        assert!(warning.starts_with("warning: skipping run "), "{warning}");
    }
    let listed: Vec<RunRecord> = serde_json::from_str(&out.stdout).expect("run records");
    let status = |id: &str| {
        let run = listed
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {listed:#?}"));
        (run.status, run.stages[0].status)
    };
    assert_eq!(status("killed"), (Status::Interrupted, Status::Interrupted));
    assert_eq!(status("lost"), (Status::Interrupted, Status::Interrupted));
    assert_eq!(status("going"), (Status::Running, Status::Running));
    assert_eq!(status("done"), (Status::Succeeded, Status::Succeeded));
    assert_eq!(listed.len(), 4, "{listed:#?}");
    // What is stored is left as it was: history only shows it.
    let stored = recorder.load(&pipeline, "killed").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Running);
}
