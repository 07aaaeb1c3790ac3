//! Executing a plan on the host: container bundles (overlay rootfs,
//! `config.json`, `/etc` files, copies of secrets and configs), network
//! namespaces, named and anonymous volumes, the per-container monitor, and
//! the waits of `depends_on` (`super::wait`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::naming;
use super::net;
use super::observe::{ContainerState, Observed, ObservedContainer};
use super::plan::{Action, Plan};
use super::spec::{
    anonymous_targets_with, check_subpath, config_target, container_spec, host_resolv_conf,
    secret_target, shareable_mounts, ImageDefaults, NetNs, SharedMount, SpecInputs,
};
use super::state::{
    self, alive, new_id, write_atomic, ContainerRecord, HealthSpec, Paths, RunState, Status,
};
pub use super::wait::wait_condition;
use crate::image::store::Store;
use crate::model::hash::service_hash;
use crate::model::project::{Project, Service};

/// What exists of `project` now.
pub fn observe(paths: &Paths, project: &str) -> Result<Observed> {
    let mut observed = Observed::default();
    for c in state::project_containers(paths, project)? {
        let run = RunState::load(paths, &c.id);
        observed.containers.push(ObservedContainer {
            id: c.id.clone(),
            name: c.name.clone(),
            service: c.service.clone(),
            number: c.number,
            oneoff: c.oneoff,
            config_hash: c.label(naming::LABEL_CONFIG_HASH).to_owned(),
            image_digest: (!c.image_id.is_empty()).then(|| c.image_id.clone()),
            state: match run.effective_status() {
                Status::Created => ContainerState::Created,
                Status::Running => ContainerState::Running,
                Status::Restarting => ContainerState::Restarting,
                Status::Paused => ContainerState::Paused,
                Status::Exited => ContainerState::Exited,
                Status::Dead => ContainerState::Dead,
            },
            created: c.created,
        });
    }
    // A network counts as made once its DNS table entry is there too: an
    // `up` killed between the two leaves it to the next `up` to finish
    // (`ensure_network` is idempotent).
    let dns =
        berth_network::dns::DnsTable::load(&berth_network::dns::table_path(&net::dns_dir(paths)))?;
    for n in net::networks(paths).list()? {
        if dns.networks.iter().any(|d| d.name == n.name) {
            observed.networks.insert(n.name);
        }
    }
    if let Ok(entries) = std::fs::read_dir(paths.volumes()) {
        for e in entries.flatten() {
            observed
                .volumes
                .insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(observed)
}

/// The image id (config digest) each service's image resolves to in the
/// store now, for the planner's "image changed" rule; services whose image
/// is not in the store are left out.
pub fn image_digests(paths: &Paths, project: &Project) -> BTreeMap<String, String> {
    let Ok(store) = Store::open(&paths.root) else {
        return BTreeMap::new();
    };
    project
        .services
        .values()
        .filter_map(|svc| {
            let desc = store.find(&svc.image).ok()?;
            let manifest = store.manifest(&desc).ok()?;
            Some((svc.name.clone(), manifest.config.digest.clone()))
        })
        .collect()
}

/// At most this many steps run at once. Steps mostly wait (for a monitor to
/// start its container, for the kernel), so this is above the core count.
const PARALLEL: usize = 16;

/// Runs the steps of `plan` as a bounded-parallel walk of its graph: a step
/// starts as soon as its predecessors are done and a worker is free (up to
/// [`PARALLEL`] at once); starts also wait for their `depends_on`
/// conditions. The first error stops the walk once the running steps end.
pub fn execute(paths: &Paths, project: &Project, plan: &Plan, opts: &ExecOptions) -> Result<()> {
    preflight(paths, project, plan)?;
    reclaim_half_made(paths, &project.name)?;
    spread_container_dirs(paths)?;
    if plan.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::Start { .. } | Action::Create { .. } | Action::Recreate { .. }
        )
    }) {
        net::sync_docker_user(paths)?;
    }
    let n = plan.steps.len();
    if n == 0 {
        return Ok(());
    }
    struct Walk {
        started: Vec<bool>,
        done: Vec<bool>,
        running: usize,
        error: Option<anyhow::Error>,
    }
    let walk = std::sync::Mutex::new(Walk {
        started: vec![false; n],
        done: vec![false; n],
        running: 0,
        error: None,
    });
    let changed = std::sync::Condvar::new();
    let made = Made::default();
    let worker = || loop {
        let mut w = walk.lock().unwrap_or_else(|e| e.into_inner());
        let next = loop {
            if w.error.is_some() {
                break None;
            }
            let ready =
                (0..n).find(|&i| !w.started[i] && plan.steps[i].after.iter().all(|&a| w.done[a]));
            match ready {
                Some(i) => break Some(i),
                // Nothing can start now: done when nothing runs either.
                None if w.running == 0 => break None,
                None => w = changed.wait(w).unwrap_or_else(|e| e.into_inner()),
            }
        };
        let Some(i) = next else {
            changed.notify_all();
            return;
        };
        w.started[i] = true;
        w.running += 1;
        drop(w);
        let step = std::panic::AssertUnwindSafe(|| {
            run_step(paths, project, &plan.steps[i].action, opts, &made)
        });
        let result = std::panic::catch_unwind(step)
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a step panicked")));
        let mut w = walk.lock().unwrap_or_else(|e| e.into_inner());
        w.running -= 1;
        match result {
            Ok(()) => w.done[i] = true,
            Err(e) => {
                w.error.get_or_insert(e);
            }
        }
        changed.notify_all();
    };
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(n) {
            s.spawn(worker);
        }
    });
    let w = walk.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = w.error {
        return Err(e);
    }
    if w.done.iter().any(|d| !d) {
        bail!("the plan has a cycle");
    }
    Ok(())
}

/// The containers this walk made, by name: a later step (the start of a
/// container made by an earlier one) finds its id here instead of reading
/// every record of the project, which made an `up` of n services read n²
/// records.
#[derive(Default)]
struct Made(std::sync::Mutex<BTreeMap<String, String>>);

impl Made {
    fn insert(&self, name: &str, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), id.to_owned());
    }

    /// The id of the container called `name`: made by this walk, or found
    /// among the project's records.
    fn id(&self, paths: &Paths, project: &str, name: &str) -> Result<String> {
        let known = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        match known {
            Some(id) => Ok(id),
            None => find_by_name(paths, project, name),
        }
    }
}

