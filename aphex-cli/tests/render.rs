//! CLI tests of `aphex plan`, `aphex render` and `aphex webhook simulate`:
//! each runs the real binary in a fresh temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONFIG: &str = r#"version: "1.0"
pipeline:
  name: shop
  github: { owner: Codertocat, repo: Hello-World, branch: master }
build:
  commands: ["npm ci"]
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks:
      - { name: Network, path: lib/network.ts }
      - { name: App, path: lib/app.ts, dependsOn: [Network] }
    tests: { commands: ["npm test"] }
  - name: prod
    region: eu-west-1
    account: "210987654321"
    approval: manual
    concurrency: 2
    stacks:
      - { name: Network, path: lib/network.ts }
      - { name: Data, path: lib/data.ts }
      - { name: App, path: lib/app.ts, dependsOn: [Network, Data] }
"#;

/// A fresh directory holding `aphex-config.yaml`.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), CONFIG).unwrap();
    dir
}

fn aphex(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running aphex")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn webhook(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/github-webhooks")
        .join(name);
    assert!(
        p.is_file(),
        "missing reference payload {} (CI provides ../shared/reference)",
        p.display()
    );
    p
}

#[test]
fn render_prints_every_manifest_as_yaml() {
    let dir = project();
    let o = aphex(dir.path(), &["render"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let kinds: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(
        kinds,
        [
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ServiceAccount",
            "ServiceAccount",
            "Secret",
            "Role",
            "RoleBinding",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "WorkflowTemplate",
            "EventSource",
            "Sensor"
        ]
    );
    assert_eq!(out.matches("\n---\n").count(), kinds.len() - 1);
}

#[test]
fn render_out_writes_one_file_per_object_and_the_stack_template() {
    let dir = project();
    let o = aphex(dir.path(), &["render", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 17, "{names:?}");
    assert!(
        names.contains(&"14-argo-workflowtemplate-shop.yaml".to_owned()),
        "{names:?}"
    );
    // Cluster-wide objects have no namespace in their name.
    assert!(
        names.contains(&"01-_cluster-validatingadmissionpolicy-shop.argo.aphex.dev.yaml".to_owned()),
        "{names:?}"
    );
    let stack: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/pipeline-stack.template.json")).unwrap(),
    )
    .unwrap();
    assert!(stack["Outputs"]["WorkflowExecutionRoleArn"].is_object());
    assert_eq!(stdout(&o).lines().count(), 17);
}

#[test]
fn render_out_leaves_another_pipelines_manifests_alone() {
    let dir = project();
    let o = aphex(dir.path(), &["render", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let shop: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| l.ends_with(".yaml"))
        .map(str::to_owned)
        .collect();
    assert!(shop.len() >= 5, "{shop:?}");

    // A second pipeline rendered into the same directory.
    let pay = CONFIG
        .replace("name: shop", "name: pay")
        .replace("repo: Hello-World", "repo: Payments");
    std::fs::write(dir.path().join("pay.yaml"), pay).unwrap();
    let o = aphex(dir.path(), &["render", "pay.yaml", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("removed"), "{}", stderr(&o));
    for file in &shop {
        assert!(
            dir.path().join(file).is_file(),
            "{file} of pipeline shop was removed"
        );
    }
}

#[test]
fn render_out_removes_its_own_files_that_are_no_longer_rendered_and_nothing_else() {
    let dir = project();
    let o = aphex(dir.path(), &["render", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.path().join("out");
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let events: Vec<&String> = before
        .iter()
        .filter(|n| n.contains("-eventsource-") || n.contains("-sensor-"))
        .collect();
    assert!(!events.is_empty(), "{before:?}");
    // Files that are not ours, or do not look like ours, stay.
    std::fs::write(out.join("99-notes.yaml"), "kind: ConfigMap\n").unwrap();
    std::fs::write(out.join("README.md"), "mine\n").unwrap();

    // Without `github` there is no EventSource or Sensor any more.
    let config = CONFIG.replace(
        "  github: { owner: Codertocat, repo: Hello-World, branch: master }\n",
        "",
    );
    std::fs::write(dir.path().join("aphex-config.yaml"), config).unwrap();
    let o = aphex(dir.path(), &["render", "--out", "out"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = listing();
    for name in &events {
        assert!(!after.contains(name), "{name} should be gone: {after:?}");
        assert!(
            stderr(&o).contains(&format!("removed out/{name} (no longer rendered)")),
            "{}",
            stderr(&o)
        );
    }
    for mine in ["99-notes.yaml", "README.md"] {
        assert!(after.contains(&mine.to_owned()), "{mine} kept: {after:?}");
    }
    assert_eq!(after.len(), stdout(&o).lines().count() + 2, "{after:?}");
}

#[test]
fn render_pipeline_stack_prints_the_cloudformation_json() {
    let dir = project();
    let o = aphex(dir.path(), &["render", "--pipeline-stack"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stack: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(stack["AWSTemplateFormatVersion"], "2010-09-09");
}

#[test]
fn render_with_a_role_arn_annotates_the_executor() {
    let dir = project();
    let o = aphex(
        dir.path(),
        &["render", "--role-arn", "arn:aws:iam::123456789012:role/x"],
    );
    assert!(stdout(&o).contains("eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/x"));
}

#[test]
fn an_invalid_config_exits_1_with_diagnostics() {
    let dir = project();
    std::fs::write(
        dir.path().join("bad.yaml"),
        CONFIG.replace("environments:", "environmets:"),
    )
    .unwrap();
    for cmd in ["render", "plan"] {
        let o = aphex(dir.path(), &[cmd, "bad.yaml"]);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        assert!(
            stdout(&o).is_empty(),
            "{cmd} printed output for an invalid config"
        );
        assert!(stderr(&o).contains("environmets"), "{cmd}: {}", stderr(&o));
    }
}

#[test]
fn a_missing_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = aphex(dir.path(), &["render"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("aphex-config.yaml"), "{}", stderr(&o));
}

#[test]
fn plan_shows_stages_order_and_waves() {
    let dir = project();
    let o = aphex(dir.path(), &["plan"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for expected in [
        "1. validate",
        "5. test-dev",
        "6. approve-prod",
        "7. deploy-prod",
        "order: Network -> Data -> App",
        "waves (concurrency 2): [Network, Data] [App]",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
}

#[test]
fn plan_formats() {
    let dir = project();
    let json = stdout(&aphex(dir.path(), &["plan", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["stages"][6]["name"], "deploy-prod");
    assert_eq!(v["stages"][6]["dependsOn"][0], "approve-prod");
    assert_eq!(v["environments"][1]["waves"][0][1], "Data");
    let mermaid = stdout(&aphex(dir.path(), &["plan", "--format", "mermaid"]));
    assert!(
        mermaid.starts_with("flowchart TD\n") && mermaid.contains("s_approve_prod --> s_deploy_prod"),
        "{mermaid}"
    );
    let dot = stdout(&aphex(dir.path(), &["plan", "--format", "dot"]));
    assert!(
        dot.starts_with("digraph") && dot.contains("\"approve-prod\" -> \"deploy-prod\";"),
        "{dot}"
    );
    let bad = aphex(dir.path(), &["plan", "--format", "svg"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn webhook_simulate_a_push_to_the_branch() {
    let dir = project();
    let payload = webhook("push-with-new-branch.json");
    let o = aphex(
        dir.path(),
        &[
            "webhook",
            "simulate",
            "--event",
            "push",
            "--payload",
            payload.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["trigger"], "deploy");
    assert_eq!(
        v["parameters"]["commit-sha"],
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    );
    // Only what the Sensor can check: the repository and branch are the
    // WorkflowTemplate's own.
    assert_eq!(v["parameters"]["pull-request"], "");
    assert_eq!(v["parameters"].as_object().unwrap().len(), 2, "{v}");
}

#[test]
fn webhook_simulate_text_for_a_tag_push() {
    let dir = project();
    let payload = webhook("push.json");
    let o = aphex(
        dir.path(),
        &[
            "webhook",
            "simulate",
            "--event",
            "push",
            "--payload",
            payload.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.starts_with("trigger: none\nreason: "), "{out}");
}

#[test]
fn webhook_simulate_skips_marked_commits_and_ignored_bots() {
    let dir = project();
    let config = CONFIG.replace(
        "branch: master }",
        "branch: master, ignoreSenders: [\"github-actions[bot]\"] }",
    );
    std::fs::write(dir.path().join("aphex-config.yaml"), config).unwrap();
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(webhook("push-with-new-branch.json")).unwrap()).unwrap();
    let simulate = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut payload = original.clone();
        edit(&mut payload);
        let file = dir.path().join("delivery.json");
        std::fs::write(&file, payload.to_string()).unwrap();
        let o = aphex(
            dir.path(),
            &[
                "webhook",
                "simulate",
                "--event",
                "push",
                "--payload",
                file.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let out = simulate(&|p| p["head_commit"]["message"] = "chore: release 1.2.3 [skip ci]".into());
    assert!(
        out.starts_with("trigger: none\nreason: no trigger: trigger `deploy`: `body.head_commit.message` contains `[skip ci]`"),
        "{out}"
    );
    let out = simulate(&|p| p["sender"]["login"] = "GitHub-Actions[bot]".into());
    assert!(
        out.contains(
            "`body.sender.login` is `github-actions[bot]`, which pipeline.github.ignoreSenders ignores"
        ),
        "{out}"
    );
    let out = simulate(&|_| {});
    assert!(out.starts_with("trigger: deploy\n"), "{out}");
}

#[test]
fn webhook_signatures_are_verified() {
    let dir = project();
    let payload = webhook("pull_request-opened.json");
    let body = std::fs::read(&payload).unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    let good = aphex_template::simulate::signature_header(b"s3cret", &body);
    let run = |sig: &str| {
        aphex(
            dir.path(),
            &[
                "webhook",
                "simulate",
                "--event",
                "pull_request",
                "--payload",
                payload.to_str().unwrap(),
                "--secret-file",
                "secret",
                "--signature",
                sig,
                "--format",
                "json",
            ],
        )
    };
    let o = run(&good);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"trigger\": \"validate\""));
    let bad = aphex_template::simulate::signature_header(b"other", &body);
    let o = run(&bad);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).contains("does not match"), "{}", stderr(&o));
    // A signature without a secret is a usage error.
    let o = aphex(
        dir.path(),
        &[
            "webhook",
            "simulate",
            "--event",
            "ping",
            "--payload",
            payload.to_str().unwrap(),
            "--signature",
            &good,
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn plan_compare_shows_the_topology_diff() {
    let dir = project();
    let old = CONFIG.replace("    approval: manual\n", "");
    std::fs::write(dir.path().join("old.yaml"), old).unwrap();
    let o = aphex(dir.path(), &["plan", "--compare", "old.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "~ environment prod: approval: none -> manual\n+ stage approve-prod\n"
    );
    let o = aphex(
        dir.path(),
        &["plan", "--compare", "aphex-config.yaml", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["environmentsAdded"], serde_json::json!([]));
}
