//! `aphex-stages` owns the stage engine: every stage (validate, build,
//! pipeline, deploy, test, finalize) written once against ports (traits), the
//! local adapters and the HTTP ones (Slack-compatible webhooks, GitHub commit
//! statuses), process execution with log capture and redaction, git
//! checkout, the CDK cloud assembly reader, the local executor, and the
//! diff of rendered objects against the live ones ([`diff`]). Test fakes
//! ([`fake`]) are built only with the `test-util` feature.
//!
//! Architecture invariant: no AWS or Kubernetes crate; adapters for those
//! live in `aphex-aws` and `aphex-k8s`.
//!
//! # Example
//!
//! Embedding a stage: the validate stage on a checkout in a temporary
//! directory, with the local adapters (a directory for artifacts, runs,
//! metrics and the "cluster"). Validate deploys nothing, so the deployer
//! here refuses; a real run wires `aphex-aws`'s.
//!
//! ```
//! use std::sync::Arc;
//!
//! use aphex_stages::context::{Ports, RunInfo, RunKind, StageContext};
//! use aphex_template::submit::Origin;
//! use aphex_stages::local::{DirArtifactStore, DirCluster, DirRunRecorder, JsonLinesMetrics, NoopNotifier};
//! use aphex_stages::process::{Cancel, Exec};
//! use aphex_stages::redact::Redactor;
//! use aphex_stages::report::TracingReporter;
//! use aphex_stages::stages::{StageError, validate};
//! # use aphex_stages::ports::{DeployError, DeployProgress, DeployRequest, StackDeployer, StackOutcome};
//! # struct NoDeployer;
//! # #[async_trait::async_trait]
//! # impl StackDeployer for NoDeployer {
//! #     fn describe(&self) -> String {
//! #         "none".to_owned()
//! #     }
//! #     async fn deploy(&self, _: DeployRequest<'_>, _: &dyn DeployProgress) -> Result<StackOutcome, DeployError> {
//! #         panic!("the validate stage deploys nothing")
//! #     }
//! # }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let checkout = dir.path().join("checkout");
//! std::fs::create_dir_all(checkout.join("lib"))?;
//! std::fs::write(checkout.join("lib/app-stack.ts"), "// the CDK stack")?;
//! let config = aphex_config::load_str("aphex-config.yaml", r#"
//! version: "1.0"
//! build: { commands: ["true"] }
//! environments:
//!   - name: dev
//!     region: us-east-1
//!     account: "123456789012"
//!     synth: "true"
//!     stacks: [{ name: AppStack, path: lib/app-stack.ts }]
//! "#).expect("a valid config");
//!
//! let state = dir.path().join("state");
//! let ctx = StageContext {
//!     run: RunInfo {
//!         id: "run-1".to_owned(),
//!         pipeline: config.pipeline_name().to_owned(),
//!         commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
//!         branch: Some("main".to_owned()),
//!         repo: checkout.display().to_string(),
//!         namespace: None,
//!         kind: RunKind::Deploy,
//!         trigger: Origin::Manual,
//!         url: None,
//!         topology: None,
//!         sender: None,
//!     },
//!     config,
//!     config_file: "aphex-config.yaml".to_owned(),
//!     checkout: checkout.clone(),
//!     work: dir.path().join("work"),
//!     logs: dir.path().join("logs"),
//!     ports: Ports {
//!         artifacts: Arc::new(DirArtifactStore::new(state.join("artifacts"))),
//!         runs: Arc::new(DirRunRecorder::new(state.join("runs"))),
//!         deployer: Arc::new(NoDeployer),
//!         applier: Arc::new(DirCluster::new(state.join("cluster"))),
//!         metrics: Arc::new(JsonLinesMetrics::new(state.join("metrics.jsonl"))),
//!         notifier: Arc::new(NoopNotifier),
//!         // Not wired: validate says the credentials were not checked.
//!         credentials: None,
//!         pipeline_stack: None,
//!         statuses: None,
//!         workflows: None,
//!     },
//!     exec: Exec {
//!         reporter: Arc::new(TracingReporter),
//!         redactor: Redactor::new(),
//!         cancel: Cancel::new(),
//!     },
//! };
//!
//! // Tools on PATH and stack paths present: the run goes on.
//! let outcome = validate::run(&ctx).await?;
//! assert!(outcome.ends_run.is_none());
//!
//! // A stack whose source is missing fails, with every problem listed.
//! std::fs::remove_file(checkout.join("lib/app-stack.ts"))?;
//! match validate::run(&ctx).await {
//!     Err(StageError::Invalid(problems)) => {
//!         assert!(problems[0].starts_with("environments[0].stacks[0].path"))
//!     }
//!     other => panic!("expected the missing stack path, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

// The public surface, curated: docs/architecture.md lists these modules
// and a tidy test holds the `pub mod`s to that list, so a new one is a
// reviewed decision. By what an embedder does with it: run stages
// (`stages`, `context`, `single` for one stage as a pod runs it, `executor`
// for a whole local run, `report`, `process`, `redact`, `shutdown`); wire
// or write adapters (`ports`, `local`, `github`, `log_upload`); read
// records and data (`record`, `assembly`, `artifact`, `diff`, `bootstrap`,
// `risk` (the risk gates' classifier),
// `workspace`). Small helpers other crates share stay public: `files`,
// `time`; `lines` is public for its property tests. Inside these modules,
// what no other crate and no test uses is `pub(crate)` (the constants that
// state a public item's limits stay public: they are its documentation),
// and every item has one path (no re-exports at the root). Modules only
// the stages use are private.
pub mod artifact;
pub mod assembly;
pub mod bootstrap;
mod cdk_context;
mod commit_status;
pub mod context;
pub mod diff;
mod duplicate;
pub mod executor;
#[cfg(feature = "test-util")]
pub mod fake;
pub mod files;
pub mod github;
pub mod lines;
pub mod local;
pub mod log_upload;
pub mod ports;
pub mod process;
pub mod record;
pub mod redact;
pub mod report;
pub mod risk;
pub mod shutdown;
pub mod single;
mod stage_log;
pub mod stages;
pub mod time;
pub mod workspace;
