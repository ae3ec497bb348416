//! The adapters a run uses, built in one place for both ways of running:
//! `aphex run --local` and the in-pod `aphex-runner`. A run names where its
//! state lives ([`Storage`]), where manifests go ([`Cluster`]), which
//! deployer deploys ([`DeployerKind`]) and whose run it is ([`Scope`]);
//! [`build`] turns that into [`Ports`], loading the AWS configuration once.
//!
//! ```no_run
//! # async fn example() {
//! use aphex_adapters::{Adapters, Cluster, DeployerKind, Scope, Storage, build};
//! use aphex_stages::redact::Redactor;
//! let state = std::path::Path::new(".aphex");
//! let redactor = Redactor::from_env();
//! let ports = build(Adapters {
//!     deployer: DeployerKind::Fake,
//!     storage: Storage::Dir(state.to_path_buf()),
//!     cluster: Cluster::Dir(state.join("cluster")),
//!     scope: Scope::Deploy,
//!     notifier: aphex_adapters::notifier(&redactor, None),
//!     statuses: None,
//!     force: false,
//! })
//! .await;
//! println!("deploying with {}", ports.deployer.describe());
//! # }
//! ```

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use aphex_config::Config;
use aphex_stages::context::Ports;
use aphex_stages::local::{
    DirArtifactStore, DirCluster, DirRunRecorder, JsonLinesMetrics, NoopNotifier, WebhookNotifier,
};
use aphex_stages::ports::{
    ArtifactStore, ClusterError, CommitStatuses, CredentialChecker, ManifestApplier, MetricsSink, Notifier,
    PipelineStackUpdater, RunRecorder, StackDeployer, SubmitError, Submitted, WorkflowSubmitter,
};
use aphex_stages::redact::Redactor;
use aphex_template::workflow::{
    GITHUB_TOKEN_ENV, GITHUB_TOKEN_SECRET_KEY, SLACK_WEBHOOK_ENV, SLACK_WEBHOOK_SECRET_KEY,
};

/// Which `StackDeployer` a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DeployerKind {
    /// CloudFormation in the accounts of the config, with the usual AWS credentials.
    Cloudformation,
    /// Records what would be deployed and deploys nothing (outputs are made up).
    Fake,
}

/// Where artifacts, run records and metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Directories under this one (`artifacts/`, `runs/`, `metrics.jsonl`).
    Dir(PathBuf),
    /// This S3 bucket for artifacts and run records, CloudWatch for metrics.
    S3(String),
}

/// Where the pipeline stage applies manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cluster {
    /// A directory standing in for the cluster (local runs, tests).
    Dir(PathBuf),
    /// The Kubernetes API server of the pod's service account (or
    /// `KUBECONFIG`), connected to only when a stage applies.
    Kubernetes,
}

/// Whose run it is, which bounds what its adapters may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A run of the configured branch: deploys.
    Deploy,
    /// A pull request's validation: its role reaches only the CDK lookup
    /// roles and the pipeline's `pr/` prefix, and it deploys nothing, the
    /// pipeline's own stack included.
    PullRequest,
}

/// Everything [`build`] needs to know about a run's adapters.
pub struct Adapters {
    /// The deployer.
    pub deployer: DeployerKind,
    /// Where state goes.
    pub storage: Storage,
    /// Where manifests go.
    pub cluster: Cluster,
    /// Whose run it is.
    pub scope: Scope,
    /// Where the run's notification goes ([`notifier`] builds the usual one).
    pub notifier: Arc<dyn Notifier>,
    /// Where commit statuses are posted, if anywhere.
    pub statuses: Option<Arc<dyn CommitStatuses>>,
    /// Make a change set for every stack, even one whose template,
    /// parameters and tags equal the deployed stack's (otherwise skipped):
    /// `aphex run --local --force`.
    pub force: bool,
}

