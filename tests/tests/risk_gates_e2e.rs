//! Risk gates through the real `aphex run --local` against the emulator: a
//! stack whose new commit adds a policy with `"Action": "*"` stops at the
//! environment's gate before its change set executes (nothing of it
//! deployed, no change set left), an unrelated change does not, `--yes`
//! does not pass the gate, `--allow-risk` does, and `deny` holds even then.
//! The stack's assembly is written by hand (the synth copies it), so the
//! test needs no CDK.
//!
//! And the same gate in the cluster, pod by pod through the real
//! `aphex-runner` as the `gated-deploy` DAG runs it: `deploy --risk-gate=pause`
//! stops at the gate, records it and names it in its `risk` output; `deploy
//! --risk-gate=resume` deploys it once approved, or fails the environment
//! when the gate waited out its timeout, or when the stopped stack would
//! make a risky change the gate did not list (an approval covers what the
//! person was shown); a run that ends while the gate waits is recorded as
//! failed by finalize.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use aphex_aws::s3::S3RunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::{RunRecord, StageRecord, Status};
use aphex_tests::e2e::{AppRepo, workspace_bin};
use aphex_tests::{DEFAULT_ACCOUNT, REGION, emulator, new_bucket, unique_name};
use serde_json::json;

/// The config: one manual environment whose gates are the defaults
/// (`approve` both), plus `extra` lines under it.
fn config(extra: &str) -> String {
    format!(
        r#"version: "1.0"
build:
  commands: ["true"]
environments:
  - name: dev
    region: {REGION}
    account: "{DEFAULT_ACCOUNT}"
    approval: manual
    synth: cp -R assembly/. "$CDK_OUTDIR"
{extra}    stacks:
      - {{ name: App, path: assembly/manifest.json }}
"#
    )
}

/// The assembly of stack `stack_name`: a role and a parameter holding
/// `value`, and with `wide_policy` a policy allowing every action on it.
fn assembly(stack_name: &str, value: &str, wide_policy: bool) -> Vec<(&'static str, String)> {
    let mut resources = json!({
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": { "Service": "lambda.amazonaws.com" } }]
                }
            }
        },
        "Greeting": {
            "Type": "AWS::SSM::Parameter",
            "Properties": { "Type": "String", "Value": value }
        }
    });
    if wide_policy {
        resources["Everything"] = json!({
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "everything",
                "Roles": [{ "Ref": "Role" }],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }]
                }
            }
        });
    }
    let manifest = json!({
        "version": "55.0.0",
        "artifacts": {
            "App": {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": { "templateFile": "App.template.json", "stackName": stack_name, "validateOnSynth": false }
            }
        }
    });
    vec![
        ("assembly/manifest.json", manifest.to_string()),
        (
            "assembly/App.template.json",
            json!({ "Resources": resources }).to_string(),
        ),
    ]
}

