//! The pipeline stage's restart on a new topology (issue 18) through the
//! Kubernetes `WorkflowSubmitter` (`aphex_k8s::workflows::Workflows`),
//! against the in-process fake API server: a changed topology submits
//! exactly one Workflow of the same commit labelled as a restart, a second
//! call for the commit submits nothing, a retried stage that finds the new
//! template already applied still restarts (its run's `--topology`), and a
//! restart never restarts.

mod common;

use std::sync::Arc;

use aphex_k8s::KubeApplier;
use aphex_k8s::fake::Fake;
use aphex_k8s::workflows::Workflows;
use aphex_stages::context::StageContext;
use aphex_stages::record::EndReason;
use aphex_stages::report::CollectingReporter;
use aphex_stages::stages::{StageOutcome, pipeline};
use aphex_template::submit::{COMMIT_LABEL, Origin, RESTART_OF_ANNOTATION, TRIGGER_LABEL, restart_name};
use http::Method;
use serde_json::{Value, json};

const NAME: &str = "shop";
const NS: &str = "argo";
/// The commit of [`common::stage_context`]'s run.
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const WORKFLOWS: &str = "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows";
const TEMPLATE: &str = "/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtemplates/shop";

/// The one-environment pipeline, and the same with `prod` added.
fn configs() -> (aphex_config::Config, aphex_config::Config) {
    let config = common::pipeline_config(NAME, NS);
    let mut grown = config.clone();
    let mut prod = grown.environments[0].clone();
    prod.name = "prod".to_owned();
    grown.environments.push(prod);
    (config, grown)
}

/// Runs the pipeline stage of run `run` (started by `trigger`) on `config`
/// against `fake`, submitting through the fake's Workflows.
async fn stage(
    fake: &Fake,
    config: aphex_config::Config,
    run: &str,
    trigger: Origin,
) -> (StageOutcome, Arc<CollectingReporter>) {
    stage_started_on(fake, config, run, trigger, None).await
}

/// [`stage`], in a run started from a template of `topology` (the
/// pipeline pod's `--topology`).
async fn stage_started_on(
    fake: &Fake,
    config: aphex_config::Config,
    run: &str,
    trigger: Origin,
    topology: Option<Vec<String>>,
) -> (StageOutcome, Arc<CollectingReporter>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, reporter): (StageContext, _) =
        common::stage_context(dir.path(), KubeApplier::new(fake.client()), config, None);
    ctx.run.id = run.to_owned();
    ctx.run.trigger = trigger;
    ctx.run.topology = topology;
    ctx.ports.workflows = Some(Arc::new(Workflows::new(fake.client(), NS)));
    let outcome = pipeline::run(&ctx).await.expect("the pipeline stage succeeds");
    (outcome, reporter)
}

fn workflows(fake: &Fake) -> Vec<Value> {
    fake.objects(&format!("{WORKFLOWS}/"))
        .into_iter()
        .map(|(_, w)| w)
        .collect()
}

fn creates(fake: &Fake) -> usize {
    fake.seen()
        .iter()
        .filter(|s| s.method == Method::POST && s.path == WORKFLOWS)
        .count()
}

/// A fake cluster whose live template is the one-environment pipeline's.
async fn cluster_with_old_template() -> Fake {
    let fake = Fake::serving(&["argoproj.io/v1alpha1"]);
    let (config, _) = configs();
    let (outcome, _) = stage(&fake, config, "shop-first", Origin::Push).await;
    assert_eq!(outcome.ends_run, None, "a first apply restarts nothing");
    assert!(workflows(&fake).is_empty());
    fake
}

