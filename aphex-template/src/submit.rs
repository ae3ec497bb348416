//! The Workflows that start a run, and the labels that say how each one
//! started: the Sensor's (a push, a pull request), `aphex trigger`'s (by
//! hand) and a self-restart's ([`restart_workflow`], one per commit). A
//! Workflow submitted by hand or by a restart is the Sensor's push Workflow
//! ([`crate::events::workflow_for`]) with the commit filled in, so it
//! carries exactly the parameters a push would.
//!
//! The names that become labels or approval records are checked here, as
//! the Sensor checks a GitHub login: a label holds `[A-Za-z0-9._-]` only,
//! and a name Argo could read as an expression never reaches a Workflow.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::events::workflow_for;
use crate::triggers::{Shape, TriggerKind, rules};

/// The label saying how a run started ([`Origin`]).
pub const TRIGGER_LABEL: &str = "aphex.dev/trigger";
/// The label naming who started a run: the GitHub login of the event's
/// sender, or the person who ran `aphex trigger` (empty when unknown).
pub const SENDER_LABEL: &str = "aphex.dev/sender";
/// The label naming the commit a restart runs (a full SHA, a valid label
/// value): at most one restart per commit is found by it.
pub const COMMIT_LABEL: &str = "aphex.dev/commit";
/// The annotation naming the run (Workflow) a restart took over from.
pub const RESTART_OF_ANNOTATION: &str = "aphex.dev/restart-of";
/// The approval gate's output parameter naming who approved (or rejected).
pub const APPROVED_BY: &str = "approved-by";
/// The name of environment `env`'s risk gate: the suspend a
/// `deploy-<env>` stopped at a risky change set waits at (the `risk`
/// task of its `gated-deploy` DAG, which `aphex approve` and `aphex
/// status` show by this name).
pub fn risk_gate_task(env: &str) -> String {
    format!("risk-{env}")
}

/// How a run started: the value of [`TRIGGER_LABEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A push to the deployed branch (the Sensor).
    Push,
    /// A pull request opened or updated (the Sensor).
    PullRequest,
    /// `aphex trigger`.
    Manual,
    /// The pipeline restarting itself after it changed.
    Restart,
}

impl Origin {
    /// The label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Origin::Push => "push",
            Origin::PullRequest => "pull-request",
            Origin::Manual => "manual",
            Origin::Restart => "restart",
        }
    }

    /// The origin a label value names; anything else (no label, a value
    /// set by hand) is a person's: a Workflow submitted without the label
    /// always deploys.
    pub fn from_label(value: Option<&str>) -> Origin {
        [Origin::Push, Origin::PullRequest, Origin::Manual, Origin::Restart]
            .into_iter()
            .find(|o| value == Some(o.as_label()))
            .unwrap_or(Origin::Manual)
    }

    /// The origin a Workflow's labels name, given as the JSON object Argo
    /// passes (`{{workflow.labels.json}}`); absent or unreadable: a person's.
    pub fn from_labels_json(labels: Option<&str>) -> Origin {
        Origin::from_label(label(labels, TRIGGER_LABEL).as_deref())
    }
}

/// Label `key` of a Workflow's labels given as the JSON object Argo passes
/// (`{{workflow.labels.json}}`); absent or unreadable: none.
pub fn label(labels: Option<&str>, key: &str) -> Option<String> {
    let labels: Value = serde_json::from_str(labels?).ok()?;
    Some(labels.get(key)?.as_str()?.to_owned())
}

/// A name that cannot be used where it was meant to go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` cannot be {what}: {rule}")]
pub struct BadName {
    /// The name given.
    pub name: String,
    /// Where it was to go.
    pub what: &'static str,
    /// What a usable name looks like.
    pub rule: &'static str,
}

/// Accepts `name` as the sender label of a run started by hand: a label
/// value of at most 63 characters, ASCII letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit (GitHub's logins are a subset).
pub fn check_sender(name: &str) -> Result<(), BadName> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    ok.then_some(()).ok_or_else(|| BadName {
        name: name.to_owned(),
        what: "the sender of a run (a label)",
        rule: "use at most 63 ASCII letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
    })
}

/// Accepts `name` as who approved a deploy: at most 253 ASCII letters,
/// digits, `@`, `.`, `_` and `-` (a login or an e-mail address), never
/// starting with `-`.
pub fn check_approver(name: &str) -> Result<(), BadName> {
    let b = name.as_bytes();
    let ok = (1..=253).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'@' | b'.' | b'_' | b'-'))
        && b[0] != b'-';
    ok.then_some(()).ok_or_else(|| BadName {
        name: name.to_owned(),
        what: "the approver",
        rule: "use ASCII letters, digits, `@`, `.`, `_` and `-` (not first), at most 253",
    })
}

/// The Workflow `aphex trigger` submits: the Sensor's push Workflow for
/// `commit` (a 40-hex SHA, checked by the caller), labelled as started by
/// hand by `sender` ([`check_sender`]).
pub fn manual_workflow(config: &Config, commit: &str, sender: &str) -> Value {
    started_workflow(config, commit, Origin::Manual, sender)
}

