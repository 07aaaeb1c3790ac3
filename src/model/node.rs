//! The loader's working tree: a YAML document as Compose sees it after parsing
//! (keys already strings), with the file, line and column of every node, so
//! that every later stage (interpolation, schema validation, extends, include,
//! merge) can report `file:line:col` and a key path.
//!
//! Nothing downstream of `model::load` sees this type: normalization turns it
//! into the typed `Project`.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

/// Where a node came from. `line` and `col` are 1-based, as editors show them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The file the node was read from (`-` for standard input, or a synthetic
    /// name such as `<environment>` for values that came from elsewhere).
    pub file: Arc<Path>,
    pub line: u32,
    pub col: u32,
}

impl Span {
    /// A span for a value that has no place in a file (a default, a value made
    /// by normalization, a test).
    pub fn synthetic(what: &str) -> Span {
        Span {
            file: Arc::from(Path::new(what)),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }
}

/// The YAML tags Compose gives a meaning to. Any other tag is refused by the
/// parser.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tag {
    #[default]
    None,
    /// `!reset`: when merging, remove the value inherited from earlier files.
    Reset,
    /// `!override`: when merging, replace the inherited value instead of merging.
    Override,
}

/// A mapping key: compared and hashed by its text only, but it remembers where
/// it was written so a misspelled key can be pointed at.
#[derive(Clone, Debug)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Key {
    pub fn new(name: impl Into<String>, span: Span) -> Key {
        Key {
            name: name.into(),
            span,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.name == other.name
    }
}
impl Eq for Key {}
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}
impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.name
    }
}

/// A mapping, in document order.
pub type Map = IndexMap<Key, Node>;

/// A value of the tree. Scalars are resolved with the YAML 1.2 core schema, as
/// Compose's YAML library does (`yes` stays a string, `0x1F` is an integer).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Map),
}

/// A value with its place in the source and its Compose tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    pub tag: Tag,
}

impl Node {
    pub fn new(value: Value, span: Span) -> Node {
        Node {
            value,
            span,
            tag: Tag::None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The entry `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// A short name of the node's kind, for error messages ("a string", "a mapping").
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }

    /// The tree as plain JSON, dropping spans and tags.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A tree from plain JSON, every node carrying `span` (for tests and for
    /// values that do not come from a file).
    pub fn from_json(json: &serde_json::Value, span: &Span) -> Node {
        use serde_json::Value as J;
        let value = match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => Value::Seq(items.iter().map(|j| Node::from_json(j, span)).collect()),
            J::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (Key::new(k.clone(), span.clone()), Node::from_json(v, span)))
                    .collect(),
            ),
        };
        Node::new(value, span.clone())
    }
}

/// A path of keys and indexes from the document root, printed as Compose
/// prints it: `services.web.ports[0]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<PathPart>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathPart {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    pub fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(PathPart::Key(k.to_owned()));
        p
    }

    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(PathPart::Index(i));
        p
    }

    pub fn parts(&self) -> &[PathPart] {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            match part {
                PathPart::Key(k) if i == 0 => write!(f, "{k}")?,
                PathPart::Key(k) => write!(f, ".{k}")?,
                PathPart::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_prints_like_compose() {
        let p = KeyPath::root()
            .key("services")
            .key("web")
            .key("ports")
            .index(0);
        assert_eq!(p.to_string(), "services.web.ports[0]");
    }

    #[test]
    fn json_round_trip_keeps_order() {
        let j: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":[true,null,"x",1.5]}"#).unwrap();
        let n = Node::from_json(&j, &Span::synthetic("<test>"));
        assert_eq!(n.to_json(), j);
        assert_eq!(n.get("a").unwrap().kind(), "a sequence");
    }
}
