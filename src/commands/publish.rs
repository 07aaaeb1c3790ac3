//! `publish`: the compose application as an OCI artifact.
//!
//! As `docker compose publish` does: the checks first (a stack whose
//! services only have a `build:` is refused; bind mounts, `env_file`
//! declarations, literal values of sensitive-looking environment keys and
//! literal inline config contents each ask for a confirmation, which `-y`
//! gives and a declined or absent answer turns into exit status 130), then
//! the compose files become the layers of an OCI image manifest (media type
//! `application/vnd.docker.compose.file+yaml`), with the local `extends`
//! parents and, under `--with-env`, the env files, whose paths in the
//! published YAML are replaced by the hash names of their layers. The
//! manifest is an OCI 1.1 artifact (`artifactType`
//! `application/vnd.docker.compose.project`, empty config), falling back to
//! the OCI 1.0 form (a config of media type
//! `application/vnd.docker.compose.config.empty.v1+json`) when the registry
//! refuses it with a client error other than an authentication one.
//! `--dry-run` does everything but the network.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::json;
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use crate::commands::project;
use crate::image::credentials::DockerConfig;
use crate::image::push::{self as image_push, PushOptions};
use crate::image::registry::{Body, Client, RegistryConfig, RegistryError, MEDIA_OCI_MANIFEST};
use crate::image::{Reference, Store};
use crate::model::load::{self, LoadOptions};
use crate::model::project::{Project, VOLUME_BIND};
use crate::settings::ProjectArgs;

/// The artifact type of a compose application (OCI 1.1).
pub const ARTIFACT_TYPE: &str = "application/vnd.docker.compose.project";
/// A layer holding a compose file.
pub const MEDIA_COMPOSE_FILE: &str = "application/vnd.docker.compose.file+yaml";
/// A layer holding an env file.
pub const MEDIA_ENV_FILE: &str = "application/vnd.docker.compose.envfile";
/// The config of an OCI 1.0 manifest (content `{}`).
pub const MEDIA_EMPTY_CONFIG_V1_0: &str = "application/vnd.docker.compose.config.empty.v1+json";
/// The OCI 1.1 empty descriptor's media type (content `{}`).
pub const MEDIA_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The compose version written into the annotations (the one `version` reports).
pub const COMPOSE_VERSION: &str = crate::commands::version::VERSION;
/// Exit status of a publication the user declined.
pub const EXIT_CANCELED: u8 = 130;

/// `--oci-version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OciVersion {
    V1_0,
    V1_1,
}

impl std::str::FromStr for OciVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1.0" => Ok(OciVersion::V1_0),
            "1.1" => Ok(OciVersion::V1_1),
            other => Err(format!("unsupported OCI version: {other}")),
        }
    }
}

/// What `publish` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    pub repository: String,
    /// `--app`: also copy the service images into the repository, tied to
    /// the compose artifact by an index (implies `--resolve-image-digests`).
    pub app: bool,
    /// `None`: OCI 1.1, falling back to 1.0.
    pub oci_version: Option<OciVersion>,
    pub resolve_image_digests: bool,
    pub with_env: bool,
    pub yes: bool,
    pub dry_run: bool,
    pub insecure_registry: bool,
}

/// How a yes/no question gets its answer.
pub trait Prompt {
    fn confirm(&mut self, message: &str) -> Result<bool>;
}

/// Asks on standard output and reads standard input; `-y` answers yes
/// without asking. Anything but `y`/`yes` (an empty line, end of input)
/// is the default, no.
pub struct StdPrompt {
    pub assume_yes: bool,
}

impl Prompt for StdPrompt {
    fn confirm(&mut self, message: &str) -> Result<bool> {
        if self.assume_yes {
            return Ok(true);
        }
        let mut out = std::io::stdout().lock();
        write!(out, "{message} [y/N]: ")?;
        out.flush()?;
        drop(out);
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the answer from standard input")?;
        println!();
        Ok(is_yes(&line))
    }
}

fn is_yes(answer: &str) -> bool {
    matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "1"
    )
}

/// One layer of the artifact: its descriptor's fields and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub media_type: String,
    pub data: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

