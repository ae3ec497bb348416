//! Deploying the pipeline's own CloudFormation stack through the same
//! change-set machinery as assembly stacks: used by the pipeline stage and by
//! `aphex bootstrap`.
//!
//! Two layers: [`PipelineStackDeployer`] deploys a rendered template with the
//! credentials it is given; [`AwsPipelineStackUpdater`] (the pipeline stage's
//! [`PipelineStackUpdater`]) does the whole job from a config: discover the
//! cluster's exports, render the template with the discovered OIDC provider,
//! assume the CDK bootstrap deploy role of the pipeline's home account and
//! region, and deploy with the bootstrap CloudFormation execution role, as
//! the CDK CLI does. The workflow's own role has no IAM rights over itself or
//! its bucket, so it cannot update this stack as itself.

use std::collections::BTreeMap;

use aphex_config::Config;
use aphex_stages::ports::{DeployError, DeployProgress, PipelineStackUpdater, StackOutcome};
use aphex_template::cloudformation::{
    InvalidOidcProviderArn, OidcProviderArn, pipeline_stack_for, pipeline_stack_name,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use sha2::{Digest, Sha256};

use crate::deployer::{DeployOptions, MAX_TEMPLATE_BODY_BYTES, StackInput, TemplateSource};
use crate::discovery::{DiscoveryError, discover_cluster};
use crate::sts::{AssumeRoleError, CDK_QUALIFIER, CallerIdentityError, HomeIdentity, assume_role};

/// One pipeline stack to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStack {
    /// CloudFormation stack name.
    pub stack_name: String,
    /// The rendered template (JSON).
    pub template: String,
    /// CloudFormation parameters.
    pub parameters: BTreeMap<String, String>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
    /// Bucket for a template over 51,200 bytes (the pipeline's artifact
    /// bucket); without it such a template is an error.
    pub template_bucket: Option<String>,
    /// The role CloudFormation itself acts as (the change set's `RoleARN`);
    /// `None`: the caller's credentials.
    pub execution_role_arn: Option<String>,
}

/// Deploys pipeline stacks in the configuration's region.
#[derive(Debug, Clone)]
pub struct PipelineStackDeployer {
    config: SdkConfig,
    options: DeployOptions,
}

impl PipelineStackDeployer {
    /// A deployer acting with `config` (credentials, region, endpoint).
    pub fn new(config: SdkConfig) -> Self {
        Self {
            config,
            options: DeployOptions::default(),
        }
    }

    /// Sets the polling and waiting options.
    pub fn with_options(mut self, options: DeployOptions) -> Self {
        self.options = options;
        self
    }

