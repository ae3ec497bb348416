//! `aphex schema`: prints the JSON Schema of `aphex-config.yaml` (the same
//! bytes as the committed `aphex-config.schema.json`).

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex schema`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex schema > aphex-config.schema.json\n  \
    aphex schema | jq '.properties | keys'")]
pub struct Args {}

/// Runs `aphex schema`.
pub fn run(_args: Args) -> Result<Exit, CliError> {
    Out::lock().write_str(&aphex_config::schema_text())?;
    Ok(Exit::Ok)
}
