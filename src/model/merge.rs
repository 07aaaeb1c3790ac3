//! Merging Compose trees: the `-f` files (and the documents of one file) on
//! top of each other, a service on top of the service it `extends`, and the
//! de-duplication ("unicity") of sequences that follows every merge.
//!
//! The rules are Compose's (compose-go `override/merge.go`, `uncity.go`, as
//! shipped in docker compose v2.40): mappings merge key by key, sequences
//! append, scalars are replaced, and a table of per-key exceptions
//! (`command` replaced, `environment`/`labels` turned into `KEY=VALUE`
//! sequences, `depends_on`/`networks` turned into mappings, `ports`/`volumes`
//! de-duplicated by target…). `!reset` removes what earlier files defined and
//! `!override` replaces it.
//!
//! This module only rearranges trees: it reads no file and knows nothing of
//! the typed `Project`. It must not validate (the schema does that after the
//! merge, as Compose does).

use crate::model::node::{Key, Map, Node, Span, Tag, Value};

/// Why two trees could not be merged, or a merged sequence not de-duplicated.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{span}: cannot override {path}: {base} cannot be merged with {over}")]
    CannotOverride {
        path: String,
        span: Span,
        base: &'static str,
        over: &'static str,
    },
    #[error("{span}: {path}: unexpected type, {kind} where {expected} was expected")]
    UnexpectedType {
        path: String,
        span: Span,
        kind: &'static str,
        expected: &'static str,
    },
    #[error("{span}: {path}: {what} is missing")]
    Missing {
        path: String,
        span: Span,
        what: &'static str,
    },
    #[error("{span}: invalid spec: {spec}: {reason}")]
    InvalidVolumeSpec {
        spec: String,
        span: Span,
        reason: &'static str,
    },
    #[error("{span}: {path}: invalid empty volume spec")]
    EmptyVolumeSpec { path: String, span: Span },
}

/// A path from the document root as merge rules see it: mapping keys, and
/// `[i]` for sequence items (which never match a rule, as in Compose).
type Path = Vec<String>;

fn show(path: &[String]) -> String {
    let mut out = String::new();
    for (i, part) in path.iter().enumerate() {
        if part.starts_with('[') || i == 0 {
            out.push_str(part);
        } else {
            out.push('.');
            out.push_str(part);
        }
    }
    out
}

