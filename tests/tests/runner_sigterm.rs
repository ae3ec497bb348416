//! The pod binary stopped mid-deploy for real, on the emulator: the real
//! `aphex-runner deploy` (the CloudFormation deployer, the S3 run store, as
//! a stage pod runs it) of `tests/cdk-apps`' `parallel` variant (six
//! independent stacks, deployed one at a time here) gets SIGTERM, on its
//! whole process group as the kubelet sends it when a pod is evicted, while
//! the first stack's change set executes. The fault proxy holds that
//! call's answer back (the emulator has already acted on it), so the signal
//! lands while the operation is in flight, whatever the machine's speed.
//!
//! It must stop starting new work (no other stack is ever created), exit
//! with 130 within [`SHUTDOWN_BOUND`], record the stage and the stack as
//! interrupted naming the operation in flight, and leave that operation to
//! end by itself (never cancelled). `quickstart_killed.rs` holds the same
//! for `aphex run --local`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aphex_aws::s3::S3RunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::Status;
use aphex_stages::shutdown::SHUTDOWN_BOUND;
use aphex_testkit::fault_proxy::{Fault, FaultProxy, Rule};
use aphex_tests::bootstrap::{account_config, prepare_bootstrap};
use aphex_tests::e2e::{AppRepo, node_modules, stack_creates, stack_status, unique_account, workspace_bin};
use aphex_tests::{REGION, emulator, new_bucket, unique_name};

/// How long the proxy holds back the answer of the call the signal
/// interrupts: long enough to signal within it.
const HELD: Duration = Duration::from_secs(8);

/// How long the runner may take to reach the first stack (checkout, synth).
const REACH_FIRST_STACK: Duration = Duration::from_secs(600);

/// The variant's stacks, in the order a deploy with concurrency 1 takes them.
const STACKS: [&str; 6] = [
    "Parallel1",
    "Parallel2",
    "Parallel3",
    "Parallel4",
    "Parallel5",
    "Parallel6",
];

/// A running `aphex-runner`, its output going to files; killed (with its
/// group) if the test ends while it runs.
struct Runner {
    child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
}

impl Runner {
    /// Sends `signal` to the runner's whole process group.
    fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .args(["-s", signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("checking on aphex-runner").is_none()
    }

    /// Both streams so far, for assertion messages.
    fn text(&self) -> String {
        let read = |f: &tempfile::NamedTempFile| std::fs::read_to_string(f.path()).unwrap_or_default();
        format!("--- stdout\n{}\n--- stderr\n{}", read(&self.out), read(&self.err))
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.out.path()).unwrap_or_default()
    }

    /// Waits for the exit, at most `bound` (then kills it and fails);
    /// returns the exit code and how long the wait took.
    fn wait(&mut self, bound: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for aphex-runner") {
                return (status.code(), start.elapsed());
            }
            if start.elapsed() > bound {
                self.signal("KILL");
                let _ = self.child.wait();
                panic!("aphex-runner did not exit within {bound:?}:\n{}", self.text());
            }
            // Polling the child's exit, not timing the test.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("KILL");
            let _ = self.child.wait();
        }
    }
}

/// What a stage pod of this deploy is given.
struct Pod<'a> {
    repo: &'a AppRepo,
    work: &'a Path,
    pipeline: &'a str,
    run_id: &'a str,
    bucket: &'a str,
}

