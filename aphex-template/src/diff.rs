//! The plan diff: which environments and stages a config change adds, removes
//! or changes. The pipeline stage logs it when the pipeline rewrites itself.
//!
//! An environment's position in the list is not a change of its own:
//! inserting `qa` before `prod` adds `qa` and leaves `prod` unchanged.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::plan::{EnvironmentPlan, Plan};

/// What changed between two plans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDiff {
    /// Environments only in the new plan, in its order.
    pub environments_added: Vec<String>,
    /// Environments only in the old plan, in its order.
    pub environments_removed: Vec<String>,
    /// Environments in both whose settings differ, in the new plan's order.
    pub environments_changed: Vec<EnvironmentChange>,
    /// Stage (task) names only in the new plan, in its order.
    pub stages_added: Vec<String>,
    /// Stage (task) names only in the old plan, in its order.
    pub stages_removed: Vec<String>,
}

/// How one environment changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentChange {
    /// The environment.
    pub name: String,
    /// One line per changed setting, e.g. `approval: none -> manual`.
    pub changes: Vec<String>,
}

impl PlanDiff {
    /// The difference from `old` to `new`.
    pub fn between(old: &Plan, new: &Plan) -> Self {
        let old_envs: BTreeSet<&str> = old.environments.iter().map(|e| e.name.as_str()).collect();
        let new_envs: BTreeSet<&str> = new.environments.iter().map(|e| e.name.as_str()).collect();
        let old_stages: Vec<String> = old.stages().iter().map(|s| s.task_name()).collect();
        let new_stages: Vec<String> = new.stages().iter().map(|s| s.task_name()).collect();
        PlanDiff {
            environments_added: new
                .environments
                .iter()
                .filter(|e| !old_envs.contains(e.name.as_str()))
                .map(|e| e.name.clone())
                .collect(),
            environments_removed: old
                .environments
                .iter()
                .filter(|e| !new_envs.contains(e.name.as_str()))
                .map(|e| e.name.clone())
                .collect(),
            environments_changed: new
                .environments
                .iter()
                .filter_map(|n| {
                    let o = old.environment(&n.name)?;
                    let changes = env_changes(o, n);
                    (!changes.is_empty()).then(|| EnvironmentChange {
                        name: n.name.clone(),
                        changes,
                    })
                })
                .collect(),
            stages_added: new_stages
                .iter()
                .filter(|s| !old_stages.contains(s))
                .cloned()
                .collect(),
            stages_removed: old_stages
                .iter()
                .filter(|s| !new_stages.contains(s))
                .cloned()
                .collect(),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self == &PlanDiff::default()
    }
}

fn env_changes(old: &EnvironmentPlan, new: &EnvironmentPlan) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, o: String, n: String| {
        if o != n {
            out.push(format!("{name}: {o} -> {n}"));
        }
    };
    field("region", old.region.clone(), new.region.clone());
    field("account", old.account.clone(), new.account.clone());
    let gate = |on: bool| if on { "manual" } else { "none" }.to_owned();
    field("approval", gate(old.approval), gate(new.approval));
    let tests = |on: bool| if on { "yes" } else { "no" }.to_owned();
    field("tests", tests(old.tests), tests(new.tests));
    field(
        "concurrency",
        old.concurrency.to_string(),
        new.concurrency.to_string(),
    );
    field("stacks", old.order.join(", "), new.order.join(", "));
    out
}

impl fmt::Display for PlanDiff {
    /// One line per change: `+ environment qa`, `- stage test-dev`,
    /// `~ environment prod: approval: none -> manual`; "no topology change" when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no topology change");
        }
        for e in &self.environments_added {
            writeln!(f, "+ environment {e}")?;
        }
        for e in &self.environments_removed {
            writeln!(f, "- environment {e}")?;
        }
        for c in &self.environments_changed {
            for change in &c.changes {
                writeln!(f, "~ environment {}: {change}", c.name)?;
            }
        }
        for s in &self.stages_added {
            writeln!(f, "+ stage {s}")?;
        }
        for s in &self.stages_removed {
            writeln!(f, "- stage {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        Plan::new(&aphex_config::load_str("t.yaml", yaml).expect("valid")).expect("plan")
    }

    const BASE: &str = r#"
version: "1.0"
build: { commands: ["make"] }
environments:
  - { name: dev, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }] }
  - { name: prod, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }] }
"#;

    #[test]
    fn identical_plans_have_no_diff() {
        let d = PlanDiff::between(&plan(BASE), &plan(BASE));
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "no topology change\n");
    }

    #[test]
    fn added_removed_and_changed_are_reported() {
        let new = r#"
version: "1.0"
build: { commands: ["make"] }
environments:
  - { name: qa, region: us-east-1, account: "123456789012", stacks: [{ name: A, path: a.ts }], tests: { commands: [t] } }
  - { name: prod, region: us-east-1, account: "123456789012", approval: manual, stacks: [{ name: A, path: a.ts }] }
"#;
        let d = PlanDiff::between(&plan(BASE), &plan(new));
        assert_eq!(
            d.to_string(),
            "+ environment qa\n- environment dev\n~ environment prod: approval: none -> manual\n\
             + stage deploy-qa\n+ stage test-qa\n+ stage approve-prod\n- stage deploy-dev\n"
        );
    }
}
