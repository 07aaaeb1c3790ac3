//! YAML text → [`Node`] trees, read the way Docker Compose (compose-go on
//! `go.yaml.in/yaml/v4`) reads a Compose file.
//!
//! This module owns: the documents of one file, spans (`file:line:col`) on
//! every node and key, anchors and aliases, merge keys (`<<`), the `!reset` and
//! `!override` tags, plain-scalar resolution (YAML 1.2 core as yaml.v3 decodes
//! into `any`: `yes`/`on` stay strings, `0x1F`/`0o17`/`0777` are integers),
//! string-only keys, duplicate keys, and the limits that make alias bombs and
//! absurd nesting fail fast in bounded memory. It does not merge documents or
//! files (that is `merge`) and does not interpolate (`interpolate`).
//!
//! Built on `yaml-rust2`'s event parser, which is iterative: nesting depth
//! never grows the call stack here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser, Tag as YamlTag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::node::{Key, Map, Node, Span, Tag, Value};

/// The most nodes one document may expand to, aliases and merge keys counted
/// at their expanded size (and anchored nodes once more, for the copy kept to
/// expand aliases). A Compose file of 200 services is ~10 000 nodes; an alias
/// bomb stops here, at about 60 MB.
pub const MAX_NODES: usize = 250_000;

/// The deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 500;

/// Why a YAML file could not be read. Every variant names the place.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("failed to parse {span}: {message}")]
    Syntax { span: Span, message: String },
    #[error("{span}: mapping key {key:?} already defined at line {first_line}")]
    DuplicateKey {
        span: Span,
        key: String,
        first_line: u32,
    },
    /// compose-go's wording: `non-string key in services: 123`.
    #[error("{span}: non-string key {location}: {key}")]
    NonStringKey {
        span: Span,
        location: String,
        key: String,
    },
    #[error("{span}: unknown YAML tag {tag:?} (Compose only knows !reset and !override)")]
    UnknownTag { span: Span, tag: String },
    #[error("{span}: cannot decode {value:?} as a {tag}")]
    BadTaggedValue {
        span: Span,
        tag: String,
        value: String,
    },
    #[error("{span}: map merge requires map or sequence of maps as the value")]
    MergeNotMap { span: Span },
    #[error("{span}: alias *{anchor} refers to a node that contains it")]
    RecursiveAlias { span: Span, anchor: String },
    #[error("{span}: document expands to more than {limit} nodes (alias bomb?)")]
    TooManyNodes { span: Span, limit: usize },
    #[error("{span}: nesting deeper than {limit} levels")]
    TooDeep { span: Span, limit: usize },
}

impl YamlError {
    /// Where the problem is.
    pub fn span(&self) -> &Span {
        match self {
            YamlError::Syntax { span, .. }
            | YamlError::DuplicateKey { span, .. }
            | YamlError::NonStringKey { span, .. }
            | YamlError::UnknownTag { span, .. }
            | YamlError::BadTaggedValue { span, .. }
            | YamlError::MergeNotMap { span }
            | YamlError::RecursiveAlias { span, .. }
            | YamlError::TooManyNodes { span, .. }
            | YamlError::TooDeep { span, .. } => span,
        }
    }
}

/// Every document of `text`, in order. A file with no document at all (empty,
/// or only comments) gives an empty list, as compose-go's decoder reaches EOF
/// at once; an explicit empty document (`---`) gives a `Null` node.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Node>, YamlError> {
    let file: Arc<Path> = Arc::from(file);
    // yaml.v3 drops a leading byte-order mark; yaml-rust2 would read it as text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        docs: Vec::new(),
        root: None,
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError::Syntax {
            span: builder.span(e.marker()),
            message: e.info().to_owned(),
        })?;
        if builder.event(event, mark)? {
            break;
        }
    }
    Ok(builder.docs)
}

/// The type a scalar resolves to, before it becomes a [`Value`].
enum ScalarTag {
    /// Resolve a plain scalar by its text.
    Implicit,
    Str,
    Int,
    Float,
    Bool,
    Null,
    Binary,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        span: Span,
        tag: Tag,
        anchor: usize,
    },
    Map {
        map: Map,
        /// The key read, waiting for its value; `None` between entries.
        key: Option<PendingKey>,
        /// Values of `<<` entries, applied at the end so explicit keys win.
        merges: Vec<Node>,
        merge_line: Option<u32>,
        span: Span,
        tag: Tag,
        anchor: usize,
    },
}

