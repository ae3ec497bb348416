//! `aphex-k8s`: the Kubernetes adapters. [`KubeApplier`] is the
//! [`ManifestApplier`] port on a real API server: it checks that the cluster
//! serves each kind (an Argo CRD missing is the usual first failure), reads
//! the live object, and applies manifests with server-side apply.
//!
//! [`workflows`] submits, lists and reads a pipeline's Workflows and sets
//! its approval gates; [`run_status`] reads a Workflow's status as a run
//! (`aphex trigger`, `status`, `approve`). [`connect`] makes the client a
//! kubeconfig context names; [`KubeApplier::delete`] removes what
//! bootstrap applied (`aphex destroy`). `aphex diff` compares through the
//! port (`aphex_stages::diff`). The fake API server of the tests
//! (`fake`) is built only with the `test-util` feature.
//!
//! Architecture invariant: knows nothing of AWS.
//!
//! # Example
//!
//! Embedding the applier: build it from the environment (the pod's service
//! account, else `KUBECONFIG` or `~/.kube/config`), then apply what
//! `aphex-template` renders for a config, as the pipeline stage does.
//!
//! ```no_run
//! use aphex_stages::ports::ManifestApplier;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let applier = aphex_k8s::KubeApplier::infer().await?;
//! let text = std::fs::read_to_string("aphex-config.yaml")?;
//! let config = aphex_config::load_str("aphex-config.yaml", &text).expect("a valid config");
//! let rendered = aphex_template::render(&config, &aphex_template::RenderOptions::default());
//! let manifests: Vec<serde_json::Value> = rendered.manifests.into_iter().map(|m| m.value).collect();
//! applier.apply(&manifests).await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "test-util")]
pub mod fake;
pub mod run_status;
pub mod workflows;

use std::collections::BTreeMap;
use std::sync::Mutex;

use aphex_stages::ports::{ClusterError, ManifestApplier};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

/// The field manager of every apply: the fields aphex sets are owned by
/// `aphex` in `metadata.managedFields`.
pub const FIELD_MANAGER: &str = "aphex";

/// The API version of each kind aphex renders. The port names objects by
/// kind alone, and these are all a pipeline ever applies.
const KINDS: &[(&str, &str)] = &[
    ("WorkflowTemplate", "argoproj.io/v1alpha1"),
    ("EventSource", "argoproj.io/v1alpha1"),
    ("Sensor", "argoproj.io/v1alpha1"),
    ("ServiceAccount", "v1"),
    ("ConfigMap", "v1"),
    ("Secret", "v1"),
    ("Role", "rbac.authorization.k8s.io/v1"),
    ("RoleBinding", "rbac.authorization.k8s.io/v1"),
    ("ValidatingAdmissionPolicy", "admissionregistration.k8s.io/v1"),
    (
        "ValidatingAdmissionPolicyBinding",
        "admissionregistration.k8s.io/v1",
    ),
];

/// A cluster, as the kubeconfig (or, in a pod, the service account) names it.
pub struct Connection {
    /// The client configuration (its default namespace is the context's).
    pub config: kube::Config,
    /// The kubeconfig's user of the context, when there is a kubeconfig:
    /// who `aphex trigger` and `aphex approve` name by default.
    pub user: Option<String>,
}

impl Connection {
    /// The applier on this cluster.
    pub fn applier(&self) -> Result<KubeApplier, kube::Error> {
        KubeApplier::from_config(self.config.clone())
    }

    /// The Workflows in `namespace` of this cluster.
    pub fn workflows(&self, namespace: &str) -> Result<workflows::Workflows, kube::Error> {
        let server = self.config.cluster_url.to_string();
        Ok(workflows::Workflows::new(Client::try_from(self.config.clone())?, namespace).with_server(server))
    }
}

