//! The deploy stage of one environment: restore and verify the artifacts,
//! `hooks.pre`, synthesize once (just in time, into a fresh `CDK_OUTDIR`),
//! read the cloud assembly, match the configured stacks to its artifacts,
//! deploy them through the `StackDeployer` as the environment's schedule
//! ([`aphex_template::plan::Schedule`]) says, with the assembly's own
//! dependencies merged in
//! (`concurrency` at a time, nothing new starts after a failure), write
//! `outputs.json`, `hooks.post`. The schedule decides what starts when; this
//! module is the IO around it.
//!
//! [`synth_check`] is the pull-request variant: synth and match, no deploy.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aphex_config::Environment;
use aphex_template::EnvironmentPlan;
use aphex_template::plan::StackState;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{StageError, StageOutcome, env_vars, environment, run_commands};
use crate::artifact::{ARCHIVE_NAME, unpack};
use crate::assembly::{CloudAssembly, Level, StackArtifact};
use crate::context::StageContext;
use crate::ports::{
    DeployError, DeployProgress, DeployRequest, Review, StackEvent, StackOutcome, StoreError,
};
use crate::process::{CommandSpec, ProcessError};
use crate::record::{StackResult, Status};
use crate::report::{Event, Reporter};
use crate::risk::{ResourceChange, RiskyChange, StatefulTypes, Verdict};

/// Name of the outputs document.
pub(crate) const OUTPUTS_FILE: &str = "outputs.json";

/// Stack outputs keyed by configured stack name, then output key.
pub type Outputs = BTreeMap<String, BTreeMap<String, String>>;

/// Runs the deploy stage of environment `env_name`, writing the captured
/// outputs to `outputs_file`. A risk gate that wants a person stops it
/// with [`StageError::RiskGate`].
pub async fn run(
    ctx: &StageContext,
    env_name: &str,
    outputs_file: &Path,
) -> Result<StageOutcome, StageError> {
    run_with(ctx, env_name, outputs_file, &[]).await
}

/// [`run`], with this run's risks in the environment approved: `approved`
/// is what its gate listed when a person approved it (empty: nobody did).
/// `approve` gates let those changes through, and the risks of the stacks
/// after the one the gate stopped; a risky change of that stack the gate
/// did not list fails ([`crate::risk::decide`]); `deny` still fails.
pub async fn run_with(
    ctx: &StageContext,
    env_name: &str,
    outputs_file: &Path,
    approved: &[RiskyChange],
) -> Result<StageOutcome, StageError> {
    let stage = format!("deploy-{env_name}");
    if let Some(noop) = super::removed_environment(ctx, &stage, env_name) {
        // The outputs document is written all the same: whatever reads it
        // after this task finds one (empty).
        write_outputs(outputs_file, &Outputs::new())?;
        return Ok(noop);
    }
    let env = environment(ctx, env_name)?;
    restore_artifacts(ctx, &stage).await?;
    let vars = env_vars(ctx, env);
    run_commands(
        ctx,
        &stage,
        &hook_field(ctx, env, "pre"),
        "hooks.pre",
        env.pre_hooks(),
        &vars,
    )
    .await?;
    let assembly = synth(ctx, &stage, env).await?;
    let matched = match_stacks(env, &assembly)?;
    annotations(ctx, &stage, env, &matched)?;
    let plan = deploy_plan(ctx, &stage, env, &matched)?;
    ctx.info(
        &stage,
        format!(
            "deploying {} with {}: {}",
            env.name,
            ctx.ports.deployer.describe(),
            plan.order.join(" -> ")
        ),
    );
    let deployed = deploy_stacks(ctx, &stage, env, &assembly, &matched, &plan, approved).await;
    write_outputs(outputs_file, &deployed.outputs)?;
    if let Some(DeployFailure::Gated { stack, changes }) = deployed.failure {
        return Err(StageError::RiskGate {
            env: env.name.clone(),
            stack,
            changes,
            stacks: deployed.stacks,
        });
    }
    if let Some(failure) = deployed.failure {
        return Err(StageError::Deploy {
            message: ctx.exec.redactor.redact(&failure.to_string()),
            stacks: deployed.stacks,
        });
    }
    ctx.info(
        &stage,
        format!("stack outputs written to {}", outputs_file.display()),
    );
    let mut post_vars = vars;
    post_vars.push((
        "APHEX_OUTPUTS_JSON".to_owned(),
        outputs_file.display().to_string(),
    ));
    run_commands(
        ctx,
        &stage,
        &hook_field(ctx, env, "post"),
        "hooks.post",
        env.post_hooks(),
        &post_vars,
    )
    .await?;
    Ok(StageOutcome {
        stacks: deployed.stacks,
        // What a person approved stays on the stage's record.
        risks: approved.to_vec(),
        ..StageOutcome::default()
    })
}

