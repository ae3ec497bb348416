//! Operating a pipeline from the CLI against the fake API server
//! (`aphex_k8s::fake`, served on a loopback port): `aphex trigger`,
//! `status` and `approve`. The tests write Workflow status by hand, the way
//! Argo's controller would.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use aphex_k8s::fake::Fake;
use serde_json::{Value, json};

const CONFIG: &str = r#"version: "1.0"
pipeline:
  name: shop
  namespace: ci
  github: { owner: my-org, repo: shop, branch: main }
build:
  commands: ["npm ci"]
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks: [{ name: Web, path: lib/web.ts }]
  - name: prod
    region: us-east-1
    account: "210987654321"
    approval: manual
    stacks: [{ name: Web, path: lib/web.ts }]
"#;

const SHA: &str = "4f0c3c8e5d2a1b0c9e8f7a6b5c4d3e2f1a0b9c8d";
const WORKFLOWS: &str = "/apis/argoproj.io/v1alpha1/namespaces/ci/workflows";

/// A directory with the config and a kubeconfig whose current context
/// (user `jane`) points at a fake API server.
struct Cluster {
    fake: Fake,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Self {
        let fake = Fake::serving(&["argoproj.io/v1alpha1", "v1"]);
        let address = fake.serve();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("aphex-config.yaml"), CONFIG).unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: fake\n  cluster: {{server: 'http://{address}'}}\n\
             users:\n- name: jane\n  user: {{}}\n- name: 'arn:aws:eks:us-east-1:1:cluster/x'\n  user: {{}}\n\
             contexts:\n- name: fake\n  context: {{cluster: fake, user: jane}}\n\
             - name: eks\n  context: {{cluster: fake, user: 'arn:aws:eks:us-east-1:1:cluster/x'}}\n\
             current-context: fake\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        Cluster { fake, dir }
    }

    fn aphex(&self, args: &[&str]) -> Output {
        aphex_in(self.dir.path(), args)
    }

    /// Triggers a run and returns its name.
    fn trigger(&self) -> String {
        let o = self.aphex(&["trigger", "--commit", SHA]);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let workflows = self.fake.objects(&format!("{WORKFLOWS}/"));
        workflows.last().unwrap().1["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Writes `status` on run `name`, as the controller does.
    fn set_status(&self, name: &str, status: Value) {
        let path = format!("{WORKFLOWS}/{name}");
        let mut workflow = self.fake.object(&path).unwrap();
        workflow["status"] = status;
        self.fake.put(&path, workflow);
    }

    fn workflow(&self, name: &str) -> Value {
        self.fake.object(&format!("{WORKFLOWS}/{name}")).unwrap()
    }
}

fn aphex_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the aphex binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A run that built and waits at the prod gate, as Argo records it.
fn waiting_at_prod(name: &str) -> Value {
    json!({
        "phase": "Running",
        "startedAt": "2026-01-01T00:00:00Z",
        "nodes": {
            name: {"id": name, "name": name, "displayName": name, "type": "DAG", "phase": "Running",
                "startedAt": "2026-01-01T00:00:00Z"},
            format!("{name}-1"): {"id": format!("{name}-1"), "name": format!("{name}.build"),
                "displayName": "build", "type": "Retry", "phase": "Succeeded",
                "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:02:01Z"},
            format!("{name}-2"): {"id": format!("{name}-2"), "name": format!("{name}.build(0)"),
                "displayName": "build(0)", "type": "Pod", "phase": "Succeeded",
                "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:02:01Z"},
            format!("{name}-3"): {"id": format!("{name}-3"), "name": format!("{name}.approve-prod"),
                "displayName": "approve-prod", "type": "Suspend", "phase": "Running",
                "startedAt": "2026-01-01T00:10:00Z",
                "outputs": {"parameters": [
                    {"name": "approved-by", "default": "", "valueFrom": {"supplied": {}, "default": ""}}]}},
        },
    })
}

/// A run that deployed dev to a risky change set and waits at dev's risk
/// gate (the `risk` task, template `risk-gate`, of dev's `gated-deploy`
/// DAG, its supplied output), as Argo records a nested DAG.
fn waiting_at_risk_dev(name: &str) -> Value {
    let supplied =
        |output: &str| json!({"name": output, "default": "", "valueFrom": {"supplied": {}, "default": ""}});
    json!({
        "phase": "Running",
        "startedAt": "2026-01-01T00:00:00Z",
        "nodes": {
            name: {"id": name, "name": name, "displayName": name, "type": "DAG", "phase": "Running",
                "startedAt": "2026-01-01T00:00:00Z"},
            format!("{name}-d"): {"id": format!("{name}-d"), "name": format!("{name}.deploy-dev"),
                "displayName": "deploy-dev", "type": "DAG", "templateName": "gated-deploy", "phase": "Running",
                "startedAt": "2026-01-01T00:00:01Z", "boundaryID": name},
            format!("{name}-1"): {"id": format!("{name}-1"), "name": format!("{name}.deploy-dev.deploy"),
                "displayName": "deploy", "type": "Retry", "phase": "Succeeded", "boundaryID": format!("{name}-d"),
                "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:03:01Z"},
            format!("{name}-2"): {"id": format!("{name}-2"), "name": format!("{name}.deploy-dev.risk"),
                "displayName": "risk", "type": "Suspend", "templateName": "risk-gate", "phase": "Running",
                "startedAt": "2026-01-01T00:03:02Z", "boundaryID": format!("{name}-d"),
                "outputs": {"parameters": [supplied("approved-by")]}},
        },
    })
}

fn workflow_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/reference/strict/workflow.strict.schema.json");
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())),
        )
        .unwrap();
        jsonschema::validator_for(&schema).unwrap()
    })
}

