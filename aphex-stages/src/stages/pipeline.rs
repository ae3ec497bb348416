//! The pipeline stage (self-modification): deploy the pipeline's own AWS
//! stack through the `PipelineStackUpdater` when the config names a cluster
//! (an unchanged stack is a no-op), then render the manifests from the
//! commit's config, log what changes against what is applied (objects, and
//! environments/stages added or removed), apply them through the
//! `ManifestApplier`. A failure halts the run, or with
//! `selfUpdate.onFailure: continue` leaves the old stack and topology in
//! place and lets the run go on.
//!
//! When the topology changed (environments or stages added or removed),
//! the running workflow still has the old DAG: the stage submits a restart
//! of the same commit from the template it just applied
//! ([`aphex_template::submit::restart_workflow`], through the
//! `WorkflowSubmitter`) and ends this run as superseded (its `run` output,
//! which every later task's `when` reads). At most one restart of a commit
//! at a time: a restart never restarts, and a restart of the commit that
//! has not finished (found by its labels, or by its name on a 409) is named
//! rather than submitted again; once it has finished, a later run of the
//! commit that changes the topology (a rollback to it) restarts anew.
//!
//! Before anything changes, the stage refuses a commit whose config would
//! change what only `aphex bootstrap` may change (`pinned_settings`): the
//! namespace, the service accounts and the pod security settings. The
//! cluster's admission policy refuses the same writes; this says why, early,
//! naming both values.

use std::collections::BTreeSet;

use aphex_config::{Config, OnSelfUpdateFailure};
use aphex_template::cloudformation::pipeline_stack_name;
use aphex_template::submit::Origin;
use aphex_template::workflow::topology;
use serde_json::Value;

use super::{StageError, StageOutcome};
use crate::context::{RunKind, StageContext};
use crate::diff::{differs, identity};
use crate::ports::{DeployProgress, StackEvent, Submitted};
use crate::record::{EndReason, RunEnd, StackResult, Status};

const STAGE: &str = "pipeline";

/// What the stage does about the pipeline's own AWS stack, decided from the
/// config alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackAction {
    /// Deploy it (a change set; an unchanged stack is a no-op).
    Deploy,
    /// Leave it alone; the reason is logged as one line.
    Skip(String),
}

/// Whether the pipeline stack is deployed: only when `pipeline.cluster` is
/// set, because its workflow role trusts that cluster's OIDC provider and
/// without a cluster there is nothing to trust.
pub fn stack_action(config: &Config) -> StackAction {
    if config.settings().cluster.is_some() {
        return StackAction::Deploy;
    }
    StackAction::Skip(format!(
        "pipeline stack {}: not deployed: the config has no `pipeline.cluster`, so there is no cluster \
         OIDC provider for the workflow role to trust and no role to create; set `pipeline.cluster` \
         (or create the stack with `aphex bootstrap --cluster NAME`)",
        pipeline_stack_name(config)
    ))
}

/// The manifests the pipeline rewrites at every run: its WorkflowTemplate
/// (the topology). RBAC, the EventSource and the Sensor are applied by
/// `aphex bootstrap`; the executor's Role lets stage pods patch this one
/// WorkflowTemplate and nothing else.
pub fn render_manifests(config: &Config) -> Vec<Value> {
    vec![aphex_template::workflow::workflow_template(config)]
}

