//! The catalogue of secrets: what a credential looks like, for every part of
//! Aphex that must find one. `aphex validate`'s credential check and the
//! stages' log redaction (`aphex_stages::redact`) both ask this module, and
//! both hide what they find behind the one [`MASK`].
//!
//! Two families of shapes:
//!
//! - **tokens** ([`find_tokens`]): text that is a credential wherever it
//!   appears, comments included. AWS access key IDs, AWS session tokens,
//!   GitHub, npm and Slack tokens, Slack webhook URLs, JSON Web Tokens, PEM
//!   private keys.
//! - **labelled values** (in [`find_in_text`] too): a value that is secret
//!   because of what precedes it. An AWS secret access key or session token
//!   after its label, npm's `_authToken=`, the password of a URL's user-info,
//!   `password=VALUE`, `--password VALUE`, and `-pVALUE` attached to a MySQL
//!   or MariaDB client. A separate `-p ARG` is never a password (`mkdir -p
//!   dist`, `ssh -p 22`), and a value starting with `$` is a variable, not a
//!   secret.
//!
//! Beside the text shapes, names say what their values hold:
//! [`is_secret_name`] (environment variables, fields) and
//! [`is_password_key`]; [`find_by_key`] uses them for configuration fields.
//!
//! Each shape names literal triggers, every match of it contains one of
//! them (ASCII case-insensitively); one automaton finds the triggers of every
//! shape in one pass, and a shape's pattern is only compiled and run once its
//! trigger is in the text. Patterns fold case in ASCII only, so a trigger
//! never hides a match.

use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

/// What every secret is replaced with, in diagnostics and in logs.
pub const MASK: &str = "***";

/// What kind of credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// `AKIA...` / `ASIA...` key IDs.
    AwsAccessKeyId,
    /// A 40-character secret access key after its label or under a secret-ish field name.
    AwsSecretAccessKey,
    /// An STS session token, by its prefix or after its label.
    AwsSessionToken,
    /// `ghp_...`, `gho_...`, `github_pat_...` and friends.
    GitHubToken,
    /// `npm_...` tokens and `_authToken=` values.
    NpmToken,
    /// `xoxb-...`, `xoxp-...`, `xapp-...` and friends.
    SlackToken,
    /// `https://hooks.slack.com/services/...`: the path is the secret.
    SlackWebhookUrl,
    /// A JSON Web Token (`eyJ....eyJ....sig`).
    Jwt,
    /// A PEM `-----BEGIN ... PRIVATE KEY-----` block.
    PrivateKey,
    /// A `password:` value, a `--password` argument, a client's `-pVALUE`
    /// or a password in a URL.
    Password,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::AwsAccessKeyId => "an AWS access key ID",
            CredentialKind::AwsSecretAccessKey => "an AWS secret access key",
            CredentialKind::AwsSessionToken => "an AWS session token",
            CredentialKind::GitHubToken => "a GitHub token",
            CredentialKind::NpmToken => "an npm token",
            CredentialKind::SlackToken => "a Slack token",
            CredentialKind::SlackWebhookUrl => "a Slack webhook URL",
            CredentialKind::Jwt => "a JSON Web Token",
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
    pub range: Range<usize>,
}

/// One shape of the catalogue.
struct Shape {
    kind: CredentialKind,
    /// A credential wherever it appears (see the module docs).
    token: bool,
    /// Literals every match contains, matched ASCII case-insensitively.
    triggers: &'static [&'static str],
    /// The pattern; its group `s`, when it has one, is the secret.
    pattern: LazyLock<Regex>,
}

// Literal patterns, checked by the unit tests below.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid credential pattern")
}

/// How a labelled value is separated from its label: `=` or `:` (with
/// quotes around either side, as JSON and shell write them) or blanks.
macro_rules! labelled {
    ($label:literal, $value:literal) => {
        concat!(
            "(?i-u:",
            $label,
            r#")(?:["']?\s*[:=]\s*["']?|\s+)(?P<s>"#,
            $value,
            ")"
        )
    };
}

