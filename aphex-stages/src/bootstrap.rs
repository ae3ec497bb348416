//! `aphex bootstrap`: puts one pipeline onto a cluster that runs Argo
//! Workflows and Argo Events, through the same ports as the pipeline stage.
//!
//! In order, each step needing the one before:
//! 1. check the cluster serves the Argo kinds (reading the live
//!    WorkflowTemplate), before anything is created in AWS;
//! 2. deploy the pipeline's own AWS stack (bucket, workflow role);
//! 3. render every manifest with the stack's outputs (the role ARN for the
//!    IRSA annotation, the bucket for the stack-outputs ConfigMap);
//! 4. make sure the webhook Secret exists: created with a random value the
//!    first time, never replaced (GitHub holds the same value);
//! 5. apply every manifest, in render order (RBAC first).
//!
//! Running it again is safe: an unchanged stack and unchanged objects are
//! no-ops, and the webhook secret is kept.

use aphex_config::Config;
use aphex_template::cloudformation::pipeline_stack_name;
use aphex_template::render::{RenderOptions, render};
use serde_json::{Value, json};

use crate::diff::{differs, identity};
use crate::ports::{
    ClusterError, DeployError, DeployProgress, ManifestApplier, PipelineStackUpdater, StackOutcome,
};
use crate::stages::pipeline::{StackAction, stack_action};

/// The key of the webhook secret in its Secret (what the EventSource reads).
pub(crate) const WEBHOOK_SECRET_KEY: &str = "secret";
/// The key of the GitHub token in its Secret.
pub(crate) const TOKEN_KEY: &str = "token";

/// The adapters bootstrap works through.
pub struct Ports<'a> {
    /// Deploys the pipeline's own stack.
    pub stack: &'a dyn PipelineStackUpdater,
    /// Applies the manifests.
    pub applier: &'a dyn ManifestApplier,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It did not exist.
    Created,
    /// It existed and differed.
    Changed,
    /// It existed as rendered.
    Unchanged,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        })
    }
}

/// The webhook secret's Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    /// Namespace (Argo Events').
    pub namespace: String,
    /// Secret name.
    pub name: String,
    /// What this run did with it.
    pub state: SecretState,
}

/// What bootstrap did with the webhook secret. Its value leaves the
/// cluster only when a person must enter it on GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretState {
    /// Created now, with this value, which a person must enter on GitHub
    /// when adding the webhook (no `github.webhookUrl`: nobody else will).
    CreatedToEnter(String),
    /// Created now; Argo Events registers the webhook with it
    /// (`github.webhookUrl` is set), so nobody needs to see it.
    Created,
    /// It existed and was kept (GitHub holds the same value).
    Kept,
}

/// What bootstrap did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The pipeline stack after the deploy.
    pub stack: StackOutcome,
    /// Each applied object (`Kind namespace/name`) and what happened to it.
    pub objects: Vec<(String, Change)>,
    /// The webhook secret, when the config has `pipeline.github`.
    pub webhook_secret: Option<WebhookSecret>,
    /// Where GitHub delivers: `pipeline.github.webhookUrl`, when set.
    pub webhook_url: Option<String>,
    /// The webhook's path on the EventSource's server (`/<pipeline>`).
    pub webhook_endpoint: Option<String>,
    /// Things to do by hand (a missing GitHub token Secret), one line each.
    pub todo: Vec<String>,
}

/// Why bootstrap stopped.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The config names no cluster for the workflow role to trust.
    #[error(
        "bootstrap needs a cluster: the workflow role trusts that cluster's OIDC provider. Set `pipeline.cluster` in the config or pass `--cluster NAME`"
    )]
    NoCluster,
    /// The cluster could not be read (before anything was changed).
    #[error("checking the cluster ({cluster}): {source}")]
    Cluster {
        /// The applier's description of the cluster.
        cluster: String,
        /// Why.
        #[source]
        source: ClusterError,
    },
    /// The pipeline stack could not be deployed.
    #[error("deploying the pipeline stack {stack}: {source}")]
    Stack {
        /// The stack's name.
        stack: String,
        /// Why.
        #[source]
        source: DeployError,
    },
    /// The pipeline stack deployed without the role the workflows run as.
    #[error("reading the pipeline stack {stack}: it has no WorkflowExecutionRoleArn output")]
    NoRoleOutput {
        /// The stack's name.
        stack: String,
    },
    /// No webhook secret could be made.
    #[error("making the webhook secret: {0}")]
    Secret(#[source] SecretError),
    /// A live object could not be read.
    #[error("reading {object}: {source}")]
    Read {
        /// `Kind namespace/name`.
        object: String,
        /// Why.
        #[source]
        source: ClusterError,
    },
    /// The manifests could not be applied.
    #[error("applying to {cluster}: {source}")]
    Apply {
        /// The applier's description of the cluster.
        cluster: String,
        /// Why.
        #[source]
        source: ClusterError,
    },
}

