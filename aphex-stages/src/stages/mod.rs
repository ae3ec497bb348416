//! The stages of DESIGN §5, each written once against the ports: the same
//! code runs in a pod (`aphex-runner <stage>`) and on a laptop
//! (`aphex run --local`). Each stage returns a [`StageOutcome`] the run
//! record keeps, or a [`StageError`] saying what failed and how to fix it.

pub mod build;
pub mod deploy;
pub mod finalize;
pub mod pipeline;
pub mod test;
pub mod validate;

use crate::artifact::ArtifactError;
use crate::context::StageContext;
use crate::ports::{ClusterError, RecordError, StoreError, SubmitError};
use crate::process::{CommandSpec, ProcessError};
use crate::record::{RunEnd, StackResult};
use crate::workspace::CheckoutError;

/// What a finished stage leaves in the run record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageOutcome {
    /// Per-stack results (deploy).
    pub stacks: Vec<StackResult>,
    /// Archive size (build).
    pub artifact_bytes: Option<u64>,
    /// Something went wrong but the stage went on (self-update with `continue`).
    pub warning: Option<String>,
    /// The run ends after this stage, with nothing wrong (a duplicate push).
    pub ends_run: Option<RunEnd>,
    /// The stage stopped at a risk gate that waits for a person, in a pod
    /// (the gate's listing, redacted): recorded as still running.
    pub gated: Option<String>,
    /// The risky changes its risk gate listed (redacted): while it waits,
    /// what approving it covers; once approved, what was approved.
    pub risks: Vec<crate::risk::RiskyChange>,
}

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Validation found problems; all of them are listed.
    #[error("{} problem{} found:\n  - {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  - "))]
    Invalid(Vec<String>),
    /// A configured command failed.
    #[error("{what}: {source}")]
    Command {
        /// Which command (`build.commands[1]`).
        what: String,
        /// How it failed.
        #[source]
        source: ProcessError,
    },
    /// The run was cancelled (Ctrl-C, SIGTERM).
    #[error("interrupted")]
    Interrupted,
    /// Packaging or unpacking artifacts failed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The artifact store failed.
    #[error("{what}: {source}")]
    Store {
        /// What the stage asked of it.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The run recorder failed.
    #[error("{what}: {source}")]
    Record {
        /// What the stage asked of it.
        what: String,
        /// The recorder's error.
        #[source]
        source: RecordError,
    },
    /// The manifest applier (the cluster) failed.
    #[error("{what}: {source}")]
    Cluster {
        /// What the stage asked of it.
        what: String,
        /// The applier's error.
        #[source]
        source: ClusterError,
    },
    /// The restart of the run on its new topology could not be submitted.
    #[error("{what}: {source}")]
    Submit {
        /// What the stage asked of the submitter.
        what: String,
        /// The submitter's error.
        #[source]
        source: SubmitError,
    },
    /// The checkout failed.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// A stack failed to deploy; the results of every stack so far are kept
    /// for the run record.
    #[error("{message}")]
    Deploy {
        /// What failed, with the root causes.
        message: String,
        /// Every stack's result (failed, succeeded, and the skipped ones).
        stacks: Vec<StackResult>,
    },
    /// A risk gate stopped the environment's deploy before stack `stack`'s
    /// change set executed: a person must approve `changes` (the change set
    /// was deleted; deploying again with the risks approved re-creates it).
    #[error(
        "environment {env}: stack {stack} stopped at a risk gate; approve these changes to deploy them:{}",
        deploy::list_changes(.changes)
    )]
    RiskGate {
        /// The environment.
        env: String,
        /// The stack stopped (configured name).
        stack: String,
        /// The risky changes awaiting approval.
        changes: Vec<crate::risk::RiskyChange>,
        /// Every stack's result so far.
        stacks: Vec<StackResult>,
    },
    /// A person declined a risk gate.
    #[error(
        "the risk gate of {env} was not approved: stack {stack} and the stacks after it were not deployed (its change set was deleted)"
    )]
    RiskNotApproved {
        /// The environment gated.
        env: String,
        /// The stack stopped.
        stack: String,
    },
    /// The pipeline's plan could not be made from the config.
    #[error(transparent)]
    Plan(#[from] aphex_template::PlanError),
    /// A person declined an approval gate.
    #[error("deploy to {env} was not approved")]
    NotApproved {
        /// The environment gated.
        env: String,
    },
    /// An approval gate could not be decided.
    #[error(transparent)]
    Approval(#[from] crate::executor::ApprovalError),
    /// Anything else, already phrased for the user: a refusal with no
    /// error underneath (a stage that needs `--env`, a stage a pull
    /// request's run does not run), or a message that had to be redacted.
    #[error("{0}")]
    Failed(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl StageError {
    /// Whether the stage stopped because the run was cancelled.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            StageError::Interrupted
                | StageError::Command {
                    source: ProcessError::Interrupted { .. },
                    ..
                }
        )
    }

    /// Per-stack results carried by a failed deploy.
    pub fn stacks(&self) -> &[StackResult] {
        match self {
            StageError::Deploy { stacks, .. } | StageError::RiskGate { stacks, .. } => stacks,
            _ => &[],
        }
    }

    /// The exit code of the failed command, when a command failed.
    pub fn command_exit_code(&self) -> Option<i32> {
        match self {
            StageError::Command { source, .. } => source.exit_code(),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StageError {
        let context = context.into();
        move |source| StageError::Io { context, source }
    }

    pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(StoreError) -> StageError {
        let what = what.into();
        move |source| StageError::Store { what, source }
    }

    pub(crate) fn record(what: impl Into<String>) -> impl FnOnce(RecordError) -> StageError {
        let what = what.into();
        move |source| StageError::Record { what, source }
    }

    pub(crate) fn cluster(what: impl Into<String>) -> impl FnOnce(ClusterError) -> StageError {
        let what = what.into();
        move |source| StageError::Cluster { what, source }
    }

    pub(crate) fn submit(what: impl Into<String>) -> impl FnOnce(SubmitError) -> StageError {
        let what = what.into();
        move |source| StageError::Submit { what, source }
    }
}

/// Runs `commands` in order, each in its own shell in the checkout, and
/// stops at the first failure. `field` names them in messages
/// (`build.commands`), `label` prefixes their output (`build`).
pub(crate) async fn run_commands(
    ctx: &StageContext,
    stage: &str,
    field: &str,
    label: &str,
    commands: &[String],
    env: &[(String, String)],
) -> Result<(), StageError> {
    let n = commands.len();
    for (i, command) in commands.iter().enumerate() {
        if ctx.exec.cancel.is_cancelled() {
            return Err(StageError::Interrupted);
        }
        let spec = CommandSpec {
            stage: stage.to_owned(),
            prefix: format!("{label} {}/{n}", i + 1),
            command: command.clone(),
            cwd: ctx.checkout.clone(),
            env: env.to_vec(),
            unset: Vec::new(),
        };
        ctx.exec.run(&spec).await.map_err(|source| match source {
            ProcessError::Interrupted { .. } => StageError::Interrupted,
            source => StageError::Command {
                what: format!("{field}[{i}]"),
                source,
            },
        })?;
    }
    Ok(())
}

/// The variables every command of a run sees: who and what is running.
pub(crate) fn run_env(ctx: &StageContext) -> Vec<(String, String)> {
    let mut env = vec![
        ("APHEX_PIPELINE".to_owned(), ctx.run.pipeline.clone()),
        ("APHEX_RUN_ID".to_owned(), ctx.run.id.clone()),
        ("APHEX_COMMIT_SHA".to_owned(), ctx.run.commit.clone()),
    ];
    if let Some(b) = &ctx.run.branch {
        env.push(("APHEX_BRANCH".to_owned(), b.clone()));
    }
    env
}

/// The variables of commands run for `env` (hooks, synth, tests).
pub(crate) fn env_vars(ctx: &StageContext, env: &aphex_config::Environment) -> Vec<(String, String)> {
    let mut vars = run_env(ctx);
    vars.extend([
        ("APHEX_ENVIRONMENT".to_owned(), env.name.clone()),
        ("CDK_DEFAULT_ACCOUNT".to_owned(), env.account.clone()),
        ("CDK_DEFAULT_REGION".to_owned(), env.region.clone()),
        ("AWS_REGION".to_owned(), env.region.clone()),
        ("AWS_DEFAULT_REGION".to_owned(), env.region.clone()),
    ]);
    vars
}

/// A stale task of the old topology: `Some` (a no-op that says why) when
/// the config at this commit has no environment `name`. A run started
/// before the commit removed the environment still has its `deploy-<env>`
/// and `test-<env>` tasks; the pipeline stage restarts such a run on the
/// new topology, but should one of them run, it succeeds doing nothing.
pub(crate) fn removed_environment(ctx: &StageContext, stage: &str, name: &str) -> Option<StageOutcome> {
    if ctx.config.environment(name).is_some() {
        return None;
    }
    let names: Vec<&str> = ctx.config.environments.iter().map(|e| e.name.as_str()).collect();
    let message = format!(
        "nothing to do: environment `{name}` is not in {} at this commit (it has: {}), so the commit removed it and \
         this task is a stale one of the topology the run started with; its stacks are left as they are (delete them \
         with `cdk destroy` if they should go)",
        ctx.config_file,
        names.join(", ")
    );
    ctx.info(stage, &message);
    Some(StageOutcome {
        warning: Some(ctx.exec.redactor.redact(&message)),
        ..StageOutcome::default()
    })
}

/// The environment called `name`, or an error listing the configured ones.
pub(crate) fn environment<'a>(
    ctx: &'a StageContext,
    name: &str,
) -> Result<&'a aphex_config::Environment, StageError> {
    ctx.config.environment(name).ok_or_else(|| {
        let names: Vec<&str> = ctx.config.environments.iter().map(|e| e.name.as_str()).collect();
        StageError::Failed(format!(
            "environment `{name}` is not in {} at this commit; it has: {}",
            ctx.config_file,
            names.join(", ")
        ))
    })
}
