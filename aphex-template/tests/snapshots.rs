//! Every rendered object, pinned byte for byte: the seed example, a
//! multi-environment config using every optional field, and a cross-account
//! config; and the pipeline stack in its discovered form (the OIDC provider
//! known). Review changes with `cargo insta review`.

mod common;

use aphex_template::cloudformation::{OidcProviderArn, pipeline_stack, pipeline_stack_for};
use aphex_template::{Plan, RenderOptions, plan_format, render};
use common::{CONFIGS, config};

#[test]
fn rendered_manifests() {
    for name in CONFIGS {
        let config = config(name);
        let r = render(&config, &RenderOptions::default());
        let stem = name.trim_end_matches(".yaml");
        insta::assert_snapshot!(format!("{stem}.manifests"), r.manifests_yaml().unwrap());
        insta::assert_snapshot!(format!("{stem}.pipeline-stack"), r.pipeline_stack_json());
        insta::assert_snapshot!(
            format!("{stem}.plan"),
            plan_format::to_text(&Plan::new(&config).unwrap())
        );
    }
}

#[test]
fn rendering_is_deterministic() {
    for name in CONFIGS {
        let a = render(&config(name), &RenderOptions::default());
        let b = render(&config(name), &RenderOptions::default());
        assert_eq!(a.files().unwrap(), b.files().unwrap(), "{name}");
    }
}

#[test]
fn the_executor_role_arn_reaches_the_service_account() {
    let options = RenderOptions {
        executor_role_arn: Some("arn:aws:iam::123456789012:role/exec".into()),
        pr_role_arn: None,
        artifact_bucket: None,
    };
    let r = render(&config("seed.yaml"), &options);
    let sa = r.get("ServiceAccount").unwrap();
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/exec"
    );
    assert!(r.get("ConfigMap").is_none());
}

