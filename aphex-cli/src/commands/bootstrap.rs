//! `aphex bootstrap [PATH] [--cluster NAME]`: puts the pipeline onto the
//! cluster (`aphex_stages::bootstrap`) with the AWS adapters and the
//! Kubernetes applier, and prints what it did, the webhook and what is left
//! to do by hand.

use std::path::PathBuf;

use aphex_stages::bootstrap::{BootstrapError, Ports, Report, SecretState, bootstrap, random_secret};
use aphex_stages::ports::{DeployProgress, StackEvent};
use aphex_stages::stages::pipeline::{StackAction, stack_action};
use aphex_template::events::{WEBHOOK_PORT, event_source_name};

use crate::exit::{CliError, Exit};
use crate::out::Out;

/// Arguments of `aphex bootstrap`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    aphex bootstrap\n  \
    aphex bootstrap --cluster platform-prod\n\n\
    Needs AWS credentials for the pipeline's home account (the standard AWS environment) and a\n\
    kubeconfig for the cluster (KUBECONFIG or ~/.kube/config) that may create RBAC objects,\n\
    Secrets and Argo objects in the Argo namespaces. Running it again is safe: unchanged objects\n\
    stay as they are and the webhook secret is kept.\n\n\
    Exit status: 0 bootstrapped, 1 invalid config or a failed step, 2 usage or setup error.")]
pub struct Args {
    /// The configuration file (a directory means its aphex-config.yaml).
    #[arg(default_value = "aphex-config.yaml")]
    pub path: PathBuf,
    /// The cluster to run on, when the config has no `pipeline.cluster`
    /// (its CloudFormation exports are `AphexCluster-<NAME>-*`).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
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

/// Runs `aphex bootstrap`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let mut config = super::validate::load_config(&args.path)?;
    if let Some(name) = args.cluster {
        let settings = config.pipeline.get_or_insert_with(Default::default);
        if let Some(c) = &settings.cluster
            && c.name != name
        {
            eprintln!(
                "note: --cluster {name} replaces pipeline.cluster `{}` of {}",
                c.name,
                args.path.display()
            );
        }
        settings.cluster = Some(aphex_config::Cluster {
            name,
            export_prefix: None,
        });
    }
    // Before any client is made: nothing to connect to without a cluster.
    if let StackAction::Skip(_) = stack_action(&config) {
        return Err(BootstrapError::NoCluster.into());
    }
    super::runtime()?.block_on(async {
        let applier = super::kube_applier().await?;
        let stack = aphex_aws::pipeline_stack::AwsPipelineStackUpdater::new(aphex_aws::client::load().await);
        let ports = Ports {
            stack: &stack,
            applier: &applier,
        };
        eprintln!("bootstrapping pipeline {}", config.pipeline_name());
        let report = bootstrap(&config, ports, &Progress, &random_secret).await?;
        print_report(&config, &report)?;
        Ok(Exit::Ok)
    })
}

fn print_report(config: &aphex_config::Config, report: &Report) -> Result<(), CliError> {
    let mut out = Out::lock();
    let stack = &report.stack;
    let what = if stack.changed { "deployed" } else { "unchanged" };
    writeln!(out, "pipeline stack {}: {what}", stack.stack_name)?;
    for o in &stack.outputs {
        writeln!(out, "  {} = {}", o.key, o.value)?;
    }
    for (object, change) in &report.objects {
        writeln!(out, "{object}: {change}")?;
    }
    if let Some(endpoint) = &report.webhook_endpoint {
        match &report.webhook_url {
            Some(url) => writeln!(out, "webhook: {url} (Argo Events registers it on GitHub)")?,
            None => writeln!(
                out,
                "webhook: not exposed yet: route a public URL to port {WEBHOOK_PORT}, path {endpoint}, of the service \
                 {}-eventsource-svc, then set pipeline.github.webhookUrl (or add the webhook on GitHub yourself)",
                event_source_name(config)
            )?,
        }
    }
    if let Some(secret) = &report.webhook_secret {
        let (ns, name) = (&secret.namespace, &secret.name);
        // The value is printed only when a person must paste it into GitHub;
        // otherwise the command that reads it, for whoever may.
        let read = format!("kubectl -n {ns} get secret {name} -o jsonpath='{{.data.secret}}' | base64 -d");
        match &secret.state {
            SecretState::CreatedToEnter(value) => writeln!(
                out,
                "webhook secret (new, in Secret {ns}/{name}; enter it as the webhook's secret on GitHub): {value}"
            )?,
            SecretState::Created => writeln!(
                out,
                "webhook secret: created in Secret {ns}/{name}; Argo Events registers the webhook with it ({read})"
            )?,
            SecretState::Kept => writeln!(out, "webhook secret: kept in Secret {ns}/{name} ({read})")?,
        }
    }
    let settings = config.settings();
    if let Some(gh) = settings
        .github
        .as_ref()
        .filter(|_| settings.posts_github_status())
    {
        // Read optionally by the pods: a missing one costs the statuses only.
        println!(
            "commit statuses: the validate and finalize pods read the token from Secret {}/{} (key `{}`), \
             when it exists: a token that may write commit statuses on {}",
            settings.namespace(),
            gh.token_secret(),
            aphex_template::workflow::GITHUB_TOKEN_SECRET_KEY,
            gh.full_name(),
        );
    }
    if !report.todo.is_empty() {
        writeln!(out, "to do:")?;
        for t in &report.todo {
            writeln!(out, "  - {t}")?;
        }
    }
    Ok(())
}
