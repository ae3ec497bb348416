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

pub mod artifact;
pub mod assembly;
pub mod bootstrap;
pub mod commit_status;
pub mod context;
pub mod diff;
pub mod duplicate;
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
pub mod shutdown;
pub mod single;
pub mod stage_log;
pub mod stages;
pub mod time;
pub mod workspace;
