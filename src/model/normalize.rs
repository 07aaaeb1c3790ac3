//! From the merged, validated tree to the typed [`Project`], with every
//! default Compose applies (compose-go's `loader/normalize.go`,
//! `transform/defaults.go`, `loader/environment.go` and the project
//! post-processing of `loader.ModelToProject`).
//!
//! Order of work, as compose-go's: short syntax → long (`canonical`), decode
//! into the types, defaults (implicit `default` network, resource names,
//! build context and Dockerfile, port protocol/mode, secret targets, implied
//! `depends_on` from `links`, `service:` namespaces and `volumes_from`,
//! environment resolution), profiles, consistency checks, service selection,
//! and last `env_file`/`label_file` contents. This module reads env and label
//! files but touches nothing else outside the tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::canonical::canonicalize;
use super::consistency::{check_consistency, validate_tree, ConsistencyError};
use super::dotenv::{self, DotenvError};
use super::node::{KeyPath, Node, Span, Value};
use super::profiles::{self, ProfileError};
use super::project::{
    Config, Mapping, Network, Project, Secret, Service, ServiceDependency, Volume,
    CONDITION_STARTED, VOLUME_VOLUME,
};

/// What [`normalize`] needs besides the tree.
#[derive(Clone, Debug, Default)]
pub struct NormalizeOptions {
    /// The project name, already chosen (see [`resolve_project_name`]).
    pub project_name: String,
    /// The project directory.
    pub working_dir: PathBuf,
    /// The compose files, in `-f` order (recorded on the project).
    pub compose_files: Vec<PathBuf>,
    /// Variables for resolving bare `environment`/`build.args` keys and
    /// `environment:`-sourced secrets and configs: the process environment
    /// over the `.env` file, as interpolation saw them.
    pub environment: Mapping,
    /// Active profiles (`--profile`, `COMPOSE_PROFILES`); `*` enables all.
    pub profiles: Vec<String>,
    /// Services named on the command line: their profiles are enabled and the
    /// project is restricted to them and their dependencies.
    pub selected_services: Vec<String>,
    /// Skip the reference checks (`config --no-consistency`).
    pub skip_consistency: bool,
    /// Leave `env_file` entries unread and in place (compose-go's
    /// `WithoutEnvironmentResolution`, which `docker compose config --hash`
    /// uses: the hash covers the `env_file` list, not the files' contents).
    pub skip_env_file_resolution: bool,
    /// Keep top-level networks, volumes, secrets, configs and models that no
    /// enabled service uses (`--all`); Docker Compose drops them otherwise.
    pub keep_unused_resources: bool,
    /// Keep `env_file`/`label_file` entries after merging their contents
    /// (Docker Compose drops them; keep for `config --no-normalize`-like output).
    pub keep_env_files: bool,
}

