//! The CloudFormation stack deployer: implements [`StackDeployer`] for one
//! stack of a cloud assembly. It resolves the stack's roles for the target
//! environment, assumes the deploy role (or the environment's `roleArn`),
//! publishes file assets through their publishing roles, places the template
//! (inline, or in S3 when the assembly names a template asset or it is over
//! 51,200 bytes), and deploys through a change set, streaming events.
//!
//! Docker image assets are refused with a clear error: this deployer does
//! not build or push images.

mod assets;
mod changeset;
mod error;
mod events;
mod review;
mod session;
mod unchanged;
mod wait;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aphex_stages::assembly::{CloudAssembly, StackArtifact, partition_of};
use aphex_stages::ports::{DeployError, DeployProgress, DeployRequest, StackDeployer, StackOutcome};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use sha2::{Digest, Sha256};

pub use assets::deterministic_zip;
pub(crate) use assets::{S3Object, upload_template};
pub use changeset::StackDeleted;
pub(crate) use changeset::{StackInput, TemplateSource, delete as delete_stack, deploy as run_change_set};
pub use error::StepError;
use session::Sessions;

/// The largest template CloudFormation accepts inline (`TemplateBody`).
pub const MAX_TEMPLATE_BODY_BYTES: usize = 51_200;

/// The CDK bootstrap qualifier whose assets bucket receives large templates
/// that the assembly did not publish itself.
const DEFAULT_QUALIFIER: &str = "hnb659fds";

/// How the deployer polls and how long it waits.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// First pause between polls (and after each new event).
    pub poll_initial: Duration,
    /// Longest pause between polls.
    pub poll_max: Duration,
    /// Longest wait for one operation: a change set being computed, a stack
    /// operation already in flight, the deploy itself.
    pub wait_timeout: Duration,
    /// Make a change set even for a stack whose template, parameters and
    /// tags equal the deployed ones (which is otherwise skipped).
    pub force: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            // Quick enough that a short operation is not padded by the poll,
            // slow enough (with the backoff) to stay clear of API throttling.
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(60 * 60),
            force: false,
        }
    }
}

/// Deploys cloud-assembly stacks with CloudFormation change sets.
#[derive(Debug, Clone)]
pub struct CloudFormationDeployer {
    base: SdkConfig,
    options: DeployOptions,
    /// Roles assumed, shared by every stack this deployer deploys.
    sessions: Arc<Sessions>,
}

impl CloudFormationDeployer {
    /// A deployer acting from `base` (credentials, endpoint), assuming roles as needed.
    pub fn new(base: SdkConfig) -> Self {
        Self {
            sessions: Arc::new(Sessions::new(base.clone())),
            base,
            options: DeployOptions::default(),
        }
    }

    /// A deployer from `aws-config`'s default chain (`AWS_ENDPOINT_URL` included).
    pub async fn from_env() -> Self {
        Self::new(crate::client::load().await)
    }

    /// Sets the polling and waiting options.
    pub fn with_options(mut self, options: DeployOptions) -> Self {
        self.options = options;
        self
    }

    async fn deploy_stack(
        &self,
        request: DeployRequest<'_>,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError> {
        let stack = request.stack;
        let env = request.environment;
        let fail = |e: StepError| DeployError {
            stack: stack.stack_name.clone(),
            message: e.to_string(),
            root_causes: vec![],
        };
        refuse_docker_images(stack).map_err(fail)?;
        check_target(stack, env).map_err(fail)?;

        let target = assets::Target {
            account: &env.account,
            region: &env.region,
            partition: partition_of(&env.region),
        };
        let sessions = &self.sessions;
        let deploy_role = deploy_role(stack, env, &target);
        let deploy_config = sessions
            .config(deploy_role.as_ref(), &env.region)
            .await
            .map_err(fail)?;

        let published = assets::publish(&stack.assets.files, &target, sessions)
            .await
            .map_err(fail)?;
        let body = read_template(request.assembly, stack).await.map_err(fail)?;
        let template = place_template(&body, stack, &target, &deploy_config, &published)
            .await
            .map_err(fail)?;

        let mut tags = stack.tags.clone();
        tags.insert("aphex:pipeline".to_owned(), request.pipeline.to_owned());
        let input = StackInput {
            stack_name: stack.stack_name.clone(),
            template,
            template_body: body,
            parameters: stack.parameters.clone(),
            tags,
            execution_role_arn: stack
                .cloudformation_execution_role_arn
                .as_deref()
                .map(|r| target.resolve(r)),
            termination_protection: stack.termination_protection,
            description: format!("Aphex deploy of {} ({})", stack.stack_name, request.pipeline),
        };
        let cfn = aws_sdk_cloudformation::Client::new(&deploy_config);
        changeset::deploy(&cfn, &input, progress, &self.options).await
    }
}

