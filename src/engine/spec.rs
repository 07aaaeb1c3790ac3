//! A service's container as an OCI runtime spec: Docker's defaults
//! (`berth_runtime::spec::docker_default`), then the image's config, then
//! the service's settings, as Docker Engine turns a container config into
//! runc's `config.json`.
//!
//! Pure: everything from the host (where a named volume lives, the netns
//! path, the rootfs's `/etc/passwd`) comes in through [`SpecInputs`], so each
//! rule is a unit test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use serde::{Deserialize, Serialize};

use crate::model::project::{
    FileReference, Service, VOLUME_BIND, VOLUME_IMAGE, VOLUME_TMPFS, VOLUME_VOLUME,
};

/// What the image says about how to run it (the OCI image config's
/// `config` section).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    /// The image's `Volumes`: mount points that get an anonymous volume
    /// unless the service mounts something there.
    pub volumes: Vec<String>,
}

/// Where the container's network namespace comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetNs {
    /// A namespace held at this path (berth's, or another container's).
    Path(PathBuf),
    /// The host's (`network_mode: host`).
    Host,
    /// A new, empty one (`network_mode: none`).
    New,
}

/// The host side of a container, decided by the engine.
#[derive(Clone)]
pub struct SpecInputs<'a> {
    pub container_id: &'a str,
    pub image: &'a ImageDefaults,
    pub netns: NetNs,
    /// Host directory of a named volume (by its project-scoped name).
    pub volume_dir: &'a dyn Fn(&str) -> PathBuf,
    /// The container's rootfs as the runtime will see it, to resolve user
    /// and group names (`/etc/passwd`, `/etc/group`); `None` allows numeric
    /// ids only.
    pub rootfs: Option<&'a Path>,
    /// Files the engine wrote for this container: `/etc/hosts`,
    /// `/etc/resolv.conf`, `/etc/hostname`.
    pub etc_files: Vec<(&'static str, PathBuf)>,
    /// The project's volumes: key in the file → real name.
    pub volume_names: &'a BTreeMap<String, String>,
    /// Anonymous volumes: mount point in the container → volume name, for
    /// every target of [`anonymous_targets`].
    pub anonymous: &'a BTreeMap<String, String>,
    /// Secrets and configs: (path in the container, the container's own
    /// copy on the host), bound read-only.
    pub files: Vec<(String, PathBuf)>,
    /// The mounts `volumes_from` takes from other containers (their
    /// [`shareable_mounts`], with the entry's mode applied).
    pub volumes_from: &'a [SharedMount],
    /// `type: image` volumes: mount point → the host directory to bind
    /// there read-only (the source image's rootfs, mounted by the engine,
    /// joined with `image.subpath`).
    pub image_volumes: &'a BTreeMap<String, PathBuf>,
}

/// A volume or bind mount of a container, as `volumes_from` shares it with
/// another: kept in the container's record, so the sharer needs nothing
/// but the record (tmpfs and image mounts are the container's own and are
/// not shared, as with Docker).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedMount {
    /// The mount point in the container.
    pub target: String,
    /// The host directory (or file) bound there.
    pub source: PathBuf,
    pub read_only: bool,
}

/// Where a `volumes_from` entry takes its mounts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumesFromSource {
    /// `service_name[:mode]`: the service's container (the lowest-numbered).
    Service(String),
    /// `container:name[:mode]`: any container, by name or id.
    Container(String),
}

/// One `volumes_from` entry: its source and its mode (`Some(true)` for
/// `:ro`, `Some(false)` for `:rw`, `None` to keep each mount's own mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumesFrom {
    pub source: VolumesFromSource,
    pub read_only: Option<bool>,
}

