//! Validation of a Compose tree against the Compose JSON schema.
//!
//! The schema (`compose-spec.json`, the copy docker compose v2.40 embeds
//! through compose-go v2.9.1) is compiled once, on first use, into a small
//! arena of checks; validation then walks the tree without allocating unless
//! it fails. Only the part of JSON Schema that file uses is supported (type,
//! properties, patternProperties, additionalProperties, required, enum,
//! oneOf/anyOf/allOf, `$ref`, items, uniqueItems, minimum/maximum, pattern);
//! compiling refuses any other keyword, so a schema update cannot silently
//! weaken validation.
//!
//! Like compose-go, the error reported is the most specific failure (the
//! deepest instance location, an unknown key counting one level deeper), with
//! compose-go's wording (`services.web additional properties 'imagee' not
//! allowed`) plus what berth adds: `file:line:col`, and for a misspelled key
//! the closest allowed one.
//!
//! This module does not load, merge or interpret anything: it answers "is
//! this tree a valid Compose file", as compose-go's `schema.Validate` does.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value as Json;

use crate::model::node::{KeyPath, Node, Span, Value};

/// The Compose JSON schema berth validates with.
pub const COMPOSE_SCHEMA: &str = include_str!("compose-spec.json");

/// A tree the schema rejects: where, which key path, and why.
#[derive(Debug, thiserror::Error)]
#[error("{span}: {}{message}", if path.parts().is_empty() { String::new() } else { format!("{path} ") })]
pub struct SchemaError {
    /// Where the offending value (or key) is written.
    pub span: Span,
    /// The key path of the offending value, as Compose prints it.
    pub path: KeyPath,
    /// compose-go's description of the failure, with a suggestion when berth
    /// has one.
    pub message: String,
}

/// Validates `doc` (one file's tree, or the merged tree of several) against
/// the Compose schema.
pub fn validate(doc: &Node) -> Result<(), SchemaError> {
    let schema = compiled();
    let mut path = Vec::new();
    match schema.check(schema.root, doc, &mut path) {
        None => Ok(()),
        Some(f) => Err(f.into_error()),
    }
}

fn compiled() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let json: Json = serde_json::from_str(COMPOSE_SCHEMA)
            .unwrap_or_else(|e| panic!("embedded compose-spec.json is not JSON: {e}"));
        Schema::compile(&json).unwrap_or_else(|e| panic!("embedded compose-spec.json: {e}"))
    })
}

const T_NULL: u8 = 1;
const T_BOOL: u8 = 2;
const T_INT: u8 = 4;
const T_NUM: u8 = 8;
const T_STR: u8 = 16;
const T_ARR: u8 = 32;
const T_OBJ: u8 = 64;

/// The regular expressions the Compose schema uses. JSON Schema patterns are
/// unanchored searches; the known ones are matched by hand rather than by a
/// regex engine (compile time, and the set is small and stable).
#[derive(Clone, Copy, Debug)]
enum Pattern {
    /// `^x-`
    Extension,
    /// `^[a-zA-Z0-9._-]+$`
    Name,
    /// `^.+$`
    NonEmptyLine,
    /// `.+` (unanchored: some character other than a newline)
    AnyChar,
    /// `^[a-z]+$`
    Lowercase,
    /// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`
    ContainsName,
    /// `always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+`
    PullPolicy,
}

impl Pattern {
    fn parse(src: &str) -> Result<Pattern, String> {
        Ok(match src {
            "^x-" => Pattern::Extension,
            "^[a-zA-Z0-9._-]+$" => Pattern::Name,
            "^.+$" => Pattern::NonEmptyLine,
            ".+" => Pattern::AnyChar,
            "^[a-z]+$" => Pattern::Lowercase,
            "[a-zA-Z0-9][a-zA-Z0-9_.-]+" => Pattern::ContainsName,
            "always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+" => {
                Pattern::PullPolicy
            }
            other => return Err(format!("unsupported pattern {other:?}")),
        })
    }

