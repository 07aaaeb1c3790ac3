//! A client for the OCI distribution API (`/v2/…`), blocking, one per
//! registry endpoint, shareable between threads.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge, as
//! the Docker client does: a request goes out anonymously (or with what an
//! earlier challenge asked for); on `401` with `Bearer realm=…,service=…`
//! a token for the request's scope (`repository:<path>:pull[,push]`) is
//! fetched from the realm, sending the user's basic credentials to the
//! realm when there are any, and cached per scope; on `Basic` the
//! credentials go to the registry itself. The request is then sent again.
//!
//! Transient failures (connection refused or reset, `429`, `5xx`) are
//! retried with exponential back-off; everything else is returned with the
//! registry's own error code and message.
//!
//! Plain HTTP is used for loopback registries (`localhost`, `127.0.0.0/8`,
//! `::1`) and for those listed as insecure in [`RegistryConfig`]; every other
//! registry is HTTPS with verified certificates. Nothing here touches the
//! store.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::debug;

use super::credentials::Credentials;
use super::reference::{DEFAULT_DOMAIN, DEFAULT_REGISTRY_HOST};

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (containerd uses 4 MiB too).
const MAX_MANIFEST: u64 = 4 << 20;
const ATTEMPTS: u32 = 5;
const BACKOFF_START: Duration = Duration::from_millis(100);

/// The default place of [`RegistryConfig`]'s file.
pub const DEFAULT_REGISTRIES_FILE: &str = "/etc/berth/registries.json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{method} {url}: {message}")]
    Transport {
        method: &'static str,
        url: String,
        message: String,
    },
    #[error("{method} {url}: {status} {message}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        /// The registry's error code and message (`MANIFEST_UNKNOWN: …`).
        message: String,
    },
    #[error("{registry}: unauthorized: {message}")]
    Unauthorized { registry: String, message: String },
    #[error("getting a token from {realm}: {message}")]
    Token { realm: String, message: String },
    #[error("{url}: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("{what} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}")]
    Config {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl RegistryError {
    /// The HTTP status, when the registry answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Registry settings beyond the reference: which registries speak plain HTTP
/// and which mirrors to try first.
///
/// Read from the JSON file `$BERTH_REGISTRIES_CONFIG` (default
/// `/etc/berth/registries.json`; a missing file is an empty config), in the
/// words of Docker's `daemon.json`:
///
/// ```json
/// { "insecure-registries": ["reg.lan:5000"],
///   "registry-mirrors": { "docker.io": ["http://127.0.0.1:5001"] } }
/// ```
///
/// `registry-mirrors` may also be a plain list, which (as in Docker) means
/// mirrors of Docker Hub. `$BERTH_INSECURE_REGISTRIES` (comma-separated
/// `host[:port]`) adds insecure registries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    pub insecure: Vec<String>,
    /// Registry domain → mirror base URLs (`http://host:port`).
    pub mirrors: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MirrorsFile {
    Hub(Vec<String>),
    ByRegistry(BTreeMap<String, Vec<String>>),
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default, rename = "insecure-registries")]
    insecure: Vec<String>,
    #[serde(default, rename = "registry-mirrors")]
    mirrors: Option<MirrorsFile>,
}

impl RegistryConfig {
    /// The file `$BERTH_REGISTRIES_CONFIG` names plus
    /// `$BERTH_INSECURE_REGISTRIES`.
    pub fn from_env() -> Result<Self, RegistryError> {
        let path = std::env::var_os("BERTH_REGISTRIES_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRIES_FILE));
        let mut cfg = Self::from_file(&path)?;
        if let Ok(list) = std::env::var("BERTH_INSECURE_REGISTRIES") {
            cfg.insecure.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        Ok(cfg)
    }

    pub fn from_file(path: &Path) -> Result<Self, RegistryError> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let file: ConfigFile =
            serde_json::from_slice(&data).map_err(|source| RegistryError::Config {
                path: path.into(),
                source,
            })?;
        let mirrors = match file.mirrors {
            None => BTreeMap::new(),
            Some(MirrorsFile::Hub(list)) => BTreeMap::from([(DEFAULT_DOMAIN.to_string(), list)]),
            Some(MirrorsFile::ByRegistry(map)) => map,
        };
        Ok(RegistryConfig {
            insecure: file.insecure,
            mirrors,
        })
    }

    /// Whether `host` (`name[:port]`) is spoken to over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        is_loopback(host)
            || self.insecure.iter().any(|i| {
                let i = i
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/');
                i == host || host.split_once(':').is_some_and(|(h, _)| h == i)
            })
    }