#[test]
fn a_known_bucket_is_published_in_the_config_map_the_pods_read() {
    let options = RenderOptions {
        executor_role_arn: None,
        pr_role_arn: None,
        artifact_bucket: Some("aphex-artifacts-x".into()),
    };
    let r = render(&config("seed.yaml"), &options);
    let cm = r.get("ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["name"], "aphex-pipeline-stack");
    assert_eq!(cm["data"]["ArtifactBucketName"], "aphex-artifacts-x");
    let wt = serde_json::to_string(r.get("WorkflowTemplate").unwrap()).unwrap();
    assert!(wt.contains(r#""configMapKeyRef":{"name":"aphex-pipeline-stack","key":"ArtifactBucketName""#));
}

#[test]
fn yaml_round_trips_to_the_same_objects() {
    for name in CONFIGS {
        let r = render(&config(name), &RenderOptions::default());
        for (file, text) in r.files().unwrap() {
            let back: serde_json::Value = if file.ends_with(".json") {
                serde_json::from_str(&text).unwrap()
            } else {
                serde_saphyr::from_str(&text).unwrap()
            };
            let original = r
                .manifests
                .iter()
                .enumerate()
                .find(|(i, m)| m.file_name(*i) == file)
                .map(|(_, m)| m.value.clone())
                .unwrap_or_else(|| r.pipeline_stack.clone());
            assert_eq!(back, original, "{name}: {file}");
        }
    }
}

const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";

fn without_trust_policy(mut template: serde_json::Value) -> serde_json::Value {
    for role in ["WorkflowExecutionRole", "PullRequestRole"] {
        let props = &mut template["Resources"][role]["Properties"];
        props
            .as_object_mut()
            .expect("the role has properties")
            .remove("AssumeRolePolicyDocument")
            .expect("the role has a trust policy");
    }
    template
}

#[test]
fn the_discovered_form_trusts_the_provider_with_a_plain_policy_and_literal_issuer_keys() {
    let provider = OidcProviderArn::parse(PROVIDER).unwrap();
    let discovered = pipeline_stack_for(&config("full.yaml"), Some(&provider));
    insta::assert_snapshot!(
        "full.pipeline-stack-discovered",
        serde_json::to_string_pretty(&discovered).unwrap()
    );
    let trust = &discovered["Resources"]["WorkflowExecutionRole"]["Properties"]["AssumeRolePolicyDocument"];
    assert!(trust.is_object(), "a JSON object, not an Fn::Sub string: {trust}");
    let statement = &trust["Statement"][0];
    assert_eq!(
        statement["Principal"]["Federated"],
        serde_json::json!({"Fn::ImportValue": {"Fn::Sub": "${ClusterExportPrefix}OIDCProviderArn"}}),
        "still imported, so the cluster stack cannot drop the export in use"
    );
    let keys = &statement["Condition"]["StringEquals"];
    assert_eq!(
        keys["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"],
        "system:serviceaccount:argo:aphex-my-app"
    );
    assert_eq!(
        keys["oidc.eks.us-east-1.amazonaws.com/id/ABC:aud"],
        "sts.amazonaws.com"
    );
}

#[test]
fn the_two_forms_differ_only_in_the_trust_policy_and_render_keeps_the_offline_one() {
    let provider = OidcProviderArn::parse(PROVIDER).unwrap();
    for name in CONFIGS {
        let config = config(name);
        let offline = pipeline_stack(&config);
        assert_eq!(
            render(&config, &RenderOptions::default()).pipeline_stack,
            offline,
            "{name}"
        );
        assert!(
            offline["Resources"]["WorkflowExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]
                .get("Fn::Sub")
                .is_some(),
            "{name}: the offline form is computed by CloudFormation"
        );
        assert_eq!(
            without_trust_policy(pipeline_stack_for(&config, Some(&provider))),
            without_trust_policy(offline),
            "{name}"
        );
    }
}

#[test]
fn oidc_provider_arns_are_checked() {
    let p = OidcProviderArn::parse(PROVIDER).unwrap();
    assert_eq!(p.issuer(), "oidc.eks.us-east-1.amazonaws.com/id/ABC");
    assert_eq!(p.as_str(), PROVIDER);
    let cn = "arn:aws-cn:iam::123456789012:oidc-provider/oidc.eks.cn-north-1.amazonaws.com.cn/id/X";
    assert_eq!(
        OidcProviderArn::parse(cn).unwrap().issuer(),
        "oidc.eks.cn-north-1.amazonaws.com.cn/id/X"
    );
    for bad in [
        "",
        "oidc.eks.us-east-1.amazonaws.com/id/ABC",
        "arn:aws:iam::123456789012:role/x",
        "arn:aws:iam::123456789012:oidc-provider/",
        "arn:aws:s3:::bucket:oidc-provider/x",
        "arn:aws:iam::123456789012:oidc-provider/a b",
    ] {
        let err = OidcProviderArn::parse(bad).unwrap_err();
        assert!(err.to_string().contains("OIDCProviderArn export"), "{err}");
    }
}

#[test]
fn the_notification_webhook_reaches_only_the_finalize_pods() {
    // Build and test pods run the repository's own commands; the webhook URL
    // (a credential) must not be in their environment. The two finalize
    // pods (a deploy run's, a pull request's) run only the runner.
    let wt = render(&config("full.yaml"), &RenderOptions::default())
        .get("WorkflowTemplate")
        .unwrap()
        .clone();
    let with_url: Vec<&str> = wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["container"]["env"].as_array().is_some_and(|env| {
                env.iter().any(|e| {
                    e["name"] == aphex_template::workflow::SLACK_WEBHOOK_ENV
                        && e["valueFrom"]["secretKeyRef"]["name"] == "slack-url"
                })
            })
        })
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(with_url, ["finalize", "finalize-pr"]);
}

/// The templates whose pods see a variable called `name`.
fn templates_with_env(config: &aphex_config::Config, name: &str) -> Vec<String> {
    let wt = render(config, &RenderOptions::default())
        .get("WorkflowTemplate")
        .unwrap()
        .clone();
    wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["container"]["env"]
                .as_array()
                .is_some_and(|env| env.iter().any(|e| e["name"] == name))
        })
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_github_token_reaches_only_the_pods_that_post_commit_statuses() {
    use aphex_template::workflow::GITHUB_TOKEN_ENV;
    // validate posts `pending`, finalize the outcome, in deploy and
    // pull-request runs; build and test run the repository's commands and
    // must never see the token.
    let full = config("full.yaml");
    assert_eq!(
        templates_with_env(&full, GITHUB_TOKEN_ENV),
        ["validate", "pr-validate", "finalize", "finalize-pr"]
    );
    let wt = render(&full, &RenderOptions::default())
        .get("WorkflowTemplate")
        .unwrap()
        .clone();
    let validate = wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "validate")
        .unwrap();
    let token = validate["container"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == GITHUB_TOKEN_ENV)
        .unwrap();
    assert_eq!(
        token["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "github-token", "key": "token", "optional": true})
    );
    // The templates holding it run validate, whatever a task passes.
    for name in ["validate", "pr-validate"] {
        let t = wt["spec"]["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap();
        assert_eq!(t["container"]["args"][0], "validate", "{name}");
    }
    // Without `githubStatus`, nobody gets it.
    assert!(templates_with_env(&config("cross-account.yaml"), GITHUB_TOKEN_ENV).is_empty());
}

/// Validate may end the run (a duplicate), and so may the pipeline stage
/// (superseded by its restart on a new topology): every task after each
/// runs only when its `run` output says the run goes on.
#[test]
fn tasks_after_validate_and_pipeline_run_only_when_the_run_goes_on() {
    let wt = render(&config("full.yaml"), &RenderOptions::default())
        .get("WorkflowTemplate")
        .unwrap()
        .clone();
    let main = wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "main")
        .unwrap();
    for task in main["dag"]["tasks"].as_array().unwrap() {
        let when = task.get("when").and_then(|w| w.as_str());
        let validate = "'{{tasks.validate.outputs.parameters.run}}' == 'continue'";
        let both = "'{{tasks.validate.outputs.parameters.run}}' == 'continue' \
                    && '{{tasks.pipeline.outputs.parameters.run}}' == 'continue'";
        match task["name"].as_str().unwrap() {
            "validate" => {
                assert_eq!(task["template"], "validate");
                assert_eq!(when, None);
            }
            "build" | "pipeline" => assert_eq!(when, Some(validate), "{}", task["name"]),
            // Every one, approvals included: Argo runs a task whose
            // dependency it skipped, so no task may rely on its predecessor's `when`.
            name => assert_eq!(when, Some(both), "{name}"),
        }
    }
    // The pipeline stage's template says whether the run goes on, as validate's does.
    let pipeline_stage = wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "pipeline-stage")
        .unwrap();
    assert_eq!(
        pipeline_stage["outputs"],
        serde_json::json!({"parameters": [{"name": "run", "valueFrom": {"path": "/tmp/aphex/outputs/run", "default": "continue"}}]})
    );
}

