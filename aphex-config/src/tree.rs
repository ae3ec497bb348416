//! The YAML document as a tree of nodes that keep their source line and
//! column, built from libyaml-safer's events under tight resource budgets.
//! Schema and semantic validation both read this tree, so every problem can
//! be placed. Knows nothing of the configuration's meaning.

use std::fmt;

mod de;
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

/// Parses `source` into a tree, on the calling thread.
///
/// The events come from libyaml-safer (a safe-Rust port of libyaml, the
/// reference YAML parser) rather than through serde, because its events
/// carry positions. The parser only produces events; every budget (depth,
/// nodes, aliases) is ours and enforced by the [`Builder`] as the tree
/// grows, so hostile input stops early. Plain scalars are resolved with
/// the YAML 1.2 core schema, as serde-saphyr does; anchors, aliases and
/// `<<` merge keys are supported within the budgets; duplicate keys are
/// errors.
pub fn parse(source: &str) -> Result<Node, ParseError> {
    // `&[u8]` is a `BufRead` the parser can read from directly.
    let mut parser = libyaml_safer::Parser::<&[u8]>::new();
    parser.set_input(source.as_bytes());
    let mut builder = Builder::default();
    // Where the last event ended: where a parser panic is reported.
    let mut at = Pos { line: 1, column: 1 };
    loop {
        let event = next_event(&mut parser, at)?;
        at = mark_pos(event.end_mark);
        if !builder.feed(event)? {
            return Ok(builder.finish());
        }
    }
}

thread_local! {
    /// Whether this thread is inside libyaml-safer, where a panic is
    /// caught and reported (see [`quiet_parser_panics`]).
    static IN_PARSER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// libyaml's next event. libyaml-safer 0.3 still panics on a few inputs it
/// has not finished porting (a `!tag` followed directly by `,` in a flow
/// collection): the panic is caught here and the file is refused like any
/// other unreadable YAML, at the end of the last event read, never a crash.
fn next_event(
    parser: &mut libyaml_safer::Parser<&[u8]>,
    at: Pos,
) -> Result<libyaml_safer::Event, ParseError> {
    IN_PARSER.set(true);
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse()));
    IN_PARSER.set(false);
    match parsed {
        Ok(Ok(event)) => Ok(event),
        Ok(Err(e)) => Err(syntax_error(&e)),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let message = format!(
                "the YAML parser cannot read what follows this point (libyaml-safer stopped: {why}); \
                 check the syntax here, e.g. put a space between a `!tag` and a `,`"
            );
            Err(ParseError { message, pos: at })
        }
    }
}

/// Keeps the process's panic hook quiet for the YAML parser's panics,
/// which loading catches and reports as a placed syntax error (see
/// [`parse`]): their own message would only read as a crash. Wraps the
/// hook installed when it is first called, so call it after installing any
/// hook of your own; every other panic still reaches that hook. Later
/// calls do nothing. Both binaries call it first thing in `main`.
pub fn quiet_parser_panics() {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let next = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `try_with`: a panic while this thread's locals are torn down.
            if !IN_PARSER.try_with(std::cell::Cell::get).unwrap_or(false) {
                next(info);
            }
        }));
    });
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

/// Builds the tree from libyaml's events, within the budgets.
#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    anchors: std::collections::HashMap<String, Node>,
    /// Nodes made, alias copies included.
    nodes: usize,
    aliases: usize,
    /// Where an error belongs when it is not at the current event (a duplicate key).
    error_at: Option<Pos>,
    /// Documents begun.
    documents: usize,
}

