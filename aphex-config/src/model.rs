//! The configuration model: the Rust types that `aphex-config.yaml` deserializes
//! into and that the JSON Schema is derived from. Pure data; defaults live here,
//! rules live in `validate`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only configuration format version this release reads.
pub const CONFIG_VERSION: &str = "1.0";
/// Default container image for build and test stages.
pub const DEFAULT_BUILDER_IMAGE: &str = "public.ecr.aws/aphex/builder:latest";
/// Default container image for every other stage.
pub const DEFAULT_DEPLOYER_IMAGE: &str = "public.ecr.aws/aphex/deployer:latest";
/// Default CPU request of a stage pod.
pub const DEFAULT_CPU: &str = "500m";
/// Default memory request and limit of a stage pod (`cdk synth` of a large
/// app needs well over 1 GiB).
pub const DEFAULT_MEMORY: &str = "2Gi";
/// Default synthesize command.
pub const DEFAULT_SYNTH: &str = "npx cdk synth";
/// Where repositories live unless `pipeline.github.url` names a GitHub Enterprise server.
pub const DEFAULT_GITHUB_URL: &str = "https://github.com";
/// github.com's REST API (a GitHub Enterprise Server's is `<url>/api/v3`).
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";

/// A lowercase DNS label (RFC 1123): what environment and pipeline names must be.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest environment name: `approve-<env>`, the longest task name derived
/// from it, must fit the 63 characters Kubernetes allows in a label.
pub const MAX_ENVIRONMENT_NAME: usize = 63 - "approve-".len();
/// Longest pipeline name: it prefixes every resource (`<name>-webhook`,
/// `aphex-<name>`, `<name>-pr-xxxxx` workflows), so it leaves room for them.
pub const MAX_PIPELINE_NAME: usize = 40;
/// An AWS account ID: exactly 12 digits.
pub const ACCOUNT_PATTERN: &str = "^[0-9]{12}$";
/// The shape of an AWS region identifier in every partition (commercial,
/// `cn-*`, `us-gov-*`, the ISO partitions, the European Sovereign Cloud).
pub const REGION_PATTERN: &str = "^(af|ap|ca|cn|eu|eusc|il|me|mx|sa|us)(-(gov|iso|isob|isoe|isof|de))?-(central|north|south|east|west|northeast|northwest|southeast|southwest)-[1-9]$";

/// The shape of a risk gate's `timeout`: a whole number of seconds, minutes
/// or hours (`90m`, `24h`), as Argo's suspend `duration` reads it.
pub const DURATION_PATTERN: &str = "^[1-9][0-9]{0,5}[smh]$";
/// The seconds of a duration of [`DURATION_PATTERN`]'s shape (`90m`).
pub fn duration_seconds(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = number.parse().ok()?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(per)
}
/// How long a run may last in the cluster (the WorkflowTemplate's
/// `activeDeadlineSeconds`), and so the longest `riskGates.timeout`.
pub const RUN_DEADLINE_SECONDS: u64 = 24 * 3600;
/// How long a risk gate waits for a person unless `riskGates.timeout` says.
pub const DEFAULT_RISK_TIMEOUT: &str = "24h";
/// The shape of a CloudFormation resource type (`AWS::S3::Bucket`).
pub const RESOURCE_TYPE_PATTERN: &str = "^[A-Za-z0-9]+::[A-Za-z0-9]+::[A-Za-z0-9]+$";

/// The resource types whose replacement or deletion loses data (the
/// stateful types of a risk gate's `replacement` check) unless an
/// environment's `riskGates.statefulTypes` lists its own. Each holds data
/// that a new physical resource does not have: tables, databases, buckets,
/// file systems, streams and queues, keys (data encrypted under a deleted
/// key is lost), user pools, caches and search domains, secrets and logs.
pub const DEFAULT_STATEFUL_TYPES: &[&str] = &[
    "AWS::DynamoDB::Table",
    "AWS::DynamoDB::GlobalTable",
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::S3::Bucket",
    "AWS::EFS::FileSystem",
    "AWS::Kinesis::Stream",
    "AWS::SQS::Queue",
    "AWS::KMS::Key",
    "AWS::Cognito::UserPool",
    "AWS::ElastiCache::CacheCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::ServerlessCache",
    "AWS::OpenSearchService::Domain",
    "AWS::Elasticsearch::Domain",
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
];

