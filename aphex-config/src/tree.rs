//! The YAML document as a tree of nodes that keep their source line and
//! column, parsed by serde-saphyr's YAML parser under tight resource budgets. Schema and
//! semantic validation both read this tree, so every problem can be placed.
//! Knows nothing of the configuration's meaning.

use std::fmt;

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
    /// The value under `key`, when this node is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries().iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
    }

    /// The key `key`, when this node is a mapping that has it.
    pub fn key(&self, key: &str) -> Option<&Key> {
        self.entries().iter().find(|(k, _)| k.name == key).map(|(k, _)| k)
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
            Value::Null => J::Null,
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
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
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
///
/// Built straight from the events of granit-parser (the YAML parser under
/// serde-saphyr) rather than through serde: deserializing every node as a
/// `Spanned` value was more than half of the loading time, and the events
/// carry the positions already. Plain scalars are resolved with the YAML 1.2
/// core schema, as serde-saphyr does; anchors, aliases and `<<` merge keys
/// are supported within the budgets above; duplicate keys are errors.
pub fn parse(source: &str) -> Result<Node, ParseError> {
    use serde_saphyr::granit_parser::{Event, Parser};

    let options = serde_saphyr::granit_parser::options! {
        flow_nesting_limit: MAX_DEPTH + 1,
        block_nesting_limit: MAX_DEPTH + 1,
        emit_comments: false,
    };
    let mut parser = Parser::new_from_str_with_options(source, options);
    let mut b = Builder::default();
    let mut documents = 0;
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                let m = e.marker();
                return Err(ParseError {
                    message: e.info(),
                    pos: Pos {
                        line: m.line(),
                        column: m.col() + 1,
                    },
                });
            }
        };
        let pos = Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        let fail = |message: String| Err(ParseError { message, pos });
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return fail(
                        "more than one YAML document (`---`); a configuration is one document".into(),
                    );
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve(&text, style, tag.as_deref());
                b.add(Node { pos, value }, anchor).map_err(|m| ParseError {
                    message: m,
                    pos: b.error_at.unwrap_or(pos),
                })?;
            }
            Event::SequenceStart(_, anchor, _) => {
                b.open(pos, Value::Seq(Vec::new()), anchor)
                    .map_err(|m| ParseError {
                        message: m,
                        pos: b.error_at.unwrap_or(pos),
                    })?
            }
            Event::MappingStart(_, anchor, _) => {
                b.open(pos, Value::Map(Vec::new()), anchor)
                    .map_err(|m| ParseError {
                        message: m,
                        pos: b.error_at.unwrap_or(pos),
                    })?
            }
            Event::SequenceEnd | Event::MappingEnd => b.close().map_err(|m| ParseError {
                message: m,
                pos: b.error_at.unwrap_or(pos),
            })?,
            Event::Alias(id) => {
                b.aliases += 1;
                if b.aliases > MAX_ALIASES {
                    return fail(format!("more than {MAX_ALIASES} aliases"));
                }
                let Some(node) = b.anchors.get(&id).cloned() else {
                    return fail("alias to an unknown anchor".into());
                };
                b.nodes += count(&node);
                b.add(
                    Node {
                        pos,
                        value: node.value,
                    },
                    0,
                )
                .map_err(|m| ParseError {
                    message: m,
                    pos: b.error_at.unwrap_or(pos),
                })?;
            }
            _ => {}
        }
    }
    Ok(b.root.unwrap_or(Node {
        pos: Pos { line: 1, column: 1 },
        value: Value::Null,
    }))
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

/// An open collection: the node, its anchor, and for a mapping the key
/// waiting for its value and the `<<` merges to apply at the end.
struct Open {
    node: Node,
    anchor: usize,
    key: Option<Node>,
    merges: Vec<Node>,
    /// Keys so far and where (duplicate detection in O(1) per key).
    seen: std::collections::HashMap<String, Pos>,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    anchors: std::collections::HashMap<usize, Node>,
    nodes: usize,
    aliases: usize,
    /// Where an error belongs when it is not at the current event (a duplicate key).
    error_at: Option<Pos>,
}

impl Builder {
    fn open(&mut self, pos: Pos, value: Value, anchor: usize) -> Result<(), String> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.stack.push(Open {
            node: Node { pos, value },
            anchor,
            key: None,
            merges: Vec::new(),
            seen: Default::default(),
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        let Some(mut open) = self.stack.pop() else {
            return Err("unbalanced collection end".into());
        };
        if let Value::Map(entries) = &mut open.node.value {
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
                    _ => return Err("`<<` merges a mapping or a list of mappings".into()),
                };
                for m in maps {
                    for (k, v) in m {
                        if !open.seen.contains_key(&k.name) {
                            open.seen.insert(k.name.clone(), k.pos);
                            entries.push((k, v));
                        }
                    }
                }
            }
        }
        self.add(open.node, open.anchor)
    }

    fn add(&mut self, node: Node, anchor: usize) -> Result<(), String> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(format!(
                "more than {MAX_NODES} nodes (an alias bomb, or not a configuration)"
            ));
        }
        if anchor != 0 {
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
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => match top.key.take() {
                None => top.key = Some(node),
                Some(key) => {
                    let name = key_text(&key)?;
                    if name == "<<" {
                        top.merges.push(node);
                    } else if let Some(first) = top.seen.get(&name) {
                        self.error_at = Some(key.pos);
                        return Err(format!("duplicate key `{name}` (first on line {})", first.line));
                    } else {
                        top.seen.insert(name.clone(), key.pos);
                        entries.push((Key { name, pos: key.pos }, node));
                    }
                }
            },
            _ => {}
        }
        Ok(())
    }
}

/// A key as text; collections cannot be keys.
fn key_text(key: &Node) -> Result<String, String> {
    Ok(match &key.value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.clone(),
        Value::Seq(_) | Value::Map(_) => return Err("a list or mapping cannot be a mapping key".into()),
    })
}

/// The value of a scalar: quoted and block scalars are strings; plain ones
/// follow the YAML 1.2 core schema; core tags (`!!str`, `!!int`, ...) force a type.
fn resolve(
    text: &str,
    style: serde_saphyr::granit_parser::ScalarStyle,
    tag: Option<&serde_saphyr::granit_parser::Tag>,
) -> Value {
    use serde_saphyr::granit_parser::ScalarStyle;
    if let Some(t) = tag.filter(|t| t.is_yaml_core_schema()) {
        match t.suffix() {
            "str" => return Value::Str(text.to_owned()),
            "null" => return Value::Null,
            _ => {}
        }
    }
    if style != ScalarStyle::Plain {
        return Value::Str(text.to_owned());
    }
    match text {
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
        return Value::Str(text.to_owned());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
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
    Value::Str(text.to_owned())
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