/// Runs the pipeline stage. The pipeline stack's result, when it was
/// deployed, goes into the stage's record (and so into the run's metrics)
/// like an environment's stacks, whether the stage succeeds or not.
pub async fn run(ctx: &StageContext) -> Result<StageOutcome, StageError> {
    let mut stacks = Vec::new();
    match update(ctx, &mut stacks).await {
        Ok(ends_run) => Ok(StageOutcome {
            stacks,
            ends_run,
            ..StageOutcome::default()
        }),
        Err(e) if e.is_interrupted() => Err(e),
        Err(e) => match ctx.config.settings().on_self_update_failure() {
            OnSelfUpdateFailure::Halt if stacks.is_empty() => Err(e),
            OnSelfUpdateFailure::Halt => Err(StageError::Deploy {
                message: e.to_string(),
                stacks,
            }),
            OnSelfUpdateFailure::Continue => {
                let warning = format!(
                    "self-update failed, continuing with the topology already applied (selfUpdate.onFailure: continue): {e}"
                );
                ctx.warn(STAGE, &warning);
                Ok(StageOutcome {
                    stacks,
                    warning: Some(ctx.exec.redactor.redact(&warning)),
                    ..StageOutcome::default()
                })
            }
        },
    }
}

/// Updates the stack and the topology; how the run ends when a restart
/// on the new topology takes over.
async fn update(ctx: &StageContext, stacks: &mut Vec<StackResult>) -> Result<Option<RunEnd>, StageError> {
    // Rendered once, for the check before anything deploys and the apply.
    let manifests = render_manifests(&ctx.config);
    check_pinned(ctx, &manifests).await?;
    update_stack(ctx, stacks).await?;
    let changed = apply_manifests(ctx, &manifests).await?;
    restart(ctx, &changed).await
}

/// What the stage does about a topology change, decided from the run alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartAction {
    /// Submit a restart of the commit and end this run as superseded.
    Restart,
    /// Go on with the DAG this run has; the reason is logged as one line.
    Stay(String),
}

/// Whether a run whose pipeline stage changed the topology by `diff`
/// restarts: only a deploy run that is not itself a restart, when there
/// is a change.
pub fn restart_action(kind: RunKind, trigger: Origin, diff: &[String]) -> RestartAction {
    if diff.is_empty() {
        return RestartAction::Stay("no topology change: nothing to restart".to_owned());
    }
    if let RunKind::PullRequest(n) = kind {
        return RestartAction::Stay(format!(
            "pull request #{n}'s run restarts nothing (it applies no topology)"
        ));
    }
    if trigger == Origin::Restart {
        return RestartAction::Stay(
            "this run is itself a restart on a new topology, and a restart never restarts: it goes on with the \
             stages it has (at most one restart per commit)"
                .to_owned(),
        );
    }
    RestartAction::Restart
}

/// Submits the restart of this run's commit on the topology just applied
/// (or names the one already there) and says how this run ends.
async fn restart(ctx: &StageContext, diff: &[String]) -> Result<Option<RunEnd>, StageError> {
    if let RestartAction::Stay(why) = restart_action(ctx.run.kind, ctx.run.trigger, diff) {
        if !diff.is_empty() {
            ctx.info(STAGE, format!("not restarting: {why}"));
        }
        return Ok(None);
    }
    let Some(submitter) = &ctx.ports.workflows else {
        ctx.info(
            STAGE,
            "not restarting: no Workflow submitter is wired (a local run plans from the commit's config, so its \
             stages already are the new topology's)",
        );
        return Ok(None);
    };
    if ctx.exec.cancel.is_cancelled() {
        return Err(StageError::Interrupted);
    }
    let (config, commit) = (&ctx.config, ctx.run.commit.as_str());
    let pipeline = config.pipeline_name();
    let labels = [
        (aphex_template::workflow::PIPELINE_LABEL, pipeline),
        (aphex_template::submit::TRIGGER_LABEL, Origin::Restart.as_label()),
        (aphex_template::submit::COMMIT_LABEL, commit),
    ];
    let found = submitter.find(&labels).await.map_err(StageError::submit(format!(
        "looking for a restart of commit {commit} in {}",
        submitter.describe()
    )))?;
    let (name, already) = match found.into_iter().next() {
        Some(name) => (name, true),
        None => {
            let workflow = aphex_template::submit::restart_workflow(
                config,
                commit,
                &ctx.run.id,
                ctx.run.sender.as_deref(),
            );
            match submitter
                .submit(&workflow)
                .await
                .map_err(StageError::submit(format!(
                    "submitting the restart of commit {commit} to {}",
                    submitter.describe()
                )))? {
                Submitted::Created(name) => (name, false),
                Submitted::AlreadyExists(name) => (name, true),
            }
        }
    };
    let link = config
        .settings()
        .run_url(&name)
        .map(|url| format!(" ({url})"))
        .unwrap_or_default();
    let how = if already {
        "was already restarted"
    } else {
        "restarts"
    };
    let message = format!(
        "superseded: the topology changed ({}); commit {} {how} on it as run {name}{link}, which deploys; this run \
         ends here",
        diff.join(", "),
        &commit[..commit.len().min(12)],
    );
    ctx.info(STAGE, &message);
    Ok(Some(RunEnd {
        reason: EndReason::Superseded,
        message,
    }))
}

