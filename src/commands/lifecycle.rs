//! `up`, `down`, `ps`, `logs`, `start`, `stop`, `restart`, `kill`, `rm`:
//! observe → plan → execute, with the engine's state on disk.

use std::collections::BTreeMap;
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::lifecycle::{
    CreateArgs, DownArgs, ExecArgs, KillArgs, LogsArgs, LsArgs, PortArgs, PsArgs, PsFormat,
    RemoveImages, RmArgs, RunArgs, ServicesArgs, ServicesTimeoutArgs, UpArgs,
};
use crate::engine::execute::{self, ExecOptions};
use crate::engine::state::{self, ContainerRecord, Lock, Paths, RunState, Status};
use crate::engine::{plan, Recreate, UpOptions};
use crate::model::project::Project;
use crate::settings::ProjectArgs;

use super::project;

/// A boolean from the environment, as Go's `strconv.ParseBool` reads it
/// (compose's `utils.StringToBool`).
fn env_true(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "t" | "true")
}

fn timeout(t: Option<u64>) -> Option<Duration> {
    t.map(Duration::from_secs)
}

/// The project of a verb on existing containers: from the compose file, or
/// from the containers by project name when no file is in reach.
fn load_existing(args: &ProjectArgs) -> Result<Project> {
    let p = project::load_or_name(args, &[])?;
    crate::monitor::adopt::adopt_orphans(&Paths::from_env());
    Ok(p)
}

/// Loads the project; `--no-deps` keeps only the named services.
fn load(args: &ProjectArgs, services: &[String], no_deps: bool) -> Result<Project> {
    let mut p = project::load(args, services)?;
    // Containers whose monitor died get a new one before anything else.
    crate::monitor::adopt::adopt_orphans(&Paths::from_env());
    if no_deps && !services.is_empty() {
        let names: Vec<String> = p.services.keys().cloned().collect();
        for n in names {
            if !services.contains(&n) {
                if let Some(s) = p.services.remove(&n) {
                    p.disabled_services.insert(n, s);
                }
            }
        }
        // As compose-go's IgnoreDependencies: the selected services no
        // longer depend on what was left out.
        let kept: Vec<String> = p.services.keys().cloned().collect();
        for s in p.services.values_mut() {
            s.depends_on.retain(|d, _| kept.contains(d));
        }
    }
    Ok(p)
}

