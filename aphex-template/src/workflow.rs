//! The Argo WorkflowTemplate: the pipeline's topology and nothing else.
//!
//! Every stage task runs a shared stage template, a container running
//! `aphex-runner <stage> --env=<env> ...` whose values reach the runner as
//! arguments and environment variables, never through a shell. Commands,
//! stacks and tests are read by the runner from the config at the commit, so
//! the template grows with the number of environments, not stacks.
//!
//! Pods run as the pipeline's own service accounts with no Kubernetes token
//! (`automountServiceAccountToken: false`), except the pipeline stage's
//! (`pipeline-stage`), which patches the WorkflowTemplate; Argo's executor
//! containers report outputs with the Argo executor account's token
//! (`executor.serviceAccountName`). `validate-pr` and its exit handler run
//! as the pull-request account. Every container runs non-root with no
//! capabilities and no privilege escalation, under the runtime's seccomp
//! profile. See docs/security.md.
//!
//! The runner contract (see docs/pipeline.md): `--env=` with an empty value
//! means "no environment"; the repository and the branch are literals of
//! this template (derived from the config), and only the commit SHA and a
//! pull request's number are workflow parameters; `deploy` records the
//! captured stack outputs in the run record, where `test` reads them. The
//! `validate` task has a template of its own: it may get the GitHub token
//! (it posts the `pending` commit status) and it says, in its `run`
//! output, whether the run goes on; every later task of `main` runs only
//! `when` it does. The pipeline stage's template has a `run` output too
//! (`superseded` when it restarted the run on a new topology), which every
//! task after it reads as well.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::plan::{Stage, StageKind, Stages};
use crate::submit::{APPROVED_BY, risk_gate_task};

/// The API version of every Argo Workflows object.
pub const ARGO_WORKFLOWS_API: &str = "argoproj.io/v1alpha1";
/// Workflow parameters, in declaration order: values the Sensor can check
/// (docs/security.md), never free text.
pub const WORKFLOW_PARAMETERS: [&str; 2] = ["commit-sha", "pull-request"];
/// The deploy entrypoint.
pub const MAIN_ENTRYPOINT: &str = "main";
/// The pull-request entrypoint: validate, build, synth per environment.
pub const VALIDATE_PR_ENTRYPOINT: &str = "validate-pr";
/// The shared container template of every stage task of a deploy run.
pub const STAGE_TEMPLATE: &str = "stage";
/// The pipeline stage's template: the one pod with a Kubernetes token.
pub const PIPELINE_STAGE_TEMPLATE: &str = "pipeline-stage";
/// The container template of `validate-pr`'s tasks (the pull-request account).
pub const PR_STAGE_TEMPLATE: &str = "pr-stage";
/// The exit handler's DAG: `finalize` or `finalize-pr`, by entrypoint.
const EXIT_TEMPLATE: &str = "exit";
/// The exit handler of `validate-pr` runs.
const FINALIZE_PR_TEMPLATE: &str = "finalize-pr";
/// The variable the runner reads the workflow's namespace from.
pub const NAMESPACE_ENV: &str = "APHEX_NAMESPACE";
/// The validate task's template in `main`: [`STAGE_TEMPLATE`] plus the
/// GitHub token (it posts the `pending` commit status) and the `run` output.
pub const VALIDATE_TEMPLATE: &str = "validate";
/// The validate task's template in `validate-pr`: [`PR_STAGE_TEMPLATE`]
/// plus the GitHub token.
pub const PR_VALIDATE_TEMPLATE: &str = "pr-validate";
/// The shared suspend template of every approval task.
const APPROVAL_TEMPLATE: &str = "approval";
/// The exit handler.
const FINALIZE_TEMPLATE: &str = "finalize";
/// The variable the runner reads the notification webhook URL from.
pub const SLACK_WEBHOOK_ENV: &str = "APHEX_SLACK_WEBHOOK_URL";
/// The key of `notifications.slackWebhookSecret` that holds the URL.
pub const SLACK_WEBHOOK_SECRET_KEY: &str = "url";
/// The variable the runner reads the GitHub token from (commit statuses).
pub const GITHUB_TOKEN_ENV: &str = "APHEX_GITHUB_TOKEN";
/// The key of `github.tokenSecret` that holds the token.
pub const GITHUB_TOKEN_SECRET_KEY: &str = "token";
/// Where the runner writes its Argo output parameter files.
pub const OUTPUTS_DIR: &str = "/tmp/aphex/outputs";
/// The output (and file in [`OUTPUTS_DIR`]) of the tasks that may end a
/// deploy run early, validate and pipeline: [`RUN_CONTINUES`], or why the
/// run ends there (`duplicate` from validate, `superseded` from the
/// pipeline stage when a restart on the new topology took over).
pub const RUN_OUTPUT: &str = "run";
/// [`RUN_OUTPUT`]'s value when the run goes on (also its default, should
/// the file be missing).
pub const RUN_CONTINUES: &str = "continue";
/// The output (and file in [`OUTPUTS_DIR`]) of `deploy-<env>` when the
/// environment has a risk gate: the gate it stopped at (`risk-<env>`, a
/// word of the topology, never config text: the suspend's `when` reads
/// it), or [`NO_RISK`].
pub const RISK_OUTPUT: &str = "risk";
/// [`RISK_OUTPUT`]'s value (and default) when no gate stopped the deploy.
pub const NO_RISK: &str = "none";
/// The suspend template of every risk gate (`risk-<env>`).
const RISK_GATE_TEMPLATE: &str = "risk-gate";
/// The DAG template of the deploy of an environment with a risk gate.
pub const GATED_DEPLOY_TEMPLATE: &str = "gated-deploy";
/// The stage template's input (and the runner's `--risk-gate=`) saying
/// where a deploy stands to its environment's risk gate: `pause` in
/// `deploy-<env>`, `resume` in `resume-<env>`, empty elsewhere.
const RISK_GATE_INPUT: &str = "risk-gate";
/// The runner binary in both images.
const RUNNER: &str = "aphex-runner";

