//! Argo Events objects: the GitHub EventSource of a pipeline, and the Sensor
//! that turns its events into Workflows. The Sensor's filters and parameter
//! mappings come from [`crate::triggers`], which the simulator evaluates too.

use aphex_config::Config;
use serde_json::{Value, json};

use crate::triggers::{Rule, Source, render_filters, rules};
use crate::workflow::{ARGO_WORKFLOWS_API, WORKFLOW_PARAMETERS, labels};

/// Port of the EventSource's webhook server (and its Service).
pub const WEBHOOK_PORT: u16 = 12000;

/// Name of the EventSource object.
pub fn event_source_name(config: &Config) -> String {
    format!("{}-github", config.pipeline_name())
}

/// Name of the Sensor's service account.
pub fn sensor_service_account(config: &Config) -> String {
    format!("{}-sensor", config.pipeline_name())
}

/// The webhook endpoint path on the EventSource's server.
pub fn webhook_endpoint(config: &Config) -> String {
    format!("/{}", config.pipeline_name())
}

/// The GitHub EventSource, or `None` when `pipeline.github` is not configured
/// (there is no repository to listen to).
pub fn event_source(config: &Config) -> Option<Value> {
    let settings = config.settings();
    let gh = settings.github.as_ref()?;
    let name = config.pipeline_name();
    let mut webhook = json!({
        "endpoint": webhook_endpoint(config),
        "port": WEBHOOK_PORT.to_string(),
        "method": "POST",
    });
    if let Some(url) = &gh.webhook_url {
        // With a URL, Argo Events registers the webhook on GitHub itself.
        webhook["url"] = json!(url);
    }
    let mut github = json!({
        "repositories": [{"owner": gh.owner, "names": [gh.repo]}],
        "webhook": webhook,
        "events": ["push", "pull_request"],
        "apiToken": {"name": gh.token_secret(), "key": "token"},
        "webhookSecret": {"name": gh.webhook_secret(name), "key": "secret"},
        "insecure": false,
        "active": true,
        "contentType": "json",
    });
    if gh.is_enterprise() {
        // Where the EventSource manages the webhook (github.com's API otherwise).
        github["githubBaseURL"] = json!(format!("{}/", gh.api_url()));
        github["githubUploadURL"] = json!(format!("{}/api/uploads/", gh.url()));
    }
    Some(json!({
        "apiVersion": ARGO_WORKFLOWS_API,
        "kind": "EventSource",
        "metadata": {
            "name": event_source_name(config),
            "namespace": settings.events_namespace(),
            "labels": labels(config),
        },
        "spec": {
            "service": {"ports": [{"port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT}]},
            "github": {name: github},
        },
    }))
}

/// The Workflow a rule submits, before the Sensor fills in the parameters
/// taken from the event.
pub fn workflow_for(config: &Config, rule: &Rule) -> Value {
    let name = config.pipeline_name();
    let parameters: Vec<Value> = rule
        .parameters
        .iter()
        .map(|(p, src)| match src {
            Source::Literal(v) => json!({"name": p, "value": v}),
            Source::Event(_) => json!({"name": p, "value": ""}),
        })
        .collect();
    let mut spec = json!({
        "workflowTemplateRef": {"name": name},
        "arguments": {"parameters": parameters},
    });
    let generate_name = if rule.entrypoint == crate::workflow::MAIN_ENTRYPOINT {
        format!("{name}-")
    } else {
        spec["entrypoint"] = json!(rule.entrypoint);
        format!("{name}-pr-")
    };
    json!({
        "apiVersion": ARGO_WORKFLOWS_API,
        "kind": "Workflow",
        "metadata": {
            "generateName": generate_name,
            "namespace": config.settings().namespace(),
            "labels": labels(config),
        },
        "spec": spec,
    })
}

/// The Sensor, or `None` without `pipeline.github` (no EventSource to listen to).
pub fn sensor(config: &Config) -> Option<Value> {
    let settings = config.settings();
    settings.github.as_ref()?;
    let name = config.pipeline_name();
    let rules = rules(config);
    let dependencies: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "name": r.dependency,
                "eventSourceName": event_source_name(config),
                "eventName": name,
                "filters": render_filters(&r.filters),
            })
        })
        .collect();
    let triggers: Vec<Value> = rules
        .iter()
        .map(|r| {
            debug_assert!(r.parameters.iter().map(|(p, _)| *p).eq(WORKFLOW_PARAMETERS));
            let parameters: Vec<Value> = r
                .parameters
                .iter()
                .enumerate()
                .filter_map(|(i, (_, src))| match src {
                    Source::Event(path) => Some(json!({
                        // An absent field (a push without head_commit) gives "".
                        "src": {"dependencyName": r.dependency, "dataKey": path, "value": ""},
                        "dest": format!("spec.arguments.parameters.{i}.value"),
                    })),
                    Source::Literal(_) => None,
                })
                .collect();
            json!({
                "template": {
                    "name": r.kind.as_str(),
                    "conditions": r.dependency,
                    "argoWorkflow": {
                        "operation": "submit",
                        "source": {"resource": workflow_for(config, r)},
                        "parameters": parameters,
                    },
                },
                "retryStrategy": {"steps": 3},
            })
        })
        .collect();
    Some(json!({
        "apiVersion": ARGO_WORKFLOWS_API,
        "kind": "Sensor",
        "metadata": {
            "name": name,
            "namespace": settings.events_namespace(),
            "labels": labels(config),
        },
        "spec": {
            "template": {"serviceAccountName": sensor_service_account(config)},
            "dependencies": dependencies,
            "triggers": triggers,
        },
    }))
}