pub fn up(args: &ProjectArgs, up: &UpArgs, dry_run: bool) -> Result<u8> {
    check_menu(up)?;
    let project = load(args, &up.services, up.no_deps)?;
    // As compose's `create`: only the services this `up` would make must
    // have distinct container names (loading the file does not check it).
    crate::model::consistency::check_container_names(&project)?;
    let paths = Paths::from_env();
    let _lock = if dry_run {
        None
    } else {
        Some(Lock::acquire(&paths.project_lock(&project.name))?)
    };
    let mut scale = BTreeMap::new();
    for s in &up.scale {
        let (name, n) = s
            .split_once('=')
            .with_context(|| format!("--scale {s:?}: expected SERVICE=NUM"))?;
        let n: u32 = n
            .parse()
            .with_context(|| format!("--scale {s:?}: {n:?} is not a number"))?;
        scale.insert(name.to_owned(), n);
    }
    let opts = UpOptions {
        recreate: if up.force_recreate {
            Recreate::Force
        } else if up.no_recreate {
            Recreate::Never
        } else {
            Recreate::Diverged
        },
        remove_orphans: up.remove_orphans,
        ignore_orphans: project
            .environment
            .get("COMPOSE_IGNORE_ORPHANS")
            .is_some_and(|v| env_true(v)),
        scale,
        no_start: up.no_start,
        all_resources: args.all_resources,
        ..UpOptions::default()
    };
    if !dry_run {
        crate::engine::events::compact(&paths, &project.name);
    }
    let exec_opts = ExecOptions {
        timeout: timeout(up.timeout),
        wait_timeout: up
            .wait_timeout
            .map_or(Duration::from_secs(600), Duration::from_secs),
        renew_anon_volumes: up.renew_anon_volumes,
        quiet: args.quiet_progress,
    };
    let pull_flag = up.pull.as_deref().filter(|p| *p != "policy");
    if dry_run {
        crate::engine::pull::check_policies(&paths, &project, pull_flag)?;
    } else {
        // `--quiet-pull` drops the layer progress, which berth does not
        // print; `--progress quiet` (in `exec_opts`) drops the lines too.
        crate::engine::pull::pull_images(&paths, &project, pull_flag, &exec_opts)?;
    }
    // A container made from another image than its service's image now
    // names (a pull brought a newer one) is recreated.
    let opts = UpOptions {
        image_digests: execute::image_digests(&paths, &project),
        ..opts
    };
    let observed = execute::observe(&paths, &project.name)?;
    let the_plan = plan(&project, &observed, &opts)?;
    if dry_run {
        print!("{the_plan}");
        return Ok(0);
    }
    // Exits from here on are this `up`'s to report in the foreground.
    let began = state::now_millis();
    execute::execute(&paths, &project, &the_plan, &exec_opts)?;
    // A DNS server or port proxy killed since the last `up` comes back.
    crate::engine::net::ensure_dns(&paths)?;
    crate::engine::net::ensure_port_proxies(&paths)?;
    if up.wait {
        for (name, svc) in &project.services {
            let condition = if svc
                .healthcheck
                .as_ref()
                .is_some_and(|h| !h.disable && !h.test.is_empty() && h.test[0] != "NONE")
            {
                "service_healthy"
            } else {
                "service_started"
            };
            execute::wait_condition(&paths, &project.name, name, condition, true, &exec_opts)?;
        }
        return Ok(0);
    }
    if up.detach || up.no_start {
        return Ok(0);
    }
    // Attached: follow every container's log until they all stop or the
    // user interrupts; then stop the stack.
    drop(_lock);
    let (attached, watched) = attach_sets(&project, up)?;
    let follow = LogsArgs {
        services: attached,
        follow: true,
        tail: "all".into(),
        timestamps: up.timestamps,
        no_color: up.no_color,
        no_log_prefix: up.no_log_prefix,
        since: None,
        until: None,
        index: None,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, i) = (stop.clone(), interrupted.clone());
    let _ = ctrlc_hook(move || {
        i.store(true, std::sync::atomic::Ordering::SeqCst);
        s.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // As compose: `up` returns once the containers of the services it was
    // given (else the attached ones) have all exited, leaving the others.
    let watch_done = {
        let (stop, paths, name) = (stop.clone(), paths.clone(), project.name.clone());
        move || {
            let done = watched_done(&paths, &name, &watched);
            if done {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            done
        }
    };
    let abort = up.abort_on_container_exit || up.exit_code_from.is_some();
    let abort_failure = up.abort_on_container_failure;
    // The container whose exit ended the run, and its code.
    let ended: std::sync::Arc<std::sync::Mutex<Option<(String, i32)>>> = Default::default();
    if abort || abort_failure {
        let (stop, ended, paths, name) = (
            stop.clone(),
            ended.clone(),
            paths.clone(),
            project.name.clone(),
        );
        std::thread::spawn(move || loop {
            if let Ok(cs) = state::project_containers(&paths, &name) {
                for c in cs.iter().filter(|c| !c.oneoff) {
                    let run = RunState::load(&paths, &c.id);
                    let gone = run.effective_status() == Status::Exited && run.monitor_pid == 0;
                    if gone && (abort || run.exit_code != 0) {
                        *ended.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((c.service.clone(), run.exit_code));
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        });
    }
    let watcher = watch_done.clone();
    std::thread::spawn(move || {
        while !watcher() {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    follow_logs(&paths, &project.name, &follow, Some(&stop), Some(began))?;
    let ended = ended.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if ended.is_none() && !interrupted.load(std::sync::atomic::Ordering::SeqCst) && watch_done() {
        return Ok(0);
    }
    if ended.is_some() {
        // The exit itself was printed with the logs (`fail-1 exited with
        // code 111`).
        eprintln!("Aborting on container exit...");
    } else {
        eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
    }
    let containers = state::project_containers(&paths, &project.name)?;
    let refs: Vec<&ContainerRecord> = containers.iter().filter(|c| !c.oneoff).collect();
    let levels = project_levels(&project);
    let t = timeout(up.timeout);
    for_each_level(&levels, &refs, true, |c| {
        execute::stop_container(&paths, &c.id, t)?;
        eprintln!(" ✔ Container {:<40} Stopped", c.name);
        Ok(())
    })?;
    if let Some(from) = &up.exit_code_from {
        let c = containers
            .iter()
            .find(|c| &c.service == from && !c.oneoff)
            .with_context(|| format!("--exit-code-from {from}: no such service container"))?;
        return Ok(RunState::load(&paths, &c.id).exit_code.clamp(0, 255) as u8);
    }
    Ok(ended.map_or(0, |(_, code)| code.clamp(0, 255) as u8))
}

/// `up --menu`: compose's interactive shortcuts, which berth does not have.
/// Asked for (the flag, else `COMPOSE_MENU`) on a terminal in the
/// foreground, it is an error; elsewhere compose turns it off itself.
fn check_menu(up: &UpArgs) -> Result<()> {
    use std::io::IsTerminal;
    let asked = up.menu.unwrap_or_else(|| {
        std::env::var("COMPOSE_MENU")
            .ok()
            .and_then(|v| crate::settings::parse_go_bool(&v))
            .unwrap_or(false)
    });
    if asked && !up.detach && !up.wait && std::io::stdout().is_terminal() {
        bail!("--menu: berth has no interactive navigation menu (run with --menu=false, or COMPOSE_MENU=false)");
    }
    Ok(())
}

/// The services whose logs a foreground `up` shows, and those whose exit
/// ends it, as compose decides: `--attach` as given; else the services
/// named (all when none), with their dependencies under
/// `--attach-dependencies`, less those with `attach: false`; then less
/// `--no-attach`. `up` ends when the named services (else the attached
/// ones) have exited.
fn attach_sets(project: &Project, up: &UpArgs) -> Result<(Vec<String>, Vec<String>)> {
    for s in up.attach.iter().chain(&up.no_attach) {
        if !project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let attached: Vec<String> = project
        .services
        .iter()
        .filter(|(name, svc)| {
            if !up.attach.is_empty() {
                return up.attach.contains(name);
            }
            let launched =
                up.services.is_empty() || up.attach_dependencies || up.services.contains(name);
            launched && svc.attach != Some(false)
        })
        .map(|(name, _)| name)
        .filter(|s| !up.no_attach.contains(s))
        .cloned()
        .collect();
    let watched = if up.services.is_empty() {
        attached.clone()
    } else {
        up.services.clone()
    };
    Ok((attached, watched))
}

/// Whether every container of `services` has exited for good.
/// None named: the whole project, as compose's monitor.
fn watched_done(paths: &Paths, project: &str, services: &[String]) -> bool {
    let Ok(cs) = state::project_containers(paths, project) else {
        return false;
    };
    cs.iter()
        .filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service)))
        .all(|c| {
            let run = RunState::load(paths, &c.id);
            run.effective_status() == Status::Exited && run.monitor_pid == 0
        })
}

/// SIGINT/SIGTERM set a flag instead of killing us.
fn ctrlc_hook(f: impl Fn() + Send + 'static) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block()?;
    std::thread::spawn(move || loop {
        if mask.wait().is_ok() {
            f();
        }
    });
    Ok(())
}

pub fn down(args: &ProjectArgs, down: &DownArgs) -> Result<()> {
    let project = load_existing(args)?;
    let paths = Paths::from_env();
    let _lock = Lock::acquire(&paths.project_lock(&project.name))?;
    execute::reclaim_half_made(&paths, &project.name)?;
    let containers = state::project_containers(&paths, &project.name)?;
    // Dependents first: reverse start order, one-offs too.
    let order = project_order(&project);
    let sorted: Vec<&ContainerRecord> = containers
        .iter()
        .filter(|c| down.services.is_empty() || down.services.contains(&c.service))
        .filter(|c| {
            down.remove_orphans
                || project.services.contains_key(&c.service)
                || project.disabled_services.contains_key(&c.service)
        })
        .collect();
    let _ = order;
    let levels = project_levels(&project);
    let t = timeout(down.timeout);
    // Dependents first, level by level; each level in parallel.
    for_each_level(&levels, &sorted, true, |c| {
        eprintln!(" ✔ Container {:<40} Stopping", c.name);
        execute::remove_container(&paths, &c.id, t)?;
        if down.volumes {
            execute::remove_anonymous_volumes(&paths, c)?;
        }
        eprintln!(" ✔ Container {:<40} Removed", c.name);
        Ok(())
    })?;
    if down.services.is_empty() {
        for (key, n) in &project.networks {
            if n.external {
                continue;
            }
            let name = crate::engine::net::network_name(&project, key);
            if crate::engine::net::networks(&paths).get(&name)?.is_some() {
                crate::engine::net::remove_network(&paths, &name)?;
                eprintln!(" ✔ Network {name:<42} Removed");
            }
        }
        // Networks the project made that this load of it does not name (an
        // `up --all-resources`, a network since removed from the file).
        // One still in use (a container left running) stays.
        let nets = crate::engine::net::networks(&paths);
        for n in nets.list()? {
            let ours = n.labels.get(crate::engine::naming::LABEL_PROJECT) == Some(&project.name);
            if ours && nets.attachments(&n.name)?.is_empty() {
                crate::engine::net::remove_network(&paths, &n.name)?;
                eprintln!(" ✔ Network {:<42} Removed", n.name);
            }
        }
        crate::engine::net::stop_dns_if_unused(&paths);
        crate::engine::net::release_netns_dir(&paths);
    }
    if let Some(rmi) = down.rmi {
        remove_images(&paths, &project, &down.services, rmi)?;
    }
    if down.volumes && down.services.is_empty() {
        for name in execute::remove_project_anonymous_volumes(&paths, &project.name)? {
            eprintln!(" ✔ Volume {name:<43} Removed");
        }
        for (key, v) in &project.volumes {
            if v.external {
                continue;
            }
            let name = if v.name.is_empty() {
                key.clone()
            } else {
                v.name.clone()
            };
            let dir = paths.volumes().join(&name);
            if dir.exists() {
                fs_err::remove_dir_all(&dir)?;
                eprintln!(" ✔ Volume {name:<43} Removed");
            }
        }
    }
    Ok(())
}

/// Each service's depth in the dependency graph: 0 for a service without
/// dependencies, else one more than its deepest dependency.
fn project_levels(project: &Project) -> BTreeMap<String, usize> {
    let order = project_order(project);
    let mut names: Vec<&String> = order.keys().collect();
    names.sort_by_key(|n| order[*n]);
    let mut levels = BTreeMap::new();
    for n in names {
        let level = project.services[n]
            .depends_on
            .keys()
            .filter_map(|d| levels.get(d).map(|l: &usize| l + 1))
            .max()
            .unwrap_or(0);
        levels.insert(n.clone(), level);
    }
    levels
}

/// Runs `f` on every container, one dependency level at a time (deepest
/// first when `reverse`), the containers of a level in parallel.
fn for_each_level(
    levels: &BTreeMap<String, usize>,
    containers: &[&ContainerRecord],
    reverse: bool,
    f: impl Fn(&ContainerRecord) -> Result<()> + Sync,
) -> Result<()> {
    let level_of = |c: &ContainerRecord| levels.get(&c.service).copied().unwrap_or(usize::MAX);
    let mut distinct: Vec<usize> = containers.iter().map(|c| level_of(c)).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if reverse {
        distinct.reverse();
    }
    for l in distinct {
        let group: Vec<&ContainerRecord> = containers
            .iter()
            .copied()
            .filter(|c| level_of(c) == l)
            .collect();
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = group.iter().map(|c| s.spawn(|| f(c))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
                })
                .collect()
        });
        for r in results {
            r?;
        }
    }
    Ok(())
}

/// Each service's position in dependency order (dependencies first).
fn project_order(project: &Project) -> BTreeMap<String, usize> {
    let mut order = BTreeMap::new();
    let mut left: Vec<&String> = project.services.keys().collect();
    let mut n = 0;
    while !left.is_empty() {
        let before = left.len();
        left.retain(|s| {
            let ready = project.services[*s]
                .depends_on
                .keys()
                .all(|d| order.contains_key(d) || !project.services.contains_key(d));
            if ready {
                order.insert((*s).clone(), n);
                n += 1;
            }
            !ready
        });
        if left.len() == before {
            for s in left.drain(..) {
                order.insert(s.clone(), n);
                n += 1;
            }
        }
    }
    order
}

/// `services` and, transitively, every service they depend on (none
/// named: none, which `select` reads as all).
fn with_dependencies(project: &Project, services: &[String]) -> Vec<String> {
    let mut out: Vec<String> = services.to_vec();
    let mut i = 0;
    while i < out.len() {
        if let Some(s) = project.services.get(&out[i]) {
            for d in s.depends_on.keys() {
                if !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
        i += 1;
    }
    out
}

fn select<'a>(
    containers: &'a [ContainerRecord],
    services: &'a [String],
) -> impl Iterator<Item = &'a ContainerRecord> + 'a {
    containers
        .iter()
        .filter(move |c| services.is_empty() || services.contains(&c.service))
}

/// `Up 5 seconds`, `Exited (0) 2 minutes ago`, as Docker words it.
fn status_text(run: &RunState) -> String {
    let now = state::now_millis();
    let ago = |t: u64| human(Duration::from_millis(now.saturating_sub(t)));
    match run.effective_status() {
        Status::Running => {
            let health = if run.health.is_empty() {
                String::new()
            } else if run.health == "starting" {
                " (health: starting)".into()
            } else {
                format!(" ({})", run.health)
            };
            format!("Up {}{health}", ago(run.started_at))
        }
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            run.exit_code,
            ago(run.finished_at)
        ),
        Status::Exited if run.finished_at > 0 => {
            format!("Exited ({}) {} ago", run.exit_code, ago(run.finished_at))
        }
        Status::Exited => format!("Exited ({})", run.exit_code),
        Status::Created => "Created".into(),
        Status::Paused => format!("Up {} (Paused)", ago(run.started_at)),
        Status::Dead => "Dead".into(),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        _ => format!("{} hours", s / 3600),
    }
}

pub fn ps(args: &ProjectArgs, ps: &PsArgs) -> Result<()> {
    // One look at each monitor and container process, shared by adoption
    // and the status columns.
    let _memo = state::AliveMemo::begin();
    let project = project::outline_or_name(args)?;
    let paths = Paths::from_env();
    let containers = state::project_containers(&paths, &project.name)?;
    let mut runs: Vec<RunState> = containers
        .iter()
        .map(|c| RunState::load(&paths, &c.id))
        .collect();
    // Adoption (`monitor::adopt`), as every command does it; this
    // project's orphans are found from the states just read (each names
    // its monitor), without a second look at their pid links.
    let own: std::collections::HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
    let mut orphans = crate::monitor::adopt::orphans_but(&paths, &|id| own.contains(id));
    orphans.extend(
        containers
            .iter()
            .zip(&runs)
            .filter(|(c, run)| {
                matches!(
                    run.status,
                    Status::Running | Status::Restarting | Status::Paused
                ) && !(run.monitor_pid > 0 && state::alive(run.monitor_pid))
                    && crate::monitor::adopt::orphaned(&paths, &c.id)
            })
            .map(|(c, _)| c.id.clone()),
    );
    if !crate::monitor::adopt::adopt(&paths, orphans).is_empty() {
        for (c, run) in containers.iter().zip(runs.iter_mut()) {
            *run = RunState::load(&paths, &c.id);
        }
    }
    let mut statuses = ps.status.clone();
    let mut source: Option<String> = None;
    for f in &ps.filter {
        match f.split_once('=') {
            Some(("status", v)) => statuses.push(v.to_owned()),
            Some(("source", v @ ("image" | "build"))) => source = Some(v.to_owned()),
            Some(("source", v)) => bail!("invalid filter source={v} (image or build)"),
            _ => bail!("invalid filter {f:?} (supported: status=…, source=image|build)"),
        }
    }
    for s in &statuses {
        if ![
            "created",
            "restarting",
            "running",
            "paused",
            "exited",
            "dead",
            "removing",
        ]
        .contains(&s.as_str())
        {
            bail!("invalid filter 'status={s}'");
        }
    }
    let mut rows = Vec::new();
    for (c, run) in containers.iter().zip(runs) {
        if !ps.services.is_empty() && !ps.services.contains(&c.service) {
            continue;
        }
        if let Some(src) = &source {
            if project.built.contains(&c.service) != (src == "build") {
                continue;
            }
        }
        let status = run.effective_status();
        if !ps.all
            && statuses.is_empty()
            && status != Status::Running
            && status != Status::Restarting
            && status != Status::Paused
        {
            continue;
        }
        if !statuses.is_empty() && !statuses.iter().any(|s| s == &status.to_string()) {
            continue;
        }
        rows.push((c, run, status));
    }
    // Docker Compose lists by container name.
    rows.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut out = String::new();
    if ps.services_only {
        let mut seen = Vec::new();
        for (c, _, _) in &rows {
            if !seen.contains(&c.service) {
                seen.push(c.service.clone());
                out.push_str(&c.service);
                out.push('\n');
            }
        }
    } else if ps.quiet {
        for (c, _, _) in &rows {
            out.push_str(&c.id);
            out.push('\n');
        }
    } else if ps.format == PsFormat::Json {
        for (c, run, status) in &rows {
            let v = serde_json::json!({
                "ID": c.id,
                "Name": c.name,
                "Names": c.name,
                "Image": c.image,
                "Command": quote_command(&c.command),
                "Project": c.project,
                "Service": c.service,
                "CreatedAt": c.created,
                "State": status.to_string(),
                "Status": status_text(run),
                "Health": run.health,
                "ExitCode": run.exit_code,
                "Publishers": [],
                "Labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            });
            out.push_str(&serde_json::to_string(&v)?);
            out.push('\n');
        }
    } else {
        let header = [
            "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
        ]
        .map(String::from);
        let now = state::now_millis() / 1000;
        let table_rows: Vec<[String; 7]> = rows
            .iter()
            .map(|(c, run, _)| {
                let mut cmd = quote_command(&c.command);
                if cmd.chars().count() > 20 {
                    cmd = format!("{}…", cmd.chars().take(19).collect::<String>());
                }
                [
                    c.name.clone(),
                    c.image.clone(),
                    format!("\"{cmd}\""),
                    c.service.clone(),
                    format!(
                        "{} ago",
                        human(Duration::from_secs(now.saturating_sub(c.created)))
                    ),
                    status_text(run),
                    c.ports.join(", "),
                ]
            })
            .collect();
        out = crate::printer::table(&header, &table_rows);
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    // The process ends next: freeing each record's strings one by one
    // would only cost time.
    std::mem::forget(rows);
    std::mem::forget(containers);
    Ok(())
}

fn quote_command(cmd: &[String]) -> String {
    cmd.join(" ")
}

pub fn logs(args: &ProjectArgs, logs: &LogsArgs) -> Result<()> {
    let project = load_existing(args)?;
    let paths = Paths::from_env();
    follow_logs(&paths, &project.name, logs, None, None)
}

/// Prints the logs of a project's containers; with `follow`, keeps reading
/// (across restarts: a container keeps its log file) until `stop` is set or
/// every container has exited for good. With `exits_since` (foreground
/// `up`, milliseconds since the epoch), each exit after that time is
/// reported as compose's printer does, after the container's last output:
/// `web-1 exited with code 3`, or `… (restarting)` when its restart policy
/// brings it back.
fn follow_logs(
    paths: &Paths,
    project: &str,
    logs: &LogsArgs,
    stop: Option<&std::sync::atomic::AtomicBool>,
    exits_since: Option<u64>,
) -> Result<()> {
    let containers = state::project_containers(paths, project)?;
    let selected: Vec<&ContainerRecord> = select(&containers, &logs.services)
        .filter(|c| logs.index.is_none_or(|i| c.number == i && !c.oneoff))
        // Foreground `up` attaches to the service containers only.
        .filter(|c| exits_since.is_none() || !c.oneoff)
        .collect();
    let now = std::time::SystemTime::now();
    let bound = |b: &Option<String>, flag: &str| -> Result<Option<String>> {
        b.as_deref()
            .map(|t| crate::engine::events::parse_time_bound(t, now))
            .transpose()
            .with_context(|| flag.to_owned())
    };
    let window = TimeWindow {
        since: bound(&logs.since, "--since")?,
        until: bound(&logs.until, "--until")?,
    };
    // As compose: a container is shown as `service-N` (its name without the
    // project) unless it has a name of its own, and names are padded to the
    // longest plus one: `web-1  | …`.
    let shown: Vec<&str> = selected
        .iter()
        .map(|c| crate::engine::naming::short_name(project, &c.service, c.number, &c.name))
        .collect();
    let width = shown.iter().map(|n| n.len()).max().unwrap_or(0) + 1;
    if exits_since.is_some() && !selected.is_empty() {
        let mut names: Vec<(&str, &str)> = selected
            .iter()
            .zip(&shown)
            .map(|(c, s)| (c.name.as_str(), *s))
            .collect();
        names.sort();
        let names: Vec<&str> = names.into_iter().map(|(_, s)| s).collect();
        println!("Attaching to {}", names.join(", "));
    }
    let tail: Option<usize> = match logs.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("--tail {n:?}: not a number"))?,
        ),
    };
    let color = !logs.no_color && nix::unistd::isatty(1).unwrap_or(false);
    const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];
    struct Reader {
        id: String,
        name: String,
        path: std::path::PathBuf,
        prefix: String,
        color: Option<&'static str>,
        pos: u64,
        /// `finished_at` of the last exit reported.
        reported: u64,
    }
    let mut readers = Vec::new();
    for (i, c) in selected.iter().enumerate() {
        let path = paths.log(&c.id);
        let tint = color.then(|| COLORS[i % COLORS.len()]);
        let prefix = if logs.no_log_prefix {
            String::new()
        } else if let Some(tint) = tint {
            format!("\x1b[{tint}m{:<width$} | \x1b[0m", shown[i])
        } else {
            format!("{:<width$} | ", shown[i])
        };
        let mut lines = Vec::new();
        let mut pos = 0;
        if let Ok(f) = std::fs::File::open(&path) {
            let mut r = std::io::BufReader::new(f);
            let mut line = String::new();
            while r.read_line(&mut line)? > 0 {
                if line.ends_with('\n') {
                    lines.push(std::mem::take(&mut line));
                } else {
                    break;
                }
            }
            pos = r.stream_position()? - line.len() as u64;
        }
        lines.retain(|l| window.admits(l));
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t));
        let mut out = std::io::stdout().lock();
        for l in &lines[skip..] {
            print_entry(&mut out, &prefix, l, logs.timestamps)?;
        }
        readers.push(Reader {
            id: c.id.clone(),
            name: shown[i].to_owned(),
            path,
            prefix,
            color: tint,
            pos,
            reported: exits_since.unwrap_or(u64::MAX),
        });
    }
    if !logs.follow {
        return Ok(());
    }
    loop {
        let stopping = stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
        let mut any = false;
        let mut all_over = true;
        for r in readers.iter_mut() {
            // The state before the log: an exit seen here has all of its
            // output in the file already (the monitor drains the output
            // before it records the exit).
            let run = RunState::load(paths, &r.id);
            let over = run.effective_status() == Status::Exited && run.monitor_pid == 0;
            all_over &= over;
            if let Ok(mut f) = std::fs::File::open(&r.path) {
                let len = f.metadata()?.len();
                if len < r.pos {
                    r.pos = 0; // rotated
                }
                if len > r.pos {
                    f.seek(SeekFrom::Start(r.pos))?;
                    let mut rd = std::io::BufReader::new(f);
                    let mut line = String::new();
                    let mut out = std::io::stdout().lock();
                    while rd.read_line(&mut line)? > 0 {
                        if !line.ends_with('\n') {
                            break;
                        }
                        r.pos += line.len() as u64;
                        if window.admits(&line) {
                            print_entry(&mut out, &r.prefix, &line, logs.timestamps)?;
                        }
                        line.clear();
                        any = true;
                    }
                }
            }
            if run.finished_at > r.reported {
                // An exit the monitor has not judged yet (it is still
                // there, the container still `exited`) waits for the next
                // round.
                let restarting = !over && run.effective_status() != Status::Exited;
                if over || restarting {
                    r.reported = run.finished_at;
                    let text = format!(
                        "{} exited with code {}{}",
                        r.name,
                        run.exit_code,
                        if restarting { " (restarting)" } else { "" }
                    );
                    let mut out = std::io::stdout().lock();
                    match r.color {
                        Some(tint) => writeln!(out, "\x1b[{tint}m{text}\x1b[0m")?,
                        None => writeln!(out, "{text}")?,
                    }
                }
            }
        }
        if stopping || all_over {
            return Ok(());
        }
        if !any {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `logs --since/--until`: bounds as RFC 3339 UTC nanoseconds, which the
/// log's `time` fields compare with as text.
struct TimeWindow {
    since: Option<String>,
    until: Option<String>,
}

impl TimeWindow {
    fn admits(&self, line: &str) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        #[derive(serde::Deserialize)]
        struct T {
            time: String,
        }
        let Ok(t) = serde_json::from_str::<T>(line) else {
            return false;
        };
        self.since.as_ref().is_none_or(|s| t.time >= *s)
            && self.until.as_ref().is_none_or(|u| t.time <= *u)
    }
}

fn print_entry(out: &mut impl Write, prefix: &str, line: &str, timestamps: bool) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct E {
        log: String,
        time: String,
    }
    let Ok(e) = serde_json::from_str::<E>(line) else {
        return Ok(());
    };
    let ts = if timestamps {
        format!("{} ", e.time)
    } else {
        String::new()
    };
    let text = e.log.strip_suffix('\n').unwrap_or(&e.log);
    writeln!(out, "{prefix}{ts}{text}")?;
    Ok(())
}

fn project_records(
    args: &ProjectArgs,
    services: &[String],
) -> Result<(Paths, Project, Vec<ContainerRecord>)> {
    let project = load_existing(args)?;
    let paths = Paths::from_env();
    let all = state::project_containers(&paths, &project.name)?;
    let mine = select(&all, services).cloned().collect();
    Ok((paths, project, mine))
}

pub fn start(args: &ProjectArgs, a: &ServicesArgs) -> Result<()> {
    let (paths, project, all) = project_records(args, &[])?;
    // The services named and what they depend on, as Docker Compose starts
    // them; never one-off containers.
    let wanted = with_dependencies(&project, &a.services);
    let mut records: Vec<ContainerRecord> = select(&all, &wanted)
        .filter(|c| !c.oneoff)
        .cloned()
        .collect();
    let order = project_order(&project);
    records.sort_by_key(|c| order.get(&c.service).copied().unwrap_or(usize::MAX));
    for c in &records {
        if RunState::load(&paths, &c.id).effective_status() == Status::Running {
            continue;
        }
        eprintln!(" ✔ Container {:<40} Starting", c.name);
        execute::start_container(&paths, &c.id)?;
        eprintln!(" ✔ Container {:<40} Started", c.name);
    }
    Ok(())
}

pub fn stop(args: &ProjectArgs, a: &ServicesTimeoutArgs) -> Result<()> {
    let (paths, project, records) = project_records(args, &a.services)?;
    let levels = project_levels(&project);
    // One-off containers are left alone, as Docker Compose does.
    let refs: Vec<&ContainerRecord> = records.iter().filter(|c| !c.oneoff).collect();
    let t = timeout(a.timeout);
    // Dependents first, level by level; each level in parallel.
    for_each_level(&levels, &refs, true, |c| {
        eprintln!(" ✔ Container {:<40} Stopping", c.name);
        execute::stop_container(&paths, &c.id, t)?;
        eprintln!(" ✔ Container {:<40} Stopped", c.name);
        Ok(())
    })
}

pub fn restart(args: &ProjectArgs, a: &ServicesTimeoutArgs) -> Result<()> {
    stop(args, a)?;
    start(
        args,
        &ServicesArgs {
            services: a.services.clone(),
        },
    )
}

pub fn kill(args: &ProjectArgs, a: &KillArgs) -> Result<()> {
    let (paths, _, records) = project_records(args, &a.services)?;
    let signal = crate::monitor::process::parse_signal(&a.signal)
        .with_context(|| format!("invalid signal {:?}", a.signal))?;
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    for c in &records {
        if RunState::load(&paths, &c.id).effective_status() != Status::Running {
            continue;
        }
        // A kill is the user's wish: the monitor must not restart it
        // (SIGUSR1 tells it so; it is read before the child's exit).
        let run = RunState::load(&paths, &c.id);
        if run.monitor_pid > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(run.monitor_pid),
                nix::sys::signal::Signal::SIGUSR1,
            );
        }
        crate::engine::events::emit(
            &paths,
            c,
            "kill",
            &[("signal", (signal as i32).to_string())],
        );
        rt.kill(&c.id, signal as i32, false)
            .with_context(|| format!("killing {}", c.name))?;
        eprintln!(" ✔ Container {:<40} Killed", c.name);
    }
    Ok(())
}

