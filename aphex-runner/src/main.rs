//! `aphex-runner`: runs one pipeline stage inside a workflow pod, wiring the
//! stages of `aphex-stages` to the AWS adapters (or, with `--state-dir`, to
//! the local ones). Holds no stage logic itself: the flow around a stage is
//! `aphex_stages::single`. Exit codes are documented in docs/stages.md.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aphex_adapters::{Adapters, Cluster, Scope, Storage};
use aphex_config::Config;
use aphex_stages::context::{Ports, RunInfo, RunKind, StageContext};
use aphex_stages::log_upload::{Limits, LogTarget, LogUpload};
use aphex_stages::process::{Cancel, Exec};
use aphex_stages::record::Status;
use aphex_stages::redact::Redactor;
use aphex_stages::report::{Event, Reporter, TracingReporter};
use aphex_stages::single::{self, OutputsSource, RiskStep, RunnerStage};
use aphex_stages::stages::StageError;
use aphex_template::submit::Origin;
use clap::Parser;

mod args;
use args::Args;

/// Exit codes (docs/stages.md).
mod exit {
    pub const OK: i32 = 0;
    pub const STAGE_FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const SETUP: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

/// The adapters of a run of `kind`: the local ones under `--state-dir`,
/// else the pipeline's bucket and the cluster. A pull request's validation
/// (only `validate-pr`'s templates pass `--pull-request`) runs with a role
/// that reaches only the CDK lookup roles and the pipeline's `pr/` prefix,
/// so its adapters stay there.
async fn ports(
    args: &Args,
    kind: RunKind,
    pipeline: &str,
    config: Option<&Config>,
    redactor: &Redactor,
) -> anyhow::Result<Ports> {
    let (storage, cluster) = match &args.state_dir {
        Some(state) => {
            aphex_stages::files::prepare_state_dir(state)
                .map_err(|e| anyhow::anyhow!("preparing the state directory {}: {e}", state.display()))?;
            (Storage::Dir(state.clone()), Cluster::Dir(state.join("cluster")))
        }
        None => {
            let bucket = config
                .and_then(|c| c.settings().artifacts.as_ref().and_then(|a| a.bucket.clone()))
                .or_else(|| std::env::var("APHEX_ARTIFACT_BUCKET").ok().filter(|b| !b.is_empty()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no artifact bucket: set pipeline.artifacts.bucket in the config or APHEX_ARTIFACT_BUCKET (the pipeline stack's ArtifactBucketName output)"
                    )
                })?;
            (Storage::S3(bucket), Cluster::Kubernetes)
        }
    };
    let scope = match kind {
        RunKind::Deploy => Scope::Deploy,
        RunKind::PullRequest(_) => Scope::PullRequest,
    };
    Ok(aphex_adapters::build(Adapters {
        deployer: args.deployer,
        storage,
        cluster,
        scope,
        notifier: aphex_adapters::notifier(redactor, config),
        statuses: aphex_adapters::commit_statuses(
            args.github_api_url.as_deref(),
            args.github_repository.as_deref(),
            pipeline,
            scope,
            redactor,
        ),
        // A pushed run skips unchanged stacks; forcing is for a person at a terminal.
        force: false,
    })
    .await)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("APHEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    if std::io::stdout().is_terminal() {
        builder.init();
    } else {
        // Pods: one JSON object per line, for log collectors.
        builder.json().flatten_event(true).with_current_span(false).init();
    }
}

fn say_warning(message: &str) {
    tracing::warn!("{message}");
}

/// Writes the `run` output (whether the run goes on) for Argo. Should it
/// fail, the template's default (`continue`) applies: the run deploys.
fn write_run_output(dir: &Path, value: &str) {
    let file = dir.join(aphex_template::workflow::RUN_OUTPUT);
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&file, value));
    if let Err(e) = written {
        tracing::warn!("writing {}: {e}", file.display());
    }
}

fn fresh_work_dir(base: &Path, stage: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    base.join(format!("{stage}-{}-{nanos}", std::process::id()))
}

