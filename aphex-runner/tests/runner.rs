//! `aphex-runner` stage by stage, as the workflow runs it (one process per
//! stage, state handed over through the run record and the artifact store,
//! stack outputs included), with the local adapters and the fake deployer;
//! and what it refuses: a commit that is not on the deployed branch, a
//! deploy in a pull request's run, values git would read as options.

use std::path::Path;
use std::process::{Command, Output};

use aphex_testkit::assembly::{FakeStack, write_assembly};
use aphex_testkit::git;

const CONFIG: &str = r#"
version: "1.0"
pipeline: { name: shop }
build:
  commands: ["mkdir -p dist && echo built > dist/app.txt"]
  artifacts: [dist]
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    synth: cp -r fake-cdk-out/. "$CDK_OUTDIR"/
    stacks: [{ name: AppStack, path: lib/app.ts }]
    tests:
      commands:
        - test "$APHEX_OUTPUT_APPSTACK_URL" = "https://app.example"
        - test -f dist/app.txt
        # Too large for a variable (exec refuses a string over 128 KiB): in the document only.
        - test -z "${APHEX_OUTPUT_APPSTACK_BIG+set}"
        - test "$(wc -c < "$APHEX_OUTPUTS_JSON")" -gt 200000
"#;

/// An output value larger than an environment string may be.
fn big_output() -> String {
    "x".repeat(200 * 1024)
}

fn repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("aphex-config.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("lib/app.ts"), "").unwrap();
    let big = big_output();
    write_assembly(
        &dir.join("fake-cdk-out"),
        &[FakeStack {
            outputs: &[("Url", "https://app.example"), ("Big", &big)],
            ..FakeStack::new("AppStack")
        }],
    );
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "app"]);
    git(dir, &["rev-parse", "HEAD"])
}

struct Pod<'a> {
    root: &'a Path,
    repo: &'a Path,
    sha: &'a str,
}

impl Pod<'_> {
    /// One stage in a "pod": its own work and outputs directories.
    fn run(&self, stage: &str, env: &str, extra_env: &[(&str, &str)]) -> (Output, std::path::PathBuf) {
        let pod = self.root.join(format!("pod-{stage}-{env}"));
        let out = Command::new(env!("CARGO_BIN_EXE_aphex-runner"))
            .args([stage, &format!("--env={env}")])
            .env("APHEX_COMMIT_SHA", self.sha)
            .env("APHEX_REPO_URL", self.repo)
            .env("APHEX_BRANCH", "main")
            .env("APHEX_WORKFLOW_ID", "shop-abc12")
            // As the WorkflowTemplate sets it: the record's pipeline even
            // when the commit's config cannot be read.
            .env("APHEX_PIPELINE", "shop")
            .env("APHEX_WORK_DIR", pod.join("work"))
            .env("APHEX_OUTPUTS_DIR", pod.join("outputs"))
            .env("APHEX_STATE_DIR", self.root.join("state"))
            .env("APHEX_DEPLOYER", "fake")
            .env_remove("APHEX_PULL_REQUEST")
            .env_remove("APHEX_STACK_OUTPUTS")
            .env_remove("APHEX_STACK_OUTPUTS_FILE")
            .env_remove("APHEX_SLACK_WEBHOOK_URL")
            .env_remove("APHEX_GITHUB_TOKEN")
            .env_remove("APHEX_GITHUB_API_URL")
            .env_remove("APHEX_GITHUB_REPOSITORY")
            .env_remove("APHEX_RUN_URL")
            .env_remove("APHEX_WORKFLOW_LABELS")
            .env_remove("APHEX_TOPOLOGY")
            .envs(extra_env.iter().copied())
            .output()
            .expect("runner runs");
        (out, pod)
    }
}