pub fn rm(args: &ProjectArgs, a: &RmArgs) -> Result<()> {
    let (paths, _, records) = project_records(args, &a.services)?;
    let mut any = false;
    for c in &records {
        let status = RunState::load(&paths, &c.id).effective_status();
        if status == Status::Running || status == Status::Restarting {
            if !a.stop {
                continue;
            }
            execute::stop_container(&paths, &c.id, None)?;
        }
        execute::remove_container(&paths, &c.id, None)?;
        if a.volumes {
            execute::remove_anonymous_volumes(&paths, c)?;
        }
        eprintln!(" ✔ Container {:<40} Removed", c.name);
        any = true;
    }
    if !any {
        eprintln!("No stopped containers");
    }
    Ok(())
}

/// `berth system monitor [--adopt] ID`.
pub fn monitor(id: &str, adopt: bool) -> Result<()> {
    let paths = Paths::from_env();
    if !Path::new(&paths.container(id)).exists() {
        bail!("no container {id}");
    }
    let mode = if adopt {
        crate::monitor::process::Mode::Adopt
    } else {
        crate::monitor::process::Mode::Start
    };
    crate::monitor::process::run(&paths, id, mode)
}

/// `berth system dns-server`: the DNS server, in the directory
/// `dns::ensure_running` gave it through `BERTH_RUN`.
pub fn dns_server() -> Result<()> {
    let dir = std::env::var_os("BERTH_RUN").context("BERTH_RUN is not set")?;
    berth_network::dns::serve(Path::new(&dir))?;
    Ok(())
}