/// Parses a `volumes_from` entry as the Compose specification writes it:
/// `service`, `service:ro`, `container:name`, `container:name:rw`.
pub fn parse_volumes_from(service: &str, entry: &str) -> Result<VolumesFrom, SpecError> {
    let bad = || SpecError::VolumesFrom {
        service: service.to_owned(),
        entry: entry.to_owned(),
    };
    let (source, rest) = match entry.strip_prefix("container:") {
        Some(rest) => {
            let (name, mode) = rest
                .split_once(':')
                .map_or((rest, None), |(n, m)| (n, Some(m)));
            (VolumesFromSource::Container(name.to_owned()), mode)
        }
        None => {
            let (name, mode) = entry
                .split_once(':')
                .map_or((entry, None), |(n, m)| (n, Some(m)));
            (VolumesFromSource::Service(name.to_owned()), mode)
        }
    };
    let name = match &source {
        VolumesFromSource::Service(n) | VolumesFromSource::Container(n) => n,
    };
    if name.is_empty() {
        return Err(bad());
    }
    let read_only = match rest {
        None => None,
        Some("ro") => Some(true),
        Some("rw") => Some(false),
        Some(_) => return Err(bad()),
    };
    Ok(VolumesFrom { source, read_only })
}

/// `service` with each `volumes_from` service reference replaced by the
/// container it resolves to (`container:<id>[:mode]`), as Docker Compose
/// does before it hashes and creates a container: a container made with
/// one donor is recreated when the donor is replaced. `lookup` gives a
/// service's container id; an unresolved reference is an error naming the
/// service, in Docker Compose's words.
pub fn resolve_volumes_from(
    service: &Service,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Service, SpecError> {
    let mut out = service.clone();
    for entry in out.volumes_from.iter_mut() {
        let parsed = parse_volumes_from(&service.name, entry)?;
        if let VolumesFromSource::Service(name) = &parsed.source {
            let id = lookup(name).ok_or_else(|| SpecError::VolumesFromMissing {
                service: name.clone(),
            })?;
            *entry = match parsed.read_only {
                Some(true) => format!("container:{id}:ro"),
                Some(false) => format!("container:{id}:rw"),
                None => format!("container:{id}"),
            };
        }
    }
    Ok(out)
}

/// The mounts a `volumes_from` entry with mode `read_only` takes from a
/// container that has `mounts`.
pub fn apply_volumes_from_mode(
    read_only: Option<bool>,
    mounts: &[SharedMount],
) -> Vec<SharedMount> {
    mounts
        .iter()
        .map(|m| SharedMount {
            read_only: read_only.unwrap_or(m.read_only),
            ..m.clone()
        })
        .collect()
}

fn clean_target(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".to_owned()
    } else {
        t.to_owned()
    }
}

/// The mount points the service itself mounts something at (volumes of
/// every type, tmpfs): a `volumes_from` mount there gives way.
fn own_targets(service: &Service) -> Vec<String> {
    service
        .volumes
        .iter()
        .map(|v| clean_target(&v.target))
        .chain(
            service
                .tmpfs
                .iter()
                .map(|t| clean_target(t.split_once(':').map_or(t.as_str(), |x| x.0))),
        )
        .collect()
}

/// The `volumes_from` mounts that apply: not where the service mounts
/// something of its own, each mount point once (the first entry wins).
pub fn inherited_mounts<'a>(service: &Service, shared: &'a [SharedMount]) -> Vec<&'a SharedMount> {
    let own = own_targets(service);
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for m in shared {
        let t = clean_target(&m.target);
        if own.contains(&t) || seen.contains(&t) {
            continue;
        }
        seen.push(t);
        out.push(m);
    }
    out
}

