//! The local executor: one whole run on one machine. Checks out the commit,
//! loads its config, walks the plan's stages in order (asking the
//! [`Approver`] at manual gates), keeps the run record up to date after
//! every stage, stops at the first failure or on cancellation, and
//! finalizes (record, metrics, notification). It plans from the commit's
//! config, so a changed topology takes effect at once: it says how it
//! changed since the previous run recorded, and restarts nothing.
//!
//! State lives under one directory (`.aphex/` for `aphex run --local`):
//! `work/<run-id>/` (checkout and scratch, removed after a successful run),
//! `runs/<pipeline>/<run-id>/logs/<stage>.log` (each capped at
//! [`crate::log_upload::LOG_CAP`], the tail kept) and
//! `runs/<pipeline>/<run-id>/outputs/<env>/outputs.json`. The directory is
//! private (`0700`, files `0600`) and ignores itself in git
//! ([`crate::files::prepare_state_dir`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aphex_template::submit::Origin;
use aphex_template::{Plan, StageKind};

use crate::context::{Ports, RunInfo, RunKind, StageContext, load_config};
use crate::log_upload::{Limits, LogTarget, LogUpload};
use crate::process::Exec;
use crate::record::{RunRecord, StageRecord, Status};
use crate::report::{Event, Reporter};
use crate::risk::RiskyChange;
use crate::stage_log::{LOG_CAP, StageLog};
use crate::stages::{self, StageError, StageOutcome};

/// Decides manual approval gates.
pub trait Approver: Send + Sync {
    /// `Ok(true)` to deploy `env`, `Ok(false)` when a person declined, `Err`
    /// when nobody can be asked (the message says how to approve).
    fn approve(&self, env: &str) -> Result<bool, ApprovalError>;

    /// `Ok(true)` to deploy `changes`, which `env`'s risk gates stopped
    /// (each with its stack, resource, type and why); `Ok(false)` when a
    /// person declined; `Err` when nobody can be asked. Approving a manual
    /// gate never approves these: the default asks nobody.
    fn approve_risks(&self, env: &str, changes: &[RiskyChange]) -> Result<bool, ApprovalError> {
        let _ = changes;
        Err(ApprovalError::RiskNobodyToAsk { env: env.to_owned() })
    }
}

/// Why an approval gate could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Nobody is there to ask (no terminal) and `--yes` was not given.
    #[error(
        "environment {env} needs a manual approval and nobody can be asked (not a terminal): pass --yes to approve"
    )]
    NobodyToAsk {
        /// The environment gated.
        env: String,
    },
    /// A risk gate stopped the environment, nobody can be asked (no
    /// terminal) and `--allow-risk` was not given.
    #[error(
        "environment {env} stopped at a risk gate and nobody can be asked (not a terminal): pass --allow-risk to approve its risky changes (--yes does not)"
    )]
    RiskNobodyToAsk {
        /// The environment gated.
        env: String,
    },
    /// The answer could not be read.
    #[error("reading the approval for {env}: {source}")]
    Read {
        /// The environment gated.
        env: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LocalRun {
    /// Run id; also names the scratch and log directories.
    pub id: String,
    /// The repository: a local path or a URL.
    pub repo: String,
    /// Full commit SHA to run.
    pub commit: String,
    /// Branch, when known.
    pub branch: Option<String>,
    /// Config file, relative to the repository root.
    pub config_file: String,
    /// The state directory (`.aphex`).
    pub state: PathBuf,
    /// Only this environment's approve/deploy/test stages, when set.
    pub only_env: Option<String>,
    /// How the run started: `aphex run --local` is a person's
    /// ([`Origin::Manual`]); tests replay pushes.
    pub trigger: Origin,
}

/// A new run id: sortable UTC time plus a random suffix.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}t{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("local-{stamp}-{}", &suffix[..6])
}

/// Writes every event it passes on to the stage's stored log as well.
struct FileLog {
    inner: Arc<dyn Reporter>,
    log: Mutex<StageLog>,
}

impl Reporter for FileLog {
    fn event(&self, event: &Event) {
        self.inner.event(event);
        let mut log = self.log.lock().expect("log lock");
        // A full disk must not stop the run; the terminal still has the line.
        let _ = log.append(&event.to_line());
    }
}

