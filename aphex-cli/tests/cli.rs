//! The `aphex` binary end to end: validate, schema, init (exit codes,
//! output formats, help). Each test gets a fresh temporary directory.

use std::path::Path;
use std::process::{Command, Output};

fn aphex(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the aphex binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn seed() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/seed/aphex-config.yaml"
    ))
    .unwrap()
}

const INVALID: &str = r#"version: "1.0"
build:
  commands: []
environments:
  - name: Dev
    regoin: us-east-1
    account: 123456789012
    stacks:
      - { name: A, path: lib/a.ts, dependsOn: [B] }
      - { name: B, path: lib/b.ts, dependsOn: [A] }
"#;

#[test]
fn validate_accepts_the_seed_example() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), seed()).unwrap();
    let o = aphex(dir.path(), &["validate"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "aphex-config.yaml is valid: 3 environments, 3 stacks\n"
    );
}

#[test]
fn validate_reports_every_problem_like_rustc() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), INVALID).unwrap();
    let o = aphex(dir.path(), &["validate"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(text(&o.stderr));
}

#[test]
fn validate_json_lists_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), INVALID).unwrap();
    let o = aphex(dir.path(), &["validate", "c.yaml", "--format", "json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let errors = v["errors"].as_array().unwrap();
    let account = errors
        .iter()
        .find(|e| e["path"] == "environments[0].account")
        .expect("the account error");
    assert_eq!(account["file"], "c.yaml");
    assert_eq!(account["line"], 7);
    assert_eq!(account["column"], 14);
    assert!(account["message"].as_str().unwrap().contains("YAML number"));
    assert!(account["help"].as_str().unwrap().contains("quote it"));
    assert_eq!(errors.len(), 6, "{v:#}");

    std::fs::write(dir.path().join("ok.yaml"), seed()).unwrap();
    let o = aphex(dir.path(), &["validate", "ok.yaml", "--format", "json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!({"errors": []})
    );
}

#[test]
fn validate_never_prints_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let src = seed().replace(
        "npm run build",
        &format!("curl -u x:{secret} https://api.github.com"),
    );
    std::fs::write(dir.path().join("aphex-config.yaml"), src).unwrap();
    for format in ["human", "json"] {
        let o = aphex(dir.path(), &["validate", "--format", format]);
        assert_eq!(code(&o), 1);
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(all.contains("a GitHub token"), "{all}");
        assert!(!all.contains(secret), "{all}");
    }
}

#[test]
fn a_directory_argument_means_its_aphex_config_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("infra")).unwrap();
    let o = aphex(dir.path(), &["validate", "infra"]);
    assert_eq!(code(&o), 2);
    let stderr = text(&o.stderr);
    assert!(stderr.contains("cannot read infra/aphex-config.yaml"), "{stderr}");

    std::fs::write(dir.path().join("infra/aphex-config.yaml"), seed()).unwrap();
    let o = aphex(dir.path(), &["validate", "infra"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "infra/aphex-config.yaml is valid: 3 environments, 3 stacks\n"
    );
    let o = aphex(dir.path(), &["plan", "infra"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("deploy-staging"), "{}", text(&o.stdout));

    std::fs::write(dir.path().join("infra/aphex-config.yaml"), INVALID).unwrap();
    let o = aphex(dir.path(), &["render", "infra"]);
    assert_eq!(code(&o), 1);
    let stderr = text(&o.stderr);
    assert!(stderr.contains("--> infra/aphex-config.yaml:"), "{stderr}");
    assert!(
        stderr.contains("error: infra/aphex-config.yaml is invalid"),
        "{stderr}"
    );
}

#[test]
fn validate_exit_2_on_missing_file_or_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let o = aphex(dir.path(), &["validate"]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).contains("cannot read aphex-config.yaml"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(code(&aphex(dir.path(), &["validate", "--format", "xml"])), 2);
    assert_eq!(code(&aphex(dir.path(), &["validate", "a.yaml", "b.yaml"])), 2);
}

#[test]
fn validate_rejects_binary_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), b"\x7fELF\x02\x01\x01\0\0\0").unwrap();
    let o = aphex(dir.path(), &["validate"]);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("NUL byte"), "{}", text(&o.stderr));
}

