//! A fast reader for the shape nearly every configuration has: block
//! mappings and sequences whose values are one-line scalars or one-line
//! flow lists, in ASCII, indented with spaces.
//!
//! Why: libyaml reads about 40-60 MB/s (it decodes and queues the text a
//! character at a time), which made the parser most of a large file's load.
//! This reader works on lines and byte slices and produces the same events
//! several times faster.
//!
//! How it stays exact: it reads a small subset of YAML and **declines**
//! everything else (anchors, aliases, tags, block scalars, flow mappings,
//! escapes, multi-line scalars, empty values, tabs, `\r`, non-ASCII text,
//! document markers, anything it is unsure of); the caller then uses
//! libyaml for the whole text. Only text it reads to the end is used, so
//! a half-read document never reaches the tree. Within the subset its
//! events, positions included, are libyaml's: a property test compares the
//! two on generated and hostile documents.

use std::borrow::Cow;

use super::{Ev, Event, MAX_DEPTH};

/// Why reading stopped.
pub(crate) enum Stop<E> {
    /// The text is outside the subset: read it with libyaml.
    Declined,
    /// The sink refused an event.
    Sink(E),
}

impl<E> From<E> for Stop<E> {
    fn from(e: E) -> Self {
        Stop::Sink(e)
    }
}

/// Whether the whole of `text` is in the subset (a first pass that makes
/// nothing, so a text declined late costs no tree).
pub(crate) fn fits(text: &str) -> bool {
    read::<()>(text, &mut |_| Ok(())).is_ok()
}

/// Reads `text`, handing each event to `sink` in libyaml's order: the
/// document's start, its nodes, the stream's end.
pub(crate) fn read<'t, E>(
    text: &'t str,
    sink: &mut dyn FnMut(Ev<'t>) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    // Printable ASCII and `\n` only: columns are then bytes, and no tab,
    // `\r`, BOM or other break can change how a line reads.
    if !text.bytes().all(|b| b == b'\n' || (b' '..=b'~').contains(&b)) {
        return Err(Stop::Declined);
    }
    let mut r = Reader {
        text,
        sink,
        line: 0,
        start: 0,
        end: 0,
        next: 0,
        depth: 0,
        stream_end: stream_end(text),
    };
    r.start_at(0);
    r.skip_blank();
    if r.at_end() {
        return Err(Stop::Declined);
    }
    let indent = r.indent();
    r.emit(indent, Event::DocumentStart)?;
    r.block(indent)?;
    if !r.at_end() {
        return Err(Stop::Declined);
    }
    r.emit_at_stream_end(Event::StreamEnd)
}

/// Where libyaml places the stream's end (1-based): at the start of the
/// line after the last, whether or not the text ends with a line break.
fn stream_end(text: &str) -> (usize, usize) {
    let breaks = memchr::memchr_iter(b'\n', text.as_bytes()).count();
    let lines = breaks + usize::from(!text.ends_with('\n'));
    (lines + 1, 1)
}

struct Reader<'t, 's, E> {
    text: &'t str,
    sink: &'s mut dyn FnMut(Ev<'t>) -> Result<(), E>,
    /// The current line (0-based), its first byte, its end (before `\n`),
    /// and where the next line starts.
    line: usize,
    start: usize,
    end: usize,
    next: usize,
    /// Collections open.
    depth: usize,
    /// Where the stream ends (see [`stream_end`]).
    stream_end: (usize, usize),
}

