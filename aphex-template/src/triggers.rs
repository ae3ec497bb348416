//! The one description of what a GitHub webhook triggers: for each Sensor
//! trigger, the event it listens to, the filters an event must pass and how
//! workflow parameters are taken from the payload. The Sensor renderer
//! ([`crate::events::sensor`]) turns it into Argo Events filters, and the simulator
//! ([`crate::simulate`]) evaluates it on a payload, so the two cannot drift.
//!
//! Argo Events evaluates a string data filter as an unanchored regular
//! expression on the gjson result at `path`; rendering anchors and escapes
//! every literal, so "matches" means "equals" on both sides.
//!
//! A `!=` filter passes when **any** of its values does not match, and a
//! filter whose path is absent fails (argo-events' `filterData`), so each
//! negative filter renders to exactly one expression: an alternation of
//! every value it rejects.
//!
//! Only values the filters pin down become workflow parameters: a 40-hex
//! commit SHA, a pull request's number, literals from the config. Free text
//! of the payload (refs, messages, names, URLs) never does, because Argo
//! evaluates `{{...}}` in parameter values (docs/security.md). The head
//! commit's message is read by a filter only (`[skip ci]`), never passed.
//! The one value of the payload that becomes a label, the sender's login,
//! is used only when it has the shape of a GitHub login, and is empty
//! otherwise ([`Source::Checked`]): a bot's `name[bot]` still deploys,
//! unnamed.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::submit::{Origin, SENDER_LABEL, TRIGGER_LABEL};
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
    /// The value at `path` equals `value` without regard to ASCII case
    /// (GitHub's owner and repository names are case-insensitive).
    EqualsIgnoringCase {
        /// gjson path in the event.
        path: &'static str,
        /// The accepted value (ASCII letters compared without case).
        value: String,
    },
    /// The string at `path` exists and contains none of `needles`.
    ContainsNone {
        /// gjson path in the event.
        path: &'static str,
        /// Rejected substrings, matched exactly (case included).
        needles: Vec<String>,
    },
    /// The string at `path` exists and equals none of `values`, ASCII
    /// letters compared without case (GitHub logins are case-insensitive).
    NoneIgnoringCase {
        /// gjson path in the event.
        path: &'static str,
        /// Rejected values.
        values: Vec<String>,
        /// Where the values come from, for the simulator's reason.
        source: &'static str,
    },
    /// The value at `path` has the given shape.
    Shaped {
        /// gjson path in the event.
        path: &'static str,
        /// What it must look like.
        shape: Shape,
    },
}

/// The shape of a value that may become a workflow parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A full commit SHA: 40 lowercase hexadecimal digits, as GitHub sends it.
    CommitSha,
    /// A decimal number (a pull request's number).
    Number,
    /// A GitHub login: ASCII letters, digits and inner hyphens, at most 39
    /// characters; always a valid label value too.
    Login,
}

impl Shape {
    /// The anchored RE2 expression the Sensor matches.
    pub fn regex(self) -> &'static str {
        match self {
            Shape::CommitSha => "^[0-9a-f]{40}$",
            Shape::Number => "^[0-9]{1,10}$",
            Shape::Login => "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$",
        }
    }

    /// Whether `s` has this shape (what [`Shape::regex`] matches).
    pub fn accepts(self, s: &str) -> bool {
        match self {
            Shape::CommitSha => s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            Shape::Number => (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()),
            Shape::Login => {
                let b = s.as_bytes();
                (1..=39).contains(&b.len())
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                    && b[0] != b'-'
                    && b[b.len() - 1] != b'-'
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Shape::CommitSha => "a 40-hex commit SHA",
            Shape::Number => "a number",
            Shape::Login => "a GitHub login",
        }
    }
}

/// Where a workflow parameter's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A string in the event at this gjson path (empty when absent).
    Event(&'static str),
    /// A fixed value (already guaranteed by the filters).
    Literal(String),
    /// The string at this gjson path when it has `shape`, else empty: a
    /// value no filter may refuse the event for (the sender).
    Checked {
        /// gjson path in the event.
        path: &'static str,
        /// What it must look like to be used.
        shape: Shape,
    },
}

