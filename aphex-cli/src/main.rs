//! `aphex`: the command-line interface. Thin by design: each subcommand
//! parses its arguments, calls one library operation and formats the result
//! on stdout ([`out`]); an error is returned with `?` as an
//! [`exit::CliError`] and printed here, in one place.

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

// mimalloc: loading and rendering a large configuration allocates tens of
// thousands of small values in a fresh process; glibc's malloc made that
// process about a third slower (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod exit;
mod out;

/// Aphex: a self-modifying deployment pipeline for AWS CDK apps on Argo Workflows.
#[derive(Debug, Parser)]
#[command(name = "aphex", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate an aphex-config.yaml and report every problem.
    Validate(commands::validate::Args),
    /// Print the JSON Schema of aphex-config.yaml.
    Schema(commands::schema::Args),
    /// Write a commented starter aphex-config.yaml.
    Init(commands::init::Args),
    /// Show the pipeline's stages and each environment's stack order and waves.
    Plan(commands::plan::Args),
    /// Render every Kubernetes manifest and the pipeline's CloudFormation template.
    Render(commands::render::Args),
    /// Work with GitHub webhooks (simulate what a delivery triggers).
    Webhook(commands::webhook::Args),
    /// Run the pipeline's stages on this machine (`--local`).
    Run(commands::run::Args),
    /// List recorded runs, newest first.
    History(commands::history::Args),
    /// Show what applying the rendered manifests would change on the cluster.
    Diff(commands::diff::Args),
    /// Put the pipeline onto its cluster: its AWS stack, every manifest, the webhook secret.
    Bootstrap(commands::bootstrap::Args),
    /// Start a run by hand: the Workflow a push to the configured branch would submit.
    Trigger(commands::trigger::Args),
    /// Show the pipeline's runs, or one run's stages and the approvals it waits for.
    Status(commands::status::Args),
    /// Approve (or reject) the deploy to an environment a run waits at.
    Approve(commands::approve::Args),
    /// Print a run's stage logs from the run store (`--follow` while it runs).
    Logs(commands::logs::Args),
    /// Remove the pipeline: its cluster objects, its stack, and (with --stacks) environments' stacks.
    Destroy(commands::destroy::Args),
}

fn main() {
    aphex_config::quiet_parser_panics();
    let cli = Cli::parse();
    init_logging();
    let outcome = match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Init(args) => commands::init::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Render(args) => commands::render::run(args),
        Command::Webhook(args) => commands::webhook::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::History(args) => commands::history::run(args),
        Command::Bootstrap(args) => commands::bootstrap::run(args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Trigger(args) => commands::trigger::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Approve(args) => commands::approve::run(args),
        Command::Logs(args) => commands::logs::run(args),
        Command::Destroy(args) => commands::destroy::run(args),
    };
    // The one printer: commands return their error, this says it.
    let code = match outcome.and_then(|code| out::flush().map(|()| code)) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", e.to_text());
            e.exit
        }
    };
    std::process::exit(code.into());
}

/// What Aphex's libraries log (the AWS adapters' retries, the deployer's
/// reasons) goes to stderr, apart from a command's output: their warnings
/// by default, more with `APHEX_LOG` (`APHEX_LOG=info` says why each stack
/// needed a change set), as in the runner's pods. Other crates' logs (kube,
/// hyper) only repeat what the command's error says, so by default they
/// are off.
fn init_logging() {
    const DEFAULT: &str = "aphex_aws=warn,aphex_stages=warn,aphex_k8s=warn,aphex_adapters=warn";
    let filter = tracing_subscriber::EnvFilter::try_from_env("APHEX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .init();
}
