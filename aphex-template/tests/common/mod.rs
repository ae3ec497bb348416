//! Shared test helpers: the test configs, and validators for Argo's strict
//! schemas in `../shared/reference/strict/` (read, never copied).

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::sync::OnceLock;

use aphex_config::Config;
use serde_json::Value;

/// A file under `tests/data/`.
pub fn data(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A test config, loaded and validated.
pub fn config(name: &str) -> Config {
    load(&data(name))
}

/// Loads YAML that must be a valid config.
pub fn load(yaml: &str) -> Config {
    aphex_config::load_str("test.yaml", yaml).unwrap_or_else(|d| panic!("test config is invalid: {d:#?}"))
}

/// The checked-in test configs, by name.
pub const CONFIGS: [&str; 3] = ["seed.yaml", "full.yaml", "cross-account.yaml"];

/// `../shared/reference/` (the workspace's parent holds `shared/`).
pub fn reference_dir() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference");
    assert!(
        p.is_dir(),
        "the Argo reference schemas are missing: expected {} (CI provides ../shared/reference next to the repository)",
        p.display()
    );
    p
}

/// A GitHub webhook payload from the reference set.
pub fn webhook(name: &str) -> (Vec<u8>, Value) {
    let p = reference_dir().join("github-webhooks").join(name);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    let v = serde_json::from_slice(&raw).expect("payload is JSON");
    (raw, v)
}

/// Kinds with a strict schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    WorkflowTemplate,
    Workflow,
    EventSource,
    Sensor,
}

fn load_schema(file: &str) -> Value {
    let p = reference_dir().join("strict").join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).expect("schema is JSON")
}

/// The one place where known upstream schema bugs are allowed.
///
/// - argo-events issue 1416: `WebhookContext.url` is marked required, but
///   Argo Events does not require it (it registers the webhook on GitHub
///   only when `url` is set, and we set it only when `webhookUrl` is).
///
/// (Argo Workflows' IntOrString bug, issues 6060/6349, is already fixed in
/// the strict files, so it needs no allowance here.)
fn allow_known_upstream_bugs(kind: Kind, schema: &mut Value) {
    if kind == Kind::EventSource {
        let required = schema
            .pointer_mut("/definitions/io.argoproj.events.v1alpha1.WebhookContext/required")
            .and_then(Value::as_array_mut)
            .expect("the EventSource schema defines WebhookContext.required");
        required.retain(|r| r != "url");
    }
}

fn validator(kind: Kind) -> &'static jsonschema::Validator {
    static WT: OnceLock<jsonschema::Validator> = OnceLock::new();
    static WF: OnceLock<jsonschema::Validator> = OnceLock::new();
    static ES: OnceLock<jsonschema::Validator> = OnceLock::new();
    static SE: OnceLock<jsonschema::Validator> = OnceLock::new();
    let (cell, file) = match kind {
        Kind::WorkflowTemplate => (&WT, "workflowtemplate.strict.schema.json"),
        Kind::Workflow => (&WF, "workflow.strict.schema.json"),
        Kind::EventSource => (&ES, "eventsource.strict.schema.json"),
        Kind::Sensor => (&SE, "sensor.strict.schema.json"),
    };
    cell.get_or_init(|| {
        let mut schema = load_schema(file);
        allow_known_upstream_bugs(kind, &mut schema);
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("compiling {file}: {e}"))
    })
}

/// Every schema violation of `doc`, as `path: message` lines.
pub fn schema_errors(kind: Kind, doc: &Value) -> Vec<String> {
    validator(kind)
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Panics with every violation when `doc` does not pass the strict schema.
pub fn assert_schema_valid(kind: Kind, doc: &Value, what: &str) {
    let errors = schema_errors(kind, doc);
    assert!(
        errors.is_empty(),
        "{what} ({kind:?}) fails the strict schema:\n{}",
        errors.join("\n")
    );
}