    fn source(self) -> &'static str {
        match self {
            Pattern::Extension => "^x-",
            Pattern::Name => "^[a-zA-Z0-9._-]+$",
            Pattern::NonEmptyLine => "^.+$",
            Pattern::AnyChar => ".+",
            Pattern::Lowercase => "^[a-z]+$",
            Pattern::ContainsName => "[a-zA-Z0-9][a-zA-Z0-9_.-]+",
            Pattern::PullPolicy => {
                "always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+"
            }
        }
    }

    fn is_match(self, s: &str) -> bool {
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        match self {
            Pattern::Extension => s.starts_with("x-"),
            Pattern::Name => !s.is_empty() && s.chars().all(name_char),
            // `.` does not match a newline, and `$` may match before a final one.
            Pattern::NonEmptyLine => {
                let body = s.strip_suffix('\n').unwrap_or(s);
                !body.is_empty() && !body.contains('\n')
            }
            Pattern::AnyChar => s.chars().any(|c| c != '\n'),
            Pattern::Lowercase => !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase()),
            Pattern::ContainsName => {
                let chars: Vec<char> = s.chars().collect();
                chars
                    .windows(2)
                    .any(|w| w[0].is_ascii_alphanumeric() && name_char(w[1]))
            }
            Pattern::PullPolicy => {
                [
                    "always",
                    "never",
                    "build",
                    "if_not_present",
                    "missing",
                    "refresh",
                    "daily",
                    "weekly",
                ]
                .iter()
                .any(|w| s.contains(w))
                    || s.match_indices("every_").any(|(i, _)| {
                        let rest = &s.as_bytes()[i + 6..];
                        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                        digits > 0 && rest.get(digits).is_some_and(|b| b"wdhms".contains(b))
                    })
            }
        }
    }
}

#[derive(Default)]
enum Additional {
    #[default]
    Allowed,
    Denied,
    Schema(usize),
}

#[derive(Default)]
struct Check {
    /// Bitmask of `T_*`; 0 accepts every type.
    types: u8,
    properties: HashMap<String, usize>,
    /// Property names in schema order, for suggestions.
    names: Vec<String>,
    pattern_properties: Vec<(Pattern, usize)>,
    additional: Additional,
    required: Vec<String>,
    enumeration: Option<Vec<Json>>,
    one_of: Vec<usize>,
    any_of: Vec<usize>,
    all_of: Vec<usize>,
    items: Option<usize>,
    unique_items: bool,
    minimum: Option<f64>,
    maximum: Option<f64>,
    pattern: Option<Pattern>,
    reference: Option<usize>,
    /// The `false` schema.
    never: bool,
}

struct Schema {
    checks: Vec<Check>,
    root: usize,
}

struct Compiler<'a> {
    root: &'a Json,
    checks: Vec<Check>,
    by_pointer: HashMap<String, usize>,
}

impl Schema {
    fn compile(root: &Json) -> Result<Schema, String> {
        let mut c = Compiler {
            root,
            checks: Vec::new(),
            by_pointer: HashMap::new(),
        };
        let idx = c.reserve("#");
        c.compile_into(idx, root, "#")?;
        Ok(Schema {
            checks: c.checks,
            root: idx,
        })
    }
}

