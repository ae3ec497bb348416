//! `aphex init [PATH] [--force]`: writes the commented starter configuration
//! (its first line points editors at the schema); never overwrites a file
//! unless told to.

use std::io::Write as _;
use std::path::PathBuf;

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex init`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex init\n  \
    aphex init infra/aphex-config.yaml\n  \
    aphex init --force    # replace an existing file")]
pub struct Args {
    /// Where to write the configuration.
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `aphex init`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let path = &args.path;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        // create_new: the check and the creation are one step, so a file
        // appearing in between is never clobbered.
        options.create_new(true);
    }
    let result = options
        .open(path)
        .and_then(|mut f| f.write_all(aphex_config::starter().as_bytes()));
    match result {
        Ok(()) => {
            let mut out = Out::lock();
            writeln!(out, "wrote {}", path.display())?;
            writeln!(
                out,
                "next: set your account IDs, regions and stacks, then run `aphex validate {}`",
                path.display()
            )?;
            Ok(Exit::Ok)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(CliError::usage(format!("{} already exists", path.display()))
                .help("pass --force to overwrite it, or choose another path"))
        }
        Err(e) => Err(CliError::usage(format!("cannot write {}: {e}", path.display()))),
    }
}
