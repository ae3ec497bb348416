//! GitHub's REST API for commit statuses, the [`CommitStatuses`] port:
//! "Create a commit status", `POST <api>/repos/<owner>/<repo>/statuses/<sha>`
//! with the headers GitHub documents (`Accept: application/vnd.github+json`,
//! `Authorization: Bearer <token>`, `X-GitHub-Api-Version: 2022-11-28`, a
//! `User-Agent`) and a JSON body of `state`, `target_url`, `description`
//! and `context`. The token never appears in an error, a log or `Debug`.

use async_trait::async_trait;
use serde_json::json;

use crate::ports::{CommitStatus, CommitStatusError, CommitStatuses};
use crate::redact::Redactor;

/// The REST API version the requests are written against.
pub(crate) const API_VERSION: &str = "2022-11-28";

/// Posts commit statuses on one repository under one context.
#[derive(Clone)]
pub struct GitHubStatuses {
    /// `<api>/repos/<owner>/<repo>/statuses`.
    endpoint: String,
    repository: String,
    context: String,
    token: String,
    client: reqwest::Client,
    redactor: Redactor,
}

impl std::fmt::Debug for GitHubStatuses {
    // Never the token, not even in a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubStatuses")
            .field("endpoint", &self.endpoint)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl GitHubStatuses {
    /// Statuses on `owner/repo` through the API at `api_url` (no trailing
    /// `/`: `https://api.github.com`, `https://ghe.example.com/api/v3`),
    /// under `context` (`aphex/<pipeline>/deploy`), with `token`. Owner
    /// and repository are the config's, which its rules keep to GitHub's
    /// name characters, so they are safe as path segments.
    pub fn new(
        api_url: &str,
        owner: &str,
        repo: &str,
        context: impl Into<String>,
        token: impl Into<String>,
        redactor: Redactor,
    ) -> Self {
        GitHubStatuses {
            endpoint: format!("{}/repos/{owner}/{repo}/statuses", api_url.trim_end_matches('/')),
            repository: format!("{owner}/{repo}"),
            context: context.into(),
            token: token.into(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("HTTP client builds"),
            redactor,
        }
    }

    /// What to do about a refusal, by status code.
    fn hint(&self, status: reqwest::StatusCode) -> String {
        match status.as_u16() {
            401 => "the token is not valid (expired or revoked): replace it in its Secret".to_owned(),
            403 | 404 => format!(
                "the token may not post statuses on {}: a fine-grained token needs \"Commit statuses: write\" \
                 on the repository, a classic one the repo:status scope",
                self.repository
            ),
            422 => {
                "GitHub refused the status (more than 1000 statuses for this commit and context?)".to_owned()
            }
            _ => "GitHub could not take the status now; the next run posts again".to_owned(),
        }
    }
}

#[async_trait]
impl CommitStatuses for GitHubStatuses {
    async fn post(&self, status: &CommitStatus) -> Result<(), CommitStatusError> {
        let doing = format!("posting the {:?} commit status on {}", status.state, status.sha).to_lowercase();
        let mut body = json!({
            "state": status.state,
            "description": status.description,
            "context": self.context,
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        let response = self
            .client
            .post(format!("{}/{}", self.endpoint, status.sha))
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .bearer_auth(&self.token)
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(
                reqwest::header::USER_AGENT,
                concat!("aphex/", env!("CARGO_PKG_VERSION")),
            )
            .json(&body)
            .send()
            .await
            .map_err(|source| CommitStatusError::Send {
                context: doing.clone(),
                source,
            })?;
        let code = response.status();
        if code.is_success() {
            return Ok(());
        }
        // GitHub explains a refusal in `message`; keep it, never the whole body.
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let said = if message.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.redactor.redact(message.trim()))
        };
        Err(CommitStatusError::Answered {
            context: doing,
            status: code,
            said,
            hint: self.hint(code),
        })
    }
}
