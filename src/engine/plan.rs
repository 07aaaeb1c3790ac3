//! `plan(&Project, &Observed, &UpOptions) -> Plan`: what `up` must do to
//! turn what exists into what the project asks for. Pure, so every rule is a
//! golden test, and `--dry-run` prints the same text.
//!
//! The rules are Docker Compose's convergence (v2.40): per service, in
//! dependency order, the containers are sorted obsolete first and then by
//! number (highest first), the ones past the expected scale are removed
//! (obsolete and highest-numbered go first), the others are recreated when
//! their config hash or image changed (or always with `--force-recreate`,
//! never with `--no-recreate`), and new containers take the numbers after
//! the highest in use. Recreation creates the new container before the old
//! one is removed. Networks and volumes the services use are created first;
//! external ones are only checked. Containers of services no longer in the
//! project, and one-off containers that have exited, are orphans: removed
//! with `--remove-orphans`, reported otherwise (unless
//! `COMPOSE_IGNORE_ORPHANS`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::graph::{GraphError, ServiceGraph};
use crate::model::hash::{service_hash, HashError};
use crate::model::project::{Project, Service};

use super::naming::container_name;
use super::observe::{ContainerState, Observed, ObservedContainer};

/// When an existing container is replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recreate {
    /// When its configuration or image changed (the default).
    #[default]
    Diverged,
    /// Always (`--force-recreate`).
    Force,
    /// Never (`--no-recreate`).
    Never,
}

/// The choices of `up` that change the plan.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    pub recreate: Recreate,
    /// Recreate these services' dependencies too? `--always-recreate-deps`.
    pub recreate_deps: bool,
    pub remove_orphans: bool,
    /// `COMPOSE_IGNORE_ORPHANS`: no warning about orphans.
    pub ignore_orphans: bool,
    /// `--scale SERVICE=N`, over `deploy.replicas` and `scale`.
    pub scale: BTreeMap<String, u32>,
    /// `--no-start`: create only.
    pub no_start: bool,
    /// `--all-resources`: create the networks no service uses too.
    pub all_resources: bool,
    /// The image digest each service's image resolves to now, when known;
    /// a container made from another one is recreated.
    pub image_digests: BTreeMap<String, String>,
}

/// Why a container is replaced or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    ConfigChanged,
    ImageChanged,
    Forced,
    ScaleDown,
    Orphan,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::ConfigChanged => "config changed",
            Reason::ImageChanged => "image changed",
            Reason::Forced => "forced",
            Reason::ScaleDown => "scale down",
            Reason::Orphan => "orphan",
        })
    }
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateNetwork {
        name: String,
    },
    /// An external network must exist already.
    CheckNetwork {
        name: String,
    },
    CreateVolume {
        name: String,
    },
    CheckVolume {
        name: String,
    },
    /// A new container.
    Create {
        service: String,
        number: u32,
        name: String,
    },
    /// A new container in place of `old` (made first, then `old` stopped
    /// and removed, then the new one takes the name).
    Recreate {
        service: String,
        number: u32,
        name: String,
        old_id: String,
        reason: Reason,
    },
    Start {
        service: String,
        name: String,
    },
    /// Run the service's `pre_start` hooks, each in a short-lived container
    /// sharing the volumes of container `name` (the lowest-numbered one to
    /// start), before any of its containers starts.
    PreStart {
        service: String,
        name: String,
    },
    /// Stop and start a kept container: a dependency it has
    /// `depends_on.restart: true` on was recreated.
    Restart {
        service: String,
        name: String,
        dependency: String,
    },
    Remove {
        service: String,
        name: String,
        id: String,
        reason: Reason,
    },
    /// Orphans found and left (without `--remove-orphans`).
    WarnOrphans {
        names: Vec<String>,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateNetwork { name } => write!(f, "network create {name}"),
            Action::CheckNetwork { name } => write!(f, "network check {name} (external)"),
            Action::CreateVolume { name } => write!(f, "volume create {name}"),
            Action::CheckVolume { name } => write!(f, "volume check {name} (external)"),
            Action::Create { name, .. } => write!(f, "container create {name}"),
            Action::Recreate { name, reason, .. } => {
                write!(f, "container recreate {name} ({reason})")
            }
            Action::Start { name, .. } => write!(f, "container start {name}"),
            Action::PreStart { service, name } => {
                write!(f, "pre_start hooks of {service} (volumes of {name})")
            }
            Action::Restart {
                name, dependency, ..
            } => write!(f, "container restart {name} ({dependency} recreated)"),
            Action::Remove { name, reason, .. } => write!(f, "container remove {name} ({reason})"),
            Action::WarnOrphans { names } => {
                write!(
                    f,
                    "warn orphan containers {} (use --remove-orphans)",
                    names.join(", ")
                )
            }
        }
    }
}

