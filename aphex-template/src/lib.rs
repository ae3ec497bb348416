//! `aphex-template` owns the pipeline **plan** (the stage graph, and the stack
//! graph of each environment) and every renderer: the Argo WorkflowTemplate,
//! EventSource, Sensor, RBAC and admission policy manifests, the pipeline's own CloudFormation
//! template, and the webhook simulator that evaluates the Sensor's filters.
//!
//! Architecture invariant: pure functions of a validated config. No IO, no
//! shelling out, no cluster.
//!
//! Entry points: [`Plan::new`] for the plan, [`render::render`] for every
//! object, [`simulate::simulate`] for what a webhook delivery triggers.

pub mod admission;
pub mod cloudformation;
pub mod diff;
pub mod events;
pub mod lint;
pub mod plan;
pub mod plan_format;
pub mod rbac;
pub mod render;
pub mod simulate;
pub mod submit;
pub mod triggers;
pub mod workflow;
pub mod yaml;

pub use diff::PlanDiff;
pub use plan::{EnvironmentPlan, Plan, PlanError, Schedule, Stage, StageKind};
pub use render::{RenderOptions, Rendered, render};
