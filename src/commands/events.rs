//! `events`: follows the project's event journal (`engine::events`) and
//! prints each event as `docker compose events` does, in text or `--json`;
//! ends with the stack it watched: once its containers (those of the
//! services named, if any) have all been removed (`down`), or at
//! `--until`. A stack that is only stopped may start again: it is followed.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::cli::lifecycle::EventsArgs;
use crate::engine::events::{parse_time_bound, Event, Journal, Watch};
use crate::engine::state::{self, Paths};
use crate::settings::ProjectArgs;

use super::project;

pub fn events(args: &ProjectArgs, a: &EventsArgs) -> Result<()> {
    let project = project::load(args, &[])?;
    let paths = Paths::from_env();
    let now = SystemTime::now();
    let since = a
        .since
        .as_deref()
        .map(|s| parse_time_bound(s, now))
        .transpose()
        .context("--since")?;
    let until = a
        .until
        .as_deref()
        .map(|s| parse_time_bound(s, now))
        .transpose()
        .context("--until")?;
    // The watch first, so nothing written after it is missed.
    let watch = Watch::new(&paths)?;
    let mut journal = if since.is_some() {
        Journal::from_start(&paths, &project.name)
    } else {
        Journal::from_end(&paths, &project.name)
    };
    let mut was_up = stack_up(&paths, &project.name, &a.services);
    let mut settling = false;
    loop {
        let mut out = std::io::stdout().lock();
        for e in journal.read_new()? {
            if e.oneoff || (!a.services.is_empty() && !a.services.contains(&e.service)) {
                continue;
            }
            if since.as_ref().is_some_and(|s| e.time < *s) {
                continue;
            }
            if until.as_ref().is_some_and(|u| e.time > *u) {
                return Ok(());
            }
            print_event(&mut out, &e, a.json)?;
            match e.action.as_str() {
                "create" => was_up = true,
                "destroy" => settling = true,
                _ => {}
            }
        }
        out.flush()?;
        drop(out);
        if until
            .as_ref()
            .is_some_and(|u| crate::monitor::log::rfc3339_nanos(SystemTime::now()) > *u)
        {
            return Ok(());
        }
        let up = stack_up(&paths, &project.name, &a.services);
        if up {
            was_up = true;
        } else if was_up && !settling {
            // Every container removed: the stack is gone, and so are we
            // (after printing what its last moments wrote).
            for e in journal.read_new()? {
                if !e.oneoff && (a.services.is_empty() || a.services.contains(&e.service)) {
                    print_event(&mut std::io::stdout().lock(), &e, a.json)?;
                }
            }
            return Ok(());
        }
        // A destroy is written just before the container's directory goes:
        // look again shortly. Otherwise the journal wakes us.
        let timeout = if settling {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        };
        let changed = watch.wait(Some(timeout))?;
        if !changed {
            settling = false;
        }
    }
}

fn print_event(out: &mut impl Write, e: &Event, json: bool) -> Result<()> {
    if json {
        // Docker marshals a map: keys sorted.
        let v = serde_json::json!({
            "action": e.action,
            "attributes": e.attributes,
            "id": e.id,
            "service": e.service,
            "time": e.time,
            "type": e.kind,
        });
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    } else {
        writeln!(out, "{e}")?;
    }
    Ok(())
}

/// Whether the project has any (selected) service container.
pub fn stack_up(paths: &Paths, project: &str, services: &[String]) -> bool {
    let Ok(containers) = state::project_containers(paths, project) else {
        return false;
    };
    containers
        .iter()
        .any(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service)))
}