/// Why no client configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No kubeconfig, and not in a pod.
    #[error(transparent)]
    Infer(#[from] kube::config::InferConfigError),
    /// The kubeconfig (or the context asked for) is unusable.
    #[error(transparent)]
    Kubeconfig(#[from] kube::config::KubeconfigError),
}

/// The cluster of kubeconfig context `context` (as `kubectl --context`), or
/// with none the current context (or the pod's service account, as
/// [`KubeApplier::infer`]). Contacts nothing yet.
pub async fn connect(context: Option<&str>) -> Result<Connection, ConnectError> {
    let kubeconfig = kube::config::Kubeconfig::read().ok();
    let config = match context {
        Some(c) => {
            let options = kube::config::KubeConfigOptions {
                context: Some(c.to_owned()),
                ..Default::default()
            };
            kube::Config::from_kubeconfig(&options).await?
        }
        None => kube::Config::infer().await?,
    };
    let user = kubeconfig.and_then(|k| {
        let name = context.map(str::to_owned).or(k.current_context)?;
        k.contexts.into_iter().find(|c| c.name == name)?.context?.user
    });
    Ok(Connection { config, user })
}

/// How the cluster serves one kind, from its discovery document.
#[derive(Debug, Clone)]
struct Served {
    resource: ApiResource,
    namespaced: bool,
}

/// Applies manifests to a Kubernetes API server.
pub struct KubeApplier {
    client: Client,
    /// The API server's URL, when known, for errors that cannot reach it.
    server: Option<String>,
    /// What discovery said, by `apiVersion` and kind: asked once per kind.
    served: Mutex<BTreeMap<(String, String), Served>>,
}

impl KubeApplier {
    /// An applier on `client` (its default namespace is used for objects
    /// that name none).
    pub fn new(client: Client) -> Self {
        KubeApplier {
            client,
            server: None,
            served: Mutex::new(BTreeMap::new()),
        }
    }

    /// An applier from the environment: the pod's service account inside a
    /// cluster, else `KUBECONFIG` or `~/.kube/config`. Contacts nothing yet.
    pub async fn infer() -> Result<Self, kube::Error> {
        let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
        Self::from_config(config)
    }

    /// An applier on the cluster `config` names (its default namespace is
    /// used for objects that name none). Contacts nothing yet.
    pub fn from_config(config: kube::Config) -> Result<Self, kube::Error> {
        let server = config.cluster_url.to_string();
        Ok(KubeApplier {
            server: Some(server),
            ..KubeApplier::new(Client::try_from(config)?)
        })
    }

    /// How the cluster serves `kind` of `api_version`, asking its discovery
    /// document the first time; an error that says what to install when the
    /// cluster does not serve it.
    async fn served(&self, api_version: &str, kind: &str) -> Result<Served, ClusterError> {
        let context = || format!("finding {kind} ({api_version}) on the cluster");
        self.served_if_any(api_version, kind)
            .await
            .map_err(|e| ClusterError::backend(context(), e))?
            .ok_or_else(|| ClusterError::Refused {
                context: context(),
                why: format!(
                    "the cluster does not serve {kind} in {api_version}{}",
                    install_hint(kind)
                ),
            })
    }

    /// How the cluster serves `kind` of `api_version`, `None` when it does not.
    async fn served_if_any(&self, api_version: &str, kind: &str) -> Result<Option<Served>, KubeError> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(s) = self.served.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Some(s.clone()));
        }
        let list = if api_version.contains('/') {
            self.client.list_api_group_resources(api_version).await
        } else {
            self.client.list_core_api_resources(api_version).await
        };
        let list = match list {
            Ok(l) => l,
            Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(None),
            Err(e) => return Err(self.kube_error(e)),
        };
        // Subresources (`workflowtemplates/status`) share the kind.
        let Some(r) = list
            .resources
            .iter()
            .find(|r| r.kind == kind && !r.name.contains('/'))
        else {
            return Ok(None);
        };
        let gvk = match api_version.split_once('/') {
            Some((group, version)) => GroupVersionKind::gvk(group, version, kind),
            None => GroupVersionKind::gvk("", api_version, kind),
        };
        let served = Served {
            resource: ApiResource::from_gvk_with_plural(&gvk, &r.name),
            namespaced: r.namespaced,
        };
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, served.clone());
        Ok(Some(served))
    }

    fn api(&self, served: &Served, namespace: &str) -> Api<DynamicObject> {
        let client = self.client.clone();
        match (served.namespaced, namespace) {
            (false, _) => Api::all_with(client, &served.resource),
            (true, "") => Api::default_namespaced_with(client, &served.resource),
            (true, ns) => Api::namespaced_with(client, ns, &served.resource),
        }
    }

    async fn apply_one(&self, manifest: &Value) -> Result<(), ClusterError> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let (api_version, kind) = (s(&manifest["apiVersion"]), s(&manifest["kind"]));
        let (namespace, name) = (
            s(&manifest["metadata"]["namespace"]),
            s(&manifest["metadata"]["name"]),
        );
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(ClusterError::Refused {
                context: "applying a manifest".to_owned(),
                why: "it has no apiVersion, kind or metadata.name".to_owned(),
            });
        }
        let served = self.served(&api_version, &kind).await?;
        // Force: the pipeline owns its objects, so fields another manager
        // (a hand-run `kubectl apply`) set are taken over rather than left
        // to block every self-update with a conflict. Strict: a field the
        // cluster's CRD does not know (an older Argo) fails the apply naming
        // it, as with kubectl, instead of being dropped without a word.
        let params = PatchParams::apply(FIELD_MANAGER).force().validation_strict();
        self.api(&served, &namespace)
            .patch(&name, &params, &Patch::Apply(manifest))
            .await
            .map(drop)
            .map_err(|e| {
                ClusterError::backend(
                    format!("applying {kind} {}", object(&namespace, &name)),
                    self.kube_error(e),
                )
            })
    }
}

