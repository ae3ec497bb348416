//! Arbitrary text in every config field that is rendered into a manifest:
//! either validation refuses the file with a diagnostic, or the rendered
//! WorkflowTemplate, EventSource and Sensor hold no `{{` we did not write
//! and no value git could read as an option. The generator makes half of
//! its inputs valid (every field at once, each arbitrary within its rules)
//! and half hostile (one field carrying an Argo expression, often behind a
//! `--option=` prefix), and the test asserts that share.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use aphex_config::KNOWN_REGIONS;
use aphex_template::{RenderOptions, render};
use proptest::prelude::*;
use regex::Regex;
use serde_json::{Value, json};

/// Every field that reaches a manifest, with a strategy for valid values.
fn fields() -> Vec<(&'static str, BoxedStrategy<String>)> {
    let label = "[a-z][a-z0-9-]{0,10}[a-z0-9]";
    let s = |re: &str| proptest::string::string_regex(re).unwrap().boxed();
    vec![
        ("pipeline.name", s(label)),
        ("pipeline.namespace", s(label)),
        ("pipeline.eventsNamespace", s(label)),
        ("pipeline.serviceAccount", s(label)),
        ("pipeline.cluster.name", s("[A-Za-z0-9-]{1,12}")),
        ("pipeline.cluster.exportPrefix", s("[A-Za-z0-9-]{1,12}")),
        ("pipeline.github.owner", s("[A-Za-z0-9][A-Za-z0-9-]{0,10}")),
        ("pipeline.github.repo", s("[A-Za-z0-9_-]{1,20}")),
        (
            "pipeline.github.branch",
            s("[a-z0-9][a-z0-9_-]{0,8}(/[a-z0-9][a-z0-9_-]{0,8})?"),
        ),
        ("pipeline.github.tokenSecret", s(label)),
        ("pipeline.github.webhookSecret", s(label)),
        (
            "pipeline.github.webhookUrl",
            s("https://[a-z]{1,10}\\.example\\.com/[a-z0-9/]{0,10}"),
        ),
        ("pipeline.artifacts.bucket", s("[a-z0-9][a-z0-9-]{1,20}[a-z0-9]")),
        (
            "pipeline.images.builder",
            s("[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}(:[a-z0-9]{1,8})?"),
        ),
        (
            "pipeline.images.deployer",
            s("[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}(:[a-z0-9]{1,8})?"),
        ),
        ("pipeline.notifications.slackWebhookSecret", s(label)),
        ("pipeline.resources.cpu", s("[1-9][0-9]{0,2}m?")),
        ("pipeline.resources.memory", s("[1-9][0-9]{0,2}(Mi|Gi)")),
        ("environments.name", s(label)),
        ("environments.account", s("[0-9]{12}")),
        (
            "environments.region",
            proptest::sample::select(KNOWN_REGIONS)
                .prop_map(str::to_owned)
                .boxed(),
        ),
        (
            "environments.roleArn",
            s("arn:aws:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_-]{1,20}"),
        ),
    ]
}

/// Arbitrary text around an Argo expression, sometimes shaped as an option.
fn hostile() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(""), Just("--upload-pack="), Just("-")],
        ".{0,12}",
        prop_oneof![
            Just("{{"),
            Just("{{=sprig.env('HOME')}}"),
            Just("{{workflow.name}}"),
            Just("{{ inputs.parameters.stage }}"),
        ],
        "\\PC{0,12}",
    )
        .prop_map(|(option, before, marker, after)| format!("{option}{before}{marker}{after}"))
}

/// A config: every field valid, or (`hostile = Some((i, text))`) field `i` replaced by `text`.
fn case() -> impl Strategy<Value = (Vec<String>, Option<(usize, String)>)> {
    let valid: Vec<BoxedStrategy<String>> = fields().into_iter().map(|(_, s)| s).collect();
    let n = valid.len();
    (valid, prop_oneof![Just(None), (0..n, hostile()).prop_map(Some),])
}

/// The config document (JSON is YAML) of these field values.
fn document(values: &[String]) -> String {
    let mut config = json!({
        "version": "1.0",
        "build": {"commands": ["npm ci"]},
        "environments": [{"stacks": [{"name": "App", "path": "lib/app.ts"}]}],
    });
    for ((path, _), value) in fields().iter().zip(values) {
        let mut at = match path.strip_prefix("environments.") {
            Some(rest) => {
                config["environments"][0][rest] = json!(value);
                continue;
            }
            None => &mut config,
        };
        for key in path.split('.') {
            at = &mut at[key];
        }
        *at = json!(value);
    }
    config.to_string()
}