/// The settings of a WorkflowTemplate that only `aphex bootstrap` may
/// change (the admission policy pins them), as `(field, value)` pairs:
/// namespace, service accounts, Kubernetes tokens, security contexts and
/// the Secrets containers read. Templates are named by name, not index.
pub(crate) fn pinned_settings(wt: &Value) -> Vec<(String, Value)> {
    let mut out = vec![(
        "metadata.namespace".to_owned(),
        wt["metadata"]["namespace"].clone(),
    )];
    let spec = &wt["spec"];
    for key in [
        "serviceAccountName",
        "automountServiceAccountToken",
        "executor",
        "securityContext",
    ] {
        out.push((format!("spec.{key}"), spec[key].clone()));
    }
    for t in spec["templates"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or_default();
        for key in [
            "serviceAccountName",
            "automountServiceAccountToken",
            "securityContext",
        ] {
            if !t[key].is_null() {
                out.push((format!("spec.templates[{name}].{key}"), t[key].clone()));
            }
        }
        let container = &t["container"];
        if !container.is_null() {
            out.push((
                format!("spec.templates[{name}].container.securityContext"),
                container["securityContext"].clone(),
            ));
            let secrets: Vec<Value> = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
                .map(|s| Value::String(s.to_owned()))
                .collect();
            if !secrets.is_empty() {
                out.push((
                    format!("spec.templates[{name}].container.env (Secrets read)"),
                    Value::Array(secrets),
                ));
            }
        }
    }
    out
}

/// How `rendered` changes `live`'s pinned settings, one phrase each
/// (empty: it does not).
pub(crate) fn pinned_changes(live: &Value, rendered: &Value) -> Vec<String> {
    let (live, rendered) = (pinned_settings(live), pinned_settings(rendered));
    let show = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "(not set)".to_owned(),
        Some(v) => format!("`{}`", v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
    };
    let find =
        |list: &[(String, Value)], field: &str| list.iter().find(|(f, _)| f == field).map(|(_, v)| v.clone());
    let mut fields: Vec<&String> = live.iter().map(|(f, _)| f).collect();
    fields.extend(
        rendered
            .iter()
            .map(|(f, _)| f)
            .filter(|f| !live.iter().any(|(l, _)| l == *f)),
    );
    fields
        .into_iter()
        .filter_map(|field| {
            let (old, new) = (find(&live, field), find(&rendered, field));
            (old != new).then(|| {
                format!(
                    "`{field}` is {} on the cluster but {} in this commit's config",
                    show(old.as_ref()),
                    show(new.as_ref())
                )
            })
        })
        .collect()
}

