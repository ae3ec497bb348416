//! The deploy and test stages against the recording deployer and a fake
//! synth: synth runs once per deploy stage, stacks match by id or display
//! name, the order merges the assembly's dependencies, a failed stack stops
//! later ones, outputs reach the test commands.

mod support;

use aphex_stages::fake::RecordingDeployer;
use aphex_stages::record::Status;
use aphex_stages::redact::Redactor;
use aphex_stages::stages::{StageError, deploy, test};
use aphex_testkit::assembly::FakeStack;
use proptest::prelude::*;
use support::*;

const TWO_STACKS: &str = r#"
version: "1.0"
build: { commands: ["true"] }
environments:
  - name: dev
    region: eu-west-1
    account: "123456789012"
    hooks:
      pre: ["echo pre >> hooks"]
      post: ["echo post >> hooks", "test -f \"$APHEX_OUTPUTS_JSON\""]
    stacks:
      - { name: NetworkStack, path: network.ts }
      - { name: AppStack, path: app.ts }
    tests:
      commands:
        - test "$APHEX_OUTPUT_APPSTACK_URL" = "https://app.example"
        - test "$APHEX_OUTPUT_NETWORKSTACK_VPC_ID" = "vpc-123"
        - grep -q '"AppStack"' "$APHEX_OUTPUTS_JSON"
"#;

fn two_stack_harness(deployer: RecordingDeployer) -> Harness {
    let mut h = harness_with(TWO_STACKS, deployer, Redactor::new());
    let synth = fake_synth(
        &h,
        &[
            FakeStack {
                outputs: &[("Vpc.Id", "vpc-123")],
                ..FakeStack::new("NetworkStack")
            },
            FakeStack {
                stack_name: Some("dev-app"),
                depends_on: &["NetworkStack"],
                outputs: &[("Url", "https://app.example")],
                ..FakeStack::new("AppStack")
            },
        ],
    );
    h.ctx.config.environments[0].synth = Some(format!("echo synth >> hooks; {synth}"));
    h
}

#[test]
fn deploy_synthesizes_once_deploys_in_order_and_writes_outputs() {
    let h = two_stack_harness(RecordingDeployer::new());
    let outputs = h.dir.path().join("out/outputs.json");
    let outcome = rt().block_on(deploy::run(&h.ctx, "dev", &outputs)).unwrap();

    // Property of the stage: one synth, with the environment's account and region.
    // AWS_REGION/AWS_DEFAULT_REGION are the environment's, whatever the
    // caller's shell had (tools in synth and hooks then talk to its region).
    assert_eq!(synth_runs(&h), ["123456789012/eu-west-1 aws=eu-west-1,eu-west-1"]);
    let calls: Vec<String> = h.deployer.calls().into_iter().map(|c| c.stack_name).collect();
    assert_eq!(calls, ["NetworkStack", "dev-app"]);
    assert!(outcome.stacks.iter().all(|s| s.status == Status::Succeeded));
    assert_eq!(outcome.stacks[1].stack_name, "dev-app");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs).unwrap()).unwrap();
    assert_eq!(
        written,
        serde_json::json!({"AppStack": {"Url": "https://app.example"}, "NetworkStack": {"Vpc.Id": "vpc-123"}})
    );
    // hooks.pre before synth, hooks.post after the deploy.
    assert_eq!(
        std::fs::read_to_string(h.checkout().join("hooks")).unwrap(),
        "pre\nsynth\npost\n"
    );
    assert!(h.log().contains("the fake deployer"), "{}", h.log());
}