/// A whole `aphex-config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Aphex pipeline configuration")]
pub struct Config {
    /// Configuration format version; must be "1.0".
    #[schemars(extend("const" = "1.0"))]
    pub version: String,
    /// Pipeline-wide settings (name, cluster, GitHub, images, ...). All optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineSettings>,
    /// How the application is built.
    pub build: Build,
    /// Deployment environments, deployed in list order.
    #[schemars(length(min = 1))]
    pub environments: Vec<Environment>,
}

/// Pipeline-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineSettings {
    /// Pipeline name (DNS label); prefixes every resource. Default "aphex".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_LABEL_PATTERN), length(max = MAX_PIPELINE_NAME))]
    pub name: Option<String>,
    /// The shared cluster this pipeline runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// The GitHub repository that triggers the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GitHub>,
    /// Namespace of the Argo Workflows objects. Default "argo".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Namespace of the Argo Events objects. Default "argo-events".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_namespace: Option<String>,
    /// Service account the workflow pods run as. Default `aphex-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Artifact bucket settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<ArtifactSettings>,
    /// Container images for the stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
    /// Run notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,
    /// What happens when the pipeline fails to update itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_update: Option<SelfUpdate>,
    /// CPU and memory of every stage pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The Argo Workflows UI, e.g. "https://argo.example.com": notifications
    /// and commit statuses link to `<argoUrl>/workflows/<namespace>/<run>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argo_url: Option<String>,
}

/// CPU and memory of every stage pod (Kubernetes quantities, quoted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// CPU requested, e.g. "1" or "500m" (no limit: a build may use idle CPU). Default "500m".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory requested and the limit, e.g. "4Gi". Default "2Gi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// The EKS cluster and the CloudFormation exports that describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Prefix of the cluster's CloudFormation exports. Default `AphexCluster-<name>-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_prefix: Option<String>,
}

/// The GitHub repository and the Kubernetes Secrets that hold its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitHub {
    /// Repository owner (user or organization).
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// The GitHub server: "https://github.com" (default), or a GitHub Enterprise
    /// Server's URL such as "https://github.example.com". The repository is
    /// cloned from `<url>/<owner>/<repo>.git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Branch whose pushes deploy. Default "main".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Kubernetes Secret holding the GitHub API token (key "token"). Default "github-token".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// Kubernetes Secret holding the webhook secret (key "secret"). Default `<name>-webhook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Public URL of the webhook; when set, Argo Events registers the webhook on GitHub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The server's REST API. Default: "https://api.github.com" for github.com,
    /// `<url>/api/v3` for a GitHub Enterprise Server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// GitHub logins whose pushes trigger nothing (bots that commit back,
    /// e.g. "github-actions[bot]"), compared without regard to case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_senders: Vec<String>,
}

/// Artifact bucket settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArtifactSettings {
    /// Existing bucket name; default: the bucket the pipeline stack creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Days before artifacts expire. Default 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: Option<u32>,
}

/// Container images for the stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Images {
    /// Image for build and test stages. Default public.ecr.aws/aphex/builder:latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    /// Image for every other stage. Default public.ecr.aws/aphex/deployer:latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployer: Option<String>,
}

/// Run notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Notifications {
    /// Kubernetes Secret holding a Slack-compatible webhook URL (key "url").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_webhook_secret: Option<String>,
    /// Notify only when a run fails. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_on_failure: Option<bool>,
    /// Post a GitHub commit status for every run (pending, then success or
    /// failure), with the token in `github.tokenSecret`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_status: Option<bool>,
}

/// Behaviour of the self-update (pipeline) stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelfUpdate {
    /// `halt` (default) stops the run; `continue` deploys with the old topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnSelfUpdateFailure>,
}

/// What to do when the pipeline cannot update itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnSelfUpdateFailure {
    /// Stop the run (default).
    #[default]
    Halt,
    /// Continue with the topology the run started with.
    Continue,
}

/// The build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Build {
    /// Shell commands run in order; the first failure stops the build.
    #[schemars(length(min = 1))]
    pub commands: Vec<String>,
    /// Paths (relative to the repository root) packaged as the build artifact.
    /// Default ["artifacts"] (skipped with a notice when that directory is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<String>>,
}

