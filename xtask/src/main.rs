//! `cargo xtask`: developer automation (tests, demo, benchmarks, generated
//! files). Never needed by users at run time.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

// The in-process benchmarks measure with the allocator the `aphex` binary
// uses, so their figures are the CLI's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_deploy;
mod bench_faults;
mod bench_render;
mod demo;
mod emulator;
mod fixtures;
mod npm;
mod schema;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// fmt --check, clippy -D warnings, and every test.
    Test,
    /// The README's main job: run the quick-start pipeline end to end.
    Demo,
    /// Start the local AWS emulator and keep it running until Ctrl-C
    /// (for running one test suite by hand: see docs/testing.md).
    Emulator,
    /// Install the quick start's npm packages (`npm ci`) when missing or stale.
    Npm,
    /// Regenerate the cloud assembly fixtures by a real `cdk synth`.
    Fixtures {
        /// Fail when the committed fixtures differ instead of rewriting them.
        #[arg(long)]
        check: bool,
    },
    /// Regenerate aphex-config.schema.json from the config model.
    Schema {
        /// Fail when the committed schema is stale instead of rewriting it.
        #[arg(long)]
        check: bool,
    },
    /// Time loading and validating a 100 environments x 50 stacks config
    /// and rendering it (release build), deploying on the emulator, and
    /// deploying the quick start through 0 % and 15 % of AWS faults.
    Bench {
        /// Run only this part.
        #[arg(long, value_enum)]
        only: Option<bench::Part>,
    },
}

fn main() -> ExitCode {
    let task = Xtask::parse();
    let result = match task.command {
        Task::Test => test(),
        Task::Demo => demo::run(),
        Task::Emulator => emulator::serve(),
        Task::Npm => npm::run(),
        Task::Fixtures { check } => fixtures::run(check),
        Task::Schema { check } => schema::run(check),
        Task::Bench { only } => bench::run(only),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's folder).
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> Result<()> {
    cargo_with_env(args, &[])
}

/// Runs cargo with extra environment variables (e.g. the emulator's endpoint).
fn cargo_with_env(args: &[&str], env: &[(String, String)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(root())
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // The emulator boots (about 35 s cold) while the tests compile; it is
    // stopped when `emulator` drops, whatever happens below.
    let mut emulator =
        emulator::Emulator::spawn().context("starting the local AWS emulator the tests need")?;
    // The end-to-end tests synthesize real CDK apps with the quick start's
    // packages (tests/cdk-apps shares them through NODE_PATH).
    npm::ensure(&root())?;
    cargo(&["test", "--workspace", "--all-targets", "--no-run"])?;
    // The reader's fixtures must be what `cdk synth` writes today (runs while
    // the emulator finishes booting).
    fixtures::run(true)?;
    emulator
        .wait_healthy()
        .context("starting the local AWS emulator the tests need")?;
    // Every failing suite is reported in one run, not just the first.
    cargo_with_env(
        &["test", "--workspace", "--all-targets", "--no-fail-fast"],
        &emulator.env(),
    )?;
    Ok(())
}