#[test]
fn outputs_reach_the_test_commands() {
    let h = two_stack_harness(RecordingDeployer::new());
    let outputs = h.dir.path().join("out/outputs.json");
    let rt = rt();
    rt.block_on(deploy::run(&h.ctx, "dev", &outputs)).unwrap();
    rt.block_on(test::run(&h.ctx, "dev", &outputs)).unwrap();

    // And a wrong expectation fails the stage on that command.
    let mut h2 = h.ctx.clone();
    h2.config.environments[0].tests.as_mut().unwrap().commands = vec![
        "true".to_owned(),
        "test \"$APHEX_OUTPUT_APPSTACK_URL\" = nope".to_owned(),
    ];
    let err = rt.block_on(test::run(&h2, "dev", &outputs)).unwrap_err();
    assert!(
        err.to_string().starts_with("environments[0].tests.commands[1]"),
        "{err}"
    );
}

#[test]
fn stacks_match_by_display_name_and_missing_ones_are_listed() {
    let mut h = harness(TWO_STACKS);
    let synth = fake_synth(
        &h,
        &[
            FakeStack {
                display_name: Some("NetworkStack"),
                ..FakeStack::new("NetworkStackABC123")
            },
            FakeStack::new("OtherStack"),
        ],
    );
    h.ctx.config.environments[0].synth = Some(synth);
    let err = rt()
        .block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "environment dev: stack AppStack not in the cloud assembly, which has: NetworkStackABC123 \
         (display name NetworkStack), OtherStack; name each stack by its CDK id (artifact id) or display name"
    );
    assert!(
        h.deployer.calls().is_empty(),
        "nothing deploys when a stack is missing"
    );
}

#[test]
fn assembly_dependencies_reorder_the_plan_and_cycles_are_refused() {
    // Config order puts AppStack after NetworkStack with no dependsOn; the
    // assembly says NetworkStack needs AppStack: AppStack goes first.
    let mut h = harness(TWO_STACKS);
    let synth = fake_synth(
        &h,
        &[
            FakeStack {
                depends_on: &["AppStack"],
                ..FakeStack::new("NetworkStack")
            },
            FakeStack::new("AppStack"),
        ],
    );
    h.ctx.config.environments[0].synth = Some(synth.clone());
    rt().block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap();
    let calls: Vec<String> = h.deployer.calls().into_iter().map(|c| c.artifact_id).collect();
    assert_eq!(calls, ["AppStack", "NetworkStack"]);

    // With dependsOn saying the opposite, it is a cycle.
    let mut h2 = harness(TWO_STACKS);
    h2.ctx.config.environments[0].synth = Some(synth);
    h2.ctx.config.environments[0].stacks[1].depends_on = vec!["NetworkStack".to_owned()];
    let err = rt()
        .block_on(deploy::run(&h2.ctx, "dev", &h2.dir.path().join("o.json")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dependency cycle: "), "{err}");
    assert!(err.contains("CDK app's own stack dependencies"), "{err}");
    assert!(h2.deployer.calls().is_empty());
}

#[test]
fn synth_without_an_assembly_is_a_clear_error() {
    let mut h = harness(TWO_STACKS);
    h.ctx.config.environments[0].synth = Some("echo synthesized somewhere else".to_owned());
    let err = rt()
        .block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wrote no cloud assembly (manifest.json) to CDK_OUTDIR="),
        "{err}"
    );
}

#[test]
fn independent_stacks_deploy_concurrently_up_to_the_limit() {
    let mut h = two_stack_harness(RecordingDeployer::new());
    let synth = fake_synth(&h, &[FakeStack::new("NetworkStack"), FakeStack::new("AppStack")]);
    h.ctx.config.environments[0].synth = Some(synth);
    h.ctx.config.environments[0].concurrency = Some(2);
    rt().block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap();
    assert_eq!(h.deployer.max_in_flight(), 2);
}

/// What the synth saw of the CDK context: `CDK_CONTEXT_JSON`, and the
/// file `CONTEXT_OVERFLOW_LOCATION_ENV` names (`-` when unset).
fn synth_context_seen(cdk_json: &str, cdk_context_json: &str) -> (String, String) {
    let mut h = two_stack_harness(RecordingDeployer::new());
    std::fs::write(h.checkout().join("cdk.json"), cdk_json).unwrap();
    std::fs::write(h.checkout().join("cdk.context.json"), cdk_context_json).unwrap();
    let synth = h.ctx.config.environments[0].synth.take().unwrap();
    h.ctx.config.environments[0].synth = Some(format!(
        "printf '%s' \"${{CDK_CONTEXT_JSON--}}\" > seen-env; cat \"${{CONTEXT_OVERFLOW_LOCATION_ENV:-/dev/null}}\" > seen-file; \
         [ -z \"${{CONTEXT_OVERFLOW_LOCATION_ENV-}}\" ] || test \"$CONTEXT_OVERFLOW_LOCATION_ENV\" = \"$CDK_OUTDIR.context.json\"; {synth}"
    ));
    rt().block_on(deploy::synth_check(&h.ctx, "dev")).unwrap();
    let read = |name: &str| std::fs::read_to_string(h.checkout().join(name)).unwrap();
    (read("seen-env"), read("seen-file"))
}

#[test]
fn the_synth_gets_the_projects_cdk_context_as_the_cdk_cli_hands_it_over() {
    let (env, file) = synth_context_seen(
        r#"{"app": "node bin/app.js", "context": {"@aws-cdk/core:flag": true, "both": "cdk.json"}}"#,
        r#"{"ssm:account=1:parameterName=/p:region=r": "cached", "both": "cdk.context.json"}"#,
    );
    let env: serde_json::Value = serde_json::from_str(&env).unwrap();
    assert_eq!(
        env,
        serde_json::json!({"@aws-cdk/core:flag": true, "both": "cdk.json", "ssm:account=1:parameterName=/p:region=r": "cached"})
    );
    assert_eq!(file, "");

    // Over 100 KiB (Linux caps one variable at 128 KiB): in a file instead.
    let big = serde_json::json!({"lookup": "x".repeat(150 * 1024)}).to_string();
    let (env, file) = synth_context_seen(r#"{"app": "node bin/app.js"}"#, &big);
    assert_eq!(env, "-", "CDK_CONTEXT_JSON is not set");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&file).unwrap(),
        serde_json::from_str::<serde_json::Value>(&big).unwrap()
    );
}

