//! `aphex`: the command-line interface. Thin by design: each subcommand
//! parses its arguments, calls one library operation and formats the result.
//! Exit codes live in [`exit`].

use clap::{Parser, Subcommand};

// mimalloc: loading and rendering a large configuration allocates tens of
// thousands of small values in a fresh process; glibc's malloc made that
// process about a third slower (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod exit;

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
}

fn main() {
    exit_quietly_on_broken_pipe();
    aphex_config::quiet_parser_panics();
    let cli = Cli::parse();
    let code = match cli.command {
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
    };
    std::process::exit(code.into());
}

/// `println!` panics when stdout's reader has gone (`aphex render | head`).
/// For a command-line tool that is a normal end, not a crash: exit as a
/// shell reports a process killed by SIGPIPE (128 + 13), without a backtrace.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(exit::Exit::BrokenPipe.into());
        }
        default(info);
    }));
}
