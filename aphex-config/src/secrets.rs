//! Credential detection: AWS access key IDs and secret access keys, GitHub
//! tokens, PEM private keys, passwords. Findings carry the kind and where the
//! secret sits in the text, never a copy meant for output; [`redact`] masks
//! secrets in text that is about to be shown.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// What kind of credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// `AKIA...` / `ASIA...` key IDs.
    AwsAccessKeyId,
    /// A 40-character secret access key under a secret-ish field name.
    AwsSecretAccessKey,
    /// `ghp_...`, `gho_...`, `github_pat_...` and friends.
    GitHubToken,
    /// A PEM `-----BEGIN ... PRIVATE KEY-----` block.
    PrivateKey,
    /// A `password:` value, a `--password=` argument or a password in a URL.
    Password,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::AwsAccessKeyId => "an AWS access key ID",
            CredentialKind::AwsSecretAccessKey => "an AWS secret access key",
            CredentialKind::GitHubToken => "a GitHub token",
            CredentialKind::PrivateKey => "a private key",
            CredentialKind::Password => "a password",
        })
    }
}

/// One credential in a piece of text: its kind and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub kind: CredentialKind,
    /// Byte range of the secret in the text that was searched.
    pub range: std::ops::Range<usize>,
}

// Each pattern compiles on first use (see `rules::Res`); the token patterns
// only once their literal trigger is in the text.
struct Patterns {
    tokens: [(CredentialKind, LazyLock<Regex>); 3],
    inline_password: LazyLock<Regex>,
    url_password: LazyLock<Regex>,
    aws_secret: LazyLock<Regex>,
}

// Literal patterns, checked by the unit tests below.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid credential pattern")
}

