//! Notifiers: a Slack-compatible incoming webhook (HTTP POST of
//! `{"text": ...}`), and a no-op one. The text is redacted again here, so a
//! secret that slipped into a record still never leaves, and then escaped
//! for Slack's markup, so no branch name or error message can mention a
//! channel (`<!channel>`) or hide a link.

use async_trait::async_trait;

use crate::ports::{Notifier, NotifyError};
use crate::record::{RunRecord, Status};
use crate::redact::Redactor;

/// The message sent about a run: status, commit, each stage's outcome,
/// why it ended early (a duplicate push), the command that prints a failed
/// stage's stored log, and where to watch it (the
/// Argo UI, when `pipeline.argoUrl` is set) as a bare URL, which Slack
/// links by itself.
pub(crate) fn notification_text(run: &RunRecord) -> String {
    let icon = match run.status {
        Status::Succeeded => ":white_check_mark:",
        Status::Failed => ":x:",
        Status::Interrupted => ":warning:",
        Status::Duplicate | Status::Superseded => ":fast_forward:",
        Status::Running | Status::Skipped => ":hourglass:",
    };
    let short = run.commit.get(..12).unwrap_or(&run.commit);
    let mut text = format!(
        "{icon} {} run {} {}: commit {short}{}",
        run.pipeline,
        run.id,
        run.status,
        run.branch
            .as_deref()
            .map(|b| format!(" on {b}"))
            .unwrap_or_default()
    );
    if let Some(end) = run.ended_early() {
        text.push_str(&format!("\n{}", end.message));
    }
    for s in &run.stages {
        text.push_str(&format!("\n• {}: {}", s.name, s.status));
        if let Some(e) = &s.error {
            let first = e.lines().next().unwrap_or_default();
            text.push_str(&format!(" ({first})"));
        }
        // The stage's whole log is in the run store, beside its record.
        if matches!(s.status, Status::Failed | Status::Interrupted) {
            text.push_str(&format!("\n  log: aphex logs {} --stage {}", run.id, s.name));
        }
    }
    if let Some(url) = &run.url {
        text.push_str(&format!("\n{url}"));
    }
    text
}

/// `text` with Slack's three control characters escaped (`&` as `&amp;`,
/// `<` as `&lt;`, `>` as `&gt;`), as Slack asks of text it should show as
/// written: only `<...>` makes a mention or a link.
pub(crate) fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Posts to a Slack-compatible incoming webhook.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    url: String,
    client: reqwest::Client,
    redactor: Redactor,
}

impl WebhookNotifier {
    /// A notifier posting to `url`; `redactor` masks secrets in the text.
    pub fn new(url: impl Into<String>, redactor: Redactor) -> Self {
        WebhookNotifier {
            url: url.into(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("HTTP client builds"),
            redactor,
        }
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn notify(&self, run: &RunRecord) -> Result<(), NotifyError> {
        // Escaped after redaction, which must see the values as they are.
        let text = slack_escape(&self.redactor.redact(&notification_text(run)));
        // The URL is a secret itself (Slack's carry the token): never print it.
        let response = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .map_err(|e| NotifyError::Send(e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body = self.redactor.redact(body.trim());
            return Err(NotifyError::Answered { status, body });
        }
        Ok(())
    }
}

/// Sends nothing (no notifications configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopNotifier;

#[async_trait]
impl Notifier for NoopNotifier {
    async fn notify(&self, _run: &RunRecord) -> Result<(), NotifyError> {
        Ok(())
    }
}
