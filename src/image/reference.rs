//! Image references and Docker's normalization of them.
//!
//! `nginx` means `docker.io/library/nginx:latest`; `localhost:5000/x` names a
//! registry because its first component has a port; `x@sha256:…` pins a
//! digest. This module only parses and prints: it never touches the network
//! or the store.

use std::fmt;

/// The registry a name without a domain belongs to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Where Docker Hub's registry API really lives.
pub const DEFAULT_REGISTRY_HOST: &str = "registry-1.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {reference:?}: {reason}")]
    Invalid {
        reference: String,
        reason: &'static str,
    },
}

/// A fully normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path inside the registry (`library/nginx`).
    pub path: String,
    /// Tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// Digest (`sha256:…`) when pinned.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes a reference the way `docker pull` does.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let bad = |reason| ReferenceError::Invalid {
            reference: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        if input.len() > 4096 {
            return Err(bad("too long"));
        }
        // Docker's rule: 64 hex digits are an image ID, never a repository
        // (it would shadow the ID of a local image).
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad("cannot specify 64-byte hexadecimal strings"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest).map_err(bad)?;
                (name, Some(digest.to_string()))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(bad)?;
        }
        let (domain, path) = split_domain(name);
        if domain.is_empty() {
            return Err(bad("empty registry"));
        }
        validate_path(&path).map_err(bad)?;
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, the repository without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The host to contact for this reference's registry API.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DEFAULT_REGISTRY_HOST
        } else {
            &self.domain
        }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The short name Docker shows: `nginx:latest`, `user/app:1`,
    /// `localhost:5000/x:tag`.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_repository();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The repository as Docker shows it (`nginx`, `user/app`, `host:5000/x`).
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Docker's rule: the first component is a registry when it has a `.` or a
/// `:`, or is `localhost`, or has an uppercase letter (which a repository
/// path cannot).
fn split_domain(name: &str) -> (String, String) {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        format!("{OFFICIAL_PREFIX}{rest}")
    } else {
        rest
    };
    (domain, path)
}

fn validate_path(path: &str) -> Result<(), &'static str> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err("empty path component");
        }
        let ok_chars = component
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if !ok_chars {
            return Err("repository name must be lowercase letters, digits and separators");
        }
        let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !component.starts_with(edge) || !component.ends_with(edge) {
            return Err("path component must start and end with a letter or digit");
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || tag.len() > 128 {
        return Err("invalid tag");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err("invalid tag");
    }
    Ok(())
}

/// Accepts `algorithm:hex`; only sha256 (64 hex digits) and sha512 are known.
pub fn validate_digest(digest: &str) -> Result<(), &'static str> {
    let Some((algo, hex)) = digest.split_once(':') else {
        return Err("digest must be algorithm:hex");
    };
    let len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != len || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err("invalid digest hex");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/library/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b:v1");
        assert_eq!(norm("ghcr.io/o/r:tag"), "ghcr.io/o/r:tag");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("nginx@{d}")),
            format!("docker.io/library/nginx@{d}")
        );
        assert_eq!(
            norm(&format!("nginx:1@{d}")),
            format!("docker.io/library/nginx:1@{d}")
        );
    }

    #[test]
    fn familiar_names() {
        let fam = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(fam("docker.io/library/nginx"), "nginx:latest");
        assert_eq!(fam("user/app:2"), "user/app:2");
        assert_eq!(fam("localhost:5000/x"), "localhost:5000/x:latest");
    }

    #[test]
    fn registry_host_and_object() {
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        assert_eq!(r.object(), "latest");
        let r = Reference::parse("127.0.0.1:5000/x:t").unwrap();
        assert_eq!(r.registry_host(), "127.0.0.1:5000");
        assert_eq!(r.object(), "t");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-bad",
            "a//b",
            "nginx@sha256:abc",
            "nginx@md5:00",
            "-x",
            "x-",
            "UPPER.io/Repo",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        // 64 hex digits are an image ID; with a tag or fewer digits, a name.
        let id = "a".repeat(64);
        assert!(Reference::parse(&id).is_err());
        assert!(Reference::parse(&format!("{id}:1")).is_ok());
        assert!(Reference::parse(&id[..63]).is_ok());
    }
}
