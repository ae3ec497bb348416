//! The YAML document as a tree of nodes that keep their source line and
//! column, parsed by our subset reader or by libyaml-safer under tight
//! resource budgets. Schema and semantic validation both read this tree, so
//! every problem can be placed. Knows nothing of the configuration's meaning.

use std::fmt;

mod de;
pub(crate) mod parts;
mod subset;
pub(crate) mod view;

/// Where a node starts in the source (1-based; 0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What it holds.
    pub value: Value,
}

/// A map key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key as text (non-string keys are written as YAML would show them).
    pub name: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// The value of a node. Plain scalars are resolved with the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string (quoted, or plain and not another type).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// How this kind of value is called in messages ("a number", "a list", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The entry (key and value) of `key`, when this node is a mapping that has it.
    pub fn entry(&self, key: &str) -> Option<&(Key, Node)> {
        self.entries().iter().find(|(k, _)| k.name == key)
    }

    /// The value under `key`, when this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The value under `key`, to change, when this node is a mapping that has it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(m) => m.iter_mut().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key `key`, when this node is a mapping that has it.
    pub fn key(&self, key: &str) -> Option<&Key> {
        self.entry(key).map(|(k, _)| k)
    }

    /// Mapping entries (empty when this is not a mapping).
    pub fn entries(&self) -> &[(Key, Node)] {
        match &self.value {
            Value::Map(m) => m,
            _ => &[],
        }
    }

    /// Sequence items (empty when this is not a sequence).
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(s) => s,
            _ => &[],
        }
    }

    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Follows `path`; `None` when some segment does not exist.
    pub fn at(&self, path: &[Seg]) -> Option<&Node> {
        let mut cur = self;
        for seg in path {
            cur = match seg {
                Seg::Key(k) => cur.get(k)?,
                Seg::Index(i) => cur.items().get(*i)?,
            };
        }
        Some(cur)
    }

    /// The position of `path`: the node if it exists, else the closest
    /// existing ancestor (a missing field is reported at its parent).
    pub fn pos_of(&self, path: &[Seg]) -> Pos {
        let mut cur = self;
        for seg in path {
            match seg {
                Seg::Key(k) => match cur.get(k) {
                    Some(n) => cur = n,
                    None => return cur.pos,
                },
                Seg::Index(i) => match cur.items().get(*i) {
                    Some(n) => cur = n,
                    None => return cur.pos,
                },
            }
        }
        cur.pos
    }

    /// Converts to JSON for schema validation and typed deserialization.
    /// Non-finite floats become strings so the schema reports them as such.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
            scalar => scalar_json(scalar),
        }
    }
}

/// The JSON of a scalar (collections are `null`; callers handle them).
fn scalar_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null | Value::Seq(_) | Value::Map(_) => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => {
            if let Ok(v) = i64::try_from(*i) {
                J::from(v)
            } else if let Ok(v) = u64::try_from(*i) {
                J::from(v)
            } else {
                serde_json::Number::from_f64(*i as f64).map_or(J::Null, J::Number)
            }
        }
        // JSON Schema counts 2.0 as an integer; so does the model then.
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => J::from(*f as i64),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| J::String(f.to_string()), J::Number)
        }
        Value::Str(s) => J::String(s.clone()),
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A field path such as `environments[0].account`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The empty path (the whole document).
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Path {
        let mut p = self.0.clone();
        p.push(Seg::Key(key.to_owned()));
        Path(p)
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.0.clone();
        p.push(Seg::Index(i));
        Path(p)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(i) => write!(f, "[{i}]")?,
                Seg::Key(k) if is_plain_key(k) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Limits on what the parser accepts. A configuration is a few kilobytes; a
/// 100-environment, 50-stack one is about 400 KiB, so these leave a wide
/// margin while keeping time and memory small on hostile input.
const MAX_DEPTH: usize = 32;
/// Nodes in the tree, counting every copy an alias makes (alias bombs).
const MAX_NODES: usize = 500_000;
/// Alias uses in one document.
const MAX_ALIASES: usize = 1_000;

/// A parse failure: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Where (1-based line and column).
    pub pos: Pos,
}