/// `berth system port-proxy PIDFILE RULE…`: the userland proxy of ports
/// published on IPv6 loopback, started by the network crate.
pub fn port_proxy(pidfile: &Path, rules: &[String]) -> Result<()> {
    let rules = rules
        .iter()
        .map(|r| r.parse())
        .collect::<Result<Vec<berth_network::proxy::ProxyRule>, _>>()?;
    berth_network::proxy::serve(pidfile, &rules)?;
    Ok(())
}

/// `port SERVICE PRIVATE_PORT`: the published address of a container port.
pub fn port(args: &ProjectArgs, a: &PortArgs) -> Result<()> {
    let (_, _, records) = project_records(args, std::slice::from_ref(&a.service))?;
    let c = records
        .iter()
        .find(|c| c.number == a.index && !c.oneoff)
        .with_context(|| {
            format!(
                "service \"{}\" is not running container #{}",
                a.service, a.index
            )
        })?;
    let suffix = format!("->{}/{}", a.private_port, a.protocol);
    let found = c
        .ports
        .iter()
        .find_map(|p| p.strip_suffix(&suffix))
        .with_context(|| {
            format!(
                "no port {}/{} for container {}",
                a.private_port, a.protocol, c.name
            )
        })?;
    println!("{found}");
    Ok(())
}

