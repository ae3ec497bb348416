//! What the rendered objects promise about identities and permissions
//! (docs/security.md): the pinned service accounts, the pull-request
//! account apart from the deploy one, which pods get a Kubernetes token,
//! the security context of every container, and IAM policies that name
//! only configured accounts.

mod common;

use aphex_template::rbac::{
    argo_executor_service_account, pull_request_service_account, workflow_service_account,
};
use aphex_template::workflow::{PIPELINE_STAGE_TEMPLATE, container_security_context, pod_security_context};
use aphex_template::{RenderOptions, render};
use common::{CONFIGS, config};
use serde_json::{Value, json};

fn templates(wt: &Value) -> &Vec<Value> {
    wt["spec"]["templates"].as_array().unwrap()
}

/// The templates that become pods (a container), with the account each runs as.
fn pods(wt: &Value) -> Vec<(&str, &str)> {
    let default = wt["spec"]["serviceAccountName"].as_str().unwrap();
    templates(wt)
        .iter()
        .filter(|t| t.get("container").is_some())
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["serviceAccountName"].as_str().unwrap_or(default),
            )
        })
        .collect()
}

/// The template a task of DAG `dag` runs.
fn task_templates<'a>(wt: &'a Value, dag: &str) -> Vec<&'a str> {
    templates(wt).iter().find(|t| t["name"] == dag).unwrap()["dag"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["template"].as_str().unwrap())
        .collect()
}

#[test]
fn the_template_runs_as_the_pipelines_own_accounts() {
    for name in CONFIGS {
        let config = config(name);
        let r = render(&config, &RenderOptions::default());
        let wt = r.get("WorkflowTemplate").unwrap();
        let (sa, pr) = (
            workflow_service_account(&config),
            pull_request_service_account(&config),
        );
        assert_eq!(wt["spec"]["serviceAccountName"], json!(sa), "{name}");
        assert_eq!(
            wt["spec"]["executor"]["serviceAccountName"],
            json!(argo_executor_service_account(&config)),
            "{name}"
        );
        for (template, account) in pods(wt) {
            let want = if template.starts_with("pr-") || template.ends_with("-pr") {
                &pr
            } else {
                &sa
            };
            assert_eq!(account, want, "{name}: template {template}");
        }
        // Every task of validate-pr runs as the pull-request account, every
        // task of a deploy run as the workflow account.
        assert!(
            task_templates(wt, "validate-pr")
                .iter()
                .all(|t| ["pr-stage", "pr-validate"].contains(t)),
            "{name}"
        );
        assert!(
            task_templates(wt, "main").iter().all(|t| [
                "validate",
                "stage",
                "pipeline-stage",
                "approval",
                "gated-deploy"
            ]
            .contains(t)),
            "{name}"
        );
        // An environment's deploy with a risk gate: the stage pods and the
        // suspend, nothing else.
        if templates(wt).iter().any(|t| t["name"] == "gated-deploy") {
            assert_eq!(
                task_templates(wt, "gated-deploy"),
                ["stage", "risk-gate", "stage"],
                "{name}"
            );
        }
    }
}