/// What deleting an object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It existed and is deleted (or being deleted).
    Deleted,
    /// It was not there.
    Absent,
    /// It is there but names another pipeline (or none) in its
    /// `aphex.dev/pipeline` label: kept.
    Foreign,
}

impl KubeApplier {
    /// Deletes the live object `manifest` names (its apiVersion, kind,
    /// namespace and name), letting the cluster remove what it owns; only
    /// when its `aphex.dev/pipeline` label is the manifest's, so an object
    /// someone else made under the same name is kept.
    pub async fn delete(&self, manifest: &Value) -> Result<Deleted, ClusterError> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let (api_version, kind) = (s(&manifest["apiVersion"]), s(&manifest["kind"]));
        let (namespace, name) = (
            s(&manifest["metadata"]["namespace"]),
            s(&manifest["metadata"]["name"]),
        );
        let what = format!("deleting {kind} {}", object(&namespace, &name));
        // A kind the cluster does not serve holds nothing to delete.
        let fail = |e| ClusterError::backend(what.clone(), self.kube_error(e));
        let Some(served) = self.served_if_any(&api_version, &kind).await.map_err(|e| {
            ClusterError::backend(format!("finding {kind} ({api_version}) on the cluster"), e)
        })?
        else {
            return Ok(Deleted::Absent);
        };
        let api = self.api(&served, &namespace);
        let live = match api.get_opt(&name).await {
            Ok(Some(live)) => live,
            Ok(None) => return Ok(Deleted::Absent),
            Err(e) => return Err(fail(e)),
        };
        let label = aphex_template::workflow::PIPELINE_LABEL;
        let ours = manifest["metadata"]["labels"][label].as_str();
        if live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(label))
            .map(String::as_str)
            != ours
        {
            return Ok(Deleted::Foreign);
        }
        // Deleted only as it was read: not one made again meanwhile.
        let params = kube::api::DeleteParams {
            preconditions: live.metadata.uid.map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..kube::api::DeleteParams::background()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(Deleted::Absent),
            Err(e) => Err(fail(e)),
        }
    }
}

#[async_trait::async_trait]
impl ManifestApplier for KubeApplier {
    fn describe(&self) -> String {
        format!(
            "the Kubernetes API server (default namespace {})",
            self.client.default_namespace()
        )
    }

    async fn current(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, ClusterError> {
        let context = || format!("reading {kind} {}", object(namespace, name));
        let Some((_, api_version)) = KINDS.iter().find(|(k, _)| *k == kind) else {
            return Err(ClusterError::Refused {
                context: context(),
                why: format!("aphex does not know the API version of kind {kind}"),
            });
        };
        let served = self.served(api_version, kind).await?;
        let live = self
            .api(&served, namespace)
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::backend(context(), self.kube_error(e)))?;
        live.map(|o| {
            serde_json::to_value(o).map_err(|source| ClusterError::Json {
                context: context(),
                source,
            })
        })
        .transpose()
    }

