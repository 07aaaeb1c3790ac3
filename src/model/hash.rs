//! The service configuration hash Docker Compose stores in the
//! `com.docker.compose.config-hash` label, and compares to decide whether a
//! container must be recreated (docker/compose `pkg/compose/hash.go`).
//!
//! The hash is the SHA-256, in hex, of the service serialized as Go's
//! `encoding/json` would serialize compose-go's `ServiceConfig`: fields in
//! declaration order (our `Service` declares them in the same order), maps
//! sorted by key, no whitespace, and `<`, `>`, `&`, U+2028, U+2029 escaped.
//! `build`, `pull_policy`, `scale`, `deploy.replicas`, `depends_on` and
//! `profiles` are cleared first: changing them never recreates a container.

use std::io;

use sha2::{Digest, Sha256};

use super::project::Service;

/// A service that cannot be serialized (never expected: every field is plain data).
#[derive(Debug, thiserror::Error)]
#[error("service {service:?}: cannot compute its config hash: {source}")]
pub struct HashError {
    service: String,
    #[source]
    source: serde_json::Error,
}

/// The `com.docker.compose.config-hash` of `service`.
pub fn service_hash(service: &Service) -> Result<String, HashError> {
    let mut s = service.clone();
    s.build = None;
    s.pull_policy.clear();
    s.scale = None;
    if let Some(d) = s.deploy.as_mut() {
        d.replicas = None;
    }
    s.depends_on.clear();
    s.profiles.clear();
    let json = go_json(&s).map_err(|source| HashError {
        service: service.name.clone(),
        source,
    })?;
    Ok(hex::encode(Sha256::digest(&json)))
}

/// Serializes `value` compactly with Go's `encoding/json` string escaping.
pub fn go_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// serde_json's compact output, plus the HTML-safe escapes Go applies.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::project::{Build, Deploy, ServiceDependency};

    fn base() -> Service {
        Service {
            name: "web".into(),
            image: "nginx".into(),
            ..Service::default()
        }
    }

    #[test]
    fn serializes_like_go() {
        let mut s = base();
        s.environment.insert("A".into(), Some("<&>".into()));
        let json = String::from_utf8(go_json(&s).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"command":null,"entrypoint":null,"environment":{"A":"\u003c\u0026\u003e"},"image":"nginx"}"#
        );
        // sha256 of exactly those bytes.
        let expected = hex::encode(Sha256::digest(json.as_bytes()));
        assert_eq!(service_hash(&s).unwrap(), expected);
    }

    #[test]
    fn excluded_fields_do_not_change_the_hash() {
        let h = service_hash(&base()).unwrap();
        let mut s = base();
        s.build = Some(Build::default());
        s.pull_policy = "always".into();
        s.scale = Some(3);
        s.profiles = vec!["p".into()];
        s.depends_on
            .insert("db".into(), ServiceDependency::default());
        assert_eq!(service_hash(&s).unwrap(), h);

        let mut d = base();
        d.deploy = Some(Deploy {
            replicas: Some(2),
            ..Deploy::default()
        });
        let mut d0 = base();
        d0.deploy = Some(Deploy::default());
        assert_eq!(service_hash(&d).unwrap(), service_hash(&d0).unwrap());
    }

    #[test]
    fn included_fields_change_the_hash() {
        let h = service_hash(&base()).unwrap();
        let mut s = base();
        s.image = "nginx:2".into();
        assert_ne!(service_hash(&s).unwrap(), h);
        let mut s = base();
        s.environment.insert("A".into(), None);
        assert_ne!(service_hash(&s).unwrap(), h);
    }
}
