//! Registry credentials in Docker's client config file.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`,
//! shared with the `docker` CLI. Credentials for a registry live where the
//! Docker CLI puts them:
//!
//! - with a helper: `credHelpers["<registry>"]` names one for that registry,
//!   else `credsStore` one for all. The helper is the program
//!   `docker-credential-<name>` on `PATH`, spoken to as the
//!   docker-credential-helpers protocol says: `get` (server URL on stdin,
//!   `{"ServerURL","Username","Secret"}` on stdout; "credentials not found"
//!   on stdout and a failure status when it has none), `store` (that JSON on
//!   stdin) and `erase` (server URL on stdin). `berth login` also records
//!   `"auths": {"<registry>": {}}`, as `docker login` does;
//! - otherwise in the file: `{"auths": {"<registry>": {"auth":
//!   base64("user:password")}}}`.
//!
//! Every other key of the file (proxies, …) is kept as it was. Docker Hub is
//! keyed `https://index.docker.io/v1/` (also as the helper's server URL).
//! An identity token (`Username` `<token>`, used for OAuth refresh) is
//! refused with a clear error: berth does not do that token exchange.
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
    #[error("credential helper {program} (named by {setting} in {path}) is not on PATH")]
    HelperMissing {
        program: String,
        setting: &'static str,
        path: PathBuf,
    },
    #[error("running credential helper `{program} {action}`")]
    HelperSpawn {
        program: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("credential helper `{program} {action}` failed ({status}): {message}")]
    HelperFailed {
        program: String,
        action: &'static str,
        status: std::process::ExitStatus,
        message: String,
    },
    #[error("credential helper `{program} get` answered something other than {{\"Username\",\"Secret\"}} JSON")]
    HelperAnswer {
        program: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("credential helper {program} holds an identity token for {server}; berth supports only user name and password credentials")]
    IdentityToken { program: String, server: String },
}

/// The message helpers print when they hold nothing for a server
/// (`credentials.NewErrCredentialsNotFound` in docker-credential-helpers).
const HELPER_NOT_FOUND: &str = "credentials not found";

/// A `docker-credential-<name>` program and the config key that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Helper {
    program: String,
    setting: &'static str,
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
        if let Some(helper) = helper_for(&doc, registry) {
            return self.helper_get(&helper, &key_for(registry));
        }
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
        let helper = helper_for(&doc, registry);
        let entry = match &helper {
            Some(h) => {
                let input = serde_json::json!({
                    "ServerURL": key_for(registry),
                    "Username": creds.username,
                    "Secret": creds.password,
                });
                self.run_helper(h, "store", input.to_string().as_bytes())
                    .and_then(|(status, out)| {
                        if status.success() {
                            Ok(())
                        } else {
                            Err(helper_failed(h, "store", status, &out))
                        }
                    })?;
                // The file only records that a login exists.
                serde_json::json!({})
            }
            None => {
                let raw = format!("{}:{}", creds.username, creds.password);
                let auth = base64::engine::general_purpose::STANDARD.encode(raw);
                serde_json::json!({ "auth": auth })
            }
        };
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        auths
            .as_object_mut()
            .expect("made an object above")
            .insert(key_for(registry), entry);
        self.write(&doc)
    }

    /// Removes the credentials for `registry`; `false` if there were none.
    pub fn erase(&self, registry: &str) -> Result<bool, CredentialsError> {
        let mut doc = self.read()?;
        let mut erased = false;
        if let Some(h) = helper_for(&doc, registry) {
            let (status, out) = self.run_helper(&h, "erase", key_for(registry).as_bytes())?;
            if status.success() {
                erased = true;
            } else if !String::from_utf8_lossy(&out).contains(HELPER_NOT_FOUND) {
                return Err(helper_failed(&h, "erase", status, &out));
            }
        }
        let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(erased);
        };
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| **k == key_for(registry) || normalize_key(k) == registry)
            .cloned()
            .collect();
        if keys.is_empty() {
            return Ok(erased);
        }
        for k in keys {
            auths.remove(&k);
        }
        self.write(&doc)?;
        Ok(true)
    }

    /// `docker-credential-<name> get`.
    fn helper_get(
        &self,
        helper: &Helper,
        server: &str,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let (status, out) = self.run_helper(helper, "get", server.as_bytes())?;
        if !status.success() {
            if String::from_utf8_lossy(&out).contains(HELPER_NOT_FOUND) {
                return Ok(None);
            }
            return Err(helper_failed(helper, "get", status, &out));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let a: Answer =
            serde_json::from_slice(&out).map_err(|source| CredentialsError::HelperAnswer {
                program: helper.program.clone(),
                source,
            })?;
        if a.username == "<token>" {
            return Err(CredentialsError::IdentityToken {
                program: helper.program.clone(),
                server: server.to_string(),
            });
        }
        if a.username.is_empty() && a.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials {
            username: a.username,
            password: a.secret,
        }))
    }

    /// Runs a helper with `input` on stdin; returns its status and stdout
    /// (helpers print their errors there too).
    fn run_helper(
        &self,
        helper: &Helper,
        action: &'static str,
        input: &[u8],
    ) -> Result<(std::process::ExitStatus, Vec<u8>), CredentialsError> {
        use std::process::{Command, Stdio};
        let spawn_err = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::NotFound {
                CredentialsError::HelperMissing {
                    program: helper.program.clone(),
                    setting: helper.setting,
                    path: self.path.clone(),
                }
            } else {
                CredentialsError::HelperSpawn {
                    program: helper.program.clone(),
                    action,
                    source,
                }
            }
        };
        let mut child = Command::new(&helper.program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A helper that exits without reading gives EPIPE: its status says more.
        let _ = stdin.write_all(input);
        drop(stdin);
        let out = child
            .wait_with_output()
            .map_err(|source| CredentialsError::HelperSpawn {
                program: helper.program.clone(),
                action,
                source,
            })?;
        let mut text = out.stdout;
        if !out.status.success() && text.iter().all(u8::is_ascii_whitespace) {
            text = out.stderr;
        }
        Ok((out.status, text))
    }
}

