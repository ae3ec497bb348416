//! The local adapters: run recorder (atomic, newest first), directory
//! cluster (one file per object), JSON-lines metrics, and the webhook
//! notifier against an HTTP server on 127.0.0.1.

use aphex_stages::local::{DirCluster, DirRunRecorder, JsonLinesMetrics, WebhookNotifier};
use aphex_stages::ports::{
    ClusterError, ManifestApplier, Metric, MetricUnit, MetricsSink, Notifier, NotifyError, RecordError,
    RunRecorder,
};
use aphex_stages::record::{RunRecord, StageRecord, Status};
use aphex_stages::redact::Redactor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn run(id: &str, started: &str, status: Status) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        pipeline: "shop".to_owned(),
        commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
        branch: Some("main".to_owned()),
        started_at: started.to_owned(),
        ended_at: None,
        status,
        stages: vec![StageRecord {
            name: "build".to_owned(),
            started_at: started.to_owned(),
            ended_at: Some(started.to_owned()),
            status,
            error: (status == Status::Failed).then(|| "`npm ci` exited with code 1".to_owned()),
            stacks: vec![],
            artifact_bytes: None,
            approved_by: None,
            ends_run: None,
            risks: Vec::new(),
        }],
        url: None,
    }
}

#[tokio::test]
async fn run_recorder_replaces_atomically_and_lists_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let rec = DirRunRecorder::new(dir.path());
    let mut a = run("a", "2026-01-01T00:00:00Z", Status::Running);
    rec.record(&a).await.unwrap();
    rec.record(&run("b", "2026-01-02T00:00:00Z", Status::Failed))
        .await
        .unwrap();
    rec.record(&run("c", "2026-01-03T00:00:00Z", Status::Succeeded))
        .await
        .unwrap();
    a.status = Status::Succeeded;
    rec.record(&a).await.unwrap();
    assert_eq!(rec.load("shop", "a").await.unwrap(), Some(a));
    assert_eq!(rec.load("shop", "zzz").await.unwrap(), None);
    let ids: Vec<String> = rec
        .list("shop", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["c", "b"]);
    // No temp files left behind: exactly one document per run.
    let files = std::fs::read_dir(dir.path().join("shop")).unwrap().count();
    assert_eq!(files, 3);
    assert!(rec.list("other", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_record_that_is_not_json_is_left_out_and_read_as_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let rec = DirRunRecorder::new(dir.path());
    rec.record(&run("good", "2026-01-01T00:00:00Z", Status::Succeeded))
        .await
        .unwrap();
    std::fs::write(rec.path_of("shop", "bad"), b"{ not json").unwrap();
    let err = rec.load("shop", "bad").await.unwrap_err();
    match &err {
        RecordError::Json { context, source } => {
            assert!(context.contains("bad.json"), "{context}");
            assert!(source.is_syntax(), "{source}");
        }
        other => panic!("expected a JSON error, got {other:?}"),
    }
    let listing = rec.scan("shop", 10).await.unwrap();
    assert_eq!(listing.runs.len(), 1);
    assert_eq!(listing.unreadable.len(), 1);
    assert!(
        listing.unreadable[0].error.contains("parsing run record"),
        "{}",
        listing.unreadable[0]
    );
    // A run id that would leave the pipeline's folder is refused before any file is touched.
    let err = rec
        .record(&run("../escape", "2026-01-01T00:00:00Z", Status::Running))
        .await
        .unwrap_err();
    assert!(matches!(err, RecordError::Segment(_)), "{err:?}");
    assert!(err.to_string().contains("must be one path segment"), "{err}");
}

#[tokio::test]
async fn directory_cluster_keeps_one_file_per_object() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = DirCluster::new(dir.path());
    let wt = |n: u32| {
        serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
            "metadata": {"name": "shop", "namespace": "argo"}, "spec": {"n": n}})
    };
    let role = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "shop-runner"}});
    cluster.apply(&[wt(1), role.clone()]).await.unwrap();
    let wt_file = dir.path().join("argo/workflowtemplate/shop.json");
    let role_file = dir.path().join("_cluster/clusterrole/shop-runner.json");
    assert!(wt_file.exists() && role_file.exists());
    let role_before = std::fs::read(&role_file).unwrap();
    cluster.apply(&[wt(2), role]).await.unwrap();
    assert_eq!(
        cluster
            .current("WorkflowTemplate", "argo", "shop")
            .await
            .unwrap()
            .unwrap()["spec"]["n"],
        2
    );
    assert_eq!(
        std::fs::read(&role_file).unwrap(),
        role_before,
        "unchanged object, unchanged file"
    );
    assert_eq!(cluster.current("ConfigMap", "argo", "x").await.unwrap(), None);
    // A manifest without a name is refused before anything is written.
    let bad = serde_json::json!({"kind": "ConfigMap", "metadata": {}});
    let err = cluster.apply(&[wt(3), bad]).await.unwrap_err();
    assert!(matches!(err, ClusterError::Manifest { .. }), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("has no `metadata.name`"), "{err}");
    assert_eq!(
        cluster
            .current("WorkflowTemplate", "argo", "shop")
            .await
            .unwrap()
            .unwrap()["spec"]["n"],
        2
    );
}