impl Layer {
    fn compose_file(name: &str, data: Vec<u8>) -> Layer {
        Layer {
            media_type: MEDIA_COMPOSE_FILE.into(),
            data,
            annotations: BTreeMap::from([
                ("com.docker.compose.file".into(), name.into()),
                ("com.docker.compose.version".into(), COMPOSE_VERSION.into()),
            ]),
        }
    }

    fn env_file(name: &str, data: Vec<u8>) -> Layer {
        Layer {
            media_type: MEDIA_ENV_FILE.into(),
            data,
            annotations: BTreeMap::from([
                ("com.docker.compose.envfile".into(), name.into()),
                ("com.docker.compose.version".into(), COMPOSE_VERSION.into()),
            ]),
        }
    }

    pub fn digest(&self) -> String {
        sha256_digest(&self.data)
    }

    /// The descriptor as compose writes it: with the content inline (`data`).
    pub fn descriptor(&self) -> serde_json::Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.data.len(),
            "annotations": self.annotations,
            "data": base64::engine::general_purpose::STANDARD.encode(&self.data),
        })
    }
}

fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `<sha256 of the path>.<ext>`: the name a file gets inside the artifact.
fn hashed_name(path: &str, ext: &str) -> String {
    format!("{}.{ext}", hex::encode(Sha256::digest(path.as_bytes())))
}

/// The verb: returns the exit status (0, or 130 when declined).
pub fn publish(args: &ProjectArgs, opts: &PublishOptions) -> Result<u8> {
    let mut opts = opts.clone();
    if opts.app {
        opts.resolve_image_digests = true;
    }
    let repository = Reference::parse(&opts.repository)
        .map_err(|e| anyhow!("invalid reference {:?}: {e}", opts.repository))?;
    let project = load_all_profiles(args)?;
    let mut prompt = StdPrompt {
        assume_yes: opts.yes,
    };
    if !pre_checks(&project, &opts, &mut prompt)? {
        return Ok(EXIT_CANCELED);
    }
    let mut registries = RegistryConfig::from_env()?;
    if opts.insecure_registry {
        // `--insecure-registry`: plain HTTP to the artifact's registry.
        registries.insecure.push(repository.domain.clone());
    }
    let auth = DockerConfig::from_env()?;
    let mut layers = create_layers(&project, opts.with_env)?;
    if opts.resolve_image_digests {
        let yaml = image_digests_override(&project, &registries, &auth)?;
        layers.push(Layer::compose_file("image-digests.yaml", yaml));
    }
    eprintln!("{} publishing", opts.repository);
    if !opts.dry_run {
        let client = client_for(&repository, &registries, &auth)?;
        let manifest = push_manifest(&client, &repository, &layers, opts.oci_version)?;
        if opts.app {
            push_application(&client, &project, &repository, &manifest)?;
        }
    }
    eprintln!("{} published", opts.repository);
    Ok(0)
}

fn client_for(
    reference: &Reference,
    registries: &RegistryConfig,
    auth: &DockerConfig,
) -> Result<Client> {
    Ok(Client::new(
        &registries.base_url(&reference.domain),
        &reference.domain,
        auth.get(&reference.domain)?,
    ))
}

/// The project with every profile on, as compose publishes it.
fn load_all_profiles(args: &ProjectArgs) -> Result<Project> {
    let settings = project::settings(args)?;
    let details = project::details(&settings)?;
    let opts = LoadOptions {
        profiles: vec!["*".to_owned()],
        ..LoadOptions::default()
    };
    Ok(load::load(&details, &opts)?)
}

/// The checks and prompts, in compose's order. `Ok(false)`: declined.
pub fn pre_checks(
    project: &Project,
    opts: &PublishOptions,
    prompt: &mut dyn Prompt,
) -> Result<bool> {
    check_only_build(project)?;
    let binds = bind_mounts(project);
    if !binds.is_empty() && !prompt.confirm(&bind_mount_message(&binds))? {
        return Ok(false);
    }
    let findings = env_findings(&project.compose_files)?;
    if !opts.with_env
        && !findings.services.is_empty()
        && !prompt.confirm(&env_message(&findings.services))?
    {
        return Ok(false);
    }
    if !findings.literal_configs.is_empty()
        && !prompt.confirm(&config_content_message(&findings.literal_configs))?
    {
        return Ok(false);
    }
    Ok(true)
}