/// The pull-request check of one environment: synthesize and match the
/// configured stacks against the assembly, deploying nothing.
pub async fn synth_check(ctx: &StageContext, env_name: &str) -> Result<StageOutcome, StageError> {
    let stage = format!("synth-{env_name}");
    let env = environment(ctx, env_name)?;
    restore_artifacts(ctx, &stage).await?;
    let assembly = synth(ctx, &stage, env).await?;
    let matched = match_stacks(env, &assembly)?;
    annotations(ctx, &stage, env, &matched)?;
    let plan = deploy_plan(ctx, &stage, env, &matched)?;
    ctx.info(
        &stage,
        format!(
            "assembly has every configured stack; deploy order {}",
            plan.order.join(" -> ")
        ),
    );
    Ok(StageOutcome::default())
}

fn hook_field(ctx: &StageContext, env: &Environment, which: &str) -> String {
    let i = ctx
        .config
        .environments
        .iter()
        .position(|e| e.name == env.name)
        .unwrap_or_default();
    format!("environments[{i}].hooks.{which}")
}

/// Fetches the artifacts this run's build stored (the store verifies the
/// checksum; the metadata must name this run and commit) and restores them
/// into the checkout, within what the build recorded
/// ([`crate::artifact::unpack`]). No stored artifacts is a notice, not an
/// error.
pub async fn restore_artifacts(ctx: &StageContext, stage: &str) -> Result<(), StageError> {
    let dir = ctx
        .fresh_dir("restore")
        .map_err(StageError::io("creating a directory for the artifacts"))?;
    let archive = dir.join(ARCHIVE_NAME);
    let store = &ctx.ports.artifacts;
    match store.get(&ctx.run.pipeline, &ctx.run.id, &archive).await {
        Ok(meta) => {
            if meta.run_id != ctx.run.id || !meta.commit_sha.eq_ignore_ascii_case(&ctx.run.commit) {
                return Err(StageError::Failed(format!(
                    "refusing the stored artifacts: their metadata names run {} at commit {}, but this is run {} at commit {}; rebuild this commit to store them again",
                    meta.run_id, meta.commit_sha, ctx.run.id, ctx.run.commit
                )));
            }
            let done = unpack(&archive, &ctx.checkout, &meta, &super::build::config_name(ctx))?;
            ctx.info(
                stage,
                format!(
                    "restored the artifacts of this run's build (commit {}; {} bytes, sha256 {} verified; {} entries, {} bytes): {}",
                    &meta.commit_sha,
                    meta.size,
                    meta.sha256,
                    done.entries,
                    done.bytes,
                    meta.paths.join(", ")
                ),
            );
            Ok(())
        }
        Err(StoreError::NotFound { what }) => {
            ctx.info(stage, format!("no build artifacts to restore ({what} not found)"));
            Ok(())
        }
        Err(e @ StoreError::Corrupt { .. }) => Err(StageError::Failed(format!(
            "refusing the stored artifacts: {e}; rebuild this commit to store them again"
        ))),
        Err(e) => Err(StageError::store(format!(
            "fetching the artifacts from {}",
            store.location()
        ))(e)),
    }
}

