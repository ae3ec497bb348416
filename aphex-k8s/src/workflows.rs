//! A pipeline's Workflows on the cluster: submit one (`aphex trigger`, and
//! the pipeline stage's restart through the `WorkflowSubmitter` port), list
//! and read them (`aphex status`), and decide an approval gate (`aphex
//! approve`) the way `argo resume`, `argo stop` and `argo node set` decide a
//! suspend node: the gate's node in `status.nodes` gets phase `Succeeded`
//! (or `Failed` with a message) and a finish time, and its supplied
//! `approved-by` output its value, in one merge patch that carries the
//! Workflow's `resourceVersion`, so a change the controller made meanwhile
//! is never overwritten (the patch is refused and made again).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::KubeError;
use crate::run_status::RunView;
use aphex_stages::ports::{SubmitError, Submitted, WorkflowSubmitter};
use aphex_template::submit::APPROVED_BY;

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
    /// Resume it: the deploy after it runs.
    Approve,
    /// Fail it with this message: the run stops there.
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

    /// Decides gate `gate` (`approve-prod`) of run `name` as `who`, at
    /// `now` (RFC 3339); the run as it was just before.
    pub async fn decide(
        &self,
        name: &str,
        gate: &str,
        decision: &Decision,
        who: &str,
        now: &str,
    ) -> Result<RunView, WorkflowError> {
        for _ in 0..CONFLICT_RETRIES {
            let workflow = self.get(name).await?;
            let patch = gate_patch(&workflow, gate, decision, who, now)?;
            match self
                .api()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(RunView::from_workflow(&workflow)),
                // The controller wrote the Workflow since it was read: read again.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => {
                    return Err(self.error(
                        format!("deciding gate {gate} of run {}/{name}", self.namespace),
                        e,
                    ));
                }
            }
        }
        Err(WorkflowError::Gate(format!(
            "run {name} kept changing while gate {gate} was being decided: run the command again"
        )))
    }
}

/// The merge patch that decides `gate` of `workflow`, or why it cannot.
pub fn gate_patch(
    workflow: &Value,
    gate: &str,
    decision: &Decision,
    who: &str,
    now: &str,
) -> Result<Value, WorkflowError> {
    let run = RunView::from_workflow(workflow);
    let status = &workflow["status"];
    if status["nodes"].as_object().is_none()
        && (status.get("compressedNodes").is_some() || status.get("offloadNodeStatusVersion").is_some())
    {
        return Err(WorkflowError::Gate(format!(
            "run {} keeps its node status compressed or offloaded, which aphex does not read: decide the gate with \
             `argo node set {} --node-field-selector displayName={gate} --output-parameter {APPROVED_BY}={who}` \
             then `argo resume` (or `argo stop`) with the same selector",
            run.name, run.name
        )));
    }
    let waiting: Vec<&str> = run.waiting_gates().map(|g| g.name.as_str()).collect();
    let Some(node) = run.stages.iter().find(|s| s.gate && s.name == gate) else {
        return Err(WorkflowError::Gate(if run.ended() {
            format!(
                "run {} has ended ({}) without reaching {gate}",
                run.name, run.phase
            )
        } else if waiting.is_empty() {
            format!(
                "run {} is not waiting at {gate} (yet): no gate waits now; `aphex status {}` shows where it is",
                run.name, run.name
            )
        } else {
            format!(
                "run {} is not waiting at {gate}; it waits at: {}",
                run.name,
                waiting.join(", ")
            )
        }));
    };
    if !node.waiting() {
        let by = node
            .approved_by
            .as_deref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        return Err(WorkflowError::Gate(format!(
            "gate {gate} of run {} is not waiting: it is {}{by}",
            run.name, node.phase
        )));
    }
    let (phase, message) = match decision {
        Decision::Approve => ("Succeeded", format!("approved by {who}")),
        Decision::Reject(reason) => ("Failed", format!("rejected by {who}: {reason}")),
    };
    // Outputs as `argo node set` leaves them: the supplied value set, its
    // `valueFrom` gone; the whole list, since a merge patch replaces lists.
    let mut outputs = workflow["status"]["nodes"][&node.node_id]["outputs"].clone();
    let mut named = false;
    if let Some(params) = outputs["parameters"].as_array_mut() {
        for p in params.iter_mut().filter(|p| p["name"] == APPROVED_BY) {
            if let Some(o) = p.as_object_mut() {
                o.remove("valueFrom");
                o.insert("value".to_owned(), json!(who));
                named = true;
            }
        }
    }
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
    Ok(patch)
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
