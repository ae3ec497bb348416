//! The run record: what happened in one pipeline run, written by the
//! `RunRecorder` port and listed by `aphex history`.
//!
//! A record is stored as a run object (header, status, and the stages known
//! when it was written) plus one stage object per stage, because stages of
//! one run may finish at the same time in different pods. A stage object is
//! a partial record (the run's header and that one stage), so it parses like
//! any other record; [`merge_stage_objects`] puts the pieces back together.

use std::collections::BTreeMap;
use std::fmt;

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
    /// A run that ended early because its commit was already deployed in
    /// every environment (a re-pushed head); runs only.
    Duplicate,
    /// A run that ended early because a restart on the new topology took
    /// over (issue 18); runs only. It posts no commit status: the restart
    /// owns it.
    Superseded,
}

impl Status {
    /// The status as a word (`succeeded`, `duplicate`, ...), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Skipped => "skipped",
            Status::Duplicate => "duplicate",
            Status::Superseded => "superseded",
        }
    }
}

/// The stored word; width and alignment apply (`{:<12}`), as for a `str`.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a run stopped early with nothing wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// The commit is already deployed in every environment.
    Duplicate,
    /// A restart of the run took over.
    Superseded,
}

impl EndReason {
    /// The run's status when a stage ends it for this reason.
    pub fn status(self) -> Status {
        match self {
            EndReason::Duplicate => Status::Duplicate,
            EndReason::Superseded => Status::Superseded,
        }
    }
}

/// What a stage that ends its run early records: the stages after it do
/// not run (in a cluster, their tasks' `when` reads the stage's `run`
/// output), and the run is recorded with [`EndReason::status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEnd {
    /// Why.
    pub reason: EndReason,
    /// What to tell the people watching, in a sentence or two (redacted).
    pub message: String,
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
    /// Where the run can be watched (the Argo UI, `pipeline.argoUrl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
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
    /// Who approved the gate before a deploy stage (`aphex approve --as`),
    /// when it had one and the approver was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Set when this stage ended the run early (see [`RunEnd`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_run: Option<RunEnd>,
    /// A deploy's risk gate: the risky changes it listed (redacted) while
    /// it waits, which is all that approving it covers; once approved, what
    /// was approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<crate::risk::RiskyChange>,
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
    /// The stack's outputs after a successful deploy (key to value): how
    /// the test stage, in another pod, gets them (docs/stages.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

impl RunRecord {
    /// The stage object of `stage` in the run of `header`: a partial record
    /// holding the header (id, pipeline, commit, branch, start) and that one
    /// stage. Anything else `header` carries is left out.
    pub fn stage_object(header: &RunRecord, stage: &StageRecord) -> RunRecord {
        RunRecord {
            id: header.id.clone(),
            pipeline: header.pipeline.clone(),
            commit: header.commit.clone(),
            branch: header.branch.clone(),
            started_at: header.started_at.clone(),
            ended_at: None,
            status: Status::Running,
            stages: vec![stage.clone()],
            url: None,
        }
    }

    /// The stage that ended this run early, if one did.
    pub(crate) fn ended_early(&self) -> Option<&RunEnd> {
        self.stages.iter().find_map(|s| s.ends_run.as_ref())
    }
}

/// The whole record of a run from its run object (if one was written) and
/// its stage objects. A stage object replaces the run object's entry of the
/// same name (it is what that stage's own pod wrote last). Without a run
/// object (no `finalize` yet) the header comes from the earliest stage
/// object, and the run is still running. When stage objects were merged in,
/// stages are ordered by start time, then name; a run object alone is
/// returned as it was stored.
pub fn merge_stage_objects(run: Option<RunRecord>, parts: Vec<RunRecord>) -> Option<RunRecord> {
    let mut record = match run {
        Some(run) => run,
        None => {
            let earliest = parts
                .iter()
                .min_by(|a, b| by_time(&a.started_at, &b.started_at))?;
            RunRecord {
                ended_at: None,
                status: Status::Running,
                stages: Vec::new(),
                ..earliest.clone()
            }
        }
    };
    if parts.is_empty() {
        return Some(record);
    }
    for stage in parts.into_iter().flat_map(|p| p.stages) {
        match record.stages.iter_mut().find(|s| s.name == stage.name) {
            Some(existing) => *existing = stage,
            None => record.stages.push(stage),
        }
    }
    record
        .stages
        .sort_by(|a, b| by_time(&a.started_at, &b.started_at).then_with(|| a.name.cmp(&b.name)));
    Some(record)
}

