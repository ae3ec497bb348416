//! [`Diagnostic`]: one placed problem in a configuration file, and its two
//! renderings: rustc-like text (source line, caret, help) and JSON
//! (`{"errors": [...]}`). Source lines are shown with credentials masked:
//! every shape of the catalogue (`secrets`), and every secret the
//! credential check found in the file, wherever it sits on the line.

use std::fmt::Write as _;

use crate::secrets;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Field path, e.g. `environments[0].account` (empty for the whole document).
    pub path: String,
    /// File name as given to the loader.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    /// `file:line:column: message` (and the field path), one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at `{}`)", self.path)?;
        }
        Ok(())
    }
}

/// Diagnostics as the JSON document `aphex validate --format json` prints.
pub fn to_json(diagnostics: &[Diagnostic]) -> serde_json::Value {
    serde_json::json!({ "errors": diagnostics })
}

/// Renders diagnostics like rustc: message, location, the source line with a
/// caret under the problem, the field path and the help. `source` is the text
/// the diagnostics were computed from; credentials on shown lines are masked.
pub fn render(diagnostics: &[Diagnostic], source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let width = diagnostics
        .iter()
        .map(|d| d.line.to_string().len())
        .max()
        .unwrap_or(1);
    let pad = " ".repeat(width);
    let mut out = String::new();
    // Only a file with problems is rendered, so checking it again costs
    // nothing a valid load pays.
    let found = if diagnostics.iter().any(|d| d.line > 0) {
        crate::found_secrets(source)
    } else {
        Vec::new()
    };
    let known = needles(&found);
    for d in diagnostics {
        let _ = writeln!(out, "error: {}", d.message);
        if d.line == 0 {
            let _ = writeln!(out, "{pad}--> {}", d.file);
        } else {
            let _ = writeln!(out, "{pad}--> {}:{}:{}", d.file, d.line, d.column);
        }
        if let Some(text) = d.line.checked_sub(1).and_then(|i| lines.get(i)) {
            // Control characters (a stray NUL in a binary file) would garble the terminal.
            let shown: String = secrets::redact_with(text, &known)
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        '\u{fffd}'
                    } else {
                        c
                    }
                })
                .collect();
            let caret_at = d.column.max(1) - 1;
            let indent: String = shown
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let carets = "^".repeat(token_len(&shown, caret_at));
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{:>width$} | {shown}", d.line);
            let _ = writeln!(out, "{pad} | {indent}{carets}");
        }
        if !d.path.is_empty() {
            let _ = writeln!(out, "{pad} = field: {}", d.path);
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out.push('\n');
    }
    out
}

/// What to mask on a shown line for each found secret: the secret, and, for
/// one that spans lines in the source (a folded scalar, a key block), each
/// of its words long enough to be worth hiding.
fn needles(found: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in found {
        out.push(s.as_str());
        if s.contains(char::is_whitespace) {
            out.extend(s.split_whitespace().filter(|w| w.len() >= 4));
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// Characters in the YAML token starting at character `at` (at least 1).
fn token_len(line: &str, at: usize) -> usize {
    let rest: Vec<char> = line.chars().skip(at).collect();
    let n = match rest.first() {
        Some('[') => rest.iter().position(|c| *c == ']').map_or(1, |p| p + 1),
        Some(q @ ('"' | '\'')) => rest[1..]
            .iter()
            .position(|c| c == q)
            .map_or(rest.len(), |p| p + 2),
        Some(_) => {
            let end = rest
                .iter()
                .position(|c| matches!(c, ',' | ']' | '}' | '#'))
                .unwrap_or(rest.len());
            let token: String = rest[..end].iter().collect();
            // A key is underlined up to its colon.
            let token = token.split(": ").next().unwrap_or_default();
            token.trim_end_matches(':').trim_end().chars().count()
        }
        None => 1,
    };
    n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, column: usize) -> Diagnostic {
        Diagnostic {
            path: "environments[0].account".into(),
            file: "aphex-config.yaml".into(),
            line,
            column,
            message: "`account` is a YAML number".into(),
            help: Some("quote it".into()),
        }
    }

    #[test]
    fn renders_like_rustc() {
        let src = "environments:\n  - account: 123456789012 # prod\n";
        assert_eq!(
            render(&[diag(2, 14)], src),
            "error: `account` is a YAML number\n \
             --> aphex-config.yaml:2:14\n  \
             |\n\
             2 |   - account: 123456789012 # prod\n  \
             |              ^^^^^^^^^^^^\n  \
             = field: environments[0].account\n  \
             = help: quote it\n\n"
        );
    }

    #[test]
    fn carets_cover_quoted_values_and_keys() {
        assert_eq!(token_len("  name: \"a b\" # x", 8), 5);
        assert_eq!(token_len("  regoin: us-east-1", 2), 6);
        assert_eq!(token_len("", 0), 1);
    }

    #[test]
    fn json_has_an_errors_array() {
        let v = to_json(&[diag(2, 14)]);
        assert_eq!(v["errors"][0]["path"], "environments[0].account");
        assert_eq!(v["errors"][0]["line"], 2);
    }
}
