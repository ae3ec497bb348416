//! The pipeline **plan**: the stage graph (`validate -> build -> pipeline ->`
//! per environment `[approve] -> deploy -> [test]`) and, per environment, the
//! stack graph with its [`Schedule`]. The stack graph itself is
//! [`aphex_config::StackGraph`]; this module resolves it per environment and
//! lets the deploy stage merge the CDK app's own dependencies. The schedule
//! is the one source of deploy order: `aphex plan` shows its order and
//! waves, the deploy stage follows it.

mod schedule;

pub use schedule::{Schedule, StackState};

use aphex_config::{Config, Environment, GraphError, StackGraph};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

/// What a stage does; the stage's task name is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// Config, credentials and tools checks.
    Validate,
    /// Build and package the artifacts.
    Build,
    /// The pipeline updates itself.
    Pipeline,
    /// A manual approval gate before an environment.
    Approve,
    /// Deploy an environment's stacks.
    Deploy,
    /// Run an environment's tests.
    Test,
}

impl StageKind {
    /// The stage name as `aphex-runner` takes it (`approve` has no runner stage).
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Validate => "validate",
            StageKind::Build => "build",
            StageKind::Pipeline => "pipeline",
            StageKind::Approve => "approve",
            StageKind::Deploy => "deploy",
            StageKind::Test => "test",
        }
    }
}

/// One stage of the pipeline: a task of the generated DAG.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Stage {
    /// What it does.
    pub kind: StageKind,
    /// The environment it belongs to (approve, deploy, test).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

impl Stage {
    fn global(kind: StageKind) -> Self {
        Stage { kind, env: None }
    }

    fn of_env(kind: StageKind, env: &str) -> Self {
        Stage {
            kind,
            env: Some(env.to_owned()),
        }
    }

    /// The task name in the DAG: `validate`, `deploy-<env>`, ...
    pub fn task_name(&self) -> String {
        match &self.env {
            Some(env) => format!("{}-{env}", self.kind.as_str()),
            None => self.kind.as_str().to_owned(),
        }
    }
}

/// A plan could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An environment's stack graph is invalid (unknown stack or a cycle).
    #[error("environment `{env}`: {source}")]
    StackGraph {
        /// The environment.
        env: String,
        /// What is wrong with its stacks.
        #[source]
        source: GraphError,
    },
}

/// The plan of one environment: its gates and its stacks' order and waves.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentPlan {
    /// Environment name.
    pub name: String,
    /// AWS region.
    pub region: String,
    /// AWS account.
    pub account: String,
    /// Whether a manual approval precedes the deploy.
    pub approval: bool,
    /// Whether a test stage follows the deploy.
    pub tests: bool,
    /// How many independent stacks deploy at once.
    pub concurrency: u32,
    /// Stacks in deploy order (stable topological order, list order breaks ties).
    pub order: Vec<String>,
    /// Stacks that may deploy together, at most `concurrency` per wave.
    pub waves: Vec<Vec<String>>,
    #[serde(skip)]
    graph: StackGraph,
    /// Nothing started yet; [`EnvironmentPlan::schedule`] hands out copies.
    #[serde(skip)]
    schedule: Schedule,
}

impl EnvironmentPlan {
    /// The plan of `env`, from its `dependsOn` edges.
    pub fn new(env: &Environment) -> Result<Self, PlanError> {
        let graph = StackGraph::from_environment(env).map_err(|source| PlanError::StackGraph {
            env: env.name.clone(),
            source,
        })?;
        Self::resolve(env, graph)
    }

    fn resolve(env: &Environment, graph: StackGraph) -> Result<Self, PlanError> {
        let schedule = Schedule::new(&graph, env.concurrency()).map_err(|source| PlanError::StackGraph {
            env: env.name.clone(),
            source,
        })?;
        Ok(EnvironmentPlan {
            name: env.name.clone(),
            region: env.region.clone(),
            account: env.account.clone(),
            approval: env.needs_approval(),
            tests: !env.test_commands().is_empty(),
            concurrency: env.concurrency(),
            order: schedule.order(),
            waves: schedule.waves(),
            graph,
            schedule,
        })
    }

    /// This plan with extra "`stack` deploys after `depends_on`" edges merged
    /// in (the CDK app's own dependencies, known only after synth), re-checked
    /// for unknown stacks and cycles. `env` must be the environment this plan
    /// was made from.
    pub fn with_extra_dependencies<'a, I>(&self, env: &Environment, edges: I) -> Result<Self, PlanError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut graph = self.graph.clone();
        for (stack, depends_on) in edges {
            graph
                .add_dependency(stack, depends_on)
                .map_err(|source| PlanError::StackGraph {
                    env: self.name.clone(),
                    source,
                })?;
        }
        Self::resolve(env, graph)
    }

    /// The underlying stack graph.
    pub fn graph(&self) -> &StackGraph {
        &self.graph
    }

    /// A fresh schedule of this environment's stacks (nothing started), for
    /// a deploy to follow.
    pub fn schedule(&self) -> Schedule {
        self.schedule.clone()
    }
}

/// The stage graph alone: what the WorkflowTemplate is rendered from. It
/// needs no stack resolved, so rendering stays cheap for thousands of stacks.
#[derive(Debug, Clone)]
pub struct Stages {
    graph: DiGraph<Stage, ()>,
}

