//! `aphex validate`.

use crate::exit::Exit;

/// Arguments of `aphex validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `aphex validate`.
pub fn run(_args: Args) -> Exit {
    eprintln!("aphex validate: not implemented yet");
    Exit::Usage
}
