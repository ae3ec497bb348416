//! `aphex history [--limit N] [--repo DIR] [--store s3://BUCKET] [-o
//! human|wide|json|yaml]` (`--format` too): the runs recorded by the local run recorder
//! (`<repo>/.aphex/runs/`), or in an S3 bucket with `--store`, newest first,
//! across every pipeline found there. A run still recorded as running after
//! the workflow's deadline is shown as interrupted (its finalize never ran);
//! a record that cannot be read is named in a warning and left out.

use std::path::{Path, PathBuf};

use aphex_stages::local::DirRunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::{RunRecord, Status, settle_overdue};

/// How long a run may be recorded as running: the WorkflowTemplate's
/// deadline. One older than that never reached its finalize, and is shown
/// as interrupted.
const WORKFLOW_DEADLINE: std::time::Duration =
    std::time::Duration::from_secs(aphex_template::workflow::WORKFLOW_DEADLINE_SECONDS);

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Output formats of `aphex history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per run.
    Human,
    /// One line per run, with its duration.
    Wide,
    /// The run records as a JSON array.
    Json,
    /// The run records as a YAML list.
    Yaml,
}

/// Arguments of `aphex history`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 listed (possibly nothing; an unreadable record is a warning naming it), 2 the store could not be listed."
)]
pub struct Args {
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// The repository whose `.aphex/` to read (default: the current directory's).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Output format (`--format` is the older spelling).
    #[arg(short = 'o', long = "output", alias = "format", value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Read the run records in this S3 bucket (`s3://BUCKET`, as given to
    /// `aphex run --local --store`) instead of `<repo>/.aphex/runs/`.
    #[arg(long, value_name = "s3://BUCKET")]
    pub store: Option<String>,
}

/// One line: id, start, status, commit, branch, and where it stopped (with
/// the command that prints that stage's stored log).
pub fn line(run: &RunRecord) -> String {
    let short = run.commit.get(..12).unwrap_or(&run.commit);
    let stopped = run
        .stages
        .iter()
        .find(|s| matches!(s.status, Status::Failed | Status::Interrupted))
        .map(|s| format!("  at {} (log: aphex logs {} --stage {})", s.name, run.id, s.name))
        .unwrap_or_default();
    // Second precision is plenty for a listing.
    let started = run
        .started_at
        .get(..19)
        .unwrap_or(&run.started_at)
        .replace('T', " ");
    let approved: String = run
        .stages
        .iter()
        .filter_map(|s| Some(format!("  {} approved by {}", s.name, s.approved_by.as_deref()?)))
        .collect();
    format!(
        "{:<32} {started:<19} {:<11} {short} {:<12} {}{stopped}{approved}",
        run.id,
        run.status,
        run.branch.as_deref().unwrap_or("-"),
        run.pipeline
    )
}

/// Runs `aphex history`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    super::runtime()?.block_on(async {
        let RunStore {
            recorder,
            pipelines,
            location,
            ..
        } = run_store(args.repo.as_deref(), args.store.as_deref()).await?;
        let mut runs = Vec::new();
        for p in pipelines {
            let listing = recorder.scan(&p, args.limit).await.map_err(CliError::usage)?;
            for bad in &listing.unreadable {
                eprintln!("warning: {bad}");
            }
            runs.extend(listing.runs);
        }
        runs.sort_by(|a, b| (&b.started_at, &b.id).cmp(&(&a.started_at, &a.id)));
        runs.truncate(args.limit);
        let now = aphex_stages::time::now_rfc3339();
        for run in &mut runs {
            settle_overdue(run, &now, WORKFLOW_DEADLINE);
        }
        let mut out = Out::lock();
        match args.format {
            Format::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&runs).expect("records serialize")
            )?,
            Format::Yaml => out.write_str(&aphex_template::yaml::to_yaml(
                &serde_json::to_value(&runs).expect("records serialize"),
            )?)?,
            Format::Human | Format::Wide if runs.is_empty() => {
                eprintln!("no runs recorded in {location} (start one with `aphex run --local`)")
            }
            Format::Human => {
                for r in &runs {
                    writeln!(out, "{}", line(r))?;
                }
            }
            Format::Wide => {
                for r in &runs {
                    let took =
                        aphex_k8s::run_status::duration(Some(&r.started_at), r.ended_at.as_deref(), &now);
                    writeln!(out, "{}  took {took}", line(r))?;
                }
            }
        }
        Ok(Exit::Ok)
    })
}