enum PendingKey {
    Key(Key),
    Merge(Span),
}

struct Builder {
    file: Arc<Path>,
    stack: Vec<Frame>,
    /// Completed anchored nodes by the parser's anchor id, with their size.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes made so far in this document, aliases counted expanded.
    nodes: usize,
    docs: Vec<Node>,
    root: Option<Node>,
}

impl Builder {
    fn span(&self, mark: &Marker) -> Span {
        Span {
            file: self.file.clone(),
            line: u32::try_from(mark.line()).unwrap_or(u32::MAX),
            col: u32::try_from(mark.col() + 1).unwrap_or(u32::MAX),
        }
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError::TooManyNodes {
                span: span.clone(),
                limit: MAX_NODES,
            });
        }
        Ok(())
    }

    /// Handles one event; true at the end of the stream.
    fn event(&mut self, event: Event, mark: Marker) -> Result<bool, YamlError> {
        match event {
            Event::StreamEnd => return Ok(true),
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentStart => {
                self.root = None;
                self.anchors.clear();
                self.nodes = 0;
            }
            Event::DocumentEnd => {
                let span = self.span(&mark);
                let root = self
                    .root
                    .take()
                    .unwrap_or_else(|| Node::new(Value::Null, span));
                self.docs.push(root);
                self.anchors.clear();
            }
            Event::Scalar(text, style, anchor, tag) => {
                let span = self.span(&mark);
                self.count(1, &span)?;
                let (tag, stag) = self.tags(tag.as_ref(), &span, false)?;
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = self.stack.last_mut()
                {
                    // A key: keep its text; the merge key is a plain `<<`.
                    if matches!(stag, ScalarTag::Implicit)
                        && style == TScalarStyle::Plain
                        && text == "<<"
                    {
                        *key = Some(PendingKey::Merge(span));
                        return Ok(false);
                    }
                    let value = resolve(text, style, stag, &span)?;
                    let node = Node { value, span, tag };
                    if anchor > 0 {
                        self.anchors.insert(anchor, (node.clone(), 1));
                    }
                    self.key(node)?;
                    return Ok(false);
                }
                let value = resolve(text, style, stag, &span)?;
                let node = Node { value, span, tag };
                self.finish(node, anchor)?;
            }
            Event::SequenceStart(anchor, tag) => {
                let span = self.span(&mark);
                self.open(&span)?;
                let (tag, _) = self.tags(tag.as_ref(), &span, true)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    span,
                    tag,
                    anchor,
                });
            }
            Event::MappingStart(anchor, tag) => {
                let span = self.span(&mark);
                self.open(&span)?;
                let (tag, _) = self.tags(tag.as_ref(), &span, true)?;
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    merges: Vec::new(),
                    merge_line: None,
                    span,
                    tag,
                    anchor,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    span,
                    tag,
                    anchor,
                }) = self.stack.pop()
                {
                    let node = Node {
                        value: Value::Seq(items),
                        span,
                        tag,
                    };
                    self.finish(node, anchor)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    mut map,
                    merges,
                    span,
                    tag,
                    anchor,
                    ..
                }) = self.stack.pop()
                {
                    for merge in merges {
                        apply_merge(&mut map, merge)?;
                    }
                    let node = Node {
                        value: Value::Map(map),
                        span,
                        tag,
                    };
                    self.finish(node, anchor)?;
                }
            }
            Event::Alias(id) => {
                let span = self.span(&mark);
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    return Err(YamlError::RecursiveAlias {
                        span,
                        anchor: id.to_string(),
                    });
                };
                self.count(size, &span)?;
                let node = self.anchors[&id].0.clone();
                if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                    self.key(node)?;
                    return Ok(false);
                }
                // An alias is not itself anchored; its copy keeps the target's size.
                self.place(node)?;
            }
        }
        Ok(false)
    }

    fn open(&mut self, span: &Span) -> Result<(), YamlError> {
        self.count(1, span)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::TooDeep {
                span: span.clone(),
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    /// A Compose tag and the scalar type a standard tag asks for.
    fn tags(
        &self,
        tag: Option<&YamlTag>,
        span: &Span,
        collection: bool,
    ) -> Result<(Tag, ScalarTag), YamlError> {
        let Some(tag) = tag else {
            return Ok((Tag::None, ScalarTag::Implicit));
        };
        let full = format!("{}{}", tag.handle, tag.suffix);
        let core = full
            .strip_prefix("tag:yaml.org,2002:")
            .map(|s| (s, collection));
        let out = match (full.as_str(), core) {
            ("!reset", _) => (Tag::Reset, ScalarTag::Implicit),
            ("!override", _) => (Tag::Override, ScalarTag::Implicit),
            // The non-specific tag `!` makes a scalar a string.
            ("!", _) => (Tag::None, ScalarTag::Str),
            (_, Some(("map", true) | ("seq", true) | ("omap", true))) => {
                (Tag::None, ScalarTag::Implicit)
            }
            (_, Some(("str", false) | ("timestamp", false))) => (Tag::None, ScalarTag::Str),
            (_, Some(("int", false))) => (Tag::None, ScalarTag::Int),
            (_, Some(("float", false))) => (Tag::None, ScalarTag::Float),
            (_, Some(("bool", false))) => (Tag::None, ScalarTag::Bool),
            (_, Some(("null", false))) => (Tag::None, ScalarTag::Null),
            (_, Some(("binary", false))) => (Tag::None, ScalarTag::Binary),
            _ => {
                return Err(YamlError::UnknownTag {
                    span: span.clone(),
                    tag: full,
                })
            }
        };
        Ok(out)
    }

    /// Records a key node of the innermost mapping.
    fn key(&mut self, node: Node) -> Result<(), YamlError> {
        let name = match node.value {
            Value::String(s) => s,
            other => {
                let location = self.location();
                return Err(YamlError::NonStringKey {
                    span: node.span,
                    location,
                    key: go_repr(&other),
                });
            }
        };
        if let Some(Frame::Map { map, key, .. }) = self.stack.last_mut() {
            if let Some((first, _)) = map.get_key_value(name.as_str()) {
                return Err(YamlError::DuplicateKey {
                    span: node.span,
                    key: name,
                    first_line: first.span.line,
                });
            }
            *key = Some(PendingKey::Key(Key::new(name, node.span)));
        }
        Ok(())
    }

    /// compose-go's location of a key for `non-string key` errors: `at top
    /// level`, or `in services.x.ports[0]`.
    fn location(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack[..self.stack.len().saturating_sub(1)] {
            match frame {
                Frame::Map {
                    key: Some(PendingKey::Key(k)),
                    ..
                } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&k.name);
                }
                Frame::Map { .. } => {}
                Frame::Seq { items, .. } => {
                    path.push_str(&format!("[{}]", items.len()));
                }
            }
        }
        if path.is_empty() {
            "at top level".to_owned()
        } else {
            format!("in {path}")
        }
    }

    /// A completed node: remember it if anchored, then place it in its parent.
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), YamlError> {
        if anchor > 0 {
            let size = count_nodes(&node);
            // The stored copy costs memory too: count it against the limit.
            self.count(size, &node.span)?;
            self.anchors
                .insert(anchor, (without_reset_descendants(node.clone()), size));
        }
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            // A collection used as a key (`? [a]: b`) is not a string.
            return self.key(node);
        }
        self.place(node)
    }

    fn place(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                map,
                key,
                merges,
                merge_line,
                ..
            }) => match key.take() {
                Some(PendingKey::Key(k)) => {
                    map.insert(k, node);
                }
                Some(PendingKey::Merge(span)) => {
                    if let Some(first_line) = *merge_line {
                        return Err(YamlError::DuplicateKey {
                            span,
                            key: "<<".to_owned(),
                            first_line,
                        });
                    }
                    *merge_line = Some(span.line);
                    merges.push(node);
                }
                None => {}
            },
        }
        Ok(())
    }
}

