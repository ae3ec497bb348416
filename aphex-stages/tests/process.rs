//! Process execution: order and stop-at-first-failure, exit codes and the
//! tail of the output in errors, `pipefail` semantics, redaction of every
//! line, cancellation.

mod support;

use std::sync::Arc;

use aphex_stages::process::{Cancel, CommandSpec, Exec, ProcessError};
use aphex_stages::redact::Redactor;
use aphex_stages::report::{CollectingReporter, Event, Reporter};
use aphex_stages::stages::{self, StageError};
use proptest::prelude::*;
use support::*;

fn spec(cwd: &std::path::Path, command: &str, env: Vec<(String, String)>) -> CommandSpec {
    CommandSpec {
        stage: "t".to_owned(),
        prefix: "t 1/1".to_owned(),
        command: command.to_owned(),
        cwd: cwd.to_owned(),
        env,
        unset: Vec::new(),
    }
}

fn exec(reporter: Arc<dyn Reporter>, redactor: Redactor) -> Exec {
    Exec {
        reporter,
        redactor,
        cancel: Cancel::new(),
    }
}

#[test]
fn failure_carries_exit_code_and_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let reporter = Arc::new(CollectingReporter::default());
    let e = exec(reporter.clone(), Redactor::new());
    let err = rt()
        .block_on(e.run(&spec(
            dir.path(),
            "for i in $(seq 1 30); do echo line$i; done; echo oops >&2; exit 7",
            vec![],
        )))
        .unwrap_err();
    let ProcessError::Failed { exit_code, tail, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*exit_code, Some(7));
    assert_eq!(tail.len(), 20);
    assert_eq!(tail.last().unwrap(), "oops");
    assert!(err.to_string().contains("exited with code 7"), "{err}");
    assert!(err.to_string().contains("line30"), "{err}");
    assert!(!err.to_string().contains("line10\n"), "{err}");
    // Every line reached the reporter, with the prefix and a timestamp.
    let outputs: Vec<_> = reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Output {
                prefix,
                timestamp,
                line,
                ..
            } => Some((prefix, timestamp, line)),
            _ => None,
        })
        .collect();
    assert_eq!(outputs.len(), 31);
    assert!(outputs.iter().all(|(p, t, _)| p == "t 1/1" && t.contains('T')));
    let finished = reporter.events().into_iter().find_map(|e| match e {
        Event::CommandFinished { exit_code, .. } => Some(exit_code),
        _ => None,
    });
    assert_eq!(finished, Some(Some(7)));
}

#[test]
fn pipefail_and_unset_variables_fail() {
    let dir = tempfile::tempdir().unwrap();
    let e = exec(Arc::new(CollectingReporter::default()), Redactor::new());
    let r = rt();
    assert!(
        r.block_on(e.run(&spec(dir.path(), "false | cat", vec![])))
            .is_err()
    );
    assert!(
        r.block_on(e.run(&spec(dir.path(), "echo $NOT_SET_ANYWHERE_X", vec![])))
            .is_err()
    );
    assert!(
        r.block_on(e.run(&spec(dir.path(), "false; echo after", vec![])))
            .is_err()
    );
    assert!(r.block_on(e.run(&spec(dir.path(), "true | cat", vec![]))).is_ok());
}

/// Cancels the run as soon as a command starts.
struct CancelOnStart(Cancel, CollectingReporter);

impl Reporter for CancelOnStart {
    fn event(&self, event: &Event) {
        if matches!(event, Event::CommandStarted { .. }) {
            self.0.cancel();
        }
        self.1.event(event);
    }
}

#[test]
fn cancellation_stops_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    let reporter = Arc::new(CancelOnStart(cancel.clone(), CollectingReporter::default()));
    let e = Exec {
        reporter,
        redactor: Redactor::new(),
        cancel,
    };
    let started = std::time::Instant::now();
    // A child of the shell that would outlive a kill of bash alone.
    let err = rt()
        .block_on(e.run(&spec(dir.path(), "sleep 300 & wait", vec![])))
        .unwrap_err();
    assert!(matches!(err, ProcessError::Interrupted { .. }), "{err}");
    assert!(
        started.elapsed().as_secs() < 60,
        "cancel took {:?}",
        started.elapsed()
    );
}

