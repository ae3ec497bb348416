//! STS: assuming roles (cross-account deploys) and the credential checker the
//! validate stage runs per environment (after assuming the environment's role,
//! `GetCallerIdentity` must report the environment's account), which also
//! lends a cross-account synth the credentials of its environment's account.
//!
//! Messages name the environment, the role, the accounts and the AWS error
//! code; they never contain a credential. Every role Aphex acts as is assumed
//! through [`assume_role`], with an external id when the assembly names one.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::error::ProvideErrorMetadata;

use aphex_config::Environment;
use aphex_stages::ports::{CredentialChecker, Identity, SynthCredentials};

use crate::client;

/// The CDK bootstrap qualifier Aphex expects (the CDK default).
pub const CDK_QUALIFIER: &str = aphex_template::cloudformation::CDK_QUALIFIER;

/// A failed role assumption (one STS `AssumeRole` call).
#[derive(Debug, thiserror::Error)]
#[error("cannot assume role {role_arn} (STS AssumeRole, AWS error code {code}): {message}")]
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

/// A failed STS `GetCallerIdentity` call.
#[derive(Debug, thiserror::Error)]
#[error("STS GetCallerIdentity failed (AWS error code {code}): {message}")]
pub struct CallerIdentityError {
    /// The AWS error code, e.g. `Throttling`.
    pub code: String,
    /// STS's message, else the SDK's last error.
    pub message: String,
    /// The SDK error.
    #[source]
    pub source:
        aws_sdk_sts::error::SdkError<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError>,
}

/// Why an environment's credentials could not be checked or lent to its
/// synth: each names the environment, the role and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// The role that reaches the environment's account could not be assumed.
    #[error(
        "environment `{env}`: cannot assume role {role} to reach account {account} \
         (STS AssumeRole, AWS error code {}: {}); {fix}",
        .source.code, .source.message
    )]
    Unreachable {
        /// The environment.
        env: String,
        /// Its account.
        account: String,
        /// The role tried.
        role: String,
        /// What to do about it.
        fix: &'static str,
        /// The refused assumption.
        #[source]
        source: AssumeRoleError,
    },
    /// The assumed role's identity could not be read.
    #[error("environment `{env}` (account {account}, role {role}): {source}")]
    Identity {
        /// The environment.
        env: String,
        /// Its account.
        account: String,
        /// The role assumed.
        role: String,
        /// The failed call.
        #[source]
        source: CallerIdentityError,
    },
    /// The role resolves to another account than the environment's.
    #[error(
        "environment `{env}`: expected account {expected}, but role {role} resolves to account {actual} ({arn}); \
         fix the environment's `account` or `roleArn`"
    )]
    WrongAccount {
        /// The environment.
        env: String,
        /// Its configured account.
        expected: String,
        /// The role assumed.
        role: String,
        /// The account the role is in.
        actual: String,
        /// The assumed identity's ARN.
        arn: String,
    },
    /// The runner's own account could not be read (before a synth).
    #[error("environment `{env}`: cannot tell which account this runner is in: {source}")]
    HomeAccount {
        /// The environment.
        env: String,
        /// The failed call.
        #[source]
        source: CallerIdentityError,
    },
    /// The role a cross-account synth acts as could not be assumed.
    #[error(
        "environment `{env}`: cannot assume role {role} for its synth (STS AssumeRole, AWS error code {}: {}); {fix}",
        .source.code, .source.message
    )]
    SynthRole {
        /// The environment.
        env: String,
        /// The role tried.
        role: String,
        /// What to do about it.
        fix: String,
        /// The refused assumption.
        #[source]
        source: AssumeRoleError,
    },
}

/// The AWS partition of `region` (`aws`, `aws-cn`, `aws-us-gov`, ...).
pub fn partition(region: &str) -> &'static str {
    aphex_template::cloudformation::partition(region)
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