#[test]
fn two_accounts_each_with_its_own_role() {
    let config = config("full.yaml");
    let options = RenderOptions {
        executor_role_arn: Some("arn:aws:iam::123456789012:role/run".into()),
        pr_role_arn: Some("arn:aws:iam::123456789012:role/pr".into()),
        artifact_bucket: None,
    };
    let r = render(&config, &options);
    let account = |name: &str| {
        r.manifests
            .iter()
            .find(|m| m.kind == "ServiceAccount" && m.name == name)
            .unwrap_or_else(|| panic!("no ServiceAccount {name}"))
            .value
            .clone()
    };
    let irsa = |v: &Value| v["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].clone();
    assert_eq!(
        irsa(&account(&workflow_service_account(&config))),
        json!("arn:aws:iam::123456789012:role/run")
    );
    assert_eq!(
        irsa(&account(&pull_request_service_account(&config))),
        json!("arn:aws:iam::123456789012:role/pr")
    );
    // The pull-request account has no Kubernetes permission at all.
    let pr = pull_request_service_account(&config);
    assert!(
        r.manifests
            .iter()
            .filter(|m| m.kind == "RoleBinding")
            .all(|m| m.value["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["name"] != json!(pr))),
        "no RoleBinding names {pr}"
    );
    // The workflow account may get and patch its own WorkflowTemplate and
    // list and create Workflows (the pipeline stage's restart on a new
    // topology; the admission policy admits only Workflows of this
    // pipeline's template), nothing else.
    let role = r
        .manifests
        .iter()
        .find(|m| m.kind == "Role" && m.name == "my-app-executor")
        .unwrap();
    assert_eq!(
        role.value["rules"],
        json!([
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "resourceNames": ["my-app"], "verbs": ["get", "patch"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "list"]},
        ])
    );
    // Two roles in the pipeline stack, each trusting its own account.
    let stack = &r.pipeline_stack;
    let trust = |role: &str| stack["Resources"][role]["Properties"]["AssumeRolePolicyDocument"].to_string();
    assert!(
        trust("WorkflowExecutionRole").contains(":aphex-my-app\\\""),
        "{}",
        trust("WorkflowExecutionRole")
    );
    assert!(
        trust("PullRequestRole").contains(":aphex-my-app.pr\\\""),
        "{}",
        trust("PullRequestRole")
    );
}

#[test]
fn only_the_pipeline_stage_gets_a_kubernetes_token() {
    for name in CONFIGS {
        let r = render(&config(name), &RenderOptions::default());
        let wt = r.get("WorkflowTemplate").unwrap();
        assert_eq!(wt["spec"]["automountServiceAccountToken"], json!(false), "{name}");
        let with_token: Vec<&str> = templates(wt)
            .iter()
            .filter(|t| t["automountServiceAccountToken"] == json!(true))
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(with_token, [PIPELINE_STAGE_TEMPLATE], "{name}");
        // ... and it runs the pipeline stage whatever it is passed.
        let pipeline_stage = templates(wt)
            .iter()
            .find(|t| t["name"] == PIPELINE_STAGE_TEMPLATE)
            .unwrap();
        assert_eq!(pipeline_stage["container"]["args"][0], "pipeline", "{name}");
        // The pipeline's accounts do not mount tokens by default either (the
        // Sensor's pod, which creates Workflows, needs its own).
        let sensor = aphex_template::events::sensor_service_account(&config(name));
        for m in r
            .manifests
            .iter()
            .filter(|m| m.kind == "ServiceAccount" && m.name != sensor)
        {
            assert_eq!(
                m.value["automountServiceAccountToken"],
                json!(false),
                "{name}: {}",
                m.name
            );
        }
    }
}

/// The boundary of the restart (docs/security.md): only the pipeline
/// stage's pod holds the token that may create Workflows, and a pull
/// request's run never reaches it: `validate-pr` has no pipeline task, its
/// templates run as the pull-request account without a token, and no Role
/// is bound to that account.
#[test]
fn a_pull_requests_run_can_restart_nothing() {
    for name in CONFIGS {
        let config = config(name);
        let r = render(&config, &RenderOptions::default());
        let wt = r.get("WorkflowTemplate").unwrap();
        let validate_pr = templates(wt)
            .iter()
            .find(|t| t["name"] == aphex_template::workflow::VALIDATE_PR_ENTRYPOINT)
            .unwrap();
        let pr_account = pull_request_service_account(&config);
        for task in validate_pr["dag"]["tasks"].as_array().unwrap() {
            let template = task["template"].as_str().unwrap();
            assert_ne!(template, PIPELINE_STAGE_TEMPLATE, "{name}: {task}");
            let t = templates(wt).iter().find(|t| t["name"] == template).unwrap();
            assert_eq!(t["serviceAccountName"], json!(pr_account), "{name}: {template}");
            assert_ne!(
                t["automountServiceAccountToken"],
                json!(true),
                "{name}: {template}"
            );
            assert_ne!(t["container"]["args"][0], json!("pipeline"), "{name}: {template}");
        }
        // The Roles that may create Workflows are bound to the workflow
        // account (whose token only `pipeline-stage` mounts) and the
        // Sensor's, never to the pull-request account.
        let creates = |m: &&render::Manifest| {
            m.kind == "Role"
                && m.value["rules"].as_array().unwrap().iter().any(|rule| {
                    rule["resources"]
                        .as_array()
                        .unwrap()
                        .contains(&json!("workflows"))
                        && rule["verbs"].as_array().unwrap().contains(&json!("create"))
                })
        };
        for role in r.manifests.iter().filter(creates) {
            let binding = r
                .manifests
                .iter()
                .find(|m| m.kind == "RoleBinding" && m.value["roleRef"]["name"] == json!(role.name))
                .unwrap();
            let subject = binding.value["subjects"][0]["name"].as_str().unwrap();
            assert!(
                subject == workflow_service_account(&config)
                    || subject == aphex_template::events::sensor_service_account(&config),
                "{name}: {} is bound to {subject}",
                role.name
            );
        }
    }
}

#[test]
fn every_container_runs_non_root_without_privileges() {
    assert_eq!(
        pod_security_context(),
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        container_security_context(),
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true})
    );
    for name in CONFIGS {
        let wt = render(&config(name), &RenderOptions::default())
            .get("WorkflowTemplate")
            .unwrap()
            .clone();
        assert_eq!(wt["spec"]["securityContext"], pod_security_context(), "{name}");
        for t in templates(&wt).iter().filter(|t| t.get("container").is_some()) {
            let c = &t["container"];
            assert_eq!(
                c["securityContext"],
                container_security_context(),
                "{name}: {}",
                t["name"]
            );
            assert!(
                c["resources"]["requests"]["cpu"].is_string(),
                "{name}: {}",
                t["name"]
            );
            assert_eq!(
                c["resources"]["limits"]["memory"],
                c["resources"]["requests"]["memory"]
            );
        }
    }
    // `pipeline.resources` reaches every container.
    let mut cfg = config("seed.yaml");
    cfg.pipeline.get_or_insert_with(Default::default).resources = Some(aphex_config::Resources {
        cpu: Some("2".into()),
        memory: Some("6Gi".into()),
    });
    let wt = render(&cfg, &RenderOptions::default())
        .get("WorkflowTemplate")
        .unwrap()
        .clone();
    for t in templates(&wt).iter().filter(|t| t.get("container").is_some()) {
        assert_eq!(
            t["container"]["resources"],
            json!({"requests": {"cpu": "2", "memory": "6Gi"}, "limits": {"memory": "6Gi"}})
        );
    }
}