impl Source {
    /// The value this source gives for `event`, as the Sensor computes it.
    pub fn value(&self, event: &Value) -> String {
        match self {
            Source::Literal(v) => v.clone(),
            Source::Event(path) => lookup(event, path).map(as_gjson_string).unwrap_or_default(),
            // A template's regexMatch takes strings only: anything else is
            // refused, as it is here.
            Source::Checked { path, shape } => match lookup(event, path) {
                Some(Value::String(s)) if shape.accepts(s) => s.clone(),
                _ => String::new(),
            },
        }
    }
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
    /// Labels of the submitted Workflow: how it started
    /// ([`crate::submit::TRIGGER_LABEL`]) and who sent the event
    /// ([`crate::submit::SENDER_LABEL`]).
    pub labels: Vec<(&'static str, Source)>,
    /// The WorkflowTemplate entrypoint the run starts at.
    pub entrypoint: &'static str,
}

/// Path of the GitHub event name in an Argo Events GitHub event: headers
/// are Go `http.Header` values (canonical key, list of strings).
pub const EVENT_HEADER_PATH: &str = "headers.X-Github-Event.0";
/// The `after` of a push that deletes a branch or tag.
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";
/// A head commit whose message holds one of these triggers nothing:
/// GitHub's own skip instructions (`[skip ci]`, `[ci skip]`, `[no ci]`),
/// and Aphex's (`[skip aphex]`, `[aphex skip]`) for skipping only this
/// pipeline. Matched exactly, as GitHub documents them.
pub const SKIP_MARKERS: [&str; 5] = [
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip aphex]",
    "[aphex skip]",
];
/// Path of the pushed head commit's message (free text: filtered, never passed).
pub const HEAD_COMMIT_MESSAGE_PATH: &str = "body.head_commit.message";
/// Path of the login of whoever caused the delivery.
pub const SENDER_LOGIN_PATH: &str = "body.sender.login";

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
    // Deliveries about any other repository (an EventSource shared by
    // mistake, a replayed delivery) trigger nothing. Without `github` no
    // Sensor is rendered, and the simulator takes any repository.
    let repository: Option<Filter> = config
        .settings()
        .github
        .as_ref()
        .map(|gh| Filter::EqualsIgnoringCase {
            path: "body.repository.full_name",
            value: gh.full_name(),
        });
    let mut push = vec![
        Filter::OneOf {
            path: EVENT_HEADER_PATH,
            values: vec!["push".into()],
        },
        // Only the branch: tags and other branches do not deploy.
        Filter::OneOf {
            path: "body.ref",
            values: vec![format!("refs/heads/{branch}")],
        },
    ];
    push.extend(repository.clone());
    push.extend([
        // A deleted branch has nothing to deploy.
        Filter::NotEqual {
            path: "body.after",
            value: ZERO_SHA.into(),
        },
        Filter::Shaped {
            path: "body.after",
            shape: Shape::CommitSha,
        },
        // GitHub's convention: a commit that says so (a release bot's
        // version bump) triggers nothing. GitHub sends `head_commit` with
        // every push that does not delete the branch.
        Filter::ContainsNone {
            path: HEAD_COMMIT_MESSAGE_PATH,
            needles: SKIP_MARKERS.iter().map(|m| (*m).to_owned()).collect(),
        },
    ]);
    let ignored = config
        .settings()
        .github
        .as_ref()
        .map(|gh| gh.ignore_senders.clone())
        .unwrap_or_default();
    if !ignored.is_empty() {
        // Bots that push back to the branch cannot start a loop.
        push.push(Filter::NoneIgnoringCase {
            path: SENDER_LOGIN_PATH,
            values: ignored,
            source: "pipeline.github.ignoreSenders",
        });
    }
    let mut pull_request = vec![
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
        // Pull requests from forks would run untrusted build commands;
        // only same-repository branches validate.
        Filter::SameValue {
            left: "body.pull_request.head.repo.full_name",
            right: "body.repository.full_name",
        },
    ];
    pull_request.extend(repository);
    pull_request.extend([
        Filter::Shaped {
            path: "body.pull_request.head.sha",
            shape: Shape::CommitSha,
        },
        Filter::Shaped {
            path: "body.number",
            shape: Shape::Number,
        },
    ]);
    let labels = |origin: Origin| {
        vec![
            (TRIGGER_LABEL, Source::Literal(origin.as_label().to_owned())),
            (
                SENDER_LABEL,
                Source::Checked {
                    path: "body.sender.login",
                    shape: Shape::Login,
                },
            ),
        ]
    };
    vec![
        Rule {
            kind: TriggerKind::Deploy,
            dependency: "push",
            event: "push",
            filters: push,
            // The branch and the repository are the template's own (from
            // the config); only the filtered SHA comes from the delivery.
            parameters: vec![
                ("commit-sha", Source::Event("body.after")),
                ("pull-request", Source::Literal(String::new())),
            ],
            labels: labels(Origin::Push),
            entrypoint: MAIN_ENTRYPOINT,
        },
        Rule {
            kind: TriggerKind::Validate,
            dependency: "pull-request",
            event: "pull_request",
            filters: pull_request,
            // The head ref and the title are free text: not passed.
            parameters: vec![
                ("commit-sha", Source::Event("body.pull_request.head.sha")),
                ("pull-request", Source::Event("body.number")),
            ],
            labels: labels(Origin::PullRequest),
            entrypoint: VALIDATE_PR_ENTRYPOINT,
        },
    ]
}