    /// The base URL of a registry domain's API (`https://registry-1.docker.io`).
    pub fn base_url(&self, domain: &str) -> String {
        let host = if domain == DEFAULT_DOMAIN {
            DEFAULT_REGISTRY_HOST
        } else {
            domain
        };
        let scheme = if self.is_insecure(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }
}

/// `localhost`, `127.x.y.z` and `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() > 1 {
        host
    } else {
        host.split(':').next().unwrap_or(host)
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Which operations a token must allow on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    PullPush,
}

/// A token scope: (repository path, access).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub repository: String,
    pub access: Access,
}

impl Scope {
    pub fn pull(repository: &str) -> Self {
        Scope {
            repository: repository.to_string(),
            access: Access::Pull,
        }
    }
    pub fn push(repository: &str) -> Self {
        Scope {
            repository: repository.to_string(),
            access: Access::PullPush,
        }
    }
    fn render(&self) -> String {
        let actions = match self.access {
            Access::Pull => "pull",
            Access::PullPush => "pull,push",
        };
        format!("repository:{}:{actions}", self.repository)
    }
}

/// A request body that can be sent again on retry.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

#[derive(Debug, Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by rendered scope list.
    tokens: HashMap<String, String>,
}

/// A fetched manifest or index, verified against the digest it was asked by
/// (or the `Docker-Content-Digest` the registry announced).
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// What `POST …/blobs/uploads/?mount=` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    Mounted,
    /// The registry did not mount, and opened an upload session here.
    Upload(String),
}

