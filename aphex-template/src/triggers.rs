//! The one description of what a GitHub webhook triggers: for each Sensor
//! trigger, the event it listens to, the filters an event must pass and how
//! workflow parameters are taken from the payload. The Sensor renderer
//! ([`crate::events::sensor`]) turns it into Argo Events filters, and the simulator
//! ([`crate::simulate`]) evaluates it on a payload, so the two cannot drift.
//!
//! Argo Events evaluates a string data filter as an unanchored regular
//! expression on the gjson result at `path`; rendering anchors and escapes
//! every literal, so "matches" means "equals" on both sides.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::workflow::{MAIN_ENTRYPOINT, VALIDATE_PR_ENTRYPOINT};

/// What a trigger starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    /// A deploy run (`main` entrypoint).
    Deploy,
    /// A validate-only run (`validate-pr` entrypoint).
    Validate,
}

impl TriggerKind {
    /// `deploy` or `validate`, as the simulator reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Deploy => "deploy",
            TriggerKind::Validate => "validate",
        }
    }
}

/// One condition on the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The value at `path` equals one of `values`.
    OneOf {
        /// gjson path in the event (`headers...` or `body...`).
        path: &'static str,
        /// Accepted values.
        values: Vec<String>,
    },
    /// The value at `path` exists and differs from `value`.
    NotEqual {
        /// gjson path in the event.
        path: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The values at two paths exist and are equal (an `exprs` filter).
    SameValue {
        /// First path.
        left: &'static str,
        /// Second path.
        right: &'static str,
    },
}

/// Where a workflow parameter's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A string in the event at this gjson path (empty when absent).
    Event(&'static str),
    /// A fixed value (already guaranteed by the filters).
    Literal(String),
}

/// One Sensor trigger with its dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What it starts.
    pub kind: TriggerKind,
    /// Dependency name in the Sensor.
    pub dependency: &'static str,
    /// The GitHub event (`X-GitHub-Event`) it listens to.
    pub event: &'static str,
    /// Every filter must pass.
    pub filters: Vec<Filter>,
    /// Workflow parameters in [`crate::workflow::WORKFLOW_PARAMETERS`] order.
    pub parameters: Vec<(&'static str, Source)>,
    /// The WorkflowTemplate entrypoint the run starts at.
    pub entrypoint: &'static str,
}

/// Path of the GitHub event name in an Argo Events GitHub event: headers
/// are Go `http.Header` values (canonical key, list of strings).
pub const EVENT_HEADER_PATH: &str = "headers.X-Github-Event.0";
/// The `after` of a push that deletes a branch or tag.
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The branch whose pushes deploy (the configured one, else "main").
pub fn deploy_branch(config: &Config) -> String {
    config
        .settings()
        .github
        .as_ref()
        .map(|g| g.branch().to_owned())
        .unwrap_or_else(|| "main".to_owned())
}

/// The trigger rules of a pipeline.
pub fn rules(config: &Config) -> Vec<Rule> {
    let branch = deploy_branch(config);
    vec![
        Rule {
            kind: TriggerKind::Deploy,
            dependency: "push",
            event: "push",
            filters: vec![
                Filter::OneOf {
                    path: EVENT_HEADER_PATH,
                    values: vec!["push".into()],
                },
                // Only the branch: tags and other branches do not deploy.
                Filter::OneOf {
                    path: "body.ref",
                    values: vec![format!("refs/heads/{branch}")],
                },
                // A deleted branch has nothing to deploy.
                Filter::NotEqual {
                    path: "body.after",
                    value: ZERO_SHA.into(),
                },
            ],
            parameters: vec![
                ("commit-sha", Source::Event("body.after")),
                ("branch", Source::Literal(branch.clone())),
                ("repo-url", Source::Event("body.repository.clone_url")),
                ("pusher", Source::Event("body.pusher.name")),
                ("message", Source::Event("body.head_commit.message")),
            ],
            entrypoint: MAIN_ENTRYPOINT,
        },
        Rule {
            kind: TriggerKind::Validate,
            dependency: "pull-request",
            event: "pull_request",
            filters: vec![
                Filter::OneOf {
                    path: EVENT_HEADER_PATH,
                    values: vec!["pull_request".into()],
                },
                Filter::OneOf {
                    path: "body.action",
                    values: vec!["opened".into(), "reopened".into(), "synchronize".into()],
                },
                Filter::OneOf {
                    path: "body.pull_request.base.ref",
                    values: vec![branch],
                },
                // Pull requests from forks would run untrusted build commands
                // with the pipeline's AWS role; only same-repository branches validate.
                Filter::SameValue {
                    left: "body.pull_request.head.repo.full_name",
                    right: "body.repository.full_name",
                },
            ],
            parameters: vec![
                ("commit-sha", Source::Event("body.pull_request.head.sha")),
                ("branch", Source::Event("body.pull_request.head.ref")),
                ("repo-url", Source::Event("body.repository.clone_url")),
                ("pusher", Source::Event("body.sender.login")),
                ("message", Source::Event("body.pull_request.title")),
            ],
            entrypoint: VALIDATE_PR_ENTRYPOINT,
        },
    ]
}

