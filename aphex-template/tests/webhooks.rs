//! The webhook simulator on GitHub's real payloads, and a cross-check that
//! the *rendered* Sensor, evaluated the way Argo Events does (unanchored
//! RE2 matches on gjson strings, `!=` negating), agrees with the simulator.

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
    assert_eq!(out.parameters["branch"], "master");
    assert_eq!(
        out.parameters["repo-url"],
        "https://github.com/Codertocat/Hello-World.git"
    );
    assert_eq!(out.parameters["pusher"], "Codertocat");
    assert_eq!(out.parameters["message"], "Initial commit");
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
        assert_eq!(out.parameters["branch"], "changes");
        assert_eq!(
            out.parameters["repo-url"],
            "https://github.com/Codertocat/Hello-World.git"
        );
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
