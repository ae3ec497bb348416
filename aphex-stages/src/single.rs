//! One stage in one pod: what `aphex-runner <stage>` does around a stage.
//! Check out the commit into a fresh directory, check that a deploy run's
//! commit is on the branch the pipeline deploys, load its config, run the
//! stage, and add the stage to the run record so `finalize` (the
//! workflow's exit handler, in another pod) can close it. Stack outputs go
//! from deploy to test through the run record too: a stage pod shares no
//! files with the next one, and an Argo parameter is no place for them.
//!
//! Each stage writes its own stage object and reads nothing first, so
//! concurrent stages of one run (the `synth-<env>` tasks of `validate-pr`)
//! never overwrite each other; `finalize` reads them all back and writes the
//! consolidated record.

use std::path::{Path, PathBuf};

use aphex_config::Config;

use crate::context::{Ports, RunInfo, RunKind, StageContext, load_config};
use crate::record::{RunRecord, StageRecord, Status};
use crate::redact::Redactor;
use crate::report::Reporter;
use crate::stages::deploy::Outputs;
use crate::stages::{self, StageError, StageOutcome};

/// File name of the deploy stage's outputs under the outputs directory
/// (what `hooks.post` reads through `APHEX_OUTPUTS_JSON`).
pub(crate) const STACK_OUTPUTS_FILE: &str = "stack-outputs.json";

/// Where the test stage takes the deploy's outputs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputsSource<'a> {
    /// A file holding the outputs document (`APHEX_STACK_OUTPUTS_FILE`).
    File(&'a Path),
    /// The document itself (`APHEX_STACK_OUTPUTS`; small documents only:
    /// an environment string over 128 KiB stops the runner's start).
    Inline(&'a str),
    /// What this run's `deploy-<env>` stage recorded in the run record.
    RunRecord,
}

/// The stages a runner can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerStage {
    /// Checks before anything runs.
    Validate,
    /// Build and package.
    Build,
    /// Self-update.
    Pipeline,
    /// Deploy one environment.
    Deploy,
    /// Test one environment.
    Test,
    /// Synthesize and match one environment, no deploy (`validate-pr`).
    Synth,
    /// Close the run record, metrics, notification.
    Finalize,
}

impl RunnerStage {
    /// Every stage.
    pub const ALL: [RunnerStage; 7] = [
        RunnerStage::Validate,
        RunnerStage::Build,
        RunnerStage::Pipeline,
        RunnerStage::Deploy,
        RunnerStage::Test,
        RunnerStage::Synth,
        RunnerStage::Finalize,
    ];