fn run_step(
    paths: &Paths,
    project: &Project,
    action: &Action,
    opts: &ExecOptions,
    made: &Made,
) -> Result<()> {
    {
        match action {
            Action::CreateNetwork { name } => {
                let existed = net::networks(paths).get(name)?.is_some();
                net::ensure_network(paths, project, name)?;
                if !existed {
                    opts.progress(&format!("Network {name}"), "Created");
                }
            }
            Action::CheckNetwork { name } => {
                if net::networks(paths).get(name)?.is_none() {
                    bail!("network {name} declared as external, but could not be found");
                }
            }
            Action::CreateVolume { name } => {
                let existed = paths.volume_data(name).exists();
                fs_err::create_dir_all(paths.volume_data(name))?;
                if !existed {
                    opts.progress(&format!("Volume {name}"), "Created");
                }
            }
            Action::CheckVolume { name } => {
                if !paths.volume_data(name).exists() {
                    bail!("external volume \"{name}\" not found");
                }
            }
            Action::Create {
                service,
                number,
                name,
            } => {
                let svc = &project.services[service];
                opts.progress(&format!("Container {name}"), "Creating");
                let id = create_container(paths, project, svc, *number, name)?;
                made.insert(name, &id);
                opts.progress(&format!("Container {name}"), "Created");
            }
            Action::Recreate {
                service,
                number,
                name,
                old_id,
                ..
            } => {
                let svc = &project.services[service];
                opts.progress(&format!("Container {name}"), "Recreate");
                let old = ContainerRecord::load(paths, old_id).ok();
                let inherit = Inherit {
                    old: old.as_ref(),
                    renew: opts.renew_anon_volumes,
                };
                // Published ports are taken when a container is made (its
                // network attachment), so the old container must let go of
                // them first, as Docker stops it before starting the new
                // one; otherwise the new one is made first, and a failure
                // leaves the old one as it was.
                let ports_first = !svc.ports.is_empty();
                if ports_first {
                    remove_container(paths, old_id, opts.timeout)?;
                }
                let id = create_in_new(paths, project, svc, *number, name, Some(&inherit))?;
                made.insert(name, &id);
                // The old container's anonymous volumes the new one did not
                // take (`-V`, or a mount point gone from the service) go
                // with it: nothing could ever name them again.
                if !ports_first {
                    remove_container(paths, old_id, opts.timeout)?;
                }
                if let Some(mut old) = old {
                    let kept = ContainerRecord::load(paths, &id)?.anonymous_volumes;
                    old.anonymous_volumes
                        .retain(|_, v| !kept.values().any(|k| k == v));
                    remove_anonymous_volumes(paths, &old)?;
                }
                opts.progress(&format!("Container {name}"), "Recreated");
            }
            Action::Start { service, name } => {
                let svc = &project.services[service];
                wait_dependencies(paths, project, svc, opts)?;
                let id = made.id(paths, &project.name, name)?;
                let run = RunState::load(paths, &id);
                if run.effective_status() == Status::Running {
                    return Ok(());
                }
                opts.progress(&format!("Container {name}"), "Starting");
                start_container(paths, &id)?;
                for hook in &svc.post_start {
                    run_hook(paths, &id, &svc.name, hook)?;
                }
                opts.progress(&format!("Container {name}"), "Started");
            }
            Action::PreStart { service, name } => {
                let svc = &project.services[service];
                wait_dependencies(paths, project, svc, opts)?;
                let id = made.id(paths, &project.name, name)?;
                super::hooks::run_pre_start(paths, project, svc, &id)?;
            }
            Action::Restart {
                service,
                name,
                dependency,
            } => {
                if let Some(svc) = project.services.get(service) {
                    wait_dependencies(paths, project, svc, opts)?;
                } else if let Some(d) = project
                    .disabled_services
                    .get(service)
                    .and_then(|s| s.depends_on.get(dependency))
                {
                    // A service outside this `up`: only the recreated
                    // dependency is ours to wait for.
                    wait_condition(paths, &project.name, dependency, &d.condition, true, opts)?;
                }
                let id = made.id(paths, &project.name, name)?;
                opts.progress(&format!("Container {name}"), "Restarting");
                stop_container(paths, &id, opts.timeout)?;
                start_container(paths, &id)?;
                opts.progress(&format!("Container {name}"), "Started");
            }
            Action::Remove { name, id, .. } => {
                opts.progress(&format!("Container {name}"), "Stopping");
                remove_container(paths, id, opts.timeout)?;
                opts.progress(&format!("Container {name}"), "Removed");
            }
            Action::WarnOrphans { names } => warn_orphans(names),
        }
    }
    Ok(())
}

/// Compose's warning about orphan containers.
pub fn warn_orphans(names: &[String]) {
    eprintln!(
        "WARN[0000] Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
        names.join(" ")
    );
}

/// Removes what a killed `up` left of the containers it was making: their
/// records carry the project but not yet its labels (the last thing
/// `create_in` writes), so no plan sees them; and directories a kill left
/// before their record was written (see `state::recordless`). Only under the project's
/// lock, where no other `up` can be making one; one-offs (`run`, which
/// takes no lock) are left alone.
pub fn reclaim_half_made(paths: &Paths, project: &str) -> Result<()> {
    for id in state::half_made(paths, project)? {
        tracing::info!(container = %id, "removing a container a killed berth left half-made");
        teardown(paths, &id)?;
    }
    for dir in state::abandoned_staging(paths) {
        let _ = std::fs::remove_dir_all(dir);
    }
    for id in state::recordless(paths, Duration::from_secs(10)) {
        tracing::info!(container = %id, "removing a container directory without a record");
        teardown(paths, &id)?;
    }
    Ok(())
}

/// Everything that can be known to fail is checked before anything is
/// made: images present, network modes supported. No half-made stacks.
pub fn preflight(paths: &Paths, project: &Project, plan: &Plan) -> Result<()> {
    let store = Store::open(&paths.root)?;
    let mut checked = std::collections::BTreeSet::new();
    for step in &plan.steps {
        let service = match &step.action {
            Action::Create { service, .. } | Action::Recreate { service, .. } => service,
            _ => continue,
        };
        if !checked.insert(service.clone()) {
            continue;
        }
        let svc = &project.services[service];
        if svc.image.is_empty() {
            bail!("service {service:?} has no image (building images is not supported yet)");
        }
        store.find(&svc.image).with_context(|| {
            format!(
                "service {service:?}: image {} not found in the store (import it with `berth image import`)",
                svc.image
            )
        })?;
        platform_check(&store, svc)?;
        network_check(svc)?;
        unsupported_check(project, svc)?;
        super::hooks::check_pre_start(&store, svc)?;
        if matches!(step.action, Action::Create { .. }) && !svc.ports.is_empty() {
            net::check_ports(paths, &net::port_specs(svc)?)
                .with_context(|| format!("service {service:?}"))?;
        }
    }
    Ok(())
}