#[test]
fn a_dry_run_prints_a_strict_valid_workflow_with_the_sensors_parameters_and_contacts_nothing() {
    let cluster = Cluster::new();
    for args in [
        vec!["trigger", "--dry-run", "-o", "yaml", "--commit", SHA],
        vec![
            "trigger",
            "--dry-run",
            "-o",
            "yaml",
            "--commit",
            SHA,
            "--as",
            "octo-cat",
        ],
    ] {
        let o = cluster.aphex(&args);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let workflow = aphex_config::tree::parse(&text(&o.stdout)).unwrap().to_json();
        let errors: Vec<String> = workflow_validator()
            .iter_errors(&workflow)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(workflow["metadata"]["namespace"], "ci");
        assert_eq!(workflow["spec"]["workflowTemplateRef"]["name"], "shop");
        assert_eq!(
            workflow["spec"]["arguments"]["parameters"],
            json!([{"name": "commit-sha", "value": SHA}, {"name": "pull-request", "value": ""}])
        );
        let labels = &workflow["metadata"]["labels"];
        assert_eq!(labels["aphex.dev/trigger"], "manual");
        let sender = if args.contains(&"--as") {
            "octo-cat"
        } else {
            "jane"
        };
        assert_eq!(labels["aphex.dev/sender"], sender);
    }
    assert!(cluster.fake.seen().is_empty(), "{:?}", cluster.fake.seen());
}

