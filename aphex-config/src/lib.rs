//! `aphex-config` owns the `aphex-config.yaml` format: the model ([`Config`]),
//! loading YAML with source positions, the JSON Schema derived from the model,
//! schema and semantic validation, secret detection, and diagnostics that name
//! the field path, file, line and column.
//!
//! Loading is one pass on the calling thread: bytes are checked (size,
//! binary, UTF-8), libyaml-safer's events are built into a positioned
//! [`tree`] under our resource budgets, the semantic rules and the schema
//! check that tree (every problem collected, each placed by its field
//! path), and only a file without problems is decoded into [`Config`],
//! straight from the tree.
//!
//! Architecture invariant: this crate is pure. It reads only the text (or the
//! one file) it is given, and knows nothing of AWS, Kubernetes or Argo.
//!
//! # Example
//!
//! Embedding the loader: text in, a validated [`Config`] out, or every
//! problem placed on its line.
//!
//! ```
//! let text = r#"
//! version: "1.0"
//! build:
//!   commands: ["npm ci", "npm run build"]
//! environments:
//!   - name: dev
//!     region: us-east-1
//!     account: "123456789012"
//!     stacks:
//!       - { name: NetworkStack, path: lib/network-stack.ts }
//!       - { name: AppStack, path: lib/app-stack.ts, dependsOn: [NetworkStack] }
//! "#;
//! let config = aphex_config::load_str("aphex-config.yaml", text).expect("a valid config");
//! let dev = config.environment("dev").expect("declared above");
//! assert_eq!(dev.account, "123456789012");
//! assert_eq!(dev.stacks[1].depends_on, ["NetworkStack"]);
//!
//! // An account written as a YAML number is refused, at its field and line.
//! let unquoted = text.replace("\"123456789012\"", "123456789012");
//! let problems = aphex_config::load_str("aphex-config.yaml", &unquoted).expect_err("unquoted");
//! assert_eq!(problems[0].path, "environments[0].account");
//! assert_eq!(problems[0].line, 8);
//! ```

#![warn(missing_docs)]

pub mod diagnostic;
pub mod graph;
pub mod manifest_values;
pub mod model;
mod rules;
pub mod schema;
pub mod secrets;
mod starter;
mod suggest;
pub mod tree;

use std::collections::HashSet;

use serde::Deserialize as _;
use std::io::Read as _;

pub use diagnostic::{Diagnostic, render, to_json};
pub use graph::{GraphError, StackGraph};
pub use model::*;
pub use rules::KNOWN_REGIONS;
pub use schema::{SCHEMA_URL, schema, schema_text};
pub use starter::starter;
pub use tree::quiet_parser_panics;

/// The largest configuration file accepted. A 100-environment, 50-stack
/// configuration is about 400 KiB written verbosely; anything near this is
/// not a configuration, and refusing it keeps time (well under a second in a
/// release build) and memory bounded.
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// The most diagnostics one load reports; past this, one more says how many
/// were left out. Real files never get near it; hostile ones stay bounded.
pub const MAX_DIAGNOSTICS: usize = 500;

/// Reading a configuration file failed (before its content was looked at).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Loading a configuration file failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The file was read but is not a valid configuration.
    #[error("{} has {} problem(s); the first: {}", .0.first().map_or("", |d| d.file.as_str()), .0.len(), .0.first().map(|d| d.to_string()).unwrap_or_default())]
    Invalid(Vec<Diagnostic>),
}

