//! `aphex plan`: the pipeline's stages, and per environment the stack order
//! and waves, as text, Mermaid, Graphviz dot or JSON.

use std::path::{Path, PathBuf};

use aphex_template::{Plan, PlanDiff, plan_format};

use super::validate::load_config;
use crate::exit::{CliError, Exit};
use crate::out::Out;

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
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print what changed from this older config instead (environments and
    /// stages added, removed or changed); text or json.
    #[arg(long, value_name = "OLD")]
    pub compare: Option<PathBuf>,
}

fn make_plan(path: &Path) -> Result<Plan, CliError> {
    let config = load_config(path)?;
    Plan::new(&config).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))
}

/// Runs `aphex plan`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let plan = make_plan(&args.path)?;
    let mut out = Out::lock();
    if let Some(old) = &args.compare {
        let old = make_plan(old)?;
        let diff = PlanDiff::between(&old, &plan);
        match args.format {
            Format::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&diff).expect("diffs serialize")
            )?,
            Format::Text => write!(out, "{diff}")?,
            Format::Mermaid | Format::Dot => return Err(CliError::usage("--compare prints text or json")),
        }
        return Ok(Exit::Ok);
    }
    let text = match args.format {
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
    out.write_str(&text)?;
    Ok(Exit::Ok)
}
