//! The runner's command line (docs/pipeline.md, "The runner contract").

use std::path::PathBuf;

use aphex_adapters::DeployerKind;
use aphex_stages::single::RunnerStage;
use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};

/// Runs one stage of an Aphex pipeline at one commit.
#[derive(Debug, Parser)]
#[command(name = "aphex-runner", version, about)]
pub struct Args {
    /// The stage to run.
    #[arg(value_parser = stage_parser())]
    pub stage: RunnerStage,
    /// Environment of deploy, test and synth (an empty value means none).
    #[arg(long, env = "APHEX_ENV")]
    pub env: Option<String>,
    /// Full 40-hex commit SHA.
    #[arg(long, env = "APHEX_COMMIT_SHA")]
    pub commit_sha: String,
    /// Repository to check out (URL or path); the WorkflowTemplate derives it from the config.
    #[arg(long, env = "APHEX_REPO_URL")]
    pub repo_url: String,
    /// The branch the pipeline deploys: a deploy run's commit must be on it.
    #[arg(long, env = "APHEX_BRANCH")]
    pub branch: Option<String>,
    /// The pull request a validate-pr run checks (empty: a deploy run).
    #[arg(long, env = "APHEX_PULL_REQUEST")]
    pub pull_request: Option<String>,
    /// Run id (the Argo workflow name).
    #[arg(long, env = "APHEX_WORKFLOW_ID")]
    pub workflow_id: String,
    /// The Workflow's labels as a JSON object (`{{workflow.labels.json}}`):
    /// `aphex.dev/trigger` says how the run started. Absent or unreadable:
    /// started by a person.
    #[arg(long, env = "APHEX_WORKFLOW_LABELS")]
    pub workflow_labels: Option<String>,
    /// Where the run can be watched (the Argo UI); the WorkflowTemplate
    /// derives it from `pipeline.argoUrl`.
    #[arg(long, env = "APHEX_RUN_URL")]
    pub run_url: Option<String>,
    /// GitHub's REST API, where commit statuses are posted; given only to
    /// the pods that post them (validate, finalize) when the config asks.
    #[arg(long, env = "APHEX_GITHUB_API_URL")]
    pub github_api_url: Option<String>,
    /// `owner/repo` the commit statuses are posted on.
    #[arg(long, env = "APHEX_GITHUB_REPOSITORY")]
    pub github_repository: Option<String>,
    /// Config file, relative to the repository root.
    #[arg(long, env = "APHEX_CONFIG_FILE", default_value = "aphex-config.yaml")]
    pub config: String,
    /// Where checkouts and scratch files go.
    #[arg(long, env = "APHEX_WORK_DIR", default_value = "/tmp/aphex/work")]
    pub work_dir: PathBuf,
    /// Where Argo output-parameter files go.
    #[arg(long, env = "APHEX_OUTPUTS_DIR", default_value = aphex_template::workflow::OUTPUTS_DIR)]
    pub outputs_dir: PathBuf,
    /// Use the local adapters in this directory instead of AWS (tests, dry runs).
    #[arg(long, env = "APHEX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The stack deployer.
    #[arg(long, env = "APHEX_DEPLOYER", value_enum, default_value_t = DeployerKind::Cloudformation)]
    pub deployer: DeployerKind,
    /// Who approved the gate before this deploy (the gate's `approved-by`
    /// output; empty: no gate, or resumed without a name).
    #[arg(long, env = "APHEX_APPROVED_BY")]
    pub approved_by: Option<String>,
    /// Where this deploy stands to the environment's risk gate: `pause`
    /// (`deploy-<env>`: stop at a gate that wants a person, for the
    /// `risk-<env>` suspend after it), `resume STARTED FINISHED`
    /// (`resume-<env>`: the gate was resumed, between those times), empty
    /// (no gate in the topology: such a gate fails).
    #[arg(long, env = "APHEX_RISK_GATE", default_value = "")]
    pub risk_gate: String,
    /// The pipeline stage's run's topology: the stages of the template it
    /// was rendered in, comma-separated (absent: a template rendered
    /// before this flag; the stage compares with the live template).
    #[arg(long, env = "APHEX_TOPOLOGY")]
    pub topology: Option<String>,
}

/// The stage argument: one of [`RunnerStage::ALL`]'s names, offered and
/// checked as clap does an enum's values.
fn stage_parser() -> impl TypedValueParser<Value = RunnerStage> {
    PossibleValuesParser::new(RunnerStage::ALL.map(RunnerStage::name)).map(|name| {
        RunnerStage::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .expect("one of the possible values")
    })
}
