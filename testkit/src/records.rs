//! Run records for tests: a run header and a stage entry with plain,
//! fixed values, for suites that write records into a run store and read
//! them back. A test that needs another field sets it with struct update
//! syntax (`StageRecord { error: None, ..stage(..) }`).

use aphex_stages::record::{RunRecord, StageRecord, Status};

/// The commit every record here names.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A running run of the pipeline `shop` on `main`, with no stages yet.
pub fn header(id: &str, started: &str) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        pipeline: "shop".to_owned(),
        commit: COMMIT.to_owned(),
        branch: Some("main".to_owned()),
        started_at: started.to_owned(),
        ended_at: None,
        status: Status::Running,
        stages: Vec::new(),
        url: None,
    }
}

/// A stage entry that started and ended at `started`; a failed one says
/// `<name> failed`.
pub fn stage(name: &str, started: &str, status: Status) -> StageRecord {
    StageRecord {
        name: name.to_owned(),
        started_at: started.to_owned(),
        ended_at: Some(started.to_owned()),
        status,
        error: (status == Status::Failed).then(|| format!("{name} failed")),
        stacks: Vec::new(),
        artifact_bytes: None,
        approved_by: None,
        ends_run: None,
        risks: Vec::new(),
    }
}
