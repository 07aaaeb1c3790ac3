//! The monitor process: one per container, the berth binary re-executed as
//! `berth system monitor <id>` and detached with `setsid`.
//!
//! It creates and starts the container through the runtime (so the
//! container's init is its child; it is also a child subreaper), copies the
//! container's stdout and stderr into the json-file log, records the exit,
//! applies the restart policy with Docker's back-off, runs the healthcheck,
//! and stops the container on SIGTERM (the stop signal, the grace period,
//! then SIGKILL). Everything it observes goes to `state.json`
//! ([`RunState`]), which `ps`, `up --wait` and `depends_on` read.
//!
//! A monitor may die (kill -9) while its container runs on: the container's
//! output goes to FIFOs it holds open read-write (`state.rs` layout), so it
//! never meets a closed pipe, and its output waits in the pipe buffer. The
//! next berth command starts a monitor in [`Mode::Adopt`] (`adopt.rs`),
//! which drains the FIFOs, watches the init through a pidfd (it is not its
//! parent, so it cannot wait for it), and from then on does all a monitor
//! does. The exit status of a process reaped by someone else is unknown:
//! it is read from the zombie while one is there, else recorded as 255, as
//! Docker does when it has none. What the container wrote after its
//! monitor's last read is kept only while someone holds the FIFOs open: if
//! the container too ends before a monitor adopts it, that output goes with
//! the pipe buffer (fifo(7)); the exit and the restart policy do not.
//!
//! The spawner learns the outcome of the first start (or of the adoption)
//! through the monitor's stdout: one line, `ok` or `error: …`, then the
//! monitor's stdout is replaced by `/dev/null`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode as FileMode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use berth_runtime::{CreateOptions, Runtime};

use super::health::{self, Health, HealthConfig, Probe, ProbeResult};
use super::log::{JsonFileWriter, Rotation, Stream};
use super::restart::{Decision, Exit, RestartPolicy, Restarter};
use crate::engine::events;
use crate::engine::state::{now_millis, ContainerRecord, Lock, Paths, RunState, Status};
use crate::engine::usage::Cgroups;

/// The exit code recorded when the real one is unknown (the init was
/// reaped by another process while no monitor watched it), as Docker.
pub const UNKNOWN_EXIT: i32 = 255;

/// The pipe buffer asked for each output FIFO: what a container can write
/// while it has no monitor before its writes block.
const FIFO_SIZE: i32 = 1 << 20;

/// How a monitor takes its container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Create and start it: the init is our child.
    Start,
    /// Take over a container whose monitor died: it still runs (then we
    /// watch it), or it ended unwatched (then its restart policy applies).
    Adopt,
}

/// Shared between the main loop and the health thread.
struct Shared {
    paths: Paths,
    id: String,
    state: Mutex<RunState>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut RunState)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // `pause` and `unpause` write the status themselves: a save of ours
        // (a health result) must not undo theirs.
        let disk = RunState::load(&self.paths, &self.id).status;
        if matches!(
            (s.status, disk),
            (Status::Running, Status::Paused) | (Status::Paused, Status::Running)
        ) {
            s.status = disk;
        }
        f(&mut s);
        if let Err(e) = s.save(&self.paths, &self.id) {
            tracing::warn!(error = %e, "saving the container state");
        }
    }
}

/// The first round of the monitor's loop.
enum First {
    /// Create and start the container.
    Start,
    /// It runs: watch it.
    Adopted(Running),
    /// It ended while nobody watched.
    Ended { code: i32, ran_for: Duration },
}