/// Starts `aphex-runner deploy --env e2e` as the WorkflowTemplate runs it,
/// its AWS calls going through `endpoint`, in a process group of its own
/// (as a pod's main process is).
fn start_deploy(pod: &Pod<'_>, endpoint: &str) -> Runner {
    use std::os::unix::process::CommandExt;
    let out = tempfile::NamedTempFile::new().expect("a file for stdout");
    let err = tempfile::NamedTempFile::new().expect("a file for stderr");
    let mut cmd = Command::new(workspace_bin("aphex-runner", "aphex-runner"));
    for var in [
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "APHEX_STATE_DIR",
        "APHEX_DEPLOYER",
        "APHEX_PULL_REQUEST",
        "APHEX_STACK_OUTPUTS",
        "APHEX_STACK_OUTPUTS_FILE",
        "APHEX_SLACK_WEBHOOK_URL",
        "APHEX_GITHUB_TOKEN",
        "APHEX_GITHUB_API_URL",
        "APHEX_GITHUB_REPOSITORY",
        "APHEX_RUN_URL",
        "APHEX_WORKFLOW_LABELS",
        "APHEX_APPROVED_BY",
    ] {
        cmd.env_remove(var);
    }
    let child = cmd
        .args(["deploy", "--env=e2e"])
        .env("APHEX_COMMIT_SHA", &pod.repo.commit)
        .env("APHEX_REPO_URL", pod.repo.path())
        .env("APHEX_BRANCH", "main")
        .env("APHEX_WORKFLOW_ID", pod.run_id)
        .env("APHEX_PIPELINE", pod.pipeline)
        .env("APHEX_WORK_DIR", pod.work.join("work"))
        .env("APHEX_OUTPUTS_DIR", pod.work.join("outputs"))
        .env("APHEX_ARTIFACT_BUCKET", pod.bucket)
        .env("APHEX_LOG", "info")
        .envs(emulator().child_env())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("NODE_PATH", node_modules())
        .env("CDK_DISABLE_CLI_TELEMETRY", "true")
        .env("CDK_DISABLE_VERSION_CHECK", "1")
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopening"))
        .stderr(err.reopen().expect("reopening"))
        .process_group(0)
        .spawn()
        .expect("starting aphex-runner");
    Runner { child, out, err }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_runner_mid_deploy_within_the_bound_and_records_what_was_in_flight() {
    let account = unique_account();
    prepare_bootstrap(&account, REGION).await.expect("bootstrapping");
    let base = emulator().aws_config().await;
    let bucket = new_bucket(&base, "aphex-runner-sigterm").await;
    let repo = AppRepo::cdk_app("parallel", |config| {
        assert!(config.contains("concurrency: 2"), "{config}");
        config
            .replace("000000000000", &account)
            // One stack at a time: the five after the first are the new
            // work that must never start.
            .replace("concurrency: 2", "concurrency: 1")
    });
    let pipeline = unique_name("sigterm");
    let run_id = unique_name("run");
    let work = tempfile::tempdir().expect("a pod folder");
    let pod = Pod {
        repo: &repo,
        work: work.path(),
        pipeline: &pipeline,
        run_id: &run_id,
        bucket: &bucket,
    };

    // Every ExecuteChangeSet's answer is held back: the first stack's
    // execution is in flight until well after the signal.
    let proxy = FaultProxy::start(emulator().endpoint()).expect("starting the fault proxy");
    proxy.add_rule(Rule::on("ExecuteChangeSet", Fault::Slow(HELD)).always());
    let mut runner = start_deploy(&pod, proxy.endpoint());

    // Signal once the first stack's execution has begun (as the emulator
    // has it, not through the proxy).
    let cfn = account_config(&account, REGION).await;
    let start = Instant::now();
    let at_signal = loop {
        if let Some(status) = stack_status(&cfn, STACKS[0]).await
            && status.starts_with("CREATE_")
        {
            break status;
        }
        assert!(
            runner.running(),
            "the runner ended before the first stack's execution began:\n{}",
            runner.text()
        );
        assert!(
            start.elapsed() < REACH_FIRST_STACK,
            "the first stack got nowhere in {REACH_FIRST_STACK:?}:\n{}",
            runner.text()
        );
        // Polling the emulator for the moment to signal, not timing the test.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(runner.signal("TERM"), "kill -s TERM of the runner's group failed");
    let (code, took) = runner.wait(SHUTDOWN_BOUND + Duration::from_secs(10));
    eprintln!("aphex-runner exited {took:?} after SIGTERM (bound {SHUTDOWN_BOUND:?})");
    assert!(
        took < SHUTDOWN_BOUND,
        "exited {took:?} after SIGTERM (bound {SHUTDOWN_BOUND:?}):\n{}",
        runner.text()
    );
    assert_eq!(code, Some(130), "{}", runner.text());
    let log = runner.stdout();
    assert!(log.contains("SIGTERM received: stopping"), "{}", runner.text());
    assert!(log.contains("deploying stack Parallel1"), "{}", runner.text());

    // No new work: the first stack's change set was the only one created,
    // and no other stack exists.
    assert_eq!(
        proxy.calls("CreateChangeSet").len(),
        1,
        "one change set, the first stack's:\n{}",
        runner.text()
    );
    for later in &STACKS[1..] {
        assert!(
            !log.contains(&format!("deploying stack {later}")),
            "{later}:\n{log}"
        );
        assert_eq!(stack_status(&cfn, later).await, None, "{later} was created");
    }

    // The stage's record in the run store: interrupted, naming the stack in
    // flight and what was happening to it; the others never started.
    let recorder = S3RunRecorder::new(&base, &bucket);
    let record = recorder
        .load(&pipeline, &run_id)
        .await
        .expect("reading the run record")
        .unwrap_or_else(|| panic!("no record of run {run_id}:\n{}", runner.text()));
    let deploy = record
        .stages
        .iter()
        .find(|s| s.name == "deploy-e2e")
        .unwrap_or_else(|| panic!("no deploy-e2e stage: {record:#?}"));
    assert_eq!(deploy.status, Status::Interrupted, "{deploy:#?}");
    let error = deploy.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("Parallel1: executing its CREATE change set") && error.contains("goes on by itself"),
        "{error}"
    );
    assert!(deploy.ended_at.is_some(), "{deploy:#?}");
    let stacks: Vec<(&str, Status)> = deploy
        .stacks
        .iter()
        .map(|s| (s.stack_name.as_str(), s.status))
        .collect();
    assert_eq!(
        stacks,
        [
            ("Parallel1", Status::Interrupted),
            ("Parallel2", Status::Skipped),
            ("Parallel3", Status::Skipped),
            ("Parallel4", Status::Skipped),
            ("Parallel5", Status::Skipped),
            ("Parallel6", Status::Skipped),
        ]
    );
    assert!(
        deploy.stacks[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("executing its CREATE change set"),
        "{:#?}",
        deploy.stacks[0]
    );

    // The operation was left to CloudFormation, never cancelled or deleted,
    // and ends by itself.
    for call in ["CancelUpdateStack", "DeleteStack", "ContinueUpdateRollback"] {
        assert!(proxy.calls(call).is_empty(), "{call} was called");
    }
    let start = Instant::now();
    let mut status = stack_status(&cfn, STACKS[0]).await;
    while status.as_deref() == Some("CREATE_IN_PROGRESS") && start.elapsed() < Duration::from_secs(120) {
        // Waiting (bounded) for the emulator's create, not timing the test.
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = stack_status(&cfn, STACKS[0]).await;
    }
    assert_eq!(
        status.as_deref(),
        Some("CREATE_COMPLETE"),
        "(at SIGTERM: {at_signal})"
    );
    assert_eq!(stack_creates(&cfn, STACKS[0]).await, 1);
}