/// A branch other than the one the pipeline deploys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{given}` is not the branch this pipeline deploys: only commits of `{configured}` (pipeline.github.branch) deploy; \
     open a pull request to validate another branch"
)]
pub struct OtherBranch {
    /// The branch asked for.
    pub given: String,
    /// The configured branch.
    pub configured: String,
}

/// Accepts `branch` only when it is the branch the pipeline deploys (what
/// `aphex trigger --branch` checks before submitting a run).
pub fn check_deploy_branch(config: &Config, branch: &str) -> Result<(), OtherBranch> {
    let configured = deploy_branch(config);
    let given = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    if given == configured {
        Ok(())
    } else {
        Err(OtherBranch {
            given: branch.to_owned(),
            configured,
        })
    }
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
/// are, `null` as empty, integers as written, other numbers in their
/// shortest decimal form (`1.0` is `1`), everything else as its JSON text.
pub fn as_gjson_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) if n.is_f64() => n.as_f64().map(|f| f.to_string()).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Why an event fails a [`Filter`]: one phrase naming the path, as the
/// simulator reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The path is not in the event.
    #[error("`{path}` is absent")]
    Absent {
        /// gjson path in the event.
        path: &'static str,
    },
    /// The value is none of the accepted ones.
    #[error("`{path}` is `{value}`, not {}", quoted_list(.accepted))]
    NotOneOf {
        /// gjson path in the event.
        path: &'static str,
        /// The value found.
        value: String,
        /// The accepted values.
        accepted: Vec<String>,
    },
    /// The value is the rejected one.
    #[error("`{path}` is `{value}`")]
    Rejected {
        /// gjson path in the event.
        path: &'static str,
        /// The value found (the rejected one).
        value: String,
    },
    /// Two values that must be equal differ.
    #[error("`{left}` (`{left_value}`) differs from `{right}` (`{right_value}`)")]
    Differ {
        /// First path.
        left: &'static str,
        /// Its value.
        left_value: String,
        /// Second path.
        right: &'static str,
        /// Its value.
        right_value: String,
    },
    /// One of two paths that must be equal is not in the event.
    #[error("`{left}` or `{right}` is absent")]
    EitherAbsent {
        /// First path.
        left: &'static str,
        /// Second path.
        right: &'static str,
    },
    /// The value is not the accepted one, even ignoring case.
    #[error("`{path}` is `{value}`, not `{accepted}`")]
    NotEqual {
        /// gjson path in the event.
        path: &'static str,
        /// The value found.
        value: String,
        /// The accepted value.
        accepted: String,
    },
    /// The text contains a rejected substring (the text itself is not
    /// repeated: it is free text).
    #[error("`{path}` contains `{needle}`")]
    Contains {
        /// gjson path in the event.
        path: &'static str,
        /// The rejected substring found.
        needle: String,
    },
    /// The value is one that is ignored.
    #[error("`{path}` is `{value}`, which {ignored_by} ignores")]
    Ignored {
        /// gjson path in the event.
        path: &'static str,
        /// The rejected value, as configured.
        value: String,
        /// Where the rejected values come from.
        ignored_by: &'static str,
    },
    /// The value does not have the shape a parameter needs.
    #[error("`{path}` is not {}", .shape.describe())]
    Unshaped {
        /// gjson path in the event.
        path: &'static str,
        /// What it must look like.
        shape: Shape,
    },
}

