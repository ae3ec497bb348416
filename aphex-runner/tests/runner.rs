//! `aphex-runner` stage by stage, as the workflow runs it (one process per
//! stage, state handed over through the run record, the artifact store and
//! the Argo output-parameter file), with the local adapters and the fake
//! deployer.

use std::path::Path;
use std::process::{Command, Output};

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
"#;

fn repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::create_dir_all(dir.join("fake-cdk-out")).unwrap();
    std::fs::write(dir.join("aphex-config.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("lib/app.ts"), "").unwrap();
    std::fs::write(
        dir.join("fake-cdk-out/manifest.json"),
        r#"{"version": "55.0.0", "artifacts": {"AppStack": {"type": "aws:cloudformation:stack",
            "environment": "aws://123456789012/us-east-1", "properties": {"templateFile": "App.json"}}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("fake-cdk-out/App.json"),
        r#"{"Resources": {}, "Outputs": {"Url": {"Value": "https://app.example"}}}"#,
    )
    .unwrap();
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
            .env("APHEX_WORK_DIR", pod.join("work"))
            .env("APHEX_OUTPUTS_DIR", pod.join("outputs"))
            .env("APHEX_STATE_DIR", self.root.join("state"))
            .env("APHEX_DEPLOYER", "fake")
            .env_remove("APHEX_STACK_OUTPUTS")
            .env_remove("APHEX_SLACK_WEBHOOK_URL")
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
    let (out, deploy_pod) = pod.run("deploy", "dev", &[]);
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
        serde_json::json!({"AppStack": {"Url": "https://app.example"}})
    );

    // Argo hands the output parameter to the test pod as APHEX_STACK_OUTPUTS.
    let (out, _) = pod.run("test", "dev", &[("APHEX_STACK_OUTPUTS", &outputs)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
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
    // The failed retry of test-dev replaced the earlier success.
    assert_eq!(names, ["validate", "build", "pipeline", "deploy-dev", "test-dev"]);
    assert_eq!(record["stages"][4]["status"], "failed");
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
