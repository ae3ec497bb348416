//! A pipeline's Workflows on the cluster: submit one (`aphex trigger`, and
//! the pipeline stage's restart through the `WorkflowSubmitter` port), list
//! and read them (`aphex status`), and decide an environment's gate (`aphex
//! approve`: its approval gate or its risk gate, whichever waits) the way
//! `argo resume`, `argo stop` and `argo node set` decide a suspend node: the
//! gate's node in `status.nodes` gets phase `Succeeded` (or, rejected,
//! `Failed`) with a message and a finish time, and its supplied
//! `approved-by` output its value, in one merge patch that carries the Workflow's `resourceVersion`,
//! so a change the controller made meanwhile is never overwritten (the
//! patch is refused and made again).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::KubeError;
use crate::run_status::{RunView, StageView};
use aphex_stages::ports::{SubmitError, Submitted, WorkflowSubmitter};
use aphex_template::submit::{APPROVED_BY, risk_gate_task};

/// Why a Workflow operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The API server refused, or could not be reached (the message says
    /// what to check).
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: KubeError,
    },
    /// The cluster does not serve Argo's Workflow kind (a namespace-wide 404).
    #[error(
        "{context}: the cluster does not serve Workflow in argoproj.io/v1alpha1: is Argo Workflows installed (its CRDs, `*.argoproj.io`)?"
    )]
    NoWorkflowKind {
        /// What was being done.
        context: String,
        /// The API server's 404.
        #[source]
        source: kube::Error,
    },
    /// A Workflow could not be written or read as JSON.
    #[error("{context}: {source}")]
    Json {
        /// What was being done.
        context: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The request to submit a Workflow could not be built.
    #[error("{context}: {source}")]
    Request {
        /// What was being done.
        context: String,
        /// The HTTP error.
        #[source]
        source: http::Error,
    },
    /// No such run.
    #[error("run {name} not found in namespace {namespace}: `aphex status` lists the pipeline's runs")]
    NotFound {
        /// The namespace.
        namespace: String,
        /// The run (Workflow) asked for.
        name: String,
    },
    /// The run has no such gate, or it is not waiting.
    #[error("{0}")]
    Gate(String),
}

/// How a gate is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Resume it: the deploy after it runs (a risk gate's: with its risks
    /// approved).
    Approve,
    /// Reject it with this message: the run stops at an approval gate; a
    /// risk gate's resume task fails the environment as rejected.
    Reject(String),
}

/// The Workflows of one namespace.
pub struct Workflows {
    client: Client,
    namespace: String,
    server: Option<String>,
}

/// How many times a gate's patch is made again after the controller changed
/// the Workflow in between.
const CONFLICT_RETRIES: usize = 5;

