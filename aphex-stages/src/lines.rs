//! Command output cut into lines with bounded memory. A line is kept up to
//! [`LINE_CAP`] bytes plus a [`LOOKAHEAD`], and only counted past that: a
//! build printing one 100 MB line holds 80 KiB of it, never the line. The
//! lookahead is there for redaction: a secret that starts before the cap is
//! still whole when the line is redacted, and only then is the line cut at
//! the cap (`LineRedactor::line_cut`), with a marker
//! ([`cut_marker`]).
//!
//! Bytes arrive in whatever chunks the pipe gives; a line (and a secret in
//! it) split across chunks is put back together here, before anything
//! looks at it.

use crate::redact::LineRedactor;

/// The most bytes of one output line that are shown (and logged).
pub const LINE_CAP: usize = 64 * 1024;

/// Bytes kept past [`LINE_CAP`] so that a secret starting before the cut is
/// redacted whole. A single secret longer than this, cut by the cap, could
/// show its first bytes (docs/security.md).
pub const LOOKAHEAD: usize = 16 * 1024;

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its first bytes (at most what the splitter keeps), without the newline.
    pub head: Vec<u8>,
    /// The whole line's length in bytes, without the newline.
    pub len: u64,
}

/// Turns chunks of bytes into [`Line`]s, keeping at most `keep` bytes of each.
#[derive(Debug)]
pub struct LineSplitter {
    keep: usize,
    head: Vec<u8>,
    len: u64,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(LINE_CAP + LOOKAHEAD)
    }
}

impl LineSplitter {
    /// A splitter keeping the first `keep` bytes of each line.
    pub fn new(keep: usize) -> Self {
        LineSplitter {
            keep,
            head: Vec::new(),
            len: 0,
        }
    }

    /// Takes the next chunk; every line it completes is pushed onto `lines`.
    pub fn push(&mut self, mut chunk: &[u8], lines: &mut Vec<Line>) {
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            self.take(&chunk[..nl]);
            lines.push(self.line());
            chunk = &chunk[nl + 1..];
        }
        self.take(chunk);
    }

    /// The last line, when the output did not end with a newline.
    pub fn finish(mut self) -> Option<Line> {
        (self.len > 0).then(|| self.line())
    }

    fn take(&mut self, part: &[u8]) {
        let room = self.keep.saturating_sub(self.head.len());
        self.head.extend_from_slice(&part[..room.min(part.len())]);
        self.len += part.len() as u64;
    }

    fn line(&mut self) -> Line {
        Line {
            head: std::mem::take(&mut self.head),
            len: std::mem::replace(&mut self.len, 0),
        }
    }
}

/// What is reported of `line`: redacted by `redactor` (its stream's), and
/// when longer than [`LINE_CAP`], redacted with the lookahead in view, then
/// cut at the cap, with [`cut_marker`].
pub fn shown(line: &Line, redactor: &mut LineRedactor<'_>) -> String {
    let text = String::from_utf8_lossy(&line.head);
    if line.len > LINE_CAP as u64 {
        let cut = text.floor_char_boundary(LINE_CAP);
        redactor.line_cut(&text, cut) + &cut_marker(line.len, LINE_CAP)
    } else {
        redactor.line(text.trim_end_matches('\r'))
    }
}

/// What follows a line cut at `cap` bytes of `len`.
pub fn cut_marker(len: u64, cap: usize) -> String {
    format!(
        " [aphex: line cut at {} KiB; {} more bytes not shown]",
        cap / 1024,
        len.saturating_sub(cap as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(chunks: &[&[u8]], keep: usize) -> Vec<Line> {
        let mut s = LineSplitter::new(keep);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        out.extend(s.finish());
        out
    }

    fn line(head: &str, len: u64) -> Line {
        Line {
            head: head.as_bytes().to_vec(),
            len,
        }
    }

    #[test]
    fn lines_are_cut_and_counted() {
        assert_eq!(
            split(&[b"ab\ncdefgh", b"ij\n\nk"], 4),
            [line("ab", 2), line("cdef", 8), line("", 0), line("k", 1)]
        );
        assert_eq!(split(&[b"x\n"], 4), [line("x", 1)]);
        assert!(split(&[b""], 4).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        // Property: however the bytes are chunked, the lines are the same:
        // each line's first `keep` bytes and its full length.
        #[test]
        fn chunking_never_changes_the_lines(
            text in "[a-c\n]{0,200}",
            cuts in proptest::collection::vec(0usize..200, 0..8),
            keep in 1usize..10,
        ) {
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&bytes[at..c]);
                at = c;
            }
            chunks.push(&bytes[at..]);
            let expected: Vec<Line> = {
                let mut v: Vec<Line> = text
                    .split('\n')
                    .map(|l| Line { head: l.as_bytes()[..l.len().min(keep)].to_vec(), len: l.len() as u64 })
                    .collect();
                // Text ending with a newline has no last line after it.
                if v.last().is_some_and(|l| l.len == 0) {
                    v.pop();
                }
                v
            };
            prop_assert_eq!(split(&chunks, keep), expected);
        }
    }
}
