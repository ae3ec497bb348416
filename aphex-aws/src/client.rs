//! Shared AWS SDK configuration: loading from `aws-config`'s default chain
//! (environment, profiles, IRSA; `AWS_ENDPOINT_URL` honoured), the explicit
//! retry policy every adapter uses, and the S3 client with path-style
//! addressing whenever an endpoint is set (a local emulator has no
//! virtual-hosted bucket names).
//!
//! Credentials are never read from the Aphex config file: only from the chain.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_sts::error::SdkError;

/// How many attempts (first try included) a throttled or 5xx call gets.
/// Standard mode backs off exponentially with jitter between them.
pub const MAX_ATTEMPTS: u32 = 5;

/// The retry policy: standard mode (throttling, transient and 5xx errors are
/// retried with exponential backoff), set explicitly so a profile or
/// environment cannot silently switch retries off.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// A loader with Aphex's defaults (behaviour version, retries) on top of the
/// default chain; callers (and tests) may still set region, endpoint or
/// credentials before `load()`.
pub fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config())
}

/// Loads the SDK configuration from the default chain.
pub async fn load() -> SdkConfig {
    loader().load().await
}

/// Loads the SDK configuration from the default chain for `region`.
pub async fn load_for_region(region: &str) -> SdkConfig {
    loader()
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await
}

/// An S3 client for `config`: path-style addressing when an endpoint is set.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// The AWS error code of an SDK error (e.g. `AccessDenied`), or a short
/// description of why there is none (a connection error, a timeout).
pub fn error_code<E, R>(error: &SdkError<E, R>) -> String
where
    E: aws_sdk_sts::error::ProvideErrorMetadata,
{
    match error {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown service error").to_owned(),
        SdkError::TimeoutError(_) => "none (the request timed out)".to_owned(),
        SdkError::DispatchFailure(_) => "none (the request could not be sent)".to_owned(),
        SdkError::ResponseError(_) => "none (the response could not be read)".to_owned(),
        SdkError::ConstructionFailure(_) => "none (the request could not be built)".to_owned(),
        _ => "none".to_owned(),
    }
}

/// The error and its sources on one line, for messages (the SDK's own
/// `Display` stops at "service error").
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(error).to_string()
}

/// An AWS call that failed, summarized for people: the AWS error code and
/// message for a service error, the whole cause chain otherwise (the SDK's
/// own `Display` says only "service error").
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct AwsError {
    /// The AWS error code, for a service error.
    pub code: Option<String>,
    summary: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl AwsError {
    /// Summarizes an SDK error.
    pub fn new<E, R>(error: SdkError<E, R>) -> Self
    where
        E: aws_sdk_sts::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let code = error.as_service_error().and_then(|e| e.code()).map(str::to_owned);
        let summary = match (&code, error.as_service_error().and_then(|e| e.message())) {
            (Some(code), Some(message)) => format!("AWS error code {code}: {message}"),
            (Some(code), None) => format!("AWS error code {code}"),
            _ => describe(&error),
        };
        AwsError {
            code,
            summary,
            source: Box::new(error),
        }
    }
}
