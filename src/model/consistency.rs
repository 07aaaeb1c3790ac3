//! Cross-reference checks on a normalized project (compose-go's
//! `loader/validate.go` `checkConsistency`, plus the container-name unicity
//! check Docker Compose runs before creating containers, which the loader
//! leaves to `config`, `create` and `up`).
//!
//! Messages are compose-go's, word for word (`invalid compose project` is its
//! `ErrInvalid`), so users and scripts see what Docker Compose prints.
//! Services are checked in name order so the first error is reproducible.

use std::collections::BTreeMap;

use super::graph::{check_cycle, GraphError};
use super::node::{Node, Span, Value};
use super::project::{Project, VOLUME_VOLUME};

/// A reference or combination of keys Compose refuses.
#[derive(Debug, thiserror::Error)]
pub enum ConsistencyError {
    #[error(
        "service {0:?} has neither an image nor a build context specified: invalid compose project"
    )]
    NoImageNoBuild(String),
    #[error("service {0:?} declares mutualy exclusive dockerfile and dockerfile_inline: invalid compose project")]
    DockerfileAndInline(String),
    #[error(
        "service {service:?} declares unknown service {target:?} as additional contexts {name}"
    )]
    UnknownAdditionalContext {
        service: String,
        target: String,
        name: String,
    },
    #[error("service {service:?} declares non-buildable service {target:?} as additional contexts {name}")]
    NonBuildableAdditionalContext {
        service: String,
        target: String,
        name: String,
    },
    #[error("service.build.platforms MUST include service.platform {platform:?}: invalid compose project")]
    PlatformNotInBuild { service: String, platform: String },
    #[error("service {0} declares mutually exclusive `network_mode` and `networks`: invalid compose project")]
    NetworkModeAndNetworks(String),
    #[error("service {service:?} refers to undefined network {network}: invalid compose project")]
    UndefinedNetwork { service: String, network: String },
    #[error("services.{service}.healthcheck: healthcheck.test must start either by \"CMD\", \"CMD-SHELL\" or \"NONE\"")]
    HealthcheckTest { service: String },
    #[error(
        "service {service:?} depends on undefined service {dependency:?}: invalid compose project"
    )]
    UndefinedDependency { service: String, dependency: String },
    #[error("service {target:?} not found for network_mode 'service:{target}'")]
    NetworkModeService { service: String, target: String },
    #[error("service {service:?} refers to undefined volume {volume}: invalid compose project")]
    UndefinedVolume { service: String, volume: String },
    #[error(
        "service {service:?} refers to undefined build secret {secret}: invalid compose project"
    )]
    UndefinedBuildSecret { service: String, secret: String },
    #[error("service {service:?} refers to undefined config {config}: invalid compose project")]
    UndefinedConfig { service: String, config: String },
    #[error("service {service:?} refers to undefined model {model}: invalid compose project")]
    UndefinedModel { service: String, model: String },
    #[error("service {service:?} refers to undefined secret {secret}: invalid compose project")]
    UndefinedSecret { service: String, secret: String },
    #[error(
        "services.{service}: can't set distinct values on '{a}' and '{b}': invalid compose project"
    )]
    Conflicting {
        service: String,
        a: &'static str,
        b: &'static str,
    },
    #[error("services.{service}.{key}: must be greater than or equal to 0")]
    Negative { service: String, key: &'static str },
    #[error("services.{service}: can't set container_name and {attr} as container name must be unique: invalid compose project")]
    ContainerNameAndScale { service: String, attr: &'static str },
    #[error("services.{service}.develop.watch: target is required for non-rebuild actions: invalid compose project")]
    WatchTarget { service: String },
    #[error("services.{service}.{location}: target {target} already mounted as services.{service}.{previous}")]
    DuplicateMount {
        service: String,
        location: String,
        target: String,
        previous: String,
    },
    #[error("secret {0:?} must declare either `file` or `environment`: invalid compose project")]
    SecretWithoutSource(String),
    #[error("services.{service}: container name {name:?} is already in use by service {other}")]
    DuplicateContainerName {
        service: String,
        name: String,
        other: String,
    },
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A check on the tree (compose-go's `validation` package); `path` is
    /// written as compose-go writes it (`services.web.ports.[]`).
    #[error("{path}: {problem}")]
    Tree {
        path: String,
        span: Span,
        problem: TreeProblem,
    },
}

/// What a tree check found.
#[derive(Debug, thiserror::Error)]
pub enum TreeProblem {
    #[error("conflicting parameters \"external\" and {0:?} specified")]
    ExternalConflict(String),
    #[error("{0} attributes are mutually exclusive")]
    Exclusive(&'static str),
    #[error("one of {0} must be set")]
    OneOf(&'static str),
    #[error("value can't be blank")]
    Blank,
    #[error("\"count\" and \"device_ids\" attributes are exclusive")]
    CountAndDeviceIds,
    #[error("invalid ip address: {0}")]
    IpAddress(String),
}

impl ConsistencyError {
    /// The `origins` key (`services.web`, `secrets.s`) of what the error is
    /// about, when it is about one declaration.
    pub fn subject(&self) -> Option<String> {
        use ConsistencyError as E;
        let service = match self {
            E::NoImageNoBuild(s) | E::DockerfileAndInline(s) | E::NetworkModeAndNetworks(s) => s,
            E::UnknownAdditionalContext { service, .. }
            | E::NonBuildableAdditionalContext { service, .. }
            | E::PlatformNotInBuild { service, .. }
            | E::UndefinedNetwork { service, .. }
            | E::HealthcheckTest { service }
            | E::UndefinedDependency { service, .. }
            | E::NetworkModeService { service, .. }
            | E::UndefinedVolume { service, .. }
            | E::UndefinedBuildSecret { service, .. }
            | E::UndefinedConfig { service, .. }
            | E::UndefinedModel { service, .. }
            | E::UndefinedSecret { service, .. }
            | E::Conflicting { service, .. }
            | E::Negative { service, .. }
            | E::ContainerNameAndScale { service, .. }
            | E::WatchTarget { service }
            | E::DuplicateMount { service, .. }
            | E::DuplicateContainerName { service, .. } => service,
            E::SecretWithoutSource(s) => return Some(format!("secrets.{s}")),
            E::Graph(_) | E::Tree { .. } => return None,
        };
        Some(format!("services.{service}"))
    }
}

fn tree_err(path: String, node: &Node, problem: TreeProblem) -> ConsistencyError {
    ConsistencyError::Tree {
        path,
        span: node.span.clone(),
        problem,
    }
}

/// The checks compose-go runs on the merged tree after the schema
/// (`validation.Validate`): external volumes take no other settings, a
/// secret or config has exactly one source, watch paths are not blank,
/// device requests set `count` or `device_ids` but not both, and a port's
/// `host_ip` is an IP address. Run on the canonical tree.
pub fn validate_tree(root: &Node) -> Result<(), ConsistencyError> {
    if let Some(volumes) = root.get("volumes").and_then(Node::as_map) {
        for (name, v) in volumes {
            let Some(m) = v.as_map() else { continue };
            if m.get("external")
                .is_some_and(|e| e.value == Value::Bool(true))
            {
                for k in m.keys() {
                    if !matches!(k.name.as_str(), "name" | "external") && !k.name.starts_with("x-")
                    {
                        return Err(tree_err(
                            format!("volumes.{}", name.name),
                            v,
                            TreeProblem::ExternalConflict(k.name.clone()),
                        ));
                    }
                }
            }
        }
    }
    for (kind, keys, list) in [
        (
            "configs",
            &["file", "environment", "content"][..],
            "file|environment|content",
        ),
        ("secrets", &["file", "environment"][..], "file|environment"),
    ] {
        let Some(objs) = root.get(kind).and_then(Node::as_map) else {
            continue;
        };
        for (name, o) in objs {
            let Some(m) = o.as_map() else { continue };
            let count = keys.iter().filter(|k| m.contains_key(**k)).count();
            let path = || format!("{kind}.{}", name.name);
            if count > 1 {
                return Err(tree_err(path(), o, TreeProblem::Exclusive(list)));
            }
            if count == 0 && !m.contains_key("driver") && !m.contains_key("external") {
                return Err(tree_err(path(), o, TreeProblem::OneOf(list)));
            }
        }
    }
    let Some(services) = root.get("services").and_then(Node::as_map) else {
        return Ok(());
    };
    for (name, s) in services {
        let at = format!("services.{}", name.name);
        let seq = |n: Option<&Node>| n.and_then(Node::as_seq).unwrap_or(&[]).to_vec();
        for port in seq(s.get("ports")) {
            if let Some(ip) = port.get("host_ip") {
                let text = ip.as_str().unwrap_or_default();
                if text.parse::<std::net::IpAddr>().is_err() {
                    return Err(tree_err(
                        format!("{at}.ports.[]"),
                        ip,
                        TreeProblem::IpAddress(text.to_owned()),
                    ));
                }
            }
        }
        let watch = s.get("develop").and_then(|d| d.get("watch"));
        for w in seq(watch) {
            if let Some(p) = w.get("path") {
                if p.as_str() == Some("") {
                    return Err(tree_err(
                        format!("{at}.develop.watch.[].path"),
                        p,
                        TreeProblem::Blank,
                    ));
                }
            }
        }
        let reservations = s
            .get("deploy")
            .and_then(|d| d.get("resources"))
            .and_then(|r| r.get("reservations"))
            .and_then(|r| r.get("devices"));
        for (where_, list) in [
            ("deploy.resources.reservations.devices", seq(reservations)),
            ("gpus", seq(s.get("gpus"))),
        ] {
            for d in list {
                if d.get("count").is_some() && d.get("device_ids").is_some() {
                    return Err(tree_err(
                        format!("{at}.{where_}.[]"),
                        &d,
                        TreeProblem::CountAndDeviceIds,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs every check; the first failure is returned.
pub fn check_consistency(project: &Project) -> Result<(), ConsistencyError> {
    use ConsistencyError as E;
    for (name, s) in &project.services {
        let svc = || name.clone();
        if s.build.is_none() && s.image.is_empty() && s.provider.is_none() {
            return Err(E::NoImageNoBuild(svc()));
        }
        if let Some(b) = &s.build {
            if !b.dockerfile_inline.is_empty() && !b.dockerfile.is_empty() {
                return Err(E::DockerfileAndInline(svc()));
            }
            for (ctx, value) in &b.additional_contexts {
                if let Some(target) = value.strip_prefix("service:") {
                    match project.services.get(target) {
                        None => {
                            return Err(E::UnknownAdditionalContext {
                                service: svc(),
                                target: target.to_owned(),
                                name: ctx.clone(),
                            })
                        }
                        Some(t) if t.build.is_none() => {
                            return Err(E::NonBuildableAdditionalContext {
                                service: svc(),
                                target: target.to_owned(),
                                name: ctx.clone(),
                            })
                        }
                        Some(_) => {}
                    }
                }
            }
            if !b.platforms.is_empty()
                && !s.platform.is_empty()
                && !b.platforms.contains(&s.platform)
            {
                return Err(E::PlatformNotInBuild {
                    service: svc(),
                    platform: s.platform.clone(),
                });
            }
        }
        if !s.network_mode.is_empty() && !s.networks.is_empty() {
            return Err(E::NetworkModeAndNetworks(svc()));
        }
        for network in s.networks.keys() {
            if !project.networks.contains_key(network) {
                return Err(E::UndefinedNetwork {
                    service: svc(),
                    network: network.clone(),
                });
            }
        }
        if let Some(hc) = &s.healthcheck {
            if let Some(first) = hc.test.first() {
                if !matches!(first.as_str(), "CMD" | "CMD-SHELL" | "NONE") {
                    return Err(E::HealthcheckTest { service: svc() });
                }
            }
        }
        for (dep, cfg) in &s.depends_on {
            if !project.services.contains_key(dep) {
                if project.disabled_services.contains_key(dep) && !cfg.required {
                    continue;
                }
                return Err(E::UndefinedDependency {
                    service: svc(),
                    dependency: dep.clone(),
                });
            }
        }
        if let Some(target) = s.network_mode.strip_prefix("service:") {
            if !project.services.contains_key(target) {
                return Err(E::NetworkModeService {
                    service: svc(),
                    target: target.to_owned(),
                });
            }
        }
        for v in &s.volumes {
            if v.r#type == VOLUME_VOLUME
                && !v.source.is_empty()
                && !project.volumes.contains_key(&v.source)
            {
                return Err(E::UndefinedVolume {
                    service: svc(),
                    volume: v.source.clone(),
                });
            }
        }
        if let Some(b) = &s.build {
            for secret in &b.secrets {
                if !project.secrets.contains_key(&secret.source) {
                    return Err(E::UndefinedBuildSecret {
                        service: svc(),
                        secret: secret.source.clone(),
                    });
                }
            }
        }
        for c in &s.configs {
            if !project.configs.contains_key(&c.source) {
                return Err(E::UndefinedConfig {
                    service: svc(),
                    config: c.source.clone(),
                });
            }
        }
        for m in s.models.keys() {
            if !project.models.contains_key(m) {
                return Err(E::UndefinedModel {
                    service: svc(),
                    model: m.clone(),
                });
            }
        }
        for secret in &s.secrets {
            if !project.secrets.contains_key(&secret.source) {
                return Err(E::UndefinedSecret {
                    service: svc(),
                    secret: secret.source.clone(),
                });
            }
        }
        let replicas = s.deploy.as_ref().and_then(|d| d.replicas);
        if let (Some(scale), Some(replicas)) = (s.scale, replicas) {
            if scale != replicas {
                return Err(E::Conflicting {
                    service: svc(),
                    a: "scale",
                    b: "deploy.replicas",
                });
            }
        }
        if s.scale.is_some_and(|n| n < 0) {
            return Err(E::Negative {
                service: svc(),
                key: "scale",
            });
        }
        if replicas.is_some_and(|n| n < 0) {
            return Err(E::Negative {
                service: svc(),
                key: "deploy.replicas",
            });
        }
        let limits = s.deploy.as_ref().and_then(|d| d.resources.limits.as_ref());
        let reservations = s
            .deploy
            .as_ref()
            .and_then(|d| d.resources.reservations.as_ref());
        if let Some(l) = limits {
            if s.cpus != 0.0 && l.cpus != s.cpus {
                return Err(E::Conflicting {
                    service: svc(),
                    a: "cpus",
                    b: "deploy.resources.limits.cpus",
                });
            }
            if s.mem_limit.0 != 0 && l.memory != s.mem_limit {
                return Err(E::Conflicting {
                    service: svc(),
                    a: "mem_limit",
                    b: "deploy.resources.limits.memory",
                });
            }
        }
        if let Some(r) = reservations {
            if s.mem_reservation.0 != 0 && r.memory != s.mem_reservation {
                return Err(E::Conflicting {
                    service: svc(),
                    a: "mem_reservation",
                    b: "deploy.resources.reservations.memory",
                });
            }
        }
        if let Some(l) = limits {
            if s.pids_limit != 0 && l.pids != s.pids_limit {
                return Err(E::Conflicting {
                    service: svc(),
                    a: "pids_limit",
                    b: "deploy.resources.limits.pids",
                });
            }
        }
        if s.replicas() > 1 && !s.container_name.is_empty() {
            let attr = if s.scale.is_some() {
                "scale"
            } else {
                "deploy.replicas"
            };
            return Err(E::ContainerNameAndScale {
                service: svc(),
                attr,
            });
        }
        if let Some(dev) = &s.develop {
            for w in &dev.watch {
                if w.target.is_empty() && w.action != "rebuild" && w.action != "restart" {
                    return Err(E::WatchTarget { service: svc() });
                }
            }
        }
        let mut mounts: BTreeMap<&str, String> = BTreeMap::new();
        for (i, t) in s.tmpfs.iter().enumerate() {
            let loc = format!("tmpfs[{i}]");
            let path = t.split(':').next().unwrap_or(t);
            if let Some(prev) = mounts.get(path) {
                return Err(E::DuplicateMount {
                    service: svc(),
                    location: loc,
                    target: path.to_owned(),
                    previous: prev.clone(),
                });
            }
            mounts.insert(path, loc);
        }
        for (i, v) in s.volumes.iter().enumerate() {
            let loc = format!("volumes[{i}]");
            if let Some(prev) = mounts.get(v.target.as_str()) {
                return Err(E::DuplicateMount {
                    service: svc(),
                    location: loc,
                    target: v.target.clone(),
                    previous: prev.clone(),
                });
            }
            mounts.insert(&v.target, loc);
        }
    }
    for (name, secret) in &project.secrets {
        if !secret.0.external && secret.0.file.is_empty() && secret.0.environment.is_empty() {
            return Err(E::SecretWithoutSource(name.clone()));
        }
    }
    check_cycle(project)?;
    Ok(())
}

/// No two services may declare the same `container_name`. Not part of
/// loading (`down`, or `up` of one of the two, must work): Docker Compose
/// runs it where containers would be made (`create`, `up`) and in
/// `config`, on the services selected.
pub fn check_container_names(project: &Project) -> Result<(), ConsistencyError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, s) in &project.services {
        if s.container_name.is_empty() {
            continue;
        }
        if let Some(other) = seen.insert(&s.container_name, name) {
            return Err(ConsistencyError::DuplicateContainerName {
                service: name.clone(),
                name: s.container_name.clone(),
                other: other.to_owned(),
            });
        }
    }
    Ok(())
}