impl Compiler<'_> {
    fn reserve(&mut self, pointer: &str) -> usize {
        self.checks.push(Check::default());
        let idx = self.checks.len() - 1;
        self.by_pointer.insert(pointer.to_owned(), idx);
        idx
    }

    fn compile_new(&mut self, json: &Json, at: &str) -> Result<usize, String> {
        self.checks.push(Check::default());
        let idx = self.checks.len() - 1;
        self.compile_into(idx, json, at)?;
        Ok(idx)
    }

    fn resolve(&mut self, pointer: &str) -> Result<usize, String> {
        if let Some(&idx) = self.by_pointer.get(pointer) {
            return Ok(idx);
        }
        let target = pointer
            .strip_prefix('#')
            .and_then(|p| self.root.pointer(p))
            .ok_or_else(|| format!("unresolvable $ref {pointer:?}"))?;
        let idx = self.reserve(pointer);
        self.compile_into(idx, target, pointer)?;
        Ok(idx)
    }

    fn compile_into(&mut self, idx: usize, json: &Json, at: &str) -> Result<(), String> {
        let obj = match json {
            Json::Bool(true) => return Ok(()),
            Json::Bool(false) => {
                self.checks[idx].never = true;
                return Ok(());
            }
            Json::Object(o) => o,
            _ => return Err(format!("{at}: a schema must be an object or a boolean")),
        };
        let mut check = Check::default();
        for (k, v) in obj {
            let here = format!("{at}/{k}");
            match k.as_str() {
                "$schema" | "$id" | "title" | "description" | "default" | "deprecated"
                | "examples" | "$comment" | "definitions" | "$defs" => {}
                "type" => {
                    let names: Vec<&str> = match v {
                        Json::String(s) => vec![s.as_str()],
                        Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
                        _ => return Err(format!("{here}: bad type")),
                    };
                    for n in names {
                        check.types |= match n {
                            "null" => T_NULL,
                            "boolean" => T_BOOL,
                            "integer" => T_INT,
                            "number" => T_NUM,
                            "string" => T_STR,
                            "array" => T_ARR,
                            "object" => T_OBJ,
                            other => return Err(format!("{here}: unknown type {other}")),
                        };
                    }
                }
                "properties" => {
                    let props = v.as_object().ok_or(format!("{here}: not an object"))?;
                    for (name, sub) in props {
                        let s = self.compile_new(sub, &format!("{here}/{name}"))?;
                        check.properties.insert(name.clone(), s);
                        check.names.push(name.clone());
                    }
                }
                "patternProperties" => {
                    let props = v.as_object().ok_or(format!("{here}: not an object"))?;
                    for (pat, sub) in props {
                        let p = Pattern::parse(pat).map_err(|e| format!("{here}: {e}"))?;
                        let s = self.compile_new(sub, &format!("{here}/{pat}"))?;
                        check.pattern_properties.push((p, s));
                    }
                }
                "additionalProperties" => {
                    check.additional = match v {
                        Json::Bool(true) => Additional::Allowed,
                        Json::Bool(false) => Additional::Denied,
                        other => Additional::Schema(self.compile_new(other, &here)?),
                    }
                }
                "required" => {
                    check.required = v
                        .as_array()
                        .ok_or(format!("{here}: not an array"))?
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect();
                }
                "enum" => {
                    check.enumeration =
                        Some(v.as_array().ok_or(format!("{here}: not an array"))?.clone());
                }
                "oneOf" | "anyOf" | "allOf" => {
                    let mut subs = Vec::new();
                    for (i, sub) in v
                        .as_array()
                        .ok_or(format!("{here}: not an array"))?
                        .iter()
                        .enumerate()
                    {
                        subs.push(self.compile_new(sub, &format!("{here}/{i}"))?);
                    }
                    match k.as_str() {
                        "oneOf" => check.one_of = subs,
                        "anyOf" => check.any_of = subs,
                        _ => check.all_of = subs,
                    }
                }
                "items" => {
                    if v.is_array() {
                        return Err(format!("{here}: tuple items are not supported"));
                    }
                    check.items = Some(self.compile_new(v, &here)?);
                }
                "uniqueItems" => check.unique_items = v.as_bool().unwrap_or(false),
                "minimum" => check.minimum = v.as_f64(),
                "maximum" => check.maximum = v.as_f64(),
                "pattern" => {
                    let src = v.as_str().ok_or(format!("{here}: not a string"))?;
                    check.pattern = Some(Pattern::parse(src).map_err(|e| format!("{here}: {e}"))?);
                }
                "$ref" => {
                    let pointer = v.as_str().ok_or(format!("{here}: not a string"))?;
                    check.reference = Some(self.resolve(pointer)?);
                }
                other => return Err(format!("{here}: unsupported keyword {other:?}")),
            }
        }
        self.checks[idx] = check;
        Ok(())
    }
}

/// One step of an instance location.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

enum FailKind {
    Type(u8),
    Additional {
        names: Vec<String>,
        suggestion: Option<String>,
    },
    Required(Vec<String>),
    Enum(Vec<Json>),
    Minimum(f64),
    Maximum(f64),
    Pattern(String, Pattern),
    Unique(usize, usize),
    OneOfMany(usize, usize),
    Never,
}

struct Failure {
    path: KeyPath,
    depth: usize,
    span: Span,
    kind: FailKind,
}

impl Failure {
    fn specificity(&self) -> usize {
        match self.kind {
            FailKind::Additional { .. } => self.depth + 1,
            _ => self.depth,
        }
    }

