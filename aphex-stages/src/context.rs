//! What every stage gets: the run's identity, the config and checkout of the
//! commit, the ports, a scratch directory, and the [`Exec`] that runs
//! commands. Binaries build one; stages only read it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aphex_config::Config;
use aphex_template::submit::Origin;

use crate::ports::{
    ArtifactStore, CommitStatuses, CredentialChecker, ManifestApplier, MetricsSink, Notifier,
    PipelineStackUpdater, RunRecorder, StackDeployer, WorkflowSubmitter,
};
use crate::process::Exec;
use crate::report::{Event, Reporter};

/// The adapters a run uses.
#[derive(Clone)]
pub struct Ports {
    /// Build artifacts.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Run records.
    pub runs: Arc<dyn RunRecorder>,
    /// Stack deploys.
    pub deployer: Arc<dyn StackDeployer>,
    /// Manifest applies (the pipeline stage).
    pub applier: Arc<dyn ManifestApplier>,
    /// Metrics.
    pub metrics: Arc<dyn MetricsSink>,
    /// Notifications.
    pub notifier: Arc<dyn Notifier>,
    /// Credential checks; `None` says "not wired" and validate reports that
    /// the check was skipped rather than pretending it passed.
    pub credentials: Option<Arc<dyn CredentialChecker>>,
    /// The pipeline's own AWS stack (the pipeline stage); `None` says "not
    /// wired" and the stage reports that this run does not manage the stack
    /// rather than pretending it deployed.
    pub pipeline_stack: Option<Arc<dyn PipelineStackUpdater>>,
    /// Commit statuses (`notifications.githubStatus`); `None`: none are posted.
    pub statuses: Option<Arc<dyn CommitStatuses>>,
    /// Submits the restart of a run whose topology the pipeline stage
    /// changed; `None`: nothing restarts (a pull request's run, and a
    /// local run, which already plans from the commit's config).
    pub workflows: Option<Arc<dyn WorkflowSubmitter>>,
}

/// What a run is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// A run of the branch the pipeline deploys (`main`).
    Deploy,
    /// The validation of a pull request (`validate-pr`): deploys nothing.
    PullRequest(u64),
}

impl RunKind {
    /// The run's ref for the record: the branch, or GitHub's ref of the
    /// pull request (`pull/7/head`).
    pub fn record_ref(self, branch: Option<&str>) -> Option<String> {
        match self {
            RunKind::Deploy => branch.map(str::to_owned),
            RunKind::PullRequest(n) => Some(format!("pull/{n}/head")),
        }
    }
}

/// Who and what a run is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// Run id (the Argo workflow name in a cluster).
    pub id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Full commit SHA.
    pub commit: String,
    /// Branch, when known.
    pub branch: Option<String>,
    /// Repository URL or path the commit came from.
    pub repo: String,
    /// The namespace the run's workflow runs in, when known (a pod's
    /// `APHEX_NAMESPACE`): the pipeline stage refuses a config that moves
    /// the pipeline elsewhere.
    pub namespace: Option<String>,
    /// A deploy run or a pull request's.
    pub kind: RunKind,
    /// How it started (its `aphex.dev/trigger` label; a person's when
    /// absent or unknown): a pushed head may be a duplicate, a restart never
    /// restarts.
    pub trigger: Origin,
    /// Where it can be watched (the Argo UI), when `pipeline.argoUrl` is set.
    pub url: Option<String>,
    /// The stages of the WorkflowTemplate the run was started from
    /// ([`aphex_template::workflow::topology`]), when its template says
    /// (the pipeline pod's `--topology`): the pipeline stage restarts the
    /// run when the commit's topology differs from them.
    pub topology: Option<Vec<String>>,
    /// Who started the run (its `aphex.dev/sender` label), when known: a
    /// restart of the run carries it on.
    pub sender: Option<String>,
}

/// Everything a stage runs with.
#[derive(Clone)]
pub struct StageContext {
    /// The run.
    pub run: RunInfo,
    /// The config at the commit.
    pub config: Config,
    /// The config file, relative to the checkout (for messages).
    pub config_file: String,
    /// The app's folder in the checkout of the commit (`app_root`: the
    /// repository root unless the config file is in a subfolder).
    pub checkout: PathBuf,
    /// Scratch space of this run (synth output, archives); may be shared by stages.
    pub work: PathBuf,
    /// Where stage logs go (`<stage>.log`).
    pub logs: PathBuf,
    /// The adapters.
    pub ports: Ports,
    /// Runs commands.
    pub exec: Exec,
}

impl StageContext {
    /// Reports an informational step of `stage`.
    pub fn info(&self, stage: &str, message: impl Into<String>) {
        self.exec.reporter.event(&Event::Info {
            stage: stage.to_owned(),
            message: self.exec.redactor.redact(&message.into()),
        });
    }

    /// Reports a warning of `stage`.
    pub fn warn(&self, stage: &str, message: impl Into<String>) {
        self.exec.reporter.event(&Event::Warning {
            stage: stage.to_owned(),
            message: self.exec.redactor.redact(&message.into()),
        });
    }

    /// The reporter.
    pub fn reporter(&self) -> &dyn Reporter {
        self.exec.reporter.as_ref()
    }

    /// A fresh, empty directory under the scratch space, named after `what`.
    pub(crate) fn fresh_dir(&self, what: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.work)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{what}-"))
            .tempdir_in(&self.work)?;
        // Kept after the stage for inspection; the run's scratch space is
        // removed as a whole.
        Ok(dir.keep())
    }
}

/// The app's folder in a checkout: the config file's folder. Commands run
/// there and the config's paths (stacks, artifacts) are relative to it, so an
/// app in a subfolder of a repository (`examples/quickstart/aphex-config.yaml`)
/// runs as it would at the root.
pub(crate) fn app_root(checkout: &Path, config_file: &str) -> PathBuf {
    match Path::new(config_file).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => checkout.join(dir),
        _ => checkout.to_path_buf(),
    }
}

/// Reads and validates the config file at `checkout`/`file`; every problem
/// comes back as one line `file:line:col: path: message (help)`.
pub fn load_config(checkout: &Path, file: &str) -> Result<Config, Vec<String>> {
    let path = checkout.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        vec![format!(
            "{file}: cannot read the config at this commit: {e} (commit an aphex-config.yaml at the repository root, or name the file)"
        )]
    })?;
    aphex_config::load_str(file, &text).map_err(|diags| {
        diags
            .into_iter()
            .map(|d| {
                let place = if d.line > 0 {
                    format!("{}:{}:{}", d.file, d.line, d.column)
                } else {
                    d.file.clone()
                };
                let path = if d.path.is_empty() {
                    String::new()
                } else {
                    format!(" {}:", d.path)
                };
                let help = d.help.map(|h| format!(" (help: {h})")).unwrap_or_default();
                format!("{place}:{path} {}{help}", d.message)
            })
            .collect()
    })
}
