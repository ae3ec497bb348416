//! The Argo WorkflowTemplate: the pipeline's topology and nothing else.
//!
//! Every stage task runs the one shared `stage` template, a container running
//! `aphex-runner <stage> --env=<env> ...` whose values reach the runner as
//! arguments and environment variables, never through a shell. Commands,
//! stacks and tests are read by the runner from the config at the commit, so
//! the template grows with the number of environments, not stacks.
//!
//! The runner contract (see docs/pipeline.md): `--env=` with an empty value
//! means "no environment"; the repository and the branch are literals of
//! this template (derived from the config), and only the commit SHA and a
//! pull request's number are workflow parameters; `deploy` records the
//! captured stack outputs in the run record, where `test` reads them.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::plan::{Stage, StageKind, Stages};

/// The API version of every Argo Workflows object.
pub const ARGO_WORKFLOWS_API: &str = "argoproj.io/v1alpha1";
/// Workflow parameters, in declaration order: values the Sensor can check
/// (docs/security.md), never free text.
pub const WORKFLOW_PARAMETERS: [&str; 2] = ["commit-sha", "pull-request"];
/// The deploy entrypoint.
pub const MAIN_ENTRYPOINT: &str = "main";
/// The pull-request entrypoint: validate, build, synth per environment.
pub const VALIDATE_PR_ENTRYPOINT: &str = "validate-pr";
/// The shared container template of every stage task.
const STAGE_TEMPLATE: &str = "stage";
/// The shared suspend template of every approval task.
const APPROVAL_TEMPLATE: &str = "approval";
/// The exit handler.
const FINALIZE_TEMPLATE: &str = "finalize";
/// The variable the runner reads the notification webhook URL from.
pub const SLACK_WEBHOOK_ENV: &str = "APHEX_SLACK_WEBHOOK_URL";
/// The key of `notifications.slackWebhookSecret` that holds the URL.
pub const SLACK_WEBHOOK_SECRET_KEY: &str = "url";
/// The runner binary in both images.
const RUNNER: &str = "aphex-runner";

/// A whole run may wait for approvals overnight, but not forever.
const WORKFLOW_DEADLINE_SECONDS: u64 = 24 * 3600;
/// One stage pod: large CloudFormation deploys can take an hour or more.
const STAGE_DEADLINE_SECONDS: u64 = 3 * 3600;
/// Finished runs stay visible for a day, failed ones for a week.
const TTL_AFTER_SUCCESS_SECONDS: u64 = 24 * 3600;
const TTL_AFTER_FAILURE_SECONDS: u64 = 7 * 24 * 3600;
/// PR validation synthesizes at most this many environments at once.
const VALIDATE_PR_PARALLELISM: u64 = 4;

/// The label every rendered object carries, with the value `aphex`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The label naming the pipeline an object belongs to.
pub const PIPELINE_LABEL: &str = "aphex.dev/pipeline";

/// The labels every rendered object carries.
pub fn labels(config: &Config) -> Value {
    json!({
        MANAGED_BY_LABEL: "aphex",
        PIPELINE_LABEL: config.pipeline_name(),
    })
}

/// The clone URL of the configured GitHub repository, if any.
pub fn repo_url(config: &Config) -> Option<String> {
    config.settings().github.as_ref().map(|gh| gh.clone_url())
}

/// The WorkflowTemplate named after the pipeline: its DAG mirrors the
/// plan's stages ([`Stages`]).
pub fn workflow_template(config: &Config) -> Value {
    let stages = Stages::new(config);
    let settings = config.settings();
    let name = config.pipeline_name();
    let parameters: Vec<Value> = WORKFLOW_PARAMETERS
        .iter()
        .map(|p| match *p {
            // No default: a run without a commit must fail at submission.
            "commit-sha" => json!({"name": p}),
            // Empty: a deploy run.
            _ => json!({"name": p, "value": ""}),
        })
        .collect();
    let mut template = json!({
        "apiVersion": ARGO_WORKFLOWS_API,
        "kind": "WorkflowTemplate",
        "metadata": {
            "name": name,
            "namespace": settings.namespace(),
            "labels": labels(config),
        },
        "spec": {
            "entrypoint": MAIN_ENTRYPOINT,
            "serviceAccountName": settings.service_account(name),
            "arguments": {"parameters": parameters},
            "onExit": FINALIZE_TEMPLATE,
            "activeDeadlineSeconds": WORKFLOW_DEADLINE_SECONDS,
            // Failed pods stay for `kubectl logs`; successful ones go at once.
            "podGC": {"strategy": "OnPodSuccess"},
            "ttlStrategy": {
                "secondsAfterSuccess": TTL_AFTER_SUCCESS_SECONDS,
                "secondsAfterFailure": TTL_AFTER_FAILURE_SECONDS,
            },
            "workflowMetadata": {"labels": labels(config)},
        },
    });
    // Moved in after `json!`, which would copy them value by value.
    template["spec"]["templates"] = Value::Array(vec![
        main_dag(config, &stages),
        validate_pr_dag(config),
        stage_template(config),
        approval_template(),
        finalize_template(config),
    ]);
    template
}