    fn into_error(self) -> SchemaError {
        let message = match self.kind {
            FailKind::Type(t) => format!("must be a {}", type_names(t)),
            FailKind::Additional { names, suggestion } => {
                let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
                let mut m = format!("additional properties {} not allowed", quoted.join(", "));
                if let Some(s) = suggestion {
                    m.push_str(&format!(" (did you mean '{s}'?)"));
                }
                m
            }
            FailKind::Required(missing) => {
                let quoted: Vec<String> = missing.iter().map(|n| format!("'{n}'")).collect();
                if missing.len() == 1 {
                    format!("missing property {}", quoted[0])
                } else {
                    format!("missing properties {}", quoted.join(", "))
                }
            }
            FailKind::Enum(values) => {
                let shown: Vec<String> = values.iter().map(show_json).collect();
                if shown.len() == 1 {
                    format!("value must be {}", shown[0])
                } else {
                    format!("value must be one of {}", shown.join(", "))
                }
            }
            FailKind::Minimum(m) => format!("must be greater than or equal to {}", show_num(m)),
            FailKind::Maximum(m) => format!("must be less than or equal to {}", show_num(m)),
            FailKind::Pattern(v, p) => format!("'{v}' does not match pattern '{}'", p.source()),
            FailKind::Unique(a, b) => format!("items at {a} and {b} are equal"),
            FailKind::OneOfMany(a, b) => {
                format!("oneOf failed, subschemas {a}, {b} matched")
            }
            FailKind::Never => "not allowed".to_owned(),
        };
        SchemaError {
            span: self.span,
            path: self.path,
            message,
        }
    }
}

fn show_json(v: &Json) -> String {
    match v {
        Json::String(s) => format!("'{s}'"),
        Json::Array(_) | Json::Object(_) => "value".to_owned(),
        other => other.to_string(),
    }
}

fn show_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// compose-go's wording: `mapping` for object, sorted, `a, b or c`.
fn type_names(t: u8) -> String {
    let mut names: Vec<&str> = [
        (T_NULL, "null"),
        (T_BOOL, "boolean"),
        (T_INT, "integer"),
        (T_NUM, "number"),
        (T_STR, "string"),
        (T_ARR, "array"),
        (T_OBJ, "mapping"),
    ]
    .iter()
    .filter(|(bit, _)| t & bit != 0)
    .map(|(_, n)| *n)
    .collect();
    names.sort_unstable();
    match names.split_last() {
        None => "value".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn type_of(node: &Node) -> u8 {
    match &node.value {
        Value::Null => T_NULL,
        Value::Bool(_) => T_BOOL,
        Value::Int(_) => T_INT | T_NUM,
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => T_INT | T_NUM,
        Value::Float(_) => T_NUM,
        Value::String(_) => T_STR,
        Value::Seq(_) => T_ARR,
        Value::Map(_) => T_OBJ,
    }
}

fn number(node: &Node) -> Option<f64> {
    match node.value {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) => Some(f),
        _ => None,
    }
}

fn equals_json(node: &Node, json: &Json) -> bool {
    match (&node.value, json) {
        (Value::Null, Json::Null) => true,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::String(a), Json::String(b)) => a == b,
        (Value::Int(_) | Value::Float(_), Json::Number(n)) => number(node) == n.as_f64(),
        (Value::Seq(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equals_json(x, y))
        }
        (Value::Map(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(&k.name).is_some_and(|j| equals_json(v, j)))
        }
        _ => false,
    }
}

fn equals(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            number(a) == number(b)
        }
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equals(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k.name.as_str()).is_some_and(|w| equals(v, w)))
        }
        (x, y) => x == y,
    }
}

/// Edit distance for "did you mean": insertions, deletions, substitutions
/// and transpositions of neighbours (`prots` → `ports`) each cost one
/// (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn suggest(unknown: &str, allowed: &[String]) -> Option<String> {
    let limit = (unknown.chars().count() / 3).clamp(1, 3);
    allowed
        .iter()
        .map(|a| (distance(&unknown.to_lowercase(), a), a))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.clone())
}

