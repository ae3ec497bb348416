//! `aphex schema`.

use crate::exit::Exit;

/// Arguments of `aphex schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `aphex schema`.
pub fn run(_args: Args) -> Exit {
    eprintln!("aphex schema: not implemented yet");
    Exit::Usage
}
