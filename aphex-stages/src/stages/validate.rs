//! The validate stage: everything that can be known wrong before anything
//! runs. Config (schema + semantics, done by the loader before this), every
//! environment's credentials, required CDK context, the programs commands
//! start with, the stack source paths. All problems in one report. Then,
//! for a pushed deploy run, whether it is a duplicate (`duplicate.rs`):
//! if so, the run ends here. As the first stage of every run, it posts the
//! `pending` commit status (`commit_status.rs`).

use std::path::Path;

use super::{StageError, StageOutcome};
use crate::context::StageContext;
use crate::process::{program_available, program_of};

const STAGE: &str = "validate";

/// Runs the validate stage on an already loaded config, for every environment.
pub async fn run(ctx: &StageContext) -> Result<StageOutcome, StageError> {
    run_for(ctx, None).await
}

/// Runs the validate stage, checking only environment `only` when given
/// (`aphex run --local --env NAME`: the credentials, context, programs and
/// paths of environments this run does not deploy are not its concern, and
/// checking them costs a call per account). The config itself is always
/// checked whole, by the loader.
pub async fn run_for(ctx: &StageContext, only: Option<&str>) -> Result<StageOutcome, StageError> {
    post_started(ctx).await;
    let mut problems = Vec::new();
    problems.extend(credential_problems(ctx, only).await);
    problems.extend(context_problems(&ctx.checkout, &ctx.config, only));
    problems.extend(program_problems(&ctx.checkout, &ctx.config, only));
    problems.extend(path_problems(&ctx.checkout, &ctx.config, only));
    if problems.is_empty() {
        match only {
            Some(env) => ctx.info(
                STAGE,
                format!("config, and environment {env}'s context, tools and stack paths are valid (only {env} runs)"),
            ),
            None => ctx.info(STAGE, "config, context, tools and stack paths are valid"),
        }
        let ends_run = crate::duplicate::check(ctx, STAGE).await;
        if let Some(end) = &ends_run {
            ctx.info(STAGE, format!("duplicate: {}", end.message));
        }
        Ok(StageOutcome {
            ends_run,
            ..StageOutcome::default()
        })
    } else {
        Err(StageError::Invalid(
            problems.iter().map(|p| ctx.exec.redactor.redact(p)).collect(),
        ))
    }
}

/// Posts the run's `pending` commit status, when statuses are wired. A
/// refusal or an unreachable GitHub is a warning: the status is for the
/// people watching, and the run goes on without it.
async fn post_started(ctx: &StageContext) {
    if let Some(statuses) = &ctx.ports.statuses
        && let Err(e) = statuses.post(&crate::commit_status::started(&ctx.run)).await
    {
        ctx.warn(STAGE, e.to_string());
    }
}

/// The environments to check, with their index in the config (which the
/// messages name): all, or only `only`.
fn checked<'c>(
    config: &'c aphex_config::Config,
    only: Option<&'c str>,
) -> impl Iterator<Item = (usize, &'c aphex_config::Environment)> + 'c {
    config
        .environments
        .iter()
        .enumerate()
        .filter(move |(_, env)| only.is_none_or(|name| env.name == name))
}

async fn credential_problems(ctx: &StageContext, only: Option<&str>) -> Vec<String> {
    let Some(checker) = &ctx.ports.credentials else {
        ctx.warn(
            STAGE,
            "credentials not checked: no credential checker is wired for this run",
        );
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (i, env) in checked(&ctx.config, only) {
        match checker.check(env).await {
            Ok(id) if id.account == env.account => ctx.info(
                STAGE,
                format!("environments[{i}] {}: credentials reach account {} as {}", env.name, id.account, id.arn),
            ),
            Ok(id) => problems.push(format!(
                "environments[{i}] {}: credentials reach account {} (as {}), not {}: check roleArn or the credentials of this runner",
                env.name, id.account, id.arn, env.account
            )),
            Err(e) => problems.push(format!("environments[{i}] {}: {e}", env.name)),
        }
    }
    problems
}

/// `cdk.json` and `cdk.context.json` must be readable (every synth gets
/// their context), and the `requiredContext` keys of the environments
/// checked must be in one of them.
pub(crate) fn context_problems(
    checkout: &Path,
    config: &aphex_config::Config,
    only: Option<&str>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let context = crate::cdk_context::read(checkout).unwrap_or_else(|e| {
        problems.push(e.to_string());
        serde_json::Map::new()
    });
    let has = |key: &str| context.contains_key(key);
    for (i, env) in checked(config, only) {
        for (k, key) in env.required_context.iter().enumerate() {
            if !has(key) {
                problems.push(format!(
                    "environments[{i}].requiredContext[{k}]: CDK context key `{key}` is in neither cdk.json (\"context\") nor cdk.context.json: add it to one of them"
                ));
            }
        }
    }
    problems
}

/// The first program of every build command, and of the test, hook and
/// synth commands of the environments checked, must exist.
pub(crate) fn program_problems(
    checkout: &Path,
    config: &aphex_config::Config,
    only: Option<&str>,
) -> Vec<String> {
    let mut commands: Vec<(String, &str)> = config
        .build
        .commands
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("build.commands[{i}]"), c.as_str()))
        .collect();
    for (e, env) in checked(config, only) {
        let base = format!("environments[{e}]");
        commands.push((format!("{base}.synth"), env.synth()));
        for (i, c) in env.pre_hooks().iter().enumerate() {
            commands.push((format!("{base}.hooks.pre[{i}]"), c));
        }
        for (i, c) in env.post_hooks().iter().enumerate() {
            commands.push((format!("{base}.hooks.post[{i}]"), c));
        }
        for (i, c) in env.test_commands().iter().enumerate() {
            commands.push((format!("{base}.tests.commands[{i}]"), c));
        }
    }
    let mut problems = Vec::new();
    for (field, command) in commands {
        if let Some(program) = program_of(command)
            && !program_available(&program, checkout)
        {
            problems.push(format!(
                "{field}: `{program}` (which `{command}` starts with) is not on PATH: install it in the builder image or fix the command"
            ));
        }
    }
    problems
}

/// Every stack's `path` (in the environments checked) must exist in the checkout.
pub(crate) fn path_problems(
    checkout: &Path,
    config: &aphex_config::Config,
    only: Option<&str>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (e, env) in checked(config, only) {
        for (s, stack) in env.stacks.iter().enumerate() {
            if !checkout.join(&stack.path).exists() {
                problems.push(format!(
                    "environments[{e}].stacks[{s}].path: `{}` (stack {}) does not exist at this commit",
                    stack.path, stack.name
                ));
            }
        }
    }
    problems
}