#[test]
fn a_broken_cdk_json_stops_the_synth_naming_it() {
    let h = two_stack_harness(RecordingDeployer::new());
    std::fs::write(h.checkout().join("cdk.json"), "{ not json").unwrap();
    let err = rt()
        .block_on(deploy::synth_check(&h.ctx, "dev"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("reading the CDK context for the synth of dev")
            && err.contains("cdk.json: not valid JSON"),
        "{err}"
    );
    assert!(synth_runs(&h).is_empty());
}

/// The two stacks with these annotations (level, text) each.
fn annotated_harness(network: &[(&str, &str)], app: &[(&str, &str)]) -> Harness {
    let mut h = two_stack_harness(RecordingDeployer::new());
    let synth = fake_synth(
        &h,
        &[
            FakeStack {
                annotations: network,
                ..FakeStack::new("NetworkStack")
            },
            FakeStack {
                annotations: app,
                ..FakeStack::new("AppStack")
            },
        ],
    );
    h.ctx.config.environments[0].synth = Some(synth);
    h
}

#[test]
fn a_cdk_error_annotation_stops_the_deploy_before_any_stack_as_cdk_deploy_does() {
    let network = [("warning", "a deprecated API"), ("info", "a note")];
    let app = [(
        "error",
        "AwsSolutions-S1: the S3 Bucket has server access logs disabled",
    )];
    let h = annotated_harness(&network, &app);
    let err = rt()
        .block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the CDK app reported 1 error on the stacks of dev")
            && err.contains("nothing was deployed")
            && err.contains(
                "\n  - AppStack: /AppStack: AwsSolutions-S1: the S3 Bucket has server access logs disabled"
            ),
        "{err}"
    );
    assert!(h.deployer.calls().is_empty(), "no stack deployed");
    let log = h.log();
    assert!(
        log.contains("warning: from the CDK app: NetworkStack: /NetworkStack: a deprecated API"),
        "{log}"
    );
    assert!(
        log.contains("note from the CDK app: NetworkStack: /NetworkStack: a note"),
        "{log}"
    );

    // The pull-request check refuses the same assembly.
    let h = annotated_harness(&network, &app);
    let err = rt()
        .block_on(deploy::synth_check(&h.ctx, "dev"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("the CDK app reported 1 error"), "{err}");
}

#[test]
fn cdk_warnings_are_reported_and_deploy_with_at_most_twenty_shown() {
    let texts: Vec<String> = (1..=25).map(|i| format!("warning number {i}")).collect();
    let warnings: Vec<(&str, &str)> = texts.iter().map(|t| ("warning", t.as_str())).collect();
    let h = annotated_harness(&warnings, &[]);
    rt().block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap();
    assert_eq!(h.deployer.calls().len(), 2, "both stacks deployed");
    let log = h.log();
    assert!(
        log.contains("from the CDK app: NetworkStack: /NetworkStack: warning number 20\n"),
        "{log}"
    );
    assert!(!log.contains("warning number 21"), "{log}");
    assert!(log.contains("... and 5 more warnings from the CDK app"), "{log}");
}

#[test]
fn synth_check_deploys_nothing() {
    let h = two_stack_harness(RecordingDeployer::new());
    rt().block_on(deploy::synth_check(&h.ctx, "dev")).unwrap();
    assert_eq!(synth_runs(&h).len(), 1);
    assert!(h.deployer.calls().is_empty());
}

/// A config of `n` stacks S0..Sn-1 where each may depend on earlier ones.
fn chain_config(deps: &[Vec<usize>], concurrency: u32) -> String {
    let mut yaml = format!(
        "version: \"1.0\"\nbuild: {{ commands: [\"true\"] }}\nenvironments:\n  - name: dev\n    region: us-east-1\n    account: \"123456789012\"\n    concurrency: {concurrency}\n    stacks:\n"
    );
    for (i, d) in deps.iter().enumerate() {
        let on: Vec<String> = d.iter().map(|j| format!("S{j}")).collect();
        yaml.push_str(&format!(
            "      - {{ name: S{i}, path: s.ts, dependsOn: [{}] }}\n",
            on.join(", ")
        ));
    }
    yaml
}

fn dependents_of(deps: &[Vec<usize>], failed: usize) -> Vec<usize> {
    let mut out = vec![failed];
    for (i, d) in deps.iter().enumerate() {
        if d.iter().any(|d| out.contains(d)) {
            out.push(i);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    // Property: failure propagation. When a stack fails, no stack that
    // depends on it (directly or not) is ever started, every stack not
    // started is recorded as skipped, outputs hold only succeeded stacks,
    // and with concurrency 1 nothing after the failed stack starts at all.
    #[test]
    fn a_failed_stack_stops_later_stacks(
        deps in (1usize..7).prop_flat_map(|n| {
            (0..n).map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i)).collect::<Vec<_>>()
        }),
        fail_pick in any::<prop::sample::Index>(),
        concurrency in 1u32..4,
    ) {
        let n = deps.len();
        let failed = fail_pick.index(n);
        let yaml = chain_config(&deps, concurrency);
        let names: Vec<String> = (0..n).map(|i| format!("S{i}")).collect();
        let mut h = harness_with(&yaml, RecordingDeployer::new().failing(format!("S{failed}")), Redactor::new());
        let stacks: Vec<FakeStack<'_>> = names.iter().map(|s| FakeStack { outputs: &[("Out", "v")], ..FakeStack::new(s) }).collect();
        let synth = fake_synth(&h, &stacks);
        h.ctx.config.environments[0].synth = Some(synth);
        let outputs_file = h.dir.path().join("o.json");
        let err = rt().block_on(deploy::run(&h.ctx, "dev", &outputs_file)).unwrap_err();
        let StageError::Deploy { message, stacks } = &err else { panic!("{err}") };
        let failed_name = format!("S{failed}");
        prop_assert!(message.starts_with(&format!("stack {failed_name} ")), "{}", message);

        let called: Vec<String> = h.deployer.calls().into_iter().map(|c| c.artifact_id).collect();
        for d in dependents_of(&deps, failed).into_iter().skip(1) {
            prop_assert!(!called.contains(&format!("S{d}")), "dependent S{} started", d);
        }
        let order = aphex_template::EnvironmentPlan::new(&h.ctx.config.environments[0]).unwrap().order;
        if concurrency == 1 {
            let at = order.iter().position(|s| s == &failed_name).unwrap();
            prop_assert_eq!(&called, &order[..=at].to_vec());
        }
        let outputs = deploy::read_outputs(&outputs_file).unwrap();
        for s in stacks {
            let was_called = called.contains(&s.name);
            match s.status {
                Status::Failed => prop_assert_eq!(&s.name, &failed_name),
                Status::Succeeded => prop_assert!(was_called && outputs.contains_key(&s.name)),
                Status::Skipped => prop_assert!(!was_called && !outputs.contains_key(&s.name)),
                other => prop_assert!(false, "unexpected status {:?}", other),
            }
        }
        prop_assert_eq!(stacks.len(), n);
        // hooks.post never runs after a failed deploy.
        prop_assert!(!h.checkout().join("hooks").exists());
    }
}

#[test]
fn a_real_cdk_assembly_is_matched_and_ordered_by_its_own_dependencies() {
    // Listed App first; the assembly (a real `cdk synth` fixture) says App
    // needs Shared through a cross-stack reference: Shared deploys first.
    let mut h = harness(
        r#"
version: "1.0"
build: { commands: ["true"] }
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks:
      - { name: QuickstartApp, path: app.ts }
      - { name: QuickstartShared, path: shared.ts }
      - { name: QuickstartAudit, path: audit.ts }
"#,
    );
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quickstart");
    h.ctx.config.environments[0].synth = Some(format!("cp -r '{}'/. \"$CDK_OUTDIR\"/", fixture.display()));
    let outputs_file = h.dir.path().join("o.json");
    let outcome = rt().block_on(deploy::run(&h.ctx, "dev", &outputs_file)).unwrap();
    let calls: Vec<String> = h.deployer.calls().into_iter().map(|c| c.artifact_id).collect();
    assert_eq!(calls, ["QuickstartShared", "QuickstartApp", "QuickstartAudit"]);
    let names: Vec<&str> = outcome.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["QuickstartShared", "QuickstartApp", "QuickstartAudit"]);
    let outputs = deploy::read_outputs(&outputs_file).unwrap();
    assert_eq!(
        outputs.keys().collect::<Vec<_>>(),
        ["QuickstartApp", "QuickstartAudit", "QuickstartShared"]
    );
    assert!(outputs.values().all(|o| !o.is_empty()), "{outputs:?}");
}