#[tokio::test]
async fn a_changed_topology_submits_one_restart_of_the_same_commit_and_a_second_call_submits_nothing() {
    let fake = cluster_with_old_template().await;
    let old_template = fake.object(TEMPLATE).unwrap();
    let (_, grown) = configs();

    let name = restart_name(&grown, SHA, "shop-x7k2p");
    assert!(name.starts_with("shop-restart-0123456-"), "{name}");
    let (outcome, log) = stage(&fake, grown.clone(), "shop-x7k2p", Origin::Push).await;
    let end = outcome.ends_run.expect("the run ends: a restart took over");
    assert_eq!(end.reason, EndReason::Superseded);
    assert!(end.message.contains("+ environment prod"), "{}", end.message);
    assert!(end.message.contains(&format!("as run {name}")), "{}", end.message);
    assert!(
        log.text().contains("superseded: the topology changed"),
        "{}",
        log.text()
    );

    let submitted = workflows(&fake);
    assert_eq!(submitted.len(), 1, "{submitted:#?}");
    let restart = &submitted[0];
    assert_eq!(restart["metadata"]["name"], json!(name));
    assert_eq!(restart["metadata"]["labels"][TRIGGER_LABEL], json!("restart"));
    assert_eq!(restart["metadata"]["labels"][COMMIT_LABEL], json!(SHA));
    assert_eq!(
        restart["metadata"]["annotations"][RESTART_OF_ANNOTATION],
        json!("shop-x7k2p")
    );
    assert_eq!(restart["spec"]["workflowTemplateRef"]["name"], json!(NAME));
    let commit: Vec<&Value> = restart["spec"]["arguments"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "commit-sha")
        .collect();
    assert_eq!(commit, [&json!({"name": "commit-sha", "value": SHA})]);
    // Created as `aphex trigger` creates: the cluster refuses unknown fields.
    let post = fake
        .seen()
        .into_iter()
        .find(|s| s.method == Method::POST && s.path == WORKFLOWS)
        .unwrap();
    assert_eq!(post.query, "fieldValidation=Strict");

    // A second call for the same commit (another run of it that started on
    // the old template) finds the restart by its labels and submits nothing.
    fake.put(TEMPLATE, old_template.clone());
    let (outcome, _) = stage(&fake, grown.clone(), "shop-b9q4z", Origin::Push).await;
    let end = outcome
        .ends_run
        .expect("still superseded, by the restart already there");
    assert!(
        end.message
            .contains(&format!("was already restarted on it as run {name}")),
        "{}",
        end.message
    );
    assert_eq!(creates(&fake), 1, "no second Workflow was submitted");
    assert_eq!(workflows(&fake).len(), 1);

    // Once that restart has finished it stands for the commit no more: a
    // later run of the commit on another topology (a rollback to it after
    // a commit that changed the topology again) restarts anew, under a
    // name of its own.
    let mut finished = fake.object(&format!("{WORKFLOWS}/{name}")).unwrap();
    finished["status"] = json!({"phase": "Succeeded"});
    fake.put(&format!("{WORKFLOWS}/{name}"), finished);
    fake.put(TEMPLATE, old_template);
    let (outcome, _) = stage(&fake, grown.clone(), "shop-m3v8d", Origin::Push).await;
    let again = restart_name(&grown, SHA, "shop-m3v8d");
    assert_ne!(again, name);
    let end = outcome.ends_run.expect("superseded by a new restart");
    assert!(
        end.message.contains(&format!("restarts on it as run {again}")),
        "{}",
        end.message
    );
    assert_eq!(creates(&fake), 2, "one more Workflow, for the rollback");
    assert_eq!(workflows(&fake).len(), 2);
}

