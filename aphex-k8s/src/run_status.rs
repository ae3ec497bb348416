//! A Workflow read as a pipeline run: how it started (its labels), its
//! commit, and each stage task's phase and times from `status.nodes`, with
//! the gates that wait (suspend nodes still running): an environment's
//! approval gate `approve-ENV` and its risk gate `risk-ENV`. Pure: the
//! Workflow comes from [`crate::workflows`].

use aphex_template::submit::{APPROVED_BY, risk_gate_task};
use aphex_template::workflow::GATED_DEPLOY_TEMPLATE;
use serde::Serialize;
use serde_json::Value;

/// One run, as its Workflow says.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// The Workflow's name: the run id.
    pub name: String,
    /// Argo's phase: `Pending`, `Running`, `Succeeded`, `Failed`, `Error`.
    pub phase: String,
    /// The commit (`commit-sha` parameter).
    pub commit: String,
    /// The pull request a `validate-pr` run checks, if any.
    pub pull_request: Option<String>,
    /// How it started (`aphex.dev/trigger`: push, pull-request, manual, restart).
    pub trigger: Option<String>,
    /// Who started it (`aphex.dev/sender`), when known.
    pub sender: Option<String>,
    /// RFC 3339 start (the creation time until the controller starts it).
    pub started_at: Option<String>,
    /// RFC 3339 end, once ended.
    pub finished_at: Option<String>,
    /// Argo's message (why it failed).
    pub message: Option<String>,
    /// The stage tasks and gates reached so far, by start time.
    pub stages: Vec<StageView>,
}

/// One task of a run: a stage or a gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageView {
    /// The task name (`build`, `approve-prod`, `deploy-prod`, `risk-prod`).
    pub name: String,
    /// Whether it is a gate (a suspend node): an approval gate or a risk
    /// gate.
    pub gate: bool,
    /// Argo's node phase (`Running` on a gate: waiting for a decision).
    pub phase: String,
    /// RFC 3339 start.
    pub started_at: Option<String>,
    /// RFC 3339 end.
    pub finished_at: Option<String>,
    /// The node's message (a rejected gate's reason, a failure).
    pub message: Option<String>,
    /// Who approved a gate (its `approved-by` output), when named.
    pub approved_by: Option<String>,
    /// The node's id in `status.nodes` (what an approval patches).
    #[serde(skip)]
    pub node_id: String,
}

/// Which of an environment's two gates a suspend node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateKind {
    /// `approve-ENV`, before the deploy (`approval: manual`).
    Approval,
    /// `risk-ENV`, where the deploy stopped at a risky change set.
    Risk,
}

impl StageView {
    /// Whether this is a gate waiting for `aphex approve`.
    pub fn waiting(&self) -> bool {
        self.gate && self.phase == "Running"
    }

    /// The kind of gate this is and its environment, read from the task
    /// name (`approve-prod`, `risk-prod`); none for a stage or a suspend
    /// node of another name. The prefixes differ, so `approve-risk-x` is
    /// environment `risk-x`'s approval gate, never a risk gate.
    pub fn gate_of(&self) -> Option<(GateKind, &str)> {
        if !self.gate {
            return None;
        }
        if let Some(env) = self.name.strip_prefix("approve-") {
            return Some((GateKind::Approval, env));
        }
        let env = self.name.strip_prefix(risk_gate_task("").as_str())?;
        Some((GateKind::Risk, env))
    }