/// Lends `dev` the credentials of a role in its account, or refuses.
struct Lender {
    refuse: bool,
}

#[async_trait::async_trait]
impl aphex_stages::ports::CredentialChecker for Lender {
    async fn check(
        &self,
        _: &aphex_config::Environment,
    ) -> Result<aphex_stages::ports::Identity, aphex_stages::ports::CredentialError> {
        unreachable!("the deploy stage checks no credentials")
    }

    async fn synth_credentials(
        &self,
        env: &aphex_config::Environment,
    ) -> Result<Option<aphex_stages::ports::SynthCredentials>, aphex_stages::ports::CredentialError> {
        if self.refuse {
            return Err(aphex_stages::ports::CredentialError::Unreachable(
                format!(
                    "environment `{}`: cannot assume role lookup (AccessDenied)",
                    env.name
                )
                .into(),
            ));
        }
        Ok(Some(aphex_stages::ports::SynthCredentials {
            role_arn: format!("arn:aws:iam::{}:role/lookup", env.account),
            vars: vec![
                ("AWS_ACCESS_KEY_ID".to_owned(), "ASIALENTKEY000000000".to_owned()),
                (
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    "lent-secret-access-key".to_owned(),
                ),
                ("AWS_SESSION_TOKEN".to_owned(), "lent-session-token".to_owned()),
            ],
        }))
    }
}

