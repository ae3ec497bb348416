//! The webhook simulator: what the rendered Sensor does with a GitHub
//! delivery, evaluated from the same rules ([`crate::triggers`]) the Sensor
//! is rendered from. Also verifies `X-Hub-Signature-256`.

use aphex_config::Config;
use hmac::{Hmac, Mac};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::triggers::{Source, rules};

/// What a delivery triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// `deploy`, `validate` or `none`.
    pub trigger: &'static str,
    /// Why, in one sentence.
    pub reason: String,
    /// The Workflow's parameters (empty when nothing triggers).
    pub parameters: IndexMap<String, String>,
    /// The Workflow's labels taken from the rule: how it started and who
    /// sent the event (empty when nothing triggers).
    pub labels: IndexMap<String, String>,
}

/// The event as Argo Events' GitHub source publishes it: request headers
/// (Go `http.Header`: canonical keys, lists of values) and the JSON body.
pub fn event_envelope(event: &str, payload: &Value) -> Value {
    json!({"headers": {"X-Github-Event": [event]}, "body": payload})
}

/// What the Sensor of `config` does with a GitHub `event` (the
/// `X-GitHub-Event` header) carrying `payload`.
pub fn simulate(config: &Config, event: &str, payload: &Value) -> Outcome {
    let envelope = event_envelope(event, payload);
    let rules = rules(config);
    let mut refusals = Vec::new();
    for rule in &rules {
        match rule.filters.iter().try_for_each(|f| f.evaluate(&envelope)) {
            Ok(()) => {
                let values = |list: &[(&str, Source)]| -> IndexMap<String, String> {
                    list.iter()
                        .map(|(name, src)| ((*name).to_owned(), src.value(&envelope)))
                        .collect()
                };
                let parameters = values(&rule.parameters);
                let reason = format!(
                    "`{event}` passes every filter of trigger `{}`: a Workflow from `{}` at entrypoint `{}` for commit {}",
                    rule.kind.as_str(),
                    config.pipeline_name(),
                    rule.entrypoint,
                    parameters
                        .get("commit-sha")
                        .map(String::as_str)
                        .unwrap_or_default(),
                );
                return Outcome {
                    trigger: rule.kind.as_str(),
                    reason,
                    parameters,
                    labels: values(&rule.labels),
                };
            }
            Err(why) if rule.event == event => {
                refusals.push(format!("trigger `{}`: {why}", rule.kind.as_str()))
            }
            Err(_) => {}
        }
    }
    let reason = if refusals.is_empty() {
        let listened: Vec<&str> = rules.iter().map(|r| r.event).collect();
        format!("no trigger listens to `{event}` (only {})", listened.join(", "))
    } else {
        format!("no trigger: {}", refusals.join("; "))
    };
    Outcome {
        trigger: "none",
        reason,
        parameters: IndexMap::new(),
        labels: IndexMap::new(),
    }
}

/// A webhook signature that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `sha256=<64 hex digits>`.
    #[error("the signature is not of the form `sha256=<64 hex digits>` (the X-Hub-Signature-256 header)")]
    Malformed,
    /// The HMAC does not match.
    #[error("the signature does not match the payload and secret")]
    Mismatch,
}

/// Verifies a GitHub `X-Hub-Signature-256` header (`sha256=<hex>`): the
/// HMAC-SHA256 of the raw body under the webhook secret, compared in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> Result<(), SignatureError> {
    let hex_mac = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_mac).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let actual = sign(secret, body);
    if bool::from(actual.as_slice().ct_eq(&expected)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The raw HMAC-SHA256 of `body` under `secret`.
fn sign(secret: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `X-Hub-Signature-256` header GitHub sends for `body` under `secret`.
pub fn signature_header(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(sign(secret, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_mismatches_do_not() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            signature_header(b"It's a Secret to Everybody", b"Hello, World!"),
            header
        );
        assert_eq!(
            verify_signature(b"It's a Secret to Everybody", b"Hello, World!", header),
            Ok(())
        );
        assert_eq!(
            verify_signature(b"wrong", b"Hello, World!", header),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"k", b"x", "sha1=00"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(b"k", b"x", "sha256=zz"),
            Err(SignatureError::Malformed)
        );
    }
}