impl<'t, E> Reader<'t, '_, E> {
    fn start_at(&mut self, at: usize) {
        self.start = at;
        self.end = memchr::memchr(b'\n', &self.text.as_bytes()[at..]).map_or(self.text.len(), |i| at + i);
        self.next = self.end + 1;
    }

    fn at_end(&self) -> bool {
        self.start >= self.text.len()
    }

    /// The current line's text.
    fn body(&self) -> &'t str {
        &self.text[self.start..self.end]
    }

    fn indent(&self) -> usize {
        spaces(self.body().as_bytes())
    }

    /// Moves to the next line.
    fn advance(&mut self) {
        self.line += 1;
        if self.next >= self.text.len() {
            self.start = self.text.len();
            self.end = self.text.len();
            return;
        }
        self.start_at(self.next);
    }

    /// Moves past blank and comment-only lines.
    fn skip_blank(&mut self) {
        while !self.at_end() {
            let body = self.body().as_bytes();
            if body.get(spaces(body)).is_some_and(|&c| c != b'#') {
                return;
            }
            self.advance();
        }
    }

    /// To the next line with content; its indentation, or `None` at the end.
    fn next_content(&mut self) -> Result<Option<usize>, Stop<E>> {
        self.advance();
        self.skip_blank();
        if self.at_end() {
            return Ok(None);
        }
        let body = self.body();
        // Document markers and directives end or change the document.
        if matches!(body.as_bytes()[0], b'-' | b'.' | b'%')
            && (body.starts_with("---") || body.starts_with("...") || body.starts_with('%'))
        {
            return Err(Stop::Declined);
        }
        Ok(Some(self.indent()))
    }

    fn emit(&mut self, column: usize, event: Event<'t>) -> Result<(), Stop<E>> {
        (self.sink)(Ev {
            line: self.line + 1,
            column: column + 1,
            event,
        })?;
        Ok(())
    }

    fn open(&mut self) -> Result<(), Stop<E>> {
        self.depth += 1;
        // Deeper documents go to libyaml, and the builder refuses them there.
        if self.depth > MAX_DEPTH {
            return Err(Stop::Declined);
        }
        Ok(())
    }

    /// A block collection whose first line is the current one, at `indent`.
    fn block(&mut self, indent: usize) -> Result<(), Stop<E>> {
        let content = &self.body()[indent..];
        if is_entry(content) {
            self.sequence(indent)
        } else if key_len(content).is_some() {
            self.mapping(indent)
        } else {
            Err(Stop::Declined)
        }
    }

    /// A block sequence whose first `-` is on the current line at `indent`.
    /// Returns on the first line after it (or the end).
    fn sequence(&mut self, indent: usize) -> Result<(), Stop<E>> {
        self.open()?;
        self.emit(indent, Event::SequenceStart { anchor: None })?;
        loop {
            let body = self.body();
            let after = indent + 1;
            let at = after + spaces(&body.as_bytes()[after..]);
            let content = &body[at..];
            // An empty item, a nested `- -`: libyaml's.
            if content.is_empty() || content.starts_with('#') || is_entry(content) {
                return Err(Stop::Declined);
            }
            if key_len(content).is_some() {
                // `- key: value` opens a mapping at the key's column.
                self.mapping(at)?;
            } else {
                self.inline_then_next(at, indent)?;
            }
            if self.at_end() {
                break;
            }
            match self.indent() {
                n if n == indent && is_entry(&self.body()[n..]) => {}
                // Less indented, or a key at the list's column (the list was
                // a mapping's value written at the key's column).
                n if n <= indent => break,
                _ => return Err(Stop::Declined),
            }
        }
        self.depth -= 1;
        self.emit_end()
    }

    /// A block mapping whose first key is on the current line at `indent`.
    /// Returns on the first line after it (or the end).
    fn mapping(&mut self, indent: usize) -> Result<(), Stop<E>> {
        self.open()?;
        self.emit(indent, Event::MappingStart { anchor: None })?;
        loop {
            let body = self.body();
            let Some(len) = key_len(&body[indent..]) else {
                return Err(Stop::Declined);
            };
            let key = &body[indent..indent + len];
            self.emit(indent, scalar(Cow::Borrowed(key), true))?;
            let after = indent + len + 1;
            let at = after + spaces(&body.as_bytes()[after..]);
            let content = &body[at..];
            if content.is_empty() || content.starts_with('#') {
                // The value is on the lines below.
                match self.next_content()? {
                    Some(n) if n > indent => self.block(n)?,
                    // `key:` then `- item` at the key's own column.
                    Some(n) if n == indent && is_entry(&self.body()[n..]) => self.sequence(n)?,
                    // An empty value (null): libyaml's.
                    _ => return Err(Stop::Declined),
                }
            } else {
                self.inline_then_next(at, indent)?;
            }
            if self.at_end() {
                break;
            }
            match self.indent() {
                n if n < indent => break,
                n if n == indent && !is_entry(&self.body()[n..]) => {}
                _ => return Err(Stop::Declined),
            }
        }
        self.depth -= 1;
        self.emit_end()
    }

    /// A block collection's end: libyaml places it where the line that
    /// ends it starts its content, or at the stream's end.
    fn emit_end(&mut self) -> Result<(), Stop<E>> {
        if self.at_end() {
            return self.emit_at_stream_end(Event::End);
        }
        let indent = self.indent();
        self.emit(indent, Event::End)
    }

    fn emit_at_stream_end(&mut self, event: Event<'t>) -> Result<(), Stop<E>> {
        let (line, column) = self.stream_end;
        (self.sink)(Ev { line, column, event })?;
        Ok(())
    }

    /// [`Reader::inline`], then on to the next line with content, which must
    /// not be deeper than the collection at `indent` (that line would
    /// continue a multi-line scalar, or be an error).
    fn inline_then_next(&mut self, at: usize, indent: usize) -> Result<(), Stop<E>> {
        self.inline(at)?;
        if self.next_content()?.is_some_and(|n| n > indent) {
            return Err(Stop::Declined);
        }
        Ok(())
    }

    /// A value that starts at `at` on the current line and ends with it.
    fn inline(&mut self, at: usize) -> Result<(), Stop<E>> {
        let body = self.body();
        let rest = &body[at..];
        let end = match rest.as_bytes()[0] {
            b'"' | b'\'' => {
                let (value, len) = quoted(rest).ok_or(Stop::Declined)?;
                self.emit(at, scalar(value, false))?;
                len
            }
            b'[' | b'{' => self.flow(at)?,
            _ => {
                let value = plain_block(rest).ok_or(Stop::Declined)?;
                self.emit(at, scalar(Cow::Borrowed(value), true))?;
                value.len()
            }
        };
        if comment_or_nothing(&rest[end..]) {
            Ok(())
        } else {
            Err(Stop::Declined)
        }
    }

    /// A flow collection (`[...]` or `{...}`) starting at `at` and closing
    /// on this line; returns its length. Its items are scalars or flow
    /// collections; a mapping's keys are plain names followed by `: `.
    fn flow(&mut self, at: usize) -> Result<usize, Stop<E>> {
        self.open()?;
        let body = self.body();
        let b = body.as_bytes();
        let map = b[at] == b'{';
        let close = if map { b'}' } else { b']' };
        let start = if map {
            Event::MappingStart { anchor: None }
        } else {
            Event::SequenceStart { anchor: None }
        };
        self.emit(at, start)?;
        let skip = |i: usize| i + spaces(&b[i..]);
        let mut i = skip(at + 1);
        if b.get(i) != Some(&close) {
            loop {
                if map {
                    let len = key_len(&body[i..]).ok_or(Stop::Declined)?;
                    self.emit(i, scalar(Cow::Borrowed(&body[i..i + len]), true))?;
                    // `{a: }`, `{a:b}`: libyaml's.
                    if b.get(i + len + 1) != Some(&b' ') {
                        return Err(Stop::Declined);
                    }
                    i = skip(i + len + 1);
                }
                i = skip(i + self.flow_item(i)?);
                match b.get(i) {
                    Some(&c) if c == close => break,
                    Some(b',') => {
                        i = skip(i + 1);
                        // `[a, ]` and `[a,,b]`: libyaml's.
                        if matches!(b.get(i), None | Some(b']' | b'}' | b',')) {
                            return Err(Stop::Declined);
                        }
                    }
                    _ => return Err(Stop::Declined),
                }
            }
        }
        self.depth -= 1;
        self.emit(i, Event::End)?;
        Ok(i + 1 - at)
    }

    /// One item of a flow collection at `i`; returns its length.
    fn flow_item(&mut self, i: usize) -> Result<usize, Stop<E>> {
        let rest = &self.body()[i..];
        match rest.as_bytes().first() {
            Some(b'"' | b'\'') => {
                let (value, len) = quoted(rest).ok_or(Stop::Declined)?;
                self.emit(i, scalar(value, false))?;
                Ok(len)
            }
            Some(b'[' | b'{') => self.flow(i),
            Some(_) => {
                let value = plain_flow(rest).ok_or(Stop::Declined)?;
                self.emit(i, scalar(Cow::Borrowed(value), true))?;
                Ok(value.len())
            }
            None => Err(Stop::Declined),
        }
    }
}