/// A synth that records the key it ran with, and prints the secret.
fn credential_harness(refuse: bool) -> Harness {
    let mut h = two_stack_harness(RecordingDeployer::new());
    h.ctx.ports.credentials = Some(std::sync::Arc::new(Lender { refuse }));
    let seen = h.dir.path().join("synth-key");
    let synth = h.ctx.config.environments[0].synth.clone().unwrap();
    h.ctx.config.environments[0].synth = Some(format!(
        "echo \"${{AWS_ACCESS_KEY_ID:-none}}\" > '{}'; echo \"secret=${{AWS_SECRET_ACCESS_KEY:-none}}\"; {synth}",
        seen.display()
    ));
    h
}

#[test]
fn a_cross_account_synth_runs_with_the_credentials_its_environment_lends() {
    let h = credential_harness(false);
    rt().block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap();
    let seen = std::fs::read_to_string(h.dir.path().join("synth-key")).unwrap();
    assert_eq!(seen.trim(), "ASIALENTKEY000000000");
    let log = h.log();
    assert!(
        log.contains("synthesizing dev as arn:aws:iam::123456789012:role/lookup (account 123456789012)"),
        "{log}"
    );
    // The lent secret is masked in the synth's own output.
    assert!(log.contains("secret=***"), "{log}");
    assert!(
        !log.contains("lent-secret-access-key") && !log.contains("ASIALENTKEY"),
        "{log}"
    );
}

