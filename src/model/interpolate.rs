//! Compose's `${VAR}` templates: substitution in one string, interpolation of
//! every string value of a parsed file (keys are left alone), the type casts
//! Compose applies to a few paths afterwards, and variable extraction for
//! `config --variables`.
//!
//! The syntax and its corner cases follow compose-go's `template` package as
//! docker compose runs it: a match starts at `$` and is `$$` (an escaped `$`),
//! `$NAME`, `${NAME}`, `${NAME<op>...}` reaching to the last `}` of the line,
//! or else an invalid `${`. Names are `[_a-zA-Z][_a-zA-Z0-9]*`. The operator
//! right after the name decides (`:-` `-` `:+` `+` `:?` `?`); a match is cut at
//! its first balanced `}` and what follows is substituted on its own. Defaults,
//! alternatives and error messages are substituted only when used.
//!
//! The scanner is hand-written (no regex) and allocates only for the output.

use std::collections::BTreeMap;

use super::node::{Node, Span, Value};

/// An error of one template, before it is placed in a file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// compose-go: `Invalid template: "${"`.
    #[error("Invalid template: {template:?}")]
    Invalid { template: String },
    #[error("required variable {variable} is missing a value{}", reason_suffix(.reason))]
    MissingRequired { variable: String, reason: String },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// An interpolation error in a file, with compose-go's wording after the place.
#[derive(Debug, thiserror::Error)]
pub enum InterpolateError {
    #[error("{span}: invalid interpolation format for {path}.\nYou may need to escape any $ with another $.\n{template}")]
    InvalidFormat {
        span: Span,
        path: String,
        template: String,
    },
    #[error("{span}: error while interpolating {path}: {source}")]
    Template {
        span: Span,
        path: String,
        source: TemplateError,
    },
    #[error(
        "{span}: error while interpolating {path}: failed to cast to expected type: {message}"
    )]
    Cast {
        span: Span,
        path: String,
        message: String,
    },
}

/// A variable used by a file, for `config --variables`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub default_value: String,
    pub presence_value: String,
    pub required: bool,
}