/// Whether `command` runs the `cdk` CLI's synth as one simple command (no
/// shell operators), so `--output "$CDK_OUTDIR"` can be appended safely.
pub(crate) fn is_cdk_cli_synth(command: &str) -> bool {
    if command.contains([';', '&', '|', '<', '>', '(', ')', '`', '$', '\n']) {
        return false;
    }
    let words: Vec<&str> = command
        .split_whitespace()
        .skip_while(|w| w.contains('=') && !w.starts_with('-'))
        .collect();
    let is_cdk = |w: &str| w == "cdk" || w == "aws-cdk" || w.starts_with("aws-cdk@") || w.starts_with("cdk@");
    let cli_at = match words.first().copied() {
        Some(w) if is_cdk(w) => Some(0),
        Some("npx" | "pnpx" | "bunx" | "yarn" | "pnpm" | "npm") => words
            .iter()
            .skip(1)
            .position(|w| !w.starts_with('-') && !matches!(*w, "exec" | "dlx" | "run"))
            .map(|p| p + 1)
            .filter(|&p| is_cdk(words[p])),
        _ => None,
    };
    let Some(at) = cli_at else { return false };
    let rest = &words[at + 1..];
    rest.iter().any(|w| matches!(*w, "synth" | "synthesize"))
        && !rest.iter().any(|w| *w == "-o" || w.starts_with("--output"))
}

/// The synth command as run: a `cdk` CLI synth gets `--output "$CDK_OUTDIR"`.
pub(crate) fn synth_command(command: &str) -> String {
    if is_cdk_cli_synth(command) {
        format!("{command} --output \"$CDK_OUTDIR\"")
    } else {
        command.to_owned()
    }
}

/// Runs the environment's synth command once into a fresh directory and reads the assembly.
pub async fn synth(ctx: &StageContext, stage: &str, env: &Environment) -> Result<CloudAssembly, StageError> {
    let outdir = ctx
        .fresh_dir(&format!("cdk.out-{}", env.name))
        .map_err(StageError::io("creating the synth output directory"))?;
    let mut vars = env_vars(ctx, env);
    vars.push(("CDK_OUTDIR".to_owned(), outdir.display().to_string()));
    vars.extend(synth_context(ctx, stage, env, &outdir)?);
    let mut unset = Vec::new();
    if let Some(checker) = &ctx.ports.credentials {
        match checker.synth_credentials(env).await {
            Ok(None) => {}
            Ok(Some(credentials)) => {
                ctx.info(
                    stage,
                    format!(
                        "synthesizing {} as {} (account {}), so that the `cdk` CLI's CDK_DEFAULT_ACCOUNT and its lookups are the environment's",
                        env.name, credentials.role_arn, env.account
                    ),
                );
                vars.extend(credentials.vars);
                // A profile would win over these in the AWS SDKs for JavaScript.
                unset.extend(["AWS_PROFILE", "AWS_DEFAULT_PROFILE"].map(str::to_owned));
            }
            Err(why) => ctx.warn(
                stage,
                format!(
                    "{why}; synthesizing {} with this runner's credentials, so a `cdk synth` sets CDK_DEFAULT_ACCOUNT to their account rather than {}",
                    env.name, env.account
                ),
            ),
        }
    }
    let command = synth_command(env.synth());
    ctx.info(
        stage,
        format!(
            "synthesizing {} for {}/{} into {}",
            env.name,
            env.account,
            env.region,
            outdir.display()
        ),
    );
    let spec = CommandSpec {
        stage: stage.to_owned(),
        prefix: format!("synth {}", env.name),
        command,
        cwd: ctx.checkout.clone(),
        env: vars,
        unset,
    };
    ctx.exec.run(&spec).await.map_err(|source| match source {
        ProcessError::Interrupted { .. } => StageError::Interrupted,
        source => StageError::Command {
            what: format!("synth of {}", env.name),
            source,
        },
    })?;
    read_assembly(&outdir, env)
}

/// The variables that hand the app the project's CDK context (`cdk.json`'s
/// `context` and `cdk.context.json`, docs/stages.md), as the `cdk` CLI does.
/// A context too large for a variable goes to a file beside `outdir`.
fn synth_context(
    ctx: &StageContext,
    stage: &str,
    env: &Environment,
    outdir: &Path,
) -> Result<Vec<(String, String)>, StageError> {
    let context = crate::cdk_context::read(&ctx.checkout).map_err(|e| {
        StageError::Failed(format!(
            "reading the CDK context for the synth of {}: {e}",
            env.name
        ))
    })?;
    if context.is_empty() {
        return Ok(Vec::new());
    }
    ctx.info(
        stage,
        format!(
            "passing {} CDK context keys of cdk.json and cdk.context.json to the synth",
            context.len()
        ),
    );
    // `cdk.out-dev-XXXXXX.context.json`: `with_extension` would cut the name at its first dot.
    let overflow = PathBuf::from(format!("{}.context.json", outdir.display()));
    crate::cdk_context::env_vars(&context, &overflow).map_err(StageError::io("writing the CDK context file"))
}

