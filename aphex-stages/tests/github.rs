//! GitHub commit statuses against a local server (127.0.0.1) that checks
//! each request as GitHub's REST API documents "Create a commit status":
//! `POST /repos/{owner}/{repo}/statuses/{sha}`, `Accept:
//! application/vnd.github+json`, `Authorization: Bearer <token>`,
//! `X-GitHub-Api-Version: 2022-11-28`, a `User-Agent`, and a JSON body of
//! `state` (error, failure, pending or success), `target_url`,
//! `description` (at most 140 characters) and `context`; it answers `201
//! Created` as GitHub does, or `422` naming what it refused. Then the
//! statuses a run posts: `pending` from validate, the outcome from
//! finalize, nothing more from a superseded run.

mod support;

use std::sync::{Arc, Mutex};

use aphex_stages::github::GitHubStatuses;
use aphex_stages::ports::{CommitState, CommitStatus, CommitStatuses};
use aphex_stages::record::{EndReason, RunEnd, RunRecord, StageRecord, Status};
use aphex_stages::redact::Redactor;
use aphex_stages::report::CollectingReporter;
use aphex_testkit::records;
use serde_json::Value;
use support::{MINIMAL, SHA, harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "ghp_t0kenThatMustNeverShow";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    body: Value,
}

/// A local stand-in for GitHub's API: answers every request, records the
/// ones it accepted, and answers `reply` (a status line) to valid ones.
struct FakeGitHub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl FakeGitHub {
    async fn start(prefix: &str, reply: &'static str) -> FakeGitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}{prefix}",
            listener.local_addr().unwrap().port()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let (s, r, prefix) = (seen.clone(), refused.clone(), prefix.to_owned());
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (head, body) = read_request(&mut sock).await;
                let answer = match check(&head, &body, &prefix) {
                    Ok(seen) => {
                        s.lock().unwrap().push(seen);
                        format!(
                            "HTTP/1.1 {reply}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                        )
                    }
                    Err(why) => {
                        r.lock().unwrap().push(why.clone());
                        let body = serde_json::json!({"message": why}).to_string();
                        format!(
                            "HTTP/1.1 422 Unprocessable Entity\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                sock.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        FakeGitHub { url, seen, refused }
    }

    fn seen(&self) -> Vec<Seen> {
        assert_eq!(
            *self.refused.lock().unwrap(),
            Vec::<String>::new(),
            "refused requests"
        );
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return (head, text[end + 4..end + 4 + len].to_owned());
            }
        }
        assert!(n > 0, "connection closed early");
    }
}

/// The request checked as GitHub documents it; `Err` says what is wrong.
fn check(head: &str, body: &str, prefix: &str) -> Result<Seen, String> {
    let mut lines = head.lines();
    let request = lines.next().unwrap_or_default();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let path = request
        .strip_prefix("POST ")
        .and_then(|r| r.strip_suffix(" HTTP/1.1"))
        .ok_or(format!("not a POST: {request}"))?;
    let rest = path
        .strip_prefix(prefix)
        .and_then(|p| p.strip_prefix("/repos/"))
        .ok_or(format!("not under {prefix}/repos/: {path}"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 4 || parts[2] != "statuses" || parts[3].len() != 40 {
        return Err(format!("not /repos/{{owner}}/{{repo}}/statuses/{{sha}}: {path}"));
    }
    if header("accept") != Some("application/vnd.github+json") {
        return Err(format!("Accept is {:?}", header("accept")));
    }
    if header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Err("Authorization is not `Bearer <token>`".to_owned());
    }
    if header("x-github-api-version") != Some("2022-11-28") {
        return Err(format!(
            "X-GitHub-Api-Version is {:?}",
            header("x-github-api-version")
        ));
    }
    if header("user-agent").is_none_or(str::is_empty) {
        return Err("no User-Agent (GitHub refuses requests without one)".to_owned());
    }
    if header("content-type") != Some("application/json") {
        return Err(format!("Content-Type is {:?}", header("content-type")));
    }
    let json: Value = serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let obj = json.as_object().ok_or("body is not an object")?;
    for key in obj.keys() {
        if !["state", "target_url", "description", "context"].contains(&key.as_str()) {
            return Err(format!("unknown body field {key}"));
        }
    }
    match obj.get("state").and_then(Value::as_str) {
        Some("error" | "failure" | "pending" | "success") => {}
        other => return Err(format!("state is {other:?}")),
    }
    for key in ["target_url", "description", "context"] {
        if obj.get(key).is_some_and(|v| !v.is_string()) {
            return Err(format!("{key} is not a string"));
        }
    }
    if let Some(d) = obj.get("description").and_then(Value::as_str)
        && d.chars().count() > 140
    {
        return Err("description is longer than 140 characters".to_owned());
    }
    Ok(Seen {
        path: path.to_owned(),
        body: json,
    })
}

fn statuses(api: &str, redactor: Redactor) -> GitHubStatuses {
    GitHubStatuses::new(api, "acme", "shop", "aphex/shop/deploy", TOKEN, redactor)
}

#[tokio::test]
async fn a_status_is_posted_as_github_documents_it() {
    let gh = FakeGitHub::start("", "201 Created").await;
    statuses(&gh.url, Redactor::new())
        .post(&CommitStatus {
            sha: SHA.to_owned(),
            state: CommitState::Pending,
            description: "Run shop-x1 started".to_owned(),
            target_url: Some("https://argo.example.com/workflows/argo/shop-x1".to_owned()),
        })
        .await
        .unwrap();
    let seen = gh.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, format!("/repos/acme/shop/statuses/{SHA}"));
    assert_eq!(
        seen[0].body,
        serde_json::json!({
            "state": "pending",
            "target_url": "https://argo.example.com/workflows/argo/shop-x1",
            "description": "Run shop-x1 started",
            "context": "aphex/shop/deploy",
        })
    );
}

#[tokio::test]
async fn a_github_enterprise_api_is_reached_under_its_prefix_and_no_link_means_no_target_url() {
    let gh = FakeGitHub::start("/api/v3", "201 Created").await;
    statuses(&format!("{}/", gh.url), Redactor::new())
        .post(&CommitStatus {
            sha: SHA.to_owned(),
            state: CommitState::Success,
            description: "Succeeded".to_owned(),
            target_url: None,
        })
        .await
        .unwrap();
    let seen = gh.seen();
    assert_eq!(seen[0].path, format!("/api/v3/repos/acme/shop/statuses/{SHA}"));
    assert!(seen[0].body.get("target_url").is_none(), "{}", seen[0].body);
}

#[tokio::test]
async fn a_refusal_says_what_to_do_and_never_shows_the_token() {
    let gh = FakeGitHub::start("", "403 Forbidden").await;
    let err = statuses(&gh.url, Redactor::new())
        .post(&CommitStatus {
            sha: SHA.to_owned(),
            state: CommitState::Failure,
            description: "Failed at build".to_owned(),
            target_url: None,
        })
        .await
        .unwrap_err();
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(text.contains("403"), "{text}");
    assert!(text.contains("Commit statuses: write"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    // Nor in the adapter's Debug (a panic message, a log of the ports).
    assert!(!format!("{:?}", statuses(&gh.url, Redactor::new())).contains(TOKEN));
}

#[tokio::test]
async fn an_unreachable_github_is_an_error_naming_the_status_not_the_token() {
    // A port nothing listens on: bind, learn it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = statuses(&format!("http://127.0.0.1:{port}"), Redactor::new())
        .post(&CommitStatus {
            sha: SHA.to_owned(),
            state: CommitState::Pending,
            description: "x".to_owned(),
            target_url: None,
        })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pending commit status"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

fn stage(name: &str, status: Status, error: Option<&str>) -> StageRecord {
    StageRecord {
        ended_at: Some("2026-01-01T00:03:12Z".to_owned()),
        error: error.map(str::to_owned),
        ..records::stage(name, "2026-01-01T00:00:00Z", status)
    }
}

fn record(stages: Vec<StageRecord>) -> RunRecord {
    RunRecord {
        commit: SHA.to_owned(),
        stages,
        url: Some("https://argo.example.com/workflows/argo/shop-x1".to_owned()),
        ..records::header("shop-x1", "2026-01-01T00:00:00Z")
    }
}

/// What finalize posts for `run`, through the real adapter.
async fn finalized(run: RunRecord, redactor: Redactor) -> Vec<Seen> {
    let gh = FakeGitHub::start("", "201 Created").await;
    let mut h = harness(MINIMAL);
    h.ctx.ports.statuses = Some(Arc::new(statuses(&gh.url, redactor.clone())));
    let reporter = CollectingReporter::default();
    aphex_stages::stages::finalize::run(&h.ctx.ports, &reporter, &redactor, run, false)
        .await
        .unwrap();
    gh.seen()
}

#[tokio::test]
async fn validate_posts_pending_with_the_link_to_the_run() {
    let gh = FakeGitHub::start("", "201 Created").await;
    let mut h = harness(MINIMAL);
    std::fs::write(h.checkout().join("app.ts"), "").unwrap();
    h.ctx.run.url = Some("https://argo.example.com/workflows/argo/run-1".to_owned());
    h.ctx.ports.statuses = Some(Arc::new(statuses(&gh.url, Redactor::new())));
    aphex_stages::stages::validate::run(&h.ctx).await.unwrap();
    let seen = gh.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["state"], "pending");
    assert_eq!(seen[0].body["description"], "Run run-1 started");
    assert_eq!(
        seen[0].body["target_url"],
        "https://argo.example.com/workflows/argo/run-1"
    );
}

#[tokio::test]
async fn a_status_github_cannot_take_is_a_warning_and_the_stage_goes_on() {
    let gh = FakeGitHub::start("", "500 Internal Server Error").await;
    let mut h = harness(MINIMAL);
    std::fs::write(h.checkout().join("app.ts"), "").unwrap();
    h.ctx.ports.statuses = Some(Arc::new(statuses(&gh.url, Redactor::new())));
    aphex_stages::stages::validate::run(&h.ctx).await.unwrap();
    assert!(h.log().contains("500"), "{}", h.log());
}

#[tokio::test]
async fn finalize_posts_success_with_the_link_to_the_run() {
    let seen = finalized(
        record(vec![stage("build", Status::Succeeded, None)]),
        Redactor::new(),
    )
    .await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["state"], "success");
    assert_eq!(
        seen[0].body["target_url"],
        "https://argo.example.com/workflows/argo/shop-x1"
    );
    assert!(
        seen[0].body["description"]
            .as_str()
            .unwrap()
            .starts_with("Succeeded"),
        "{}",
        seen[0].body
    );
}

#[tokio::test]
async fn a_failure_names_the_stage_on_one_redacted_line_of_at_most_140_characters() {
    let secret = "hunter2-secret-value";
    let long = format!("token {secret} refused\n{}", "x".repeat(300));
    let seen = finalized(
        record(vec![
            stage("validate", Status::Succeeded, None),
            stage(
                "build",
                Status::Failed,
                Some(&format!("{long}{}", "y".repeat(200))),
            ),
        ]),
        Redactor::from_vars([("NPM_TOKEN", secret)]),
    )
    .await;
    assert_eq!(seen[0].body["state"], "failure");
    let d = seen[0].body["description"].as_str().unwrap();
    assert_eq!(d, "Failed at build: token *** refused");
    let long_line = "z".repeat(500);
    let seen = finalized(
        record(vec![stage("build", Status::Failed, Some(&long_line))]),
        Redactor::new(),
    )
    .await;
    let d = seen[0].body["description"].as_str().unwrap();
    assert_eq!(d.chars().count(), 140, "{d}");
    assert!(d.starts_with("Failed at build: zzz") && d.ends_with('…'), "{d}");
}

#[tokio::test]
async fn an_interrupted_run_posts_error_and_a_duplicate_posts_success_saying_so() {
    let seen = finalized(
        record(vec![stage("deploy-dev", Status::Interrupted, Some("cancelled"))]),
        Redactor::new(),
    )
    .await;
    assert_eq!(seen[0].body["state"], "error");
    assert_eq!(seen[0].body["description"], "Interrupted at deploy-dev");

    let mut validate = stage("validate", Status::Succeeded, None);
    validate.ends_run = Some(RunEnd {
        reason: EndReason::Duplicate,
        message: "already deployed".to_owned(),
    });
    let seen = finalized(record(vec![validate]), Redactor::new()).await;
    assert_eq!(seen[0].body["state"], "success");
    assert_eq!(
        seen[0].body["description"],
        "Already deployed in every environment: nothing deployed"
    );
}

#[tokio::test]
async fn a_superseded_run_posts_nothing_more() {
    let mut validate = stage("validate", Status::Succeeded, None);
    validate.ends_run = Some(RunEnd {
        reason: EndReason::Superseded,
        message: "restarted on the new topology as shop-x2".to_owned(),
    });
    let seen = finalized(record(vec![validate]), Redactor::new()).await;
    assert!(seen.is_empty(), "{seen:?}");
}
