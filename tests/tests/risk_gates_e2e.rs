//! Risk gates through the real `aphex run --local` against the emulator: a
//! stack whose new commit adds a policy with `"Action": "*"` stops at the
//! environment's gate before its change set executes (nothing of it
//! deployed, no change set left), an unrelated change does not, `--yes`
//! does not pass the gate, `--allow-risk` does, and `deny` holds even then.
//! The stack's assembly is written by hand (the synth copies it), so the
//! test needs no CDK.

use aphex_tests::e2e::AppRepo;
use aphex_tests::{DEFAULT_ACCOUNT, REGION, emulator, unique_name};
use serde_json::json;

/// The config: one manual environment whose gates are the defaults
/// (`approve` both), plus `extra` lines under it.
fn config(extra: &str) -> String {
    format!(
        r#"version: "1.0"
build:
  commands: ["true"]
environments:
  - name: dev
    region: {REGION}
    account: "{DEFAULT_ACCOUNT}"
    approval: manual
    synth: cp -R assembly/. "$CDK_OUTDIR"
{extra}    stacks:
      - {{ name: App, path: assembly/manifest.json }}
"#
    )
}

/// The assembly of stack `stack_name`: a role and a parameter holding
/// `value`, and with `wide_policy` a policy allowing every action on it.
fn assembly(stack_name: &str, value: &str, wide_policy: bool) -> Vec<(&'static str, String)> {
    let mut resources = json!({
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": { "Service": "lambda.amazonaws.com" } }]
                }
            }
        },
        "Greeting": {
            "Type": "AWS::SSM::Parameter",
            "Properties": { "Type": "String", "Value": value }
        }
    });
    if wide_policy {
        resources["Everything"] = json!({
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "everything",
                "Roles": [{ "Ref": "Role" }],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }]
                }
            }
        });
    }
    let manifest = json!({
        "version": "55.0.0",
        "artifacts": {
            "App": {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": { "templateFile": "App.template.json", "stackName": stack_name, "validateOnSynth": false }
            }
        }
    });
    vec![
        ("assembly/manifest.json", manifest.to_string()),
        (
            "assembly/App.template.json",
            json!({ "Resources": resources }).to_string(),
        ),
    ]
}

async fn resources(stack: &str) -> Vec<String> {
    let cfn = aws_sdk_cloudformation::Client::new(&emulator().aws_config().await);
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .expect("describing the stack's resources");
    let mut ids: Vec<String> = out
        .stack_resources()
        .iter()
        .filter_map(|r| r.logical_resource_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

async fn change_sets(stack: &str) -> usize {
    let cfn = aws_sdk_cloudformation::Client::new(&emulator().aws_config().await);
    let out = cfn
        .list_change_sets()
        .stack_name(stack)
        .send()
        .await
        .expect("listing the stack's change sets");
    out.summaries().len()
}

fn with_config(extra: &str, mut files: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    files.push(("aphex-config.yaml", config(extra)));
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_allowing_every_action_stops_at_the_gate_and_an_unrelated_change_does_not() {
    let stack = unique_name("aphex-risk");
    let mut repo = AppRepo::from_files(&with_config("", assembly(&stack, "v1", false)));

    // The first deploy creates a role: IAM broadening too. --yes approves
    // the manual gate, not the risk gate, and nobody can be asked.
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let text = run.text();
    assert!(
        text.contains("stopped at a risk gate") && text.contains("new IAM role"),
        "{text}"
    );
    assert!(text.contains("pass --allow-risk"), "{text}");
    let run = repo.aphex(&["run", "--local", "--yes", "--allow-risk"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert_eq!(resources(&stack).await, ["Greeting", "Role"]);

    // An unrelated change (a parameter's value) passes without a gate.
    repo.commit_files(&assembly(&stack, "v2", false), "a new greeting");
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(!run.text().contains("risk gate"), "{}", run.text());

    // The policy with "Action": "*" stops before its change set executes.
    repo.commit_files(&assembly(&stack, "v2", true), "a policy allowing everything");
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let text = run.text();
    assert!(
        text.contains(&format!(
            "{stack} Everything (AWS::IAM::Policy): IAM broadening: new IAM policy"
        )),
        "each risky change names stack, resource, type and why:\n{text}"
    );
    assert_eq!(
        resources(&stack).await,
        ["Greeting", "Role"],
        "nothing of it deployed"
    );
    assert_eq!(
        change_sets(&stack).await,
        0,
        "the gate deleted the pending change set"
    );

    // deny holds even with --allow-risk, naming the resource.
    repo.commit_files(
        &with_config("    riskGates: { iam: deny }\n", assembly(&stack, "v2", true)),
        "deny IAM broadening",
    );
    let run = repo.aphex(&["run", "--local", "--yes", "--allow-risk"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let text = run.text();
    assert!(
        text.contains("denied by riskGates.iam") && text.contains("Everything (AWS::IAM::Policy)"),
        "{text}"
    );
    assert_eq!(resources(&stack).await, ["Greeting", "Role"]);

    // Approved, it deploys.
    repo.commit_files(&with_config("", assembly(&stack, "v2", true)), "approve again");
    let run = repo.aphex(&["run", "--local", "--yes", "--allow-risk"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(run.text().contains("approved by --allow-risk"), "{}", run.text());
    assert_eq!(resources(&stack).await, ["Everything", "Greeting", "Role"]);
}