#[test]
fn stages_hand_over_through_the_store_the_record_and_output_files() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let sha = repo(&repo_dir);
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &sha,
    };
    for stage in ["validate", "build", "pipeline"] {
        let (out, _) = pod.run(stage, "", &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stage}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Not a terminal: every log line is a JSON object.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        if stage == "pipeline" {
            // The fake deployer wires no pipeline stack updater: said, not pretended.
            let log = String::from_utf8_lossy(&out.stdout);
            assert!(
                log.contains("pipeline stack aphex-shop: not managed by this run"),
                "{log}"
            );
        }
    }
    // As the deploy task after an approval gate passes it (the gate's
    // `approved-by` output).
    let (out, deploy_pod) = pod.run("deploy", "dev", &[("APHEX_APPROVED_BY", "jane@example.com")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let outputs = std::fs::read_to_string(deploy_pod.join("outputs/stack-outputs.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&outputs).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!({"AppStack": {"Big": big_output(), "Url": "https://app.example"}})
    );

    // The test pod shares no file with the deploy pod: it reads the
    // outputs the deploy recorded in the run record, whatever their size.
    let (out, _) = pod.run("test", "dev", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("read from $APHEX_OUTPUTS_JSON only: AppStack.Big"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A document given by hand, as a file, wins over the record.
    let by_hand = dir.path().join("outputs-by-hand.json");
    std::fs::write(&by_hand, r#"{"AppStack": {"Url": "https://app.example"}}"#).unwrap();
    let (out, _) = pod.run(
        "test",
        "dev",
        &[("APHEX_STACK_OUTPUTS_FILE", by_hand.to_str().unwrap())],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the by-hand document has no Big output"
    );
    let (out, _) = pod.run(
        "test",
        "dev",
        &[("APHEX_STACK_OUTPUTS", r#"{"AppStack": {"Url": "wrong"}}"#)],
    );
    assert_eq!(out.status.code(), Some(1));

    let (out, _) = pod.run("finalize", "", &[("APHEX_WORKFLOW_STATUS", "Failed")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/runs/shop/shop-abc12.json")).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    // The failed retries of test-dev replaced the earlier success.
    assert_eq!(names, ["validate", "build", "pipeline", "deploy-dev", "test-dev"]);
    assert_eq!(record["stages"][4]["status"], "failed");
    // Who approved reaches finalize's record through the deploy's own.
    assert_eq!(record["stages"][3]["approvedBy"], "jane@example.com");
    assert!(record["stages"][2].get("approvedBy").is_none());
    // Each stage's log is in the run store, whole, after its pod is gone.
    let log = std::fs::read_to_string(
        dir.path()
            .join("state/runs/shop/shop-abc12/logs/deploy-dev/00000000.log"),
    )
    .unwrap();
    assert!(log.contains("AppStack"), "{log}");
    assert_eq!(record["status"], "failed");
    assert!(record["endedAt"].is_string());
    assert!(dir.path().join("state/metrics.jsonl").exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let pod = Pod {
        root: dir.path(),
        repo: dir.path(),
        sha: "abc123",
    };
    let (out, _) = pod.run("build", "", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a full commit SHA"));
    let pod = Pod {
        sha: "0123456789abcdef0123456789abcdef01234567",
        ..pod
    };
    let (out, _) = pod.run("deploy", "", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --env NAME"));
}

/// A commit on branch `feature` of the repository, not merged into `main`.
fn unmerged_commit(repo: &Path) -> String {
    git(repo, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(repo.join("lib/app.ts"), "// not reviewed").unwrap();
    git(repo, &["commit", "-q", "-am", "unreviewed"]);
    let sha = git(repo, &["rev-parse", "HEAD"]);
    git(repo, &["checkout", "-q", "main"]);
    sha
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_deploy_run_refuses_a_commit_that_is_not_on_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let merged = repo(&repo_dir);
    let unmerged = unmerged_commit(&repo_dir);
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &unmerged,
    };
    for (stage, env) in [
        ("validate", ""),
        ("build", ""),
        ("pipeline", ""),
        ("deploy", "dev"),
    ] {
        let (out, _) = pod.run(stage, env, &[]);
        assert_eq!(out.status.code(), Some(1), "{stage}: {}", stdout(&out));
        assert!(
            stdout(&out).contains(&format!("commit {unmerged} is not on branch main of")),
            "{stage}: {}",
            stdout(&out)
        );
    }
    // Nothing was built or deployed, and the refusals are in the record.
    assert!(!dir.path().join("state/artifacts").exists());
    let stage = |name: &str| -> serde_json::Value {
        let p = dir
            .path()
            .join(format!("state/runs/shop/shop-abc12/stages/{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    };
    assert_eq!(stage("deploy-dev")["stages"][0]["status"], "failed");

    // The same commit is fine for a pull request's validation, which
    // deploys nothing, and the record names the pull request.
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &unmerged,
    };
    let (out, _) = pod.run("build", "", &[("APHEX_PULL_REQUEST", "7")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stage("build")["branch"], "pull/7/head");
    for (stage, env) in [("pipeline", ""), ("deploy", "dev"), ("test", "dev")] {
        let (out, _) = pod.run(stage, env, &[("APHEX_PULL_REQUEST", "7")]);
        assert_eq!(out.status.code(), Some(1), "{stage}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("does not run for pull request #7"),
            "{stage}: {}",
            stdout(&out)
        );
    }

    // A merged commit that is not the head of the branch still deploys.
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &merged,
    };
    std::fs::write(repo_dir.join("later.txt"), "later").unwrap();
    git(&repo_dir, &["add", "later.txt"]);
    git(&repo_dir, &["commit", "-q", "-m", "later"]);
    let (out, _) = pod.run("validate", "", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn values_git_would_read_as_options_never_reach_git() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let sha = repo(&repo_dir);
    let marker = dir.path().join("pwned");
    let option = format!("--upload-pack=touch {}", marker.display());
    // As the repository (the old `git fetch <repo-url> <sha>` ran it).
    let pod = Pod {
        root: dir.path(),
        repo: Path::new(&option),
        sha: &sha,
    };
    let (out, _) = pod.run("build", "", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("which git would read as an option"));
    // As the branch, and as the SHA.
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &sha,
    };
    let (out, _) = pod.run("build", "", &[("APHEX_BRANCH", &option)]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &option,
    };
    let (out, _) = pod.run("build", "", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(!marker.exists(), "git ran the attacker's upload-pack");
    // A pull request number is a number.
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &sha,
    };
    let (out, _) = pod.run("build", "", &[("APHEX_PULL_REQUEST", "{{workflow.name}}")]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
}

/// Runs `stages` of run `id` started as `trigger` (the Workflow's labels,
/// as Argo's `{{workflow.labels.json}}` gives them); each must exit 0.
fn run_as(pod: &Pod<'_>, id: &str, trigger: &str, stages: &[(&str, &str)]) -> std::path::PathBuf {
    let labels = serde_json::json!({"aphex.dev/pipeline": "shop", "aphex.dev/trigger": trigger}).to_string();
    let mut validate_pod = None;
    for (stage, env) in stages {
        let (out, dir) = pod.run(
            stage,
            env,
            &[
                ("APHEX_WORKFLOW_ID", id),
                ("APHEX_WORKFLOW_LABELS", &labels),
                ("APHEX_WORKFLOW_STATUS", "Succeeded"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{id} {stage}: {}", stdout(&out));
        if *stage == "validate" {
            validate_pod = Some(dir);
        }
    }
    validate_pod.expect("validate ran")
}

const WHOLE_RUN: &[(&str, &str)] = &[
    ("validate", ""),
    ("build", ""),
    ("pipeline", ""),
    ("deploy", "dev"),
    ("test", "dev"),
    ("finalize", ""),
];

fn record_of(root: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root.join(format!("state/runs/shop/{id}.json"))).unwrap())
        .unwrap()
}

#[test]
fn a_re_pushed_head_ends_as_a_duplicate_at_validate_unless_a_person_starts_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let sha = repo(&repo_dir);
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &sha,
    };
    let run_output = |validate_pod: &Path| std::fs::read_to_string(validate_pod.join("outputs/run")).unwrap();

    // The first push deploys.
    let v = run_as(&pod, "shop-1", "push", WHOLE_RUN);
    assert_eq!(run_output(&v), "continue");
    assert_eq!(record_of(dir.path(), "shop-1")["status"], "succeeded");

    // The same head pushed again: validate says the run ends there (the
    // template's `when` skips every later task), and finalize records why.
    let v = run_as(&pod, "shop-2", "push", &[("validate", ""), ("finalize", "")]);
    assert_eq!(run_output(&v), "duplicate");
    let record = record_of(dir.path(), "shop-2");
    assert_eq!(record["status"], "duplicate", "{record}");
    let message = record["stages"][0]["endsRun"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "commit {} is already deployed in every environment: dev (run shop-1)",
            &sha[..12]
        )),
        "{message}"
    );

    // A person asking for it (`aphex trigger`) deploys it again.
    let v = run_as(&pod, "shop-3", "manual", &[("validate", "")]);
    assert_eq!(run_output(&v), "continue");
    // So does a Workflow without the label at all (submitted by hand).
    let (out, v) = pod.run("validate", "", &[("APHEX_WORKFLOW_ID", "shop-4")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(run_output(&v), "continue");
}

/// Issue 18 pod by pod: a commit that adds an environment supersedes the
/// run at its pipeline stage (its `run` output, which the later tasks'
/// `when` reads) and submits one restart of the same commit to the
/// directory cluster; the restart deploys the new topology and submits
/// nothing; a commit that removes the environment supersedes its run
/// again, and the stale `deploy-<env>` of the old topology, should it run,
/// succeeds doing nothing and still writes its outputs file.
#[test]
fn a_changed_topology_supersedes_the_run_and_its_restart_deploys_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let second = deployed_then_adding_qa(dir.path(), &repo_dir);
    let output = |stage_pod: &Path| std::fs::read_to_string(stage_pod.join("outputs/run")).unwrap();
    let workflows = dir.path().join("state/cluster/argo/workflow");
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &second,
    };
    run_as(&pod, "shop-2", "push", &[("validate", ""), ("build", "")]);
    // The pipeline stage of the run octocat's push started, on the old template.
    let (out, pipeline_pod) = pod.run(
        "pipeline",
        "",
        &[
            ("APHEX_WORKFLOW_ID", "shop-2"),
            (
                "APHEX_WORKFLOW_LABELS",
                r#"{"aphex.dev/trigger":"push","aphex.dev/sender":"octocat"}"#,
            ),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(output(&pipeline_pod), "superseded");
    // One Workflow submitted, named for the commit and this run.
    let names: Vec<String> = std::fs::read_dir(&workflows)
        .unwrap()
        .flatten()
        .map(|e| e.path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let restart = names[0].clone();
    assert!(
        restart.starts_with(&format!("shop-restart-{}-", &second[..7])),
        "{restart}"
    );
    let submitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workflows.join(format!("{restart}.json"))).unwrap())
            .unwrap();
    assert_eq!(submitted["metadata"]["labels"]["aphex.dev/trigger"], "restart");
    // Started by whoever started the run it restarts.
    assert_eq!(submitted["metadata"]["labels"]["aphex.dev/sender"], "octocat");
    assert_eq!(
        submitted["metadata"]["labels"]["aphex.dev/commit"],
        second.as_str()
    );
    assert_eq!(
        submitted["metadata"]["annotations"]["aphex.dev/restart-of"],
        "shop-2"
    );
    // Argo skips the later tasks (their `when`) and ends the Workflow
    // `Succeeded`; finalize records the run as superseded.
    let (out, _) = pod.run(
        "finalize",
        "",
        &[
            ("APHEX_WORKFLOW_ID", "shop-2"),
            ("APHEX_WORKFLOW_STATUS", "Succeeded"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let record = record_of(dir.path(), "shop-2");
    assert_eq!(record["status"], "superseded", "{record}");
    let pipeline_stage = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pipeline")
        .unwrap();
    let message = pipeline_stage["endsRun"]["message"].as_str().unwrap();
    assert!(message.contains("+ environment qa"), "{message}");
    assert!(message.contains(&format!("as run {restart}")), "{message}");

    // The restart runs the new topology to the end and restarts nothing.
    let mut whole = WHOLE_RUN.to_vec();
    whole.insert(5, ("deploy", "qa"));
    run_as(&pod, &restart, "restart", &whole);
    assert_eq!(output(&dir.path().join("pod-pipeline-")), "continue");
    let record = record_of(dir.path(), &restart);
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(std::fs::read_dir(&workflows).unwrap().count(), 1);

    // A commit that removes `qa` supersedes its run too, and the old
    // topology's `deploy-qa`, should it run, is a no-op that says so.
    std::fs::write(repo_dir.join("aphex-config.yaml"), CONFIG).unwrap();
    git(&repo_dir, &["commit", "-q", "-am", "drop qa"]);
    let third = git(&repo_dir, &["rev-parse", "HEAD"]);
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &third,
    };
    run_as(
        &pod,
        "shop-3",
        "push",
        &[("validate", ""), ("build", ""), ("pipeline", "")],
    );
    assert_eq!(output(&dir.path().join("pod-pipeline-")), "superseded");
    let (out, deploy_pod) = pod.run("deploy", "qa", &[("APHEX_WORKFLOW_ID", "shop-3")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("nothing to do: environment `qa` is not in aphex-config.yaml at this commit"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(deploy_pod.join("outputs/stack-outputs.json")).unwrap(),
        "{}\n"
    );
    assert_eq!(std::fs::read_dir(&workflows).unwrap().count(), 2);
}

/// A repository under `root` whose first commit ran whole as `shop-1`
/// (its template applied), then a commit adding environment `qa`; its SHA.
fn deployed_then_adding_qa(root: &Path, repo_dir: &Path) -> String {
    let first = repo(repo_dir);
    let pod = Pod {
        root,
        repo: repo_dir,
        sha: &first,
    };
    run_as(&pod, "shop-1", "push", WHOLE_RUN);
    let qa = "  - name: qa\n    region: us-east-1\n    account: \"123456789012\"\n    synth: cp -r fake-cdk-out/. \"$CDK_OUTDIR\"/\n    stacks: [{ name: AppStack, path: lib/app.ts }]\n";
    std::fs::write(repo_dir.join("aphex-config.yaml"), format!("{CONFIG}{qa}")).unwrap();
    git(repo_dir, &["commit", "-q", "-am", "add qa"]);
    git(repo_dir, &["rev-parse", "HEAD"])
}

/// Argo retries a pipeline pod lost after it applied the new template but
/// before it submitted the restart (here: the first attempt's Workflow
/// taken back). The retry finds the live template already new, but the
/// run's `--topology`, which its template passes, says the run is on the
/// old stages, so it restarts the run. Without the flag (a template
/// rendered before it) the live template is all it has, and the run goes
/// on with the old stages.
#[test]
fn a_pipeline_pod_retried_after_it_applied_the_template_still_restarts_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let second = deployed_then_adding_qa(dir.path(), &repo_dir);
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &second,
    };
    run_as(&pod, "shop-2", "push", &[("validate", ""), ("build", "")]);
    // The stages of the template shop-2 started from (CONFIG's).
    let run_topology = "validate,build,pipeline,deploy-dev,test-dev";
    let pipeline = |topology: Option<&str>| {
        let mut env = vec![
            ("APHEX_WORKFLOW_ID", "shop-2"),
            ("APHEX_WORKFLOW_LABELS", r#"{"aphex.dev/trigger":"push"}"#),
        ];
        env.extend(topology.map(|t| ("APHEX_TOPOLOGY", t)));
        let (out, pipeline_pod) = pod.run("pipeline", "", &env);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        (
            std::fs::read_to_string(pipeline_pod.join("outputs/run")).unwrap(),
            stdout(&out),
        )
    };
    let workflows = dir.path().join("state/cluster/argo/workflow");
    let submitted = || std::fs::read_dir(&workflows).map_or(0, |d| d.count());

    let (output, _) = pipeline(Some(run_topology));
    assert_eq!(output, "superseded");
    assert_eq!(submitted(), 1);
    // Lost before its submission landed.
    std::fs::remove_dir_all(&workflows).unwrap();

    let (output, log) = pipeline(None);
    assert_eq!(output, "continue", "without --topology: {log}");
    assert!(log.contains("no topology change"), "{log}");
    assert_eq!(submitted(), 0);

    let (output, log) = pipeline(Some(run_topology));
    assert_eq!(output, "superseded", "{log}");
    assert!(log.contains("topology: + environment qa"), "{log}");
    assert!(
        log.contains("the applied template's stages are not this run's"),
        "{log}"
    );
    assert_eq!(submitted(), 1);
}

/// A stand-in for GitHub's API on 127.0.0.1 that accepts `count` commit
/// statuses (201) and hands back each request's head and body.
fn status_server(count: usize) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let handle = std::thread::spawn(move || {
        (0..count)
            .map(|_| {
                let (sock, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(sock);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .unwrap();
                (head, String::from_utf8(body).unwrap())
            })
            .collect()
    });
    (url, handle)
}

#[test]
fn commit_statuses_go_where_the_template_says_and_a_missing_token_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let sha = repo(&repo_dir);
    let pod = Pod {
        root: dir.path(),
        repo: &repo_dir,
        sha: &sha,
    };
    let (api, server) = status_server(2);
    let args = [
        ("APHEX_GITHUB_API_URL", api.as_str()),
        ("APHEX_GITHUB_REPOSITORY", "acme/shop"),
        (
            "APHEX_RUN_URL",
            "https://argo.example.com/workflows/argo/shop-abc12",
        ),
    ];
    let with_token: Vec<(&str, &str)> = args
        .iter()
        .copied()
        .chain([("APHEX_GITHUB_TOKEN", "ghp_secret123")])
        .collect();
    let (out, _) = pod.run("validate", "", &with_token);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let mut finalize = with_token.clone();
    finalize.push(("APHEX_WORKFLOW_STATUS", "Succeeded"));
    let (out, _) = pod.run("finalize", "", &finalize);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let seen = server.join().unwrap();
    let path = format!("POST /repos/acme/shop/statuses/{sha} HTTP/1.1");
    let states: Vec<serde_json::Value> = seen
        .iter()
        .map(|(head, body)| {
            assert!(head.starts_with(&path), "{head}");
            assert!(head.contains("authorization: Bearer ghp_secret123"), "{head}");
            serde_json::from_str(body).unwrap()
        })
        .collect();
    assert_eq!(states[0]["state"], "pending");
    assert_eq!(states[0]["context"], "aphex/shop/deploy");
    assert_eq!(states[1]["state"], "success");
    assert_eq!(
        states[1]["target_url"],
        "https://argo.example.com/workflows/argo/shop-abc12"
    );
    // The link reaches the record, and so the notification.
    assert_eq!(
        record_of(dir.path(), "shop-abc12")["url"],
        "https://argo.example.com/workflows/argo/shop-abc12"
    );

    // No Secret (the optional secretKeyRef left the variable unset): a
    // warning that names the Secret, and the stage succeeds.
    let (out, _) = pod.run("validate", "", &args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("no commit status is posted"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("github.tokenSecret"), "{}", stdout(&out));
}
