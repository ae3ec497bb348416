//! validate, pipeline (with a recording pipeline stack updater) and finalize
//! against the local adapters, and the git checkout against repositories
//! made by the test.

mod support;

use std::sync::{Arc, Mutex};

use aphex_stages::context::Ports;
use aphex_stages::ports::{
    ClusterError, CredentialChecker, CredentialError, Identity, Notifier, NotifyError,
};
use aphex_stages::record::{RunRecord, StackResult, StageRecord, Status};
use aphex_stages::redact::Redactor;
use aphex_stages::report::CollectingReporter;
use aphex_stages::stages::{StageError, finalize, pipeline, validate};
use aphex_stages::workspace::{CheckoutError, check_on_branch, checkout};
use aphex_template::submit::Origin;
use aphex_testkit::git;
use support::*;

const FULL: &str = r#"
version: "1.0"
build: { commands: ["definitely-not-a-program-xyz --build", "echo ok"] }
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    requiredContext: [vpcId, hostedZone]
    synth: "node bin/app.js"
    stacks:
      - { name: AppStack, path: lib/app.ts }
      - { name: DataStack, path: lib/data.ts }
  - name: prod
    region: eu-west-1
    account: "210987654321"
    stacks: [{ name: AppStack, path: lib/app.ts }]
"#;

struct Checker;

#[async_trait::async_trait]
impl CredentialChecker for Checker {
    async fn check(&self, env: &aphex_config::Environment) -> Result<Identity, CredentialError> {
        match env.name.as_str() {
            "dev" => Ok(Identity {
                account: "999999999999".to_owned(),
                arn: "arn:aws:sts::999999999999:assumed-role/x/y".to_owned(),
            }),
            _ => Err(CredentialError::Unreachable(
                "AccessDenied assuming arn:aws:iam::210987654321:role/deploy".into(),
            )),
        }
    }
}

#[test]
fn validate_reports_every_problem_at_once() {
    let mut h = harness(FULL);
    h.ctx.ports.credentials = Some(Arc::new(Checker));
    std::fs::create_dir_all(h.checkout().join("lib")).unwrap();
    std::fs::write(h.checkout().join("lib/app.ts"), "").unwrap();
    std::fs::write(
        h.checkout().join("cdk.json"),
        r#"{"app": "node bin/app.js", "context": {"vpcId": "vpc-1"}}"#,
    )
    .unwrap();
    let err = rt().block_on(validate::run(&h.ctx)).unwrap_err();
    let StageError::Invalid(problems) = &err else {
        panic!("{err}")
    };
    let text = problems.join("\n");
    assert_eq!(problems.len(), 5, "{text}");
    assert!(
        text.contains("environments[0] dev: credentials reach account 999999999999"),
        "{text}"
    );
    assert!(text.contains("environments[1] prod: AccessDenied"), "{text}");
    assert!(
        text.contains("environments[0].requiredContext[1]: CDK context key `hostedZone`"),
        "{text}"
    );
    assert!(
        text.contains("build.commands[0]: `definitely-not-a-program-xyz`"),
        "{text}"
    );
    assert!(
        text.contains("environments[0].stacks[1].path: `lib/data.ts` (stack DataStack)"),
        "{text}"
    );
    assert!(err.to_string().starts_with("5 problems found:\n  - "), "{err}");
}

const DEV_AND_BROKEN_PROD: &str = r#"
version: "1.0"
build: { commands: ["true"] }
environments:
  - name: dev
    region: us-east-1
    account: "999999999999"
    synth: "true"
    stacks: [{ name: AppStack, path: lib/app.ts }]
  - name: prod
    region: eu-west-1
    account: "210987654321"
    requiredContext: [vpcId]
    synth: "definitely-not-a-program-xyz"
    stacks: [{ name: AppStack, path: lib/prod.ts }]
"#;

