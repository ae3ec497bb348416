//! The webhook simulator on GitHub's real payloads and on edited copies an
//! attacker could send, and a cross-check that the *rendered* Sensor,
//! evaluated the way Argo Events does (unanchored RE2 matches on gjson
//! strings, `!=` negating), agrees with the simulator. No delivery may
//! start a run carrying a value the attacker chose beyond a commit SHA and
//! a pull request's number.

mod common;

use aphex_config::Config;
use aphex_template::events::sensor;
use aphex_template::simulate::{Outcome, simulate};
use aphex_template::triggers::{as_gjson_string, lookup};
use common::{config, webhook};
use proptest::prelude::*;
use serde_json::{Value, json};

const HEAD_SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

/// cross-account.yaml watches Codertocat/Hello-World, branch master.
fn master() -> Config {
    config("cross-account.yaml")
}

fn run(event: &str, file: &str) -> Outcome {
    let cfg = master();
    let (_, payload) = webhook(file);
    let out = simulate(&cfg, event, &payload);
    assert_eq!(
        rendered_sensor_outcome(&cfg, event, &payload),
        (out.trigger, out.parameters.clone().into_iter().collect())
    );
    out
}

#[test]
fn a_push_to_the_branch_deploys_its_after_sha() {
    let out = run("push", "push-with-new-branch.json");
    assert_eq!(out.trigger, "deploy", "{}", out.reason);
    assert_eq!(
        out.parameters["commit-sha"],
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    );
    // The branch and the repository are the WorkflowTemplate's own.
    assert_eq!(out.parameters["pull-request"], "");
    assert_eq!(out.parameters.len(), 2, "{:?}", out.parameters);
}

#[test]
fn a_tag_push_triggers_nothing() {
    for file in ["push.json", "push-with-organization.json"] {
        let out = run("push", file);
        assert_eq!(out.trigger, "none", "{file}");
        assert!(out.reason.contains("refs/tags/simple-tag"), "{}", out.reason);
        assert!(out.parameters.is_empty());
    }
}

#[test]
fn deleting_the_branch_triggers_nothing() {
    let cfg = master();
    let (_, mut payload) = webhook("push-with-new-branch.json");
    payload["after"] = json!("0000000000000000000000000000000000000000");
    payload["deleted"] = json!(true);
    let out = simulate(&cfg, "push", &payload);
    assert_eq!(out.trigger, "none");
    assert!(out.reason.contains("body.after"), "{}", out.reason);
    assert_eq!(rendered_sensor_outcome(&cfg, "push", &payload).0, "none");
}

#[test]
fn a_push_to_another_branch_triggers_nothing() {
    let cfg = config("full.yaml"); // branch main
    let (_, payload) = webhook("push-with-new-branch.json");
    assert_eq!(simulate(&cfg, "push", &payload).trigger, "none");
    assert_eq!(rendered_sensor_outcome(&cfg, "push", &payload).0, "none");
}

#[test]
fn pull_requests_opened_and_synchronized_validate_the_head_sha() {
    for file in ["pull_request-opened.json", "pull_request-synchronize.json"] {
        let out = run("pull_request", file);
        assert_eq!(out.trigger, "validate", "{file}: {}", out.reason);
        assert_eq!(out.parameters["commit-sha"], HEAD_SHA);
        // The number, not the head ref (free text a pusher chooses).
        assert_eq!(out.parameters["pull-request"], "2");
        assert_eq!(out.parameters.len(), 2, "{:?}", out.parameters);
    }
}

#[test]
fn closed_pull_requests_and_pings_trigger_nothing() {
    let out = run("pull_request", "pull_request-closed.json");
    assert_eq!(out.trigger, "none");
    assert!(out.reason.contains("`closed`"), "{}", out.reason);
    let out = run("ping", "ping.json");
    assert_eq!(out.trigger, "none");
    assert!(
        out.reason.contains("no trigger listens to `ping`"),
        "{}",
        out.reason
    );
}

#[test]
fn pull_requests_from_forks_trigger_nothing() {
    let cfg = master();
    let (_, mut payload) = webhook("pull_request-opened.json");
    payload["pull_request"]["head"]["repo"]["full_name"] = json!("mallory/Hello-World");
    let out = simulate(&cfg, "pull_request", &payload);
    assert_eq!(out.trigger, "none");
    assert!(out.reason.contains("mallory/Hello-World"), "{}", out.reason);
    assert_eq!(rendered_sensor_outcome(&cfg, "pull_request", &payload).0, "none");
}