static PATTERNS: Patterns = Patterns {
    tokens: [
        (
            CredentialKind::AwsAccessKeyId,
            LazyLock::new(|| re("(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}")),
        ),
        (
            CredentialKind::GitHubToken,
            LazyLock::new(|| re("(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,})")),
        ),
        (
            CredentialKind::PrivateKey,
            LazyLock::new(|| {
                re(
                    r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)",
                )
            }),
        ),
    ],
    inline_password: LazyLock::new(|| re(r#"(?i)(?:password|passwd|pwd)\s*[=:]\s*["']?([^\s"'$][^\s"']*)"#)),
    url_password: LazyLock::new(|| re(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:([^/\s@$][^/\s@]*)@")),
    aws_secret: LazyLock::new(|| re("^[A-Za-z0-9/+=]{40}$")),
};

fn patterns() -> &'static Patterns {
    &PATTERNS
}

/// Token-shaped credentials (access key IDs, GitHub tokens, private keys):
/// the same wherever they appear, comments included.
pub fn find_tokens(text: &str) -> Vec<Finding> {
    let p = patterns();
    // Cheap literal checks first: this runs on every string of a file.
    let triggers: [&[&str]; 3] = [
        &["AKIA", "ASIA", "ABIA", "ACCA"],
        &["gh", "github_pat_"],
        &["PRIVATE KEY"],
    ];
    let mut out = Vec::new();
    for ((kind, re), lits) in p.tokens.iter().zip(triggers) {
        if lits.iter().any(|l| text.contains(l)) {
            out.extend(re.find_iter(text).map(|m| Finding {
                kind: *kind,
                range: m.range(),
            }));
        }
    }
    out
}

/// Credentials that look the same wherever they appear ([`find_tokens`]),
/// and passwords written inline (`--password=...`, URLs).
pub fn find_in_text(text: &str) -> Vec<Finding> {
    let p = patterns();
    let mut out = find_tokens(text);
    let lower_has = |needles: &[&str]| {
        text.as_bytes()
            .windows(4)
            .any(|w| needles.iter().any(|n| w.eq_ignore_ascii_case(&n.as_bytes()[..4])))
    };
    let mut inline = Vec::new();
    if text.contains("://") {
        inline.push(&p.url_password);
    }
    if text.len() >= 4 && lower_has(&["pass", "pwd=", "pwd:", "pwd "]) {
        inline.push(&p.inline_password);
    }
    for re in inline {
        for c in re.captures_iter(text) {
            if let Some(m) = c.get(1) {
                out.push(Finding {
                    kind: CredentialKind::Password,
                    range: m.range(),
                });
            }
        }
    }
    out.sort_by_key(|f| f.range.start);
    out
}

/// Whether a field called `key` holds a password (`password`, `dbPassword`, `pwd`, ...).
pub fn is_password_key(key: &str) -> bool {
    // Every spelling contains `pass` or `pwd`; most keys do not, and this
    // runs per value, so check before allocating.
    let has = |n: &[u8]| key.as_bytes().windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    if !has(b"pass") && !has(b"pwd") {
        return false;
    }
    let name: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(|c| c.to_lowercase())
        .collect();
    name.ends_with("password") || name.ends_with("passwd") || name == "pwd"
}

/// Whether `text` holds anything [`find_in_text`] would find. One pass of
/// each pattern over a whole file is far cheaper than one per value, so a
/// file without any skips the per-value text search.
pub fn any_in_text(text: &str) -> bool {
    let p = patterns();
    if !find_tokens(text).is_empty() {
        return true;
    }
    // Literal checks first, so a file without them never compiles the patterns.
    if text.contains("://") && p.url_password.is_match(text) {
        return true;
    }
    // `(?i)` folds Unicode: U+017F (long s) matches `s` too.
    let lower = text.to_ascii_lowercase();
    (lower.contains("pass") || lower.contains("pwd") || text.contains('\u{17f}'))
        && p.inline_password.is_match(text)
}

/// Credentials in the value of a field called `key`: everything
/// [`find_in_text`] finds, plus secret access keys under secret-ish names and
/// any `password:` value.
pub fn find_in_field(key: &str, value: &str) -> Vec<Finding> {
    let mut out = find_in_text(value);
    out.extend(find_by_key(key, value, !out.is_empty()));
    out
}

/// The credentials only the field name reveals: a secret access key under a
/// secret-ish name, a `password:` value. Empty when `found` already.
pub(crate) fn find_by_key(key: &str, value: &str, found: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let trimmed = value.trim();
    // Only a 40-character value can be a secret key; passwords need their key.
    if found || trimmed.is_empty() || (trimmed.len() != 40 && !is_password_key(key)) {
        return out;
    }
    let name: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .flat_map(|c| c.to_lowercase())
        .collect();
    let start = value.len() - value.trim_start().len();
    let range = start..start + trimmed.len();
    let secretish = [
        "secret",
        "accesskey",
        "privatekey",
        "credential",
        "token",
        "apikey",
    ]
    .iter()
    .any(|s| name.contains(s));
    let mixed = trimmed.chars().any(|c| c.is_ascii_uppercase())
        && trimmed.chars().any(|c| c.is_ascii_lowercase())
        && trimmed.chars().any(|c| c.is_ascii_digit());
    if secretish && mixed && patterns().aws_secret.is_match(trimmed) {
        out.push(Finding {
            kind: CredentialKind::AwsSecretAccessKey,
            range,
        });
    } else if is_password_key(key) && !trimmed.is_empty() && !trimmed.starts_with('$') {
        out.push(Finding {
            kind: CredentialKind::Password,
            range,
        });
    }
    out
}

/// `text` with every secret [`find_in_text`] sees, and every secret-ish
/// `key: value` on one line, replaced by `<redacted>`.
pub fn redact(text: &str) -> String {
    let mut ranges: Vec<_> = find_in_text(text).into_iter().map(|f| f.range).collect();
    // A `key: value` line whose value is a secret for that key.
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some(colon) = body.find(": ") {
            let key = body[..colon]
                .trim()
                .trim_start_matches("- ")
                .trim_matches(['"', '\'']);
            let value_start = colon + 2;
            let value = body[value_start..].split(" #").next().unwrap_or_default();
            let unquoted = value.trim().trim_matches(['"', '\'']);
            if let Some(f) = find_in_field(key, unquoted).into_iter().next()
                && let Some(at) = body[value_start..].find(unquoted)
            {
                let s = offset + value_start + at;
                ranges.push(s + f.range.start..s + f.range.end);
            }
        }
        offset += line.len();
    }
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        if r.start < at {
            at = at.max(r.end);
            continue;
        }
        out.push_str(&text[at..r.start]);
        out.push_str("<redacted>");
        at = r.end;
    }
    out.push_str(&text[at.min(text.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKIA: &str = "AKIAIOSFODNN7EXAMPLE";
    const GHP: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

    #[test]
    fn literal_checks_never_hide_a_password() {
        for text in [
            "PASSWORD=hunter22",
            "Pwd: s3cret-x",
            "pa\u{17f}\u{17f}word: hunter22",
            "db: https://u:hunter22@h",
        ] {
            assert!(any_in_text(text), "{text}");
        }
        assert!(!any_in_text("name: dev\nregion: us-east-1\n"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        // Property: the literal checks in `any_in_text` only skip work: its
        // answer is the patterns' own on any text.
        #[test]
        fn any_in_text_is_the_patterns_answer(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("password".to_owned()),
                    proptest::strategy::Just("PaSs".to_owned()),
                    proptest::strategy::Just("pwd".to_owned()),
                    proptest::strategy::Just("\u{17f}".to_owned()),
                    proptest::strategy::Just("://".to_owned()),
                    proptest::strategy::Just("@".to_owned()),
                    "[ :=a-z0-9\"'/$]{0,6}",
                ],
                0..12,
            )
        ) {
            let text = parts.concat();
            let p = patterns();
            let direct = !find_tokens(&text).is_empty()
                || p.url_password.is_match(&text)
                || p.inline_password.is_match(&text);
            proptest::prop_assert_eq!(any_in_text(&text), direct, "{:?}", text);
        }
    }

    #[test]
    fn finds_each_kind() {
        let kinds = |t: &str| find_in_text(t).into_iter().map(|f| f.kind).collect::<Vec<_>>();
        assert_eq!(kinds(&format!("x{AKIA}y")), [CredentialKind::AwsAccessKeyId]);
        assert_eq!(kinds(GHP), [CredentialKind::GitHubToken]);
        assert_eq!(
            kinds("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
            [CredentialKind::GitHubToken]
        );
        assert_eq!(
            kinds("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"),
            [CredentialKind::PrivateKey]
        );
        assert_eq!(kinds("mysql --password=hunter2"), [CredentialKind::Password]);
        assert_eq!(
            kinds("https://me:hunter2@example.com/x"),
            [CredentialKind::Password]
        );
        assert!(kinds("mysql --password=$DB_PASSWORD").is_empty());
        assert!(kinds("npm run build").is_empty());
    }

    #[test]
    fn secret_keys_only_under_secretish_names() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            find_in_field("aws_secret_access_key", secret)[0].kind,
            CredentialKind::AwsSecretAccessKey
        );
        assert!(find_in_field("path", secret).is_empty());
        // Kubernetes Secret names under secret-ish fields are not secrets.
        assert!(find_in_field("tokenSecret", "github-token").is_empty());
        assert_eq!(
            find_in_field("dbPassword", "hunter2")[0].kind,
            CredentialKind::Password
        );
    }

    #[test]
    fn redact_masks_secrets_and_keeps_the_rest() {
        let line = format!("    account: \"{AKIA}\"  # key");
        assert_eq!(redact(&line), "    account: \"<redacted>\"  # key");
        assert_eq!(redact("  password: hunter2"), "  password: <redacted>");
        assert_eq!(redact("  name: dev"), "  name: dev");
    }
}