/// The ports of a run. The AWS configuration (the default chain: env,
/// profile, `AWS_ENDPOINT_URL`) is loaded once, and only when an adapter
/// needs it.
pub async fn build(adapters: Adapters) -> Ports {
    let Adapters {
        deployer,
        storage,
        cluster,
        scope,
        notifier,
        statuses,
        force,
    } = adapters;
    let pull_request = scope == Scope::PullRequest;
    let needs_aws = deployer == DeployerKind::Cloudformation || matches!(storage, Storage::S3(_));
    let aws = if needs_aws {
        Some(aphex_aws::client::load().await)
    } else {
        None
    };
    let Deploying {
        deployer,
        credentials,
        pipeline_stack,
    } = match (deployer, &aws) {
        (DeployerKind::Cloudformation, Some(base)) => cloudformation(base, pull_request, force),
        // The fake deploys nothing, the pipeline's own stack included.
        _ => Deploying {
            deployer: Arc::new(aphex_stages::local::NoopDeployer),
            credentials: None,
            pipeline_stack: None,
        },
    };
    let (artifacts, runs, metrics): (Arc<dyn ArtifactStore>, Arc<dyn RunRecorder>, Arc<dyn MetricsSink>) =
        match &storage {
            Storage::Dir(dir) => (
                Arc::new(DirArtifactStore::new(dir.join("artifacts"))),
                Arc::new(DirRunRecorder::new(dir.join("runs"))),
                Arc::new(JsonLinesMetrics::new(dir.join("metrics.jsonl"))),
            ),
            Storage::S3(bucket) => {
                let base = aws
                    .as_ref()
                    .expect("the AWS configuration is loaded for S3 storage");
                let (mut artifacts, mut runs) = (
                    aphex_aws::s3::S3ArtifactStore::new(base, bucket),
                    aphex_aws::s3::S3RunRecorder::new(base, bucket),
                );
                if pull_request {
                    (artifacts, runs) = (artifacts.for_pull_requests(), runs.for_pull_requests());
                }
                (
                    Arc::new(artifacts),
                    Arc::new(runs),
                    Arc::new(aphex_aws::cloudwatch::CloudWatchMetrics::new(base)),
                )
            }
        };
    let (applier, workflows): (Arc<dyn ManifestApplier>, Option<Arc<dyn WorkflowSubmitter>>) = match cluster {
        Cluster::Dir(dir) => {
            let cluster = Arc::new(DirCluster::new(dir));
            (cluster.clone(), Some(cluster))
        }
        Cluster::Kubernetes => (kubernetes().await, Some(kubernetes_workflows().await)),
    };
    // A pull request's run never restarts anything: it runs no pipeline
    // stage, and its account may not create Workflows (docs/security.md).
    let workflows = workflows.filter(|_| !pull_request);
    Ports {
        artifacts,
        runs,
        deployer,
        applier,
        metrics,
        notifier,
        credentials,
        pipeline_stack,
        statuses,
        workflows,
    }
}

