//! An in-process fake Kubernetes API server for tests, at the HTTP level
//! (kube-rs's own way: a [`Client`] over a tower service, no socket). It
//! answers discovery, GET and server-side-apply PATCH as the API server
//! does, adds the fields a server adds, and records every request.
//! Test support only: it stores objects as sent and checks no schema.
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
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
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
    seen: Vec<Seen>,
}

/// The fake API server: clone it freely, every clone is the same server.
#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<State>>);

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    reply(code, &body)
}

fn reply(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn discovery(group_version: &str) -> Value {
    let kinds: &[(&str, &str)] = match group_version {
        "argoproj.io/v1alpha1" => &[
            ("workflowtemplates", "WorkflowTemplate"),
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
    };
    let mut resources = Vec::new();
    // Admission policies are cluster-wide objects.
    let namespaced = group_version != "admissionregistration.k8s.io/v1";
    for (plural, kind) in kinds {
        resources.push(json!({"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get", "patch"]}));
        // Subresources share the kind; discovery users must skip them.
        resources.push(json!({"name": format!("{plural}/status"), "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get"]}));
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
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
            async move { Ok::<_, std::convert::Infallible>(fake.handle(req).await) }
        });
        Client::new(service, "aphex")
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }

    /// Refuses every PATCH of an object called `name` with 403.
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

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let seen = Seen {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        let mut state = self.0.lock().unwrap();
        state.seen.push(seen.clone());
        let path = seen.path.as_str();
        // Discovery: /api/v1 and /apis/<group>/<version>.
        let group_version = path
            .strip_prefix("/apis/")
            .or_else(|| path.strip_prefix("/api/"))
            .filter(|gv| gv.split('/').count() <= 2);
        if let Some(gv) = group_version {
            return if state.served.contains(&gv) {
                reply(StatusCode::OK, &discovery(gv))
            } else {
                status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            };
        }
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        match seen.method {
            Method::GET => match state.objects.get(path) {
                Some(o) => reply(StatusCode::OK, o),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("\"{name}\" not found"),
                ),
            },
            Method::PATCH => {
                let namespace = path
                    .split("/namespaces/")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .unwrap_or_default();
                if state.missing_namespaces.iter().any(|n| n == namespace) {
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
                reply(StatusCode::OK, &object)
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not in the fake",
            ),
        }
    }
}
