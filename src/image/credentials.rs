//! Registry credentials in Docker's client config file.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`,
//! shared with the `docker` CLI. Only the `auths` map is read and written:
//! `{"auths": {"<registry>": {"auth": base64("user:password")}}}`; every
//! other key of the file (credential helpers, proxies, …) is kept as it was.
//! Docker Hub is keyed `https://index.docker.io/v1/`, as `docker login` does.
//! Credential helpers (`credsStore`) are not run.
//!
//! Writes go through a temp file + rename in the same directory, mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use fs_err as fs;
use serde_json::{Map, Value};

/// The key Docker uses for Docker Hub in `auths`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("parsing {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: `auths.{registry}.auth` is not base64 of user:password")]
    BadAuth { path: PathBuf, registry: String },
    #[error("neither $DOCKER_CONFIG nor $HOME is set: cannot find the Docker client config")]
    NoHome,
}

/// A user name and secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Docker's client config file.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
}

impl DockerConfig {
    /// The file the environment names (`$DOCKER_CONFIG`, else `$HOME/.docker`).
    pub fn from_env() -> Result<Self, CredentialsError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from(std::env::var_os("HOME").ok_or(CredentialsError::NoHome)?)
                .join(".docker"),
        };
        Ok(Self::at(dir.join("config.json")))
    }

    pub fn at(path: PathBuf) -> Self {
        DockerConfig { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Map<String, Value>, CredentialsError> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(e.into()),
        };
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        serde_json::from_slice(&data).map_err(|source| CredentialsError::Json {
            path: self.path.clone(),
            source,
        })
    }

    fn write(&self, doc: &Map<String, Value>) -> Result<(), CredentialsError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        let text = serde_json::to_string_pretty(doc).expect("json serializes");
        tmp.write_all(text.as_bytes())?;
        tmp.write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Credentials stored for `registry` (a domain as in a reference:
    /// `docker.io`, `host:5000`), trying the spellings Docker accepts.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        let doc = self.read()?;
        let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let wanted = key_for(registry);
        let entry = auths
            .iter()
            .find(|(k, _)| **k == wanted)
            .or_else(|| auths.iter().find(|(k, _)| normalize_key(k) == registry));
        let Some((key, entry)) = entry else {
            return Ok(None);
        };
        let bad = || CredentialsError::BadAuth {
            path: self.path.clone(),
            registry: key.clone(),
        };
        if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
            if auth.is_empty() {
                return Ok(None);
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let raw = String::from_utf8(raw).map_err(|_| bad())?;
            let (u, p) = raw.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        // Older files spell the two halves out.
        match (
            entry.get("username").and_then(Value::as_str),
            entry.get("password").and_then(Value::as_str),
        ) {
            (Some(u), Some(p)) => Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            })),
            _ => Ok(None),
        }
    }

    /// Stores credentials for `registry` (what `docker login` does).
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), CredentialsError> {
        let mut doc = self.read()?;
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let raw = format!("{}:{}", creds.username, creds.password);
        let auth = base64::engine::general_purpose::STANDARD.encode(raw);
        auths
            .as_object_mut()
            .expect("made an object above")
            .insert(key_for(registry), serde_json::json!({ "auth": auth }));
        self.write(&doc)
    }

    /// Removes the credentials for `registry`; `false` if there were none.
    pub fn erase(&self, registry: &str) -> Result<bool, CredentialsError> {
        let mut doc = self.read()?;
        let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| **k == key_for(registry) || normalize_key(k) == registry)
            .cloned()
            .collect();
        if keys.is_empty() {
            return Ok(false);
        }
        for k in keys {
            auths.remove(&k);
        }
        self.write(&doc)?;
        Ok(true)
    }
}

/// The `auths` key `docker login` writes for a registry domain.
pub fn key_for(registry: &str) -> String {
    if registry == super::reference::DEFAULT_DOMAIN
        || registry == super::reference::DEFAULT_REGISTRY_HOST
        || registry == "index.docker.io"
    {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host:5000/v1/` → `host:5000`, as Docker's `ConvertToHostname`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => super::reference::DEFAULT_DOMAIN.into(),
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_erase_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"credsStore":"x","auths":{"https://old.io/v1/":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let cfg = DockerConfig::at(path.clone());
        assert_eq!(
            cfg.get("old.io").unwrap(),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        let c = Credentials {
            username: "me".into(),
            password: "s:e:c".into(),
        };
        cfg.store("docker.io", &c).unwrap();
        cfg.store("127.0.0.1:5000", &c).unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["credsStore"], "x");
        assert!(doc["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        assert_eq!(cfg.get("docker.io").unwrap(), Some(c.clone()));
        assert_eq!(cfg.get("127.0.0.1:5000").unwrap(), Some(c));
        assert!(cfg.erase("127.0.0.1:5000").unwrap());
        assert!(!cfg.erase("127.0.0.1:5000").unwrap());
        assert_eq!(cfg.get("127.0.0.1:5000").unwrap(), None);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn missing_file_has_no_credentials() {
        let cfg = DockerConfig::at("/nonexistent/berth/config.json".into());
        assert_eq!(cfg.get("docker.io").unwrap(), None);
    }
}