fn read_assembly(outdir: &Path, env: &Environment) -> Result<CloudAssembly, StageError> {
    if !outdir.join("manifest.json").exists() {
        return Err(StageError::Failed(format!(
            "the synth command `{}` wrote no cloud assembly (manifest.json) to CDK_OUTDIR={}: a CDK app honours CDK_OUTDIR, and a `cdk synth` command gets --output \"$CDK_OUTDIR\"; a command that copies or moves cdk.out must write there",
            env.synth(),
            outdir.display()
        )));
    }
    crate::assembly::read(outdir)
        .map_err(|e| StageError::Failed(format!("reading the cloud assembly in {}: {e}", outdir.display())))
}

/// The most annotations of one level shown one by one.
const ANNOTATIONS_SHOWN: usize = 20;

/// What the app's constructs reported (`Annotations`) on the stacks to
/// deploy, as the `cdk` CLI reports it: notes and warnings in the log, and
/// errors stop the stage before anything deploys. `cdk deploy` refuses a
/// stack with an error (a checker such as cdk-nag reports its findings
/// so); an app run directly exits 0 all the same.
fn annotations(
    ctx: &StageContext,
    stage: &str,
    env: &Environment,
    matched: &[(String, &StackArtifact)],
) -> Result<(), StageError> {
    let mut lines: BTreeMap<Level, Vec<String>> = BTreeMap::new();
    for (name, stack) in matched {
        for m in &stack.messages {
            lines
                .entry(m.level)
                .or_default()
                .push(format!("{name}: {}: {}", m.path, m.text));
        }
    }
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    for (level, what) in [(Level::Info, "note"), (Level::Warning, "warning")] {
        let found = lines.remove(&level).unwrap_or_default();
        for line in found.iter().take(ANNOTATIONS_SHOWN) {
            match level {
                Level::Warning => ctx.warn(stage, format!("from the CDK app: {line}")),
                _ => ctx.info(stage, format!("note from the CDK app: {line}")),
            }
        }
        if found.len() > ANNOTATIONS_SHOWN {
            let more = count(found.len() - ANNOTATIONS_SHOWN, &format!("more {what}"));
            ctx.info(stage, format!("... and {more} from the CDK app"));
        }
    }
    let Some(errors) = lines.remove(&Level::Error) else {
        return Ok(());
    };
    let mut shown: Vec<String> = errors.iter().take(ANNOTATIONS_SHOWN).cloned().collect();
    if errors.len() > ANNOTATIONS_SHOWN {
        shown.push(format!("... and {} more", errors.len() - ANNOTATIONS_SHOWN));
    }
    Err(StageError::Failed(ctx.exec.redactor.redact(&format!(
        "the CDK app reported {} on the stacks of {} (`Annotations.addError`, or a checker such as cdk-nag), which \
         `cdk deploy` refuses to deploy; nothing was deployed. Fix them in the app:\n  - {}",
        count(errors.len(), "error"),
        env.name,
        shown.join("\n  - ")
    ))))
}