/// The helper `credHelpers` names for `registry`, else `credsStore`'s.
fn helper_for(doc: &Map<String, Value>, registry: &str) -> Option<Helper> {
    let key = key_for(registry);
    let specific = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.get(&key)
                .or_else(|| {
                    m.iter()
                        .find(|(k, _)| normalize_key(k) == registry)
                        .map(|(_, v)| v)
                })
                .and_then(Value::as_str)
        })
        .filter(|h| !h.is_empty())
        .map(|h| (h, "credHelpers"));
    let default = doc
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(|h| (h, "credsStore"));
    specific.or(default).map(|(name, setting)| Helper {
        program: format!("docker-credential-{name}"),
        setting,
    })
}

fn helper_failed(
    helper: &Helper,
    action: &'static str,
    status: std::process::ExitStatus,
    out: &[u8],
) -> CredentialsError {
    CredentialsError::HelperFailed {
        program: helper.program.clone(),
        action,
        status,
        message: String::from_utf8_lossy(out).trim().to_string(),
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
            r#"{"proxies":{"default":{}},"auths":{"https://old.io/v1/":{"auth":"dTpw"}}}"#,
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
        assert!(doc["proxies"]["default"].is_object());
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
    fn helper_choice_follows_docker() {
        let doc: Map<String, Value> = serde_json::from_str(
            r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud","https://index.docker.io/v1/":"hub"}}"#,
        )
        .unwrap();
        let h = |r| helper_for(&doc, r).map(|h| (h.program, h.setting));
        assert_eq!(
            h("gcr.io"),
            Some(("docker-credential-gcloud".into(), "credHelpers"))
        );
        assert_eq!(
            h("docker.io"),
            Some(("docker-credential-hub".into(), "credHelpers"))
        );
        assert_eq!(
            h("127.0.0.1:5000"),
            Some(("docker-credential-desktop".into(), "credsStore"))
        );
        let none: Map<String, Value> = serde_json::from_str(r#"{"credsStore":""}"#).unwrap();
        assert_eq!(helper_for(&none, "gcr.io"), None);
    }

    #[test]
    fn missing_file_has_no_credentials() {
        let cfg = DockerConfig::at("/nonexistent/berth/config.json".into());
        assert_eq!(cfg.get("docker.io").unwrap(), None);
    }
}