/// What a container made from `service` with `inputs` can share through
/// `volumes_from`: its binds, named and anonymous volumes (with their
/// modes), and what it took with `volumes_from` itself, as Docker does.
pub fn shareable_mounts(
    service: &Service,
    inputs: &SpecInputs<'_>,
) -> Result<Vec<SharedMount>, SpecError> {
    let mut out = Vec::new();
    for v in &service.volumes {
        let source = match v.r#type.as_str() {
            VOLUME_BIND => PathBuf::from(&v.source),
            VOLUME_VOLUME => volume_source(&service.name, v, inputs)?,
            _ => continue,
        };
        out.push(SharedMount {
            target: v.target.clone(),
            source,
            read_only: v.read_only,
        });
    }
    let declared: Vec<String> = service
        .volumes
        .iter()
        .map(|v| clean_target(&v.target))
        .collect();
    for target in anonymous_targets_with(service, inputs.image, inputs.volumes_from) {
        if declared.contains(&target) {
            continue;
        }
        if let Some(vol) = inputs.anonymous.get(&target) {
            out.push(SharedMount {
                source: (inputs.volume_dir)(vol),
                target,
                read_only: false,
            });
        }
    }
    out.extend(
        inherited_mounts(service, inputs.volumes_from)
            .into_iter()
            .cloned(),
    );
    Ok(out)
}

/// The host directory of the anonymous volume of service `name` at
/// `target` (a cleaned path); the engine made one for each before the spec.
fn anonymous_dir(name: &str, target: &str, inputs: &SpecInputs<'_>) -> Result<PathBuf, SpecError> {
    let vol = inputs
        .anonymous
        .get(target)
        .ok_or_else(|| SpecError::MissingAnonymous {
            service: name.to_owned(),
            target: target.to_owned(),
        })?;
    Ok((inputs.volume_dir)(vol))
}

/// The host directory of a `type: volume` mount: its anonymous volume,
/// or the named volume (joined with `volume.subpath`).
fn volume_source(
    name: &str,
    v: &crate::model::project::ServiceVolume,
    inputs: &SpecInputs<'_>,
) -> Result<PathBuf, SpecError> {
    if v.source.is_empty() {
        return anonymous_dir(name, &clean_target(&v.target), inputs);
    }
    let real = inputs
        .volume_names
        .get(&v.source)
        .ok_or_else(|| SpecError::UndeclaredVolume {
            service: name.to_owned(),
            volume: v.source.clone(),
        })?;
    let mut dir = (inputs.volume_dir)(real);
    if let Some(sub) = v.volume.as_ref().map(|x| x.subpath.as_str()) {
        if !sub.is_empty() {
            check_subpath(name, &v.source, sub)?;
            dir = dir.join(sub);
        }
    }
    Ok(dir)
}

/// A service that cannot become a container.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("service {0:?}: no command specified (neither the service nor its image gives one)")]
    NoCommand(String),
    #[error("service {service:?}: unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { service: String, user: String },
    #[error(
        "service {service:?}: unable to find group {group}: no matching entries in group file"
    )]
    UnknownGroup { service: String, group: String },
    #[error("service {service:?}: unknown capability {cap:?}")]
    UnknownCapability { service: String, cap: String },
    #[error("service {service:?}: security_opt {opt:?} is not supported (supported: no-new-privileges, seccomp=unconfined, apparmor, label)")]
    SecurityOpt { service: String, opt: String },
    #[error("service {service:?}: unknown ulimit {name:?}")]
    Ulimit { service: String, name: String },
    #[error("service {service:?}: volume {volume:?} is not declared in the top-level volumes")]
    UndeclaredVolume { service: String, volume: String },
    #[error("service {service:?}: {what} is not supported yet")]
    Unsupported { service: String, what: String },
    #[error("service {service:?}: volume {volume:?}: subpath {subpath:?} must be a relative path inside the volume")]
    Subpath {
        service: String,
        volume: String,
        subpath: String,
    },
    #[error("service {service:?}: anonymous volume at {target} was not made")]
    MissingAnonymous { service: String, target: String },
    #[error("service {service:?}: volumes_from {entry:?}: expected SERVICE[:ro|rw] or container:NAME[:ro|rw]")]
    VolumesFrom { service: String, entry: String },
    #[error("cannot share volume with service {service}: container missing")]
    VolumesFromMissing { service: String },
    #[error("service {service:?}: image volume at {target} was not mounted")]
    MissingImageVolume { service: String, target: String },
}