/// One deployment environment: an account and region with its stacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Environment {
    /// Environment name: a lowercase DNS label of at most 55 characters.
    #[schemars(regex(pattern = DNS_LABEL_PATTERN), length(max = MAX_ENVIRONMENT_NAME))]
    pub name: String,
    /// AWS region, e.g. us-east-1.
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: String,
    /// AWS account ID: 12 digits, quoted.
    #[schemars(regex(pattern = ACCOUNT_PATTERN))]
    pub account: String,
    /// Role to assume for deploys; default: the CDK bootstrap deploy role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// `manual` to wait for an approval before this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// How many independent stacks may deploy at once. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<u32>,
    /// CDK context keys that must be present in cdk.json or cdk.context.json.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_context: Vec<String>,
    /// Command that synthesizes the CDK app. Default "npx cdk synth".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synth: Option<String>,
    /// Commands run before and after the deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// The CDK stacks of this environment, in deploy order unless `dependsOn` says otherwise.
    #[schemars(length(min = 1))]
    pub stacks: Vec<Stack>,
    /// Tests run after the deploy, with the stack outputs in the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<Tests>,
    /// What a change set that broadens IAM or replaces stateful resources
    /// does before it executes (docs/configuration.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_gates: Option<RiskGates>,
}

/// The risk gates of one environment: read before a stack's change set
/// executes. Each check defaults to `approve` in an environment with
/// `approval: manual`, `allow` elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RiskGates {
    /// IAM broadening: new or changed IAM policies, roles, users and groups,
    /// new or changed resource policies (bucket, key, queue, topic policies,
    /// Lambda permissions, ...), any `*` action or principal added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<GateAction>,
    /// Stateful replacement: a resource of a stateful type replaced
    /// (`Replacement` `True` or `Conditional`) or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<GateAction>,
    /// How long an `approve` gate waits in the cluster before it fails the
    /// environment: seconds, minutes or hours, e.g. "90m". Default "24h".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// The stateful resource types, replacing the default list (which
    /// docs/configuration.md gives; copy it to add to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(regex(pattern = RESOURCE_TYPE_PATTERN)))]
    pub stateful_types: Option<Vec<String>>,
}

/// What a risk gate does with a risky change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GateAction {
    /// Deploy it (the gate only logs it).
    Allow,
    /// Stop before executing its change set until a person approves.
    Approve,
    /// Fail the environment, naming the resource and why.
    Deny,
}

impl GateAction {
    /// The word the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            GateAction::Allow => "allow",
            GateAction::Approve => "approve",
            GateAction::Deny => "deny",
        }
    }
}

/// Approval gate kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Approval {
    /// A person resumes the workflow.
    Manual,
}

/// Hook commands around a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hooks {
    /// Run before synthesizing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<String>,
    /// Run after every stack deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<String>,
}

/// One CDK stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Stack {
    /// Stack name: the CDK stack's id (artifact id or display name).
    pub name: String,
    /// Source file that defines the stack (checked to exist).
    pub path: String,
    /// Stacks of this environment that must deploy first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// Test commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tests {
    /// Shell commands run in order after the deploy.
    pub commands: Vec<String>,
}

impl Config {
    /// The pipeline name ("aphex" unless set).
    pub fn pipeline_name(&self) -> &str {
        self.pipeline
            .as_ref()
            .and_then(|p| p.name.as_deref())
            .unwrap_or("aphex")
    }

    /// Pipeline settings, or the all-defaults value.
    pub fn settings(&self) -> std::borrow::Cow<'_, PipelineSettings> {
        match &self.pipeline {
            Some(p) => std::borrow::Cow::Borrowed(p),
            None => std::borrow::Cow::Owned(PipelineSettings::default()),
        }
    }

    /// The environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// Build artifact paths: the configured ones, or the default `["artifacts"]`.
    pub fn artifact_paths(&self) -> Vec<String> {
        self.build
            .artifacts
            .clone()
            .unwrap_or_else(|| vec!["artifacts".to_owned()])
    }
}