/// A run store as `--repo`/`--store` name it: its recorder, the pipelines
/// it holds runs of, and where it is (for messages).
pub(crate) struct RunStore {
    pub recorder: Box<dyn RunRecorder>,
    /// The same bucket's pull-request runs (`<pipeline>/pr/`), for S3.
    pub pull_requests: Option<Box<dyn RunRecorder>>,
    pub pipelines: Vec<String>,
    pub location: String,
}

/// The run store of `aphex history` and `aphex logs`: the S3 bucket of
/// `store` (`s3://BUCKET`), or `<repo>/.aphex/runs/`.
pub(crate) async fn run_store(repo: Option<&Path>, store: Option<&str>) -> Result<RunStore, CliError> {
    let mut pull_requests: Option<Box<dyn RunRecorder>> = None;
    let (recorder, pipelines, location): (Box<dyn RunRecorder>, Vec<String>, String) = match store {
        Some(url) => {
            let bucket =
                aphex_aws::s3::parse_store_url(url).map_err(|e| CliError::usage(format!("--store {e}")))?;
            let config = aphex_aws::client::load().await;
            let recorder = aphex_aws::s3::S3RunRecorder::new(&config, &bucket);
            let pipelines = recorder.pipelines().await.map_err(|e| {
                CliError::usage(e).help("check the bucket exists and your AWS credentials may list it")
            })?;
            pull_requests = Some(Box::new(
                aphex_aws::s3::S3RunRecorder::new(&config, &bucket).for_pull_requests(),
            ));
            (Box::new(recorder), pipelines, format!("s3://{bucket}/"))
        }
        None => {
            let start = repo.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let root = aphex_stages::workspace::toplevel(&start).await.unwrap_or(start);
            let runs_dir = root.join(".aphex").join("runs");
            let pipelines: Vec<String> = match std::fs::read_dir(&runs_dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Vec::new(),
            };
            let location = runs_dir.display().to_string();
            (Box::new(DirRunRecorder::new(runs_dir)), pipelines, location)
        }
    };
    Ok(RunStore {
        recorder,
        pull_requests,
        pipelines,
        location,
    })
}

#[cfg(test)]
mod tests {
    use aphex_stages::record::StageRecord;

    use super::*;

    #[test]
    fn a_line_names_who_approved_each_deploy() {
        let stage = |name: &str, approved_by: Option<&str>| StageRecord {
            name: name.to_owned(),
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            ended_at: None,
            status: Status::Succeeded,
            error: None,
            stacks: Vec::new(),
            artifact_bytes: None,
            approved_by: approved_by.map(str::to_owned),
            ends_run: None,
            risks: Vec::new(),
        };
        let run = RunRecord {
            id: "shop-x".to_owned(),
            pipeline: "shop".to_owned(),
            commit: "a".repeat(40),
            branch: Some("main".to_owned()),
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            ended_at: None,
            status: Status::Succeeded,
            url: None,
            stages: vec![stage("build", None), stage("deploy-prod", Some("jane"))],
        };
        assert!(
            line(&run).ends_with("shop  deploy-prod approved by jane"),
            "{}",
            line(&run)
        );

        let mut failed = run.clone();
        failed.status = Status::Failed;
        failed.stages[1].status = Status::Failed;
        assert!(
            line(&failed).contains("  at deploy-prod (log: aphex logs shop-x --stage deploy-prod)"),
            "a stopped run points at the stage's stored log: {}",
            line(&failed)
        );
    }
}