async fn run(args: Args) -> i32 {
    let stage = args.stage;
    let env = args.env.clone().filter(|e| !e.is_empty());
    if stage.needs_env() && env.is_none() {
        eprintln!("error: `aphex-runner {:?}` needs --env NAME", args.stage);
        return exit::USAGE;
    }
    if let Err(e) = aphex_stages::workspace::check_sha(&args.commit_sha) {
        eprintln!("error: --commit-sha {e}");
        return exit::USAGE;
    }
    let kind = match args.pull_request.as_deref().filter(|p| !p.is_empty()) {
        None => RunKind::Deploy,
        Some(n) => match n.parse::<u64>() {
            Ok(n) => RunKind::PullRequest(n),
            Err(_) => {
                eprintln!("error: --pull-request `{n}` is not a pull request number");
                return exit::USAGE;
            }
        },
    };
    if args.repo_url.is_empty() {
        eprintln!(
            "error: --repo-url is empty: the WorkflowTemplate derives the repository from pipeline.github \
             (owner, repo, url); add it to the config and run `aphex bootstrap`"
        );
        return exit::USAGE;
    }
    let branch = args.branch.clone().filter(|b| !b.is_empty());
    let on_branch = match (stage.checks_branch(kind), branch.as_deref()) {
        (false, _) => None,
        (true, Some(b)) => Some(b),
        (true, None) => {
            eprintln!(
                "error: `aphex-runner {:?}` of a deploy run needs --branch: the branch the pipeline deploys, \
                 which the commit must be on",
                args.stage
            );
            return exit::USAGE;
        }
    };
    for (what, value) in [
        ("--repo-url", Some(args.repo_url.as_str())),
        ("--branch", branch.as_deref()),
        ("--run-url", args.run_url.as_deref()),
        ("--github-api-url", args.github_api_url.as_deref()),
        ("--github-repository", args.github_repository.as_deref()),
    ] {
        if let Some(Err(e)) = value.map(|v| aphex_stages::workspace::check_not_option("value", v)) {
            eprintln!("error: {what}: {e}");
            return exit::USAGE;
        }
    }
    let redactor = Redactor::from_env();
    let cancel = Cancel::new();
    aphex_stages::shutdown::cancel_on_signals(cancel.clone(), exit::INTERRUPTED, say_warning);
    let name = stage.record_name(env.as_deref());
    let work = fresh_work_dir(&args.work_dir, &name);
    let started = aphex_stages::time::now_rfc3339();
    tracing::info!(stage = %name, commit = %args.commit_sha, "checking out {}", redactor.redact(&args.repo_url));
    let prepared = match stage.check_allowed_in(kind) {
        Ok(()) => single::prepare(&args.repo_url, &args.commit_sha, on_branch, &work, &args.config).await,
        Err(e) => Err(e),
    };
    // A refused commit or stage fails as itself (and is recorded so), not
    // as a config problem.
    let (checkout, config, prepare_error) = match prepared {
        Ok((checkout, config)) => (Some(checkout), config, None),
        Err(e) => {
            let text = e.to_string();
            (None, Err(vec![text]), Some(e))
        }
    };
    let pipeline = std::env::var("APHEX_PIPELINE")
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| config.as_ref().ok().map(|c| c.pipeline_name().to_owned()))
        .unwrap_or_else(|| "aphex".to_owned());
    let run_info = RunInfo {
        id: args.workflow_id.clone(),
        pipeline,
        commit: args.commit_sha.to_ascii_lowercase(),
        branch: kind.record_ref(branch.as_deref()),
        repo: args.repo_url.clone(),
        namespace: std::env::var(aphex_template::workflow::NAMESPACE_ENV)
            .ok()
            .filter(|n| !n.is_empty()),
        kind,
        trigger: Origin::from_labels_json(args.workflow_labels.as_deref()),
        sender: aphex_template::submit::label(
            args.workflow_labels.as_deref(),
            aphex_template::submit::SENDER_LABEL,
        ),
        url: args.run_url.clone().filter(|u| !u.is_empty()),
        topology: args
            .topology
            .as_deref()
            .map(aphex_template::workflow::parse_topology),
    };
    let ports = match ports(&args, kind, &run_info.pipeline, config.as_ref().ok(), &redactor).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{}", redactor.redact(&format!("{e:#}")));
            return exit::SETUP;
        }
    };
    tracing::info!("deployer: {}", ports.deployer.describe());
    let reporter: Arc<dyn Reporter> = Arc::new(TracingReporter);

    if stage == RunnerStage::Finalize {
        let only_on_failure = config
            .as_ref()
            .map(|c| c.settings().notify_only_on_failure())
            .unwrap_or(false);
        let status = std::env::var("APHEX_WORKFLOW_STATUS").ok();
        return match single::finalize_run(
            &ports,
            &*reporter,
            &redactor,
            &run_info,
            status.as_deref(),
            only_on_failure,
        )
        .await
        {
            Ok(record) => {
                tracing::info!(status = ?record.status, "run {} recorded", record.id);
                exit::OK
            }
            Err(e) => {
                tracing::error!("finalize failed: {}", redactor.redact(&e.to_string()));
                exit::STAGE_FAILED
            }
        };
    }

    // The stage's log goes to the run store as it runs (`aphex logs`).
    let upload = LogUpload::start(
        LogTarget {
            runs: ports.runs.clone(),
            pipeline: run_info.pipeline.clone(),
            id: run_info.id.clone(),
            stage: name.clone(),
        },
        reporter.clone(),
        Limits::default(),
    );
    let reporter: Arc<dyn Reporter> = upload.clone();
    reporter.event(&Event::StageStarted { stage: name.clone() });
    let result = match (checkout, config, prepare_error) {
        (_, _, Some(e)) => Err(e),
        (Some(checkout), Ok(config), None) => {
            let ctx = StageContext {
                run: run_info.clone(),
                config,
                config_file: args.config.clone(),
                checkout,
                work: work.join("scratch"),
                logs: work.join("logs"),
                ports: ports.clone(),
                exec: Exec {
                    reporter: reporter.clone(),
                    redactor: redactor.clone(),
                    cancel: cancel.clone(),
                },
            };
            // Set by hand only: in a pod, test reads the run record.
            let file = std::env::var_os("APHEX_STACK_OUTPUTS_FILE").filter(|f| !f.is_empty());
            let inline = std::env::var("APHEX_STACK_OUTPUTS")
                .ok()
                .filter(|j| !j.trim().is_empty());
            let outputs = match (&file, &inline) {
                (Some(f), _) => OutputsSource::File(Path::new(f)),
                (None, Some(json)) => OutputsSource::Inline(json),
                (None, None) => OutputsSource::RunRecord,
            };
            let risk = RiskStep::from_flag(&args.risk_gate, approver(args.approved_by.as_deref()));
            let result =
                single::run_stage(&ctx, stage, env.as_deref(), &args.outputs_dir, outputs, &risk).await;
            // Validate (a duplicate) and the pipeline stage (superseded by
            // a restart) may end the run; the tasks after them read this.
            if matches!(stage, RunnerStage::Validate | RunnerStage::Pipeline)
                && let Ok(outcome) = &result
            {
                write_run_output(&args.outputs_dir, single::run_output(outcome));
            }
            result
        }
        (_, Err(problems), None) => Err(StageError::Invalid(problems)),
        (None, Ok(_), None) => Err(StageError::Failed("the checkout failed".to_owned())),
    };
    let mut record = single::stage_record(&name, started, &result, &redactor);
    if result.is_err() && cancel.is_cancelled() {
        // Failed because it was cut short: interrupted, whatever the error.
        record.status = Status::Interrupted;
    }
    if stage == RunnerStage::Deploy {
        record.approved_by = approver(args.approved_by.as_deref());
    }
    let status = record.status;
    reporter.event(&Event::StageFinished {
        stage: name.clone(),
        status,
        error: record.error.clone(),
        seconds: aphex_stages::time::seconds_between(
            &record.started_at,
            record.ended_at.as_deref().unwrap_or_default(),
        ),
    });
    // Stored before the stage's record says it ended, so a reader following
    // the log has all of it once it sees the end.
    if let Err(e) = upload.finish().await {
        tracing::warn!(
            "{}",
            redactor.redact(&format!("the stage's log was not all stored: {e}"))
        );
    }
    if let Err(e) = single::record_stage(&ports, &run_info, record).await {
        tracing::warn!("{}", redactor.redact(&e.to_string()));
    }
    match result {
        Ok(_) => {
            tracing::info!(stage = %name, "stage {}", single::ended_as(status));
            exit::OK
        }
        Err(e) => {
            tracing::error!(stage = %name, "stage failed: {}", redactor.redact(&e.to_string()));
            if status == Status::Interrupted {
                exit::INTERRUPTED
            } else {
                exit::STAGE_FAILED
            }
        }
    }
}

/// The approver the gate's output names, if it names one that can be
/// recorded (`argo resume` leaves it empty; a name set by hand with `argo
/// node set` that is no login or address is not kept).
fn approver(given: Option<&str>) -> Option<String> {
    let name = given.filter(|n| !n.is_empty())?;
    match aphex_template::submit::check_approver(name) {
        Ok(()) => Some(name.to_owned()),
        Err(e) => {
            tracing::warn!("--approved-by: {e}; the approval is recorded without a name");
            None
        }
    }
}

fn main() {
    // The config loader turns a YAML parser panic into an error; the
    // panic's own message would only look like a crash in the pod's log.
    aphex_config::quiet_parser_panics();
    let args = Args::parse();
    init_logging();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(exit::SETUP);
        }
    };
    let code = rt.block_on(run(args));
    std::process::exit(code);
}
