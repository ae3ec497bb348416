//! `aphex init`.

use crate::exit::Exit;

/// Arguments of `aphex init`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `aphex init`.
pub fn run(_args: Args) -> Exit {
    eprintln!("aphex init: not implemented yet");
    Exit::Usage
}