/// Assumes `role_arn` (with `external_id`, when the role's trust policy asks
/// for one) from `config`'s credentials and returns a configuration acting
/// as that role (same region, endpoint and retries). The role is assumed
/// once now, so a failure is reported here with its AWS error code; the
/// returned configuration refreshes the session itself before it expires.
pub async fn assume_role(
    config: &SdkConfig,
    role_arn: &str,
    external_id: Option<&str>,
    session_name: &str,
) -> Result<SdkConfig, AssumeRoleError> {
    let session_name = sanitize_session_name(session_name);
    assume_role_once(config, role_arn, external_id, &session_name).await?;
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn).session_name(session_name);
    if let Some(external_id) = external_id {
        provider = provider.external_id(external_id);
    }
    let provider = provider.configure(config).build().await;
    Ok(config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// One `AssumeRole` call: the session's temporary credentials.
async fn assume_role_once(
    config: &SdkConfig,
    role_arn: &str,
    external_id: Option<&str>,
    session_name: &str,
) -> Result<aws_sdk_sts::types::Credentials, AssumeRoleError> {
    let out = aws_sdk_sts::Client::new(config)
        .assume_role()
        .role_arn(role_arn)
        .set_external_id(external_id.map(str::to_owned))
        .role_session_name(session_name)
        .send()
        .await
        .map_err(|source| AssumeRoleError {
            role_arn: role_arn.to_owned(),
            code: client::error_code(&source),
            message: source
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| client::last_error(&source)),
            source,
        })?;
    out.credentials.ok_or_else(|| AssumeRoleError {
        role_arn: role_arn.to_owned(),
        code: "NoCredentials".to_owned(),
        message: "AssumeRole answered without credentials".to_owned(),
        source: aws_sdk_sts::error::SdkError::construction_failure("AssumeRole answered without credentials"),
    })
}

/// The role an environment's synth acts as: its `roleArn`, else the CDK
/// bootstrap lookup role of its account, which exists for synth-time lookups
/// (read-only) and which `cdk bootstrap --trust` opens to the pipeline's account.
pub fn synth_role(env: &Environment) -> String {
    env.role_arn.clone().unwrap_or_else(|| lookup_role(env))
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
pub async fn caller_identity(config: &SdkConfig) -> Result<Identity, CallerIdentityError> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|source| CallerIdentityError {
            code: client::error_code(&source),
            message: source
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| client::last_error(&source)),
            source,
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
    roles: Roles,
}

/// Which roles a checker reaches environments through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roles {
    /// Deploy runs: the environment's `roleArn`, else the CDK deploy role
    /// (checks), the `roleArn`, else the CDK lookup role (synth).
    Deploy,
    /// Pull-request runs: the CDK lookup role only (their role may assume
    /// nothing else).
    Lookup,
}

impl StsCredentialChecker {
    /// A checker assuming roles from `base`'s credentials.
    pub fn new(base: SdkConfig) -> Self {
        StsCredentialChecker {
            base,
            roles: Roles::Deploy,
        }
    }

    /// A pull-request run's checker: it reaches every environment through
    /// its CDK bootstrap lookup role, never a deploy role or `roleArn`.
    pub fn lookup_only(base: SdkConfig) -> Self {
        StsCredentialChecker {
            base,
            roles: Roles::Lookup,
        }
    }

    fn check_role(&self, env: &Environment) -> String {
        match self.roles {
            Roles::Deploy => environment_role(env),
            Roles::Lookup => lookup_role(env),
        }
    }

    fn synth_role(&self, env: &Environment) -> String {
        match self.roles {
            Roles::Deploy => synth_role(env),
            Roles::Lookup => lookup_role(env),
        }
    }
}

/// The CDK bootstrap lookup role of `env`'s account and region.
pub fn lookup_role(env: &Environment) -> String {
    bootstrap_role(partition(&env.region), "lookup-role", &env.account, &env.region)
}

impl StsCredentialChecker {
    fn in_region(&self, env: &Environment) -> SdkConfig {
        self.base
            .to_builder()
            .region(aws_config::Region::new(env.region.clone()))
            .build()
    }
}

impl StsCredentialChecker {
    /// Assumes `env`'s role and checks that it resolves to `env`'s account.
    async fn check_env(&self, env: &Environment) -> Result<Identity, StsError> {
        let role = self.check_role(env);
        let fix = if self.roles == Roles::Lookup {
            "pull-request runs reach each account through its CDK lookup role: bootstrap the account with `cdk bootstrap --trust <pipeline account>`"
        } else if env.role_arn.is_some() {
            "check the environment's `roleArn` and that the current credentials may assume it"
        } else {
            "bootstrap the account with `cdk bootstrap`, or set the environment's `roleArn`"
        };
        let config = self.in_region(env);
        let assumed = match assume_role(&config, &role, None, &format!("aphex-validate-{}", env.name)).await {
            Ok(assumed) => assumed,
            Err(source) => {
                return Err(StsError::Unreachable {
                    env: env.name.clone(),
                    account: env.account.clone(),
                    role,
                    fix,
                    source,
                });
            }
        };
        let identity = match caller_identity(&assumed).await {
            Ok(identity) => identity,
            Err(source) => {
                return Err(StsError::Identity {
                    env: env.name.clone(),
                    account: env.account.clone(),
                    role,
                    source,
                });
            }
        };
        if identity.account != env.account {
            return Err(StsError::WrongAccount {
                env: env.name.clone(),
                expected: env.account.clone(),
                role,
                actual: identity.account,
                arn: identity.arn,
            });
        }
        Ok(identity)
    }

