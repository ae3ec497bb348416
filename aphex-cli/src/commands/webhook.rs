//! `aphex webhook simulate`: what the pipeline's Sensor does with a GitHub
//! webhook delivery, optionally verifying its `X-Hub-Signature-256` first.

use std::path::PathBuf;

use aphex_template::simulate::{simulate, verify_signature};

use super::validate::load_config;
use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex webhook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: WebhookCommand,
}

/// Subcommands of `aphex webhook`.
#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Print what the Sensor would trigger for a GitHub payload.
    Simulate(SimulateArgs),
}

/// Output formats of `aphex webhook simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// `{"trigger", "reason", "parameters", "labels"}`.
    Json,
}

/// Arguments of `aphex webhook simulate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when simulated (whether or not anything triggers), 1 when the signature does not match, 2 on usage or IO errors.\n\nExamples:\n  aphex webhook simulate --event push --payload push.json\n  aphex webhook simulate --event pull_request --payload pr.json --format json\n  aphex webhook simulate --event push --payload body.json --secret-file secret.txt --signature sha256=..."
)]
pub struct SimulateArgs {
    /// The GitHub event name (the X-GitHub-Event header): push, pull_request, ping, ...
    #[arg(long)]
    pub event: String,
    /// The delivery's JSON body.
    #[arg(long, value_name = "FILE")]
    pub payload: PathBuf,
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(long, value_name = "PATH", default_value = "aphex-config.yaml")]
    pub config: PathBuf,
    /// File holding the webhook secret (one trailing newline is ignored).
    #[arg(long, value_name = "FILE", requires = "signature")]
    pub secret_file: Option<PathBuf>,
    /// The X-Hub-Signature-256 header, `sha256=<hex>`; verified against the payload.
    #[arg(long, value_name = "SIG", requires = "secret_file")]
    pub signature: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Runs `aphex webhook`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    match args.command {
        WebhookCommand::Simulate(a) => run_simulate(a),
    }
}

fn run_simulate(args: SimulateArgs) -> Result<Exit, CliError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
    };
    let body = read(&args.payload)?;
    if let (Some(secret_file), Some(signature)) = (&args.secret_file, &args.signature) {
        let secret = read(secret_file)?;
        let secret = secret
            .strip_suffix(b"\r\n")
            .or_else(|| secret.strip_suffix(b"\n"))
            .unwrap_or(&secret);
        verify_signature(secret, &body, signature).map_err(|e| {
            CliError::failure(format!(
                "{}: {e}; check the secret in {} against the webhook's secret on GitHub",
                args.payload.display(),
                secret_file.display()
            ))
        })?;
    }
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| CliError::usage(format!("{} is not JSON: {e}", args.payload.display())))?;
    let config = load_config(&args.config)?;
    let outcome = simulate(&config, &args.event, &payload);
    let mut out = Out::lock();
    match args.format {
        Format::Json => {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&outcome).expect("outcomes serialize")
            )?;
        }
        Format::Text => {
            writeln!(out, "trigger: {}", outcome.trigger)?;
            writeln!(out, "reason: {}", outcome.reason)?;
            if !outcome.parameters.is_empty() {
                writeln!(out, "parameters:")?;
                for (k, v) in &outcome.parameters {
                    writeln!(out, "  {k}: {v}")?;
                }
            }
            if !outcome.labels.is_empty() {
                writeln!(out, "labels:")?;
                for (k, v) in &outcome.labels {
                    writeln!(out, "  {k}: {v}")?;
                }
            }
        }
    }
    Ok(Exit::Ok)
}