/// Substitutes the variables of `template`. `lookup` gives a variable's value,
/// `None` when it is unset (which differs from set-but-empty).
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    if !template.contains('$') {
        return Ok(template.to_owned());
    }
    let mut out = String::with_capacity(template.len());
    substitute_into(template, lookup, &mut out)?;
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchKind {
    /// `$$`
    Escaped,
    /// `$NAME`
    Named,
    /// `${...}`: name end (absolute index) is kept for the operator.
    Braced { name_end: usize },
    /// `${` that starts no valid expression.
    Invalid,
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

fn is_op(c: u8) -> bool {
    matches!(c, b'-' | b'+' | b'?')
}

/// The match starting at `pos` (where `t[pos] == '$'`), as compose-go's
/// pattern finds it: its end and kind.
fn match_at(t: &str, pos: usize) -> Option<(usize, MatchKind)> {
    let b = t.as_bytes();
    let n = pos + 1;
    match *b.get(n)? {
        b'$' => Some((n + 1, MatchKind::Escaped)),
        c if is_name_start(c) => {
            let mut k = n + 1;
            while k < b.len() && is_name_char(b[k]) {
                k += 1;
            }
            Some((k, MatchKind::Named))
        }
        b'{' => {
            let j = n + 1;
            if j < b.len() && is_name_start(b[j]) {
                let mut k = j + 1;
                while k < b.len() && is_name_char(b[k]) {
                    k += 1;
                }
                let braced = MatchKind::Braced { name_end: k };
                match b.get(k) {
                    Some(b'}') => return Some((k + 1, braced)),
                    Some(&c) => {
                        let arg = if c == b':' && b.get(k + 1).is_some_and(|&o| is_op(o)) {
                            Some(k + 2)
                        } else if is_op(c) {
                            Some(k + 1)
                        } else {
                            None
                        };
                        if let Some(arg) = arg {
                            // `(.*)}`: greedy to the last `}` before the end of the line.
                            let line_end = t[arg..].find('\n').map_or(b.len(), |e| arg + e);
                            if let Some(q) = t[arg..line_end].rfind('}') {
                                return Some((arg + q + 1, braced));
                            }
                        }
                    }
                    None => {}
                }
            }
            Some((j, MatchKind::Invalid))
        }
        _ => None,
    }
}

/// compose-go's `getFirstBraceClosingIndex`: the `}` that closes the first
/// `{`, where the byte after each `{` is skipped.
fn first_brace_closing(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut open = 0i64;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'}' {
            open -= 1;
            if open == 0 {
                return Some(i);
            }
        }
        if b[i] == b'{' {
            open += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

fn substitute_into(
    t: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), TemplateError> {
    let mut last = 0;
    let mut i = 0;
    while let Some(off) = t[i..].find('$') {
        let pos = i + off;
        let Some((end, kind)) = match_at(t, pos) else {
            i = pos + 1;
            continue;
        };
        out.push_str(&t[last..pos]);
        replace(t, &t[pos..end], kind, pos, lookup, out)?;
        last = end;
        i = end;
    }
    out.push_str(&t[last..]);
    Ok(())
}

fn lookup_or_warn(name: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let v = lookup(name);
    if v.is_none() {
        tracing::warn!("The {name:?} variable is not set. Defaulting to a blank string.");
    }
    v
}

/// Appends the replacement of one match `s` of template `t` (at `pos`).
fn replace(
    t: &str,
    s: &str,
    kind: MatchKind,
    pos: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), TemplateError> {
    match kind {
        MatchKind::Escaped => out.push('$'),
        MatchKind::Named => {
            if let Some(v) = lookup_or_warn(&s[1..], lookup) {
                out.push_str(&v);
            }
        }
        MatchKind::Invalid => {
            return Err(TemplateError::Invalid {
                template: t.to_owned(),
            })
        }
        MatchKind::Braced { name_end } => {
            let name_end = name_end - pos;
            let name = &s[2..name_end];
            let (head, rest) = match first_brace_closing(s) {
                Some(c) => (&s[..=c], &s[c + 1..]),
                None => (s, ""),
            };
            let b = head.as_bytes();
            // `${NAME}`: no operator.
            if b[name_end] == b'}' {
                if let Some(v) = lookup_or_warn(name, lookup) {
                    out.push_str(&v);
                }
                return Ok(());
            }
            let colon = b[name_end] == b':';
            let op_at = name_end + usize::from(colon);
            let arg = &head[op_at + 1..head.len() - 1];
            let value = lookup(name);
            match b[op_at] {
                b'-' => match value {
                    Some(v) if !(colon && v.is_empty()) => out.push_str(&v),
                    _ => substitute_into(arg, lookup, out)?,
                },
                b'+' => match value {
                    Some(v) if !(colon && v.is_empty()) => substitute_into(arg, lookup, out)?,
                    Some(v) => out.push_str(&v),
                    None => {}
                },
                _ => match value {
                    Some(v) if !(colon && v.is_empty()) => out.push_str(&v),
                    _ => {
                        let mut reason = String::new();
                        substitute_into(arg, lookup, &mut reason)?;
                        return Err(TemplateError::MissingRequired {
                            variable: name.to_owned(),
                            reason,
                        });
                    }
                },
            }
            if !rest.is_empty() {
                substitute_into(rest, lookup, out)?;
            }
        }
    }
    Ok(())
}

/// A type Compose casts an interpolated string to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cast {
    /// Go `strconv.Atoi`.
    Int,
    /// Go `strconv.ParseInt(v, 10, 64)`.
    Int64,
    /// Go `strconv.ParseFloat(v, 64)`.
    Float,
    /// Go `strconv.ParseFloat(v, 32)`.
    Float32,
    /// `true`/`false`, and YAML 1.1's `y`/`yes`/`on`/`n`/`no`/`off` with a warning.
    Bool,
}

/// A path pattern and its cast. `*` matches any key or list item, `[]` any
/// list item.
#[derive(Clone, Copy, Debug)]
pub struct CastRule {
    pub path: &'static [&'static str],
    pub cast: Cast,
}

const fn rule(path: &'static [&'static str], cast: Cast) -> CastRule {
    CastRule { path, cast }
}