/// What an alias sees of its anchor. compose-go (v2.9) drops `!reset`
/// entries from the anchored node itself when it first meets them, at the
/// anchor, so every later alias or `<<` of it sees the node without them:
/// a `!reset` inside an anchored mapping acts where the anchor is written,
/// never where it is used. A tag on the anchored node itself still applies
/// at each use, and `!override` entries are kept.
fn without_reset_descendants(mut node: Node) -> Node {
    fn strip(node: &mut Node) {
        match &mut node.value {
            Value::Map(m) => {
                m.retain(|_, v| v.tag != Tag::Reset);
                m.values_mut().for_each(strip);
            }
            Value::Seq(items) => {
                items.retain(|v| v.tag != Tag::Reset);
                items.iter_mut().for_each(strip);
            }
            _ => {}
        }
    }
    strip(&mut node);
    node
}

/// Applies the value of a `<<` key: a mapping, or a sequence of mappings where
/// the earlier ones win; keys already present always win.
fn apply_merge(map: &mut Map, merge: Node) -> Result<(), YamlError> {
    match merge.value {
        Value::Map(source) => {
            for (k, v) in source {
                map.entry(k).or_insert(v);
            }
            Ok(())
        }
        Value::Seq(items) => {
            for item in items {
                match item.value {
                    Value::Map(source) => {
                        for (k, v) in source {
                            map.entry(k).or_insert(v);
                        }
                    }
                    _ => return Err(YamlError::MergeNotMap { span: item.span }),
                }
            }
            Ok(())
        }
        _ => Err(YamlError::MergeNotMap { span: merge.span }),
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// How Go's `%#v` prints a decoded scalar, for key errors.
fn go_repr(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Seq(_) => "[]interface {}{...}".to_owned(),
        Value::Map(_) => "map[string]interface {}{...}".to_owned(),
    }
}

fn resolve(
    text: String,
    style: TScalarStyle,
    tag: ScalarTag,
    span: &Span,
) -> Result<Value, YamlError> {
    let bad = |tag: &str, text: &str| YamlError::BadTaggedValue {
        span: span.clone(),
        tag: tag.to_owned(),
        value: text.to_owned(),
    };
    match tag {
        ScalarTag::Implicit if style == TScalarStyle::Plain => Ok(resolve_plain(text)),
        ScalarTag::Implicit | ScalarTag::Str => Ok(Value::String(text)),
        ScalarTag::Int => match resolve_plain(text.clone()) {
            v @ Value::Int(_) => Ok(v),
            _ => Err(bad("!!int", &text)),
        },
        ScalarTag::Float => match resolve_plain(text.clone()) {
            Value::Int(i) => Ok(Value::Float(i as f64)),
            v @ Value::Float(_) => Ok(v),
            _ => Err(bad("!!float", &text)),
        },
        ScalarTag::Bool => match resolve_plain(text.clone()) {
            v @ Value::Bool(_) => Ok(v),
            _ => Err(bad("!!bool", &text)),
        },
        ScalarTag::Null => match resolve_plain(text.clone()) {
            Value::Null => Ok(Value::Null),
            _ => Err(bad("!!null", &text)),
        },
        ScalarTag::Binary => {
            use base64::Engine as _;
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| bad("!!binary", &text))?;
            Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        }
    }
}

