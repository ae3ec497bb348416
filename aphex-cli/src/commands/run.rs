//! `aphex run --local [PATH] [--repo DIR] [--commit SHA] [--env NAME] [--yes]
//! [--allow-risk] [--deployer cloudformation|fake] [--store s3://BUCKET] [--force]`: runs the
//! pipeline's stages on this machine, with artifacts, run records and metrics
//! under `<repo>/.aphex/`, or in S3 and CloudWatch with `--store`. The run itself is
//! `aphex_stages::executor::run_local`; this file parses, wires adapters
//! ([`adapters`]), draws progress and prints the summary.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aphex_adapters::{Adapters, Cluster, Scope, Storage};
use aphex_stages::context::Ports;
use aphex_stages::executor::{ApprovalError, Approver, LocalRun, new_run_id, run_dir, run_local};
use aphex_stages::process::{Cancel, Exec};
use aphex_stages::record::{RunRecord, Status};
use aphex_stages::redact::Redactor;
use aphex_stages::report::{Event, Reporter};
use aphex_stages::risk::RiskyChange;
use indicatif::{ProgressBar, ProgressStyle};

use crate::exit::{CliError, Exit};
use crate::out::Out;

pub use aphex_adapters::DeployerKind;

/// Arguments of `aphex run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex run --local --deployer fake\n  \
    aphex run --local --env dev --yes\n  \
    aphex run --local --repo ../shop --commit $(git -C ../shop rev-parse HEAD)\n\n\
    State (artifacts, run records, logs, the directory cluster, metrics) lives in <repo>/.aphex/;\n\
    with --store s3://BUCKET, artifacts and run records go to that bucket and metrics to CloudWatch\n\
    (logs, outputs and the directory cluster stay in <repo>/.aphex/).\n\
    AWS credentials, region and endpoint come from the standard AWS environment.\n\
    Set APHEX_SLACK_WEBHOOK_URL to send the run notification to a Slack-compatible webhook.\n\n\
    Exit status: 0 succeeded, 1 a stage failed, 2 usage or setup error, 130 interrupted.")]
pub struct Args {
    /// Run on this machine (the only mode: in a cluster, pushes start runs).
    #[arg(long)]
    pub local: bool,
    /// The configuration file, relative to the repository root.
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// The repository (default: the one containing the current directory).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// The full commit SHA to run (default: HEAD; uncommitted changes are never part of a run).
    #[arg(long)]
    pub commit: Option<String>,
    /// Run only this environment's approve, deploy and test stages.
    #[arg(long)]
    pub env: Option<String>,
    /// Approve manual gates without asking (required when not on a terminal).
    /// Risk gates are not approved by it: see --allow-risk.
    #[arg(long)]
    pub yes: bool,
    /// Approve risk gates set to `approve` (IAM broadening, stateful
    /// replacement) without asking; a gate set to `deny` still fails.
    #[arg(long)]
    pub allow_risk: bool,
    /// The stack deployer.
    #[arg(long, value_enum, default_value_t = DeployerKind::Cloudformation)]
    pub deployer: DeployerKind,
    /// Keep artifacts and run records in this S3 bucket (`s3://BUCKET`) and
    /// send metrics to CloudWatch, instead of `<repo>/.aphex/`.
    #[arg(long, value_name = "s3://BUCKET")]
    pub store: Option<String>,
    /// Make a change set for every stack, even one whose template,
    /// parameters and tags equal the deployed stack's (skipped otherwise).
    #[arg(long)]
    pub force: bool,
}

/// The adapters of a local run: directories under `state` (or, with a
/// `store` bucket, S3 for artifacts and run records and CloudWatch for
/// metrics), and the chosen deployer.
pub async fn adapters(
    state: &Path,
    deployer: DeployerKind,
    store: Option<&str>,
    redactor: &Redactor,
    force: bool,
) -> Ports {
    aphex_adapters::build(Adapters {
        deployer,
        storage: match store {
            Some(bucket) => Storage::S3(bucket.to_owned()),
            None => Storage::Dir(state.to_path_buf()),
        },
        cluster: Cluster::Dir(state.join("cluster")),
        scope: Scope::Deploy,
        notifier: aphex_adapters::notifier(redactor, None),
        // A local run posts no commit status: it may be of uncommitted
        // thinking, and the token lives in the cluster.
        statuses: None,
        force,
    })
    .await
}

/// The config file to run: `path` relative to the repository root (or an
/// absolute path inside it); a directory means its `aphex-config.yaml`.
fn config_file(path: &Path, repo: &Path) -> Result<PathBuf, String> {
    let rel = match path.strip_prefix(repo) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) if path.is_absolute() => {
            return Err(format!("{} is not inside {}", path.display(), repo.display()));
        }
        Err(_) => path.to_path_buf(),
    };
    if repo.join(&rel).is_dir() {
        Ok(rel.join("aphex-config.yaml"))
    } else {
        Ok(rel)
    }
}