/// Refuses a stack where some service has a `build:` and no `image:`.
pub fn check_only_build(project: &Project) -> Result<()> {
    let build_only: Vec<&String> = project
        .services
        .iter()
        .filter(|(_, s)| s.image.is_empty() && s.build.is_some())
        .map(|(n, _)| n)
        .collect();
    if build_only.is_empty() {
        return Ok(());
    }
    let mut msg = String::from(
        "your Compose stack cannot be published as it only contains a build section for service(s):\n",
    );
    for name in build_only {
        msg.push_str(&format!("- {name:?}\n"));
    }
    bail!(msg.trim_end().to_string())
}

/// Service → its bind mounts, as `source:target:mode`.
pub fn bind_mounts(project: &Project) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (name, service) in &project.services {
        let binds: Vec<String> = service
            .volumes
            .iter()
            .filter(|v| v.r#type == VOLUME_BIND)
            .map(|v| {
                let mut opts = vec![if v.read_only { "ro" } else { "rw" }.to_string()];
                if let Some(b) = &v.bind {
                    if !b.selinux.is_empty() {
                        opts.push(b.selinux.clone());
                    }
                    if !b.propagation.is_empty() {
                        opts.push(b.propagation.clone());
                    }
                }
                format!("{}:{}:{}", v.source, v.target, opts.join(","))
            })
            .collect();
        if !binds.is_empty() {
            out.insert(name.clone(), binds);
        }
    }
    out
}

pub fn bind_mount_message(binds: &BTreeMap<String, Vec<String>>) -> String {
    let mut b = String::from(
        "you are about to publish bind mounts declaration within your OCI artifact.\n\
         only the bind mount declarations will be added to the OCI artifact (not content)\n\
         please double check that you are not mounting potential user's sensitive directories or data\n",
    );
    for (service, mounts) in binds {
        b.push_str(service);
        b.push('\n');
        for m in mounts {
            b.push_str(m);
            b.push('\n');
        }
    }
    b.push_str("Are you ok to publish these bind mount declarations?");
    b
}

/// What one service declares that the env prompt lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEnvFindings {
    pub env_file: bool,
    pub suspicious_keys: BTreeSet<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvFindings {
    /// Only services with a finding.
    pub services: BTreeMap<String, ServiceEnvFindings>,
    /// Top-level configs whose inline `content:` is a literal.
    pub literal_configs: BTreeSet<String>,
}

/// The key words (case-insensitive) that make an environment key look
/// sensitive: the keyword detector compose uses (DefangLabs/secret-detector).
const SUSPICIOUS_KEYS: &[&str] = &[
    "api?key",
    "access?key",
    "auth?key",
    "service?key",
    "account?key",
    "db?key",
    "database?key",
    "priv?key",
    "private?key",
    "client?key",
    "db?pass",
    "database?pass",
    "key?pass",
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "contraseña",
    "contrasena",
];

/// Whether `key` names something secret: it is made of word characters
/// (and `.[]~-`) and contains one of the key words, where `?` in a key
/// word stands for an optional `-` or `_`.
pub fn key_looks_sensitive(key: &str) -> bool {
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || ".[]~-".contains(c))
    {
        return false;
    }
    let lower: Vec<char> = key.to_lowercase().chars().collect();
    SUSPICIOUS_KEYS.iter().any(|word| {
        let word: Vec<char> = word.chars().collect();
        (0..lower.len()).any(|start| matches_at(&lower[start..], &word))
    })
}

/// Whether `word` (with `?` = optional `-`/`_`) is a prefix of `text`.
fn matches_at(text: &[char], word: &[char]) -> bool {
    match word.split_first() {
        None => true,
        Some(('?', rest)) => {
            (matches!(text.first(), Some('-' | '_')) && matches_at(&text[1..], rest))
                || matches_at(text, rest)
        }
        Some((c, rest)) => text.first() == Some(c) && matches_at(&text[1..], rest),
    }
}