    /// The `aphex approve` command that decides this gate, if it is one.
    pub fn approve_command(&self, run: &str) -> Option<String> {
        self.gate_of()
            .map(|(_, env)| format!("aphex approve {run} --env {env}"))
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The value of parameter `name` in a list of `{name, value}`.
fn parameter(list: &Value, name: &str) -> Option<String> {
    list.as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| text(&p["value"]))
}

/// Node types that stand for a task of the DAG (a retried task is a
/// `Retry` node over `Pod` nodes named `task(0)`, `task(1)`).
const TASK_NODES: [&str; 5] = ["Pod", "Retry", "Suspend", "Skipped", "Omitted"];

impl RunView {
    /// The run `workflow` (a Workflow object) describes.
    pub fn from_workflow(workflow: &Value) -> RunView {
        let meta = &workflow["metadata"];
        let status = &workflow["status"];
        let labels = &meta["labels"];
        let params = &workflow["spec"]["arguments"]["parameters"];
        let mut stages: Vec<StageView> = status["nodes"]
            .as_object()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|(id, n)| task(id, n, gated_env(nodes, n)))
                    .collect()
            })
            .unwrap_or_default();
        stages.sort_by(|a, b| (&a.started_at, &a.name).cmp(&(&b.started_at, &b.name)));
        RunView {
            name: text(&meta["name"]).unwrap_or_default(),
            phase: text(&status["phase"]).unwrap_or_else(|| "Pending".to_owned()),
            commit: parameter(params, "commit-sha").unwrap_or_default(),
            pull_request: parameter(params, "pull-request"),
            trigger: text(&labels[aphex_template::submit::TRIGGER_LABEL]),
            sender: text(&labels[aphex_template::submit::SENDER_LABEL]),
            started_at: text(&status["startedAt"]).or_else(|| text(&meta["creationTimestamp"])),
            finished_at: text(&status["finishedAt"]),
            message: text(&status["message"]),
            stages,
        }
    }

    /// The gates waiting for an approval.
    pub fn waiting_gates(&self) -> impl Iterator<Item = &StageView> {
        self.stages.iter().filter(|s| s.waiting())
    }

    /// Whether the run has ended.
    pub fn ended(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed" | "Error")
    }
}

/// The environment whose `gated-deploy` DAG (its deploy with a risk gate)
/// `node` runs in, if it runs in one: the DAG node is `deploy-<env>`.
fn gated_env<'a>(nodes: &'a serde_json::Map<String, Value>, node: &Value) -> Option<&'a str> {
    let boundary = &nodes[node["boundaryID"].as_str()?];
    if boundary["templateName"] != GATED_DEPLOY_TEMPLATE {
        return None;
    }
    boundary["displayName"].as_str()?.strip_prefix("deploy-")
}

/// The task a node stands for, if it is one. The tasks of an
/// environment's `gated-deploy` DAG (`deploy`, `risk`, `resume`) are named
/// as its stages are: `deploy-<env>`, `risk-<env>`, `resume-<env>`.
fn task(id: &str, node: &Value, gated_env: Option<&str>) -> Option<StageView> {
    let kind = node["type"].as_str()?;
    let display = node["displayName"].as_str()?;
    if !TASK_NODES.contains(&kind) || display.contains(['(', '.']) {
        return None;
    }
    let name = match (gated_env, display) {
        (Some(env), "deploy") => format!("deploy-{env}"),
        (Some(env), "risk") => risk_gate_task(env),
        (Some(env), "resume") => format!("resume-{env}"),
        _ => display.to_owned(),
    };
    let gate = kind == "Suspend";
    Some(StageView {
        name,
        gate,
        phase: text(&node["phase"]).unwrap_or_else(|| "Pending".to_owned()),
        started_at: text(&node["startedAt"]),
        finished_at: text(&node["finishedAt"]),
        message: text(&node["message"]),
        approved_by: gate
            .then(|| parameter(&node["outputs"]["parameters"], APPROVED_BY))
            .flatten(),
        node_id: id.to_owned(),
    })
}