/// Runs the monitor of container `id` until the container stays exited.
pub fn run(paths: &Paths, id: &str, mode: Mode) -> Result<()> {
    let _ = nix::unistd::setsid();
    nix::sys::prctl::set_child_subreaper(true).context("becoming a child subreaper")?;
    // Never two monitors for one container: the lock is ours until we exit
    // (or are killed).
    let Some(_lock) = take_lock(paths, id, mode)? else {
        return Ok(());
    };
    let record = ContainerRecord::load(paths, id)?;
    let pid_file = paths.monitor_pid(id);
    crate::engine::state::symlink_atomic(&std::process::id().to_string(), &pid_file)?;

    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        mask.add(s);
    }
    mask.thread_block().context("blocking signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;

    let rt = Runtime::new(paths.runtime_root());
    let rotation = Rotation::from_options(
        record.log_max_size.as_deref(),
        record.log_max_file.as_deref(),
    )?;
    // The `none` driver keeps nothing: the output is read (the container
    // must not block on a full pipe) and dropped.
    let log_path = if record.log_driver == "none" {
        std::path::PathBuf::from("/dev/null")
    } else {
        paths.log(id)
    };
    let mut log = JsonFileWriter::open(&log_path, rotation)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let policy = RestartPolicy::parse(&record.restart)?;
    let mut restarter = Restarter::new(policy);
    let prior = RunState::load(paths, id);
    let mut first = match mode {
        Mode::Start => First::Start,
        Mode::Adopt => adopt(paths, id, &prior),
    };
    let shared = Arc::new(Shared {
        paths: paths.clone(),
        id: id.to_owned(),
        state: Mutex::new(match &first {
            // What the dead monitor saw stays (health, start time, …).
            First::Adopted(_) => prior.clone(),
            _ => RunState {
                restart_count: prior.restart_count,
                ..RunState::default()
            },
        }),
    });
    let stop_signal = parse_signal(&record.stop_signal).unwrap_or(Signal::SIGTERM);
    let grace = Duration::from_millis(record.stop_grace_ms);
    let mut reported = false;
    let mut user_stop = false;
    let mut dependency_restarted = false;

    loop {
        let mut unhealthy_kill = false;
        let (code, ran_for) = match std::mem::replace(&mut first, First::Start) {
            First::Ended { code, ran_for } => {
                tracing::info!(container = %id, code, "adopted a container that ended unwatched");
                // What the runtime still holds of it (state, cgroup).
                let _ = rt.delete(id, true);
                if !reported {
                    report("ok");
                    reported = true;
                }
                (code, ran_for)
            }
            how => {
                let adopted = matches!(how, First::Adopted(_));
                let (mut run, started) = match how {
                    First::Adopted(run) => {
                        let up_for =
                            Duration::from_millis(now_millis().saturating_sub(prior.started_at));
                        let started = Instant::now()
                            .checked_sub(up_for)
                            .unwrap_or_else(Instant::now);
                        (run, started)
                    }
                    _ => {
                        let _ = rt.delete(id, true);
                        let started = Instant::now();
                        match start(&rt, paths, id, record.stdin_open) {
                            Ok(r) => (r, started),
                            Err(e) => {
                                let msg = format!("{e:#}");
                                shared.update(|s| {
                                    s.status = Status::Exited;
                                    s.exit_code = 128;
                                    s.error = msg.clone();
                                    s.pid = 0;
                                    s.monitor_pid = 0;
                                    s.finished_at = now_millis();
                                });
                                if !reported {
                                    report(&format!("error: {msg}"));
                                }
                                let _ = std::fs::remove_file(&pid_file);
                                return Err(e);
                            }
                        }
                    }
                };
                let pid = run.pid;
                if adopted {
                    tracing::info!(container = %id, pid, "adopted a running container");
                    shared.update(|s| s.monitor_pid = std::process::id() as i32);
                } else {
                    shared.update(|s| {
                        s.status = Status::Running;
                        s.pid = pid;
                        s.started_at = now_millis();
                        s.monitor_pid = std::process::id() as i32;
                        s.stopped_by_user = false;
                        s.error.clear();
                        s.restart_count = restarter.restarts();
                    });
                }
                if !reported {
                    report("ok");
                    reported = true;
                    // The setup's allocations (the spec, seccomp) are done with.
                    berth_runtime::sys::trim_heap();
                } else {
                    events::emit(paths, &record, "restart", &[]);
                    notify_dependents(paths, &record);
                }
                if !adopted {
                    events::emit(paths, &record, "start", &[]);
                }
                let oom = run.oom.take();
                let generation = Arc::new(AtomicBool::new(true));
                let unhealthy = Arc::new(AtomicBool::new(false));
                if let Some(h) = &record.healthcheck {
                    let resume = adopted.then(|| resumed_health(&prior)).flatten();
                    spawn_health(
                        &shared,
                        h,
                        HealthRun {
                            pid,
                            started,
                            resume,
                            restart_on_unhealthy: record.restart_on_unhealthy,
                            alive: generation.clone(),
                            unhealthy_kill: unhealthy.clone(),
                        },
                    );
                }
                let code = pump(
                    paths,
                    &rt,
                    id,
                    run,
                    &sfd,
                    &mut log,
                    stop_signal,
                    grace,
                    &mut user_stop,
                    &mut dependency_restarted,
                );
                generation.store(false, Ordering::SeqCst);
                if oom.is_some_and(|o| o.killed()) {
                    events::emit(paths, &record, "oom", &[]);
                }
                let _ = log.flush_partial();
                let _ = rt.delete(id, true);
                unhealthy_kill = unhealthy.load(Ordering::SeqCst);
                (code, started.elapsed())
            }
        };
        shared.update(|s| {
            s.status = Status::Exited;
            s.exit_code = code;
            s.pid = 0;
            s.finished_at = now_millis();
            s.stopped_by_user = user_stop;
        });
        // After the state: whoever the event wakes reads the exit.
        events::emit(paths, &record, "die", &[("exitCode", code.to_string())]);
        let forced = (unhealthy_kill || dependency_restarted) && !user_stop;
        dependency_restarted = false;
        let decision = if forced {
            Decision::RestartAfter(restarter.forced(ran_for))
        } else {
            restarter.on_exit(Exit {
                code,
                ran_for,
                stopped_by_user: user_stop,
            })
        };
        let Decision::RestartAfter(delay) = decision else {
            break;
        };
        shared.update(|s| {
            s.status = Status::Restarting;
            s.restart_count = restarter.restarts();
        });
        // The back-off; a stop during it ends the monitor.
        if wait_signals(&sfd, delay, &mut user_stop) {
            shared.update(|s| {
                s.status = Status::Exited;
                s.stopped_by_user = true;
            });
            break;
        }
    }
    shared.update(|s| s.monitor_pid = 0);
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

/// The container's monitor lock, or `None` when another monitor has the
/// container and its outcome has been reported as ours: in [`Mode::Adopt`]
/// another command adopted it first; in [`Mode::Start`] a monitor spawned
/// by an `up` that was killed is starting it (the next `up` asks again).
fn take_lock(paths: &Paths, id: &str, mode: Mode) -> Result<Option<Lock>> {
    let dir = paths.container_run(id);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(lock) = Lock::try_acquire_dir(&dir)? {
            return Ok(Some(lock));
        }
        if mode == Mode::Adopt {
            report("ok");
            return Ok(None);
        }
        let s = RunState::load(paths, id);
        match s.status {
            Status::Running | Status::Restarting | Status::Paused => {
                report("ok");
                return Ok(None);
            }
            // The holder is a monitor finishing its exit (it clears its pid
            // last): wait for its lock.
            Status::Exited | Status::Dead if s.monitor_pid == 0 => {}
            Status::Exited | Status::Dead if !s.error.is_empty() => {
                report(&format!("error: {}", s.error));
                bail!("{}", s.error);
            }
            Status::Exited | Status::Dead if s.started_at > 0 => {
                report("ok");
                return Ok(None);
            }
            _ => {}
        }
        if Instant::now() > deadline {
            let msg = format!("container {id} has another monitor that did not start it in 60s");
            report(&format!("error: {msg}"));
            bail!(msg);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What became of a container whose monitor died: its init, if it still
/// runs, or how it ended.
fn adopt(paths: &Paths, id: &str, prior: &RunState) -> First {
    let ran_for = Duration::from_millis(
        prior
            .finished_at
            .max(now_millis())
            .saturating_sub(prior.started_at),
    );
    if prior.status == Status::Restarting {
        // Killed during the back-off: the restart it decided on is due.
        return First::Ended {
            code: prior.exit_code,
            ran_for: Duration::from_millis(prior.finished_at.saturating_sub(prior.started_at)),
        };
    }
    let saved = berth_runtime::state::Saved::load(&paths.runtime_root(), id).ok();
    let Some(saved) = saved.filter(|s| s.pid > 0) else {
        return First::Ended {
            code: UNKNOWN_EXIT,
            ran_for,
        };
    };
    // The pidfd first, then the check that it is the same process (same
    // start time, not a zombie): a pid reused since cannot slip in.
    let pidfd = rustix::process::Pid::from_raw(saved.pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let running = pidfd.is_some() && saved.alive() && crate::engine::state::alive(saved.pid);
    if !running {
        return First::Ended {
            code: zombie_exit_code(saved.pid, saved.start_time).unwrap_or(UNKNOWN_EXIT),
            ran_for,
        };
    }
    let [out, err] = ["stdout", "stderr"].map(|name| {
        let path = paths.container_run(id).join(name);
        match open_reader(&path) {
            Ok(fd) => Some(fd),
            Err(e) => {
                // Started by a berth without output FIFOs: its pipes died
                // with the monitor, and its output is lost.
                tracing::warn!(container = %id, error = %e, "the container's output cannot be adopted");
                None
            }
        }
    });
    First::Adopted(Running {
        pid: saved.pid,
        start_time: saved.start_time,
        out,
        err,
        pidfd,
        oom: OomWatch::of(saved.pid),
    })
}

/// The exit code of `pid` read from its zombie (`/proc/<pid>/stat`, field
/// 52, a wait status), if it is still a zombie of the process that started
/// at `start_time`; `None` once someone has reaped it.
pub fn zombie_exit_code(pid: i32, start_time: u64) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_zombie_exit(&stat, start_time)
}

/// [`zombie_exit_code`] on the text of a `stat` file.
fn parse_zombie_exit(stat: &str, start_time: u64) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    if fields.first() != Some(&"Z") || fields.get(19)?.parse::<u64>().ok()? != start_time {
        return None;
    }
    let status: i32 = fields.get(49)?.parse().ok()?;
    Some(if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    })
}

/// The health a dead monitor had recorded, to go on from.
fn resumed_health(prior: &RunState) -> Option<(health::Status, u32)> {
    let status = match prior.health.as_str() {
        "healthy" => health::Status::Healthy,
        "unhealthy" => health::Status::Unhealthy,
        "starting" => health::Status::Starting,
        _ => return None,
    };
    Some((status, prior.failing_streak))
}

/// Tells the monitors of the project's containers that depend on this
/// service with `restart: true` that it restarted (SIGUSR2).
fn notify_dependents(paths: &Paths, record: &ContainerRecord) {
    let Ok(all) = crate::engine::state::project_containers(paths, &record.project) else {
        return;
    };
    let key = format!("{}:", record.service);
    for c in all {
        let restarts_with_us = c
            .label(crate::engine::naming::LABEL_DEPENDS_ON)
            .split(',')
            .any(|d| d.starts_with(&key) && d.ends_with(":true"));
        if !restarts_with_us || c.id == record.id {
            continue;
        }
        let pid = RunState::load(paths, &c.id).monitor_pid;
        if pid > 0 {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGUSR2);
        }
    }
}

