//! Deleting stacks for `aphex destroy`: the pipeline stack with the
//! caller's credentials in their region, an environment's stacks through
//! the role the pipeline deploys them with ([`crate::sts::environment_role`])
//! in the environment's region. Each delete waits until the stack is gone,
//! streaming its events; what a `Retain` policy keeps (the artifact bucket)
//! stays.

use aphex_config::Environment;
use aphex_stages::ports::DeployProgress;
use aws_config::SdkConfig;

pub use crate::deployer::StackDeleted;
use crate::deployer::{DeployOptions, StepError, delete_stack};

/// Deletes stack `name` with `config`'s credentials and region.
pub async fn delete_pipeline_stack(
    config: &SdkConfig,
    name: &str,
    progress: &dyn DeployProgress,
) -> Result<StackDeleted, StepError> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    delete_stack(&cfn, name, progress, &DeployOptions::default()).await
}

/// The configuration that acts in `env`: its region, as the role the
/// pipeline deploys it with, assumed from `base`'s credentials.
pub async fn environment_session(base: &SdkConfig, env: &Environment) -> Result<SdkConfig, StepError> {
    let regional = base
        .to_builder()
        .region(aws_config::Region::new(env.region.clone()))
        .build();
    let role = crate::sts::environment_role(env);
    crate::sts::assume_role(&regional, &role, None, "aphex-destroy")
        .await
        .map_err(|e| StepError::AssumeRole { source: Box::new(e) })
}

/// Deletes `env`'s stack `name` with `session` ([`environment_session`]).
pub async fn delete_environment_stack(
    session: &SdkConfig,
    name: &str,
    progress: &dyn DeployProgress,
) -> Result<StackDeleted, StepError> {
    let cfn = aws_sdk_cloudformation::Client::new(session);
    delete_stack(&cfn, name, progress, &DeployOptions::default()).await
}