/// Each configured stack (in list order) with its assembly artifact, matched
/// by artifact id or display name. Missing stacks are one error listing what
/// the assembly has.
pub(crate) fn match_stacks<'a>(
    env: &Environment,
    assembly: &'a CloudAssembly,
) -> Result<Vec<(String, &'a StackArtifact)>, StageError> {
    let mut matched = Vec::new();
    let mut missing = Vec::new();
    for s in &env.stacks {
        match assembly
            .stacks
            .iter()
            .find(|a| a.id == s.name || a.display_name.as_deref() == Some(s.name.as_str()))
        {
            Some(a) => matched.push((s.name.clone(), a)),
            None => missing.push(s.name.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(matched);
    }
    let has: Vec<String> = assembly
        .stacks
        .iter()
        .map(|a| match &a.display_name {
            Some(d) if d != &a.id => format!("{} (display name {d})", a.id),
            _ => a.id.clone(),
        })
        .collect();
    Err(StageError::Failed(format!(
        "environment {}: stack{} {} not in the cloud assembly, which has: {}; name each stack by its CDK id (artifact id) or display name",
        env.name,
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", "),
        if has.is_empty() {
            "no stacks".to_owned()
        } else {
            has.join(", ")
        }
    )))
}

/// The environment's plan with the assembly's own stack dependencies merged
/// in (configured names); its schedule is what the deploy follows. A cycle
/// is an error.
fn deploy_plan(
    ctx: &StageContext,
    stage: &str,
    env: &Environment,
    matched: &[(String, &StackArtifact)],
) -> Result<EnvironmentPlan, StageError> {
    let by_id: HashMap<&str, &str> = matched.iter().map(|(n, a)| (a.id.as_str(), n.as_str())).collect();
    let mut edges = Vec::new();
    for (name, artifact) in matched {
        for dep in &artifact.dependencies {
            match by_id.get(dep.as_str()) {
                Some(d) => edges.push((name.as_str(), *d)),
                None => ctx.warn(
                    stage,
                    format!(
                        "stack {name} depends on assembly stack {dep}, which is not configured for {}: aphex does not deploy it",
                        env.name
                    ),
                ),
            }
        }
    }
    let plan = EnvironmentPlan::new(env).map_err(|e| StageError::Failed(e.to_string()))?;
    plan.with_extra_dependencies(env, edges).map_err(|e| {
        StageError::Failed(format!(
            "{e} (dependsOn in the config combined with the CDK app's own stack dependencies): remove one of the dependencies"
        ))
    })
}

struct ProgressToReporter<'a> {
    stage: &'a str,
    reporter: &'a dyn Reporter,
    redactor: &'a crate::redact::Redactor,
    /// Per CloudFormation stack name: the deployer's latest step and the
    /// stack's latest own status, for the record of an interrupted deploy.
    in_flight: std::sync::Mutex<HashMap<String, InFlight>>,
    /// The environment's risk gates, when any is not `allow`.
    gates: Option<Gates<'a>>,
}

/// What the risk gates of one environment's deploy need.
struct Gates<'a> {
    env: &'a Environment,
    stateful: StatefulTypes,
    /// What a person approved of this run's risks in the environment (its
    /// gate's listing; empty: nobody did).
    approved: &'a [RiskyChange],
    /// Per CloudFormation stack name: what its gate stopped.
    stopped: std::sync::Mutex<HashMap<String, Verdict>>,
}

impl ProgressToReporter<'_> {
    fn info(&self, message: &str) {
        self.reporter.event(&Event::Info {
            stage: self.stage.to_owned(),
            message: self.redactor.redact(message),
        });
    }

    /// The verdict that stopped stack `stack_name`, if a gate did.
    fn gate_of(&self, stack_name: &str) -> Option<Verdict> {
        let gates = self.gates.as_ref()?;
        let stopped = gates.stopped.lock().unwrap_or_else(|e| e.into_inner());
        stopped.get(stack_name).cloned()
    }
}

/// One line per change, for the log and the prompt.
pub fn list_changes(changes: &[RiskyChange]) -> String {
    changes.iter().map(|c| format!("\n  - {c}")).collect::<String>()
}