fn key_path(path: &[Seg<'_>]) -> KeyPath {
    let mut p = KeyPath::root();
    for seg in path {
        p = match seg {
            Seg::Key(k) => p.key(k),
            Seg::Index(i) => p.index(*i),
        };
    }
    p
}

/// Keeps the more specific of two failures (the first on a tie, as
/// compose-go does).
fn better(current: Option<Failure>, new: Option<Failure>) -> Option<Failure> {
    match (current, new) {
        (None, n) => n,
        (c, None) => c,
        (Some(c), Some(n)) => {
            if n.specificity() > c.specificity() {
                Some(n)
            } else {
                Some(c)
            }
        }
    }
}

impl Schema {
    fn fail(path: &[Seg<'_>], span: &Span, kind: FailKind) -> Option<Failure> {
        Some(Failure {
            path: key_path(path),
            depth: path.len(),
            span: span.clone(),
            kind,
        })
    }

    /// The most specific failure of `node` against check `idx`, if any.
    fn check<'n>(&self, idx: usize, node: &'n Node, path: &mut Vec<Seg<'n>>) -> Option<Failure> {
        let c = &self.checks[idx];
        if c.never {
            return Self::fail(path, &node.span, FailKind::Never);
        }
        let t = type_of(node);
        if c.types != 0 && c.types & t == 0 {
            // A type mismatch stops the other checks of this schema.
            return Self::fail(path, &node.span, FailKind::Type(c.types));
        }
        // compose-go's validator (draft-07) checks in this order: type,
        // enum (both final), `$ref` (final too: siblings of a `$ref` are
        // ignored in draft-07), the checks of the value's kind, then
        // oneOf/anyOf/allOf. The order decides which of two equally
        // specific failures is reported.
        if let Some(values) = &c.enumeration {
            if !values.iter().any(|v| equals_json(node, v)) {
                return Self::fail(path, &node.span, FailKind::Enum(values.clone()));
            }
        }
        if let Some(r) = c.reference {
            return self.check(r, node, path);
        }
        let mut worst: Option<Failure> = None;
        match &node.value {
            Value::Map(m) => {
                let missing: Vec<String> = c
                    .required
                    .iter()
                    .filter(|r| !m.contains_key(r.as_str()))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    worst = better(
                        worst,
                        Self::fail(path, &node.span, FailKind::Required(missing)),
                    );
                }
                let mut unknown: Vec<&crate::model::node::Key> = Vec::new();
                for (k, v) in m {
                    let mut known = false;
                    path.push(Seg::Key(&k.name));
                    if let Some(&sub) = c.properties.get(&k.name) {
                        known = true;
                        worst = better(worst, self.check(sub, v, path));
                    }
                    for (p, sub) in &c.pattern_properties {
                        if p.is_match(&k.name) {
                            known = true;
                            worst = better(worst, self.check(*sub, v, path));
                        }
                    }
                    if !known {
                        match c.additional {
                            Additional::Allowed => {}
                            Additional::Denied => unknown.push(k),
                            Additional::Schema(sub) => {
                                worst = better(worst, self.check(sub, v, path));
                            }
                        }
                    }
                    path.pop();
                }
                if let Some(first) = unknown.first() {
                    let suggestion = if unknown.len() == 1 {
                        suggest(&first.name, &c.names)
                    } else {
                        None
                    };
                    let names = unknown.iter().map(|k| k.name.clone()).collect();
                    worst = better(
                        worst,
                        Self::fail(
                            path,
                            &first.span,
                            FailKind::Additional { names, suggestion },
                        ),
                    );
                }
            }
            Value::Seq(items) => {
                if let Some(sub) = c.items {
                    for (i, item) in items.iter().enumerate() {
                        path.push(Seg::Index(i));
                        worst = better(worst, self.check(sub, item, path));
                        path.pop();
                    }
                }
                if c.unique_items {
                    'outer: for i in 0..items.len() {
                        for j in i + 1..items.len() {
                            if equals(&items[i], &items[j]) {
                                worst = better(
                                    worst,
                                    Self::fail(path, &items[j].span, FailKind::Unique(i, j)),
                                );
                                break 'outer;
                            }
                        }
                    }
                }
            }
            Value::String(s) => {
                if let Some(p) = c.pattern.filter(|p| !p.is_match(s)) {
                    worst = better(
                        worst,
                        Self::fail(path, &node.span, FailKind::Pattern(s.clone(), p)),
                    );
                }
            }
            Value::Int(_) | Value::Float(_) => {
                let n = number(node).unwrap_or(f64::NAN);
                if let Some(min) = c.minimum.filter(|m| n < *m) {
                    worst = better(worst, Self::fail(path, &node.span, FailKind::Minimum(min)));
                }
                if let Some(max) = c.maximum.filter(|m| n > *m) {
                    worst = better(worst, Self::fail(path, &node.span, FailKind::Maximum(max)));
                }
            }
            _ => {}
        }
        if !c.one_of.is_empty() {
            let mut matched: Vec<usize> = Vec::new();
            let mut best: Option<Failure> = None;
            for (i, &sub) in c.one_of.iter().enumerate() {
                match self.check(sub, node, path) {
                    None => matched.push(i),
                    f => best = better(best, f),
                }
            }
            match matched.len() {
                0 => worst = better(worst, best),
                1 => {}
                _ => {
                    worst = better(
                        worst,
                        Self::fail(
                            path,
                            &node.span,
                            FailKind::OneOfMany(matched[0], matched[1]),
                        ),
                    )
                }
            }
        }
        if !c.any_of.is_empty() {
            let mut best: Option<Failure> = None;
            let mut ok = false;
            for &sub in &c.any_of {
                match self.check(sub, node, path) {
                    None => {
                        ok = true;
                        break;
                    }
                    f => best = better(best, f),
                }
            }
            if !ok {
                worst = better(worst, best);
            }
        }
        for &sub in &c.all_of {
            worst = better(worst, self.check(sub, node, path));
        }
        worst
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schema({} checks)", self.checks.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        Node::from_json(&json, &Span::synthetic("<test>"))
    }

    #[test]
    fn schema_compiles() {
        let s = compiled();
        assert!(s.checks.len() > 50);
    }

    #[test]
    fn misspelled_key_is_named_with_a_suggestion() {
        let doc = node(serde_json::json!({"services": {"web": {"imagee": "nginx"}}}));
        let e = validate(&doc).unwrap_err();
        assert_eq!(e.path.to_string(), "services.web");
        assert_eq!(
            e.message,
            "additional properties 'imagee' not allowed (did you mean 'image'?)"
        );
    }

    #[test]
    fn suggestions_at_the_root_and_inside_one_of() {
        let e = validate(&node(serde_json::json!({"service": {}}))).unwrap_err();
        assert_eq!(e.path.to_string(), "");
        assert_eq!(
            e.to_string(),
            "<test>: additional properties 'service' not allowed (did you mean 'services'?)"
        );
        let doc = node(serde_json::json!({"services": {"web": {"build": {"contex": "."}}}}));
        let e = validate(&doc).unwrap_err();
        assert_eq!(
            format!("{} {}", e.path, e.message),
            "services.web.build additional properties 'contex' not allowed (did you mean 'context'?)"
        );
        let doc = node(
            serde_json::json!({"services": {"web": {"ports": [{"target": 80, "publised": "80"}]}}}),
        );
        let e = validate(&doc).unwrap_err();
        assert_eq!(
            format!("{} {}", e.path, e.message),
            "services.web.ports[0] additional properties 'publised' not allowed (did you mean 'published'?)"
        );
        let doc =
            node(serde_json::json!({"services": {"web": {"image": "x", "totally_unrelated": 1}}}));
        let e = validate(&doc).unwrap_err();
        assert_eq!(
            e.message,
            "additional properties 'totally_unrelated' not allowed"
        );
    }

    #[test]
    fn types_are_worded_like_compose() {
        let doc = node(serde_json::json!({"services": {"foo": {"environment": {"FOO": [1]}}}}));
        let e = validate(&doc).unwrap_err();
        assert_eq!(
            format!("{} {}", e.path, e.message),
            "services.foo.environment.FOO must be a boolean, null, number or string"
        );
        let doc = node(serde_json::json!({"volumes": {"data": "x"}}));
        let e = validate(&doc).unwrap_err();
        assert_eq!(
            format!("{} {}", e.path, e.message),
            "volumes.data must be a mapping or null"
        );
    }

    #[test]
    fn valid_file_passes() {
        let doc = node(serde_json::json!({
            "services": {"web": {"image": "nginx", "ports": ["80:80", {"target": 80}],
                "environment": ["A=1"], "x-foo": 1, "depends_on": ["db"]},
                "db": {"image": "postgres", "pull_policy": "always"}},
            "x-common": {"anything": true}
        }));
        validate(&doc).unwrap();
    }

    #[test]
    fn patterns() {
        assert!(Pattern::PullPolicy.is_match("every_12h"));
        assert!(!Pattern::PullPolicy.is_match("every_h"));
        assert!(Pattern::Name.is_match("web-1.a_b"));
        assert!(!Pattern::Name.is_match("we b"));
        assert!(!Pattern::NonEmptyLine.is_match(""));
    }
}