/// The casts compose-go applies after interpolation (its
/// `interpolateTypeCastMapping`), so that `replicas: ${N}` becomes a number.
pub const COMPOSE_CASTS: &[CastRule] = &[
    rule(&["services", "*", "cpu_count"], Cast::Int64),
    rule(&["services", "*", "cpu_percent"], Cast::Float),
    rule(&["services", "*", "cpu_period"], Cast::Int64),
    rule(&["services", "*", "cpu_quota"], Cast::Int64),
    rule(&["services", "*", "cpu_rt_period"], Cast::Int64),
    rule(&["services", "*", "cpu_rt_runtime"], Cast::Int64),
    rule(&["services", "*", "cpus"], Cast::Float32),
    rule(&["services", "*", "cpu_shares"], Cast::Int64),
    rule(&["services", "*", "init"], Cast::Bool),
    rule(
        &["services", "*", "depends_on", "*", "required"],
        Cast::Bool,
    ),
    rule(&["services", "*", "depends_on", "*", "restart"], Cast::Bool),
    rule(&["services", "*", "deploy", "replicas"], Cast::Int),
    rule(
        &["services", "*", "deploy", "update_config", "parallelism"],
        Cast::Int,
    ),
    rule(
        &[
            "services",
            "*",
            "deploy",
            "update_config",
            "max_failure_ratio",
        ],
        Cast::Float,
    ),
    rule(
        &["services", "*", "deploy", "rollback_config", "parallelism"],
        Cast::Int,
    ),
    rule(
        &[
            "services",
            "*",
            "deploy",
            "rollback_config",
            "max_failure_ratio",
        ],
        Cast::Float,
    ),
    rule(
        &["services", "*", "deploy", "restart_policy", "max_attempts"],
        Cast::Int,
    ),
    rule(
        &[
            "services",
            "*",
            "deploy",
            "placement",
            "max_replicas_per_node",
        ],
        Cast::Int,
    ),
    rule(&["services", "*", "healthcheck", "retries"], Cast::Int),
    rule(&["services", "*", "healthcheck", "disable"], Cast::Bool),
    rule(&["services", "*", "oom_kill_disable"], Cast::Bool),
    rule(&["services", "*", "oom_score_adj"], Cast::Int64),
    rule(&["services", "*", "pids_limit"], Cast::Int64),
    rule(&["services", "*", "ports", "[]", "target"], Cast::Int),
    rule(&["services", "*", "privileged"], Cast::Bool),
    rule(&["services", "*", "read_only"], Cast::Bool),
    rule(&["services", "*", "scale"], Cast::Int),
    rule(&["services", "*", "stdin_open"], Cast::Bool),
    rule(&["services", "*", "tty"], Cast::Bool),
    rule(&["services", "*", "ulimits", "*"], Cast::Int),
    rule(&["services", "*", "ulimits", "*", "hard"], Cast::Int),
    rule(&["services", "*", "ulimits", "*", "soft"], Cast::Int),
    rule(&["services", "*", "volumes", "[]", "read_only"], Cast::Bool),
    rule(
        &["services", "*", "volumes", "[]", "volume", "nocopy"],
        Cast::Bool,
    ),
    rule(&["networks", "*", "external"], Cast::Bool),
    rule(&["networks", "*", "internal"], Cast::Bool),
    rule(&["networks", "*", "attachable"], Cast::Bool),
    rule(&["networks", "*", "enable_ipv4"], Cast::Bool),
    rule(&["networks", "*", "enable_ipv6"], Cast::Bool),
    rule(&["volumes", "*", "external"], Cast::Bool),
    rule(&["secrets", "*", "external"], Cast::Bool),
    rule(&["configs", "*", "external"], Cast::Bool),
];