/// One line to whoever spawned us, then our stdout goes to /dev/null.
fn report(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
}

/// A running container and the read ends of its output.
struct Running {
    pid: i32,
    /// The init's start time, to tell its zombie from a reused pid.
    start_time: u64,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// For an adopted init (not our child): readable when it exits.
    pidfd: Option<OwnedFd>,
    /// Its memory cgroup's OOM kills, counted from before it ran.
    oom: Option<OomWatch>,
}

/// Whether the kernel's OOM killer struck in a container's cgroup during
/// one run of it.
struct OomWatch {
    cgroups: Cgroups,
    /// The cgroup's `oom_kill` count when the watch began.
    before: u64,
}

impl OomWatch {
    /// Begins counting for the process `pid`. Called on a created init
    /// before it is started: the container's command has not run yet, so
    /// an OOM kill at once (or while a loaded monitor is slow to get to
    /// it) is still seen; the cgroup is read while it exists (it goes
    /// with the container).
    fn of(pid: i32) -> Option<OomWatch> {
        let cgroups = Cgroups::of(pid, Path::new("/sys/fs/cgroup")).ok()?;
        let before = cgroups.oom_kills();
        Some(OomWatch { cgroups, before })
    }

    /// Whether an OOM kill happened since the watch began (read before the
    /// container is deleted).
    fn killed(&self) -> bool {
        self.cgroups.oom_kills() > self.before
    }
}