    /// The stage's name: the runner's argument, and its name in the run
    /// record without an environment.
    pub fn name(self) -> &'static str {
        match self {
            RunnerStage::Validate => "validate",
            RunnerStage::Build => "build",
            RunnerStage::Pipeline => "pipeline",
            RunnerStage::Deploy => "deploy",
            RunnerStage::Test => "test",
            RunnerStage::Synth => "synth",
            RunnerStage::Finalize => "finalize",
        }
    }

    /// Refuses a stage that deploys or touches the pipeline in a pull
    /// request's run: such a run only validates, builds and synthesizes.
    pub fn check_allowed_in(self, kind: RunKind) -> Result<(), StageError> {
        match (kind, self) {
            (RunKind::PullRequest(n), RunnerStage::Pipeline | RunnerStage::Deploy | RunnerStage::Test) => {
                Err(StageError::Failed(format!(
                    "the {} stage does not run for pull request #{n}: a pull request's run (validate-pr) deploys nothing",
                    self.record_name(None)
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether the commit must be on the deployed branch before this stage
    /// runs: in a deploy run, every stage but finalize (which runs none of
    /// the commit's code), so that a commit nobody merged (a fork's pull
    /// request, served by SHA) never builds or deploys with the pipeline's
    /// power.
    pub fn checks_branch(self, kind: RunKind) -> bool {
        kind == RunKind::Deploy && self != RunnerStage::Finalize
    }

    /// Whether the stage needs `--env`.
    pub fn needs_env(self) -> bool {
        matches!(self, RunnerStage::Deploy | RunnerStage::Test | RunnerStage::Synth)
    }

    /// The stage's name in the run record (`deploy-dev`, `build`, ...).
    pub fn record_name(self, env: Option<&str>) -> String {
        let base = self.name();
        match env {
            Some(e) if self.needs_env() => format!("{base}-{e}"),
            _ => base.to_owned(),
        }
    }
}

/// A fresh checkout of the commit under `work`, returned as its app folder
/// (`context::app_root`), and its config (or every problem with
/// it). With `on_branch`, the commit must be reachable from that branch's
/// head in `repo` ([`crate::workspace::check_on_branch`]).
pub async fn prepare(
    repo: &str,
    commit: &str,
    on_branch: Option<&str>,
    work: &Path,
    config_file: &str,
) -> Result<(PathBuf, Result<Config, Vec<String>>), StageError> {
    let checkout = work.join("checkout");
    crate::workspace::checkout(repo, commit, &checkout).await?;
    if let Some(branch) = on_branch {
        crate::workspace::check_on_branch(&checkout, repo, branch, commit).await?;
    }
    let config = load_config(&checkout, config_file);
    Ok((crate::context::app_root(&checkout, config_file), config))
}

/// Runs `stage` (not finalize) in `ctx`. Deploy writes its outputs to
/// `outputs_dir/stack-outputs.json` (for `hooks.post`) and records them
/// with its stacks, and meets a risk gate as `risk` says; test takes them
/// from `outputs`.
pub async fn run_stage(
    ctx: &StageContext,
    stage: RunnerStage,
    env: Option<&str>,
    outputs_dir: &Path,
    outputs: OutputsSource<'_>,
    risk: &RiskStep,
) -> Result<StageOutcome, StageError> {
    let env_name = || {
        env.ok_or_else(|| {
            StageError::Failed(format!(
                "the {} stage needs --env NAME (one of: {})",
                stage.record_name(None),
                ctx.config
                    .environments
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let outputs_file = outputs_dir.join(STACK_OUTPUTS_FILE);
    match stage {
        RunnerStage::Validate => stages::validate::run(ctx).await,
        RunnerStage::Build => stages::build::run(ctx).await,
        RunnerStage::Pipeline => stages::pipeline::run(ctx).await,
        RunnerStage::Deploy => deploy(ctx, env_name()?, outputs_dir, &outputs_file, risk).await,
        RunnerStage::Synth => stages::deploy::synth_check(ctx, env_name()?).await,
        RunnerStage::Test => {
            let env = env_name()?;
            let written = || {
                ctx.work
                    .join("outputs")
                    .join(env)
                    .join(stages::deploy::OUTPUTS_FILE)
            };
            let file = match outputs {
                // A stale task of an environment the commit removed reads
                // no outputs: the test stage does nothing for it.
                _ if ctx.config.environment(env).is_none() => written(),
                OutputsSource::File(path) => path.to_owned(),
                OutputsSource::Inline(json) => {
                    let outputs = stages::deploy::parse_outputs(json)
                        .map_err(|e| StageError::Failed(format!("APHEX_STACK_OUTPUTS: {e}")))?;
                    let file = written();
                    stages::deploy::write_outputs(&file, &outputs)?;
                    file
                }
                OutputsSource::RunRecord => {
                    let outputs = recorded_outputs(ctx, env).await?;
                    let file = written();
                    stages::deploy::write_outputs(&file, &outputs)?;
                    file
                }
            };
            stages::test::run(ctx, env, &file).await
        }
        RunnerStage::Finalize => Err(StageError::Failed(
            "finalize is not a stage of the plan; use finalize_run".to_owned(),
        )),
    }
}

/// What a deploy pod does at a risk gate that wants a person: the task's
/// place around the environment's `risk-<env>` suspend
/// ([`aphex_template::submit::risk_gate_task`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RiskStep {
    /// The topology has no risk gate for the environment (a workflow
    /// rendered before its `approve` gate, or a stage run by hand): the
    /// gate fails the environment, saying how to get past it.
    #[default]
    Absent,
    /// `deploy-<env>`: stop before the risky stack, record the gate and
    /// name it in the `risk` output; the suspend follows.
    Pause,
    /// `resume-<env>`: the gate was resumed; deploy with the environment's
    /// risks approved, unless the gate ran out of time.
    Resume {
        /// Who approved (the gate's `approved-by` output), when named.
        by: Option<String>,
        /// When the gate's suspend started and finished (RFC 3339, Argo's
        /// own times), when Argo gave them.
        waited: Option<(String, String)>,
    },
}

/// How a stage that returned without an error ended, for the pod's last
/// line: a deploy recorded `running` paused at its risk gate.
pub fn ended_as(status: Status) -> &'static str {
    match status {
        Status::Running => "paused at its risk gate",
        _ => "succeeded",
    }
}

impl RiskStep {
    /// The step `aphex-runner --risk-gate=` names: `pause`, `resume
    /// STARTED FINISHED` (the suspend's times, which the `gated-deploy`
    /// DAG passes), or empty (absent); with who approved for a resume.
    pub fn from_flag(flag: &str, by: Option<String>) -> RiskStep {
        let words: Vec<&str> = flag.split_whitespace().collect();
        match words.as_slice() {
            ["pause"] => RiskStep::Pause,
            ["resume", rest @ ..] => RiskStep::Resume {
                by,
                waited: match rest {
                    [started, finished] => Some(((*started).to_owned(), (*finished).to_owned())),
                    _ => None,
                },
            },
            _ => RiskStep::Absent,
        }
    }
}

/// Whether a risk gate that waited from `started` to `finished` (RFC 3339)
/// waited out its timeout: Argo resumes a suspend whose `duration` ran out
/// by itself, at the timeout, so a wait that long is the timeout's.
/// `None` when either time is not one.
pub fn gate_timed_out(started: &str, finished: &str, timeout_seconds: u64) -> Option<bool> {
    crate::time::seconds_between_checked(started, finished).map(|waited| waited >= timeout_seconds as f64)
}

/// The deploy stage of `env` in a pod, around its risk gate.
async fn deploy(
    ctx: &StageContext,
    env: &str,
    outputs_dir: &Path,
    outputs_file: &Path,
    risk: &RiskStep,
) -> Result<StageOutcome, StageError> {
    let gate = aphex_template::submit::risk_gate_task(env);
    // What the gate listed when it paused: all that its approval covers.
    let mut approved = Vec::new();
    // A removed environment's stale task skips this: the deploy says so.
    if let (RiskStep::Resume { by, waited }, Some(e)) = (risk, ctx.config.environment(env)) {
        let paused = paused_deploy(ctx, env).await?;
        let timeout = e.risk_timeout_seconds();
        // The suspend's own times; should Argo not give them, from when the
        // deploy paused to now, which fails closed (a resume pod that
        // starts late counts as late).
        let late = waited
            .as_ref()
            .and_then(|(started, finished)| gate_timed_out(started, finished, timeout))
            .or_else(|| {
                let paused_at = paused.ended_at.as_deref()?;
                gate_timed_out(paused_at, &crate::time::now_rfc3339(), timeout)
            });
        if late != Some(false) {
            return Err(StageError::Deploy {
                message: format!(
                    "the risk gate {gate} of {env} was not approved in time: {}. The stack it stopped and the stacks \
                     after it were not deployed; its change set was deleted when the gate stopped it. Run the \
                     pipeline again and approve the gate within riskGates.timeout, or push a commit without the \
                     risky changes",
                    match late {
                        Some(_) => format!("nobody approved it within its timeout ({})", e.risk_timeout()),
                        None => "the time it paused at is not recorded, so whether it waited out its timeout cannot \
                                 be told (failing closed)"
                            .to_owned(),
                    }
                ),
                stacks: paused.stacks,
            });
        }
        let who = by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
        ctx.info(
            &format!("deploy-{env}"),
            format!(
                "risk gate {gate} approved{who}: deploying {env} with the {} risky change{} it listed approved, \
                 and the risks of the stacks after it, for this run",
                paused.risks.len(),
                if paused.risks.len() == 1 { "" } else { "s" }
            ),
        );
        approved = paused.risks;
    }
    match stages::deploy::run_with(ctx, env, outputs_file, &approved).await {
        Err(e @ StageError::RiskGate { .. }) if matches!(risk, RiskStep::Resume { .. }) => {
            Err(StageError::Deploy {
                message: format!(
                    "{e}\nthe record of deploy-{env} lists no risky change that its gate {gate} showed, so this approval \
                 covers none: run the pipeline again and approve the gate it stops at"
                ),
                stacks: e.stacks().to_vec(),
            })
        }
        Err(e @ StageError::RiskGate { .. }) if *risk == RiskStep::Pause => {
            let (stopped, risks) = match &e {
                StageError::RiskGate { stack, changes, .. } => (stack.clone(), changes.clone()),
                _ => Default::default(),
            };
            // The stopped stack waits with its stage: nothing of it failed
            // (finalize fails both should the run end while they wait).
            let stacks = e
                .stacks()
                .iter()
                .cloned()
                .map(|mut s| {
                    if s.name == stopped {
                        s.status = Status::Running;
                        s.error = Some(format!(
                            "waiting at {gate}: its change set was deleted, nothing of it executed; the stage's \
                             message lists its risky changes"
                        ));
                    }
                    s
                })
                .collect();
            let file = outputs_dir.join(aphex_template::workflow::RISK_OUTPUT);
            std::fs::create_dir_all(outputs_dir)
                .and_then(|()| std::fs::write(&file, &gate))
                .map_err(StageError::io(format!(
                    "writing the risk output {}",
                    file.display()
                )))?;
            let listing = format!(
                "{e}\nwaiting at {gate} (for at most {}): approve with `aphex approve {} --env {env}` or `argo resume {} \
                 --node-field-selector displayName={gate}`, or reject with `aphex approve {} --env {env} --reject`",
                ctx.config
                    .environment(env)
                    .map(|e| e.risk_timeout())
                    .unwrap_or_default(),
                ctx.run.id,
                ctx.run.id,
                ctx.run.id
            );
            ctx.warn(&format!("deploy-{env}"), &listing);
            Ok(StageOutcome {
                stacks,
                gated: Some(ctx.exec.redactor.redact(&listing)),
                risks,
                ..StageOutcome::default()
            })
        }
        Err(e @ StageError::RiskGate { .. }) => Err(StageError::Deploy {
            message: format!(
                "{e}\nthis workflow has no risk gate for {env} to wait at (it was rendered before the environment's \
                 `approve` gate): deploy these changes with `aphex run --local --env {env} --allow-risk`, or push \
                 again once the pipeline has applied its new topology"
            ),
            stacks: e.stacks().to_vec(),
        }),
        other => other,
    }
}

/// Stage `name` of this run's record, if recorded; `what` says, in the
/// error, what the record was read for.
async fn recorded_stage(
    ctx: &StageContext,
    name: &str,
    what: &str,
) -> Result<Option<StageRecord>, StageError> {
    let record = ctx
        .ports
        .runs
        .load(&ctx.run.pipeline, &ctx.run.id)
        .await
        .map_err(StageError::record(format!(
            "loading run {} for {what}",
            ctx.run.id
        )))?;
    Ok(record.and_then(|r| r.stages.into_iter().find(|s| s.name == name)))
}

/// The record `deploy-<env>` left when it paused at its risk gate:
/// still running, ended (paused) at its `ended_at`; or succeeded, when
/// Argo retries a resume pod that had already deployed and recorded it
/// (the gate was approved: the retry deploys again, nothing changed).
async fn paused_deploy(ctx: &StageContext, env: &str) -> Result<StageRecord, StageError> {
    let deploy = format!("deploy-{env}");
    recorded_stage(ctx, &deploy, &format!("where {deploy} paused at its risk gate"))
        .await?
        .filter(|s| matches!(s.status, Status::Running | Status::Succeeded))
        .ok_or_else(|| {
            StageError::Failed(format!(
                "run {} has no record of {deploy} paused at a risk gate, so there is nothing to resume: the resume \
                 task runs only after the deploy stopped at its gate",
                ctx.run.id
            ))
        })
}

/// The value of the stage's `run` output (the file `run` in the outputs
/// directory), which the tasks after it test in their `when`:
/// `continue`, or why the run ends here (`duplicate`, `superseded`).
pub fn run_output(outcome: &StageOutcome) -> &'static str {
    match outcome.ends_run.as_ref().map(|e| e.reason) {
        None => aphex_template::workflow::RUN_CONTINUES,
        Some(crate::record::EndReason::Duplicate) => "duplicate",
        Some(crate::record::EndReason::Superseded) => "superseded",
    }
}

/// The outputs this run's `deploy-<env>` stage recorded, keyed by
/// configured stack name.
async fn recorded_outputs(ctx: &StageContext, env: &str) -> Result<Outputs, StageError> {
    let deploy = format!("deploy-{env}");
    let run = &ctx.run;
    let Some(stage) = recorded_stage(ctx, &deploy, &format!("the stack outputs of {deploy}")).await? else {
        return Err(StageError::Failed(format!(
            "run {} of pipeline {} has no {deploy} stage in its record, so there are no stack outputs to test with: \
             the test stage reads what the deploy of the same run recorded (set APHEX_STACK_OUTPUTS_FILE to test \
             against an outputs document instead)",
            run.id, run.pipeline
        )));
    };
    if stage.status != Status::Succeeded {
        return Err(StageError::Failed(format!(
            "{deploy} of run {} did not succeed (it is {}): no stack outputs to test with",
            run.id,
            format!("{:?}", stage.status).to_lowercase()
        )));
    }
    Ok(stage
        .stacks
        .iter()
        .filter(|s| s.status == Status::Succeeded)
        .map(|s| (s.name.clone(), s.outputs.clone()))
        .collect())
}

/// The stage record of a finished stage.
pub fn stage_record(
    name: &str,
    started_at: String,
    result: &Result<StageOutcome, StageError>,
    redactor: &Redactor,
) -> StageRecord {
    let risks = result.as_ref().map(|o| o.risks.clone()).unwrap_or_default();
    let (status, error, stacks, artifact_bytes, ends_run) = match result {
        // Paused at a risk gate: still going until the gate is decided
        // (the resume task records the stage again); the gate's listing
        // says what waits.
        Ok(o) if o.gated.is_some() => (Status::Running, o.gated.clone(), o.stacks.clone(), None, None),
        Ok(o) => (
            Status::Succeeded,
            o.warning.clone(),
            o.stacks.clone(),
            o.artifact_bytes,
            o.ends_run.clone().map(|mut end| {
                end.message = redactor.redact(&end.message);
                end
            }),
        ),
        Err(e) => (
            if e.is_interrupted() {
                Status::Interrupted
            } else {
                Status::Failed
            },
            Some(redactor.redact(&e.to_string())),
            e.stacks().to_vec(),
            None,
            None,
        ),
    };
    StageRecord {
        name: name.to_owned(),
        started_at,
        // A stage paused at a risk gate: when it paused.
        ended_at: Some(crate::time::now_rfc3339()),
        status,
        error,
        stacks,
        artifact_bytes,
        approved_by: None,
        ends_run,
        risks,
    }
}

fn new_record(run: &RunInfo) -> RunRecord {
    RunRecord {
        id: run.id.clone(),
        pipeline: run.pipeline.clone(),
        commit: run.commit.clone(),
        branch: run.branch.clone(),
        started_at: crate::time::now_rfc3339(),
        ended_at: None,
        status: Status::Running,
        stages: Vec::new(),
        url: run.url.clone(),
    }
}

/// Adds (or replaces, on a retry) `stage` in the record of `run`: one
/// write of the stage's own object, no read. The header it carries starts
/// when the stage did; a run without a run object yet starts with its
/// earliest stage.
pub async fn record_stage(ports: &Ports, run: &RunInfo, stage: StageRecord) -> Result<(), StageError> {
    let header = RunRecord {
        started_at: stage.started_at.clone(),
        ..new_record(run)
    };
    ports
        .runs
        .record_stage(&header, &stage)
        .await
        .map_err(StageError::record(format!("recording stage {}", stage.name)))
}

/// Closes the record of `run` (creating it when no stage got to write one):
/// the overall status comes from the stages, and a workflow Argo reports as
/// `Failed` or `Error` is never recorded as succeeded (nor as a duplicate
/// or superseded).
pub async fn finalize_run(
    ports: &Ports,
    reporter: &dyn Reporter,
    redactor: &Redactor,
    run: &RunInfo,
    workflow_status: Option<&str>,
    only_on_failure: bool,
) -> Result<RunRecord, StageError> {
    let mut record = ports
        .runs
        .load(&run.pipeline, &run.id)
        .await
        .map_err(StageError::record("loading the run record"))?
        .unwrap_or_else(|| new_record(run));
    // A deploy still paused at its risk gate: the run ended while the gate
    // waited (rejected, stopped, or past the workflow's deadline).
    for stage in record.stages.iter_mut().filter(|s| s.status == Status::Running) {
        stage.status = Status::Failed;
        for stack in stage.stacks.iter_mut().filter(|s| s.status == Status::Running) {
            stack.status = Status::Failed;
        }
        let waited = stage.error.take().unwrap_or_default();
        stage.error = Some(format!(
            "{waited}\nthe run ended while this waited at its risk gate: the gate was rejected, the run stopped, or \
             it ran out of time; nothing after the gate was deployed"
        ));
    }
    let mut status = stages::finalize::overall_status(&record.stages);
    if matches!(status, Status::Succeeded | Status::Duplicate | Status::Superseded)
        && matches!(workflow_status, Some("Failed" | "Error"))
    {
        status = Status::Failed;
    }
    record.status = status;
    if run.url.is_some() {
        record.url = run.url.clone();
    }
    let (record, _) = stages::finalize::run(ports, reporter, redactor, record, only_on_failure).await?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::{RiskStep, gate_timed_out};
    use proptest::prelude::*;

    #[test]
    fn a_gate_resumed_before_its_timeout_is_in_time_and_one_resumed_at_or_after_it_is_late() {
        let paused = "2026-01-01T00:00:00Z";
        assert_eq!(gate_timed_out(paused, "2026-01-01T00:59:59Z", 3600), Some(false));
        assert_eq!(gate_timed_out(paused, "2026-01-01T01:00:00Z", 3600), Some(true));
        assert_eq!(
            gate_timed_out(paused, "2026-01-02T00:00:00.5Z", 86_400),
            Some(true)
        );
        // An unreadable time says nothing: the caller fails closed.
        assert_eq!(gate_timed_out("", "2026-01-01T01:00:00Z", 3600), None);
        assert_eq!(gate_timed_out(paused, "{{tasks.risk.finishedAt}}", 3600), None);
    }

    #[test]
    fn the_risk_gate_flag_names_the_step_and_a_resume_its_gates_times() {
        let by = || Some("alice".to_owned());
        assert_eq!(RiskStep::from_flag("", by()), RiskStep::Absent);
        assert_eq!(RiskStep::from_flag("pause", by()), RiskStep::Pause);
        assert_eq!(
            RiskStep::from_flag("resume 2026-01-01T00:00:00Z 2026-01-01T00:05:00Z", by()),
            RiskStep::Resume {
                by: by(),
                waited: Some((
                    "2026-01-01T00:00:00Z".to_owned(),
                    "2026-01-01T00:05:00Z".to_owned()
                )),
            }
        );
        // Without both times (an Argo that did not substitute them) the
        // resume measures from the pause.
        assert_eq!(
            RiskStep::from_flag("resume", None),
            RiskStep::Resume {
                by: None,
                waited: None
            }
        );
        assert_eq!(
            RiskStep::from_flag("resume {{tasks.risk.startedAt}}", None),
            RiskStep::Resume {
                by: None,
                waited: None
            }
        );
        // Anything else is no step: a gate fails the environment.
        assert_eq!(RiskStep::from_flag("approve", by()), RiskStep::Absent);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // Property: a gate is late exactly when the seconds since it paused
        // reach its timeout, whatever the timeout and the wait.
        #[test]
        fn a_gate_is_late_exactly_when_its_wait_reaches_the_timeout(
            timeout in 1u64..=86_400,
            waited in 0u64..=172_800,
        ) {
            let paused = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
            let now = paused + time::Duration::seconds(waited as i64);
            let late = gate_timed_out(
                &crate::time::format_rfc3339(paused),
                &crate::time::format_rfc3339(now),
                timeout,
            );
            prop_assert_eq!(late, Some(waited >= timeout));
        }
    }
}