/// What berth cannot give a container yet is refused by name, never
/// silently left out; secrets and configs are checked here too, so a
/// missing file fails before anything is made.
fn unsupported_check(project: &Project, svc: &Service) -> Result<()> {
    let blkio_devices = svc.blkio_config.as_ref().is_some_and(|b| {
        !(b.weight_device.is_empty()
            && b.device_read_bps.is_empty()
            && b.device_read_iops.is_empty()
            && b.device_write_bps.is_empty()
            && b.device_write_iops.is_empty())
    });
    let refused = [
        (!svc.devices.is_empty(), "devices"),
        (!svc.device_cgroup_rules.is_empty(), "device_cgroup_rules"),
        (!svc.gpus.is_empty(), "gpus"),
        (!svc.userns_mode.is_empty(), "userns_mode"),
        (blkio_devices, "blkio_config per-device limits"),
        (
            svc.cpu_rt_runtime != 0 || svc.cpu_rt_period != 0,
            "cpu_rt_runtime/cpu_rt_period",
        ),
        (!svc.storage_opt.is_empty(), "storage_opt"),
        (
            !matches!(svc.runtime.as_str(), "" | "runc" | "berth"),
            "runtime",
        ),
    ];
    if let Some((_, what)) = refused.iter().find(|(set, _)| *set) {
        bail!(
            "service {:?}: {what} is not supported by berth yet",
            svc.name
        );
    }
    let driver = log_driver(svc);
    let compress = svc
        .logging
        .as_ref()
        .and_then(|l| l.options.get("compress"))
        .is_some_and(|v| crate::settings::parse_go_bool(v) == Some(true));
    if compress {
        bail!(
            "service {:?}: logging option compress=true is not supported by berth (rotated logs are kept uncompressed)",
            svc.name
        );
    }
    if !LOG_DRIVERS.contains(&driver) {
        bail!(
            "service {:?}: logging driver {driver:?} is not supported by berth (it has {}; a driver that ships logs to a collector is not implemented)",
            svc.name,
            LOG_DRIVERS.join(", ")
        );
    }
    for (kind, refs) in [("secret", &svc.secrets), ("config", &svc.configs)] {
        for r in refs {
            file_object(project, kind, &r.source)
                .with_context(|| format!("service {:?}", svc.name))?;
        }
    }
    Ok(())
}

/// The content of a top-level secret or config, from its `file`,
/// `environment` or inline `content`.
fn file_object(project: &Project, kind: &str, name: &str) -> Result<Vec<u8>> {
    let obj = match kind {
        "secret" => project.secrets.get(name).map(|s| &s.0),
        _ => project.configs.get(name).map(|c| &c.0),
    }
    .with_context(|| format!("{kind} {name:?} is not declared in the top-level {kind}s"))?;
    if obj.external {
        bail!("{kind} {name:?} is external: external {kind}s exist only in Docker Swarm");
    }
    if !obj.file.is_empty() {
        return fs_err::read(&obj.file).with_context(|| format!("{kind} {name:?}"));
    }
    // Content first: inline, or resolved from the environment of the
    // project (or include) that declared it, as docker compose does.
    if !obj.content.is_empty() {
        return Ok(obj.content.clone().into_bytes());
    }
    if !obj.environment.is_empty() {
        if !project.environment.contains_key(&obj.environment) {
            bail!(
                "{kind} {name:?}: environment variable {} is not set",
                obj.environment
            );
        }
        return Ok(obj.content.clone().into_bytes());
    }
    if !obj.content.is_empty() || kind == "config" {
        return Ok(obj.content.clone().into_bytes());
    }
    bail!("{kind} {name:?} has no file, environment or content")
}

/// A service's explicit `platform:` must be the image's, as Docker's
/// container create refuses another platform's image (berth runs no
/// emulator either).
fn platform_check(store: &Store, svc: &Service) -> Result<()> {
    match super::pull::platform_mismatch(store, svc) {
        Some(why) => bail!("service {:?}: {why}", svc.name),
        None => Ok(()),
    }
}

fn network_check(svc: &Service) -> Result<()> {
    match svc.network_mode.as_str() {
        "host" | "none" => Ok(()),
        m if m.starts_with("service:") || m.starts_with("container:") => Ok(()),
        "" | "bridge" | "default" => Ok(()),
        other => bail!(
            "service {:?}: network_mode {other:?} is not supported",
            svc.name
        ),
    }
}

/// How `execute` reports and waits.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    pub quiet: bool,
    /// Stop timeout for removals (`-t`).
    pub timeout: Option<Duration>,
    /// The longest a dependency wait may take.
    pub wait_timeout: Duration,
    /// `up -V`: a recreated container gets new anonymous volumes instead
    /// of its predecessor's.
    pub renew_anon_volumes: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            quiet: false,
            timeout: None,
            wait_timeout: Duration::from_secs(600),
            renew_anon_volumes: false,
        }
    }
}

impl ExecOptions {
    /// One progress line on standard error: compose's tty shape on a
    /// terminal, its plain shape (` Volume x Created`) elsewhere.
    pub fn progress(&self, what: &str, status: &str) {
        use std::io::IsTerminal;
        if self.quiet {
            return;
        }
        if std::io::stderr().is_terminal() {
            eprintln!(" ✔ {what:<40} {status}");
        } else {
            eprintln!(" {what} {status}");
        }
    }
}

fn find_by_name(paths: &Paths, project: &str, name: &str) -> Result<String> {
    state::project_containers(paths, project)?
        .into_iter()
        .rev()
        .find(|c| c.name == name)
        .map(|c| c.id)
        .with_context(|| format!("no container {name}"))
}

/// The image's defaults for the spec, and its id.
fn image_of(store: &Store, image: &str) -> Result<(ImageDefaults, String, Vec<PathBuf>)> {
    let desc = store.find(image).with_context(|| {
        format!("image {image} not found in the store (import it with `berth image import`)")
    })?;
    let manifest = store.manifest(&desc)?;
    let config = store.config(&manifest)?;
    let c = &config.config;
    let defaults = ImageDefaults {
        entrypoint: c.entrypoint.clone().unwrap_or_default(),
        cmd: c.cmd.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        user: c.user.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        volumes: c.volumes.iter().flat_map(|v| v.keys().cloned()).collect(),
    };
    let mut layers = store.unpack(&manifest, &config)?;
    layers.reverse();
    Ok((defaults, manifest.config.digest.clone(), layers))
}

/// Makes a container's bundle and record; returns its id.
pub fn create_container(
    paths: &Paths,
    project: &Project,
    svc: &Service,
    number: u32,
    name: &str,
) -> Result<String> {
    create_in_new(paths, project, svc, number, name, None)
}

/// The container a new one replaces, whose anonymous volumes it takes over
/// (unless `renew`), as Docker Compose does at recreation.
pub(super) struct Inherit<'a> {
    /// The container replaced (its record, read before it may be removed).
    old: Option<&'a ContainerRecord>,
    renew: bool,
}

fn create_in_new(
    paths: &Paths,
    project: &Project,
    svc: &Service,
    number: u32,
    name: &str,
    inherit: Option<&Inherit<'_>>,
) -> Result<String> {
    let id = new_id()?;
    let result = create_in(
        paths,
        project,
        svc,
        number,
        name,
        &id,
        Kind::Service,
        inherit,
    );
    if result.is_err() {
        let _ = teardown_new(paths, &id, inherit.and_then(|i| i.old));
    } else {
        super::events::emit_id(paths, &id, "create", &[]);
    }
    result.map(|()| id)
}