impl PipelineSettings {
    /// Argo Workflows namespace ("argo" unless set).
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("argo")
    }
    /// Argo Events namespace ("argo-events" unless set).
    pub fn events_namespace(&self) -> &str {
        self.events_namespace.as_deref().unwrap_or("argo-events")
    }
    /// Service account of the workflow pods (`aphex-<pipeline>` unless set).
    pub fn service_account(&self, pipeline_name: &str) -> String {
        self.service_account
            .clone()
            .unwrap_or_else(|| format!("aphex-{pipeline_name}"))
    }
    /// Builder image.
    pub fn builder_image(&self) -> &str {
        self.images
            .as_ref()
            .and_then(|i| i.builder.as_deref())
            .unwrap_or(DEFAULT_BUILDER_IMAGE)
    }
    /// Deployer image.
    pub fn deployer_image(&self) -> &str {
        self.images
            .as_ref()
            .and_then(|i| i.deployer.as_deref())
            .unwrap_or(DEFAULT_DEPLOYER_IMAGE)
    }
    /// Artifact retention in days (90 unless set).
    pub fn retention_days(&self) -> u32 {
        self.artifacts
            .as_ref()
            .and_then(|a| a.retention_days)
            .unwrap_or(90)
    }
    /// Behaviour when self-update fails (halt unless set).
    pub fn on_self_update_failure(&self) -> OnSelfUpdateFailure {
        self.self_update
            .as_ref()
            .and_then(|s| s.on_failure)
            .unwrap_or_default()
    }
    /// CPU request of a stage pod ([`DEFAULT_CPU`] unless set).
    pub fn cpu(&self) -> &str {
        self.resources
            .as_ref()
            .and_then(|r| r.cpu.as_deref())
            .unwrap_or(DEFAULT_CPU)
    }
    /// Memory request and limit of a stage pod ([`DEFAULT_MEMORY`] unless set).
    pub fn memory(&self) -> &str {
        self.resources
            .as_ref()
            .and_then(|r| r.memory.as_deref())
            .unwrap_or(DEFAULT_MEMORY)
    }
    /// Whether notifications are sent only for failed runs.
    pub fn notify_only_on_failure(&self) -> bool {
        self.notifications
            .as_ref()
            .and_then(|n| n.only_on_failure)
            .unwrap_or(false)
    }
    /// Whether runs post GitHub commit statuses (`notifications.githubStatus`).
    pub fn posts_github_status(&self) -> bool {
        self.notifications
            .as_ref()
            .and_then(|n| n.github_status)
            .unwrap_or(false)
    }
    /// Where run `workflow` can be watched in the Argo UI
    /// (`<argoUrl>/workflows/<namespace>/<workflow>`), when `argoUrl` is set.
    pub fn run_url(&self, workflow: &str) -> Option<String> {
        self.argo_url.as_deref().map(|base| {
            format!(
                "{}/workflows/{}/{workflow}",
                base.trim_end_matches('/'),
                self.namespace()
            )
        })
    }
}

impl Cluster {
    /// Prefix of the cluster's exports (`AphexCluster-<name>-` unless set).
    pub fn export_prefix(&self) -> String {
        self.export_prefix
            .clone()
            .unwrap_or_else(|| format!("AphexCluster-{}-", self.name))
    }
}

impl GitHub {
    /// The GitHub server, without a trailing `/` ("https://github.com" unless set).
    pub fn url(&self) -> &str {
        self.url
            .as_deref()
            .map(|u| u.trim_end_matches('/'))
            .unwrap_or(DEFAULT_GITHUB_URL)
    }
    /// Whether the repository is on a GitHub Enterprise Server rather than github.com.
    pub fn is_enterprise(&self) -> bool {
        self.url() != DEFAULT_GITHUB_URL
    }
    /// The REST API's base URL, without a trailing `/`: `apiUrl` when set,
    /// else `https://api.github.com` for github.com and `<url>/api/v3` for
    /// GitHub Enterprise Server.
    pub fn api_url(&self) -> String {
        match self.api_url.as_deref() {
            Some(api) => api.trim_end_matches('/').to_owned(),
            None if self.is_enterprise() => format!("{}/api/v3", self.url()),
            None => DEFAULT_GITHUB_API_URL.to_owned(),
        }
    }
    /// The repository's clone URL, `<url>/<owner>/<repo>.git`: what every
    /// stage checks out (never a URL taken from a webhook payload).
    pub fn clone_url(&self) -> String {
        format!("{}/{}/{}.git", self.url(), self.owner, self.repo)
    }
    /// `owner/repo`, as GitHub names the repository in webhook payloads
    /// (`repository.full_name`, compared without regard to case).
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
    /// Branch whose pushes deploy ("main" unless set).
    pub fn branch(&self) -> &str {
        self.branch.as_deref().unwrap_or("main")
    }
    /// Secret with the API token ("github-token" unless set).
    pub fn token_secret(&self) -> &str {
        self.token_secret.as_deref().unwrap_or("github-token")
    }
    /// Secret with the webhook secret (`<pipeline>-webhook` unless set).
    pub fn webhook_secret(&self, pipeline_name: &str) -> String {
        self.webhook_secret
            .clone()
            .unwrap_or_else(|| format!("{pipeline_name}-webhook"))
    }
}