/// Our end of an output FIFO: read-only and non-blocking, so opening it
/// never waits for a writer.
fn open_reader(path: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(f.into())
}

/// The container's output FIFOs in its run directory, made if missing:
/// the container's ends (read-write: the container itself is always a
/// reader, so its writes never fail with EPIPE while no monitor runs; on
/// Linux opening a FIFO read-write never blocks, fifo(7)) and ours.
fn open_output(paths: &Paths, id: &str) -> Result<([OwnedFd; 2], [OwnedFd; 2])> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = paths.container_run(id);
    fs_err::create_dir_all(&dir)?;
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    for name in ["stdout", "stderr"] {
        let path = dir.join(name);
        match nix::unistd::mkfifo(&path, FileMode::from_bits_truncate(0o600)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("mkfifo {}", path.display())),
        }
        let reader = open_reader(&path)?;
        // A bigger buffer: what the container can write while it has no
        // monitor before its writes block. Best effort (pipe-max-size).
        let _ = nix::fcntl::fcntl(
            reader.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(FIFO_SIZE),
        );
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // The container writes blocking, as to any pipe.
        nix::fcntl::fcntl(
            writer.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()),
        )
        .with_context(|| format!("fcntl {}", path.display()))?;
        theirs.push(OwnedFd::from(writer));
        ours.push(reader);
    }
    let two = |v: Vec<OwnedFd>| -> [OwnedFd; 2] {
        let mut it = v.into_iter();
        [it.next().expect("two"), it.next().expect("two")]
    };
    Ok((two(theirs), two(ours)))
}