/// Undoes a failed create: its own anonymous volumes go too, but not ones
/// it inherited (they still belong to the container it was to replace).
pub(super) fn teardown_new(
    paths: &Paths,
    id: &str,
    replaced: Option<&ContainerRecord>,
) -> Result<()> {
    if let Ok(record) = ContainerRecord::load(paths, id) {
        let mut own = record.clone();
        own.anonymous_volumes.retain(|_, v| {
            !replaced.is_some_and(|r| r.anonymous_volumes.values().any(|x| x == v))
                && !state::all_containers(paths)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.id != id && c.anonymous_volumes.values().any(|x| x == v))
        });
        let _ = remove_anonymous_volumes(paths, &own);
    }
    teardown(paths, id)
}

/// In an anonymous volume's directory (beside `_data`): the project,
/// service and mount point it was made for, so `down -v` finds it even
/// after the container that held it is gone.
const ANONYMOUS_OWNER: &str = "anonymous.json";

/// Removes the project's anonymous volumes no container holds any more
/// (`down -v`): ones left by `down` without `-v` or `rm` without `-v`.
/// Returns their names.
pub fn remove_project_anonymous_volumes(paths: &Paths, project: &str) -> Result<Vec<String>> {
    let held: Vec<String> = state::all_containers(paths)?
        .into_iter()
        .flat_map(|c| c.anonymous_volumes.into_values())
        .collect();
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(paths.volumes()) else {
        return Ok(removed);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(owner) = std::fs::read(e.path().join(ANONYMOUS_OWNER)) else {
            continue;
        };
        let owner: serde_json::Value = serde_json::from_slice(&owner).unwrap_or_default();
        if owner["project"] == project && !held.contains(&name) {
            fs_err::remove_dir_all(e.path())?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Removes a (removed) container's anonymous volumes (`rm -v`, `down -v`).
pub fn remove_anonymous_volumes(paths: &Paths, record: &ContainerRecord) -> Result<()> {
    for name in record.anonymous_volumes.values() {
        let dir = paths.volumes().join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
    }
    Ok(())
}

/// What [`create_in`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A service's container (`project-service-N`).
    Service,
    /// A one-off (`run`, a `pre_start` hook).
    OneOff,
}

/// Makes a one-off (`run`) container of `svc`, named
/// `project-service-run-<id>`; returns its id and name.
/// Each container's directories in a block group of their own (see
/// `spread_subdirs`): its record and bundle, its monitor's FIFOs, its
/// runtime state.
fn spread_container_dirs(paths: &Paths) -> Result<()> {
    for dir in [
        paths.containers(),
        paths.run.join("containers"),
        paths.runtime_root(),
    ] {
        state::spread_subdirs(&dir)?;
    }
    Ok(())
}

pub fn create_oneoff(paths: &Paths, project: &Project, svc: &Service) -> Result<(String, String)> {
    spread_container_dirs(paths)?;
    let id = new_id()?;
    let name = if svc.container_name.is_empty() {
        naming::oneoff_name(project, &svc.name, &id)
    } else {
        svc.container_name.clone()
    };
    let result = create_in(paths, project, svc, 1, &name, &id, Kind::OneOff, None);
    if result.is_err() {
        let _ = teardown_new(paths, &id, None);
    } else {
        super::events::emit_id(paths, &id, "create", &[]);
    }
    result.map(|()| (id, name))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn create_in(
    paths: &Paths,
    project: &Project,
    svc: &Service,
    number: u32,
    name: &str,
    id: &str,
    kind: Kind,
    inherit: Option<&Inherit<'_>>,
) -> Result<()> {
    let dir = paths.container(id);
    let oneoff = kind != Kind::Service;
    // A namespace of its own, and the project networks it joins, are
    // known now: recorded from the start, so the record is written twice
    // (here and with its labels) rather than before each step. A failure
    // in between is undone by `teardown`, to which a network not joined
    // yet and a namespace not made yet are nothing to undo.
    let own_netns = matches!(
        svc.network_mode.as_str(),
        "none" | "" | "default" | "bridge"
    );
    let networks = if matches!(svc.network_mode.as_str(), "" | "default") {
        svc.networks_by_priority()
            .iter()
            .map(|k| net::network_name(project, k))
            .collect()
    } else {
        Vec::new()
    };
    let mut record = ContainerRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        project: project.name.clone(),
        service: svc.name.clone(),
        number,
        oneoff,
        labels: BTreeMap::new(),
        image: svc.image.clone(),
        image_id: String::new(),
        created: state::now_millis() / 1000,
        command: Vec::new(),
        restart: restart_policy(svc),
        stop_signal: svc.stop_signal.clone(),
        stop_grace_ms: svc
            .stop_grace_period
            .map_or(10_000, |d| (d.0 / 1_000_000).max(0) as u64),
        log_max_size: log_option(svc, "max-size"),
        log_max_file: log_option(svc, "max-file"),
        log_driver: log_driver(svc).to_owned(),
        healthcheck: health_spec(svc),
        restart_on_unhealthy: restart_on_unhealthy(svc),
        ports: Vec::new(),
        networks,
        own_netns,
        rootfs_mounted: true,
        anonymous_volumes: BTreeMap::new(),
        pre_stop: svc.pre_stop.clone(),
        mounts: Vec::new(),
        image_mounts: Vec::new(),
        stdin_open: svc.stdin_open,
    };
    // Saved first, before the image is read and before any kernel object,
    // so a failure below (or a kill -9 of this process) is cleaned up: by
    // `teardown`, or by the next `up`/`down` of the project
    // (`reclaim_half_made`: the labels come last). The directory is
    // made with the record in it.
    record.save_new(paths)?;
    let shared = volumes_from_mounts(paths, &project.name, svc)?;
    let store = Store::open(&paths.root)?;
    if svc.image.is_empty() {
        bail!(
            "service {:?} has no image (building images is not supported yet)",
            svc.name
        );
    }
    let (image, image_id, layers) = image_of(&store, &svc.image)?;
    record.image_id = image_id.clone();

    // The rootfs: overlayfs over the image's layers.
    let rootfs = dir.join("rootfs");
    for d in ["rootfs", "upper", "work"] {
        fs_err::create_dir_all(dir.join(d))?;
    }
    mount_overlay(&layers, &dir.join("upper"), &dir.join("work"), &rootfs)?;
    let image_volumes = mount_image_volumes(paths, &store, svc, &mut record)?;

    // The network namespace.
    let networks = net::networks(paths);
    let mut attached = None;
    let netns = match svc.network_mode.as_str() {
        "host" => NetNs::Host,
        "none" => NetNs::Path(networks.create_netns(id)?),
        m if m.starts_with("service:") || m.starts_with("container:") => {
            let target = m.split_once(':').map_or("", |x| x.1);
            let other = state::project_containers(paths, &project.name)?
                .into_iter()
                .find(|c| {
                    (m.starts_with("service:") && c.service == target)
                        || (m.starts_with("container:")
                            && (c.name == target || c.id.starts_with(target)))
                })
                .with_context(|| format!("network_mode {m}: no such container"))?;
            // Marked before this container can hold the namespace: its
            // owner's removal must then delete its veths itself.
            fs_err::write(paths.container(&other.id).join(NETNS_SHARED), b"")?;
            NetNs::Path(networks.netns_path(&other.id))
        }
        "bridge" => {
            let p = networks.create_netns(id)?;
            // Recorded only now: removing a container on the default
            // bridge may remove the bridge, which another container may
            // be joining.
            record.networks = vec![net::DEFAULT_BRIDGE.to_owned()];
            // Saved before attaching, so a failure is undone by teardown.
            record.save(paths)?;
            let a = net::attach_default_bridge(paths, project, svc, id, name, &p)?;
            attached = Some(a);
            NetNs::Path(p)
        }
        "" | "default" => {
            let p = networks.create_netns(id)?;
            let hostname = if svc.hostname.is_empty() {
                &id[..12]
            } else {
                svc.hostname.as_str()
            };
            let a = net::attach(paths, project, svc, id, name, hostname, &p)?;
            attached = Some(a);
            NetNs::Path(p)
        }
        _ => {
            network_check(svc)?;
            unreachable!("network_check accepts only the modes above")
        }
    };
    // Published ports, as `ps` shows them: those of the first network.
    if let Some(a) = attached.as_ref().and_then(|a| a.attachments.first()) {
        record.ports = net::ports_text(a);
    }

    // /etc files.
    let hostname = if svc.hostname.is_empty() {
        id[..12].to_owned()
    } else {
        svc.hostname.clone()
    };
    let mut etc_files = Vec::new();
    if netns != NetNs::Host {
        let mut hosts = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        );
        if let Some(a) = attached.as_ref().and_then(|a| a.attachments.first()) {
            if let Some(ip) = a.ipv4.or(a.ipv6) {
                hosts.push_str(&format!("{ip}\t{hostname}\n"));
            }
        }
        let gateway = attached
            .as_ref()
            .and_then(|a| a.attachments.first())
            .and_then(|a| a.gateway);
        for (name, ips) in &svc.extra_hosts {
            for ip in ips {
                let ip = match (ip.as_str(), gateway) {
                    ("host-gateway", Some(g)) => g.to_string(),
                    ("host-gateway", None) => "127.0.0.1".to_owned(),
                    _ => ip.clone(),
                };
                hosts.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        if svc.network_mode == "bridge" {
            hosts.push_str(&net::bridge_link_hosts(paths, project, svc)?);
        }
        fs_err::write(dir.join("hosts"), hosts)?;
        etc_files.push(("/etc/hosts", dir.join("hosts")));
        fs_err::write(dir.join("hostname"), format!("{hostname}\n"))?;
        etc_files.push(("/etc/hostname", dir.join("hostname")));
    }
    let resolv = match attached.as_ref().and_then(|a| a.nameserver) {
        Some(ns) => net::resolv_conf(svc, ns),
        None => host_resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            svc,
        ),
    };
    fs_err::write(dir.join("resolv.conf"), resolv)?;
    etc_files.push(("/etc/resolv.conf", dir.join("resolv.conf")));

    // Named volumes, filled from the image the first time.
    let volume_names: BTreeMap<String, String> = project
        .volumes
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if v.name.is_empty() {
                    k.clone()
                } else {
                    v.name.clone()
                },
            )
        })
        .collect();
    for v in &svc.volumes {
        if v.r#type == crate::model::project::VOLUME_VOLUME && !v.source.is_empty() {
            if let Some(real) = volume_names.get(&v.source) {
                let data = paths.volume_data(real);
                fs_err::create_dir_all(&data)?;
                let nocopy = v.volume.as_ref().is_some_and(|o| o.nocopy);
                let subpath = v.volume.as_ref().map_or("", |o| o.subpath.as_str());
                if subpath.is_empty() {
                    if !nocopy {
                        copy_up(&rootfs.join(v.target.trim_start_matches('/')), &data)?;
                    }
                } else {
                    // The subpath must exist in the volume when the
                    // container starts (a dependency may make it); the
                    // mount fails then, naming it.
                    check_subpath(&svc.name, &v.source, subpath)?;
                }
            }
        }
        if v.r#type == crate::model::project::VOLUME_BIND && !v.source.is_empty() {
            let create = v.bind.as_ref().is_none_or(|b| b.create_host_path);
            let p = Path::new(&v.source);
            if !p.exists() {
                if create {
                    fs_err::create_dir_all(p)?;
                } else {
                    bail!(
                        "service {:?}: bind source path {} does not exist",
                        svc.name,
                        v.source
                    );
                }
            }
        }
    }

    // Anonymous volumes: the predecessor's at the same mount point, or
    // new ones, filled from the image like a named volume.
    let inherited = inherit
        .filter(|i| !i.renew)
        .and_then(|i| i.old)
        .map(|r| r.anonymous_volumes.clone())
        .unwrap_or_default();
    for target in anonymous_targets_with(svc, &image, &shared) {
        let (vol, fresh) = match inherited.get(&target) {
            Some(v) if paths.volume_data(v).is_dir() => (v.clone(), false),
            _ => (new_id()?, true),
        };
        record.anonymous_volumes.insert(target.clone(), vol.clone());
        // Recorded before it is made, so a failure removes it.
        record.save(paths)?;
        let data = paths.volume_data(&vol);
        fs_err::create_dir_all(&data)?;
        if fresh {
            let owner = serde_json::json!({
                "project": project.name, "service": svc.name, "target": target,
            });
            write_atomic(
                &paths.volumes().join(&vol).join(ANONYMOUS_OWNER),
                &serde_json::to_vec(&owner)?,
            )?;
        }
        let nocopy = svc
            .volumes
            .iter()
            .find(|v| v.target.trim_end_matches('/') == target)
            .and_then(|v| v.volume.as_ref())
            .is_some_and(|o| o.nocopy);
        if fresh && !nocopy {
            copy_up(&rootfs.join(target.trim_start_matches('/')), &data)?;
        }
    }

    // Secrets and configs: the container's own copies, with the owner and
    // mode asked (default root, 0444), bound read-only.
    let mut files = Vec::new();
    for (kind, dir_name, refs) in [
        ("secret", "secrets", &svc.secrets),
        ("config", "configs", &svc.configs),
    ] {
        if refs.is_empty() {
            continue;
        }
        let base = dir.join(dir_name);
        fs_err::create_dir_all(&base)?;
        for r in refs {
            let content = file_object(project, kind, &r.source)
                .with_context(|| format!("service {:?}", svc.name))?;
            let target = match kind {
                "secret" => secret_target(r),
                _ => config_target(r),
            };
            let host = base.join(&r.source);
            write_atomic(&host, &content)?;
            let id_of = |what: &str, v: &str| -> Result<u32> {
                if v.is_empty() {
                    return Ok(0);
                }
                v.parse().with_context(|| {
                    format!(
                        "service {:?}: {kind} {:?}: {what} {v:?} is not a number",
                        svc.name, r.source
                    )
                })
            };
            let uid = id_of("uid", &r.uid)?;
            let gid = id_of("gid", &r.gid)?;
            std::os::unix::fs::chown(&host, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", host.display()))?;
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(
                &host,
                std::fs::Permissions::from_mode(r.mode.unwrap_or(0o444) & 0o7777),
            )?;
            files.push((target, host));
        }
    }

    let volume_dir = |n: &str| paths.volume_data(n);
    let inputs = SpecInputs {
        container_id: id,
        image: &image,
        netns,
        volume_dir: &volume_dir,
        rootfs: Some(&rootfs),
        etc_files,
        volume_names: &volume_names,
        anonymous: &record.anonymous_volumes,
        files,
        volumes_from: &shared,
        image_volumes: &image_volumes,
    };
    let spec = container_spec(svc, &inputs)?;
    let mounts = shareable_mounts(svc, &inputs)?;
    record.command = spec["process"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    write_atomic(&dir.join("config.json"), &serde_json::to_vec_pretty(&spec)?)?;

    record.mounts = mounts;
    let hash = service_hash(&resolved_refs(paths, &project.name, svc)?)?;
    record.labels = naming::container_labels(project, svc, number, oneoff, &hash, Some(&image_id));
    // No state.json yet: a missing one reads as `created` (the default
    // RunState), and the monitor writes the first.
    record.save(paths)?;
    Ok(())
}

/// The container of `service` that a `volumes_from` reference resolves
/// to: its lowest-numbered (not a one-off), as Docker Compose picks.
fn service_container<'a>(
    all: &'a [ContainerRecord],
    project: &str,
    service: &str,
) -> Option<&'a ContainerRecord> {
    all.iter()
        .filter(|c| c.service == service && !c.oneoff && c.label(naming::LABEL_PROJECT) == project)
        .min_by_key(|c| (c.number, c.created))
}