/// The Sensor's push Workflow for `commit`, labelled with `origin` and
/// `sender` (empty: unknown).
pub fn started_workflow(config: &Config, commit: &str, origin: Origin, sender: &str) -> Value {
    debug_assert!(Shape::CommitSha.accepts(commit), "a checked commit SHA");
    let rule = rules(config)
        .into_iter()
        .find(|r| r.kind == TriggerKind::Deploy)
        .expect("a deploy rule always exists");
    let mut workflow = workflow_for(config, &rule);
    for p in workflow["spec"]["arguments"]["parameters"]
        .as_array_mut()
        .expect("workflow_for lists the parameters")
    {
        if p["name"] == "commit-sha" {
            p["value"] = json!(commit);
        }
    }
    let labels = &mut workflow["metadata"]["labels"];
    labels[TRIGGER_LABEL] = json!(origin.as_label());
    labels[SENDER_LABEL] = json!(sender);
    workflow
}

/// The name of the restart of run `restarts` at `commit`: one name per
/// run, so the API server itself refuses a second restart of that run
/// (409), while a later run of the same commit (a rollback to it after
/// another commit changed the topology) gets a name of its own. The commit
/// shows in it for people; the run is a hash. At most 40 + 9 + 7 + 1 + 5 =
/// 62 characters: a label value, as Argo needs of a Workflow's name.
pub fn restart_name(config: &Config, commit: &str, restarts: &str) -> String {
    use sha2::{Digest, Sha256};
    let run = hex::encode(Sha256::digest(restarts.as_bytes()));
    format!(
        "{}-restart-{}-{}",
        config.pipeline_name(),
        &commit[..7],
        &run[..5]
    )
}

/// Whether a Workflow has finished: Argo's `status.phase` is `Succeeded`,
/// `Failed` or `Error`. A finished restart no longer stands for its commit:
/// a later run of that commit that changes the topology restarts anew.
pub fn has_finished(workflow: &Value) -> bool {
    matches!(
        workflow["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Error")
    )
}

/// The Workflow the pipeline stage submits when it changed the topology:
/// the Sensor's push Workflow for `commit` (checked by the caller),
/// labelled as a restart ([`Origin::Restart`]) of that commit
/// ([`COMMIT_LABEL`]), named by [`restart_name`] and annotated with the run
/// it restarts (`restarts`, a Workflow name), started by that run's
/// `sender` when it is one a label may hold ([`check_sender`]; else unknown).
pub fn restart_workflow(config: &Config, commit: &str, restarts: &str, sender: Option<&str>) -> Value {
    let sender = sender.filter(|s| check_sender(s).is_ok()).unwrap_or_default();
    let mut workflow = started_workflow(config, commit, Origin::Restart, sender);
    let metadata = workflow["metadata"]
        .as_object_mut()
        .expect("workflow_for writes metadata");
    metadata.remove("generateName");
    metadata.insert("name".to_owned(), json!(restart_name(config, commit, restarts)));
    metadata.insert("annotations".to_owned(), json!({RESTART_OF_ANNOTATION: restarts}));
    workflow["metadata"]["labels"][COMMIT_LABEL] = json!(commit);
    workflow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflows_labels_name_its_origin_and_anything_else_is_a_persons() {
        let cases = [
            (Some(r#"{"aphex.dev/trigger":"push","app":"x"}"#), Origin::Push),
            (Some(r#"{"aphex.dev/trigger":"restart"}"#), Origin::Restart),
            (
                Some(r#"{"aphex.dev/trigger":"pull-request"}"#),
                Origin::PullRequest,
            ),
            (Some(r#"{"aphex.dev/trigger":"manual"}"#), Origin::Manual),
            (Some(r#"{"aphex.dev/trigger":"somebody-else"}"#), Origin::Manual),
            (Some(r#"{"aphex.dev/trigger":7}"#), Origin::Manual),
            (Some(r#"{"app":"x"}"#), Origin::Manual),
            (Some("not json"), Origin::Manual),
            (None, Origin::Manual),
        ];
        for (labels, want) in cases {
            assert_eq!(Origin::from_labels_json(labels), want, "labels {labels:?}");
        }
        assert_eq!(
            label(Some(r#"{"aphex.dev/sender":"octocat"}"#), SENDER_LABEL).as_deref(),
            Some("octocat")
        );
    }

    #[test]
    fn a_restart_keeps_its_runs_sender_only_when_a_label_may_hold_it() {
        let config = aphex_config::load_str(
            "aphex-config.yaml",
            "version: \"1.0\"\npipeline: { name: shop }\nbuild: { commands: [\"true\"] }\nenvironments:\n  - { name: dev, region: us-east-1, account: \"123456789012\", stacks: [{ name: A, path: a.ts }] }\n",
        )
        .unwrap();
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let sender = |given| {
            restart_workflow(&config, sha, "shop-x7k2p", given)["metadata"]["labels"][SENDER_LABEL].clone()
        };
        assert_eq!(sender(Some("octocat")), json!("octocat"));
        assert_eq!(sender(Some("{{workflow.name}}")), json!(""));
        assert_eq!(sender(None), json!(""));
    }

    #[test]
    fn senders_are_label_values_and_approvers_logins_or_addresses() {
        for ok in ["octocat", "jane.doe", "kubernetes-admin", "a_b", "x"] {
            assert_eq!(check_sender(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "x-",
            "jane@example.com",
            "arn:aws:iam::1:user/x",
            "{{x}}",
            &"a".repeat(64),
        ] {
            assert!(check_sender(bad).is_err(), "{bad}");
        }
        for ok in ["octocat", "jane.doe@example.com", "a_b-c"] {
            assert_eq!(check_approver(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-x", "a b", "{{workflow.name}}", "x;y", "ünï"] {
            assert!(check_approver(bad).is_err(), "{bad}");
        }
        let e = check_approver("a b").unwrap_err().to_string();
        assert!(e.starts_with("`a b` cannot be the approver: use ASCII"), "{e}");
    }
}