/// Refuses, before anything is deployed or applied, a commit that would
/// change the namespace, service accounts or pod security settings.
async fn check_pinned(ctx: &StageContext, manifests: &[Value]) -> Result<(), StageError> {
    let Some(rendered) = manifests.iter().find(|m| m["kind"] == "WorkflowTemplate") else {
        return Ok(());
    };
    let (kind, ns, name) = identity(rendered);
    let mut changes = Vec::new();
    if let Some(live_ns) = ctx.run.namespace.as_deref()
        && live_ns != ns
    {
        changes.push(format!(
            "the pipeline runs in namespace `{live_ns}` but this commit's config puts it in `{ns}` (`pipeline.namespace`)"
        ));
    } else {
        let applier = &ctx.ports.applier;
        let live = applier
            .current(&kind, &ns, &name)
            .await
            .map_err(StageError::cluster(format!(
                "reading {kind} {name} from {}",
                applier.describe()
            )))?;
        if let Some(live) = live {
            changes = pinned_changes(&live, rendered);
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    Err(StageError::Failed(format!(
        "this commit changes settings that only `aphex bootstrap` may change (the namespace, service accounts and \
         pod security settings of {kind} {ns}/{name}):\n  - {}\nAn operator applies such a change with `aphex bootstrap` \
         (which also updates the cluster's admission policy and RBAC); otherwise revert it. After upgrading aphex, \
         run `aphex bootstrap` once so the cluster gets the new pod settings.",
        changes.join("\n  - ")
    )))
}

/// Deploys the pipeline stack when wired and the config names a cluster,
/// adding its result to `stacks`; otherwise says, in one line, why not.
async fn update_stack(ctx: &StageContext, stacks: &mut Vec<StackResult>) -> Result<(), StageError> {
    let name = pipeline_stack_name(&ctx.config);
    let Some(updater) = &ctx.ports.pipeline_stack else {
        ctx.info(
            STAGE,
            format!(
                "pipeline stack {name}: not managed by this run (no pipeline stack deployer is wired, as with \
                 `--deployer fake`); nothing was deployed"
            ),
        );
        return Ok(());
    };
    if let StackAction::Skip(reason) = stack_action(&ctx.config) {
        ctx.info(STAGE, reason);
        return Ok(());
    }
    if ctx.exec.cancel.is_cancelled() {
        return Err(StageError::Interrupted);
    }
    ctx.info(
        STAGE,
        format!("pipeline stack {name}: deploying with {}", updater.describe()),
    );
    let progress = ProgressToStage { ctx };
    let started = std::time::Instant::now();
    let result = tokio::select! {
        r = updater.update(&ctx.config, &progress) => r,
        _ = ctx.exec.cancel.cancelled() => return Err(StageError::Interrupted),
    };
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            // The deployer's message already carries the root-cause events.
            let message = ctx
                .exec
                .redactor
                .redact(&format!("updating the pipeline stack {name}: {e}"));
            stacks.push(StackResult {
                name: name.clone(),
                stack_name: name,
                status: Status::Failed,
                changed: None,
                millis,
                error: Some(message.clone()),
                outputs: Default::default(),
            });
            return Err(StageError::Failed(message));
        }
    };
    stacks.push(StackResult {
        name,
        stack_name: outcome.stack_name.clone(),
        status: Status::Succeeded,
        changed: Some(outcome.changed),
        millis,
        error: None,
        outputs: Default::default(),
    });
    let what = if outcome.changed { "deployed" } else { "unchanged" };
    ctx.info(STAGE, format!("pipeline stack {}: {what}", outcome.stack_name));
    for output in &outcome.outputs {
        ctx.info(
            STAGE,
            format!("pipeline stack output {} = {}", output.key, output.value),
        );
    }
    Ok(())
}

/// Stack events as the stage's progress lines.
struct ProgressToStage<'a> {
    ctx: &'a StageContext,
}

impl DeployProgress for ProgressToStage<'_> {
    fn event(&self, e: &StackEvent) {
        let reason = e.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        self.ctx.info(
            STAGE,
            format!(
                "{} {} ({}) {}{reason}",
                e.stack, e.logical_id, e.resource_type, e.status
            ),
        );
    }
}

