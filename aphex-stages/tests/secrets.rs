//! The catalogue of secrets seen from a build's output: every shape of the
//! shared table (`aphex_testkit::secrets`, the one `aphex validate` is
//! tested with) is masked when a command prints it, when the pipe delivers
//! it in two chunks split anywhere, and wherever it falls around the line
//! cap and the end of the redactor's lookahead; the lines that only look
//! close come out unchanged. Also: output bounds (a long line is cut with a
//! marker, a flood of lines all arrive in order).

mod support;

use std::sync::Arc;

use aphex_stages::lines::{LINE_CAP, LOOKAHEAD, Line, LineSplitter, shown};
use aphex_stages::process::{Cancel, CommandSpec, Exec};
use aphex_stages::redact::{MASK, Redactor};
use aphex_stages::report::{CollectingReporter, Event};
use aphex_testkit::secrets::{SecretCase, cases, innocent};
use support::rt;

/// The lines a command printed, as reported (redacted, cut).
fn printed(command: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let reporter = Arc::new(CollectingReporter::default());
    let exec = Exec {
        reporter: reporter.clone(),
        redactor: Redactor::new(),
        cancel: Cancel::new(),
    };
    let spec = CommandSpec {
        stage: "build".to_owned(),
        prefix: "build 1/1".to_owned(),
        command: command.to_owned(),
        cwd: dir.path().to_owned(),
        env: Vec::new(),
        unset: Vec::new(),
    };
    rt().block_on(exec.run(&spec)).expect("the command runs");
    reporter
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Output { line, .. } => Some(line),
            _ => None,
        })
        .collect()
}

/// `text` as one shell word.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// What one stream's lines show once split from `chunks` and redacted.
fn through_the_reader(chunks: &[&[u8]]) -> Vec<String> {
    let redactor = Redactor::new();
    let mut lines_redactor = redactor.lines();
    let mut splitter = LineSplitter::default();
    let mut lines: Vec<Line> = Vec::new();
    for c in chunks {
        splitter.push(c, &mut lines);
    }
    lines.extend(splitter.finish());
    lines.iter().map(|l| shown(l, &mut lines_redactor)).collect()
}

/// The one check: `shown` (what a reader sees of `case`'s text) holds
/// neither the secret nor any 8 bytes of it, and holds the mask when
/// `masked` (a cut may drop the secret and its mask together).
fn assert_hidden(case: &SecretCase, how: &str, shown: &[String], masked: bool) {
    let text = shown.join("\n");
    let secret = case.secret.as_bytes();
    for piece in secret.windows(8.min(secret.len())) {
        let piece = std::str::from_utf8(piece).unwrap();
        assert!(
            !text.contains(piece),
            "{} ({how}): `{piece}` of the secret is shown:\n{}",
            case.shape,
            &text[..text.len().min(2000)]
        );
    }
    if masked {
        assert!(text.contains(MASK), "{} ({how}): no mask in:\n{text}", case.shape);
    }
}

#[test]
fn every_shape_is_masked_in_build_output() {
    for c in cases() {
        let lines = printed(&format!("printf '%s\\n' {}", quoted(&c.text)));
        assert_eq!(lines.len(), c.text.lines().count(), "{}: {lines:?}", c.shape);
        assert_hidden(&c, "printed by a command", &lines, true);
    }
}

#[test]
fn lines_that_only_look_close_are_printed_unchanged() {
    for line in innocent() {
        assert_eq!(printed(&format!("printf '%s\\n' {}", quoted(line))), [line]);
    }
}

#[test]
fn every_shape_split_across_two_chunks_anywhere_is_masked() {
    for c in cases() {
        let bytes = format!("{}\n", c.text).into_bytes();
        for at in 0..=bytes.len() {
            let lines = through_the_reader(&[&bytes[..at], &bytes[at..]]);
            assert_hidden(&c, &format!("split at byte {at}"), &lines, true);
        }
    }
}

#[test]
fn every_shape_around_the_line_cap_and_the_lookahead_is_masked() {
    let keep = LINE_CAP + LOOKAHEAD;
    for c in cases() {
        // One line: the private key's lines joined (its pattern spans them).
        let text = c.text.replace('\n', " ");
        let at = text.find(&c.secret).unwrap();
        let len = c.secret.len();
        // Where the secret starts: before the cap, across it, right at it,
        // after it, across the end of what the reader keeps, past it.
        let starts = [
            LINE_CAP - len - 1,
            LINE_CAP - len,
            LINE_CAP - len / 2,
            LINE_CAP - 1,
            LINE_CAP,
            LINE_CAP + 1,
            keep - len,
            keep - len / 2,
            keep - 1,
            keep,
            keep + 10,
        ];
        for start in starts {
            let before = start - at;
            let line = format!("{}{text}{}\n", "~".repeat(before), "~".repeat(keep));
            // The pipe's chunks cut around the interesting places too.
            let bytes = line.as_bytes();
            let cut = (start + len / 2).min(bytes.len());
            let lines = through_the_reader(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(lines.len(), 1);
            assert!(lines[0].ends_with("more bytes not shown]"), "{}", c.shape);
            // Masked when any of the secret's bytes fell before the cap.
            assert_hidden(&c, &format!("starting at byte {start}"), &lines, start < LINE_CAP);
        }
    }
}

#[test]
fn a_long_line_is_cut_with_a_marker_and_the_next_line_follows() {
    let lines = printed("head -c 1000000 /dev/zero | tr '\\0' x; echo; echo next");
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        format!(
            "{} [aphex: line cut at 64 KiB; {} more bytes not shown]",
            "x".repeat(LINE_CAP),
            1_000_000 - LINE_CAP
        )
    );
    assert_eq!(lines[1], "next");
}

#[test]
fn a_flood_of_lines_arrives_whole_and_in_order() {
    let lines = printed("seq 1 200000");
    assert_eq!(lines.len(), 200_000);
    assert!(lines.iter().enumerate().all(|(i, l)| *l == (i + 1).to_string()));
}