#[test]
fn a_synth_whose_credentials_cannot_be_lent_warns_and_runs_with_the_runners() {
    let h = credential_harness(true);
    rt().block_on(deploy::run(&h.ctx, "dev", &h.dir.path().join("o.json")))
        .unwrap();
    let seen = std::fs::read_to_string(h.dir.path().join("synth-key")).unwrap();
    assert_ne!(seen.trim(), "ASIALENTKEY000000000");
    let log = h.log();
    assert!(
        log.contains("cannot assume role lookup (AccessDenied); synthesizing dev with this runner's credentials, so a `cdk synth` sets CDK_DEFAULT_ACCOUNT to their account rather than 123456789012"),
        "{log}"
    );
}

/// The recorded answer of a change set that adds a policy allowing every action.
fn wide_policy() -> Vec<aphex_stages::risk::ResourceChange> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/changesets/iam-wildcard.json"
    ))
    .unwrap();
    aphex_stages::risk::changes_from_json("NetworkStack", &text).unwrap()
}

fn gated_harness(gates: &str) -> Harness {
    let mut h = two_stack_harness(RecordingDeployer::new().with_changes("NetworkStack", wide_policy()));
    let yaml = TWO_STACKS.replace(
        "    region: eu-west-1\n",
        &format!("    region: eu-west-1\n    approval: manual\n{gates}"),
    );
    let synth = h.ctx.config.environments[0].synth.clone();
    h.ctx.config = aphex_config::load_str("aphex-config.yaml", &yaml).expect("valid");
    h.ctx.config.environments[0].synth = synth;
    h
}

