//! The risk gates' classifier on recorded `DescribeChangeSet` answers
//! (`tests/fixtures/changesets/`, written as CloudFormation documents them,
//! with `IncludePropertyValues` contexts and details), and its properties.

use aphex_config::{Environment, GateAction, RiskGates};
use aphex_stages::risk::{
    ChangeAction, Replacement, ResourceChange, RiskKind, RiskyChange, StatefulTypes, Verdict,
    changes_from_json, classify, decide,
};
use proptest::prelude::*;
use serde_json::json;

fn fixture(stack: &str, name: &str) -> Vec<ResourceChange> {
    let path = format!("{}/tests/fixtures/changesets/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    changes_from_json(stack, &text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (logical id, kind, why) of each risky change, in order.
fn summary(risky: &[RiskyChange]) -> Vec<(&str, RiskKind, &str)> {
    risky
        .iter()
        .map(|r| (r.logical_id.as_str(), r.kind, r.why.as_str()))
        .collect()
}

#[test]
fn a_new_policy_with_a_star_action_and_a_new_managed_policy_broaden_iam() {
    let changes = fixture("App", "iam-wildcard.json");
    assert_eq!(changes.len(), 3, "every resource change is read");
    let risky = classify(&changes, &StatefulTypes::default());
    assert_eq!(
        summary(&risky),
        vec![
            (
                "HandlerServiceRoleDefaultPolicy5F1E",
                RiskKind::IamBroadening,
                "new IAM policy; adds \"*\" to Action"
            ),
            (
                "HandlerServiceRole9A1B",
                RiskKind::IamBroadening,
                "changed IAM role (ManagedPolicyArns)"
            ),
        ]
    );
    assert_eq!(risky[0].stack, "App");
    assert_eq!(risky[0].resource_type, "AWS::IAM::Policy");
    assert_eq!(
        risky[0].to_string(),
        "App HandlerServiceRoleDefaultPolicy5F1E (AWS::IAM::Policy): IAM broadening: new IAM policy; adds \"*\" to Action"
    );
}

#[test]
fn stateful_replacements_and_deletions_are_risky_and_stateless_ones_are_not() {
    // Two pages of one answer, as the deployer reads them.
    let mut changes = fixture("Data", "replacements-page1.json");
    changes.extend(fixture("Data", "replacements-page2.json"));
    let risky = classify(&changes, &StatefulTypes::default());
    assert_eq!(
        summary(&risky),
        vec![
            (
                "Orders6F1E2D",
                RiskKind::StatefulReplacement,
                "replaced (changing KeySchema) (policy action ReplaceAndDelete)"
            ),
            (
                "JobsQueue1F2E",
                RiskKind::StatefulReplacement,
                "deleted (policy action Delete)"
            ),
            (
                "Uploads9C8B",
                RiskKind::StatefulReplacement,
                "may be replaced (changing BucketName) (policy action ReplaceAndRetain)"
            ),
        ]
    );
}

#[test]
fn the_stateful_list_is_the_environments_own_when_it_names_one() {
    let mut changes = fixture("Data", "replacements-page1.json");
    changes.extend(fixture("Data", "replacements-page2.json"));
    let only_functions = StatefulTypes::new(["AWS::Lambda::Function"]);
    let risky = classify(&changes, &only_functions);
    assert_eq!(
        summary(&risky),
        vec![
            (
                "HandlerFn886C",
                RiskKind::StatefulReplacement,
                "replaced (changing FunctionName) (policy action ReplaceAndDelete)"
            ),
            (
                "OldFnLogs55",
                RiskKind::StatefulReplacement,
                "deleted (policy action Delete)"
            ),
        ]
    );
    let mut env = environment(None, None, false);
    env.risk_gates = Some(RiskGates {
        stateful_types: Some(vec!["AWS::Lambda::Function".to_owned()]),
        ..RiskGates::default()
    });
    assert_eq!(StatefulTypes::of(&env), only_functions);
    assert_eq!(
        StatefulTypes::of(&environment(None, None, false)),
        StatefulTypes::default()
    );
}

#[test]
fn resource_policies_broaden_iam_and_a_principal_star_is_named() {
    let risky = classify(
        &fixture("Data", "resource-policies.json"),
        &StatefulTypes::default(),
    );
    assert_eq!(
        summary(&risky),
        vec![
            (
                "UploadsPolicy3A4B",
                RiskKind::IamBroadening,
                "changed resource policy; adds \"*\" to Principal"
            ),
            // The key's rotation alone changes no policy.
            ("DataKey0C1D", RiskKind::IamBroadening, "changed KeyPolicy"),
        ]
    );
}

#[test]
fn without_property_values_a_new_policy_holder_is_assumed_to_set_its_policy() {
    let risky = classify(
        &fixture("App", "without-property-values.json"),
        &StatefulTypes::default(),
    );
    assert_eq!(
        summary(&risky),
        vec![
            ("WorkerRole11AA", RiskKind::IamBroadening, "new IAM role"),
            ("SecretsKey22BB", RiskKind::IamBroadening, "new KeyPolicy"),
            ("Repo33CC", RiskKind::IamBroadening, "new RepositoryPolicyText"),
        ],
        "a removed policy narrows access; a repository whose properties show no policy sets none"
    );
}

#[test]
fn a_deny_statement_with_a_star_grants_nothing() {
    let change = modify(
        "AWS::SNS::Topic",
        json!({"Properties": {}}),
        json!({"Properties": {"Policy": {"Statement": [{"Effect": "Deny", "Action": "*", "Principal": "*"}]}}}),
    );
    assert_eq!(classify(&[change], &StatefulTypes::default()), vec![]);
}

#[test]
fn a_policy_given_as_json_text_is_read_too() {
    // AWS::Logs::ResourcePolicy takes its document as a string.
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"es.amazonaws.com"},"Action":["logs:*"],"Resource":"*"}]}"#;
    let change = modify(
        "AWS::Logs::ResourcePolicy",
        json!({"Properties": {"PolicyDocument": "{}"}}),
        json!({"Properties": {"PolicyDocument": doc}}),
    );
    let risky = classify(&[change], &StatefulTypes::default());
    assert_eq!(
        summary(&risky),
        vec![(
            "Res",
            RiskKind::IamBroadening,
            "changed resource policy; adds \"*\" to Action"
        )]
    );
}

