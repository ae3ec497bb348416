//! The quick start's runner stopped mid-deploy for real, on the emulator:
//! the real `aphex run --local --store s3://...` is signalled (its whole
//! process group, as the kubelet does) while a CloudFormation call of
//! dev's first stack is under way. The fault proxy holds that call's answer
//! back for a while (the emulator has already acted on it), so the signal
//! lands while the deploy is in flight, whatever the machine's speed.
//!
//! - SIGKILL, twice (once with the change set created and never executed,
//!   once with its execution begun), then a run of the same commit: it
//!   completes, every stack created once, the outputs CloudFormation's.
//! - SIGTERM (a pod evicted): the process exits within
//!   [`SHUTDOWN_BOUND`], records the stage as interrupted naming the stack
//!   and the operation in flight, and that operation ends by itself
//!   (never cancelled).

use std::time::{Duration, Instant};

use aphex_aws::s3::S3RunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::Status;
use aphex_stages::shutdown::SHUTDOWN_BOUND;
use aphex_testkit::fault_proxy::{Fault, FaultProxy, Rule};
use aphex_tests::bootstrap::account_config;
use aphex_tests::e2e::{QuickStart, STACKS, Spawned, outputs_of, quick_start, stack_creates, stack_status};
use aphex_tests::{REGION, emulator};

/// How long the proxy holds back the answer of the call the signal
/// interrupts: long enough to signal within it.
const HELD: Duration = Duration::from_secs(8);

/// How long a run may take to reach dev's first stack (synth, build, the
/// pipeline's own stack).
const REACH_DEV: Duration = Duration::from_secs(600);

/// A proxy in front of the emulator that holds back every answer to `action`.
fn holding(action: &str) -> FaultProxy {
    let proxy = FaultProxy::start(emulator().endpoint()).expect("starting the fault proxy");
    proxy.add_rule(Rule::on(action, Fault::Slow(HELD)).always());
    proxy
}

/// Starts a run of the quick start through `proxy`.
fn start(qs: &QuickStart, proxy: &FaultProxy) -> Spawned {
    qs.repo.spawn_at(
        proxy.endpoint(),
        &["run", "--local", "--yes", "--store", &qs.store],
    )
}