impl Stages {
    /// `validate -> build -> pipeline ->` per environment in list order
    /// `[approve] -> deploy -> [test]`, each stage after its predecessor.
    pub fn new(config: &Config) -> Self {
        let mut graph = DiGraph::new();
        let mut prev: Option<NodeIndex> = None;
        let mut push = |stage: Stage| {
            let n = graph.add_node(stage);
            if let Some(p) = prev {
                graph.add_edge(p, n, ());
            }
            prev = Some(n);
        };
        push(Stage::global(StageKind::Validate));
        push(Stage::global(StageKind::Build));
        push(Stage::global(StageKind::Pipeline));
        for env in &config.environments {
            if env.needs_approval() {
                push(Stage::of_env(StageKind::Approve, &env.name));
            }
            push(Stage::of_env(StageKind::Deploy, &env.name));
            if !env.test_commands().is_empty() {
                push(Stage::of_env(StageKind::Test, &env.name));
            }
        }
        Stages { graph }
    }

    /// Stages in execution order (a topological order of the stage graph).
    pub fn all(&self) -> Vec<&Stage> {
        // Nodes are added in execution order and every edge points forward,
        // so index order is a topological order.
        self.graph.node_weights().collect()
    }

    /// Every stage in execution order with the stages it waits for directly.
    pub fn with_dependencies(&self) -> Vec<(&Stage, Vec<&Stage>)> {
        self.graph
            .node_indices()
            .map(|n| (&self.graph[n], self.dependencies_of(n)))
            .collect()
    }

    /// The stages `stage` waits for directly.
    pub fn dependencies(&self, stage: &Stage) -> Vec<&Stage> {
        match self.graph.node_indices().find(|n| &self.graph[*n] == stage) {
            Some(n) => self.dependencies_of(n),
            None => Vec::new(),
        }
    }

    fn dependencies_of(&self, n: NodeIndex) -> Vec<&Stage> {
        let mut deps: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, petgraph::Direction::Incoming)
            .collect();
        deps.sort();
        deps.into_iter().map(|d| &self.graph[d]).collect()
    }

    /// Every edge `(before, after)` of the stage graph, in order.
    pub fn edges(&self) -> Vec<(&Stage, &Stage)> {
        self.graph
            .raw_edges()
            .iter()
            .map(|e| (&self.graph[e.source()], &self.graph[e.target()]))
            .collect()
    }
}

/// The whole pipeline: stages in order, and each environment's plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pipeline name.
    pub pipeline: String,
    stages: Stages,
    /// Environments in list (deploy) order.
    pub environments: Vec<EnvironmentPlan>,
}

impl Plan {
    /// The plan of a validated config.
    pub fn new(config: &Config) -> Result<Self, PlanError> {
        Ok(Plan {
            pipeline: config.pipeline_name().to_owned(),
            stages: Stages::new(config),
            environments: config
                .environments
                .iter()
                .map(EnvironmentPlan::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The stage graph.
    pub fn stage_graph(&self) -> &Stages {
        &self.stages
    }

    /// Stages in execution order (a topological order of the stage graph).
    pub fn stages(&self) -> Vec<&Stage> {
        self.stages.all()
    }

    /// The stages `stage` waits for directly.
    pub fn dependencies(&self, stage: &Stage) -> Vec<&Stage> {
        self.stages.dependencies(stage)
    }

    /// Every edge `(before, after)` of the stage graph, in order.
    pub fn edges(&self) -> Vec<(&Stage, &Stage)> {
        self.stages.edges()
    }

    /// The plan of the environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&EnvironmentPlan> {
        self.environments.iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        aphex_config::load_str("t.yaml", yaml).expect("valid test config")
    }

    const TWO_ENVS: &str = r#"
version: "1.0"
build: { commands: ["make"] }
environments:
  - name: dev
    region: us-east-1
    account: "123456789012"
    stacks:
      - { name: A, path: a.ts, dependsOn: [B] }
      - { name: B, path: b.ts }
      - { name: C, path: c.ts }
    tests: { commands: ["make test"] }
  - name: prod
    region: eu-west-1
    account: "210987654321"
    approval: manual
    concurrency: 2
    stacks:
      - { name: A, path: a.ts }
      - { name: B, path: b.ts }
      - { name: C, path: c.ts, dependsOn: [A] }
"#;

    #[test]
    fn stages_follow_environment_gates() {
        let plan = Plan::new(&config(TWO_ENVS)).unwrap();
        let names: Vec<String> = plan.stages().iter().map(|s| s.task_name()).collect();
        assert_eq!(
            names,
            [
                "validate",
                "build",
                "pipeline",
                "deploy-dev",
                "test-dev",
                "approve-prod",
                "deploy-prod"
            ]
        );
        let deploy_prod = plan.stages()[6].clone();
        assert_eq!(plan.dependencies(&deploy_prod)[0].task_name(), "approve-prod");
    }

    #[test]
    fn stack_order_is_stable_topological() {
        let plan = Plan::new(&config(TWO_ENVS)).unwrap();
        // B must precede A; A then comes before C by list order.
        assert_eq!(plan.environments[0].order, ["B", "A", "C"]);
        assert_eq!(plan.environments[1].order, ["A", "B", "C"]);
        assert_eq!(plan.environments[1].waves, [vec!["A", "B"], vec!["C"]]);
    }

    #[test]
    fn extra_dependencies_merge_and_cycles_are_rejected() {
        let cfg = config(TWO_ENVS);
        let plan = Plan::new(&cfg).unwrap();
        let prod = &plan.environments[1];
        let merged = prod
            .with_extra_dependencies(&cfg.environments[1], [("A", "B")])
            .unwrap();
        assert_eq!(merged.order, ["B", "A", "C"]);
        let err = prod
            .with_extra_dependencies(&cfg.environments[1], [("A", "C")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment `prod`: dependency cycle: A -> C -> A"
        );
        let err = prod
            .with_extra_dependencies(&cfg.environments[1], [("A", "Nope")])
            .unwrap_err();
        assert!(err.to_string().contains("`Nope`"), "{err}");
    }
}
