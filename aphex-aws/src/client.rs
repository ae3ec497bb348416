//! Shared AWS SDK configuration: loading from `aws-config`'s default chain
//! (environment, profiles, IRSA; `AWS_ENDPOINT_URL` honoured), the one retry
//! and timeout policy every adapter uses (docs/deploying.md, "Retries and
//! timeouts"), the S3 client with path-style addressing whenever an endpoint
//! is set (a local emulator has no virtual-hosted bucket names), and how a
//! failed call is described: the service, the call and its last error.
//!
//! Credentials are never read from the Aphex config file: only from the chain.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

/// How many attempts (first try included) a call gets when it is throttled,
/// answered 5xx, or its connection fails or times out.
pub const MAX_ATTEMPTS: u32 = 5;
/// The first retry waits a random time up to this; each next one up to
/// twice as long (full jitter), never more than [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before one retry.
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Connecting to an endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// One attempt of a call, from sending to the whole answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// One call, every attempt and wait included: the most any one AWS call
/// can take before it fails.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(180);
/// One attempt of an S3 call: objects (archives, assets) may take minutes
/// to move; a transfer without progress fails sooner, after 20 s (the SDK's
/// stalled-stream protection).
pub const S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// One S3 call, every attempt and wait included.
pub const S3_CALL_TIMEOUT: Duration = Duration::from_secs(900);

/// The retry policy: standard mode (throttling, transient and 5xx errors are
/// retried with exponential backoff and full jitter, within the SDK's retry
/// quota), set explicitly so a profile or environment cannot silently
/// switch retries off.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// The timeouts of every call but S3's ([`s3_timeout_config`]).
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(CALL_TIMEOUT)
        .build()
}

/// The timeouts of S3 calls, which move whole objects.
pub fn s3_timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(S3_ATTEMPT_TIMEOUT)
        .operation_timeout(S3_CALL_TIMEOUT)
        .build()
}

/// A loader with Aphex's defaults (behaviour version, retries, timeouts) on
/// top of the default chain; callers (and tests) may still set region,
/// endpoint or credentials before `load()`.
pub fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
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

/// An S3 client for `config`: path-style addressing when an endpoint is
/// set, and S3's longer timeouts.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .timeout_config(s3_timeout_config())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// The AWS error code of an SDK error (e.g. `AccessDenied`), or a short
/// description of why there is none (a connection error, a timeout).
pub fn error_code<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata,
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

/// The error and its sources on one line, joined with `: `, each said
/// once, for messages (the SDK's own `Display` stops at "service error",
/// and its `DisplayErrorContext` adds a debug dump).
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// What a call's last attempt ended with, for people: `Code: message` for
/// an AWS error; the HTTP status for an answer without one (a bare 5xx from
/// a load balancer); else the cause chain (a timeout, a connection closed,
/// an answer that could not be read), without the SDK's debug dump.
pub fn last_error<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => match (service.err().code(), service.err().message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => format!(
                "HTTP {} with no AWS error in the answer",
                service.raw().status().as_u16()
            ),
        },
        other => describe(other),
    }
}

/// The AWS error's own message, or [`last_error`] when the answer has none
/// (STS errors keep the message and the code apart).
pub fn error_message<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    error
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| last_error(error))
}

/// One failed call as people read it: `Service Call: ` and its
/// [`last_error`].
pub fn call_error<E>(service: &str, call: &str, error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    format!("{service} {call}: {}", last_error(error))
}

/// One failed call, worded as [`call_error`] words it (`Service Call: ` and
/// what its last attempt ended with), with the SDK error as its source.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct CallError {
    summary: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl CallError {
    /// The failed `call` of `service` (e.g. `"S3"`, `"PutObject"`).
    pub fn new<E>(service: &str, call: &str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        CallError {
            summary: call_error(service, call, &error),
            source: Box::new(error),
        }
    }
}

/// An AWS call that failed, summarized for people: the service and the call,
/// then the AWS error code and message for a service error, what the last
/// attempt ended with otherwise (the SDK's own `Display` says only
/// "service error").
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
    /// Summarizes the SDK error of `service`'s `call` (e.g. `"S3"`, `"PutObject"`).
    pub fn new<E>(service: &str, call: &str, error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = error.as_service_error().and_then(|e| e.code()).map(str::to_owned);
        let summary = match &code {
            Some(_) => format!("{service} {call}: AWS error code {}", last_error(&error)),
            None => call_error(service, call, &error),
        };
        AwsError {
            code,
            summary,
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn an_error_is_described_with_each_cause_once() {
        let chain = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "io error",
                Some(Box::new(Layer(
                    "connection closed before message completed",
                    None,
                ))),
            ))),
        );
        assert_eq!(
            describe(&chain),
            "dispatch failure: io error: connection closed before message completed"
        );
        let repeated = Layer("timed out after 60s", Some(Box::new(Layer("timed out", None))));
        assert_eq!(describe(&repeated), "timed out after 60s");
    }
}
