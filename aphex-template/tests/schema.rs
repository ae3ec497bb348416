//! Every rendered WorkflowTemplate, EventSource and Sensor (and the Workflows
//! the Sensor and the pipeline stage's restart submit) passes Argo's strict schemas, and the WorkflowTemplate
//! passes the static reference check.

mod common;

use aphex_template::events::workflow_for;
use aphex_template::lint::check_references;
use aphex_template::triggers::rules;
use aphex_template::{RenderOptions, render};
use common::{CONFIGS, Kind, assert_schema_valid, config, schema_errors};
use serde_json::json;

#[test]
fn rendered_objects_pass_the_strict_schemas() {
    for name in CONFIGS {
        let cfg = config(name);
        let r = render(&cfg, &RenderOptions::default());
        assert_schema_valid(Kind::WorkflowTemplate, r.get("WorkflowTemplate").unwrap(), name);
        for rule in rules(&cfg) {
            assert_schema_valid(Kind::Workflow, &workflow_for(&cfg, &rule), name);
        }
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let restart = aphex_template::submit::restart_workflow(&cfg, sha, "my-app-x7k2p", Some("octocat"));
        assert_schema_valid(Kind::Workflow, &restart, name);
        match (r.get("EventSource"), r.get("Sensor")) {
            (Some(es), Some(sensor)) => {
                assert_schema_valid(Kind::EventSource, es, name);
                assert_schema_valid(Kind::Sensor, sensor, name);
            }
            (None, None) => assert!(cfg.settings().github.is_none(), "{name}: events missing"),
            _ => panic!("{name}: EventSource and Sensor come together"),
        }
    }
}

#[test]
fn the_strict_schema_catches_a_misspelled_field() {
    // Guards the test itself: a validator that accepts everything would pass above.
    let cfg = config("seed.yaml");
    let mut wt = render(&cfg, &RenderOptions::default())
        .get("WorkflowTemplate")
        .unwrap()
        .clone();
    wt["spec"]["entrypiont"] = json!("main");
    let errors = schema_errors(Kind::WorkflowTemplate, &wt);
    assert!(errors.iter().any(|e| e.contains("entrypiont")), "{errors:#?}");

    let cfg = config("full.yaml");
    let mut sensor = render(&cfg, &RenderOptions::default())
        .get("Sensor")
        .unwrap()
        .clone();
    sensor["spec"]["dependencies"][0]["filters"]["data"][0]["comparater"] = json!("=");
    let errors = schema_errors(Kind::Sensor, &sensor);
    assert!(errors.iter().any(|e| e.contains("comparater")), "{errors:#?}");
}

#[test]
fn the_workflow_template_references_resolve() {
    for name in CONFIGS {
        let cfg = config(name);
        let r = render(&cfg, &RenderOptions::default());
        let problems = check_references(r.get("WorkflowTemplate").unwrap());
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
    }
}

#[test]
fn github_enterprise_clones_from_and_registers_on_its_own_server() {
    let yaml = common::data("cross-account.yaml").replace(
        "github: { owner: Codertocat,",
        "github: { url: \"https://github.example.com/\", owner: Codertocat,",
    );
    let cfg = common::load(&yaml);
    let r = render(&cfg, &RenderOptions::default());
    let es = r.get("EventSource").unwrap();
    assert_schema_valid(Kind::EventSource, es, "enterprise");
    let gh = &es["spec"]["github"]["payments"];
    assert_eq!(gh["githubBaseURL"], "https://github.example.com/api/v3/");
    assert_eq!(gh["githubUploadURL"], "https://github.example.com/api/uploads/");
    let wt = r.get("WorkflowTemplate").unwrap();
    assert_schema_valid(Kind::WorkflowTemplate, wt, "enterprise");
    let args = wt.to_string();
    assert!(
        args.contains("\"--repo-url=https://github.example.com/Codertocat/Hello-World.git\""),
        "{args}"
    );

    // github.com needs neither field.
    let cfg = config("cross-account.yaml");
    let es = render(&cfg, &RenderOptions::default())
        .get("EventSource")
        .unwrap()
        .clone();
    assert!(es["spec"]["github"]["payments"].get("githubBaseURL").is_none());
}
