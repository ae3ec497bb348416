//! `Workflows::decide` (what `aphex approve` calls) against the in-process
//! fake API server: an environment's waiting gate is decided, its approval
//! gate `approve-ENV` or its risk gate `risk-ENV`, in one merge patch of
//! the gate's node carrying the resourceVersion read. The Workflow's status
//! is written by hand, as Argo's controller writes it.

use aphex_k8s::fake::Fake;
use aphex_k8s::run_status::GateKind;
use aphex_k8s::workflows::{Decision, Workflows};
use http::Method;
use serde_json::{Value, json};

const NS: &str = "argo";
const RUN: &str = "shop-x1";
const PATH: &str = "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows/shop-x1";
const NOW: &str = "2026-01-01T01:00:00Z";

/// A supplied output as Argo writes it on a waiting suspend node.
fn supplied(name: &str) -> Value {
    json!({"name": name, "valueFrom": {"supplied": {}, "default": ""}})
}

/// Run `shop-x1` past dev's approval gate and deploy, waiting at dev's
/// risk gate (the `risk` task, template `risk-gate`, of dev's
/// `gated-deploy` DAG), as the controller records a nested DAG.
fn waiting_at_risk_dev() -> Value {
    let node = |id: &str, display: &str, kind: &str, template: &str, phase: &str, started: &str| {
        json!({"id": id, "name": format!("{RUN}.{display}"), "displayName": display, "type": kind,
            "templateName": template, "phase": phase, "startedAt": started, "boundaryID": RUN})
    };
    let inner = |id: &str, display: &str, kind: &str, template: &str, phase: &str, started: &str| {
        json!({"id": id, "name": format!("{RUN}.deploy-dev.{display}"), "displayName": display, "type": kind,
            "templateName": template, "phase": phase, "startedAt": started, "boundaryID": "d"})
    };
    let mut approve = node(
        "n1",
        "approve-dev",
        "Suspend",
        "approval",
        "Succeeded",
        "2026-01-01T00:01:00Z",
    );
    approve["message"] = json!("approved by jane");
    approve["outputs"] = json!({"parameters": [{"name": "approved-by", "value": "jane"}]});
    let dag = node(
        "d",
        "deploy-dev",
        "DAG",
        "gated-deploy",
        "Running",
        "2026-01-01T00:02:00Z",
    );
    let deploy = inner(
        "n2",
        "deploy",
        "Retry",
        "stage",
        "Succeeded",
        "2026-01-01T00:02:00Z",
    );
    let mut risk = inner(
        "n3",
        "risk",
        "Suspend",
        "risk-gate",
        "Running",
        "2026-01-01T00:05:00Z",
    );
    risk["outputs"] = json!({"parameters": [supplied("approved-by")]});
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": RUN, "namespace": NS},
        "spec": {"workflowTemplateRef": {"name": "shop"}},
        "status": {"phase": "Running", "startedAt": "2026-01-01T00:00:00Z", "nodes": {
            RUN: {"id": RUN, "name": RUN, "displayName": RUN, "type": "DAG", "phase": "Running",
                "templateName": "main", "startedAt": "2026-01-01T00:00:00Z"},
            "n1": approve, "d": dag, "n2": deploy, "n3": risk,
        }},
    })
}

fn cluster() -> (Fake, Workflows) {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    fake.put(PATH, waiting_at_risk_dev());
    let workflows = Workflows::new(fake.client(), NS);
    (fake, workflows)
}

fn patches(fake: &Fake) -> Vec<Value> {
    fake.seen()
        .into_iter()
        .filter(|s| s.method == Method::PATCH && s.path == PATH)
        .map(|s| s.body)
        .collect()
}

#[tokio::test]
async fn approving_a_waiting_risk_gate_names_who_and_leaves_the_other_nodes_alone() {
    let (fake, workflows) = cluster();
    let before = fake.object(PATH).unwrap();
    let gate = workflows
        .decide(RUN, "dev", &Decision::Approve, "jane", NOW)
        .await
        .expect("the risk gate is decided");
    assert_eq!(gate.name, "risk-dev");
    assert_eq!(gate.gate_of(), Some((GateKind::Risk, "dev")));

    let after = fake.object(PATH).unwrap();
    let node = &after["status"]["nodes"]["n3"];
    assert_eq!(node["phase"], "Succeeded");
    assert_eq!(node["message"], "risk approved by jane");
    assert_eq!(node["finishedAt"], NOW);
    assert_eq!(node["templateName"], "risk-gate", "the rest of the node is kept");
    assert_eq!(
        node["outputs"]["parameters"],
        json!([{"name": "approved-by", "value": "jane"}])
    );
    for other in [RUN, "n1", "d", "n2"] {
        assert_eq!(
            after["status"]["nodes"][other], before["status"]["nodes"][other],
            "{other}"
        );
    }
    assert_eq!(
        after["status"]["phase"], "Running",
        "the controller moves the run on"
    );
    // One patch, conditional on what was read.
    let sent = patches(&fake);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        sent[0]["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    // Decided once: a second decision is refused, saying how it went.
    let again = workflows
        .decide(RUN, "dev", &Decision::Reject("late".to_owned()), "sam", NOW)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        again,
        "gate risk-dev of run shop-x1 is not waiting: it is Succeeded by jane"
    );
    assert_eq!(patches(&fake).len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn rejecting_a_risk_gate_fails_its_node_so_the_run_stops_there() {
    let (fake, workflows) = cluster();
    workflows
        .decide(
            RUN,
            "dev",
            &Decision::Reject("not during the sale".to_owned()),
            "sam@example.com",
            NOW,
        )
        .await
        .expect("the risk gate is decided");
    let node = &fake.object(PATH).unwrap()["status"]["nodes"]["n3"];
    assert_eq!(node["phase"], "Failed");
    assert_eq!(
        node["message"],
        "rejected by sam@example.com: not during the sale"
    );
    assert_eq!(
        node["outputs"]["parameters"],
        json!([{"name": "approved-by", "value": "sam@example.com"}])
    );
}

#[tokio::test]
async fn an_environment_without_a_waiting_gate_is_refused_naming_both_gates_and_the_waiting_one() {
    let (fake, workflows) = cluster();
    let e = workflows
        .decide(RUN, "prod", &Decision::Approve, "jane", NOW)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "run shop-x1 is not waiting at approve-prod or risk-prod; it waits at: risk-dev"
    );
    let e = workflows
        .decide("shop-nope", "dev", &Decision::Approve, "jane", NOW)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("run shop-nope not found in namespace argo"), "{e}");
    assert!(patches(&fake).is_empty());
}