/// The `{{...}}` expressions we write ourselves: Argo Workflows' and the
/// Sensor's Go template that keeps the sender's login only when it has a
/// login's shape.
static OURS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^\{\{(workflow\.(parameters\.[a-z-]+|name|namespace|status|mainEntrypoint|labels\.json)|inputs\.parameters\.[a-z-]+|tasks\.deploy-[a-z0-9-]+\.outputs\.parameters\.stack-outputs|tasks\.(validate|pipeline)\.outputs\.parameters\.run|tasks\.approve-[a-z0-9-]+\.outputs\.parameters\.approved-by)\}\}$|^\{\{ (if regexMatch "\^\[A-Za-z0-9\]\(\?:\[A-Za-z0-9-\]\{0,37\}\[A-Za-z0-9\]\)\?\$" \.Input\.body\.sender\.login|\.Input\.body\.sender\.login|end) \}\}$"#,
    )
    .unwrap()
});

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k);
            strings(x, out);
        }),
        _ => {}
    }
}

/// Problems with one rendered object: foreign `{{`, option-shaped values.
fn problems(kind: &str, object: &Value) -> Vec<String> {
    let mut all = Vec::new();
    strings(object, &mut all);
    let mut out = Vec::new();
    for s in all {
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..].find("}}").map_or(rest.len(), |e| start + e + 2);
            let expr = &rest[start..end];
            if !OURS.is_match(expr) {
                out.push(format!("{kind}: `{expr}` in {s:?} is not ours"));
            }
            rest = &rest[end..];
        }
    }
    // Argument lists: each element is a stage name or `--flag=...`, never
    // something a program could read as another option.
    if kind == "WorkflowTemplate" {
        for t in object["spec"]["templates"].as_array().unwrap() {
            for arg in t["container"]["args"].as_array().into_iter().flatten() {
                let arg = arg.as_str().unwrap();
                let flag_ok = arg
                    .strip_prefix("--")
                    .and_then(|a| a.split_once('='))
                    .is_some_and(|(flag, _)| flag.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
                if arg.starts_with('-') && !flag_ok {
                    out.push(format!("argument {arg:?}"));
                }
            }
        }
    }
    // Parameter values our config supplies (the branch, the repository URL)
    // reach git: none may start with `-`.
    let mut params: Vec<&Value> = object
        .pointer("/spec/arguments/parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    for t in object["spec"]["triggers"].as_array().into_iter().flatten() {
        params.extend(
            t.pointer("/template/argoWorkflow/source/resource/spec/arguments/parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    for p in params {
        if p["value"].as_str().is_some_and(|v| v.starts_with('-')) {
            out.push(format!("{kind}: parameter {p}"));
        }
    }
    out
}

static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static HOSTILE_ACCEPTED: AtomicUsize = AtomicUsize::new(0);
static CASES: AtomicUsize = AtomicUsize::new(0);
const RUNS: u32 = 256;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(RUNS))]

    // Property: a config either fails validation with a diagnostic naming
    // the field, or renders a WorkflowTemplate, EventSource and Sensor with
    // no Argo expression we did not write and no value git could take for
    // an option; every all-valid config is accepted. (Run by
    // `half_of_the_generated_configs_are_accepted`, which counts.)
    fn hostile_values_never_reach_a_manifest((mut values, hostile) in case()) {
        CASES.fetch_add(1, Ordering::Relaxed);
        if let Some((i, text)) = &hostile {
            values[*i] = text.clone();
        }
        let loaded = aphex_config::load_str("aphex-config.yaml", &document(&values));
        let config = match (loaded, &hostile) {
            (Ok(config), _) => config,
            (Err(diagnostics), None) => panic!("a valid config was refused: {diagnostics:#?}\n{}", document(&values)),
            (Err(diagnostics), Some(_)) => {
                prop_assert!(!diagnostics.is_empty());
                return Ok(());
            }
        };
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
        if hostile.is_some() {
            HOSTILE_ACCEPTED.fetch_add(1, Ordering::Relaxed);
        }
        let rendered = render(&config, &RenderOptions::default());
        for kind in ["WorkflowTemplate", "EventSource", "Sensor"] {
            let object = rendered.get(kind).unwrap_or_else(|| panic!("no {kind}"));
            let found = problems(kind, object);
            prop_assert!(found.is_empty(), "{:#?}", found);
        }
    }
}

#[test]
fn the_check_sees_foreign_expressions_and_options() {
    let planted = json!({"spec": {
        "arguments": {"parameters": [{"name": "branch", "value": "--upload-pack=x"}]},
        "templates": [{"name": "t", "container": {"args": ["-c", "--env={{workflow.name}}", "{{=sprig.env('A')}}"]}}],
    }});
    assert_eq!(
        problems("WorkflowTemplate", &planted).len(),
        3,
        "{:#?}",
        problems("WorkflowTemplate", &planted)
    );
}

#[test]
fn half_of_the_generated_configs_are_accepted() {
    // Runs the property (proptest runs its cases inside this call).
    hostile_values_never_reach_a_manifest();
    let (cases, accepted) = (CASES.load(Ordering::Relaxed), ACCEPTED.load(Ordering::Relaxed));
    assert!(cases >= RUNS as usize, "{cases} cases");
    // Half are all-valid by construction; every hostile value has `{{`,
    // which no rendered field may hold, so none of those is accepted.
    assert_eq!(HOSTILE_ACCEPTED.load(Ordering::Relaxed), 0);
    let share = accepted as f64 / cases as f64;
    assert!((0.35..=0.65).contains(&share), "{accepted} of {cases} accepted");
}
