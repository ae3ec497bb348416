//! The ports: the narrow traits every stage is written against. Local
//! adapters live in this crate (`local`); AWS ones in `aphex-aws`, kube ones
//! in `aphex-k8s`. Keep each trait small: a stage needs little from the world.

use std::path::Path;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::assembly::{CloudAssembly, StackArtifact};
use crate::record::{RunRecord, StageRecord};

/// The error of an adapter that lives outside this crate (S3's and
/// CloudWatch's `aphex_aws::client::AwsError`, aphex-k8s's `KubeError`),
/// boxed because a port cannot name its adapters' types (this crate knows
/// no AWS or Kubernetes crate). It is still a typed error: downcast it to
/// reach the SDK's or client's error underneath.
pub type AdapterError = Box<dyn std::error::Error + Send + Sync>;

/// A run id or stage name that would escape its folder or key prefix
/// ([`crate::record::check_segment`]): refused before anything is read or
/// written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recording {kind} `{name}`: a {kind} must be one path segment (no `/`, `\\`, `.` or `..`)")]
pub struct SegmentError {
    /// What the name is (`run id`, `stage name`).
    pub kind: String,
    /// The name refused.
    pub name: String,
}

/// Why an [`ArtifactStore`] could not store or fetch a run's artifacts.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No artifacts are stored for that run.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (e.g. `s3://bucket/key`).
        what: String,
    },
    /// The archive read does not match its metadata.
    #[error("{what} is corrupt: expected SHA-256 {expected}, got {actual}")]
    Corrupt {
        /// The archive.
        what: String,
        /// Checksum recorded at upload.
        expected: String,
        /// Checksum of what was read.
        actual: String,
    },
    /// The run id would not make a folder or key of its own.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing, naming the file.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The stored metadata is not [`ArtifactMetadata`] (or could not be
    /// written as JSON).
    #[error("{context}: {source}")]
    Metadata {
        /// What the store was doing, naming the object.
        context: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The fetched archive could not be hashed.
    #[error("{context}: {source}")]
    Archive {
        /// What the store was doing, naming the file.
        context: String,
        /// The error.
        #[source]
        source: crate::artifact::ArtifactError,
    },
    /// The store's service failed (S3), with its own error.
    #[error("{context}: {source}")]
    Backend {
        /// What the store was doing, naming the object.
        context: String,
        /// The adapter's error.
        #[source]
        source: AdapterError,
    },
}

impl StoreError {
    /// A local IO failure while doing `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Io { context, source }
    }

    /// The store's service failing while doing `context`.
    pub fn backend(context: impl Into<String>, source: impl Into<AdapterError>) -> StoreError {
        StoreError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Why a [`RunRecorder`] could not write, read or list run records or
/// stage logs. Apart from [`ArtifactStore`]'s: a record has no checksum,
/// and its failures are read by other code (a record that is not JSON is
/// left out of a listing, a log piece not found was dropped by the cap).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The object asked for does not exist (a log piece).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (e.g. `s3://bucket/key`).
        what: String,
    },
    /// The run id or stage name would not make a file or key of its own.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A local file or folder could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What the recorder was doing, naming the file.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A stored record is not a [`RunRecord`] (not JSON, or written by a
    /// newer Aphex), or one could not be written as JSON.
    #[error("{context}: {source}")]
    Json {
        /// What the recorder was doing, naming the file or object.
        context: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The store's service failed (S3), with its own error.
    #[error("{context}: {source}")]
    Backend {
        /// What the recorder was doing, naming the object.
        context: String,
        /// The adapter's error.
        #[source]
        source: AdapterError,
    },
}

