//! Waiting for a service's containers to meet a `depends_on` condition
//! (`service_started`, `service_healthy`, `service_completed_successfully`)
//! or `up --wait`.
//!
//! Event-driven, not polled: the monitors write each container's
//! `state.json` by rename, so an inotify watch on the container's directory
//! (`IN_MOVED_TO`) wakes the waiter at every change; a watch on
//! `$BERTH_ROOT/containers` sees containers come and go, and a pidfd per
//! monitor sees a monitor that dies without writing anything (kill -9). A
//! dependency that exits for good (its monitor gone) fails the wait at
//! once; one its restart policy brings back (monitor alive, `restarting`)
//! does not. A slow re-check ([`SAFETY_NET`]) guards against anything the
//! events could miss, and `wait_timeout` bounds the whole wait.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

use super::execute::ExecOptions;
use super::state::{self, alive, Paths, RunState, Status};

/// The longest the waiter sleeps without an event before it looks again.
const SAFETY_NET: Duration = Duration::from_secs(5);

/// One container as the waiter judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub has_healthcheck: bool,
    /// The status, corrected for a dead monitor.
    pub status: Status,
    /// The monitor has ended: nothing will restart the container.
    pub monitor_gone: bool,
    pub exit_code: i32,
    /// `starting`, `healthy`, `unhealthy` or empty.
    pub health: String,
}

/// Where a wait stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Pending,
    Failed(String),
}

/// Judges a service's containers against `condition` (pure).
pub fn verdict(service: &str, condition: &str, containers: &[Seen]) -> Verdict {
    let mut all = true;
    for c in containers {
        let over = c.status == Status::Exited && c.monitor_gone;
        let ok = match condition {
            "service_healthy" => {
                if !c.has_healthcheck {
                    return Verdict::Failed(format!(
                        "dependency failed to start: container {} has no healthcheck configured",
                        c.name
                    ));
                }
                if c.health == "unhealthy" {
                    return Verdict::Failed(format!(
                        "dependency failed to start: container {} is unhealthy",
                        c.name
                    ));
                }
                c.status == Status::Running && c.health == "healthy"
            }
            "service_completed_successfully" => {
                if over && c.exit_code != 0 {
                    return Verdict::Failed(format!(
                        "service {service:?} didn't complete successfully: exit {}",
                        c.exit_code
                    ));
                }
                over
            }
            _ => c.status == Status::Running || (over && c.exit_code == 0),
        };
        if !ok && over && condition != "service_completed_successfully" {
            return Verdict::Failed(format!(
                "dependency failed to start: container {} exited ({})",
                c.name, c.exit_code
            ));
        }
        all &= ok;
    }
    if all {
        Verdict::Met
    } else {
        Verdict::Pending
    }
}

/// Waits for `service`'s containers to meet `condition`. Reads the state
/// the monitors write, woken by their writes.
pub fn wait_condition(
    paths: &Paths,
    project: &str,
    service: &str,
    condition: &str,
    required: bool,
    opts: &ExecOptions,
) -> Result<()> {
    let deadline = Instant::now() + opts.wait_timeout;
    let mut announced = false;
    let watch = Watch::new(paths)?;
    loop {
        let containers: Vec<_> = state::project_containers(paths, project)?
            .into_iter()
            .filter(|c| c.service == service && !c.oneoff)
            .collect();
        if containers.is_empty() {
            if required {
                bail!("dependency {service:?} has no container");
            }
            return Ok(());
        }
        // Watches first, then the state read: a change between the two
        // still wakes the next wait.
        let mut pidfds = Vec::new();
        for c in &containers {
            watch.container(&paths.container(&c.id));
        }
        let seen: Vec<Seen> = containers
            .iter()
            .map(|c| {
                let run = RunState::load(paths, &c.id);
                let monitor_gone = run.monitor_pid <= 0 || !alive(run.monitor_pid);
                if !monitor_gone {
                    if let Some(fd) = pidfd(run.monitor_pid) {
                        pidfds.push(fd);
                    }
                }
                Seen {
                    name: c.name.clone(),
                    has_healthcheck: c.healthcheck.is_some(),
                    status: run.effective_status(),
                    monitor_gone,
                    exit_code: run.exit_code,
                    health: run.health.clone(),
                }
            })
            .collect();
        match verdict(service, condition, &seen) {
            Verdict::Met => {
                if announced {
                    opts.progress(&format!("Service {service}"), "Healthy");
                }
                return Ok(());
            }
            Verdict::Failed(why) => bail!("{why}"),
            Verdict::Pending => {}
        }
        if !announced && condition == "service_healthy" {
            opts.progress(&format!("Service {service}"), "Waiting");
            announced = true;
        }
        let now = Instant::now();
        if now > deadline {
            bail!("timed out waiting for {service:?} to be {condition}");
        }
        watch.wait(&pidfds, (deadline - now).min(SAFETY_NET))?;
    }
}