/// Waits until dev's first stack is in a status `reached` accepts (as the
/// emulator has it, not through the proxy), and returns that status.
async fn until_dev_first_stack(qs: &QuickStart, run: &mut Spawned, reached: fn(&str) -> bool) -> String {
    let dev = account_config(&qs.dev, REGION).await;
    let start = Instant::now();
    loop {
        if let Some(status) = stack_status(&dev, STACKS[0]).await
            && reached(&status)
        {
            return status;
        }
        assert!(
            run.running(),
            "the run ended before dev's first stack got there:\n{}",
            run.stderr()
        );
        assert!(
            start.elapsed() < REACH_DEV,
            "dev's first stack got nowhere in {REACH_DEV:?}:\n{}",
            run.stderr()
        );
        // Polling the emulator for the moment to signal, not timing the test.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every stack of both environments exists once, complete.
async fn every_stack_created_once(qs: &QuickStart) {
    for account in [&qs.dev, &qs.prod] {
        let config = account_config(account, REGION).await;
        for stack in STACKS {
            assert_eq!(
                stack_status(&config, stack).await.as_deref(),
                Some("CREATE_COMPLETE"),
                "{stack} in {account}"
            );
            assert_eq!(stack_creates(&config, stack).await, 1, "{stack} in {account}");
        }
    }
    let base = emulator().aws_config().await;
    assert_eq!(stack_creates(&base, &format!("aphex-{}", qs.pipeline)).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_killed_mid_deploy_and_started_again_completes_the_run() {
    let qs = quick_start().await;

    // Killed with dev's first change set created (the stack waits for it in
    // REVIEW_IN_PROGRESS) and never executed.
    let proxy = holding("CreateChangeSet");
    let mut run = start(&qs, &proxy);
    until_dev_first_stack(&qs, &mut run, |s| s == "REVIEW_IN_PROGRESS").await;
    run.signal("KILL");
    let (killed, _) = run.wait(Duration::from_secs(10));
    assert_eq!(killed.code, None, "killed by the signal: {}", killed.text());

    // Killed again once that stack's execution began (its answer held back).
    let proxy = holding("ExecuteChangeSet");
    let mut run = start(&qs, &proxy);
    let at_kill = until_dev_first_stack(&qs, &mut run, |s| s.starts_with("CREATE_")).await;
    run.signal("KILL");
    let (killed, _) = run.wait(Duration::from_secs(10));
    assert_eq!(killed.code, None, "killed by the signal: {}", killed.text());

    // The same commit again, straight to the emulator: the run completes.
    let rerun = qs.repo.aphex(&["run", "--local", "--yes", "--store", &qs.store]);
    assert_eq!(rerun.code, Some(0), "(killed at {at_kill})\n{}", rerun.text());
    every_stack_created_once(&qs).await;
    let outputs_dir = rerun.summary_line("outputs");
    for (env, account) in [("dev", &qs.dev), ("prod", &qs.prod)] {
        let written: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{outputs_dir}/{env}/outputs.json")).expect("the outputs"),
        )
        .expect("JSON outputs");
        assert_eq!(written, outputs_of(account).await, "{env}");
    }
    assert_eq!(
        rerun.stderr.matches("all outputs present").count(),
        2,
        "both environments' tests saw every output:\n{}",
        rerun.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_records_the_deploy_in_flight_as_interrupted_exits_in_bound_and_leaves_it_running() {
    let qs = quick_start().await;
    let proxy = holding("ExecuteChangeSet");
    let mut run = start(&qs, &proxy);
    let at_signal = until_dev_first_stack(&qs, &mut run, |s| s.starts_with("CREATE_")).await;
    run.signal("TERM");
    let (stopped, took) = run.wait(SHUTDOWN_BOUND + Duration::from_secs(10));
    assert!(
        took < SHUTDOWN_BOUND,
        "exited {took:?} after SIGTERM (bound {SHUTDOWN_BOUND:?}):\n{}",
        stopped.text()
    );
    eprintln!("exited {took:?} after SIGTERM (bound {SHUTDOWN_BOUND:?})");
    assert_eq!(stopped.code, Some(130), "{}", stopped.text());
    assert!(
        stopped.stderr.contains("SIGTERM received: stopping"),
        "{}",
        stopped.text()
    );

    // The record: interrupted at deploy-dev, naming the stack in flight and
    // what was happening to it; nothing after it ran.
    let base = emulator().aws_config().await;
    let recorder = S3RunRecorder::new(&base, qs.store.trim_start_matches("s3://"));
    let runs = recorder.list(&qs.pipeline, 10).await.expect("listing runs");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let record = &runs[0];
    assert_eq!(record.status, Status::Interrupted, "{record:#?}");
    let stage = |name: &str| record.stages.iter().find(|s| s.name == name).unwrap();
    let deploy = stage("deploy-dev");
    assert_eq!(deploy.status, Status::Interrupted, "{deploy:#?}");
    let error = deploy.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("QuickstartShared: executing its CREATE change set")
            && error.contains("goes on by itself"),
        "{error}"
    );
    let shared = &deploy.stacks[0];
    assert_eq!(
        (shared.stack_name.as_str(), shared.status),
        ("QuickstartShared", Status::Interrupted)
    );
    assert!(
        shared
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("executing its CREATE change set"),
        "{shared:#?}"
    );
    for later in ["test-dev", "deploy-prod", "test-prod"] {
        assert_eq!(stage(later).status, Status::Skipped, "{later}");
    }

    // The operation was left to CloudFormation, never cancelled or deleted,
    // and ends by itself.
    for call in ["CancelUpdateStack", "DeleteStack", "ContinueUpdateRollback"] {
        assert!(proxy.calls(call).is_empty(), "{call} was called");
    }
    let dev = account_config(&qs.dev, REGION).await;
    let start = Instant::now();
    let mut status = stack_status(&dev, STACKS[0]).await;
    while status.as_deref() == Some("CREATE_IN_PROGRESS") && start.elapsed() < Duration::from_secs(120) {
        // Waiting (bounded) for the emulator's create, not timing the test.
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = stack_status(&dev, STACKS[0]).await;
    }
    assert_eq!(
        status.as_deref(),
        Some("CREATE_COMPLETE"),
        "(at SIGTERM: {at_signal})"
    );
    assert_eq!(stack_creates(&dev, STACKS[0]).await, 1);
}