#[async_trait]
impl StackDeployer for CloudFormationDeployer {
    fn describe(&self) -> String {
        let region = self.base.region().map_or("default region", |r| r.as_ref());
        match self.base.endpoint_url() {
            Some(endpoint) => format!("CloudFormation ({region}, endpoint {endpoint})"),
            None => format!("CloudFormation ({region})"),
        }
    }

    async fn deploy(
        &self,
        request: DeployRequest<'_>,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError> {
        self.deploy_stack(request, progress).await
    }
}

/// The role the deploy acts as: the environment's `roleArn`, else the
/// assembly's deploy role with placeholders filled; none means the base
/// credentials as they are.
fn deploy_role(
    stack: &StackArtifact,
    env: &aphex_config::Environment,
    target: &assets::Target<'_>,
) -> Option<session::Role> {
    if let Some(arn) = &env.role_arn {
        return Some(session::Role {
            arn: arn.clone(),
            external_id: None,
        });
    }
    stack.assume_role_arn.as_ref().map(|arn| session::Role {
        arn: target.resolve(arn),
        external_id: stack.assume_role_external_id.clone(),
    })
}

/// A stack synthesized for a concrete account or region other than the
/// environment's would act on the wrong account: its role ARNs and asset
/// buckets name that account, placeholders or not.
fn check_target(stack: &StackArtifact, env: &aphex_config::Environment) -> Result<(), StepError> {
    let synthesized = &stack.environment;
    let account_differs = synthesized.account != "unknown-account" && synthesized.account != env.account;
    let region_differs = synthesized.region != "unknown-region" && synthesized.region != env.region;
    if !account_differs && !region_differs {
        return Ok(());
    }
    Err(StepError::WrongTarget {
        synthesized_account: synthesized.account.clone(),
        synthesized_region: synthesized.region.clone(),
        environment: env.name.clone(),
        account: env.account.clone(),
        region: env.region.clone(),
    })
}

fn refuse_docker_images(stack: &StackArtifact) -> Result<(), StepError> {
    let Some(image) = stack.assets.docker_images.first() else {
        return Ok(());
    };
    Err(StepError::DockerImage {
        id: image.id.clone(),
        directory: image.directory.clone(),
    })
}

/// The stack's template as synthesized.
async fn read_template(assembly: &CloudAssembly, stack: &StackArtifact) -> Result<String, StepError> {
    let body = tokio::fs::read(&stack.template_file)
        .await
        .map_err(|source| StepError::ReadTemplate {
            path: stack.template_file.clone(),
            assembly: assembly.dir.clone(),
            source,
        })?;
    String::from_utf8(body).map_err(|source| StepError::TemplateNotUtf8 {
        path: stack.template_file.clone(),
        source,
    })
}

/// Inline when small and not published by the assembly; otherwise in S3.
async fn place_template(
    body: &str,
    stack: &StackArtifact,
    target: &assets::Target<'_>,
    deploy_config: &SdkConfig,
    published: &HashSet<S3Object>,
) -> Result<TemplateSource, StepError> {
    let endpoint = deploy_config.endpoint_url();
    if let Some(url) = &stack.stack_template_asset_object_url {
        let resolved = target.resolve(url);
        let object = S3Object::parse(&resolved).ok_or(StepError::TemplateUrl(resolved))?;
        // The template is normally one of the file assets just published.
        if !published.contains(&object) {
            upload_template(deploy_config, &object, body.as_bytes()).await?;
        }
        return Ok(TemplateSource::Url(object.template_url(target.region, endpoint)));
    }
    if body.len() > MAX_TEMPLATE_BODY_BYTES {
        let object = S3Object {
            bucket: format!(
                "cdk-{DEFAULT_QUALIFIER}-assets-{}-{}",
                target.account, target.region
            ),
            key: format!(
                "aphex/{}/{}.json",
                stack.stack_name,
                hex::encode(Sha256::digest(body.as_bytes()))
            ),
        };
        upload_template(deploy_config, &object, body.as_bytes()).await?;
        return Ok(TemplateSource::Url(object.template_url(target.region, endpoint)));
    }
    Ok(TemplateSource::Body(body.to_owned()))
}

/// CloudFormation reports a missing stack as a `ValidationError` "does not exist".
pub(crate) fn is_missing_stack<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ValidationError") && err.message().is_some_and(|m| m.contains("does not exist"))
}