/// The commit status poster, when the template asks for statuses (it
/// passes the GitHub API and `owner/repo`, from the config it was rendered
/// from, never the commit's) and the token (`GITHUB_TOKEN_ENV`) is there. A
/// missing token is a warning: the template reads the Secret optionally, so
/// that it costs the statuses, never the run.
pub fn commit_statuses(
    api: Option<&str>,
    repository: Option<&str>,
    pipeline: &str,
    scope: Scope,
    redactor: &Redactor,
) -> Option<Arc<dyn CommitStatuses>> {
    let api = api.filter(|a| !a.is_empty())?;
    let Some((owner, repo)) = repository.and_then(|r| r.split_once('/')) else {
        tracing::warn!(
            "--github-api-url is set but --github-repository is not `owner/repo`: no commit status is posted"
        );
        return None;
    };
    let token = std::env::var(GITHUB_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let Some(token) = token else {
        tracing::warn!(
            "notifications.githubStatus is true but {GITHUB_TOKEN_ENV} is empty: no commit status is posted; \
             create the Secret named by github.tokenSecret (default `github-token`) with key \
             `{GITHUB_TOKEN_SECRET_KEY}`, a token that may write commit statuses, in the workflows' namespace"
        );
        return None;
    };
    let context = match scope {
        Scope::Deploy => format!("aphex/{pipeline}/deploy"),
        Scope::PullRequest => format!("aphex/{pipeline}/validate"),
    };
    Some(Arc::new(aphex_stages::github::GitHubStatuses::new(
        api,
        owner,
        repo,
        context,
        token.trim(),
        redactor.clone(),
    )))
}

/// The adapters that deploy.
struct Deploying {
    deployer: Arc<dyn StackDeployer>,
    credentials: Option<Arc<dyn CredentialChecker>>,
    pipeline_stack: Option<Arc<dyn PipelineStackUpdater>>,
}

/// CloudFormation with the credentials of `base`.
fn cloudformation(base: &aws_config::SdkConfig, pull_request: bool, force: bool) -> Deploying {
    let options = aphex_aws::deployer::DeployOptions {
        force,
        ..Default::default()
    };
    // Asked of STS once, for both the pipeline stage and the synths.
    let home = aphex_aws::sts::HomeIdentity::new(base.clone());
    let checker = if pull_request {
        aphex_aws::sts::StsCredentialChecker::lookup_only(base.clone())
    } else {
        aphex_aws::sts::StsCredentialChecker::new(base.clone())
    }
    .with_home(home.clone());
    Deploying {
        deployer: Arc::new(
            aphex_aws::deployer::CloudFormationDeployer::new(base.clone()).with_options(options.clone()),
        ),
        credentials: Some(Arc::new(checker)),
        // A pull request deploys nothing, the pipeline's own stack included.
        pipeline_stack: (!pull_request).then(|| {
            Arc::new(
                aphex_aws::pipeline_stack::AwsPipelineStackUpdater::new(base.clone())
                    .with_options(options)
                    .with_home(home),
            ) as Arc<dyn PipelineStackUpdater>
        }),
    }
}

/// The run's notifier: a Slack-compatible webhook when
/// `APHEX_SLACK_WEBHOOK_URL` is set, else nothing. Given the config a pod
/// runs, says why nothing is sent when the config names a webhook Secret
/// but the variable is empty (the template reads the Secret optionally, so
/// that a missing Secret costs the notification, never the run record).
pub fn notifier(redactor: &Redactor, config: Option<&Config>) -> Arc<dyn Notifier> {
    match std::env::var(SLACK_WEBHOOK_ENV) {
        Ok(url) if !url.is_empty() => Arc::new(WebhookNotifier::new(url, redactor.clone())),
        _ => {
            if let Some(secret) = config.and_then(|c| {
                c.settings()
                    .notifications
                    .clone()
                    .and_then(|n| n.slack_webhook_secret)
            }) {
                tracing::warn!(
                    "notifications.slackWebhookSecret is `{secret}` but {SLACK_WEBHOOK_ENV} is empty: \
                     no notification is sent; create the Secret `{secret}` with key \
                     `{SLACK_WEBHOOK_SECRET_KEY}` in the workflow's namespace",
                );
            }
            Arc::new(NoopNotifier)
        }
    }
}

/// The Kubernetes applier: made now, connecting only when a stage applies.
async fn kubernetes() -> Arc<dyn ManifestApplier> {
    match aphex_k8s::KubeApplier::infer().await {
        Ok(a) => Arc::new(a),
        Err(e) => Arc::new(UnwiredApplier(Arc::new(e))),
    }
}

/// The Workflows of the pod's namespace (the service account's; outside a
/// pod, the kubeconfig context's): made now, connecting only when the
/// pipeline stage submits a restart.
async fn kubernetes_workflows() -> Arc<dyn WorkflowSubmitter> {
    match aphex_k8s::workflows::Workflows::infer().await {
        Ok(w) => Arc::new(w),
        Err(e) => Arc::new(UnwiredApplier(Arc::new(e))),
    }
}

/// Stands in for the Kubernetes applier and Workflow submitter when no
/// client could be made (no service account token in the pod, no
/// kubeconfig outside one): fails clearly, and only in the stage that
/// applies or submits, instead of pretending it did.
struct UnwiredApplier(Arc<kube::Error>);

#[async_trait::async_trait]
impl ManifestApplier for UnwiredApplier {
    fn describe(&self) -> String {
        "no Kubernetes API server".to_owned()
    }
    async fn current(&self, _: &str, _: &str, _: &str) -> Result<Option<serde_json::Value>, ClusterError> {
        Err(self.unwired())
    }
    async fn apply(&self, _: &[serde_json::Value]) -> Result<(), ClusterError> {
        Err(self.unwired())
    }
}

#[async_trait::async_trait]
impl WorkflowSubmitter for UnwiredApplier {
    fn describe(&self) -> String {
        "no Kubernetes API server".to_owned()
    }
    async fn find(&self, _: &[(&str, &str)]) -> Result<Vec<String>, SubmitError> {
        Err(self.unwired_submit())
    }
    async fn submit(&self, _: &serde_json::Value) -> Result<Submitted, SubmitError> {
        Err(self.unwired_submit())
    }
}

impl UnwiredApplier {
    fn unwired_submit(&self) -> SubmitError {
        SubmitError::Other {
            context: "connecting to the Kubernetes API server".to_owned(),
            source: Box::new(NoClient(self.0.clone())),
        }
    }

    fn unwired(&self) -> ClusterError {
        ClusterError::backend(
            "connecting to the Kubernetes API server",
            NoClient(self.0.clone()),
        )
    }
}

/// Why [`UnwiredApplier`] has no client: kube's error, shared by every
/// call that fails for it, and what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0}: in a pod, mount the service account token (automountServiceAccountToken); elsewhere set KUBECONFIG"
)]
struct NoClient(#[source] Arc<kube::Error>);
