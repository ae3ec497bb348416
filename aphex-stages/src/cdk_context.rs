//! The CDK context a synth gets: `cdk.json`'s `context` (feature flags and
//! the project's own keys) over `cdk.context.json` (cached lookups), as the
//! `cdk` CLI merges them. An app reads its context only from the
//! environment the CLI sets (`CDK_CONTEXT_JSON`, and a file named by
//! `CONTEXT_OVERFLOW_LOCATION_ENV` when it is large), so a synth command
//! that runs the app directly (`node bin/app.js`) would otherwise build its
//! templates without the project's feature flags and with placeholder
//! lookups. A `cdk synth` command replaces the variables with its own, which
//! hold the same keys. The user's `~/.cdk.json` is not read: a pipeline
//! synthesizes from the commit alone.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The variable an app reads its context from.
pub(crate) const CONTEXT_ENV: &str = "CDK_CONTEXT_JSON";

/// The variable naming a file with the context that did not fit [`CONTEXT_ENV`].
pub(crate) const OVERFLOW_ENV: &str = "CONTEXT_OVERFLOW_LOCATION_ENV";

/// Larger contexts go to a file: Linux refuses to start a process with one
/// environment string over 128 KiB (`MAX_ARG_STRLEN`).
const ENV_LIMIT: usize = 100 * 1024;

/// Why a CDK context file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContextFileError {
    /// Not JSON.
    #[error("{}: not valid JSON: {source}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not the object of keys a context is.
    #[error("{}: {what} is not a JSON object of context keys", .path.display())]
    NotObject {
        /// The file.
        path: PathBuf,
        /// `the file` or `"context"`.
        what: &'static str,
    },
    /// Unreadable.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The context of the CDK app in `dir`: the keys of `cdk.context.json`,
/// then those of `cdk.json`'s `context`, which win (the `cdk` CLI's order).
/// Empty when neither file exists.
pub(crate) fn read(dir: &Path) -> Result<Map<String, Value>, ContextFileError> {
    let mut context = object(dir.join("cdk.context.json"), None)?;
    context.extend(object(dir.join("cdk.json"), Some("context"))?);
    Ok(context)
}

/// The object at `field` of the JSON file at `path` (the whole file when
/// `None`); empty when the file or the field does not exist.
fn object(path: PathBuf, field: Option<&'static str>) -> Result<Map<String, Value>, ContextFileError> {
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => return Err(ContextFileError::Read { path, source }),
    };
    let value: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(source) => return Err(ContextFileError::Json { path, source }),
    };
    let value = match field {
        None => value,
        Some(field) => match value {
            Value::Object(mut file) => file.remove(field).unwrap_or_default(),
            _ => {
                return Err(ContextFileError::NotObject {
                    path,
                    what: "the file",
                });
            }
        },
    };
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(ContextFileError::NotObject {
            path,
            what: if field.is_some() {
                "\"context\""
            } else {
                "the file"
            },
        }),
    }
}

/// The variables that hand `context` to an app: none when it is empty,
/// [`CONTEXT_ENV`] when it fits, else the file `overflow`, written and named
/// by [`OVERFLOW_ENV`].
pub(crate) fn env_vars(
    context: &Map<String, Value>,
    overflow: &Path,
) -> std::io::Result<Vec<(String, String)>> {
    if context.is_empty() {
        return Ok(Vec::new());
    }
    let json = serde_json::to_string(context)?;
    if json.len() <= ENV_LIMIT {
        return Ok(vec![(CONTEXT_ENV.to_owned(), json)]);
    }
    std::fs::write(overflow, json)?;
    Ok(vec![(OVERFLOW_ENV.to_owned(), overflow.display().to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn cdk_json_context_wins_over_the_cached_lookups() {
        let dir = dir_with(&[
            (
                "cdk.json",
                r#"{"app": "node bin/app.js", "context": {"flag": true, "both": "cdk.json"}}"#,
            ),
            (
                "cdk.context.json",
                r#"{"lookup": "vpc-1", "both": "cdk.context.json"}"#,
            ),
        ]);
        let context = read(dir.path()).unwrap();
        assert_eq!(
            Value::Object(context),
            serde_json::json!({"flag": true, "both": "cdk.json", "lookup": "vpc-1"})
        );
    }

    #[test]
    fn no_files_or_no_context_field_is_an_empty_context() {
        assert!(read(dir_with(&[]).path()).unwrap().is_empty());
        let app_only = dir_with(&[("cdk.json", r#"{"app": "node bin/app.js"}"#)]);
        assert!(read(app_only.path()).unwrap().is_empty());
        let overflow = app_only.path().join("context.json");
        assert!(env_vars(&Map::new(), &overflow).unwrap().is_empty());
        assert!(!overflow.exists());
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let cases = [
            ("cdk.json", "{", "cdk.json: not valid JSON"),
            (
                "cdk.json",
                r#"{"context": [1]}"#,
                r#"cdk.json: "context" is not a JSON object"#,
            ),
            (
                "cdk.context.json",
                "[]",
                "cdk.context.json: the file is not a JSON object",
            ),
        ];
        for (name, text, want) in cases {
            let err = read(dir_with(&[(name, text)]).path()).unwrap_err().to_string();
            assert!(err.contains(want), "{name} {text}: {err}");
        }
    }

    #[test]
    fn a_large_context_goes_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let overflow = dir.path().join("context.json");
        let small = Map::from_iter([("k".to_owned(), Value::from("v"))]);
        assert_eq!(
            env_vars(&small, &overflow).unwrap(),
            [(CONTEXT_ENV.to_owned(), r#"{"k":"v"}"#.to_owned())]
        );
        let large = Map::from_iter([("k".to_owned(), Value::from("x".repeat(ENV_LIMIT)))]);
        let vars = env_vars(&large, &overflow).unwrap();
        assert_eq!(vars[0], (OVERFLOW_ENV.to_owned(), overflow.display().to_string()));
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&overflow).unwrap()).unwrap();
        assert_eq!(written, Value::Object(large));
    }
}