/// The container's stdin when `stdin_open` is set: the `stdin` FIFO in its
/// run directory, opened read-write by the container itself. It is then
/// its own (silent) writer, so a read waits for ever and never meets EOF,
/// whether or not a monitor lives: Docker's stdin of a container made with
/// `-i` that nobody attaches to (`docker compose run -d SERVICE cat` keeps
/// running). On Linux opening a FIFO read-write never blocks (fifo(7)).
fn open_stdin(paths: &Paths, id: &str) -> Result<OwnedFd> {
    let dir = paths.container_run(id);
    fs_err::create_dir_all(&dir)?;
    let path = dir.join("stdin");
    match nix::unistd::mkfifo(&path, FileMode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("mkfifo {}", path.display())),
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(f.into())
}

fn start(rt: &Runtime, paths: &Paths, id: &str, stdin_open: bool) -> Result<Running> {
    let ([out_w, err_w], [out_r, err_r]) = open_output(paths, id)?;
    let stdin: OwnedFd = if stdin_open {
        open_stdin(paths, id)?
    } else {
        std::fs::File::open("/dev/null")?.into()
    };
    let opts = CreateOptions {
        stdio: [Some(stdin), Some(out_w), Some(err_w)],
        ..CreateOptions::default()
    };
    let saved = rt
        .create(id, &paths.container(id), &opts)
        .with_context(|| format!("creating container {id}"))?;
    drop(opts);
    // Counted before the command runs: it may be OOM-killed at once.
    let oom = OomWatch::of(saved.pid);
    rt.start(id)
        .with_context(|| format!("starting container {id}"))?;
    Ok(Running {
        pid: saved.pid,
        start_time: saved.start_time,
        out: Some(out_r),
        err: Some(err_r),
        pidfd: None,
        oom,
    })
}