/// An inotify instance on the containers directory and on the directories
/// of the containers waited for.
struct Watch {
    fd: OwnedFd,
}

impl Watch {
    fn new(paths: &Paths) -> Result<Watch> {
        let fd =
            inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).context("inotify_init1")?;
        let dir = paths.containers();
        fs_err::create_dir_all(&dir)?;
        inotify::add_watch(
            &fd,
            &dir,
            WatchFlags::CREATE | WatchFlags::DELETE | WatchFlags::MOVED_TO | WatchFlags::ONLYDIR,
        )
        .with_context(|| format!("watching {}", dir.display()))?;
        Ok(Watch { fd })
    }

    /// Watches a container's directory for its state files replaced by
    /// rename (adding a watch twice keeps one). A directory gone already is
    /// seen by the next read of the containers.
    fn container(&self, dir: &std::path::Path) {
        let _ = inotify::add_watch(
            &self.fd,
            dir,
            WatchFlags::MOVED_TO | WatchFlags::CLOSE_WRITE | WatchFlags::ONLYDIR,
        );
    }

    /// Sleeps until an inotify event, the end of a monitor, or `timeout`;
    /// drains the events.
    fn wait(&self, pidfds: &[OwnedFd], timeout: Duration) -> Result<()> {
        let mut fds: Vec<PollFd<'_>> = std::iter::once(self.fd.as_fd())
            .chain(pidfds.iter().map(|p| p.as_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("waiting for container state changes"),
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = rustix::io::read(&self.fd, &mut buf) {
            if n == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// A pidfd for a live process, to see it end.
fn pidfd(pid: i32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: Status, monitor_gone: bool, exit_code: i32, health: &str) -> Seen {
        Seen {
            name: "p-db-1".into(),
            has_healthcheck: !health.is_empty(),
            status,
            monitor_gone,
            exit_code,
            health: health.into(),
        }
    }

    #[test]
    fn a_dependency_that_exits_for_good_fails_at_once() {
        let v = verdict(
            "db",
            "service_started",
            &[seen(Status::Exited, true, 3, "")],
        );
        assert_eq!(
            v,
            Verdict::Failed("dependency failed to start: container p-db-1 exited (3)".into())
        );
        let v = verdict(
            "db",
            "service_healthy",
            &[seen(Status::Exited, true, 1, "starting")],
        );
        assert!(matches!(v, Verdict::Failed(_)), "{v:?}");
    }

    #[test]
    fn a_dependency_its_restart_policy_brings_back_is_waited_for() {
        for status in [Status::Exited, Status::Restarting] {
            let v = verdict(
                "db",
                "service_healthy",
                &[seen(status, false, 1, "starting")],
            );
            assert_eq!(v, Verdict::Pending);
        }
        let v = verdict(
            "db",
            "service_started",
            &[seen(Status::Restarting, false, 1, "")],
        );
        assert_eq!(v, Verdict::Pending);
    }

    #[test]
    fn conditions_met() {
        assert_eq!(
            verdict(
                "db",
                "service_started",
                &[seen(Status::Running, false, 0, "")]
            ),
            Verdict::Met
        );
        assert_eq!(
            verdict(
                "db",
                "service_healthy",
                &[seen(Status::Running, false, 0, "healthy")]
            ),
            Verdict::Met
        );
        assert_eq!(
            verdict(
                "init",
                "service_completed_successfully",
                &[seen(Status::Exited, true, 0, "")]
            ),
            Verdict::Met
        );
        assert!(matches!(
            verdict(
                "init",
                "service_completed_successfully",
                &[seen(Status::Exited, true, 2, "")]
            ),
            Verdict::Failed(_)
        ));
        // Still running: not completed yet.
        assert_eq!(
            verdict(
                "init",
                "service_completed_successfully",
                &[seen(Status::Running, false, 0, "")]
            ),
            Verdict::Pending
        );
        assert!(matches!(
            verdict(
                "db",
                "service_healthy",
                &[seen(Status::Running, false, 0, "unhealthy")]
            ),
            Verdict::Failed(_)
        ));
    }
}
