//! What the applier's suites share: the pipeline stage run through a
//! `KubeApplier`, against the in-process fake (`applier.rs`) or the real
//! API server (`real_api.rs`).
#![allow(dead_code)]

use std::sync::Arc;

use aphex_k8s::KubeApplier;
use aphex_stages::context::{Ports, RunInfo, RunKind, StageContext};
use aphex_stages::fake::RecordingDeployer;
use aphex_stages::local::{DirArtifactStore, DirRunRecorder, JsonLinesMetrics, NoopNotifier};
use aphex_stages::process::{Cancel, Exec};
use aphex_stages::redact::Redactor;
use aphex_stages::report::CollectingReporter;
use aphex_stages::stages::pipeline;
use aphex_template::submit::Origin;

/// A one-environment pipeline `name` in `namespace`.
pub fn pipeline_config(name: &str, namespace: &str) -> aphex_config::Config {
    let yaml = format!(
        r#"
version: "1.0"
pipeline: {{ name: {name}, namespace: {namespace} }}
build: {{ commands: ["true"] }}
environments:
  - {{ name: dev, region: us-east-1, account: "123456789012", stacks: [{{ name: A, path: a.ts }}] }}
"#
    );
    aphex_config::load_str("aphex-config.yaml", &yaml).expect("the test config loads")
}

/// Runs the pipeline stage on `config`, applying through `applier`; its log.
pub async fn run_pipeline_stage(applier: KubeApplier, config: aphex_config::Config) -> String {
    run_pipeline_stage_in(applier, config, None)
        .await
        .expect("the pipeline stage succeeds")
}

/// Runs the pipeline stage on `config` as a workflow in `namespace`,
/// applying through `applier`; its log, or its error.
pub async fn run_pipeline_stage_in(
    applier: KubeApplier,
    config: aphex_config::Config,
    namespace: Option<&str>,
) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, reporter) = stage_context(dir.path(), applier, config, namespace);
    pipeline::run(&ctx).await.map_err(|e| e.to_string())?;
    Ok(reporter.text())
}

/// The context of a pipeline stage of run `run-1` (a person's, at commit
/// `0123456789abcdef...`) on `config`, with its state under `dir`, applying
/// through `applier` and submitting no Workflow; and its log.
pub fn stage_context(
    dir: &std::path::Path,
    applier: KubeApplier,
    config: aphex_config::Config,
    namespace: Option<&str>,
) -> (StageContext, Arc<CollectingReporter>) {
    let state = dir.join("state");
    let reporter = Arc::new(CollectingReporter::default());
    let ctx = StageContext {
        run: RunInfo {
            id: "run-1".to_owned(),
            pipeline: config.pipeline_name().to_owned(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            branch: Some("main".to_owned()),
            repo: "https://github.com/acme/shop.git".to_owned(),
            namespace: namespace.map(str::to_owned),
            kind: RunKind::Deploy,
            trigger: Origin::Manual,
            url: None,
            topology: None,
            sender: None,
        },
        config,
        config_file: "aphex-config.yaml".to_owned(),
        checkout: dir.join("checkout"),
        work: dir.join("work"),
        logs: dir.join("logs"),
        ports: Ports {
            artifacts: Arc::new(DirArtifactStore::new(state.join("artifacts"))),
            runs: Arc::new(DirRunRecorder::new(state.join("runs"))),
            deployer: Arc::new(RecordingDeployer::new()),
            applier: Arc::new(applier),
            metrics: Arc::new(JsonLinesMetrics::new(state.join("metrics.jsonl"))),
            notifier: Arc::new(NoopNotifier),
            credentials: None,
            pipeline_stack: None,
            statuses: None,
            workflows: None,
        },
        exec: Exec {
            reporter: reporter.clone(),
            redactor: Redactor::new(),
            cancel: Cancel::new(),
        },
    };
    (ctx, reporter)
}

/// The pipeline stage creates, then leaves unchanged, then changes the
/// live WorkflowTemplate of pipeline `name` in `namespace` (a second
/// environment added), as its log says.
pub async fn created_then_unchanged_then_changed(
    applier: impl Fn() -> KubeApplier,
    name: &str,
    namespace: &str,
) {
    let config = pipeline_config(name, namespace);
    let object = format!("WorkflowTemplate {namespace}/{name}");

    let log = run_pipeline_stage(applier(), config.clone()).await;
    assert!(log.contains(&format!("{object}: created")), "{log}");
    assert!(
        log.contains("applied 1 manifests to the Kubernetes API server"),
        "{log}"
    );

    // The live object carries server fields; the stage must not call
    // that a change.
    let log = run_pipeline_stage(applier(), config.clone()).await;
    assert!(log.contains(&format!("{object}: unchanged")), "{log}");
    assert!(log.contains("no topology change"), "{log}");

    let mut grown = config;
    let mut prod = grown.environments[0].clone();
    prod.name = "prod".to_owned();
    grown.environments.push(prod);
    let log = run_pipeline_stage(applier(), grown).await;
    assert!(log.contains(&format!("{object}: changed")), "{log}");
    assert!(log.contains("topology: + environment prod"), "{log}");
}

/// The WorkflowTemplate the pipeline stage applies for
/// [`pipeline_config`]`(name, namespace)`.
pub fn pipeline_template(name: &str, namespace: &str) -> serde_json::Value {
    pipeline::render_manifests(&pipeline_config(name, namespace)).remove(0)
}