impl Builder {
    /// Takes one event; `false` after the stream's end.
    fn feed(&mut self, event: libyaml_safer::Event) -> Result<bool, ParseError> {
        use libyaml_safer::EventData;
        let pos = mark_pos(event.start_mark);
        let placed = |b: &Builder, e: BuildError| ParseError {
            message: e.to_string(),
            pos: b.error_at.unwrap_or(pos),
        };
        match event.data {
            EventData::StreamStart { .. } | EventData::DocumentEnd { .. } => {}
            EventData::StreamEnd => return Ok(false),
            EventData::DocumentStart { .. } => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ParseError {
                        message: "more than one YAML document (`---`); a configuration is one document"
                            .into(),
                        pos,
                    });
                }
            }
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let plain = style == libyaml_safer::ScalarStyle::Plain;
                let value = resolve(value, plain, tag.as_deref());
                self.add(Node { pos, value }, anchor)
                    .map_err(|m| placed(self, m))?;
            }
            EventData::SequenceStart { anchor, .. } => self
                .open(pos, Value::Seq(Vec::new()), anchor)
                .map_err(|m| placed(self, m))?,
            EventData::MappingStart { anchor, .. } => self
                .open(pos, Value::Map(Vec::new()), anchor)
                .map_err(|m| placed(self, m))?,
            EventData::SequenceEnd | EventData::MappingEnd => {
                self.close().map_err(|m| placed(self, m))?;
            }
            EventData::Alias { anchor } => {
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
        Ok(true)
    }

    /// The document built (an empty text is null).
    fn finish(mut self) -> Node {
        self.root.take().unwrap_or(Node {
            pos: Pos { line: 1, column: 1 },
            value: Value::Null,
        })
    }

    fn open(&mut self, pos: Pos, value: Value, anchor: Option<String>) -> Result<(), BuildError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(BuildError::TooDeep);
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

    fn close(&mut self) -> Result<(), BuildError> {
        let Some(mut open) = self.stack.pop() else {
            return Err(BuildError::Unbalanced);
        };
        // Explicit keys win over merged ones, whatever their order.
        for merged in std::mem::take(&mut open.merges) {
            let maps = match merged.value {
                Value::Map(m) => vec![m],
                Value::Seq(items) => items
                    .into_iter()
                    .filter_map(|n| match n.value {
                        Value::Map(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
                _ => return Err(BuildError::BadMerge),
            };
            for m in maps {
                for (k, v) in m {
                    if open.find(&k.name).is_none() {
                        open.push(k, v);
                    }
                }
            }
        }
        self.add(open.node, open.anchor)
    }

    fn add(&mut self, node: Node, anchor: Option<String>) -> Result<(), BuildError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(BuildError::TooManyNodes);
        }
        if let Some(anchor) = anchor {
            // Keeping a copy costs as much as the node: it counts too, so
            // many anchors on large nodes cannot run away either.
            self.nodes += count(&node);
            if self.nodes > MAX_NODES {
                return Err(BuildError::TooManyNodes);
            }
            self.anchors.insert(anchor, node.clone());
        }
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut top.node.value {
            Value::Seq(items) => items.push(node),
            Value::Map(_) => match top.key.take() {
                None => top.key = Some(node),
                Some(key) => {
                    let pos = key.pos;
                    let name = key_text(key.value)?;
                    if name == "<<" {
                        top.merges.push(node);
                    } else if let Some(first) = top.find(&name) {
                        self.error_at = Some(pos);
                        return Err(BuildError::DuplicateKey {
                            name,
                            first_line: first.line,
                        });
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

/// Why the builder refused an event; [`Builder::feed`] places it.
#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("nested more than {MAX_DEPTH} levels deep")]
    TooDeep,
    #[error("unbalanced collection end")]
    Unbalanced,
    #[error("`<<` merges a mapping or a list of mappings")]
    BadMerge,
    #[error("more than {MAX_NODES} nodes (an alias bomb, or not a configuration)")]
    TooManyNodes,
    #[error("duplicate key `{name}` (first on line {first_line})")]
    DuplicateKey { name: String, first_line: usize },
    #[error("a list or mapping cannot be a mapping key")]
    CollectionKey,
}

/// A key as text; collections cannot be keys.
fn key_text(key: Value) -> Result<String, BuildError> {
    Ok(match key {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s,
        Value::Seq(_) | Value::Map(_) => return Err(BuildError::CollectionKey),
    })
}

/// The value of a scalar: quoted and block scalars are strings; plain ones
/// follow the YAML 1.2 core schema; core tags (`!!str`, `!!null`) force a type.
fn resolve(text: String, plain: bool, tag: Option<&str>) -> Value {
    match tag.and_then(|t| t.strip_prefix("tag:yaml.org,2002:")) {
        Some("str") => return Value::Str(text),
        Some("null") => return Value::Null,
        _ => {}
    }
    if !plain {
        return Value::Str(text);
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
        return Value::Str(text);
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
    Value::Str(text)
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
