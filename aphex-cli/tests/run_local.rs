//! End to end: `aphex run --local --deployer fake` on a git repository made
//! by the test, checking the run record, the stored artifacts, the applied
//! manifests, the stage order, the outputs reaching tests, and `aphex history`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aphex_testkit::assembly::{FakeStack, write_assembly};
use aphex_testkit::git;

const CONFIG: &str = r#"
version: "1.0"
build:
  commands:
    - mkdir -p dist && echo "built $APHEX_COMMIT_SHA" > dist/app.txt
  artifacts: [dist]
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    synth: cp -r fake-cdk-out/. "$CDK_OUTDIR"/
    stacks:
      - { name: AppStack, path: lib/app.ts }
    tests:
      commands:
        - test "$APHEX_OUTPUT_APPSTACK_URL" = "https://app.example"
        - grep -q built dist/app.txt
  - name: prod
    region: eu-west-1
    account: "210987654321"
    approval: manual
    synth: cp -r fake-cdk-out/. "$CDK_OUTDIR"/
    stacks:
      - { name: AppStack, path: lib/app.ts }
"#;

/// A repository with a config, a stack source and a hand-made cloud assembly.
fn example_repo(config: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("app");
    std::fs::create_dir_all(repo.join("lib")).unwrap();
    std::fs::write(repo.join("aphex-config.yaml"), config).unwrap();
    std::fs::write(repo.join("lib/app.ts"), "// the app stack\n").unwrap();
    write_assembly(
        &repo.join("fake-cdk-out"),
        &[FakeStack {
            environment: "aws://unknown-account/unknown-region",
            display_name: Some("AppStack"),
            outputs: &[("Url", "https://app.example")],
            ..FakeStack::new("AppStack")
        }],
    );
    std::fs::write(repo.join(".gitignore"), ".aphex/\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "app"]);
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    (dir, repo, sha)
}

fn aphex(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(args)
        .current_dir(repo)
        .env_remove("APHEX_SLACK_WEBHOOK_URL")
        .output()
        .expect("aphex runs")
}

fn only_record(repo: &Path) -> serde_json::Value {
    let dir = repo.join(".aphex/runs/aphex");
    let records: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap()
}

fn stage_names(record: &serde_json::Value) -> Vec<(String, String)> {
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn run_local_executes_every_stage_with_the_fake_deployer() {
    let (_dir, repo, sha) = example_repo(CONFIG);
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("deployer: the fake deployer (records each request; deploys nothing to AWS)"),
        "{stderr}"
    );
    assert!(stdout.contains(" succeeded (commit "), "{stdout}");
    // The fake wires no pipeline stack updater: the stage says so.
    assert!(
        stderr.contains("pipeline stack aphex-aphex: not managed by this run"),
        "{stderr}"
    );

    let record = only_record(&repo);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["commit"], sha.as_str());
    assert_eq!(record["branch"], "main");
    let ok = |n: &str| (n.to_owned(), "succeeded".to_owned());
    assert_eq!(
        stage_names(&record),
        [
            ok("validate"),
            ok("build"),
            ok("pipeline"),
            ok("deploy-dev"),
            ok("test-dev"),
            ok("approve-prod"),
            ok("deploy-prod")
        ]
    );
    assert_eq!(record["stages"][3]["stacks"][0]["name"], "AppStack");
    assert!(record["stages"][1]["artifactBytes"].as_u64().unwrap() > 0);

    // Artifacts stored under the run, with its metadata.
    let art = repo
        .join(".aphex/artifacts/aphex")
        .join(record["id"].as_str().unwrap());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(art.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["commitSha"], sha.as_str());
    assert_eq!(meta["runId"], record["id"]);
    assert_eq!(meta["paths"], serde_json::json!(["dist"]));
    assert!(art.join("artifacts.tar.zst").exists());

    // Manifests applied to the directory cluster.
    let wt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join(".aphex/cluster/argo/workflowtemplate/aphex.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(wt["kind"], "WorkflowTemplate");

    // Logs per stage, outputs per environment, metrics.
    let run_dir = repo
        .join(".aphex/runs/aphex")
        .join(record["id"].as_str().unwrap());
    let test_log = std::fs::read_to_string(run_dir.join("logs/test-dev.log")).unwrap();
    assert!(test_log.contains("exit 0"), "{test_log}");
    // The same log from the run store, as `aphex logs` reads it.
    let id = record["id"].as_str().unwrap();
    let logs = aphex(&repo, &["logs", id, "--stage", "test-dev"]);
    assert!(logs.status.success(), "{}", String::from_utf8_lossy(&logs.stderr));
    assert_eq!(String::from_utf8_lossy(&logs.stdout), test_log);
    let all = aphex(&repo, &["logs", id]);
    let all = String::from_utf8_lossy(&all.stdout);
    let headers: Vec<&str> = all.lines().filter(|l| l.starts_with("==> ")).collect();
    assert_eq!(headers.first(), Some(&"==> validate <=="), "{all}");
    assert!(headers.contains(&"==> deploy-prod <=="), "{all}");
    let missing = aphex(&repo, &["logs", id, "--stage", "deploy-staging"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no log of stage deploy-staging"));
    let outputs = std::fs::read_to_string(run_dir.join("outputs/dev/outputs.json")).unwrap();
    assert!(outputs.contains("https://app.example"), "{outputs}");
    assert!(repo.join(".aphex/metrics.jsonl").exists());

    // The checkout is gone after a successful run; history shows the run.
    assert!(
        !repo
            .join(".aphex/work")
            .join(record["id"].as_str().unwrap())
            .exists()
    );
    let hist = aphex(&repo, &["history", "--limit", "5"]);
    let listed = String::from_utf8_lossy(&hist.stdout);
    assert!(hist.status.success());
    assert!(
        listed.contains(record["id"].as_str().unwrap()) && listed.contains("succeeded"),
        "{listed}"
    );
    // kubectl's -o, with the older --format kept.
    let json = aphex(&repo, &["history", "-o", "json"]);
    assert_eq!(json.stdout, aphex(&repo, &["history", "--format", "json"]).stdout);
    let runs: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(runs[0]["id"], record["id"]);
    let wide = aphex(&repo, &["history", "-o", "wide"]);
    assert!(
        String::from_utf8_lossy(&wide.stdout).contains("  took "),
        "{}",
        String::from_utf8_lossy(&wide.stdout)
    );
    let yaml = aphex(&repo, &["history", "-o", "yaml"]);
    assert!(
        String::from_utf8_lossy(&yaml.stdout).starts_with("- id: "),
        "{}",
        String::from_utf8_lossy(&yaml.stdout)
    );
}

/// A local run plans from the commit's config, so a changed topology
/// takes effect at once: the run says how it changed since the previous
/// run recorded, the pipeline stage restarts nothing, and the run succeeds
/// (it is not superseded).
#[test]
fn a_run_after_a_topology_change_says_so_and_restarts_nothing() {
    let (_dir, repo, _) = example_repo(CONFIG);
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake", "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!first.contains("the topology changed"), "{first}");

    // The commit removes prod (and its gate).
    let shrunk = &CONFIG[..CONFIG.find("  - name: prod").unwrap()];
    std::fs::write(repo.join("aphex-config.yaml"), shrunk).unwrap();
    git(&repo, &["commit", "-q", "-am", "no prod"]);
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(
            "[plan] the topology changed since run local-"
        ) && stderr.contains(
            "- environment prod, - stage approve-prod, - stage deploy-prod; this run follows this commit's config"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("topology: - environment prod"), "{stderr}");
    assert!(
        stderr.contains("not restarting: no Workflow submitter is wired"),
        "{stderr}"
    );
    assert!(stdout.contains(" succeeded (commit "), "{stdout}");
    assert!(!repo.join(".aphex/cluster/argo/workflow").exists());

    // The same topology again: nothing to say.
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("the topology changed"), "{stderr}");

    // A record the listing cannot read is left out, and the library's
    // warning saying so reaches stderr (the CLI logs Aphex's warnings).
    std::fs::write(repo.join(".aphex/runs/aphex/local-broken.json"), "{ not json").unwrap();
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("WARN skipping run local-broken: "), "{stderr}");
}

