//! Making the relative paths of a Compose tree absolute, against the
//! directory they are relative to (the project directory, or the directory
//! of the file an `extends` or `include` brought in).
//!
//! Exactly the keys Compose resolves (compose-go `paths/resolve.go`):
//! `build` (short form) and `build.context` unless it is a URL, a Git
//! reference or a `service:`/`docker-image://`-style context;
//! `build.additional_contexts` likewise; `build.ssh` key paths; `env_file`
//! and `label_file` entries; `extends.file`; bind-mount sources of service
//! `volumes` (long syntax with `type: bind`, and short syntax whose source
//! is a path); `develop.watch[].path`; `secrets.*.file`, `configs.*.file`;
//! top-level volumes with `driver: local` and `driver_opts: {o: bind,
//! device: …}`. A leading `~` is replaced by the home directory. Named
//! volumes and everything else are left alone.
//!
//! Resolution is lexical (like Go's `filepath.Join`, which cleans `.` and
//! `..`); the only filesystem access is for `develop.watch` paths, which
//! Compose resolves through symbolic links.

use std::path::{Path, PathBuf};

use crate::model::node::{Node, Span, Value};

/// A path that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error(
        "{span}: {path}: invalid mount config for type \"bind\": field Source must not be empty"
    )]
    BindWithoutSource { path: String, span: Span },
    #[error("{span}: cannot resolve symbolic link in {path}")]
    Symlink {
        path: String,
        span: Span,
        #[source]
        source: std::io::Error,
    },
    #[error("{span}: {path}: expected a path (a string), found {kind}")]
    NotAString {
        path: String,
        span: Span,
        kind: &'static str,
    },
}

/// Where relative paths are relative to, and what `~` means.
#[derive(Clone, Copy, Debug)]
pub struct PathBase<'a> {
    /// The directory relative paths are joined to.
    pub working_dir: &'a Path,
    /// The user's home directory, for `~`; `None` leaves `~` paths as written
    /// (Compose warns and does the same when `HOME` is unset).
    pub home: Option<&'a Path>,
}

/// Resolves, in place, every relative path of `doc` (a whole Compose file
/// tree) against `base`.
pub fn resolve_relative_paths(doc: &mut Node, base: PathBase<'_>) -> Result<(), PathsError> {
    let Some(root) = doc.as_map_mut() else {
        return Ok(());
    };
    if let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) {
        for (name, service) in services.iter_mut() {
            resolve_service(service, &format!("services.{}", name.name), base)?;
        }
    }
    for kind in ["secrets", "configs"] {
        if let Some(items) = root.get_mut(kind).and_then(Node::as_map_mut) {
            for (_, item) in items.iter_mut() {
                if let Some(file) = item.as_map_mut().and_then(|m| m.get_mut("file")) {
                    maybe_unix_path(file, base);
                }
            }
        }
    }
    if let Some(volumes) = root.get_mut("volumes").and_then(Node::as_map_mut) {
        for (_, volume) in volumes.iter_mut() {
            let Some(v) = volume.as_map_mut() else {
                continue;
            };
            if v.get("driver").and_then(Node::as_str) != Some("local") {
                continue;
            }
            let Some(opts) = v.get_mut("driver_opts").and_then(Node::as_map_mut) else {
                continue;
            };
            if opts.get("o").and_then(Node::as_str) == Some("bind") {
                if let Some(device) = opts.get_mut("device") {
                    maybe_unix_path(device, base);
                }
            }
        }
    }
    Ok(())
}