async fn resources(stack: &str) -> Vec<String> {
    let cfn = aws_sdk_cloudformation::Client::new(&emulator().aws_config().await);
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .expect("describing the stack's resources");
    let mut ids: Vec<String> = out
        .stack_resources()
        .iter()
        .filter_map(|r| r.logical_resource_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

async fn change_sets(stack: &str) -> usize {
    let cfn = aws_sdk_cloudformation::Client::new(&emulator().aws_config().await);
    let out = cfn
        .list_change_sets()
        .stack_name(stack)
        .send()
        .await
        .expect("listing the stack's change sets");
    out.summaries().len()
}

fn with_config(extra: &str, mut files: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    files.push(("aphex-config.yaml", config(extra)));
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_allowing_every_action_stops_at_the_gate_and_an_unrelated_change_does_not() {
    let stack = unique_name("aphex-risk");
    let mut repo = AppRepo::from_files(&with_config("", assembly(&stack, "v1", false)));

    // The first deploy creates a role: IAM broadening too. --yes approves
    // the manual gate, not the risk gate, and nobody can be asked.
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let text = run.text();
    assert!(
        text.contains("stopped at a risk gate") && text.contains("new IAM role"),
        "{text}"
    );
    assert!(text.contains("pass --allow-risk"), "{text}");
    let run = repo.aphex(&["run", "--local", "--yes", "--allow-risk"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert_eq!(resources(&stack).await, ["Greeting", "Role"]);

    // An unrelated change (a parameter's value) passes without a gate.
    repo.commit_files(&assembly(&stack, "v2", false), "a new greeting");
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(!run.text().contains("risk gate"), "{}", run.text());

    // The policy with "Action": "*" stops before its change set executes.
    repo.commit_files(&assembly(&stack, "v2", true), "a policy allowing everything");
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let text = run.text();
    assert!(
        text.contains(&format!(
            "{stack} Everything (AWS::IAM::Policy): IAM broadening: new IAM policy"
        )),
        "each risky change names stack, resource, type and why:\n{text}"
    );
    assert_eq!(
        resources(&stack).await,
        ["Greeting", "Role"],
        "nothing of it deployed"
    );
    assert_eq!(
        change_sets(&stack).await,
        0,
        "the gate deleted the pending change set"
    );

    // deny holds even with --allow-risk, naming the resource.
    repo.commit_files(
        &with_config("    riskGates: { iam: deny }\n", assembly(&stack, "v2", true)),
        "deny IAM broadening",
    );
    let run = repo.aphex(&["run", "--local", "--yes", "--allow-risk"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let text = run.text();
    assert!(
        text.contains("denied by riskGates.iam") && text.contains("Everything (AWS::IAM::Policy)"),
        "{text}"
    );
    assert_eq!(resources(&stack).await, ["Greeting", "Role"]);

    // Approved, it deploys.
    repo.commit_files(&with_config("", assembly(&stack, "v2", true)), "approve again");
    let run = repo.aphex(&["run", "--local", "--yes", "--allow-risk"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(run.text().contains("approved by --allow-risk"), "{}", run.text());
    assert_eq!(resources(&stack).await, ["Everything", "Greeting", "Role"]);
}

/// One stage pod of run `run_id`: `aphex-runner STAGE --env=dev ARGS`
/// with the run store in `bucket`, the repository at its head commit.
fn pod(
    repo: &AppRepo,
    work: &Path,
    bucket: &str,
    run_id: &str,
    stage: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(workspace_bin("aphex-runner", "aphex-runner"));
    for var in [
        "APHEX_STATE_DIR",
        "APHEX_DEPLOYER",
        "APHEX_APPROVED_BY",
        "APHEX_RISK_GATE",
        "APHEX_STACK_OUTPUTS_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg(stage)
        .args(args)
        .env("APHEX_COMMIT_SHA", &repo.commit)
        .env("APHEX_REPO_URL", repo.path())
        .env("APHEX_BRANCH", "main")
        .env("APHEX_WORKFLOW_ID", run_id)
        .env("APHEX_PIPELINE", "risky")
        .env("APHEX_WORK_DIR", work.join("work"))
        .env("APHEX_OUTPUTS_DIR", work.join(run_id).join(stage))
        .env("APHEX_ARTIFACT_BUCKET", bucket)
        .envs(emulator().child_env())
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("running aphex-runner")
}

/// What a pod said, once it exited with `code`.
fn ran(out: &Output, code: i32) -> String {
    let said = text(out);
    assert_eq!(out.status.code(), Some(code), "{said}");
    said
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn record(bucket: &str, run_id: &str) -> RunRecord {
    let base = emulator().aws_config().await;
    S3RunRecorder::new(&base, bucket)
        .load("risky", run_id)
        .await
        .expect("loading the run record")
        .expect("a run record")
}

fn stage<'a>(record: &'a RunRecord, name: &str) -> &'a StageRecord {
    record
        .stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage {name} in {record:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn in_the_cluster_the_deploy_pauses_at_the_gate_and_resumes_once_approved_or_fails_when_it_times_out() {
    let stack = unique_name("aphex-risk-pod");
    let bucket = new_bucket(&emulator().aws_config().await, "aphex-risk-pod").await;
    let work = tempfile::tempdir().expect("a work directory");
    let repo = AppRepo::from_files(&with_config("", assembly(&stack, "v1", false)));
    let risk_output = |run: &str| std::fs::read_to_string(work.path().join(run).join("deploy").join("risk"));
    let at = |repo: &AppRepo, run: &str, stage: &str, args: &[&str], env: &[(&str, &str)]| {
        pod(repo, work.path(), &bucket, run, stage, args, env)
    };

    // Without a gate in the topology (no --risk-gate), the gate fails the
    // environment, saying how to get past it.
    let said = ran(&at(&repo, "run-0", "deploy", &["--env=dev"], &[]), 1);
    assert!(said.contains("no risk gate for dev to wait at"), "{said}");

    // deploy-dev: the first deploy creates a role, so it stops at the gate,
    // succeeds as a task, names the gate and records the listing.
    let said = ran(
        &at(&repo, "run-1", "deploy", &["--env=dev", "--risk-gate=pause"], &[]),
        0,
    );
    assert!(said.contains("stage paused at its risk gate"), "{said}");
    assert_eq!(risk_output("run-1").expect("the risk output"), "risk-dev");
    let paused = record(&bucket, "run-1").await;
    let deploy = stage(&paused, "deploy-dev");
    assert_eq!(deploy.status, Status::Running, "{deploy:#?}");
    let listing = deploy.error.as_deref().unwrap_or_default();
    assert!(
        listing.contains("new IAM role")
            && listing.contains("waiting at risk-dev")
            && listing.contains("aphex approve run-1 --env dev"),
        "{listing}"
    );
    assert_eq!(
        change_sets(&stack).await,
        0,
        "the gate left no change set pending"
    );
    // The stopped stack waits with its stage; nothing of it failed.
    assert_eq!(deploy.stacks.len(), 1);
    assert_eq!(deploy.stacks[0].status, Status::Running, "{deploy:#?}");
    assert!(
        deploy.stacks[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .starts_with("waiting at risk-dev"),
        "{deploy:#?}"
    );
    // What approving the gate covers, as data.
    let listed: Vec<(&str, &str)> = deploy
        .risks
        .iter()
        .map(|r| (r.logical_id.as_str(), r.why.as_str()))
        .collect();
    assert_eq!(listed, [("Role", "new IAM role")], "{deploy:#?}");

    // resume-dev, approved by alice: deploys it, recorded as deploy-dev
    // (without the suspend's times, the wait is measured from the pause).
    let said = ran(
        &at(
            &repo,
            "run-1",
            "deploy",
            &["--env=dev", "--risk-gate=resume"],
            &[("APHEX_APPROVED_BY", "alice")],
        ),
        0,
    );
    assert!(said.contains("risk gate risk-dev approved by alice"), "{said}");
    let resumed = record(&bucket, "run-1").await;
    let deploy = stage(&resumed, "deploy-dev");
    assert_eq!(deploy.status, Status::Succeeded, "{deploy:#?}");
    assert_eq!(deploy.approved_by.as_deref(), Some("alice"));
    assert_eq!(deploy.risks.len(), 1, "what alice approved stays on the record");
    assert_eq!(resources(&stack).await, ["Greeting", "Role"]);
    // Argo retries a resume pod that errored after it recorded the deploy:
    // the retry deploys again (nothing changed) instead of failing.
    let retried = [
        "--env=dev",
        "--risk-gate=resume 2026-01-01T00:00:00Z 2026-01-01T00:05:00Z",
    ];
    ran(
        &at(
            &repo,
            "run-1",
            "deploy",
            &retried,
            &[("APHEX_APPROVED_BY", "alice")],
        ),
        0,
    );
    assert_eq!(
        stage(&record(&bucket, "run-1").await, "deploy-dev").status,
        Status::Succeeded
    );

    // A policy allowing every action, with a gate of 90 minutes: the deploy
    // pauses again; a suspend that lasted its whole timeout (Argo resumes
    // it by itself then, and hands the resume the suspend's own times) fails
    // the environment and nothing deploys.
    let mut repo = repo;
    repo.commit_files(
        &with_config("    riskGates: { timeout: 90m }\n", assembly(&stack, "v1", true)),
        "a policy allowing everything",
    );
    ran(
        &at(&repo, "run-2", "deploy", &["--env=dev", "--risk-gate=pause"], &[]),
        0,
    );
    assert_eq!(risk_output("run-2").expect("the risk output"), "risk-dev");
    let waited_out = "--risk-gate=resume 2026-01-01T00:00:00Z 2026-01-01T01:30:00Z";
    let said = ran(&at(&repo, "run-2", "deploy", &["--env=dev", waited_out], &[]), 1);
    assert!(
        said.contains("nobody approved it within its timeout (90m)"),
        "{}",
        said
    );
    assert_eq!(
        stage(&record(&bucket, "run-2").await, "deploy-dev").status,
        Status::Failed
    );
    assert_eq!(
        resources(&stack).await,
        ["Greeting", "Role"],
        "nothing of it deployed"
    );
    assert_eq!(change_sets(&stack).await, 0);

    // A run that ends while its gate waits (rejected, stopped): finalize
    // records the paused deploy, and so the run, as failed.
    ran(
        &at(&repo, "run-3", "deploy", &["--env=dev", "--risk-gate=pause"], &[]),
        0,
    );
    ran(
        &at(
            &repo,
            "run-3",
            "finalize",
            &[],
            &[("APHEX_WORKFLOW_STATUS", "Failed")],
        ),
        0,
    );
    let ended = record(&bucket, "run-3").await;
    assert_eq!(ended.status, Status::Failed, "{ended:#?}");
    let deploy = stage(&ended, "deploy-dev");
    assert_eq!(deploy.status, Status::Failed);
    assert_eq!(
        deploy.stacks[0].status,
        Status::Failed,
        "and so its stopped stack"
    );
    assert!(
        deploy
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("the run ended while this waited at its risk gate"),
        "{deploy:#?}"
    );

    // An approval covers what the gate listed. Here the person saw the
    // policy before it allowed every action (the record says so), and the
    // approved deploy would make it a wildcard: it fails naming the change,
    // and nothing of it deploys.
    ran(
        &at(&repo, "run-4", "deploy", &["--env=dev", "--risk-gate=pause"], &[]),
        0,
    );
    let paused = record(&bucket, "run-4").await;
    let mut deploy = stage(&paused, "deploy-dev").clone();
    let wildcard = "new IAM policy; adds \"*\" to Action";
    assert!(deploy.risks.iter().any(|r| r.why == wildcard), "{deploy:#?}");
    for r in &mut deploy.risks {
        r.why = "new IAM policy".to_owned();
    }
    S3RunRecorder::new(&emulator().aws_config().await, &bucket)
        .record_stage(&paused, &deploy)
        .await
        .expect("rewriting what the gate listed");
    let in_time = "--risk-gate=resume 2026-01-01T00:00:00Z 2026-01-01T00:05:00Z";
    let said = ran(
        &at(
            &repo,
            "run-4",
            "deploy",
            &["--env=dev", in_time],
            &[("APHEX_APPROVED_BY", "alice")],
        ),
        1,
    );
    assert!(
        said.contains("changed after its risk gate listed it: 1 risky change the gate did not list"),
        "{said}"
    );
    let ended = record(&bucket, "run-4").await;
    let deploy = stage(&ended, "deploy-dev");
    assert_eq!(deploy.status, Status::Failed);
    assert!(
        deploy.error.as_deref().unwrap_or_default().contains(wildcard),
        "{deploy:#?}"
    );
    assert_eq!(resources(&stack).await, ["Greeting", "Role"]);
    assert_eq!(change_sets(&stack).await, 0);
}