impl RecordError {
    /// A local IO failure while doing `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RecordError {
        let context = context.into();
        move |source| RecordError::Io { context, source }
    }

    /// The store's service failing while doing `context`.
    pub fn backend(context: impl Into<String>, source: impl Into<AdapterError>) -> RecordError {
        RecordError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Why a [`ManifestApplier`] could not read or apply objects.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The adapter turned the request down before its cluster was asked
    /// (a manifest without a kind, a kind the cluster does not serve):
    /// there is no error underneath.
    #[error("{context}: {why}")]
    Refused {
        /// What the adapter was asked to do.
        context: String,
        /// Why not, and what to do.
        why: String,
    },
    /// A manifest cannot be written to the directory cluster.
    #[error("{context}: {source}")]
    Manifest {
        /// What the adapter was doing.
        context: String,
        /// What is wrong with the manifest.
        #[source]
        source: crate::local::ManifestError,
    },
    /// A local file could not be read or written (the directory cluster).
    #[error("{context}: {source}")]
    Io {
        /// What the adapter was doing, naming the file.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An object could not be read as JSON.
    #[error("{context}: {source}")]
    Json {
        /// What the adapter was doing, naming the object.
        context: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The cluster failed or refused (aphex-k8s's `KubeError`, with what
    /// to check), or no client could be made for it.
    #[error("{context}: {source}")]
    Backend {
        /// What the adapter was doing, naming the object.
        context: String,
        /// The adapter's error.
        #[source]
        source: AdapterError,
    },
}

impl ClusterError {
    /// A local IO failure while doing `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
        let context = context.into();
        move |source| ClusterError::Io { context, source }
    }

    /// The cluster failing while doing `context`.
    pub fn backend(context: impl Into<String>, source: impl Into<AdapterError>) -> ClusterError {
        ClusterError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Why a [`MetricsSink`] could not emit a batch.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A data point lacks the dimension that names where it goes.
    #[error("sending metric {metric} to {sink}: it has no `{dimension}` dimension to name its namespace")]
    MissingDimension {
        /// The metric's name.
        metric: String,
        /// The sink (`CloudWatch`).
        sink: String,
        /// The dimension it needs (`pipeline`).
        dimension: String,
    },
    /// The metrics file could not be written.
    #[error("{context}: {source}")]
    Io {
        /// What the sink was doing, naming the file.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics service failed (CloudWatch), with its own error.
    #[error("{context}: {source}")]
    Backend {
        /// What the sink was doing.
        context: String,
        /// The adapter's error.
        #[source]
        source: AdapterError,
    },
}

impl MetricsError {
    /// A local IO failure while doing `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> MetricsError {
        let context = context.into();
        move |source| MetricsError::Io { context, source }
    }
}

/// Why a [`Notifier`] could not send. Neither variant holds the webhook's
/// URL (Slack's carry its token).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The request could not be made (connection, timeout).
    #[error("posting the run notification to the webhook: {0}")]
    Send(#[source] reqwest::Error),
    /// The webhook answered with an error status.
    #[error("posting the run notification to the webhook: webhook answered {status}: {body}")]
    Answered {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The answer's body, trimmed and redacted.
        body: String,
    },
}

/// Why a [`CommitStatuses`] adapter could not post a status. Never holds
/// the token.
#[derive(Debug, thiserror::Error)]
pub enum CommitStatusError {
    /// The request could not be made (connection, timeout). Its text names
    /// the URL, which holds no credential (the token goes in a header);
    /// the stages redact every warning they show anyway.
    #[error("{context}: {source}")]
    Send {
        /// What was being posted (`posting the pending commit status on <sha>`).
        context: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The forge answered with an error status.
    #[error("{context}: GitHub answered {status}{said}: {hint}")]
    Answered {
        /// What was being posted.
        context: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// GitHub's own `message`, redacted, as ` (message)`, or empty.
        said: String,
        /// What to do about it.
        hint: String,
    },
}

/// Metadata stored with a build artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactMetadata {
    /// Pipeline name.
    pub pipeline: String,
    /// The run whose build stage made it (its key).
    pub run_id: String,
    /// Full commit SHA.
    pub commit_sha: String,
    /// RFC 3339 build timestamp.
    pub timestamp: String,
    /// Archive size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// Paths packaged (relative to the app's folder): restoring writes
    /// nothing outside them.
    pub paths: Vec<String>,
    /// Bytes of file content in the archive: restoring writes no more.
    pub unpacked_bytes: u64,
    /// Entries in the archive: restoring makes no more.
    pub entries: u64,
}

/// Where build artifacts are kept: one archive per **run**, under
/// `<pipeline>/artifacts/<run-id>/` (or the store's equivalent). A run's
/// deploy and test stages restore what its own build stage stored; another
/// run building the same commit (a retry, a pull-request check) writes
/// elsewhere and can never change it.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Human-readable location, e.g. `s3://bucket` or `.aphex/artifacts`.
    fn location(&self) -> String;
    /// Stores the archive file with its metadata under the metadata's
    /// pipeline and run (tagging commit SHA, run and timestamp), the
    /// metadata last: an archive without it is absent.
    async fn put(&self, archive: &Path, metadata: &ArtifactMetadata) -> Result<(), StoreError>;
    /// Fetches the archive run `run_id` of `pipeline` stored into `dest`,
    /// verifying its size and SHA-256 against the stored metadata
    /// ([`StoreError::Corrupt`] on mismatch).
    async fn get(&self, pipeline: &str, run_id: &str, dest: &Path) -> Result<ArtifactMetadata, StoreError>;
}

/// Where run records are kept: a run object per run, and a stage object per
/// stage of it (see [`crate::record`]), so that stages running at the same
/// time in different pods never write the same object.
#[async_trait]
pub trait RunRecorder: Send + Sync {
    /// Writes (or replaces) the run object of one run, atomically (`finalize`
    /// and the local executor: the consolidated record).
    async fn record(&self, run: &RunRecord) -> Result<(), RecordError>;
    /// Writes (or replaces, on a retry) the stage object of `stage` in the
    /// run `header` names, atomically, without reading anything first. Of
    /// `header` only id, pipeline, commit, branch and start time are kept
    /// ([`RunRecord::stage_object`]).
    async fn record_stage(&self, header: &RunRecord, stage: &StageRecord) -> Result<(), RecordError>;
    /// The record of run `id`, if any: its run object with its stage objects
    /// merged in ([`crate::record::merge_stage_objects`]); a run with stage
    /// objects only is still running.
    async fn load(&self, pipeline: &str, id: &str) -> Result<Option<RunRecord>, RecordError>;
    /// The newest `limit` runs of `pipeline` that could be read, newest
    /// first, each loaded as [`Self::load`] does (stage objects are never
    /// listed as runs of their own), and every run whose record could not be read (not JSON, or
    /// written by a newer Aphex in a format this one does not know), which
    /// is left out: one bad record never hides the others. An error is the
    /// listing itself failing.
    async fn scan(&self, pipeline: &str, limit: usize) -> Result<RunListing, RecordError>;
    /// The runs of [`RunRecorder::scan`]; each unreadable one is logged as a
    /// warning and left out.
    async fn list(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>, RecordError> {
        let listing = self.scan(pipeline, limit).await?;
        for bad in &listing.unreadable {
            tracing::warn!("{bad}");
        }
        Ok(listing.runs)
    }
    /// Writes (or replaces) piece `index` of `stage`'s log in run `id`
    /// (see [`crate::log_upload`]): the log outlives the pod that wrote it.
    async fn put_log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
        text: &[u8],
    ) -> Result<(), RecordError>;
    /// Removes piece `index` of `stage`'s log (a log over its cap drops its
    /// oldest pieces); one that is not there is no error.
    async fn remove_log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
    ) -> Result<(), RecordError>;
    /// Every stored piece of run `id`'s stage logs, by stage, then index.
    async fn log_chunks(&self, pipeline: &str, id: &str) -> Result<Vec<LogChunk>, RecordError>;
    /// The text of piece `index` of `stage`'s log.
    async fn log_chunk(
        &self,
        pipeline: &str,
        id: &str,
        stage: &str,
        index: u64,
    ) -> Result<Vec<u8>, RecordError>;
}

/// One stored piece of a stage's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The stage (`build`, `deploy-dev`).
    pub stage: String,
    /// Its place in the log, from 0; a log that lost its oldest pieces to
    /// the cap starts later.
    pub index: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What [`RunRecorder::scan`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunListing {
    /// The runs read, newest first.
    pub runs: Vec<RunRecord>,
    /// The runs whose record could not be read.
    pub unreadable: Vec<UnreadableRun>,
}

impl RunListing {
    /// The listing of what a recorder read for each run id: the newest
    /// `limit` runs, and every run whose record could not be read (one
    /// record this version cannot read never hides the others).
    pub fn collect(
        loaded: impl IntoIterator<Item = (String, Result<Option<RunRecord>, RecordError>)>,
        limit: usize,
    ) -> RunListing {
        let mut listing = RunListing::default();
        for (id, run) in loaded {
            match run {
                Ok(run) => listing.runs.extend(run),
                Err(e) => listing.unreadable.push(UnreadableRun {
                    id,
                    error: e.to_string(),
                }),
            }
        }
        crate::record::sort_newest_first(&mut listing.runs);
        listing.runs.truncate(limit);
        listing
    }
}

/// A run left out of a listing because its record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "skipping run {id}: {error} (a record not JSON, or written by a newer Aphex; `aphex history` of that version reads it)"
)]
pub struct UnreadableRun {
    /// The run's id.
    pub id: String,
    /// Why, naming the file or key that could not be read.
    pub error: String,
}