/// Reads at most [`MAX_FILE_BYTES`] + 1 bytes of `path` (enough for
/// [`load_bytes`] to tell that a file is too large without reading it all).
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // Sized once from the file's length (growing by doubling copied a large
    // file several times); the limit still holds if the file grows meanwhile.
    let size = file
        .metadata()
        .map_or(0, |m| m.len())
        .min(MAX_FILE_BYTES as u64 + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

/// Reads, loads and validates the configuration at `path`.
pub fn load_file(path: &std::path::Path) -> Result<Config, LoadError> {
    let bytes = read_file(path)?;
    load_bytes(&path.display().to_string(), &bytes).map_err(LoadError::Invalid)
}

/// Loads and validates a configuration from raw bytes (size, binary content
/// and UTF-8 are checked first); `file` names it in diagnostics.
pub fn load_bytes(file: &str, bytes: &[u8]) -> Result<Config, Vec<Diagnostic>> {
    let whole = |message: String, help: &str| {
        vec![Diagnostic {
            path: String::new(),
            file: file.to_owned(),
            line: 1,
            column: 1,
            message,
            help: Some(help.to_owned()),
        }]
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(whole(
            format!("the file is larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
            "an aphex configuration is a few kilobytes; check that this is the right file",
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(at) = memchr::memchr(0, bytes) {
        let (line, column) = line_col_of(bytes, at);
        return Err(vec![Diagnostic {
            line,
            column,
            ..whole(
                "the file contains a NUL byte: it looks binary, not YAML".to_owned(),
                "point aphex at the YAML configuration file",
            )
            .remove(0)
        }]);
    }
    match std::str::from_utf8(bytes) {
        Ok(source) => load_str(file, source),
        Err(e) => {
            let (line, column) = line_col_of(bytes, e.valid_up_to());
            Err(vec![Diagnostic {
                line,
                column,
                ..whole(
                    "the file is not valid UTF-8".to_owned(),
                    "save the file as UTF-8 (YAML configuration files are text)",
                )
                .remove(0)
            }])
        }
    }
}

fn line_col_of(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// Loads and validates a configuration from `source`; `file` names it in
/// diagnostics. Returns every problem found, not just the first, sorted by
/// position.
pub fn load_str(file: &str, source: &str) -> Result<Config, Vec<Diagnostic>> {
    // Too large or binary: `load_bytes` says which, where.
    if source.len() > MAX_FILE_BYTES || source.contains('\0') {
        return load_bytes(file, source.as_bytes());
    }
    let whole = |line: usize, column: usize, message: String, help: &str| Diagnostic {
        path: String::new(),
        file: file.to_owned(),
        line,
        column,
        message,
        help: Some(help.to_owned()),
    };
    let tree = match tree::parse(source) {
        Ok(t) => t,
        Err(e) => return Err(vec![parse_error(file, &e)]),
    };
    if tree.value == tree::Value::Null {
        return Err(vec![whole(
            1,
            1,
            "the file is empty".to_owned(),
            "start from `aphex init`, or add `version`, `build` and `environments`",
        )]);
    }
    let mut checker = rules::Checker::new(file, source);
    checker.check(&tree);
    let mut from_schema = Vec::new();
    schema::check(file, &tree, &mut from_schema);

    // A semantic rule says it better than the schema; the schema speaks where
    // no rule did (wrong types, unknown and missing fields, ...).
    let ruled: HashSet<&str> = checker.out.iter().map(|d| d.path.as_str()).collect();
    from_schema.retain(|d| !ruled.contains(d.path.as_str()));
    let mut all = checker.out.clone();
    all.extend(from_schema);
    all.extend(checker.credentials.iter().cloned());

    if all.is_empty() {
        match Config::deserialize(tree) {
            Ok(config) => return Ok(config),
            // The schema is derived from the model, so this is a bug; still,
            // say what serde said rather than accept a half-read file.
            Err(e) => all.push(whole(
                1,
                1,
                format!("the configuration does not match the model: {e}"),
                "please report this: the schema accepted what the model rejects",
            )),
        }
    }
    Err(finish(all, &checker.secrets))
}

/// The secrets the credential check finds in `source`, for masking the
/// source lines a rendering shows (a password under its key may sit on a
/// line of its own, where no text shape can tell). Empty when the text does
/// not parse: then only the text shapes mask.
pub(crate) fn found_secrets(source: &str) -> Vec<String> {
    if source.len() > MAX_FILE_BYTES {
        return Vec::new();
    }
    let Ok(tree) = tree::parse(source) else {
        return Vec::new();
    };
    let mut checker = rules::Checker::new("", source);
    checker.check(&tree);
    checker.secrets
}

/// Sorts by position, drops duplicates, bounds the count and scrubs
/// secrets from every message.
fn finish(mut all: Vec<Diagnostic>, secrets_found: &[String]) -> Vec<Diagnostic> {
    all.sort_by_key(|d| (d.line, d.column));
    let mut seen = HashSet::new();
    all.retain(|d| seen.insert((d.path.clone(), d.line, d.column, d.message.clone())));
    if all.len() > MAX_DIAGNOSTICS {
        let more = all.len() - MAX_DIAGNOSTICS;
        all.truncate(MAX_DIAGNOSTICS);
        let file = all[0].file.clone();
        all.push(Diagnostic {
            path: String::new(),
            file,
            line: 0,
            column: 0,
            message: format!("{more} more problems not shown"),
            help: Some("fix the ones above and validate again".to_owned()),
        });
    }
    // Token-shaped secrets are masked by pattern; the exact strings cover the
    // key-dependent kinds (passwords, secret keys), which are few in real files.
    let mut unique = HashSet::new();
    let exact: Vec<&str> = secrets_found
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty() && unique.insert(*s))
        .take(1000)
        .collect();
    let scrub = |s: &str| {
        let mut s = s.to_owned();
        for secret in &exact {
            s = s.replace(secret, secrets::MASK);
        }
        secrets::redact(&s)
    };
    for d in &mut all {
        d.path = scrub(&d.path);
        d.message = scrub(&d.message);
        d.help = d.help.as_deref().map(scrub);
    }
    all
}

fn parse_error(file: &str, e: &tree::ParseError) -> Diagnostic {
    let lower = e.message.to_lowercase();
    let help = if lower.contains("nested")
        || lower.contains("alias")
        || lower.contains("nodes")
        || lower.contains("limit")
    {
        "the file exceeds the limits of a configuration (nesting, aliases or size); simplify it"
    } else if lower.contains("duplicate key") {
        "remove one of the duplicate keys"
    } else if lower.contains("document") {
        "keep one configuration per file"
    } else {
        "fix the YAML syntax here (indentation, quotes, `:` after keys)"
    };
    Diagnostic {
        path: String::new(),
        file: file.to_owned(),
        line: e.pos.line,
        column: e.pos.column,
        message: secrets::redact(&format!("invalid YAML: {}", e.message)),
        help: Some(help.to_owned()),
    }
}