#[tokio::test]
async fn metrics_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m/metrics.jsonl");
    let sink = JsonLinesMetrics::new(&path);
    let m = Metric {
        name: "StageDuration".to_owned(),
        value: 1.5,
        unit: MetricUnit::Seconds,
        dimensions: vec![("pipeline".to_owned(), "shop".to_owned())],
    };
    sink.emit(&[m.clone(), m.clone()]).await.unwrap();
    sink.emit(&[m]).await.unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["name"], "StageDuration");
    assert_eq!(lines[0]["unit"], "Seconds");
    assert!(lines[0]["timestamp"].is_string());
}

/// Serves one HTTP request on 127.0.0.1, answering `status`; returns the port
/// and a receiver of the request (head and body).
async fn one_shot_server(status: &'static str) -> (u16, tokio::sync::oneshot::Receiver<(String, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, body) = loop {
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
                    break (head, text[end + 4..end + 4 + len].to_owned());
                }
            }
            assert!(n > 0, "connection closed early");
        };
        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        sock.write_all(reply.as_bytes()).await.unwrap();
        tx.send((head, body)).unwrap();
    });
    (port, rx)
}

#[tokio::test]
async fn webhook_notifier_posts_slack_text_with_secrets_masked() {
    let (port, rx) = one_shot_server("200 OK").await;
    let secret = "s3cr3t-value-123";
    let mut r = run("run-7", "2026-01-01T00:00:00Z", Status::Failed);
    r.stages[0].error = Some(format!("token {secret} rejected"));
    let notifier = WebhookNotifier::new(
        format!("http://127.0.0.1:{port}/services/T000/B000/XXXX"),
        Redactor::from_vars([("NPM_TOKEN", secret)]),
    );
    notifier.notify(&r).await.unwrap();
    let (head, body) = rx.await.unwrap();
    assert!(
        head.starts_with("POST /services/T000/B000/XXXX HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = json["text"].as_str().unwrap();
    assert!(
        text.starts_with(":x: shop run run-7 failed: commit 0123456789ab on main"),
        "{text}"
    );
    assert!(text.contains("• build: failed (token *** rejected)"), "{text}");
    assert!(
        text.contains("\n  log: aphex logs run-7 --stage build"),
        "a failed stage points at its stored log: {text}"
    );
    assert!(!body.contains(secret));
}

#[tokio::test]
async fn notification_text_cannot_ping_a_channel_or_hide_a_link() {
    let (port, rx) = one_shot_server("200 OK").await;
    let secret = "p&ss<w>rd";
    let mut r = run("run-8", "2026-01-01T00:00:00Z", Status::Failed);
    r.branch = Some("<!channel>".to_owned());
    r.stages[0].error = Some(format!(
        "see <https://evil.example|the docs> & retry with {secret}"
    ));
    let notifier = WebhookNotifier::new(
        format!("http://127.0.0.1:{port}/hook"),
        Redactor::from_vars([("DB_PASSWORD", secret)]),
    );
    notifier.notify(&r).await.unwrap();
    let (_, body) = rx.await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = json["text"].as_str().unwrap();
    assert!(text.contains("on &lt;!channel&gt;"), "{text}");
    assert!(
        text.contains("see &lt;https://evil.example|the docs&gt; &amp; retry with ***"),
        "{text}"
    );
    // Slack reads `<` only as markup; none is left, and the secret was
    // masked before escaping could change its spelling.
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    assert!(!body.contains("ss<w") && !body.contains("ss&lt;w"), "{body}");
}

#[tokio::test]
async fn webhook_errors_name_the_status_but_never_the_url() {
    let (port, _rx) = one_shot_server("500 Internal Server Error").await;
    let url = format!("http://127.0.0.1:{port}/services/SECRETPATH");
    let notifier = WebhookNotifier::new(url, Redactor::new());
    let err = notifier
        .notify(&run("r", "2026-01-01T00:00:00Z", Status::Succeeded))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NotifyError::Answered { status, .. } if status.as_u16() == 500),
        "{err:?}"
    );
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(text.contains("500"), "{text}");
    assert!(!text.contains("SECRETPATH"), "{text}");
}

#[tokio::test]
async fn a_notification_links_to_the_run_and_says_why_a_duplicate_deployed_nothing() {
    let (port, rx) = one_shot_server("200 OK").await;
    let mut r = run("shop-x2", "2026-01-01T00:00:00Z", Status::Succeeded);
    r.status = Status::Duplicate;
    r.stages[0].name = "validate".to_owned();
    r.stages[0].ends_run = Some(aphex_stages::record::RunEnd {
        reason: aphex_stages::record::EndReason::Duplicate,
        message: "commit 0123456789ab is already deployed in every environment: dev (run shop-x1)".to_owned(),
    });
    r.url = Some("https://argo.example.com/workflows/argo/shop-x2".to_owned());
    WebhookNotifier::new(format!("http://127.0.0.1:{port}/hook"), Redactor::new())
        .notify(&r)
        .await
        .unwrap();
    let (_, body) = rx.await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = json["text"].as_str().unwrap();
    assert_eq!(
        text,
        ":fast_forward: shop run shop-x2 duplicate: commit 0123456789ab on main\n\
         commit 0123456789ab is already deployed in every environment: dev (run shop-x1)\n\
         • validate: succeeded\n\
         https://argo.example.com/workflows/argo/shop-x2"
    );
}
