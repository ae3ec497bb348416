//! STS: assuming roles (cross-account deploys) and the credential checker the
//! validate stage runs per environment (the identity assuming the
//! environment's role gives, `AssumedRoleUser`, must be in the environment's
//! account: one call, where `GetCallerIdentity` after it would be a second), which also
//! lends a cross-account synth the credentials of its environment's account.
//!
//! Messages name the environment, the role, the accounts and the AWS error
//! code; they never contain a credential. Every role Aphex acts as is assumed
//! through [`assume_role`], with an external id when the assembly names one.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use aphex_config::Environment;
use aphex_stages::ports::{CredentialChecker, CredentialError, Identity, SynthCredentials};

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
    let first = assume_role_once(config, role_arn, external_id, &session_name).await?;
    let provider = AssumedRole {
        config: config.clone(),
        role_arn: role_arn.to_owned(),
        external_id: external_id.map(str::to_owned),
        session_name,
        current: tokio::sync::Mutex::new(Some(first)),
    };
    Ok(config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// The credentials of an assumed role: the session [`assume_role`] checked
/// the role with (a second `AssumeRole` at the first call would only repeat
/// it), kept until it is about to expire, then a new one. Kept here rather
/// than left to the SDK's identity cache alone: every client made from the
/// configuration (one per stack and service) asks again.
#[derive(Debug)]
struct AssumedRole {
    config: SdkConfig,
    role_arn: String,
    external_id: Option<String>,
    session_name: String,
    current: tokio::sync::Mutex<Option<aws_sdk_sts::types::Credentials>>,
}

/// How long before its expiry a session is replaced.
const REFRESH_BEFORE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl AssumedRole {
    async fn credentials(&self) -> aws_credential_types::provider::Result {
        // Held while assuming: clients asking at once wait for one session.
        let mut current = self.current.lock().await;
        let fresh = |c: &aws_sdk_sts::types::Credentials| {
            std::time::SystemTime::try_from(*c.expiration())
                .ok()
                .and_then(|expiry| expiry.duration_since(std::time::SystemTime::now()).ok())
                .is_some_and(|left| left > REFRESH_BEFORE)
        };
        let session = match current.as_ref().filter(|c| fresh(c)) {
            Some(session) => session.clone(),
            None => {
                let session = assume_role_once(
                    &self.config,
                    &self.role_arn,
                    self.external_id.as_deref(),
                    &self.session_name,
                )
                .await
                .map_err(CredentialsError::provider_error)?;
                *current = Some(session.clone());
                session
            }
        };
        let expiry = std::time::SystemTime::try_from(*session.expiration()).map_err(|e| {
            CredentialsError::unhandled(format!(
                "AssumeRole of {}: the expiry is out of range: {e}",
                self.role_arn
            ))
        })?;
        Ok(aws_credential_types::Credentials::new(
            session.access_key_id(),
            session.secret_access_key(),
            Some(session.session_token().to_owned()),
            Some(expiry),
            "aphex-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.credentials())
    }
}

/// One `AssumeRole` call: the session's temporary credentials.
async fn assume_role_once(
    config: &SdkConfig,
    role_arn: &str,
    external_id: Option<&str>,
    session_name: &str,
) -> Result<aws_sdk_sts::types::Credentials, AssumeRoleError> {
    let out = assume_role_call(config, role_arn, external_id, session_name).await?;
    out.credentials.ok_or_else(|| missing(role_arn, "credentials"))
}

/// Assumes `role_arn` once and returns the identity the session is, as the
/// answer states it (`AssumedRoleUser`): what `GetCallerIdentity` with the
/// session would say, without that second call.
async fn assumed_identity(
    config: &SdkConfig,
    role_arn: &str,
    session_name: &str,
) -> Result<Identity, AssumeRoleError> {
    let session_name = sanitize_session_name(session_name);
    let out = assume_role_call(config, role_arn, None, &session_name).await?;
    let arn = out
        .assumed_role_user()
        .map(|u| u.arn().to_owned())
        .ok_or_else(|| missing(role_arn, "the assumed role's identity"))?;
    // arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION
    let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
    Ok(Identity { account, arn })
}

async fn assume_role_call(
    config: &SdkConfig,
    role_arn: &str,
    external_id: Option<&str>,
    session_name: &str,
) -> Result<aws_sdk_sts::operation::assume_role::AssumeRoleOutput, AssumeRoleError> {
    aws_sdk_sts::Client::new(config)
        .assume_role()
        .role_arn(role_arn)
        .set_external_id(external_id.map(str::to_owned))
        .role_session_name(session_name)
        .send()
        .await
        .map_err(|source| AssumeRoleError {
            role_arn: role_arn.to_owned(),
            code: client::error_code(&source),
            message: client::error_message(&source),
            source,
        })
}

/// An `AssumeRole` answer without `what`.
fn missing(role_arn: &str, what: &str) -> AssumeRoleError {
    let message = format!("AssumeRole answered without {what}");
    AssumeRoleError {
        role_arn: role_arn.to_owned(),
        code: "IncompleteAnswer".to_owned(),
        source: aws_sdk_sts::error::SdkError::construction_failure(message.clone()),
        message,
    }
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

/// The identity of a run's own (base) credentials, asked of STS once and
/// shared by the adapters that need it: the pipeline stage (its home
/// account) and each synth (whether it runs in another account). A failed
/// call is not kept: the next asker tries again.
#[derive(Debug, Clone)]
pub struct HomeIdentity {
    base: SdkConfig,
    known: std::sync::Arc<tokio::sync::OnceCell<Identity>>,
}

impl HomeIdentity {
    /// The identity of `base`'s credentials, not yet asked.
    pub fn new(base: SdkConfig) -> Self {
        HomeIdentity {
            base,
            known: std::sync::Arc::default(),
        }
    }

    /// The identity, from STS the first time.
    pub async fn get(&self) -> Result<Identity, CallerIdentityError> {
        self.known
            .get_or_try_init(|| caller_identity(&self.base))
            .await
            .cloned()
    }
}

/// The identity `config`'s credentials resolve to.
pub async fn caller_identity(config: &SdkConfig) -> Result<Identity, CallerIdentityError> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|source| CallerIdentityError {
            code: client::error_code(&source),
            message: client::error_message(&source),
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
    home: HomeIdentity,
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
            home: HomeIdentity::new(base.clone()),
            base,
            roles: Roles::Deploy,
        }
    }

    /// Shares `home` (the base credentials' identity) with other adapters,
    /// so that STS is asked once per run.
    pub fn with_home(mut self, home: HomeIdentity) -> Self {
        self.home = home;
        self
    }

    /// A pull-request run's checker: it reaches every environment through
    /// its CDK bootstrap lookup role, never a deploy role or `roleArn`.
    pub fn lookup_only(base: SdkConfig) -> Self {
        StsCredentialChecker {
            home: HomeIdentity::new(base.clone()),
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
        let identity = match assumed_identity(&config, &role, &format!("aphex-validate-{}", env.name)).await {
            Ok(identity) => identity,
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
        let home = self.home.get().await.map_err(|source| StsError::HomeAccount {
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

/// The port's error: a wrong account as itself, everything else as the
/// reason the account could not be reached (the message is the error's own).
impl From<StsError> for CredentialError {
    fn from(e: StsError) -> Self {
        match e {
            StsError::WrongAccount {
                env,
                expected,
                role,
                actual,
                arn,
            } => CredentialError::WrongAccount {
                environment: env,
                expected,
                role,
                actual,
                arn,
            },
            other => CredentialError::Unreachable(Box::new(other)),
        }
    }
}

#[async_trait]
impl CredentialChecker for StsCredentialChecker {
    async fn check(&self, env: &Environment) -> Result<Identity, CredentialError> {
        Ok(self.check_env(env).await?)
    }

    async fn synth_credentials(
        &self,
        env: &Environment,
    ) -> Result<Option<SynthCredentials>, CredentialError> {
        Ok(self.lend_synth_credentials(env).await?)
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
