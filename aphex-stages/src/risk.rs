//! Risk gates: what a stack's change set would do that a person should see
//! before it executes. Pure: the deployer turns CloudFormation's
//! `DescribeChangeSet` answer into [`ResourceChange`]s (or a recorded answer
//! is parsed with [`changes_from_json`]), [`classify`] finds the risky ones,
//! and [`decide`] applies an environment's `riskGates`.
//!
//! Two kinds of risk (docs/configuration.md):
//!
//! - **IAM broadening**: a new or changed `AWS::IAM::*` resource (policies,
//!   roles, users, groups, managed-policy attachments), a new or changed
//!   resource policy ([`RESOURCE_POLICY_TYPES`], [`POLICY_PROPERTIES`]), and
//!   any `*` action or principal a policy statement gains, in any resource
//!   (seen only when the change set was described with
//!   `IncludePropertyValues`).
//! - **Stateful replacement**: a resource of a stateful type
//!   ([`aphex_config::DEFAULT_STATEFUL_TYPES`], or the environment's own
//!   list) replaced (`Replacement` `True` or `Conditional`) or deleted.
//!
//! What a change says (logical ids, types, property values) comes from a
//! template built from a trusted commit, but it is still only printed
//! through the stage's redaction, never run or spliced into a manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aphex_config::{Environment, GateAction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Resource types that are themselves a resource policy: a new or changed
/// one can grant another principal access.
pub const RESOURCE_POLICY_TYPES: &[&str] = &[
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersionPermission",
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::Logs::ResourcePolicy",
    "AWS::Events::EventBusPolicy",
    "AWS::KMS::Grant",
    "AWS::S3Express::BucketPolicy",
    "AWS::DynamoDB::ResourcePolicy",
];

/// Properties that hold a resource policy inside a resource of another
/// kind (the key policy of a KMS key, a repository's policy, ...): setting
/// or changing one is IAM broadening.
pub const POLICY_PROPERTIES: &[(&str, &str)] = &[
    ("AWS::KMS::Key", "KeyPolicy"),
    ("AWS::ECR::Repository", "RepositoryPolicyText"),
    ("AWS::OpenSearchService::Domain", "AccessPolicies"),
    ("AWS::Elasticsearch::Domain", "AccessPolicies"),
    ("AWS::S3::AccessPoint", "Policy"),
    ("AWS::ApiGateway::RestApi", "Policy"),
    ("AWS::EFS::FileSystem", "FileSystemPolicy"),
    ("AWS::Backup::BackupVault", "AccessPolicy"),
    ("AWS::DynamoDB::Table", "ResourcePolicy"),
    ("AWS::Glue::Registry", "Policy"),
];

/// What CloudFormation will do to a resource (`Action`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeAction {
    /// A new resource.
    Add,
    /// An update, in place or by replacement.
    Modify,
    /// A deleted resource.
    Remove,
    /// An imported resource.
    Import,
    /// Decided only while executing (macros, modules).
    Dynamic,
    /// A value this version does not know, as CloudFormation wrote it.
    Other(String),
}

impl ChangeAction {
    /// Reads CloudFormation's word.
    pub fn parse(word: &str) -> ChangeAction {
        match word {
            "Add" => ChangeAction::Add,
            "Modify" => ChangeAction::Modify,
            "Remove" => ChangeAction::Remove,
            "Import" => ChangeAction::Import,
            "Dynamic" => ChangeAction::Dynamic,
            other => ChangeAction::Other(other.to_owned()),
        }
    }
}

/// Whether a `Modify` replaces the resource (`Replacement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Replacement {
    /// A new physical resource replaces the old one.
    True,
    /// Updated in place.
    False,
    /// Depends on a value known only while executing.
    Conditional,
}

impl Replacement {
    /// Reads CloudFormation's word (`None` for anything else).
    pub fn parse(word: &str) -> Option<Replacement> {
        match word {
            "True" => Some(Replacement::True),
            "False" => Some(Replacement::False),
            "Conditional" => Some(Replacement::Conditional),
            _ => None,
        }
    }
}

/// One attribute a `Modify` changes (a `ResourceChangeDetail`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeDetail {
    /// `Properties`, `Metadata`, `Tags`, ...
    pub attribute: String,
    /// The property's name, for `Properties`.
    pub name: Option<String>,
    /// `Never`, `Conditionally` or `Always`.
    pub requires_recreation: Option<String>,
    /// The value before (with `IncludePropertyValues`; JSON text for objects).
    pub before_value: Option<String>,
    /// The value after, likewise.
    pub after_value: Option<String>,
}

