//! The finalize stage: close the run record (end time, overall status),
//! store it, emit metrics (stage durations, per-stack deploy success and
//! failure, artifact size), notify (always, or only on failure) and post
//! the run's final commit status (always, but never for a superseded run).
//! Every error message is redacted again before it is stored or sent.

use super::{StageError, StageOutcome};
use crate::context::Ports;
use crate::ports::{Metric, MetricUnit};
use crate::record::{RunRecord, Status};
use crate::redact::Redactor;
use crate::report::{Event, Reporter};

/// The overall status of a run from its stages: interrupted if any stage
/// was, failed if any failed, else what a stage that ended the run early
/// says (duplicate, superseded), else succeeded.
pub(crate) fn overall_status(stages: &[crate::record::StageRecord]) -> Status {
    if stages.iter().any(|s| s.status == Status::Interrupted) {
        Status::Interrupted
    } else if stages.iter().any(|s| s.status == Status::Failed) {
        Status::Failed
    } else if let Some(end) = stages.iter().find_map(|s| s.ends_run.as_ref()) {
        end.reason.status()
    } else {
        Status::Succeeded
    }
}

/// The metrics of a finished run.
pub fn metrics_of(run: &RunRecord) -> Vec<Metric> {
    let base = vec![("pipeline".to_owned(), run.pipeline.clone())];
    let mut out = Vec::new();
    for s in &run.stages {
        let mut dims = base.clone();
        dims.push(("stage".to_owned(), s.name.clone()));
        if let Some(end) = &s.ended_at {
            out.push(Metric {
                name: "StageDuration".to_owned(),
                value: crate::time::seconds_between(&s.started_at, end),
                unit: MetricUnit::Seconds,
                dimensions: dims.clone(),
            });
        }
        if let Some(bytes) = s.artifact_bytes {
            out.push(Metric {
                name: "ArtifactBytes".to_owned(),
                value: bytes as f64,
                unit: MetricUnit::Bytes,
                dimensions: base.clone(),
            });
        }
        // An environment's stacks are counted by environment; the pipeline
        // stage's own stack by its stage (no environment is called that).
        let place = match s.name.strip_prefix("deploy-") {
            Some(env) => ("environment", env),
            None => ("stage", s.name.as_str()),
        };
        for st in &s.stacks {
            let name = match st.status {
                Status::Succeeded => "DeploymentSucceeded",
                Status::Failed => "DeploymentFailed",
                _ => continue,
            };
            let mut dims = base.clone();
            dims.push((place.0.to_owned(), place.1.to_owned()));
            dims.push(("stack".to_owned(), st.name.clone()));
            out.push(Metric {
                name: name.to_owned(),
                value: 1.0,
                unit: MetricUnit::Count,
                dimensions: dims.clone(),
            });
            out.push(Metric {
                name: "StackDeployDuration".to_owned(),
                value: st.millis as f64 / 1000.0,
                unit: MetricUnit::Seconds,
                dimensions: dims,
            });
        }
    }
    let mut dims = base;
    dims.push(("status".to_owned(), run.status.to_string()));
    if let Some(end) = &run.ended_at {
        out.push(Metric {
            name: "WorkflowDuration".to_owned(),
            value: crate::time::seconds_between(&run.started_at, end),
            unit: MetricUnit::Seconds,
            dimensions: dims.clone(),
        });
    }
    out.push(Metric {
        name: "Run".to_owned(),
        value: 1.0,
        unit: MetricUnit::Count,
        dimensions: dims,
    });
    out
}

/// Closes, stores, measures and announces `run`. Recording must succeed;
/// metrics, notification and commit status failures are reported as
/// warnings, since the run itself is over and its record is safe.
pub async fn run(
    ports: &Ports,
    reporter: &dyn Reporter,
    redactor: &Redactor,
    mut run: RunRecord,
    only_on_failure: bool,
) -> Result<(RunRecord, StageOutcome), StageError> {
    const STAGE: &str = "finalize";
    if run.ended_at.is_none() {
        run.ended_at = Some(crate::time::now_rfc3339());
    }
    if run.status == Status::Running {
        run.status = overall_status(&run.stages);
    }
    for s in &mut run.stages {
        s.error = s.error.as_deref().map(|e| redactor.redact(e));
        for st in &mut s.stacks {
            st.error = st.error.as_deref().map(|e| redactor.redact(e));
        }
    }
    ports
        .runs
        .record(&run)
        .await
        .map_err(StageError::record("recording the run"))?;
    let warn = |message: String| {
        reporter.event(&Event::Warning {
            stage: STAGE.to_owned(),
            message: redactor.redact(&message),
        })
    };
    if let Err(e) = ports.metrics.emit(&metrics_of(&run)).await {
        warn(format!("emitting metrics: {e}"));
    }
    let failed = matches!(run.status, Status::Failed | Status::Interrupted);
    if (failed || !only_on_failure)
        && let Err(e) = ports.notifier.notify(&run).await
    {
        warn(format!("sending the notification: {e}"));
    }
    if let Some(statuses) = &ports.statuses
        && let Some(status) = crate::commit_status::finished(&run, redactor)
        && let Err(e) = statuses.post(&status).await
    {
        warn(format!("{e}"));
    }
    Ok((run, StageOutcome::default()))
}