/// `exec SERVICE COMMAND…`: runs a command in a running container of the
/// service, with the container's environment, user and working directory
/// unless overridden; a terminal when standard input is one (and not
/// `-T`). Returns the command's exit code.
pub fn exec(args: &ProjectArgs, a: &ExecArgs) -> Result<u8> {
    use std::io::IsTerminal;
    let (paths, _, records) = project_records(args, std::slice::from_ref(&a.service))?;
    let running: Vec<&ContainerRecord> = records
        .iter()
        .filter(|c| RunState::load(&paths, &c.id).effective_status() == Status::Running)
        .collect();
    let c = exec_target(running, |c| (c.oneoff, c.number), &a.service, a.index)?;
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    let tty = !a.no_tty && !a.detach && std::io::stdin().is_terminal();
    let process = execute::exec_process(
        &paths,
        &c.id,
        &c.service,
        &a.command,
        &execute::ExecOverrides {
            tty,
            workdir: a.workdir.as_deref(),
            env: &a.env,
            user: a.user.as_deref(),
            privileged: a.privileged,
        },
    )?;
    if !tty {
        let code = rt.exec(
            &c.id,
            &process,
            &berth_runtime::ExecOptions {
                detach: a.detach,
                ..Default::default()
            },
        )?;
        return Ok(if a.detach {
            0
        } else {
            code.clamp(0, 255) as u8
        });
    }
    exec_tty(&rt, &c.id, &process)
}