#[test]
fn a_recorded_answer_that_is_not_one_says_what_it_expected() {
    let err = changes_from_json("App", "[1, 2]").unwrap_err();
    assert!(
        err.to_string().contains("not a DescribeChangeSet answer"),
        "{err}"
    );
}

#[test]
fn deny_wins_and_approval_lifts_only_approve() {
    let risky = classify(&fixture("App", "iam-wildcard.json"), &StatefulTypes::default());
    let manual = environment(None, None, true);
    assert_eq!(decide(&risky, &manual, &[]), Verdict::Approve(risky.clone()));
    assert_eq!(decide(&risky, &manual, &risky), Verdict::Proceed);
    let automatic = environment(None, None, false);
    assert_eq!(decide(&risky, &automatic, &[]), Verdict::Proceed);
    let denying = environment(Some(GateAction::Deny), None, true);
    assert_eq!(decide(&risky, &denying, &risky), Verdict::Deny(risky.clone()));
    let replacement_only = environment(Some(GateAction::Allow), Some(GateAction::Deny), true);
    assert_eq!(decide(&risky, &replacement_only, &[]), Verdict::Proceed);
}

/// An approval covers what its gate listed: the stopped stack may make
/// those risky changes and no other (it changed between the pause and the
/// approved deploy); a stack after it, never listed, goes through.
#[test]
fn an_approval_covers_what_the_gate_listed_and_the_stacks_after_it() {
    let manual = environment(None, None, true);
    let change = |stack: &str, id: &str, why: &str| RiskyChange {
        stack: stack.to_owned(),
        logical_id: id.to_owned(),
        resource_type: "AWS::IAM::Policy".to_owned(),
        kind: RiskKind::IamBroadening,
        why: why.to_owned(),
    };
    let listed = vec![change("App", "Grant", "new IAM policy")];
    assert_eq!(decide(&listed, &manual, &listed), Verdict::Proceed);
    let grown = vec![
        change("App", "Grant", "new IAM policy"),
        change("App", "Admin", "new IAM policy; adds \"*\" to Action"),
    ];
    assert_eq!(
        decide(&grown, &manual, &listed),
        Verdict::Unapproved(vec![grown[1].clone()])
    );
    let worse = vec![change("App", "Grant", "new IAM policy; adds \"*\" to Action")];
    assert_eq!(
        decide(&worse, &manual, &listed),
        Verdict::Unapproved(worse.clone())
    );
    let after = vec![change("Audit", "Reader", "new IAM role")];
    assert_eq!(decide(&after, &manual, &listed), Verdict::Proceed);
}