/// [`Checker`]'s answers, remembering which environments were asked.
#[derive(Default)]
struct Asked(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl CredentialChecker for Asked {
    async fn check(&self, env: &aphex_config::Environment) -> Result<Identity, CredentialError> {
        self.0.lock().unwrap().push(env.name.clone());
        Checker.check(env).await
    }
}

#[test]
fn validate_for_one_environment_checks_that_one_only() {
    let mut h = harness(DEV_AND_BROKEN_PROD);
    std::fs::create_dir_all(h.checkout().join("lib")).unwrap();
    std::fs::write(h.checkout().join("lib/app.ts"), "").unwrap();

    // `--env dev`: prod's refused credentials, missing context, program and
    // path are not this run's concern, and its account is not even asked.
    let asked = Arc::new(Asked::default());
    h.ctx.ports.credentials = Some(asked.clone());
    rt().block_on(validate::run_for(&h.ctx, Some("dev"))).unwrap();
    assert_eq!(*asked.0.lock().unwrap(), ["dev"]);
    assert!(h.log().contains("only dev runs"), "{}", h.log());

    // The whole pipeline, or `--env prod`: prod's four problems.
    for only in [None, Some("prod")] {
        let err = rt().block_on(validate::run_for(&h.ctx, only)).unwrap_err();
        let StageError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let text = problems.join("\n");
        assert_eq!(problems.len(), 4, "{only:?}: {text}");
        assert!(
            problems.iter().all(|p| p.starts_with("environments[1]")),
            "{only:?}: {text}"
        );
    }
}

#[test]
fn validate_passes_and_says_when_credentials_were_not_checked() {
    let h = harness(MINIMAL);
    std::fs::write(h.checkout().join("app.ts"), "").unwrap();
    let mut ctx = h.ctx.clone();
    ctx.config.environments[0].synth = Some("true".to_owned());
    rt().block_on(validate::run(&ctx)).unwrap();
    assert!(h.log().contains("credentials not checked"), "{}", h.log());
}

#[test]
fn validate_refuses_a_broken_cdk_json_that_every_synth_would_read() {
    let h = harness(MINIMAL);
    std::fs::write(h.checkout().join("app.ts"), "").unwrap();
    std::fs::write(h.checkout().join("cdk.context.json"), "[\"not an object\"]").unwrap();
    let mut ctx = h.ctx.clone();
    ctx.config.environments[0].synth = Some("true".to_owned());
    let err = rt().block_on(validate::run(&ctx)).unwrap_err().to_string();
    assert!(
        err.contains("cdk.context.json: the file is not a JSON object of context keys"),
        "{err}"
    );
}

const WITH_GITHUB: &str = r#"
version: "1.0"
pipeline:
  name: shop
  github: { owner: acme, repo: shop }
build: { commands: ["true"] }
environments:
  - { name: dev, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }] }
"#;

#[test]
fn pipeline_applies_manifests_and_logs_the_topology_diff() {
    let h = harness(WITH_GITHUB);
    let rt = rt();
    rt.block_on(pipeline::run(&h.ctx)).unwrap();
    let wt = h.state().join("cluster/argo/workflowtemplate/shop.json");
    assert!(wt.exists());
    // Only the topology: RBAC and Argo Events objects belong to bootstrap.
    assert!(!h.state().join("cluster/argo-events").exists());
    assert!(
        h.log()
            .contains("first apply of the pipeline: stages validate -> build -> pipeline -> deploy-dev"),
        "{}",
        h.log()
    );
    assert!(
        h.log().contains("WorkflowTemplate argo/shop: created"),
        "{}",
        h.log()
    );

    // Same config: nothing changes.
    let h2 = harness(WITH_GITHUB);
    let mut ctx = h2.ctx.clone();
    ctx.ports = h.ctx.ports.clone();
    rt.block_on(pipeline::run(&ctx)).unwrap();
    assert!(h2.log().contains("no topology change"), "{}", h2.log());
    assert!(
        h2.log().contains("WorkflowTemplate argo/shop: unchanged"),
        "{}",
        h2.log()
    );

    // A new environment with an approval gate.
    let h3 = harness(WITH_GITHUB);
    let mut ctx = h3.ctx.clone();
    ctx.ports = h.ctx.ports.clone();
    let mut prod = ctx.config.environments[0].clone();
    prod.name = "prod".to_owned();
    prod.approval = Some(aphex_config::Approval::Manual);
    ctx.config.environments.push(prod);
    rt.block_on(pipeline::run(&ctx)).unwrap();
    let log = h3.log();
    assert!(log.contains("topology: + environment prod"), "{log}");
    assert!(log.contains("topology: + stage approve-prod"), "{log}");
    assert!(log.contains("WorkflowTemplate argo/shop: changed"), "{log}");
}

