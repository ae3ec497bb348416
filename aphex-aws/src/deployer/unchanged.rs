//! Skipping a stack this deploy would not change: when the deployed stack
//! is settled and whole (`CREATE_COMPLETE`, `UPDATE_COMPLETE`,
//! `IMPORT_COMPLETE`), and its template, parameters, tags and execution
//! role (when the stack shows one) equal what this deploy would send, no
//! change set is made. Creating
//! one only to find it empty costs two calls and a wait of seconds per
//! stack; the CDK CLI skips on the same grounds. Termination protection is
//! not part of a change set: a skipped stack still has it set.
//!
//! What is never skipped: a stack in any other state (a failed or
//! rolled-back update, `REVIEW_IN_PROGRESS`: a change set retries it), one
//! whose template cannot be read or is not JSON, one with an SSM-typed
//! parameter (its value may have changed in SSM; the CDK's
//! `BootstrapVersion`, marked `[cdk:skip]`, excepted), one with a `NoEcho`
//! parameter (the stack shows `****`), and any deploy with
//! [`DeployOptions::force`]. Notification ARNs are not compared: Aphex
//! sends none, and CloudFormation keeps a stack's own when none are sent.

use std::collections::BTreeMap;

use aphex_stages::ports::{DeployError, StackOutcome};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Stack, TemplateStage};
use serde_json::Value;

use super::DeployOptions;
use super::changeset::{StackInput, outputs_of, protect, status_of};
use crate::client::call_error;

/// The description marking an SSM-typed parameter whose change alone need
/// not deploy the stack (the CDK's `BootstrapVersion`).
const SSM_NO_INVALIDATE: &str = "[cdk:skip]";

/// The statuses a stack may be skipped in.
const SETTLED: [&str; 3] = ["CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"];

/// The stack as deployed, as far as a skip depends on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Deployed {
    pub(crate) status: String,
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) role_arn: Option<String>,
}

