//! Run records written by stages running at the same time (the
//! `synth-<env>` tasks of `validate-pr`, each in its own pod): every stage's
//! entry survives, a retry replaces its own entry, records written by older
//! runners (stages only inside the run object) still load, and `finalize`
//! consolidates what the stages wrote.

mod support;

use std::sync::{Arc, Barrier};

use aphex_stages::local::DirRunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::{self, RunRecord, StageRecord, Status};
use aphex_stages::redact::Redactor;
use aphex_stages::report::CollectingReporter;
use aphex_stages::single;
use aphex_testkit::records::{header, stage};
use proptest::prelude::*;
use support::{MINIMAL, harness};

/// How many stages start together in the concurrency tests.
const STAGES: usize = 8;

/// `synth-env0` ... `synth-env7`, started one second apart in that order.
fn synth_stage(i: usize) -> StageRecord {
    stage(
        &format!("synth-env{i}"),
        &format!("2026-11-22T10:00:{i:02}Z"),
        Status::Succeeded,
    )
}

fn names(run: &RunRecord) -> Vec<&str> {
    run.stages.iter().map(|s| s.name.as_str()).collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn stages_recorded_at_the_same_time_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(DirRunRecorder::new(dir.path()));
    let barrier = Arc::new(Barrier::new(STAGES));
    // One thread per "pod", all released together, so the writes overlap.
    let threads: Vec<_> = (0..STAGES)
        .map(|i| {
            let (recorder, barrier) = (recorder.clone(), barrier.clone());
            std::thread::spawn(move || {
                let stage = synth_stage(i);
                let head = header("wf-1", &stage.started_at);
                barrier.wait();
                rt().block_on(recorder.record_stage(&head, &stage)).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let run = rt()
        .block_on(recorder.load("shop", "wf-1"))
        .unwrap()
        .expect("the run is recorded");
    let expected: Vec<String> = (0..STAGES).map(|i| format!("synth-env{i}")).collect();
    assert_eq!(names(&run), expected, "every stage is kept, in start order");
    assert_eq!(run.status, Status::Running, "no finalize yet");
    assert_eq!(
        run.started_at, "2026-11-22T10:00:00Z",
        "the run starts with its first stage"
    );
    assert_eq!(run.ended_at, None);
    // Listed once, as one run, while no run object exists yet.
    let listed = rt().block_on(recorder.list("shop", 10)).unwrap();
    assert_eq!(listed, [run]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runner_stages_in_parallel_then_finalize_keep_every_stage() {
    let h = harness(MINIMAL);
    let ports = h.ctx.ports.clone();
    let run = h.ctx.run.clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(STAGES));
    let tasks: Vec<_> = (0..STAGES)
        .map(|i| {
            let (ports, run, barrier) = (ports.clone(), run.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                single::record_stage(&ports, &run, synth_stage(i)).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("recording a stage");
    }
    let loaded = ports.runs.load(&run.pipeline, &run.id).await.unwrap().unwrap();
    assert_eq!(loaded.stages.len(), STAGES, "{:?}", names(&loaded));
    assert_eq!(loaded.commit, run.commit);
    assert_eq!(loaded.branch, run.branch);

    // finalize writes the consolidated record: every stage, closed.
    let reporter = CollectingReporter::default();
    let done = single::finalize_run(
        &ports,
        &reporter,
        &Redactor::new(),
        &run,
        Some("Succeeded"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    assert!(done.ended_at.is_some());
    assert_eq!(done.stages, loaded.stages);
    let run_object = h
        .state()
        .join("runs")
        .join(&run.pipeline)
        .join(format!("{}.json", run.id));
    let stored: RunRecord = serde_json::from_slice(&std::fs::read(run_object).unwrap()).unwrap();
    assert_eq!(stored, done, "the run object holds the consolidated record");
    assert_eq!(ports.runs.load(&run.pipeline, &run.id).await.unwrap(), Some(done));
}

#[test]
fn a_retried_stage_replaces_its_entry() {
    let h = harness(MINIMAL);
    let (ports, run) = (&h.ctx.ports, &h.ctx.run);
    let rt = rt();
    let first = stage("test-dev", "2026-11-22T10:00:05Z", Status::Failed);
    let retry = stage("test-dev", "2026-11-22T10:01:00Z", Status::Succeeded);
    for s in [
        stage("deploy-dev", "2026-11-22T10:00:00Z", Status::Succeeded),
        first,
        retry.clone(),
    ] {
        rt.block_on(single::record_stage(ports, run, s)).unwrap();
    }
    let loaded = rt
        .block_on(ports.runs.load(&run.pipeline, &run.id))
        .unwrap()
        .unwrap();
    assert_eq!(names(&loaded), ["deploy-dev", "test-dev"]);
    assert_eq!(loaded.stages[1], retry);
}

/// A run object as runners before stage objects wrote it: the stages inside.
const OLD_FORMAT: &str = r#"{
  "id": "wf-old",
  "pipeline": "shop",
  "commit": "0123456789abcdef0123456789abcdef01234567",
  "branch": "main",
  "startedAt": "2026-11-01T08:00:00Z",
  "endedAt": null,
  "status": "running",
  "stages": [
    { "name": "validate", "startedAt": "2026-11-01T08:00:00Z", "endedAt": "2026-11-01T08:00:10Z", "status": "succeeded", "error": null },
    { "name": "build", "startedAt": "2026-11-01T08:00:10Z", "endedAt": "2026-11-01T08:01:00Z", "status": "failed", "error": "`npm ci` exited with code 1", "artifactBytes": 12 }
  ]
}"#;

#[test]
fn records_of_older_runners_still_load_and_take_new_stages() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = DirRunRecorder::new(dir.path());
    std::fs::create_dir_all(dir.path().join("shop")).unwrap();
    std::fs::write(recorder.path_of("shop", "wf-old"), OLD_FORMAT).unwrap();
    let rt = rt();
    let old = rt.block_on(recorder.load("shop", "wf-old")).unwrap().unwrap();
    assert_eq!(names(&old), ["validate", "build"]);
    assert_eq!(old.stages[1].status, Status::Failed);
    assert_eq!(old.stages[1].artifact_bytes, Some(12));
    assert_eq!(
        rt.block_on(recorder.list("shop", 10)).unwrap(),
        std::slice::from_ref(&old)
    );

    // A newer runner retries build in the same run: its stage object wins
    // over the run object's entry, the other entries stay.
    let rebuilt = stage("build", "2026-11-01T08:05:00Z", Status::Succeeded);
    rt.block_on(recorder.record_stage(&header("wf-old", &rebuilt.started_at), &rebuilt))
        .unwrap();
    let merged = rt.block_on(recorder.load("shop", "wf-old")).unwrap().unwrap();
    assert_eq!(names(&merged), ["validate", "build"]);
    assert_eq!(merged.stages[0], old.stages[0]);
    assert_eq!(merged.stages[1], rebuilt);
    assert_eq!(merged.started_at, old.started_at, "the run object's header stays");
}

#[test]
fn list_counts_runs_not_stage_objects_or_run_folders() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = DirRunRecorder::new(dir.path());
    let rt = rt();
    // Finalized, with its stage objects still there.
    let mut done = header("wf-a", "2026-11-20T10:00:00Z");
    let build = stage("build", "2026-11-20T10:00:00Z", Status::Succeeded);
    rt.block_on(recorder.record_stage(&done, &build)).unwrap();
    done.stages = vec![build];
    done.status = Status::Succeeded;
    done.ended_at = Some("2026-11-20T10:05:00Z".to_owned());
    rt.block_on(recorder.record(&done)).unwrap();
    // Still running: stage objects only, and the newest.
    let running = stage("synth-dev", "2026-11-21T09:00:00.5Z", Status::Succeeded);
    rt.block_on(recorder.record_stage(&header("wf-b", &running.started_at), &running))
        .unwrap();
    // An older finalized run, and a folder of logs that is no run.
    rt.block_on(recorder.record(&header("wf-c", "2026-11-21T09:00:00Z")))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("shop/wf-x/logs")).unwrap();
    std::fs::write(dir.path().join("shop/wf-x/logs/build.log"), "ok").unwrap();

    let all = rt.block_on(recorder.list("shop", 10)).unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    // 09:00:00.5 is after 09:00:00, though it sorts before it as a string.
    assert_eq!(ids, ["wf-b", "wf-c", "wf-a"]);
    assert_eq!(all[2], done);
    assert_eq!(all[0].status, Status::Running);
    let newest: Vec<String> = rt
        .block_on(recorder.list("shop", 1))
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(newest, ["wf-b"]);
}

#[test]
fn names_that_would_leave_the_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = DirRunRecorder::new(dir.path().join("runs"));
    let rt = rt();
    let ok = stage("build", "2026-11-20T10:00:00Z", Status::Succeeded);
    for (id, name) in [
        ("../wf", "build"),
        ("wf", "../../x"),
        ("wf", ""),
        ("a/b", "build"),
    ] {
        let err = rt
            .block_on(recorder.record_stage(
                &header(id, &ok.started_at),
                &stage(name, &ok.started_at, Status::Succeeded),
            ))
            .expect_err("refused");
        assert!(err.to_string().contains("one path segment"), "{err}");
    }
    assert!(!dir.path().join("runs").exists(), "nothing was written");
}

fn arb_stage() -> impl Strategy<Value = StageRecord> {
    (0usize..6, 0u32..60, prop::bool::ANY).prop_map(|(n, sec, ok)| {
        let status = if ok { Status::Succeeded } else { Status::Failed };
        stage(&format!("s{n}"), &format!("2026-11-22T10:00:{sec:02}Z"), status)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Property: merging a run object with stage objects keeps exactly one
    // entry per stage name, the stage object's where both have one, the run
    // object's otherwise, ordered by start time then name.
    #[test]
    fn merge_keeps_one_entry_per_stage_and_stage_objects_win(
        in_run in prop::collection::vec(arb_stage(), 0..6),
        objects in prop::collection::vec(arb_stage(), 0..6),
    ) {
        // One stage object per name, as the stores keep them (one key each).
        let mut objects = objects;
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        objects.dedup_by(|a, b| a.name == b.name);
        let mut in_run = in_run;
        in_run.sort_by(|a, b| a.name.cmp(&b.name));
        in_run.dedup_by(|a, b| a.name == b.name);
        let run = RunRecord { stages: in_run.clone(), ..header("wf", "2026-11-22T09:00:00Z") };
        let parts: Vec<RunRecord> = objects.iter().map(|s| RunRecord::stage_object(&run, s)).collect();
        let merged = record::merge_stage_objects(Some(run.clone()), parts).unwrap();

        let mut expected: Vec<StageRecord> = objects.clone();
        expected.extend(in_run.iter().filter(|s| !objects.iter().any(|o| o.name == s.name)).cloned());
        expected.sort_by(|a, b| (&a.started_at, &a.name).cmp(&(&b.started_at, &b.name)));
        if objects.is_empty() {
            prop_assert_eq!(&merged, &run);
        } else {
            prop_assert_eq!(&merged.stages, &expected);
        }
        prop_assert_eq!(&merged.id, &run.id);
        prop_assert_eq!(merged.status, run.status);
    }
}
