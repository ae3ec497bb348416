//! Process exit codes, in one place (documented in docs/cli.md).

/// How `aphex` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok,
    /// The input is invalid, or the operation failed (a failed run, a bad signature).
    Failure,
    /// Usage or IO error: bad arguments, missing file.
    Usage,
    /// `aphex diff --exit-code` found differences.
    Differs,
    /// Interrupted by the user (Ctrl-C).
    Interrupted,
    /// Stdout's reader went away (`aphex render | head`).
    BrokenPipe,
}

impl From<Exit> for i32 {
    fn from(e: Exit) -> i32 {
        match e {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Differs => 1,
            Exit::Interrupted => 130,
            Exit::BrokenPipe => 141,
        }
    }
}