/// A failure turning the tree into a project.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("{span}: {path}: {message}")]
    Invalid {
        path: String,
        span: Span,
        message: String,
    },
    #[error("{span}: {path}: {source}")]
    Decode {
        path: String,
        span: Span,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number")]
    ProjectName { name: String },
    #[error("project name must not be empty")]
    EmptyProjectName,
    #[error("empty compose file")]
    Empty,
    #[error("service {service:?}: env file {} not found", path.display())]
    EnvFileNotFound { service: String, path: PathBuf },
    #[error("service {service:?}: label file {} not found", path.display())]
    LabelFileNotFound { service: String, path: PathBuf },
    #[error("service {service:?}: {source}")]
    EnvFile {
        service: String,
        #[source]
        source: DotenvError,
    },
    /// A consistency error, at the declaration of the service or resource
    /// it is about when that is known.
    #[error("{}{source}", span.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
    Consistency {
        span: Option<Span>,
        #[source]
        source: ConsistencyError,
    },
    #[error(transparent)]
    Profiles(#[from] ProfileError),
}

impl From<ConsistencyError> for NormalizeError {
    fn from(source: ConsistencyError) -> Self {
        NormalizeError::Consistency { span: None, source }
    }
}

impl NormalizeError {
    /// `source` located at the declaration it names in `project`.
    pub fn locate(source: ConsistencyError, project: &Project) -> Self {
        let span = source
            .subject()
            .and_then(|key| project.origins.get(&key).cloned());
        NormalizeError::Consistency { span, source }
    }
}

/// Docker Compose's normalization of a project name: lower case, only
/// `[a-z0-9_-]` kept, leading `_` and `-` trimmed.
pub fn normalize_project_name(s: &str) -> String {
    let kept: String = s
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

/// Chooses the project name as Docker Compose does: an explicit name (`-p`,
/// `COMPOSE_PROJECT_NAME`) must already be valid; otherwise the (interpolated)
/// top-level `name:` of the files, normalized; otherwise `fallback` (the
/// project directory's base name), normalized.
pub fn resolve_project_name(
    explicit: Option<&str>,
    from_files: Option<&str>,
    fallback: &str,
) -> Result<String, NormalizeError> {
    if let Some(name) = explicit.filter(|n| !n.is_empty()) {
        if normalize_project_name(name) != name {
            return Err(NormalizeError::ProjectName {
                name: name.to_owned(),
            });
        }
        return Ok(name.to_owned());
    }
    let from_files = from_files.map(normalize_project_name).unwrap_or_default();
    let name = if from_files.is_empty() {
        normalize_project_name(fallback)
    } else {
        from_files
    };
    if name.is_empty() {
        return Err(NormalizeError::EmptyProjectName);
    }
    Ok(name)
}

/// Turns the merged tree (after interpolation, validation, `extends`,
/// `include` and path resolution) into the final [`Project`].
pub fn normalize(mut tree: Node, opts: &NormalizeOptions) -> Result<Project, NormalizeError> {
    if opts.project_name.is_empty() {
        return Err(NormalizeError::EmptyProjectName);
    }
    canonicalize(&mut tree)?;
    validate_tree(&tree)?;
    let Value::Map(top) = tree.value else {
        return Err(NormalizeError::Empty);
    };
    if top.is_empty() {
        return Err(NormalizeError::Empty);
    }
    let mut project = Project {
        name: opts.project_name.clone(),
        working_dir: opts.working_dir.clone(),
        compose_files: opts.compose_files.clone(),
        environment: opts.environment.clone(),
        ..Project::default()
    };
    for (section, node) in &top {
        if let Value::Map(entries) = &node.value {
            for key in entries.keys() {
                project
                    .origins
                    .insert(format!("{}.{}", section.name, key.name), key.span.clone());
            }
        }
    }
    let root = KeyPath::root();
    for (key, node) in top {
        let path = root.key(&key.name);
        match key.name.as_str() {
            "services" => project.services = decode_section(node, &path, decode_service)?,
            "networks" => project.networks = decode_section(node, &path, decode_network)?,
            "volumes" => project.volumes = decode_section(node, &path, decode_volume)?,
            "secrets" => project.secrets = decode_section(node, &path, decode_secret)?,
            "configs" => project.configs = decode_section(node, &path, decode_config)?,
            "models" => project.models = decode_section(node, &path, decode_plain)?,
            k if k.starts_with("x-") => {
                project.extensions.insert(key.name, node.to_json());
            }
            // `name` is decided by the caller, `version` is obsolete, `include`
            // was resolved before.
            _ => {}
        }
    }
    apply_defaults(&mut project);

    profiles::apply_profiles(&mut project, &opts.profiles);
    if !opts.skip_consistency {
        check_consistency(&project).map_err(|e| NormalizeError::locate(e, &project))?;
    }
    if !opts.selected_services.is_empty() {
        profiles::enable_services(&mut project, &opts.selected_services);
        profiles::select_services(&mut project, &opts.selected_services)?;
    }
    if !opts.skip_env_file_resolution {
        resolve_env_files(&mut project, !opts.keep_env_files)?;
    }
    resolve_label_files(&mut project, !opts.keep_env_files)?;
    if !opts.keep_unused_resources {
        drop_unused_resources(&mut project);
    }
    Ok(project)
}

type Decoder<T> = fn(&str, Node, &KeyPath) -> Result<T, NormalizeError>;

fn decode_section<T>(
    node: Node,
    path: &KeyPath,
    decode: Decoder<T>,
) -> Result<BTreeMap<String, T>, NormalizeError> {
    match node.value {
        Value::Null => Ok(BTreeMap::new()),
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| {
                let p = path.key(&k.name);
                let t = decode(&k.name, v, &p)?;
                Ok((k.name, t))
            })
            .collect(),
        _ => Err(NormalizeError::Invalid {
            path: path.to_string(),
            span: node.span.clone(),
            message: format!("must be a mapping, not {}", node.kind()),
        }),
    }
}

/// Splits an entity's `x-*` keys off, and decodes the rest.
fn decode_entity<T: serde::de::DeserializeOwned + Default>(
    node: Node,
    path: &KeyPath,
) -> Result<(T, BTreeMap<String, serde_json::Value>), NormalizeError> {
    let span = node.span.clone();
    let mut ext = BTreeMap::new();
    let mut spans: Vec<Span> = Vec::new();
    let json = match node.value {
        Value::Null => return Ok((T::default(), ext)),
        Value::Map(m) => {
            let mut obj = serde_json::Map::with_capacity(m.len());
            spans.reserve(m.len());
            for (k, v) in m {
                if k.name.starts_with("x-") {
                    ext.insert(k.name, v.to_json());
                } else {
                    spans.push(v.span.clone());
                    obj.insert(k.name, v.to_json());
                }
            }
            serde_json::Value::Object(obj)
        }
        other => Node::new(other, span.clone()).to_json(),
    };
    match T::deserialize(&json) {
        Ok(t) => Ok((t, ext)),
        Err(source) => Err(locate_decode_error::<T>(&json, &spans, path, span, source)),
    }
}

/// Points a decoding error at the attribute that caused it: each attribute
/// is decoded alone until one fails (only on the error path).
fn locate_decode_error<T: serde::de::DeserializeOwned>(
    json: &serde_json::Value,
    spans: &[Span],
    path: &KeyPath,
    span: Span,
    source: serde_json::Error,
) -> NormalizeError {
    if let serde_json::Value::Object(obj) = json {
        for ((k, v), at) in obj.iter().zip(spans) {
            let mut one = serde_json::Map::with_capacity(1);
            one.insert(k.clone(), v.clone());
            if let Err(source) = T::deserialize(&serde_json::Value::Object(one)) {
                return NormalizeError::Decode {
                    path: path.key(k).to_string(),
                    span: at.clone(),
                    source,
                };
            }
        }
    }
    NormalizeError::Decode {
        path: path.to_string(),
        span,
        source,
    }
}

fn decode_service(name: &str, node: Node, path: &KeyPath) -> Result<Service, NormalizeError> {
    let (mut s, ext): (Service, _) = decode_entity(node, path)?;
    s.name = name.to_owned();
    s.extensions = ext;
    Ok(s)
}

fn decode_network(_: &str, node: Node, path: &KeyPath) -> Result<Network, NormalizeError> {
    let (mut n, ext): (Network, _) = decode_entity(node, path)?;
    n.extensions = ext;
    Ok(n)
}

fn decode_volume(_: &str, node: Node, path: &KeyPath) -> Result<Volume, NormalizeError> {
    let (mut v, ext): (Volume, _) = decode_entity(node, path)?;
    v.extensions = ext;
    Ok(v)
}

fn decode_secret(_: &str, node: Node, path: &KeyPath) -> Result<Secret, NormalizeError> {
    let (mut s, mut ext): (Secret, _) = decode_entity(node, path)?;
    // The value an included project's environment gave it (load.rs).
    if let Some(serde_json::Value::String(v)) = ext.remove(crate::model::load::SECRET_VALUE_KEY) {
        s.0.content = v;
    }
    s.0.extensions = ext;
    Ok(s)
}

fn decode_config(_: &str, node: Node, path: &KeyPath) -> Result<Config, NormalizeError> {
    let (mut c, mut ext): (Config, _) = decode_entity(node, path)?;
    if let Some(serde_json::Value::String(v)) = ext.remove(crate::model::load::SECRET_VALUE_KEY) {
        c.0.content = v;
    }
    c.0.extensions = ext;
    Ok(c)
}

fn decode_plain<T: serde::de::DeserializeOwned + Default>(
    _: &str,
    node: Node,
    path: &KeyPath,
) -> Result<T, NormalizeError> {
    decode_entity(node, path).map(|(t, _)| t)
}

/// The defaults compose-go applies before profiles and consistency checks.
fn apply_defaults(p: &mut Project) {
    let env = &p.environment;
    let mut uses_default_network = false;
    for s in p.services.values_mut() {
        if s.provider.is_none() && s.network_mode.is_empty() {
            if s.networks.is_empty() {
                s.networks.insert("default".to_owned(), None);
                uses_default_network = true;
            } else if s.networks.contains_key("default") {
                uses_default_network = true;
            }
        }
        service_defaults(s, env, &p.working_dir);
    }
    if uses_default_network && !p.networks.contains_key("default") {
        p.networks.insert("default".to_owned(), Network::default());
    }

    let project = &p.name;
    let name_of = |key: &str, external: bool| {
        if external {
            key.to_owned()
        } else {
            format!("{project}_{key}")
        }
    };
    for (k, n) in p.networks.iter_mut() {
        if n.name.is_empty() {
            n.name = name_of(k, n.external);
        }
    }
    for (k, v) in p.volumes.iter_mut() {
        if v.name.is_empty() {
            v.name = name_of(k, v.external);
        }
    }
    for (k, s) in p.secrets.iter_mut() {
        if s.0.name.is_empty() {
            s.0.name = name_of(k, s.0.external);
        }
        // Content already there was resolved by an include's environment.
        if !s.0.environment.is_empty() && s.0.content.is_empty() {
            if let Some(v) = env.get(&s.0.environment) {
                s.0.content = v.clone();
            }
        }
    }
    for (k, c) in p.configs.iter_mut() {
        if c.0.name.is_empty() {
            c.0.name = name_of(k, c.0.external);
        }
        if !c.0.environment.is_empty() && c.0.content.is_empty() {
            if let Some(v) = env.get(&c.0.environment) {
                c.0.content = v.clone();
            }
        }
    }
}

fn implied_dependency(restart: bool) -> ServiceDependency {
    ServiceDependency {
        condition: CONDITION_STARTED.to_owned(),
        restart,
        required: true,
    }
}

fn service_defaults(s: &mut Service, env: &Mapping, working_dir: &Path) {
    // compose-go drops empty `dns` entries (its `OmitEmpty`).
    s.dns.retain(|d| !d.is_empty());
    // compose-go's consistency check copies `scale` into `deploy.replicas`.
    if let (Some(scale), Some(d)) = (s.scale, s.deploy.as_mut()) {
        d.replicas.get_or_insert(scale);
    }
    if s.pull_policy == "if_not_present" {
        s.pull_policy = "missing".to_owned();
    }
    if let Some(b) = s.build.as_mut() {
        if b.context.is_empty() {
            // compose-go defaults the context before resolving paths, so it
            // ends up as the project directory.
            b.context = if working_dir.is_absolute() {
                working_dir.display().to_string()
            } else {
                ".".to_owned()
            };
        }
        if b.dockerfile.is_empty() && b.dockerfile_inline.is_empty() {
            b.dockerfile = "Dockerfile".to_owned();
        }
        // Unresolvable bare build args are dropped.
        b.args.retain(|k, v| {
            if v.is_none() {
                *v = env.get(k).cloned();
            }
            v.is_some()
        });
    }
    // Unresolvable bare environment keys stay unset (printed as null).
    for (k, v) in s.environment.iter_mut() {
        if v.is_none() {
            *v = env.get(k).cloned();
        }
    }

    for link in &s.links {
        let target = match link.split_once(':') {
            Some((svc, alias)) if !alias.contains(':') => svc,
            _ => link.as_str(),
        };
        s.depends_on
            .entry(target.to_owned())
            .or_insert_with(|| implied_dependency(true));
    }
    for ns in [&s.network_mode, &s.ipc, &s.pid, &s.uts, &s.cgroup] {
        if let Some(shared) = ns.strip_prefix("service:") {
            s.depends_on
                .entry(shared.to_owned())
                .or_insert_with(|| implied_dependency(true));
        }
    }
    for from in &s.volumes_from {
        if !from.starts_with("container:") {
            let svc = from.split(':').next().unwrap_or(from);
            s.depends_on
                .entry(svc.to_owned())
                .or_insert_with(|| implied_dependency(false));
        }
    }

    for v in s.volumes.iter_mut() {
        if !v.target.is_empty() {
            v.target = clean_path(&v.target);
        }
    }
    for port in s.ports.iter_mut() {
        if port.protocol.is_empty() {
            port.protocol = "tcp".to_owned();
        }
        if port.mode.is_empty() {
            port.mode = "ingress".to_owned();
        }
    }
    for secret in s.secrets.iter_mut() {
        if secret.target.is_empty() {
            secret.target = format!("/run/secrets/{}", secret.source);
        }
    }
    let reservations = s
        .deploy
        .as_mut()
        .and_then(|d| d.resources.reservations.as_mut())
        .map(|r| r.devices.iter_mut());
    for dev in s.gpus.iter_mut().chain(reservations.into_iter().flatten()) {
        if dev.count == 0 && dev.device_ids.is_empty() {
            dev.count = -1;
        }
    }
    if !s.image.is_empty() {
        for hook in s.pre_start.iter_mut() {
            if hook.image.is_empty() {
                hook.image = s.image.clone();
            }
        }
    }
}

/// Drops top-level resources no enabled service refers to (compose-go's
/// `WithoutUnnecessaryResources`, which Docker Compose applies unless `--all`).
fn drop_unused_resources(p: &mut Project) {
    use std::collections::BTreeSet;
    let mut networks = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let mut configs = BTreeSet::new();
    let mut models = BTreeSet::new();
    for s in p.services.values() {
        networks.extend(s.networks.keys().cloned());
        for v in &s.volumes {
            if v.r#type == VOLUME_VOLUME && !v.source.is_empty() {
                volumes.insert(v.source.clone());
            }
        }
        secrets.extend(s.secrets.iter().map(|r| r.source.clone()));
        if let Some(b) = &s.build {
            secrets.extend(b.secrets.iter().map(|r| r.source.clone()));
        }
        configs.extend(s.configs.iter().map(|r| r.source.clone()));
        models.extend(s.models.keys().cloned());
    }
    p.networks.retain(|k, _| networks.contains(k));
    p.volumes.retain(|k, _| volumes.contains(k));
    p.secrets.retain(|k, _| secrets.contains(k));
    p.configs.retain(|k, _| configs.contains(k));
    p.models.retain(|k, _| models.contains(k));
}