/// `aphex validate` in `dir` exits 1 with the parser's placed error, and
/// nothing reads as a crash.
fn rejected_as_unreadable_without_a_panic(dir: &Path) {
    let o = aphex(dir, &["validate"]);
    let stderr = text(&o.stderr);
    assert_eq!(code(&o), 1, "{stderr}");
    assert!(
        stderr.contains("the YAML parser cannot read what follows this point"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn validate_reports_yaml_the_parser_chokes_on_without_a_panic_message() {
    // libyaml-safer 0.3 panics on a tag followed by `,`; that is a
    // diagnostic like any other syntax error, and nothing reads as a crash.
    let dir = tempfile::tempdir().unwrap();
    let config = seed().replacen("[\"npm install\",", "[!t, \"npm install\",", 1);
    assert!(config.contains("[!t,"));
    std::fs::write(dir.path().join("aphex-config.yaml"), config).unwrap();
    rejected_as_unreadable_without_a_panic(dir.path());
}

#[test]
fn a_large_file_the_parser_chokes_on_reports_without_a_panic_message() {
    // Large files are read in parts, the first on the main thread: the
    // parser's panic there is as quiet as on the parser thread.
    let dir = tempfile::tempdir().unwrap();
    let mut config = seed().replacen("[\"npm install\",", "[!t, \"npm install\",", 1);
    for i in 0..2000 {
        config.push_str(&format!(
            "  - name: extra-{i}\n    region: us-east-1\n    account: \"123456789012\"\n    stacks:\n      - name: S\n        path: s.ts\n"
        ));
    }
    assert!(config.len() > 128 * 1024, "large enough to be read in parts");
    std::fs::write(dir.path().join("aphex-config.yaml"), config).unwrap();
    rejected_as_unreadable_without_a_panic(dir.path());
}

#[test]
fn schema_prints_the_committed_schema() {
    let dir = tempfile::tempdir().unwrap();
    let o = aphex(dir.path(), &["schema"]);
    assert_eq!(code(&o), 0);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../aphex-config.schema.json"
    ))
    .unwrap();
    assert_eq!(text(&o.stdout), committed);
}

#[test]
fn init_writes_a_valid_starter_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let o = aphex(dir.path(), &["init"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let written = std::fs::read_to_string(dir.path().join("aphex-config.yaml")).unwrap();
    assert!(written.starts_with("# yaml-language-server: $schema="));
    assert_eq!(code(&aphex(dir.path(), &["validate"])), 0);

    std::fs::write(dir.path().join("aphex-config.yaml"), "mine").unwrap();
    let o = aphex(dir.path(), &["init"]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("aphex-config.yaml")).unwrap(),
        "mine"
    );

    assert_eq!(code(&aphex(dir.path(), &["init", "--force"])), 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("aphex-config.yaml")).unwrap(),
        written
    );

    std::fs::create_dir(dir.path().join("infra")).unwrap();
    assert_eq!(code(&aphex(dir.path(), &["init", "infra/aphex.yaml"])), 0);
    assert_eq!(code(&aphex(dir.path(), &["validate", "infra/aphex.yaml"])), 0);
}

#[test]
fn every_command_has_an_example_in_its_help() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["validate", "schema", "init"] {
        let o = aphex(dir.path(), &[cmd, "--help"]);
        assert_eq!(code(&o), 0);
        let help = text(&o.stdout);
        assert!(
            help.contains("Examples:") && help.contains(&format!("aphex {cmd}")),
            "{cmd}: {help}"
        );
    }
}

#[test]
fn bootstrap_without_a_cluster_or_a_kubeconfig_says_what_to_set_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let no_cluster = "version: \"1.0\"\nbuild: { commands: [\"true\"] }\nenvironments:\n  - { name: dev, region: us-east-1, account: \"123456789012\", stacks: [{ name: A, path: a.ts }] }\n";
    std::fs::write(dir.path().join("aphex-config.yaml"), no_cluster).unwrap();
    let out = aphex(dir.path(), &["bootstrap"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bootstrap needs a cluster"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("--cluster NAME"),
        "{}",
        text(&out.stderr)
    );

    // With a cluster but no kubeconfig: a usage error naming KUBECONFIG,
    // before any AWS call (no endpoint or credentials are set here).
    assert_no_kubernetes_client(dir.path(), &["bootstrap", "--cluster", "demo"]);
}

/// Runs `aphex ARGS` in `dir` with no kubeconfig anywhere and outside any
/// cluster: a usage error naming KUBECONFIG, and nothing on stdout.
fn assert_no_kubernetes_client(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_aphex"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), 2, "{stderr}");
    assert!(stderr.contains("no Kubernetes client"), "{stderr}");
    assert!(stderr.contains("set KUBECONFIG"), "{stderr}");
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
}

#[test]
fn diff_without_a_kubeconfig_is_a_usage_error_naming_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), seed()).unwrap();
    assert_no_kubernetes_client(dir.path(), &["diff"]);
}

#[test]
fn diff_exit_code_never_takes_an_unreachable_cluster_for_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aphex-config.yaml"), seed()).unwrap();
    // A cluster on a loopback port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\n\
             clusters: [{{name: gone, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
             users: [{{name: me, user: {{token: t}}}}]\n\
             contexts: [{{name: gone, context: {{cluster: gone, user: me}}}}]\n"
        ),
    )
    .unwrap();
    let diff = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_aphex"))
            .args(args)
            .current_dir(dir.path())
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap()
    };
    let plain = diff(&["diff"]);
    assert_eq!(code(&plain), 1, "{}", text(&plain.stderr));
    // The error names the server and what to check, not just "Connect".
    let stderr = text(&plain.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains(&format!("cannot reach http://127.0.0.1:{port}/")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Connection refused") && stderr.contains("current context"),
        "{stderr}"
    );
    let scripted = diff(&["diff", "--exit-code"]);
    assert_eq!(code(&scripted), 2, "{}", text(&scripted.stderr));
    assert!(text(&scripted.stdout).is_empty(), "{}", text(&scripted.stdout));
}