/// Whether a value is a literal that would leak: at least three
/// characters, not starting with `$`, `{` or a blank, not ending with `}`
/// or a blank (so `${VAR}`, `$VAR` and templates are not). The escape `$$`
/// is a literal `$`.
pub fn value_looks_literal(value: &str) -> bool {
    let v = value.replace("$$", "X");
    let v = v.trim();
    let v = v
        .strip_prefix(['"', '\''])
        .and_then(|s| s.strip_suffix(['"', '\'']))
        .unwrap_or(v);
    let chars: Vec<char> = v.chars().collect();
    if chars.len() < 3 {
        return false;
    }
    let first = chars[0];
    let last = chars[chars.len() - 1];
    !(first == '$' || first == '{' || first.is_whitespace() || last == '}' || last.is_whitespace())
}

/// Walks the compose files as written (no interpolation, no extends
/// resolution; local `extends` parents are walked too) for `env_file`
/// declarations, literal values of sensitive-looking environment keys and
/// literal inline config contents.
pub fn env_findings(files: &[PathBuf]) -> Result<EnvFindings> {
    let mut findings = EnvFindings::default();
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<PathBuf> = files.iter().cloned().collect();
    while let Some(file) = queue.pop_front() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let doc = read_yaml(&file)?;
        if let Some(services) = doc.get("services").and_then(Value::as_mapping) {
            for (name, service) in services {
                let Some(name) = name.as_str() else { continue };
                let has_env_file = match service.get("env_file") {
                    Some(Value::String(s)) => !s.is_empty(),
                    Some(Value::Sequence(s)) => !s.is_empty(),
                    Some(Value::Mapping(m)) => !m.is_empty(),
                    _ => false,
                };
                let keys = suspicious_env_keys(service.get("environment"));
                if has_env_file || !keys.is_empty() {
                    let f = findings.services.entry(name.to_string()).or_default();
                    f.env_file |= has_env_file;
                    f.suspicious_keys.extend(keys);
                }
                if let Some(parent) = local_extends_parent(&file, service) {
                    queue.push_back(parent);
                }
            }
        }
        if let Some(configs) = doc.get("configs").and_then(Value::as_mapping) {
            for (name, config) in configs {
                let (Some(name), Some(content)) =
                    (name.as_str(), config.get("content").and_then(Value::as_str))
                else {
                    continue;
                };
                if value_looks_literal(content) {
                    findings.literal_configs.insert(name.to_string());
                }
            }
        }
    }
    Ok(findings)
}

fn read_yaml(file: &Path) -> Result<Value> {
    let text = fs_err::read_to_string(file)?;
    let doc: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("failed to load compose file {}", file.display()))?;
    Ok(doc)
}

/// Scalar environment value as text (numbers and booleans as written).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn suspicious_env_keys(env: Option<&Value>) -> BTreeSet<String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    match env {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                if let (Some(k), Some(v)) = (scalar_text(k), scalar_text(v)) {
                    pairs.push((k, v));
                }
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                if let Some((k, v)) = item.as_str().and_then(|s| s.split_once('=')) {
                    pairs.push((k.to_string(), v.to_string()));
                }
            }
        }
        _ => {}
    }
    pairs
        .into_iter()
        .filter(|(k, v)| key_looks_sensitive(k) && value_looks_literal(v))
        .map(|(k, _)| k)
        .collect()
}

/// The file an `extends:` of `service` (declared in `file`) names, when it
/// is a file that exists here (else it is remote, or none).
fn local_extends_parent(file: &Path, service: &Value) -> Option<PathBuf> {
    let parent = service.get("extends")?.get("file")?.as_str()?;
    if parent.is_empty() {
        return None;
    }
    let path = resolve_relative(file, parent);
    path.exists().then_some(path)
}

fn resolve_relative(file: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    crate::settings::clean(&dir.join(p))
}

