//! `aphex logs RUN [--stage S] [--follow]`: a run's stage logs from the run
//! store `aphex history` reads (`<repo>/.aphex/runs/`, or `--store
//! s3://BUCKET`), where the runner stores them in pieces as each stage runs
//! (`aphex_stages::log_upload`), so they outlive the stage's pod.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aphex_stages::log_upload::{LogCursor, read_since};
use aphex_stages::record::{RunRecord, Status};

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex logs`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex logs shop-7x2kq\n  \
    aphex logs shop-7x2kq --stage deploy-prod --follow --store s3://shop-artifacts\n\n\
    Without --stage, every stage's log in the order the stages ran, each behind a\n\
    `==> STAGE <==` line.\n\n\
    Exit status: 0 printed, 1 no such run or stage, 2 usage error or unreadable store.")]
pub struct Args {
    /// The run (as `aphex history` and `aphex status` list it).
    pub run: String,
    /// One stage's log (the task name: `build`, `deploy-dev`, `test-prod`).
    #[arg(long, value_name = "STAGE")]
    pub stage: Option<String>,
    /// Keep printing as the log grows, until the stage (or the run) ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The repository whose `.aphex/` to read (default: the current directory's).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Read the run store in this S3 bucket (`s3://BUCKET`) instead of
    /// `<repo>/.aphex/runs/`.
    #[arg(long, value_name = "s3://BUCKET")]
    pub store: Option<String>,
}

/// How often `--follow` reads the store (the runner stores every few seconds).
const POLL: Duration = Duration::from_secs(2);

/// Runs `aphex logs`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    super::runtime()?.block_on(async {
        let store = super::history::run_store(args.repo.as_deref(), args.store.as_deref()).await?;
        // A deploy run's, else (in S3) a pull request's, kept under `pr/`.
        let mut found = None;
        'search: for runs in std::iter::once(&store.recorder).chain(store.pull_requests.as_ref()) {
            for p in &store.pipelines {
                if let Some(r) = runs.load(p, &args.run).await.map_err(CliError::usage)? {
                    found = Some((&**runs, p.clone(), r));
                    break 'search;
                }
            }
        }
        let Some((runs, pipeline, mut record)) = found else {
            return Err(
                CliError::failure(format!("run {} not found in {}", args.run, store.location)).help(
                    "`aphex history` lists the recorded runs (add --store s3://BUCKET for a cluster's runs)",
                ),
            );
        };
        let mut cursors: BTreeMap<String, LogCursor> = BTreeMap::new();
        let mut shown: Option<String> = None;
        let mut out = Out::lock();
        loop {
            // An end seen before the read means the read gets all of it:
            // the runner stores the whole log before it records the end.
            let done = !args.follow || ended(&record, args.stage.as_deref());
            let chunks = runs
                .log_chunks(&pipeline, &args.run)
                .await
                .map_err(CliError::usage)?;
            let stages = match &args.stage {
                Some(s) => vec![s.clone()],
                None => stage_order(&record, &chunks),
            };
            if let Some(s) = &args.stage
                && !args.follow
                && !stage_order(&record, &chunks).contains(s)
            {
                return Err(
                    CliError::failure(format!("run {} has no log of stage {s}", args.run)).help(format!(
                        "its stages: {}",
                        stage_order(&record, &chunks).join(", ")
                    )),
                );
            }
            for stage in &stages {
                let cursor = cursors.get(stage).copied().unwrap_or_default();
                let (text, next) = read_since(runs, &pipeline, &args.run, stage, &chunks, cursor)
                    .await
                    .map_err(CliError::usage)?;
                cursors.insert(stage.clone(), next);
                if text.is_empty() {
                    continue;
                }
                if args.stage.is_none() && shown.as_ref() != Some(stage) {
                    writeln!(out, "{}==> {stage} <==", if shown.is_some() { "\n" } else { "" })?;
                }
                shown = Some(stage.clone());
                out.write_str(&String::from_utf8_lossy(&text))?;
            }
            out.flush()?;
            if done {
                return Ok(Exit::Ok);
            }
            tokio::time::sleep(POLL).await;
            record = runs
                .load(&pipeline, &args.run)
                .await
                .map_err(CliError::usage)?
                .unwrap_or(record);
        }
    })
}

/// The stages in the order they ran, then any with a stored log but no
/// record yet (running).
fn stage_order(record: &RunRecord, chunks: &[aphex_stages::ports::LogChunk]) -> Vec<String> {
    let mut stages: Vec<&aphex_stages::record::StageRecord> = record.stages.iter().collect();
    stages.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    let mut names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    for c in chunks {
        if !names.contains(&c.stage) {
            names.push(c.stage.clone());
        }
    }
    names
}

/// Whether what is followed has ended: the stage (recorded with an end), or
/// the whole run.
fn ended(record: &RunRecord, stage: Option<&str>) -> bool {
    if record.status != Status::Running {
        return true;
    }
    stage.is_some_and(|s| {
        record
            .stages
            .iter()
            .any(|r| r.name == s && r.status != Status::Running)
    })
}