/// One CloudFormation stack event, as progress or as a root cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackEvent {
    /// CloudFormation stack name.
    pub stack: String,
    /// Logical resource id.
    pub logical_id: String,
    /// Resource type, e.g. `AWS::SSM::Parameter`.
    pub resource_type: String,
    /// Status, e.g. `CREATE_FAILED`.
    pub status: String,
    /// Reason, when given.
    pub reason: Option<String>,
    /// RFC 3339 timestamp.
    pub timestamp: String,
}

/// One stack output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackOutput {
    /// Output key.
    pub key: String,
    /// Output value.
    pub value: String,
    /// Export name, when exported.
    pub export_name: Option<String>,
}

/// What deploying one stack did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackOutcome {
    /// CloudFormation stack name.
    pub stack_name: String,
    /// False when the stack was already up to date (an empty change set).
    pub changed: bool,
    /// Outputs after the deploy.
    pub outputs: Vec<StackOutput>,
}

/// What the deployer needs to deploy one stack.
#[derive(Debug, Clone, Copy)]
pub struct DeployRequest<'a> {
    /// Pipeline name (for tags and metrics).
    pub pipeline: &'a str,
    /// The environment being deployed.
    pub environment: &'a aphex_config::Environment,
    /// The whole assembly (asset paths are inside it).
    pub assembly: &'a CloudAssembly,
    /// The stack artifact to deploy.
    pub stack: &'a StackArtifact,
}