/// The WorkflowTemplate's `activeDeadlineSeconds`: a whole run may wait for
/// approvals overnight, but not forever. A run still recorded as running
/// after this long never reached its finalize (`aphex history` shows it
/// interrupted: `aphex_stages::record::settle_overdue`).
pub const WORKFLOW_DEADLINE_SECONDS: u64 = aphex_config::RUN_DEADLINE_SECONDS;
/// One stage pod: large CloudFormation deploys can take an hour or more.
const STAGE_DEADLINE_SECONDS: u64 = 3 * 3600;
/// Finished runs stay visible for a day, failed ones for a week.
const TTL_AFTER_SUCCESS_SECONDS: u64 = 24 * 3600;
const TTL_AFTER_FAILURE_SECONDS: u64 = 7 * 24 * 3600;
/// PR validation synthesizes at most this many environments at once.
const VALIDATE_PR_PARALLELISM: u64 = 4;

/// The pod security context of every stage pod: non-root, the runtime's
/// seccomp profile. (The images run as user 10001; see docs/security.md.)
pub fn pod_security_context() -> Value {
    json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
}

/// The security context of every stage container: no privilege
/// escalation, no capabilities.
pub fn container_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": true,
    })
}

/// Requests and limits of a stage container: `pipeline.resources` (CPU is
/// requested, not limited; memory is both).
fn resources(config: &Config) -> Value {
    let settings = config.settings();
    json!({
        "requests": {"cpu": settings.cpu(), "memory": settings.memory()},
        "limits": {"memory": settings.memory()},
    })
}

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
            "serviceAccountName": crate::rbac::workflow_service_account(config),
            // No stage pod gets a Kubernetes token unless its template says
            // so (only `pipeline-stage`); Argo's executor containers get the
            // executor account's token instead, to report outputs.
            "automountServiceAccountToken": false,
            "executor": {"serviceAccountName": crate::rbac::argo_executor_service_account(config)},
            "securityContext": pod_security_context(),
            "arguments": {"parameters": parameters},
            "onExit": EXIT_TEMPLATE,
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
        validate_template(config, StageTemplate::Deploy),
        validate_template(config, StageTemplate::PullRequest),
        deploy_stage_template(config),
        stage_template(config, StageTemplate::Pipeline),
        stage_template(config, StageTemplate::PullRequest),
        approval_template(),
        exit_dag(),
        finalize_template(config, StageTemplate::Deploy),
        finalize_template(config, StageTemplate::PullRequest),
    ]);
    if has_risk_gates(config) {
        template["spec"]["templates"]
            .as_array_mut()
            .expect("set above")
            .extend([gated_deploy_template(), risk_gate_template()]);
    }
    // The pipeline pod compares the topology it renders from the commit
    // with the one its own run was started from, which Argo keeps with the
    // run: the live template may already be the new one (an earlier
    // attempt of the stage applied it) or another run's.
    let stages = topology(&template).join(",");
    let pipeline = template["spec"]["templates"]
        .as_array_mut()
        .expect("set above")
        .iter_mut()
        .find(|t| t["name"] == PIPELINE_STAGE_TEMPLATE)
        .expect("the pipeline stage's template is rendered");
    pipeline["container"]["args"]
        .as_array_mut()
        .expect("the stage template has an argument list")
        .push(json!(format!("{TOPOLOGY_ARG}={stages}")));
    template
}

