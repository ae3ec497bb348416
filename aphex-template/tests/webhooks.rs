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
use aphex_template::triggers::{Shape, as_gjson_string, lookup, rules};
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
    assert_eq!(rendered_sensor_outcome(&cfg, event, &payload), simulated(&out));
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
    // How it started and who pushed, as labels (not parameters).
    assert_eq!(out.labels["aphex.dev/trigger"], "push");
    assert_eq!(out.labels["aphex.dev/sender"], "Codertocat");
}

#[test]
fn a_sender_that_is_no_github_login_deploys_without_a_name() {
    // A bot's login (`name[bot]`) is no label value: the push still deploys.
    let cfg = master();
    for login in [
        json!("github-merge-queue[bot]"),
        json!("{{workflow.name}}"),
        json!(7),
        Value::Null,
    ] {
        let (_, mut payload) = webhook("push-with-new-branch.json");
        payload["sender"]["login"] = login.clone();
        let out = run_with(&cfg, "push", &payload);
        assert_eq!(out.trigger, "deploy", "{login}: {}", out.reason);
        assert_eq!(out.labels["aphex.dev/sender"], "", "{login}");
    }
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

fn with_ignored_senders(senders: &[&str]) -> Config {
    let mut cfg = master();
    let gh = cfg
        .pipeline
        .as_mut()
        .and_then(|p| p.github.as_mut())
        .expect("GitHub settings");
    gh.ignore_senders = senders.iter().map(|s| (*s).to_owned()).collect();
    cfg
}

#[test]
fn a_head_commit_that_says_skip_ci_triggers_nothing() {
    let cfg = master();
    for marker in aphex_template::triggers::SKIP_MARKERS {
        for message in [
            format!("{marker} bump version to 1.2.3"),
            // In the body, after the subject line: GitHub reads the whole message.
            format!("Release 1.2.3\n\nAutomated by the release job {marker}\n"),
        ] {
            let (_, mut push) = webhook("push-with-new-branch.json");
            push["head_commit"]["message"] = json!(message);
            let out = run_with(&cfg, "push", &push);
            assert_eq!(out.trigger, "none", "{message:?}");
            assert!(
                out.reason
                    .contains(&format!("`body.head_commit.message` contains `{marker}`")),
                "{}",
                out.reason
            );
            assert!(out.parameters.is_empty());
        }
    }
    // Only the markers as GitHub documents them: anything else deploys.
    for message in [
        "skip ci",
        "[skip-ci]",
        "[Skip CI]",
        "[skip  ci]",
        "(skip ci)",
        "[ci]",
        "Initial commit",
    ] {
        let (_, mut push) = webhook("push-with-new-branch.json");
        push["head_commit"]["message"] = json!(message);
        assert_eq!(run_with(&cfg, "push", &push).trigger, "deploy", "{message:?}");
    }
    // The message is filtered, never passed: a marker in a pull request's
    // title changes nothing (GitHub's pull_request event carries no commit).
    let (_, mut pr) = webhook("pull_request-opened.json");
    pr["pull_request"]["title"] = json!("[skip ci] docs");
    assert_eq!(run_with(&cfg, "pull_request", &pr).trigger, "validate");
}

#[test]
fn a_push_without_a_head_commit_triggers_nothing_on_both_sides() {
    // Argo Events fails a data filter whose path is absent; the simulator
    // says so too. (GitHub omits `head_commit` only when the push deletes
    // the branch, which the `after` filter already refuses.)
    let cfg = master();
    let (_, mut push) = webhook("push-with-new-branch.json");
    push["head_commit"] = Value::Null;
    let out = run_with(&cfg, "push", &push);
    assert_eq!(out.trigger, "none");
    assert!(
        out.reason.contains("`body.head_commit.message` is absent"),
        "{}",
        out.reason
    );
}

#[test]
fn pushes_by_an_ignored_sender_trigger_nothing() {
    let cfg = with_ignored_senders(&["github-actions[bot]", "Release-Bot"]);
    let (_, push) = webhook("push-with-new-branch.json");
    assert_eq!(run_with(&cfg, "push", &push).trigger, "deploy");
    for login in [
        "github-actions[bot]",
        "release-bot",
        "RELEASE-BOT",
        "GitHub-Actions[BOT]",
    ] {
        let mut push = push.clone();
        push["sender"]["login"] = json!(login);
        let out = run_with(&cfg, "push", &push);
        assert_eq!(out.trigger, "none", "{login}");
        assert!(
            out.reason.contains("which pipeline.github.ignoreSenders ignores"),
            "{}",
            out.reason
        );
    }
    // Exactly the login: no prefix, suffix or pattern.
    for login in [
        "github-actions",
        "github-actions[bot]x",
        "xrelease-bot",
        "release-bot\n",
        "release_bot",
    ] {
        let mut push = push.clone();
        push["sender"]["login"] = json!(login);
        assert_eq!(run_with(&cfg, "push", &push).trigger, "deploy", "{login:?}");
    }
    // A bot's pull request still validates: only its pushes could loop.
    let (_, mut pr) = webhook("pull_request-opened.json");
    pr["sender"]["login"] = json!("github-actions[bot]");
    assert_eq!(run_with(&cfg, "pull_request", &pr).trigger, "validate");
}

/// A commit message: free text around, perhaps, a skip marker, itself
/// perhaps changed in case or spacing.
fn commit_message() -> impl Strategy<Value = (String, bool)> {
    let marker = prop::sample::select(aphex_template::triggers::SKIP_MARKERS.to_vec());
    (
        "[ -~\n]{0,20}",
        prop::option::of((marker, 0usize..4)),
        "[ -~\n]{0,20}",
    )
        .prop_map(|(before, marker, after)| match marker {
            None => (format!("{before}{after}"), false),
            Some((m, 0)) => (format!("{before}{m}{after}"), true),
            // Near misses: another case, no bracket, a doubled space.
            Some((m, 1)) => (format!("{before}{}{after}", m.to_uppercase()), false),
            Some((m, 2)) => (format!("{before}{}{after}", &m[1..]), false),
            Some((m, _)) => (format!("{before}{}{after}", m.replacen(' ', "  ", 1)), false),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Property: on a push with any head commit message and any sender, the
    // rendered Sensor (as Argo Events evaluates it: an unanchored RE2 match,
    // `!=` passing when a value does not match) and the simulator fire the
    // same trigger; and a push deploys exactly when its message holds no
    // skip marker (as written) and its sender is not ignored.
    #[test]
    fn sensor_and_simulator_agree_on_skip_markers_and_senders(
        (message, marked) in commit_message(),
        sender in prop::sample::select(vec![
            "Codertocat", "renovate[bot]", "Renovate[Bot]", "renovate", "renovate[bot]2", "a.b", "x|y",
        ]),
    ) {
        let cfg = with_ignored_senders(&["renovate[bot]", "x"]);
        let (_, mut push) = webhook("push-with-new-branch.json");
        push["head_commit"]["message"] = json!(message);
        push["sender"]["login"] = json!(sender);
        let out = simulate(&cfg, "push", &push);
        let rendered = rendered_sensor_outcome(&cfg, "push", &push);
        prop_assert_eq!(rendered.0, out.trigger);
        prop_assert_eq!(rendered.1, out.parameters.into_iter().collect::<Vec<_>>());
        let ignored = sender.eq_ignore_ascii_case("renovate[bot]");
        // A near miss may still hold a real marker by chance in the free text.
        let has_marker = aphex_template::triggers::SKIP_MARKERS.iter().any(|m| message.contains(m));
        prop_assert!(marked <= has_marker);
        prop_assert_eq!(out.trigger == "deploy", !has_marker && !ignored);
    }
}

/// What an attacker puts where a payload carries free text: an Argo
/// expression, a git option, shell syntax.
const EXPRESSION: &str = "{{=sprig.b64enc(sprig.env('AWS_SECRET_ACCESS_KEY'))}}";
const GIT_OPTION: &str = "--upload-pack=touch /tmp/pwned";

/// Every value of a run's parameters is a 40-hex SHA, a number or empty,
/// and its labels say how it started and name a GitHub login or nobody.
fn assert_only_checked_values(out: &Outcome) {
    for (name, value) in &out.labels {
        let ok = match name.as_str() {
            "aphex.dev/trigger" => ["push", "pull-request"].contains(&value.as_str()),
            "aphex.dev/sender" => value.is_empty() || Shape::Login.accepts(value),
            other => panic!("unexpected label {other}"),
        };
        assert!(ok, "label {name} = {value:?}");
    }
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
        simulated(&out),
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
        prop_assert_eq!(rendered_sensor_outcome(&cfg, "push", &payload), simulated(&out));
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
        prop_assert_eq!(rendered_sensor_outcome(&cfg, "pull_request", &payload), simulated(&out));
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
    vars.push(("{{inputs.parameters.approved-by}}".into(), String::new()));
    // Set by a `gated-deploy` DAG's deploy and resume tasks, as a word of ours.
    vars.push(("{{inputs.parameters.risk-gate}}".into(), "pause".into()));
    vars.push(("{{workflow.name}}".into(), "shop-x1".into()));
    // Argo's JSON of the Workflow's labels: those the Sensor sets.
    let labels = sensor(cfg).expect("config has GitHub settings")["spec"]["triggers"][0]["template"]["argoWorkflow"]
        ["source"]["resource"]["metadata"]["labels"]
        .to_string();
    vars.push(("{{workflow.labels.json}}".into(), labels));
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

/// The trigger that fires, and the parameters and rule labels of the
/// Workflow it submits.
type Fired = (&'static str, Vec<(String, String)>, Vec<(String, String)>);

/// What the simulator says, in the shape of [`rendered_sensor_outcome`].
fn simulated(out: &Outcome) -> Fired {
    (
        out.trigger,
        out.parameters.clone().into_iter().collect(),
        out.labels.clone().into_iter().collect(),
    )
}

/// Evaluates the rendered Sensor on an event the way Argo Events does
/// (`aphex_testkit::sensor`), and returns what fired.
fn rendered_sensor_outcome(cfg: &Config, event: &str, payload: &Value) -> Fired {
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
        let wf = aphex_testkit::sensor::submitted_workflow(t, &envelope);
        let rule = rules(cfg)
            .into_iter()
            .find(|r| r.dependency == tpl["conditions"])
            .unwrap();
        let labels: Vec<(String, String)> = rule
            .labels
            .iter()
            .map(|(k, _)| {
                let v = wf["metadata"]["labels"][*k].as_str().unwrap().to_owned();
                ((*k).to_owned(), v)
            })
            .collect();
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
        return (kind, params, labels);
    }
    ("none", Vec::new(), Vec::new())
}