/// The container `exec` runs in, among the service's running ones (each
/// seen as `(one-off, number)` through `key`), as compose's
/// `getSpecifiedContainer`: with `--index N` the service's container number
/// N (one-offs have none); without, the lowest-numbered service container,
/// else a one-off.
fn exec_target<T>(
    running: Vec<T>,
    key: impl Fn(&T) -> (bool, u32),
    service: &str,
    index: Option<u32>,
) -> Result<T> {
    let index = index.filter(|&i| i > 0);
    let mut candidates: Vec<T> = running
        .into_iter()
        .filter(|c| index.is_none_or(|i| key(c) == (false, i)))
        .collect();
    candidates.sort_by_key(|c| key(c));
    match (candidates.into_iter().next(), index) {
        (Some(c), _) => Ok(c),
        (None, Some(i)) => bail!("service {service:?} is not running container #{i}"),
        (None, None) => bail!("service {service:?} is not running"),
    }
}

/// Runs `process` with a terminal: the runtime hands the pty master over
/// a console socket; we relay it to our own terminal, put in raw mode.
fn exec_tty(rt: &berth_runtime::Runtime, id: &str, process: &berth_runtime::Process) -> Result<u8> {
    with_tty(true, |sock| {
        rt.exec(
            id,
            process,
            &berth_runtime::ExecOptions {
                console_socket: Some(sock),
                ..Default::default()
            },
        )
    })
}

/// Runs `f` with a console socket whose pty master is relayed to our
/// terminal; returns `f`'s exit code. With `input`, what we read is typed
/// into it and our terminal is in raw mode meanwhile; without (`run
/// --interactive=false`), only its output is shown, as `docker run -t`
/// without `-i`.
fn with_tty(
    input: bool,
    f: impl FnOnce(std::path::PathBuf) -> Result<i32, berth_runtime::RuntimeError>,
) -> Result<u8> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock)?;
    let receiver = std::thread::spawn(move || -> Result<std::os::fd::OwnedFd> {
        let (stream, _) = listener.accept()?;
        let (fd, _) = berth_runtime::sys::recv_fd(stream.as_raw_fd())?;
        fd.context("the runtime sent no terminal")
    });
    let stdin = std::io::stdin();
    let saved = nix::sys::termios::tcgetattr(&stdin).ok();
    let relay = std::thread::spawn(move || -> Result<()> {
        let master = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("console thread panicked"))??;
        if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
            let _ = rustix::termios::tcsetwinsize(&master, ws);
        }
        // Without input (output only) our terminal stays as it is.
        if input {
            if let Ok(t) = nix::sys::termios::tcgetattr(std::io::stdin()) {
                let mut raw = t;
                nix::sys::termios::cfmakeraw(&mut raw);
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    &raw,
                );
            }
            let mut writer = std::fs::File::from(master.try_clone()?);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut writer);
            });
        }
        let mut reader = std::fs::File::from(master);
        let mut buf = [0u8; 8192];
        let mut out = std::io::stdout();
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
            }
        }
        Ok(())
    });
    let result = f(sock);
    let relayed = relay.join();
    if let Some(t) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    let code = result?;
    if let Ok(Err(e)) = relayed {
        tracing::debug!(error = %e, "terminal relay");
    }
    Ok(code.clamp(0, 255) as u8)
}

/// `create`: `up --no-start`.
pub fn create(args: &ProjectArgs, c: CreateArgs, dry_run: bool) -> Result<()> {
    let up_args = UpArgs {
        services: c.services,
        detach: true,
        force_recreate: c.force_recreate,
        no_recreate: c.no_recreate,
        no_start: true,
        remove_orphans: c.remove_orphans,
        scale: c.scale,
        ..UpArgs::default()
    };
    up(args, &up_args, dry_run).map(drop)
}