/// The `riskGates` keys whose checks `changes` tripped (`iam`, `replacement`).
fn gate_keys(changes: &[RiskyChange]) -> String {
    let mut keys: Vec<&str> = changes.iter().map(|c| c.kind.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.iter()
        .map(|k| format!("riskGates.{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one stack was doing, as far as the deploy stage saw.
#[derive(Debug, Default)]
struct InFlight {
    /// The deployer's latest step (`executing its CREATE change set`).
    step: Option<String>,
    /// The stack's latest own status (`CREATE_IN_PROGRESS`).
    status: Option<String>,
}

impl ProgressToReporter<'_> {
    /// What stack `stack_name` was doing when the deploy stopped watching it.
    fn in_flight(&self, stack_name: &str) -> String {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let seen = in_flight.get(stack_name);
        match (
            seen.and_then(|s| s.step.as_deref()),
            seen.and_then(|s| s.status.as_deref()),
        ) {
            (Some(step), Some(status)) => format!("{stack_name}: {step}, last status {status}"),
            (Some(step), None) => format!("{stack_name}: {step}"),
            (None, Some(status)) => format!("{stack_name}: {status}"),
            (None, None) => format!("{stack_name}: starting"),
        }
    }
}

impl DeployProgress for ProgressToReporter<'_> {
    fn step(&self, stack: &str, step: &str) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.entry(stack.to_owned()).or_default().step = Some(step.to_owned());
    }

    fn reviews_changes(&self) -> bool {
        self.gates.is_some()
    }

    fn review(&self, stack: &str, changes: &[ResourceChange]) -> Review {
        let Some(gates) = &self.gates else {
            return Review::Execute;
        };
        // Redacted once, here: they are shown, recorded at a gate and
        // compared with what a person approved, always in this form.
        let risky: Vec<RiskyChange> = crate::risk::classify(changes, &gates.stateful)
            .into_iter()
            .map(|c| RiskyChange {
                stack: c.stack,
                logical_id: self.redactor.redact(&c.logical_id),
                resource_type: c.resource_type,
                kind: c.kind,
                why: self.redactor.redact(&c.why),
            })
            .collect();
        if risky.is_empty() {
            return Review::Execute;
        }
        let verdict = crate::risk::decide(&risky, gates.env, gates.approved);
        let why = match &verdict {
            Verdict::Proceed => {
                let how = if !gates.approved.is_empty() {
                    "approved for this run"
                } else {
                    "allowed by the environment's riskGates"
                };
                self.info(&format!(
                    "risk gate: stack {stack}: {} risky change{} {how}:{}",
                    risky.len(),
                    if risky.len() == 1 { "" } else { "s" },
                    list_changes(&risky)
                ));
                return Review::Execute;
            }
            Verdict::Deny(denied) => format!(
                "denied by {} in environment {}:{}\nchange the stack so that it does not make these changes, or set the gate to `approve` or `allow`",
                gate_keys(denied),
                gates.env.name,
                list_changes(denied)
            ),
            Verdict::Unapproved(unlisted) => format!(
                "stack {stack} changed after its risk gate listed it: {} risky change{} the gate did not list, so \
                 nobody approved {}:{}\nan approval covers only what the gate listed; run the pipeline again to \
                 see these at the gate",
                unlisted.len(),
                if unlisted.len() == 1 { "" } else { "s" },
                if unlisted.len() == 1 { "it" } else { "them" },
                list_changes(unlisted)
            ),
            Verdict::Approve(listed) => format!(
                "stopped at the risk gate ({}: approve) of environment {}: {} risky change{} need{} a person's approval:{}",
                gate_keys(listed),
                gates.env.name,
                listed.len(),
                if listed.len() == 1 { "" } else { "s" },
                if listed.len() == 1 { "s" } else { "" },
                list_changes(listed)
            ),
        };
        let mut stopped = gates.stopped.lock().unwrap_or_else(|e| e.into_inner());
        stopped.insert(stack.to_owned(), verdict);
        Review::Stop(self.redactor.redact(&why))
    }

    fn event(&self, e: &StackEvent) {
        if e.logical_id == e.stack && e.resource_type == "AWS::CloudFormation::Stack" {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            in_flight.entry(e.stack.clone()).or_default().status = Some(e.status.clone());
        }
        let reason = e.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        self.reporter.event(&Event::Info {
            stage: self.stage.to_owned(),
            message: self.redactor.redact(&format!(
                "{} {} ({}) {}{reason}",
                e.stack, e.logical_id, e.resource_type, e.status
            )),
        });
    }
}

fn failure_message(name: &str, e: &DeployError) -> String {
    let mut m = format!("stack {name} ({}) failed: {}", e.stack, e.message);
    for c in &e.root_causes {
        let reason = c.reason.as_deref().unwrap_or("no reason given");
        m.push_str(&format!(
            "\n  root cause: {} ({}) {}: {reason}",
            c.logical_id, c.resource_type, c.status
        ));
    }
    m
}

/// What deploying an environment's stacks did.
#[derive(Debug)]
pub struct Deployed {
    /// Every stack's result in plan order: succeeded, failed, skipped, or
    /// interrupted in flight.
    pub stacks: Vec<StackResult>,
    /// The outputs of the stacks that succeeded.
    pub outputs: Outputs,
    /// Why the deploy stopped short, if it did.
    pub failure: Option<DeployFailure>,
}

/// Why a deploy stopped short. Messages are redacted when made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployFailure {
    /// A stack failed (the first one: nothing new started after it).
    #[error("{report}")]
    Stack {
        /// The stack's configured name.
        stack: String,
        /// What failed, with the root-cause events.
        report: String,
    },
    /// A risk gate stopped a stack's change set until a person approves.
    #[error("stack {stack} stopped at a risk gate:{}", list_changes(.changes))]
    Gated {
        /// The stack's configured name.
        stack: String,
        /// The changes to approve.
        changes: Vec<RiskyChange>,
    },
    /// The run was cancelled while stacks were deploying.
    #[error(
        "interrupted while deploying {}; the CloudFormation operation was not cancelled and goes on by itself: the next run waits for it to end",
        .in_flight.join(", ")
    )]
    Interrupted {
        /// Each stack still deploying, with what it was doing.
        in_flight: Vec<String>,
    },
}