    /// Applies in order and stops at the first failure, which names the
    /// object: the manifests before it are applied, those after are not.
    async fn apply(&self, manifests: &[Value]) -> Result<(), ClusterError> {
        for m in manifests {
            self.apply_one(m).await?;
        }
        Ok(())
    }
}

fn object(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

fn install_hint(kind: &str) -> &'static str {
    match kind {
        "WorkflowTemplate" | "Workflow" => ": is Argo Workflows installed (its CRDs, `*.argoproj.io`)?",
        "EventSource" | "Sensor" => ": is Argo Events installed (its CRDs, `*.argoproj.io`)?",
        "ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding" => {
            ": admission policies are served from Kubernetes 1.30 (EKS 1.30); aphex relies on one to keep each pipeline to its own service accounts (docs/security.md)"
        }
        _ => "",
    }
}

impl KubeApplier {
    /// A kube error, with what to do for the usual API statuses and for a
    /// server that cannot be reached.
    fn kube_error(&self, e: kube::Error) -> KubeError {
        KubeError::new(self.server.as_deref(), e)
    }
}

/// Why a request to the API server failed, with what to check. Each
/// variant keeps kube's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API server could not be reached.
    #[error(
        "cannot reach {server}: {} (is the cluster running, and is the kubeconfig's current context the right one?)",
        error_chain(.source)
    )]
    Unreachable {
        /// The API server's URL, or `the API server` when not known.
        server: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The API server answered with an error status; `hint` says what to
    /// check (or is empty).
    #[error("{}{hint}", status_line(.source))]
    Status {
        /// What to check, from ` (`, or empty.
        hint: String,
        /// The client's error ([`kube::Error::Api`]).
        #[source]
        source: kube::Error,
    },
    /// Anything else the client reports (a request that could not be
    /// built, an answer that could not be read).
    #[error(transparent)]
    Client(kube::Error),
}

impl KubeError {
    /// `e`, with what to do for the usual API statuses and for a server
    /// (at `server`, when known) that cannot be reached.
    pub fn new(server: Option<&str>, e: kube::Error) -> KubeError {
        match &e {
            kube::Error::Service(_) | kube::Error::HyperError(_) => KubeError::Unreachable {
                server: server.unwrap_or("the API server").to_owned(),
                source: e,
            },
            kube::Error::Api(status) => KubeError::Status {
                hint: status_hint(status).to_owned(),
                source: e,
            },
            _ => KubeError::Client(e),
        }
    }
}

/// `code reason: message` of an API status, else the error's own text.
fn status_line(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} {}: {}", status.code, status.reason, status.message),
        e => e.to_string(),
    }
}

/// An error and its causes on one line: "client error (Connect): tcp
/// connect error: Connection refused (os error 111)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        // Some layers repeat their cause in their own message.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// What to check after an API status, from ` (`, or nothing.
fn status_hint(status: &kube::core::Status) -> &'static str {
    // Server-side apply refuses a field the CRD's schema lacks with a
    // 500; a create with `fieldValidation=Strict`, with a 400.
    let unknown_field =
        status.message.contains("field not declared in schema") || status.message.contains("unknown field");
    match status.code {
        _ if unknown_field => {
            " (the cluster's Argo CRD does not declare this field: is the installed Argo older than the one aphex renders for? compare `aphex render` with `kubectl explain`)"
        }
        401 => " (the credentials were refused: in a pod, is the service account token mounted?)",
        403 => {
            // Both callers: the pipeline stage in a pod, and an
            // operator's `aphex bootstrap`/`aphex diff`.
            " (these credentials may not do this: in a pod, the executor's Role from `aphex render` allows get and patch on the pipeline's WorkflowTemplate only; `aphex bootstrap` needs a kubeconfig that may create RBAC objects, Secrets and Argo objects in both Argo namespaces)"
        }
        // Discovery found the kind, so on apply a 404 is the namespace.
        404 => " (does the namespace exist? Argo's installation makes its namespaces)",
        409 => " (a conflicting change: run the stage again)",
        422 => " (the API server rejected the object: compare it with `aphex render`)",
        _ => "",
    }
}
