//! A static reference check of a rendered WorkflowTemplate, for what the
//! JSON Schema cannot see: every `{{tasks.X.outputs.parameters.Y}}`,
//! `{{inputs.parameters.Z}}` and `{{workflow.parameters.W}}` resolves to
//! something declared, every DAG dependency and template reference exists,
//! every required input is supplied, and names are DNS-1123 labels.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Global variables Argo provides that the template may use as they are.
const ARGO_GLOBALS: [&str; 5] = [
    "workflow.name",
    "workflow.namespace",
    "workflow.mainEntrypoint",
    "workflow.status",
    "workflow.labels.json",
];

/// Whether `s` is a DNS-1123 label (lowercase alphanumerics and `-`, starting
/// and ending alphanumeric) of at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

struct TemplateInfo<'a> {
    inputs: BTreeMap<&'a str, bool>,
    outputs: BTreeSet<&'a str>,
}

fn names<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    v.pointer(path)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Every `{{...}}` expression in the strings under `v`, trimmed.
fn expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let Some(end) = rest[start..].find("}}") else {
                    out.push(rest[start..].to_owned());
                    break;
                };
                out.push(rest[start + 2..start + end].trim().to_owned());
                rest = &rest[start + end + 2..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| expressions(x, out)),
        Value::Object(o) => o.values().for_each(|x| expressions(x, out)),
        _ => {}
    }
}

/// Problems with a WorkflowTemplate's references, one sentence each (empty: none).
pub fn check_references(wt: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let name = wt.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if !is_dns_label(name) {
        problems.push(format!(
            "metadata.name `{name}` is not a DNS-1123 label of at most 63 characters"
        ));
    }
    let workflow_params: BTreeSet<&str> = names(wt, "/spec/arguments/parameters")
        .into_iter()
        .map(|p| str_field(p, "name"))
        .collect();
    let templates = names(wt, "/spec/templates");
    let mut infos: BTreeMap<&str, TemplateInfo<'_>> = BTreeMap::new();
    for t in &templates {
        let tname = str_field(t, "name");
        if !is_dns_label(tname) {
            problems.push(format!(
                "template name `{tname}` is not a DNS-1123 label of at most 63 characters"
            ));
        }
        let inputs = names(t, "/inputs/parameters")
            .into_iter()
            .map(|p| {
                let required = p.get("default").is_none() && p.get("value").is_none();
                (str_field(p, "name"), required)
            })
            .collect();
        let outputs = names(t, "/outputs/parameters")
            .into_iter()
            .map(|p| str_field(p, "name"))
            .collect();
        if infos.insert(tname, TemplateInfo { inputs, outputs }).is_some() {
            problems.push(format!("template `{tname}` is declared twice"));
        }
    }
    for key in ["entrypoint", "onExit"] {
        if let Some(t) = wt.pointer(&format!("/spec/{key}")).and_then(Value::as_str)
            && !infos.contains_key(t)
        {
            problems.push(format!("spec.{key} names template `{t}`, which does not exist"));
        }
    }
    for t in &templates {
        let tname = str_field(t, "name");
        let info = &infos[tname];
        let tasks = names(t, "/dag/tasks");
        let task_templates: BTreeMap<&str, &str> = tasks
            .iter()
            .map(|k| (str_field(k, "name"), str_field(k, "template")))
            .collect();
        // Expressions of the template itself (outside its DAG tasks).
        let mut own = (*t).clone();
        if let Some(dag) = own.get_mut("dag") {
            dag["tasks"] = Value::Array(Vec::new());
        }
        let mut exprs = Vec::new();
        expressions(&own, &mut exprs);
        for e in exprs {
            check_expr(
                &e,
                tname,
                None,
                &info.inputs,
                &workflow_params,
                &BTreeMap::new(),
                &infos,
                &mut problems,
            );
        }
        for task in &tasks {
            let kname = str_field(task, "name");
            if !is_dns_label(kname) {
                problems.push(format!(
                    "task `{tname}.{kname}`: name is not a DNS-1123 label of at most 63 characters"
                ));
            }
            let target = str_field(task, "template");
            let Some(target_info) = infos.get(target) else {
                problems.push(format!(
                    "task `{tname}.{kname}` uses template `{target}`, which does not exist"
                ));
                continue;
            };
            let deps: Vec<&str> = names(task, "/dependencies")
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            for d in &deps {
                if !task_templates.contains_key(d) {
                    problems.push(format!(
                        "task `{tname}.{kname}` depends on `{d}`, which is not a task of `{tname}`"
                    ));
                }
            }
            let supplied: BTreeSet<&str> = names(task, "/arguments/parameters")
                .into_iter()
                .map(|p| str_field(p, "name"))
                .collect();
            for s in &supplied {
                if !target_info.inputs.contains_key(s) {
                    problems.push(format!(
                        "task `{tname}.{kname}` passes `{s}`, which template `{target}` does not declare"
                    ));
                }
            }
            for (input, required) in &target_info.inputs {
                if *required && !supplied.contains(input) {
                    problems.push(format!(
                        "task `{tname}.{kname}` does not pass required input `{input}` of `{target}`"
                    ));
                }
            }
            let ancestors = ancestors(&tasks, kname);
            let mut exprs = Vec::new();
            expressions(task, &mut exprs);
            let visible: BTreeMap<&str, &str> = task_templates
                .iter()
                .filter(|(k, _)| ancestors.contains(*k))
                .map(|(k, v)| (*k, *v))
                .collect();
            for e in exprs {
                check_expr(
                    &e,
                    tname,
                    Some(kname),
                    &info.inputs,
                    &workflow_params,
                    &visible,
                    &infos,
                    &mut problems,
                );
            }
        }
    }
    problems
}