/// A step and the steps it waits for (indexes into [`Plan::steps`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub after: Vec<usize>,
}

/// The ordered steps of an `up`; independent steps may run in parallel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    fn push(&mut self, action: Action, after: Vec<usize>) -> usize {
        self.steps.push(Step { action, after });
        self.steps.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// One line per step: `N. action [after a, b]`.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            write!(f, "{:>2}. {}", i + 1, s.action)?;
            if !s.after.is_empty() {
                let after: Vec<String> = s.after.iter().map(|a| (a + 1).to_string()).collect();
                write!(f, "  [after {}]", after.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("service {service:?}: {source}")]
    Hash {
        service: String,
        #[source]
        source: HashError,
    },
    #[error("services.{service}: can't set container_name and scale {scale}: a container name must be unique")]
    ContainerNameScale { service: String, scale: u32 },
    #[error("services.{service}: scale must not be negative ({value})")]
    NegativeScale { service: String, value: i64 },
    /// `network_mode`/`ipc`/`pid: service:X` or `volumes_from: [X]` where
    /// X is not part of this `up` (`--no-deps`) and has no container.
    #[error("cannot share {what} with service {target}: container missing")]
    SharedNamespaceMissing { what: &'static str, target: String },
}

/// A service sharing another's namespace (`network_mode`, `ipc`, `pid`:
/// `service:X`) or volumes (`volumes_from: [X]`) needs X's container: made
/// by this plan when X is part of it, else one that exists (`up
/// --no-deps`), as compose's `resolveSharedNamespaces` and
/// `resolveVolumeFrom`.
fn check_shared_namespaces(
    project: &Project,
    service: &Service,
    observed: &Observed,
) -> Result<(), PlanError> {
    let modes = [
        ("network namespace", &service.network_mode),
        ("IPC namespace", &service.ipc),
        ("PID namespace", &service.pid),
    ];
    let shared = modes
        .into_iter()
        .filter_map(|(what, mode)| Some((what, mode.strip_prefix("service:")?)));
    // `volumes_from: [SERVICE[:ro|rw]]`; `container:NAME` names no service.
    let volumes = service
        .volumes_from
        .iter()
        .filter_map(|v| v.split(':').next())
        .filter(|name| *name != "container")
        .map(|name| ("volume", name));
    for (what, target) in shared.chain(volumes) {
        let exists = project.services.contains_key(target)
            || observed
                .containers
                .iter()
                .any(|c| c.service == target && !c.oneoff);
        if !exists {
            return Err(PlanError::SharedNamespaceMissing {
                what,
                target: target.to_owned(),
            });
        }
    }
    Ok(())
}

/// The number of containers `service` should have.
pub fn expected_scale(service: &Service, opts: &UpOptions) -> Result<u32, PlanError> {
    if let Some(n) = opts.scale.get(&service.name) {
        return Ok(*n);
    }
    let value = service
        .deploy
        .as_ref()
        .and_then(|d| d.replicas)
        .or(service.scale)
        .unwrap_or(1);
    u32::try_from(value).map_err(|_| PlanError::NegativeScale {
        service: service.name.clone(),
        value,
    })
}

/// What `up` must do.
pub fn plan(project: &Project, observed: &Observed, opts: &UpOptions) -> Result<Plan, PlanError> {
    let graph = ServiceGraph::new(project)?;
    let mut plan = Plan::default();

    // Networks and volumes first: every container waits for all of them (a
    // handful of cheap steps; precise edges would not start anything sooner).
    let mut resources = Vec::new();
    let used_networks: BTreeSet<&str> = project
        .services
        .values()
        .flat_map(|s| s.networks.keys().map(String::as_str))
        .collect();
    for (key, net) in &project.networks {
        if !opts.all_resources && !used_networks.contains(key.as_str()) {
            continue;
        }
        let action = if net.external {
            Action::CheckNetwork {
                name: net.name.clone(),
            }
        } else if observed.networks.contains(&net.name) {
            continue;
        } else {
            Action::CreateNetwork {
                name: net.name.clone(),
            }
        };
        resources.push(plan.push(action, Vec::new()));
    }
    for vol in project.volumes.values() {
        let action = if vol.external {
            Action::CheckVolume {
                name: vol.name.clone(),
            }
        } else if observed.volumes.contains(&vol.name) {
            continue;
        } else {
            Action::CreateVolume {
                name: vol.name.clone(),
            }
        };
        resources.push(plan.push(action, Vec::new()));
    }

    // The step after which each service counts as up (its last start, or its
    // last create with --no-start), for its dependents to wait on.
    let mut ready: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    for name in graph.start_order() {
        let service = &project.services[name];
        check_shared_namespaces(project, service, observed)?;
        let mut after = resources.clone();
        for (dep, _) in graph.dependencies(name) {
            after.extend(ready.get(dep).into_iter().flatten().copied());
        }
        after.sort_unstable();
        after.dedup();
        let first = plan.steps.len();
        // A `volumes_from` donor recreated: the container made with the old
        // one goes too (Docker Compose's cascade), as its hash would say
        // once the donor is replaced.
        let donor_recreated = service
            .volumes_from
            .iter()
            .filter(|v| !v.starts_with("container:"))
            .any(|v| recreated.contains(v.split(':').next().unwrap_or(v)));
        let mut steps = plan_service(
            project,
            service,
            observed,
            &ServicePlan {
                opts,
                after: &after,
                donor_recreated,
            },
            &mut plan,
        )?;
        let made: Vec<String> = plan.steps[first..]
            .iter()
            .filter_map(|s| match &s.action {
                Action::Recreate { name, .. } | Action::Create { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        if plan.steps[first..]
            .iter()
            .any(|s| matches!(s.action, Action::Recreate { .. }))
        {
            recreated.insert(name.to_owned());
        }
        // A dependency recreated (not only restarted) restarts the
        // running containers kept here that depend on it with
        // `restart: true`, once it is up; ones made afresh start after it
        // anyway.
        let restart_with = graph
            .dependencies(name)
            .into_iter()
            .find(|(dep, d)| d.restart && recreated.contains(*dep))
            .map(|(dep, _)| dep.to_owned());
        if let (Some(dep), false) = (restart_with, opts.no_start) {
            steps.extend(plan_restarts(
                observed,
                name,
                &dep,
                &made,
                after.clone(),
                &mut plan,
            ));
        }
        ready.insert(name.to_owned(), steps);
    }
    // Services left out of this `up` (`up SERVICE`, profiles) follow a
    // recreated dependency too, when they say `restart: true`.
    if !opts.no_start {
        for (name, svc) in &project.disabled_services {
            let restart_with = svc
                .depends_on
                .iter()
                .find(|(dep, d)| d.restart && recreated.contains(*dep))
                .map(|(dep, _)| dep.clone());
            if let Some(dep) = restart_with {
                let after = ready.get(&dep).cloned().unwrap_or_default();
                plan_restarts(observed, name, &dep, &[], after, &mut plan);
            }
        }
    }

    let orphans = orphans(project, observed);
    if !orphans.is_empty() && (opts.remove_orphans || !opts.ignore_orphans) {
        if opts.remove_orphans {
            for c in orphans {
                plan.push(
                    Action::Remove {
                        service: c.service.clone(),
                        name: c.name.clone(),
                        id: c.id.clone(),
                        reason: Reason::Orphan,
                    },
                    Vec::new(),
                );
            }
        } else {
            let mut names: Vec<String> = orphans.iter().map(|c| c.name.clone()).collect();
            names.sort();
            plan.push(Action::WarnOrphans { names }, Vec::new());
        }
    }
    Ok(plan)
}

/// The project's orphans, as compose's `isOrphaned`: containers of services
/// the file no longer has (neither enabled nor disabled), and one-off
/// (`run`) containers that have exited.
pub fn orphans<'a>(project: &Project, observed: &'a Observed) -> Vec<&'a ObservedContainer> {
    observed
        .containers
        .iter()
        .filter(|c| {
            if c.oneoff {
                matches!(c.state, ContainerState::Exited | ContainerState::Dead)
            } else {
                !project.services.contains_key(&c.service)
                    && !project.disabled_services.contains_key(&c.service)
            }
        })
        .collect()
}

/// Restarts the running containers of `service` that this plan neither
/// makes (`made`) nor removes, once `after` is done.
fn plan_restarts(
    observed: &Observed,
    service: &str,
    dependency: &str,
    made: &[String],
    after: Vec<usize>,
    plan: &mut Plan,
) -> Vec<usize> {
    let mut kept: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| !c.oneoff && c.service == service && c.state == ContainerState::Running)
        .filter(|c| !made.contains(&c.name))
        .filter(|c| {
            !plan
                .steps
                .iter()
                .any(|s| matches!(&s.action, Action::Remove { id, .. } if *id == c.id))
        })
        .collect();
    kept.sort_by_key(|c| c.number);
    kept.into_iter()
        .map(|c| {
            plan.push(
                Action::Restart {
                    service: service.to_owned(),
                    name: c.name.clone(),
                    dependency: dependency.to_owned(),
                },
                after.clone(),
            )
        })
        .collect()
}

/// `service` with its `volumes_from` service references resolved against
/// the containers observed, as the engine hashes it at create
/// (`execute::resolved_refs`). An unresolved one is left as written: the
/// hash cannot match then, and the re-creation names the missing donor.
fn with_resolved_refs(service: &Service, observed: &Observed) -> Service {
    if service.volumes_from.is_empty() {
        return service.clone();
    }
    let lookup = |name: &str| {
        observed
            .containers
            .iter()
            .filter(|c| !c.oneoff && c.service == name)
            .min_by_key(|c| (c.number, c.created))
            .map(|c| c.id.clone())
    };
    super::spec::resolve_volumes_from(service, &lookup).unwrap_or_else(|_| service.clone())
}

/// What the plan of one service depends on besides the project.
struct ServicePlan<'a> {
    opts: &'a UpOptions,
    /// The steps its containers wait for.
    after: &'a [usize],
    /// A service it takes `volumes_from` is recreated by this plan.
    donor_recreated: bool,
}