/// `svc` with its `volumes_from` service references resolved to the
/// containers there are now: what its config hash is taken of, so a
/// container is recreated when its donor is replaced or gone.
pub fn resolved_refs(paths: &Paths, project: &str, svc: &Service) -> Result<Service> {
    if svc.volumes_from.is_empty() {
        return Ok(svc.clone());
    }
    let all = state::all_containers(paths)?;
    let lookup = |name: &str| service_container(&all, project, name).map(|c| c.id.clone());
    Ok(super::spec::resolve_volumes_from(svc, &lookup)?)
}

/// The mounts `svc`'s `volumes_from` entries take, from the donors'
/// records, in the entries' order.
fn volumes_from_mounts(paths: &Paths, project: &str, svc: &Service) -> Result<Vec<SharedMount>> {
    use super::spec::{apply_volumes_from_mode, parse_volumes_from, SpecError, VolumesFromSource};
    let mut out = Vec::new();
    if svc.volumes_from.is_empty() {
        return Ok(out);
    }
    let all = state::all_containers(paths)?;
    for entry in &svc.volumes_from {
        let from = parse_volumes_from(&svc.name, entry)?;
        let donor =
            match &from.source {
                VolumesFromSource::Service(name) => service_container(&all, project, name)
                    .ok_or_else(|| SpecError::VolumesFromMissing {
                        service: name.clone(),
                    })?,
                VolumesFromSource::Container(name) => all
                    .iter()
                    .find(|c| c.name == *name || c.id == *name)
                    .or_else(|| {
                        let mut by_prefix = all.iter().filter(|c| c.id.starts_with(name.as_str()));
                        match (by_prefix.next(), by_prefix.next()) {
                            (Some(c), None) => Some(c),
                            _ => None,
                        }
                    })
                    .with_context(|| {
                        format!(
                            "service {:?}: volumes_from {entry:?}: no such container: {name}",
                            svc.name
                        )
                    })?,
            };
        out.extend(apply_volumes_from_mode(from.read_only, &donor.mounts));
    }
    Ok(out)
}