    /// The credentials of `env`'s account for its synth, when this runner is
    /// in another account.
    async fn lend_synth_credentials(&self, env: &Environment) -> Result<Option<SynthCredentials>, StsError> {
        let config = self.in_region(env);
        let home = caller_identity(&config)
            .await
            .map_err(|source| StsError::HomeAccount {
                env: env.name.clone(),
                source,
            })?;
        if home.account == env.account {
            return Ok(None);
        }
        let role = self.synth_role(env);
        let fix = if self.roles == Roles::Deploy && env.role_arn.is_some() {
            "check the environment's `roleArn` and that the current credentials may assume it".to_owned()
        } else {
            format!(
                "bootstrap account {} with `cdk bootstrap --trust {}` (which lets that account use the lookup role), or set the environment's `roleArn`",
                env.account, home.account
            )
        };
        let session_name = sanitize_session_name(&format!("aphex-synth-{}", env.name));
        let credentials = match assume_role_once(&config, &role, None, &session_name).await {
            Ok(credentials) => credentials,
            Err(source) => {
                return Err(StsError::SynthRole {
                    env: env.name.clone(),
                    role,
                    fix,
                    source,
                });
            }
        };
        Ok(Some(SynthCredentials {
            role_arn: role,
            vars: vec![
                ("AWS_ACCESS_KEY_ID".to_owned(), credentials.access_key_id),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), credentials.secret_access_key),
                ("AWS_SESSION_TOKEN".to_owned(), credentials.session_token),
            ],
        }))
    }
}

// The port still speaks in strings; the messages are the errors' own.
#[async_trait]
impl CredentialChecker for StsCredentialChecker {
    async fn check(&self, env: &Environment) -> Result<Identity, String> {
        self.check_env(env).await.map_err(|e| e.to_string())
    }

    async fn synth_credentials(&self, env: &Environment) -> Result<Option<SynthCredentials>, String> {
        self.lend_synth_credentials(env).await.map_err(|e| e.to_string())
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
    fn synth_acts_as_the_role_arn_else_the_bootstrap_lookup_role() {
        let mut env: Environment = serde_json::from_value(serde_json::json!({
            "name": "prod",
            "account": "111111111111",
            "region": "eu-west-1",
            "stacks": [{ "name": "App", "path": "app.js" }]
        }))
        .expect("an environment");
        assert_eq!(
            synth_role(&env),
            "arn:aws:iam::111111111111:role/cdk-hnb659fds-lookup-role-111111111111-eu-west-1"
        );
        env.role_arn = Some("arn:aws:iam::111111111111:role/deployer".to_owned());
        assert_eq!(synth_role(&env), "arn:aws:iam::111111111111:role/deployer");
    }

    #[test]
    fn checker_errors_name_the_environment_the_role_the_code_and_the_fix() {
        let refused = || AssumeRoleError {
            role_arn: "arn:aws:iam::111111111111:role/deployer".to_owned(),
            code: "AccessDenied".to_owned(),
            message: "not authorized".to_owned(),
            source: aws_sdk_sts::error::SdkError::construction_failure("refused"),
        };
        let err = StsError::Unreachable {
            env: "prod".to_owned(),
            account: "111111111111".to_owned(),
            role: "arn:aws:iam::111111111111:role/deployer".to_owned(),
            fix: "check the environment's `roleArn`",
            source: refused(),
        };
        assert_eq!(
            err.to_string(),
            "environment `prod`: cannot assume role arn:aws:iam::111111111111:role/deployer to reach account \
             111111111111 (STS AssumeRole, AWS error code AccessDenied: not authorized); check the environment's `roleArn`"
        );
        let err = StsError::SynthRole {
            env: "prod".to_owned(),
            role: "arn:aws:iam::111111111111:role/deployer".to_owned(),
            fix: "set the environment's `roleArn`".to_owned(),
            source: refused(),
        };
        assert_eq!(
            err.to_string(),
            "environment `prod`: cannot assume role arn:aws:iam::111111111111:role/deployer for its synth \
             (STS AssumeRole, AWS error code AccessDenied: not authorized); set the environment's `roleArn`"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the STS error is kept as the source"
        );
    }

    #[test]
    fn session_names_are_made_valid() {
        assert_eq!(sanitize_session_name("aphex validate/dev"), "aphex-validate-dev");
        assert_eq!(sanitize_session_name("x"), "x-");
        assert_eq!(sanitize_session_name(&"a".repeat(80)).len(), 64);
    }
}
