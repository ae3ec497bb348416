//! What commit status a run shows on its commit: `pending` when its first
//! stage starts, its outcome when `finalize` closes it, and nothing more
//! for a superseded run (the restart that took over owns the status).
//! Pure: which commit, state, words and link. Posting is the
//! [`crate::ports::CommitStatuses`] adapter's job ([`crate::github`]).

use crate::context::RunInfo;
use crate::ports::{CommitState, CommitStatus};
use crate::record::{RunRecord, Status};
use crate::redact::Redactor;

/// The longest description GitHub accepts, in characters.
pub(crate) const MAX_DESCRIPTION: usize = 140;

/// The status a run posts when its first stage starts.
pub(crate) fn started(run: &RunInfo) -> CommitStatus {
    CommitStatus {
        sha: run.commit.clone(),
        state: CommitState::Pending,
        description: format!("Run {} started", run.id),
        target_url: run.url.clone(),
    }
}

/// The status a finished run posts, or `None` when it posts nothing more
/// (superseded: its restart owns the status; still running: not finished).
/// The description is redacted with `redactor` before it is cut.
pub(crate) fn finished(run: &RunRecord, redactor: &Redactor) -> Option<CommitStatus> {
    let took = run
        .ended_at
        .as_deref()
        .map(|end| took(crate::time::seconds_between(&run.started_at, end)))
        .unwrap_or_default();
    let at = |status: Status| {
        run.stages
            .iter()
            .find(|s| s.status == status)
            .map(|s| (s.name.as_str(), s.error.as_deref().unwrap_or_default()))
    };
    let (state, text) = match run.status {
        Status::Succeeded => (CommitState::Success, format!("Succeeded{took}")),
        Status::Duplicate => (
            CommitState::Success,
            "Already deployed in every environment: nothing deployed".to_owned(),
        ),
        Status::Failed => (
            CommitState::Failure,
            match at(Status::Failed) {
                Some((stage, error)) if !error.is_empty() => format!("Failed at {stage}: {error}"),
                Some((stage, _)) => format!("Failed at {stage}"),
                None => format!("Failed{took}"),
            },
        ),
        Status::Interrupted => (
            CommitState::Error,
            match at(Status::Interrupted) {
                Some((stage, _)) => format!("Interrupted at {stage}"),
                None => "Interrupted".to_owned(),
            },
        ),
        Status::Superseded | Status::Running | Status::Skipped => return None,
    };
    Some(CommitStatus {
        sha: run.commit.clone(),
        state,
        description: description(&redactor.redact(&text)),
        target_url: run.url.clone(),
    })
}

/// ` in 3m 12s` (empty for a run that took no measurable time).
fn took(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0 => String::new(),
        1..60 => format!(" in {s}s"),
        _ => format!(" in {}m {}s", s / 60, s % 60),
    }
}

/// `text` as a status description: its first line, control characters
/// removed, cut to [`MAX_DESCRIPTION`] characters with `…` where cut.
pub(crate) fn description(text: &str) -> String {
    let line: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let line = line.trim();
    if line.chars().count() <= MAX_DESCRIPTION {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(MAX_DESCRIPTION - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_one_line_of_at_most_140_characters() {
        assert_eq!(
            description("Failed at build: exit 1\nmore"),
            "Failed at build: exit 1"
        );
        let long = "é".repeat(200);
        let d = description(&long);
        assert_eq!(d.chars().count(), MAX_DESCRIPTION);
        assert!(d.ends_with('…'));
        assert_eq!(description(&"x".repeat(140)), "x".repeat(140));
        assert_eq!(description("tab\there\u{7}"), "tabhere");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(took(0.2), "");
        assert_eq!(took(42.4), " in 42s");
        assert_eq!(took(192.0), " in 3m 12s");
    }
}
