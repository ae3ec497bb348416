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
//!
//! # Example
//!
//! Embedding the renderer: load a config, render its objects, and read the
//! WorkflowTemplate's DAG (one task per stage, never one per stack).
//!
//! ```
//! use aphex_template::{RenderOptions, render};
//!
//! let text = r#"
//! version: "1.0"
//! build: { commands: ["npm ci"] }
//! environments:
//!   - name: dev
//!     region: us-east-1
//!     account: "123456789012"
//!     stacks: [{ name: AppStack, path: lib/app-stack.ts }]
//! "#;
//! let config = aphex_config::load_str("aphex-config.yaml", text).expect("a valid config");
//!
//! // The pipeline stack's role ARNs are not known yet: placeholders stand in.
//! let rendered = render(&config, &RenderOptions::default());
//! let template = rendered.get("WorkflowTemplate").expect("always rendered");
//! assert_eq!(template["metadata"]["name"], "aphex");
//! let tasks: Vec<&str> = template["spec"]["templates"][0]["dag"]["tasks"]
//!     .as_array()
//!     .expect("a DAG")
//!     .iter()
//!     .map(|task| task["name"].as_str().expect("named"))
//!     .collect();
//! assert_eq!(tasks, ["validate", "build", "pipeline", "deploy-dev"]);
//!
//! // What `aphex render` prints: every object, one YAML stream.
//! let yaml = rendered.manifests_yaml().expect("serializable");
//! assert!(yaml.contains("kind: WorkflowTemplate"));
//! ```

#![warn(missing_docs)]

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