/// The restart on a new topology through the directory cluster (the
/// runner's `--state-dir`): one Workflow of the same commit, labelled as a
/// restart and naming the run it restarts; a second call submits nothing;
/// the run is superseded and says by which run.
#[test]
fn a_changed_topology_restarts_the_run_once_through_the_directory_cluster() {
    let rt = rt();
    let h = harness(WITH_GITHUB);
    let cluster = Arc::new(aphex_stages::local::DirCluster::new(h.state().join("cluster")));
    rt.block_on(pipeline::run(&h.ctx)).unwrap();
    let mut ctx = h.ctx.clone();
    ctx.ports.workflows = Some(cluster);
    ctx.run.trigger = Origin::Push;
    let mut prod = ctx.config.environments[0].clone();
    prod.name = "prod".to_owned();
    ctx.config.environments.push(prod);
    let outcome = rt.block_on(pipeline::run(&ctx)).unwrap();
    let end = outcome.ends_run.expect("superseded");
    assert_eq!(end.reason, aphex_stages::record::EndReason::Superseded);
    assert_eq!(aphex_stages::single::run_output(&outcome_of(&end)), "superseded");
    let name = aphex_template::submit::restart_name(&ctx.config, SHA, "run-1");
    assert!(end.message.contains(&format!("as run {name}")), "{}", end.message);
    let workflows = h.state().join("cluster/argo/workflow");
    let files: Vec<_> = std::fs::read_dir(&workflows).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let restart: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workflows.join(format!("{name}.json"))).unwrap()).unwrap();
    assert_eq!(restart["metadata"]["labels"]["aphex.dev/trigger"], "restart");
    assert_eq!(restart["metadata"]["labels"]["aphex.dev/commit"], SHA);
    assert_eq!(
        restart["metadata"]["annotations"]["aphex.dev/restart-of"],
        "run-1"
    );

    // The same commit again on the old template: nothing more is written.
    let before = std::fs::read(workflows.join(format!("{name}.json"))).unwrap();
    let mut old = h.ctx.clone();
    old.ports = ctx.ports.clone();
    rt.block_on(pipeline::run(&old)).unwrap();
    let outcome = rt.block_on(pipeline::run(&ctx)).unwrap();
    assert!(
        outcome
            .ends_run
            .unwrap()
            .message
            .contains("was already restarted"),
        "{}",
        h.log()
    );
    assert_eq!(std::fs::read_dir(&workflows).unwrap().count(), 1);
    assert_eq!(
        std::fs::read(workflows.join(format!("{name}.json"))).unwrap(),
        before
    );
}

fn outcome_of(end: &aphex_stages::record::RunEnd) -> aphex_stages::stages::StageOutcome {
    aphex_stages::stages::StageOutcome {
        ends_run: Some(end.clone()),
        ..Default::default()
    }
}

/// The decision alone: only a deploy run that is not itself a restart, and
/// only on a change.
#[test]
fn only_a_changed_deploy_run_that_is_no_restart_restarts() {
    use aphex_stages::context::RunKind;
    use pipeline::{RestartAction, restart_action};
    let diff = ["+ environment prod".to_owned()];
    for trigger in [Origin::Push, Origin::Manual] {
        assert_eq!(
            restart_action(RunKind::Deploy, trigger, &diff),
            RestartAction::Restart
        );
        assert!(matches!(
            restart_action(RunKind::Deploy, trigger, &[]),
            RestartAction::Stay(_)
        ));
    }
    assert!(matches!(
        restart_action(RunKind::Deploy, Origin::Restart, &diff),
        RestartAction::Stay(why) if why.contains("a restart never restarts")
    ));
    assert!(matches!(
        restart_action(RunKind::PullRequest(7), Origin::Push, &diff),
        RestartAction::Stay(why) if why.contains("pull request #7")
    ));
}