/// Argo retries a pipeline pod lost after it applied the new template but
/// before it submitted the restart: the retry finds the live template
/// already new, yet its run is still on the old stages. Its `--topology`
/// (the run's) makes it restart; without one (a template rendered before
/// the flag) it can only compare with the live template and goes on.
#[tokio::test]
async fn a_pipeline_stage_retried_after_it_applied_the_new_template_still_restarts() {
    let fake = cluster_with_old_template().await;
    let mut live = fake.object(TEMPLATE).unwrap();
    let run_topology = aphex_template::workflow::topology(&live);
    assert_eq!(run_topology, ["validate", "build", "pipeline", "deploy-dev"]);
    let (_, grown) = configs();
    // What the lost attempt left: the new template applied, nothing submitted.
    live["spec"] = aphex_template::workflow::workflow_template(&grown)["spec"].take();
    fake.put(TEMPLATE, live);

    let (outcome, _) = stage(&fake, grown.clone(), "shop-x7k2p", Origin::Push).await;
    assert_eq!(
        outcome.ends_run, None,
        "without --topology the live template is the baseline"
    );
    assert_eq!(creates(&fake), 0);

    let (outcome, log) = stage_started_on(
        &fake,
        grown.clone(),
        "shop-x7k2p",
        Origin::Push,
        Some(run_topology.clone()),
    )
    .await;
    let end = outcome
        .ends_run
        .expect("superseded: the run is on the old stages");
    assert!(end.message.contains("+ environment prod"), "{}", end.message);
    let name = restart_name(&grown, SHA, "shop-x7k2p");
    assert!(
        end.message.contains(&format!("restarts on it as run {name}")),
        "{}",
        end.message
    );
    assert!(
        log.text()
            .contains("the applied template's stages are not this run's"),
        "{}",
        log.text()
    );
    assert_eq!(creates(&fake), 1);

    // Retried once more after it submitted: the restart is found, not made again.
    let (outcome, _) = stage_started_on(&fake, grown, "shop-x7k2p", Origin::Push, Some(run_topology)).await;
    assert!(
        outcome
            .ends_run
            .expect("superseded")
            .message
            .contains("was already restarted"),
        "the second retry names the restart"
    );
    assert_eq!(creates(&fake), 1, "no second Workflow");
}

#[tokio::test]
async fn a_restart_of_the_commit_the_labels_miss_is_found_by_its_name() {
    let fake = cluster_with_old_template().await;
    // A Workflow of the restart's name, without the labels (made by hand):
    // the API server refuses the create with 409 and nothing more is made.
    let (_, grown) = configs();
    let name = restart_name(&grown, SHA, "shop-x7k2p");
    fake.put(
        &format!("{WORKFLOWS}/{name}"),
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
               "metadata": {"name": name, "namespace": NS}}),
    );
    let (outcome, _) = stage(&fake, grown, "shop-x7k2p", Origin::Push).await;
    let end = outcome
        .ends_run
        .expect("superseded by the Workflow already there");
    assert!(end.message.contains("was already restarted"), "{}", end.message);
    assert_eq!(creates(&fake), 1, "one create, refused");
    assert_eq!(workflows(&fake).len(), 1);
}

#[tokio::test]
async fn a_restart_never_restarts() {
    let fake = cluster_with_old_template().await;
    let (_, grown) = configs();
    let (outcome, log) = stage(&fake, grown, "shop-restart-0123456789ab", Origin::Restart).await;
    assert_eq!(outcome.ends_run, None, "the restart goes on with its stages");
    assert!(
        log.text()
            .contains("not restarting: this run is itself a restart"),
        "{}",
        log.text()
    );
    assert_eq!(creates(&fake), 0);
    assert!(workflows(&fake).is_empty());
}

#[tokio::test]
async fn an_unchanged_topology_submits_nothing() {
    let fake = cluster_with_old_template().await;
    let (config, _) = configs();
    let (outcome, _) = stage(&fake, config, "shop-x7k2p", Origin::Push).await;
    assert_eq!(outcome.ends_run, None);
    assert_eq!(creates(&fake), 0);
}

#[tokio::test]
async fn a_refused_restart_fails_the_stage_naming_the_verbs_it_needs() {
    let fake = cluster_with_old_template().await;
    fake.forbid("workflows");
    let (_, grown) = configs();
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, _) = common::stage_context(dir.path(), KubeApplier::new(fake.client()), grown, None);
    ctx.ports.workflows = Some(Arc::new(Workflows::new(fake.client(), NS)));
    let e = pipeline::run(&ctx).await.unwrap_err().to_string();
    assert!(e.contains("submitting the restart of commit"), "{e}");
    assert!(e.contains("the pipeline stage's restart list and create"), "{e}");
}