#[test]
fn commit_statuses_go_to_the_api_of_the_configured_github() {
    // (github settings, the API the finalize pod is pointed at)
    let cases = [
        ("{ owner: o, repo: r }", "https://api.github.com"),
        (
            "{ owner: o, repo: r, url: \"https://ghe.example.com\" }",
            "https://ghe.example.com/api/v3",
        ),
        (
            "{ owner: o, repo: r, url: \"https://ghe.example.com/\" }",
            "https://ghe.example.com/api/v3",
        ),
        (
            "{ owner: o, repo: r, url: \"https://ghe.example.com\", apiUrl: \"https://api.ghe.example.com/\" }",
            "https://api.ghe.example.com",
        ),
    ];
    for (github, api) in cases {
        let yaml = format!(
            "version: \"1.0\"\npipeline: {{ github: {github}, notifications: {{ githubStatus: true }} }}\n\
             build: {{ commands: [\"true\"] }}\nenvironments:\n  - name: dev\n    region: us-east-1\n    \
             account: \"123456789012\"\n    stacks: [{{ name: App, path: app.ts }}]\n"
        );
        let config = aphex_config::load_str("aphex-config.yaml", &yaml).expect("valid config");
        let wt = render(&config, &RenderOptions::default())
            .get("WorkflowTemplate")
            .unwrap()
            .clone();
        let finalize = wt["spec"]["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "finalize")
            .unwrap();
        let args: Vec<&str> = finalize["container"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.contains(&format!("--github-api-url={api}").as_str()),
            "{github}: {args:?}"
        );
        assert!(args.contains(&"--github-repository=o/r"), "{github}: {args:?}");
    }
}