/// Where a secret appears in the container: `target`, under
/// `/run/secrets/` when relative; `/run/secrets/<source>` by default.
pub fn secret_target(r: &FileReference) -> String {
    file_target("/run/secrets/", r)
}

/// Where a config appears in the container: `target`, under `/` when
/// relative; `/<source>` by default (Docker Compose's rules).
pub fn config_target(r: &FileReference) -> String {
    file_target("/", r)
}

fn file_target(base: &str, r: &FileReference) -> String {
    let t = if r.target.is_empty() {
        r.source.as_str()
    } else {
        r.target.as_str()
    };
    if t.starts_with('/') {
        t.to_owned()
    } else {
        format!("{base}{t}")
    }
}

/// The mount points that get an anonymous volume: the service's volumes
/// without a source (`- /data`), then the image's `Volumes` where the
/// service mounts nothing (as Docker Engine does at create), each once.
pub fn anonymous_targets(service: &Service, image: &ImageDefaults) -> Vec<String> {
    anonymous_targets_with(service, image, &[])
}

/// [`anonymous_targets`] for a container that also takes `shared` mounts
/// with `volumes_from`: an image volume where one of them lands gets none.
pub fn anonymous_targets_with(
    service: &Service,
    image: &ImageDefaults,
    shared: &[SharedMount],
) -> Vec<String> {
    let clean = |p: &str| clean_target(p);
    let mut out: Vec<String> = service
        .volumes
        .iter()
        .filter(|v| v.r#type == VOLUME_VOLUME && v.source.is_empty())
        .map(|v| clean(&v.target))
        .collect();
    let mounted: Vec<String> = service
        .volumes
        .iter()
        .map(|v| clean(&v.target))
        .chain(
            service
                .tmpfs
                .iter()
                .map(|t| clean(t.split_once(':').map_or(t.as_str(), |x| x.0))),
        )
        .chain(shared.iter().map(|m| clean(&m.target)))
        .collect();
    for v in &image.volumes {
        let v = clean(v);
        if !mounted.contains(&v) && !out.contains(&v) {
            out.push(v);
        }
    }
    out.dedup();
    out
}

/// The `/etc/resolv.conf` of a container berth's DNS server does not
/// serve (`network_mode: host`, `none`, or another container's): the host's,
/// with the service's `dns`, `dns_search` and `dns_opt` replacing its
/// nameservers, search domains and options where given, as Docker does.
pub fn host_resolv_conf(host: &str, service: &Service) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let word = line.split_whitespace().next().unwrap_or("");
        let dropped = (word == "nameserver" && !service.dns.is_empty())
            || ((word == "search" || word == "domain") && !service.dns_search.is_empty())
            || (word == "options" && !service.dns_opt.is_empty());
        if !dropped {
            out.push_str(line);
            out.push('\n');
        }
    }
    for ns in &service.dns {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !service.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", service.dns_search.join(" ")));
    }
    if !service.dns_opt.is_empty() {
        out.push_str(&format!("options {}\n", service.dns_opt.join(" ")));
    }
    out
}

/// Checks a `volume.subpath`: relative, without `..`.
pub fn check_subpath(service: &str, volume: &str, subpath: &str) -> Result<(), SpecError> {
    let bad = subpath.starts_with('/')
        || Path::new(subpath)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if bad {
        return Err(SpecError::Subpath {
            service: service.to_owned(),
            volume: volume.to_owned(),
            subpath: subpath.to_owned(),
        });
    }
    Ok(())
}