    /// Creates or updates the stack; an unchanged template is `changed: false`.
    pub async fn deploy(
        &self,
        stack: &PipelineStack,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError> {
        let fail = |message: String| DeployError {
            stack: stack.stack_name.clone(),
            message,
            root_causes: vec![],
        };
        let template = if stack.template.len() <= MAX_TEMPLATE_BODY_BYTES {
            TemplateSource::Body(stack.template.clone())
        } else {
            let Some(bucket) = &stack.template_bucket else {
                return Err(fail(format!(
                    "the pipeline template is {} bytes, over CloudFormation's inline limit of {MAX_TEMPLATE_BODY_BYTES}, and no bucket was given to upload it to",
                    stack.template.len()
                )));
            };
            let object = crate::deployer::S3Object {
                bucket: bucket.clone(),
                key: format!(
                    "aphex/{}/{}.json",
                    stack.stack_name,
                    hex::encode(Sha256::digest(stack.template.as_bytes()))
                ),
            };
            crate::deployer::upload_template(&self.config, &object, stack.template.as_bytes())
                .await
                .map_err(|e| fail(e.to_string()))?;
            let region = self
                .config
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_default();
            TemplateSource::Url(object.template_url(&region, self.config.endpoint_url()))
        };
        let input = StackInput {
            stack_name: stack.stack_name.clone(),
            template,
            template_body: stack.template.clone(),
            parameters: stack.parameters.clone(),
            tags: stack.tags.clone(),
            execution_role_arn: stack.execution_role_arn.clone(),
            termination_protection: false,
            description: format!("Aphex pipeline stack {}", stack.stack_name),
        };
        let cfn = aws_sdk_cloudformation::Client::new(&self.config);
        crate::deployer::run_change_set(&cfn, &input, progress, &self.options).await
    }
}

/// Why the pipeline stack could not be deployed (before CloudFormation, or
/// by it).
#[derive(Debug, thiserror::Error)]
pub enum PipelineStackError {
    /// The config names no cluster: there is no OIDC provider to trust.
    #[error(
        "the config has no `pipeline.cluster`, so the pipeline stack's workflow role has no cluster to trust; \
         set `pipeline.cluster` in aphex-config.yaml"
    )]
    NoCluster,
    /// The SDK configuration has no region.
    #[error("no AWS region is configured for the pipeline stack; set AWS_REGION (or a profile's region)")]
    NoRegion,
    /// `GetCallerIdentity` of the ambient credentials failed (boxed: it
    /// carries the whole SDK error).
    #[error("finding the pipeline's home account: {0}; check the AWS credentials")]
    Identity(#[source] Box<CallerIdentityError>),
    /// The cluster's exports are missing or unreadable.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The `OIDCProviderArn` export is not an OIDC provider ARN.
    #[error(transparent)]
    Provider(#[from] InvalidOidcProviderArn),
    /// The CDK bootstrap deploy role could not be assumed.
    #[error(
        "cannot assume the CDK bootstrap deploy role {} to deploy the pipeline stack \
         (STS AssumeRole, AWS error code {}: {}); the pipeline's home account and region must be CDK-bootstrapped: \
         run `cdk bootstrap aws://{account}/{region}` with credentials of that account",
        .source.role_arn, .source.code, .source.message
    )]
    DeployRole {
        /// The home account.
        account: String,
        /// The home region.
        region: String,
        /// The refused assumption (boxed: it carries the whole SDK error).
        #[source]
        source: Box<AssumeRoleError>,
    },
    /// CloudFormation failed (with the root causes).
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

/// The pipeline stack for the pipeline stage: discovery, rendering, the CDK
/// bootstrap roles of the home account (the account and region of the
/// ambient credentials), and the change set.
#[derive(Debug, Clone)]
pub struct AwsPipelineStackUpdater {
    base: SdkConfig,
    options: DeployOptions,
    home: HomeIdentity,
}

impl AwsPipelineStackUpdater {
    /// An updater acting from `base` (credentials, region, endpoint).
    pub fn new(base: SdkConfig) -> Self {
        Self {
            home: HomeIdentity::new(base.clone()),
            base,
            options: DeployOptions::default(),
        }
    }

    /// Sets the polling and waiting options.
    pub fn with_options(mut self, options: DeployOptions) -> Self {
        self.options = options;
        self
    }

    /// Shares `home` (the base credentials' identity) with other adapters,
    /// so that STS is asked once per run.
    pub fn with_home(mut self, home: HomeIdentity) -> Self {
        self.home = home;
        self
    }

    /// Discovers, renders, assumes the deploy role and deploys; an unchanged
    /// stack is `changed: false`.
    pub async fn deploy(
        &self,
        config: &Config,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, PipelineStackError> {
        let cluster = config
            .settings()
            .cluster
            .clone()
            .ok_or(PipelineStackError::NoCluster)?;
        let region = self
            .base
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or(PipelineStackError::NoRegion)?;
        let identity = self
            .home
            .get()
            .await
            .map_err(|e| PipelineStackError::Identity(Box::new(e)))?;
        let home = BootstrapRoles::new(&identity.arn, &identity.account, &region);

        let prefix = cluster.export_prefix();
        let exports = discover_cluster(&self.base, &prefix).await?;
        let provider = OidcProviderArn::parse(&exports.oidc_provider_arn)?;
        let template = pipeline_stack_for(config, Some(&provider)).to_string();

        let deploy_config = assume_role(&self.base, &home.deploy_role, None, "aphex-pipeline-stack")
            .await
            .map_err(|source| PipelineStackError::DeployRole {
                account: identity.account.clone(),
                region: region.clone(),
                source: Box::new(source),
            })?;
        let stack = PipelineStack {
            stack_name: pipeline_stack_name(config),
            template,
            // The template defaults it from the config; explicit, so the
            // import and the discovery above can never use different prefixes.
            parameters: BTreeMap::from([("ClusterExportPrefix".to_owned(), prefix)]),
            tags: BTreeMap::from([("aphex:pipeline".to_owned(), config.pipeline_name().to_owned())]),
            template_bucket: Some(home.assets_bucket),
            execution_role_arn: Some(home.execution_role),
        };
        Ok(PipelineStackDeployer::new(deploy_config)
            .with_options(self.options.clone())
            .deploy(&stack, progress)
            .await?)
    }
}

#[async_trait]
impl PipelineStackUpdater for AwsPipelineStackUpdater {
    fn describe(&self) -> String {
        let region = self.base.region().map_or("default region", |r| r.as_ref());
        let endpoint = self
            .base
            .endpoint_url()
            .map(|e| format!(", endpoint {e}"))
            .unwrap_or_default();
        format!("CloudFormation ({region}{endpoint}) as the CDK bootstrap deploy role")
    }