/// The image a stage runs in: the builder for build and test (they run the
/// project's own toolchain), the deployer for everything else.
fn image(config: &Config, kind: StageKind) -> String {
    let settings = config.settings();
    match kind {
        StageKind::Build | StageKind::Test => settings.builder_image().to_owned(),
        _ => settings.deployer_image().to_owned(),
    }
}

/// A task of the shared stage template. The image argument is omitted when
/// it is the template's default (the deployer), which keeps 100 environments small.
fn stage_task(config: &Config, name: &str, stage: &str, kind: StageKind, env: Option<&str>) -> Value {
    let mut args = vec![json!({"name": "stage", "value": stage})];
    if let Some(env) = env {
        args.push(json!({"name": "env", "value": env}));
    }
    let img = image(config, kind);
    if img != config.settings().deployer_image() {
        args.push(json!({"name": "image", "value": img}));
    }
    let mut task = json!({"name": name, "template": STAGE_TEMPLATE, "arguments": {}});
    task["arguments"]["parameters"] = Value::Array(args);
    task
}

fn task_for(config: &Config, stage: &Stage) -> Value {
    let name = stage.task_name();
    let env = stage.env.as_deref();
    match stage.kind {
        StageKind::Approve => json!({"name": name, "template": APPROVAL_TEMPLATE}),
        kind => stage_task(config, &name, kind.as_str(), kind, env),
    }
}

fn with_dependencies(mut task: Value, deps: &[String]) -> Value {
    if !deps.is_empty() {
        let obj = task.as_object_mut().expect("tasks are objects");
        // Keep `name` first and `dependencies` second for readable diffs.
        let rest: Vec<(String, Value)> = std::mem::take(obj).into_iter().collect();
        for (k, v) in rest {
            obj.insert(k.clone(), v);
            if k == "name" {
                let deps = deps.iter().map(|d| Value::String(d.clone())).collect();
                obj.insert("dependencies".into(), Value::Array(deps));
            }
        }
    }
    task
}

/// `main`: the plan's stages as a DAG, each task depending on its predecessor.
fn main_dag(config: &Config, stages: &Stages) -> Value {
    let tasks: Vec<Value> = stages
        .with_dependencies()
        .into_iter()
        .map(|(s, deps)| {
            let deps: Vec<String> = deps.iter().map(|d| d.task_name()).collect();
            with_dependencies(task_for(config, s), &deps)
        })
        .collect();
    let mut dag = json!({
        "name": MAIN_ENTRYPOINT,
        // Runs of one pipeline queue here rather than on the whole workflow,
        // so a deploy waiting for an approval does not hold up the
        // validate-pr runs of open pull requests.
        "synchronization": {"mutexes": [{"name": config.pipeline_name()}]},
        "dag": {},
    });
    dag["dag"]["tasks"] = Value::Array(tasks);
    dag
}

/// `validate-pr`: validate, build, then a synth-only check per environment.
/// Only its tasks pass the pull request's number to the runner: a stage of
/// `main` is always a deploy run's, whose commit must be on the branch,
/// whatever `pull-request` a submitter sets.
fn validate_pr_dag(config: &Config) -> Value {
    let pr_task = |task: Value| {
        let mut task = task;
        task["arguments"]["parameters"]
            .as_array_mut()
            .expect("stage_task builds a parameter list")
            .push(json!({"name": "pull-request", "value": "{{workflow.parameters.pull-request}}"}));
        task
    };
    let mut tasks = vec![
        pr_task(stage_task(
            config,
            "validate",
            "validate",
            StageKind::Validate,
            None,
        )),
        with_dependencies(
            pr_task(stage_task(config, "build", "build", StageKind::Build, None)),
            &["validate".to_owned()],
        ),
    ];
    for env in &config.environments {
        let task = stage_task(
            config,
            &format!("synth-{}", env.name),
            "synth",
            StageKind::Deploy,
            Some(&env.name),
        );
        tasks.push(with_dependencies(pr_task(task), &["build".to_owned()]));
    }
    let mut dag = json!({
        "name": VALIDATE_PR_ENTRYPOINT,
        "parallelism": VALIDATE_PR_PARALLELISM,
        "dag": {},
    });
    dag["dag"]["tasks"] = Value::Array(tasks);
    dag
}

