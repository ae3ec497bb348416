//! `aphex destroy [PATH] [--stacks ENV]... [--yes]`: removes the pipeline:
//! the cluster objects bootstrap applied (in reverse order: the Sensor
//! first, the admission policy last), then the environments' stacks named
//! with `--stacks` (each environment's in reverse dependency order, later
//! environments first), then the pipeline stack. Everything is listed
//! before anything is deleted, and deleted only once confirmed. The
//! artifact bucket is retained by its policy, and the command says so.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use aphex_aws::destroy::{
    StackDeleted, delete_environment_stack, delete_pipeline_stack, environment_session,
};
use aphex_config::Config;
use aphex_k8s::Deleted;
use aphex_stages::ports::{DeployProgress, StackEvent};
use aphex_stages::record::RunRecord;
use aphex_template::cloudformation::pipeline_stack_name;
use aphex_template::workflow::PIPELINE_LABEL;
use aphex_template::{EnvironmentPlan, RenderOptions, render};
use serde_json::{Value, json};

use super::cluster::ClusterArgs;
use crate::exit::{CliError, Exit};

/// Arguments of `aphex destroy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex destroy\n  \
    aphex destroy --stacks staging --stacks dev --store s3://shop-artifacts --yes\n\n\
    Environments' stacks are deleted only when named with --stacks; their CloudFormation names\n\
    come from the newest recorded deploy of the environment (the run store of --repo or --store),\n\
    through the role the pipeline deploys them with. The artifact bucket is kept.\n\n\
    Exit status: 0 destroyed (or nothing to do), 1 a deletion failed, 2 usage or setup error,\n\
    or not confirmed.")]
pub struct Args {
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// Also delete this environment's stacks (repeat for several).
    #[arg(long = "stacks", value_name = "ENV")]
    pub stacks: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The repository whose `.aphex/` run records name the stacks (default: the current directory's).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Read the run records in this S3 bucket (`s3://BUCKET`) instead.
    #[arg(long, value_name = "s3://BUCKET")]
    pub store: Option<String>,
    /// The kubeconfig context (default: the current context).
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
}

/// Stack events as lines on stderr.
struct Progress;

impl DeployProgress for Progress {
    fn event(&self, e: &StackEvent) {
        let reason = e.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        eprintln!(
            "  {} {} ({}) {}{reason}",
            e.stack, e.logical_id, e.resource_type, e.status
        );
    }
}

/// One environment's stacks to delete, in deletion order.
struct EnvironmentStacks {
    env: String,
    /// CloudFormation stack names.
    stacks: Vec<String>,
}

/// Runs `aphex destroy`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let config = super::validate::load_config(&args.path)?;
    let mut environments: Vec<&aphex_config::Environment> = Vec::new();
    for name in &args.stacks {
        let Some(env) = config.environment(name) else {
            let names: Vec<&str> = config.environments.iter().map(|e| e.name.as_str()).collect();
            return Err(CliError::usage(format!("--stacks {name}: no such environment"))
                .help(format!("the environments are: {}", names.join(", "))));
        };
        if !environments.iter().any(|e| e.name == env.name) {
            environments.push(env);
        }
    }
    // Later environments first: production before what it was promoted from.
    environments
        .sort_by_key(|e| std::cmp::Reverse(config.environments.iter().position(|c| c.name == e.name)));
    let objects = cluster_objects(&config);
    super::runtime()?.block_on(async {
        let mut env_stacks = Vec::new();
        if !environments.is_empty() {
            let store = super::history::run_store(args.repo.as_deref(), args.store.as_deref()).await?;
            let runs = store
                .recorder
                .list(config.pipeline_name(), usize::MAX)
                .await
                .map_err(CliError::usage)?;
            for env in &environments {
                env_stacks.push(environment_stacks(env, &runs, &store.location)?);
            }
        }
        let stack_name = pipeline_stack_name(&config);
        let cluster = ClusterArgs {
            namespace: None,
            context: args.context.clone(),
        };
        let connection = super::cluster::connect(&cluster).await?;
        let applier = connection
            .applier()
            .map_err(|e| CliError::usage(format!("no Kubernetes client: {e}")))?;

        eprintln!("aphex destroy deletes, in this order:");
        eprintln!("  on the cluster at {}:", connection.config.cluster_url);
        for o in &objects {
            eprintln!("    {}", describe(o));
        }
        for e in &env_stacks {
            eprintln!("  environment {}'s stacks: {}", e.env, e.stacks.join(", "));
        }
        eprintln!("  the pipeline stack {stack_name}");
        eprintln!(
            "It keeps the artifact bucket (retained by its policy), the pipeline's Workflows (its past runs) and \
             every environment's stacks not named with --stacks."
        );
        if !args.yes {
            confirm(config.pipeline_name())?;
        }

        for o in &objects {
            let done = applier.delete(o).await.map_err(CliError::failure)?;
            let what = match done {
                Deleted::Deleted => "deleted",
                Deleted::Absent => "not there",
                Deleted::Foreign => "kept: it is not labelled as this pipeline's",
            };
            eprintln!("{}: {what}", describe(o));
        }
        let base = aphex_aws::client::load().await;
        for e in &env_stacks {
            let env = config.environment(&e.env).expect("checked above");
            let session = environment_session(&base, env).await.map_err(|m| {
                CliError::failure(format!("acting in environment {}: {m}", e.env))
                    .help("use credentials that may assume the environment's deploy role (its roleArn, or the CDK bootstrap deploy role)")
            })?;
            for stack in &e.stacks {
                eprintln!("deleting stack {stack} of environment {}", e.env);
                let done = delete_environment_stack(&session, stack, &Progress)
                    .await
                    .map_err(|m| CliError::failure(m).help("fix what the events name, then run aphex destroy again"))?;
                say(stack, &done);
            }
        }
        eprintln!("deleting the pipeline stack {stack_name}");
        let done = delete_pipeline_stack(&base, &stack_name, &Progress)
            .await
            .map_err(|m| CliError::failure(m).help("fix what the events name, then run aphex destroy again"))?;
        say(&stack_name, &done);
        let bucket = match &done {
            StackDeleted::Deleted(outputs) => outputs
                .iter()
                .find(|o| o.key == "ArtifactBucketName")
                .map(|o| format!(" {}", o.value)),
            StackDeleted::Absent => None,
        };
        eprintln!(
            "kept: the artifact bucket{} (retained by its policy, with the run records and logs); \
             empty and delete it by hand when they are no longer needed",
            bucket.unwrap_or_default()
        );
        Ok(Exit::Ok)
    })
}