/// Deploys `plan`'s stacks as its schedule says: at most `concurrency` at
/// once, each only after the stacks it depends on succeeded; after a failure
/// or a cancellation nothing new starts.
async fn deploy_stacks(
    ctx: &StageContext,
    stage: &str,
    env: &Environment,
    assembly: &CloudAssembly,
    matched: &[(String, &StackArtifact)],
    plan: &EnvironmentPlan,
    approved: &[RiskyChange],
) -> Deployed {
    let artifacts: HashMap<&str, &StackArtifact> = matched.iter().map(|(n, a)| (n.as_str(), *a)).collect();
    let progress = ProgressToReporter {
        stage,
        reporter: ctx.reporter(),
        redactor: &ctx.exec.redactor,
        in_flight: Default::default(),
        gates: env.has_risk_gates().then(|| Gates {
            env,
            stateful: StatefulTypes::of(env),
            approved,
            stopped: Default::default(),
        }),
    };
    let mut schedule = plan.schedule();
    let mut results: BTreeMap<String, StackResult> = BTreeMap::new();
    let mut outputs = Outputs::new();
    let mut failure: Option<DeployFailure> = None;
    let mut running = FuturesUnordered::new();
    loop {
        if ctx.exec.cancel.is_cancelled() {
            schedule.stop();
        }
        for name in schedule.start_next() {
            let artifact = artifacts[name.as_str()];
            ctx.info(stage, format!("deploying stack {name} ({})", artifact.stack_name));
            let request = DeployRequest {
                pipeline: &ctx.run.pipeline,
                environment: env,
                assembly,
                stack: artifact,
            };
            let progress = &progress;
            running.push(async move {
                let t = Instant::now();
                let r = ctx.ports.deployer.deploy(request, progress).await;
                (name, r, t.elapsed().as_millis() as u64)
            });
        }
        if running.is_empty() {
            break;
        }
        let next = tokio::select! {
            n = running.next() => n,
            _ = ctx.exec.cancel.cancelled() => None,
        };
        let Some((name, result, millis)) = next else {
            let in_flight = plan
                .order
                .iter()
                .filter(|s| schedule.state(s) == Some(StackState::Running))
                .map(|s| format!("{s} ({})", progress.in_flight(&artifacts[s.as_str()].stack_name)))
                .collect();
            failure = Some(DeployFailure::Interrupted { in_flight });
            break;
        };
        let stack_name = artifacts[name.as_str()].stack_name.clone();
        let result = match result {
            Ok(StackOutcome {
                changed, outputs: o, ..
            }) => {
                schedule.finished(&name);
                ctx.info(
                    stage,
                    format!(
                        "stack {name}: {} in {:.1}s",
                        if changed { "deployed" } else { "no changes" },
                        millis as f64 / 1000.0
                    ),
                );
                let values: BTreeMap<String, String> = o.into_iter().map(|o| (o.key, o.value)).collect();
                outputs.insert(name.clone(), values.clone());
                StackResult {
                    name: name.clone(),
                    stack_name,
                    status: Status::Succeeded,
                    changed: Some(changed),
                    millis,
                    error: None,
                    outputs: values,
                }
            }
            Err(e) => {
                // Stacks already deploying finish; nothing new starts.
                schedule.failed(&name);
                schedule.stop();
                let report = ctx.exec.redactor.redact(&failure_message(&name, &e));
                ctx.warn(stage, &report);
                failure.get_or_insert_with(|| match progress.gate_of(&stack_name) {
                    Some(Verdict::Approve(changes)) => DeployFailure::Gated {
                        stack: name.clone(),
                        changes,
                    },
                    _ => DeployFailure::Stack {
                        stack: name.clone(),
                        report: report.clone(),
                    },
                });
                StackResult {
                    name: name.clone(),
                    stack_name,
                    status: Status::Failed,
                    changed: None,
                    millis,
                    error: Some(report),
                    outputs: BTreeMap::new(),
                }
            }
        };
        results.insert(name, result);
    }
    let stacks = plan
        .order
        .iter()
        .map(|name| {
            results.remove(name).unwrap_or_else(|| {
                let stack_name = artifacts[name.as_str()].stack_name.clone();
                // Still running here means the deploy was interrupted.
                let in_flight = schedule.state(name) == Some(StackState::Running);
                unfinished(
                    name,
                    stack_name,
                    in_flight.then(|| progress.in_flight(&artifacts[name.as_str()].stack_name)),
                )
            })
        })
        .collect();
    Deployed {
        stacks,
        outputs,
        failure,
    }
}