/// Copies output to the log until the container's init has exited and its
/// output is drained; handles stop requests. Returns the exit code.
#[allow(clippy::too_many_arguments)]
fn pump(
    paths: &Paths,
    rt: &Runtime,
    id: &str,
    run: Running,
    sfd: &SignalFd,
    log: &mut JsonFileWriter,
    stop_signal: Signal,
    grace: Duration,
    user_stop: &mut bool,
    dependency_restarted: &mut bool,
) -> i32 {
    let mut open = [run.out, run.err];
    let mut pidfd = run.pidfd;
    let mut code: Option<i32> = None;
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if code.is_some()
            && (open.iter().all(Option::is_none)
                || drain_until.is_some_and(|d| Instant::now() >= d))
        {
            break;
        }
        let now = Instant::now();
        let mut timeout_ms: i64 = -1;
        for d in [kill_at, drain_until].into_iter().flatten() {
            let ms = d.saturating_duration_since(now).as_millis() as i64;
            timeout_ms = if timeout_ms < 0 {
                ms
            } else {
                timeout_ms.min(ms)
            };
        }
        let (ready_out, ready_err, ready_sig, ready_exit) = {
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            if let Some(p) = &pidfd {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
            let first = fds.len();
            let mut which = Vec::new();
            for (i, f) in open.iter().enumerate() {
                if let Some(f) = f {
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                    which.push(i);
                }
            }
            let t = if timeout_ms < 0 {
                PollTimeout::NONE
            } else {
                PollTimeout::try_from(timeout_ms.min(i64::from(i32::MAX)) as i32)
                    .unwrap_or(PollTimeout::MAX)
            };
            match poll(&mut fds, t) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
            let ready = |p: &PollFd<'_>| {
                p.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            let sig = ready(&fds[0]);
            let exited = first == 2 && ready(&fds[1]);
            let mut r = [false, false];
            for (k, i) in which.iter().enumerate() {
                r[*i] = ready(&fds[k + first]);
            }
            (r[0], r[1], sig, exited)
        };
        if ready_exit {
            // An adopted init exited; its parent (not us) reaps it.
            pidfd = None;
            code = Some(zombie_exit_code(run.pid, run.start_time).unwrap_or(UNKNOWN_EXIT));
        }
        for (i, ready) in [ready_out, ready_err].into_iter().enumerate() {
            if !ready {
                continue;
            }
            let Some(fd) = &open[i] else { continue };
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) => open[i] = None,
                Ok(n) => {
                    let stream = if i == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    let _ = log.write(stream, &buf[..n]);
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => open[i] = None,
            }
        }
        if ready_sig {
            while let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => reap(run.pid, &mut code),
                    // `berth kill`: the exit that follows is the user's.
                    Ok(Signal::SIGUSR1) => *user_stop = true,
                    // A dependency with `depends_on.restart: true` restarted:
                    // stop this one (stop signal, grace, SIGKILL) and start
                    // it again whatever the policy.
                    Ok(Signal::SIGUSR2) if !*user_stop && !*dependency_restarted => {
                        *dependency_restarted = true;
                        let _ = rt.kill(id, stop_signal as i32, false);
                        kill_at = Some(Instant::now() + grace);
                    }
                    Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) => {
                        if !*user_stop {
                            *user_stop = true;
                            let grace = asked_grace(paths, id).unwrap_or(grace);
                            let _ = rt.kill(id, stop_signal as i32, false);
                            kill_at = Some(Instant::now() + grace);
                        } else {
                            // Asked twice: no more grace.
                            let _ = rt.kill(id, libc::SIGKILL, true);
                        }
                    }
                    _ => {}
                }
            }
            reap(run.pid, &mut code);
        }
        if kill_at.is_some_and(|k| Instant::now() >= k) {
            let _ = rt.kill(id, libc::SIGKILL, true);
            kill_at = None;
        }
        if code.is_some() && drain_until.is_none() {
            // Processes that outlive the init (no pid namespace) may hold
            // the pipes: drain briefly, then stop reading.
            drain_until = Some(Instant::now() + Duration::from_millis(200));
            kill_at = None;
        }
    }
    code.unwrap_or(UNKNOWN_EXIT)
}

/// The grace period a stop with `-t` asked for (written by the stopping
/// command just before our SIGTERM); consumed.
fn asked_grace(paths: &Paths, id: &str) -> Option<Duration> {
    let file = paths.monitor_stop(id);
    let ms = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
    let _ = std::fs::remove_file(&file);
    Some(Duration::from_millis(ms))
}

