//! Why a step of deploying or deleting one stack failed. The messages are
//! the ones people read in a failed deploy (the deployer turns the error
//! into the port's [`aphex_stages::ports::DeployError`] for the stack) and
//! in `aphex destroy`; the AWS or IO error underneath is the source.

use std::path::PathBuf;

use crate::client::CallError;

/// What to check when a role cannot be assumed.
const ASSUME_HINT: &str = "check that the role exists (is the account CDK-bootstrapped?) and that the current credentials may assume it";

/// What a failure between creating and executing the change set leaves.
pub(crate) const LEFT_CHANGE_SET: &str =
    "change set aphex-deploy is left unexecuted on the stack (the next deploy replaces it)";

/// Why a step of deploying or deleting one stack failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A risk gate stopped the change set before it executed.
    #[error("{why}; its change set was deleted and nothing was executed")]
    Gated {
        /// What the gate said: the risky changes, and what to do.
        why: String,
    },
    /// `DescribeChangeSet` kept answering with another page.
    #[error(
        "the change set's changes did not end after {pages} pages of DescribeChangeSet; the change set is left unexecuted on the stack (the next deploy replaces it)"
    )]
    TooManyPages {
        /// How many pages were read.
        pages: usize,
    },
    /// An AWS call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// An AWS call failed while doing something.
    #[error("{doing}: {source}")]
    CallWhile {
        /// What the call was for (`reading the events of stack App`).
        doing: String,
        /// The call.
        #[source]
        source: CallError,
    },
    /// A role could not be assumed (the STS error names role and code).
    #[error("{source}")]
    AssumeRole {
        /// The STS error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A role could not be assumed for a deploy: as [`StepError::AssumeRole`], with what to check.
    #[error("{source}; {ASSUME_HINT}")]
    AssumeDeployRole {
        /// The STS error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The stack names a docker image asset, which this deployer does not publish.
    #[error(
        "docker image asset {id}{} cannot be published: the native deployer does not publish container images yet; publish the image with `cdk deploy` (or `cdk-assets`) first, or remove the image asset from the stack",
        .directory.as_deref().map(|d| format!(" (directory {d})")).unwrap_or_default()
    )]
    DockerImage {
        /// The asset's id.
        id: String,
        /// Its directory, when the assembly names one.
        directory: Option<String>,
    },
    /// The stack was synthesized for another account or region.
    #[error(
        "the stack was synthesized for aws://{synthesized_account}/{synthesized_region} but environment {environment} deploys to aws://{account}/{region}; let the CDK app take its account and region from CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION (Aphex sets them per environment) or fix the environment in aphex-config.yaml"
    )]
    WrongTarget {
        /// The account in the assembly.
        synthesized_account: String,
        /// The region in the assembly.
        synthesized_region: String,
        /// The environment deployed.
        environment: String,
        /// Its account.
        account: String,
        /// Its region.
        region: String,
    },
    /// The stack's template could not be read.
    #[error("reading the template {} failed: {source}; synthesize the app again (assembly {})", .path.display(), .assembly.display())]
    ReadTemplate {
        /// The template file.
        path: PathBuf,
        /// The cloud assembly it belongs to.
        assembly: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The template is not UTF-8.
    #[error("the template {} is not UTF-8", .path.display())]
    TemplateNotUtf8 {
        /// The template file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// The assembly's template asset URL is not an S3 URL.
    #[error("the template asset URL {0} is not of the form s3://bucket/key")]
    TemplateUrl(String),
    /// A template could not be uploaded to S3.
    #[error(
        "uploading the template to s3://{bucket}/{key} failed: {source}; check that the bucket exists (is the account CDK-bootstrapped?)"
    )]
    UploadTemplate {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The call.
        #[source]
        source: CallError,
    },
    /// A file to upload could not be read.
    #[error("reading {} failed: {source}", .path.display())]
    ReadAsset {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: aws_smithy_types::byte_stream::error::Error,
    },
    /// A directory asset could not be zipped.
    #[error("zipping the directory failed: {0}")]
    Zip(#[source] std::io::Error),
    /// Publishing one asset to one destination failed.
    #[error("publishing {asset}: {source}")]
    Publish {
        /// The asset and its destination.
        asset: String,
        /// Why.
        #[source]
        source: Box<StepError>,
    },
    /// Uploading one asset failed.
    #[error(
        "publishing {asset}: {source}; check that the bucket exists (is the account CDK-bootstrapped?) and the publishing role may write to it"
    )]
    Upload {
        /// The asset and its destination.
        asset: String,
        /// Why.
        #[source]
        source: Box<StepError>,
    },
    /// Polling failed too many times in a row; the last failure.
    #[error("{last} ({count} polls in a row failed)")]
    Polls {
        /// How many in a row.
        count: u32,
        /// The last failure (part of the message, so not a source).
        last: Box<StepError>,
    },
    /// The stack stayed in progress past the wait bound.
    #[error(
        "still {status} after {seconds} s; wait for the operation to finish (or cancel it in the CloudFormation console) and deploy again"
    )]
    StillInProgress {
        /// Its status.
        status: String,
        /// The bound.
        seconds: u64,
    },
    /// The change set stayed uncomputed past the wait bound.
    #[error("the change set is still {status} after {seconds} s")]
    ChangeSetPending {
        /// Its status.
        status: String,
        /// The bound.
        seconds: u64,
    },
    /// Another client keeps making the change set this deploy makes.
    #[error(
        "another client keeps creating change set aphex-deploy on the stack: is another deploy of it running? Let it end and deploy again"
    )]
    ChangeSetContested,
    /// Executing the change set failed and it did not begin.
    #[error("executing the change set failed: {source}; {LEFT_CHANGE_SET}")]
    Execute {
        /// The call.
        #[source]
        source: CallError,
    },
    /// Executing the change set failed and whether it began is unknown.
    #[error(
        "executing the change set failed: {source}; whether it began is unknown ({unknown}): the next deploy waits for any operation in progress and replaces the change set"
    )]
    ExecuteUnknown {
        /// The call.
        #[source]
        source: CallError,
        /// Why it is unknown.
        unknown: Box<StepError>,
    },
    /// A stack a failed first create left in ROLLBACK_COMPLETE would not delete.
    #[error(
        "the stack was in ROLLBACK_COMPLETE and deleting it (to create it again) ended in {status}: {reason}; delete it by hand and deploy again"
    )]
    RollbackNotDeleted {
        /// Where the last delete ended.
        status: String,
        /// CloudFormation's reason.
        reason: String,
    },
    /// Deleting a stack ended in another state than gone.
    #[error("deleting stack {stack} ended in {status}: {reason}")]
    DeleteEnded {
        /// The stack.
        stack: String,
        /// Where the delete ended.
        status: String,
        /// CloudFormation's reason.
        reason: String,
    },
}

impl StepError {
    /// `source`, a failed call made while `doing` something.
    pub(crate) fn call_while(doing: impl Into<String>, source: CallError) -> Self {
        StepError::CallWhile {
            doing: doing.into(),
            source,
        }
    }
}