fn environment(iam: Option<GateAction>, replacement: Option<GateAction>, manual: bool) -> Environment {
    let yaml = format!(
        "version: \"1.0\"\nbuild: {{commands: [x]}}\nenvironments:\n  - name: dev\n    region: us-east-1\n    account: \"123456789012\"\n{}    stacks: [{{name: App, path: lib/app.ts}}]\n",
        if manual { "    approval: manual\n" } else { "" }
    );
    let mut env = aphex_config::load_str("aphex-config.yaml", &yaml)
        .expect("valid")
        .environments
        .remove(0);
    if iam.is_some() || replacement.is_some() {
        env.risk_gates = Some(RiskGates {
            iam,
            replacement,
            ..RiskGates::default()
        });
    }
    env
}

fn modify(resource_type: &str, before: serde_json::Value, after: serde_json::Value) -> ResourceChange {
    ResourceChange {
        stack: "App".to_owned(),
        logical_id: "Res".to_owned(),
        physical_id: Some("res-1".to_owned()),
        resource_type: resource_type.to_owned(),
        action: ChangeAction::Modify,
        replacement: Some(Replacement::False),
        policy_action: None,
        scope: vec!["Properties".to_owned()],
        details: vec![],
        before: Some(before),
        after: Some(after),
    }
}

fn resource_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(aphex_config::DEFAULT_STATEFUL_TYPES).prop_map(str::to_owned),
        prop::sample::select(vec![
            "AWS::Lambda::Function",
            "AWS::SSM::Parameter",
            "AWS::SNS::Topic",
            "AWS::EC2::SecurityGroup",
            "AWS::StepFunctions::StateMachine",
        ])
        .prop_map(str::to_owned),
        "AWS::[A-Z][a-z]{2,8}::[A-Z][a-z]{2,8}",
    ]
}