fn scalar(value: Cow<'_, str>, plain: bool) -> Event<'_> {
    Event::Scalar {
        value,
        plain,
        tag: None,
        anchor: None,
    }
}

/// A block sequence entry: `-` then a space or the line's end.
fn is_entry(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// The length of a plain key that `content` starts with, when it is one:
/// letters, digits, `_` and `-` (not first), then `:` and a space or the
/// line's end.
fn key_len(content: &str) -> Option<usize> {
    let b = content.as_bytes();
    if !b.first()?.is_ascii_alphanumeric() && b[0] != b'_' {
        return None;
    }
    let len = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-'))?;
    // libyaml looks no further than 1024 characters for a simple key's `:`.
    (len < 1000 && b[len] == b':' && matches!(b.get(len + 1), None | Some(b' '))).then_some(len)
}

/// Spaces, then a comment or nothing.
fn comment_or_nothing(rest: &str) -> bool {
    let b = rest.as_bytes();
    let n = spaces(b);
    n == b.len() || (b[n] == b'#' && n > 0)
}

/// How many spaces `b` starts with.
fn spaces(b: &[u8]) -> usize {
    b.iter().position(|&c| c != b' ').unwrap_or(b.len())
}

/// A one-line quoted scalar at the start of `rest`: its value and length
/// with the quotes. Escapes (`\` in double quotes) are libyaml's.
fn quoted(rest: &str) -> Option<(Cow<'_, str>, usize)> {
    let quote = rest.as_bytes()[0];
    let inner = &rest[1..];
    if quote == b'"' {
        let close = memchr::memchr2(b'"', b'\\', inner.as_bytes())?;
        return (inner.as_bytes()[close] == b'"').then(|| (Cow::Borrowed(&inner[..close]), close + 2));
    }
    // Single quotes: `''` is one `'`.
    let mut value: Option<String> = None;
    let mut from = 0;
    loop {
        let close = from + memchr::memchr(b'\'', &inner.as_bytes()[from..])?;
        if inner.as_bytes().get(close + 1) == Some(&b'\'') {
            value
                .get_or_insert_with(String::new)
                .push_str(&inner[from..=close]);
            from = close + 2;
            continue;
        }
        let value = match value {
            None => Cow::Borrowed(&inner[..close]),
            Some(mut v) => {
                v.push_str(&inner[from..close]);
                Cow::Owned(v)
            }
        };
        return Some((value, close + 2));
    }
}

/// May a plain scalar start with `first`, `second` following? Indicators
/// cannot start one; `-`, `?`, `:` can when a non-space follows, but only
/// `-` before a letter, digit or `.` is kept (numbers, names).
fn plain_start(first: u8, second: Option<u8>) -> bool {
    match first {
        b'-' => second.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.'),
        c => c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'$' | b'~' | b'+' | b'(' | b'='),
    }
}

/// A plain scalar in block context: the rest of the line up to a comment,
/// without trailing spaces. `None` when `: ` or a final `:` would make it a
/// key, or its first character is an indicator.
fn plain_block(rest: &str) -> Option<&str> {
    let b = rest.as_bytes();
    if !plain_start(b[0], b.get(1).copied()) {
        return None;
    }
    // Up to a comment (` #`); refused at `: ` or a final `:`.
    let mut end = b.len();
    for i in memchr::memchr2_iter(b':', b'#', b) {
        match b[i] {
            b'#' if b[i - 1] == b' ' => {
                end = i;
                break;
            }
            b':' if matches!(b.get(i + 1), None | Some(b' ')) => return None,
            _ => {}
        }
    }
    Some(rest[..end].trim_end_matches(' '))
}

/// A plain scalar in a flow collection: up to `,`, `]` or `}`, without trailing
/// spaces, made only of characters that mean nothing in flow context.
fn plain_flow(rest: &str) -> Option<&str> {
    let b = rest.as_bytes();
    if !plain_start(b[0], b.get(1).copied()) {
        return None;
    }
    let len = b
        .iter()
        .position(|&c| {
            !(c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b' ' | b'_' | b'-' | b'.' | b'/' | b'$' | b'~' | b'+' | b'(' | b')' | b'=' | b'@'
                ))
        })
        .unwrap_or(b.len());
    if !matches!(b.get(len), Some(b',' | b']' | b'}')) {
        return None;
    }
    Some(rest[..len].trim_end_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The subset reader's events, or `None` when it declines.
    fn ours(text: &str) -> Option<Vec<Ev<'_>>> {
        let mut out = Vec::new();
        let read = read::<()>(text, &mut |ev| {
            out.push(ev);
            Ok(())
        });
        assert_eq!(read.is_ok(), fits(text), "fits agrees with read for {text:?}");
        read.ok().map(|()| out)
    }

    /// libyaml's events, or its error.
    fn libyaml(text: &str) -> Result<Vec<Ev<'_>>, super::super::ParseError> {
        super::super::events(text).collect()
    }

    /// Checks the one property everything rests on.
    fn agrees(text: &str) -> Result<bool, TestCaseError> {
        let Some(events) = ours(text) else {
            return Ok(false);
        };
        let theirs = libyaml(text);
        prop_assert!(
            theirs.is_ok(),
            "libyaml refuses what the subset read: {:?}\n{}",
            theirs,
            text
        );
        prop_assert_eq!(&events, &theirs.unwrap(), "for\n{}", text);
        Ok(true)
    }

    #[test]
    fn reads_the_shapes_configurations_have() {
        let seed = include_str!("../../../examples/seed/aphex-config.yaml");
        let quickstart = include_str!("../../../examples/quickstart/aphex-config.yaml");
        let full = include_str!("../../../aphex-template/tests/data/full.yaml");
        let big = "version: \"1.0\"\nbuild:\n  commands: [\"npm ci\", 'a ''b''', make]\nenvironments:\n  - name: env-0 # first\n    account: \"100000000000\"\n    concurrency: 2\n    stacks:\n      - name: S0\n        path: lib/s-0.ts\n      - name: S1\n        dependsOn: [S0]\n    tests:\n      commands: []\n  # between\n  - name: env-1\n    stacks:\n    - name: S0\n      path: x\n";
        for text in [
            seed,
            quickstart,
            full,
            big,
            "a: 1",
            "- a\n- b\n",
            "  k: v\n  l: [ ]\n",
        ] {
            assert!(agrees(text).unwrap(), "the subset reads {text:?}");
        }
    }

    #[test]
    fn declines_what_it_does_not_know() {
        for text in [
            "",
            "# only a comment\n",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: |\n  text\n",
            "a: {b: 1,}\n",
            "a: {b}\n",
            "a: {b:1}\n",
            "a: {\"b\": 1}\n",
            "a: \"x\\ty\"\n",
            "a: b\n  c\n",
            "a:\n",
            "a:\nb: 1\n",
            "- - a\n",
            "-\n  a: 1\n",
            "a:\tb\n",
            "a: b\r\n",
            "a: é\n",
            "---\na: 1\n",
            "a: 1\n...\n",
            "\"a\": 1\n",
            "a: b: c\n",
            "a: [b, [c]\n",
            "a: [b,]\n",
            "a: 'open\n  close'\n",
            "? a\n: b\n",
            "a: 1\n b: 2\n",
            "<<: {a: 1}\n",
        ] {
            assert!(ours(text).is_none(), "declines {text:?}");
        }
    }

    #[test]
    fn depth_is_bounded_without_recursing_far() {
        let mut deep = String::new();
        for i in 0..10_000 {
            deep.push_str(&" ".repeat(i));
            deep.push_str("k:\n");
        }
        assert!(ours(&deep).is_none());
    }

    /// A document in (mostly) the subset's shape, written out with every
    /// choice it has: indentations, indentless lists, compact mappings in
    /// lists, scalar styles, flow lists, comments, blank lines.
    #[derive(Debug, Clone)]
    enum Doc {
        Scalar(String),
        /// A one-line flow collection, written out.
        Flow(String),
        Seq(Vec<Doc>),
        Map(Vec<(String, Doc)>),
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9-]{0,6}",
            "-?[0-9]{1,4}(\\.[0-9]{1,2})?",
            proptest::sample::select(
                &[
                    "true",
                    "~",
                    "null",
                    "lib/a-b.ts",
                    "a b  c",
                    "x:y",
                    "a#b",
                    "$(x)",
                    "0x1F",
                    "1e3",
                    ".inf",
                    "-.5",
                ][..]
            )
            .prop_map(str::to_owned),
            "\"[ -!#-\\[\\]-~]{0,8}\"",
            "'[ -&(-~]{0,6}(''[ -&(-~]{0,3})?'",
        ]
    }

    /// Flow lists and mappings of scalars and of each other, spaced
    /// several ways.
    fn flow() -> impl Strategy<Value = String> {
        let gap = || prop_oneof!["", " ", "  "];
        let joined = |items: Vec<(String, String, String)>, open: &str, close: &str| {
            let inner: Vec<String> = items
                .into_iter()
                .map(|(a, item, b)| format!("{a}{item}{b}"))
                .collect();
            format!("{open}{}{close}", inner.join(","))
        };
        scalar().prop_recursive(3, 12, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec((gap(), inner.clone(), gap()), 0..4)
                    .prop_map(move |items| joined(items, "[", "]")),
                proptest::collection::vec(
                    (
                        gap(),
                        ("[a-z][a-z0-9]{0,4}", inner).prop_map(|(k, v)| format!("{k}: {v}")),
                        gap()
                    ),
                    0..4
                )
                .prop_map(move |items| joined(items, "{", "}")),
            ]
        })
    }

    fn doc() -> impl Strategy<Value = Doc> {
        let leaf = prop_oneof![
            4 => scalar().prop_map(Doc::Scalar),
            1 => flow().prop_map(Doc::Flow),
        ];
        leaf.prop_recursive(5, 60, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4).prop_map(Doc::Seq),
                proptest::collection::vec(("[a-z][a-zA-Z0-9_-]{0,5}", inner), 1..4).prop_map(Doc::Map),
            ]
        })
    }

    /// Writing choices, drawn from a byte string.
    struct Style<'a>(&'a [u8], usize);

    impl Style<'_> {
        fn pick(&mut self, n: u8) -> u8 {
            let b = self.0.get(self.1).copied().unwrap_or(0);
            self.1 += 1;
            b % n
        }
    }

    fn inline(value: &Doc) -> Option<String> {
        match value {
            Doc::Scalar(s) => Some(s.clone()),
            Doc::Flow(text) => Some(text.clone()),
            _ => None,
        }
    }

    fn write(doc: &Doc, indent: usize, out: &mut String, style: &mut Style<'_>) {
        let pad = " ".repeat(indent);
        let extra = |style: &mut Style<'_>| match style.pick(8) {
            0 => "  # note".to_owned(),
            1 => "   ".to_owned(),
            _ => String::new(),
        };
        match doc {
            Doc::Map(entries) => {
                for (k, v) in entries {
                    if style.pick(10) == 0 {
                        out.push_str(&format!("{pad}# comment\n\n"));
                    }
                    match inline(v) {
                        Some(text) => out.push_str(&format!("{pad}{k}: {text}{}\n", extra(style))),
                        None => {
                            out.push_str(&format!("{pad}{k}:{}\n", extra(style)));
                            let deeper = match v {
                                Doc::Seq(_) if style.pick(2) == 0 => indent,
                                _ => indent + 1 + style.pick(3) as usize,
                            };
                            write(v, deeper, out, style);
                        }
                    }
                }
            }
            Doc::Seq(items) => {
                for item in items {
                    match (inline(item), item) {
                        (Some(text), _) => out.push_str(&format!("{pad}- {text}{}\n", extra(style))),
                        (None, Doc::Map(_)) if style.pick(3) > 0 => {
                            // Compact: the mapping starts on the entry's line.
                            let gap = 1 + style.pick(2) as usize;
                            let mut inner = String::new();
                            write(item, indent + 1 + gap, &mut inner, style);
                            let inner = inner.trim_start_matches(' ');
                            out.push_str(&format!("{pad}-{}{inner}", " ".repeat(gap)));
                        }
                        (None, _) => {
                            // Libyaml's own form, which the subset declines.
                            out.push_str(&format!("{pad}-\n"));
                            write(item, indent + 2, out, style);
                        }
                    }
                }
            }
            leaf => out.push_str(&format!("{pad}{}\n", inline(leaf).unwrap_or_default())),
        }
    }

    /// Lines that change how what follows reads.
    const HOSTILE: &[&str] = &[
        "- a",
        "a: b",
        "  - b",
        "- k: v",
        "k:",
        "-",
        "- - x",
        "k: - x",
        "k: [a, b",
        "k: \"open",
        "close\"",
        "k: 'o''k'",
        "k: a: b",
        "# c",
        "",
        "---",
        "...",
        "%YAML 1.2",
        "? k",
        ": v",
        "k: &a x",
        "k: *a",
        "k: !t x",
        "k: |",
        "k: >-",
        "  text",
        "k: {a: 1}",
        "k:v",
        "k :v",
        "k: a #c",
        "k: a#c",
        "k: [a,]",
        "k: []",
        "k: [ ]",
        "k: ['a', \"b\"]",
        "k: -1",
        "k: -",
        "k: ~",
        "- []",
        "- 'q'",
        "k: x]",
        "k: ,x",
        "k: @x",
        "k: `x`",
        "k: a:",
        "k: \"a\" b",
        "k: \"a\"#c",
        "k: 'a' #c",
        "1: x",
        "k-1_: y",
        "_k: y",
        "-k: y",
        "  ",
        " # x",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
        // Property: on documents written every way the subset allows (and
        // a few ways it does not), whenever the subset reads a text its
        // events and positions are exactly libyaml's.
        #[test]
        fn the_subset_reads_as_libyaml_does(
            doc in doc(),
            choices in proptest::collection::vec(any::<u8>(), 64),
            final_break in any::<bool>(),
        ) {
            let mut text = String::new();
            write(&doc, 0, &mut text, &mut Style(&choices, 0));
            if !final_break {
                text.pop();
            }
            agrees(&text)?;
        }

        // Property: after any edit of lines (a hostile line inserted, a
        // line indented or outdented, a suffix added), whenever the subset
        // reads the text, libyaml reads it too, to the same events.
        #[test]
        fn the_subset_never_reads_what_libyaml_would_not(
            doc in doc(),
            choices in proptest::collection::vec(any::<u8>(), 64),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..4u8, any::<prop::sample::Index>(), 0..6usize), 1..4),
        ) {
            let mut text = String::new();
            write(&doc, 0, &mut text, &mut Style(&choices, 0));
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            for (at, kind, what, indent) in edits {
                let i = at.index(lines.len() + 1);
                let hostile = HOSTILE[what.index(HOSTILE.len())];
                match kind {
                    0 => lines.insert(i, format!("{}{hostile}", " ".repeat(indent))),
                    1 if i < lines.len() => lines[i].insert_str(0, &" ".repeat(indent.max(1))),
                    2 if i < lines.len() => {
                        let trimmed = lines[i].trim_start_matches(' ').to_owned();
                        lines[i] = format!("{}{trimmed}", " ".repeat(indent));
                    }
                    _ if i < lines.len() => lines[i].push_str(hostile.trim_start_matches(['-', ' '])),
                    _ => lines.push(hostile.to_owned()),
                }
            }
            let text = lines.join("\n") + "\n";
            agrees(&text)?;
        }
    }
}
