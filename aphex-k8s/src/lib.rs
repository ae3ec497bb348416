//! `aphex-k8s` will own the Kubernetes adapters: server-side apply of rendered
//! manifests, CRD presence checks, live-versus-rendered diff, and submitting
//! and listing Workflows. Nothing is here yet.
//!
//! Architecture invariant: knows nothing of AWS.
