//! What commands print on stdout, through one locked handle whose writes
//! return [`CliError`]: `writeln!(out, ...)?` ends a command quietly with
//! the broken-pipe exit when the reader has gone (`aphex render | head`).

use std::io::Write as _;

use crate::exit::CliError;

/// The locked stdout of a command.
pub struct Out(std::io::StdoutLock<'static>);

impl Out {
    /// Locks stdout for this command.
    pub fn lock() -> Self {
        Out(std::io::stdout().lock())
    }

    /// What `write!`/`writeln!` call: writes, mapping the error.
    pub fn write_fmt(&mut self, args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
        self.0.write_fmt(args).map_err(write_error)
    }

    /// Writes `text` as it is.
    pub fn write_str(&mut self, text: &str) -> Result<(), CliError> {
        self.0.write_all(text.as_bytes()).map_err(write_error)
    }
}

impl Out {
    /// Flushes what was written (before a long wait).
    pub fn flush(&mut self) -> Result<(), CliError> {
        self.0.flush().map_err(write_error)
    }
}

/// Flushes stdout, so that a last write's error is seen before exiting.
pub fn flush() -> Result<(), CliError> {
    std::io::stdout().flush().map_err(write_error)
}

/// A closed pipe ends quietly, as a process killed by SIGPIPE would
/// (128 + 13); anything else (a full disk) is an IO error.
fn write_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::broken_pipe()
    } else {
        CliError::usage(format!("writing to stdout: {e}"))
    }
}