/// Go's `path.Clean`: lexical, `/`-separated.
pub(crate) fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn absolute(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// Merges `env_file` contents under `environment` (compose-go's
/// `WithServicesEnvironmentResolved`): file values fill keys the service does
/// not set; a key the service sets, even unset (`- KEY`), wins.
fn resolve_env_files(p: &mut Project, discard: bool) -> Result<(), NormalizeError> {
    let project_env = &p.environment;
    let base = &p.working_dir;
    for s in p.services.values_mut() {
        if s.env_file.is_empty() {
            continue;
        }
        let mut merged: IndexMap<String, String> = s
            .environment
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect();
        for ef in &s.env_file {
            let path = absolute(base, &ef.path);
            super::inputs::note_kind(&path);
            if !path.exists() {
                if ef.required {
                    return Err(NormalizeError::EnvFileNotFound {
                        service: s.name.clone(),
                        path,
                    });
                }
                continue;
            }
            let service_env = &s.environment;
            let lookup = |k: &str| -> Option<String> {
                project_env
                    .get(k)
                    .cloned()
                    .or_else(|| service_env.get(k).cloned().flatten())
            };
            let env_file_error = |source| NormalizeError::EnvFile {
                service: s.name.clone(),
                source,
            };
            let format = dotenv::Format::from_name(&ef.format).map_err(env_file_error)?;
            dotenv::read_file_into(&path, format, &lookup, &mut merged).map_err(env_file_error)?;
        }
        let mut env: BTreeMap<String, Option<String>> =
            merged.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for (k, v) in std::mem::take(&mut s.environment) {
            env.insert(k, v);
        }
        s.environment = env;
        if discard {
            s.env_file.clear();
        }
    }
    Ok(())
}

/// Merges `label_file` contents under `labels` (compose-go's
/// `WithServicesLabelsResolved`); a file's `${}` sees the labels read so far.
fn resolve_label_files(p: &mut Project, discard: bool) -> Result<(), NormalizeError> {
    let base = &p.working_dir;
    for s in p.services.values_mut() {
        if s.label_file.is_empty() {
            continue;
        }
        let mut labels: IndexMap<String, String> = IndexMap::new();
        for lf in &s.label_file {
            let path = absolute(base, lf);
            super::inputs::note_kind(&path);
            if !path.exists() {
                return Err(NormalizeError::LabelFileNotFound {
                    service: s.name.clone(),
                    path,
                });
            }
            let mut read = IndexMap::new();
            let lookup = |k: &str| labels.get(k).cloned();
            dotenv::read_file_into(&path, dotenv::Format::DotEnv, &lookup, &mut read).map_err(
                |source| NormalizeError::EnvFile {
                    service: s.name.clone(),
                    source,
                },
            )?;
            labels.extend(read);
        }
        let mut merged: BTreeMap<String, String> = labels.into_iter().collect();
        merged.append(&mut s.labels);
        s.labels = merged;
        if discard {
            s.label_file.clear();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str, opts: NormalizeOptions) -> Result<Project, NormalizeError> {
        let v: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        normalize(Node::from_json(&v, &Span::synthetic("<test>")), &opts)
    }

    fn opts() -> NormalizeOptions {
        NormalizeOptions {
            project_name: "demo".into(),
            working_dir: std::env::temp_dir(),
            environment: [("FROM_ENV".to_owned(), "v".to_owned())].into(),
            ..NormalizeOptions::default()
        }
    }

    #[test]
    fn defaults_are_applied() {
        let p = run(
            r#"
services:
  web:
    image: nginx
    pull_policy: if_not_present
    links: ["db:database"]
    volumes_from: ["data:ro", "container:other"]
    environment: [FROM_ENV, UNSET, "SET=1"]
    secrets: [token]
    build:
      context: .
      args: [FROM_ENV, DROPPED]
  db:
    image: postgres
    networks: [back]
    ipc: "service:data"
  data:
    image: busybox
    network_mode: none
secrets:
  token:
    file: ./token
networks:
  back: {}
  unused: {}
"#,
            opts(),
        )
        .unwrap();
        let web = &p.services["web"];
        assert_eq!(web.pull_policy, "missing");
        assert_eq!(web.environment["FROM_ENV"].as_deref(), Some("v"));
        assert_eq!(web.environment["UNSET"], None);
        let b = web.build.as_ref().unwrap();
        assert_eq!(b.dockerfile, "Dockerfile");
        assert_eq!(b.args.len(), 1);
        assert!(web.depends_on["db"].restart);
        assert!(!web.depends_on["data"].restart);
        assert!(!web.depends_on.contains_key("container:other"));
        assert_eq!(web.secrets[0].target, "/run/secrets/token");
        assert!(p.services["db"].depends_on["data"].restart);
        assert!(p.services["data"].networks.is_empty());
        assert_eq!(p.networks["default"].name, "demo_default");
        assert_eq!(p.networks["back"].name, "demo_back");
        assert!(
            !p.networks.contains_key("unused"),
            "unused networks are dropped"
        );
        assert_eq!(p.secrets["token"].0.name, "demo_token");
    }

    #[test]
    fn implied_dependency_on_a_missing_service_is_reported() {
        let e = run(
            "services:
  a:
    image: x
    network_mode: service:b
",
            opts(),
        )
        .unwrap_err();
        assert!(
            e.to_string().ends_with(
                r#"<test>: service "a" depends on undefined service "b": invalid compose project"#
            ),
            "{e}"
        );
    }

    #[test]
    fn env_and_label_files_merge_below_the_service_s_own() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.env"), "A=file\nB=file\n").unwrap();
        fs_err::write(
            dir.path().join("b.env"),
            "# comment\nexport C=\"x ${B} ${FROM_ENV}\"\nD='${A}'\n",
        )
        .unwrap();
        fs_err::write(dir.path().join("l.txt"), "team=core\ntier=web\n").unwrap();
        let mut o = opts();
        o.working_dir = dir.path().to_owned();
        let p = run(
            r#"
services:
  s:
    image: x
    environment: {B: env}
    env_file:
      - {path: a.env, format: raw}
      - {path: missing.env, required: false}
      - b.env
    labels: {tier: db}
    label_file: l.txt
"#,
            o.clone(),
        )
        .unwrap();
        let s = &p.services["s"];
        assert_eq!(s.environment["A"].as_deref(), Some("file"));
        assert_eq!(s.environment["B"].as_deref(), Some("env"));
        assert_eq!(s.environment["C"].as_deref(), Some("x env v"));
        assert_eq!(s.environment["D"].as_deref(), Some("${A}"));
        assert!(s.env_file.is_empty(), "env_file is dropped once read");
        assert_eq!(s.labels["team"], "core");
        assert_eq!(s.labels["tier"], "db", "labels win over label_file");
        let e = run("services:\n  s:\n    image: x\n    env_file: nope.env\n", o).unwrap_err();
        assert!(matches!(e, NormalizeError::EnvFileNotFound { .. }), "{e}");
    }

    #[test]
    fn decode_errors_name_the_service() {
        let e = run(
            "services:
  s:
    image: x
    mem_limit: lots
",
            opts(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("services.s.mem_limit"), "{msg}");
        assert!(msg.contains("invalid size"), "{msg}");
    }

    #[test]
    fn project_names_follow_compose() {
        assert_eq!(normalize_project_name("My_Project.v2"), "my_projectv2");
        assert_eq!(normalize_project_name("__-x"), "x");
        assert_eq!(
            resolve_project_name(None, Some("Demo"), "dir").unwrap(),
            "demo"
        );
        assert_eq!(resolve_project_name(None, None, "My Dir").unwrap(), "mydir");
        assert_eq!(
            resolve_project_name(Some("ok-1"), Some("x"), "d").unwrap(),
            "ok-1"
        );
        assert!(matches!(
            resolve_project_name(Some("Bad"), None, "d"),
            Err(NormalizeError::ProjectName { .. })
        ));
        assert!(matches!(
            resolve_project_name(None, None, "..."),
            Err(NormalizeError::EmptyProjectName)
        ));
    }

    #[test]
    fn clean_path_is_lexical() {
        assert_eq!(clean_path("/a/b/../c/"), "/a/c");
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(clean_path("a/./b"), "a/b");
        assert_eq!(clean_path("../x"), "../x");
    }
}