pub fn env_message(services: &BTreeMap<String, ServiceEnvFindings>) -> String {
    let mut b = String::from(
        "you are about to publish env-related declarations within your OCI artifact.\n\
         env_file paths and literal values for sensitive-looking keys are embedded as-is in the published YAML;\n\
         interpolated values like \"${VAR}\" are kept symbolic and have already been excluded.\n",
    );
    for (name, f) in services {
        if f.env_file {
            b.push_str(&format!("  service {name:?}: env_file declared\n"));
        }
        if !f.suspicious_keys.is_empty() {
            let keys: Vec<String> = f.suspicious_keys.iter().map(|k| format!("{k:?}")).collect();
            b.push_str(&format!(
                "  service {name:?}: literal value for {}\n",
                keys.join(", ")
            ));
        }
    }
    b.push_str("Use --with-env to silence this prompt and always publish env declarations.\n");
    b.push_str("Are you ok to publish these env declarations?");
    b
}

pub fn config_content_message(configs: &BTreeSet<String>) -> String {
    let mut b = String::from(
        "you are about to publish literal inline config content within your OCI artifact.\n",
    );
    for name in configs {
        b.push_str(&format!("  config {name:?}\n"));
    }
    b.push_str("Are you ok to publish these config contents?");
    b
}

/// The layers: each compose file (its `env_file` paths and local `extends`
/// files replaced by their hash names), then the local `extends` parents
/// (annotated `com.docker.compose.extends`), then with `with_env` the env
/// files.
pub fn create_layers(project: &Project, with_env: bool) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    let mut ext_files: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut env_files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for file in &project.compose_files {
        let data = process_file(project, file, &mut ext_files, &mut env_files)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        layers.push(Layer::compose_file(&name, data));
    }
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    let mut pending: Vec<(PathBuf, String)> = ext_files.into_iter().collect();
    while !pending.is_empty() {
        let mut more = BTreeMap::new();
        for (xf, hash) in pending {
            if !done.insert(xf.clone()) {
                continue;
            }
            let data = process_file(project, &xf, &mut more, &mut env_files)?;
            let mut layer = Layer::compose_file(&hash, data);
            layer
                .annotations
                .insert("com.docker.compose.extends".into(), "true".into());
            layers.push(layer);
        }
        pending = more
            .into_iter()
            .filter(|(f, _)| !done.contains(f))
            .collect();
    }
    if with_env {
        for (path, hash) in &env_files {
            // As compose: an env file that cannot be read is left out.
            if let Ok(data) = std::fs::read(path) {
                layers.push(Layer::env_file(hash, data));
            }
        }
    }
    Ok(layers)
}

