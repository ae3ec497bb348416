//! `aphex-aws` owns the AWS adapters for the stage ports: the S3 artifact
//! store and run recorder, the CloudFormation stack deployer (from a cloud
//! assembly), STS credential checks and role assumption, CloudWatch metrics,
//! cluster discovery through CloudFormation exports, and deploying the
//! pipeline's own stack.
//!
//! Architecture invariant: knows nothing of Argo or Kubernetes.
//!
//! # Example
//!
//! Embedding the adapters: one SDK configuration from the default chain
//! (environment, profile, `AWS_ENDPOINT_URL`) with Aphex's retries and
//! timeouts, and the ports a run needs built on it. Nothing is called until
//! a stage uses them.
//!
//! ```
//! use std::sync::Arc;
//!
//! use aphex_aws::cloudwatch::CloudWatchMetrics;
//! use aphex_aws::deployer::CloudFormationDeployer;
//! use aphex_aws::s3::{S3ArtifactStore, S3RunRecorder};
//! use aphex_aws::sts::StsCredentialChecker;
//! use aphex_stages::ports::{ArtifactStore, CredentialChecker, MetricsSink, RunRecorder, StackDeployer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let aws = aphex_aws::client::load_for_region("us-east-1").await;
//! let artifacts: Arc<dyn ArtifactStore> = Arc::new(S3ArtifactStore::new(&aws, "my-pipeline-artifacts"));
//! let runs: Arc<dyn RunRecorder> = Arc::new(S3RunRecorder::new(&aws, "my-pipeline-artifacts"));
//! let deployer: Arc<dyn StackDeployer> = Arc::new(CloudFormationDeployer::new(aws.clone()));
//! let credentials: Arc<dyn CredentialChecker> = Arc::new(StsCredentialChecker::new(aws.clone()));
//! let metrics: Arc<dyn MetricsSink> = Arc::new(CloudWatchMetrics::new(&aws));
//! assert_eq!(artifacts.location(), "s3://my-pipeline-artifacts");
//! # let _ = (runs, deployer, credentials, metrics);
//! # }
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod cloudwatch;
pub mod deployer;
pub mod destroy;
pub mod discovery;
pub mod pipeline_stack;
pub mod s3;
pub mod sts;