/// Every `sts:AssumeRole` resource of a role's policy.
/// The pipeline stack's own account's deploy role (the pipeline stage
/// deploys the stack through it).
const HOME_DEPLOY_ROLE: &str = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}";

/// Every `sts:AssumeRole` resource of a role's policy but the home
/// account's deploy role, and whether that one was there.
fn assumable(stack: &Value, role: &str) -> (Vec<String>, bool) {
    let mut home = false;
    let arns = stack["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"] == "sts:AssumeRole")
        .flat_map(|s| s["Resource"].as_array().unwrap().iter())
        .filter_map(|r| match r.as_str() {
            Some(arn) => Some(arn.to_owned()),
            None => {
                assert_eq!(r, &json!({"Fn::Sub": HOME_DEPLOY_ROLE}), "{role}");
                home = true;
                None
            }
        })
        .collect();
    (arns, home)
}

#[test]
fn roles_assume_only_configured_accounts_roles() {
    for name in CONFIGS {
        let config = config(name);
        let stack = render(&config, &RenderOptions::default()).pipeline_stack;
        let accounts: Vec<&str> = config.environments.iter().map(|e| e.account.as_str()).collect();
        for (role, kinds) in [
            (
                "WorkflowExecutionRole",
                &["deploy-role", "file-publishing-role", "lookup-role"][..],
            ),
            ("PullRequestRole", &["lookup-role"][..]),
        ] {
            let (arns, home) = assumable(&stack, role);
            assert!(!arns.is_empty(), "{name}: {role}");
            assert_eq!(home, role == "WorkflowExecutionRole", "{name}: {role}");
            for arn in &arns {
                assert!(!arn.contains('*'), "{name}: {role} may assume a wildcard: {arn}");
                // arn:<partition>:iam::<account>:role/<name>
                let account = arn.split(':').nth(4).unwrap();
                assert!(
                    accounts.contains(&account),
                    "{name}: {role}: {arn} names no configured account"
                );
                let configured_role = config
                    .environments
                    .iter()
                    .any(|e| e.role_arn.as_deref() == Some(arn.as_str()));
                if !configured_role {
                    assert!(
                        kinds
                            .iter()
                            .any(|k| arn.contains(&format!("role/cdk-hnb659fds-{k}-{account}-"))),
                        "{name}: {role}: {arn}"
                    );
                }
            }
            if role == "PullRequestRole" {
                assert!(
                    arns.iter().all(|a| a.contains("-lookup-role-")),
                    "{name}: {arns:?}"
                );
            }
        }
        // Metrics only in the pipeline's own namespace, from both roles.
        let text = stack.to_string();
        let pinned = format!("\"cloudwatch:namespace\":\"Aphex/{}\"", config.pipeline_name());
        assert_eq!(text.matches(&pinned).count(), 2, "{name}");
        // The pull-request role writes only under the pipeline's pr/ prefix
        // and changes no stack.
        let pr = stack["Resources"]["PullRequestRole"].to_string();
        assert!(!pr.contains("cloudformation:"), "{name}");
        assert!(
            pr.contains(&format!("/{}/pr/*", config.pipeline_name())),
            "{name}"
        );
        assert_eq!(
            stack["Resources"]["WorkflowExecutionRole"]["Properties"]["MaxSessionDuration"],
            json!(3600)
        );
    }
}