/// Mounts the images of `svc`'s `type: image` volumes read-only under the
/// container's `image-volumes/` (recorded first, so teardown unmounts
/// them); returns mount point → the host directory to bind there (the
/// image's root joined with `image.subpath`, which must stay inside it).
fn mount_image_volumes(
    paths: &Paths,
    store: &Store,
    svc: &Service,
    record: &mut ContainerRecord,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let volumes = svc
        .volumes
        .iter()
        .filter(|v| v.r#type == crate::model::project::VOLUME_IMAGE);
    for (n, v) in volumes.enumerate() {
        let what = || format!("service {:?}: image volume {}", svc.name, v.target);
        if v.source.is_empty() {
            bail!("{}: no source image", what());
        }
        let (_, _, layers) = image_of(store, &v.source).with_context(what)?;
        // Read-only overlayfs needs two layers or more; a single layer is
        // bound as it is (read-only, like every image volume).
        let root = if layers.len() == 1 {
            layers[0].clone()
        } else {
            let at = paths
                .container(&record.id)
                .join("image-volumes")
                .join(n.to_string());
            fs_err::create_dir_all(&at)?;
            record.image_mounts.push(at.clone());
            record.save(paths)?;
            crate::image::overlay::mount(&layers, None, &at).with_context(what)?;
            at
        };
        let sub = v.image.as_ref().map_or("", |i| i.subpath.as_str());
        let host = if sub.is_empty() {
            root
        } else {
            check_subpath(&svc.name, &v.source, sub)?;
            // The image's content is the image author's: a symlink on the
            // way must not lead out of it (the bind would follow it on the
            // host).
            let real_root = fs_err::canonicalize(&root)?;
            let host = std::fs::canonicalize(root.join(sub)).map_err(|e| {
                anyhow::anyhow!(
                    "{}: subpath {sub:?} not found in image {}: {e}",
                    what(),
                    v.source
                )
            })?;
            if !host.starts_with(&real_root) {
                bail!(
                    "{}: subpath {sub:?} of image {} leads out of the image",
                    what(),
                    v.source
                );
            }
            host
        };
        let target = v.target.trim_end_matches('/');
        out.insert(
            if target.is_empty() { "/" } else { target }.to_owned(),
            host,
        );
    }
    Ok(out)
}

fn restart_policy(svc: &Service) -> String {
    if !svc.restart.is_empty() {
        return svc.restart.clone();
    }
    if let Some(rp) = svc.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let max = rp.max_attempts.unwrap_or(0);
        return match rp.condition.as_str() {
            "none" => "no".into(),
            "on-failure" if max > 0 => format!("on-failure:{max}"),
            "on-failure" => "on-failure".into(),
            _ => "always".into(),
        };
    }
    "no".into()
}

