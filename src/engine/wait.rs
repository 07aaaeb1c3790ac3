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

/// How long a `service_healthy` wait on a container without a
/// healthcheck gives it to exit before it says so: compose looks first
/// 500 ms after the wait began (`waitDependency`'s ticker), so a
/// dependency that dies at once is reported as exited, not as lacking a
/// healthcheck.
const FIRST_LOOK: Duration = Duration::from_millis(500);

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

/// Why a dependency cannot meet its condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The container exited and nothing brings it back (or, waited on for
    /// health without a healthcheck, it exited at all).
    Exited {
        container: String,
        code: i32,
    },
    NoHealthcheck {
        container: String,
    },
    Unhealthy {
        container: String,
    },
    /// `service_completed_successfully` with a non-zero exit.
    NotCompleted {
        code: i32,
    },
}

impl Failure {
    /// The error of a required dependency, in compose's words
    /// (`checkDependencyHealthy`, `checkDependencyCompleted`).
    pub fn error(&self, service: &str) -> String {
        match self {
            Failure::NotCompleted { code } => {
                format!("service {service:?} didn't complete successfully: exit {code}")
            }
            _ => format!("dependency failed to start: {}", self.reason()),
        }
    }

    /// The warning for a `required: false` dependency, which does not stop
    /// its dependent from starting.
    pub fn warning(&self, service: &str) -> String {
        match self {
            Failure::NotCompleted { code } => {
                format!("optional dependency {service:?} didn't complete successfully: exit {code}")
            }
            _ => format!(
                "optional dependency {service:?} failed to start: {}",
                self.reason()
            ),
        }
    }

    fn reason(&self) -> String {
        match self {
            Failure::Exited { container, code } => format!("container {container} exited ({code})"),
            Failure::NoHealthcheck { container } => {
                format!("container {container} has no healthcheck configured")
            }
            Failure::Unhealthy { container } => format!("container {container} is unhealthy"),
            Failure::NotCompleted { code } => format!("exit {code}"),
        }
    }
}

/// Where a wait stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Pending,
    Failed(Failure),
}