/// One resource change of a change set, as `DescribeChangeSet` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// The CloudFormation stack.
    pub stack: String,
    /// Logical id in the template.
    pub logical_id: String,
    /// Physical id, when the resource exists.
    pub physical_id: Option<String>,
    /// Resource type, e.g. `AWS::IAM::Role`.
    pub resource_type: String,
    /// What happens to it.
    pub action: ChangeAction,
    /// For a `Modify`: whether it is replaced.
    pub replacement: Option<Replacement>,
    /// What `DeletionPolicy`/`UpdateReplacePolicy` does to the old resource
    /// (`Delete`, `Retain`, `Snapshot`, `ReplaceAndRetain`, ...).
    pub policy_action: Option<String>,
    /// The attributes that change (`Properties`, `Tags`, ...).
    pub scope: Vec<String>,
    /// Each changing attribute.
    pub details: Vec<ChangeDetail>,
    /// The resource before, with `IncludePropertyValues` (parsed JSON).
    pub before: Option<Value>,
    /// The resource after, likewise.
    pub after: Option<Value>,
}

/// The two kinds of risk a gate checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RiskKind {
    /// Grants more access (`riskGates.iam`).
    IamBroadening,
    /// Replaces or deletes a stateful resource (`riskGates.replacement`).
    StatefulReplacement,
}

impl RiskKind {
    /// How a person reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::IamBroadening => "IAM broadening",
            RiskKind::StatefulReplacement => "stateful replacement",
        }
    }
    /// What the environment's gates do with this kind.
    pub fn gate(self, env: &Environment) -> GateAction {
        match self {
            RiskKind::IamBroadening => env.iam_gate(),
            RiskKind::StatefulReplacement => env.replacement_gate(),
        }
    }
    /// The `riskGates` key that sets it.
    pub fn key(self) -> &'static str {
        match self {
            RiskKind::IamBroadening => "iam",
            RiskKind::StatefulReplacement => "replacement",
        }
    }
}

/// A change a gate looks at: stack, resource, type, and why it is risky.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RiskyChange {
    /// The CloudFormation stack.
    pub stack: String,
    /// Logical id of the resource.
    pub logical_id: String,
    /// Its type.
    pub resource_type: String,
    /// Which kind of risk.
    pub kind: RiskKind,
    /// Why, in words (`new IAM role`, `adds "*" to Action`, ...).
    pub why: String,
}

impl fmt::Display for RiskyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}): {}: {}",
            self.stack,
            self.logical_id,
            self.resource_type,
            self.kind.as_str(),
            self.why
        )
    }
}

/// The stateful resource types a classification uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulTypes(BTreeSet<String>);

impl StatefulTypes {
    /// The types listed.
    pub fn new<S: AsRef<str>>(types: impl IntoIterator<Item = S>) -> Self {
        StatefulTypes(types.into_iter().map(|t| t.as_ref().to_owned()).collect())
    }
    /// The environment's list (`riskGates.statefulTypes`, else the defaults).
    pub fn of(env: &Environment) -> Self {
        StatefulTypes::new(env.stateful_types())
    }
    /// Whether `resource_type` is stateful.
    pub fn contains(&self, resource_type: &str) -> bool {
        self.0.contains(resource_type)
    }
}

impl Default for StatefulTypes {
    fn default() -> Self {
        StatefulTypes::new(aphex_config::DEFAULT_STATEFUL_TYPES)
    }
}

/// The risky changes among `changes`, in their order: at most one per
/// resource and kind, its reasons joined.
pub fn classify(changes: &[ResourceChange], stateful: &StatefulTypes) -> Vec<RiskyChange> {
    let mut risky = Vec::new();
    for change in changes {
        let iam = iam_reasons(change);
        if !iam.is_empty() {
            risky.push(risky_change(change, RiskKind::IamBroadening, &iam));
        }
        if let Some(why) = stateful_reason(change, stateful) {
            risky.push(risky_change(change, RiskKind::StatefulReplacement, &[why]));
        }
    }
    risky
}

