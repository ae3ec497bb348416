//! Property tests of the plan and the WorkflowTemplate (proptest, >= 100
//! cases each), and the size bound for 100 environments x 50 stacks.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aphex_config::{Approval, Build, Config, Environment, Stack, Tests};
use aphex_template::lint::check_references;
use aphex_template::triggers::{Shape, exact_regex};
use aphex_template::{Plan, PlanDiff, RenderOptions, StageKind, render};
use common::{Kind, assert_schema_valid};
use proptest::prelude::*;
use serde_json::Value;

fn stack(name: String, depends_on: Vec<String>) -> Stack {
    Stack {
        path: format!("lib/{name}.ts"),
        name,
        depends_on,
    }
}

fn environment(name: &str, stacks: Vec<Stack>, approval: bool, tests: bool, concurrency: u32) -> Environment {
    Environment {
        name: name.to_owned(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        role_arn: None,
        approval: approval.then_some(Approval::Manual),
        concurrency: Some(concurrency),
        required_context: Vec::new(),
        synth: None,
        hooks: None,
        stacks,
        tests: tests.then(|| Tests {
            commands: vec!["npm test".into()],
        }),
        risk_gates: None,
    }
}

fn config_of(environments: Vec<Environment>) -> Config {
    Config {
        version: "1.0".into(),
        pipeline: None,
        build: Build {
            commands: vec!["make".into()],
            artifacts: None,
        },
        environments,
    }
}

/// Environments `e0..eN` with random gates and one stack each.
fn arb_config() -> impl Strategy<Value = Config> {
    prop::collection::vec((any::<bool>(), any::<bool>()), 1..12).prop_map(|flags| {
        config_of(
            flags
                .into_iter()
                .enumerate()
                .map(|(i, (approval, tests))| {
                    environment(
                        &format!("e{i}"),
                        vec![stack("S".into(), vec![])],
                        approval,
                        tests,
                        1,
                    )
                })
                .collect(),
        )
    })
}

/// A random acyclic stack graph: a hidden topological order (a permutation
/// of list positions) and edges that only point forward in it.
fn arb_stack_graph() -> impl Strategy<Value = (Vec<Stack>, u32)> {
    (1usize..14)
        .prop_flat_map(|n| {
            (
                Just(n).prop_shuffle_order(),
                prop::collection::vec((0..n, 0..n), 0..n * 2),
                1u32..5,
            )
        })
        .prop_map(|(hidden, edges, concurrency)| {
            let n = hidden.len();
            let rank: BTreeMap<usize, usize> = hidden.iter().enumerate().map(|(r, &i)| (i, r)).collect();
            let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
            for (a, b) in edges {
                // `a` depends on `b` only when `b` comes first in the hidden order.
                if rank[&b] < rank[&a] {
                    deps[a].insert(b);
                }
            }
            let stacks = (0..n)
                .map(|i| stack(format!("S{i}"), deps[i].iter().map(|d| format!("S{d}")).collect()))
                .collect();
            (stacks, concurrency)
        })
}

trait ShuffledRange {
    fn prop_shuffle_order(self) -> BoxedStrategy<Vec<usize>>;
}

impl ShuffledRange for Just<usize> {
    fn prop_shuffle_order(self) -> BoxedStrategy<Vec<usize>> {
        Just((0..self.0).collect::<Vec<usize>>()).prop_shuffle().boxed()
    }
}

fn main_tasks(wt: &Value) -> Vec<Value> {
    wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "main")
        .unwrap()["dag"]["tasks"]
        .as_array()
        .unwrap()
        .clone()
}

