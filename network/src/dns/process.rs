//! One DNS server per host, started on demand: the pidfile, the locks, the
//! spawn and the process entry point.
//!
//! Layout under `$BERTH_RUN/dns/` (besides `table.json`):
//! - `server.lock` — held (flock, exclusive) by the running server for its
//!   whole life. It is the liveness test: a server killed with -9 drops it,
//!   and a zombie does not hold it, so no pid is ever trusted on its own. A
//!   held lock alone is not trusted either: a process killed a moment ago
//!   still holds it until its files are closed, and another berth command may
//!   be probing it, so the pidfile's process must also be alive, have no
//!   SIGKILL pending and have `server.lock` open (`liveness::holds_open`).
//! - `server.pid` — the server's pid, written (temp + rename) once its
//!   sockets are bound; `ensure_running` waits for it as the readiness signal.
//! - `spawn.lock` — taken by `ensure_running` around check-and-spawn, so two
//!   berth commands racing start one server, not two.
//! - `server.log` — the server's stderr, appended.
//! - `table.lock` — held around every read-change-write of the table
//!   (`DnsTable::update`) and by [`stop_if_unused`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tracing::info;

use super::server::{Server, ServerConfig};
use super::table::{dns_dir, lock_table, table_path, DnsTable};
use super::DnsError;

/// How long `ensure_running` waits for a new server to bind its sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

fn open_lock_file(path: &Path) -> Result<std::fs::File, DnsError> {
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    Ok(file.into_parts().0)
}