/// Arguments every runner invocation gets: the run's identity. The
/// repository and the branch come from the config this template was
/// rendered from, never from whoever submits a run; the runner checks the
/// commit against that branch.
fn run_args(config: &Config) -> Vec<Value> {
    vec![
        json!("--commit-sha={{workflow.parameters.commit-sha}}"),
        json!(format!("--branch={}", crate::triggers::deploy_branch(config))),
        json!(format!("--repo-url={}", repo_url(config).unwrap_or_default())),
        json!("--workflow-id={{workflow.name}}"),
    ]
}

/// The ConfigMap holding the pipeline stack's outputs (written by bootstrap,
/// or rendered with [`crate::RenderOptions::artifact_bucket`]).
pub fn stack_outputs_config_map(config: &Config) -> String {
    format!("{}-pipeline-stack", config.pipeline_name())
}

/// What the runner reads from its environment.
fn run_env(config: &Config) -> Vec<Value> {
    vec![
        json!({"name": "APHEX_PIPELINE", "value": config.pipeline_name()}),
        // The created bucket's name is known only once the pipeline stack
        // exists; reading it from a ConfigMap keeps this template a pure
        // function of the config (`pipeline.artifacts.bucket` wins when set).
        json!({"name": "APHEX_ARTIFACT_BUCKET", "valueFrom": {"configMapKeyRef": {
            "name": stack_outputs_config_map(config),
            "key": "ArtifactBucketName",
            "optional": true,
        }}}),
    ]
}

/// Retries for transient errors only (pod evicted, node lost): a command
/// that fails is a real failure and is not retried.
fn retry_strategy() -> Value {
    json!({
        "limit": 2,
        "retryPolicy": "OnError",
        "backoff": {"duration": "30s", "factor": 2, "maxDuration": "10m"},
    })
}

fn stage_template(config: &Config) -> Value {
    let mut args = vec![
        json!("{{inputs.parameters.stage}}"),
        json!("--env={{inputs.parameters.env}}"),
    ];
    args.extend(run_args(config));
    args.push(json!("--pull-request={{inputs.parameters.pull-request}}"));
    // Stack outputs go from deploy to test through the run record, not as
    // Argo parameters: a parameter is bounded by the pod's annotations and
    // environment (an environment string over 128 KiB stops exec), and
    // Argo would evaluate any `{{` in it.
    json!({
        "name": STAGE_TEMPLATE,
        "inputs": {"parameters": [
            {"name": "stage"},
            {"name": "env", "default": ""},
            {"name": "image", "default": config.settings().deployer_image()},
            // Set by `validate-pr`'s tasks only (see there).
            {"name": "pull-request", "default": ""},
        ]},
        "activeDeadlineSeconds": STAGE_DEADLINE_SECONDS,
        "retryStrategy": retry_strategy(),
        "container": {
            "image": "{{inputs.parameters.image}}",
            "command": [RUNNER],
            "args": args,
            "env": run_env(config),
        },
    })
}

fn approval_template() -> Value {
    // Resumed by a person (`argo resume` or the UI); bounded by the workflow deadline.
    json!({"name": APPROVAL_TEMPLATE, "suspend": {}})
}

fn finalize_template(config: &Config) -> Value {
    let mut args = vec![json!("finalize")];
    args.extend(run_args(config));
    // The exit handler of both entrypoints; finalize checks nothing, the
    // number only names the run's ref in the record.
    args.push(json!("--pull-request={{workflow.parameters.pull-request}}"));
    let mut env = run_env(config);
    env.push(json!({"name": "APHEX_WORKFLOW_STATUS", "value": "{{workflow.status}}"}));
    // Only finalize sends notifications, so only its pod sees the webhook
    // URL: build and test pods run the repository's own commands. Optional,
    // so a missing Secret costs the notification (the runner warns), never
    // the run record.
    if let Some(secret) = config
        .settings()
        .notifications
        .as_ref()
        .and_then(|n| n.slack_webhook_secret.as_deref())
    {
        env.push(json!({"name": SLACK_WEBHOOK_ENV, "valueFrom": {"secretKeyRef": {
            "name": secret,
            "key": SLACK_WEBHOOK_SECRET_KEY,
            "optional": true,
        }}}));
    }
    json!({
        "name": FINALIZE_TEMPLATE,
        "activeDeadlineSeconds": 600,
        "retryStrategy": retry_strategy(),
        "container": {
            "image": config.settings().deployer_image(),
            "command": [RUNNER],
            "args": args,
            "env": env,
        },
    })
}