#[test]
fn trigger_refuses_another_branch_a_bad_commit_and_a_sender_that_cannot_be_a_label() {
    let cluster = Cluster::new();
    let cases: [(&[&str], &str); 4] = [
        (
            &["trigger", "--branch", "feature", "--commit", SHA],
            "`feature` is not the branch this pipeline deploys",
        ),
        (
            &["trigger", "--commit", "HEAD"],
            "--commit `HEAD` is not a commit SHA",
        ),
        (
            &["trigger", "--commit", SHA, "--as", "{{workflow.name}}"],
            "cannot be the sender",
        ),
        (
            &["trigger", "--commit", SHA, "--context", "eks"],
            "`arn:aws:eks:us-east-1:1:cluster/x` cannot be the sender",
        ),
    ];
    for (args, message) in cases {
        let o = cluster.aphex(args);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains(message), "{args:?}: {}", text(&o.stderr));
    }
    assert!(cluster.fake.objects(WORKFLOWS).is_empty());
    // Credentials that may not create Workflows: said, with how to check.
    cluster.fake.forbid("workflows");
    let o = cluster.aphex(&["trigger", "--commit", SHA]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("submitting a Workflow in namespace ci"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("`kubectl auth can-i patch workflows -n ci` checks"),
        "{}",
        text(&o.stderr)
    );
    let cluster = Cluster::new();
    // The configured branch, by either spelling, is accepted.
    let o = cluster.aphex(&["trigger", "--branch", "refs/heads/main", "--commit", SHA]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
}

#[test]
fn a_triggered_run_is_listed_shown_with_its_waiting_gate_and_approved_as_argo_would() {
    let cluster = Cluster::new();
    let name = cluster.trigger();
    let created = cluster.workflow(&name);
    assert_eq!(created["metadata"]["labels"]["aphex.dev/trigger"], "manual");
    assert_eq!(created["metadata"]["labels"]["aphex.dev/sender"], "jane");
    assert!(
        cluster
            .fake
            .seen()
            .iter()
            .any(|s| s.query.contains("fieldValidation=Strict"))
    );

    let o = cluster.aphex(&["status"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let listed = text(&o.stdout);
    let row = listed
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{listed}"));
    for column in ["Pending", &SHA[..12], "main", "manual", "jane"] {
        assert!(row.contains(column), "{column} in {row}");
    }

    cluster.set_status(&name, waiting_at_prod(&name));
    let o = cluster.aphex(&["status", &name]);
    let shown = text(&o.stdout);
    assert!(
        shown.contains(&format!("waiting for approval: aphex approve {name} --env prod")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("build") && l.contains("Succeeded") && l.contains("2m00s")),
        "{shown}"
    );
    let o = cluster.aphex(&["status", "-o", "json"]);
    let runs: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs[0]["stages"][1]["name"], "approve-prod");

    // A gate that is not there, and one not waiting, are refused.
    let o = cluster.aphex(&["approve", &name, "--env", "dev"]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("is not waiting at approve-dev or risk-dev; it waits at: approve-prod"),
        "{}",
        text(&o.stderr)
    );

    let o = cluster.aphex(&["approve", &name, "--env", "prod"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("approved prod of run {name} as jane\n"));
    let node = &cluster.workflow(&name)["status"]["nodes"][format!("{name}-3")];
    assert_eq!(node["phase"], "Succeeded");
    assert_eq!(node["message"], "approved by jane");
    assert!(node["finishedAt"].is_string());
    // As `argo node set --output-parameter` leaves it: a value, no valueFrom.
    assert_eq!(
        node["outputs"]["parameters"],
        json!([{"name": "approved-by", "default": "", "value": "jane"}])
    );

    let o = cluster.aphex(&["approve", &name, "--env", "prod", "--as", "sam"]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("gate approve-prod of run"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("is not waiting: it is Succeeded by jane"),
        "{}",
        text(&o.stderr)
    );
    let o = cluster.aphex(&["status", &name]);
    assert!(text(&o.stdout).contains("by jane"), "{}", text(&o.stdout));
}

#[test]
fn a_rejected_gate_fails_with_who_and_why() {
    let cluster = Cluster::new();
    let name = cluster.trigger();
    cluster.set_status(&name, waiting_at_prod(&name));
    let o = cluster.aphex(&[
        "approve",
        &name,
        "--env",
        "prod",
        "--reject",
        "--message",
        "not today",
        "--as",
        "sam@example.com",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let node = &cluster.workflow(&name)["status"]["nodes"][format!("{name}-3")];
    assert_eq!(node["phase"], "Failed");
    assert_eq!(node["message"], "rejected by sam@example.com: not today");
    assert_eq!(node["outputs"]["parameters"][0]["value"], "sam@example.com");
    // Names that could be an option or an expression never reach the cluster.
    let o = cluster.aphex(&["approve", &name, "--env", "prod", "--as", "{{x}}"]);
    assert_eq!(code(&o), 2);
    let o = cluster.aphex(&["approve", &name, "--env", "staging"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("the environments are: dev, prod"),
        "{}",
        text(&o.stderr)
    );
    let o = cluster.aphex(&["approve", "nope", "--env", "prod"]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("run nope not found in namespace ci"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn trigger_wait_follows_the_run_to_its_end_and_exits_with_its_outcome() {
    let cluster = Cluster::new();
    let child = Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(["trigger", "--commit", SHA, "--wait"])
        .current_dir(cluster.dir.path())
        .env("KUBECONFIG", cluster.dir.path().join("kubeconfig"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The controller's part: once the run exists, it fails.
    let name = loop {
        if let Some((_, w)) = cluster.fake.objects(&format!("{WORKFLOWS}/")).pop() {
            break w["metadata"]["name"].as_str().unwrap().to_owned();
        }
        std::thread::yield_now();
    };
    let mut status = waiting_at_prod(&name);
    status["phase"] = json!("Failed");
    status["message"] = json!("child 'x' failed");
    status["finishedAt"] = json!("2026-01-01T00:20:00Z");
    cluster.set_status(&name, status);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 1, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(&format!("run {name} Failed: child 'x' failed")),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("build: Succeeded"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn without_a_cluster_the_commands_say_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), CONFIG).unwrap();
    for args in [
        vec!["status"],
        vec!["approve", "x", "--env", "prod"],
        vec!["trigger", "--commit", SHA],
    ] {
        let o = aphex_in(dir.path(), &args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(
            text(&o.stderr).contains("KUBECONFIG"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    // A dry run needs no cluster, only a name.
    let o = aphex_in(
        dir.path(),
        &["trigger", "--dry-run", "-o", "json", "--commit", SHA],
    );
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("pass --as NAME"), "{}", text(&o.stderr));
}

#[test]
fn destroy_lists_everything_first_and_deletes_nothing_unconfirmed() {
    let cluster = Cluster::new();
    let o = Command::new(env!("CARGO_BIN_EXE_aphex"))
        .arg("destroy")
        .current_dir(cluster.dir.path())
        .env("KUBECONFIG", cluster.dir.path().join("kubeconfig"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    for listed in [
        "Sensor argo-events/shop\n",
        "WorkflowTemplate ci/shop",
        "Secret argo-events/shop-webhook",
        "the pipeline stack aphex-shop",
        "It keeps the artifact bucket",
        "pass --yes to delete without asking",
    ] {
        assert!(err.contains(listed), "{listed} in {err}");
    }
    // The Sensor goes first, the admission policy that guards the rest last.
    let sensor = err.find("Sensor argo-events/shop\n").unwrap();
    let policy = err.find("ValidatingAdmissionPolicy ").unwrap();
    assert!(
        sensor < err.find("WorkflowTemplate ci/shop").unwrap()
            && err.find("WorkflowTemplate ci/shop").unwrap() < policy,
        "{err}"
    );
    assert!(
        cluster.fake.seen().iter().all(|s| s.method == "GET"),
        "{:?}",
        cluster.fake.seen()
    );

    let o = cluster.aphex(&["destroy", "--stacks", "qa"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("--stacks qa: no such environment"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn without_a_commit_trigger_deploys_the_branch_head_git_ls_remote_reads() {
    let cluster = Cluster::new();
    // The configured repository (https://github.com/my-org/shop.git), served
    // from a local bare repository through git's own URL rewriting.
    let hosting = tempfile::tempdir().unwrap();
    let work = hosting.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    aphex_testkit::git(&work, &["init", "-q", "-b", "main"]);
    aphex_testkit::git(&work, &["commit", "-q", "--allow-empty", "-m", "one"]);
    let head = aphex_testkit::git(&work, &["rev-parse", "HEAD"]);
    let bare = hosting.path().join("my-org/shop.git");
    aphex_testkit::git(
        hosting.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let rewrite = |c: &mut Command| {
        c.env("GIT_CONFIG_COUNT", "1")
            .env(
                "GIT_CONFIG_KEY_0",
                format!("url.file://{}/.insteadOf", hosting.path().display()),
            )
            .env("GIT_CONFIG_VALUE_0", "https://github.com/");
    };
    let mut c = Command::new(env!("CARGO_BIN_EXE_aphex"));
    c.args(["trigger", "--dry-run", "-o", "json"])
        .current_dir(cluster.dir.path())
        .env("KUBECONFIG", cluster.dir.path().join("kubeconfig"));
    rewrite(&mut c);
    let o = c.output().unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let workflow: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        workflow["spec"]["arguments"]["parameters"][0]["value"],
        head.as_str()
    );

    // A repository without the branch: said, with what to do.
    aphex_testkit::git(&work, &["branch", "-q", "-m", "main", "trunk"]);
    std::fs::remove_dir_all(&bare).unwrap();
    aphex_testkit::git(
        hosting.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_aphex"));
    c.args(["trigger", "--dry-run", "-o", "json"])
        .current_dir(cluster.dir.path())
        .env("KUBECONFIG", cluster.dir.path().join("kubeconfig"));
    rewrite(&mut c);
    let o = c.output().unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("has no branch main"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("pass --commit SHA"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn status_watch_prints_again_when_the_run_changes_and_ends_with_it() {
    use std::io::{BufRead as _, BufReader, Read as _};

    let cluster = Cluster::new();
    let name = cluster.trigger();
    cluster.set_status(&name, waiting_at_prod(&name));
    let mut child = Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(["status", &name, "--watch"])
        .current_dir(cluster.dir.path())
        .env("KUBECONFIG", cluster.dir.path().join("kubeconfig"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    while !first.contains("waiting for approval") {
        assert!(stdout.read_line(&mut first).unwrap() > 0, "{first}");
    }
    let mut status = waiting_at_prod(&name);
    status["phase"] = json!("Succeeded");
    status["finishedAt"] = json!("2026-01-01T00:20:00Z");
    status["nodes"][format!("{name}-3")]["phase"] = json!("Succeeded");
    cluster.set_status(&name, status);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains(&format!("run {name}: Succeeded")), "{rest}");
    assert!(!rest.contains("waiting for approval"), "{rest}");
}

#[test]
fn a_waiting_risk_gate_is_shown_with_its_command_and_approved_naming_who() {
    let cluster = Cluster::new();
    let name = cluster.trigger();
    cluster.set_status(&name, waiting_at_risk_dev(&name));
    let o = cluster.aphex(&["status", &name]);
    let shown = text(&o.stdout);
    assert!(
        shown.lines().any(|l| l.starts_with("risk-dev")
            && l.contains("Running")
            && l.ends_with(&format!(
                "waiting for approval of risky changes: aphex approve {name} --env dev"
            ))),
        "{shown}"
    );
    let o = cluster.aphex(&["status", "-o", "wide"]);
    assert!(
        text(&o.stdout).contains("waiting: risk-dev"),
        "{}",
        text(&o.stdout)
    );

    // The command the status names decides the risk gate, not approve-dev.
    let o = cluster.aphex(&["approve", &name, "--env", "dev"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("approved the risky changes of dev of run {name} as jane\n")
    );
    let node = &cluster.workflow(&name)["status"]["nodes"][format!("{name}-2")];
    assert_eq!(node["phase"], "Succeeded");
    assert_eq!(node["message"], "risk approved by jane");
    assert!(node["finishedAt"].is_string());
    assert_eq!(
        node["outputs"]["parameters"],
        json!([{"name": "approved-by", "default": "", "value": "jane"}])
    );
    let o = cluster.aphex(&["status", &name]);
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l.starts_with("risk-dev") && l.ends_with("by jane")),
        "{}",
        text(&o.stdout)
    );
    let o = cluster.aphex(&["approve", &name, "--env", "dev", "--reject"]);
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("gate risk-dev of run")
            && text(&o.stderr).contains("is not waiting: it is Succeeded by jane"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn a_rejected_risk_gate_fails_as_an_approval_gate_does_naming_who_and_why() {
    let cluster = Cluster::new();
    let name = cluster.trigger();
    cluster.set_status(&name, waiting_at_risk_dev(&name));
    let o = cluster.aphex(&[
        "approve",
        &name,
        "--env",
        "dev",
        "--reject",
        "--message",
        "not during the sale",
        "--as",
        "sam@example.com",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("rejected the risky changes of dev of run {name} as sam@example.com\n")
    );
    let node = &cluster.workflow(&name)["status"]["nodes"][format!("{name}-2")];
    // Failed: the run stops at the gate, and finalize records dev's
    // deploy, still paused there, as failed.
    assert_eq!(node["phase"], "Failed");
    assert_eq!(
        node["message"],
        "rejected by sam@example.com: not during the sale"
    );
    assert_eq!(
        node["outputs"]["parameters"],
        json!([{"name": "approved-by", "default": "", "value": "sam@example.com"}])
    );
    let o = cluster.aphex(&["status", &name]);
    assert!(
        text(&o.stdout)
            .lines()
            .any(|l| l.starts_with("risk-dev")
                && l.ends_with("rejected by sam@example.com: not during the sale")),
        "{}",
        text(&o.stdout)
    );
}