/// Every capability Linux knows, for `privileged` and `cap_add: ALL`.
fn all_caps() -> &'static [&'static str] {
    berth_runtime::caps::all_names()
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The command line: a service `entrypoint` replaces the image's and drops
/// its `Cmd`; a service `command` replaces the image's `Cmd`.
pub fn args(service: &Service, image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
    let (entrypoint, cmd) = match &service.entrypoint {
        Some(ep) => (ep.clone(), service.command.clone().unwrap_or_default()),
        None => (
            image.entrypoint.clone(),
            service.command.clone().unwrap_or_else(|| image.cmd.clone()),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(SpecError::NoCommand(service.name.clone()));
    }
    Ok(args)
}

/// The environment: the image's, then the service's (later keys win);
/// `PATH` defaulted and `HOSTNAME` set as Docker does.
pub fn env(service: &Service, image: &ImageDefaults, hostname: &str) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v.to_owned(),
        None => out.push((k.to_owned(), v.to_owned())),
    };
    let path = DEFAULT_PATH.split_once('=').unwrap().1;
    set("PATH", path);
    set("HOSTNAME", hostname);
    for e in &image.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(k, v);
    }
    for (k, v) in &service.environment {
        if let Some(v) = v {
            set(k, v);
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// `user[:group]` resolved to ids through the rootfs's passwd and group
/// files; returns (uid, gid, additional gids from group membership).
pub fn resolve_user(
    service: &str,
    spec: &str,
    rootfs: Option<&Path>,
) -> Result<(u32, u32, Vec<u32>), SpecError> {
    let read = |f: &str| {
        rootfs
            .and_then(|r| std::fs::read_to_string(r.join(f)).ok())
            .unwrap_or_default()
    };
    let passwd = read("etc/passwd");
    let groups = read("etc/group");
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && (f[0] == user || f[2] == user)).then(|| {
            (
                f[0].to_owned(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
            )
        })
    });
    let (name, uid, mut gid) = match (entry, user.parse::<u32>()) {
        (Some((name, Some(uid), Some(gid))), _) => (Some(name), uid, gid),
        (_, Ok(uid)) => (None, uid, 0),
        _ => {
            return Err(SpecError::UnknownUser {
                service: service.to_owned(),
                user: user.to_owned(),
            })
        }
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_id(&groups, g).ok_or_else(|| SpecError::UnknownGroup {
                service: service.to_owned(),
                group: g.to_owned(),
            })?,
        };
    }
    let mut extra = Vec::new();
    if let (Some(name), None) = (&name, group) {
        for l in groups.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !extra.contains(&g) {
                        extra.push(g);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

fn group_id(groups: &str, name: &str) -> Option<u32> {
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| f[2].parse().ok())
            .flatten()
    })
}

fn cap_name(service: &str, c: &str) -> Result<String, SpecError> {
    let up = c.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if all_caps().contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability {
            service: service.to_owned(),
            cap: c.to_owned(),
        })
    }
}