/// Why no webhook secret could be made. (getrandom's error is an
/// `std::error::Error` only with its `std` feature, so it is not a source.)
#[derive(Debug, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct SecretError(pub getrandom::Error);

/// Bootstraps the pipeline of `config`; `new_secret` makes the webhook
/// secret when there is none yet.
pub async fn bootstrap(
    config: &Config,
    ports: Ports<'_>,
    progress: &dyn DeployProgress,
    new_secret: &dyn Fn() -> Result<String, SecretError>,
) -> Result<Report, BootstrapError> {
    if let StackAction::Skip(_) = stack_action(config) {
        return Err(BootstrapError::NoCluster);
    }
    let settings = config.settings();
    let name = config.pipeline_name();
    let applier = ports.applier;

    // 1. The cluster first: a missing CRD or a wrong kubeconfig must not
    //    leave a stack behind.
    applier
        .current("WorkflowTemplate", settings.namespace(), name)
        .await
        .map_err(|source| BootstrapError::Cluster {
            cluster: applier.describe(),
            source,
        })?;

    // 2. The pipeline stack.
    let stack_name = pipeline_stack_name(config);
    let stack = ports
        .stack
        .update(config, progress)
        .await
        .map_err(|source| BootstrapError::Stack {
            stack: stack_name.clone(),
            source,
        })?;
    let output = |key: &str| {
        stack
            .outputs
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.value.clone())
    };
    let role_arn = output("WorkflowExecutionRoleArn").ok_or_else(|| BootstrapError::NoRoleOutput {
        stack: stack_name.clone(),
    })?;

    // 3. Every manifest, with the stack's outputs.
    let rendered = render(
        config,
        &RenderOptions {
            executor_role_arn: Some(role_arn),
            pr_role_arn: output("PullRequestRoleArn"),
            artifact_bucket: output("ArtifactBucketName"),
        },
    );
    let mut manifests: Vec<Value> = Vec::new();
    let mut todo = Vec::new();

    // 4. The webhook secret, kept when it exists.
    let webhook_secret = match &settings.github {
        None => None,
        Some(gh) => {
            let namespace = settings.events_namespace().to_owned();
            let secret_name = gh.webhook_secret(name);
            let exists = read(applier, "Secret", &namespace, &secret_name).await?.is_some();
            let state = if exists {
                SecretState::Kept
            } else {
                let value = new_secret().map_err(BootstrapError::Secret)?;
                manifests.push(secret(
                    config,
                    &namespace,
                    &secret_name,
                    WEBHOOK_SECRET_KEY,
                    &value,
                ));
                match gh.webhook_url {
                    Some(_) => SecretState::Created,
                    None => SecretState::CreatedToEnter(value),
                }
            };
            if read(applier, "Secret", &namespace, gh.token_secret())
                .await?
                .is_none()
            {
                todo.push(format!(
                    "create the GitHub token Secret the EventSource reads: kubectl -n {namespace} create secret generic {} --from-literal={TOKEN_KEY}=<a token that may manage the repository's webhooks>",
                    gh.token_secret()
                ));
            }
            Some(WebhookSecret {
                namespace,
                name: secret_name,
                state,
            })
        }
    };

    // 5. Apply, noting what each object was before.
    manifests.extend(rendered.manifests.into_iter().map(|m| m.value));
    let mut objects = Vec::with_capacity(manifests.len());
    for m in &manifests {
        let (kind, namespace, object) = identity(m);
        // (The webhook Secret is only ever in the list when it is new.)
        let change = match read(applier, &kind, &namespace, &object).await? {
            None => Change::Created,
            Some(live) if differs(&live, m) => Change::Changed,
            Some(_) => Change::Unchanged,
        };
        objects.push((format!("{kind} {namespace}/{object}"), change));
    }
    applier
        .apply(&manifests)
        .await
        .map_err(|source| BootstrapError::Apply {
            cluster: applier.describe(),
            source,
        })?;

    Ok(Report {
        stack,
        objects,
        webhook_secret,
        webhook_url: settings.github.as_ref().and_then(|g| g.webhook_url.clone()),
        webhook_endpoint: settings
            .github
            .as_ref()
            .map(|_| aphex_template::events::webhook_endpoint(config)),
        todo,
    })
}

async fn read(
    applier: &dyn ManifestApplier,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, BootstrapError> {
    applier
        .current(kind, namespace, name)
        .await
        .map_err(|source| BootstrapError::Read {
            object: format!("{kind} {namespace}/{name}"),
            source,
        })
}

fn secret(config: &Config, namespace: &str, name: &str, key: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": aphex_template::workflow::labels(config),
        },
        "type": "Opaque",
        "stringData": {key: value},
    })
}

/// A new webhook secret: 32 random bytes from the operating system, as hex.
pub fn random_secret() -> Result<String, SecretError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(SecretError)?;
    Ok(hex::encode(bytes))
}
