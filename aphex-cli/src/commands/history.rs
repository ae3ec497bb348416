//! `aphex history [--limit N] [--repo DIR] [--store s3://BUCKET] [--format
//! human|json]`: the runs recorded by the local run recorder
//! (`<repo>/.aphex/runs/`), or in an S3 bucket with `--store`, newest first,
//! across every pipeline found there.

use std::path::PathBuf;

use aphex_stages::local::DirRunRecorder;
use aphex_stages::ports::RunRecorder;
use aphex_stages::record::{RunRecord, Status};

use crate::exit::Exit;

/// Output formats of `aphex history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per run.
    Human,
    /// The run records as a JSON array.
    Json,
}

/// Arguments of `aphex history`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Exit status: 0 listed (possibly nothing), 2 unreadable records.")]
pub struct Args {
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// The repository whose `.aphex/` to read (default: the current directory's).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Read the run records in this S3 bucket (`s3://BUCKET`, as given to
    /// `aphex run --local --store`) instead of `<repo>/.aphex/runs/`.
    #[arg(long, value_name = "s3://BUCKET")]
    pub store: Option<String>,
}

/// One line: id, start, status, commit, branch, and where it stopped.
pub fn line(run: &RunRecord) -> String {
    let short = run.commit.get(..12).unwrap_or(&run.commit);
    let stopped = run
        .stages
        .iter()
        .find(|s| matches!(s.status, Status::Failed | Status::Interrupted))
        .map(|s| format!("  at {}", s.name))
        .unwrap_or_default();
    // Second precision is plenty for a listing.
    let started = run
        .started_at
        .get(..19)
        .unwrap_or(&run.started_at)
        .replace('T', " ");
    format!(
        "{:<32} {started:<19} {:<11} {short} {:<12} {}{stopped}",
        run.id,
        run.status.as_str(),
        run.branch.as_deref().unwrap_or("-"),
        run.pipeline
    )
}

/// Runs `aphex history`.
pub fn run(args: Args) -> Exit {
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let (recorder, pipelines, location): (Box<dyn RunRecorder>, Vec<String>, String) =
            match args.store.as_deref() {
                Some(url) => {
                    let bucket = match aphex_aws::s3::parse_store_url(url) {
                        Ok(b) => b,
                        Err(e) => {
                            eprintln!("error: --store {e}");
                            return Exit::Usage;
                        }
                    };
                    let config = aphex_aws::client::load().await;
                    let recorder = aphex_aws::s3::S3RunRecorder::new(&config, &bucket);
                    let pipelines = match recorder.pipelines().await {
                        Ok(p) => p,
                        Err(e) => {
                            eprintln!("error: {e}");
                            eprintln!("  help: check the bucket exists and your AWS credentials may list it");
                            return Exit::Usage;
                        }
                    };
                    (Box::new(recorder), pipelines, format!("s3://{bucket}/"))
                }
                None => {
                    let start = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
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
        let mut runs = Vec::new();
        for p in pipelines {
            match recorder.list(&p, args.limit).await {
                Ok(r) => runs.extend(r),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Usage;
                }
            }
        }
        runs.sort_by(|a, b| (&b.started_at, &b.id).cmp(&(&a.started_at, &a.id)));
        runs.truncate(args.limit);
        match args.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&runs).expect("records serialize")
            ),
            Format::Human if runs.is_empty() => {
                eprintln!("no runs recorded in {location} (start one with `aphex run --local`)")
            }
            Format::Human => {
                for r in &runs {
                    println!("{}", line(r));
                }
            }
        }
        Exit::Ok
    })
}
