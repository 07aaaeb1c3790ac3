//! Short syntax → long syntax, on the tree (compose-go's `transform` package).
//!
//! Only the rewrites that change the *shape* of a value live here: a `build:`
//! string becomes `{context}`, a `depends_on` list a map, `ports` and
//! `volumes` strings their long entries (parsed by `model::ports` and
//! `model::volumes`), `secrets`/`configs`/`devices`/`env_file` strings their
//! mappings, and a resource's deprecated `external: {name}` becomes
//! `external: true` + `name`. Rewrites that only change a scalar's type
//! (`labels` list → map, `"2g"` → bytes, …) are done by the `Project` types'
//! lenient decoders. The pass is idempotent, so it may run after each file
//! or once after merging.

use super::node::{Key, KeyPath, Map, Node, Span, Value};
use super::normalize::NormalizeError;

/// Rewrites every short syntax in `root` (a whole Compose document) in place.
pub fn canonicalize(root: &mut Node) -> Result<(), NormalizeError> {
    let path = KeyPath::root();
    let Some(top) = root.as_map_mut() else {
        return Ok(());
    };
    if let Some(services) = top.get_mut("services").and_then(Node::as_map_mut) {
        let sp = path.key("services");
        for (name, svc) in services.iter_mut() {
            canonical_service(svc, &sp.key(&name.name))?;
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        if let Some(res) = top.get_mut(kind).and_then(Node::as_map_mut) {
            let kp = path.key(kind);
            for (name, r) in res.iter_mut() {
                canonical_external(r, &kp.key(&name.name))?;
            }
        }
    }
    Ok(())
}

fn str_node(s: &str, span: &Span) -> Node {
    Node::new(Value::String(s.to_owned()), span.clone())
}

fn bool_node(b: bool, span: &Span) -> Node {
    Node::new(Value::Bool(b), span.clone())
}

fn map_node(entries: Vec<(&str, Node)>, span: &Span) -> Node {
    let m: Map = entries
        .into_iter()
        .map(|(k, v)| (Key::new(k, span.clone()), v))
        .collect();
    Node::new(Value::Map(m), span.clone())
}

fn invalid(path: &KeyPath, node: &Node, message: String) -> NormalizeError {
    NormalizeError::Invalid {
        path: path.to_string(),
        span: node.span.clone(),
        message,
    }
}

fn canonical_service(svc: &mut Node, path: &KeyPath) -> Result<(), NormalizeError> {
    let Some(m) = svc.as_map_mut() else {
        return Ok(());
    };
    if let Some(build) = m.get_mut("build") {
        if let Value::String(ctx) = &build.value {
            let n = map_node(vec![("context", str_node(ctx, &build.span))], &build.span);
            *build = n;
        }
        if let Some(secrets) = build.as_map_mut().and_then(|b| b.get_mut("secrets")) {
            canonical_file_refs(secrets);
        }
    }
    if let Some(ext) = m.get_mut("extends") {
        if let Value::String(s) = &ext.value {
            *ext = map_node(vec![("service", str_node(s, &ext.span))], &ext.span);
        }
    }
    if let Some(dep) = m.get_mut("depends_on") {
        if let Value::Seq(items) = &dep.value {
            let span = dep.span.clone();
            let mut out = Map::new();
            for item in items {
                let Some(name) = item.as_str() else {
                    return Err(invalid(
                        &path.key("depends_on"),
                        item,
                        format!("expected a service name, got {}", item.kind()),
                    ));
                };
                out.insert(
                    Key::new(name, item.span.clone()),
                    map_node(
                        vec![
                            ("condition", str_node("service_started", &item.span)),
                            ("required", bool_node(true, &item.span)),
                        ],
                        &item.span,
                    ),
                );
            }
            *dep = Node::new(Value::Map(out), span);
        }
    }
    if let Some(env_file) = m.get_mut("env_file") {
        if let Value::String(_) = &env_file.value {
            let one = env_file.clone();
            *env_file = Node::new(Value::Seq(vec![one]), env_file.span.clone());
        }
        if let Value::Seq(items) = &mut env_file.value {
            for item in items.iter_mut() {
                if let Value::String(p) = &item.value {
                    *item = map_node(
                        vec![
                            ("path", str_node(p, &item.span)),
                            ("required", bool_node(true, &item.span)),
                        ],
                        &item.span,
                    );
                }
            }
        }
    }
    if let Some(gpus) = m.get_mut("gpus") {
        if let Value::String(_) = &gpus.value {
            let all = map_node(vec![("count", str_node("all", &gpus.span))], &gpus.span);
            *gpus = Node::new(Value::Seq(vec![all]), gpus.span.clone());
        }
    }
    for key in ["secrets", "configs"] {
        if let Some(refs) = m.get_mut(key) {
            canonical_file_refs(refs);
        }
    }
    if let Some(Value::Seq(devices)) = m.get_mut("devices").map(|n| &mut n.value) {
        for (i, d) in devices.iter_mut().enumerate() {
            if let Value::String(s) = &d.value {
                let parts: Vec<&str> = s.split(':').collect();
                let (src, dst, perms) = match parts.as_slice() {
                    [src] => (*src, *src, "rwm"),
                    [src, dst] => (*src, *dst, "rwm"),
                    [src, dst, perms] => (*src, *dst, *perms),
                    _ => {
                        return Err(invalid(
                            &path.key("devices").index(i),
                            d,
                            format!("confusing device mapping, please use long syntax: {s}"),
                        ))
                    }
                };
                let dst = if dst.is_empty() { src } else { dst };
                *d = map_node(
                    vec![
                        ("source", str_node(src, &d.span)),
                        ("target", str_node(dst, &d.span)),
                        ("permissions", str_node(perms, &d.span)),
                    ],
                    &d.span,
                );
            }
        }
    }
    if let Some(ports) = m.get_mut("ports") {
        canonical_ports(ports, &path.key("ports"))?;
    }
    if let Some(Value::Seq(volumes)) = m.get_mut("volumes").map(|n| &mut n.value) {
        for (i, v) in volumes.iter_mut().enumerate() {
            if let Value::String(s) = &v.value {
                let long = super::volumes::parse_volume(s)
                    .map_err(|e| invalid(&path.key("volumes").index(i), v, e.to_string()))?;
                let json = serde_json::to_value(&long)
                    .map_err(|e| invalid(&path.key("volumes").index(i), v, e.to_string()))?;
                *v = Node::from_json(&json, &v.span);
            }
        }
    }
    Ok(())
}

/// `secrets:`/`configs:` entries: `name` → `{source: name}`.
fn canonical_file_refs(refs: &mut Node) {
    if let Value::Seq(items) = &mut refs.value {
        for item in items.iter_mut() {
            if let Value::String(s) = &item.value {
                *item = map_node(vec![("source", str_node(s, &item.span))], &item.span);
            }
        }
    }
}

/// `ports:` entries: each short entry (a string or an integer) expands to one
/// or more long entries (a range gives several).
fn canonical_ports(ports: &mut Node, path: &KeyPath) -> Result<(), NormalizeError> {
    let Value::Seq(items) = &mut ports.value else {
        return Ok(());
    };
    if items.iter().all(|i| matches!(i.value, Value::Map(_))) {
        return Ok(());
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in std::mem::take(items).into_iter().enumerate() {
        let text = match &item.value {
            Value::String(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Map(_) => {
                out.push(item);
                continue;
            }
            _ => {
                return Err(invalid(
                    &path.index(i),
                    &item,
                    format!("invalid type {} for port", item.kind()),
                ))
            }
        };
        let parsed = super::ports::parse_port(&text)
            .map_err(|e| invalid(&path.index(i), &item, e.to_string()))?;
        for p in parsed {
            let json = serde_json::to_value(&p)
                .map_err(|e| invalid(&path.index(i), &item, e.to_string()))?;
            out.push(Node::from_json(&json, &item.span));
        }
    }
    *items = out;
    Ok(())
}

/// `external: {name: x}` (deprecated) → `external: true` and `name: x`.
fn canonical_external(res: &mut Node, path: &KeyPath) -> Result<(), NormalizeError> {
    let Some(m) = res.as_map_mut() else {
        return Ok(());
    };
    let Some(ext) = m.get_mut("external") else {
        return Ok(());
    };
    let Value::Map(em) = &ext.value else {
        return Ok(());
    };
    let ext_name = em.get("name").cloned();
    let span = ext.span.clone();
    *ext = bool_node(true, &span);
    if let Some(ext_name) = ext_name {
        tracing::warn!("{path}: external.name is deprecated. Please set name and external: true");
        match m.get("name") {
            Some(name) if name.value != ext_name.value => {
                return Err(invalid(
                    path,
                    name,
                    "name and external.name conflict; only use name".to_owned(),
                ));
            }
            Some(_) => {}
            None => {
                m.insert(Key::new("name", ext_name.span.clone()), ext_name);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Node {
        let v: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        Node::from_json(&v, &Span::synthetic("<test>"))
    }

    #[test]
    fn short_forms_become_long() {
        let mut t = tree(
            r#"
services:
  web:
    build: ./dir
    depends_on: [db]
    env_file: a.env
    secrets: [s]
    devices: ["/dev/sda:/dev/xvda:r", "/dev/fuse"]
    extends: base
    gpus: all
volumes:
  v:
    external:
      name: real
"#,
        );
        canonicalize(&mut t).unwrap();
        let j = t.to_json();
        let web = &j["services"]["web"];
        assert_eq!(web["build"], serde_json::json!({"context": "./dir"}));
        assert_eq!(
            web["depends_on"]["db"],
            serde_json::json!({"condition": "service_started", "required": true})
        );
        assert_eq!(
            web["env_file"],
            serde_json::json!([{"path": "a.env", "required": true}])
        );
        assert_eq!(web["secrets"], serde_json::json!([{"source": "s"}]));
        assert_eq!(
            web["devices"],
            serde_json::json!([
                {"source": "/dev/sda", "target": "/dev/xvda", "permissions": "r"},
                {"source": "/dev/fuse", "target": "/dev/fuse", "permissions": "rwm"}
            ])
        );
        assert_eq!(web["extends"], serde_json::json!({"service": "base"}));
        assert_eq!(web["gpus"], serde_json::json!([{"count": "all"}]));
        assert_eq!(
            j["volumes"]["v"],
            serde_json::json!({"external": true, "name": "real"})
        );
        // Idempotent.
        let again = j.clone();
        canonicalize(&mut t).unwrap();
        assert_eq!(t.to_json(), again);
    }

    #[test]
    fn external_name_conflict_is_an_error() {
        let mut t = tree("networks:\n  n:\n    name: a\n    external:\n      name: b\n");
        let e = canonicalize(&mut t).unwrap_err().to_string();
        assert!(e.contains("networks.n"), "{e}");
        assert!(e.contains("name and external.name conflict"), "{e}");
    }

    #[test]
    fn bad_device_is_an_error() {
        let mut t = tree("services:\n  a:\n    devices: ['a:b:c:d']\n");
        let e = canonicalize(&mut t).unwrap_err().to_string();
        assert!(e.contains("services.a.devices[0]"), "{e}");
    }
}