fn deps_of(task: &Value) -> Vec<String> {
    task.get("dependencies")
        .and_then(Value::as_array)
        .map(|d| d.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Property: N environments give exactly N deploy tasks, one per environment.
    #[test]
    fn one_deploy_task_per_environment(cfg in arb_config()) {
        let r = render(&cfg, &RenderOptions::default());
        let tasks = main_tasks(r.get("WorkflowTemplate").unwrap());
        let deploys: Vec<String> = tasks.iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .filter(|n| n.starts_with("deploy-"))
            .collect();
        let expected: Vec<String> = cfg.environments.iter().map(|e| format!("deploy-{}", e.name)).collect();
        prop_assert_eq!(deploys, expected);
    }

    // Property: a test task exists iff the environment has tests, it
    // depends on that environment's deploy, and it takes nothing from the
    // deploy through Argo (the outputs travel in the run record).
    #[test]
    fn test_tasks_follow_their_deploy(cfg in arb_config()) {
        let r = render(&cfg, &RenderOptions::default());
        let tasks = main_tasks(r.get("WorkflowTemplate").unwrap());
        for env in &cfg.environments {
            let test = tasks.iter().find(|t| t["name"] == format!("test-{}", env.name));
            prop_assert_eq!(test.is_some(), !env.test_commands().is_empty());
            if let Some(t) = test {
                prop_assert_eq!(deps_of(t), vec![format!("deploy-{}", env.name)]);
                let parameters = t["arguments"]["parameters"].as_array().unwrap();
                let names: Vec<&str> = parameters.iter().map(|p| p["name"].as_str().unwrap()).collect();
                prop_assert_eq!(names, vec!["stage", "env", "image"]);
                prop_assert!(parameters.iter().all(|p| !p["value"].as_str().unwrap().contains("{{")));
            }
        }
    }

    // Property: every task depends on exactly its predecessor in the plan, so
    // a failure stops everything after it; the chain starts at validate.
    #[test]
    fn every_task_depends_on_its_predecessor(cfg in arb_config()) {
        let r = render(&cfg, &RenderOptions::default());
        let tasks = main_tasks(r.get("WorkflowTemplate").unwrap());
        prop_assert_eq!(&tasks[0]["name"], "validate");
        prop_assert!(deps_of(&tasks[0]).is_empty());
        for pair in tasks.windows(2) {
            prop_assert_eq!(deps_of(&pair[1]), vec![pair[0]["name"].as_str().unwrap().to_owned()]);
        }
        let plan_order: Vec<String> = Plan::new(&cfg).unwrap().stages().iter().map(|s| s.task_name()).collect();
        let dag_order: Vec<String> = tasks.iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
        prop_assert_eq!(plan_order, dag_order);
    }

    // Property: the pipeline stage is told its run's topology: the
    // `pipeline-stage` template passes `--topology=` with the plan's task
    // names in order, each gated deploy's `risk-<env>` after it, as one
    // literal (no Argo expression).
    #[test]
    fn the_pipeline_stage_carries_its_templates_topology(cfg in arb_config()) {
        let r = render(&cfg, &RenderOptions::default());
        let wt = r.get("WorkflowTemplate").unwrap();
        let pipeline = wt["spec"]["templates"].as_array().unwrap().iter()
            .find(|t| t["name"] == "pipeline-stage").unwrap();
        let given: Vec<&str> = pipeline["container"]["args"].as_array().unwrap().iter()
            .filter_map(|a| a.as_str()?.strip_prefix("--topology="))
            .collect();
        let mut expected = Vec::new();
        for stage in Plan::new(&cfg).unwrap().stages() {
            expected.push(stage.task_name());
            if let Some(env) = stage.env.as_deref().filter(|_| stage.kind == StageKind::Deploy)
                && cfg.environment(env).is_some_and(|e| e.has_approve_gate())
            {
                expected.push(format!("risk-{env}"));
            }
        }
        let joined = expected.join(",");
        prop_assert_eq!(given, vec![joined.as_str()]);
        prop_assert_eq!(aphex_template::workflow::topology(wt), expected);
    }

    // Property: only the tasks of `validate-pr` hand the runner a pull
    // request's number; no task of `main` does, so a run at `main` is a
    // deploy run (its commit checked against the branch) whatever
    // `pull-request` its submitter sets.
    #[test]
    fn only_validate_pr_tasks_are_pull_request_runs(cfg in arb_config()) {
        let r = render(&cfg, &RenderOptions::default());
        let wt = r.get("WorkflowTemplate").unwrap();
        let templates = wt["spec"]["templates"].as_array().unwrap();
        let passes_number = |name: &Value| {
            templates.iter().find(|t| &t["name"] == name).is_some_and(|t| {
                t["container"]["args"].as_array().is_some_and(|args| {
                    args.iter().any(|a| a == "--pull-request={{workflow.parameters.pull-request}}")
                })
            })
        };
        prop_assert!(main_tasks(wt).iter().all(|t| !passes_number(&t["template"])));
        let validate_pr = templates.iter()
            .find(|t| t["name"] == "validate-pr").unwrap()["dag"]["tasks"].as_array().unwrap().clone();
        prop_assert_eq!(validate_pr.len(), cfg.environments.len() + 2);
        prop_assert!(validate_pr.iter().all(|t| passes_number(&t["template"])));
    }

    // Property: every generated WorkflowTemplate passes the strict schema and
    // the static reference check.
    #[test]
    fn generated_templates_are_valid(cfg in arb_config()) {
        let r = render(&cfg, &RenderOptions::default());
        let wt = r.get("WorkflowTemplate").unwrap();
        assert_schema_valid(Kind::WorkflowTemplate, wt, "generated config");
        let problems = check_references(wt);
        prop_assert!(problems.is_empty(), "{:#?}", problems);
    }

    // Property: stack order respects every dependsOn and otherwise keeps list
    // order: each position holds the earliest-listed stack whose
    // dependencies are all placed (so with no dependsOn it is the list);
    // waves hold at most `concurrency` stacks, each after its dependencies.
    #[test]
    fn stack_order_respects_depends_on_and_list_order((stacks, concurrency) in arb_stack_graph()) {
        let cfg = config_of(vec![environment("dev", stacks.clone(), false, false, concurrency)]);
        let plan = Plan::new(&cfg).unwrap();
        let env = &plan.environments[0];
        let deps: BTreeMap<&str, &Vec<String>> = stacks.iter().map(|s| (s.name.as_str(), &s.depends_on)).collect();
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        for name in &env.order {
            let earliest_ready = stacks.iter()
                .find(|s| !placed.contains(s.name.as_str()) && s.depends_on.iter().all(|d| placed.contains(d.as_str())))
                .map(|s| s.name.as_str());
            prop_assert_eq!(Some(name.as_str()), earliest_ready);
            placed.insert(name);
        }
        prop_assert_eq!(placed.len(), stacks.len());
        if stacks.iter().all(|s| s.depends_on.is_empty()) {
            let listed: Vec<String> = stacks.iter().map(|s| s.name.clone()).collect();
            prop_assert_eq!(&env.order, &listed);
        }
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for wave in &env.waves {
            prop_assert!(!wave.is_empty() && wave.len() <= concurrency as usize);
            for s in wave {
                prop_assert!(deps[s.as_str()].iter().all(|d| done.contains(d.as_str())), "{} before a dependency", s);
            }
            done.extend(wave.iter().map(String::as_str));
        }
        prop_assert_eq!(done.len(), stacks.len());
    }

    // Property: adding or removing one environment changes the plan diff by
    // exactly that environment (and its stages).
    #[test]
    fn diff_of_one_environment_is_that_environment(cfg in arb_config(), at in any::<prop::sample::Index>(), approval: bool, tests: bool) {
        let mut bigger = cfg.clone();
        let pos = at.index(cfg.environments.len() + 1);
        bigger.environments.insert(pos, environment("new", vec![stack("S".into(), vec![])], approval, tests, 1));
        let small = Plan::new(&cfg).unwrap();
        let big = Plan::new(&bigger).unwrap();
        let mut stages = Vec::new();
        if approval { stages.push("approve-new".to_owned()); }
        stages.push("deploy-new".to_owned());
        if tests { stages.push("test-new".to_owned()); }

        let added = PlanDiff::between(&small, &big);
        prop_assert_eq!(&added.environments_added, &vec!["new".to_owned()]);
        prop_assert!(added.environments_removed.is_empty() && added.environments_changed.is_empty());
        prop_assert_eq!(&added.stages_added, &stages);
        prop_assert!(added.stages_removed.is_empty());

        let removed = PlanDiff::between(&big, &small);
        prop_assert_eq!(&removed.environments_removed, &vec!["new".to_owned()]);
        prop_assert!(removed.environments_added.is_empty() && removed.environments_changed.is_empty());
        prop_assert_eq!(&removed.stages_removed, &stages);
        prop_assert!(removed.stages_added.is_empty());
    }

    // Property: the Sensor's expression for a shape (RE2, here Rust's regex,
    // which agree on this syntax) accepts exactly what the simulator's
    // predicate accepts, on near-misses and arbitrary text alike.
    #[test]
    fn shape_expressions_and_predicates_agree(
        s in prop_oneof!["[0-9a-fA-F]{38,42}", "[0-9]{0,12}", "[ -~]{0,44}", "[0-9a-f]{40}\n?"],
    ) {
        for shape in [Shape::CommitSha, Shape::Number] {
            let re = regex::Regex::new(shape.regex()).unwrap();
            prop_assert_eq!(re.is_match(&s), shape.accepts(&s), "{:?} on {:?}", shape, s);
        }
    }

    // Property: a rendered filter literal matches exactly itself (RE2 and
    // Rust's regex agree on the escaped syntax), so Sensor and simulator agree.
    #[test]
    fn filter_literals_match_only_themselves(s in "[ -~]{0,20}", t in "[ -~]{0,20}") {
        let re = regex::Regex::new(&exact_regex(&s)).unwrap();
        prop_assert!(re.is_match(&s));
        prop_assert_eq!(re.is_match(&t), s == t);
        let longer = format!("{s}x");
        prop_assert!(!re.is_match(&longer));
    }
}

/// 100 environments x 50 stacks: the WorkflowTemplate does not grow with the
/// number of stacks, and everything rendered stays well under 256 KiB.
#[test]
fn one_hundred_environments_of_fifty_stacks_render_small() {
    let config_with = |stacks_per_env: usize| {
        config_of(
            (0..100)
                .map(|i| {
                    let stacks = (0..stacks_per_env)
                        .map(|j| {
                            stack(
                                format!("Stack{j}"),
                                if j > 0 {
                                    vec![format!("Stack{}", j - 1)]
                                } else {
                                    vec![]
                                },
                            )
                        })
                        .collect();
                    environment(&format!("environment-{i:03}"), stacks, true, true, 4)
                })
                .collect(),
        )
    };
    let total = |cfg: &Config| {
        let r = render(cfg, &RenderOptions::default());
        let files = r.files().unwrap();
        let wt = files
            .iter()
            .find(|(n, _)| n.contains("workflowtemplate"))
            .unwrap()
            .1
            .len();
        (files.iter().map(|(_, c)| c.len()).sum::<usize>(), wt)
    };
    let (big_total, big_wt) = total(&config_with(50));
    let (_, small_wt) = total(&config_with(1));
    assert_eq!(
        big_wt, small_wt,
        "the WorkflowTemplate grew with the number of stacks"
    );
    assert!(
        big_total < 256 * 1024,
        "100 x 50 rendered to {big_total} bytes (limit 256 KiB)"
    );
}