/// `pause` / `unpause`: freezes or thaws every process of the containers.
pub fn pause(args: &ProjectArgs, a: &ServicesArgs, freeze: bool) -> Result<()> {
    let (paths, _, records) = project_records(args, &a.services)?;
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    for c in &records {
        let mut run = RunState::load(&paths, &c.id);
        let status = run.effective_status();
        let (from, to, word) = if freeze {
            (Status::Running, Status::Paused, "Paused")
        } else {
            (Status::Paused, Status::Running, "Unpaused")
        };
        if status != from {
            if freeze && status == Status::Paused {
                bail!("container {} is already paused", c.name);
            }
            if !freeze && status == Status::Running {
                bail!("container {} is not paused", c.name);
            }
            continue;
        }
        if freeze {
            rt.pause(&c.id)
        } else {
            rt.resume(&c.id)
        }
        .with_context(|| format!("{} {}", word.to_lowercase(), c.name))?;
        run.status = to;
        run.save(&paths, &c.id)?;
        let action = if freeze { "pause" } else { "unpause" };
        crate::engine::events::emit(&paths, c, action, &[]);
        eprintln!(" ✔ Container {:<40} {word}", c.name);
    }
    Ok(())
}

/// `top`: each running container's processes, as `ps -ef` shows them.
pub fn top(args: &ProjectArgs, a: &ServicesArgs) -> Result<()> {
    let (paths, _, records) = project_records(args, &a.services)?;
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    let mut out = String::new();
    for c in &records {
        if RunState::load(&paths, &c.id).effective_status() != Status::Running {
            continue;
        }
        let pids = rt.ps(&c.id)?;
        // Docker's columns come from `ps -ef`; berth reads /proc and shows
        // the ones it knows exactly.
        let header = ["UID", "PID", "PPID", "CMD"].map(String::from);
        let mut rows = Vec::new();
        for pid in pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(") ").map_or("", |x| x.1);
            let f: Vec<&str> = after.split_whitespace().collect();
            let ppid = f.get(1).copied().unwrap_or("0").to_owned();
            let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Uid:")
                        .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
                })
                .unwrap_or_default();
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .replace('\0', " ")
                        .trim_end()
                        .to_owned()
                })
                .unwrap_or_default();
            rows.push([uid, pid.to_string(), ppid, cmd]);
        }
        out.push_str(&format!("{}\n", c.name));
        out.push_str(&crate::printer::table(&header, &rows));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// `run SERVICE [COMMAND…]`: a one-off container of the service
/// (`project-service-run-<id>`), its dependencies started first unless
/// `--no-deps`; attached (the container's stdio is ours, a terminal when
/// stdin is one) or `-d`. Returns the container's exit code.
pub fn run(args: &ProjectArgs, a: RunArgs) -> Result<u8> {
    use std::io::IsTerminal;
    let project = load(args, std::slice::from_ref(&a.service), false)?;
    let Some(base) = project.services.get(&a.service) else {
        bail!("no such service: {}", a.service);
    };
    if a.build {
        if let Some(s) = project.services.values().find(|s| s.build.is_some()) {
            bail!(
                "run --build: service {:?} has a build section, and building images is not supported by berth yet",
                s.name
            );
        }
    }
    let deps: Vec<String> = base
        .depends_on
        .keys()
        .filter(|d| project.services.contains_key(*d))
        .cloned()
        .collect();
    if !a.no_deps && !deps.is_empty() {
        let up_args = UpArgs {
            services: deps,
            detach: true,
            pull: a.pull.clone(),
            quiet_pull: a.quiet_pull,
            ..UpArgs::default()
        };
        up(args, &up_args, false)?;
    } else if !project
        .environment
        .get("COMPOSE_IGNORE_ORPHANS")
        .is_some_and(|v| env_true(v))
    {
        // Without dependencies to start, the warning `up` would give.
        let paths = Paths::from_env();
        let observed = execute::observe(&paths, &project.name)?;
        let mut names: Vec<String> = crate::engine::plan::orphans(&project, &observed)
            .into_iter()
            .map(|c| c.name.clone())
            .collect();
        if !names.is_empty() {
            names.sort();
            execute::warn_orphans(&names);
        }
    }
    let paths = Paths::from_env();
    let mut svc = base.clone();
    if !a.command.is_empty() {
        svc.command = Some(a.command.clone());
    }
    if let Some(ep) = &a.entrypoint {
        svc.entrypoint = Some(ep.split_whitespace().map(str::to_owned).collect());
        if a.command.is_empty() {
            svc.command = None;
        }
    }
    let mut given: BTreeMap<String, Option<String>> = BTreeMap::new();
    for e in &a.env {
        match e.split_once('=') {
            Some((k, v)) => given.insert(k.to_owned(), Some(v.to_owned())),
            None => given.insert(e.clone(), std::env::var(e).ok()),
        };
    }
    // `--env-from-file`s, in order, under `-e` (compose's getEnvironment):
    // a variable set already keeps its value; `${X}` sees those values.
    for file in &a.env_from_file {
        let text = fs_err::read_to_string(file)?;
        let known = given.clone();
        let lookup = |k: &str| known.get(k).cloned().flatten();
        let vars = crate::model::dotenv::parse(&text, file, &lookup)
            .with_context(|| format!("--env-from-file {}", file.display()))?;
        for (k, v) in vars {
            given.entry(k).or_insert(Some(v));
        }
    }
    svc.environment.extend(given);
    if let Some(u) = &a.user {
        svc.user = u.clone();
    }
    if let Some(w) = &a.workdir {
        svc.working_dir = w.clone();
    }
    if let Some(n) = &a.name {
        svc.container_name = n.clone();
    } else {
        svc.container_name.clear();
    }
    svc.restart = "no".into();
    if let Some(d) = svc.deploy.as_mut() {
        d.restart_policy = None;
    }
    if !a.service_ports {
        svc.ports.clear();
    }
    for p in &a.publish {
        svc.ports
            .extend(crate::model::ports::parse_port(p).with_context(|| format!("--publish {p}"))?);
    }
    for v in &a.volumes {
        let mut vol =
            crate::model::volumes::parse_volume(v).with_context(|| format!("--volume {v}"))?;
        if vol.r#type == crate::model::project::VOLUME_BIND && !vol.source.starts_with('/') {
            vol.source = std::env::current_dir()?
                .join(&vol.source)
                .display()
                .to_string();
        }
        svc.volumes.push(vol);
    }
    if !a.use_aliases {
        for n in svc.networks.values_mut().flatten() {
            n.aliases.clear();
        }
    }
    let tty = !a.no_tty && !a.detach && std::io::stdin().is_terminal();
    svc.tty = tty;
    // compose's `run` is `--interactive` unless told otherwise (its
    // applyRunOptions: StdinOpen = Interactive, and stdin is attached only
    // then): detached, the one-off keeps an open stdin nobody writes to
    // (`run -d svc cat` keeps running); attached, stdin is ours. With
    // `--interactive=false` its stdin is empty either way.
    svc.stdin_open = a.interactive;

    // Networks first (a one-off may run before any `up`).
    if matches!(svc.network_mode.as_str(), "" | "bridge" | "default") {
        for key in svc.networks_by_priority() {
            let name = crate::engine::net::network_name(&project, key);
            crate::engine::net::ensure_network(&paths, &project, &name)?;
        }
    }
    let mut one = project.clone();
    one.services.insert(svc.name.clone(), svc.clone());
    let check = crate::engine::Plan {
        steps: vec![crate::engine::plan::Step {
            action: crate::engine::Action::Create {
                service: svc.name.clone(),
                number: 1,
                name: String::new(),
            },
            after: Vec::new(),
        }],
    };
    // Its image as its pull_policy says (dependencies were pulled by `up`).
    let mut only = one.clone();
    only.services.retain(|k, _| *k == svc.name);
    let pull_opts = ExecOptions {
        quiet: args.quiet_progress,
        ..ExecOptions::default()
    };
    let pull_flag = a.pull.as_deref().filter(|p| *p != "policy");
    crate::engine::pull::pull_images(&paths, &only, pull_flag, &pull_opts)?;
    execute::preflight(&paths, &one, &check)?;
    let (id, name) = execute::create_oneoff(&paths, &one, &svc)?;
    if a.detach {
        execute::start_container(&paths, &id)?;
        println!("{name}");
        return Ok(0);
    }
    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    let mut run = RunState {
        status: Status::Running,
        monitor_pid: std::process::id() as i32,
        started_at: state::now_millis(),
        ..RunState::default()
    };
    run.save(&paths, &id)?;
    let bundle = paths.container(&id);
    let code = if tty {
        with_tty(a.interactive, |sock| {
            rt.run(
                &id,
                &bundle,
                &berth_runtime::CreateOptions {
                    console_socket: Some(sock),
                    ..Default::default()
                },
            )
        })
    } else {
        // Not interactive: the container reads an empty stdin, not ours.
        let stdin = if a.interactive {
            None
        } else {
            Some(std::fs::File::open("/dev/null")?.into())
        };
        let opts = berth_runtime::CreateOptions {
            stdio: [stdin, None, None],
            ..Default::default()
        };
        rt.run(&id, &bundle, &opts)
            .map(|c| c.clamp(0, 255) as u8)
            .map_err(Into::into)
    };
    if a.rm {
        // As `docker run --rm`: the container's anonymous volumes go too.
        if let Ok(record) = ContainerRecord::load(&paths, &id) {
            execute::remove_anonymous_volumes(&paths, &record)?;
        }
        execute::teardown(&paths, &id)?;
    } else {
        run.status = Status::Exited;
        run.exit_code = *code.as_ref().unwrap_or(&125) as i32;
        run.monitor_pid = 0;
        run.finished_at = state::now_millis();
        run.save(&paths, &id)?;
    }
    code
}

