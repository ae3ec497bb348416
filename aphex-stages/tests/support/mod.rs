//! Test support shared by the stage tests: a stage context over the local
//! adapters in a temp directory, a collecting reporter, the recording
//! deployer, a recording pipeline stack updater, and a fake synth command
//! that writes a hand-made cloud assembly and counts its own runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aphex_stages::context::{Ports, RunInfo, RunKind, StageContext};
use aphex_stages::fake::RecordingDeployer;
use aphex_stages::local::{DirArtifactStore, DirCluster, DirRunRecorder, JsonLinesMetrics, NoopNotifier};
use aphex_stages::ports::{
    DeployError, DeployProgress, PipelineStackUpdater, StackEvent, StackOutcome, StackOutput,
};
use aphex_stages::process::{Cancel, Exec};
use aphex_stages::redact::Redactor;
use aphex_stages::report::CollectingReporter;
use aphex_template::submit::Origin;
use aphex_testkit::assembly::{FakeStack, write_assembly};

/// A config with one environment and one stack, for tests that only need
/// the build or a stage context.
pub const MINIMAL: &str = r#"
version: "1.0"
build: { commands: ["true"] }
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks: [{ name: AppStack, path: app.ts }]
"#;

pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A stage context and everything behind it.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub ctx: StageContext,
    pub reporter: Arc<CollectingReporter>,
    pub deployer: Arc<RecordingDeployer>,
}

impl Harness {
    pub fn checkout(&self) -> &Path {
        &self.ctx.checkout
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Every reported line, joined.
    pub fn log(&self) -> String {
        self.reporter.text()
    }
}

/// A harness for `config_yaml` with a plain (non-git) checkout directory.
pub fn harness(config_yaml: &str) -> Harness {
    harness_with(config_yaml, RecordingDeployer::new(), Redactor::new())
}

pub fn harness_with(config_yaml: &str, deployer: RecordingDeployer, redactor: Redactor) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkout = dir.path().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::write(checkout.join("aphex-config.yaml"), config_yaml).unwrap();
    let config = aphex_config::load_str("aphex-config.yaml", config_yaml).expect("valid test config");
    let state = dir.path().join("state");
    let reporter = Arc::new(CollectingReporter::default());
    let deployer = Arc::new(deployer);
    let ports = Ports {
        artifacts: Arc::new(DirArtifactStore::new(state.join("artifacts"))),
        runs: Arc::new(DirRunRecorder::new(state.join("runs"))),
        deployer: deployer.clone(),
        applier: Arc::new(DirCluster::new(state.join("cluster"))),
        metrics: Arc::new(JsonLinesMetrics::new(state.join("metrics.jsonl"))),
        notifier: Arc::new(NoopNotifier),
        credentials: None,
        pipeline_stack: None,
        statuses: None,
        workflows: None,
    };
    let ctx = StageContext {
        run: RunInfo {
            id: "run-1".to_owned(),
            pipeline: config.pipeline_name().to_owned(),
            commit: SHA.to_owned(),
            branch: Some("main".to_owned()),
            repo: checkout.display().to_string(),
            namespace: None,
            kind: RunKind::Deploy,
            trigger: Origin::Manual,
            url: None,
            topology: None,
            sender: None,
        },
        config,
        config_file: "aphex-config.yaml".to_owned(),
        checkout,
        work: dir.path().join("work"),
        logs: dir.path().join("logs"),
        ports,
        exec: Exec {
            reporter: reporter.clone(),
            redactor,
            cancel: Cancel::new(),
        },
    };
    Harness {
        dir,
        ctx,
        reporter,
        deployer,
    }
}

/// Prepares `fake-assembly/` in the checkout and returns a synth command
/// that copies it into `$CDK_OUTDIR` and appends a line to `synth-count`
/// (outside the checkout, so artifacts do not carry it): the account and
/// region it saw, as the CDK and the AWS SDKs/CLI read them.
pub fn fake_synth(h: &Harness, stacks: &[FakeStack<'_>]) -> String {
    let src = h.dir.path().join("fake-assembly");
    write_assembly(&src, stacks);
    let count = h.dir.path().join("synth-count");
    format!(
        "echo \"$CDK_DEFAULT_ACCOUNT/$CDK_DEFAULT_REGION aws=$AWS_REGION,$AWS_DEFAULT_REGION\" >> '{}' && cp -r '{}'/. \"$CDK_OUTDIR\"/",
        count.display(),
        src.display()
    )
}

/// How many times the fake synth ran, with the account/region each run saw.
pub fn synth_runs(h: &Harness) -> Vec<String> {
    std::fs::read_to_string(h.dir.path().join("synth-count"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A runtime for driving async code from proptest cases.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// How the recording pipeline stack updater answers.
pub enum StackAnswer {
    /// Succeeds (`changed: false` is an unchanged stack) with the two outputs
    /// of the real pipeline stack.
    Deployed { changed: bool },
    /// Fails with this message.
    Fails(&'static str),
    /// Says it started (through `started`), then never finishes.
    Hangs,
}

/// A [`PipelineStackUpdater`] that records the pipeline of each call and
/// answers as told, reporting one stack event per call.
pub struct RecordingStackUpdater {
    pub answer: StackAnswer,
    pub calls: Mutex<Vec<String>>,
    pub started: tokio::sync::Notify,
}

impl RecordingStackUpdater {
    pub fn new(answer: StackAnswer) -> Arc<Self> {
        Arc::new(RecordingStackUpdater {
            answer,
            calls: Mutex::new(Vec::new()),
            started: tokio::sync::Notify::new(),
        })
    }

    /// The pipeline name of every call so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl PipelineStackUpdater for RecordingStackUpdater {
    fn describe(&self) -> String {
        "a recording pipeline stack updater".to_owned()
    }

    async fn update(
        &self,
        config: &aphex_config::Config,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError> {
        let stack_name = format!("aphex-{}", config.pipeline_name());
        self.calls.lock().unwrap().push(config.pipeline_name().to_owned());
        progress.event(&StackEvent {
            stack: stack_name.clone(),
            logical_id: "WorkflowExecutionRole".to_owned(),
            resource_type: "AWS::IAM::Role".to_owned(),
            status: "CREATE_IN_PROGRESS".to_owned(),
            reason: None,
            timestamp: "2026-01-01T00:00:00Z".to_owned(),
        });
        match self.answer {
            StackAnswer::Deployed { changed } => Ok(StackOutcome {
                stack_name,
                changed,
                outputs: vec![
                    StackOutput {
                        key: "ArtifactBucketName".to_owned(),
                        value: "aphex-artifacts-bucket".to_owned(),
                        export_name: None,
                    },
                    StackOutput {
                        key: "WorkflowExecutionRoleArn".to_owned(),
                        value: "arn:aws:iam::123456789012:role/aphex-exec".to_owned(),
                        export_name: None,
                    },
                ],
            }),
            StackAnswer::Fails(message) => Err(DeployError {
                stack: stack_name,
                message: message.to_owned(),
                root_causes: vec![],
            }),
            StackAnswer::Hangs => {
                self.started.notify_one();
                std::future::pending().await
            }
        }
    }
}
