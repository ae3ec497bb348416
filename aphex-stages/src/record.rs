//! The run record: what happened in one pipeline run, written by the
//! `RunRecorder` port and listed by `aphex history`.

use serde::{Deserialize, Serialize};

/// Status of a run or a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Still going.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by the user (Ctrl-C) or the system.
    Interrupted,
    /// Not run (an earlier stage failed, or nothing to do).
    Skipped,
}

/// One pipeline run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Unique run id (the Argo workflow name in a cluster).
    pub id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Full commit SHA.
    pub commit: String,
    /// Branch, when known.
    pub branch: Option<String>,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time, once ended.
    pub ended_at: Option<String>,
    /// Overall status.
    pub status: Status,
    /// Stages in the order they ran.
    pub stages: Vec<StageRecord>,
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRecord {
    /// Stage name as in the plan (`validate`, `deploy-dev`, ...).
    pub name: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub ended_at: Option<String>,
    /// Status.
    pub status: Status,
    /// Error message (redacted), when failed.
    pub error: Option<String>,
    /// Per-stack results of a deploy stage (empty for other stages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<StackResult>,
    /// Size of the archive a build stage stored, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_bytes: Option<u64>,
}

/// What happened to one stack in a deploy stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackResult {
    /// The stack's name in the config.
    pub name: String,
    /// Its CloudFormation stack name.
    pub stack_name: String,
    /// Succeeded, failed, or skipped (not started because an earlier stack failed).
    pub status: Status,
    /// Whether the deploy changed the stack (`None` when it did not finish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
    /// Milliseconds the deploy took.
    pub millis: u64,
    /// The error (redacted), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
