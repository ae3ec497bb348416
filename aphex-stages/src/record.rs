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
}
