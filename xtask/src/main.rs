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
mod bench_output;
mod bench_render;
mod bench_versus;
mod demo;
mod emulator;
mod fixtures;
mod image;
mod image_check;
mod kube_api;
mod kube_api_build;
mod npm;
mod podman;
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
    /// Start the tests' Kubernetes API server (CRD-only, with the Argo CRDs)
    /// and keep it running until Ctrl-C (see docs/testing.md).
    KubeApi,
    /// Install the quick start's npm packages (`npm ci`) when missing or stale.
    Npm,
    /// Regenerate the cloud assembly fixtures by a real `cdk synth`.
    Fixtures {
        /// Fail when the committed fixtures differ instead of rewriting them.
        #[arg(long)]
        check: bool,
    },
    /// Build the pods' images (builder, deployer) around the release
    /// aphex-runner; with --check, prove they work (docs/images.md).
    Image(image::Args),
    /// Regenerate aphex-config.schema.json from the config model.
    Schema {
        /// Fail when the committed schema is stale instead of rewriting it.
        #[arg(long)]
        check: bool,
    },
    /// Time loading and validating a 100 environments x 50 stacks config
    /// and rendering it (release build), deploying on the emulator, and
    /// the memory of a build with runaway output and deploying the quick
    /// start through 0 % and 15 % of AWS faults.
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
        Task::KubeApi => kube_api::serve(),
        Task::Npm => npm::run(),
        Task::Fixtures { check } => fixtures::run(check),
        Task::Image(args) => image::run(args),
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
    // Built once (minutes, cached), then etcd and the server start in about
    // a second; they load the Argo CRDs while the tests compile.
    let mut kube_api =
        kube_api::KubeApi::spawn().context("starting the Kubernetes API server the tests need")?;
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
    kube_api
        .wait_ready()
        .context("starting the Kubernetes API server the tests need")?;
    // Every failing suite is reported in one run, not just the first.
    let tests = cargo_with_env(
        &["test", "--workspace", "--all-targets", "--no-fail-fast"],
        &[emulator.env(), kube_api.env()].concat(),
    );
    // `--all-targets` leaves out doctests: the library crates' embedding
    // examples (their crate docs) run here.
    let doctests = cargo_with_env(
        &["test", "--workspace", "--doc", "--no-fail-fast"],
        &[emulator.env(), kube_api.env()].concat(),
    );
    let tests = tests.and(doctests);
    // The images around the runner the tests built, against the same emulator.
    let images = image_check::in_test(&emulator).context("the image check (cargo xtask image --check)");
    tests.and(images)
}
