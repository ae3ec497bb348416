//! `aphex validate [PATH] [--format human|json]`: loads the configuration and
//! reports every problem, rustc-style or as JSON. Exit 0 valid, 1 invalid,
//! 2 usage or IO error.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use aphex_config::Config;

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Output formats of `aphex validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// rustc-like diagnostics on stderr (source line, caret, help).
    Human,
    /// `{"errors": [...]}` on stdout (empty list when valid).
    Json,
}

/// Arguments of `aphex validate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex validate\n  \
    aphex validate path/to/aphex-config.yaml\n  \
    aphex validate --format json | jq '.errors[].path'\n\n\
    Exit status: 0 valid, 1 invalid, 2 usage or IO error (e.g. missing file).")]
pub struct Args {
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// What loading a file gave: the config, or the diagnostics and the text
/// they point into.
enum Outcome {
    Valid(Box<Config>),
    Invalid(Vec<aphex_config::Diagnostic>, String),
}

/// The file a PATH argument names: a directory means its `aphex-config.yaml`,
/// as for `aphex run --local`.
fn config_file(path: &Path) -> Cow<'_, Path> {
    if path.is_dir() {
        Cow::Owned(path.join("aphex-config.yaml"))
    } else {
        Cow::Borrowed(path)
    }
}

fn load(path: &Path) -> Result<Outcome, CliError> {
    let bytes = aphex_config::read_file(path).map_err(|e| {
        CliError::usage(e).help("pass the path of an aphex-config.yaml, or create one with `aphex init`")
    })?;
    let name = path.display().to_string();
    Ok(match aphex_config::load_bytes(&name, &bytes) {
        Ok(config) => Outcome::Valid(Box::new(config)),
        Err(diags) => Outcome::Invalid(diags, String::from_utf8_lossy(&bytes).into_owned()),
    })
}

/// An invalid config: its diagnostics rustc-style, then the count.
fn invalid(diags: &[aphex_config::Diagnostic], source: &str, path: &Path) -> CliError {
    let n = diags.len();
    CliError::failure(format!(
        "{} is invalid: {n} problem{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    ))
    .report(aphex_config::render(diags, source))
}

/// Loads and validates `path` for commands that need a valid config: an
/// invalid one is an error carrying its diagnostics.
pub(crate) fn load_config(path: &Path) -> Result<Config, CliError> {
    let path = &config_file(path);
    match load(path)? {
        Outcome::Valid(config) => Ok(*config),
        Outcome::Invalid(diags, source) => Err(invalid(&diags, &source, path)),
    }
}

/// Runs `aphex validate`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let path = &config_file(&args.path);
    let outcome = load(path)?;
    let mut out = Out::lock();
    match (args.format, outcome) {
        (Format::Json, outcome) => {
            let (diags, code) = match outcome {
                Outcome::Valid(_) => (Vec::new(), Exit::Ok),
                Outcome::Invalid(d, _) => (d, Exit::Failure),
            };
            let s =
                serde_json::to_string_pretty(&aphex_config::to_json(&diags)).expect("JSON values serialize");
            writeln!(out, "{s}")?;
            Ok(code)
        }
        (Format::Human, Outcome::Valid(config)) => {
            let stacks: usize = config.environments.iter().map(|e| e.stacks.len()).sum();
            writeln!(
                out,
                "{} is valid: {} environment{}, {stacks} stack{}",
                path.display(),
                config.environments.len(),
                if config.environments.len() == 1 { "" } else { "s" },
                if stacks == 1 { "" } else { "s" },
            )?;
            Ok(Exit::Ok)
        }
        (Format::Human, Outcome::Invalid(diags, source)) => Err(invalid(&diags, &source, path)),
    }
}