/// Seconds from `start` to `end` (or to `now`), as text: `42s`, `3m05s`,
/// `1h02m`; `-` when the start is unknown.
pub fn duration(start: Option<&str>, end: Option<&str>, now: &str) -> String {
    let Some(start) = start else {
        return "-".to_owned();
    };
    let secs = aphex_stages::time::seconds_between(start, end.unwrap_or(now)).max(0.0) as u64;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_workflow_reads_as_a_run_with_its_tasks_and_waiting_gate() {
        let wf = json!({
            "metadata": {"name": "shop-x1", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"aphex.dev/trigger": "manual", "aphex.dev/sender": "jane"}},
            "spec": {"arguments": {"parameters": [
                {"name": "commit-sha", "value": "a".repeat(40)}, {"name": "pull-request", "value": ""}]}},
            "status": {"phase": "Running", "startedAt": "2026-01-01T00:00:01Z", "nodes": {
                "shop-x1": {"type": "DAG", "displayName": "shop-x1", "phase": "Running"},
                "n1": {"type": "Retry", "displayName": "build", "phase": "Succeeded",
                    "startedAt": "2026-01-01T00:00:02Z", "finishedAt": "2026-01-01T00:01:05Z"},
                "n2": {"type": "Pod", "displayName": "build(0)", "phase": "Succeeded",
                    "startedAt": "2026-01-01T00:00:02Z"},
                "n3": {"type": "Suspend", "displayName": "approve-prod", "phase": "Running",
                    "startedAt": "2026-01-01T00:02:00Z",
                    "outputs": {"parameters": [{"name": "approved-by", "valueFrom": {"supplied": {}}}]}},
                "n4": {"type": "Pod", "displayName": "shop-x1.onExit", "phase": "Pending"}
            }}
        });
        let run = RunView::from_workflow(&wf);
        assert_eq!(run.name, "shop-x1");
        assert_eq!(run.commit, "a".repeat(40));
        assert_eq!(run.pull_request, None);
        assert_eq!(run.trigger.as_deref(), Some("manual"));
        assert_eq!(run.sender.as_deref(), Some("jane"));
        let names: Vec<&str> = run.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["build", "approve-prod"]);
        let gates: Vec<&str> = run.waiting_gates().map(|g| g.node_id.as_str()).collect();
        assert_eq!(gates, ["n3"]);
        assert_eq!(run.stages[1].approved_by, None);
        assert!(!run.ended());
        let build = &run.stages[0];
        assert_eq!(
            duration(build.started_at.as_deref(), build.finished_at.as_deref(), "x"),
            "1m03s"
        );
        assert_eq!(
            duration(Some("2026-01-01T00:00:00Z"), None, "2026-01-01T02:03:00Z"),
            "2h03m"
        );
        assert_eq!(duration(None, None, "x"), "-");
    }

    #[test]
    fn a_waiting_risk_gate_is_a_waiting_gate_of_its_environment_with_its_command() {
        // An environment's gated-deploy DAG is a nested DAG: its tasks are
        // `deploy`, `risk`, `resume` within the `deploy-<env>` node.
        let wf = json!({
            "metadata": {"name": "shop-x1"},
            "status": {"phase": "Running", "nodes": {
                "shop-x1": {"type": "DAG", "displayName": "shop-x1"},
                "n1": {"type": "Suspend", "displayName": "approve-risk-x", "phase": "Succeeded",
                    "boundaryID": "shop-x1", "startedAt": "2026-01-01T00:01:00Z"},
                "qa": {"type": "DAG", "displayName": "deploy-qa", "templateName": "gated-deploy",
                    "boundaryID": "shop-x1", "startedAt": "2026-01-01T00:01:30Z"},
                "n2": {"type": "Pod", "displayName": "deploy", "boundaryID": "qa", "phase": "Succeeded",
                    "startedAt": "2026-01-01T00:01:40Z"},
                "n3": {"type": "Suspend", "displayName": "risk", "templateName": "risk-gate", "boundaryID": "qa",
                    "phase": "Failed", "message": "rejected by sam: no", "startedAt": "2026-01-01T00:02:00Z",
                    "outputs": {"parameters": [{"name": "approved-by", "value": "sam"}]}},
                "dev": {"type": "DAG", "displayName": "deploy-dev", "templateName": "gated-deploy",
                    "boundaryID": "shop-x1", "startedAt": "2026-01-01T00:02:30Z"},
                "n4": {"type": "Suspend", "displayName": "risk", "templateName": "risk-gate", "boundaryID": "dev",
                    "phase": "Running", "startedAt": "2026-01-01T00:03:00Z",
                    "outputs": {"parameters": [
                        {"name": "approved-by", "valueFrom": {"supplied": {}, "default": ""}}]}},
                "n5": {"type": "Skipped", "displayName": "resume", "boundaryID": "qa",
                    "phase": "Omitted", "startedAt": "2026-01-01T00:04:00Z"}
            }}
        });
        let run = RunView::from_workflow(&wf);
        let names: Vec<&str> = run.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["approve-risk-x", "deploy-qa", "risk-qa", "risk-dev", "resume-qa"]
        );
        let waiting: Vec<&str> = run.waiting_gates().map(|g| g.name.as_str()).collect();
        assert_eq!(waiting, ["risk-dev"]);
        let kinds: Vec<_> = run.stages.iter().map(StageView::gate_of).collect();
        assert_eq!(
            kinds,
            [
                Some((GateKind::Approval, "risk-x")),
                None,
                Some((GateKind::Risk, "qa")),
                Some((GateKind::Risk, "dev")),
                None
            ]
        );
        assert_eq!(
            run.stages[3].approve_command(&run.name).as_deref(),
            Some("aphex approve shop-x1 --env dev")
        );
        assert_eq!(run.stages[3].approved_by, None, "a supplied output not yet set");
        assert_eq!(run.stages[2].approved_by.as_deref(), Some("sam"));
    }
}
