//! The JSON Schema of `aphex-config.yaml`, derived from the model with
//! schemars, and schema validation of a parsed tree (jsonschema), turning
//! every schema error into a placed [`Diagnostic`] with a plain-English
//! message and a fix.

use std::sync::OnceLock;

use schemars::transform::{Transform, transform_subschemas};
use schemars::{Schema, generate::SchemaSettings};
use serde_json::Value as Json;

use crate::Diagnostic;
use crate::model::Config;
use crate::suggest::did_you_mean;
use crate::tree::view::Yaml;
use crate::tree::{Node, Path, Seg};

/// Where editors find the published schema (the `$id` of the schema and the
/// target of the `yaml-language-server` line `aphex init` writes).
pub const SCHEMA_URL: &str =
    "https://raw.githubusercontent.com/aphex-dev/aphex/main/aphex-config.schema.json";

/// The JSON Schema (draft 2020-12) of the configuration, as committed in
/// `aphex-config.schema.json`.
pub fn schema() -> Json {
    let settings = SchemaSettings::draft2020_12().with_transform(NoNull);
    let mut root = settings.into_generator().into_root_schema_for::<Config>();
    if let Some(obj) = root.as_object_mut() {
        // Identity first, so the committed file reads naturally.
        obj.insert("$id".into(), Json::String(SCHEMA_URL.into()));
        let mut rest = std::mem::take(obj);
        for k in ["$schema", "$id", "title", "description"] {
            if let Some(v) = rest.shift_remove(k) {
                obj.insert(k.into(), v);
            }
        }
        obj.append(&mut rest);
    }
    root.to_value()
}

/// The schema as pretty JSON with a trailing newline: the exact bytes of the
/// committed `aphex-config.schema.json`.
pub fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// Optional fields are written by leaving them out, never as `null`: the
/// schema says so (schemars would allow `null` for every `Option`), which
/// gives editors and error messages one clear type per field.
#[derive(Clone)]
struct NoNull;

impl Transform for NoNull {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(obj) = schema.as_object_mut() {
            if let Some(Json::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let t = types.remove(0);
                    obj.insert("type".into(), t);
                }
            }
            let mut lone = None;
            if let Some(Json::Array(any)) = obj.get_mut("anyOf") {
                any.retain(|s| s.get("type").and_then(Json::as_str) != Some("null"));
                if any.len() == 1 {
                    lone = any.pop();
                }
            }
            if let Some(Json::Object(inner)) = lone {
                obj.remove("anyOf");
                for (k, v) in inner {
                    obj.entry(k).or_insert(v);
                }
            }
            // Option<T> of a plain type also gets `"default": null` noise; drop it.
            if obj.get("default") == Some(&Json::Null) {
                obj.remove("default");
            }
        }
        transform_subschemas(self, schema);
    }
}

/// The schema's validator of our tree (no JSON copy; see `tree::view`),
/// compiled once per process.
fn validator() -> &'static jsonschema::Validator<Yaml> {
    static V: OnceLock<jsonschema::Validator<Yaml>> = OnceLock::new();
    // The schema is generated from our own types; failing to compile it is a
    // bug caught by every test, not a user error.
    V.get_or_init(|| {
        jsonschema::options_for::<Yaml>()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema_json())
            .expect("the derived schema compiles")
    })
}

/// The schema, made once per process.
fn schema_json() -> &'static Json {
    static S: OnceLock<Json> = OnceLock::new();
    S.get_or_init(schema)
}

/// Validates `tree` against the schema, appending one diagnostic per problem.
pub(crate) fn check(file: &str, tree: &Node, out: &mut Vec<Diagnostic>) {
    // Bounded: a hostile file can hold a hundred thousand bad fields.
    for err in validator().iter_errors(tree).take(crate::MAX_DIAGNOSTICS + 1) {
        let path = Path(
            err.instance_path()
                .iter()
                .map(|s| match s {
                    jsonschema::paths::LocationSegment::Property(p) => Seg::Key(p.into_owned()),
                    jsonschema::paths::LocationSegment::Index(i) => Seg::Index(i),
                })
                .collect(),
        );
        for d in describe(schema_json(), tree, &path, err.kind()) {
            let pos = match &d.at {
                At::Key(p) => {
                    let parent = Path(p.0[..p.0.len() - 1].to_vec());
                    let key = match p.0.last() {
                        Some(Seg::Key(k)) => k.as_str(),
                        _ => "",
                    };
                    tree.at(&parent.0)
                        .and_then(|n| n.key(key))
                        .map_or_else(|| tree.pos_of(&p.0), |k| k.pos)
                }
                At::Value(p) => tree.pos_of(&p.0),
            };
            let path = match d.at {
                At::Key(p) | At::Value(p) => p,
            };
            out.push(Diagnostic {
                path: path.to_string(),
                file: file.to_owned(),
                line: pos.line,
                column: pos.column,
                message: d.message,
                help: d.help,
            });
        }
    }
}

enum At {
    /// Point at the key of this path (unknown fields).
    Key(Path),
    /// Point at the value (or the closest existing parent).
    Value(Path),
}

struct Described {
    at: At,
    message: String,
    help: Option<String>,
}