fn statement() -> impl Strategy<Value = serde_json::Value> {
    (
        "[a-z]{2,6}:[A-Z][a-z]{2,8}",
        prop::bool::ANY,
        "arn:aws:iam::[0-9]{12}:role/[a-z]{1,8}",
    )
        .prop_map(|(action, list, principal)| {
            let action = if list { json!([action]) } else { json!(action) };
            json!({"Effect": "Allow", "Action": action, "Principal": {"AWS": principal}, "Resource": "*"})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property: a policy statement that gains a `*` action or principal is
    /// IAM broadening, in a resource of any type, however the policy sits
    /// among its properties.
    #[test]
    fn any_statement_gaining_a_star_broadens_iam(
        resource_type in resource_type(),
        statements in prop::collection::vec(statement(), 0..4),
        at in 0usize..4,
        principal in prop::bool::ANY,
        property in "[A-Z][a-zA-Z]{2,12}",
    ) {
        let before = json!({"Properties": {property.clone(): {"Statement": statements.clone()}}});
        let mut widened = statements.clone();
        let mut star = json!({"Effect": "Allow", "Action": "sqs:SendMessage", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}});
        let what = if principal { star["Principal"] = json!("*"); "Principal" } else { star["Action"] = json!("*"); "Action" };
        widened.insert(at.min(widened.len()), star);
        let after = json!({"Properties": {property: {"Statement": widened}}});
        let risky = classify(&[modify(&resource_type, before, after)], &StatefulTypes::default());
        let iam = risky.iter().find(|r| r.kind == RiskKind::IamBroadening);
        prop_assert!(iam.is_some_and(|r| r.why.contains(&format!("adds \"*\" to {what}"))), "{risky:?}");
    }

    /// Property: a resource's state is at risk exactly when its type is
    /// stateful and it is deleted, replaced or maybe replaced.
    #[test]
    fn stateful_risk_is_exactly_replacement_or_deletion_of_a_stateful_type(
        resource_type in resource_type(),
        action in prop::sample::select(vec!["Add", "Modify", "Remove", "Import", "Dynamic"]),
        replacement in prop::option::of(prop::sample::select(vec![Replacement::True, Replacement::False, Replacement::Conditional])),
    ) {
        let mut change = modify(&resource_type, json!({"Properties": {}}), json!({"Properties": {}}));
        change.action = ChangeAction::parse(action);
        change.replacement = replacement;
        let stateful = StatefulTypes::default();
        let risky = classify(&[change], &stateful);
        let at_risk = risky.iter().any(|r| r.kind == RiskKind::StatefulReplacement);
        let expected = stateful.contains(&resource_type)
            && (action == "Remove"
                || (action == "Modify" && matches!(replacement, Some(Replacement::True | Replacement::Conditional))));
        prop_assert_eq!(at_risk, expected);
    }

    /// Property: a gate never proceeds past a denied kind, approving lifts
    /// every `approve` and nothing else, and `allow` never stops.
    #[test]
    fn deny_is_final_and_approval_lifts_only_approve(
        iam in prop::sample::select(vec![GateAction::Allow, GateAction::Approve, GateAction::Deny]),
        replacement in prop::sample::select(vec![GateAction::Allow, GateAction::Approve, GateAction::Deny]),
        kinds in prop::collection::vec(prop::sample::select(vec![RiskKind::IamBroadening, RiskKind::StatefulReplacement]), 0..5),
        approved in prop::bool::ANY,
    ) {
        let env = environment(Some(iam), Some(replacement), false);
        let risky: Vec<RiskyChange> = kinds.iter().enumerate().map(|(i, kind)| RiskyChange {
            stack: "App".to_owned(),
            logical_id: format!("R{i}"),
            resource_type: "AWS::IAM::Role".to_owned(),
            kind: *kind,
            why: "new IAM role".to_owned(),
        }).collect();
        let action_of = |k: RiskKind| if k == RiskKind::IamBroadening { iam } else { replacement };
        let listing = if approved { risky.clone() } else { Vec::new() };
        let verdict = decide(&risky, &env, &listing);
        let any = |a: GateAction| kinds.iter().any(|k| action_of(*k) == a);
        match verdict {
            Verdict::Deny(denied) => {
                prop_assert!(any(GateAction::Deny));
                prop_assert!(denied.iter().all(|r| action_of(r.kind) == GateAction::Deny));
            }
            Verdict::Approve(listed) => {
                prop_assert!(!any(GateAction::Deny) && !approved);
                prop_assert_eq!(listed.len(), kinds.iter().filter(|k| action_of(**k) == GateAction::Approve).count());
            }
            Verdict::Proceed => prop_assert!(!any(GateAction::Deny) && (approved || !any(GateAction::Approve))),
            Verdict::Unapproved(unlisted) => prop_assert!(false, "all it listed was approved: {unlisted:?}"),
        }
    }

    /// Property: an approval of part of a stack's listing lets exactly the
    /// rest through as unapproved, and nothing when all of it was listed.
    #[test]
    fn what_the_gate_did_not_list_is_unapproved(
        count in 1usize..6,
        listed_mask in prop::collection::vec(prop::bool::ANY, 6),
    ) {
        let env = environment(None, None, true);
        let risky: Vec<RiskyChange> = (0..count).map(|i| RiskyChange {
            stack: "App".to_owned(),
            logical_id: format!("R{i}"),
            resource_type: "AWS::IAM::Role".to_owned(),
            kind: RiskKind::IamBroadening,
            why: "new IAM role".to_owned(),
        }).collect();
        let listed: Vec<RiskyChange> = risky.iter().zip(&listed_mask).filter(|(_, l)| **l).map(|(r, _)| r.clone()).collect();
        let unlisted: Vec<RiskyChange> = risky.iter().filter(|r| !listed.contains(r)).cloned().collect();
        let expected = if listed.is_empty() {
            Verdict::Approve(risky.clone())
        } else if unlisted.is_empty() {
            Verdict::Proceed
        } else {
            Verdict::Unapproved(unlisted)
        };
        prop_assert_eq!(decide(&risky, &env, &listed), expected);
    }
}