/// A stale `deploy-<env>` or `test-<env>` task of an environment the
/// commit removed succeeds doing nothing, says so, and still writes the
/// outputs document.
#[test]
fn a_stale_task_of_a_removed_environment_is_a_no_op_that_says_so() {
    let h = harness(WITH_GITHUB);
    let rt = rt();
    let outputs = h.dir.path().join("out/gone/outputs.json");
    let outcome = rt
        .block_on(aphex_stages::stages::deploy::run(&h.ctx, "gone", &outputs))
        .unwrap();
    let warning = outcome.warning.expect("the no-op says why");
    assert!(
        warning.starts_with(
            "nothing to do: environment `gone` is not in aphex-config.yaml at this commit (it has: dev)"
        ),
        "{warning}"
    );
    assert!(outcome.stacks.is_empty());
    assert_eq!(std::fs::read_to_string(&outputs).unwrap(), "{}\n");
    assert!(h.deployer.calls().is_empty());
    let outcome = rt
        .block_on(aphex_stages::stages::test::run(&h.ctx, "gone", &outputs))
        .unwrap();
    assert!(outcome.warning.unwrap().contains("the commit removed it"));
    assert!(h.log().contains("[deploy-gone] nothing to do"), "{}", h.log());
}

// The pipeline stage refusing, against the directory cluster, a commit that
// changes what only `aphex bootstrap` may change; the live template stays.
#[test]
fn pipeline_refuses_a_changed_service_account_or_pod_setting() {
    let rt = rt();
    let h = harness(WITH_GITHUB);
    rt.block_on(pipeline::run(&h.ctx)).unwrap();
    let live_file = h.state().join("cluster/argo/workflowtemplate/shop.json");
    let live = std::fs::read(&live_file).unwrap();

    // (what changes, the change, what the refusal names)
    type Change = (&'static str, fn(&mut aphex_config::Config), &'static str);
    let changes: [Change; 2] = [
        (
            "service account",
            |c| c.pipeline.as_mut().unwrap().service_account = Some("aphex-other".to_owned()),
            "`spec.serviceAccountName` is `aphex-shop` on the cluster but `aphex-other` in this commit's config",
        ),
        (
            "a Secret the pods read",
            |c| {
                c.pipeline.as_mut().unwrap().notifications = Some(aphex_config::Notifications {
                    slack_webhook_secret: Some("other-webhook".to_owned()),
                    only_on_failure: None,
                    github_status: None,
                })
            },
            "container.env (Secrets read)` is (not set) on the cluster but `[\"other-webhook\"]`",
        ),
    ];
    for (what, change, words) in changes {
        let h2 = harness(WITH_GITHUB);
        let mut ctx = h2.ctx.clone();
        ctx.ports = h.ctx.ports.clone();
        change(&mut ctx.config);
        let err = rt.block_on(pipeline::run(&ctx)).unwrap_err().to_string();
        assert!(err.contains(words), "{what}: {err}");
        assert!(err.contains("only `aphex bootstrap` may change"), "{what}: {err}");
        assert_eq!(
            std::fs::read(&live_file).unwrap(),
            live,
            "{what}: the live template was changed"
        );
    }
}

struct BrokenApplier;

#[async_trait::async_trait]
impl aphex_stages::ports::ManifestApplier for BrokenApplier {
    fn describe(&self) -> String {
        "a broken cluster".to_owned()
    }
    async fn current(&self, _: &str, _: &str, _: &str) -> Result<Option<serde_json::Value>, ClusterError> {
        Ok(None)
    }
    async fn apply(&self, _: &[serde_json::Value]) -> Result<(), ClusterError> {
        Err(ClusterError::Refused {
            context: "finding WorkflowTemplate (argoproj.io/v1alpha1) on the cluster".to_owned(),
            why: "CRD workflowtemplates.argoproj.io not found".to_owned(),
        })
    }
}

