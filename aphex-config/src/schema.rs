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

/// A validator of our tree (no JSON copy; see `tree::view`).
fn validator(schema: &Json, draft: jsonschema::Draft) -> jsonschema::Validator<Yaml> {
    // The schema is generated from our own types; failing to compile it is a
    // bug caught by every test, not a user error.
    jsonschema::options_for::<Yaml>()
        .with_draft(draft)
        .build(schema)
        .expect("the derived schema compiles")
}

/// The whole schema's validator (the one-pass path's).
fn whole() -> &'static jsonschema::Validator<Yaml> {
    static V: OnceLock<jsonschema::Validator<Yaml>> = OnceLock::new();
    V.get_or_init(|| validator(schema_json(), jsonschema::Draft::Draft202012))
}

/// The schema, made once per process.
fn schema_json() -> &'static Json {
    static S: OnceLock<Json> = OnceLock::new();
    S.get_or_init(schema)
}

// The schema cut in two for loading in parts: the root with any item in
// `environments`, and one environment. Together they accept exactly what
// the whole schema accepts, because the root's `environments` is an array
// whose every item is an `Environment` (a test checks both).
//
// The halves are written in draft-07 rather than 2020-12: they only answer
// valid or not (problems are always reported through the whole schema),
// the same types give the same constraints in both drafts, and a fresh
// process compiles draft-07's meta-schema in a quarter of the time
// (about 0.5 ms against 2). A test checks the halves never use `$ref`
// beside a validation keyword, which draft-07 would ignore.

/// The schema as draft-07 (see above).
fn schema_draft07() -> Json {
    SchemaSettings::draft07()
        .with_transform(NoNull)
        .into_generator()
        .into_root_schema_for::<Config>()
        .to_value()
}

static ROOT_WITHOUT_ENVIRONMENTS: OnceLock<jsonschema::Validator<Yaml>> = OnceLock::new();
static ONE_ENVIRONMENT: OnceLock<jsonschema::Validator<Yaml>> = OnceLock::new();

fn root_without_environments() -> &'static jsonschema::Validator<Yaml> {
    ROOT_WITHOUT_ENVIRONMENTS.get_or_init(|| validator(&halves().0, jsonschema::Draft::Draft7))
}

fn one_environment() -> &'static jsonschema::Validator<Yaml> {
    ONE_ENVIRONMENT.get_or_init(|| validator(&halves().1, jsonschema::Draft::Draft7))
}

/// Whether both halves are compiled already (later loads in a process).
pub(crate) fn halves_ready() -> bool {
    ROOT_WITHOUT_ENVIRONMENTS.get().is_some() && ONE_ENVIRONMENT.get().is_some()
}

/// The root with any item in `environments`, and one environment.
fn halves() -> &'static (Json, Json) {
    static H: OnceLock<(Json, Json)> = OnceLock::new();
    H.get_or_init(|| {
        let mut root = schema_draft07();
        let mut environment = root["definitions"]["Environment"].clone();
        environment["definitions"] = root["definitions"].clone();
        environment["$schema"] = root["$schema"].clone();
        root["properties"]["environments"]["items"] = Json::Bool(true);
        (root, environment)
    })
}

/// Compiles both halves now (ahead of their first use).
pub(crate) fn prepare_halves() {
    one_environment();
    root_without_environments();
}

/// Whether `environment` is a valid environment.
pub(crate) fn environment_is_valid(environment: &Node) -> bool {
    one_environment().is_valid(environment)
}

/// Whether `root` is valid when each of its environments is (see
/// [`environment_is_valid`]).
pub(crate) fn valid_but_environments(root: &Node) -> bool {
    root_without_environments().is_valid(root)
}

/// Validates `tree` against the schema, appending one diagnostic per problem.
pub(crate) fn check(file: &str, tree: &Node, out: &mut Vec<Diagnostic>) {
    // Bounded: a hostile file can hold a hundred thousand bad fields.
    for err in whole().iter_errors(tree).take(crate::MAX_DIAGNOSTICS + 1) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Draft-07 ignores every keyword beside `$ref`; annotations there are harmless.
    #[test]
    fn the_halves_never_put_a_ref_beside_a_validation_keyword() {
        fn walk(v: &Json, at: &str) {
            match v {
                Json::Object(o) => {
                    if o.contains_key("$ref") {
                        for k in o.keys() {
                            assert!(
                                matches!(
                                    k.as_str(),
                                    "$ref"
                                        | "description"
                                        | "title"
                                        | "default"
                                        | "examples"
                                        | "definitions"
                                        | "$schema"
                                ),
                                "`{k}` beside `$ref` at {at}"
                            );
                        }
                    }
                    for (k, v) in o {
                        walk(v, &format!("{at}/{k}"));
                    }
                }
                Json::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| walk(v, &format!("{at}/{i}"))),
                _ => {}
            }
        }
        let (root, environment) = halves();
        walk(root, "root");
        walk(environment, "environment");
        assert_eq!(root["$schema"], "http://json-schema.org/draft-07/schema#");
    }

    /// The halves (draft-07) accept exactly what the whole (2020-12) accepts.
    #[test]
    fn the_halves_accept_what_the_whole_accepts() {
        let seed = include_str!("../../examples/seed/aphex-config.yaml");
        let full = include_str!("../../aphex-template/tests/data/full.yaml");
        let mut texts = vec![seed.to_owned(), full.to_owned()];
        for (from, to) in [
            ("region: us-west-2", "region: 7"),
            ("region: us-west-2", "regoin: us-west-2"),
            ("name: MyAppStack", "name: [MyAppStack]"),
            ("version: \"1.0\"", "version: \"1.0\"\nextra: 1"),
            ("name: staging", "name: {a: 1}"),
            ("account: \"987654321098\"", "account: true"),
        ] {
            assert!(seed.contains(from), "{from}");
            texts.push(seed.replacen(from, to, 1));
        }
        let mut valid = 0;
        for text in &texts {
            let tree = crate::tree::parse(text).unwrap();
            let by_halves = valid_but_environments(&tree)
                && tree
                    .get("environments")
                    .unwrap()
                    .items()
                    .iter()
                    .all(environment_is_valid);
            assert_eq!(whole().is_valid(&tree), by_halves, "for\n{text}");
            valid += usize::from(by_halves);
        }
        assert_eq!(valid, 2, "the examples are valid, the edits are not");
    }
}