impl Deployed {
    pub(crate) fn of(stack: &Stack) -> Deployed {
        Deployed {
            status: status_of(stack).to_owned(),
            parameters: stack
                .parameters()
                .iter()
                .map(|p| {
                    (
                        p.parameter_key().unwrap_or_default().to_owned(),
                        p.parameter_value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            tags: stack
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            role_arn: stack.role_arn().map(str::to_owned),
        }
    }
}

/// Why a stack needs a change set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Change {
    #[error("the stack is in {0}, not a settled, successful state")]
    Status(String),
    #[error("the deployed template could not be read")]
    TemplateUnread,
    #[error("a template is not JSON, so the two cannot be compared")]
    NotJson,
    #[error("the template changed")]
    Template,
    #[error("parameter {0} is SSM-typed: its value in SSM may have changed")]
    SsmParameter(String),
    #[error("parameter {0} changed (or cannot be compared)")]
    Parameter(String),
    #[error("the tags changed")]
    Tags,
    #[error("the execution role changed")]
    Role,
}

/// Skips `stack` when nothing of `input` differs from it (see the module
/// documentation): sets its termination protection and returns its outcome,
/// `changed: false`. `None`: a change set is needed.
pub(crate) async fn skip_unchanged(
    cfn: &Client,
    input: &StackInput,
    stack: &Stack,
    options: &DeployOptions,
) -> Result<Option<StackOutcome>, DeployError> {
    let name = input.stack_name.as_str();
    if options.force {
        return Ok(None);
    }
    let deployed = Deployed::of(stack);
    // The status first: no template is read for a stack that cannot be skipped.
    let change = match status_change(&deployed) {
        Some(change) => Some(change),
        None => {
            let template = deployed_template(cfn, name).await;
            change_needed(input, &deployed, template.as_deref())
        }
    };
    if let Some(change) = change {
        tracing::info!(stack = name, "a change set is needed: {change}");
        return Ok(None);
    }
    protect(cfn, name, stack, input.termination_protection)
        .await
        .map_err(|e| DeployError {
            stack: name.to_owned(),
            message: e.to_string(),
            root_causes: vec![],
        })?;
    tracing::info!(
        stack = name,
        "unchanged: its template, parameters, tags and role equal the deployed stack's; no change set made"
    );
    Ok(Some(StackOutcome {
        stack_name: name.to_owned(),
        changed: false,
        outputs: outputs_of(stack),
    }))
}

/// The stack's template as deployed (the original, not the processed one);
/// `None` when it cannot be read, which only costs the skip.
async fn deployed_template(cfn: &Client, name: &str) -> Option<String> {
    match cfn
        .get_template()
        .stack_name(name)
        .template_stage(TemplateStage::Original)
        .send()
        .await
    {
        Ok(out) => out.template_body().map(str::to_owned),
        Err(err) => {
            tracing::warn!(
                stack = name,
                error = call_error("CloudFormation", "GetTemplate", &err),
                "the deployed template could not be read: deploying through a change set"
            );
            None
        }
    }
}

fn status_change(deployed: &Deployed) -> Option<Change> {
    (!SETTLED.contains(&deployed.status.as_str())).then(|| Change::Status(deployed.status.clone()))
}

/// Why `input` needs a change set against `deployed`, whose template is
/// `template`; `None` when it would change nothing.
pub(crate) fn change_needed(
    input: &StackInput,
    deployed: &Deployed,
    template: Option<&str>,
) -> Option<Change> {
    if let Some(change) = status_change(deployed) {
        return Some(change);
    }
    let Some(template) = template else {
        return Some(Change::TemplateUnread);
    };
    let (Ok(new), Ok(old)) = (
        serde_json::from_str::<Value>(&input.template_body),
        serde_json::from_str::<Value>(template),
    ) else {
        return Some(Change::NotJson);
    };
    // Parsed, so that a reformatting or a reordering of keys is no change.
    if new != old {
        return Some(Change::Template);
    }
    if let Some(change) = parameter_change(input, deployed, &new) {
        return Some(change);
    }
    if input.tags != deployed.tags {
        return Some(Change::Tags);
    }
    // No role sent keeps the stack's own; a role sent must be the one the
    // stack shows. A stack that shows none is not compared: the emulator
    // never shows one, and the CDK CLI compares no role at all.
    if let (Some(sent), Some(shown)) = (&input.execution_role_arn, &deployed.role_arn)
        && sent != shown
    {
        return Some(Change::Role);
    }
    None
}

/// Each parameter the template declares takes the value given, else its
/// `Default` (Aphex never asks for the previous value), and must equal the
/// deployed one.
fn parameter_change(input: &StackInput, deployed: &Deployed, template: &Value) -> Option<Change> {
    let empty = serde_json::Map::new();
    let declared = template
        .get("Parameters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(unknown) = input.parameters.keys().find(|k| !declared.contains_key(*k)) {
        // CloudFormation refuses it: let the change set say so.
        return Some(Change::Parameter(unknown.clone()));
    }
    for (key, formal) in declared {
        let kind = formal.get("Type").and_then(Value::as_str).unwrap_or_default();
        let description = formal
            .get("Description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.starts_with("AWS::SSM::Parameter::") && !description.contains(SSM_NO_INVALIDATE) {
            return Some(Change::SsmParameter(key.clone()));
        }
        let wanted = match input.parameters.get(key) {
            Some(value) => Some(value.clone()),
            None => formal.get("Default").and_then(scalar),
        };
        let noecho = formal.get("NoEcho").is_some_and(|v| v == true || v == "true");
        match (wanted, deployed.parameters.get(key)) {
            (Some(wanted), Some(have)) if !noecho && wanted == *have => {}
            _ => return Some(Change::Parameter(key.clone())),
        }
    }
    None
}

/// A parameter default as CloudFormation states it: strings as they are,
/// numbers and booleans in their JSON form.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployer::changeset::TemplateSource;
    use proptest::prelude::*;
    use serde_json::json;

    fn template() -> Value {
        json!({
            "Parameters": {
                "Greeting": { "Type": "String", "Default": "hello" },
                "Size": { "Type": "Number", "Default": 3 },
                "BootstrapVersion": {
                    "Type": "AWS::SSM::Parameter::Value<String>",
                    "Default": "/cdk-bootstrap/hnb659fds/version",
                    "Description": "Version of the CDK Bootstrap resources in this environment, automatically retrieved from SSM Parameter Store. [cdk:skip]"
                }
            },
            "Resources": { "P": { "Type": "AWS::SSM::Parameter", "Properties": { "Type": "String", "Value": "v" } } }
        })
    }

    fn input(template: &Value) -> StackInput {
        let body = serde_json::to_string_pretty(template).unwrap();
        StackInput {
            stack_name: "App".into(),
            template: TemplateSource::Body(body.clone()),
            template_body: body,
            parameters: BTreeMap::from([("Greeting".into(), "bonjour".into())]),
            tags: BTreeMap::from([("team".into(), "platform".into())]),
            execution_role_arn: Some("arn:aws:iam::1:role/exec".into()),
            termination_protection: false,
            description: "test".into(),
        }
    }

    /// The stack as deploying `input` left it.
    fn deployed() -> Deployed {
        Deployed {
            status: "UPDATE_COMPLETE".into(),
            parameters: BTreeMap::from([
                ("Greeting".into(), "bonjour".into()),
                ("Size".into(), "3".into()),
                (
                    "BootstrapVersion".into(),
                    "/cdk-bootstrap/hnb659fds/version".into(),
                ),
            ]),
            tags: BTreeMap::from([("team".into(), "platform".into())]),
            role_arn: Some("arn:aws:iam::1:role/exec".into()),
        }
    }

    fn compact(t: &Value) -> String {
        serde_json::to_string(t).unwrap()
    }

    #[test]
    fn the_same_stack_is_skipped_whatever_the_template_s_formatting() {
        let t = template();
        assert_eq!(change_needed(&input(&t), &deployed(), Some(&compact(&t))), None);
    }

    #[test]
    fn each_difference_needs_a_change_set() {
        let t = template();
        let body = compact(&t);
        let cases: Vec<(&str, StackInput, Deployed, Option<String>, Change)> = vec![
            (
                "a failed update",
                input(&t),
                Deployed {
                    status: "UPDATE_ROLLBACK_COMPLETE".into(),
                    ..deployed()
                },
                Some(body.clone()),
                Change::Status("UPDATE_ROLLBACK_COMPLETE".into()),
            ),
            (
                "review in progress",
                input(&t),
                Deployed {
                    status: "REVIEW_IN_PROGRESS".into(),
                    ..deployed()
                },
                Some(body.clone()),
                Change::Status("REVIEW_IN_PROGRESS".into()),
            ),
            (
                "template unread",
                input(&t),
                deployed(),
                None,
                Change::TemplateUnread,
            ),
            (
                "YAML deployed",
                input(&t),
                deployed(),
                Some("Resources: {}".into()),
                Change::NotJson,
            ),
            (
                "another template",
                input(&t),
                deployed(),
                Some(compact(&json!({ "Resources": {} }))),
                Change::Template,
            ),
            (
                "a parameter changed",
                StackInput {
                    parameters: BTreeMap::from([("Greeting".into(), "hola".into())]),
                    ..input(&t)
                },
                deployed(),
                Some(body.clone()),
                Change::Parameter("Greeting".into()),
            ),
            (
                "a parameter back to its default",
                StackInput {
                    parameters: BTreeMap::new(),
                    ..input(&t)
                },
                deployed(),
                Some(body.clone()),
                Change::Parameter("Greeting".into()),
            ),
            (
                "an undeclared parameter",
                StackInput {
                    parameters: BTreeMap::from([
                        ("Greeting".into(), "bonjour".into()),
                        ("Other".into(), "x".into()),
                    ]),
                    ..input(&t)
                },
                deployed(),
                Some(body.clone()),
                Change::Parameter("Other".into()),
            ),
            (
                "tags changed",
                StackInput {
                    tags: BTreeMap::new(),
                    ..input(&t)
                },
                deployed(),
                Some(body.clone()),
                Change::Tags,
            ),
            (
                "another role",
                StackInput {
                    execution_role_arn: Some("arn:aws:iam::1:role/other".into()),
                    ..input(&t)
                },
                deployed(),
                Some(body.clone()),
                Change::Role,
            ),
        ];
        for (what, input, deployed, template, want) in cases {
            assert_eq!(
                change_needed(&input, &deployed, template.as_deref()),
                Some(want),
                "{what}"
            );
        }
    }

    #[test]
    fn ssm_and_noecho_parameters_are_never_taken_as_unchanged() {
        let mut t = template();
        t["Parameters"]["Ami"] =
            json!({ "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", "Default": "/ami" });
        let mut d = deployed();
        d.parameters.insert("Ami".into(), "/ami".into());
        assert_eq!(
            change_needed(&input(&t), &d, Some(&compact(&t))),
            Some(Change::SsmParameter("Ami".into()))
        );
        let mut t = template();
        t["Parameters"]["Secret"] = json!({ "Type": "String", "NoEcho": true, "Default": "s" });
        let mut d = deployed();
        d.parameters.insert("Secret".into(), "****".into());
        assert_eq!(
            change_needed(&input(&t), &d, Some(&compact(&t))),
            Some(Change::Parameter("Secret".into()))
        );
    }

    #[test]
    fn a_role_is_compared_only_when_both_sides_name_one() {
        let t = template();
        let i = StackInput {
            execution_role_arn: None,
            ..input(&t)
        };
        assert_eq!(
            change_needed(&i, &deployed(), Some(&compact(&t))),
            None,
            "none sent"
        );
        let d = Deployed {
            role_arn: None,
            ..deployed()
        };
        assert_eq!(
            change_needed(&input(&t), &d, Some(&compact(&t))),
            None,
            "none shown"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Property: a stack is skipped only when every given parameter
        /// equals the deployed value, and always then.
        #[test]
        fn skipped_exactly_when_the_parameters_match(greeting in "[a-z]{0,6}", have in "[a-z]{0,6}") {
            let t = template();
            let i = StackInput {
                parameters: BTreeMap::from([("Greeting".into(), greeting.clone())]),
                ..input(&t)
            };
            let mut d = deployed();
            d.parameters.insert("Greeting".into(), have.clone());
            let skipped = change_needed(&i, &d, Some(&compact(&t))).is_none();
            prop_assert_eq!(skipped, greeting == have);
        }
    }
}
