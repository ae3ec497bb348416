//! An in-process fake Kubernetes API server for tests (feature
//! `test-util`), at the HTTP level (kube-rs's own way: a [`Client`] over a
//! tower service, no socket), or on a loopback port for a child process
//! (`aphex trigger` in the CLI's tests: [`Fake::serve`]). It answers
//! discovery, GET (one object, or a collection with a label selector),
//! POST (with `generateName`), server-side-apply and merge PATCH (a merge
//! patch carrying a stale `resourceVersion` is refused with 409, as a
//! server does) and DELETE; it adds the fields a server adds and records
//! every request. Test support only: it stores objects as sent and checks
//! no schema.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use crate::FIELD_MANAGER;

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The HTTP method.
    pub method: Method,
    /// The URL path (`/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtemplates/aphex`).
    pub path: String,
    /// The query string, without `?` (empty when none): where `fieldManager`,
    /// `force` and `fieldValidation` show.
    pub query: String,
    /// The `content-type` header (empty when none): tells an apply patch
    /// from a merge patch.
    pub content_type: String,
    /// The body parsed as JSON (`null` when empty or not JSON).
    pub body: Value,
}

#[derive(Default)]
struct State {
    /// Group versions the cluster serves (`argoproj.io/v1alpha1`, `v1`).
    served: Vec<&'static str>,
    /// Objects by their URL path.
    objects: BTreeMap<String, Value>,
    /// Names whose PATCH is refused with 403.
    forbidden: Vec<String>,
    /// Namespaces that do not exist (a PATCH into one is a 404).
    missing_namespaces: Vec<String>,
    /// The last resourceVersion handed out.
    version: u64,
    seen: Vec<Seen>,
}

/// The fake API server: clone it freely, every clone is the same server.
#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<State>>);

fn status(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, body)
}

/// The plural and kind of every resource each group version serves.
fn kinds(group_version: &str) -> &'static [(&'static str, &'static str)] {
    match group_version {
        "argoproj.io/v1alpha1" => &[
            ("workflowtemplates", "WorkflowTemplate"),
            ("workflows", "Workflow"),
            ("eventsources", "EventSource"),
            ("sensors", "Sensor"),
        ],
        "rbac.authorization.k8s.io/v1" => &[("roles", "Role"), ("rolebindings", "RoleBinding")],
        "admissionregistration.k8s.io/v1" => &[
            ("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
            (
                "validatingadmissionpolicybindings",
                "ValidatingAdmissionPolicyBinding",
            ),
        ],
        _ => &[
            ("serviceaccounts", "ServiceAccount"),
            ("secrets", "Secret"),
            ("configmaps", "ConfigMap"),
        ],
    }
}

fn discovery(group_version: &str) -> Value {
    let mut resources = Vec::new();
    // Admission policies are cluster-wide objects.
    let namespaced = group_version != "admissionregistration.k8s.io/v1";
    for (plural, kind) in kinds(group_version) {
        resources.push(json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get", "list", "create", "patch", "delete"]}));
        // Subresources share the kind; discovery users must skip them.
        resources.push(json!({"name": format!("{plural}/status"), "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get"]}));
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// Whether the last segment of `path` names a collection (a plural).
fn is_collection(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    [
        "argoproj.io/v1alpha1",
        "rbac.authorization.k8s.io/v1",
        "admissionregistration.k8s.io/v1",
        "v1",
    ]
    .iter()
    .any(|gv| kinds(gv).iter().any(|(plural, _)| *plural == last))
}

/// RFC 7386: `patch` merged into `target`.
fn merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            object.remove(k);
        } else {
            merge(object.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Whether `object`'s labels match `selector` (`a=b,c=d`, equality only).
fn matches(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        let v = v.trim_start_matches('=');
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

/// A query parameter's value, percent-decoded as far as label selectors need.
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            v.replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%2F", "/")
                .replace('+', " ")
        })
    })
}