/// Looks up a simple gjson path (dot-separated keys, numeric array
/// indexes; no wildcards or escapes, which the rules never use).
pub fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(event, |v, key| match v {
        Value::Object(o) => o.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// The string gjson's `Result.String()` gives for a value: strings as they
/// are, `null` as empty, everything else as its JSON text.
pub fn as_gjson_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Filter {
    /// Whether `event` passes this filter, and if not, why (one phrase).
    pub fn evaluate(&self, event: &Value) -> Result<(), String> {
        match self {
            Filter::OneOf { path, values } => {
                let Some(v) = lookup(event, path) else {
                    return Err(format!("`{path}` is absent"));
                };
                let s = as_gjson_string(v);
                if values.contains(&s) {
                    Ok(())
                } else {
                    Err(format!("`{path}` is `{s}`, not {}", quoted_list(values)))
                }
            }
            Filter::NotEqual { path, value } => {
                let Some(v) = lookup(event, path) else {
                    return Err(format!("`{path}` is absent"));
                };
                if as_gjson_string(v) == *value {
                    Err(format!("`{path}` is `{value}`"))
                } else {
                    Ok(())
                }
            }
            Filter::SameValue { left, right } => match (lookup(event, left), lookup(event, right)) {
                (Some(l), Some(r)) if l == r => Ok(()),
                (Some(l), Some(r)) => Err(format!(
                    "`{left}` (`{}`) differs from `{right}` (`{}`)",
                    as_gjson_string(l),
                    as_gjson_string(r)
                )),
                _ => Err(format!("`{left}` or `{right}` is absent")),
            },
        }
    }
}

fn quoted_list(values: &[String]) -> String {
    let q: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    q.join(" or ")
}

/// Escapes `s` for Go's RE2 syntax so that it matches only itself.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An anchored regular expression matching exactly `s`.
pub fn exact_regex(s: &str) -> String {
    format!("^{}$", regex_escape(s))
}

/// The Argo Events filters of a rule: `{"data": [...], "exprs": [...]}`.
pub fn render_filters(filters: &[Filter]) -> Value {
    let mut data = Vec::new();
    let mut exprs = Vec::new();
    for f in filters {
        match f {
            Filter::OneOf { path, values } => data.push(json!({
                "path": path,
                "type": "string",
                "value": values.iter().map(|v| exact_regex(v)).collect::<Vec<_>>(),
            })),
            Filter::NotEqual { path, value } => data.push(json!({
                "path": path,
                "type": "string",
                "comparator": "!=",
                "value": [exact_regex(value)],
            })),
            Filter::SameValue { left, right } => exprs.push(json!({
                "expr": "left == right",
                "fields": [{"name": "left", "path": left}, {"name": "right", "path": right}],
            })),
        }
    }
    let mut out = json!({"data": data});
    if !exprs.is_empty() {
        out["exprs"] = json!(exprs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_every_re2_metacharacter() {
        assert_eq!(
            exact_regex("refs/heads/release-1.2"),
            "^refs/heads/release-1\\.2$"
        );
        assert_eq!(
            regex_escape("a+b(c)|[d]{e}^$*?\\"),
            "a\\+b\\(c\\)\\|\\[d\\]\\{e\\}\\^\\$\\*\\?\\\\"
        );
    }

    #[test]
    fn lookup_follows_keys_and_indexes() {
        let ev = json!({"headers": {"X-Github-Event": ["push"]}, "body": {"a": {"b": 1}}});
        assert_eq!(lookup(&ev, EVENT_HEADER_PATH), Some(&json!("push")));
        assert_eq!(lookup(&ev, "body.a.b"), Some(&json!(1)));
        assert_eq!(lookup(&ev, "body.a.c"), None);
        assert_eq!(lookup(&ev, "headers.X-Github-Event.1"), None);
    }
}
