//! `aphex logs` on a run store written the way the runner writes it in a
//! pod: stage objects as each stage ends and log pieces while it runs
//! (`aphex run --local`'s logs are checked in run_local.rs).

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use aphex_stages::local::DirRunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::{RunRecord, StageRecord, Status};
use aphex_testkit::records;

const ID: &str = "shop-7x2kq";

fn header() -> RunRecord {
    RunRecord {
        commit: "4f0c3c8e5d2a1b0c9e8f7a6b5c4d3e2f1a0b9c8d".to_owned(),
        ..records::header(ID, "2026-01-01T00:00:00Z")
    }
}

fn stage(name: &str, started_at: &str, status: Status) -> StageRecord {
    StageRecord {
        ended_at: (status != Status::Running).then(|| "2026-01-01T00:30:00Z".to_owned()),
        error: None,
        ..records::stage(name, started_at, status)
    }
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn logs(repo: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aphex"));
    c.arg("logs").args(args).arg("--repo").arg(repo);
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("aphex runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_finished_stage_prints_whole_and_a_running_one_is_followed_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirRunRecorder::new(dir.path().join(".aphex/runs"));
    block_on(async {
        store
            .record_stage(
                &header(),
                &stage("build", "2026-01-01T00:00:01Z", Status::Succeeded),
            )
            .await
            .unwrap();
        store
            .put_log_chunk("shop", ID, "build", 0, b"npm ci\n")
            .await
            .unwrap();
        store
            .put_log_chunk("shop", ID, "build", 1, b"built\n")
            .await
            .unwrap();
        store
            .put_log_chunk("shop", ID, "deploy-dev", 0, b"line 1\n")
            .await
            .unwrap();
    });
    let o = run(logs(dir.path(), &[ID, "--stage", "build"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "npm ci\nbuilt\n");
    let o = run(logs(dir.path(), &[ID]));
    assert_eq!(
        text(&o.stdout),
        "==> build <==\nnpm ci\nbuilt\n\n==> deploy-dev <==\nline 1\n"
    );

    // Following: what the stage wrote so far, then what it adds (the piece
    // it grows and a new one), until its record says it ended.
    let mut follow = logs(dir.path(), &[ID, "--stage", "deploy-dev", "--follow"]);
    let mut child = follow
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "line 1\n");
    block_on(async {
        store
            .put_log_chunk("shop", ID, "deploy-dev", 0, b"line 1\nline 2\n")
            .await
            .unwrap();
        store
            .put_log_chunk("shop", ID, "deploy-dev", 1, b"line 3\n")
            .await
            .unwrap();
        store
            .record_stage(
                &header(),
                &stage("deploy-dev", "2026-01-01T00:05:00Z", Status::Succeeded),
            )
            .await
            .unwrap();
    });
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(rest, "line 2\nline 3\n");
}

#[test]
fn a_log_cut_to_its_cap_says_so_and_unknown_runs_say_where_to_look() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirRunRecorder::new(dir.path().join(".aphex/runs"));
    block_on(async {
        store
            .record_stage(
                &header(),
                &stage("build", "2026-01-01T00:00:01Z", Status::Succeeded),
            )
            .await
            .unwrap();
        store
            .put_log_chunk("shop", ID, "build", 2, b"tail\n")
            .await
            .unwrap();
    });
    let o = run(logs(dir.path(), &[ID, "--stage", "build"]));
    let out = text(&o.stdout);
    assert!(out.starts_with("[aphex: the first 2 pieces of this log"), "{out}");
    assert!(out.ends_with("what follows is its tail]\ntail\n"), "{out}");

    let o = run(logs(dir.path(), &["shop-nope"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("run shop-nope not found in"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("`aphex history` lists the recorded runs"),
        "{}",
        text(&o.stderr)
    );
}