/// Marks a run that is still `running` although it started more than
/// `deadline` before `now` (RFC 3339) as interrupted, and each of its stages
/// still running too: its workflow outlived the WorkflowTemplate's
/// `activeDeadlineSeconds` or lost its pods, so its `finalize` never ran
/// and nothing will close the record. Returns whether it did.
pub fn settle_overdue(run: &mut RunRecord, now: &str, deadline: std::time::Duration) -> bool {
    let age = crate::time::seconds_between(&run.started_at, now);
    if run.status != Status::Running || age <= deadline.as_secs_f64() {
        return false;
    }
    run.status = Status::Interrupted;
    for stage in run.stages.iter_mut().filter(|s| s.status == Status::Running) {
        stage.status = Status::Interrupted;
    }
    true
}

/// Sorts runs newest first by start time (the id breaks ties).
pub(crate) fn sort_newest_first(runs: &mut [RunRecord]) {
    runs.sort_by(|a, b| by_time(&b.started_at, &a.started_at).then_with(|| b.id.cmp(&a.id)));
}

/// Whether `name` can be one segment of a path or key (a run id, a stage
/// name): not empty, no separator, not `.` or `..`.
pub(crate) fn is_plain_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

/// Refuses a run id or stage name (`kind`) that would escape its folder or
/// key prefix: the check every run recorder makes before writing.
pub fn check_segment(kind: &str, name: &str) -> Result<(), crate::ports::SegmentError> {
    if is_plain_segment(name) {
        return Ok(());
    }
    Err(crate::ports::SegmentError {
        kind: kind.to_owned(),
        name: name.to_owned(),
    })
}

/// Orders RFC 3339 timestamps by the instant they name. Strings would not
/// do: `00:00:00.5Z` sorts before `00:00:00Z`. Unparsable ones go first,
/// among themselves as strings.
fn by_time(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok();
    parse(a).cmp(&parse(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_displays_as_stored_and_pads_like_a_str() {
        use Status::*;
        for status in [
            Running,
            Succeeded,
            Failed,
            Interrupted,
            Skipped,
            Duplicate,
            Superseded,
        ] {
            let stored = serde_json::to_value(status).unwrap();
            assert_eq!(Some(status.to_string().as_str()), stored.as_str());
            assert_eq!(format!("{status:<12}|"), format!("{:<12}|", status.as_str()));
        }
    }

    #[test]
    fn only_a_running_run_past_the_deadline_is_settled_as_interrupted() {
        let day = std::time::Duration::from_secs(24 * 3600);
        let now = "2026-05-02T12:00:00Z";
        // (status, started, whether it is settled)
        let cases = [
            (Status::Running, "2026-05-01T11:59:59Z", true),
            (Status::Running, "2026-05-01T12:00:00Z", false),
            (Status::Running, "2026-05-02T11:00:00Z", false),
            (Status::Succeeded, "2020-01-01T00:00:00Z", false),
            (Status::Failed, "2020-01-01T00:00:00Z", false),
            // A start that does not parse is never taken for old.
            (Status::Running, "yesterday", false),
        ];
        for (status, started, settled) in cases {
            let stage = |name: &str, status| StageRecord {
                name: name.into(),
                started_at: started.into(),
                ended_at: None,
                status,
                error: None,
                stacks: Vec::new(),
                artifact_bytes: None,
                ends_run: None,
                approved_by: None,
                risks: Vec::new(),
            };
            let mut run = RunRecord {
                id: "r".into(),
                pipeline: "shop".into(),
                commit: "c".into(),
                branch: None,
                started_at: started.into(),
                ended_at: None,
                status,
                stages: vec![
                    stage("build", Status::Succeeded),
                    stage("deploy-dev", Status::Running),
                ],
                url: None,
            };
            assert_eq!(
                settle_overdue(&mut run, now, day),
                settled,
                "{status:?} {started}"
            );
            let expected = if settled { Status::Interrupted } else { status };
            assert_eq!(run.status, expected, "{status:?} {started}");
            assert_eq!(run.stages[0].status, Status::Succeeded);
            let deploy = if settled {
                Status::Interrupted
            } else {
                Status::Running
            };
            assert_eq!(run.stages[1].status, deploy, "{status:?} {started}");
        }
    }
}