fn describe(
    schema: &Json,
    tree: &Node,
    path: &Path,
    kind: &jsonschema::error::ValidationErrorKind,
) -> Vec<Described> {
    use jsonschema::error::ValidationErrorKind as K;
    let found = tree.at(&path.0);
    let sub = subschema_at(schema, &path.0);
    let field = field_name(path);
    let one = |message: String, help: Option<String>| {
        vec![Described {
            at: At::Value(path.clone()),
            message,
            help,
        }]
    };
    match kind {
        K::AdditionalProperties { unexpected } => {
            let known: Vec<String> = sub
                .and_then(|s| s.get("properties"))
                .and_then(Json::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .take(crate::MAX_DIAGNOSTICS + 1)
                .map(|name| {
                    let help = match did_you_mean(name, known.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("known fields here: {}", backticked(&known)),
                    };
                    Described {
                        at: At::Key(path.key(name)),
                        message: format!("unknown field `{name}`"),
                        help: Some(help),
                    }
                })
                .collect()
        }
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_owned();
            let missing = path.key(&name);
            let desc = subschema_at(schema, &missing.0)
                .and_then(|s| s.get("description"))
                .and_then(Json::as_str)
                .map(|d| format!(" ({})", first_sentence(d)))
                .unwrap_or_default();
            // The path names the missing field; its position is the parent's.
            vec![Described {
                at: At::Value(missing),
                message: format!("missing field `{name}` in {}", describe_path(path)),
                help: Some(format!("add `{name}:`{desc}")),
            }]
        }
        K::Type { .. } => {
            let expected = sub.map(expected_kind).unwrap_or("another type");
            let found_kind = found.map_or("nothing", |n| n.value.kind());
            let help = match found.map(|n| &n.value) {
                Some(
                    crate::tree::Value::Int(_) | crate::tree::Value::Float(_) | crate::tree::Value::Bool(_),
                ) if expected == "a string" => "quote the value to make it a string".to_owned(),
                Some(crate::tree::Value::Null) => format!("give `{field}` a value, or remove the line"),
                _ => format!("write `{field}` as {expected}"),
            };
            let subject = if path.0.is_empty() {
                field.clone()
            } else {
                format!("`{field}`")
            };
            one(
                format!("{subject} must be {expected}, found {found_kind}"),
                Some(help),
            )
        }
        K::Enum { .. } | K::Constant { .. } | K::OneOfNotValid { .. } | K::AnyOf { .. } => {
            let allowed = sub.map(allowed_values).unwrap_or_default();
            one(
                format!("`{field}` has a value that is not allowed"),
                Some(format!("use one of {}", backticked(&allowed))),
            )
        }
        K::MinItems { limit } => one(
            format!(
                "`{field}` must have at least {limit} item{}",
                if *limit == 1 { "" } else { "s" }
            ),
            Some(format!("add an entry to `{field}`")),
        ),
        K::Minimum { limit } => one(
            format!("`{field}` must be at least {limit}"),
            Some(format!("set `{field}` to {limit} or more")),
        ),
        K::Maximum { limit } => one(
            format!("`{field}` must be at most {limit}"),
            Some(format!("set `{field}` to {limit} or less")),
        ),
        K::MinLength { .. } => one(
            format!("`{field}` must not be empty"),
            Some(format!("give `{field}` a value")),
        ),
        K::MaxLength { limit } => one(
            format!("`{field}` is longer than {limit} characters"),
            Some(format!("shorten `{field}`")),
        ),
        K::Pattern { pattern } => one(
            format!("`{field}` is not in the expected form"),
            Some(format!("it must match the pattern `{pattern}`")),
        ),
        other => one(format!("`{field}`: {other:?}"), None),
    }
}

/// The last key of a path (`account` for `environments[0].account`).
pub(crate) fn field_name(path: &Path) -> String {
    path.0
        .iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(k.clone()),
            Seg::Index(_) => None,
        })
        .map_or_else(
            || "the document".to_owned(),
            |k| {
                // `stacks[1]` reads better than `stacks` for a list item.
                let idx = path.0.last().and_then(|s| match s {
                    Seg::Index(i) => Some(*i),
                    Seg::Key(_) => None,
                });
                match idx {
                    Some(i) => format!("{k}[{i}]"),
                    None => k,
                }
            },
        )
}

fn describe_path(path: &Path) -> String {
    if path.0.is_empty() {
        "the document".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn first_sentence(d: &str) -> String {
    let d = d.split("\n\n").next().unwrap_or(d).replace('\n', " ");
    d.trim_end_matches('.').to_owned()
}

fn backticked(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn expected_kind(s: &Json) -> &'static str {
    match s.get("type").and_then(Json::as_str) {
        Some("string") => "a string",
        Some("integer") => "a whole number",
        Some("number") => "a number",
        Some("boolean") => "true or false",
        Some("array") => "a list",
        Some("object") => "a mapping",
        _ => "another type",
    }
}

fn allowed_values(s: &Json) -> Vec<String> {
    let mut out = Vec::new();
    let text = |v: &Json| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    if let Some(c) = s.get("const") {
        out.push(text(c));
    }
    if let Some(Json::Array(e)) = s.get("enum") {
        out.extend(e.iter().map(text));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Json::Array(alts)) = s.get(key) {
            for a in alts {
                out.extend(allowed_values(a));
            }
        }
    }
    out
}

fn resolve<'a>(root: &'a Json, s: &'a Json) -> &'a Json {
    let mut cur = s;
    // References only point into `$defs`; a bounded loop guards against a cycle.
    for _ in 0..8 {
        match cur.get("$ref").and_then(Json::as_str) {
            Some(r) => match r.strip_prefix("#/$defs/").and_then(|n| root.get("$defs")?.get(n)) {
                Some(next) => cur = next,
                None => break,
            },
            None => break,
        }
    }
    cur
}

/// The (resolved) subschema that describes the value at `path`.
pub(crate) fn subschema_at<'a>(root: &'a Json, path: &[Seg]) -> Option<&'a Json> {
    let mut cur = resolve(root, root);
    for seg in path {
        let next = match seg {
            Seg::Key(k) => cur.get("properties")?.get(k)?,
            Seg::Index(_) => cur.get("items")?,
        };
        cur = resolve(root, next);
    }
    Some(cur)
}