/// Parses `source` into a tree.
pub fn parse(source: &str) -> Result<Node, ParseError> {
    parse_watching(source, "", &mut |_, _| {})
}

/// Events handed from the parser thread to the builder at a time (16 KiB:
/// small enough to stay out of the allocator's large-object path).
const BATCH: usize = 128;

type Batch<'t> = Vec<Result<Ev<'t>, ParseError>>;

/// Parses `source` into a tree, calling `on_item(i, items)` as soon as item
/// `items[i]` of the sequence under the root key `watch` is complete (so callers
/// can check it while the rest of the file is still being parsed).
///
/// Text in the common shape is read by [`subset`] (several times faster
/// than libyaml, with the same events). Everything else gets its events
/// from `libyaml-safer` (a safe-Rust port of libyaml, the reference YAML
/// parser) rather than through serde: the events carry the positions, and a
/// 100 x 50 configuration parses in half the time serde-saphyr's parser
/// takes (see docs/architecture.md, "Decisions"). libyaml runs on its own
/// thread and hands events over in batches; this thread builds the tree
/// meanwhile. The parsers only produce events; every budget (depth, nodes,
/// aliases) is ours and enforced as the tree grows, so hostile input stops
/// early. Plain scalars are resolved with the YAML 1.2 core schema, as
/// serde-saphyr does; anchors, aliases and `<<` merge keys are supported
/// within the budgets; duplicate keys are errors.
pub(crate) fn parse_watching(
    source: &str,
    watch: &str,
    on_item: &mut dyn FnMut(usize, &mut [Node]),
) -> Result<Node, ParseError> {
    use std::sync::mpsc::TryRecvError;
    let watch = if watch.is_empty() {
        Watch::Nothing
    } else {
        Watch::RootKey(watch.to_owned())
    };
    if subset::fits(source) {
        return read_subset(source, Builder::new(watch, 0), on_item).map(|built| built.root);
    }
    std::thread::scope(|scope| {
        // Unbounded: the parser never waits for the builder. It stops at its
        // next send once the builder has returned (an error) and dropped `rx`.
        let (tx, rx) = std::sync::mpsc::channel::<Batch<'_>>();
        std::thread::Builder::new()
            .name(PARSER_THREAD.to_owned())
            .spawn_scoped(scope, move || produce(source, &tx))
            .map_err(|e| ParseError {
                message: format!("cannot start the YAML parser thread: {e}"),
                pos: Pos { line: 1, column: 1 },
            })?;
        // The builder waits by yielding, not by sleeping: waking a sleeping
        // thread took milliseconds on small VMs, as long as the parse itself.
        let batches = std::iter::from_fn(|| {
            loop {
                match rx.try_recv() {
                    Ok(batch) => return Some(batch),
                    Err(TryRecvError::Empty) => std::thread::yield_now(),
                    Err(TryRecvError::Disconnected) => return None,
                }
            }
        });
        build(batches.flatten(), Builder::new(watch, 0), on_item).map(|built| built.root)
    })
}

/// The name of the thread that runs the YAML parser (see [`is_parser_panic`]).
pub const PARSER_THREAD: &str = "aphex-yaml-parser";

/// Whether a panic is the YAML parser's, which the loader already turns
/// into a [`ParseError`]: binaries keep their panic hook quiet for it (the
/// `aphex` CLI and `aphex-runner` do), since its own message would only
/// look like a crash. Such a panic is raised in libyaml-safer, on the
/// parser thread or wherever a part of a large file is read.
pub fn is_parser_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    std::thread::current().name() == Some(PARSER_THREAD) || raised_in_libyaml(info)
}

