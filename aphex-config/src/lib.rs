//! `aphex-config` owns the `aphex-config.yaml` format: the model ([`Config`]),
//! loading YAML with source positions, the JSON Schema derived from the model,
//! schema and semantic validation, secret detection, and diagnostics that name
//! the field path, file, line and column.
//!
//! Architecture invariant: this crate is pure. It reads only the text it is
//! given, and knows nothing of AWS, Kubernetes or Argo.

pub mod graph;
pub mod model;

pub use graph::{GraphError, StackGraph};
pub use model::*;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Field path, e.g. `environments[0].account` (empty for the whole document).
    pub path: String,
    /// File name as given to the loader.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// Loads and validates a configuration from `source`; `file` names it in diagnostics.
/// Returns every problem found, not just the first.
// Placeholder until the full loader lands: parses without positions.
pub fn load_str(file: &str, source: &str) -> Result<Config, Vec<Diagnostic>> {
    serde_saphyr::from_str::<Config>(source).map_err(|e| {
        vec![Diagnostic {
            path: String::new(),
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: e.to_string(),
            help: None,
        }]
    })
}