#[test]
fn a_branch_name_with_regex_characters_matches_only_itself() {
    let yaml = common::data("cross-account.yaml").replace("branch: master", "branch: release-1.2");
    let cfg = common::load(&yaml);
    let (_, mut payload) = webhook("push-with-new-branch.json");
    for (branch, expected) in [
        ("refs/heads/release-1.2", "deploy"),
        ("refs/heads/release-1x2", "none"),
        ("refs/heads/release-1.2-rc", "none"),
    ] {
        payload["ref"] = json!(branch);
        assert_eq!(simulate(&cfg, "push", &payload).trigger, expected, "{branch}");
        assert_eq!(
            rendered_sensor_outcome(&cfg, "push", &payload).0,
            expected,
            "{branch}"
        );
    }
}

/// What an attacker puts where a payload carries free text: an Argo
/// expression, a git option, shell syntax.
const EXPRESSION: &str = "{{=sprig.b64enc(sprig.env('AWS_SECRET_ACCESS_KEY'))}}";
const GIT_OPTION: &str = "--upload-pack=touch /tmp/pwned";

/// Every value of a run's parameters is a 40-hex SHA, a number or empty.
fn assert_only_checked_values(out: &Outcome) {
    for (name, value) in &out.parameters {
        let ok = match name.as_str() {
            "commit-sha" => value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit()),
            "pull-request" => value.bytes().all(|b| b.is_ascii_digit()),
            other => panic!("unexpected parameter {other}"),
        };
        assert!(ok, "parameter {name} = {value:?}");
    }
}

#[test]
fn deliveries_about_another_repository_trigger_nothing() {
    let cfg = master();
    let (_, mut push) = webhook("push-with-new-branch.json");
    push["repository"]["full_name"] = json!("mallory/Hello-World");
    let out = simulate(&cfg, "push", &push);
    assert_eq!(out.trigger, "none");
    assert!(out.reason.contains("body.repository.full_name"), "{}", out.reason);
    assert_eq!(rendered_sensor_outcome(&cfg, "push", &push).0, "none");

    // A same-repository pull request of another repository: the head and
    // base agree with each other, but not with the configured repository.
    let (_, mut pr) = webhook("pull_request-opened.json");
    pr["repository"]["full_name"] = json!("mallory/Hello-World");
    pr["pull_request"]["head"]["repo"]["full_name"] = json!("mallory/Hello-World");
    assert_eq!(simulate(&cfg, "pull_request", &pr).trigger, "none");
    assert_eq!(rendered_sensor_outcome(&cfg, "pull_request", &pr).0, "none");
}

#[test]
fn the_repository_matches_without_regard_to_case_and_only_in_ascii() {
    let yaml = common::data("cross-account.yaml").replace("owner: Codertocat", "owner: codertocat");
    let cfg = common::load(&yaml);
    let (_, mut push) = webhook("push-with-new-branch.json");
    assert_eq!(run_with(&cfg, "push", &push).trigger, "deploy");
    // U+212A KELVIN SIGN folds to `k` under Unicode case folding; GitHub
    // would never send it for this repository, and neither side accepts it.
    push["repository"]["full_name"] = json!("Codertocat/Hello-World\u{212A}");
    assert_eq!(run_with(&cfg, "push", &push).trigger, "none");
}

#[test]
fn a_clone_url_that_is_a_git_option_never_reaches_a_run() {
    for (event, file) in [
        ("push", "push-with-new-branch.json"),
        ("pull_request", "pull_request-opened.json"),
    ] {
        let cfg = master();
        let (_, mut payload) = webhook(file);
        payload["repository"]["clone_url"] = json!(GIT_OPTION);
        let out = run_with(&cfg, event, &payload);
        assert_ne!(out.trigger, "none", "{}", out.reason);
        assert_only_checked_values(&out);
    }
}

#[test]
fn free_text_with_an_argo_expression_never_reaches_a_run() {
    let cfg = master();
    let (_, mut pr) = webhook("pull_request-opened.json");
    pr["pull_request"]["head"]["ref"] = json!(EXPRESSION);
    pr["pull_request"]["title"] = json!(EXPRESSION);
    pr["sender"]["login"] = json!(EXPRESSION);
    let out = run_with(&cfg, "pull_request", &pr);
    assert_eq!(out.trigger, "validate", "{}", out.reason);
    assert_only_checked_values(&out);

    let (_, mut push) = webhook("push-with-new-branch.json");
    push["head_commit"]["message"] = json!(EXPRESSION);
    push["pusher"]["name"] = json!(EXPRESSION);
    let out = run_with(&cfg, "push", &push);
    assert_eq!(out.trigger, "deploy", "{}", out.reason);
    assert_only_checked_values(&out);
}

