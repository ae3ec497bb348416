//! STS: assuming roles (cross-account deploys) and the credential checker the
//! validate stage runs per environment (after assuming the environment's role,
//! `GetCallerIdentity` must report the environment's account).
//!
//! Messages name the environment, the role, the accounts and the AWS error
//! code; they never contain a credential.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::ProvideErrorMetadata;

use aphex_config::Environment;
use aphex_stages::ports::{CredentialChecker, Identity};

use crate::client;

/// The CDK bootstrap qualifier Aphex expects (the CDK default).
pub const CDK_QUALIFIER: &str = "hnb659fds";

/// A failed role assumption.
#[derive(Debug, thiserror::Error)]
#[error("cannot assume role {role_arn} (AWS error code {code}): {message}")]
pub struct AssumeRoleError {
    /// The role that could not be assumed.
    pub role_arn: String,
    /// The AWS error code, e.g. `AccessDenied`.
    pub code: String,
    /// STS's message (it never contains a credential).
    pub message: String,
    /// The SDK error.
    #[source]
    pub source: aws_sdk_sts::error::SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>,
}

/// The AWS partition of `region` (`aws`, `aws-cn`, `aws-us-gov`, ...).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else if region.starts_with("us-isof-") {
        "aws-iso-f"
    } else {
        "aws"
    }
}

/// The CDK bootstrap deploy role of `account` in `region`.
pub fn bootstrap_deploy_role(account: &str, region: &str) -> String {
    bootstrap_role(partition(region), "deploy-role", account, region)
}

/// The ARN of the CDK bootstrap role `kind` (`deploy-role`, `cfn-exec-role`,
/// ...) of `account` in `region`, in `partition`.
pub fn bootstrap_role(partition: &str, kind: &str, account: &str, region: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/cdk-{CDK_QUALIFIER}-{kind}-{account}-{region}")
}

/// The role Aphex assumes for `env`: its `roleArn`, else the CDK bootstrap
/// deploy role of its account and region.
pub fn environment_role(env: &Environment) -> String {
    env.role_arn
        .clone()
        .unwrap_or_else(|| bootstrap_deploy_role(&env.account, &env.region))
}

/// Assumes `role_arn` from `config`'s credentials and returns a configuration
/// acting as that role (same region, endpoint and retries). The role is
/// assumed once now, so a failure is reported here with its AWS error code;
/// the returned configuration refreshes the session itself before it expires.
pub async fn assume_role(
    config: &SdkConfig,
    role_arn: &str,
    session_name: &str,
) -> Result<SdkConfig, AssumeRoleError> {
    let session_name = sanitize_session_name(session_name);
    aws_sdk_sts::Client::new(config)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(&session_name)
        .send()
        .await
        .map_err(|source| AssumeRoleError {
            role_arn: role_arn.to_owned(),
            code: client::error_code(&source),
            message: source
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| client::describe(&source)),
            source,
        })?;
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(session_name)
        .configure(config)
        .build()
        .await;
    Ok(config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// STS allows `[\w+=,.@-]{2,64}` in a session name.
fn sanitize_session_name(name: &str) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while clean.len() < 2 {
        clean.push('-');
    }
    clean
}

/// The identity `config`'s credentials resolve to.
pub async fn caller_identity(config: &SdkConfig) -> Result<Identity, String> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            format!(
                "GetCallerIdentity failed (AWS error code {}): {}",
                client::error_code(&e),
                e.message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| client::describe(&e))
            )
        })?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_owned(),
        arn: out.arn().unwrap_or_default().to_owned(),
    })
}

/// Checks each environment's credentials through STS, starting from a base
/// configuration (the default chain).
#[derive(Debug, Clone)]
pub struct StsCredentialChecker {
    base: SdkConfig,
}

impl StsCredentialChecker {
    /// A checker assuming roles from `base`'s credentials.
    pub fn new(base: SdkConfig) -> Self {
        StsCredentialChecker { base }
    }
}

#[async_trait]
impl CredentialChecker for StsCredentialChecker {
    async fn check(&self, env: &Environment) -> Result<Identity, String> {
        let role = environment_role(env);
        let fix = if env.role_arn.is_some() {
            "check the environment's `roleArn` and that the current credentials may assume it"
        } else {
            "bootstrap the account with `cdk bootstrap`, or set the environment's `roleArn`"
        };
        let config = self
            .base
            .to_builder()
            .region(aws_config::Region::new(env.region.clone()))
            .build();
        let assumed = assume_role(&config, &role, &format!("aphex-validate-{}", env.name))
            .await
            .map_err(|e| {
                format!(
                    "environment `{}`: cannot assume role {role} to reach account {} \
                     (AWS error code {}: {}); {fix}",
                    env.name, env.account, e.code, e.message
                )
            })?;
        let identity = caller_identity(&assumed).await.map_err(|e| {
            format!(
                "environment `{}` (account {}, role {role}): {e}",
                env.name, env.account
            )
        })?;
        if identity.account != env.account {
            return Err(format!(
                "environment `{}`: expected account {}, but role {role} resolves to account {} ({}); \
                 fix the environment's `account` or `roleArn`",
                env.name, env.account, identity.account, identity.arn
            ));
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_role_names_partition_account_and_region() {
        assert_eq!(
            bootstrap_deploy_role("123456789012", "us-east-1"),
            "arn:aws:iam::123456789012:role/cdk-hnb659fds-deploy-role-123456789012-us-east-1"
        );
        assert_eq!(
            bootstrap_deploy_role("123456789012", "cn-north-1"),
            "arn:aws-cn:iam::123456789012:role/cdk-hnb659fds-deploy-role-123456789012-cn-north-1"
        );
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("il-central-1"), "aws");
    }

    #[test]
    fn session_names_are_made_valid() {
        assert_eq!(sanitize_session_name("aphex validate/dev"), "aphex-validate-dev");
        assert_eq!(sanitize_session_name("x"), "x-");
        assert_eq!(sanitize_session_name(&"a".repeat(80)).len(), 64);
    }
}
