//! Secret redaction: every log line, error, record and notification goes
//! through a [`Redactor`] before it leaves the process. It masks the values
//! of variables whose names look secret, and anything shaped like an AWS
//! access key or a GitHub token, wherever they appear.
//!
//! Limits (documented in docs/stages.md): a secret split across two output
//! lines, or printed in a transformed form (base64, reversed), is not found.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use regex::Regex;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Values shorter than this are not masked: masking `1` or `true` would
/// destroy every log without hiding anything worth hiding.
const MIN_SECRET_LEN: usize = 6;

/// Name fragments that make a variable's value secret.
const SECRET_NAME_PARTS: &[&str] = &[
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "PRIVATE_KEY",
    "CREDENTIAL",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "WEBHOOK_URL",
    "AUTH",
];

// Shapes of credentials worth masking even when no variable names them.
static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // AWS access key ids (long-term and temporary, users and roles). No
        // word boundaries: a key glued to other text is still a key.
        r"(?:AKIA|ASIA|AROA|AIDA|AGPA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}",
        // A secret access key written next to its label.
        r#"(?i)(aws_secret_access_key|secretaccesskey)(["']?\s*[:=]\s*["']?)[A-Za-z0-9/+=]{40}"#,
        // GitHub tokens: classic and fine-grained.
        r"gh[pousr]_[A-Za-z0-9]{36,255}",
        r"github_pat_[A-Za-z0-9_]{22,255}",
        // Slack webhook URLs carry their secret in the path.
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",
    ]
    .iter()
    .map(|p| Regex::new(p).expect("redaction pattern compiles"))
    .collect()
});

/// Whether a variable called `name` holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
}

/// Masks known secret values and credential-shaped text. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    // Longest first, so a secret that contains another is masked whole.
    values: Arc<Vec<String>>,
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
    pub fn with_vars<I, K, V>(&self, vars: I) -> Self
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
        let mut values: Vec<String> = all.into_iter().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Redactor {
            values: Arc::new(values),
        }
    }

    /// `text` with every secret masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in self.values.iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        for (i, re) in PATTERNS.iter().enumerate() {
            if re.is_match(&out) {
                out = if i == 1 {
                    // Keep the label so the reader knows what was there.
                    re.replace_all(&out, format!("${{1}}${{2}}{MASK}")).into_owned()
                } else {
                    re.replace_all(&out, MASK).into_owned()
                };
            }
        }
        out
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
        ]);
        assert_eq!(
            r.redact("pw=hunter2hunter2 tok=abcdef123456 region=us-east-1-not-secret"),
            "pw=*** tok=*** region=us-east-1-not-secret"
        );
    }

    #[test]
    fn masks_credential_shapes() {
        let r = Redactor::new();
        assert_eq!(r.redact("key AKIAIOSFODNN7EXAMPLE here"), "key *** here");
        assert_eq!(
            r.redact("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "aws_secret_access_key = ***"
        );
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        assert_eq!(r.redact(&format!("token {gh}.")), "token ***.");
        // A commit SHA is 40 hex characters and must stay readable.
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(r.redact(sha), sha);
    }

    #[test]
    fn short_values_are_not_masked() {
        let r = Redactor::from_vars([("SOME_TOKEN", "1")]);
        assert_eq!(r.redact("exit 1"), "exit 1");
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
