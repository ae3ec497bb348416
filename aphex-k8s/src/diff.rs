//! The live-versus-rendered diff (`aphex diff`): each rendered object next
//! to what the cluster holds, ignoring what a server adds to an object.

use aphex_stages::ports::{ManifestApplier, PortError};
use aphex_stages::stages::pipeline::strip_server_fields;
use serde_json::Value;

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
pub async fn diff(applier: &dyn ManifestApplier, manifests: &[Value]) -> Result<Vec<ObjectDiff>, PortError> {
    let mut out = Vec::with_capacity(manifests.len());
    for m in manifests {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let (kind, namespace, name) = (
            s(&m["kind"]),
            s(&m["metadata"]["namespace"]),
            s(&m["metadata"]["name"]),
        );
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