/// A compose file's bytes as published. Untouched when nothing in it needs
/// renaming; else re-serialized with each `env_file` path and local
/// `extends.file` replaced by the hash name of its layer.
fn process_file(
    project: &Project,
    file: &Path,
    ext_files: &mut BTreeMap<PathBuf, String>,
    env_files: &mut BTreeMap<PathBuf, String>,
) -> Result<Vec<u8>> {
    let raw = fs_err::read(file)?;
    let mut doc: Value = serde_yaml::from_slice(&raw)
        .with_context(|| format!("failed to load compose file {}", file.display()))?;
    let mut changed = false;
    let base = &project.working_dir;
    if let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) {
        for (_, service) in services.iter_mut() {
            let Some(service) = service.as_mapping_mut() else {
                continue;
            };
            if let Some(env_file) = service.get_mut("env_file") {
                let mut rename = |path: &mut String| {
                    let abs = resolve_against(base, path);
                    let hash = hashed_name(&abs.to_string_lossy(), "env");
                    env_files.insert(abs, hash.clone());
                    *path = hash;
                    changed = true;
                };
                match env_file {
                    Value::String(s) => rename(s),
                    Value::Sequence(items) => {
                        for item in items {
                            match item {
                                Value::String(s) => rename(s),
                                Value::Mapping(m) => {
                                    if let Some(Value::String(s)) = m.get_mut("path") {
                                        rename(s)
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Some(Value::Mapping(ext)) = service.get_mut("extends") {
                if let Some(Value::String(xf)) = ext.get_mut("file") {
                    let abs = resolve_relative(file, xf);
                    if abs.exists() {
                        let hash = hashed_name(&abs.to_string_lossy(), "yaml");
                        ext_files.insert(abs, hash.clone());
                        *xf = hash;
                        changed = true;
                    }
                }
            }
        }
    }
    if !changed {
        return Ok(raw);
    }
    Ok(serde_yaml::to_string(&doc)?.into_bytes())
}

fn resolve_against(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        crate::settings::clean(&base.join(p))
    }
}

/// `services: {name: {image: ref@digest}}` for every service with an image,
/// the digest asked from the image's registry.
fn image_digests_override(
    project: &Project,
    registries: &RegistryConfig,
    auth: &DockerConfig,
) -> Result<Vec<u8>> {
    let mut services = serde_yaml::Mapping::new();
    for (name, service) in &project.services {
        if service.image.is_empty() {
            continue;
        }
        let r = Reference::parse(&service.image)
            .map_err(|e| anyhow!("service {name:?}: invalid image {:?}: {e}", service.image))?;
        let pinned = match &r.digest {
            Some(_) => r.to_string(),
            None => {
                let client = client_for(&r, registries, auth)?;
                let m = client
                    .manifest(&r.path, r.object())
                    .with_context(|| format!("resolving the digest of {}", service.image))?;
                format!("{r}@{}", m.digest)
            }
        };
        let mut s = serde_yaml::Mapping::new();
        s.insert("image".into(), pinned.into());
        services.insert(name.clone().into(), Value::Mapping(s));
    }
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("services".into(), Value::Mapping(services));
    Ok(serde_yaml::to_string(&doc)?.into_bytes())
}

/// The OCI 1.1 empty descriptor (`{}`, inline).
fn empty_json_descriptor() -> serde_json::Value {
    json!({
        "mediaType": MEDIA_OCI_EMPTY,
        "digest": sha256_digest(b"{}"),
        "size": 2,
        "data": "e30=",
    })
}

/// The manifest bytes for `layers` in the form of `version`.
pub fn manifest_bytes(layers: &[Layer], version: OciVersion, created: &str) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers.iter().map(Layer::descriptor).collect();
    let mut m = serde_json::Map::new();
    m.insert("schemaVersion".into(), json!(2));
    m.insert("mediaType".into(), json!(MEDIA_OCI_MANIFEST));
    match version {
        OciVersion::V1_1 => {
            m.insert("artifactType".into(), json!(ARTIFACT_TYPE));
            m.insert("config".into(), empty_json_descriptor());
        }
        OciVersion::V1_0 => {
            m.insert(
                "config".into(),
                json!({
                    "mediaType": MEDIA_EMPTY_CONFIG_V1_0,
                    "digest": sha256_digest(b"{}"),
                    "size": 2,
                    "data": "e30=",
                }),
            );
        }
    }
    m.insert("layers".into(), json!(layers));
    m.insert(
        "annotations".into(),
        json!({ "org.opencontainers.image.created": created }),
    );
    serde_json::to_vec(&serde_json::Value::Object(m)).expect("a JSON value serializes")
}

/// The pushed manifest.
struct PushedManifest {
    digest: String,
    size: usize,
    artifact_type: Option<&'static str>,
}

fn push_blob(client: &Client, repo: &str, digest: &str, data: &[u8]) -> Result<()> {
    if client.blob_exists(repo, digest)? {
        return Ok(());
    }
    let location = client.start_upload(repo)?;
    client.finish_upload(repo, &location, digest, Body::Bytes(data))?;
    Ok(())
}

fn push_manifest(
    client: &Client,
    repository: &Reference,
    layers: &[Layer],
    version: Option<OciVersion>,
) -> Result<PushedManifest> {
    let repo = repository.path.as_str();
    // A digest in the reference cannot name a manifest not yet written:
    // the artifact goes under the tag (`latest` by default).
    let object = repository
        .tag
        .clone()
        .unwrap_or_else(|| "latest".to_string());
    for l in layers {
        push_blob(client, repo, &l.digest(), &l.data)
            .with_context(|| format!("pushing layer {}", l.digest()))?;
    }
    let created = chrono_now_rfc3339();
    let attempt = |v: OciVersion| -> Result<PushedManifest, anyhow::Error> {
        push_blob(client, repo, &sha256_digest(b"{}"), b"{}")?;
        let bytes = manifest_bytes(layers, v, &created);
        let digest = client.put_manifest(repo, &object, MEDIA_OCI_MANIFEST, &bytes)?;
        Ok(PushedManifest {
            digest,
            size: bytes.len(),
            artifact_type: (v == OciVersion::V1_1).then_some(ARTIFACT_TYPE),
        })
    };
    match version {
        Some(v) => attempt(v),
        None => match attempt(OciVersion::V1_1) {
            Err(e) if is_non_auth_client_error(&e) => attempt(OciVersion::V1_0),
            other => other,
        },
    }
}

fn is_non_auth_client_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<RegistryError>()
            .and_then(RegistryError::status)
            .is_some_and(|s| (400..500).contains(&s) && ![401, 403, 407].contains(&s))
    })
}

/// `--app`: each service image, from the local image store, pushed into the
/// artifact's repository by digest, and an index listing them whose subject
/// is the compose manifest.
fn push_application(
    client: &Client,
    project: &Project,
    repository: &Reference,
    manifest: &PushedManifest,
) -> Result<()> {
    let store = Store::open(&crate::commands::image::berth_root())?;
    let mut manifests = Vec::new();
    for (name, service) in &project.services {
        let r = Reference::parse(&service.image)
            .map_err(|e| anyhow!("service {name:?}: invalid image {:?}: {e}", service.image))?;
        let desc = store.resolve(&r).with_context(|| {
            format!(
                "service {name:?}: image {} is not in the local image store (pull it first)",
                service.image
            )
        })?;
        let target = Reference {
            domain: repository.domain.clone(),
            path: repository.path.clone(),
            tag: None,
            digest: Some(desc.digest.clone()),
        };
        image_push::push_to(
            &store,
            client,
            &target,
            &desc,
            &PushOptions::default(),
            &|_| {},
        )?;
        manifests.push(json!({
            "mediaType": desc.media_type,
            "digest": desc.digest,
            "size": desc.size,
        }));
    }
    let mut subject = json!({
        "mediaType": MEDIA_OCI_MANIFEST,
        "digest": manifest.digest,
        "size": manifest.size,
        "annotations": { "com.docker.compose.version": COMPOSE_VERSION },
    });
    if let Some(t) = manifest.artifact_type {
        subject["artifactType"] = json!(t);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": manifests,
        "subject": subject,
        "annotations": { "com.docker.compose.version": COMPOSE_VERSION },
    });
    let bytes = serde_json::to_vec(&index)?;
    let digest = sha256_digest(&bytes);
    client.put_manifest(&repository.path, &digest, MEDIA_OCI_INDEX, &bytes)?;
    Ok(())
}