/// Whether a panic was raised inside libyaml-safer itself: the narrower
/// test, for a hook that must still see every panic of our own (the fuzz
/// target's).
pub fn raised_in_libyaml(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.location()
        .is_some_and(|at| at.file().contains("libyaml-safer"))
}

/// The parser thread: events in batches until the end, an error, or the
/// builder hanging up.
fn produce<'t>(source: &'t str, tx: &std::sync::mpsc::Sender<Batch<'t>>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut events = events(source).peekable();
    while let Some(item) = events.next() {
        batch.push(item);
        let last = events.peek().is_none();
        if (last || batch.len() == BATCH)
            && tx
                .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                .is_err()
        {
            return;
        }
    }
}

/// One event of a parser, as the builder needs it. Positions are 1-based
/// and relative to the text parsed.
#[derive(Debug, PartialEq)]
pub(crate) struct Ev<'t> {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) event: Event<'t>,
}

/// What happened (libyaml's events, without the stream's start and the
/// document's end, which carry nothing the tree needs).
#[derive(Debug, PartialEq)]
pub(crate) enum Event<'t> {
    DocumentStart,
    Scalar {
        value: std::borrow::Cow<'t, str>,
        /// Plain (typed by the core schema) rather than quoted or block.
        plain: bool,
        tag: Option<String>,
        anchor: Option<String>,
    },
    SequenceStart {
        anchor: Option<String>,
    },
    MappingStart {
        anchor: Option<String>,
    },
    /// A sequence's or a mapping's end.
    End,
    Alias {
        anchor: String,
    },
    StreamEnd,
}

/// libyaml's events of `source`, ending after the stream's end or the
/// first error.
pub(crate) fn events<'t>(source: &str) -> impl Iterator<Item = Result<Ev<'t>, ParseError>> + '_ {
    use libyaml_safer::EventData;
    // `&[u8]` is a `BufRead` the parser can own, so the iterator owns both.
    let mut parser = libyaml_safer::Parser::<&[u8]>::new();
    parser.set_input(source.as_bytes());
    let mut done = false;
    // Where the last event ended: where a parser failure is reported.
    let mut at = Pos { line: 1, column: 1 };
    std::iter::from_fn(move || {
        loop {
            if done {
                return None;
            }
            // libyaml-safer 0.3 still panics on a few inputs it has not ported
            // (a `!tag` followed directly by `,` in a flow collection); the file
            // is then refused like any other unreadable YAML, never a crash.
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse()));
            let event = match parsed {
                Ok(Ok(event)) => event,
                Ok(Err(e)) => {
                    done = true;
                    return Some(Err(syntax_error(&e)));
                }
                Err(panic) => {
                    done = true;
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let message = format!(
                        "the YAML parser cannot read what follows this point (libyaml-safer stopped: {why}); \
                         check the syntax here, e.g. put a space between a `!tag` and a `,`"
                    );
                    return Some(Err(ParseError { message, pos: at }));
                }
            };
            at = mark_pos(event.end_mark);
            let start = mark_pos(event.start_mark);
            let event = match event.data {
                EventData::StreamStart { .. } | EventData::DocumentEnd { .. } => continue,
                EventData::StreamEnd => {
                    done = true;
                    Event::StreamEnd
                }
                EventData::DocumentStart { .. } => Event::DocumentStart,
                EventData::Scalar {
                    anchor,
                    tag,
                    value,
                    style,
                    ..
                } => Event::Scalar {
                    value: value.into(),
                    plain: style == libyaml_safer::ScalarStyle::Plain,
                    tag,
                    anchor,
                },
                EventData::SequenceStart { anchor, .. } => Event::SequenceStart { anchor },
                EventData::MappingStart { anchor, .. } => Event::MappingStart { anchor },
                EventData::SequenceEnd | EventData::MappingEnd => Event::End,
                EventData::Alias { anchor } => Event::Alias { anchor },
            };
            return Some(Ok(Ev {
                line: start.line,
                column: start.column,
                event,
            }));
        }
    })
}