#[test]
fn pipeline_failure_halts_or_continues_as_configured() {
    let mut h = harness(WITH_GITHUB);
    h.ctx.ports.applier = Arc::new(BrokenApplier);
    let err = rt().block_on(pipeline::run(&h.ctx)).unwrap_err().to_string();
    assert!(
        err.contains(
            "applying to a broken cluster: finding WorkflowTemplate (argoproj.io/v1alpha1) on the cluster: \
             CRD workflowtemplates.argoproj.io not found"
        ),
        "{err}"
    );

    h.ctx.config.pipeline.as_mut().unwrap().self_update = Some(aphex_config::SelfUpdate {
        on_failure: Some(aphex_config::OnSelfUpdateFailure::Continue),
    });
    let outcome = rt().block_on(pipeline::run(&h.ctx)).unwrap();
    assert!(
        outcome
            .warning
            .unwrap()
            .contains("continuing with the topology already applied")
    );
}

const WITH_CLUSTER: &str = r#"
version: "1.0"
pipeline:
  name: shop
  cluster: { name: demo }
build: { commands: ["true"] }
environments:
  - { name: dev, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }] }
"#;

fn workflow_template(h: &Harness) -> std::path::PathBuf {
    h.state().join("cluster/argo/workflowtemplate/shop.json")
}

#[test]
fn pipeline_deploys_its_own_stack_first_then_applies_the_manifests() {
    let mut h = harness(WITH_CLUSTER);
    let updater = RecordingStackUpdater::new(StackAnswer::Deployed { changed: true });
    h.ctx.ports.pipeline_stack = Some(updater.clone());
    let outcome = rt().block_on(pipeline::run(&h.ctx)).unwrap();
    assert_eq!(updater.calls(), ["shop"]);
    // The stack's result is in the stage's record, as an environment's are.
    let [stack] = &outcome.stacks[..] else {
        panic!("{:?}", outcome.stacks)
    };
    assert_eq!(
        (stack.stack_name.as_str(), stack.status, stack.changed),
        ("aphex-shop", Status::Succeeded, Some(true))
    );
    let log = h.log();
    let deployed = log
        .find("pipeline stack aphex-shop: deployed")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        log.contains("aphex-shop WorkflowExecutionRole (AWS::IAM::Role) CREATE_IN_PROGRESS"),
        "stack events are progress: {log}"
    );
    assert!(
        log.contains("pipeline stack output ArtifactBucketName = aphex-artifacts-bucket"),
        "{log}"
    );
    assert!(
        log.contains(
            "pipeline stack output WorkflowExecutionRoleArn = arn:aws:iam::123456789012:role/aphex-exec"
        ),
        "{log}"
    );
    let applied = log
        .find("WorkflowTemplate argo/shop: created")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(deployed < applied, "the stack comes before the manifests: {log}");
    assert!(workflow_template(&h).exists());

    // An unchanged stack says so.
    let mut h = harness(WITH_CLUSTER);
    h.ctx.ports.pipeline_stack = Some(RecordingStackUpdater::new(StackAnswer::Deployed {
        changed: false,
    }));
    rt().block_on(pipeline::run(&h.ctx)).unwrap();
    assert!(
        h.log().contains("pipeline stack aphex-shop: unchanged"),
        "{}",
        h.log()
    );
}

#[test]
fn pipeline_without_a_cluster_skips_its_stack_saying_why() {
    let mut h = harness(WITH_GITHUB);
    let updater = RecordingStackUpdater::new(StackAnswer::Deployed { changed: true });
    h.ctx.ports.pipeline_stack = Some(updater.clone());
    rt().block_on(pipeline::run(&h.ctx)).unwrap();
    assert!(updater.calls().is_empty(), "nothing to trust, nothing deployed");
    let log = h.log();
    let reason = "pipeline stack aphex-shop: not deployed: the config has no `pipeline.cluster`";
    assert_eq!(log.matches(reason).count(), 1, "one line says why: {log}");
    assert!(workflow_template(&h).exists(), "the manifests still apply");
    assert_eq!(
        pipeline::stack_action(&h.ctx.config),
        pipeline::StackAction::Skip(
            log.lines()
                .find(|l| l.contains(reason))
                .map(|l| l[l.find("pipeline stack").unwrap()..].to_owned())
                .unwrap()
        )
    );
}

