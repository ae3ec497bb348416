//! The tree as the JSON Schema validator sees it, without a JSON copy:
//! `jsonschema` validates any representation that implements its `Json`
//! traits. Each scalar reads as [`Node::to_json`] would write it, so the
//! schema sees the same document either way (a test checks this).

use std::borrow::Cow;

use jsonschema::json::{Array, Json, Node as JsonNode, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde_json::Value as J;

use super::{Key, Node, Value, scalar_json};

/// The representation: `&Node`.
pub(crate) struct Yaml;

/// A one-node document `propertyNames` validates names through.
#[derive(Default)]
pub(crate) struct NameBuffer(Option<Node>);

impl Json for Yaml {
    type Node<'a> = &'a Node;
    type PreparedKey = String;
    type StringBuffer = NameBuffer;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(buffer: &mut NameBuffer, string: &str, f: impl FnOnce(&Node) -> T) -> T {
        let node = buffer.0.insert(Node {
            pos: super::Pos::default(),
            value: Value::Str(string.to_owned()),
        });
        f(node)
    }
}

impl<'a> JsonNode<'a, Yaml> for &'a Node {
    type Object = &'a [(Key, Node)];
    type Array = &'a [Node];
    type Number = serde_json::Number;

    fn as_object(&self) -> Option<&'a [(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&'a [Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match &self.value {
            Value::Str(s) => Some(Cow::Borrowed(s)),
            // Non-finite floats are strings in the JSON too.
            Value::Float(f) if !f.is_finite() => Some(Cow::Owned(f.to_string())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<serde_json::Number> {
        match &self.value {
            Value::Int(_) | Value::Float(_) => match scalar_json(&self.value) {
                J::Number(n) => Some(n),
                _ => None,
            },
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        self.json_type() == JsonType::Null
    }

    fn json_type(&self) -> JsonType {
        match &self.value {
            Value::Str(_) => JsonType::String,
            Value::Seq(_) => JsonType::Array,
            Value::Map(_) => JsonType::Object,
            Value::Bool(_) => JsonType::Boolean,
            Value::Null => JsonType::Null,
            Value::Int(_) | Value::Float(_) => match scalar_json(&self.value) {
                J::Number(_) => JsonType::Number,
                J::String(_) => JsonType::String,
                _ => JsonType::Null,
            },
        }
    }

    fn to_value(&self) -> Cow<'a, J> {
        Cow::Owned(self.to_json())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(std::ptr::from_ref::<Node>(self) as usize))
    }
}

/// Members of a mapping, names first.
pub(crate) struct Members<'a>(std::slice::Iter<'a, (Key, Node)>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.name.as_str(), v))
    }
}

impl<'a> Object<'a, Yaml> for &'a [(Key, Node)] {
    type Node = &'a Node;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        <[(Key, Node)]>::len(self)
    }

    fn get(&self, key: &String) -> Option<&'a Node> {
        // Mappings of a configuration are small: a scan beats hashing.
        self.iter().find(|(k, _)| k.name == *key).map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        Members(self.iter())
    }
}

impl<'a> Array<'a, Yaml> for &'a [Node] {
    type Node = &'a Node;
    type ElementsIter = std::slice::Iter<'a, Node>;

    fn len(&self) -> usize {
        <[Node]>::len(self)
    }

    fn elements(&self) -> std::slice::Iter<'a, Node> {
        self.iter()
    }
}
