//! Secret redaction: every log line, error, record and notification goes
//! through a [`Redactor`] before it leaves the process. It masks the values
//! of variables whose names say they are secret, and every credential shape
//! of the catalogue (`aphex_config::secrets`, shared with `aphex validate`),
//! wherever they appear, with the catalogue's one [`MASK`].
//!
//! Command output is read line by line ([`LineRedactor`]): a PEM private
//! key printed over several lines is masked from its BEGIN line to its END
//! line. Limits (documented in docs/security.md): a secret printed in a
//! transformed form (base64, reversed, split over lines other than a PEM
//! block) is not found.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use aphex_config::secrets;

pub use aphex_config::secrets::{MASK, is_secret_name};

/// Values shorter than this are not masked: masking `1` or `true` would
/// destroy every log without hiding anything worth hiding.
const MIN_SECRET_LEN: usize = 6;

/// Masks known secret values and credential-shaped text. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    values: Arc<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    // Never print the values, not even in a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.values.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor that masks only credential-shaped text.
    pub fn new() -> Self {
        Self::default()
    }

    /// A redactor for the secret-named variables among `vars`.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::new().with_vars(vars)
    }

    /// A redactor for the secret-named variables of this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// This redactor plus the secret-named variables among `vars`.
    pub(crate) fn with_vars<I, K, V>(&self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.with_values(
            vars.into_iter()
                .filter(|(k, _)| is_secret_name(k.as_ref()))
                .map(|(_, v)| v.as_ref().to_owned()),
        )
    }

    /// This redactor plus explicit secret values.
    pub fn with_values<I, V>(&self, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: AsRef<str>,
    {
        let mut all: BTreeSet<String> = self.values.iter().cloned().collect();
        for v in values {
            let v = v.as_ref().trim();
            if v.len() >= MIN_SECRET_LEN {
                all.insert(v.to_owned());
            }
        }
        Redactor {
            values: Arc::new(all.into_iter().collect()),
        }
    }

    /// `text` with every secret masked.
    pub fn redact(&self, text: &str) -> String {
        secrets::mask(text, self.ranges(text))
    }

    /// Where the secrets in `text` are (byte ranges, possibly overlapping).
    fn ranges(&self, text: &str) -> Vec<Range<usize>> {
        let mut ranges = secrets::occurrences(text, self.values.iter().map(String::as_str));
        ranges.extend(secrets::find_in_text(text).into_iter().map(|f| f.range));
        ranges
    }

    /// A redactor for one stream of lines (one command's stdout, say).
    pub fn lines(&self) -> LineRedactor<'_> {
        LineRedactor {
            redactor: self,
            key_lines_left: 0,
        }
    }
}

/// The most lines after a PEM BEGIN line masked while waiting for its END
/// (an RSA-16384 key is about 200): a tool that prints only the BEGIN line
/// (a scanner's finding, a `grep`) must not hide the rest of the log.
const MAX_KEY_LINES: usize = 256;

/// Redacts a stream line by line, remembering whether a PEM private key
/// block is open (its body lines look like nothing else).
#[derive(Debug)]
pub struct LineRedactor<'r> {
    redactor: &'r Redactor,
    /// Lines still masked as the body of an open private key block.
    key_lines_left: usize,
}

impl LineRedactor<'_> {
    /// The next line of the stream, redacted.
    pub fn line(&mut self, line: &str) -> String {
        self.line_cut(line, line.len())
    }

    /// The next line of the stream, redacted with all of `line` in view but
    /// only its first `cut` bytes shown (a character boundary): a secret
    /// that crosses the cut is masked, not shown in part.
    pub(crate) fn line_cut(&mut self, line: &str, cut: usize) -> String {
        if self.key_lines_left > 0 {
            self.key_lines_left -= 1;
            let Some(end) = secrets::private_key_end(line) else {
                return MASK.to_owned();
            };
            self.key_lines_left = 0;
            if end >= cut {
                return MASK.to_owned();
            }
            let rest = self.line_cut(&line[end..], cut - end);
            return format!("{MASK}{rest}");
        }
        // The catalogue masks an open block from BEGIN to the end of the line.
        if secrets::opens_private_key(line) {
            self.key_lines_left = MAX_KEY_LINES;
        }
        let ranges = self
            .redactor
            .ranges(line)
            .into_iter()
            .filter(|r| r.start < cut)
            .map(|r| r.start..r.end.min(cut))
            .collect();
        secrets::mask(&line[..cut], ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_secret_named_variables_only() {
        let r = Redactor::from_vars([
            ("DB_PASSWORD", "hunter2hunter2"),
            ("GITHUB_TOKEN", "abcdef123456"),
            ("REGION", "us-east-1-not-secret"),
            ("GIT_AUTHOR_NAME", "Jane Developer"),
        ]);
        assert_eq!(
            r.redact("pw=hunter2hunter2 tok=abcdef123456 region=us-east-1-not-secret by Jane Developer"),
            "pw=*** tok=*** region=us-east-1-not-secret by Jane Developer"
        );
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        let r = Redactor::new().with_values(["abcdef", "xxabcdefyy"]);
        assert_eq!(r.redact("1 xxabcdefyy 2 abcdef"), "1 *** 2 ***");
    }

    #[test]
    fn short_values_are_not_masked() {
        let r = Redactor::from_vars([("SOME_TOKEN", "1")]);
        assert_eq!(r.redact("exit 1"), "exit 1");
    }

    #[test]
    fn a_private_key_is_masked_from_begin_to_end() {
        let r = Redactor::new();
        let mut lines = r.lines();
        let out: Vec<String> = [
            "key follows:",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
            "AAAAC3NzaC1lZDI1NTE5AAAAIG",
            "-----END OPENSSH PRIVATE KEY----- done",
            "after",
        ]
        .iter()
        .map(|l| lines.line(l))
        .collect();
        assert_eq!(out, ["key follows:", "***", "***", "***", "*** done", "after"]);
    }

    #[test]
    fn a_begin_line_alone_masks_a_bounded_number_of_lines() {
        let r = Redactor::new();
        let mut lines = r.lines();
        lines.line("found: -----BEGIN RSA PRIVATE KEY-----");
        let masked = (0..MAX_KEY_LINES + 5)
            .filter(|i| lines.line(&format!("line {i}")) == MASK)
            .count();
        assert_eq!(masked, MAX_KEY_LINES);
    }

    #[test]
    fn a_secret_crossing_the_cut_is_masked_not_shown_in_part() {
        let r = Redactor::new().with_values(["hunter2hunter2"]);
        let line = "abc hunter2hunter2 def";
        for cut in 0..=line.len() {
            let shown = r.lines().line_cut(line, cut);
            assert!(!shown.contains("hunt"), "cut {cut}: {shown}");
        }
        assert_eq!(r.lines().line_cut(line, 6), "abc ***");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        // Property: a secret-named variable's value never survives redaction,
        // whatever text surrounds it and however often it appears.
        #[test]
        fn secret_values_never_survive(
            secret in "[A-Za-z0-9+/=_.-]{6,40}",
            before in ".{0,30}",
            after in ".{0,30}",
            times in 1usize..4,
        ) {
            let r = Redactor::from_vars([("API_TOKEN", secret.as_str())]);
            let text = format!("{before}{}{after}", secret.repeat(times));
            prop_assert!(!r.redact(&text).contains(&secret));
        }
    }
}