/// One registry endpoint.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    /// The name for messages and credentials (`docker.io`, `host:5000`).
    registry: String,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:5000`), known to the user as
    /// `registry`.
    pub fn new(base: &str, registry: &str, credentials: Option<Credentials>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(16)
            .build();
        Client {
            agent,
            base: base.trim_end_matches('/').to_string(),
            registry: registry.to_string(),
            credentials,
            auth: Mutex::new(AuthState::default()),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `GET /v2/`: checks that the registry answers and the credentials work.
    pub fn ping(&self, scope: &[Scope]) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        self.send("GET", &url, scope, &[], Body::Empty).map(drop)
    }

    /// Fetches a manifest or index by tag or digest.
    pub fn manifest(&self, repo: &str, object: &str) -> Result<FetchedManifest, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{object}", self.base);
        let accept = [
            MEDIA_OCI_INDEX,
            MEDIA_OCI_MANIFEST,
            MEDIA_DOCKER_LIST,
            MEDIA_DOCKER_MANIFEST,
        ]
        .join(", ");
        let resp = self.send(
            "GET",
            &url,
            &[Scope::pull(repo)],
            &[("Accept", &accept)],
            Body::Empty,
        )?;
        let header_type = resp
            .header("Content-Type")
            .map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
        let announced = resp.header("Docker-Content-Digest").map(String::from);
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.transport_err("GET", &url, &e.to_string()))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(RegistryError::BadResponse {
                url,
                reason: format!("manifest larger than {MAX_MANIFEST} bytes"),
            });
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let expected = if object.contains(':') {
            Some(object.to_string())
        } else {
            announced.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(expected) = expected {
            if expected != digest {
                return Err(RegistryError::DigestMismatch {
                    what: format!("manifest {repo}:{object}"),
                    expected,
                    actual: digest,
                });
            }
        }
        // The document's own mediaType wins over a generic Content-Type.
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            #[serde(rename = "schemaVersion")]
            schema_version: Option<u32>,
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadResponse {
                url: url.clone(),
                reason: format!("manifest is not JSON: {e}"),
            })?;
        let media_type = match (probe.media_type, header_type) {
            (Some(t), _) => t,
            (None, Some(t)) if t != "application/json" && t != "text/plain" => t,
            // An OCI document without mediaType: tell index from manifest.
            _ if probe.schema_version == Some(2) && probe.manifests.is_some() => {
                MEDIA_OCI_INDEX.to_string()
            }
            _ if probe.schema_version == Some(2) => MEDIA_OCI_MANIFEST.to_string(),
            _ => "application/octet-stream".to_string(),
        };
        Ok(FetchedManifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// Opens a blob for reading (the caller verifies the digest).
    pub fn blob(&self, repo: &str, digest: &str) -> Result<ureq::Response, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        self.send("GET", &url, &[Scope::pull(repo)], &[], Body::Empty)
    }

    /// Opens a blob from byte `offset` on (`Range: bytes=offset-`). The
    /// answer is `206 Partial Content` when the registry honours the range
    /// and `200` with the whole blob when it does not; the caller tells
    /// them apart.
    pub fn blob_from(
        &self,
        repo: &str,
        digest: &str,
        offset: u64,
    ) -> Result<ureq::Response, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let range = format!("bytes={offset}-");
        self.send(
            "GET",
            &url,
            &[Scope::pull(repo)],
            &[("Range", &range)],
            Body::Empty,
        )
    }

    /// `HEAD` on a blob: does the repository already have it?
    pub fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        match self.send("HEAD", &url, &[Scope::push(repo)], &[], Body::Empty) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks the registry to link a blob from another repository it holds.
    pub fn mount_blob(
        &self,
        repo: &str,
        digest: &str,
        from: &str,
    ) -> Result<MountOutcome, RegistryError> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let scopes = [Scope::push(repo), Scope::pull(from)];
        let resp = self.send("POST", &url, &scopes, &[], Body::Empty)?;
        if resp.status() == 201 {
            return Ok(MountOutcome::Mounted);
        }
        Ok(MountOutcome::Upload(self.location(&url, &resp)?))
    }

    /// Opens an upload session; returns its URL.
    pub fn start_upload(&self, repo: &str) -> Result<String, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = self.send("POST", &url, &[Scope::push(repo)], &[], Body::Empty)?;
        self.location(&url, &resp)
    }

    /// Sends one chunk of an upload (`PATCH` with `Content-Range`); returns
    /// the session's next URL.
    pub fn patch_upload(
        &self,
        repo: &str,
        location: &str,
        body: Body<'_>,
        start: u64,
        len: u64,
    ) -> Result<String, RegistryError> {
        let range = format!("{}-{}", start, start + len.max(1) - 1);
        let len_s = len.to_string();
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", range.as_str()),
            ("Content-Length", len_s.as_str()),
        ];
        let resp = self.send("PATCH", location, &[Scope::push(repo)], &headers, body)?;
        self.location(location, &resp)
    }

    /// Closes an upload session with the blob's digest, sending `body` (the
    /// whole blob for a monolithic upload, nothing after `PATCH`es).
    pub fn finish_upload(
        &self,
        repo: &str,
        location: &str,
        digest: &str,
        body: Body<'_>,
    ) -> Result<(), RegistryError> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let len = match body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => len,
        };
        let len_s = len.to_string();
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", len_s.as_str()),
        ];
        self.send("PUT", &url, &[Scope::push(repo)], &headers, body)
            .map(drop)
    }

    /// Uploads a manifest under a tag or digest; returns the digest the
    /// registry reports (or the one computed here).
    pub fn put_manifest(
        &self,
        repo: &str,
        object: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{object}", self.base);
        let resp = self.send(
            "PUT",
            &url,
            &[Scope::push(repo)],
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
        )?;
        let computed = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        Ok(resp
            .header("Docker-Content-Digest")
            .map(String::from)
            .unwrap_or(computed))
    }

    fn location(&self, url: &str, resp: &ureq::Response) -> Result<String, RegistryError> {
        let loc = resp
            .header("Location")
            .ok_or_else(|| RegistryError::BadResponse {
                url: url.to_string(),
                reason: "no Location header in upload answer".into(),
            })?;
        if loc.starts_with("http://") || loc.starts_with("https://") {
            Ok(loc.to_string())
        } else if loc.starts_with('/') {
            Ok(format!("{}{loc}", self.base))
        } else {
            Err(RegistryError::BadResponse {
                url: url.to_string(),
                reason: format!("unusable Location {loc:?}"),
            })
        }
    }

    fn transport_err(&self, method: &'static str, url: &str, message: &str) -> RegistryError {
        RegistryError::Transport {
            method,
            url: url.to_string(),
            message: message.to_string(),
        }
    }

    /// Sends a request with authentication and retries.
    pub fn send(
        &self,
        method: &'static str,
        url: &str,
        scopes: &[Scope],
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<ureq::Response, RegistryError> {
        self.ensure_token(scopes)?;
        let mut backoff = BACKOFF_START;
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(h) = self.auth_header(scopes)? {
                req = req.set("Authorization", &h);
            }
            let result = match body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File { path, offset, len } => {
                    let mut f = std::fs::File::open(path).map_err(|source| RegistryError::Io {
                        path: path.into(),
                        source,
                    })?;
                    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset)).map_err(
                        |source| RegistryError::Io {
                            path: path.into(),
                            source,
                        },
                    )?;
                    req.set("Content-Length", &len.to_string())
                        .send(f.take(len))
                }
            };
            let err = match result {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            match err {
                ureq::Error::Status(401, resp) if !authenticated => {
                    authenticated = true;
                    let header = resp.header("WWW-Authenticate").map(String::from);
                    let message = error_message(resp);
                    let Some(challenge) = header.as_deref().and_then(parse_challenge) else {
                        return Err(RegistryError::Unauthorized {
                            registry: self.registry.clone(),
                            message,
                        });
                    };
                    debug!(registry = %self.registry, ?challenge, "authentication challenge");
                    self.answer_challenge(challenge, scopes, &message)?;
                    attempt -= 1;
                    continue;
                }
                ureq::Error::Status(401, resp) => {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        message: error_message(resp),
                    })
                }
                ureq::Error::Status(status, resp)
                    if (status == 429 || status >= 500) && attempt < ATTEMPTS =>
                {
                    debug!(%url, status, attempt, "transient registry error, retrying");
                    drop(resp);
                }
                ureq::Error::Status(status, resp) => {
                    return Err(RegistryError::Status {
                        method,
                        url: url.to_string(),
                        status,
                        message: error_message(resp),
                    })
                }
                ureq::Error::Transport(t) => {
                    let transient = matches!(
                        t.kind(),
                        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io
                    );
                    if !transient || attempt >= ATTEMPTS {
                        return Err(self.transport_err(method, url, &t.to_string()));
                    }
                    debug!(%url, error = %t, attempt, "transient transport error, retrying");
                }
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Once a registry has asked for bearer tokens, a request for a scope
    /// not yet covered gets its token first instead of a `401` round trip.
    fn ensure_token(&self, scopes: &[Scope]) -> Result<(), RegistryError> {
        if scopes.is_empty() {
            return Ok(());
        }
        let challenge = {
            let state = self.auth.lock().expect("auth lock");
            match &state.challenge {
                Some(c @ Challenge::Bearer { .. })
                    if !state.tokens.contains_key(&scope_key(scopes)) =>
                {
                    Some(c.clone())
                }
                _ => None,
            }
        };
        match challenge {
            Some(c) => self.answer_challenge(c, scopes, "authentication required"),
            None => Ok(()),
        }
    }

    fn auth_header(&self, scopes: &[Scope]) -> Result<Option<String>, RegistryError> {
        let state = self.auth.lock().expect("auth lock");
        Ok(match &state.challenge {
            None => None,
            Some(Challenge::Basic) => self.credentials.as_ref().map(Credentials::basic_header),
            Some(Challenge::Bearer { .. }) => state
                .tokens
                .get(&scope_key(scopes))
                .map(|t| format!("Bearer {t}")),
        })
    }

    fn answer_challenge(
        &self,
        challenge: Challenge,
        scopes: &[Scope],
        message: &str,
    ) -> Result<(), RegistryError> {
        match &challenge {
            Challenge::Basic => {
                if self.credentials.is_none() {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        message: format!("{message} (no credentials: run `berth login`)"),
                    });
                }
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut query: Vec<(&str, String)> = Vec::new();
                if let Some(s) = service {
                    query.push(("service", s.clone()));
                }
                if scopes.is_empty() {
                    if let Some(s) = scope {
                        query.push(("scope", s.clone()));
                    }
                }
                for s in scopes {
                    query.push(("scope", s.render()));
                }
                let token = self.fetch_token(realm, &query)?;
                self.auth
                    .lock()
                    .expect("auth lock")
                    .tokens
                    .insert(scope_key(scopes), token);
            }
        }
        self.auth.lock().expect("auth lock").challenge = Some(challenge);
        Ok(())
    }

    fn fetch_token(&self, realm: &str, query: &[(&str, String)]) -> Result<String, RegistryError> {
        let err = |message: String| RegistryError::Token {
            realm: realm.to_string(),
            message,
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(err("realm is not an http(s) URL".into()));
        }
        let mut req = self.agent.get(realm);
        for (k, v) in query {
            req = req.query(k, v);
        }
        if let Some(c) = &self.credentials {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401, r)) => {
                return Err(RegistryError::Unauthorized {
                    registry: self.registry.clone(),
                    message: format!("token server refused the credentials: {}", error_message(r)),
                })
            }
            Err(ureq::Error::Status(s, r)) => {
                return Err(err(format!("{s} {}", error_message(r))));
            }
            Err(ureq::Error::Transport(t)) => return Err(err(t.to_string())),
        };
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = resp
            .into_json()
            .map_err(|e| err(format!("answer is not a token: {e}")))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| err("answer has no token".into()))
    }
}

fn scope_key(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(Scope::render)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The registry's `{"errors":[{"code","message"}]}`, else the body's text.
fn error_message(resp: ureq::Response) -> String {
    let status_text = resp.status_text().to_string();
    let mut body = String::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_string(&mut body);
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_str::<Errors>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|i| {
                let code = i.code.as_deref().unwrap_or("").to_ascii_lowercase();
                let code = code.replace('_', " ");
                match i.message.as_deref() {
                    Some(m) if !m.is_empty() && m != code => format!("{code}: {m}"),
                    _ => code,
                }
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let body = body.trim();
    if body.is_empty() || body.len() > 300 {
        status_text
    } else {
        body.to_string()
    }
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        }
        _ => None,
    }
}

/// `k="v", k2=v2` with quoted commas and `\"` escapes.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="http://x/t?a=1,b", service=s"#),
            Some(Challenge::Bearer {
                realm: "http://x/t?a=1,b".into(),
                service: Some("s".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn loopback_and_insecure() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:80",
            "[::1]:5000",
            "::1",
            "127.3.4.5",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1:5000", "example.com", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
        let cfg = RegistryConfig {
            insecure: vec!["reg.lan".into(), "other:5000".into()],
            mirrors: BTreeMap::new(),
        };
        assert!(cfg.is_insecure("reg.lan:5000"));
        assert!(cfg.is_insecure("other:5000"));
        assert!(!cfg.is_insecure("other:5001"));
        assert_eq!(cfg.base_url("docker.io"), "https://registry-1.docker.io");
        assert_eq!(cfg.base_url("localhost:5000"), "http://localhost:5000");
    }

    #[test]
    fn config_file_forms() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        std::fs::write(
            &p,
            r#"{"insecure-registries":["a:1"],"registry-mirrors":["http://m:1"]}"#,
        )
        .unwrap();
        let c = RegistryConfig::from_file(&p).unwrap();
        assert_eq!(c.insecure, ["a:1"]);
        assert_eq!(c.mirrors["docker.io"], ["http://m:1"]);
        std::fs::write(&p, r#"{"registry-mirrors":{"ghcr.io":["http://m:2"]}}"#).unwrap();
        let c = RegistryConfig::from_file(&p).unwrap();
        assert_eq!(c.mirrors["ghcr.io"], ["http://m:2"]);
        assert_eq!(
            RegistryConfig::from_file(&dir.path().join("none")).unwrap(),
            RegistryConfig::default()
        );
    }
}
