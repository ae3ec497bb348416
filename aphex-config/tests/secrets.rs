//! The catalogue of secrets seen from `aphex validate`: every shape of the
//! shared table (`aphex_testkit::secrets`) written in a build command is
//! reported with its kind and never shown, the lines that only look close
//! pass, and a diagnostic shows no secret of its source line, whichever
//! rule found it.

use aphex_config::{load_str, render, to_json};
use aphex_testkit::secrets::{SecretCase, cases, innocent};

/// A valid configuration whose second build command is `command`.
fn with_command(command: &str) -> String {
    let quoted = command
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!(
        "version: \"1.0\"\nbuild:\n  commands:\n    - npm ci\n    - \"{quoted}\"\nenvironments:\n  - name: dev\n    region: us-east-1\n    account: \"123456789012\"\n    stacks: [{{ name: AppStack, path: app.ts }}]\n"
    )
}

/// Everything a user sees of `source`'s diagnostics: the rendering and the JSON.
fn shown(source: &str) -> (Vec<aphex_config::Diagnostic>, String) {
    let diags = load_str("aphex-config.yaml", source).expect_err("a credential is a problem");
    let text = format!("{}{}", render(&diags, source), to_json(&diags));
    (diags, text)
}

fn check_in_command(c: &SecretCase) {
    let source = with_command(&c.text);
    let (diags, text) = shown(&source);
    assert!(
        diags
            .iter()
            .any(|d| d.path == "build.commands[1]" && d.message.ends_with(&format!(" contains {}", c.kind))),
        "{}: no `contains {}` at build.commands[1]:\n{text}",
        c.shape,
        c.kind
    );
    assert!(
        !text.contains(&c.secret),
        "{}: the secret was shown:\n{text}",
        c.shape
    );
    assert!(text.contains(aphex_config::secrets::MASK), "{}: {text}", c.shape);
}

#[test]
fn every_shape_in_a_config_command_is_found_and_never_shown() {
    for c in cases() {
        check_in_command(&c);
    }
}

#[test]
fn lines_that_only_look_close_pass() {
    for line in innocent() {
        if let Err(diags) = load_str("aphex-config.yaml", &with_command(line)) {
            panic!("`{line}` was refused: {diags:#?}");
        }
    }
}

#[test]
fn a_diagnostic_shows_no_secret_of_its_line() {
    let secret = "hunter2hunter";
    for (what, yaml) in [
        (
            "a password on a line of its own",
            format!("    password:\n      {secret}\n"),
        ),
        (
            "an unknown field beside a password in a flow mapping",
            format!("    extra: {{ bogus: 1, password: {secret} }}\n"),
        ),
        (
            "a folded password",
            format!("    password: >-\n      {secret}\n      second-word\n"),
        ),
    ] {
        let source = with_command("npm test").replace("    stacks:", &format!("{yaml}    stacks:"));
        let (diags, text) = shown(&source);
        assert!(
            diags.iter().any(|d| d.message.contains("contains a password")),
            "{what}: {text}"
        );
        assert!(!text.contains(secret), "{what}: shown:\n{text}");
        assert!(!text.contains("second-word"), "{what}: shown:\n{text}");
    }
}