/// Health probes in flight: their statuses belong to the health thread,
/// so the reaper must leave them alone. Held while a probe is spawned, so a
/// probe that exits at once is registered before the reaper can see it.
static PROBES: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Reaps the init and every other exited child except health probes (a
/// subreaper inherits strays when the container shares the host's pid
/// namespace); records the init's status.
fn reap(init: i32, code: &mut Option<i32>) {
    let probes = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    let mut pids = children();
    if init > 0 && !pids.contains(&init) {
        pids.push(init);
    }
    for pid in pids {
        if probes.contains(&pid) {
            continue;
        }
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => *code = Some(c),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == init => {
                *code = Some(128 + sig as i32)
            }
            _ => {}
        }
    }
}

/// Our children, from `/proc/self/task/*/children`.
fn children() -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok()),
                );
            }
        }
    }
    out
}

/// Sleeps `d`, reaping strays; true if a stop was asked for meanwhile.
fn wait_signals(sfd: &SignalFd, d: Duration, user_stop: &mut bool) -> bool {
    let end = Instant::now() + d;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let _ = poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        );
        while let Ok(Some(info)) = sfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) => {
                    *user_stop = true;
                    return true;
                }
                Ok(Signal::SIGCHLD) => {
                    let mut ignored = None;
                    reap(0, &mut ignored);
                }
                _ => {}
            }
        }
    }
}

/// `SIGTERM`, `TERM`, `15` → the signal.
pub fn parse_signal(s: &str) -> Option<Signal> {
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse().ok()
}

/// What the health thread of one run of the container needs.
struct HealthRun {
    /// The init, killed when `restart_on_unhealthy` and it turns unhealthy.
    pid: i32,
    /// When the container started (before now for an adopted one).
    started: Instant,
    /// The status and failing streak to go on from (adoption).
    resume: Option<(health::Status, u32)>,
    restart_on_unhealthy: bool,
    /// Cleared when this run of the container ends.
    alive: Arc<AtomicBool>,
    /// Set when the thread killed the container for being unhealthy.
    unhealthy_kill: Arc<AtomicBool>,
}

fn spawn_health(shared: &Arc<Shared>, spec: &crate::engine::state::HealthSpec, run: HealthRun) {
    let Ok(Some(probe)) = Probe::from_test(&spec.test) else {
        return;
    };
    let mut config = HealthConfig::new(probe);
    let ms = |v: u64, d: Duration| if v == 0 { d } else { Duration::from_millis(v) };
    config.interval = ms(spec.interval_ms, config.interval);
    config.timeout = ms(spec.timeout_ms, config.timeout);
    config.start_period = Duration::from_millis(spec.start_period_ms);
    config.start_interval = ms(spec.start_interval_ms, config.start_interval);
    if spec.retries > 0 {
        config.retries = spec.retries;
    }
    let shared = shared.clone();
    let paths = shared.paths.clone();
    let id = shared.id.clone();
    let HealthRun {
        pid,
        started,
        resume,
        restart_on_unhealthy,
        alive,
        unhealthy_kill,
    } = run;
    if resume.is_none() {
        shared.update(|s| {
            s.health = health::Status::Starting.to_string();
            s.failing_streak = 0;
        });
    }
    std::thread::spawn(move || {
        let mut h = match resume {
            Some((status, streak)) => Health::resume(config, status, streak),
            None => Health::new(config),
        };
        while alive.load(Ordering::SeqCst) {
            std::thread::sleep(h.next_probe_in(started.elapsed()));
            if !alive.load(Ordering::SeqCst) {
                return;
            }
            let result = probe_once(
                &paths,
                &id,
                &h.config().probe.argv(),
                h.config().timeout,
                started,
            );
            if !alive.load(Ordering::SeqCst) {
                return;
            }
            let changed = h.record(result);
            let status = h.status();
            let streak = h.failing_streak();
            let log: Vec<String> = h
                .log()
                .map(|r| format!("{} {}", r.exit_code, r.output.trim_end()))
                .collect();
            shared.update(|s| {
                s.health = status.to_string();
                s.failing_streak = streak;
                s.health_log = log;
            });
            if let Some(new) = changed {
                events::emit_id(&paths, &id, &format!("health_status: {new}"), &[]);
            }
            if restart_on_unhealthy && changed == Some(health::Status::Unhealthy) {
                unhealthy_kill.store(true, Ordering::SeqCst);
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                return;
            }
        }
    });
}

