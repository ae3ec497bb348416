//! `aphex plan`: the pipeline's stages, and per environment the stack order
//! and waves, as text, Mermaid, Graphviz dot or JSON.

use std::path::PathBuf;

use aphex_template::{Plan, plan_format};

use super::render::load_config;
use crate::exit::Exit;

/// Output formats of `aphex plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz digraph.
    Dot,
    /// JSON.
    Json,
}

/// Arguments of `aphex plan`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  aphex plan\n  aphex plan --format dot | dot -Tsvg > plan.svg\n  aphex plan path/to/aphex-config.yaml --format json"
)]
pub struct Args {
    /// The configuration file.
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Runs `aphex plan`.
pub fn run(args: Args) -> Exit {
    let config = match load_config(&args.path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let plan = match Plan::new(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}: {e}", args.path.display());
            return Exit::Failure;
        }
    };
    let out = match args.format {
        Format::Text => plan_format::to_text(&plan),
        Format::Mermaid => plan_format::to_mermaid(&plan),
        Format::Dot => plan_format::to_dot(&plan),
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(&plan_format::to_json(&plan)).expect("JSON values serialize");
            s.push('\n');
            s
        }
    };
    print!("{out}");
    Exit::Ok
}