#[test]
fn an_approve_gate_stops_before_the_risky_stack_executes_and_approval_lets_it_through() {
    let h = gated_harness("");
    let outputs = h.dir.path().join("out/outputs.json");
    let err = rt().block_on(deploy::run(&h.ctx, "dev", &outputs)).unwrap_err();
    let StageError::RiskGate {
        env, stack, changes, ..
    } = &err
    else {
        panic!("expected a risk gate, got {err:?}")
    };
    assert_eq!((env.as_str(), stack.as_str()), ("dev", "NetworkStack"));
    let listed: Vec<String> = changes.iter().map(|c| c.logical_id.clone()).collect();
    assert_eq!(
        listed,
        ["HandlerServiceRoleDefaultPolicy5F1E", "HandlerServiceRole9A1B"]
    );
    assert!(
        err.to_string().contains(
            "NetworkStack HandlerServiceRoleDefaultPolicy5F1E (AWS::IAM::Policy): IAM broadening: new IAM policy; adds \"*\" to Action"
        ),
        "{err}"
    );
    let calls: Vec<String> = h.deployer.calls().into_iter().map(|c| c.stack_name).collect();
    assert_eq!(calls, ["NetworkStack"], "nothing after the gated stack starts");
    assert_eq!(err.stacks()[1].status, Status::Skipped);

    // Approved for this run, the environment deploys.
    rt().block_on(deploy::run_with(&h.ctx, "dev", &outputs, changes))
        .unwrap();
    assert!(h.log().contains("approved for this run"), "{}", h.log());
}

/// An approval covers what the gate listed: when the stopped stack makes
/// a risky change the listing the person approved did not hold (it
/// changed in between), the environment fails naming it, and the stack
/// does not execute.
#[test]
fn an_approval_does_not_cover_a_risky_change_the_gate_did_not_list() {
    let h = gated_harness("");
    let outputs = h.dir.path().join("out/outputs.json");
    let err = rt().block_on(deploy::run(&h.ctx, "dev", &outputs)).unwrap_err();
    let StageError::RiskGate { changes, .. } = &err else {
        panic!("expected a risk gate, got {err:?}")
    };
    let seen = &changes[..1];
    let executed_before = h.deployer.calls().len();
    let err = rt()
        .block_on(deploy::run_with(&h.ctx, "dev", &outputs, seen))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "stack NetworkStack changed after its risk gate listed it: 1 risky change the gate did not list"
        ) && text.contains("HandlerServiceRole9A1B (AWS::IAM::Role)")
            && text.contains("run the pipeline again"),
        "{text}"
    );
    let calls: Vec<String> = h.deployer.calls()[executed_before..]
        .iter()
        .map(|c| c.stack_name.clone())
        .collect();
    assert_eq!(
        calls,
        ["NetworkStack"],
        "reviewed, not executed; nothing after it"
    );
    assert_eq!(err.stacks()[0].status, Status::Failed);
}

#[test]
fn a_deny_gate_fails_naming_the_resource_even_when_approved() {
    let h = gated_harness("    riskGates: { iam: deny }\n");
    let outputs = h.dir.path().join("out/outputs.json");
    let approved = [aphex_stages::risk::RiskyChange {
        stack: "NetworkStack".to_owned(),
        logical_id: "HandlerServiceRoleDefaultPolicy5F1E".to_owned(),
        resource_type: "AWS::IAM::Policy".to_owned(),
        kind: aphex_stages::risk::RiskKind::IamBroadening,
        why: "new IAM policy; adds \"*\" to Action".to_owned(),
    }];
    let err = rt()
        .block_on(deploy::run_with(&h.ctx, "dev", &outputs, &approved))
        .unwrap_err();
    assert!(matches!(err, StageError::Deploy { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("denied by riskGates.iam in environment dev")
            && text.contains("HandlerServiceRoleDefaultPolicy5F1E (AWS::IAM::Policy)"),
        "{text}"
    );
}

#[test]
fn allow_deploys_risky_changes_without_reading_them() {
    // No manual approval: both checks default to allow.
    let h = two_stack_harness(RecordingDeployer::new().with_changes("NetworkStack", wide_policy()));
    let outputs = h.dir.path().join("out/outputs.json");
    rt().block_on(deploy::run(&h.ctx, "dev", &outputs)).unwrap();
    assert!(!h.log().contains("risk gate"), "{}", h.log());
}
