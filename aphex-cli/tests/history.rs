//! `aphex history` over the local run recorder's folder when runs ended
//! badly: a run whose finalize never ran is shown as interrupted once it is
//! older than the workflow's deadline (and still running before that), and
//! a record that cannot be read (not JSON, or a newer format) is named in a
//! warning and left out while every other run is listed. The same over an
//! S3 store is in `tests/tests/history_store.rs`.

use std::path::Path;
use std::process::{Command, Output};

/// Long past any deadline.
const LONG_AGO: &str = "2020-01-02T03:04:05Z";

/// A run record (or a stage object, which is a record with one stage).
fn record(id: &str, started: &str, status: &str, stages: &[(&str, &str)]) -> String {
    let stages: Vec<serde_json::Value> = stages
        .iter()
        .map(|(name, status)| {
            serde_json::json!({
                "name": name, "startedAt": started, "endedAt": null, "status": status, "error": null
            })
        })
        .collect();
    serde_json::json!({
        "id": id, "pipeline": "shop", "commit": "0123456789abcdef0123456789abcdef01234567",
        "branch": "main", "startedAt": started, "endedAt": null, "status": status, "stages": stages
    })
    .to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn history(repo: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(["history", "--format", "json", "--repo"])
        .arg(repo)
        .output()
        .expect("aphex runs")
}

#[test]
fn an_overdue_run_is_interrupted_and_an_unreadable_record_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join(".aphex/runs/shop");
    let now = aphex_stages::time::now_rfc3339();
    // (file under runs/shop, content)
    let files = [
        // Its finalize never ran, long ago: the run object says running.
        (
            "killed.json",
            record("killed", LONG_AGO, "running", &[("deploy-dev", "running")]),
        ),
        // Only a stage object, long ago (a workflow that lost its pods).
        (
            "lost/stages/deploy-prod.json",
            record("lost", LONG_AGO, "running", &[("deploy-prod", "running")]),
        ),
        // Still going, within the deadline.
        (
            "going.json",
            record("going", &now, "running", &[("build", "running")]),
        ),
        (
            "done.json",
            record("done", LONG_AGO, "succeeded", &[("build", "succeeded")]),
        ),
        ("broken.json", "{\"id\": \"broken\", \"pipel".to_owned()),
        // A newer Aphex's record: a status this one does not know.
        (
            "newer.json",
            record("newer", &now, "paused", &[]).replace("\"id\"", "\"format\":2,\"id\""),
        ),
    ];
    for (path, text) in &files {
        write(&runs.join(path), text);
    }

    let out = history(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for bad in ["broken.json", "newer.json"] {
        let warning = stderr
            .lines()
            .find(|l| l.contains(bad))
            .unwrap_or_else(|| panic!("no warning names {bad}: {stderr}"));
        assert!(warning.starts_with("warning: skipping run "), "{warning}");
    }
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    let status = |id: &str| {
        let run = listed
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {listed:#?}"));
        (run["status"].clone(), run["stages"][0]["status"].clone())
    };
    assert_eq!(status("killed"), ("interrupted".into(), "interrupted".into()));
    assert_eq!(status("lost"), ("interrupted".into(), "interrupted".into()));
    assert_eq!(status("going"), ("running".into(), "running".into()));
    assert_eq!(status("done"), ("succeeded".into(), "succeeded".into()));
    assert_eq!(listed.len(), 4, "{listed:#?}");

    // The human listing says so too.
    let out = Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(["history", "--repo"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let killed = text.lines().find(|l| l.starts_with("killed ")).expect(&text);
    assert!(
        killed.contains(" interrupted ")
            && killed.ends_with("at deploy-dev (log: aphex logs killed --stage deploy-dev)"),
        "{killed}"
    );
}