static SHAPES: [Shape; 14] = [
    Shape {
        kind: CredentialKind::AwsAccessKeyId,
        token: true,
        triggers: &["AKIA", "ASIA", "ABIA", "ACCA"],
        // Access key IDs only: AROA/AIDA... are the unique IDs of roles and
        // users, which `aws sts get-caller-identity` prints, not credentials.
        pattern: LazyLock::new(|| re("(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}")),
    },
    Shape {
        kind: CredentialKind::AwsSessionToken,
        token: true,
        triggers: &["IQoJb3JpZ2luX2", "FwoGZXIvYXdz"],
        // STS session tokens start with one of these (the encoding of their header).
        pattern: LazyLock::new(|| re("(?:IQoJb3JpZ2luX2|FwoGZXIvYXdz)[A-Za-z0-9/+=]{40,}")),
    },
    Shape {
        kind: CredentialKind::GitHubToken,
        token: true,
        triggers: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        pattern: LazyLock::new(|| re("gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}")),
    },
    Shape {
        kind: CredentialKind::NpmToken,
        token: true,
        triggers: &["npm_"],
        pattern: LazyLock::new(|| re("npm_[A-Za-z0-9]{36}")),
    },
    Shape {
        kind: CredentialKind::SlackToken,
        token: true,
        triggers: &["xoxa-", "xoxb-", "xoxe-", "xoxp-", "xoxr-", "xoxs-", "xapp-"],
        pattern: LazyLock::new(|| re("xox[abeprs]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}")),
    },
    Shape {
        kind: CredentialKind::SlackWebhookUrl,
        token: true,
        triggers: &["hooks.slack.com/"],
        // The host stays readable; the path is the secret.
        pattern: LazyLock::new(|| {
            re(r"hooks\.slack\.com/(?P<s>(?:services|workflows|triggers)/[A-Za-z0-9/_-]+)")
        }),
    },
    Shape {
        kind: CredentialKind::Jwt,
        token: true,
        triggers: &["eyJ"],
        // Header and payload are base64url JSON objects (`{"` is `eyJ`); the
        // signature is empty for an unsigned token.
        pattern: LazyLock::new(|| re(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
    },
    Shape {
        kind: CredentialKind::PrivateKey,
        token: true,
        triggers: &["PRIVATE KEY"],
        // To its END line, or to the end of the text when cut off.
        pattern: LazyLock::new(|| {
            re(
                r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\z)",
            )
        }),
    },
    Shape {
        kind: CredentialKind::AwsSecretAccessKey,
        token: false,
        triggers: &["secret_access_key", "secretaccesskey", "secret-access-key"],
        pattern: LazyLock::new(|| {
            re(labelled!(
                "secret(?:_access_key|accesskey|-access-key)",
                "[A-Za-z0-9/+=]{40}"
            ))
        }),
    },
    Shape {
        kind: CredentialKind::AwsSessionToken,
        token: false,
        triggers: &["session_token", "sessiontoken", "session-token"],
        pattern: LazyLock::new(|| re(labelled!("session(?:_token|token|-token)", "[A-Za-z0-9/+=]{16,}"))),
    },
    Shape {
        kind: CredentialKind::NpmToken,
        token: false,
        triggers: &["_authtoken"],
        pattern: LazyLock::new(|| re(r#"(?i-u:_authtoken)\s*=\s*["']?(?P<s>[^\s"'$][^\s"']*)"#)),
    },
    Shape {
        kind: CredentialKind::Password,
        token: false,
        triggers: &["://"],
        // The password of a URL's user-info; the user name stays readable.
        pattern: LazyLock::new(|| re(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:(?P<s>[^/\s@$][^/\s@]*)@")),
    },
    Shape {
        kind: CredentialKind::Password,
        token: false,
        triggers: &["pass", "pwd"],
        // `password=x`, `"password": "x"`, `PWD: x`, `--password x`,
        // `--password=x`; not `--password-stdin`, not `$VARIABLE`.
        pattern: LazyLock::new(|| {
            re(
                r#"(?i-u:pass(?:word|wd)|pwd)["']?\s*[=:]\s*["']?(?P<s>[^\s"'$][^\s"']*)|(?i-u:--pass(?:word|wd))\s+["']?(?P<t>[^\s"'$-][^\s"']*)"#,
            )
        }),
    },
    Shape {
        kind: CredentialKind::Password,
        token: false,
        triggers: &["mysql", "mariadb"],
        // `mysql -uroot -phunter2`: the value glued to `-p`. A separate
        // `-p` makes the client prompt, and is not a password.
        pattern: LazyLock::new(|| {
            re(r#"\b(?:mysql[a-z]*|mariadb[a-z-]*)\b[^\n|;&]*?\s-p["']?(?P<s>[^\s"'$][^\s"']*)"#)
        }),
    },
];

/// Every trigger of every shape, in one automaton, with the shape each belongs to.
struct Triggers {
    automaton: AhoCorasick,
    shape_of: Vec<usize>,
}

static TRIGGERS: LazyLock<Triggers> = LazyLock::new(|| {
    let mut literals = Vec::new();
    let mut shape_of = Vec::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        for t in shape.triggers {
            literals.push(*t);
            shape_of.push(i);
        }
    }
    let automaton = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(literals)
        .expect("the credential triggers build");
    Triggers { automaton, shape_of }
});

/// The shapes whose trigger is in `text`, as a bit set over [`SHAPES`].
fn candidates(text: &str) -> u32 {
    let t = &*TRIGGERS;
    let mut set = 0u32;
    for m in t.automaton.find_overlapping_iter(text) {
        set |= 1 << t.shape_of[m.pattern().as_usize()];
    }
    set
}

fn find(text: &str, tokens_only: bool) -> Vec<Finding> {
    let set = candidates(text);
    if set == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        if set & (1 << i) == 0 || (tokens_only && !shape.token) {
            continue;
        }
        for c in shape.pattern.captures_iter(text) {
            let m = c
                .name("s")
                .or_else(|| c.name("t"))
                .or_else(|| c.get(0))
                .expect("a match has group 0");
            if !m.is_empty() {
                out.push(Finding {
                    kind: shape.kind,
                    range: m.range(),
                });
            }
        }
    }
    out.sort_by_key(|f| (f.range.start, f.range.end));
    out
}

/// Token-shaped credentials: the same wherever they appear, comments included.
pub fn find_tokens(text: &str) -> Vec<Finding> {
    find(text, true)
}

/// Every credential the catalogue knows in `text`: tokens and labelled
/// values, sorted by position (ranges may overlap).
pub fn find_in_text(text: &str) -> Vec<Finding> {
    find(text, false)
}

/// Whether `text` holds anything [`find_in_text`] would find. One pass of
/// the triggers over a whole file is far cheaper than one per value, so a
/// file without any skips the per-value text search.
pub fn any_in_text(text: &str) -> bool {
    candidates(text) != 0 && !find(text, false).is_empty()
}

/// Whether a field called `key` holds a password (`password`, `dbPassword`, `pwd`, ...).
pub fn is_password_key(key: &str) -> bool {
    // Every spelling contains `pass` or `pwd`; most keys do not, and this
    // runs per value, so check before allocating.
    let has = |n: &[u8]| key.as_bytes().windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    if !has(b"pass") && !has(b"pwd") {
        return false;
    }
    let name = squashed(key);
    name.ends_with("password") || name.ends_with("passwd") || name == "pwd"
}

/// Name fragments (lower case, without separators) that make a variable's
/// or a field's value secret.
const SECRET_NAME_PARTS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "passphrase",
    "privatekey",
    "credential",
    "apikey",
    "accesskey",
    "webhookurl",
];

/// Whether a variable or field called `name` holds a secret
/// (`GITHUB_TOKEN`, `dbPassword`, `SLACK_WEBHOOK_URL`, `NPM_AUTH`, ...).
/// `AUTH` counts as a word of its own (`BASIC_AUTH`, `npmAuth`), so
/// `GIT_AUTHOR_NAME` does not; `PWD` is the shell's working directory.
pub fn is_secret_name(name: &str) -> bool {
    let squashed = squashed(name);
    if SECRET_NAME_PARTS.iter().any(|p| squashed.contains(p)) {
        return true;
    }
    words(name).iter().any(|w| w.ends_with("auth"))
}

/// `name` in lower case without anything but letters and digits.
fn squashed(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The words of a name, lower case: split at anything not a letter or
/// digit, and where a lower-case letter meets an upper-case one.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if (!c.is_ascii_alphanumeric() || (prev_lower && c.is_ascii_uppercase())) && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Credentials in the value of a field called `key`: everything
/// [`find_in_text`] finds, plus secret access keys under secret-ish names and
/// any `password:` value.
pub fn find_in_field(key: &str, value: &str) -> Vec<Finding> {
    let mut out = find_in_text(value);
    out.extend(find_by_key(key, value, !out.is_empty()));
    out
}

static AWS_SECRET: LazyLock<Regex> = LazyLock::new(|| re("^[A-Za-z0-9/+=]{40}$"));

/// The credentials only the field name reveals: a secret access key under a
/// secret-ish name, a `password:` value. Empty when `found` already.
pub fn find_by_key(key: &str, value: &str, found: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let trimmed = value.trim();
    // Only a 40-character value can be a secret key; passwords need their key.
    if found || trimmed.is_empty() || (trimmed.len() != 40 && !is_password_key(key)) {
        return out;
    }
    let start = value.len() - value.trim_start().len();
    let range = start..start + trimmed.len();
    let mixed = trimmed.chars().any(|c| c.is_ascii_uppercase())
        && trimmed.chars().any(|c| c.is_ascii_lowercase())
        && trimmed.chars().any(|c| c.is_ascii_digit());
    if mixed && is_secret_name(key) && AWS_SECRET.is_match(trimmed) {
        out.push(Finding {
            kind: CredentialKind::AwsSecretAccessKey,
            range,
        });
    } else if is_password_key(key) && !trimmed.starts_with('$') {
        out.push(Finding {
            kind: CredentialKind::Password,
            range,
        });
    }
    out
}

/// `text` with every range in `ranges` (byte ranges on char boundaries, in
/// any order, overlapping or not) replaced by one [`MASK`] per merged run.
pub fn mask(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    if ranges.is_empty() {
        return text.to_owned();
    }
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        let end = r.end.min(text.len());
        if r.start < at {
            // Overlaps the masked run before it: extend that run.
            at = at.max(end);
            continue;
        }
        out.push_str(&text[at..r.start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The byte ranges of every occurrence of each of `values` in `text`.
pub fn occurrences<'v>(text: &str, values: impl IntoIterator<Item = &'v str>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for v in values {
        if v.is_empty() {
            continue;
        }
        out.extend(text.match_indices(v).map(|(i, _)| i..i + v.len()));
    }
    out
}

/// `text` with every secret [`find_in_text`] sees, and every secret-ish
/// `key: value` on one line, replaced by [`MASK`].
pub fn redact(text: &str) -> String {
    redact_with(text, &[])
}

/// [`redact`], also masking every occurrence of `known` (secrets found
/// elsewhere, e.g. by the configuration's field rules).
pub fn redact_with(text: &str, known: &[&str]) -> String {
    let mut ranges: Vec<_> = find_in_text(text).into_iter().map(|f| f.range).collect();
    ranges.extend(occurrences(text, known.iter().copied()));
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
    mask(text, ranges)
}

/// Whether `line` opens a PEM private key block that it does not close:
/// the lines after it are the key, up to the one [`private_key_end`] finds
/// an end in. (Line-by-line readers need this; [`find_in_text`] sees a
/// whole block.)
pub fn opens_private_key(line: &str) -> bool {
    match line.rfind("-----BEGIN ") {
        Some(begin) => {
            let rest = &line[begin..];
            rest.contains("PRIVATE KEY") && !rest.contains("-----END ")
        }
        None => false,
    }
}

/// Where a PEM private key block ends on `line`: the byte just past its
/// `-----END ... PRIVATE KEY-----` marker.
pub fn private_key_end(line: &str) -> Option<usize> {
    let at = line.find("-----END ")?;
    let after = at + "-----END ".len();
    let close = line[after..].find("-----")? + after;
    let label = &line[after..close];
    (label.ends_with("PRIVATE KEY") || label.ends_with("PRIVATE KEY BLOCK")).then_some(close + "-----".len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKIA: &str = "AKIAIOSFODNN7EXAMPLE";
    const GHP: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

    #[test]
    fn patterns_compile() {
        for s in &SHAPES {
            LazyLock::force(&s.pattern);
            assert!(!s.triggers.is_empty());
        }
        assert!(SHAPES.len() <= 32, "the candidate set is a u32");
    }

    #[test]
    fn literal_checks_never_hide_a_password() {
        for text in ["PASSWORD=hunter22", "Pwd: s3cret-x", "db: https://u:hunter22@h"] {
            assert!(any_in_text(text), "{text}");
        }
        assert!(!any_in_text("name: dev\nregion: us-east-1\n"));
        // Case folds in ASCII only: U+017F (long s) is not an `s`.
        assert!(!any_in_text("pa\u{17f}\u{17f}word: hunter22"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        // Property: the triggers only skip work: on any text, a shape's
        // pattern matches only where one of its triggers is present, so
        // `find_in_text` finds what running every pattern would.
        #[test]
        fn triggers_never_hide_a_match(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("password".to_owned()),
                    proptest::strategy::Just("PaSs".to_owned()),
                    proptest::strategy::Just("pwd".to_owned()),
                    proptest::strategy::Just("\u{17f}".to_owned()),
                    proptest::strategy::Just("\u{212a}".to_owned()),
                    proptest::strategy::Just("://".to_owned()),
                    proptest::strategy::Just("@".to_owned()),
                    proptest::strategy::Just(" mysql".to_owned()),
                    proptest::strategy::Just(" -p".to_owned()),
                    proptest::strategy::Just("--PASSWORD ".to_owned()),
                    proptest::strategy::Just("Secret_Access_Key=".to_owned()),
                    proptest::strategy::Just("SESSIONTOKEN ".to_owned()),
                    proptest::strategy::Just("_AuthToken=".to_owned()),
                    proptest::strategy::Just("eyJ".to_owned()),
                    "[ :=a-zA-Z0-9\"'/$._-]{0,12}",
                ],
                0..12,
            )
        ) {
            let text = parts.concat();
            let direct: Vec<(CredentialKind, Range<usize>)> = {
                let mut v = Vec::new();
                for shape in &SHAPES {
                    for c in shape.pattern.captures_iter(&text) {
                        let m = c.name("s").or_else(|| c.name("t")).or_else(|| c.get(0)).unwrap();
                        if !m.is_empty() {
                            v.push((shape.kind, m.range()));
                        }
                    }
                }
                v.sort_by_key(|(_, r)| (r.start, r.end));
                v
            };
            let found: Vec<_> = find_in_text(&text).into_iter().map(|f| (f.kind, f.range)).collect();
            proptest::prop_assert_eq!(found, direct, "{:?}", text);
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
    fn secret_names() {
        for name in [
            "GITHUB_TOKEN",
            "DB_PASSWORD",
            "dbPassword",
            "SLACK_WEBHOOK_URL",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "NPM_AUTH",
            "npmAuth",
            "BASIC_AUTH",
            "_auth",
            "GPG_PASSPHRASE",
            "PRIVATE_KEY",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "GIT_AUTHOR_NAME",
            "AUTHOR",
            "PWD",
            "PATH",
            "HOME",
            "REGION",
            "OAUTHLIB_DEBUG",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn redact_masks_secrets_and_keeps_the_rest() {
        let line = format!("    account: \"{AKIA}\"  # key");
        assert_eq!(redact(&line), "    account: \"***\"  # key");
        assert_eq!(redact("  password: hunter2"), "  password: ***");
        assert_eq!(redact("  name: dev"), "  name: dev");
        assert_eq!(redact_with("  - hunter2hunter", &["hunter2hunter"]), "  - ***");
    }

    #[test]
    fn mask_merges_overlapping_ranges() {
        assert_eq!(mask("abcdef", vec![3..5, 1..4]), "a***f");
        assert_eq!(mask("abcdef", vec![0..1, 5..6]), "***bcde***");
        assert_eq!(mask("abc", vec![]), "abc");
    }

    #[test]
    fn private_key_lines() {
        assert!(opens_private_key("key: -----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(!opens_private_key(
            "-----BEGIN EC PRIVATE KEY-----x-----END EC PRIVATE KEY-----"
        ));
        assert!(!opens_private_key("-----BEGIN CERTIFICATE-----"));
        assert_eq!(private_key_end("-----END RSA PRIVATE KEY----- rest"), Some(29));
        assert_eq!(private_key_end("-----END CERTIFICATE-----"), None);
    }
}
