//! Deploying the pipeline's own CloudFormation stack (rendered by
//! `aphex-template` as a JSON string) through the same change-set machinery
//! as assembly stacks: used by the pipeline stage and by `aphex bootstrap`.
//! It acts with the credentials it is given; no role is assumed.

use std::collections::BTreeMap;

use aphex_stages::ports::{DeployError, DeployProgress, StackOutcome};
use aws_config::SdkConfig;
use sha2::{Digest, Sha256};

use crate::deployer::{DeployOptions, MAX_TEMPLATE_BODY_BYTES, StackInput, TemplateSource};

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
                .map_err(fail)?;
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
            parameters: stack.parameters.clone(),
            tags: stack.tags.clone(),
            execution_role_arn: None,
            termination_protection: false,
            description: format!("Aphex pipeline stack {}", stack.stack_name),
        };
        let cfn = aws_sdk_cloudformation::Client::new(&self.config);
        crate::deployer::run_change_set(&cfn, &input, progress, &self.options).await
    }
}