/// libyaml's error as ours: "did not find expected key (while parsing a
/// block mapping that starts on line 3)": the problem, then what was open.
fn syntax_error(e: &libyaml_safer::Error) -> ParseError {
    let message = match (e.context(), e.context_mark()) {
        (Some(context), Some(at)) => format!(
            "{} ({context} that starts on line {})",
            e.problem(),
            mark_pos(at).line
        ),
        (Some(context), None) => format!("{} ({context})", e.problem()),
        _ => e.problem().to_owned(),
    };
    ParseError {
        message,
        pos: e.problem_mark().map_or(Pos { line: 1, column: 1 }, mark_pos),
    }
}

/// Which sequence's items [`build`] reports as each is completed.
pub(crate) enum Watch {
    /// None.
    Nothing,
    /// The sequence under this root key.
    RootKey(String),
    /// The root sequence (a part of a list, read on its own).
    RootSeq,
}

/// What [`build`] made: the document, and what it spent of the budgets.
pub(crate) struct Built {
    /// The root node.
    pub root: Node,
    /// Nodes made, alias copies included.
    pub nodes: usize,
    /// Aliases used.
    pub aliases: usize,
    /// Whether the root mapping had `<<` merge keys.
    pub root_merged: bool,
}

/// Builds the tree of `text` with a builder from `builder`, calling
/// `on_item` as [`parse_watching`] does: from the subset reader's events
/// when the text is in its subset, else from libyaml's (with a fresh
/// builder when the subset reader declined late, so the items are then
/// reported again from the first).
pub(crate) fn read(
    text: &str,
    builder: &dyn Fn() -> Builder,
    on_item: &mut dyn FnMut(usize, &mut [Node]),
) -> Result<Built, ParseError> {
    let mut b = builder();
    match subset::read(text, &mut |ev| b.feed(ev, on_item).map(drop)) {
        Ok(()) => Ok(b.finish()),
        Err(subset::Stop::Sink(e)) => Err(e),
        Err(subset::Stop::Declined) => build(events(text), builder(), on_item),
    }
}

/// Builds the tree of `text`, which [`subset::fits`], calling `on_item`
/// (a first pass made sure it is never called for a text then declined).
fn read_subset(
    text: &str,
    mut b: Builder,
    on_item: &mut dyn FnMut(usize, &mut [Node]),
) -> Result<Built, ParseError> {
    match subset::read(text, &mut |ev| b.feed(ev, on_item).map(drop)) {
        Ok(()) => Ok(b.finish()),
        Err(subset::Stop::Sink(e)) => Err(e),
        // The reader is deterministic: what fits once fits again.
        Err(subset::Stop::Declined) => Err(ParseError {
            message: "the YAML reader declined a text it had accepted; please report this".into(),
            pos: Pos { line: 1, column: 1 },
        }),
    }
}

/// Builds the tree from the events, calling `on_item` for each completed
/// item of the watched sequence.
pub(crate) fn build<'t>(
    events: impl Iterator<Item = Result<Ev<'t>, ParseError>>,
    mut b: Builder,
    on_item: &mut dyn FnMut(usize, &mut [Node]),
) -> Result<Built, ParseError> {
    for event in events {
        if !b.feed(event?, on_item)? {
            break;
        }
    }
    Ok(b.finish())
}

/// libyaml's marks are 0-based and count characters; ours are 1-based.
fn mark_pos(m: libyaml_safer::Mark) -> Pos {
    Pos {
        line: usize::try_from(m.line).unwrap_or(usize::MAX).saturating_add(1),
        column: usize::try_from(m.column).unwrap_or(usize::MAX).saturating_add(1),
    }
}