/// The directory of a run's logs and outputs under `state`.
pub fn run_dir(state: &Path, pipeline: &str, id: &str) -> PathBuf {
    state.join("runs").join(pipeline).join(id)
}

/// Runs everything and returns the finalized record. Errors are only for
/// what prevents a run from being recorded at all (the checkout); a failed
/// stage is a record with status `failed`.
pub async fn run_local(
    opts: &LocalRun,
    ports: Ports,
    exec: Exec,
    approver: &dyn Approver,
) -> Result<RunRecord, StageError> {
    crate::files::prepare_state_dir(&opts.state)
        .map_err(StageError::io(format!("preparing {}", opts.state.display())))?;
    let work = opts.state.join("work").join(&opts.id);
    let checkout = work.join("checkout");
    let reporter = exec.reporter.clone();
    reporter.event(&Event::Info {
        stage: "checkout".to_owned(),
        message: exec.redactor.redact(&format!(
            "checking out {} of {} into {}",
            opts.commit,
            opts.repo,
            checkout.display()
        )),
    });
    crate::workspace::checkout(&opts.repo, &opts.commit, &checkout).await?;
    let config = load_config(&checkout, &opts.config_file);
    let pipeline = match &config {
        Ok(c) => c.pipeline_name().to_owned(),
        Err(_) => "aphex".to_owned(),
    };
    let mut record = RunRecord {
        id: opts.id.clone(),
        pipeline: pipeline.clone(),
        commit: opts.commit.clone(),
        branch: opts.branch.clone(),
        started_at: crate::time::now_rfc3339(),
        ended_at: None,
        status: Status::Running,
        stages: Vec::new(),
        url: None,
    };
    ports
        .runs
        .record(&record)
        .await
        .map_err(StageError::record("recording the run start"))?;
    let dir = run_dir(&opts.state, &pipeline, &opts.id);
    let logs = dir.join("logs");
    crate::files::create_private_dir(&logs)
        .map_err(StageError::io(format!("creating {}", logs.display())))?;
    let only_on_failure = config
        .as_ref()
        .map(|c| c.settings().notify_only_on_failure())
        .unwrap_or(false);
    match config {
        Err(problems) => {
            let started = crate::time::now_rfc3339();
            let err = StageError::Invalid(problems);
            reporter.event(&Event::StageStarted {
                stage: "validate".to_owned(),
            });
            finish_stage(&*reporter, &exec, &mut record, "validate", started, 0.0, Err(err));
        }
        Ok(config) => {
            // A local run plans from the commit's config, so the pipeline
            // stage has nothing to restart (it says the topology changed).
            let ports = Ports {
                workflows: None,
                ..ports.clone()
            };
            let ctx = StageContext {
                run: RunInfo {
                    id: opts.id.clone(),
                    pipeline: pipeline.clone(),
                    commit: opts.commit.clone(),
                    branch: opts.branch.clone(),
                    repo: opts.repo.clone(),
                    namespace: None,
                    kind: RunKind::Deploy,
                    trigger: opts.trigger,
                    url: None,
                    topology: None,
                    sender: None,
                },
                config,
                config_file: opts.config_file.clone(),
                checkout: crate::context::app_root(&checkout, &opts.config_file),
                work: work.join("scratch"),
                logs: logs.clone(),
                ports,
                exec: exec.clone(),
            };
            if let Err(e) = run_stages(&ctx, opts, &dir, approver, &mut record).await {
                // Not a stage's failure (the plan, the record store): still
                // finalize, so the run is not left `running` forever.
                let started = crate::time::now_rfc3339();
                finish_stage(&*reporter, &exec, &mut record, "run", started, 0.0, Err(e));
            }
        }
    }
    let (record, _) =
        stages::finalize::run(&ports, &*reporter, &exec.redactor, record, only_on_failure).await?;
    if record.status == Status::Succeeded {
        // The checkout is only worth keeping to debug a failure.
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(record)
}

/// The deploy stage of `env`, with its risk gate: when a gate stops it,
/// the [`Approver`] is asked, and the deploy runs again with the
/// environment's risks approved (the stacks already deployed have nothing
/// left to change; the stopped one's change set is made again). A declined
/// gate fails the stage; the gate deleted the pending change set already.
async fn deploy_gated(
    ctx: &StageContext,
    stage: &str,
    env: &str,
    outputs: &Path,
    approver: &dyn Approver,
) -> Result<StageOutcome, StageError> {
    match stages::deploy::run(ctx, env, outputs).await {
        Err(StageError::RiskGate { changes, stack, .. }) => match approver.approve_risks(env, &changes) {
            Ok(true) => {
                ctx.info(
                    stage,
                    format!(
                        "risk gate of {env} approved ({} change{}): deploying again from stack {stack}",
                        changes.len(),
                        if changes.len() == 1 { "" } else { "s" }
                    ),
                );
                // What the person saw is what the approval covers.
                stages::deploy::run_with(ctx, env, outputs, &changes).await
            }
            Ok(false) => Err(StageError::RiskNotApproved {
                env: env.to_owned(),
                stack,
            }),
            Err(e) => Err(StageError::Approval(e)),
        },
        other => other,
    }
}

async fn run_stages(
    ctx: &StageContext,
    opts: &LocalRun,
    dir: &Path,
    approver: &dyn Approver,
    record: &mut RunRecord,
) -> Result<(), StageError> {
    let plan = Plan::new(&ctx.config)?;
    if let Some(only) = &opts.only_env
        && plan.environment(only).is_none()
    {
        let names: Vec<&str> = plan.environments.iter().map(|e| e.name.as_str()).collect();
        return Err(StageError::Failed(format!(
            "--env {only}: no such environment in {}; it has: {}",
            ctx.config_file,
            names.join(", ")
        )));
    }
    report_topology_change(ctx, &plan).await;
    let stages: Vec<_> = plan
        .stages()
        .into_iter()
        .filter(|s| match (&opts.only_env, &s.env) {
            (Some(only), Some(env)) => only == env,
            _ => true,
        })
        .cloned()
        .collect();
    let mut stopped = false;
    for stage in stages {
        let name = stage.task_name();
        if stopped || ctx.exec.cancel.is_cancelled() {
            record.stages.push(StageRecord {
                name,
                started_at: crate::time::now_rfc3339(),
                ended_at: None,
                status: Status::Skipped,
                error: None,
                stacks: Vec::new(),
                artifact_bytes: None,
                approved_by: None,
                ends_run: None,
                risks: Vec::new(),
            });
            continue;
        }
        let log_path = ctx.logs.join(format!("{name}.log"));
        let log = StageLog::create(&log_path, LOG_CAP)
            .map_err(StageError::io(format!("creating {}", log_path.display())))?;
        // The stage's log in the run store too (`aphex logs`), as in a pod.
        let upload = LogUpload::start(
            LogTarget {
                runs: ctx.ports.runs.clone(),
                pipeline: ctx.run.pipeline.clone(),
                id: ctx.run.id.clone(),
                stage: name.clone(),
            },
            ctx.exec.reporter.clone(),
            Limits::default(),
        );
        let mut stage_ctx = ctx.clone();
        stage_ctx.exec = Exec {
            reporter: Arc::new(FileLog {
                inner: upload.clone(),
                log: Mutex::new(log),
            }),
            ..ctx.exec.clone()
        };
        let reporter = stage_ctx.exec.reporter.clone();
        reporter.event(&Event::StageStarted { stage: name.clone() });
        let started = crate::time::now_rfc3339();
        let clock = Instant::now();
        let env = stage.env.as_deref().unwrap_or_default();
        let outputs = stages::deploy::outputs_path(&dir.join("outputs"), env);
        let result = match stage.kind {
            StageKind::Validate => stages::validate::run_for(&stage_ctx, opts.only_env.as_deref()).await,
            StageKind::Build => stages::build::run(&stage_ctx).await,
            StageKind::Pipeline => stages::pipeline::run(&stage_ctx).await,
            StageKind::Approve => match approver.approve(env) {
                Ok(true) => {
                    stage_ctx.info(&name, format!("deploy to {env} approved"));
                    Ok(StageOutcome::default())
                }
                Ok(false) => Err(StageError::NotApproved { env: env.to_owned() }),
                Err(e) => Err(StageError::Approval(e)),
            },
            StageKind::Deploy => deploy_gated(&stage_ctx, &name, env, &outputs, approver).await,
            StageKind::Test => stages::test::run(&stage_ctx, env, &outputs).await,
        };
        let seconds = clock.elapsed().as_secs_f64();
        let goes_on = finish_stage(&*reporter, &ctx.exec, record, &name, started, seconds, result);
        // Stored before the record says the stage ended, so a reader
        // following the log has all of it once it sees the end.
        if let Err(e) = upload.finish().await {
            ctx.exec.reporter.event(&Event::Warning {
                stage: name.clone(),
                message: ctx
                    .exec
                    .redactor
                    .redact(&format!("the stage's log was not all stored: {e}")),
            });
        }
        ctx.ports
            .runs
            .record(record)
            .await
            .map_err(StageError::record("recording the run"))?;
        stopped = !goes_on;
    }
    Ok(())
}

/// How many of the newest runs are read to find the previous one.
const PREVIOUS_RUNS: usize = 10;

/// Says, before any stage runs, how the plan's stages differ from those of
/// the newest earlier run of the pipeline recorded that walked its plan
/// (one with a `pipeline` stage: every stage of the plan is recorded, the
/// ones not run as skipped): environments and stages added or removed. A
/// local run plans from the commit's config, so it follows the new topology
/// at once; this line is what, in a cluster, the pipeline stage's restart
/// is. A run recorded with `--env` holds one environment's stages, so the
/// others show as added. Records that cannot be read cost only this line.
async fn report_topology_change(ctx: &StageContext, plan: &Plan) {
    const STAGE: &str = "plan";
    let runs = match ctx.ports.runs.list(&ctx.run.pipeline, PREVIOUS_RUNS).await {
        Ok(runs) => runs,
        Err(e) => {
            ctx.warn(
                STAGE,
                format!("not compared with the previous run's topology: listing the runs: {e}"),
            );
            return;
        }
    };
    let pipeline = StageKind::Pipeline.as_str();
    let Some(previous) = runs
        .iter()
        .find(|r| r.id != ctx.run.id && r.stages.iter().any(|s| s.name == pipeline))
    else {
        return;
    };
    let before: Vec<String> = previous.stages.iter().map(|s| s.name.clone()).collect();
    let now: Vec<String> = plan.stages().iter().map(|s| s.task_name()).collect();
    let diff = stages::pipeline::tasks_diff(&before, &now);
    if diff.is_empty() {
        return;
    }
    ctx.info(
        STAGE,
        format!(
            "the topology changed since run {} (commit {}): {}; this run follows this commit's config",
            previous.id,
            &previous.commit[..previous.commit.len().min(12)],
            diff.join(", ")
        ),
    );
}

/// Appends the stage's record and reports its end; whether the run goes on
/// (it does not after a failure, nor after a stage that ended it early).
fn finish_stage(
    reporter: &dyn Reporter,
    exec: &Exec,
    record: &mut RunRecord,
    name: &str,
    started: String,
    seconds: f64,
    result: Result<StageOutcome, StageError>,
) -> bool {
    let (status, error, outcome) = match result {
        Ok(o) => (Status::Succeeded, o.warning.clone(), o),
        Err(e) => {
            // A stage that failed while the run was being cancelled (a deploy
            // cut short) was interrupted, whatever error it came back with.
            let status = if e.is_interrupted() || exec.cancel.is_cancelled() {
                Status::Interrupted
            } else {
                Status::Failed
            };
            let outcome = StageOutcome {
                stacks: e.stacks().to_vec(),
                ..StageOutcome::default()
            };
            (status, Some(exec.redactor.redact(&e.to_string())), outcome)
        }
    };
    reporter.event(&Event::StageFinished {
        stage: name.to_owned(),
        status,
        error: error.clone(),
        seconds,
    });
    record.stages.push(StageRecord {
        name: name.to_owned(),
        started_at: started,
        ended_at: Some(crate::time::now_rfc3339()),
        status,
        error,
        stacks: outcome.stacks,
        artifact_bytes: outcome.artifact_bytes,
        approved_by: None,
        ends_run: outcome.ends_run.clone().map(|mut end| {
            end.message = exec.redactor.redact(&end.message);
            end
        }),
        risks: outcome.risks,
    });
    status == Status::Succeeded && outcome.ends_run.is_none()
}