/// Applies the manifests; the topology's change against the template that
/// was applied (empty when it is the same, or when there was none).
async fn apply_manifests(ctx: &StageContext, manifests: &[Value]) -> Result<Vec<String>, StageError> {
    let applier = &ctx.ports.applier;
    let mut changes = Vec::new();
    let mut topology = Vec::new();
    for m in manifests {
        let (kind, ns, name) = identity(m);
        let current = applier
            .current(&kind, &ns, &name)
            .await
            .map_err(StageError::cluster(format!(
                "reading {kind} {name} from {}",
                applier.describe()
            )))?;
        let change = match &current {
            None => "created",
            Some(c) if !differs(c, m) => "unchanged",
            Some(_) => "changed",
        };
        changes.push(format!("{kind} {ns}/{name}: {change}"));
        if kind == "WorkflowTemplate" {
            topology = log_topology(ctx, current.as_ref(), m);
        }
    }
    if ctx.exec.cancel.is_cancelled() {
        return Err(StageError::Interrupted);
    }
    applier
        .apply(manifests)
        .await
        .map_err(StageError::cluster(format!("applying to {}", applier.describe())))?;
    for c in changes {
        ctx.info(STAGE, c);
    }
    ctx.info(
        STAGE,
        format!("applied {} manifests to {}", manifests.len(), applier.describe()),
    );
    Ok(topology)
}

/// Environments (`deploy-<env>`) and stages added and removed between two
/// lists of task (or stage record) names, one line each; empty when they
/// hold the same names.
pub(crate) fn tasks_diff(old_tasks: &[String], new_tasks: &[String]) -> Vec<String> {
    let envs = |tasks: &[String]| -> Vec<String> {
        tasks
            .iter()
            .filter_map(|t| t.strip_prefix("deploy-").map(str::to_owned))
            .collect()
    };
    let (old_envs, new_envs) = (envs(old_tasks), envs(new_tasks));
    let old_set: BTreeSet<&String> = old_tasks.iter().collect();
    let new_set: BTreeSet<&String> = new_tasks.iter().collect();
    let mut lines = Vec::new();
    lines.extend(
        new_envs
            .iter()
            .filter(|e| !old_envs.contains(e))
            .map(|e| format!("+ environment {e}")),
    );
    lines.extend(
        old_envs
            .iter()
            .filter(|e| !new_envs.contains(e))
            .map(|e| format!("- environment {e}")),
    );
    lines.extend(
        new_tasks
            .iter()
            .filter(|t| !old_set.contains(t))
            .map(|t| format!("+ stage {t}")),
    );
    lines.extend(
        old_tasks
            .iter()
            .filter(|t| !new_set.contains(t))
            .map(|t| format!("- stage {t}")),
    );
    lines
}

/// Logs how the topology changes; the change. The baseline is the
/// topology this run was started with, when its template says
/// (`--topology`): the live template may already be the new one, applied
/// by an earlier attempt of this stage that Argo retried before it
/// submitted the restart, or by another run. Without it (a template
/// rendered before the flag), the live template's; and on a first apply
/// no change (no run was started from a template that was not there).
fn log_topology(ctx: &StageContext, current: Option<&Value>, new: &Value) -> Vec<String> {
    let new_tasks = topology(new);
    let live = current.map(topology);
    if live.is_none() {
        ctx.info(
            STAGE,
            format!("first apply of the pipeline: stages {}", new_tasks.join(" -> ")),
        );
    }
    let baseline = match (&ctx.run.topology, &live) {
        (Some(run), live) => {
            if live.as_ref().is_some_and(|l| l != run) {
                ctx.info(
                    STAGE,
                    "the applied template's stages are not this run's (an earlier attempt of this stage, or \
                     another run, applied it): comparing with the stages this run was started with",
                );
            }
            run
        }
        (None, Some(live)) => live,
        (None, None) => return Vec::new(),
    };
    let diff = tasks_diff(baseline, &new_tasks);
    if diff.is_empty() {
        ctx.info(STAGE, "no topology change");
    }
    for line in &diff {
        ctx.info(STAGE, format!("topology: {line}"));
    }
    diff
}
