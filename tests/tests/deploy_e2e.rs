//! Deploys of the `tests/cdk-apps` variants through the real `aphex run
//! --local` against the emulator: a failing stack stops its environment with
//! the root cause and nothing after it is created; a template over 51,200
//! bytes deploys through S3; independent stacks overlap with `concurrency: 2`
//! and never with `concurrency: 1`; a `cdk synth` for another account than
//! the runner's names that account; an app run directly gets the project's
//! CDK context, and a lookup it lacks stops the deploy; an error annotation
//! (cdk-nag's findings) stops it too, a warning is shown. Stack names carry a prefix of their own
//! (`--prefix`), or the account is the test's own, so the suites sharing the
//! emulator never collide.

use aphex_tests::bootstrap::{account_config, assets_bucket, prepare_bootstrap};
use aphex_tests::e2e::{AppRepo, event_range, stack_status, unique_account};
use aphex_tests::{DEFAULT_ACCOUNT, REGION, unique_name};

/// The variant's app with its stack names prefixed by `prefix` and the
/// config edited by `edit`.
async fn app(variant: &str, prefix: &str, edit: impl FnOnce(String) -> String) -> AppRepo {
    prepare_bootstrap(DEFAULT_ACCOUNT, REGION)
        .await
        .expect("bootstrapping");
    let synth = format!("synth: node app.js {variant}");
    AppRepo::cdk_app(variant, |config| {
        assert!(config.contains(&synth), "{config}");
        edit(config.replace(&synth, &format!("{synth} --prefix {prefix}")))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_stack_fails_its_environment_with_the_root_cause_and_nothing_after_it_deploys() {
    let prefix = format!("{}-", unique_name("fail"));
    let repo = app("failing", &prefix, |c| c).await;
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());

    let config = account_config(DEFAULT_ACCOUNT, REGION).await;
    assert_eq!(
        stack_status(&config, &format!("{prefix}GoodBefore"))
            .await
            .as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        stack_status(&config, &format!("{prefix}GoodAfter")).await,
        None,
        "the stack after the failed one was never created"
    );

    let record = run.local_record();
    assert_eq!(record["status"], "failed");
    let deploy = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deploy-e2e")
        .expect("the deploy stage's record");
    assert_eq!(deploy["status"], "failed");
    let error = deploy["error"].as_str().unwrap_or_default();
    // The root cause: the parameter's CREATE_FAILED event and its reason,
    // not the cancellation noise after it.
    assert!(
        error.contains(&format!("{prefix}Broken"))
            && error.contains("AWS::SSM::Parameter")
            && error.contains("CREATE_FAILED")
            && error.contains("Bogus"),
        "the error names the stack and the root cause: {error}"
    );
    let stacks: Vec<(&str, &str)> = deploy["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stacks,
        [
            ("GoodBefore", "succeeded"),
            ("Broken", "failed"),
            ("GoodAfter", "skipped")
        ]
    );
    assert!(
        run.stdout.contains("Bogus"),
        "the summary shows the reason:\n{}",
        run.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_over_51200_bytes_deploys_through_s3() {
    let prefix = format!("{}-", unique_name("large"));
    let repo = app("large", &prefix, |c| c).await;
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.text());

    let stack = format!("{prefix}LargeTemplate");
    let config = account_config(DEFAULT_ACCOUNT, REGION).await;
    assert_eq!(
        stack_status(&config, &stack).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    let template = aws_sdk_cloudformation::Client::new(&config)
        .get_template()
        .stack_name(&stack)
        .send()
        .await
        .expect("GetTemplate");
    let body = template.template_body().unwrap_or_default();
    let compact: serde_json::Value = serde_json::from_str(body).expect("a JSON template");
    assert!(
        serde_json::to_vec(&compact).unwrap().len() > 51_200,
        "the deployed template is the large one"
    );
    // It went through the bootstrap assets bucket (as the assembly's
    // template asset): an object there holds this very template.
    let s3 = aphex_aws::client::s3(&config);
    let bucket = assets_bucket(DEFAULT_ACCOUNT, REGION);
    let mut pages = s3.list_objects_v2().bucket(&bucket).into_paginator().send();
    let mut found = false;
    while let Some(page) = pages.next().await {
        let page = page.expect("listing the assets bucket");
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            if found || !key.ends_with(".json") || object.size().unwrap_or(0) <= 51_200 {
                continue;
            }
            let got = s3
                .get_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .expect("an object");
            let bytes = got.body.collect().await.unwrap().into_bytes();
            found = serde_json::from_slice::<serde_json::Value>(&bytes).ok().as_ref() == Some(&compact);
        }
    }
    assert!(found, "no object in s3://{bucket} holds the deployed template");
}

/// Whether any two of the ranges overlap.
fn any_overlap(ranges: &[(String, (f64, f64))]) -> bool {
    ranges
        .iter()
        .enumerate()
        .any(|(i, (_, (a0, a1)))| ranges[i + 1..].iter().any(|(_, (b0, b1))| a0 < b1 && b0 < a1))
}

/// Deploys the six independent stacks with `concurrency` and returns each
/// stack's CloudFormation event time range.
async fn parallel(concurrency: u32) -> Vec<(String, (f64, f64))> {
    let prefix = format!("{}-", unique_name(&format!("par{concurrency}")));
    let repo = app("parallel", &prefix, |c| {
        assert!(c.contains("concurrency: 2"));
        c.replace("concurrency: 2", &format!("concurrency: {concurrency}"))
    })
    .await;
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let config = account_config(DEFAULT_ACCOUNT, REGION).await;
    let mut ranges = Vec::new();
    for i in 1..=6 {
        let stack = format!("{prefix}Parallel{i}");
        ranges.push((stack.clone(), event_range(&config, &stack).await));
    }
    ranges
}

#[tokio::test(flavor = "multi_thread")]
async fn independent_stacks_deploy_together_with_concurrency_2_and_one_at_a_time_with_1() {
    // Both runs at once: the emulator is shared anyway, and the suite stays short.
    let (two, one) = tokio::join!(parallel(2), parallel(1));
    assert!(
        any_overlap(&two),
        "with concurrency 2 some stacks deploy at the same time: {two:?}"
    );
    assert!(
        !any_overlap(&one),
        "with concurrency 1 no two stacks overlap: {one:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cdk_cli_synth_for_another_account_names_that_account_and_deploys_there() {
    // The runner's credentials are in DEFAULT_ACCOUNT; the environment is not.
    let account = unique_account();
    prepare_bootstrap(&account, REGION).await.expect("bootstrapping");
    let repo = AppRepo::cdk_app("cross-account", |config| config.replace("222222222222", &account));
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let lookup_role = format!("arn:aws:iam::{account}:role/cdk-hnb659fds-lookup-role-{account}-{REGION}");
    assert!(
        run.stderr
            .contains(&format!("synthesizing e2e as {lookup_role} (account {account})")),
        "{}",
        run.text()
    );
    // Without the lent credentials the CLI would have written DEFAULT_ACCOUNT
    // into the assembly and the deployer would have refused the stack.
    let there = account_config(&account, REGION).await;
    assert_eq!(
        stack_status(&there, "Single").await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    let home = account_config(DEFAULT_ACCOUNT, REGION).await;
    assert_eq!(stack_status(&home, "Single").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_run_directly_gets_the_projects_context_and_a_missing_lookup_deploys_nothing() {
    let prefix = format!("{}-", unique_name("context"));
    let mut repo = app("context", &prefix, |c| c).await;
    let cdk_json = r#"{"app": "node app.js", "context": {"aphex-test:greeting": "from cdk.json"}}"#;
    repo.commit_files(&[("cdk.json", cdk_json.to_owned())], "a context key");
    let stack = format!("{prefix}Context");
    let config = account_config(DEFAULT_ACCOUNT, REGION).await;

    // No cdk.context.json: the app's SSM lookup is missing, and the
    // template would deploy its placeholder.
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let lookup = format!(
        "`ssm:account={DEFAULT_ACCOUNT}:parameterName=/aphex-test/looked-up:region={REGION}` (provider ssm)"
    );
    let text = run.text();
    assert!(
        text.contains(&lookup) && text.contains("placeholder values") && text.contains("cdk.context.json"),
        "the error names the lookup and what to do: {text}"
    );
    assert_eq!(stack_status(&config, &stack).await, None, "nothing was deployed");

    // With the lookup's value committed, both values reach the template.
    let key = format!("ssm:account={DEFAULT_ACCOUNT}:parameterName=/aphex-test/looked-up:region={REGION}");
    let cached = serde_json::json!({ key: "from cdk.context.json" }).to_string();
    repo.commit_files(&[("cdk.context.json", cached)], "the cached lookup");
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(
        run.stderr
            .contains("passing 2 CDK context keys of cdk.json and cdk.context.json to the synth"),
        "{}",
        run.text()
    );
    let deploy = run.local_record()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deploy-e2e")
        .cloned()
        .expect("the deploy stage's record");
    let outputs = &deploy["stacks"][0]["outputs"];
    assert_eq!(outputs["Greeting"], "from cdk.json", "{deploy}");
    assert_eq!(outputs["LookedUp"], "from cdk.context.json", "{deploy}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_annotation_deploys_nothing_and_a_warning_is_shown() {
    let prefix = format!("{}-", unique_name("annotated"));
    let mut repo = app("annotated", &prefix, |c| c).await;
    let stack = format!("{prefix}Annotated");
    let config = account_config(DEFAULT_ACCOUNT, REGION).await;
    let finding = "Annotated: /Annotated/Value: AphexTest-P1: the parameter has no description";

    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let text = run.text();
    assert!(
        text.contains("the CDK app reported 1 error on the stacks of e2e") && text.contains(finding),
        "the error lists the finding: {text}"
    );
    assert_eq!(stack_status(&config, &stack).await, None, "nothing was deployed");

    let file = repo.path().join("aphex-config.yaml");
    let config_text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("--annotate error", "--annotate warning");
    repo.commit_files(&[("aphex-config.yaml", config_text)], "a warning only");
    let run = repo.aphex(&["run", "--local", "--yes"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    assert!(
        run.stderr
            .contains(&format!("warning: from the CDK app: {finding}")),
        "{}",
        run.text()
    );
    assert_eq!(
        stack_status(&config, &stack).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
}