fn matches(path: &[String], pattern: &[&str]) -> bool {
    pattern.len() == path.len() && pattern.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

#[derive(Clone, Copy)]
enum Rule {
    IpamConfig,
    ToSequence,
    Build,
    Override,
    DependsOn,
    ToMapping,
    ExtraHosts,
    Logging,
    Ulimit,
}

const RULES: &[(&[&str], Rule)] = &[
    (&["networks", "*", "ipam", "config"], Rule::IpamConfig),
    (&["networks", "*", "labels"], Rule::ToSequence),
    (&["volumes", "*", "labels"], Rule::ToSequence),
    (&["services", "*", "annotations"], Rule::ToSequence),
    (&["services", "*", "build"], Rule::Build),
    (&["services", "*", "build", "args"], Rule::ToSequence),
    (
        &["services", "*", "build", "additional_contexts"],
        Rule::ToSequence,
    ),
    (&["services", "*", "build", "extra_hosts"], Rule::ExtraHosts),
    (&["services", "*", "build", "labels"], Rule::ToSequence),
    (&["services", "*", "command"], Rule::Override),
    (&["services", "*", "depends_on"], Rule::DependsOn),
    (&["services", "*", "deploy", "labels"], Rule::ToSequence),
    (&["services", "*", "dns"], Rule::ToSequence),
    (&["services", "*", "dns_opt"], Rule::ToSequence),
    (&["services", "*", "dns_search"], Rule::ToSequence),
    (&["services", "*", "entrypoint"], Rule::Override),
    (&["services", "*", "env_file"], Rule::ToSequence),
    (&["services", "*", "label_file"], Rule::ToSequence),
    (&["services", "*", "environment"], Rule::ToSequence),
    (&["services", "*", "extra_hosts"], Rule::ExtraHosts),
    (&["services", "*", "healthcheck", "test"], Rule::Override),
    (&["services", "*", "labels"], Rule::ToSequence),
    (
        &["services", "*", "volumes", "*", "volume", "labels"],
        Rule::ToSequence,
    ),
    (&["services", "*", "logging"], Rule::Logging),
    (&["services", "*", "models"], Rule::ToMapping),
    (&["services", "*", "networks"], Rule::ToMapping),
    (&["services", "*", "sysctls"], Rule::ToSequence),
    (&["services", "*", "tmpfs"], Rule::ToSequence),
    (&["services", "*", "ulimits", "*"], Rule::Ulimit),
];

fn rule_for(path: &[String]) -> Option<Rule> {
    RULES
        .iter()
        .find(|(pattern, _)| matches(path, pattern))
        .map(|(_, r)| *r)
}

/// Merges `over` (a later `-f` file, or a later document of the same file) on
/// top of `base` (everything merged so far), then de-duplicates sequences.
///
/// `!reset` and `!override` tags in `over` apply to `base` first, exactly as
/// Compose applies them: a tagged mapping entry removes the inherited value
/// at that key path; a `!reset` value then disappears, an `!override` value
/// takes the place of the removed one. Tags inside sequences have no effect
/// on `base`. The result carries no tags.
///
/// In the loader, `extends` runs between parsing and merging and needs the
/// marks too, so the loader takes them first (`let tags = Tags::take(&mut
/// doc)`), hands them to `extends`, applies them to the project with
/// `tags.apply(&mut dict)`, and then calls `merge(dict, doc)` (where taking
/// them again finds none).
pub fn merge(mut base: Node, mut over: Node) -> Result<Node, MergeError> {
    Tags::take(&mut over).apply(&mut base);
    Tags::take(&mut base);
    let merged = merge_yaml(base, over, &mut Vec::new())?;
    enforce_unicity(merged)
}

/// Merges a service definition on top of the service it `extends` (both
/// already free of `extends` chains), with the same per-key rules as
/// [`merge`] applied at `services.<name>`. Tags left in `service` apply to
/// `base` first. No de-duplication happens here: Compose de-duplicates when
/// the file's tree is merged into the project.
pub fn extend_service(mut base: Node, mut service: Node) -> Result<Node, MergeError> {
    Tags::take(&mut service).apply(&mut base);
    Tags::take(&mut base);
    merge_yaml(
        base,
        service,
        &mut vec!["services".to_owned(), "x".to_owned()],
    )
}

/// The `!reset` / `!override` marks of one YAML document, taken out of its
/// tree (Compose records them when it parses a document, then applies them to
/// whatever the document is merged onto: the earlier files, and the base of
/// an `extends`).
#[derive(Clone, Debug, Default)]
pub struct Tags {
    paths: Vec<Vec<String>>,
}

impl Tags {
    /// Records the key path of every tagged mapping entry of `doc`, then
    /// removes `!reset` values (entries and sequence items) and clears
    /// `!override` tags, leaving a plain tree.
    pub fn take(doc: &mut Node) -> Tags {
        let mut tags = Tags::default();
        let mut path = Vec::new();
        if matches!(doc.tag, Tag::Reset | Tag::Override) {
            tags.paths.push(Vec::new());
        }
        doc.tag = Tag::None;
        take_at(doc, &mut path, &mut tags.paths, true);
        tags
    }

    /// Whether the document had no tag at all.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Removes from `target` (a whole document) every mapping entry at a
    /// recorded path.
    pub fn apply(&self, target: &mut Node) {
        for p in &self.paths {
            remove_path(target, p);
        }
    }

    /// Removes from `target`, a subtree found at `prefix` in a document,
    /// the entries whose recorded path lies below `prefix` (how `extends`
    /// applies a service's tags to the service it extends).
    pub fn apply_below(&self, prefix: &[&str], target: &mut Node) {
        for p in &self.paths {
            if p.len() > prefix.len() && p.iter().zip(prefix).all(|(a, b)| a == b) {
                remove_path(target, &p[prefix.len()..]);
            }
        }
    }
}

fn take_at(node: &mut Node, path: &mut Vec<String>, out: &mut Vec<Vec<String>>, record: bool) {
    match &mut node.value {
        Value::Map(m) => {
            for (k, v) in m.iter_mut() {
                path.push(k.name.clone());
                if record && matches!(v.tag, Tag::Reset | Tag::Override) {
                    out.push(path.clone());
                }
                take_at(v, path, out, record);
                path.pop();
            }
            m.retain(|_, v| v.tag != Tag::Reset);
            for v in m.values_mut() {
                v.tag = Tag::None;
            }
        }
        Value::Seq(items) => {
            // Compose records paths inside sequences but never matches them.
            for v in items.iter_mut() {
                take_at(v, path, out, false);
            }
            items.retain(|v| v.tag != Tag::Reset);
            for v in items.iter_mut() {
                v.tag = Tag::None;
            }
        }
        _ => {}
    }
}

fn remove_path(target: &mut Node, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = target;
    for k in parents {
        match cur.as_map_mut().and_then(|m| m.get_mut(k.as_str())) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_map_mut() {
        m.shift_remove(last.as_str());
    }
}

fn merge_yaml(base: Node, over: Node, path: &mut Path) -> Result<Node, MergeError> {
    if let Some(rule) = rule_for(path) {
        return apply_rule(rule, base, over, path);
    }
    if matches!(over.value, Value::Null) {
        return Ok(base);
    }
    match base.value {
        Value::Map(bm) => match over.value {
            Value::Map(om) => Ok(Node::new(
                Value::Map(merge_mappings(bm, om, path)?),
                base.span,
            )),
            _ => Err(cannot_override(path, &over, "a mapping")),
        },
        Value::Seq(mut items) => match over.value {
            Value::Seq(more) => {
                items.extend(more);
                Ok(Node::new(Value::Seq(items), base.span))
            }
            _ => Err(cannot_override(path, &over, "a sequence")),
        },
        _ => Ok(over),
    }
}

fn cannot_override(path: &[String], over: &Node, base: &'static str) -> MergeError {
    MergeError::CannotOverride {
        path: show(path),
        span: over.span.clone(),
        base,
        over: over.kind(),
    }
}

fn merge_mappings(mut base: Map, over: Map, path: &mut Path) -> Result<Map, MergeError> {
    for (k, v) in over {
        match base.get_index_of(k.name.as_str()) {
            None => {
                base.insert(k, v);
            }
            Some(i) => {
                let existing = std::mem::replace(
                    &mut base[i],
                    Node::new(Value::Null, Span::synthetic("<merge>")),
                );
                path.push(k.name.clone());
                let emptied = matches!(rule_for(path), Some(Rule::ToSequence));
                let merged = merge_yaml(existing, v, path);
                path.pop();
                let merged = merged?;
                if emptied && matches!(merged.value, Value::Null) {
                    // Compose's nil list: the key is as good as absent (and
                    // must not fail the schema as a `null`).
                    base.shift_remove_index(i);
                } else {
                    base[i] = merged;
                }
            }
        }
    }
    Ok(base)
}

fn apply_rule(rule: Rule, base: Node, over: Node, path: &mut Path) -> Result<Node, MergeError> {
    let span = base.span.clone();
    match rule {
        Rule::Override => Ok(over),
        Rule::ToSequence => {
            let mut seq = into_sequence(&base);
            seq.extend(into_sequence(&over));
            Ok(seq_node(seq, span))
        }
        Rule::ExtraHosts => {
            let mut seq = into_sequence(&base);
            let extra: Vec<Node> = into_sequence(&over)
                .into_iter()
                .filter(|v| !seq.iter().any(|s| s.value == v.value))
                .collect();
            seq.extend(extra);
            Ok(seq_node(seq, span))
        }
        Rule::Build => {
            let b = build_mapping(base);
            let o = build_mapping(over);
            Ok(Node::new(Value::Map(merge_mappings(b, o, path)?), span))
        }
        Rule::DependsOn => {
            let b = into_mapping(base, true);
            let o = into_mapping(over, true);
            Ok(Node::new(Value::Map(merge_mappings(b, o, path)?), span))
        }
        Rule::ToMapping => {
            let b = into_mapping(base, false);
            let o = into_mapping(over, false);
            Ok(Node::new(Value::Map(merge_mappings(b, o, path)?), span))
        }
        Rule::Logging => {
            let (Value::Map(b), Value::Map(o)) = (base.value, over.value) else {
                return Err(MergeError::UnexpectedType {
                    path: show(path),
                    span,
                    kind: "a non-mapping",
                    expected: "a mapping",
                });
            };
            let bd = b.get("driver").map(|n| &n.value);
            let od = o.get("driver").map(|n| &n.value);
            if bd.is_none() || od.is_none() || bd == od {
                Ok(Node::new(Value::Map(merge_mappings(b, o, path)?), span))
            } else {
                Ok(Node::new(Value::Map(o), over.span))
            }
        }
        // Compose replaces a ulimit as a whole, whatever its form.
        Rule::Ulimit => Ok(over),
        Rule::IpamConfig => merge_ipam_config(base, over, path),
    }
}

fn seq_node(seq: Vec<Node>, span: Span) -> Node {
    if seq.is_empty() {
        // Compose ends up with a nil list, which it treats as absent.
        Node::new(Value::Null, span)
    } else {
        Node::new(Value::Seq(seq), span)
    }
}

fn build_mapping(node: Node) -> Map {
    match node.value {
        Value::String(s) => {
            let mut m = Map::new();
            m.insert(
                Key::new("context", node.span.clone()),
                Node::new(Value::String(s), node.span),
            );
            m
        }
        Value::Map(m) => m,
        _ => Map::new(),
    }
}

/// `KEY=VALUE` sequence from a mapping (sorted, as Compose sorts it), a
/// sequence as is, a string as a one-item sequence.
fn into_sequence(node: &Node) -> Vec<Node> {
    match &node.value {
        Value::Map(m) => {
            let mut out: Vec<Node> = Vec::with_capacity(m.len());
            for (k, v) in m {
                let mut push = |s: String| out.push(Node::new(Value::String(s), v.span.clone()));
                match &v.value {
                    Value::Null => push(k.name.clone()),
                    Value::Seq(items) => {
                        for item in items {
                            push(format!("{}={}", k.name, go_format(item)));
                        }
                    }
                    _ => push(format!("{}={}", k.name, go_format(v))),
                }
            }
            out.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            out
        }
        Value::Seq(items) => items.clone(),
        Value::String(_) => vec![node.clone()],
        _ => Vec::new(),
    }
}

/// A sequence of names as a mapping `name: null` (or, for `depends_on`,
/// `name: {condition: service_started, required: true}`).
fn into_mapping(node: Node, depends_on: bool) -> Map {
    match node.value {
        Value::Map(m) => m,
        Value::Seq(items) => {
            let mut m = Map::new();
            for item in items {
                let name = match &item.value {
                    Value::String(s) => s.clone(),
                    _ => go_format(&item),
                };
                let value = if depends_on {
                    let mut d = Map::new();
                    d.insert(
                        Key::new("condition", item.span.clone()),
                        Node::new(Value::String("service_started".into()), item.span.clone()),
                    );
                    d.insert(
                        Key::new("required", item.span.clone()),
                        Node::new(Value::Bool(true), item.span.clone()),
                    );
                    Node::new(Value::Map(d), item.span.clone())
                } else {
                    Node::new(Value::Null, item.span.clone())
                };
                m.insert(Key::new(name, item.span), value);
            }
            m
        }
        _ => Map::new(),
    }
}

/// A scalar as Go's `%v` prints it (Compose builds `KEY=VALUE` strings that way).
pub(crate) fn go_format(node: &Node) -> String {
    match &node.value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_float(*f),
        Value::String(s) => s.clone(),
        Value::Seq(items) => {
            let parts: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Map(m) => {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", k.name, go_format(v)))
                .collect();
            parts.sort();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%v` of a float64: shortest digits, exponent form when the decimal
/// exponent is below -4 or at least 6.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        return format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    format!("{f}")
}

/// IPAM pools merge by subnet. Compose's algorithm is quirky (a base pool
/// absorbs every override with a different subnet that is already listed);
/// it is reproduced here because the output is what users see.
fn merge_ipam_config(base: Node, over: Node, path: &mut Path) -> Result<Node, MergeError> {
    let span = base.span.clone();
    let Value::Seq(originals) = base.value else {
        return Err(MergeError::UnexpectedType {
            path: show(path),
            span,
            kind: base.kind(),
            expected: "a sequence",
        });
    };
    let Value::Seq(overrides) = over.value else {
        return Err(MergeError::UnexpectedType {
            path: show(path),
            span: over.span.clone(),
            kind: over.kind(),
            expected: "a sequence",
        });
    };
    let lefts: Vec<Map> = overrides
        .into_iter()
        .map(|n| into_mapping(n, false))
        .collect();
    let mut rights: Vec<Map> = Vec::with_capacity(originals.len());
    #[derive(Clone, Copy, PartialEq)]
    enum Ref {
        Right(usize),
        Left(usize),
    }
    let mut out: Vec<Ref> = Vec::new();
    let subnet_of = |m: &Map| m.get("subnet").map(|n| n.value.clone());
    for original in originals {
        rights.push(into_mapping(original, false));
        let r = rights.len() - 1;
        for (l, left) in lefts.iter().enumerate() {
            let left_subnet = subnet_of(left);
            if left_subnet != subnet_of(&rights[r]) {
                let listed = out.iter().any(|e| {
                    let m = match *e {
                        Ref::Right(i) => &rights[i],
                        Ref::Left(i) => &lefts[i],
                    };
                    subnet_of(m) == left_subnet
                });
                if !listed {
                    out.push(Ref::Left(l));
                    continue;
                }
            }
            let right = std::mem::take(&mut rights[r]);
            rights[r] = merge_mappings(right, left.clone(), path)?;
            let merged_subnet = subnet_of(&rights[r]);
            let found = out.iter().position(|e| {
                let m = match *e {
                    Ref::Right(i) => &rights[i],
                    Ref::Left(i) => &lefts[i],
                };
                subnet_of(m) == merged_subnet
            });
            match found {
                Some(i) => out[i] = Ref::Right(r),
                None => out.push(Ref::Right(r)),
            }
        }
    }
    let items = out
        .into_iter()
        .map(|e| {
            let m = match e {
                Ref::Right(i) => rights[i].clone(),
                Ref::Left(i) => lefts[i].clone(),
            };
            Node::new(Value::Map(m), span.clone())
        })
        .collect();
    Ok(Node::new(Value::Seq(items), span))
}

#[derive(Clone, Copy)]
enum Indexer {
    KeyValue,
    Volume,
    Device,
    Expose,
    Mount(&'static str),
    Port,
    EnvFile,
}

const UNIQUE: &[(&[&str], Indexer)] = &[
    (&["networks", "*", "labels"], Indexer::KeyValue),
    (&["networks", "*", "ipam", "options"], Indexer::KeyValue),
    (&["services", "*", "annotations"], Indexer::KeyValue),
    (&["services", "*", "build", "args"], Indexer::KeyValue),
    (
        &["services", "*", "build", "additional_contexts"],
        Indexer::KeyValue,
    ),
    (&["services", "*", "build", "platform"], Indexer::KeyValue),
    (&["services", "*", "build", "tags"], Indexer::KeyValue),
    (&["services", "*", "build", "labels"], Indexer::KeyValue),
    (&["services", "*", "cap_add"], Indexer::KeyValue),
    (&["services", "*", "cap_drop"], Indexer::KeyValue),
    (&["services", "*", "configs"], Indexer::Mount("")),
    (&["services", "*", "deploy", "labels"], Indexer::KeyValue),
    (&["services", "*", "dns"], Indexer::KeyValue),
    (&["services", "*", "dns_opt"], Indexer::KeyValue),
    (&["services", "*", "dns_search"], Indexer::KeyValue),
    (&["services", "*", "environment"], Indexer::KeyValue),
    (&["services", "*", "env_file"], Indexer::EnvFile),
    (&["services", "*", "expose"], Indexer::Expose),
    (&["services", "*", "labels"], Indexer::KeyValue),
    (&["services", "*", "links"], Indexer::KeyValue),
    (
        &["services", "*", "networks", "*", "aliases"],
        Indexer::KeyValue,
    ),
    (
        &["services", "*", "networks", "*", "link_local_ips"],
        Indexer::KeyValue,
    ),
    (&["services", "*", "ports"], Indexer::Port),
    (&["services", "*", "profiles"], Indexer::KeyValue),
    (
        &["services", "*", "secrets"],
        Indexer::Mount("/run/secrets"),
    ),
    (&["services", "*", "sysctls"], Indexer::KeyValue),
    (&["services", "*", "tmpfs"], Indexer::KeyValue),
    (&["services", "*", "volumes"], Indexer::Volume),
    (&["services", "*", "devices"], Indexer::Device),
];

/// Removes redefinitions from the sequences Compose treats as sets (ports,
/// volumes by target, environment by name, secrets by target…): a later
/// entry with the same key takes the place of the first one.
pub fn enforce_unicity(mut node: Node) -> Result<Node, MergeError> {
    unicity_at(&mut node, &mut Vec::new())?;
    Ok(node)
}

fn unicity_at(node: &mut Node, path: &mut Path) -> Result<(), MergeError> {
    match &mut node.value {
        Value::Map(m) => {
            for (k, v) in m.iter_mut() {
                path.push(k.name.clone());
                let r = unicity_at(v, path);
                path.pop();
                r?;
            }
        }
        Value::Seq(items) => {
            let Some(indexer) = UNIQUE
                .iter()
                .find(|(p, _)| matches(path, p))
                .map(|(_, i)| *i)
            else {
                return Ok(());
            };
            let mut out: Vec<Node> = Vec::with_capacity(items.len());
            let mut seen: std::collections::HashMap<String, usize> =
                std::collections::HashMap::new();
            for (i, item) in std::mem::take(items).into_iter().enumerate() {
                path.push(format!("[{i}]"));
                let key = index_key(indexer, &item, path);
                path.pop();
                let key = key?;
                match seen.get(&key) {
                    Some(&j) => out[j] = item,
                    None => {
                        seen.insert(key, out.len());
                        out.push(item);
                    }
                }
            }
            *items = out;
        }
        _ => {}
    }
    Ok(())
}

fn index_key(indexer: Indexer, item: &Node, path: &[String]) -> Result<String, MergeError> {
    let unexpected = |expected| MergeError::UnexpectedType {
        path: show(path),
        span: item.span.clone(),
        kind: item.kind(),
        expected,
    };
    let missing = |what| MergeError::Missing {
        path: show(path),
        span: item.span.clone(),
        what,
    };
    match indexer {
        Indexer::KeyValue => match &item.value {
            Value::String(s) => Ok(s.split_once('=').map_or(s.as_str(), |(k, _)| k).to_owned()),
            _ => Err(unexpected("a string")),
        },
        Indexer::Volume => match &item.value {
            Value::Map(m) => match m.get("target").and_then(Node::as_str) {
                Some(t) => Ok(t.to_owned()),
                None => Err(missing("the mount target")),
            },
            Value::String(s) => volume_target(s, item, path),
            _ => Ok(String::new()),
        },
        Indexer::Device => match &item.value {
            Value::Map(m) => match m.get("target").and_then(Node::as_str) {
                Some(t) => Ok(t.to_owned()),
                None => Err(missing("the device target")),
            },
            Value::String(s) => {
                let mut parts = s.split(':');
                let first = parts.next().unwrap_or_default();
                Ok(parts.next().unwrap_or(first).to_owned())
            }
            _ => Ok(String::new()),
        },
        Indexer::Expose => match &item.value {
            Value::String(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            _ => Err(unexpected("a string or an integer")),
        },
        Indexer::Mount(default) => match &item.value {
            Value::String(s) => Ok(format!("{default}/{s}")),
            Value::Map(m) => match m.get("target") {
                Some(t) => Ok(go_format(t)),
                None => Ok(format!(
                    "{default}/{}",
                    m.get("source").map_or("<nil>".into(), go_format)
                )),
            },
            _ => Err(unexpected("a string or a mapping")),
        },
        Indexer::Port => match &item.value {
            Value::Int(i) => Ok(i.to_string()),
            Value::String(s) => Ok(s.clone()),
            Value::Map(m) => {
                let Some(target) = m.get("target") else {
                    return Err(missing("the target port"));
                };
                // Compose formats these with %s/%d: keep a value's type in
                // its key so `8080` and `"8080"` stay distinct, as there.
                let typed = |n: &Node| match &n.value {
                    Value::String(s) => s.clone(),
                    _ => format!("({}){}", n.kind(), go_format(n)),
                };
                let host = m.get("host_ip").map_or("0.0.0.0".into(), typed);
                let published = m.get("published").map_or("<nil>".into(), typed);
                let protocol = m.get("protocol").map_or("tcp".into(), typed);
                let target = match &target.value {
                    Value::Int(i) => i.to_string(),
                    _ => format!("({}){}", target.kind(), go_format(target)),
                };
                Ok(format!("{host}:{published}:{target}/{protocol}"))
            }
            _ => Ok(String::new()),
        },
        Indexer::EnvFile => match &item.value {
            Value::String(s) => Ok(s.clone()),
            Value::Map(m) => match m.get("path") {
                Some(p) => Ok(go_format(p)),
                None => Err(missing("the env_file path")),
            },
            _ => Ok(String::new()),
        },
    }
}

/// The target of a short-syntax volume (`src:dst:opts`), with Compose's
/// errors for malformed specs. `${…}` sections are kept whole (a default
/// value may contain a colon), and a one-letter first section followed by a
/// colon is a Windows drive.
fn volume_target(spec: &str, item: &Node, path: &[String]) -> Result<String, MergeError> {
    match spec.chars().count() {
        0 => {
            return Err(MergeError::EmptyVolumeSpec {
                path: show(path),
                span: item.span.clone(),
            })
        }
        1 | 2 => return Ok(spec.to_owned()),
        _ => {}
    }
    let bad = |reason| MergeError::InvalidVolumeSpec {
        spec: spec.to_owned(),
        span: item.span.clone(),
        reason,
    };
    let mut source: Option<String> = None;
    let mut target: Option<String> = None;
    let mut buffer = String::new();
    let mut depth = 0usize;
    let bytes = spec.as_bytes();
    let chars: Vec<(usize, char)> = spec.char_indices().collect();
    for idx in 0..=chars.len() {
        let (i, c) = chars.get(idx).copied().unwrap_or((spec.len(), '\0'));
        let end = idx == chars.len();
        if !end && c == '$' && bytes.get(i + 1) == Some(&b'{') {
            depth += 1;
            buffer.push(c);
            continue;
        }
        if !end && c == '}' && depth > 0 {
            depth -= 1;
            buffer.push(c);
            continue;
        }
        let drive =
            c == ':' && buffer.chars().count() == 1 && buffer.chars().all(char::is_alphabetic);
        if !end && (drive || c != ':' || depth > 0) {
            buffer.push(c);
            continue;
        }
        if end && depth > 0 && buffer.is_empty() {
            return Err(bad("empty section between colons"));
        }
        if buffer.is_empty() {
            return Err(bad("empty section between colons"));
        }
        let section = std::mem::take(&mut buffer);
        match (&source, &target) {
            (None, _) if end => target = Some(section),
            (None, _) => source = Some(section),
            (Some(_), None) => target = Some(section),
            _ if !end => return Err(bad("too many colons")),
            _ => {}
        }
    }
    Ok(target.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span::synthetic("<test>")
    }

    fn item(s: &str) -> Node {
        Node::new(Value::String(s.into()), span())
    }

    #[test]
    fn volume_targets() {
        let p = Vec::new();
        assert_eq!(volume_target("/a:/b:ro", &item(""), &p).unwrap(), "/b");
        assert_eq!(volume_target("/data", &item(""), &p).unwrap(), "/data");
        assert_eq!(volume_target("c:\\x:/y", &item(""), &p).unwrap(), "/y");
        assert_eq!(volume_target("${A:-x:y}:/t", &item(""), &p).unwrap(), "/t");
        assert!(volume_target("/foo::ro", &item(""), &p)
            .unwrap_err()
            .to_string()
            .contains("empty section between colons"));
        assert!(volume_target("/foo:/foo:ro:foo", &item(""), &p)
            .unwrap_err()
            .to_string()
            .contains("too many colons"));
    }

    #[test]
    fn type_clash_names_the_path_and_the_override() {
        let base = Node::from_json(
            &serde_json::json!({"services": {"web": {"ports": ["80:80"]}}}),
            &span(),
        );
        let over_span = Span {
            file: std::sync::Arc::from(std::path::Path::new("override.yaml")),
            line: 3,
            col: 12,
        };
        let over = Node::from_json(
            &serde_json::json!({"services": {"web": {"ports": {"a": 1}}}}),
            &over_span,
        );
        let e = merge(base, over).unwrap_err().to_string();
        assert_eq!(
            e,
            "override.yaml:3:12: cannot override services.web.ports: a sequence cannot be merged with a mapping"
        );
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
    }
}