fn must_recreate(
    service: &Service,
    hash: &str,
    c: &ObservedContainer,
    opts: &UpOptions,
    donor_recreated: bool,
) -> Option<Reason> {
    match opts.recreate {
        Recreate::Never => None,
        Recreate::Force => Some(Reason::Forced),
        Recreate::Diverged if c.config_hash != hash || donor_recreated => {
            Some(Reason::ConfigChanged)
        }
        Recreate::Diverged => match opts.image_digests.get(&service.name) {
            Some(d) if c.image_digest.as_deref() != Some(d.as_str()) => Some(Reason::ImageChanged),
            _ => None,
        },
    }
}

fn plan_service(
    project: &Project,
    service: &Service,
    observed: &Observed,
    sp: &ServicePlan<'_>,
    plan: &mut Plan,
) -> Result<Vec<usize>, PlanError> {
    let (opts, after) = (sp.opts, sp.after);
    let expected = expected_scale(service, opts)?;
    if expected > 1 && !service.container_name.is_empty() {
        return Err(PlanError::ContainerNameScale {
            service: service.name.clone(),
            scale: expected,
        });
    }
    let hash =
        service_hash(&with_resolved_refs(service, observed)).map_err(|source| PlanError::Hash {
            service: service.name.clone(),
            source,
        })?;
    let mut containers: Vec<(&ObservedContainer, Option<Reason>)> = observed
        .containers
        .iter()
        .filter(|c| !c.oneoff && c.service == service.name)
        .map(|c| {
            (
                c,
                must_recreate(service, &hash, c, opts, sp.donor_recreated),
            )
        })
        .collect();
    // Kept first: up to date before obsolete, then lowest number first, so
    // scaling down removes obsolete and high-numbered containers.
    containers.sort_by(|(a, ra), (b, rb)| {
        ra.is_some()
            .cmp(&rb.is_some())
            .then(a.number.cmp(&b.number))
            .then(a.created.cmp(&b.created))
    });
    let next = containers.iter().map(|(c, _)| c.number).max().unwrap_or(0) + 1;
    let mut ends = Vec::new();
    // With `pre_start` hooks, the starts wait for them: gathered here
    // (number, name, what the start waits for) and pushed at the end.
    let hooked = !service.pre_start.is_empty() && !opts.no_start;
    let mut deferred: Vec<(u32, String, Vec<usize>)> = Vec::new();
    // The step after which a container counts as up: its start, or with
    // --no-start the step that made it.
    let mut finish =
        |plan: &mut Plan, number: u32, name: &str, made: Option<usize>, after: Vec<usize>| {
            if opts.no_start {
                return made;
            }
            if hooked {
                deferred.push((number, name.to_owned(), after));
                return None;
            }
            Some(plan.push(
                Action::Start {
                    service: service.name.clone(),
                    name: name.to_owned(),
                },
                after,
            ))
        };
    // A kept container already running: the hooks ran for this service.
    let mut running_kept = false;
    for (i, (c, reason)) in containers.iter().enumerate() {
        if i as u32 >= expected {
            plan.push(
                Action::Remove {
                    service: service.name.clone(),
                    name: c.name.clone(),
                    id: c.id.clone(),
                    reason: Reason::ScaleDown,
                },
                Vec::new(),
            );
            continue;
        }
        if let Some(reason) = reason {
            let name = container_name(project, service, c.number);
            let made = plan.push(
                Action::Recreate {
                    service: service.name.clone(),
                    number: c.number,
                    name: name.clone(),
                    old_id: c.id.clone(),
                    reason: *reason,
                },
                after.to_vec(),
            );
            ends.extend(finish(plan, c.number, &name, Some(made), vec![made]));
        } else if c.state != ContainerState::Running {
            ends.extend(finish(plan, c.number, &c.name, None, after.to_vec()));
        } else {
            running_kept = true;
        }
    }
    let have = containers.len().min(expected as usize) as u32;
    for k in 0..expected.saturating_sub(have) {
        let number = next + k;
        let name = container_name(project, service, number);
        let made = plan.push(
            Action::Create {
                service: service.name.clone(),
                number,
                name: name.clone(),
            },
            after.to_vec(),
        );
        ends.extend(finish(plan, number, &name, Some(made), vec![made]));
    }
    if deferred.is_empty() {
        return Ok(ends);
    }
    // Docker Compose runs `pre_start` once per service, only when none of
    // its containers is running (first `up`, recreation, `--force-recreate`).
    let mut start_after = Vec::new();
    if !running_kept {
        let mut waits: Vec<usize> = deferred.iter().flat_map(|d| d.2.clone()).collect();
        waits.sort_unstable();
        waits.dedup();
        let first = deferred
            .iter()
            .min_by_key(|d| d.0)
            .map(|d| d.1.clone())
            .unwrap_or_default();
        start_after.push(plan.push(
            Action::PreStart {
                service: service.name.clone(),
                name: first,
            },
            waits,
        ));
    }
    for (_, name, after) in deferred {
        let after = if start_after.is_empty() {
            after
        } else {
            start_after.clone()
        };
        ends.push(plan.push(
            Action::Start {
                service: service.name.clone(),
                name,
            },
            after,
        ));
    }
    Ok(ends)
}
