//! `aphex trigger [PATH] [--branch B] [--commit SHA] [--wait] [--dry-run]`:
//! starts a run by hand, submitting the Workflow a push to the configured
//! branch would (`aphex_template::submit::manual_workflow`: the Sensor's
//! parameters, labelled `aphex.dev/trigger: manual` and the sender). The
//! commit defaults to the branch's head on GitHub (`git ls-remote`).

use std::path::PathBuf;
use std::time::Duration;

use aphex_config::Config;
use aphex_k8s::run_status::RunView;
use aphex_k8s::workflows::Workflows;
use aphex_template::submit::{check_sender, manual_workflow};
use aphex_template::triggers::{Shape, check_deploy_branch, deploy_branch};

use super::cluster::{ClusterArgs, Output, print_object};
use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex trigger`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex trigger\n  \
    aphex trigger --commit 4f0c3c8e5d2a1b0c9e8f7a6b5c4d3e2f1a0b9c8d --wait\n  \
    aphex trigger --dry-run -o yaml\n\n\
    Only the configured branch deploys (pipeline.github.branch): --branch must name it.\n\
    The run is labelled aphex.dev/trigger=manual and aphex.dev/sender=<you> (the kubeconfig\n\
    context's user, or --as).\n\n\
    Exit status: 0 submitted (with --wait: the run succeeded), 1 the run failed or the cluster\n\
    refused, 2 usage or setup error.")]
pub struct Args {
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// The branch to deploy: only the configured one may (default: it).
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// The commit to deploy (40 hex digits; default: the branch's head).
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// Wait for the run to end, printing each stage as it ends.
    #[arg(long)]
    pub wait: bool,
    /// Print the Workflow (with -o yaml|json) without contacting the cluster.
    #[arg(long)]
    pub dry_run: bool,
    /// Who starts the run (default: the kubeconfig context's user).
    #[arg(long = "as", value_name = "NAME")]
    pub as_: Option<String>,
    /// Print the submitted Workflow as YAML or JSON.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How often `--wait` reads the run.
const POLL: Duration = Duration::from_secs(2);

/// Runs `aphex trigger`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let config = super::validate::load_config(&args.path)?;
    if let Some(branch) = &args.branch {
        check_deploy_branch(&config, branch).map_err(CliError::usage)?;
    }
    if args.dry_run && args.wait {
        return Err(CliError::usage("--dry-run submits nothing to wait for").help("drop --wait"));
    }
    super::runtime()?.block_on(async {
        let commit = match &args.commit {
            Some(c) if Shape::CommitSha.accepts(c) => c.clone(),
            Some(c) => {
                return Err(CliError::usage(format!("--commit `{c}` is not a commit SHA"))
                    .help("give the full 40-digit lowercase hex SHA (`git rev-parse HEAD`)"));
            }
            None => branch_head(&config).await?,
        };
        // A dry run reads the kubeconfig for the user, but contacts nothing.
        let connection = if args.dry_run && args.as_.is_some() {
            None
        } else {
            match super::cluster::connect(&args.cluster).await {
                Ok(c) => Some(c),
                // Without a kubeconfig a dry run needs --as (said below).
                Err(_) if args.dry_run => None,
                Err(e) => return Err(e),
            }
        };
        let sender = super::cluster::who(args.as_.as_deref(), connection.as_ref())?;
        check_sender(&sender).map_err(|e| {
            CliError::usage(e).help("pass --as NAME with a name that can be a label (your GitHub login)")
        })?;
        let namespace = super::cluster::namespace(&args.cluster, &config);
        let mut workflow = manual_workflow(&config, &commit, &sender);
        workflow["metadata"]["namespace"] = serde_json::json!(namespace);
        let mut out = Out::lock();
        if args.dry_run {
            return match args.output {
                Some(format @ (Output::Yaml | Output::Json)) => {
                    print_object(&mut out, format, &workflow)?;
                    Ok(Exit::Ok)
                }
                _ => {
                    Err(CliError::usage("--dry-run prints the Workflow: say how")
                        .help("add -o yaml or -o json"))
                }
            };
        }
        let connection = connection.expect("connected unless dry-run");
        let workflows = connection
            .workflows(&namespace)
            .map_err(|e| CliError::usage(format!("no Kubernetes client: {e}")))?;
        let created = workflows.create(&workflow).await?;
        let name = created["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match args.output {
            Some(format @ (Output::Yaml | Output::Json)) => print_object(&mut out, format, &created)?,
            _ => writeln!(
                out,
                "run {name} submitted: commit {commit} of {} by {sender}",
                deploy_branch(&config)
            )?,
        }
        out.flush()?;
        if !args.wait {
            eprintln!("follow it with `aphex status {name} --watch`");
            return Ok(Exit::Ok);
        }
        wait(&workflows, &name).await
    })
}

/// The head of the configured branch on the configured repository.
async fn branch_head(config: &Config) -> Result<String, CliError> {
    let branch = deploy_branch(config);
    let Some(url) = aphex_template::workflow::repo_url(config) else {
        return Err(CliError::usage(
            "the config names no repository (pipeline.github) to read the branch head from",
        )
        .help("pass --commit SHA"));
    };
    // The config checks both, but an option-shaped value must never reach git.
    if url.starts_with('-') || branch.starts_with('-') {
        return Err(CliError::usage(format!(
            "refusing repository `{url}` or branch `{branch}`: it reads as an option"
        )));
    }
    let reference = format!("refs/heads/{branch}");
    let output = tokio::process::Command::new("git")
        .args(["ls-remote", "--", &url, &reference])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            CliError::usage(format!("running git ls-remote: {e}")).help("install git, or pass --commit SHA")
        })?;
    if !output.status.success() {
        return Err(CliError::failure(format!(
            "git ls-remote {url} {reference} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
        .help("check the repository is reachable with your git credentials, or pass --commit SHA"));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, r)| *r == reference)
        .map(|(sha, _)| sha.to_owned())
        .filter(|sha| Shape::CommitSha.accepts(sha))
        .ok_or_else(|| {
            CliError::failure(format!("{url} has no branch {branch}"))
                .help("push the branch, or pass --commit SHA")
        })
}

/// Follows run `name` until it ends, saying on stderr each stage that
/// ends and each gate that waits; exit 0 only when it succeeded.
pub async fn wait(workflows: &Workflows, name: &str) -> Result<Exit, CliError> {
    let mut said = std::collections::BTreeSet::new();
    loop {
        let run = RunView::from_workflow(&workflows.get(name).await?);
        for stage in &run.stages {
            let key = format!("{} {}", stage.name, stage.phase);
            if stage.waiting() && said.insert(key.clone()) {
                // The note `aphex status RUN` shows, so a risk gate's names its command too.
                eprintln!("{}: {}", stage.name, super::status::waiting_note(&run, stage));
            } else if stage.finished_at.is_some() && said.insert(key) {
                eprintln!("{}: {}", stage.name, stage.phase);
            }
        }
        if run.ended() {
            let message = run
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            eprintln!("run {name} {}{message}", run.phase);
            return Ok(if run.phase == "Succeeded" {
                Exit::Ok
            } else {
                Exit::Failure
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