/// Plain lines on stderr, for logs and pipes.
struct PlainReporter;

impl Reporter for PlainReporter {
    fn event(&self, event: &Event) {
        eprintln!("{}", event.to_line());
    }
}

/// A spinner for the running stage, with output lines printed above it.
struct TerminalReporter {
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalReporter {
    fn println(&self, line: &str) {
        match self.bar.lock().expect("bar lock").as_ref() {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Reporter for TerminalReporter {
    fn event(&self, event: &Event) {
        match event {
            Event::StageStarted { stage } => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed} {wide_msg}")
                        .expect("static template"),
                );
                bar.set_prefix(stage.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                eprintln!("{}", event.to_line());
                *self.bar.lock().expect("bar lock") = Some(bar);
            }
            Event::StageFinished { .. } => {
                if let Some(bar) = self.bar.lock().expect("bar lock").take() {
                    bar.finish_and_clear();
                }
                eprintln!("{}", event.to_line());
            }
            Event::CommandStarted { prefix, command, .. } => {
                if let Some(bar) = self.bar.lock().expect("bar lock").as_ref() {
                    bar.set_message(format!("{prefix}: {command}"));
                }
                self.println(&event.to_line());
            }
            _ => self.println(&event.to_line()),
        }
    }
}

impl TerminalReporter {
    fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self.bar.lock().expect("bar lock").as_ref() {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

/// Asks on the terminal, or takes `--yes` (manual gates) and
/// `--allow-risk` (risk gates).
struct CliApprover {
    yes: bool,
    allow_risk: bool,
    terminal: Option<Arc<TerminalReporter>>,
    redactor: Redactor,
}

impl CliApprover {
    /// Asks `question` on the terminal; yes only when the person says so.
    fn ask(&self, env: &str, question: &str) -> Result<bool, ApprovalError> {
        let Some(term) = &self.terminal else {
            return Err(ApprovalError::NobodyToAsk { env: env.to_owned() });
        };
        term.suspend(|| {
            eprint!("{question} [y/N] ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut answer)
                .map_err(|source| ApprovalError::Read {
                    env: env.to_owned(),
                    source,
                })?;
            Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
        })
    }
}

impl Approver for CliApprover {
    fn approve(&self, env: &str) -> Result<bool, ApprovalError> {
        if self.yes {
            eprintln!("deploy to {env} approved by --yes");
            return Ok(true);
        }
        self.ask(env, &format!("Deploy to {env}?"))
    }

    fn approve_risks(&self, env: &str, changes: &[RiskyChange]) -> Result<bool, ApprovalError> {
        // Templates come from trusted commits, but a property value may
        // still hold a secret: printed through redaction like every log line.
        let listed = self
            .redactor
            .redact(&aphex_stages::stages::deploy::list_changes(changes));
        if self.allow_risk {
            eprintln!("risk gate of {env} approved by --allow-risk:{listed}");
            return Ok(true);
        }
        if self.terminal.is_none() {
            return Err(ApprovalError::RiskNobodyToAsk { env: env.to_owned() });
        }
        eprintln!("risk gate of {env}: these changes need your approval:{listed}");
        self.ask(env, &format!("Deploy these changes to {env}?"))
    }
}

fn print_summary(out: &mut Out, run: &RunRecord, state: &Path, store: Option<&str>) -> Result<(), CliError> {
    let short = run.commit.get(..12).unwrap_or(&run.commit);
    let branch = run
        .branch
        .as_deref()
        .map(|b| format!(" on {b}"))
        .unwrap_or_default();
    writeln!(out, "run {} {} (commit {short}{branch})", run.id, run.status)?;
    for s in &run.stages {
        let secs = s
            .ended_at
            .as_deref()
            .map(|e| format!("{:.1}s", aphex_stages::time::seconds_between(&s.started_at, e)))
            .unwrap_or_default();
        writeln!(out, "  {:<20} {:<12} {secs}", s.name, s.status)?;
        for st in &s.stacks {
            let what = match (st.status, st.changed) {
                (Status::Succeeded, Some(true)) => "deployed",
                (Status::Succeeded, Some(false)) => "no changes",
                (status, _) => status.as_str(),
            };
            writeln!(out, "    stack {:<24} {what:<11} {}", st.name, st.stack_name)?;
        }
        if !s.stacks.is_empty() && s.stacks.iter().all(|st| st.changed == Some(false)) {
            writeln!(out, "    nothing deployed: every stack was already up to date")?;
        }
        if let Some(e) = &s.error {
            for line in e.lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    let dir = run_dir(state, &run.pipeline, &run.id);
    match store {
        Some(bucket) => writeln!(
            out,
            "record: s3://{bucket}/{}",
            aphex_aws::s3::S3RunRecorder::run_key(run)
        )?,
        None => writeln!(out, "record: {}.json", dir.display())?,
    }
    writeln!(out, "logs:   {}", dir.join("logs").display())?;
    let outputs = dir.join("outputs");
    if outputs.is_dir() {
        writeln!(out, "outputs: {}", outputs.display())?;
    }
    Ok(())
}

/// Runs `aphex run`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    if !args.local {
        return Err(CliError::usage("only local runs are supported: pass --local")
            .help("in a cluster, pushes to the watched branch start runs"));
    }
    super::runtime()?.block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<Exit, CliError> {
    let start = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    let repo = aphex_stages::workspace::toplevel(&start).await.map_err(|e| {
        CliError::usage(format!("{} is not inside a git repository: {e}", start.display()))
            .help("run from your application repository, or pass --repo DIR")
    })?;
    let head = aphex_stages::workspace::head_commit(&repo).await.ok();
    let commit = match (&args.commit, &head) {
        (Some(c), _) => {
            aphex_stages::workspace::check_sha(c).map_err(|e| CliError::usage(format!("--commit {e}")))?;
            c.to_ascii_lowercase()
        }
        (None, Some(h)) => h.clone(),
        (None, None) => {
            return Err(CliError::usage(format!(
                "{} has no commits yet: commit your app first",
                repo.display()
            )));
        }
    };
    let branch = if head.as_deref() == Some(commit.as_str()) {
        aphex_stages::workspace::current_branch(&repo).await
    } else {
        None
    };
    let config_file = config_file(&args.path, &repo).map_err(CliError::usage)?;
    let store = args
        .store
        .as_deref()
        .map(aphex_aws::s3::parse_store_url)
        .transpose()
        .map_err(|e| CliError::usage(format!("--store {e}")))?;
    let state = repo.join(".aphex");
    let redactor = Redactor::from_env();
    let ports = adapters(&state, args.deployer, store.as_deref(), &redactor, args.force).await;
    let terminal = std::io::stderr().is_terminal();
    let term = terminal.then(|| {
        Arc::new(TerminalReporter {
            bar: Mutex::new(None),
        })
    });
    let reporter: Arc<dyn Reporter> = match &term {
        Some(t) => t.clone(),
        None => Arc::new(PlainReporter),
    };
    let cancel = Cancel::new();
    aphex_stages::shutdown::cancel_on_signals(cancel.clone(), Exit::Interrupted.into(), say);
    eprintln!(
        "aphex run --local: commit {commit}{} of {}",
        if args.commit.is_none() {
            " (HEAD; uncommitted changes are not part of the run)"
        } else {
            ""
        },
        repo.display()
    );
    eprintln!("deployer: {}", ports.deployer.describe());
    match &store {
        Some(bucket) => eprintln!(
            "state: artifacts and run records in s3://{bucket}/, metrics in CloudWatch, logs in {}",
            state.display()
        ),
        None => eprintln!("state: {}", state.display()),
    }
    let opts = LocalRun {
        id: new_run_id(),
        repo: repo.display().to_string(),
        commit,
        branch,
        config_file: config_file.display().to_string(),
        state: state.clone(),
        only_env: args.env.clone(),
        trigger: aphex_template::submit::Origin::Manual,
    };
    let approver = CliApprover {
        yes: args.yes,
        allow_risk: args.allow_risk,
        redactor: redactor.clone(),
        terminal: term,
    };
    let exec = Exec {
        reporter,
        redactor: redactor.clone(),
        cancel,
    };
    match run_local(&opts, ports, exec, &approver).await {
        Ok(record) => {
            let mut out = Out::lock();
            print_summary(&mut out, &record, &state, store.as_deref())?;
            if args.deployer == DeployerKind::Fake && record.stages.iter().any(|s| !s.stacks.is_empty()) {
                writeln!(
                    out,
                    "note: the fake deployer deployed nothing; stack results are recorded requests"
                )?;
            }
            Ok(match record.status {
                // A duplicate deployed nothing because nothing was new.
                Status::Succeeded | Status::Duplicate => Exit::Ok,
                Status::Interrupted => Exit::Interrupted,
                _ => Exit::Failure,
            })
        }
        Err(e) => {
            let message = redactor.redact(&e.to_string());
            Err(if e.is_interrupted() {
                CliError::interrupted(message)
            } else {
                CliError::failure(message)
            })
        }
    }
}

/// Writes a message of the signal watcher to standard error.
fn say(message: &str) {
    eprintln!("{message}");
}

#[cfg(test)]
mod tests {
    use clap::{Args as _, Command};

    // The help text is a literal (clap's attribute takes no constant); this
    // keeps it naming the variable the runner and the template use.
    #[test]
    fn the_help_names_the_slack_variable_the_pipeline_uses() {
        let help = super::Args::augment_args(Command::new("run"))
            .render_long_help()
            .to_string();
        assert!(
            help.contains(&format!(
                "Set {} to send",
                aphex_template::workflow::SLACK_WEBHOOK_ENV
            )),
            "{help}"
        );
    }
}