impl Cast {
    /// The value, or Go's error text.
    pub fn apply(self, v: &str) -> Result<Value, String> {
        match self {
            Cast::Int | Cast::Int64 => {
                let func = if self == Cast::Int {
                    "Atoi"
                } else {
                    "ParseInt"
                };
                go_decimal(v)
                    .map(Value::Int)
                    .map_err(|why| format!("strconv.{func}: parsing {}: {why}", go_quote(v)))
            }
            Cast::Float => go_float(v).map(Value::Float).ok_or_else(|| {
                format!(
                    "strconv.ParseFloat: parsing {}: invalid syntax",
                    go_quote(v)
                )
            }),
            Cast::Float32 => go_float(v)
                .and_then(|f| {
                    let f32v = f as f32;
                    // Keep the float32's shortest decimal form, as Go prints it.
                    f32v.to_string().parse::<f64>().ok()
                })
                .map(Value::Float)
                .ok_or_else(|| {
                    format!(
                        "strconv.ParseFloat: parsing {}: invalid syntax",
                        go_quote(v)
                    )
                }),
            Cast::Bool => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "y" | "yes" | "on" => {
                    tracing::warn!(
                        "{v:?} for boolean is not supported by YAML 1.2, please use `true`"
                    );
                    Ok(Value::Bool(true))
                }
                "n" | "no" | "off" => {
                    tracing::warn!(
                        "{v:?} for boolean is not supported by YAML 1.2, please use `false`"
                    );
                    Ok(Value::Bool(false))
                }
                _ => Err(format!("invalid boolean: {v}")),
            },
        }
    }
}

fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

fn go_decimal(v: &str) -> Result<i64, &'static str> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    v.parse::<i64>().map_err(|_| "value out of range")
}

fn go_float(v: &str) -> Option<f64> {
    // Rust and Go agree on decimal forms, `inf`, `infinity` and `nan`; Rust
    // also takes nothing Go refuses except a bare sign-less `infinity` case
    // difference, which both accept.
    let f = v.parse::<f64>().ok()?;
    if f.is_infinite()
        && !v
            .trim_start_matches(['+', '-'])
            .to_ascii_lowercase()
            .starts_with("inf")
    {
        // Go reports out-of-range values as errors.
        return None;
    }
    Some(f)
}

/// Interpolates every string value of `node` (not keys) and applies
/// Compose's casts ([`COMPOSE_CASTS`]).
pub fn interpolate(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), InterpolateError> {
    interpolate_with_casts(node, lookup, COMPOSE_CASTS)
}

/// [`interpolate`] with another cast table.
pub fn interpolate_with_casts(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    casts: &[CastRule],
) -> Result<(), InterpolateError> {
    let mut path = Vec::new();
    walk(node, &mut path, lookup, casts)
}

