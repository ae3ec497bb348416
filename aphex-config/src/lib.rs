//! `aphex-config` owns the `aphex-config.yaml` format: the model ([`Config`]),
//! loading YAML with source positions, the JSON Schema derived from the model,
//! schema and semantic validation, secret detection, and diagnostics that name
//! the field path, file, line and column.
//!
//! Loading: bytes are checked (size, binary, UTF-8), parsed (by our reader
//! of the common block shape, else by libyaml-safer) under our resource
//! budgets into a positioned [`tree`],
//! validated by the semantic rules and against the schema (every problem
//! collected, each placed by its field path), and only then deserialized
//! into [`Config`], straight from the tree. Large files are first tried in
//! parts, one thread each (see `tree::parts`); any file with a problem is
//! read in one pass, where each environment is checked as soon as it is
//! closed.
//!
//! Architecture invariant: this crate is pure. It reads only the text (or the
//! one file) it is given, and knows nothing of AWS, Kubernetes or Argo.

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
    if source.len() >= PARTS_FROM_BYTES
        && let Some(config) = load_in_parts(file, source, parallelism())
    {
        return Ok(config);
    }
    load_in_one_pass(file, source)
}

/// [`load_str`] without trying parts: the one path that reports problems.
fn load_in_one_pass(file: &str, source: &str) -> Result<Config, Vec<Diagnostic>> {
    let whole = |line: usize, column: usize, message: String, help: &str| Diagnostic {
        path: String::new(),
        file: file.to_owned(),
        line,
        column,
        message,
        help: Some(help.to_owned()),
    };
    // Each environment is checked as soon as the parser has closed it, on
    // this thread while the parser thread reads on (see `tree`).
    let mut checker = rules::Checker::new(file, source);
    let parsed = tree::parse_watching(source, "environments", &mut |i, items| {
        checker.environment_item(i, &items[i]);
    });
    let tree = match parsed {
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

/// Files from this size are first tried in parts (see [`load_in_parts`]);
/// below it, starting threads costs more than it saves.
const PARTS_FROM_BYTES: usize = 64 * 1024;

/// Threads for loading in parts: the machine's, up to four (more parts
/// would each be too small to pay for their thread).
fn parallelism() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
}

/// Loads a valid configuration with its environments list cut into
/// `parts`, each parsed, checked by the per-environment rules, validated by
/// the schema and decoded on its own thread (see `tree::parts`). Only the
/// clean case is handled: `None` whenever the file cannot be cut or any
/// problem is found, and the caller then loads it in one pass, which finds
/// and reports every problem exactly as it always does.
fn load_in_parts(file: &str, source: &str, parts: usize) -> Option<Config> {
    // The first part's thread compiles the schema's halves first, the
    // first time in a process (about 2 ms, near half a part's work).
    let lead = if schema::halves_ready() { 0 } else { 40 };
    let plan = tree::parts::plan(source, "environments", parts, lead)?;
    // Each environment: the per-environment rules, the schema, the typed
    // model, as soon as it is read (see `tree::parts::Check`).
    let start = |text: &str| (rules::Checker::reading(file, source, &[text]), Vec::new());
    let item = |(checker, environments): &mut (rules::Checker<'_>, Vec<Environment>),
                index: usize,
                env: &mut tree::Node| {
        checker.environment_item(index, env);
        if !checker.is_clean() || !schema::environment_is_valid(env) {
            return false;
        }
        // The rest of the rules need only the name: the item's strings
        // move into the model, and the rest is freed on this thread.
        let name = env.entry("name").cloned();
        let only_name = tree::Node {
            pos: env.pos,
            value: tree::Value::Map(name.into_iter().collect()),
        };
        match Environment::deserialize(std::mem::replace(env, only_name)) {
            Ok(decoded) => {
                environments.push(decoded);
                true
            }
            Err(_) => false,
        }
    };
    let check = tree::parts::Check {
        start: &start,
        item: &item,
        ready: &schema::halves_ready,
    };
    // The schema compiles while the parts are parsed (about 1.5 ms in a
    // fresh process, the first time).
    let (mut tree, parts) =
        tree::parts::parse(source, "environments", &plan, &check, schema::prepare_halves)?;
    let environments: Vec<Environment> = parts.into_iter().flat_map(|(_, envs)| envs).collect();
    // The rest of the rules (the root, names across environments, comments)
    // and the rest of the schema, on what the parts did not check.
    let (before, after) = plan.outside(source);
    let mut checker = rules::Checker::reading(file, source, &[before, after]);
    checker.assume_checked_early(environments.len());
    checker.check(&tree);
    if !checker.is_clean() || !schema::valid_but_environments(&tree) {
        return None;
    }
    // The environments are decoded already: the root is decoded without them.
    tree.get_mut("environments")?.value = tree::Value::Seq(Vec::new());
    let mut config = Config::deserialize(tree).ok()?;
    config.environments = environments;
    Some(config)
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
            s = s.replace(secret, "<redacted>");
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A configuration of `envs` environments written in one of several
    /// layouts, with at most one defect; and whether it must load in parts.
    fn config_text() -> impl Strategy<Value = (String, bool)> {
        (
            3usize..12,
            0usize..4,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0usize..12,
            any::<prop::sample::Index>(),
        )
            .prop_map(|(envs, stacks, indented, tail, crlf, defect, at)| {
                let at = at.index(envs);
                let d = if indented { "  " } else { "" };
                let mut y = String::from("# a config\nversion: \"1.0\"\nbuild:\n  commands: [make]\nenvironments: # all of them\n");
                let mut engages = true;
                for e in 0..envs {
                    let name = if defect == 1 && e == at && e > 0 { "env-0".to_owned() } else { format!("env-{e}") };
                    let account = if defect == 2 && e == at { "12345".to_owned() } else { format!("\"{:012}\"", 100_000_000_000u64 + e as u64) };
                    y.push_str(&format!("{d}- name: {name}\n{d}  region: eu-west-1\n{d}  account: {account}\n"));
                    if e % 3 == 1 {
                        y.push_str(&format!("{d}  hooks:\n{d}    pre:\n{d}      - |\n{d}        echo one\n{d}        - not an item\n"));
                    }
                    if e % 4 == 2 {
                        y.push_str("# a comment at the margin\n\n");
                    }
                    if defect == 3 && e == at {
                        y.push_str(&format!("{d}  regoin: x\n"));
                    }
                    if defect == 4 && e == at {
                        y.push_str(&format!("{d}  synth: \"AKIAIOSFODNN7EXAMPLE\"\n"));
                    }
                    if defect == 5 && e == at {
                        y.push_str(&format!("{d}  concurrency: 0\n"));
                    }
                    y.push_str(&format!("{d}  stacks:\n"));
                    for s in 0..=stacks {
                        let depends = if defect == 6 && e == at && s == 0 { format!(", dependsOn: [S{stacks}]") } else if s > 0 { format!(", dependsOn: [S{}]", s - 1) } else { String::new() };
                        y.push_str(&format!("{d}    - {{name: S{s}, path: lib/s{s}.ts{depends}}}\n"));
                    }
                    if defect == 7 && e == at {
                        // An alias across environments: read in one pass.
                        if e == 0 {
                            y.push_str(&format!("{d}  tests: &t {{commands: [x]}}\n"));
                        } else {
                            y.push_str(&format!("{d}  tests: *t\n"));
                        }
                    }
                }
                // Defects 1-9 are problems, or shapes read in one pass.
                if (1..=9).contains(&defect) {
                    engages = false;
                }
                if tail {
                    y.push_str("pipeline:\n  name: p\n");
                }
                if defect == 8 {
                    y.push_str("version: \"1.0\"\n");
                }
                if defect == 9 {
                    // The start of a multi-line string that looks like an item.
                    y.push_str(&format!("{d}- name: \"x\n{d}- y\"\n"));
                }
                if crlf {
                    y = y.replace('\n', "\r\n");
                }
                (y, engages)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        // Property: loading in parts gives exactly the one-pass result when
        // the file is valid, and declines (leaving every report to the one
        // pass) otherwise; plain valid files always load in parts.
        #[test]
        fn parts_agree_with_one_pass((text, engages) in config_text(), parts in 2usize..5) {
            let one = load_in_one_pass("c.yaml", &text);
            let split = load_in_parts("c.yaml", &text, parts);
            match (&one, &split) {
                (Ok(a), Some(b)) => prop_assert_eq!(a, b),
                (_, None) => prop_assert!(!engages, "declined a plain valid file:\n{}", text),
                (Err(d), Some(_)) => prop_assert!(false, "accepted in parts what one pass rejects: {:?}\n{}", d, text),
            }
        }
    }

    #[test]
    fn a_large_file_loads_in_parts() {
        let mut y = String::from("version: \"1.0\"\nbuild:\n  commands: [make]\nenvironments:\n");
        for e in 0..200 {
            y.push_str(&format!("  - name: e{e}\n    region: us-east-1\n    account: \"{:012}\"\n    stacks:\n      - {{name: A, path: a}}\n", e + 1));
        }
        let config = load_in_parts("big.yaml", &y, 2).expect("loaded in parts");
        assert_eq!(config.environments.len(), 200);
        assert_eq!(config.environments[199].name, "e199");
        assert_eq!(Ok(config), load_in_one_pass("big.yaml", &y));
    }
}