fn risky_change(change: &ResourceChange, kind: RiskKind, reasons: &[String]) -> RiskyChange {
    RiskyChange {
        stack: change.stack.clone(),
        logical_id: change.logical_id.clone(),
        resource_type: change.resource_type.clone(),
        kind,
        why: reasons.join("; "),
    }
}

/// Why `change` broadens access, if it does: each reason once.
fn iam_reasons(change: &ResourceChange) -> Vec<String> {
    let mut reasons = Vec::new();
    let t = change.resource_type.as_str();
    let verb = match change.action {
        ChangeAction::Add | ChangeAction::Import => Some("new"),
        ChangeAction::Modify | ChangeAction::Dynamic => Some("changed"),
        ChangeAction::Remove | ChangeAction::Other(_) => None,
    };
    if let Some(verb) = verb {
        if let Some(what) = t.strip_prefix("AWS::IAM::") {
            let changed = changed_properties(change);
            let which = if verb == "changed" && !changed.is_empty() {
                format!(" ({})", changed.join(", "))
            } else {
                String::new()
            };
            reasons.push(format!("{verb} IAM {}{which}", iam_noun(what)));
        } else if RESOURCE_POLICY_TYPES.contains(&t) {
            reasons.push(format!("{verb} resource policy"));
        } else if let Some(property) = policy_property(t)
            && sets_property(change, property)
        {
            reasons.push(format!("{verb} {property}"));
        }
    }
    for (what, count) in added_wildcards(change) {
        let times = if count > 1 {
            format!(" ({count} statements)")
        } else {
            String::new()
        };
        reasons.push(format!("adds \"*\" to {what}{times}"));
    }
    reasons
}

/// `Role` -> `role`, `ManagedPolicy` -> `managed policy`.
fn iam_noun(what: &str) -> String {
    let mut noun = String::new();
    for (i, c) in what.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            noun.push(' ');
        }
        noun.push(c.to_ascii_lowercase());
    }
    noun
}

fn policy_property(resource_type: &str) -> Option<&'static str> {
    POLICY_PROPERTIES
        .iter()
        .find(|(t, _)| *t == resource_type)
        .map(|(_, p)| *p)
}

/// The properties a `Modify` changes, by name, each once.
fn changed_properties(change: &ResourceChange) -> Vec<&str> {
    let mut names: Vec<&str> = change
        .details
        .iter()
        .filter(|d| d.attribute == "Properties")
        .filter_map(|d| d.name.as_deref())
        .collect();
    names.dedup();
    names
}

/// Whether `change` sets or changes `property`: a `Modify` whose details
/// name it; an `Add` whose properties (with `IncludePropertyValues`) have
/// it, or, without property values, any `Add` (the policy cannot be seen,
/// so it is assumed).
fn sets_property(change: &ResourceChange, property: &str) -> bool {
    match change.action {
        ChangeAction::Add | ChangeAction::Import => match &change.after {
            Some(after) => properties(after).is_some_and(|p| p.get(property).is_some()),
            None => true,
        },
        _ => changed_properties(change).contains(&property),
    }
}

/// A context's `Properties` (CloudFormation wraps them), or the value itself.
fn properties(context: &Value) -> Option<&serde_json::Map<String, Value>> {
    match context.get("Properties") {
        Some(Value::Object(p)) => Some(p),
        _ => context.as_object(),
    }
}

/// The wildcards (`Action`, `Principal`) that policy statements have after
/// the change and did not have before, with how many more there are. From
/// the resource's contexts when described with property values, else from
/// the details' values.
fn added_wildcards(change: &ResourceChange) -> Vec<(&'static str, usize)> {
    let (before, after) = if change.before.is_some() || change.after.is_some() {
        (
            change.before.iter().cloned().collect::<Vec<_>>(),
            change.after.iter().cloned().collect::<Vec<_>>(),
        )
    } else {
        let parse = |v: &Option<String>| v.as_deref().map(parse_value);
        (
            change
                .details
                .iter()
                .filter_map(|d| parse(&d.before_value))
                .collect(),
            change
                .details
                .iter()
                .filter_map(|d| parse(&d.after_value))
                .collect(),
        )
    };
    if change.action == ChangeAction::Remove {
        return Vec::new();
    }
    let count = |docs: &[Value]| {
        let mut found = BTreeMap::new();
        for d in docs {
            wildcards(d, &mut found, 0);
        }
        found
    };
    let (before, after) = (count(&before), count(&after));
    after
        .into_iter()
        .filter_map(|(what, n)| {
            let had = before.get(what).copied().unwrap_or(0);
            (n > had).then_some((what, n - had))
        })
        .collect()
}

