//! The quick start end to end through AWS faults injected for real: the
//! real `aphex run --local --store s3://...` talks to the emulator through
//! the fault proxy of `aphex-testkit` (`AWS_ENDPOINT_URL` is the proxy).
//! With a seeded 15 % of requests faulted (throttling, bare 5xx,
//! connections closed before or after the emulator answered, slow answers)
//! the run succeeds: every stack created exactly once, outputs right, the
//! run record complete. Under a sustained outage the run fails within the
//! bound docs/deploying.md states, naming the service, the call and the
//! last error, and saying what it leaves behind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aphex_aws::s3::S3RunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::Status;
use aphex_testkit::fault_proxy::{Answer, Fault, FaultProxy, Outcome, RandomFaults, Rule};
use aphex_tests::bootstrap::account_config;
use aphex_tests::e2e::{STACKS, outputs_of, quick_start, stack_creates, stack_status};
use aphex_tests::{REGION, emulator};

/// How long a run may take to fail once every request fails
/// (docs/deploying.md, "Retries and timeouts").
const OUTAGE_BOUND: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_deploys_through_fifteen_percent_of_faults() {
    let qs = quick_start().await;
    let proxy = FaultProxy::start(emulator().endpoint()).expect("starting the fault proxy");
    proxy.set_random(Some(RandomFaults::new(0.15, 16)));
    let run = qs.repo.aphex_at(
        proxy.endpoint(),
        &["run", "--local", "--yes", "--store", &qs.store],
    );
    let exchanges = proxy.exchanges();
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    for e in &exchanges {
        if let Outcome::Faulted(fault, _) = e.outcome {
            *faults.entry(format!("{fault:?}")).or_default() += 1;
        }
    }
    let faulted: usize = faults.values().sum();
    assert_eq!(run.code, Some(0), "{faults:?}\n{}", run.text());
    // Not a run that passed by luck of no faults: a share of the requests
    // was faulted, lost answers among them.
    assert!(
        faulted * 100 >= exchanges.len() * 8,
        "{faulted} of {} requests faulted: {faults:?}",
        exchanges.len()
    );
    assert!(faults.contains_key("CloseAfterForward"), "{faults:?}");

    // Every stack created exactly once, in its account, the pipeline's too.
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
    let pipeline_stack = format!("aphex-{}", qs.pipeline);
    assert_eq!(stack_creates(&base, &pipeline_stack).await, 1);

    // The outputs handed on are CloudFormation's, and both environments'
    // tests saw every one.
    let outputs_dir = run.summary_line("outputs");
    for (env, account) in [("dev", &qs.dev), ("prod", &qs.prod)] {
        let written: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{outputs_dir}/{env}/outputs.json"))
                .expect("the environment's outputs"),
        )
        .expect("JSON outputs");
        assert_eq!(written, outputs_of(account).await, "{env}");
    }
    assert_eq!(
        run.stderr.matches("all outputs present").count(),
        2,
        "{}",
        run.text()
    );

    // The run record is complete.
    let recorder = S3RunRecorder::new(&base, qs.store.trim_start_matches("s3://"));
    let runs = recorder.list(&qs.pipeline, 10).await.expect("listing runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let record = &runs[0];
    assert_eq!(record.status, Status::Succeeded);
    assert_eq!(record.commit, qs.repo.commit);
    assert!(record.ended_at.is_some());
    let stages: Vec<(&str, Status)> = record
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        stages,
        [
            ("validate", Status::Succeeded),
            ("build", Status::Succeeded),
            ("pipeline", Status::Succeeded),
            ("deploy-dev", Status::Succeeded),
            ("test-dev", Status::Succeeded),
            ("deploy-prod", Status::Succeeded),
            ("test-prod", Status::Succeeded),
        ]
    );
    let stacks: Vec<_> = record.stages.iter().flat_map(|s| &s.stacks).collect();
    assert_eq!(stacks.len(), 7);
    assert!(
        stacks
            .iter()
            .all(|s| s.status == Status::Succeeded && s.changed == Some(true)),
        "{stacks:#?}"
    );
    let build = record.stages.iter().find(|s| s.name == "build").unwrap();
    assert!(build.artifact_bytes.is_some_and(|b| b > 0));
}

/// What the last error of a call failed by `fault` reads like.
fn last_error_text(fault: Fault) -> String {
    match fault {
        Fault::Throttle => "Throttling: Rate exceeded".to_owned(),
        Fault::ServerError(status) => format!("HTTP {status} with no AWS error in the answer"),
        Fault::CloseBeforeForward | Fault::CloseAfterForward => {
            "connection closed before message completed".to_owned()
        }
        Fault::Slow(_) => "timed out".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sustained_outage_fails_the_run_in_bounded_time_saying_what_failed_and_what_is_left() {
    let qs = quick_start().await;
    let proxy = FaultProxy::start(emulator().endpoint()).expect("starting the fault proxy");
    // Everything goes through until dev's first stack starts deploying (the
    // pipeline's own stack is the first execute); from then on, every
    // request fails.
    proxy.add_rule(Rule::on("ExecuteChangeSet", Answer::ForwardThen(RandomFaults::outage(42))).after(1));
    let run = qs.repo.aphex_at(
        proxy.endpoint(),
        &["run", "--local", "--yes", "--store", &qs.store],
    );
    let ended = Instant::now();
    assert_eq!(run.code, Some(1), "{}", run.text());
    let outage = proxy.calls("ExecuteChangeSet")[1].at;
    let took = ended - outage;
    assert!(
        took < OUTAGE_BOUND,
        "the run took {took:?} to fail after the outage began (bound {OUTAGE_BOUND:?}):\n{}",
        run.text()
    );

    // The deploy names the service, the call and its last error: what the
    // proxy did to that call's last attempt.
    let text = run.text();
    let polls = ["DescribeStacks", "DescribeStackEvents"];
    let (call, last) = proxy
        .exchanges()
        .iter()
        .rev()
        .filter(|e| polls.contains(&e.call.action.as_str()))
        .find_map(|e| match e.outcome {
            Outcome::Faulted(fault, _) => Some((e.call.action.clone(), fault)),
            _ => None,
        })
        .expect("a failed poll");
    assert!(
        text.contains(&format!("CloudFormation {call}: ")),
        "the failed call {call} is named:\n{text}"
    );
    assert!(
        text.contains(&last_error_text(last)),
        "its last error ({last:?}) is given:\n{text}"
    );
    // What is left half-done is said: the stack operation in flight, and
    // the run record that could not be written.
    assert!(
        text.contains("was started and may still be in progress"),
        "{text}"
    );
    assert!(text.contains("S3 PutObject: "), "{text}");
    assert!(text.contains("recording the run"), "{text}");
}