/// The runner flag that tells the pipeline stage its run's topology (the
/// [`topology`] of the template it was rendered in, comma-separated).
pub const TOPOLOGY_ARG: &str = "--topology";

/// The stages a [`TOPOLOGY_ARG`] value names.
pub fn parse_topology(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A WorkflowTemplate's topology: the task names of its `main` DAG, in
/// order, with each gated deploy's risk gate (`risk-<env>`, inside its
/// `gated-deploy` DAG) after it, so that a gate added or removed changes
/// the topology too.
pub fn topology(wt: &Value) -> Vec<String> {
    let entry = wt["spec"]["entrypoint"].as_str().unwrap_or(MAIN_ENTRYPOINT);
    wt["spec"]["templates"]
        .as_array()
        .and_then(|templates| templates.iter().find(|t| t["name"] == entry))
        .and_then(|t| t["dag"]["tasks"].as_array())
        .map(|tasks| {
            tasks
                .iter()
                .filter_map(|t| Some((t["name"].as_str()?, t)))
                .flat_map(|(name, t)| {
                    let gate = (t["template"] == GATED_DEPLOY_TEMPLATE)
                        .then(|| name.strip_prefix("deploy-").map(risk_gate_task))
                        .flatten();
                    std::iter::once(name.to_owned()).chain(gate)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `stage` template of a deploy run's stages; with risk gates in the
/// topology, also the runner's `--risk-gate=` input and the `risk` output
/// (the gate a deploy stopped at, [`NO_RISK`] should the file be missing).
fn deploy_stage_template(config: &Config) -> Value {
    let mut template = stage_template(config, StageTemplate::Deploy);
    if has_risk_gates(config) {
        template["inputs"]["parameters"]
            .as_array_mut()
            .expect("the stage template has an input list")
            .push(json!({"name": RISK_GATE_INPUT, "default": ""}));
        template["container"]["args"]
            .as_array_mut()
            .expect("the stage template has an argument list")
            .push(json!(format!(
                "--{RISK_GATE_INPUT}={{{{inputs.parameters.{RISK_GATE_INPUT}}}}}"
            )));
        template["outputs"] = json!({"parameters": [{
            "name": RISK_OUTPUT,
            "valueFrom": {"path": format!("{OUTPUTS_DIR}/{RISK_OUTPUT}"), "default": NO_RISK},
        }]});
    }
    template
}

/// Whether some environment has a risk gate that waits for a person
/// (`approve`): only then does the topology hold risk gates, and the
/// stage template the runner's inputs about them.
fn has_risk_gates(config: &Config) -> bool {
    config.environments.iter().any(|e| e.has_approve_gate())
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
fn stage_task(
    config: &Config,
    template: &str,
    name: &str,
    stage: &str,
    kind: StageKind,
    env: Option<&str>,
) -> Value {
    let mut args = vec![json!({"name": "stage", "value": stage})];
    if let Some(env) = env {
        args.push(json!({"name": "env", "value": env}));
    }
    let img = image(config, kind);
    if img != config.settings().deployer_image() {
        args.push(json!({"name": "image", "value": img}));
    }
    let mut task = json!({"name": name, "template": template, "arguments": {}});
    task["arguments"]["parameters"] = Value::Array(args);
    task
}

fn task_for(config: &Config, stage: &Stage) -> Value {
    let name = stage.task_name();
    let env = stage.env.as_deref();
    match stage.kind {
        StageKind::Approve => json!({"name": name, "template": APPROVAL_TEMPLATE}),
        StageKind::Pipeline => stage_task(
            config,
            PIPELINE_STAGE_TEMPLATE,
            &name,
            stage.kind.as_str(),
            stage.kind,
            env,
        ),
        StageKind::Validate => stage_task(
            config,
            VALIDATE_TEMPLATE,
            &name,
            stage.kind.as_str(),
            stage.kind,
            env,
        ),
        StageKind::Deploy if gated_env(config, stage).is_some() => {
            let e = env.unwrap_or_default();
            let mut task = json!({"name": name, "template": GATED_DEPLOY_TEMPLATE, "arguments": {}});
            task["arguments"]["parameters"] = json!([{"name": "env", "value": e}]);
            let timeout = config
                .environment(e)
                .map(|e| e.risk_timeout())
                .unwrap_or_default();
            if timeout != aphex_config::DEFAULT_RISK_TIMEOUT {
                push_parameter(&mut task, "timeout", timeout.to_owned());
            }
            task
        }
        kind => stage_task(config, STAGE_TEMPLATE, &name, kind.as_str(), kind, env),
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

/// Whether the run goes on after `ends`, the stages before a task that
/// may end the run (validate; the pipeline stage too for the tasks after
/// it): each one's `run` output says so. Both sides quoted, as the exit
/// handler's: a string comparison under every evaluator Argo has used for
/// `when` (the value is the runner's word, never free text).
fn run_continues(ends: &[StageKind]) -> String {
    ends.iter()
        .map(|kind| {
            format!(
                "'{{{{tasks.{}.outputs.parameters.{RUN_OUTPUT}}}}}' == '{RUN_CONTINUES}'",
                kind.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Adds argument `name` = `value` to a stage task.
fn push_parameter(task: &mut Value, name: &str, value: String) {
    task["arguments"]["parameters"]
        .as_array_mut()
        .expect("stage_task builds a parameter list")
        .push(json!({"name": name, "value": value}));
}

/// The environment of `stage` when it has a risk gate that waits for a
/// person.
fn gated_env<'a>(config: &Config, stage: &'a Stage) -> Option<&'a str> {
    let env = stage.env.as_deref()?;
    config
        .environment(env)
        .is_some_and(|e| e.has_approve_gate())
        .then_some(env)
}

/// The deploy of an environment with a risk gate, a DAG of its own so
/// that the template grows by one task per environment, as without one:
/// `deploy` (the stage, told to stop at a gate that wants a person),
/// the suspend `risk` and `resume`, which deploys the environment again
/// with its risks approved (or fails it as timed out: it gets the
/// suspend's start and finish, Argo's own times), naming who approved. `risk` and `resume` run only when the deploy's `risk` output
/// names this environment's gate (`risk-<env>`): a deploy that stopped at
/// no gate leaves them skipped, and the DAG ends with the deploy.
fn gated_deploy_template() -> Value {
    let env = "{{inputs.parameters.env}}";
    let stopped = format!(
        "'{{{{tasks.deploy.outputs.parameters.{RISK_OUTPUT}}}}}' == '{}'",
        risk_gate_task(env)
    );
    let stage_args = |risk: &str, approved_by: String| {
        json!({"parameters": [
            {"name": "stage", "value": StageKind::Deploy.as_str()},
            {"name": "env", "value": env},
            {"name": RISK_GATE_INPUT, "value": risk},
            {"name": APPROVED_BY, "value": approved_by},
        ]})
    };
    json!({
        "name": GATED_DEPLOY_TEMPLATE,
        "inputs": {"parameters": [
            {"name": "env"},
            {"name": APPROVED_BY, "default": ""},
            {"name": "timeout", "default": aphex_config::DEFAULT_RISK_TIMEOUT},
        ]},
        "dag": {"tasks": [
            {
                "name": "deploy",
                "template": STAGE_TEMPLATE,
                "arguments": stage_args("pause", format!("{{{{inputs.parameters.{APPROVED_BY}}}}}")),
            },
            {
                "name": "risk",
                "dependencies": ["deploy"],
                "when": stopped,
                "template": RISK_GATE_TEMPLATE,
                "arguments": {"parameters": [{"name": "timeout", "value": "{{inputs.parameters.timeout}}"}]},
            },
            {
                "name": "resume",
                "dependencies": ["risk"],
                "when": stopped,
                "template": STAGE_TEMPLATE,
                "arguments": stage_args(
                    "resume {{tasks.risk.startedAt}} {{tasks.risk.finishedAt}}",
                    format!("{{{{tasks.risk.outputs.parameters.{APPROVED_BY}}}}}"),
                ),
            },
        ]},
    })
}

/// `task` with a `when` (after its dependencies, for readable diffs).
fn with_when(mut task: Value, when: String) -> Value {
    let obj = task.as_object_mut().expect("tasks are objects");
    let rest: Vec<(String, Value)> = std::mem::take(obj).into_iter().collect();
    let after = if rest.iter().any(|(k, _)| k == "dependencies") {
        "dependencies"
    } else {
        "name"
    };
    for (k, v) in rest {
        let here = k == after;
        obj.insert(k, v);
        if here {
            obj.insert("when".into(), Value::String(when.clone()));
        }
    }
    task
}

/// `main`: the plan's stages as a DAG, each task depending on its
/// predecessor, and every task after validate running only when validate
/// says the run goes on (a duplicate push ends there), every task after
/// the pipeline stage only when it says so too (a restart on a new
/// topology supersedes the run there). Every task carries the `when`: a
/// dependency Argo skipped would not stop the next one.
fn main_dag(config: &Config, stages: &Stages) -> Value {
    let mut ends: Vec<StageKind> = Vec::new();
    let tasks: Vec<Value> = stages
        .with_dependencies()
        .into_iter()
        .map(|(s, deps)| {
            let mut task = task_for(config, s);
            // Who approved reaches the deploy's stage record (finalize, with
            // no Kubernetes token, cannot read the gate's node).
            if let Some(gate) = deps.iter().find(|d| d.kind == StageKind::Approve) {
                push_parameter(
                    &mut task,
                    APPROVED_BY,
                    format!(
                        "{{{{tasks.{}.outputs.parameters.{APPROVED_BY}}}}}",
                        gate.task_name()
                    ),
                );
            }
            let deps: Vec<String> = deps.iter().map(|d| d.task_name()).collect();
            let task = with_dependencies(task, &deps);
            let task = if ends.is_empty() {
                task
            } else {
                with_when(task, run_continues(&ends))
            };
            if matches!(s.kind, StageKind::Validate | StageKind::Pipeline) {
                ends.push(s.kind);
            }
            task
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

/// `validate-pr`: validate, build, then a synth-only check per environment,
/// all on `pr-stage`, the only stage template that passes the pull
/// request's number to the runner (see [`container`]).
fn validate_pr_dag(config: &Config) -> Value {
    let mut tasks = vec![
        stage_task(
            config,
            PR_VALIDATE_TEMPLATE,
            "validate",
            "validate",
            StageKind::Validate,
            None,
        ),
        with_dependencies(
            stage_task(
                config,
                PR_STAGE_TEMPLATE,
                "build",
                "build",
                StageKind::Build,
                None,
            ),
            &["validate".to_owned()],
        ),
    ];
    for env in &config.environments {
        let task = stage_task(
            config,
            PR_STAGE_TEMPLATE,
            &format!("synth-{}", env.name),
            "synth",
            StageKind::Deploy,
            Some(&env.name),
        );
        tasks.push(with_dependencies(task, &["build".to_owned()]));
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
/// commit against that branch. So does the link to the run in the Argo UI
/// (`pipeline.argoUrl`): a pull request's config must not choose where
/// notifications point. The Workflow's labels say how the run started
/// (`aphex.dev/trigger`): all of them, as JSON, because Argo refuses
/// `{{workflow.labels.<key>}}` in a Workflow that lacks the label (one
/// submitted by hand), and a default in `workflowMetadata` would override
/// the submitter's value.
fn run_args(config: &Config) -> Vec<Value> {
    let settings = config.settings();
    let mut args = vec![
        json!("--commit-sha={{workflow.parameters.commit-sha}}"),
        json!(format!("--branch={}", crate::triggers::deploy_branch(config))),
        json!(format!("--repo-url={}", repo_url(config).unwrap_or_default())),
        json!("--workflow-id={{workflow.name}}"),
        json!("--workflow-labels={{workflow.labels.json}}"),
    ];
    if let Some(url) = settings.run_url("{{workflow.name}}") {
        args.push(json!(format!("--run-url={url}")));
    }
    args
}

/// The arguments and variable of the pods that post commit statuses
/// (validate, finalize), when runs post them: where (the API and the
/// repository, literals of this template like the repository URL, so that
/// no commit's config can send the token elsewhere) and the token, from
/// `github.tokenSecret` (key `token`). Optional, so a missing Secret costs
/// the status (the runner warns), never the run. Build and test pods,
/// which run the repository's commands, never get it.
fn github_status(config: &Config) -> Option<(Vec<Value>, Value)> {
    let settings = config.settings();
    let gh = settings.github.as_ref()?;
    if !settings.posts_github_status() {
        return None;
    }
    let args = vec![
        json!(format!("--github-api-url={}", gh.api_url())),
        json!(format!("--github-repository={}", gh.full_name())),
    ];
    let env = json!({"name": GITHUB_TOKEN_ENV, "valueFrom": {"secretKeyRef": {
        "name": gh.token_secret(),
        "key": GITHUB_TOKEN_SECRET_KEY,
        "optional": true,
    }}});
    Some((args, env))
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

/// The container templates: who the pod runs as and what it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageTemplate {
    /// A deploy run's stages: the workflow account, no Kubernetes token.
    Deploy,
    /// The pipeline stage: the workflow account with its token.
    Pipeline,
    /// `validate-pr`: the pull-request account, no token; the only
    /// templates that hand the runner a pull request number.
    PullRequest,
}

/// A stage container with the pod settings of `kind` (service account,
/// token, security context, resources).
fn container(
    config: &Config,
    kind: StageTemplate,
    image: &str,
    mut args: Vec<Value>,
    mut env: Vec<Value>,
) -> Value {
    match kind {
        // The number makes the runner treat the run as a pull request's:
        // its records and artifacts under `pr/`, lookup roles only, no
        // branch check. Only `validate-pr`'s templates pass it, so a stage
        // of `main` is always a deploy run's, whose commit must be on the
        // branch, whatever `pull-request` a submitter sets.
        StageTemplate::PullRequest => {
            args.push(json!("--pull-request={{workflow.parameters.pull-request}}"));
        }
        StageTemplate::Pipeline => {
            // The pipeline stage checks that a commit does not move the
            // pipeline to another namespace.
            env.push(json!({"name": NAMESPACE_ENV, "value": "{{workflow.namespace}}"}));
        }
        StageTemplate::Deploy => {}
    }
    json!({
        "image": image,
        "command": [RUNNER],
        "args": args,
        "env": env,
        "resources": resources(config),
        "securityContext": container_security_context(),
    })
}

/// The pod-level fields of `kind`'s templates.
fn pod_settings(config: &Config, template: &mut Value, kind: StageTemplate) {
    match kind {
        StageTemplate::Deploy => {}
        StageTemplate::Pipeline => template["automountServiceAccountToken"] = json!(true),
        StageTemplate::PullRequest => {
            template["serviceAccountName"] = json!(crate::rbac::pull_request_service_account(config));
        }
    }
}

/// The validate task's template for `kind`'s runs: the stage template
/// with the GitHub token (validate runs none of the repository's commands)
/// and, in a deploy run, the `run` output, read from the file the runner
/// writes (`continue` should it be missing).
fn validate_template(config: &Config, kind: StageTemplate) -> Value {
    let mut template = stage_template(config, kind);
    // The token-holding templates run validate and nothing else, whatever
    // a caller passes.
    template["container"]["args"][0] = json!(StageKind::Validate.as_str());
    template["name"] = json!(match kind {
        StageTemplate::PullRequest => PR_VALIDATE_TEMPLATE,
        _ => VALIDATE_TEMPLATE,
    });
    if let Some((args, token)) = github_status(config) {
        let container = &mut template["container"];
        container["args"]
            .as_array_mut()
            .expect("the stage template has an argument list")
            .extend(args);
        container["env"]
            .as_array_mut()
            .expect("the stage template has an env list")
            .push(token);
    }
    // Only a deploy run can end early (a duplicate push).
    if kind == StageTemplate::Deploy {
        template["outputs"] = run_output();
    }
    template
}

/// The `run` output of a template whose task may end the run, read from
/// the file the runner writes (`continue` should it be missing).
fn run_output() -> Value {
    json!({"parameters": [{
        "name": RUN_OUTPUT,
        "valueFrom": {"path": format!("{OUTPUTS_DIR}/{RUN_OUTPUT}"), "default": RUN_CONTINUES},
    }]})
}

fn stage_template(config: &Config, kind: StageTemplate) -> Value {
    // The token-holding template runs the pipeline stage and nothing else,
    // whatever a caller passes.
    let stage = match kind {
        StageTemplate::Pipeline => json!(StageKind::Pipeline.as_str()),
        _ => json!("{{inputs.parameters.stage}}"),
    };
    let mut args = vec![stage, json!("--env={{inputs.parameters.env}}")];
    args.extend(run_args(config));
    args.push(json!(format!(
        "--approved-by={{{{inputs.parameters.{APPROVED_BY}}}}}"
    )));
    let name = match kind {
        StageTemplate::Deploy => STAGE_TEMPLATE,
        StageTemplate::Pipeline => PIPELINE_STAGE_TEMPLATE,
        StageTemplate::PullRequest => PR_STAGE_TEMPLATE,
    };
    // Stack outputs go from deploy to test through the run record, not as
    // Argo parameters: a parameter is bounded by the pod's annotations and
    // environment (an environment string over 128 KiB stops exec), and
    // Argo would evaluate any `{{` in it.
    let mut template = json!({
        "name": name,
        "inputs": {"parameters": [
            {"name": "stage"},
            {"name": "env", "default": ""},
            {"name": "image", "default": config.settings().deployer_image()},
            // Set by the deploy task after an approval gate.
            {"name": APPROVED_BY, "default": ""},
        ]},
        "activeDeadlineSeconds": STAGE_DEADLINE_SECONDS,
        "retryStrategy": retry_strategy(),
    });
    pod_settings(config, &mut template, kind);
    template["container"] = container(config, kind, "{{inputs.parameters.image}}", args, run_env(config));
    // The pipeline stage ends the run when a restart on the new topology
    // takes over (`superseded`).
    if kind == StageTemplate::Pipeline {
        template["outputs"] = run_output();
    }
    template
}

/// The exit handler: the pull-request run's `finalize-pr` (its own account
/// and scope) or a deploy run's `finalize`, whoever submitted the run.
fn exit_dag() -> Value {
    let is_pr = format!("'{{{{workflow.mainEntrypoint}}}}' == '{VALIDATE_PR_ENTRYPOINT}'");
    let is_deploy = format!("'{{{{workflow.mainEntrypoint}}}}' != '{VALIDATE_PR_ENTRYPOINT}'");
    json!({
        "name": EXIT_TEMPLATE,
        "dag": {"tasks": [
            {"name": FINALIZE_TEMPLATE, "template": FINALIZE_TEMPLATE, "when": is_deploy},
            {"name": FINALIZE_PR_TEMPLATE, "template": FINALIZE_PR_TEMPLATE, "when": is_pr},
        ]},
    })
}

/// The suspend of a risk gate: it waits `timeout` (the environment's
/// `riskGates.timeout`), after which Argo resumes it by itself and the
/// resume task, seeing the gate waited the whole time, fails the
/// environment as timed out. Decided like an approval gate: `aphex
/// approve` names who approved (a supplied output), `argo resume` leaves
/// it empty, a rejection fails the node and so the run.
fn risk_gate_template() -> Value {
    json!({
        "name": RISK_GATE_TEMPLATE,
        "inputs": {"parameters": [{"name": "timeout"}]},
        "suspend": {"duration": "{{inputs.parameters.timeout}}"},
        "outputs": {"parameters": [
            {"name": APPROVED_BY, "valueFrom": {"supplied": {}, "default": ""}},
        ]},
    })
}

fn approval_template() -> Value {
    // Resumed by `aphex approve`, which sets who approved as `argo node
    // set` does (a supplied output); `argo resume` and the UI resume it
    // with the empty default. Bounded by the workflow deadline.
    json!({
        "name": APPROVAL_TEMPLATE,
        "suspend": {},
        "outputs": {"parameters": [
            {"name": APPROVED_BY, "valueFrom": {"supplied": {}, "default": ""}},
        ]},
    })
}

fn finalize_template(config: &Config, kind: StageTemplate) -> Value {
    let mut args = vec![json!("finalize")];
    args.extend(run_args(config));
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
    // It posts the run's final commit status.
    if let Some((status_args, token)) = github_status(config) {
        args.extend(status_args);
        env.push(token);
    }
    let name = match kind {
        StageTemplate::PullRequest => FINALIZE_PR_TEMPLATE,
        _ => FINALIZE_TEMPLATE,
    };
    let mut template = json!({
        "name": name,
        "activeDeadlineSeconds": 600,
        "retryStrategy": retry_strategy(),
    });
    pod_settings(config, &mut template, kind);
    template["container"] = container(config, kind, config.settings().deployer_image(), args, env);
    template
}