/// Judges a service's containers against `condition` (pure).
/// `first_look_over`: [`FIRST_LOOK`] has passed since the wait began.
pub fn verdict(condition: &str, containers: &[Seen], first_look_over: bool) -> Verdict {
    let mut all = true;
    for c in containers {
        let over = c.status == Status::Exited && c.monitor_gone;
        let exited = || {
            Verdict::Failed(Failure::Exited {
                container: c.name.clone(),
                code: c.exit_code,
            })
        };
        let ok = match condition {
            "service_healthy" => {
                // The exit first, as compose's isServiceHealthy: a
                // container without a healthcheck can never turn healthy,
                // so its exit is the news even if it would restart.
                if over || (!c.has_healthcheck && c.status == Status::Exited) {
                    return exited();
                }
                if !c.has_healthcheck {
                    if !first_look_over {
                        all = false;
                        continue;
                    }
                    return Verdict::Failed(Failure::NoHealthcheck {
                        container: c.name.clone(),
                    });
                }
                if c.health == "unhealthy" {
                    return Verdict::Failed(Failure::Unhealthy {
                        container: c.name.clone(),
                    });
                }
                c.status == Status::Running && c.health == "healthy"
            }
            "service_completed_successfully" => {
                if over && c.exit_code != 0 {
                    return Verdict::Failed(Failure::NotCompleted { code: c.exit_code });
                }
                over
            }
            _ => c.status == Status::Running || (over && c.exit_code == 0),
        };
        if !ok && over && condition != "service_completed_successfully" {
            return exited();
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
/// the monitors write, woken by their writes. A dependency that is not
/// `required` and cannot meet it is reported as compose's warning and
/// the wait ends without an error.
pub fn wait_condition(
    paths: &Paths,
    project: &str,
    service: &str,
    condition: &str,
    required: bool,
    opts: &ExecOptions,
) -> Result<()> {
    let began = Instant::now();
    let deadline = began + opts.wait_timeout;
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
        let now = Instant::now();
        let first_look_over = now >= began + FIRST_LOOK;
        match verdict(condition, &seen, first_look_over) {
            Verdict::Met => {
                if announced {
                    opts.progress(&format!("Service {service}"), "Healthy");
                }
                return Ok(());
            }
            Verdict::Failed(why) if required => bail!("{}", why.error(service)),
            Verdict::Failed(why) => {
                eprintln!("WARN[0000] {}", why.warning(service));
                return Ok(());
            }
            Verdict::Pending => {}
        }
        if !announced && condition == "service_healthy" {
            opts.progress(&format!("Service {service}"), "Waiting");
            announced = true;
        }
        if now > deadline {
            bail!("timed out waiting for {service:?} to be {condition}");
        }
        let mut sleep = (deadline - now).min(SAFETY_NET);
        if !first_look_over {
            sleep = sleep.min(began + FIRST_LOOK - now);
        }
        watch.wait(&pidfds, sleep)?;
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

    fn failed(v: Verdict) -> Failure {
        match v {
            Verdict::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_dependency_that_exits_for_good_fails_at_once() {
        let f = failed(verdict(
            "service_started",
            &[seen(Status::Exited, true, 3, "")],
            false,
        ));
        assert_eq!(
            f.error("db"),
            "dependency failed to start: container p-db-1 exited (3)"
        );
        let f = failed(verdict(
            "service_healthy",
            &[seen(Status::Exited, true, 1, "starting")],
            false,
        ));
        assert_eq!(
            f.error("db"),
            "dependency failed to start: container p-db-1 exited (1)"
        );
    }

    #[test]
    fn an_exit_is_reported_before_a_missing_healthcheck() {
        // TestUpWithDependencyExit: `db` has no healthcheck and exits 1;
        // compose says it exited, whether or not its monitor is gone yet.
        for monitor_gone in [false, true] {
            for first_look_over in [false, true] {
                let f = failed(verdict(
                    "service_healthy",
                    &[seen(Status::Exited, monitor_gone, 1, "")],
                    first_look_over,
                ));
                assert_eq!(
                    f.error("db"),
                    "dependency failed to start: container p-db-1 exited (1)"
                );
            }
        }
    }

    #[test]
    fn a_running_container_without_healthcheck_fails_after_the_first_look() {
        let running = [seen(Status::Running, false, 0, "")];
        assert_eq!(
            verdict("service_healthy", &running, false),
            Verdict::Pending
        );
        let f = failed(verdict("service_healthy", &running, true));
        assert_eq!(
            f.error("db"),
            "dependency failed to start: container p-db-1 has no healthcheck configured"
        );
    }

    #[test]
    fn optional_dependencies_are_warned_about_in_composes_words() {
        let f = Failure::NoHealthcheck {
            container: "p-bar-1".into(),
        };
        assert_eq!(
            f.warning("bar"),
            "optional dependency \"bar\" failed to start: container p-bar-1 has no healthcheck configured"
        );
        assert_eq!(
            Failure::NotCompleted { code: 2 }.warning("init"),
            "optional dependency \"init\" didn't complete successfully: exit 2"
        );
        assert_eq!(
            Failure::NotCompleted { code: 2 }.error("init"),
            "service \"init\" didn't complete successfully: exit 2"
        );
    }

    #[test]
    fn a_dependency_its_restart_policy_brings_back_is_waited_for() {
        for status in [Status::Exited, Status::Restarting] {
            let v = verdict(
                "service_healthy",
                &[seen(status, false, 1, "starting")],
                true,
            );
            assert_eq!(v, Verdict::Pending);
        }
        let v = verdict(
            "service_started",
            &[seen(Status::Restarting, false, 1, "")],
            true,
        );
        assert_eq!(v, Verdict::Pending);
    }

    #[test]
    fn conditions_met() {
        assert_eq!(
            verdict(
                "service_started",
                &[seen(Status::Running, false, 0, "")],
                false
            ),
            Verdict::Met
        );
        assert_eq!(
            verdict(
                "service_healthy",
                &[seen(Status::Running, false, 0, "healthy")],
                false
            ),
            Verdict::Met
        );
        assert_eq!(
            verdict(
                "service_completed_successfully",
                &[seen(Status::Exited, true, 0, "")],
                false
            ),
            Verdict::Met
        );
        assert_eq!(
            failed(verdict(
                "service_completed_successfully",
                &[seen(Status::Exited, true, 2, "")],
                false
            )),
            Failure::NotCompleted { code: 2 }
        );
        // Still running: not completed yet.
        assert_eq!(
            verdict(
                "service_completed_successfully",
                &[seen(Status::Running, false, 0, "")],
                true
            ),
            Verdict::Pending
        );
        assert_eq!(
            failed(verdict(
                "service_healthy",
                &[seen(Status::Running, false, 0, "unhealthy")],
                true
            )),
            Failure::Unhealthy {
                container: "p-db-1".into()
            }
        );
    }
}