/// The result of a stack that did not finish: interrupted while `in_flight`
/// (what it was doing), else skipped.
fn unfinished(name: &str, stack_name: String, in_flight: Option<String>) -> StackResult {
    StackResult {
        name: name.to_owned(),
        stack_name,
        status: if in_flight.is_some() {
            Status::Interrupted
        } else {
            Status::Skipped
        },
        changed: None,
        millis: 0,
        error: in_flight.map(|doing| format!("interrupted in flight ({doing})")),
        outputs: BTreeMap::new(),
    }
}

/// Writes the outputs document (pretty JSON, configured stack names as
/// keys), atomically: the test stage, Argo and `hooks.post` read it.
pub(crate) fn write_outputs(path: &Path, outputs: &Outputs) -> Result<(), StageError> {
    let text = serde_json::to_string_pretty(outputs).expect("outputs serialize") + "\n";
    crate::files::write_atomic(path, text.as_bytes())
        .map_err(StageError::io(format!("writing {}", path.display())))
}

/// Reads an outputs document written by `write_outputs` (or passed by Argo).
pub fn read_outputs(path: &Path) -> Result<Outputs, StageError> {
    let text = std::fs::read_to_string(path).map_err(StageError::io(format!(
        "reading the stack outputs {}",
        path.display()
    )))?;
    parse_outputs(&text).map_err(|e| StageError::Failed(format!("{}: {e}", path.display())))
}

/// A text that is not a stack outputs document.
#[derive(Debug, thiserror::Error)]
#[error("not a stack outputs document ({{\"Stack\": {{\"OutputKey\": \"value\"}}}}): {source}")]
pub(crate) struct OutputsError {
    /// Why it does not parse as one.
    #[from]
    source: serde_json::Error,
}

/// Parses an outputs document: `{"Stack": {"Key": "value"}}`.
pub(crate) fn parse_outputs(text: &str) -> Result<Outputs, OutputsError> {
    Ok(serde_json::from_str(text)?)
}

/// Where the deploy stage of `env` writes outputs under a run's scratch space.
pub(crate) fn outputs_path(dir: &Path, env: &str) -> PathBuf {
    dir.join(env).join(OUTPUTS_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdk_cli_synth_gets_an_output_directory() {
        for cmd in [
            "npx cdk synth",
            "cdk synth",
            "npx aws-cdk@2 synth -q",
            "pnpm exec cdk synth",
            "yarn cdk synth",
            "CDK_DEBUG=1 npx cdk synth",
        ] {
            assert_eq!(
                synth_command(cmd),
                format!("{cmd} --output \"$CDK_OUTDIR\""),
                "{cmd}"
            );
        }
        for cmd in [
            "node bin/app.js",
            "npx cdk synth --output somewhere",
            "npx cdk synth -o x",
            "npm run synth",
            "npx cdk synth && cp -r cdk.out \"$CDK_OUTDIR\"",
            "npx cdk deploy",
        ] {
            assert_eq!(synth_command(cmd), cmd, "{cmd}");
        }
    }
}