/// Now, RFC 3339 in UTC (`2026-12-01T18:09:02Z`).
fn chrono_now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = crate::monitor::log::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_keys() {
        for k in [
            "MYSQL_ROOT_PASSWORD",
            "DB_PASSWORD",
            "API_KEY",
            "apikey",
            "github_token",
            "db-pass",
            "client_secret",
            "PRIVATE_KEY",
        ] {
            assert!(key_looks_sensitive(k), "{k}");
        }
        for k in [
            "TEST",
            "FOO",
            "QUIX",
            "KEYBOARD",
            "HOSTNAME",
            "has space password",
        ] {
            assert!(!key_looks_sensitive(k), "{k}");
        }
    }

    #[test]
    fn literal_values() {
        assert!(value_looks_literal("bar"));
        assert!(value_looks_literal("hunter2"));
        assert!(value_looks_literal("$$ecret"));
        assert!(!value_looks_literal("${SOMEVAR}"));
        assert!(!value_looks_literal("$VAR"));
        assert!(!value_looks_literal("ab"));
        assert!(!value_looks_literal("prefix-${X}"));
        assert!(!value_looks_literal(""));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn env_findings_aggregate_across_services_and_extends() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "publish.env", "FOO=bar\n");
        write(
            dir.path(),
            "common.yaml",
            "services:\n  base:\n    image: x\n    environment:\n      SECRET_TOKEN: abcdef\n",
        );
        let main = write(
            dir.path(),
            "compose.yaml",
            "services:\n  serviceA:\n    image: a\n    environment:\n      - \"DB_PASSWORD=bar\"\n      - \"TEST=${SOMEVAR}\"\n  serviceB:\n    image: b\n    env_file:\n      - publish.env\n    environment:\n      - \"API_KEY=baz\"\n  serviceC:\n    image: c\n    environment:\n      PASSWORD: ${P}\n  serviceD:\n    extends:\n      file: common.yaml\n      service: base\nconfigs:\n  lit:\n    content: hello world\n  tpl:\n    content: ${CONTENT}\n",
        );
        let f = env_findings(&[main]).unwrap();
        assert_eq!(
            f.services.keys().collect::<Vec<_>>(),
            ["base", "serviceA", "serviceB"]
        );
        assert!(f.services["serviceB"].env_file);
        assert!(!f.services["serviceA"].env_file);
        assert_eq!(
            f.services["serviceA"].suspicious_keys,
            BTreeSet::from(["DB_PASSWORD".to_string()])
        );
        assert_eq!(
            f.services["base"].suspicious_keys,
            BTreeSet::from(["SECRET_TOKEN".to_string()])
        );
        assert_eq!(f.literal_configs, BTreeSet::from(["lit".to_string()]));
        let msg = env_message(&f.services);
        assert!(msg.contains(
            "you are about to publish env-related declarations within your OCI artifact."
        ));
        assert!(msg.contains("  service \"serviceB\": env_file declared\n"));
        assert!(msg.contains("  service \"serviceA\": literal value for \"DB_PASSWORD\"\n"));
        assert!(msg.contains("  service \"serviceB\": literal value for \"API_KEY\"\n"));
        assert!(msg.ends_with(
            "Use --with-env to silence this prompt and always publish env declarations.\nAre you ok to publish these env declarations?"
        ));
    }

    #[test]
    fn manifest_shapes() {
        let layer = Layer::compose_file("compose.yaml", b"services: {}\n".to_vec());
        let v11: serde_json::Value = serde_json::from_slice(&manifest_bytes(
            std::slice::from_ref(&layer),
            OciVersion::V1_1,
            "T",
        ))
        .unwrap();
        assert_eq!(v11["schemaVersion"], 2);
        assert_eq!(v11["mediaType"], MEDIA_OCI_MANIFEST);
        assert_eq!(v11["artifactType"], ARTIFACT_TYPE);
        assert_eq!(v11["config"]["mediaType"], MEDIA_OCI_EMPTY);
        assert_eq!(
            v11["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(v11["annotations"]["org.opencontainers.image.created"], "T");
        let l = &v11["layers"][0];
        assert_eq!(l["mediaType"], MEDIA_COMPOSE_FILE);
        assert_eq!(l["size"], 13);
        assert_eq!(l["digest"], sha256_digest(b"services: {}\n"));
        assert_eq!(l["annotations"]["com.docker.compose.file"], "compose.yaml");
        assert_eq!(
            l["annotations"]["com.docker.compose.version"],
            COMPOSE_VERSION
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(l["data"].as_str().unwrap())
                .unwrap(),
            b"services: {}\n"
        );
        let v10: serde_json::Value =
            serde_json::from_slice(&manifest_bytes(&[layer], OciVersion::V1_0, "T")).unwrap();
        assert!(v10.get("artifactType").is_none());
        assert_eq!(v10["config"]["mediaType"], MEDIA_EMPTY_CONFIG_V1_0);
    }

    #[test]
    fn rfc3339_is_well_formed() {
        let t = chrono_now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }

    #[test]
    fn yes_answers() {
        assert!(is_yes("y\n") && is_yes("YES") && is_yes(" yes "));
        assert!(!is_yes("n\n") && !is_yes("") && !is_yes("maybe"));
    }
}
