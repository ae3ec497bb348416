//! How `aphex` ends: the exit codes (documented in docs/cli.md) and the one
//! error type every command returns, printed by `main` alone.

use std::fmt::Display;

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
    /// Interrupted by a stop signal (Ctrl-C, SIGTERM).
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

/// Why a command stopped: what went wrong, what to do about it, and the
/// exit code. `main` prints it (`error: ...`, then `  help: ...`) and
/// exits; commands only build it and return it with `?`.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// What went wrong, and where (printed after `error: `); empty for an
    /// end that says nothing (a closed stdout).
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// Printed before the message, as it is: what led to it (an invalid
    /// config's diagnostics).
    pub report: Option<String>,
}

impl CliError {
    fn new(exit: Exit, message: impl Display) -> Self {
        CliError {
            exit,
            message: message.to_string(),
            help: None,
            report: None,
        }
    }

    /// The input is invalid or the operation failed (exit 1).
    pub fn failure(message: impl Display) -> Self {
        Self::new(Exit::Failure, message)
    }

    /// A usage, setup or IO error (exit 2).
    pub fn usage(message: impl Display) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// Stopped by Ctrl-C (exit 130).
    pub fn interrupted(message: impl Display) -> Self {
        Self::new(Exit::Interrupted, message)
    }

    /// Stdout's reader went away: a quiet end, as after SIGPIPE (exit 141).
    pub fn broken_pipe() -> Self {
        Self::new(Exit::BrokenPipe, "")
    }

    /// Adds what to do about it.
    pub fn help(mut self, help: impl Display) -> Self {
        self.help = Some(help.to_string());
        self
    }

    /// Adds what to print before the message.
    pub fn report(mut self, report: String) -> Self {
        self.report = Some(report);
        self
    }

    /// The text on stderr: report, `error: message`, `  help: help`.
    pub fn to_text(&self) -> String {
        let mut text = self.report.clone().unwrap_or_default();
        if !self.message.is_empty() {
            text.push_str(&format!("error: {}\n", self.message));
        }
        if let Some(help) = &self.help {
            text.push_str(&format!("  help: {help}\n"));
        }
        text
    }
}

impl From<aphex_stages::bootstrap::BootstrapError> for CliError {
    fn from(e: aphex_stages::bootstrap::BootstrapError) -> Self {
        CliError::failure(e)
    }
}

impl From<aphex_template::yaml::YamlError> for CliError {
    fn from(e: aphex_template::yaml::YamlError) -> Self {
        CliError::failure(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_report_then_the_error_then_the_help() {
        let e = CliError::usage("x.yaml already exists")
            .help("pass --force")
            .report("  --> x.yaml:1:1\n".to_owned());
        assert_eq!(
            e.to_text(),
            "  --> x.yaml:1:1\nerror: x.yaml already exists\n  help: pass --force\n"
        );
        assert_eq!(CliError::broken_pipe().to_text(), "");
    }
}