#[test]
fn pipeline_without_a_stack_updater_says_the_stack_is_not_managed() {
    let h = harness(WITH_CLUSTER);
    assert!(h.ctx.ports.pipeline_stack.is_none());
    rt().block_on(pipeline::run(&h.ctx)).unwrap();
    let log = h.log();
    assert!(
        log.contains("pipeline stack aphex-shop: not managed by this run"),
        "{log}"
    );
    assert!(!log.contains(": deployed"), "never pretends it deployed: {log}");
    assert!(workflow_template(&h).exists());
}

#[test]
fn pipeline_stack_failure_halts_or_continues_as_configured() {
    let mut h = harness(WITH_CLUSTER);
    let updater = RecordingStackUpdater::new(StackAnswer::Fails("CREATE ended in ROLLBACK_COMPLETE: Bad"));
    h.ctx.ports.pipeline_stack = Some(updater.clone());
    let err = rt().block_on(pipeline::run(&h.ctx)).unwrap_err();
    let [stack] = err.stacks() else {
        panic!("the failed stack is kept for the record: {:?}", err.stacks())
    };
    assert_eq!(
        (stack.name.as_str(), stack.status),
        ("aphex-shop", Status::Failed)
    );
    assert!(
        stack
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("ROLLBACK_COMPLETE: Bad"),
        "{stack:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("updating the pipeline stack aphex-shop: stack aphex-shop failed: CREATE ended in ROLLBACK_COMPLETE: Bad"),
        "{err}"
    );
    assert!(
        !workflow_template(&h).exists(),
        "nothing applied after the failure"
    );

    h.ctx.config.pipeline.as_mut().unwrap().self_update = Some(aphex_config::SelfUpdate {
        on_failure: Some(aphex_config::OnSelfUpdateFailure::Continue),
    });
    let outcome = rt().block_on(pipeline::run(&h.ctx)).unwrap();
    let warning = outcome.warning.expect("a warning in the record");
    assert!(
        warning.contains("continuing with the topology already applied"),
        "{warning}"
    );
    assert!(warning.contains("ROLLBACK_COMPLETE: Bad"), "{warning}");
    assert_eq!(outcome.stacks.len(), 1, "the failed stack is in the record");
    assert_eq!(outcome.stacks[0].status, Status::Failed);
    assert!(!workflow_template(&h).exists(), "the old topology stays");
    assert_eq!(updater.calls().len(), 2);
}

#[test]
fn pipeline_stack_update_stops_when_the_run_is_cancelled() {
    let mut h = harness(WITH_CLUSTER);
    // Even with `continue`, an interruption is not a failure to go past.
    h.ctx.config.pipeline.as_mut().unwrap().self_update = Some(aphex_config::SelfUpdate {
        on_failure: Some(aphex_config::OnSelfUpdateFailure::Continue),
    });
    let updater = RecordingStackUpdater::new(StackAnswer::Hangs);
    h.ctx.ports.pipeline_stack = Some(updater.clone());
    let cancel = h.ctx.exec.cancel.clone();
    let (result, ()) = rt().block_on(async {
        tokio::join!(pipeline::run(&h.ctx), async {
            updater.started.notified().await;
            cancel.cancel();
        })
    });
    let err = result.unwrap_err();
    assert!(err.is_interrupted(), "{err}");
    assert!(!workflow_template(&h).exists());

    // Cancelled before the stage: the stack is not touched.
    let mut h = harness(WITH_CLUSTER);
    let updater = RecordingStackUpdater::new(StackAnswer::Deployed { changed: true });
    h.ctx.ports.pipeline_stack = Some(updater.clone());
    h.ctx.exec.cancel.cancel();
    assert!(rt().block_on(pipeline::run(&h.ctx)).unwrap_err().is_interrupted());
    assert!(updater.calls().is_empty());
}

#[derive(Default)]
struct Recorded(Mutex<Vec<RunRecord>>);

#[async_trait::async_trait]
impl Notifier for Recorded {
    async fn notify(&self, run: &RunRecord) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(run.clone());
        Ok(())
    }
}