pub(crate) fn lock(path: &Path, arg: FlockArg) -> Result<Option<Flock<std::fs::File>>, DnsError> {
    match Flock::lock(open_lock_file(path)?, arg) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, source)) => Err(DnsError::Lock {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_pidfile(dir: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(dir.join("server.pid")).ok()?;
    text.trim().parse().ok().map(Pid::from_raw)
}

fn write_pidfile(dir: &Path, pid: u32) -> Result<(), DnsError> {
    let tmp = dir.join(format!("server.pid.tmp.{pid}"));
    fs_err::write(&tmp, format!("{pid}\n"))?;
    fs_err::rename(&tmp, dir.join("server.pid"))?;
    Ok(())
}

/// The pid of the running server, or `None` if none holds `server.lock`.
pub fn running(run_dir: &Path) -> Result<Option<Pid>, DnsError> {
    let dir = dns_dir(run_dir);
    fs_err::create_dir_all(&dir)?;
    let lock_path = dir.join("server.lock");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if lock(&lock_path, FlockArg::LockExclusiveNonblock)?.is_some() {
            return Ok(None);
        }
        // Held: a server runs, is starting, or is dying (a kill -9 is only
        // delivered, not done, when kill(2) returns: the lock goes with the
        // process's files a moment later), or another berth command is
        // probing the lock. Only a pidfile naming a live process that is not
        // being killed and has this very lock file open is taken as the server.
        if let Some(pid) = read_pidfile(&dir) {
            if crate::liveness::holds_open(pid, &lock_path) {
                return Ok(Some(pid));
            }
        }
        if Instant::now() > deadline {
            return Err(DnsError::NotReady {
                pid: None,
                log: dir.join("server.log"),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Makes sure the host's DNS server runs, starting `exe args…` if not, and
/// returns its pid once it listens.
///
/// `exe args…` must end up calling [`serve`] with this `run_dir` (berth
/// re-executes itself as `berth system dns-server`); the child gets
/// `BERTH_RUN=<run_dir>` in its environment, stdin and stdout on /dev/null
/// and stderr appended to `$BERTH_RUN/dns/server.log`. It detaches itself
/// with `setsid` in [`serve`]. A server that is alive is left alone; one that
/// was killed (even with -9) is replaced.
pub fn ensure_running(run_dir: &Path, exe: &Path, args: &[&str]) -> Result<Pid, DnsError> {
    let dir = dns_dir(run_dir);
    fs_err::create_dir_all(&dir)?;
    let _spawning = lock(&dir.join("spawn.lock"), FlockArg::LockExclusive)?;
    if let Some(pid) = running(run_dir)? {
        return Ok(pid);
    }
    let log_path = dir.join("server.log");
    let log = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut child = Command::new(exe)
        .args(args)
        .env("BERTH_RUN", run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.into_parts().0)
        .spawn()
        .map_err(|source| DnsError::Spawn {
            exe: exe.to_owned(),
            source,
        })?;
    let pid = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if read_pidfile(&dir) == Some(pid) {
            break;
        }
        if let Some(status) = child.try_wait().map_err(DnsError::Io)? {
            // A server started by other means may have won the lock.
            if let Some(pid) = running(run_dir)? {
                return Ok(pid);
            }
            return Err(DnsError::Exited {
                exe: exe.to_owned(),
                status,
                log: log_path,
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DnsError::NotReady {
                pid: Some(pid),
                log: log_path,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    info!(%pid, "DNS server started");
    // Reap it should it die while this process lives; liveness never relies
    // on the pid anyway (see `running`).
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

/// Stops the running server (SIGTERM, then SIGKILL after 2 s) and returns its
/// pid, or `None` if none ran.
pub fn stop(run_dir: &Path) -> Result<Option<Pid>, DnsError> {
    let Some(pid) = running(run_dir)? else {
        return Ok(None);
    };
    let lock_path = dns_dir(run_dir).join("server.lock");
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        match signal::kill(pid, sig) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(source) => return Err(DnsError::Signal { pid, source }),
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if lock(&lock_path, FlockArg::LockExclusiveNonblock)?.is_some() {
                return Ok(Some(pid));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Err(DnsError::NotReady {
        pid: Some(pid),
        log: dns_dir(run_dir).join("server.log"),
    })
}

/// Stops the server if the table has no network left (after the last
/// `down`), checking and stopping under the table's lock so a concurrent `up`
/// of another project either sees the server stopped (and starts one) or
/// keeps it. Returns the stopped server's pid.
pub fn stop_if_unused(run_dir: &Path) -> Result<Option<Pid>, DnsError> {
    let _held = lock_table(run_dir)?;
    if !DnsTable::load(&table_path(run_dir))?.networks.is_empty() {
        return Ok(None);
    }
    stop(run_dir)
}

/// The DNS server process: `berth system dns-server` calls this and exits
/// with its result. Detaches from the caller's session, takes `server.lock`
/// (returning [`DnsError::AlreadyRunning`] if another server holds it), binds,
/// writes `server.pid` and serves until SIGTERM or SIGINT.
pub fn serve(run_dir: &Path) -> Result<(), DnsError> {
    serve_with(ServerConfig::new(run_dir))
}

/// [`serve`] with a custom configuration (tests inject upstreams and timeouts).
pub fn serve_with(mut config: ServerConfig) -> Result<(), DnsError> {
    // Fails only if already a session leader, which is as detached as needed.
    let _ = nix::unistd::setsid();
    // A long-lived process must not pin the caller's directory (a project
    // directory on a mount a user may want to unmount): make the paths
    // absolute, then leave for `/`.
    let cwd = std::env::current_dir()?;
    config.run_dir = cwd.join(&config.run_dir);
    config.resolv_conf = cwd.join(&config.resolv_conf);
    std::env::set_current_dir("/")?;
    let dir = dns_dir(&config.run_dir);
    fs_err::create_dir_all(&dir)?;
    // `running` probes the lock by taking it for an instant: retry briefly so
    // a probe is not mistaken for a live server.
    let lock_path = dir.join("server.lock");
    let deadline = Instant::now() + Duration::from_millis(200);
    let _held = loop {
        if let Some(held) = lock(&lock_path, FlockArg::LockExclusiveNonblock)? {
            break held;
        }
        if Instant::now() > deadline {
            return Err(DnsError::AlreadyRunning {
                pid: read_pidfile(&dir),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DnsError::Runtime)?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(DnsError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DnsError::Runtime)?;
        let server = Server::bind(config).await?;
        write_pidfile(&dir, std::process::id())?;
        info!(pid = std::process::id(), addrs = ?server.local_addrs(), "DNS server ready");
        server
            .run(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            })
            .await;
        Ok::<(), DnsError>(())
    })?;
    let pidfile = dir.join("server.pid");
    if read_pidfile(&dir) == Some(Pid::this()) {
        let _ = fs_err::remove_file(pidfile);
    }
    Ok(())
}

/// The default path of the log of a server started by [`ensure_running`].
pub fn log_path(run_dir: &Path) -> PathBuf {
    dns_dir(run_dir).join("server.log")
}