/// Resolves a plain scalar as yaml.v3 does when decoding into `any`.
pub fn resolve_plain(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match text.as_bytes()[0] {
        b'0'..=b'9' | b'+' | b'-' => {
            let plain: std::borrow::Cow<'_, str> = if text.contains('_') {
                text.replace('_', "").into()
            } else {
                text.as_str().into()
            };
            if let Some(i) = go_parse_int(&plain) {
                return Value::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                // Beyond i64: the model has no unsigned integers.
                return Value::Float(u as f64);
            }
            if is_yaml_float(&plain) {
                if let Ok(f) = plain.parse::<f64>() {
                    if f.is_finite() {
                        return Value::Float(f);
                    }
                }
            }
            Value::String(text)
        }
        b'.' => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => Value::String(text),
        },
        _ => Value::String(text),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, then `0x`, `0o`, `0b`,
/// a leading `0` (octal) or decimal digits.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_magnitude(rest)?;
    if neg {
        if magnitude == 1u64 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(magnitude).ok().map(|m| -m)
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: no sign allowed.
fn go_parse_uint(s: &str) -> Option<u64> {
    go_parse_magnitude(s)
}

fn go_parse_magnitude(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (radix, digits) = if b.len() >= 2 && b[0] == b'0' {
        match b[1] {
            b'x' | b'X' => (16, &s[2..]),
            b'o' | b'O' => (8, &s[2..]),
            b'b' | b'B' => (2, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.bytes().all(|c| (c as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// yaml.v3's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}
