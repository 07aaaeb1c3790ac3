//! Re-adoption: a container whose monitor died (kill -9, OOM) gets a new
//! one from the next berth command (`../DESIGN.md`, Processes: "the next
//! `berth` command notices and repairs").
//!
//! A monitor removes its pid link (`$BERTH_RUN/monitors/<id>.pid`, whose
//! target is the pid) when it ends; one that was killed leaves it naming a
//! dead process. Finding those costs a directory read, a `readlink` and
//! one look at the process ([`alive`](crate::engine::state::alive)) per
//! running container, so every command can afford it (`ps`, which reads
//! every state of its project anyway, looks at its own project's
//! containers through the monitor pids those name, see [`orphaned`], and
//! reads the pid links of the others only). For each, if the container's state says it
//! runs (or was restarting or paused), a monitor is spawned in
//! [`Mode::Adopt`](super::process::Mode::Adopt): it takes over the still
//! running container, or applies the restart policy to one that ended
//! while nobody watched. The monitor's lock makes two commands adopting at
//! once harmless: the second monitor finds the lock taken and leaves.
//!
//! This module never kills or changes a container itself.

use std::io::Read;

use anyhow::{Context, Result};

use crate::engine::state::{Paths, RunState, Status};

/// The containers whose monitor died while they ran (or were restarting
/// or paused). Stale pid files of containers that had ended are removed.
pub fn orphans(paths: &Paths) -> Vec<String> {
    orphans_but(paths, &|_| false)
}

/// [`orphans`], but for the containers `skip` names (which the caller
/// looks at itself, see [`orphaned`]).
pub fn orphans_but(paths: &Paths, skip: &dyn Fn(&str) -> bool) -> Vec<String> {
    let dir = paths.monitors();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let Ok(dirfd) = rustix::fs::open(
        &dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".pid")) else {
            continue;
        };
        if skip(id) {
            continue;
        }
        let Some(pid) = rustix::fs::readlinkat(&dirfd, name.as_os_str(), std::mem::take(&mut buf))
            .ok()
            .and_then(|target| {
                let pid = target.to_str().ok()?.parse::<i32>().ok();
                buf = target.into_bytes();
                pid
            })
        else {
            continue;
        };
        // A killed monitor may linger as a zombie until its reaper (often
        // pid 1) gets to it: that counts as dead.
        if pid <= 0 || crate::engine::state::alive(pid) {
            continue;
        }
        if !paths.container(id).join("container.json").exists() {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        let state = RunState::load(paths, id);
        match state.status {
            Status::Running | Status::Restarting | Status::Paused => out.push(id.to_owned()),
            _ => {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Gives every orphaned container a new monitor and waits for each to
/// report; returns the ids adopted. Failures are logged and left for the
/// next command: they never fail the command that noticed them.
pub fn adopt_orphans(paths: &Paths) -> Vec<String> {
    adopt(paths, orphans(paths))
}

/// Whether container `id` is an orphan, as [`orphans`] tells: its pid
/// link names a dead process and its state says it runs (or was
/// restarting or paused).
pub fn orphaned(paths: &Paths, id: &str) -> bool {
    crate::engine::state::read_monitor_pid(paths, id)
        .is_some_and(|pid| pid > 0 && !crate::engine::state::alive(pid))
        && matches!(
            RunState::load(paths, id).status,
            Status::Running | Status::Restarting | Status::Paused
        )
}

/// [`adopt_orphans`] for the orphans `ids`.
pub fn adopt(paths: &Paths, ids: Vec<String>) -> Vec<String> {
    if ids.is_empty() {
        return ids;
    }
    // All spawned first, then all awaited: adoption of many is one round.
    let spawned: Vec<(String, Result<std::fs::File>)> = ids
        .into_iter()
        .map(|id| {
            let r = spawn(paths, &id);
            (id, r)
        })
        .collect();
    let mut adopted = Vec::new();
    for (id, r) in spawned {
        let result = r.and_then(|mut out| {
            let mut line = String::new();
            let _ = out.read_to_string(&mut line);
            match line.trim() {
                "ok" => Ok(()),
                "" => anyhow::bail!("the monitor died before reporting"),
                other => anyhow::bail!("{}", other.strip_prefix("error: ").unwrap_or(other)),
            }
        });
        match result {
            Ok(()) => {
                tracing::info!(container = %id, "adopted: its monitor had died");
                adopted.push(id);
            }
            Err(e) => {
                tracing::warn!(container = %id, error = %format!("{e:#}"), "adopting a container whose monitor died")
            }
        }
    }
    adopted
}

/// Spawns a monitor for `ID` in adopt mode; returns the read end of its
/// report.
fn spawn(paths: &Paths, id: &str) -> Result<std::fs::File> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let errlog = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(paths.container(id).join("monitor.log"))
        .with_context(|| format!("opening the monitor log of {id}"))?;
    let mut child = super::process::monitor_command(true)?
        .arg(id)
        .env("BERTH_ROOT", &paths.root)
        .env("BERTH_RUN", &paths.run)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::from(errlog))
        .spawn()
        .context("spawning a monitor")?;
    // It lives on detached; if it already ended, reap it.
    let _ = child.try_wait();
    Ok(std::fs::File::from(r))
}
