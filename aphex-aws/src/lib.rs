//! `aphex-aws` owns the AWS adapters for the stage ports: the S3 artifact
//! store and run recorder, the CloudFormation stack deployer (from a cloud
//! assembly), STS credential checks and role assumption, CloudWatch metrics,
//! cluster discovery through CloudFormation exports, and deploying the
//! pipeline's own stack.
//!
//! Architecture invariant: knows nothing of Argo or Kubernetes.

pub mod client;
pub mod cloudwatch;
pub mod deployer;
pub mod destroy;
pub mod discovery;
pub mod pipeline_stack;
pub mod s3;
pub mod sts;