impl Workflows {
    /// The Workflows in `namespace` through `client`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Workflows {
            client,
            namespace: namespace.to_owned(),
            server: None,
        }
    }

    /// The Workflows of the namespace the environment names: the pod's
    /// own (its service account's) inside a cluster, else the kubeconfig
    /// context's. Contacts nothing yet.
    pub async fn infer() -> Result<Self, kube::Error> {
        let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
        let server = config.cluster_url.to_string();
        let namespace = config.default_namespace.clone();
        Ok(Workflows::new(Client::try_from(config)?, &namespace).with_server(server))
    }

    /// Names the API server in errors that cannot reach it.
    pub fn with_server(mut self, server: String) -> Self {
        self.server = Some(server);
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api(&self) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &ApiResource::from_gvk_with_plural(&gvk, "workflows"),
        )
    }

    fn error(&self, context: String, e: kube::Error) -> WorkflowError {
        // A namespace-wide 404 is a cluster without Argo's Workflow kind.
        if let kube::Error::Api(status) = &e
            && status.is_not_found()
            && status.details.as_ref().is_none_or(|d| d.name.is_empty())
        {
            return WorkflowError::NoWorkflowKind { context, source: e };
        }
        let source = match e {
            kube::Error::Api(status) if status.code == 403 => {
                let ns = &self.namespace;
                KubeError::Status {
                    hint: format!(
                        " (these credentials may not do this: `aphex trigger` needs create, `aphex status` list \
                         and get, `aphex approve` get and patch, the pipeline stage's restart list and create, \
                         on workflows.argoproj.io in namespace {ns}; \
                         `kubectl auth can-i patch workflows -n {ns}` checks)"
                    ),
                    source: kube::Error::Api(status),
                }
            }
            e => KubeError::new(self.server.as_deref(), e),
        };
        WorkflowError::Kube { context, source }
    }

    /// Creates `workflow` (with `metadata.generateName`) as the Sensor does,
    /// refusing fields the cluster's CRD does not know (`fieldValidation=Strict`);
    /// the created object, named.
    pub async fn create(&self, workflow: &Value) -> Result<Value, WorkflowError> {
        self.post(workflow).await.map_err(|e| {
            self.error(
                format!("submitting a Workflow in namespace {}", self.namespace),
                e,
            )
        })
    }

    /// The POST of [`Self::create`], its error as kube's (a 409 is told
    /// apart by the caller).
    async fn post(&self, workflow: &Value) -> Result<Value, kube::Error> {
        let url = format!(
            "/apis/argoproj.io/v1alpha1/namespaces/{}/workflows?fieldValidation=Strict",
            self.namespace
        );
        let body = serde_json::to_vec(workflow).map_err(kube::Error::SerdeError)?;
        let request = http::Request::post(url)
            .header("content-type", "application/json")
            .body(body)
            .map_err(kube::Error::HttpError)?;
        self.client.request::<Value>(request).await
    }

    /// The Workflows whose labels match `selector` (`a=b,c=d`), newest first.
    pub async fn list(&self, selector: &str) -> Result<Vec<Value>, WorkflowError> {
        let list = self
            .api()
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| self.error(format!("listing Workflows in namespace {}", self.namespace), e))?;
        let mut items: Vec<Value> = list
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect();
        let created = |w: &Value| {
            w["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        items.sort_by_key(|w| std::cmp::Reverse((created(w), w["metadata"]["name"].to_string())));
        Ok(items)
    }

    /// The Workflow `name`.
    pub async fn get(&self, name: &str) -> Result<Value, WorkflowError> {
        let found = self
            .api()
            .get_opt(name)
            .await
            .map_err(|e| self.error(format!("reading Workflow {}/{name}", self.namespace), e))?;
        match found {
            Some(o) => serde_json::to_value(o).map_err(|source| WorkflowError::Json {
                context: format!("reading Workflow {}/{name}", self.namespace),
                source,
            }),
            None => Err(WorkflowError::NotFound {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
            }),
        }
    }

    /// Decides environment `env`'s waiting gate of run `name` (its
    /// approval gate `approve-ENV` or its risk gate `risk-ENV`, whichever
    /// waits) as `who`, at `now` (RFC 3339); the gate as it was just before.
    pub async fn decide(
        &self,
        name: &str,
        env: &str,
        decision: &Decision,
        who: &str,
        now: &str,
    ) -> Result<StageView, WorkflowError> {
        for _ in 0..CONFLICT_RETRIES {
            let workflow = self.get(name).await?;
            let GateDecision { gate, patch } = gate_patch(&workflow, env, decision, who, now)?;
            match self
                .api()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(gate),
                // The controller wrote the Workflow since it was read: read again.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => {
                    return Err(self.error(
                        format!("deciding gate {} of run {}/{name}", gate.name, self.namespace),
                        e,
                    ));
                }
            }
        }
        Err(WorkflowError::Gate(format!(
            "run {name} kept changing while environment {env}'s gate was being decided: run the command again"
        )))
    }
}

/// The gate [`gate_patch`] chose and the merge patch that decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateDecision {
    /// The gate, as it was before the patch.
    pub gate: StageView,
    /// The merge patch of the Workflow.
    pub patch: Value,
}