/// The capability set: Docker's defaults (or all, when privileged), plus
/// `cap_add`, minus `cap_drop` (`ALL` allowed in both).
pub fn capabilities(service: &Service, defaults: &[String]) -> Result<Vec<String>, SpecError> {
    let all = || all_caps().iter().map(|s| s.to_string()).collect::<Vec<_>>();
    if service.privileged {
        return Ok(all());
    }
    let mut caps: Vec<String> = defaults.to_vec();
    if service
        .cap_drop
        .iter()
        .any(|c| c.eq_ignore_ascii_case("ALL"))
    {
        caps.clear();
    }
    for c in &service.cap_add {
        if c.eq_ignore_ascii_case("ALL") {
            caps = all();
            continue;
        }
        let c = cap_name(&service.name, c)?;
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in &service.cap_drop {
        if c.eq_ignore_ascii_case("ALL") {
            continue;
        }
        let c = cap_name(&service.name, c)?;
        if !service
            .cap_add
            .iter()
            .any(|a| cap_name(&service.name, a).ok().as_ref() == Some(&c))
        {
            caps.retain(|x| *x != c);
        }
    }
    Ok(caps)
}

fn rlimit_name(service: &str, name: &str) -> Result<String, SpecError> {
    const KNOWN: &[&str] = &[
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    if KNOWN.contains(&name) {
        Ok(format!("RLIMIT_{}", name.to_ascii_uppercase()))
    } else {
        Err(SpecError::Ulimit {
            service: service.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The whole spec, as the JSON the runtime reads from `config.json`.
pub fn container_spec(service: &Service, inputs: &SpecInputs<'_>) -> Result<Value, SpecError> {
    let name = service.name.as_str();
    let unsupported = |what: &str| SpecError::Unsupported {
        service: name.to_owned(),
        what: what.to_owned(),
    };
    // Built once per process: the default seccomp profile alone is some
    // three hundred rules, and an `up` makes every container's spec from it.
    static DEFAULT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let mut spec = DEFAULT
        .get_or_init(|| {
            serde_json::to_value(berth_runtime::spec::docker_default(&["sh"]))
                .expect("the default spec serializes")
        })
        .clone();

    let hostname = if service.hostname.is_empty() {
        inputs.container_id.chars().take(12).collect()
    } else {
        service.hostname.clone()
    };
    let user_spec = if service.user.is_empty() {
        inputs.image.user.as_str()
    } else {
        service.user.as_str()
    };
    let (uid, gid, mut extra_gids) = resolve_user(name, user_spec, inputs.rootfs)?;
    for g in &service.group_add {
        let id = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = inputs
                    .rootfs
                    .and_then(|r| std::fs::read_to_string(r.join("etc/group")).ok())
                    .unwrap_or_default();
                group_id(&groups, g).ok_or_else(|| SpecError::UnknownGroup {
                    service: name.to_owned(),
                    group: g.clone(),
                })?
            }
        };
        if !extra_gids.contains(&id) {
            extra_gids.push(id);
        }
    }
    let cwd = [
        service.working_dir.as_str(),
        inputs.image.working_dir.as_str(),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("/")
    .to_owned();
    let default_caps: Vec<String> =
        serde_json::from_value(spec["process"]["capabilities"]["bounding"].clone())
            .unwrap_or_default();
    let caps = capabilities(service, &default_caps)?;

    let process = &mut spec["process"];
    process["args"] = json!(args(service, inputs.image)?);
    process["env"] = json!(env(service, inputs.image, &hostname));
    process["cwd"] = json!(cwd);
    process["terminal"] = json!(service.tty);
    process["user"] = json!({"uid": uid, "gid": gid});
    if !extra_gids.is_empty() {
        process["user"]["additionalGids"] = json!(extra_gids);
    }
    process["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps
    });
    if service.oom_score_adj != 0 {
        process["oomScoreAdj"] = json!(service.oom_score_adj);
    }
    let mut rlimits = Vec::new();
    for (n, u) in &service.ulimits {
        let (soft, hard) = u.limits();
        rlimits.push(json!({"type": rlimit_name(name, n)?, "soft": soft, "hard": hard}));
    }
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }

    spec["hostname"] = json!(hostname);
    if !service.domainname.is_empty() {
        spec["domainname"] = json!(service.domainname);
    }
    spec["root"]["readonly"] = json!(service.read_only);
    let mut annotations: BTreeMap<&str, &str> = service
        .annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if service.init == Some(true) {
        annotations.insert(berth_runtime::INIT_ANNOTATION, "true");
    }
    if !annotations.is_empty() {
        spec["annotations"] = json!(annotations);
    }

    // Security options.
    let mut seccomp = true;
    for opt in &service.security_opt {
        let (k, v) = opt
            .split_once(['=', ':'])
            .map_or((opt.as_str(), ""), |(k, v)| (k, v));
        match (k, v) {
            ("no-new-privileges", "" | "true") => spec["process"]["noNewPrivileges"] = json!(true),
            ("no-new-privileges", "false") => spec["process"]["noNewPrivileges"] = json!(false),
            ("seccomp", "unconfined") => seccomp = false,
            // AppArmor and SELinux labels: not used by berth (no LSM
            // profiles are loaded); accepted as Docker does on hosts
            // without them.
            ("apparmor" | "label", _) => {}
            _ => {
                return Err(SpecError::SecurityOpt {
                    service: name.to_owned(),
                    opt: opt.clone(),
                })
            }
        }
    }
    let linux = &mut spec["linux"];
    if service.privileged {
        seccomp = false;
        linux["maskedPaths"] = json!([]);
        linux["readonlyPaths"] = json!([]);
        linux["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    if !seccomp {
        if let Some(l) = linux.as_object_mut() {
            l.remove("seccomp");
        }
    }
    let sysctls: BTreeMap<&String, &String> = service.sysctls.iter().collect();
    if !sysctls.is_empty() {
        linux["sysctl"] = json!(sysctls);
    }

    // Namespaces.
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &inputs.netns {
        NetNs::Path(p) => namespaces.push(json!({"type": "network", "path": p})),
        NetNs::New => namespaces.push(json!({"type": "network"})),
        NetNs::Host => {}
    }
    match service.pid.as_str() {
        "" => {}
        "host" => namespaces.retain(|n| n["type"] != "pid"),
        other => return Err(unsupported(&format!("pid: {other:?}"))),
    }
    match service.ipc.as_str() {
        "" | "private" | "shareable" => {}
        "host" => namespaces.retain(|n| n["type"] != "ipc"),
        other => return Err(unsupported(&format!("ipc: {other:?}"))),
    }
    if service.uts == "host" {
        namespaces.retain(|n| n["type"] != "uts");
    }
    linux["namespaces"] = json!(namespaces);
    if !service.cgroup_parent.is_empty() {
        linux["cgroupsPath"] = json!(format!(
            "/{}/{}",
            service.cgroup_parent.trim_matches('/'),
            inputs.container_id
        ));
    }

    // Resources.
    let limits = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.limits.as_ref());
    let reservations = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.reservations.as_ref());
    let memory = Some(service.mem_limit.0)
        .filter(|m| *m > 0)
        .or(limits.map(|l| l.memory.0).filter(|m| *m > 0));
    let reservation = Some(service.mem_reservation.0)
        .filter(|m| *m > 0)
        .or(reservations.map(|l| l.memory.0).filter(|m| *m > 0));
    let res = &mut linux["resources"];
    if let Some(m) = memory {
        res["memory"]["limit"] = json!(m);
    }
    if let Some(r) = reservation {
        res["memory"]["reservation"] = json!(r);
    }
    if service.memswap_limit.0 != 0 {
        res["memory"]["swap"] = json!(service.memswap_limit.0);
    }
    if service.mem_swappiness.0 > 0 {
        res["memory"]["swappiness"] = json!(service.mem_swappiness.0.min(100));
    }
    if service.oom_kill_disable {
        res["memory"]["disableOOMKiller"] = json!(true);
    }
    if let Some(w) = service.blkio_config.as_ref().map(|b| b.weight) {
        if w > 0 {
            res["blockIO"]["weight"] = json!(w);
        }
    }
    let cpus = if service.cpus > 0.0 {
        service.cpus
    } else {
        limits.map(|l| l.cpus).unwrap_or(0.0)
    };
    if cpus > 0.0 {
        res["cpu"]["period"] = json!(100_000);
        res["cpu"]["quota"] = json!((f64::from(cpus) * 100_000.0).round() as i64);
    } else if service.cpu_quota > 0 {
        res["cpu"]["quota"] = json!(service.cpu_quota);
        res["cpu"]["period"] = json!(if service.cpu_period > 0 {
            service.cpu_period
        } else {
            100_000
        });
    }
    if service.cpu_shares > 0 {
        res["cpu"]["shares"] = json!(service.cpu_shares);
    }
    if !service.cpuset.is_empty() {
        res["cpu"]["cpus"] = json!(service.cpuset);
    }
    let pids = Some(service.pids_limit)
        .filter(|p| *p != 0)
        .or(limits.map(|l| l.pids).filter(|p| *p != 0));
    if let Some(p) = pids {
        res["pids"]["limit"] = json!(p);
    }

    // Mounts.
    let mut mounts: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
    if service.shm_size.0 > 0 {
        for m in &mut mounts {
            if m["destination"] == "/dev/shm" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "nodev",
                    "mode=1777",
                    format!("size={}", service.shm_size.0)
                ]);
            }
        }
    }
    if service.privileged {
        for m in &mut mounts {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                if let Some(opts) = m["options"].as_array_mut() {
                    opts.retain(|o| o != "ro");
                }
            }
        }
    }
    for (dest, host) in &inputs.etc_files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": host, "options": ["rbind", "rprivate"]}));
    }
    for t in &service.tmpfs {
        let (dest, opts) = t.split_once(':').unwrap_or((t, ""));
        let mut options = vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
        options.extend(opts.split(',').filter(|o| !o.is_empty()).map(str::to_owned));
        mounts.push(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
    }
    for v in &service.volumes {
        let ro = if v.read_only { "ro" } else { "rw" };
        match v.r#type.as_str() {
            VOLUME_BIND => {
                let propagation = v
                    .bind
                    .as_ref()
                    .map(|b| b.propagation.as_str())
                    .filter(|p| !p.is_empty())
                    .unwrap_or("rprivate");
                mounts.push(
                    json!({"destination": v.target, "type": "bind", "source": v.source,
                    "options": ["rbind", ro, propagation]}),
                );
            }
            VOLUME_VOLUME => {
                let source = volume_source(name, v, inputs)?;
                mounts.push(
                    json!({"destination": v.target, "type": "bind", "source": source,
                    "options": ["rbind", ro, "rprivate"]}),
                );
            }
            VOLUME_IMAGE => {
                let source = inputs
                    .image_volumes
                    .get(&clean_target(&v.target))
                    .ok_or_else(|| SpecError::MissingImageVolume {
                        service: name.to_owned(),
                        target: v.target.clone(),
                    })?;
                // An image's content is never written through a volume.
                mounts.push(
                    json!({"destination": v.target, "type": "bind", "source": source,
                    "options": ["rbind", "ro", "rprivate"]}),
                );
            }
            VOLUME_TMPFS => {
                let mut options =
                    vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
                if let Some(t) = &v.tmpfs {
                    if t.size.0 > 0 {
                        options.push(format!("size={}", t.size.0));
                    }
                    if t.mode != 0 {
                        options.push(format!("mode={:o}", t.mode));
                    }
                }
                if v.read_only {
                    options.push("ro".to_owned());
                }
                mounts.push(json!({"destination": v.target, "type": "tmpfs", "source": "tmpfs", "options": options}));
            }
            other => return Err(unsupported(&format!("volume type {other:?}"))),
        }
    }
    // What `volumes_from` takes from other containers, where the service
    // mounts nothing itself.
    for m in inherited_mounts(service, inputs.volumes_from) {
        let ro = if m.read_only { "ro" } else { "rw" };
        mounts.push(
            json!({"destination": m.target, "type": "bind", "source": m.source,
            "options": ["rbind", ro, "rprivate"]}),
        );
    }
    // The image's volumes the service leaves alone: anonymous volumes.
    let declared: Vec<&str> = service
        .volumes
        .iter()
        .map(|v| v.target.trim_end_matches('/'))
        .collect();
    for target in anonymous_targets_with(service, inputs.image, inputs.volumes_from) {
        if declared.contains(&target.as_str()) {
            continue;
        }
        let source = anonymous_dir(name, &target, inputs)?;
        mounts.push(json!({"destination": target, "type": "bind",
            "source": source, "options": ["rbind", "rw", "rprivate"]}));
    }
    for (target, host) in &inputs.files {
        mounts.push(
            json!({"destination": target, "type": "bind", "source": host,
            "options": ["rbind", "ro", "rprivate", "nosuid", "nodev", "noexec"]}),
        );
    }
    spec["mounts"] = json!(mounts);
    Ok(spec)
}