impl Filter {
    /// Whether `event` passes this filter, and if not, why.
    pub fn evaluate(&self, event: &Value) -> Result<(), Refusal> {
        let found = |path: &'static str| lookup(event, path).ok_or(Refusal::Absent { path });
        match self {
            Filter::OneOf { path, values } => {
                let s = as_gjson_string(found(path)?);
                if values.contains(&s) {
                    Ok(())
                } else {
                    Err(Refusal::NotOneOf {
                        path,
                        value: s,
                        accepted: values.clone(),
                    })
                }
            }
            Filter::NotEqual { path, value } => {
                if as_gjson_string(found(path)?) == *value {
                    Err(Refusal::Rejected {
                        path,
                        value: value.clone(),
                    })
                } else {
                    Ok(())
                }
            }
            Filter::SameValue { left, right } => match (lookup(event, left), lookup(event, right)) {
                (Some(l), Some(r)) if l == r => Ok(()),
                (Some(l), Some(r)) => Err(Refusal::Differ {
                    left,
                    left_value: as_gjson_string(l),
                    right,
                    right_value: as_gjson_string(r),
                }),
                _ => Err(Refusal::EitherAbsent { left, right }),
            },
            Filter::EqualsIgnoringCase { path, value } => {
                let s = as_gjson_string(found(path)?);
                if s.eq_ignore_ascii_case(value) {
                    Ok(())
                } else {
                    Err(Refusal::NotEqual {
                        path,
                        value: s,
                        accepted: value.clone(),
                    })
                }
            }
            Filter::ContainsNone { path, needles } => {
                let s = as_gjson_string(found(path)?);
                match needles.iter().find(|n| s.contains(n.as_str())) {
                    Some(n) => Err(Refusal::Contains {
                        path,
                        needle: n.clone(),
                    }),
                    None => Ok(()),
                }
            }
            Filter::NoneIgnoringCase { path, values, source } => {
                let s = as_gjson_string(found(path)?);
                match values.iter().find(|x| x.eq_ignore_ascii_case(&s)) {
                    Some(x) => Err(Refusal::Ignored {
                        path,
                        value: x.clone(),
                        ignored_by: source,
                    }),
                    None => Ok(()),
                }
            }
            Filter::Shaped { path, shape } => {
                if shape.accepts(&as_gjson_string(found(path)?)) {
                    Ok(())
                } else {
                    Err(Refusal::Unshaped { path, shape: *shape })
                }
            }
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

/// `s` escaped for RE2 with each ASCII letter as a class of both cases
/// (`[aA]`): exactly ASCII case-insensitive in every engine, where `(?i)`
/// would also fold a few non-ASCII letters (the Kelvin sign).
fn ascii_caseless(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 4);
    for c in s.chars() {
        if c.is_ascii_alphabetic() {
            out.push('[');
            out.push(c.to_ascii_lowercase());
            out.push(c.to_ascii_uppercase());
            out.push(']');
        } else {
            out.push_str(&regex_escape(&c.to_string()));
        }
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
            Filter::EqualsIgnoringCase { path, value } => data.push(json!({
                "path": path,
                "type": "string",
                "value": [format!("^{}$", ascii_caseless(value))],
            })),
            Filter::ContainsNone { path, needles } => {
                let any: Vec<String> = needles.iter().map(|n| regex_escape(n)).collect();
                data.push(json!({
                    "path": path,
                    "type": "string",
                    "comparator": "!=",
                    "value": [any.join("|")],
                }))
            }
            Filter::NoneIgnoringCase { path, values, .. } => {
                let any: Vec<String> = values.iter().map(|v| ascii_caseless(v)).collect();
                data.push(json!({
                    "path": path,
                    "type": "string",
                    "comparator": "!=",
                    "value": [format!("^(?:{})$", any.join("|"))],
                }))
            }
            Filter::Shaped { path, shape } => data.push(json!({
                "path": path,
                "type": "string",
                "value": [shape.regex()],
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
    fn only_the_configured_branch_may_be_triggered() {
        let config = aphex_config::load_str(
            "c.yaml",
            "version: \"1.0\"\npipeline: { github: { owner: o, repo: r, branch: release } }\n\
             build: { commands: [make] }\nenvironments:\n  - { name: dev, region: us-east-1, account: \"123456789012\", stacks: [{ name: A, path: a.ts }] }\n",
        )
        .unwrap();
        assert_eq!(check_deploy_branch(&config, "release"), Ok(()));
        assert_eq!(check_deploy_branch(&config, "refs/heads/release"), Ok(()));
        let err = check_deploy_branch(&config, "feature").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`feature` is not the branch this pipeline deploys: only commits of `release` (pipeline.github.branch) deploy; \
             open a pull request to validate another branch"
        );
        assert!(check_deploy_branch(&config, "--upload-pack=x").is_err());
    }

    #[test]
    fn a_login_is_what_github_allows_and_a_label_may_hold() {
        let re = regex::Regex::new(Shape::Login.regex()).unwrap();
        for (login, ok) in [
            ("octocat", true),
            ("Octo-Cat-9", true),
            ("a", true),
            (&*"a".repeat(39), true),
            (&*"a".repeat(40), false),
            ("-octocat", false),
            ("octocat-", false),
            ("dependabot[bot]", false),
            ("jane.doe", false),
            ("{{workflow.name}}", false),
            ("", false),
        ] {
            assert_eq!(Shape::Login.accepts(login), ok, "{login}");
            assert_eq!(re.is_match(login), ok, "the Sensor's regex agrees on {login}");
        }
        let event = json!({"body": {"sender": {"login": "dependabot[bot]"}, "n": 7}});
        let checked = |path| {
            Source::Checked {
                path,
                shape: Shape::Login,
            }
            .value(&event)
        };
        assert_eq!(checked("body.sender.login"), "");
        assert_eq!(checked("body.n"), "", "a number is not a login");
        assert_eq!(checked("body.absent"), "");
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