/// The logging drivers berth has: `json-file` (the default), `local` and
/// `none`. Docker's remote drivers (fluentd, syslog, gelf, …) ship the
/// output to a collector; berth has no such shipping.
const LOG_DRIVERS: [&str; 3] = ["json-file", "local", "none"];

fn log_driver(svc: &Service) -> &str {
    match svc.logging.as_ref().map(|l| l.driver.as_str()) {
        None | Some("") => "json-file",
        Some(d) => d,
    }
}

/// A `logging.options` value; for the `local` driver Docker's defaults
/// (`max-size` 20m, `max-file` 5) when not set. Its rotated files are kept
/// uncompressed (Docker gzips them unless `compress: "false"`).
fn log_option(svc: &Service, key: &str) -> Option<String> {
    let set = svc
        .logging
        .as_ref()
        .and_then(|l| l.options.get(key))
        .cloned();
    match (log_driver(svc), key) {
        ("local", "max-size") => set.or_else(|| Some("20m".to_owned())),
        ("local", "max-file") => set.or_else(|| Some("5".to_owned())),
        _ => set,
    }
}

fn health_spec(svc: &Service) -> Option<HealthSpec> {
    let h = svc.healthcheck.as_ref()?;
    if h.disable || h.test.is_empty() || h.test[0] == "NONE" {
        return None;
    }
    let ms = |d: Option<crate::model::project::Duration>| {
        d.map_or(0, |d| (d.0 / 1_000_000).max(0) as u64)
    };
    Some(HealthSpec {
        test: h.test.clone(),
        interval_ms: ms(h.interval),
        timeout_ms: ms(h.timeout),
        start_period_ms: ms(h.start_period),
        start_interval_ms: ms(h.start_interval),
        retries: h.retries.unwrap_or(0) as u32,
    })
}

/// berth's restart-on-unhealthy: `x-berth: {restart_on_unhealthy: true}`
/// on the service, or the label `berth.restart-on-unhealthy=true`.
fn restart_on_unhealthy(svc: &Service) -> bool {
    let ext = svc
        .extensions
        .get("x-berth")
        .and_then(|v| v.get("restart_on_unhealthy"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let label = svc
        .labels
        .get("berth.restart-on-unhealthy")
        .is_some_and(|v| v == "true");
    ext || label
}

fn mount_overlay(layers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let upper = crate::image::overlay::Upper { upper, work };
    let method = crate::image::overlay::mount(layers, Some(upper), target)
        .with_context(|| format!("mounting the rootfs at {}", target.display()))?;
    tracing::debug!(layers = layers.len(), ?method, "rootfs mounted");
    Ok(())
}

/// Fills an empty volume from the image's content at its mount point, as
/// Docker does.
fn copy_up(src: &Path, dst: &Path) -> Result<()> {
    if !src.is_dir() {
        return Ok(());
    }
    if fs_err::read_dir(dst)?.next().is_some() {
        return Ok(());
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .status()
        .context("running cp -a")?;
    if !status.success() {
        bail!("copying {} into the volume: {status}", src.display());
    }
    Ok(())
}

/// Spawns the container's monitor and waits until it reports the start.
pub fn start_container(paths: &Paths, id: &str) -> Result<()> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let errlog = fs_err::File::create(paths.container(id).join("monitor.log"))?;
    let mut command = crate::monitor::process::monitor_command(false)?;
    let mut child = command
        .arg(id)
        .env("BERTH_ROOT", &paths.root)
        .env("BERTH_RUN", &paths.run)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::from(errlog.into_parts().0))
        .spawn()
        .context("spawning the monitor")?;
    // The command holds the pipe's write end: close it, or the read below
    // never sees the end.
    drop(command);
    let mut line = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut line);
    // The monitor lives on detached; reap it if it already ended.
    let _ = child.try_wait();
    let line = line.trim();
    if line == "ok" {
        return Ok(());
    }
    let msg = line.strip_prefix("error: ").unwrap_or(line);
    if msg.is_empty() {
        let log =
            std::fs::read_to_string(paths.container(id).join("monitor.log")).unwrap_or_default();
        bail!(
            "the monitor of {id} died before starting the container: {}",
            log.trim()
        );
    }
    bail!("{msg}")
}

/// Stops a container: its monitor gets SIGTERM (it signals the container
/// and kills it after the grace period); returns when the monitor is gone.
/// The process of an `exec` in container `id`: its own process (env, cwd,
/// user, capabilities) with `command` and the overrides given.
pub fn exec_process(
    paths: &Paths,
    id: &str,
    service: &str,
    command: &[String],
    over: &ExecOverrides<'_>,
) -> Result<berth_runtime::Process> {
    let spec = berth_runtime::spec::load(&paths.container(id))?;
    let base = spec
        .process()
        .clone()
        .context("the container's config.json has no process")?;
    let mut v = serde_json::to_value(&base)?;
    v["args"] = serde_json::json!(command);
    v["terminal"] = serde_json::json!(over.tty);
    if let Some(w) = over.workdir.filter(|w| !w.is_empty()) {
        v["cwd"] = serde_json::json!(w);
    }
    let mut env: Vec<String> = base.env().clone().unwrap_or_default();
    for e in over.env {
        let key = e.split_once('=').map_or(e.as_str(), |x| x.0);
        env.retain(|x| x.split_once('=').map_or(x.as_str(), |y| y.0) != key);
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(val) = std::env::var(e) {
            env.push(format!("{e}={val}"));
        }
    }
    v["env"] = serde_json::json!(env);
    if let Some(user) = over.user.filter(|u| !u.is_empty()) {
        let rootfs = paths.container(id).join("rootfs");
        let (uid, gid, extra) = super::spec::resolve_user(service, user, Some(&rootfs))?;
        v["user"] = serde_json::json!({"uid": uid, "gid": gid, "additionalGids": extra});
    }
    if over.privileged {
        let all = berth_runtime::caps::all_names();
        v["capabilities"] =
            serde_json::json!({"bounding": all, "effective": all, "permitted": all});
    }
    Ok(serde_json::from_value(v)?)
}

/// What `exec` and hooks change of a container's process.
#[derive(Default)]
pub struct ExecOverrides<'a> {
    pub tty: bool,
    pub workdir: Option<&'a str>,
    /// `KEY=VALUE`, or `KEY` to take our own value.
    pub env: &'a [String],
    pub user: Option<&'a str>,
    pub privileged: bool,
}