/// Tasks `task` waits for, directly or not.
fn ancestors<'a>(tasks: &[&'a Value], task: &str) -> BTreeSet<&'a str> {
    let deps_of = |name: &str| -> Vec<&'a str> {
        tasks
            .iter()
            .find(|t| str_field(t, "name") == name)
            .map(|t| {
                names(t, "/dependencies")
                    .into_iter()
                    .filter_map(Value::as_str)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut seen = BTreeSet::new();
    let mut todo = deps_of(task);
    while let Some(d) = todo.pop() {
        if seen.insert(d) {
            todo.extend(deps_of(d));
        }
    }
    seen
}

#[allow(clippy::too_many_arguments)]
fn check_expr(
    expr: &str,
    template: &str,
    task: Option<&str>,
    inputs: &BTreeMap<&str, bool>,
    workflow_params: &BTreeSet<&str>,
    visible_tasks: &BTreeMap<&str, &str>,
    infos: &BTreeMap<&str, TemplateInfo<'_>>,
    problems: &mut Vec<String>,
) {
    let at = match task {
        Some(k) => format!("task `{template}.{k}`"),
        None => format!("template `{template}`"),
    };
    let parts: Vec<&str> = expr.split('.').collect();
    let ok = match parts.as_slice() {
        // Inside a task, `inputs` are the enclosing template's.
        ["inputs", "parameters", z] => inputs.contains_key(z),
        ["workflow", "parameters", w] => workflow_params.contains(w),
        ["tasks", x, "outputs", "parameters", y] => visible_tasks
            .get(x)
            .and_then(|t| infos.get(t))
            .is_some_and(|i| i.outputs.contains(y)),
        // Argo's own times of a task this one depends on.
        ["tasks", x, "startedAt" | "finishedAt"] => visible_tasks.contains_key(x),
        _ => ARGO_GLOBALS.contains(&expr),
    };
    if !ok {
        problems.push(format!(
            "{at}: `{{{{{expr}}}}}` does not resolve to anything declared (or to a task it depends on)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("deploy-dev"));
        assert!(is_dns_label(&"a".repeat(63)));
        assert!(!is_dns_label(&"a".repeat(64)));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn broken_references_are_reported() {
        let wt = json!({
            "metadata": {"name": "p"},
            "spec": {
                "entrypoint": "main",
                "onExit": "gone",
                "arguments": {"parameters": [{"name": "commit-sha"}]},
                "templates": [
                    {"name": "main", "dag": {"tasks": [
                        {"name": "a", "template": "s", "arguments": {"parameters": [{"name": "x", "value": "{{workflow.parameters.nope}}"}]}},
                        {"name": "b", "template": "s", "dependencies": ["zz"], "arguments": {"parameters": [
                            {"name": "x", "value": "{{tasks.a.outputs.parameters.out}}"}]}},
                        {"name": "c", "template": "missing"},
                    ]}},
                    {"name": "s", "inputs": {"parameters": [{"name": "x"}]},
                     "container": {"args": ["{{inputs.parameters.y}}", "{{workflow.parameters.commit-sha}}"]}},
                ],
            },
        });
        let p = check_references(&wt);
        let expected = [
            "spec.onExit names template `gone`, which does not exist",
            "template `s`: `{{inputs.parameters.y}}` does not resolve",
            "task `main.a`: `{{workflow.parameters.nope}}` does not resolve",
            "task `main.b` depends on `zz`",
            // `a` declares no output `out`, and b does not depend on a.
            "task `main.b`: `{{tasks.a.outputs.parameters.out}}` does not resolve",
            "task `main.c` uses template `missing`",
        ];
        for e in expected {
            assert!(p.iter().any(|x| x.starts_with(e)), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), expected.len(), "{p:#?}");
    }
}