/// Resolves the paths of one service definition (also used on a service
/// brought in by `extends` from another file). `at` is its key path, for
/// errors.
pub fn resolve_service(service: &mut Node, at: &str, base: PathBase<'_>) -> Result<(), PathsError> {
    let Some(s) = service.as_map_mut() else {
        return Ok(());
    };
    if let Some(build) = s.get_mut("build") {
        match &mut build.value {
            Value::String(_) => context_path(build, base),
            Value::Map(b) => {
                if let Some(ctx) = b.get_mut("context") {
                    context_path(ctx, base);
                }
                if let Some(extra) = b.get_mut("additional_contexts") {
                    each_value(extra, |n| context_path(n, base));
                }
                if let Some(ssh) = b.get_mut("ssh") {
                    each_value(ssh, |n| maybe_unix_path(n, base));
                }
            }
            _ => {}
        }
    }
    for key in ["env_file", "label_file"] {
        if let Some(files) = s.get_mut(key) {
            let here = format!("{at}.{key}");
            match &mut files.value {
                Value::String(_) => abs_path(files, base, &here)?,
                Value::Seq(items) => {
                    for item in items {
                        match &mut item.value {
                            Value::Map(m) => {
                                if let Some(p) = m.get_mut("path") {
                                    abs_path(p, base, &here)?;
                                }
                            }
                            _ => abs_path(item, base, &here)?,
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(file) = s
        .get_mut("extends")
        .and_then(Node::as_map_mut)
        .and_then(|e| e.get_mut("file"))
    {
        abs_path(file, base, &format!("{at}.extends.file"))?;
    }
    if let Some(Value::Seq(volumes)) = s.get_mut("volumes").map(|v| &mut v.value) {
        for (i, volume) in volumes.iter_mut().enumerate() {
            let span = volume.span.clone();
            match &mut volume.value {
                Value::Map(v) => {
                    if v.get("type").and_then(Node::as_str) != Some("bind") {
                        continue;
                    }
                    match v.get_mut("source") {
                        Some(src) => maybe_unix_path(src, base),
                        None => {
                            return Err(PathsError::BindWithoutSource {
                                path: format!("{at}.volumes[{i}]"),
                                span,
                            })
                        }
                    }
                }
                Value::String(spec) => {
                    if let Some(resolved) = resolve_short_volume(spec, base) {
                        *spec = resolved;
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Seq(watch)) = s
        .get_mut("develop")
        .and_then(Node::as_map_mut)
        .and_then(|d| d.get_mut("watch"))
        .map(|w| &mut w.value)
    {
        for (i, rule) in watch.iter_mut().enumerate() {
            if let Some(p) = rule.as_map_mut().and_then(|r| r.get_mut("path")) {
                abs_path(p, base, &format!("{at}.develop.watch[{i}].path"))?;
                let span = p.span.clone();
                if let Value::String(s) = &mut p.value {
                    let resolved = through_symlink(s);
                    if let Ok(to) = &resolved {
                        super::inputs::note_resolved(s, to.as_deref());
                    }
                    match resolved {
                        Ok(Some(real)) => *s = real,
                        Ok(None) => {}
                        Err(source) => {
                            return Err(PathsError::Symlink {
                                path: s.clone(),
                                span,
                                source,
                            })
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Applies `f` to each value of a mapping, or to the part after `=` of
/// each `name=value` item of a sequence (the short form that Compose turns
/// into a mapping before resolving).
fn each_value(node: &mut Node, mut f: impl FnMut(&mut Node)) {
    match &mut node.value {
        Value::Map(m) => m.values_mut().for_each(f),
        Value::Seq(items) => {
            for item in items {
                let span = item.span.clone();
                let Value::String(s) = &mut item.value else {
                    continue;
                };
                let Some((name, value)) = s.split_once('=') else {
                    continue;
                };
                let mut v = Node::new(Value::String(value.to_owned()), span);
                f(&mut v);
                if let Some(resolved) = v.as_str() {
                    *s = format!("{name}={resolved}");
                }
            }
        }
        _ => {}
    }
}

fn is_remote_context(s: &str) -> bool {
    s.contains("://")
        || s.starts_with("service:")
        || [
            "https://",
            "http://",
            "git://",
            "ssh://",
            "github.com/",
            "git@",
        ]
        .iter()
        .any(|p| s.starts_with(p))
}

fn context_path(node: &mut Node, base: PathBase<'_>) {
    if let Value::String(s) = &mut node.value {
        if is_remote_context(s) {
            return;
        }
        let expanded = expand_user(s, base.home);
        *s = if expanded.is_empty() || expanded.starts_with('/') {
            expanded
        } else {
            join(base.working_dir, &expanded)
        };
    }
}

fn abs_path(node: &mut Node, base: PathBase<'_>, at: &str) -> Result<(), PathsError> {
    match &mut node.value {
        Value::String(s) => {
            let expanded = expand_user(s, base.home);
            *s = if expanded.is_empty() || expanded.starts_with('/') {
                expanded
            } else {
                join(base.working_dir, &expanded)
            };
            Ok(())
        }
        Value::Seq(items) => {
            for item in items {
                abs_path(item, base, at)?;
            }
            Ok(())
        }
        _ => Err(PathsError::NotAString {
            path: at.to_owned(),
            span: node.span.clone(),
            kind: node.kind(),
        }),
    }
}

/// Compose's `maybeUnixPath`: absolute Unix and Windows paths stay, the
/// rest is joined to the working directory. Non-strings are left alone.
fn maybe_unix_path(node: &mut Node, base: PathBase<'_>) {
    if let Value::String(s) = &mut node.value {
        let expanded = expand_user(s, base.home);
        *s = if expanded.starts_with('/') || is_windows_abs(&expanded) {
            expanded
        } else {
            join(base.working_dir, &expanded)
        };
    }
}

fn is_windows_abs(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'\\' || b[2] == b'/'))
}

/// `~` and `~/x` become the home directory (`~user` is not expanded by
/// Compose either: it becomes `$HOME/user`, which is what Go's code does).
pub fn expand_user(p: &str, home: Option<&Path>) -> String {
    match (p.strip_prefix('~'), home) {
        (Some(rest), Some(home)) => join(home, rest),
        _ => p.to_owned(),
    }
}

/// Go's `filepath.Join(base, rel)` (`rel` absolute or not, it is appended),
/// cleaned lexically.
pub fn join(base: &Path, rel: &str) -> String {
    let joined = if rel.is_empty() {
        base.to_string_lossy().into_owned()
    } else {
        format!("{}/{}", base.to_string_lossy(), rel)
    };
    clean(&joined)
}

/// Go's `path.Clean`: collapse `//`, `.` and `..` without touching the
/// filesystem.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

/// Compose's `ResolveSymbolicLink`: the first component of `p` that is a
/// symbolic link is replaced by its fully resolved target; `None` when no
/// component is a link.
pub(crate) fn through_symlink(p: &str) -> Result<Option<String>, std::io::Error> {
    let mut current = PathBuf::from("/");
    for part in p.split('/').filter(|s| !s.is_empty()) {
        current.push(part);
        let is_link = fs_err::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            let target = fs_err::canonicalize(&current)?;
            let prefix = current.to_string_lossy().into_owned();
            let target = target.to_string_lossy();
            return Ok(Some(p.replacen(&prefix, &target, 1)));
        }
    }
    Ok(None)
}

/// A short-syntax volume (`src:dst[:opts]`) whose source is a path, with the
/// source made absolute; `None` when there is nothing to resolve (named or
/// anonymous volume).
fn resolve_short_volume(spec: &str, base: PathBase<'_>) -> Option<String> {
    let (source, rest) = split_source(spec)?;
    let is_path = source.starts_with(['.', '/', '~']) || source.starts_with("\\\\");
    if !is_path {
        return None;
    }
    let expanded = expand_user(source, base.home);
    let abs = if expanded.starts_with('/') {
        expanded
    } else {
        join(base.working_dir, &expanded)
    };
    Some(format!("{abs}{rest}"))
}

/// Splits `src:rest` at the first colon that ends a section (not inside
/// `${…}`, not a one-letter Windows drive). `None` for a spec without a
/// source (`/data`).
fn split_source(spec: &str) -> Option<(&str, &str)> {
    let bytes = spec.as_bytes();
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'$' if bytes.get(i + 1) == Some(&b'{') => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 => {
                if i == 1 && bytes[0].is_ascii_alphabetic() {
                    continue;
                }
                return Some((&spec[..i], &spec[i..]));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        Node::from_json(&json, &Span::synthetic("<test>"))
    }

    #[test]
    fn cleans_like_go() {
        assert_eq!(clean("/a/./b/../c//d/"), "/a/c/d");
        assert_eq!(join(Path::new("/w/p"), "../x"), "/w/x");
        assert_eq!(join(Path::new("/w/p"), "/abs"), "/w/p/abs");
        assert_eq!(clean("a/../.."), "..");
    }

    #[test]
    fn resolves_the_keys_compose_resolves() {
        let mut doc = node(serde_json::json!({
            "services": {"web": {
                "build": {"context": "./app", "additional_contexts": {"a": "../a", "b": "docker-image://x"}},
                "env_file": ["a.env", {"path": "b.env"}],
                "extends": {"file": "base.yaml", "service": "x"},
                "volumes": ["./data:/data:ro", "named:/n", "/anon", "~/h:/h",
                            {"type": "bind", "source": "src", "target": "/t"},
                            {"type": "volume", "source": "vol", "target": "/v"}]
            },
            "git": {"build": "https://github.com/x/y.git"}},
            "secrets": {"s": {"file": "./s.txt"}},
            "volumes": {"v": {"driver": "local", "driver_opts": {"o": "bind", "device": "./dev"}}}
        }));
        let base = PathBase {
            working_dir: Path::new("/w/p"),
            home: Some(Path::new("/home/u")),
        };
        resolve_relative_paths(&mut doc, base).unwrap();
        assert_eq!(
            doc.to_json(),
            serde_json::json!({
                "services": {"web": {
                    "build": {"context": "/w/p/app", "additional_contexts": {"a": "/w/a", "b": "docker-image://x"}},
                    "env_file": ["/w/p/a.env", {"path": "/w/p/b.env"}],
                    "extends": {"file": "/w/p/base.yaml", "service": "x"},
                    "volumes": ["/w/p/data:/data:ro", "named:/n", "/anon", "/home/u/h:/h",
                                {"type": "bind", "source": "/w/p/src", "target": "/t"},
                                {"type": "volume", "source": "vol", "target": "/v"}]
                },
                "git": {"build": "https://github.com/x/y.git"}},
                "secrets": {"s": {"file": "/w/p/s.txt"}},
                "volumes": {"v": {"driver": "local", "driver_opts": {"o": "bind", "device": "/w/p/dev"}}}
            })
        );
    }

    #[test]
    fn watch_paths_go_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs_err::canonicalize(tmp.path()).unwrap();
        let real = root.join("real");
        fs_err::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, root.join("link")).unwrap();
        let mut doc = node(serde_json::json!({"services": {"a": {"develop": {"watch": [
            {"path": "link/src", "action": "sync"}, {"path": "plain", "action": "rebuild"}]}}}}));
        let base = PathBase {
            working_dir: &root,
            home: None,
        };
        resolve_relative_paths(&mut doc, base).unwrap();
        let watch = &doc.to_json()["services"]["a"]["develop"]["watch"];
        assert_eq!(watch[0]["path"], format!("{}/src", real.display()));
        assert_eq!(watch[1]["path"], format!("{}/plain", root.display()));
    }

    #[test]
    fn bind_without_source_is_an_error() {
        let mut doc = node(
            serde_json::json!({"services": {"a": {"volumes": [{"type": "bind", "target": "/t"}]}}}),
        );
        let base = PathBase {
            working_dir: Path::new("/w"),
            home: None,
        };
        let e = resolve_relative_paths(&mut doc, base).unwrap_err();
        assert!(e.to_string().contains("services.a.volumes[0]"), "{e}");
    }
}