/// A detail's value: JSON when it is JSON, else the text as a string.
fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Deeper than any template nests a policy; keeps a hostile value bounded.
const MAX_DEPTH: usize = 64;

/// Counts, under `value`, the `Allow` statements whose `Action` or
/// `Principal` is a wildcard. A policy document given as JSON text (some
/// resources take a string) is read too.
fn wildcards(value: &Value, found: &mut BTreeMap<&'static str, usize>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(statements) = map.get("Statement") {
                let statements: Vec<&Value> = match statements {
                    Value::Array(items) => items.iter().collect(),
                    one => vec![one],
                };
                for s in statements {
                    statement_wildcards(s, found);
                }
            }
            for v in map.values() {
                wildcards(v, found, depth + 1);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| wildcards(v, found, depth + 1)),
        Value::String(text) if text.contains("Statement") && text.trim_start().starts_with('{') => {
            if let Ok(doc) = serde_json::from_str::<Value>(text) {
                wildcards(&doc, found, depth + 1);
            }
        }
        _ => {}
    }
}

fn statement_wildcards(statement: &Value, found: &mut BTreeMap<&'static str, usize>) {
    let allows = statement
        .get("Effect")
        .and_then(Value::as_str)
        .is_none_or(|e| e == "Allow");
    if !allows {
        return;
    }
    if statement
        .get("Action")
        .is_some_and(|a| any_text(a, is_wildcard_action))
    {
        *found.entry("Action").or_default() += 1;
    }
    if statement.get("NotAction").is_some() {
        // Allow everything but a few: as broad as it gets.
        *found.entry("NotAction").or_default() += 1;
    }
    let principal = statement.get("Principal").is_some_and(|p| match p {
        Value::Object(by_kind) => by_kind.values().any(|v| any_text(v, |t| t == "*")),
        other => any_text(other, |t| t == "*"),
    });
    if principal {
        *found.entry("Principal").or_default() += 1;
    }
}

/// `*`, or every action of a service (`s3:*`).
fn is_wildcard_action(action: &str) -> bool {
    action == "*" || action.split_once(':').is_some_and(|(_, a)| a == "*")
}

fn any_text(value: &Value, test: impl Fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => test(s),
        Value::Array(items) => items.iter().any(|v| v.as_str().is_some_and(&test)),
        _ => false,
    }
}

/// Why `change` loses state, if it does.
fn stateful_reason(change: &ResourceChange, stateful: &StatefulTypes) -> Option<String> {
    if !stateful.contains(&change.resource_type) {
        return None;
    }
    let what = match (&change.action, change.replacement) {
        (ChangeAction::Remove, _) => "deleted".to_owned(),
        (ChangeAction::Modify, Some(Replacement::True)) => {
            let because = recreating_properties(change);
            format!("replaced{because}")
        }
        (ChangeAction::Modify, Some(Replacement::Conditional)) => {
            let because = recreating_properties(change);
            format!("may be replaced{because}")
        }
        _ => return None,
    };
    Some(match change.policy_action.as_deref() {
        Some(policy) => format!("{what} (policy action {policy})"),
        None => what,
    })
}

/// ` (changing KeySchema, TableName)`: the properties that recreate it.
fn recreating_properties(change: &ResourceChange) -> String {
    let mut names: Vec<&str> = change
        .details
        .iter()
        .filter(|d| matches!(d.requires_recreation.as_deref(), Some("Always" | "Conditionally")))
        .filter_map(|d| d.name.as_deref())
        .collect();
    names.dedup();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (changing {})", names.join(", "))
    }
}

/// What a gate decided about one stack's change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Execute it: nothing risky, or every risk allowed or approved.
    Proceed,
    /// Stop until a person approves these changes.
    Approve(Vec<RiskyChange>),
    /// Fail the environment: these changes are denied.
    Deny(Vec<RiskyChange>),
    /// Fail the environment: the stack its gate stopped now makes these
    /// risky changes, which the gate did not list and so nobody approved.
    Unapproved(Vec<RiskyChange>),
}