#[test]
fn stage_commands_stop_at_first_failure_with_its_field() {
    let mut h = harness(MINIMAL);
    h.ctx.config.build.commands = ["echo one >> order", "exit 3", "echo three >> order"]
        .map(String::from)
        .to_vec();
    let err = rt().block_on(stages::build::run(&h.ctx)).unwrap_err();
    assert!(matches!(err, StageError::Command { .. }));
    assert_eq!(err.command_exit_code(), Some(3));
    assert!(
        err.to_string()
            .starts_with("build.commands[1]: `exit 3` exited with code 3"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(h.checkout().join("order")).unwrap(),
        "one\n"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    // Property: commands run in the configured order, and the first failing
    // one stops the stage with its exit code; no later command runs.
    #[test]
    fn commands_run_in_order_and_stop_at_first_failure(
        codes in proptest::collection::vec(prop_oneof![4 => Just(0i32), 1 => 1i32..5], 1..7),
    ) {
        let commands: Vec<String> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| format!("echo {i} >> order; exit {c}"))
            .collect();
        let mut h = harness(MINIMAL);
        h.ctx.config.build.commands = commands;
        let result = rt().block_on(stages::build::run(&h.ctx));
        let first_failure = codes.iter().position(|c| *c != 0);
        let ran: Vec<usize> = std::fs::read_to_string(h.checkout().join("order"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        let expected: Vec<usize> = (0..=first_failure.unwrap_or(codes.len() - 1)).collect();
        prop_assert_eq!(ran, expected);
        match first_failure {
            None => prop_assert!(result.is_ok()),
            Some(i) => {
                let err = result.unwrap_err();
                prop_assert_eq!(err.command_exit_code(), Some(codes[i]));
                let prefix = format!("build.commands[{i}]");
                prop_assert!(err.to_string().starts_with(&prefix));
            }
        }
    }

    // Property: a secret (the value of a secret-named variable, or an AWS key
    // or GitHub token shape) printed by a command on either stream, anywhere
    // in a line, appears in no reported event, no log line and no error.
    #[test]
    fn redaction_never_leaks_command_output(
        secret in "[A-Za-z0-9]{8,32}",
        key_tail in "[A-Z0-9]{16}",
        token_tail in "[A-Za-z0-9]{36}",
        before in "[a-z :=]{0,10}",
        after in "[a-z :=]{0,10}",
        to_stderr in any::<bool>(),
        fail in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let reporter = Arc::new(CollectingReporter::default());
        let e = exec(reporter.clone(), Redactor::from_vars([("DEPLOY_TOKEN", secret.as_str())]));
        let aws_key = format!("AKIA{key_tail}");
        let gh = format!("ghp_{token_tail}");
        let redirect = if to_stderr { " >&2" } else { "" };
        let command = format!(
            "printf '%s\\n' '{before}'\"$MY_PASSWORD\"'{after}' '{before}{aws_key}{after}' 'x{gh}x'{redirect}; echo \"$MY_PASSWORD\"; exit {}",
            u8::from(fail)
        );
        let result = rt().block_on(e.run(&spec(
            dir.path(),
            &command,
            vec![("MY_PASSWORD".to_owned(), secret.clone())],
        )));
        let mut texts = vec![reporter.text()];
        if let Err(err) = &result {
            texts.push(err.to_string());
        }
        prop_assert_eq!(result.is_err(), fail);
        for text in texts {
            prop_assert!(!text.contains(&secret), "secret leaked: {}", text);
            prop_assert!(!text.contains(&aws_key), "AWS key leaked: {}", text);
            prop_assert!(!text.contains(&token_tail), "token leaked: {}", text);
        }
        prop_assert!(reporter.text().contains("***"));
    }
}

#[test]
fn background_processes_left_holding_the_output_do_not_hang_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let e = exec(Arc::new(CollectingReporter::default()), Redactor::new());
    let started = std::time::Instant::now();
    let result = rt().block_on(e.run(&spec(dir.path(), "echo hi; sleep 300 &", vec![])));
    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed().as_secs() < 60, "took {:?}", started.elapsed());
}

#[test]
fn unset_variables_are_removed_from_the_inherited_environment() {
    let dir = tempfile::tempdir().unwrap();
    assert!(std::env::var_os("HOME").is_some(), "the test process has HOME");
    let e = exec(Arc::new(CollectingReporter::default()), Redactor::new());
    let inherited = spec(dir.path(), "test -n \"${HOME:-}\"", vec![]);
    rt().block_on(e.run(&inherited)).expect("HOME is inherited");
    let removed = CommandSpec {
        unset: vec!["HOME".to_owned()],
        ..spec(dir.path(), "test -z \"${HOME:-}\"", vec![])
    };
    rt().block_on(e.run(&removed)).expect("HOME is gone");
}