fn finished_run(status: Status, error: Option<&str>) -> RunRecord {
    RunRecord {
        id: "r1".to_owned(),
        pipeline: "aphex".to_owned(),
        commit: SHA.to_owned(),
        branch: None,
        started_at: "2026-01-01T00:00:00Z".to_owned(),
        ended_at: None,
        status: Status::Running,
        url: None,
        stages: vec![
            StageRecord {
                name: "build".to_owned(),
                started_at: "2026-01-01T00:00:00Z".to_owned(),
                ended_at: Some("2026-01-01T00:00:30Z".to_owned()),
                status: Status::Succeeded,
                error: None,
                stacks: vec![],
                artifact_bytes: Some(1234),
                approved_by: None,
                ends_run: None,
                risks: Vec::new(),
            },
            StageRecord {
                name: "deploy-dev".to_owned(),
                started_at: "2026-01-01T00:00:30Z".to_owned(),
                ended_at: Some("2026-01-01T00:01:30Z".to_owned()),
                status,
                error: error.map(str::to_owned),
                stacks: vec![StackResult {
                    name: "AppStack".to_owned(),
                    stack_name: "AppStack".to_owned(),
                    status,
                    changed: None,
                    millis: 2500,
                    error: None,
                    outputs: Default::default(),
                }],
                artifact_bytes: None,
                approved_by: None,
                ends_run: None,
                risks: Vec::new(),
            },
        ],
    }
}

fn ports_with(h: &Harness, notifier: Arc<Recorded>) -> Ports {
    Ports {
        notifier,
        ..h.ctx.ports.clone()
    }
}

#[test]
fn finalize_records_measures_and_notifies() {
    let h = harness(MINIMAL);
    let notes = Arc::new(Recorded::default());
    let ports = ports_with(&h, notes.clone());
    let reporter = CollectingReporter::default();
    let redactor = Redactor::new().with_values(["hunter2-secret"]);
    let run = finished_run(Status::Failed, Some("password hunter2-secret refused"));
    let rt = rt();
    let (done, _) = rt
        .block_on(finalize::run(&ports, &reporter, &redactor, run, false))
        .unwrap();
    assert_eq!(done.status, Status::Failed);
    assert!(done.ended_at.is_some());
    let stored = rt.block_on(ports.runs.load("aphex", "r1")).unwrap().unwrap();
    assert_eq!(stored, done);
    assert_eq!(stored.stages[1].error.as_deref(), Some("password *** refused"));
    assert_eq!(notes.0.lock().unwrap().len(), 1);

    let metrics = std::fs::read_to_string(h.state().join("metrics.jsonl")).unwrap();
    let names: Vec<String> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "StageDuration",
            "ArtifactBytes",
            "StageDuration",
            "DeploymentFailed",
            "StackDeployDuration",
            "WorkflowDuration",
            "Run"
        ]
    );
    assert!(metrics.contains(r#"["stack","AppStack"]"#), "{metrics}");
    assert!(metrics.contains(r#""value":60.0"#), "{metrics}");
}

#[test]
fn finalize_skips_the_notification_of_a_success_when_only_failures_notify() {
    let h = harness(MINIMAL);
    let notes = Arc::new(Recorded::default());
    let ports = ports_with(&h, notes.clone());
    let run = finished_run(Status::Succeeded, None);
    let (done, _) = rt()
        .block_on(finalize::run(
            &ports,
            &CollectingReporter::default(),
            &Redactor::new(),
            run,
            true,
        ))
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    assert!(notes.0.lock().unwrap().is_empty());
}

#[test]
fn checkout_gets_exactly_the_commit_and_refuses_bad_or_unknown_shas() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("f"), "one").unwrap();
    git(&repo, &["add", "f"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("f"), "two").unwrap();
    git(&repo, &["commit", "-q", "-am", "two"]);

    let rt = rt();
    let dest = dir.path().join("co");
    rt.block_on(checkout(repo.to_str().unwrap(), &first, &dest))
        .unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "one");
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), first);

    let err = rt
        .block_on(checkout(
            repo.to_str().unwrap(),
            &first[..12],
            &dir.path().join("co2"),
        ))
        .unwrap_err();
    assert!(matches!(err, CheckoutError::BadSha { .. }), "{err}");

    let unknown = "1111111111111111111111111111111111111111";
    let err = rt
        .block_on(checkout(repo.to_str().unwrap(), unknown, &dir.path().join("co3")))
        .unwrap_err();
    assert!(matches!(err, CheckoutError::UnknownCommit { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("commit {unknown} is not in ")),
        "{err}"
    );

    let err = rt
        .block_on(checkout(repo.to_str().unwrap(), &first, &dest))
        .unwrap_err();
    assert!(matches!(err, CheckoutError::NotFresh(_)), "{err}");
}