impl Fake {
    /// A server whose discovery serves these group versions
    /// (`argoproj.io/v1alpha1`, `v1`).
    pub fn serving(served: &[&'static str]) -> Self {
        let fake = Fake::default();
        fake.0.lock().unwrap().served = served.to_vec();
        fake
    }

    /// A kube client whose requests this fake answers (default namespace
    /// `aphex`).
    pub fn client(&self) -> Client {
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let (code, value) = fake.respond(&parts, &bytes);
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&value).unwrap()))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        Client::new(service, "aphex")
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }

    /// Refuses every PATCH of an object called `name`, and every create
    /// in a collection called `name` (`workflows`), with 403.
    pub fn forbid(&self, name: &str) {
        self.0.lock().unwrap().forbidden.push(name.to_owned());
    }

    /// Makes `namespace` missing: objects cannot be applied into it.
    pub fn without_namespace(&self, namespace: &str) {
        self.0
            .lock()
            .unwrap()
            .missing_namespaces
            .push(namespace.to_owned());
    }

    /// The stored object at this URL path, if any.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.get(path).cloned()
    }

    /// Stores `object` at this URL path as it is (the way a controller
    /// writes status), with a new resourceVersion.
    pub fn put(&self, path: &str, mut object: Value) {
        let mut state = self.0.lock().unwrap();
        state.version += 1;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        state.objects.insert(path.to_owned(), object);
    }

    /// The stored objects whose path starts with `prefix`.
    pub fn objects(&self, prefix: &str) -> Vec<(String, Value)> {
        let state = self.0.lock().unwrap();
        state
            .objects
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(p, o)| (p.clone(), o.clone()))
            .collect()
    }

    /// The answer to one request: status and JSON body.
    fn respond(&self, parts: &http::request::Parts, bytes: &[u8]) -> (StatusCode, Value) {
        let seen = Seen {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
        };
        let mut state = self.0.lock().unwrap();
        state.seen.push(seen.clone());
        let path = seen.path.trim_end_matches('/');
        // Discovery: /api/v1 and /apis/<group>/<version>.
        let group_version = path
            .strip_prefix("/apis/")
            .or_else(|| path.strip_prefix("/api/"))
            .filter(|gv| gv.split('/').count() <= 2);
        if let Some(gv) = group_version {
            return if state.served.contains(&gv) {
                (StatusCode::OK, discovery(gv))
            } else {
                status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            };
        }
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        let namespace = path
            .split("/namespaces/")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let not_found = || {
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("\"{name}\" not found"),
            )
        };
        match seen.method {
            Method::GET if is_collection(path) => {
                let selector = query_value(&seen.query, "labelSelector").unwrap_or_default();
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(p, o)| {
                        p.strip_prefix(path)
                            .and_then(|rest| rest.strip_prefix('/'))
                            .is_some_and(|rest| !rest.contains('/'))
                            && matches(o, &selector)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                let version = state.version.to_string();
                (
                    StatusCode::OK,
                    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": version}, "items": items}),
                )
            }
            Method::GET => match state.objects.get(path) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => not_found(),
            },
            Method::POST if is_collection(path) && state.forbidden.contains(&name) => status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "workflows.argoproj.io is forbidden: User \"jane\" cannot create resource \"{name}\""
                ),
            ),
            Method::POST if is_collection(path) => {
                let mut object = seen.body.clone();
                let name = match object["metadata"]["name"].as_str() {
                    Some(n) => n.to_owned(),
                    None => {
                        let prefix = object["metadata"]["generateName"].as_str().unwrap_or_default();
                        format!("{prefix}{:05x}", state.objects.len() + 1)
                    }
                };
                let target = format!("{path}/{name}");
                if state.objects.contains_key(&target) {
                    return status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        &format!("\"{name}\" already exists"),
                    );
                }
                state.version += 1;
                let meta = object["metadata"].as_object_mut().unwrap();
                meta.insert("name".into(), json!(name));
                meta.insert("namespace".into(), json!(namespace));
                meta.insert("uid".into(), json!(format!("uid-{}", state.version)));
                meta.insert("resourceVersion".into(), json!(state.version.to_string()));
                meta.insert("creationTimestamp".into(), json!("2026-11-22T00:00:00Z"));
                state.objects.insert(target, object.clone());
                (StatusCode::CREATED, object)
            }
            Method::PATCH if seen.content_type.starts_with("application/merge-patch+json") => {
                let Some(current) = state.objects.get(path).cloned() else {
                    return not_found();
                };
                let expected = seen.body["metadata"]["resourceVersion"].as_str();
                if expected.is_some_and(|v| Some(v) != current["metadata"]["resourceVersion"].as_str()) {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                let mut object = current;
                merge(&mut object, &seen.body);
                state.version += 1;
                object["metadata"]["resourceVersion"] = json!(state.version.to_string());
                state.objects.insert(path.to_owned(), object.clone());
                (StatusCode::OK, object)
            }
            Method::PATCH => {
                if state.missing_namespaces.contains(&namespace) {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("namespaces \"{namespace}\" not found"),
                    );
                }
                if state.forbidden.contains(&name) {
                    return status(
                        StatusCode::FORBIDDEN,
                        "Forbidden",
                        &format!("cannot patch resource \"workflowtemplates\" named \"{name}\""),
                    );
                }
                // What a real server adds to an applied object.
                let generation = state
                    .objects
                    .get(path)
                    .map_or(0, |o| o["metadata"]["generation"].as_u64().unwrap());
                let mut object = seen.body.clone();
                let meta = object["metadata"].as_object_mut().unwrap();
                meta.insert("uid".into(), json!("0d9b7f5e-uid"));
                meta.insert("generation".into(), json!(generation + 1));
                meta.insert("resourceVersion".into(), json!((generation + 1).to_string()));
                meta.insert("creationTimestamp".into(), json!("2026-11-22T00:00:00Z"));
                meta.insert(
                    "managedFields".into(),
                    json!([{"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": seen.body["apiVersion"]}]),
                );
                state.objects.insert(path.to_owned(), object.clone());
                (StatusCode::OK, object)
            }
            Method::DELETE => match state.objects.remove(path) {
                Some(_) => (
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => not_found(),
            },
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not in the fake",
            ),
        }
    }
}

impl Fake {
    /// Serves this fake over HTTP on a loopback port (for a child process
    /// whose kubeconfig names `http://ADDRESS`), on a thread of its own for
    /// as long as the test process lives.
    pub fn serve(&self) -> std::net::SocketAddr {
        use http_body_util::{BodyExt, Full};
        use hyper::body::{Bytes, Incoming};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let fake = self.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let fake = fake.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let fake = fake.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body.collect().await?.to_bytes();
                                let (code, value) = fake.respond(&parts, &bytes);
                                let response = Response::builder()
                                    .status(code)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())))
                                    .unwrap();
                                Ok::<_, hyper::Error>(response)
                            }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            });
        });
        address
    }
}