/// A failed stack deploy: the stack and the root-cause events.
#[derive(Debug, thiserror::Error)]
#[error("stack {stack} failed: {message}")]
pub struct DeployError {
    /// CloudFormation stack name.
    pub stack: String,
    /// What went wrong, with the root-cause reasons.
    pub message: String,
    /// The first `*_FAILED` resource events (not the cancellation noise).
    pub root_causes: Vec<StackEvent>,
}

/// What the stage says about a change set that is ready, before it executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    /// Execute it.
    Execute,
    /// Do not: a risk gate stopped it. The deployer deletes the change set
    /// and fails the stack with this reason.
    Stop(String),
}

/// Receives progress while a stack deploys.
pub trait DeployProgress: Send + Sync {
    /// A new stack event.
    fn event(&self, event: &StackEvent);
    /// The deployer is starting `step` on CloudFormation stack `stack`
    /// (`executing its CREATE change set`, ...): what a deploy interrupted
    /// now records as in flight.
    fn step(&self, stack: &str, step: &str) {
        let _ = (stack, step);
    }
    /// Whether the deployer must read each ready change set's changes and
    /// ask [`DeployProgress::review`] before executing it (the environment
    /// has a risk gate). Reading costs a `DescribeChangeSet` or more per
    /// stack, so the default does not.
    fn reviews_changes(&self) -> bool {
        false
    }
    /// CloudFormation stack `stack`'s change set is ready and would make
    /// `changes`: execute it, or stop.
    fn review(&self, stack: &str, changes: &[crate::risk::ResourceChange]) -> Review {
        let _ = (stack, changes);
        Review::Execute
    }
}