/// Nodes in a subtree (iterative: depth is bounded, but cheap to be safe).
fn count(node: &Node) -> usize {
    let mut n = 0;
    let mut stack = vec![node];
    while let Some(cur) = stack.pop() {
        n += 1;
        match &cur.value {
            Value::Seq(items) => stack.extend(items),
            Value::Map(entries) => stack.extend(entries.iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    n
}

/// Mappings with more keys than this get a hash index for duplicate
/// detection; smaller ones (nearly all) are scanned, which is cheaper.
const INDEX_FROM: usize = 16;

/// An open collection: the node, its anchor, and for a mapping the key
/// waiting for its value and the `<<` merges to apply at the end.
struct Open {
    node: Node,
    anchor: Option<String>,
    key: Option<Node>,
    merges: Vec<Node>,
    /// Key -> entry, once the mapping is large (duplicate detection in O(1)).
    index: Option<std::collections::HashMap<String, usize>>,
}

impl Open {
    /// Where `name` is already a key of this mapping.
    fn find(&self, name: &str) -> Option<Pos> {
        let entries = self.node.entries();
        match &self.index {
            Some(index) => index.get(name).map(|&i| entries[i].0.pos),
            None => entries.iter().find(|(k, _)| k.name == name).map(|(k, _)| k.pos),
        }
    }

    fn push(&mut self, key: Key, value: Node) {
        let Value::Map(entries) = &mut self.node.value else {
            return;
        };
        if let Some(index) = &mut self.index {
            index.insert(key.name.clone(), entries.len());
        }
        entries.push((key, value));
        if self.index.is_none() && entries.len() >= INDEX_FROM {
            self.index = Some(
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.name.clone(), i))
                    .collect(),
            );
        }
    }
}

pub(crate) struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    anchors: std::collections::HashMap<String, Node>,
    nodes: usize,
    aliases: usize,
    /// Where an error belongs when it is not at the current event (a duplicate key).
    error_at: Option<Pos>,
    /// Whose items are reported when complete.
    watch: Watch,
    /// The index of such an item completed by the last event.
    completed: Option<usize>,
    /// Lines before the text parsed (0 for a whole file).
    line_base: usize,
    /// Whether the root mapping had `<<` merge keys.
    root_merged: bool,
    /// Levels above the text parsed (its root is that deep in the file).
    depth_base: usize,
    /// Documents begun.
    documents: usize,
}

impl Builder {
    /// A builder reporting the items of `watch`, for text that starts after
    /// `line_base` lines of the file.
    pub(crate) fn new(watch: Watch, line_base: usize) -> Builder {
        Builder {
            stack: Vec::new(),
            root: None,
            anchors: std::collections::HashMap::new(),
            nodes: 0,
            aliases: 0,
            error_at: None,
            watch,
            completed: None,
            line_base,
            root_merged: false,
            depth_base: 0,
            documents: 0,
        }
    }

    /// The text's root is `depth` levels deep in the file (depth counts
    /// against [`MAX_DEPTH`] as in the whole file).
    pub(crate) fn depth_from(mut self, depth: usize) -> Builder {
        self.depth_base = depth;
        self
    }

