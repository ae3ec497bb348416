//! `aphex` ends quietly when the reader of its stdout goes away.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Regression: `aphex render big.yaml | head` used to panic with "failed
/// printing to stdout: Broken pipe" and a backtrace.
#[test]
fn a_closed_stdout_ends_render_with_sigpipe_status_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from("version: \"1.0\"\nbuild: {commands: [\"make\"]}\nenvironments:\n");
    for e in 0..60 {
        // Far more than a pipe's 64 KiB buffer, so some write must follow the close.
        config.push_str(&format!(
            "  - {{name: env{e}, region: us-east-1, account: \"123456789012\", approval: manual, \
             stacks: [{{name: S, path: p}}], tests: {{commands: [t]}}}}\n"
        ));
    }
    let path = dir.path().join("aphex-config.yaml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aphex"))
        .arg("render")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