/// Deploys one stack of a cloud assembly (publishing its assets first).
#[async_trait]
pub trait StackDeployer: Send + Sync {
    /// Which deployer this is, for the output (e.g. `CloudFormation (us-east-1)`).
    fn describe(&self) -> String;
    /// Deploys `request.stack`; an unchanged stack is `Ok` with `changed: false`.
    async fn deploy(
        &self,
        request: DeployRequest<'_>,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError>;
}

/// Deploys the pipeline's own AWS stack (artifact bucket, workflow
/// execution role) for the pipeline stage.
#[async_trait]
pub trait PipelineStackUpdater: Send + Sync {
    /// Where it deploys, for the output (e.g. `CloudFormation (us-east-1)`).
    fn describe(&self) -> String;
    /// Creates or updates the pipeline stack rendered from `config`; an
    /// unchanged stack (empty change set) is `Ok` with `changed: false`.
    async fn update(
        &self,
        config: &aphex_config::Config,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError>;
}

/// The identity an environment's credentials resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Account the caller is in.
    pub account: String,
    /// Caller ARN (or assumed role ARN).
    pub arn: String,
}

/// Temporary credentials acting in an environment's account, for its synth.
#[derive(Clone, PartialEq, Eq)]
pub struct SynthCredentials {
    /// The role they belong to (for the log).
    pub role_arn: String,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    pub vars: Vec<(String, String)>,
}

impl std::fmt::Debug for SynthCredentials {
    // Never print the secrets, not even in a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.vars.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SynthCredentials")
            .field("role_arn", &self.role_arn)
            .field("vars", &names)
            .finish()
    }
}

/// Why an environment's credentials could not be checked, or lent to its
/// synth. No variant ever holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The credentials reach another account than the environment's.
    #[error(
        "environment `{environment}`: expected account {expected}, but role {role} resolves to account {actual} ({arn}); fix the environment's `account` or `roleArn`"
    )]
    WrongAccount {
        /// The environment.
        environment: String,
        /// Its configured account.
        expected: String,
        /// The role used.
        role: String,
        /// The account it resolved to.
        actual: String,
        /// The caller ARN it resolved to.
        arn: String,
    },
    /// The account could not be reached: a role could not be assumed, or
    /// the caller's identity could not be read. The adapter's error names
    /// environment, role and AWS error code, and what to do.
    #[error("{0}")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Checks that an environment's credentials reach its account, and lends
/// them to its synth.
#[async_trait]
pub trait CredentialChecker: Send + Sync {
    /// The identity used for `env`, after assuming its role; an `Err` names
    /// environment, role and AWS error code (never a credential).
    async fn check(&self, env: &aphex_config::Environment) -> Result<Identity, CredentialError>;

    /// Credentials in `env`'s account for its synth command, or `None` when
    /// the runner's own credentials are already in that account. The `cdk`
    /// CLI sets `CDK_DEFAULT_ACCOUNT` to the account of the credentials it
    /// finds, whatever the caller set, so a cross-account `cdk synth` with
    /// the runner's credentials would name the pipeline's account. An `Err`
    /// says why none could be had (never a credential); the default lends none.
    async fn synth_credentials(
        &self,
        _env: &aphex_config::Environment,
    ) -> Result<Option<SynthCredentials>, CredentialError> {
        Ok(None)
    }
}

