//! `wait SERVICE…`: blocks until the services' containers stop, printing
//! each exit as `docker compose wait` does; the exit status is the first
//! container's. `--down-project` takes the project down once the first
//! container stops. Woken by the event journal, not by polling.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::lifecycle::{DownArgs, WaitArgs};
use crate::engine::events::Watch;
use crate::engine::state::{self, Paths, RunState, Status};
use crate::settings::ProjectArgs;

use super::project;

pub fn wait(args: &ProjectArgs, a: &WaitArgs) -> Result<u8> {
    let project = project::load(args, &[])?;
    let paths = Paths::from_env();
    let watch = Watch::new(&paths)?;
    let mut waiting: Vec<_> = state::project_containers(&paths, &project.name)?
        .into_iter()
        .filter(|c| a.services.contains(&c.service))
        .collect();
    if waiting.is_empty() {
        bail!("no containers for project {:?}", project.name);
    }
    let mut first: Option<i32> = None;
    'outer: loop {
        let mut i = 0;
        while i < waiting.len() {
            let c = &waiting[i];
            let run = RunState::load(&paths, &c.id);
            let gone = !paths.container(&c.id).exists();
            let stopped = matches!(
                run.effective_status(),
                Status::Exited | Status::Dead | Status::Restarting
            );
            if !(stopped || gone) {
                i += 1;
                continue;
            }
            println!(
                "container {:?} exited with status code {}",
                c.id, run.exit_code
            );
            first.get_or_insert(run.exit_code);
            waiting.remove(i);
            if a.down_project {
                break 'outer;
            }
        }
        if waiting.is_empty() {
            break;
        }
        // Monitors write `die` to the journal: that wakes us. The timeout
        // catches a monitor that was killed before it could.
        watch.wait(Some(Duration::from_secs(1)))?;
    }
    if a.down_project {
        super::lifecycle::down(
            args,
            &DownArgs {
                services: Vec::new(),
                volumes: false,
                remove_orphans: true,
                timeout: None,
                rmi: None,
            },
        )?;
    }
    Ok(first.unwrap_or(0).clamp(0, 255) as u8)
}
