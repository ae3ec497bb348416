//! `aphex status [RUN] [--watch]`: the pipeline's runs as their Workflows
//! say (phase, commit, branch, start, duration, how each started and who
//! started it), or one run's stages and the gates waiting (approval gates
//! and risk gates, with the `aphex approve` command that decides each;
//! `aphex_k8s::run_status`).

use std::time::Duration;

use aphex_config::Config;
use aphex_k8s::run_status::{GateKind, RunView, StageView, duration};
use aphex_template::triggers::deploy_branch;
use aphex_template::workflow::PIPELINE_LABEL;

use super::cluster::{ClusterArgs, ConfigArg, Output, object_text};
use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex status`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex status\n  \
    aphex status shop-7x2kq --watch\n  \
    aphex status -o json\n\n\
    Exit status: 0 shown, 1 no such run or the cluster refused, 2 usage or setup error.")]
pub struct Args {
    /// One run (its Workflow's name) to show stage by stage.
    pub run: Option<String>,
    /// Print again whenever it changes, until the run ends (Ctrl-C to stop).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Output format (default: a table).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// How many runs to list, newest first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How often `--watch` reads the cluster.
const POLL: Duration = Duration::from_secs(2);

/// Runs `aphex status`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let config = super::validate::load_config(&args.config.path)?;
    super::runtime()?.block_on(async {
        let (_, workflows) = super::cluster::workflows(&args.cluster, &config).await?;
        let mut out = Out::lock();
        // A watch prints again when something other than a running
        // clock changed: the key is the text at a fixed far "now".
        let mut last_key = String::new();
        loop {
            let now = aphex_stages::time::now_rfc3339();
            let (text, key, ended) = match &args.run {
                Some(name) => {
                    let run = RunView::from_workflow(&workflows.get(name).await?);
                    (
                        show_run(&config, &run, args.output, &now)?,
                        show_run(&config, &run, args.output, FAR)?,
                        run.ended(),
                    )
                }
                None => {
                    let selector = format!("{PIPELINE_LABEL}={}", config.pipeline_name());
                    let mut runs: Vec<RunView> = workflows
                        .list(&selector)
                        .await?
                        .iter()
                        .map(RunView::from_workflow)
                        .collect();
                    runs.truncate(args.limit);
                    if runs.is_empty() && args.output.is_none() && last_key.is_empty() {
                        eprintln!(
                            "no runs of pipeline {} in namespace {} (start one with `aphex trigger`)",
                            config.pipeline_name(),
                            workflows.namespace()
                        );
                    }
                    (
                        show_runs(&config, &runs, args.output, &now)?,
                        show_runs(&config, &runs, args.output, FAR)? + "\0",
                        false,
                    )
                }
            };
            if key != last_key {
                if args.watch && !last_key.is_empty() {
                    out.write_str("\n")?;
                }
                out.write_str(&text)?;
                out.flush()?;
                last_key = key;
            }
            if !args.watch || ended {
                return Ok(Exit::Ok);
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// The "now" of a watch's key: far enough that no run has ended by then.
const FAR: &str = "9999-12-31T00:00:00Z";

/// The branch a run deploys or checks.
fn branch(config: &Config, run: &RunView) -> String {
    match &run.pull_request {
        Some(pr) => format!("pr-{pr}"),
        None => deploy_branch(config),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Second precision is plenty for a table.
fn when(t: Option<&str>) -> String {
    t.map(|t| t.get(..19).unwrap_or(t).replace('T', " "))
        .unwrap_or_else(|| "-".to_owned())
}

/// The runs as a table, YAML or JSON.
fn show_runs(
    config: &Config,
    runs: &[RunView],
    output: Option<Output>,
    now: &str,
) -> Result<String, CliError> {
    if let Some(format @ (Output::Yaml | Output::Json)) = output {
        return object_text(format, &runs);
    }
    let wide = output == Some(Output::Wide);
    let mut text = String::new();
    if runs.is_empty() {
        return Ok(text);
    }
    text.push_str(&format!(
        "{:<32} {:<10} {:<12} {:<12} {:<19} {:<9} {:<12} {}{}\n",
        "NAME",
        "PHASE",
        "COMMIT",
        "BRANCH",
        "STARTED",
        "DURATION",
        "TRIGGER",
        "SENDER",
        if wide { "  WAITING/MESSAGE" } else { "" }
    ));
    for run in runs {
        let extra = if wide {
            let waiting: Vec<&str> = run.waiting_gates().map(|g| g.name.as_str()).collect();
            let detail = if waiting.is_empty() {
                run.message.clone().unwrap_or_default()
            } else {
                format!("waiting: {}", waiting.join(", "))
            };
            format!("  {detail}")
        } else {
            String::new()
        };
        text.push_str(&format!(
            "{:<32} {:<10} {:<12} {:<12} {:<19} {:<9} {:<12} {}{extra}\n",
            run.name,
            run.phase,
            short(&run.commit),
            branch(config, run),
            when(run.started_at.as_deref()),
            duration(run.started_at.as_deref(), run.finished_at.as_deref(), now),
            run.trigger.as_deref().unwrap_or("-"),
            run.sender.as_deref().unwrap_or("-"),
        ));
    }
    Ok(text)
}

/// One run: its header, then each stage's phase and duration, and the
/// gates waiting with the command that decides them.
fn show_run(config: &Config, run: &RunView, output: Option<Output>, now: &str) -> Result<String, CliError> {
    if let Some(format @ (Output::Yaml | Output::Json)) = output {
        return object_text(format, run);
    }
    let mut text = format!(
        "run {}: {}\n  commit:   {}\n  branch:   {}\n  started:  {} ({}, by {})\n  duration: {}\n",
        run.name,
        run.phase,
        run.commit,
        branch(config, run),
        when(run.started_at.as_deref()),
        run.trigger.as_deref().unwrap_or("unknown trigger"),
        run.sender.as_deref().unwrap_or("unknown"),
        duration(run.started_at.as_deref(), run.finished_at.as_deref(), now),
    );
    if let Some(m) = &run.message {
        text.push_str(&format!("  message:  {m}\n"));
    }
    text.push_str(&format!(
        "\n{:<24} {:<10} {:<9} {}\n",
        "STAGE", "PHASE", "DURATION", "NOTE"
    ));
    for stage in &run.stages {
        let note = if stage.waiting() {
            waiting_note(run, stage)
        } else if let Some(by) = stage.approved_by.as_ref().filter(|_| stage.phase != "Failed") {
            format!("by {by}")
        } else {
            // A rejected gate's message says who rejected it and why.
            stage.message.clone().unwrap_or_default()
        };
        text.push_str(&format!(
            "{:<24} {:<10} {:<9} {note}\n",
            stage.name,
            stage.phase,
            duration(stage.started_at.as_deref(), stage.finished_at.as_deref(), now),
        ));
    }
    Ok(text.lines().map(|l| format!("{}\n", l.trim_end())).collect())
}

/// What a waiting gate waits for, and the command that decides it.
pub(crate) fn waiting_note(run: &RunView, gate: &StageView) -> String {
    let what = match gate.gate_of() {
        Some((GateKind::Risk, _)) => "waiting for approval of risky changes",
        _ => "waiting for approval",
    };
    match gate.approve_command(&run.name) {
        Some(command) => format!("{what}: {command}"),
        None => format!(
            "{what}: argo resume {} --node-field-selector displayName={}",
            run.name, gate.name
        ),
    }
}