#[test]
fn the_state_directory_is_private_and_ignores_itself() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, repo, _) = example_repo(CONFIG);
    // Without the repository's own ignore rule, `.aphex/` still never shows.
    std::fs::remove_file(repo.join(".gitignore")).unwrap();
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake", "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = git(&repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains(".aphex"), "{status}");
    let state = repo.join(".aphex");
    assert_eq!(
        std::fs::read_to_string(state.join(".gitignore"))
            .unwrap()
            .lines()
            .last(),
        Some("*")
    );
    let record = only_record(&repo);
    let run_dir = state.join("runs/aphex").join(record["id"].as_str().unwrap());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in [
        state.clone(),
        state.join("runs"),
        run_dir.join("logs"),
        run_dir.join("outputs/dev"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [
        run_dir.with_extension("json"),
        run_dir.join("logs/build.log"),
        run_dir.join("outputs/dev/outputs.json"),
        state.join("metrics.jsonl"),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn manual_approval_without_a_terminal_needs_yes() {
    let (_dir, repo, _) = example_repo(CONFIG);
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = only_record(&repo);
    assert_eq!(record["status"], "failed");
    let stages = stage_names(&record);
    assert_eq!(stages[5], ("approve-prod".to_owned(), "failed".to_owned()));
    assert_eq!(stages[6], ("deploy-prod".to_owned(), "skipped".to_owned()));
    assert!(
        record["stages"][5]["error"]
            .as_str()
            .unwrap()
            .contains("pass --yes to approve"),
        "{record}"
    );
}

#[test]
fn a_failing_build_stops_the_run_and_skips_the_rest() {
    let (_dir, repo, _) = example_repo(&CONFIG.replace(
        "mkdir -p dist && echo \"built $APHEX_COMMIT_SHA\" > dist/app.txt",
        "echo compiling; exit 4",
    ));
    let out = aphex(&repo, &["run", "--local", "--deployer", "fake", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("build.commands[0]: `echo compiling; exit 4` exited with code 4"),
        "{stdout}"
    );
    let record = only_record(&repo);
    let stages = stage_names(&record);
    assert_eq!(stages[1], ("build".to_owned(), "failed".to_owned()));
    assert!(stages[2..].iter().all(|(_, s)| s == "skipped"), "{stages:?}");
}

#[test]
fn run_without_local_or_with_a_short_sha_is_a_usage_error() {
    let (_dir, repo, sha) = example_repo(CONFIG);
    assert_eq!(aphex(&repo, &["run"]).status.code(), Some(2));
    let out = aphex(
        &repo,
        &["run", "--local", "--deployer", "fake", "--commit", &sha[..8]],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a full commit SHA"));
}

#[test]
fn ctrl_c_stops_the_command_and_records_an_interrupted_run() {
    use std::io::BufRead;
    let (_dir, repo, _) = example_repo(&CONFIG.replace(
        "mkdir -p dist && echo \"built $APHEX_COMMIT_SHA\" > dist/app.txt",
        "echo started; sleep 300",
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(["run", "--local", "--deployer", "fake", "--yes"])
        .current_dir(&repo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the build command's first line, then interrupt like Ctrl-C.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        if line.unwrap().ends_with("| started") {
            break;
        }
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}", rest.join("\n"));
    let record = only_record(&repo);
    assert_eq!(record["status"], "interrupted");
    let stages = stage_names(&record);
    assert_eq!(stages[1], ("build".to_owned(), "interrupted".to_owned()));
    assert!(stages[2..].iter().all(|(_, s)| s == "skipped"), "{stages:?}");
}