fn walk<'a>(
    node: &'a mut Node,
    path: &mut Vec<&'a str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    casts: &[CastRule],
) -> Result<(), InterpolateError> {
    if let Value::String(s) = &mut node.value {
        let substituted = if s.contains('$') {
            match substitute(s, lookup) {
                Ok(new) => Some(new),
                Err(TemplateError::Invalid { template }) => {
                    return Err(InterpolateError::InvalidFormat {
                        span: node.span.clone(),
                        path: path.join("."),
                        template,
                    })
                }
                Err(source) => {
                    return Err(InterpolateError::Template {
                        span: node.span.clone(),
                        path: path.join("."),
                        source,
                    })
                }
            }
        } else {
            None
        };
        let cast = casts.iter().find(|r| path_matches(r.path, path));
        match (cast, substituted) {
            (Some(rule), substituted) => {
                let text = substituted.as_deref().unwrap_or(s);
                match rule.cast.apply(text) {
                    Ok(v) => node.value = v,
                    Err(message) => {
                        return Err(InterpolateError::Cast {
                            span: node.span.clone(),
                            path: path.join("."),
                            message,
                        })
                    }
                }
            }
            (None, Some(new)) => *s = new,
            (None, None) => {}
        }
        return Ok(());
    }
    match &mut node.value {
        Value::Map(map) => {
            for (k, v) in map.iter_mut() {
                path.push(&k.name);
                walk(v, path, lookup, casts)?;
                path.pop();
            }
        }
        Value::Seq(items) => {
            for v in items.iter_mut() {
                path.push("[]");
                walk(v, path, lookup, casts)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn path_matches(pattern: &[&str], path: &[&str]) -> bool {
    pattern.len() == path.len() && pattern.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

/// Every variable the string values of `node` use, with its default,
/// alternative value and whether it is required (compose-go's
/// `ExtractVariables`; a later use of a name replaces an earlier one).
pub fn extract_variables(node: &Node) -> BTreeMap<String, Variable> {
    let mut out = BTreeMap::new();
    extract_node(node, &mut out);
    out
}

fn extract_node(node: &Node, out: &mut BTreeMap<String, Variable>) {
    match &node.value {
        Value::String(s) => {
            let mut found = Vec::new();
            extract_string(s, &mut found);
            for v in found {
                out.insert(v.name.clone(), v);
            }
        }
        Value::Map(map) => map.values().for_each(|v| extract_node(v, out)),
        Value::Seq(items) => items.iter().for_each(|v| extract_node(v, out)),
        _ => {}
    }
}

/// The variables of one string, in compose-go's order.
pub fn extract_string(t: &str, found: &mut Vec<Variable>) {
    let mut i = 0;
    while let Some(off) = t[i..].find('$') {
        let pos = i + off;
        let Some((end, kind)) = match_at(t, pos) else {
            i = pos + 1;
            continue;
        };
        i = end;
        let s = &t[pos..end];
        let val = match kind {
            MatchKind::Escaped => continue,
            MatchKind::Named => &s[1..],
            MatchKind::Braced { .. } | MatchKind::Invalid => {
                let braced = match kind {
                    MatchKind::Braced { .. } => &s[2..s.len() - 1],
                    _ => "",
                };
                match first_brace_closing(s) {
                    Some(c) if c > 0 => {
                        extract_string(&s[c + 1..], found);
                        &s[2..c]
                    }
                    _ => braced,
                }
            }
        };
        let mut var = Variable {
            name: val.to_owned(),
            ..Variable::default()
        };
        let split = val
            .char_indices()
            .find(|&(_, c)| !(c == '_' || c.is_ascii_alphanumeric()))
            .map(|(i, _)| i);
        if let Some(at) = split.filter(|&at| at > 0) {
            var.name = val[..at].to_owned();
            let rest = &val[at..];
            if rest.starts_with(":?") || rest.starts_with('?') {
                var.required = true;
            } else if let Some(d) = rest.strip_prefix(":-").or_else(|| rest.strip_prefix('-')) {
                var.default_value = d.to_owned();
            } else if let Some(p) = rest.strip_prefix(":+").or_else(|| rest.strip_prefix('+')) {
                var.presence_value = p.to_owned();
            }
        }
        let (default, presence) = (var.default_value.clone(), var.presence_value.clone());
        found.push(var);
        if !default.is_empty() {
            extract_string(&default, found);
        }
        if !presence.is_empty() {
            extract_string(&presence, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn operators_and_nesting() {
        let e = env(&[("FOO", "first"), ("BAR", "")]);
        let s = |t: &str| substitute(t, &e);
        assert_eq!(s("$FOO-bar").unwrap(), "first-bar");
        assert_eq!(s("${BAR:-${FOO}}x").unwrap(), "firstx");
        assert_eq!(s("${X-a} ${FOO}").unwrap(), "a first");
        assert_eq!(s("$${FOO}").unwrap(), "${FOO}");
        assert_eq!(s("a $ b $}").unwrap(), "a $ b $}");
        assert_eq!(
            s("${X:?need ${FOO}}").unwrap_err().to_string(),
            "required variable X is missing a value: need first"
        );
        assert_eq!(
            s("x ${FOO ").unwrap_err(),
            TemplateError::Invalid {
                template: "x ${FOO ".into()
            }
        );
    }

    #[test]
    fn braced_default_does_not_cross_lines() {
        let e = env(&[]);
        assert!(substitute("${X:-a\n}", &e).is_err());
        assert_eq!(substitute("${X:-a}\n}", &e).unwrap(), "a\n}");
    }

    #[test]
    fn casts_follow_go() {
        assert_eq!(Cast::Int.apply("5").unwrap(), Value::Int(5));
        assert_eq!(
            Cast::Int.apply("5x").unwrap_err(),
            "strconv.Atoi: parsing \"5x\": invalid syntax"
        );
        assert_eq!(Cast::Bool.apply("Yes").unwrap(), Value::Bool(true));
        assert_eq!(Cast::Bool.apply("2").unwrap_err(), "invalid boolean: 2");
        assert_eq!(Cast::Float32.apply("0.1").unwrap(), Value::Float(0.1));
    }
}