fn say(stack: &str, done: &StackDeleted) {
    match done {
        StackDeleted::Deleted(_) => eprintln!("stack {stack}: deleted"),
        StackDeleted::Absent => eprintln!("stack {stack}: not there"),
    }
}

/// The objects bootstrap applies, in deletion order (the reverse of
/// bootstrap's): the rendered manifests and the webhook Secret.
fn cluster_objects(config: &Config) -> Vec<Value> {
    // The stack-outputs ConfigMap is rendered only with a bucket; its name
    // does not depend on which.
    let rendered = render(
        config,
        &RenderOptions {
            artifact_bucket: Some(String::new()),
            ..RenderOptions::default()
        },
    );
    let mut objects: Vec<Value> = rendered.manifests.iter().map(|m| m.value.clone()).collect();
    let settings = config.settings();
    if let Some(gh) = &settings.github {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "namespace": settings.events_namespace(),
                "name": gh.webhook_secret(config.pipeline_name()),
                "labels": {PIPELINE_LABEL: config.pipeline_name()},
            },
        }));
    }
    objects.reverse();
    objects
}

fn describe(o: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (kind, ns, name) = (
        s(&o["kind"]),
        s(&o["metadata"]["namespace"]),
        s(&o["metadata"]["name"]),
    );
    if ns.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {ns}/{name}")
    }
}

/// `env`'s stacks in reverse dependency order, by the CloudFormation names
/// its newest recorded deploy used.
fn environment_stacks(
    env: &aphex_config::Environment,
    runs: &[RunRecord],
    location: &str,
) -> Result<EnvironmentStacks, CliError> {
    let plan = EnvironmentPlan::new(env).map_err(CliError::failure)?;
    let stage = format!("deploy-{}", env.name);
    let deployed = runs
        .iter()
        .filter_map(|r| r.stages.iter().find(|s| s.name == stage && !s.stacks.is_empty()))
        .next()
        .ok_or_else(|| {
            CliError::usage(format!(
                "no recorded deploy of environment {} in {location}: its CloudFormation stack names are unknown",
                env.name
            ))
            .help("point --store at the pipeline's artifact bucket (s3://BUCKET), or delete the stacks with the AWS CLI")
        })?;
    let stacks = plan
        .order
        .iter()
        .rev()
        .filter_map(|name| deployed.stacks.iter().find(|s| &s.name == name))
        .map(|s| s.stack_name.clone())
        .collect();
    Ok(EnvironmentStacks {
        env: env.name.clone(),
        stacks,
    })
}

/// Asks on the terminal for the pipeline's name; anything else stops.
fn confirm(pipeline: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(
            CliError::usage("aphex destroy needs a confirmation and stdin is not a terminal")
                .help("pass --yes to delete without asking"),
        );
    }
    eprint!("Type the pipeline's name ({pipeline}) to delete all of the above: ");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::usage(format!("reading the confirmation: {e}")))?;
    if answer.trim() == pipeline {
        Ok(())
    } else {
        Err(CliError::usage("not confirmed: nothing was deleted"))
    }
}
