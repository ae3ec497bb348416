//! Views of a [`Plan`] for people and tools: plain text, Mermaid, Graphviz
//! dot and JSON. Pure string building; `aphex plan` picks one and prints it.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::plan::Plan;

/// Plain text: the stages in order, then each environment's stack order and waves.
pub fn to_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pipeline {}", plan.pipeline);
    let _ = writeln!(out, "stages:");
    for (i, s) in plan.stages().iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {}", i + 1, s.task_name());
    }
    let _ = writeln!(out, "environments:");
    for e in &plan.environments {
        let mut gates = Vec::new();
        if e.approval {
            gates.push("manual approval");
        }
        if e.tests {
            gates.push("tests");
        }
        let gates = if gates.is_empty() {
            String::new()
        } else {
            format!(", {}", gates.join(", "))
        };
        let _ = writeln!(out, "  {} (account {}, {}{gates})", e.name, e.account, e.region);
        let _ = writeln!(out, "    order: {}", e.order.join(" -> "));
        let waves: Vec<String> = e.waves.iter().map(|w| format!("[{}]", w.join(", "))).collect();
        let _ = writeln!(
            out,
            "    waves (concurrency {}): {}",
            e.concurrency,
            waves.join(" ")
        );
    }
    out
}

/// Mermaid node ids may not contain `-`; environment and task names never
/// contain `_`, so this mapping is injective for them.
fn mermaid_id(prefix: &str, name: &str) -> String {
    let mut id = String::from(prefix);
    for c in name.chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    id
}

/// Quotes a label for Mermaid and dot (both accept `"` escaped as `#quot;` /
/// `\"`; stack names are CDK ids, so this is only a safety net).
fn label(name: &str, escape: &str) -> String {
    name.replace('"', escape)
}

/// A Mermaid flowchart: the stage chain, and one subgraph of stack
/// dependencies per environment.
pub fn to_mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for s in plan.stages() {
        let name = s.task_name();
        let _ = writeln!(out, "  {}[\"{}\"]", mermaid_id("s_", &name), name);
    }
    for (a, b) in plan.edges() {
        let _ = writeln!(
            out,
            "  {} --> {}",
            mermaid_id("s_", &a.task_name()),
            mermaid_id("s_", &b.task_name())
        );
    }
    for (i, e) in plan.environments.iter().enumerate() {
        let _ = writeln!(out, "  subgraph stacks_{i}[\"{} stacks\"]", e.name);
        for (j, stack) in e.order.iter().enumerate() {
            let _ = writeln!(out, "    e{i}_{j}[\"{}\"]", label(stack, "#quot;"));
        }
        for (j, stack) in e.order.iter().enumerate() {
            for dep in e.graph().dependencies_of(stack) {
                if let Some(k) = e.order.iter().position(|s| s == dep) {
                    let _ = writeln!(out, "    e{i}_{k} --> e{i}_{j}");
                }
            }
        }
        let _ = writeln!(out, "  end");
    }
    out
}

/// A Graphviz digraph: the stage chain, and one cluster of stack
/// dependencies per environment.
pub fn to_dot(plan: &Plan) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n",
        label(&plan.pipeline, "\\\"")
    );
    for s in plan.stages() {
        let _ = writeln!(out, "  \"{}\";", s.task_name());
    }
    for (a, b) in plan.edges() {
        let _ = writeln!(out, "  \"{}\" -> \"{}\";", a.task_name(), b.task_name());
    }
    for (i, e) in plan.environments.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{i} {{\n    label=\"{} stacks\";", e.name);
        for stack in &e.order {
            let _ = writeln!(
                out,
                "    \"{}/{}\" [label=\"{}\"];",
                e.name,
                label(stack, "\\\""),
                label(stack, "\\\"")
            );
        }
        for stack in &e.order {
            for dep in e.graph().dependencies_of(stack) {
                let _ = writeln!(
                    out,
                    "    \"{}/{}\" -> \"{}/{}\";",
                    e.name,
                    label(dep, "\\\""),
                    e.name,
                    label(stack, "\\\"")
                );
            }
        }
        let _ = writeln!(out, "  }}");
    }
    out.push_str("}\n");
    out
}

/// JSON: `{"pipeline", "stages": [{"name", "kind", "env"?, "dependsOn"}], "environments": [...]}`.
pub fn to_json(plan: &Plan) -> Value {
    let stages: Vec<Value> = plan
        .stage_graph()
        .with_dependencies()
        .into_iter()
        .map(|(s, deps)| {
            let deps: Vec<String> = deps.iter().map(|d| d.task_name()).collect();
            let mut v = json!({"name": s.task_name(), "kind": s.kind});
            if let Some(env) = &s.env {
                v["env"] = json!(env);
            }
            v["dependsOn"] = json!(deps);
            v
        })
        .collect();
    json!({
        "pipeline": plan.pipeline,
        "stages": stages,
        "environments": plan.environments,
    })
}