    async fn update(
        &self,
        config: &Config,
        progress: &dyn DeployProgress,
    ) -> Result<StackOutcome, DeployError> {
        self.deploy(config, progress).await.map_err(|e| match e {
            PipelineStackError::Deploy(e) => e,
            other => DeployError {
                stack: pipeline_stack_name(config),
                message: match &other {
                    // Its message already names the role, the code and STS's words.
                    PipelineStackError::DeployRole { .. } => other.to_string(),
                    _ => crate::client::describe(&other),
                },
                root_causes: vec![],
            },
        })
    }
}

/// What a standard `cdk bootstrap` leaves in the home account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BootstrapRoles {
    deploy_role: String,
    execution_role: String,
    assets_bucket: String,
}

impl BootstrapRoles {
    /// The partition is the caller's (`arn:<partition>:...`), so GovCloud and
    /// China credentials name their own roles.
    fn new(caller_arn: &str, account: &str, region: &str) -> Self {
        let partition = caller_arn
            .split(':')
            .nth(1)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| crate::sts::partition(region));
        let role = |kind: &str| crate::sts::bootstrap_role(partition, kind, account, region);
        Self {
            deploy_role: role("deploy-role"),
            execution_role: role("cfn-exec-role"),
            assets_bucket: format!("cdk-{CDK_QUALIFIER}-assets-{account}-{region}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_roles_are_the_home_accounts_in_the_callers_partition() {
        let roles = BootstrapRoles::new(
            "arn:aws-us-gov:sts::123456789012:assumed-role/x/y",
            "123456789012",
            "us-gov-west-1",
        );
        assert_eq!(
            roles.deploy_role,
            "arn:aws-us-gov:iam::123456789012:role/cdk-hnb659fds-deploy-role-123456789012-us-gov-west-1"
        );
        assert_eq!(
            roles.execution_role,
            "arn:aws-us-gov:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-us-gov-west-1"
        );
        assert_eq!(
            roles.assets_bucket,
            "cdk-hnb659fds-assets-123456789012-us-gov-west-1"
        );
        // An ARN without a partition (an odd emulator) falls back to the region's.
        let roles = BootstrapRoles::new("", "123456789012", "cn-north-1");
        assert!(
            roles.deploy_role.starts_with("arn:aws-cn:iam::"),
            "{}",
            roles.deploy_role
        );
    }

    #[test]
    fn a_refused_deploy_role_says_the_home_account_must_be_bootstrapped() {
        let role = "arn:aws:iam::123456789012:role/cdk-hnb659fds-deploy-role-123456789012-eu-west-1";
        let err = PipelineStackError::DeployRole {
            account: "123456789012".to_owned(),
            region: "eu-west-1".to_owned(),
            source: Box::new(AssumeRoleError {
                role_arn: role.to_owned(),
                code: "AccessDenied".to_owned(),
                message: "not authorized to perform sts:AssumeRole".to_owned(),
                source: aws_sdk_sts::error::SdkError::construction_failure("refused"),
            }),
        };
        let text = err.to_string();
        assert!(text.contains(role), "{text}");
        assert!(
            text.contains("AWS error code AccessDenied: not authorized"),
            "{text}"
        );
        assert!(
            text.contains("must be CDK-bootstrapped: run `cdk bootstrap aws://123456789012/eu-west-1`"),
            "{text}"
        );
    }
}