/// Applies rendered manifests to a cluster (or a directory standing in for one).
#[async_trait]
pub trait ManifestApplier: Send + Sync {
    /// Where manifests go, for the output.
    fn describe(&self) -> String;
    /// The currently applied object of `kind` named `name` in `namespace`, if any.
    async fn current(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, ClusterError>;
    /// Applies every manifest (server-side apply semantics: create or replace).
    async fn apply(&self, manifests: &[serde_json::Value]) -> Result<(), ClusterError>;
}

/// Why a Workflow could not be looked up or submitted: the
/// [`WorkflowSubmitter`]'s own error, apart from [`PortError`].
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The submitter refused before the cluster was asked, or the cluster
    /// does not serve Workflows: no error underneath.
    #[error("{context}: {why}")]
    Refused {
        /// What the submitter was asked to do.
        context: String,
        /// Why not, and what to do.
        why: String,
    },
    /// The cluster (or the directory standing in for it) failed.
    #[error("{context}: {source}")]
    Other {
        /// What the submitter was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What [`WorkflowSubmitter::submit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The Workflow was created under this name.
    Created(String),
    /// A Workflow of this name already exists: nothing was created (a
    /// restart submitted by an earlier attempt of the same stage).
    AlreadyExists(String),
}

/// Submits Workflows of the pipeline's WorkflowTemplate (the pipeline
/// stage's restart on a new topology), in the namespace the run is in.
#[async_trait]
pub trait WorkflowSubmitter: Send + Sync {
    /// Where Workflows go, for the output.
    fn describe(&self) -> String;
    /// The names of the Workflows whose labels include every one of
    /// `labels` and that have not finished (no `status.phase` of
    /// `Succeeded`, `Failed` or `Error`), in no particular order.
    async fn find(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, SubmitError>;
    /// Creates `workflow`, which names itself (`metadata.name`): a second
    /// submission of the same name creates nothing
    /// ([`Submitted::AlreadyExists`]).
    async fn submit(&self, workflow: &serde_json::Value) -> Result<Submitted, SubmitError>;
}

/// A metric data point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Metric name, e.g. `StageDuration`.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: MetricUnit,
    /// Dimensions (pipeline, environment, stack, stage), in order.
    pub dimensions: Vec<(String, String)>,
}

/// Units of [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricUnit {
    /// A count.
    Count,
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
}

/// Where metrics go.
#[async_trait]
pub trait MetricsSink: Send + Sync {
    /// Emits a batch of data points.
    async fn emit(&self, metrics: &[Metric]) -> Result<(), MetricsError>;
}

/// Where run notifications go.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends a notification about a finished run (already redacted).
    async fn notify(&self, run: &RunRecord) -> Result<(), NotifyError>;
}

/// A commit status's state, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    /// The run is going.
    Pending,
    /// The run succeeded (or had nothing to do).
    Success,
    /// The run failed.
    Failure,
    /// The run could not finish (interrupted).
    Error,
}

/// A status shown next to a commit on its forge (a GitHub commit status);
/// the adapter adds its context (which pipeline and kind of run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// The full commit SHA.
    pub sha: String,
    /// Its state.
    pub state: CommitState,
    /// One line, at most `commit_status::MAX_DESCRIPTION` characters, redacted.
    pub description: String,
    /// Where to see the run (the Argo UI), when known.
    pub target_url: Option<String>,
}

/// Where commit statuses go (GitHub's REST API).
#[async_trait]
pub trait CommitStatuses: Send + Sync {
    /// Posts one status; an `Err` names what failed, never a credential.
    async fn post(&self, status: &CommitStatus) -> Result<(), CommitStatusError>;
}