/// Applies `env`'s gates to one stack's `risky` changes: a denied change
/// fails the environment (approving cannot lift a `deny`); else a change
/// to approve pauses, unless a person `approved` this run's risks in `env`
/// (what its gate listed; empty: nobody did yet). An approval covers the
/// stack the gate stopped only as far as the gate listed it: a risky
/// change of that stack that was not listed (the stack changed between
/// the pause and the approved deploy) is [`Verdict::Unapproved`]. The
/// stacks after it were never listed: the approval covers their risks for
/// this run.
pub fn decide(risky: &[RiskyChange], env: &Environment, approved: &[RiskyChange]) -> Verdict {
    let with = |action: GateAction| -> Vec<RiskyChange> {
        risky
            .iter()
            .filter(|r| r.kind.gate(env) == action)
            .cloned()
            .collect()
    };
    let denied = with(GateAction::Deny);
    if !denied.is_empty() {
        return Verdict::Deny(denied);
    }
    let to_approve = with(GateAction::Approve);
    if to_approve.is_empty() {
        return Verdict::Proceed;
    }
    if approved.is_empty() {
        return Verdict::Approve(to_approve);
    }
    let listed = |c: &RiskyChange| approved.iter().any(|a| a.stack == c.stack);
    let unlisted: Vec<RiskyChange> = to_approve
        .into_iter()
        .filter(|c| listed(c) && !approved.contains(c))
        .collect();
    if unlisted.is_empty() {
        Verdict::Proceed
    } else {
        Verdict::Unapproved(unlisted)
    }
}

/// A recorded `DescribeChangeSet` answer that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a DescribeChangeSet answer ({{\"Changes\": [...]}}): {source}")]
pub struct ChangeSetJsonError {
    #[from]
    source: serde_json::Error,
}

/// The resource changes of a `DescribeChangeSet` answer as CloudFormation
/// writes it in JSON (`aws cloudformation describe-change-set`), for stack
/// `stack`; changes that are not of a resource (hooks) are left out.
pub fn changes_from_json(stack: &str, text: &str) -> Result<Vec<ResourceChange>, ChangeSetJsonError> {
    let answer: wire::Answer = serde_json::from_str(text)?;
    Ok(answer
        .changes
        .into_iter()
        .filter_map(|c| c.resource_change)
        .map(|r| r.into_change(stack))
        .collect())
}

/// CloudFormation's JSON shapes, read leniently: every field optional.
mod wire {
    use serde::Deserialize;

    use super::{ChangeAction, ChangeDetail, Replacement, ResourceChange, parse_context};

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Answer {
        #[serde(default)]
        pub(super) changes: Vec<Change>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Change {
        pub(super) resource_change: Option<Resource>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub(super) struct Resource {
        action: Option<String>,
        logical_resource_id: Option<String>,
        physical_resource_id: Option<String>,
        resource_type: Option<String>,
        replacement: Option<String>,
        policy_action: Option<String>,
        #[serde(default)]
        scope: Vec<String>,
        #[serde(default)]
        details: Vec<Detail>,
        before_context: Option<String>,
        after_context: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Detail {
        target: Option<Target>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Target {
        attribute: Option<String>,
        name: Option<String>,
        requires_recreation: Option<String>,
        before_value: Option<String>,
        after_value: Option<String>,
    }

    impl Resource {
        pub(super) fn into_change(self, stack: &str) -> ResourceChange {
            ResourceChange {
                stack: stack.to_owned(),
                logical_id: self.logical_resource_id.unwrap_or_default(),
                physical_id: self.physical_resource_id,
                resource_type: self.resource_type.unwrap_or_default(),
                action: ChangeAction::parse(self.action.as_deref().unwrap_or_default()),
                replacement: self.replacement.as_deref().and_then(Replacement::parse),
                policy_action: self.policy_action,
                scope: self.scope,
                details: self
                    .details
                    .into_iter()
                    .filter_map(|d| d.target)
                    .map(|t| ChangeDetail {
                        attribute: t.attribute.unwrap_or_default(),
                        name: t.name,
                        requires_recreation: t.requires_recreation,
                        before_value: t.before_value,
                        after_value: t.after_value,
                    })
                    .collect(),
                before: self.before_context.as_deref().and_then(parse_context),
                after: self.after_context.as_deref().and_then(parse_context),
            }
        }
    }
}

/// A `BeforeContext`/`AfterContext`: JSON text of the resource; text that
/// is not JSON is left out (the classification then uses the details).
pub fn parse_context(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}