/// `ls`: the projects that have containers, with their states.
pub fn ls(a: &LsArgs) -> Result<()> {
    let paths = Paths::from_env();
    let mut projects: BTreeMap<String, (BTreeMap<String, usize>, String)> = BTreeMap::new();
    for c in state::all_containers(&paths)? {
        let status = RunState::load(&paths, &c.id).effective_status().to_string();
        let entry = projects.entry(c.project.clone()).or_insert_with(|| {
            (
                BTreeMap::new(),
                c.label(crate::engine::naming::LABEL_CONFIG_FILES)
                    .to_owned(),
            )
        });
        *entry.0.entry(status).or_default() += 1;
    }
    let mut rows = Vec::new();
    for (name, (states, files)) in &projects {
        if !a.all && !states.contains_key("running") {
            continue;
        }
        if let Some(f) = &a.filter {
            match f.split_once('=') {
                Some(("name", n)) if !name.contains(n) => continue,
                Some(("name", _)) => {}
                _ => bail!("invalid filter {f:?} (supported: name=…)"),
            }
        }
        let status = states
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push([name.clone(), status, files.clone()]);
    }
    let mut out = String::new();
    if a.quiet {
        for r in &rows {
            out.push_str(&r[0]);
            out.push('\n');
        }
    } else if a.format == PsFormat::Json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::json!({"Name": r[0], "Status": r[1], "ConfigFiles": r[2]}))
            .collect();
        out = serde_json::to_string(&v)?;
        out.push('\n');
    } else {
        let header = ["NAME", "STATUS", "CONFIG FILES"].map(String::from);
        out = crate::printer::table(&header, &rows);
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

/// `down --rmi`: removes the services' images (`local`: only those without
/// an `image:` name, i.e. built ones; `all`: every one). An image another
/// container still uses is kept, with a warning.
fn remove_images(
    paths: &Paths,
    project: &Project,
    services: &[String],
    rmi: RemoveImages,
) -> Result<()> {
    use crate::image::{Reference, Store};
    let store = Store::open(&paths.root)?;
    let mut names = std::collections::BTreeSet::new();
    for (name, s) in &project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        if s.image.is_empty() {
            names.insert(format!("{}-{}", project.name, name.to_lowercase()));
        } else if rmi == RemoveImages::All {
            names.insert(s.image.clone());
        }
    }
    let in_use = state::all_containers(paths)?;
    for name in names {
        let Ok(desc) = store.find(&name) else {
            continue;
        };
        let id = store.manifest(&desc)?.config.digest;
        if let Some(c) = in_use.iter().find(|c| c.image_id == id) {
            eprintln!(
                "WARN[0000] image {name} is used by container {}: not removed",
                c.name
            );
            continue;
        }
        // A name removes its tag; an image ID every tag of that image.
        let tags: Vec<Reference> = match Reference::parse(&name) {
            Ok(r) if store.resolve(&r).is_ok() => vec![r],
            _ => store
                .list()?
                .into_iter()
                .filter(|e| e.manifest.digest == desc.digest)
                .filter_map(|e| Reference::parse(&e.reference).ok())
                .collect(),
        };
        for r in tags {
            store
                .remove(&r)
                .with_context(|| format!("removing image {name}"))?;
        }
        eprintln!(" ✔ Image {name:<44} Removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::exec_target;

    #[test]
    fn exec_prefers_service_containers_and_falls_back_to_a_one_off() {
        let key = |c: &(bool, u32)| *c;
        // TestExec: only a one-off runs.
        let oneoff = vec![(true, 1)];
        assert_eq!(
            exec_target(oneoff.clone(), key, "test", Some(1))
                .unwrap_err()
                .to_string(),
            "service \"test\" is not running container #1"
        );
        assert_eq!(exec_target(oneoff, key, "test", None).unwrap(), (true, 1));
        // The service container wins over the one-off, the lowest number
        // first.
        let both = vec![(true, 1), (false, 2), (false, 1)];
        assert_eq!(
            exec_target(both.clone(), key, "t", None).unwrap(),
            (false, 1)
        );
        assert_eq!(exec_target(both, key, "t", Some(2)).unwrap(), (false, 2));
        assert_eq!(
            exec_target(Vec::new(), key, "t", None)
                .unwrap_err()
                .to_string(),
            "service \"t\" is not running"
        );
    }
}