/// Runs a `post_start` or `pre_stop` hook in the running container `id`,
/// as `exec` would; a non-zero exit is an error naming the service.
pub fn run_hook(
    paths: &Paths,
    id: &str,
    service: &str,
    hook: &crate::model::project::ServiceHook,
) -> Result<()> {
    let Some(command) = hook.command.as_ref().filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    let env: Vec<String> = hook
        .environment
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    let process = exec_process(
        paths,
        id,
        service,
        command,
        &ExecOverrides {
            workdir: Some(hook.working_dir.as_str()),
            env: &env,
            user: Some(hook.user.as_str()),
            privileged: hook.privileged,
            ..ExecOverrides::default()
        },
    )?;
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    let code = match rt.exec(id, &process, &berth_runtime::ExecOptions::default()) {
        Ok(code) => code,
        Err(berth_runtime::RuntimeError::CommandNotFound { .. }) => 127,
        Err(e) => return Err(e).with_context(|| format!("running a {service} hook")),
    };
    if code != 0 {
        bail!("{service} hook exited with status {code}");
    }
    Ok(())
}

pub fn stop_container(paths: &Paths, id: &str, timeout: Option<Duration>) -> Result<()> {
    let record = ContainerRecord::load(paths, id)?;
    let mut run = RunState::load(paths, id);
    // `pre_stop` hooks run in the container first; a failing one fails the
    // stop once the container is stopped, as Docker Compose does.
    let mut hook_error = None;
    if run.effective_status() == Status::Running {
        for hook in &record.pre_stop {
            if let Err(e) = run_hook(paths, id, &record.service, hook) {
                hook_error = Some(e);
                break;
            }
        }
    }
    if run.monitor_pid <= 0 {
        // A monitor still starting the container (spawned by an `up` that
        // was killed) has written its pid file but not yet its state.
        // Only if that pid is still a monitor of this container (a stale
        // pid file may name a reused pid).
        run.monitor_pid = state::read_monitor_pid(paths, id)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(id))
            })
            .unwrap_or(0);
    }
    let grace = timeout.unwrap_or(Duration::from_millis(record.stop_grace_ms));
    // A monitor that recorded the exit may still be finishing it (its `die`
    // event, its pid file): the container ended by itself, so stopping it
    // signals nothing, as Docker's stop of a stopped container. The monitor
    // is still waited for below, so its `die` comes before our `destroy`.
    let ended = matches!(run.status, Status::Exited | Status::Dead);
    let was_up = !ended
        && ((run.monitor_pid > 0 && alive(run.monitor_pid)) || (run.pid > 0 && alive(run.pid)));
    if run.monitor_pid > 0 && alive(run.monitor_pid) {
        let signal =
            crate::monitor::process::parse_signal(&record.stop_signal).map_or(15, |s| s as i32);
        if !ended {
            super::events::emit(paths, &record, "kill", &[("signal", signal.to_string())]);
        }
        let pid = nix::unistd::Pid::from_raw(run.monitor_pid);
        if let Some(t) = timeout {
            // The monitor's own grace is the container's: tell it ours.
            state::write_atomic(
                &paths.monitor_stop(id),
                t.as_millis().to_string().as_bytes(),
            )?;
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        // The monitor signals the container, kills it after the grace
        // period and exits: wait for that (a pidfd, no polling). A `-t`
        // shorter than the container's own grace asks again at its end (the
        // monitor kills on a second request); a monitor that hangs is killed.
        let mut gone = wait_gone(run.monitor_pid, grace + Duration::from_millis(500));
        if !gone && timeout.is_some() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if !gone {
            gone = wait_gone(run.monitor_pid, Duration::from_secs(5));
        }
        if !gone {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    // No monitor (it was killed): the runtime's container may remain.
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    if rt.state(id).is_ok() {
        let _ = rt.delete(id, true);
        let mut run = RunState::load(paths, id);
        if run.status != Status::Exited {
            run.status = Status::Exited;
            run.exit_code = 137;
            run.pid = 0;
            run.monitor_pid = 0;
            run.stopped_by_user = true;
            run.finished_at = state::now_millis();
            run.save(paths, id)?;
        }
    }
    if was_up {
        super::events::emit(paths, &record, "stop", &[]);
    }
    hook_error.map_or(Ok(()), Err)
}

/// Waits up to `d` for process `pid` (not our child) to end; true if it
/// has. Sleeps on a pidfd, which becomes readable when the process exits.
fn wait_gone(pid: i32, d: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return true;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return !alive(pid);
    };
    let deadline = Instant::now() + d;
    loop {
        if !alive(pid) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_)
                if fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLIN)) =>
            {
                return true
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return !alive(pid),
        }
    }
}

/// Stops and removes a container and everything it holds.
pub fn remove_container(paths: &Paths, id: &str, timeout: Option<Duration>) -> Result<()> {
    if paths.container(id).join("container.json").exists() {
        stop_container(paths, id, timeout)?;
    }
    teardown(paths, id)
}

/// Removes what a container holds (rootfs mount, network attachments and
/// namespace, state) without stopping it: for containers already stopped.
pub fn teardown(paths: &Paths, id: &str) -> Result<()> {
    use nix::mount::{umount2, MntFlags};
    let dir = paths.container(id);
    let _ = umount2(&dir.join("rootfs"), MntFlags::MNT_DETACH);
    let networks = net::networks(paths);
    let ns = networks.netns_path(id);
    if let Ok(record) = ContainerRecord::load(paths, id) {
        for m in &record.image_mounts {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        super::events::emit(paths, &record, "destroy", &[]);
        if ns.exists() && record.own_netns && !netns_may_be_shared(paths, id) {
            // Its veths die with its namespace, deleted below.
            net::release(paths, id, &record.networks);
        } else {
            net::detach(
                paths,
                id,
                &record.networks,
                ns.exists().then_some(ns.as_path()),
            );
        }
    }
    if ns.exists() {
        networks.delete_netns(id)?;
    }
    let _ = std::fs::remove_file(paths.monitor_pid(id));
    let run_dir = paths.container_run(id);
    if run_dir.exists() {
        fs_err::remove_dir_all(&run_dir)?;
    }
    if dir.exists() {
        fs_err::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// In a container's directory: another container joined its network
/// namespace (see `state`'s layout).
const NETNS_SHARED: &str = "netns-shared";

/// Whether another container joined `id`'s network namespace
/// (`network_mode: service:…` or `container:…`, marked when it was made),
/// which would keep the namespace, and the veths in it, after `id` is
/// removed. One `stat`, where reading every record would cost
/// milliseconds on a host with hundreds of containers.
fn netns_may_be_shared(paths: &Paths, id: &str) -> bool {
    !matches!(
        std::fs::symlink_metadata(paths.container(id).join(NETNS_SHARED)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    )
}

/// Waits until every dependency of `svc` meets its condition.
fn wait_dependencies(
    paths: &Paths,
    project: &Project,
    svc: &Service,
    opts: &ExecOptions,
) -> Result<()> {
    for (dep, d) in &svc.depends_on {
        if !project.services.contains_key(dep) {
            if d.required {
                bail!(
                    "service {:?} depends on undefined service {dep:?}",
                    svc.name
                );
            }
            continue;
        }
        wait_condition(paths, &project.name, dep, &d.condition, d.required, opts)?;
    }
    Ok(())
}