    /// Takes one event; `false` after the stream's end.
    fn feed(&mut self, ev: Ev<'_>, on_item: &mut dyn FnMut(usize, &mut [Node])) -> Result<bool, ParseError> {
        let pos = Pos {
            line: ev.line.saturating_add(self.line_base),
            column: ev.column,
        };
        let placed = |b: &Builder, message: String| ParseError {
            message,
            pos: b.error_at.unwrap_or(pos),
        };
        match ev.event {
            Event::StreamEnd => return Ok(false),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ParseError {
                        message: "more than one YAML document (`---`); a configuration is one document"
                            .into(),
                        pos,
                    });
                }
            }
            Event::Scalar {
                anchor,
                tag,
                value,
                plain,
            } => {
                let value = resolve(value, plain, tag.as_deref());
                self.add(Node { pos, value }, anchor)
                    .map_err(|m| placed(self, m))?;
            }
            Event::SequenceStart { anchor } => self
                .open(pos, Value::Seq(Vec::new()), anchor)
                .map_err(|m| placed(self, m))?,
            Event::MappingStart { anchor } => self
                .open(pos, Value::Map(Vec::new()), anchor)
                .map_err(|m| placed(self, m))?,
            Event::End => self.close().map_err(|m| placed(self, m))?,
            Event::Alias { anchor } => {
                self.aliases += 1;
                if self.aliases > MAX_ALIASES {
                    return Err(ParseError {
                        message: format!("more than {MAX_ALIASES} aliases"),
                        pos,
                    });
                }
                let Some(node) = self.anchors.get(&anchor).cloned() else {
                    return Err(ParseError {
                        message: format!("alias `*{anchor}` to an unknown anchor"),
                        pos,
                    });
                };
                self.nodes += count(&node);
                self.add(
                    Node {
                        pos,
                        value: node.value,
                    },
                    None,
                )
                .map_err(|m| placed(self, m))?;
            }
        }
        if let Some(i) = self.completed.take()
            && let Some(Value::Seq(items)) = self.stack.last_mut().map(|seq| &mut seq.node.value)
        {
            on_item(i, items);
        }
        Ok(true)
    }

    /// The document built (an empty text is null).
    fn finish(mut self) -> Built {
        let root = self.root.take().unwrap_or(Node {
            pos: Pos { line: 1, column: 1 },
            value: Value::Null,
        });
        Built {
            root,
            nodes: self.nodes,
            aliases: self.aliases,
            root_merged: self.root_merged,
        }
    }

    fn open(&mut self, pos: Pos, value: Value, anchor: Option<String>) -> Result<(), String> {
        if self.stack.len() + self.depth_base >= MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.stack.push(Open {
            node: Node { pos, value },
            anchor,
            key: None,
            merges: Vec::new(),
            index: None,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        let Some(mut open) = self.stack.pop() else {
            return Err("unbalanced collection end".into());
        };
        // Explicit keys win over merged ones, whatever their order.
        let merges = std::mem::take(&mut open.merges);
        let merged_any = !merges.is_empty();
        for merged in merges {
            let maps = match merged.value {
                Value::Map(m) => vec![m],
                Value::Seq(items) => items
                    .into_iter()
                    .filter_map(|n| match n.value {
                        Value::Map(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
                _ => return Err("`<<` merges a mapping or a list of mappings".into()),
            };
            for m in maps {
                for (k, v) in m {
                    if open.find(&k.name).is_none() {
                        open.push(k, v);
                    }
                }
            }
        }
        self.root_merged |= merged_any && self.stack.is_empty();
        self.add(open.node, open.anchor)
    }

    fn add(&mut self, node: Node, anchor: Option<String>) -> Result<(), String> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(format!(
                "more than {MAX_NODES} nodes (an alias bomb, or not a configuration)"
            ));
        }
        if let Some(anchor) = anchor {
            // Keeping a copy costs as much as the node: it counts too, so
            // many anchors on large nodes cannot run away either.
            self.nodes += count(&node);
            if self.nodes > MAX_NODES {
                return Err(format!(
                    "more than {MAX_NODES} nodes (an alias bomb, or not a configuration)"
                ));
            }
            self.anchors.insert(anchor, node.clone());
        }
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut top.node.value {
            Value::Seq(items) => {
                items.push(node);
                let last = items.len() - 1;
                let watched = match &self.watch {
                    Watch::Nothing => false,
                    Watch::RootSeq => self.stack.len() == 1,
                    Watch::RootKey(key) => {
                        self.stack.len() == 2
                            && self.stack[0].key.as_ref().and_then(Node::as_str) == Some(key.as_str())
                    }
                };
                if watched {
                    self.completed = Some(last);
                }
            }
            Value::Map(_) => match top.key.take() {
                None => top.key = Some(node),
                Some(key) => {
                    let pos = key.pos;
                    let name = key_text(key.value)?;
                    if name == "<<" {
                        top.merges.push(node);
                    } else if let Some(first) = top.find(&name) {
                        self.error_at = Some(pos);
                        return Err(format!("duplicate key `{name}` (first on line {})", first.line));
                    } else {
                        top.push(Key { name, pos }, node);
                    }
                }
            },
            _ => {}
        }
        Ok(())
    }
}

/// A key as text; collections cannot be keys.
fn key_text(key: Value) -> Result<String, String> {
    Ok(match key {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s,
        Value::Seq(_) | Value::Map(_) => return Err("a list or mapping cannot be a mapping key".into()),
    })
}

/// The value of a scalar: quoted and block scalars are strings; plain ones
/// follow the YAML 1.2 core schema; core tags (`!!str`, `!!null`) force a type.
fn resolve(text: std::borrow::Cow<'_, str>, plain: bool, tag: Option<&str>) -> Value {
    match tag.and_then(|t| t.strip_prefix("tag:yaml.org,2002:")) {
        Some("str") => return Value::Str(text.into_owned()),
        Some("null") => return Value::Null,
        _ => {}
    }
    if !plain {
        return Value::Str(text.into_owned());
    }
    match &*text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::Str(text.into_owned());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i128>()
    {
        return Value::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i128::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i128::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let is_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if is_float && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_values_and_keys() {
        let src = "version: \"1.0\"\nenvironments:\n  - name: dev\n    account: 123456789012\n";
        let t = parse(src).unwrap();
        let envs = t.get("environments").unwrap();
        let dev = &envs.items()[0];
        assert_eq!(dev.get("name").unwrap().pos, Pos { line: 3, column: 11 });
        assert_eq!(dev.key("account").unwrap().pos, Pos { line: 4, column: 5 });
        assert_eq!(dev.get("account").unwrap().value, Value::Int(123456789012));
        assert_eq!(dev.get("account").unwrap().pos, Pos { line: 4, column: 14 });
        assert_eq!(t.get("version").unwrap().as_str(), Some("1.0"));
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        let t = parse("a: 12\nb: \"12\"\nc: 1.5\nd: true\ne: ~\nf: yes\ng: !!str 7\nh: 0x1f\ni: 1e3\nj: .inf\nk: 0012\n").unwrap();
        let v = |k: &str| t.get(k).unwrap().value.clone();
        assert_eq!(v("a"), Value::Int(12));
        assert_eq!(v("b"), Value::Str("12".into()));
        assert_eq!(v("c"), Value::Float(1.5));
        assert_eq!(v("d"), Value::Bool(true));
        assert_eq!(v("e"), Value::Null);
        // YAML 1.1 booleans are strings in 1.2.
        assert_eq!(v("f"), Value::Str("yes".into()));
        assert_eq!(v("g"), Value::Str("7".into()));
        assert_eq!(v("h"), Value::Int(31));
        assert_eq!(v("i"), Value::Float(1000.0));
        assert_eq!(v("j"), Value::Float(f64::INFINITY));
        assert_eq!(v("k"), Value::Int(12));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let t = parse(
            "base: &b {region: us-east-1, account: \"1\"}\nenv:\n  <<: *b\n  account: \"2\"\nlist: [*b]\n",
        )
        .unwrap();
        let env = t.get("env").unwrap();
        assert_eq!(env.get("region").unwrap().as_str(), Some("us-east-1"));
        assert_eq!(env.get("account").unwrap().as_str(), Some("2"));
        assert_eq!(
            t.get("list").unwrap().items()[0].get("account").unwrap().as_str(),
            Some("1")
        );
    }

    /// What the schema and the model read from a tree, both ways: through
    /// the tree itself, and through its JSON.
    fn both_ways(tree: &Node) -> (serde_json::Value, serde_json::Value) {
        use serde::Deserialize as _;
        let direct = serde_json::Value::deserialize(tree.clone()).unwrap();
        (direct, tree.to_json())
    }

    #[test]
    fn the_tree_reads_as_its_json() {
        for src in [
            "a: 1\nb: [x, \"y\", 2.5, ~, true]\nc: {d: {e: -3}}\n",
            "base: &b {region: us-east-1, account: \"1\"}\nenv:\n  <<: *b\n  account: \"2\"\nlist: [*b, *b]\n",
            "m:\n  <<: [{a: 1}, {b: 2}]\n  a: 3\n",
            "big: 1e400\nnan: .nan\nhuge: 123456789012345678901234567890\nwhole: 2.0\n",
            "",
            "just a scalar",
        ] {
            let tree = parse(src).unwrap();
            let (direct, json) = both_ways(&tree);
            assert_eq!(direct, json, "for {src:?}");
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value as J;
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            any::<i64>().prop_map(J::from),
            (-1.0e6f64..1.0e6).prop_map(J::from),
            "[ -~]{0,12}".prop_map(J::String),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
                proptest::collection::vec(("[a-zA-Z][a-zA-Z0-9_-]{0,8}", inner), 0..6)
                    .prop_map(|kv| J::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Schemas using the keywords the configuration schema uses.
    fn schemas() -> Vec<serde_json::Value> {
        use serde_json::json;
        vec![
            json!({"type": "object", "additionalProperties": {"type": ["string", "integer", "array"]}}),
            json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 100}}}),
            json!({"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": false, "properties": {"name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}}}}),
            json!({"anyOf": [{"type": "null"}, {"type": "boolean"}, {"type": "number", "exclusiveMinimum": 1.5}, {"enum": ["x", "y"]}]}),
            json!({"$defs": {"s": {"type": "string", "minLength": 2}}, "type": "object", "propertyNames": {"pattern": "^[a-m]"}, "additionalProperties": {"$ref": "#/$defs/s"}}),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        // Property: for any JSON-shaped document written as YAML, the tree
        // holds that document (its JSON is what was written), the model's
        // deserializer reads the same, and every schema accepts the tree
        // exactly when it accepts the JSON, with the same error paths.
        #[test]
        fn the_tree_is_the_document_for_serde_and_the_schema(doc in any_json()) {
            let yaml = serde_saphyr::to_string(&doc).unwrap();
            let tree = parse(&yaml).unwrap();
            let (direct, json) = both_ways(&tree);
            proptest::prop_assert_eq!(&json, &doc, "YAML was {}", yaml);
            proptest::prop_assert_eq!(&direct, &doc);
            for (i, schema) in schemas().iter().enumerate() {
                let on_tree = jsonschema::options_for::<view::Yaml>()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(schema)
                    .unwrap();
                let on_json = jsonschema::draft202012::new(schema).unwrap();
                let via_tree: Vec<String> = on_tree.iter_errors(&tree).map(|e| e.instance_path().to_string()).collect();
                let via_json: Vec<String> = on_json.iter_errors(&json).map(|e| e.instance_path().to_string()).collect();
                proptest::prop_assert_eq!(via_tree, via_json, "schema {}", i);
            }
        }
    }

    #[test]
    fn a_parser_panic_is_a_placed_error_not_a_crash() {
        // libyaml-safer 0.3 panics ("TODO") on a tag followed by `,`, in a
        // flow sequence or (as the fuzzer found it) a flow mapping.
        for text in [
            "a: 1\nb: [!t, x]\n",
            "s:\n  - { name: !etwork, path: lib/a.ts }\n",
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.message
                    .starts_with("the YAML parser cannot read what follows this point"),
                "{e:?}"
            );
            assert_eq!(e.pos.line, 2, "{e:?}");
        }
    }

    #[test]
    fn structural_errors_are_placed() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.message, "duplicate key `a` (first on line 1)");
        assert_eq!(e.pos, Pos { line: 3, column: 1 });
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("more than one YAML document")
        );
        assert!(parse("a: *nope\n").is_err());
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert!(parse(&deep).is_err());
    }
}