impl Environment {
    /// Stacks deployed at once (1 unless set).
    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(1).max(1)
    }
    /// Synthesize command ("npx cdk synth" unless set).
    pub fn synth(&self) -> &str {
        self.synth.as_deref().unwrap_or(DEFAULT_SYNTH)
    }
    /// Whether a person must approve before this environment deploys.
    pub fn needs_approval(&self) -> bool {
        self.approval == Some(Approval::Manual)
    }
    /// Test commands (empty when none are configured).
    pub fn test_commands(&self) -> &[String] {
        self.tests.as_ref().map(|t| t.commands.as_slice()).unwrap_or(&[])
    }
    /// Pre-deploy hook commands.
    pub fn pre_hooks(&self) -> &[String] {
        self.hooks.as_ref().map(|h| h.pre.as_slice()).unwrap_or(&[])
    }
    /// Post-deploy hook commands.
    pub fn post_hooks(&self) -> &[String] {
        self.hooks.as_ref().map(|h| h.post.as_slice()).unwrap_or(&[])
    }
    /// The default of a risk check: `approve` where a person approves the
    /// environment anyway, `allow` elsewhere.
    fn default_gate(&self) -> GateAction {
        if self.needs_approval() {
            GateAction::Approve
        } else {
            GateAction::Allow
        }
    }
    /// What IAM broadening does (`riskGates.iam`).
    pub fn iam_gate(&self) -> GateAction {
        self.risk_gates
            .as_ref()
            .and_then(|g| g.iam)
            .unwrap_or_else(|| self.default_gate())
    }
    /// What a stateful replacement does (`riskGates.replacement`).
    pub fn replacement_gate(&self) -> GateAction {
        self.risk_gates
            .as_ref()
            .and_then(|g| g.replacement)
            .unwrap_or_else(|| self.default_gate())
    }
    /// Whether any risk check is other than `allow`: only then does a deploy
    /// read its change sets' changes.
    pub fn has_risk_gates(&self) -> bool {
        self.iam_gate() != GateAction::Allow || self.replacement_gate() != GateAction::Allow
    }
    /// Whether a risk check may stop for a person (`approve`): only then
    /// does the cluster's topology hold a risk gate for the environment.
    pub fn has_approve_gate(&self) -> bool {
        self.iam_gate() == GateAction::Approve || self.replacement_gate() == GateAction::Approve
    }
    /// How long an `approve` gate waits ("24h" unless set).
    pub fn risk_timeout(&self) -> &str {
        self.risk_gates
            .as_ref()
            .and_then(|g| g.timeout.as_deref())
            .unwrap_or(DEFAULT_RISK_TIMEOUT)
    }
    /// [`Environment::risk_timeout`] in seconds.
    pub fn risk_timeout_seconds(&self) -> u64 {
        duration_seconds(self.risk_timeout()).unwrap_or(24 * 3600)
    }
    /// The stateful resource types ([`DEFAULT_STATEFUL_TYPES`] unless set).
    pub fn stateful_types(&self) -> Vec<&str> {
        match self.risk_gates.as_ref().and_then(|g| g.stateful_types.as_ref()) {
            Some(types) => types.iter().map(String::as_str).collect(),
            None => DEFAULT_STATEFUL_TYPES.to_vec(),
        }
    }
    /// The stack called `name`.
    pub fn stack(&self, name: &str) -> Option<&Stack> {
        self.stacks.iter().find(|s| s.name == name)
    }
}