/// The merge patch that decides environment `env`'s waiting gate of
/// `workflow`, or why it cannot. Of its approval gate (`approve-ENV`) and
/// its risk gate (`risk-ENV`) at most one waits at a time: the risk gate
/// follows the deploy that follows the approval gate.
///
/// Either is decided as `argo resume` (approve: phase `Succeeded`) or
/// `argo stop` (reject: `Failed`, the run stops there) do. A risk gate is
/// the `risk` task of environment `env`'s `gated-deploy` DAG, which
/// [`RunView`] names `risk-ENV`.
pub fn gate_patch(
    workflow: &Value,
    env: &str,
    decision: &Decision,
    who: &str,
    now: &str,
) -> Result<GateDecision, WorkflowError> {
    let run = RunView::from_workflow(workflow);
    let approval = format!("approve-{env}");
    let risk = risk_gate_task(env);
    let status = &workflow["status"];
    if status["nodes"].as_object().is_none()
        && (status.get("compressedNodes").is_some() || status.get("offloadNodeStatusVersion").is_some())
    {
        let name = &run.name;
        return Err(WorkflowError::Gate(format!(
            "run {name} keeps its node status compressed or offloaded, which aphex does not read: decide the \
             gate with `argo node set {name} --node-field-selector displayName={approval} --output-parameter \
             {APPROVED_BY}={who}` then `argo resume` (or `argo stop`) with the same selector (a risk gate: \
             `displayName=risk` within `deploy-{env}`; {risk} in `aphex status`)"
        )));
    }
    let gates: Vec<&StageView> = run
        .stages
        .iter()
        .filter(|s| s.gate && (s.name == approval || s.name == risk))
        .collect();
    let Some(node) = gates.iter().copied().find(|g| g.waiting()) else {
        return Err(not_waiting(&run, &gates, &approval, &risk));
    };
    // Both gates decide alike; a rejected risk gate fails its node, and so
    // the run, with nothing deployed past it (its change set was deleted
    // when the deploy stopped), which finalize records.
    let (phase, message) = match (node.name == risk, decision) {
        (false, Decision::Approve) => ("Succeeded", format!("approved by {who}")),
        (true, Decision::Approve) => ("Succeeded", format!("risk approved by {who}")),
        (_, Decision::Reject(reason)) => ("Failed", format!("rejected by {who}: {reason}")),
    };
    // Outputs as `argo node set` leaves them: the supplied value set, its
    // `valueFrom` gone; the whole list, since a merge patch replaces lists.
    let mut outputs = workflow["status"]["nodes"][&node.node_id]["outputs"].clone();
    let named = supply(&mut outputs, APPROVED_BY, who);
    let mut update = json!({"phase": phase, "message": message, "finishedAt": now});
    if named {
        update["outputs"] = outputs;
    }
    let mut patch = json!({"status": {"nodes": {}}});
    patch["status"]["nodes"][&node.node_id] = update;
    // The resourceVersion makes the patch conditional on what was read.
    if let Some(rv) = workflow["metadata"]["resourceVersion"].as_str() {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    Ok(GateDecision {
        gate: node.clone(),
        patch,
    })
}

/// Sets output parameter `name` of `outputs` to `value` as `argo node set`
/// does (the value set, its `valueFrom` gone); whether the node has it.
fn supply(outputs: &mut Value, name: &str, value: &str) -> bool {
    let mut found = false;
    if let Some(params) = outputs["parameters"].as_array_mut() {
        for p in params.iter_mut().filter(|p| p["name"] == name) {
            if let Some(o) = p.as_object_mut() {
                o.remove("valueFrom");
                o.insert("value".to_owned(), json!(value));
                found = true;
            }
        }
    }
    found
}

/// Why none of `gates` (environment's gates `approval` and `risk` that the
/// run reached) waits: the latest one's state, else where the run is.
fn not_waiting(run: &RunView, gates: &[&StageView], approval: &str, risk: &str) -> WorkflowError {
    if let Some(gate) = gates.last() {
        let detail = match (&gate.approved_by, &gate.message) {
            (Some(by), _) => format!(" by {by}"),
            (None, Some(message)) => format!(" ({message})"),
            _ => String::new(),
        };
        return WorkflowError::Gate(format!(
            "gate {} of run {} is not waiting: it is {}{detail}",
            gate.name, run.name, gate.phase
        ));
    }
    let waiting: Vec<&str> = run.waiting_gates().map(|g| g.name.as_str()).collect();
    WorkflowError::Gate(if run.ended() {
        format!(
            "run {} has ended ({}) without reaching {approval} or {risk}",
            run.name, run.phase
        )
    } else if waiting.is_empty() {
        format!(
            "run {} is not waiting at {approval} or {risk} (yet): no gate waits now; `aphex status {}` shows where it is",
            run.name, run.name
        )
    } else {
        format!(
            "run {} is not waiting at {approval} or {risk}; it waits at: {}",
            run.name,
            waiting.join(", ")
        )
    })
}

/// The pipeline stage's restart goes through the same calls as `aphex
/// trigger` and `aphex status`: a 409 on create is a Workflow of that name
/// already there.
#[async_trait::async_trait]
impl WorkflowSubmitter for Workflows {
    fn describe(&self) -> String {
        format!("the Kubernetes API server (namespace {})", self.namespace)
    }

    async fn find(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, SubmitError> {
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let found = self.list(&selector.join(",")).await.map_err(submit_error)?;
        Ok(found
            .iter()
            .filter(|w| !aphex_template::submit::has_finished(w))
            .filter_map(|w| w["metadata"]["name"].as_str().map(str::to_owned))
            .collect())
    }

    async fn submit(&self, workflow: &Value) -> Result<Submitted, SubmitError> {
        let name = workflow["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match self.post(workflow).await {
            Ok(created) => Ok(Submitted::Created(
                created["metadata"]["name"].as_str().unwrap_or(&name).to_owned(),
            )),
            Err(kube::Error::Api(status)) if status.code == 409 && !name.is_empty() => {
                Ok(Submitted::AlreadyExists(name))
            }
            Err(e) => Err(submit_error(self.error(
                format!("submitting Workflow {name} in namespace {}", self.namespace),
                e,
            ))),
        }
    }
}

/// A Workflow error as the submitter port's.
fn submit_error(e: WorkflowError) -> SubmitError {
    match e {
        WorkflowError::NoWorkflowKind { context, .. } => SubmitError::Refused {
            context,
            why: "the cluster does not serve Workflow in argoproj.io/v1alpha1: is Argo Workflows installed (its CRDs, `*.argoproj.io`)?".to_owned(),
        },
        WorkflowError::Kube { context, source } => SubmitError::Other {
            context,
            source: Box::new(source),
        },
        other => SubmitError::Other {
            context: "submitting a Workflow".to_owned(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T01:00:00Z";

    /// A supplied output as Argo writes it on a waiting suspend node.
    fn supplied(name: &str) -> Value {
        json!({"name": name, "default": "", "valueFrom": {"supplied": {}, "default": ""}})
    }

    /// Run `shop-x1`: dev approved at `approve-dev`, then deployed to a
    /// risky change set; its risk gate in phase `risk_phase`: the `risk`
    /// task of dev's `gated-deploy` DAG, as Argo writes a nested DAG.
    fn at_risk_gate(risk_phase: &str) -> Value {
        json!({
            "metadata": {"name": "shop-x1", "resourceVersion": "42"},
            "status": {"phase": "Running", "startedAt": "2026-01-01T00:00:00Z", "nodes": {
                "shop-x1": {"type": "DAG", "displayName": "shop-x1", "phase": "Running"},
                "n1": {"type": "Suspend", "displayName": "approve-dev", "templateName": "approval",
                    "phase": "Succeeded", "message": "approved by jane",
                    "startedAt": "2026-01-01T00:01:00Z", "finishedAt": "2026-01-01T00:02:00Z",
                    "outputs": {"parameters": [{"name": "approved-by", "default": "", "value": "jane"}]}},
                "d": {"type": "DAG", "displayName": "deploy-dev", "templateName": "gated-deploy",
                    "boundaryID": "shop-x1", "phase": "Running", "startedAt": "2026-01-01T00:02:01Z"},
                "n2": {"type": "Pod", "displayName": "deploy", "templateName": "stage", "boundaryID": "d",
                    "phase": "Succeeded", "startedAt": "2026-01-01T00:02:01Z", "finishedAt": "2026-01-01T00:05:00Z"},
                "n3": {"type": "Suspend", "displayName": "risk", "templateName": "risk-gate", "boundaryID": "d",
                    "phase": risk_phase, "startedAt": "2026-01-01T00:05:01Z",
                    "outputs": {"parameters": [supplied("approved-by")]}}
            }}
        })
    }

    fn refused(workflow: &Value, env: &str) -> String {
        match gate_patch(workflow, env, &Decision::Approve, "jane", NOW) {
            Err(WorkflowError::Gate(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn approving_a_waiting_risk_gate_succeeds_it_with_its_output_set_as_argo_node_set_leaves_them() {
        let decided = gate_patch(&at_risk_gate("Running"), "dev", &Decision::Approve, "jane", NOW).unwrap();
        assert_eq!(decided.gate.name, "risk-dev");
        assert_eq!(
            decided.gate.gate_of(),
            Some((crate::run_status::GateKind::Risk, "dev"))
        );
        assert_eq!(
            decided.patch,
            json!({
                "metadata": {"resourceVersion": "42"},
                "status": {"nodes": {"n3": {
                    "phase": "Succeeded",
                    "message": "risk approved by jane",
                    "finishedAt": NOW,
                    "outputs": {"parameters": [
                        {"name": "approved-by", "default": "", "value": "jane"}
                    ]}
                }}}
            }),
            "only the risk gate's node, the approval gate before it untouched"
        );
    }

    #[test]
    fn rejecting_a_risk_gate_fails_it_as_an_approval_gate_so_the_run_stops_there() {
        let reject = Decision::Reject("not during the sale".to_owned());
        let decided = gate_patch(&at_risk_gate("Running"), "dev", &reject, "sam@example.com", NOW).unwrap();
        assert_eq!(decided.gate.name, "risk-dev");
        let node = &decided.patch["status"]["nodes"]["n3"];
        assert_eq!(node["phase"], "Failed");
        assert_eq!(
            node["message"],
            "rejected by sam@example.com: not during the sale"
        );
        assert_eq!(
            node["outputs"]["parameters"],
            json!([{"name": "approved-by", "default": "", "value": "sam@example.com"}])
        );
    }

    #[test]
    fn a_risk_gate_that_does_not_wait_is_refused_saying_how_it_was_decided() {
        let mut workflow = at_risk_gate("Failed");
        let node = &mut workflow["status"]["nodes"]["n3"];
        node["message"] = json!("rejected by sam: not today");
        node["outputs"]["parameters"] = json!([{"name": "approved-by", "value": "sam"}]);
        assert_eq!(
            refused(&workflow, "dev"),
            "gate risk-dev of run shop-x1 is not waiting: it is Failed by sam"
        );
        // Resumed by its timeout (or `argo resume`): no name, its message.
        let mut timed_out = at_risk_gate("Succeeded");
        timed_out["status"]["nodes"]["n3"]["message"] = json!("Suspend duration exceeded");
        assert_eq!(
            refused(&timed_out, "dev"),
            "gate risk-dev of run shop-x1 is not waiting: it is Succeeded (Suspend duration exceeded)"
        );
        // Reached, but its deploy is not there yet: the approval gate's state.
        let mut before = at_risk_gate("Running");
        before["status"]["nodes"].as_object_mut().unwrap().remove("n3");
        assert_eq!(
            refused(&before, "dev"),
            "gate approve-dev of run shop-x1 is not waiting: it is Succeeded by jane"
        );
    }

    #[test]
    fn with_no_gate_of_the_environment_the_refusal_names_both_and_those_that_wait() {
        let workflow = at_risk_gate("Running");
        assert_eq!(
            refused(&workflow, "prod"),
            "run shop-x1 is not waiting at approve-prod or risk-prod; it waits at: risk-dev"
        );
        let mut idle = at_risk_gate("Succeeded");
        assert!(
            refused(&idle, "prod").starts_with(
                "run shop-x1 is not waiting at approve-prod or risk-prod (yet): no gate waits now"
            ),
            "{}",
            refused(&idle, "prod")
        );
        idle["status"]["phase"] = json!("Failed");
        assert_eq!(
            refused(&idle, "prod"),
            "run shop-x1 has ended (Failed) without reaching approve-prod or risk-prod"
        );
    }

    #[test]
    fn an_approval_gate_is_decided_as_before_a_rejection_fails_it() {
        let mut workflow = at_risk_gate("Running");
        let nodes = workflow["status"]["nodes"].as_object_mut().unwrap();
        for id in ["d", "n2", "n3"] {
            nodes.remove(id);
        }
        let gate = &mut nodes["n1"];
        gate["phase"] = json!("Running");
        gate["outputs"]["parameters"] = json!([supplied("approved-by")]);
        let reject = Decision::Reject("no".to_owned());
        let decided = gate_patch(&workflow, "dev", &reject, "sam", NOW).unwrap();
        assert_eq!(decided.gate.name, "approve-dev");
        assert_eq!(
            decided.patch["status"]["nodes"]["n1"],
            json!({"phase": "Failed", "message": "rejected by sam: no", "finishedAt": NOW,
                "outputs": {"parameters": [{"name": "approved-by", "default": "", "value": "sam"}]}})
        );
    }

    #[test]
    fn compressed_node_status_is_refused_with_the_argo_commands_for_either_gate() {
        let workflow = json!({"metadata": {"name": "shop-x1"},
            "status": {"phase": "Running", "compressedNodes": "H4sI..."}});
        let why = refused(&workflow, "dev");
        for part in [
            "--node-field-selector displayName=approve-dev --output-parameter approved-by=jane",
            "(a risk gate: `displayName=risk` within `deploy-dev`; risk-dev in `aphex status`)",
        ] {
            assert!(why.contains(part), "{part} in {why}");
        }
    }
}