fn probe_result(exit_code: i32, output: String, at: Duration) -> ProbeResult {
    ProbeResult {
        at,
        exit_code,
        output,
    }
}

/// Runs the probe inside the container through `berth runtime exec`.
fn probe_once(
    paths: &Paths,
    id: &str,
    argv: &[String],
    timeout: Duration,
    container_started: Instant,
) -> ProbeResult {
    let begun = container_started.elapsed();
    let exe = berth_binary();
    let mut probes = PROBES.lock().unwrap_or_else(|e| e.into_inner());
    let child = std::process::Command::new(exe)
        .arg("runtime")
        .arg("--root")
        .arg(paths.runtime_root())
        .arg("exec")
        .arg(id)
        .args(argv)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return probe_result(-1, format!("running the probe: {e}"), begun),
    };
    let pid = child.id() as i32;
    probes.insert(pid);
    drop(probes);
    let result = wait_probe(&mut child, timeout, begun);
    PROBES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pid);
    result
}

/// The command that runs a monitor, its container id still to add: the
/// small `berth-monitor` beside the `berth` binary, else `berth system
/// monitor`; with `adopt`, for a container whose monitor died.
pub fn monitor_command(adopt: bool) -> Result<std::process::Command> {
    let exe = berth_binary();
    let small = exe.with_file_name("berth-monitor");
    let mut c = if small.is_file() {
        std::process::Command::new(small)
    } else {
        let mut c = std::process::Command::new(&exe);
        c.args(["system", "monitor"]);
        c
    };
    if adopt {
        c.arg("--adopt");
    }
    Ok(c)
}

/// The `berth` binary, which runs probes through `berth runtime exec`: our
/// own executable, or its sibling when we are the small `berth-monitor`.
fn berth_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    if exe.file_name().is_some_and(|n| n == "berth-monitor") {
        exe.with_file_name("berth")
    } else {
        exe
    }
}

fn wait_probe(child: &mut std::process::Child, timeout: Duration, begun: Duration) -> ProbeResult {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut text);
        }
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let text = reader.join().unwrap_or_default();
                let code = status.code().unwrap_or(-1);
                return probe_result(code, String::from_utf8_lossy(&text).into_owned(), begun);
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return probe_result(
                    -1,
                    format!("Health check exceeded timeout ({timeout:?})"),
                    begun,
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return probe_result(-1, format!("waiting for the probe: {e}"), begun),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `stat` line of a zombie: fields 3 (state), 22 (start time) and 52
    /// (exit code) are what matter.
    fn stat(state: &str, start: u64, exit: i32) -> String {
        let mut f: Vec<String> = (4..=52).map(|i| i.to_string()).collect();
        f[22 - 4] = start.to_string();
        f[52 - 4] = exit.to_string();
        format!("1234 (sh) x) {state} {}\n", f.join(" "))
    }

    #[test]
    fn a_zombies_exit_code_is_read_from_its_stat() {
        assert_eq!(parse_zombie_exit(&stat("Z", 77, 3 << 8), 77), Some(3));
        assert_eq!(parse_zombie_exit(&stat("Z", 77, 9), 77), Some(137));
        assert_eq!(parse_zombie_exit(&stat("Z", 77, 0), 77), Some(0));
    }

    #[test]
    fn a_live_process_or_a_reused_pid_gives_no_exit_code() {
        assert_eq!(parse_zombie_exit(&stat("S", 77, 3 << 8), 77), None);
        assert_eq!(parse_zombie_exit(&stat("Z", 78, 3 << 8), 77), None);
        assert_eq!(parse_zombie_exit("garbage", 77), None);
    }

    #[test]
    fn a_dead_monitors_health_is_resumed() {
        let mut prior = RunState {
            health: "healthy".into(),
            failing_streak: 1,
            ..RunState::default()
        };
        assert_eq!(resumed_health(&prior), Some((health::Status::Healthy, 1)));
        prior.health.clear();
        assert_eq!(resumed_health(&prior), None);
    }
}