#[test]
fn shas_and_numbers_that_are_not_shas_and_numbers_trigger_nothing() {
    let cfg = master();
    for bad in [
        EXPRESSION,
        GIT_OPTION,
        "6113728F27AE82C7B1A177C8D03F9E96E0ADF246",
        "6113728f27ae82c7b1a177c8d03f9e96e0adf24",
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246\n",
        "x6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    ] {
        let (_, mut push) = webhook("push-with-new-branch.json");
        push["after"] = json!(bad);
        let out = run_with(&cfg, "push", &push);
        assert_eq!(out.trigger, "none", "after = {bad:?}");
        assert!(out.reason.contains("not a 40-hex commit SHA"), "{}", out.reason);

        let (_, mut pr) = webhook("pull_request-opened.json");
        pr["pull_request"]["head"]["sha"] = json!(bad);
        assert_eq!(
            run_with(&cfg, "pull_request", &pr).trigger,
            "none",
            "head.sha = {bad:?}"
        );
    }
    for bad in [json!("2; rm -rf /"), json!(EXPRESSION), json!(-2), json!("")] {
        let (_, mut pr) = webhook("pull_request-opened.json");
        pr["number"] = bad.clone();
        assert_eq!(
            run_with(&cfg, "pull_request", &pr).trigger,
            "none",
            "number = {bad}"
        );
    }
}

/// The simulator's outcome, checked against the rendered Sensor.
fn run_with(cfg: &Config, event: &str, payload: &Value) -> Outcome {
    let out = simulate(cfg, event, payload);
    assert_eq!(
        rendered_sensor_outcome(cfg, event, payload),
        (out.trigger, out.parameters.clone().into_iter().collect()),
        "the rendered Sensor and the simulator disagree on {payload}"
    );
    out
}

fn with_branch(branch: &str) -> Config {
    let mut cfg = master();
    let gh = cfg
        .pipeline
        .as_mut()
        .and_then(|p| p.github.as_mut())
        .expect("GitHub settings");
    gh.branch = Some(branch.to_owned());
    cfg
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Property: on any push, the rendered Sensor (as Argo Events evaluates
    // it) and the simulator fire the same trigger with the same parameters.
    #[test]
    fn sensor_and_simulator_agree_on_pushes(
        branch in "[a-z0-9.+_/-]{1,12}",
        other in "[a-z0-9.+_/-]{0,12}",
        kind in 0usize..3,
        deleted: bool,
    ) {
        let cfg = with_branch(&branch);
        let (_, mut payload) = webhook("push-with-new-branch.json");
        payload["ref"] = json!(match kind {
            0 => format!("refs/heads/{branch}"),
            1 => format!("refs/heads/{other}"),
            _ => format!("refs/tags/{branch}"),
        });
        if deleted {
            payload["after"] = json!("0000000000000000000000000000000000000000");
        }
        let out = simulate(&cfg, "push", &payload);
        let rendered = rendered_sensor_outcome(&cfg, "push", &payload);
        prop_assert_eq!(rendered.0, out.trigger);
        prop_assert_eq!(rendered.1, out.parameters.into_iter().collect::<Vec<_>>());
        let expect_deploy = !deleted && (kind == 0 || (kind == 1 && other == branch));
        prop_assert_eq!(out.trigger == "deploy", expect_deploy);
    }

    // Property: on any pull request event, the rendered Sensor and the
    // simulator agree.
    #[test]
    fn sensor_and_simulator_agree_on_pull_requests(
        action in prop::sample::select(vec!["opened", "reopened", "synchronize", "closed", "edited", "opened2"]),
        base in prop::sample::select(vec!["master", "main", "master.x", "mas+ter"]),
        fork: bool,
    ) {
        let cfg = master();
        let (_, mut payload) = webhook("pull_request-opened.json");
        payload["action"] = json!(action);
        payload["pull_request"]["base"]["ref"] = json!(base);
        if fork {
            payload["pull_request"]["head"]["repo"]["full_name"] = json!("someone/Hello-World");
        }
        let out = simulate(&cfg, "pull_request", &payload);
        let rendered = rendered_sensor_outcome(&cfg, "pull_request", &payload);
        prop_assert_eq!(rendered.0, out.trigger);
        prop_assert_eq!(rendered.1, out.parameters.into_iter().collect::<Vec<_>>());
        let expect = ["opened", "reopened", "synchronize"].contains(&action) && base == "master" && !fork;
        prop_assert_eq!(out.trigger == "validate", expect);
    }
}

/// A payload field that a trigger's filters read, or free text.
const PUSH_CHECKED: [&str; 3] = ["ref", "after", "repository.full_name"];
const PUSH_FREE: [&str; 4] = [
    "repository.clone_url",
    "pusher.name",
    "head_commit.message",
    "sender.login",
];
const PR_CHECKED: [&str; 6] = [
    "action",
    "number",
    "pull_request.head.sha",
    "pull_request.head.repo.full_name",
    "repository.full_name",
    "pull_request.base.ref",
];
const PR_FREE: [&str; 5] = [
    "pull_request.head.ref",
    "pull_request.title",
    "pull_request.body",
    "repository.clone_url",
    "sender.login",
];

fn set(payload: &mut Value, path: &str, value: &str) {
    let mut v = payload;
    for key in path.split('.') {
        v = &mut v[key];
    }
    *v = json!(value);
}

/// Text an attacker would try: Argo expressions, git options, anything printable.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(EXPRESSION.to_owned()),
        Just(GIT_OPTION.to_owned()),
        "[ -~]{0,24}",
        "\\{\\{[a-z.=()'\" -]{0,20}\\}\\}",
        "-{1,2}[a-z-]{1,12}(=[ -~]{0,10})?",
        "[0-9a-f]{40}",
        "[0-9]{1,4}",
    ]
}