#[test]
fn checkout_never_hands_git_an_option_for_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let repo = format!("--upload-pack=touch {}", marker.display());
    let err = rt()
        .block_on(checkout(&repo, &"a".repeat(40), &dir.path().join("co")))
        .unwrap_err();
    assert!(matches!(err, CheckoutError::LooksLikeOption { .. }), "{err}");
    assert!(
        !marker.exists(),
        "git ran the upload-pack given as the repository"
    );
    let err = rt()
        .block_on(checkout(
            dir.path().to_str().unwrap(),
            &repo,
            &dir.path().join("co2"),
        ))
        .unwrap_err();
    assert!(matches!(err, CheckoutError::BadSha { .. }), "{err}");
}

#[test]
fn a_commit_is_on_a_branch_only_when_the_branch_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let commit = |name: &str| {
        std::fs::write(repo.join("f"), name).unwrap();
        git(&repo, &["add", "f"]);
        git(&repo, &["commit", "-q", "-m", name]);
        git(&repo, &["rev-parse", "HEAD"])
    };
    let old = commit("old");
    let _head = commit("head");
    git(&repo, &["checkout", "-q", "-b", "fork", &old]);
    let fork = commit("fork");
    git(&repo, &["checkout", "-q", "main"]);
    let source = repo.to_str().unwrap();
    let rt = rt();
    let on_main = |sha: &str, dest: &str| {
        let dest = dir.path().join(dest);
        rt.block_on(checkout(source, sha, &dest)).unwrap();
        rt.block_on(check_on_branch(&dest, source, "main", sha))
    };
    // An older commit of the branch is on it (through the shallow checkout).
    on_main(&old, "co-old").unwrap();
    let err = on_main(&fork, "co-fork").unwrap_err();
    assert!(matches!(err, CheckoutError::NotOnBranch { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("commit {fork} is not on branch main of ")),
        "{err}"
    );
    let dest = dir.path().join("co-old");
    for branch in ["-b", "main:refs/heads/x", "ma..in"] {
        let err = rt
            .block_on(check_on_branch(&dest, source, branch, &old))
            .unwrap_err();
        assert!(
            matches!(
                err,
                CheckoutError::LooksLikeOption { .. } | CheckoutError::BadBranch(_)
            ),
            "{branch}: {err}"
        );
    }
    let err = rt
        .block_on(check_on_branch(&dest, source, "gone", &old))
        .unwrap_err();
    assert!(matches!(err, CheckoutError::BranchFetch { .. }), "{err}");
}

#[test]
fn the_pipeline_stack_is_measured_by_its_stage_and_an_environments_by_environment() {
    let mut run = finished_run(Status::Succeeded, None);
    run.stages.insert(
        1,
        StageRecord {
            name: "pipeline".to_owned(),
            started_at: "2026-01-01T00:00:30Z".to_owned(),
            ended_at: Some("2026-01-01T00:00:40Z".to_owned()),
            status: Status::Succeeded,
            error: None,
            stacks: vec![StackResult {
                name: "aphex-aphex".to_owned(),
                stack_name: "aphex-aphex".to_owned(),
                status: Status::Succeeded,
                changed: Some(false),
                millis: 900,
                error: None,
                outputs: Default::default(),
            }],
            artifact_bytes: None,
            approved_by: None,
            ends_run: None,
            risks: Vec::new(),
        },
    );
    let deployed: Vec<Vec<(String, String)>> = finalize::metrics_of(&run)
        .into_iter()
        .filter(|m| m.name == "DeploymentSucceeded")
        .map(|m| m.dimensions)
        .collect();
    let dims = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        deployed,
        [
            dims(&[
                ("pipeline", "aphex"),
                ("stage", "pipeline"),
                ("stack", "aphex-aphex")
            ]),
            dims(&[
                ("pipeline", "aphex"),
                ("environment", "dev"),
                ("stack", "AppStack")
            ]),
        ]
    );
}
