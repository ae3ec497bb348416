//! `aphex-template` owns the pipeline **plan** (the stage graph, and the stack
//! graph of each environment) and every renderer: the Argo WorkflowTemplate,
//! EventSource, Sensor and RBAC manifests, the pipeline's own CloudFormation
//! template, and the webhook simulator that evaluates the Sensor's filters.
//!
//! Architecture invariant: pure functions of a validated config. No IO, no
//! shelling out, no cluster.

pub mod diff;
pub mod plan;
pub mod plan_format;

pub use diff::PlanDiff;
pub use plan::{EnvironmentPlan, Plan, PlanError, Stage, StageKind};