/// The argv of a stage pod once Argo has substituted the run's parameters.
fn runner_argv(cfg: &Config, parameters: &[(String, String)]) -> Vec<String> {
    let rendered = aphex_template::render(cfg, &aphex_template::RenderOptions::default());
    let wt = rendered.get("WorkflowTemplate").unwrap();
    let stage = wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "stage")
        .unwrap();
    let mut vars: Vec<(String, String)> = parameters
        .iter()
        .map(|(k, v)| (format!("{{{{workflow.parameters.{k}}}}}"), v.clone()))
        .collect();
    // A task of `validate-pr` passes the pull request's number on; one of
    // `main` passes none.
    let pull_request = parameters
        .iter()
        .find(|(k, _)| k == "pull-request")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    vars.push(("{{inputs.parameters.pull-request}}".into(), pull_request));
    vars.push(("{{inputs.parameters.stage}}".into(), "deploy".into()));
    vars.push(("{{inputs.parameters.env}}".into(), "dev".into()));
    vars.push(("{{workflow.name}}".into(), "shop-x1".into()));
    stage["container"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a = a.as_str().unwrap().to_owned();
            for (k, v) in &vars {
                a = a.replace(k, v);
            }
            a
        })
        .collect()
}

#[test]
fn no_delivery_puts_an_attackers_value_into_a_run() {
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};
    let cfg = master();
    let cases = 256;
    let untampered = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(RunnerConfig::with_cases(cases));
    // Property: for a push or pull request whose free-text fields all hold
    // hostile text, and (in about half the cases) one filtered field too,
    // the simulator and the rendered Sensor agree; a run's parameters are
    // only a 40-hex SHA and a number; the submitted Workflow holds no `{{`;
    // and no argument of the stage pod that reaches git (SHA, repository,
    // branch) starts with `-`. Untampered deliveries always trigger, so the
    // test cannot pass by triggering nothing.
    let strategy = (
        any::<bool>(),
        prop::collection::vec(hostile(), 5),
        prop::option::of((any::<prop::sample::Index>(), hostile())),
    );
    runner
        .run(&strategy, |(is_push, free, tamper)| {
            let (event, file, checked, free_fields): (_, _, &[&str], &[&str]) = if is_push {
                ("push", "push-with-new-branch.json", &PUSH_CHECKED, &PUSH_FREE)
            } else {
                ("pull_request", "pull_request-opened.json", &PR_CHECKED, &PR_FREE)
            };
            let (_, mut payload) = webhook(file);
            for (field, text) in free_fields.iter().zip(&free) {
                set(&mut payload, field, text);
            }
            if let Some((i, text)) = &tamper {
                let field = checked[i.index(checked.len())];
                set(&mut payload, field, text);
                // Both sides of the fork check name the repository.
                if field == "repository.full_name" && !is_push {
                    set(&mut payload, "pull_request.head.repo.full_name", text);
                }
            }
            let out = run_with(&cfg, event, &payload);
            if tamper.is_none() {
                untampered.set(untampered.get() + 1);
                prop_assert_ne!(out.trigger, "none", "{}", out.reason);
            }
            assert_only_checked_values(&out);
            if out.trigger != "none" {
                let params: Vec<(String, String)> = out.parameters.clone().into_iter().collect();
                for arg in runner_argv(&cfg, &params) {
                    prop_assert!(!arg.contains("{{"), "{}", arg);
                    for flag in ["--commit-sha=", "--repo-url=", "--branch="] {
                        if let Some(value) = arg.strip_prefix(flag) {
                            prop_assert!(!value.is_empty() && !value.starts_with('-'), "{}", arg);
                        }
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let share = f64::from(untampered.get()) / f64::from(cases);
    assert!(
        (0.35..=0.65).contains(&share),
        "untampered deliveries were {share:.2} of the cases, not about half"
    );
}

/// Evaluates the rendered Sensor on an event the way Argo Events does, and
/// returns the trigger that fires and the Workflow parameters it submits.
fn rendered_sensor_outcome(
    cfg: &Config,
    event: &str,
    payload: &Value,
) -> (&'static str, Vec<(String, String)>) {
    let sensor = sensor(cfg).expect("config has GitHub settings");
    let envelope = json!({"headers": {"X-Github-Event": [event]}, "body": payload});
    let passes = |dep: &Value| -> bool {
        let data = dep["filters"]["data"].as_array().cloned().unwrap_or_default();
        let data_ok = data.iter().all(|f| {
            let Some(v) = lookup(&envelope, f["path"].as_str().unwrap()) else {
                return false;
            };
            let s = as_gjson_string(v);
            let negate = f.get("comparator").and_then(Value::as_str) == Some("!=");
            f["value"].as_array().unwrap().iter().any(|re| {
                let m = regex::Regex::new(re.as_str().unwrap()).unwrap().is_match(&s);
                m != negate
            })
        });
        let exprs = dep["filters"]["exprs"].as_array().cloned().unwrap_or_default();
        let exprs_ok = exprs.iter().all(|e| {
            assert_eq!(
                e["expr"], "left == right",
                "only equality expressions are rendered"
            );
            let field = |i: usize| lookup(&envelope, e["fields"][i]["path"].as_str().unwrap()).cloned();
            matches!((field(0), field(1)), (Some(a), Some(b)) if a == b)
        });
        data_ok && exprs_ok
    };
    let fired: Vec<&str> = sensor["spec"]["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| passes(d))
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(fired.len() <= 1, "one event fires at most one trigger: {fired:?}");
    for t in sensor["spec"]["triggers"].as_array().unwrap() {
        let tpl = &t["template"];
        if !fired.contains(&tpl["conditions"].as_str().unwrap()) {
            continue;
        }
        let mut wf = tpl["argoWorkflow"]["source"]["resource"].clone();
        for p in tpl["argoWorkflow"]["parameters"].as_array().unwrap() {
            let value = lookup(&envelope, p["src"]["dataKey"].as_str().unwrap())
                .map(as_gjson_string)
                .unwrap_or_else(|| p["src"]["value"].as_str().unwrap().to_owned());
            let dest = p["dest"].as_str().unwrap();
            let index: usize = dest
                .strip_prefix("spec.arguments.parameters.")
                .and_then(|d| d.strip_suffix(".value"))
                .unwrap()
                .parse()
                .unwrap();
            wf["spec"]["arguments"]["parameters"][index]["value"] = json!(value);
        }
        // The filled Workflow holds no expression we did not write (we write none).
        assert!(
            !wf.to_string().contains("{{"),
            "a Workflow the Sensor submits carries `{{{{`: {wf}"
        );
        let params = wf["spec"]["arguments"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let kind = match tpl["name"].as_str().unwrap() {
            "deploy" => "deploy",
            "validate" => "validate",
            other => panic!("unexpected trigger {other}"),
        };
        return (kind, params);
    }
    ("none", Vec::new())
}
