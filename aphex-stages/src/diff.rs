//! Rendered objects against the live ones (`aphex diff`, and the pipeline
//! stage's and bootstrap's `created` / `unchanged` / `changed`), ignoring
//! what a server adds to an object. Written against the `ManifestApplier`
//! port only, so any cluster adapter (aphex-k8s's, the local directory)
//! diffs the same way.

use serde_json::Value;

use crate::ports::{ClusterError, ManifestApplier};

/// One rendered object against the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectDiff {
    /// Not on the cluster.
    Missing {
        /// `Kind namespace/name`.
        object: String,
        /// The rendered object.
        rendered: Value,
    },
    /// On the cluster, different.
    Changed {
        /// `Kind namespace/name`.
        object: String,
        /// The live object, without the fields a server adds.
        live: Value,
        /// The rendered object.
        rendered: Value,
    },
    /// On the cluster as rendered.
    Same {
        /// `Kind namespace/name`.
        object: String,
    },
}

impl ObjectDiff {
    /// `Kind namespace/name`.
    pub fn object(&self) -> &str {
        match self {
            ObjectDiff::Missing { object, .. }
            | ObjectDiff::Changed { object, .. }
            | ObjectDiff::Same { object } => object,
        }
    }
}

/// Compares every rendered manifest with the live object, in order.
pub async fn diff(
    applier: &dyn ManifestApplier,
    manifests: &[Value],
) -> Result<Vec<ObjectDiff>, ClusterError> {
    let mut out = Vec::with_capacity(manifests.len());
    for m in manifests {
        let (kind, namespace, name) = identity(m);
        let object = format!("{kind} {namespace}/{name}");
        let rendered = strip_server_fields(m);
        out.push(match applier.current(&kind, &namespace, &name).await? {
            None => ObjectDiff::Missing { object, rendered },
            Some(live) => {
                let live = strip_server_fields(&live);
                if live == rendered {
                    ObjectDiff::Same { object }
                } else {
                    ObjectDiff::Changed {
                        object,
                        live,
                        rendered,
                    }
                }
            }
        });
    }
    Ok(out)
}

/// `(kind, namespace, name)` of a rendered manifest.
pub(crate) fn identity(m: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&m["kind"]),
        s(&m["metadata"]["namespace"]),
        s(&m["metadata"]["name"]),
    )
}

/// Whether the live object `live` differs from `rendered`, ignoring what a
/// real cluster adds to an object (not a change we made).
pub(crate) fn differs(live: &Value, rendered: &Value) -> bool {
    strip_server_fields(live) != strip_server_fields(rendered)
}

/// `v` without what a real cluster adds to an object (ids, versions,
/// timestamps, managed fields, status): not a change we made.
pub fn strip_server_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "uid",
            "generation",
            "creationTimestamp",
            "managedFields",
        ] {
            meta.remove(k);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}
