//! The lifecycle operations, run in the runtime process (the caller's side of
//! the init): create, start, state, kill, delete, run, exec, pause, resume,
//! ps, list, stats.
//!
//! `create` validates the bundle before touching the kernel, makes the
//! cgroup, clones the init into its namespaces (executing our own binary
//! through a read-only view of it), moves it into the cgroup, writes user
//! namespace maps, sends it the configuration and waits for its report.
//! On any failure it undoes what it made (init, cgroup, state dir).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::cgroup::{Cgroup, Stats};
use crate::error::RuntimeError;
use crate::init::{InitConfig, Mode, Report, FD_CONSOLE, FD_FIFO, FD_SYNC, INIT_ARG};
use crate::state::{check_id, process_start_time, rfc3339, Saved, State, Status};
use crate::{seccomp, spec, sys};

/// The cgroup parent of containers whose spec names no `cgroupsPath`;
/// removed with the last of them.
const DEFAULT_CGROUP_PARENT: &str = "berth";

/// The default state root, as runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/berth/runtime";

/// A runtime: where container state lives and which binary is the init.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    cgroup_mount: PathBuf,
    init_exe: PathBuf,
}

/// Options of `create` and `run`.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Write the init's pid here.
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pty master to (when `process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// The container's stdin, stdout and stderr; `None` inherits ours.
    pub stdio: [Option<OwnedFd>; 3],
}

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Write the new process's pid here.
    pub pid_file: Option<PathBuf>,
    /// A unix socket to send the pty master to (when `process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs instead of waiting for it.
    pub detach: bool,
}

/// Undoes a half-made container unless disarmed.
struct Cleanup<'a> {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    pid: Option<i32>,
    _rt: &'a Runtime,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::waitpid(pid, 0);
        }
        if let Some(cg) = &self.cgroup {
            if let Ok(pids) = cg.pids() {
                for p in pids {
                    let _ = sys::kill(p, libc::SIGKILL);
                }
            }
            if let Err(e) = cg.delete_with_parent(DEFAULT_CGROUP_PARENT) {
                tracing::warn!(error = %e, "removing the cgroup of a failed container");
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn clone_flag(t: LinuxNamespaceType) -> Result<u64, RuntimeError> {
    Ok(match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        // A new time namespace comes from clone3 (`sys::clone_exec`);
        // its clock offsets are refused in `create_inner`.
        LinuxNamespaceType::Time => return Ok(libc::CLONE_NEWTIME as u64),
    } as u64)
}

/// Reads one report from the init; `None` when it closed the socket.
fn read_report(sock: &mut std::fs::File) -> Result<Option<Report>, RuntimeError> {
    let mut buf = vec![0u8; 64 << 10];
    let n = sock
        .read(&mut buf)
        .map_err(RuntimeError::sys("reading the init's report"))?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&buf[..n])
        .map(Some)
        .map_err(|e| RuntimeError::sys("decoding the init's report")(std::io::Error::other(e)))
}

impl Runtime {
    /// A runtime keeping state under `root`, using `/sys/fs/cgroup` and our
    /// own executable as the init.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            cgroup_mount: "/sys/fs/cgroup".into(),
            init_exe: "/proc/self/exe".into(),
        }
    }

    /// Uses another binary as the container init (one whose `main` calls
    /// [`crate::init_main`] when `argv[1]` is [`crate::INIT_ARG`]).
    pub fn with_init_exe(mut self, exe: impl Into<PathBuf>) -> Self {
        self.init_exe = exe.into();
        self
    }

    /// Uses another cgroup mount point (tests).
    pub fn with_cgroup_mount(mut self, mount: impl Into<PathBuf>) -> Self {
        self.cgroup_mount = mount.into();
        self
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ensure_root(&self) -> Result<(), RuntimeError> {
        fs_err::create_dir_all(&self.root).map_err(RuntimeError::Fs)
    }

    /// Opens our binary so that the container can never write to it: through
    /// a read-only overlay, or as a sealed memfd copy if overlayfs is not
    /// available (CVE-2019-5736).
    fn sealed_exe(&self) -> Result<OwnedFd, RuntimeError> {
        let exe = fs_err::canonicalize(&self.init_exe).map_err(RuntimeError::Fs)?;
        match sys::sealed_exe_overlay(&exe) {
            Ok(fd) => Ok(fd),
            Err(e) => {
                tracing::debug!(error = %e, "read-only overlay of the runtime binary failed; copying it to a sealed memfd");
                sys::sealed_exe_memfd(&exe).map_err(RuntimeError::sys(format!(
                    "sealing a copy of {}",
                    exe.display()
                )))
            }
        }
    }

    fn cgroup_for(&self, id: &str, spec: &Spec) -> Result<Cgroup, RuntimeError> {
        let path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .unwrap_or_else(|| PathBuf::from(format!("{DEFAULT_CGROUP_PARENT}/{id}")));
        if path.to_string_lossy().contains(':') {
            return Err(RuntimeError::Unsupported(format!(
                "linux.cgroupsPath {:?} is a systemd slice path; systemd cgroups are not supported (use a plain path)",
                path
            )));
        }
        Ok(Cgroup::new(&self.cgroup_mount, &path))
    }

    fn compile_seccomp(&self, spec: &Spec) -> Result<Option<(Vec<u8>, u64)>, RuntimeError> {
        let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
            return Ok(None);
        };
        let prog = seccomp::compile_cached(profile, &self.root.join(".seccomp"))?;
        Ok(Some((
            seccomp::encode(&prog),
            seccomp::filter_flags(profile),
        )))
    }

    /// Spawns our binary as an init with `flags` namespaces and the fds it
    /// needs, optionally after joining a pid namespace (on a short-lived
    /// thread: setns must not change the caller's threads). With a new user
    /// namespace the child waits before its exec until the maps are written:
    /// the returned gate releases it ([`release_userns_gate`]).
    fn spawn(
        &self,
        flags: u64,
        pid_ns: Option<&Path>,
        fds: &[(Option<&OwnedFd>, i32)],
    ) -> Result<(i32, Option<OwnedFd>), RuntimeError> {
        let exe = self.sealed_exe()?;
        let mut high = Vec::new();
        let mut maps = Vec::new();
        for (fd, dst) in fds {
            if let Some(fd) = fd {
                let h = sys::dup_at_least(fd.as_raw_fd(), 64)
                    .map_err(RuntimeError::sys("dup fd for the init"))?;
                maps.push(sys::FdMap {
                    src: h.as_raw_fd(),
                    dst: *dst,
                });
                high.push(h);
            }
        }
        let argv = [
            c"berth-runtime".to_owned(),
            std::ffi::CString::new(INIT_ARG).expect("no NUL"),
        ];
        let env: [std::ffi::CString; 0] = [];
        let gate = if flags & libc::CLONE_NEWUSER as u64 != 0 {
            Some(sys::pipe().map_err(RuntimeError::sys("pipe for the user namespace gate"))?)
        } else {
            None
        };
        let gate_fd = gate.as_ref().map(|(r, _)| r.as_raw_fd());
        let clone = || {
            sys::clone_exec(flags, &exe, &argv, &env, &maps, gate_fd)
                .map_err(RuntimeError::sys("clone the container init"))
        };
        let pid = match pid_ns {
            None => clone()?,
            Some(ns) => std::thread::scope(|s| {
                s.spawn(|| {
                    let fd = sys::openat(libc::AT_FDCWD, ns, libc::O_RDONLY, 0)
                        .map_err(RuntimeError::io(ns))?;
                    sys::setns(fd.as_raw_fd(), libc::CLONE_NEWPID).map_err(RuntimeError::sys(
                        format!("join pid namespace {}", ns.display()),
                    ))?;
                    clone()
                })
                .join()
                .expect("spawn thread does not panic")
            })?,
        };
        Ok((pid, gate.map(|(_, w)| w)))
    }

    /// Creates a container from `bundle`: when this returns, the init waits
    /// in its namespaces for [`Runtime::start`].
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
    ) -> Result<Saved, RuntimeError> {
        self.create_inner(id, bundle, opts, true)
    }

    fn create_inner(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
        wait_fifo: bool,
    ) -> Result<Saved, RuntimeError> {
        check_id(id)?;
        let bundle = fs_err::canonicalize(bundle).map_err(RuntimeError::Fs)?;
        let spec = spec::load(&bundle)?;
        let rootfs = spec::rootfs(&bundle, &spec);
        let rootfs = fs_err::canonicalize(&rootfs).map_err(RuntimeError::Fs)?;
        let linux = spec.linux().as_ref().expect("validated");
        let mut flags = 0u64;
        let mut pid_ns = None;
        for ns in linux.namespaces().iter().flatten() {
            match (ns.typ(), ns.path()) {
                (LinuxNamespaceType::Pid, Some(p)) => pid_ns = Some(p.clone()),
                (t, None) => flags |= clone_flag(t)?,
                (t, Some(_)) => drop(clone_flag(t)?),
            }
        }
        if linux.time_offsets().as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(RuntimeError::Unsupported(
                "linux.timeOffsets: clock offsets of a time namespace are not supported yet".into(),
            ));
        }
        crate::hooks::check(&spec)?;
        // Hooks must run before the process does: hold it at the fifo.
        let wait_fifo = wait_fifo || crate::hooks::has_pre_start(&spec);
        let userns = flags & libc::CLONE_NEWUSER as u64 != 0;
        let own_pid_ns = flags & libc::CLONE_NEWPID as u64 != 0;
        let seccomp = self.compile_seccomp(&spec)?;
        let cgroup = self.cgroup_for(id, &spec)?;

        self.ensure_root()?;
        let dir = Saved::dir(&self.root, id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists(id.to_owned()))
            }
            Err(e) => return Err(RuntimeError::io(&dir)(e)),
        }
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroup: None,
            pid: None,
            _rt: self,
        };
        // Armed first: a limit the kernel refuses leaves directories behind.
        cleanup.cgroup = Some(cgroup.clone());
        cgroup.create(linux.resources().as_ref())?;

        let fifo = if wait_fifo {
            let path = dir.join("exec.fifo");
            sys::mkfifo(&path, 0o622).map_err(RuntimeError::io(&path))?;
            Some(
                sys::openat(libc::AT_FDCWD, &path, libc::O_PATH, 0)
                    .map_err(RuntimeError::io(&path))?,
            )
        } else {
            None
        };
        let console = match &opts.console_socket {
            Some(p) => Some(OwnedFd::from(
                UnixStream::connect(p).map_err(RuntimeError::io(p))?,
            )),
            None => None,
        };
        let cfg = InitConfig {
            mode: Mode::Container {
                spec: Box::new(spec.clone()),
                rootfs: rootfs.clone(),
                cgroup: cgroup.clone(),
                wait_fifo,
                join_cgroup: !userns,
            },
            seccomp,
            console: opts.console_socket.is_some(),
        };
        let cfg_bytes = serde_json::to_vec(&cfg).expect("config serializes");
        let (ours, theirs) = sys::seqpacket_pair().map_err(RuntimeError::sys("socketpair"))?;
        let mut sock = std::fs::File::from(ours);
        // Queued before the clone, the configuration is there the moment the
        // init asks for it (no wait for this process to be scheduled again).
        // Only when it surely fits the socket buffer: a blocking send before
        // the reader exists would never return.
        let early = cfg_bytes.len() <= 64 << 10;
        if early {
            send_config(&mut sock, &cfg_bytes)?;
        }
        let (pid, gate) = self.spawn(
            flags,
            pid_ns.as_deref(),
            &[
                (Some(&theirs), FD_SYNC),
                (fifo.as_ref(), FD_FIFO),
                (console.as_ref(), FD_CONSOLE),
                (opts.stdio[0].as_ref(), 0),
                (opts.stdio[1].as_ref(), 1),
                (opts.stdio[2].as_ref(), 2),
            ],
        )?;
        cleanup.pid = Some(pid);
        drop(theirs);
        drop(console);
        // In a new user namespace the init cannot write the host's cgroup
        // files: move it from here. Otherwise it joins by itself (cheaper).
        if userns {
            cgroup.add(pid)?;
        }
        if userns {
            for (file, maps) in [
                ("gid_map", linux.gid_mappings()),
                ("uid_map", linux.uid_mappings()),
            ] {
                let text: String = maps
                    .iter()
                    .flatten()
                    .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                    .collect();
                let path = PathBuf::from(format!("/proc/{pid}/{file}"));
                std::fs::write(&path, text).map_err(RuntimeError::io(&path))?;
            }
        }
        if let Some(gate) = gate {
            release_userns_gate(gate)?;
        }
        if !early {
            send_config(&mut sock, &cfg_bytes)?;
        }
        match read_report(&mut sock)? {
            Some(Report::Ready) => {}
            Some(Report::NotFound(command)) => {
                return Err(RuntimeError::CommandNotFound {
                    id: id.to_owned(),
                    command,
                })
            }
            Some(Report::Failed(message)) => {
                return Err(RuntimeError::Init {
                    id: id.to_owned(),
                    message,
                })
            }
            Some(Report::Pid(_)) | None => {
                let (_, status) =
                    sys::waitpid(pid, 0).map_err(RuntimeError::sys("waiting for the init"))?;
                cleanup.pid = None;
                return Err(RuntimeError::Init {
                    id: id.to_owned(),
                    message: format!(
                        "init exited before reporting (status {})",
                        sys::exit_code(status)
                    ),
                });
            }
        }
        let start_time = process_start_time(pid).unwrap_or(0);
        let saved = Saved {
            id: id.to_owned(),
            pid,
            start_time,
            bundle,
            rootfs,
            created: rfc3339(std::time::SystemTime::now()),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup,
            own_pid_ns,
            oci_version: spec.version().clone(),
        };
        saved.save(&self.root)?;
        let state = saved.state(&self.root);
        crate::hooks::run(&spec, crate::hooks::Phase::CreateRuntime, &state)?;
        crate::hooks::run(&spec, crate::hooks::Phase::Prestart, &state)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        cleanup.dir = None;
        cleanup.cgroup = None;
        cleanup.pid = None;
        tracing::debug!(container = %id, pid, "created");
        Ok(saved)
    }

    /// Releases a created container's process.
    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let saved = Saved::load(&self.root, id)?;
        let status = saved.status(&self.root);
        if status != Status::Created {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "start",
                needed: "created",
            });
        }
        let path = Saved::dir(&self.root, id).join("exec.fifo");
        let fifo = sys::openat(libc::AT_FDCWD, &path, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(RuntimeError::io(&path))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if sys::poll_readable(fifo.as_raw_fd(), 50).map_err(RuntimeError::io(&path))? {
                let mut f = std::fs::File::from(fifo);
                let mut b = [0u8; 1];
                let n = f.read(&mut b).unwrap_or(0);
                if n == 1 {
                    break;
                }
                return Err(RuntimeError::Init {
                    id: id.into(),
                    message: "init exited before start".into(),
                });
            }
            if !saved.alive() || Instant::now() > deadline {
                return Err(RuntimeError::Init {
                    id: id.into(),
                    message: "init did not take the start signal".into(),
                });
            }
        }
        fs_err::remove_file(&path).map_err(RuntimeError::Fs)?;
        if let Ok(spec) = spec::load(&saved.bundle) {
            if let Err(e) = crate::hooks::run(
                &spec,
                crate::hooks::Phase::Poststart,
                &saved.state(&self.root),
            ) {
                tracing::warn!(container = %id, error = %e, "poststart hook failed");
            }
        }
        Ok(())
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &str) -> Result<State, RuntimeError> {
        Ok(Saved::load(&self.root, id)?.state(&self.root))
    }

    /// Sends `signal` to the container's init, or with `all` to every
    /// process in its cgroup.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let saved = Saved::load(&self.root, id)?;
        let status = saved.status(&self.root);
        if status == Status::Stopped {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "kill",
                needed: "running",
            });
        }
        if all {
            for pid in saved.cgroup.pids()? {
                let _ = sys::kill(pid, signal);
            }
            return Ok(());
        }
        signal_init(&saved, signal)
    }

    /// Removes a container; a running one only with `force` (it is killed).
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let saved = Saved::load(&self.root, id)?;
        let status = saved.status(&self.root);
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "delete",
                needed: "stopped (or use --force)",
            });
        }
        if status == Status::Paused {
            let _ = saved.cgroup.freeze(false);
        }
        if saved.alive() {
            let _ = signal_init(&saved, libc::SIGKILL);
        }
        // Everything else in the cgroup too (containers without their own
        // pid namespace, or exec'd processes that escaped the init's death).
        // Wait on the init's pidfd while it lives (woken by its exit), then
        // with a short exponential back-off for stragglers.
        let pidfd = sys::pidfd_open(saved.pid).ok().filter(|_| saved.alive());
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut pause = Duration::from_micros(50);
        loop {
            let _ = sys::waitpid(saved.pid, libc::WNOHANG);
            let alive = saved.alive();
            let pids = saved.cgroup.pids().unwrap_or_default();
            if pids.is_empty() && !alive {
                break;
            }
            for p in pids {
                let _ = sys::kill(p, libc::SIGKILL);
            }
            if Instant::now() > deadline {
                return Err(RuntimeError::Init {
                    id: id.into(),
                    message: "processes survived SIGKILL for 5s".into(),
                });
            }
            match &pidfd {
                Some(fd) if alive => {
                    let _ = sys::poll_readable(fd.as_raw_fd(), 10);
                }
                _ => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
            }
        }
        saved.cgroup.delete_with_parent(DEFAULT_CGROUP_PARENT)?;
        if let Ok(spec) = spec::load(&saved.bundle) {
            if let Err(e) = crate::hooks::run(
                &spec,
                crate::hooks::Phase::Poststop,
                &saved.state(&self.root),
            ) {
                tracing::warn!(container = %id, error = %e, "poststop hook failed");
            }
        }
        fs_err::remove_dir_all(Saved::dir(&self.root, id)).map_err(RuntimeError::Fs)?;
        tracing::debug!(container = %id, "deleted");
        Ok(())
    }

    /// Creates and starts a container, waits for its process and deletes it;
    /// returns the exit code (128+signal when killed). Signals the caller
    /// receives (INT, TERM, HUP, QUIT, USR1, USR2) are forwarded.
    pub fn run(&self, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<i32, RuntimeError> {
        let forward = [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ];
        let old = sys::block_signals(&forward).map_err(RuntimeError::sys("blocking signals"))?;
        let result = self
            .create_inner(id, bundle, opts, false)
            .and_then(|saved| {
                // Held at the fifo for its hooks: release it.
                if Saved::dir(&self.root, id).join("exec.fifo").exists() {
                    self.start(id)?;
                }
                let pid = saved.pid;
                let code = wait_forwarding(pid, &forward);
                Ok((saved, code))
            });
        sys::set_sigmask(&old);
        let (_, code) = result?;
        self.delete(id, true)?;
        Ok(code)
    }

    /// Runs `process` in a running container (joining its namespaces and
    /// cgroup). Returns the exit code, or with `detach` the new pid.
    pub fn exec(
        &self,
        id: &str,
        process: &Process,
        opts: &ExecOptions,
    ) -> Result<i32, RuntimeError> {
        let saved = Saved::load(&self.root, id)?;
        let status = saved.status(&self.root);
        if !matches!(status, Status::Running | Status::Created) {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "exec",
                needed: "running",
            });
        }
        match process.args() {
            Some(a) if !a.is_empty() => {}
            _ => {
                return Err(RuntimeError::Config {
                    path: "process.json".into(),
                    field: "args".into(),
                    message: "must name a command".into(),
                })
            }
        }
        let spec = spec::load(&saved.bundle)?;
        let seccomp = self.compile_seccomp(&spec)?;
        let userns = spec.linux().as_ref().is_some_and(|l| {
            l.namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == LinuxNamespaceType::User)
        });
        let console = match &opts.console_socket {
            Some(p) => Some(OwnedFd::from(
                UnixStream::connect(p).map_err(RuntimeError::io(p))?,
            )),
            None => None,
        };
        let forward = [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ];
        let old = sys::block_signals(&forward).map_err(RuntimeError::sys("blocking signals"))?;
        let result = (|| {
            let (ours, theirs) = sys::seqpacket_pair().map_err(RuntimeError::sys("socketpair"))?;
            let (helper, _) = self.spawn(
                0,
                None,
                &[(Some(&theirs), FD_SYNC), (console.as_ref(), FD_CONSOLE)],
            )?;
            drop(theirs);
            let reap_helper = || {
                let _ = sys::waitpid(helper, 0);
            };
            // The helper joins the container's cgroup itself, first thing.
            let cfg = InitConfig {
                mode: Mode::Exec {
                    pid: saved.pid,
                    process: Box::new(process.clone()),
                    userns,
                    cgroup: saved.cgroup.clone(),
                },
                seccomp,
                console: opts.console_socket.is_some(),
            };
            let mut sock = std::fs::File::from(ours);
            sock.write_all(&serde_json::to_vec(&cfg).expect("config serializes"))
                .map_err(RuntimeError::sys(
                    "sending the exec helper its configuration",
                ))?;
            // The helper reports the pid, the forked process reports
            // Ready; either may arrive first.
            let mut pid = None;
            let mut ready = false;
            let mut failure = None;
            while failure.is_none() && !(ready && pid.is_some()) {
                match read_report(&mut sock)? {
                    Some(Report::Pid(p)) => pid = Some(p),
                    Some(Report::Ready) => ready = true,
                    Some(Report::NotFound(command)) => {
                        failure = Some(RuntimeError::CommandNotFound {
                            id: id.into(),
                            command,
                        })
                    }
                    Some(Report::Failed(message)) => {
                        failure = Some(RuntimeError::Init {
                            id: id.into(),
                            message,
                        })
                    }
                    None => {
                        failure = Some(RuntimeError::Init {
                            id: id.into(),
                            message: "the exec'd process died during setup".into(),
                        })
                    }
                }
            }
            reap_helper();
            if let Some(err) = failure {
                if let Some(p) = pid {
                    let _ = sys::waitpid(p, 0);
                }
                return Err(err);
            }
            let pid = pid.expect("the loop ends with a pid");
            if let Some(p) = &opts.pid_file {
                write_pid_file(p, pid)?;
            }
            if opts.detach {
                return Ok(pid);
            }
            Ok(wait_forwarding(pid, &forward))
        })();
        sys::set_sigmask(&old);
        result
    }

    /// Applies new resource limits to a created, running or paused
    /// container's cgroup (`runc update --resources`, what containerd's shim
    /// runs for `docker update`).
    pub fn update(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), RuntimeError> {
        let saved = Saved::load(&self.root, id)?;
        let status = saved.status(&self.root);
        if status == Status::Stopped {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "update",
                needed: "created, running or paused",
            });
        }
        Ok(saved.cgroup.create(Some(resources))?)
    }

    /// Freezes every process of the container.
    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        let saved = Saved::load(&self.root, id)?;
        let status = saved.status(&self.root);
        if status != Status::Running {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "pause",
                needed: "running",
            });
        }
        Ok(saved.cgroup.freeze(true)?)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        let saved = Saved::load(&self.root, id)?;
        let status = saved.status(&self.root);
        if status != Status::Paused {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                action: "resume",
                needed: "paused",
            });
        }
        Ok(saved.cgroup.freeze(false)?)
    }

    /// The host pids of the container's processes.
    pub fn ps(&self, id: &str) -> Result<Vec<i32>, RuntimeError> {
        Ok(Saved::load(&self.root, id)?.cgroup.pids()?)
    }

    /// Resource statistics from the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        Ok(Saved::load(&self.root, id)?.cgroup.stats()?)
    }

    /// Every container under the root, sorted by id.
    pub fn list(&self) -> Result<Vec<State>, RuntimeError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io(&self.root)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match Saved::load(&self.root, &name) {
                Ok(s) => out.push(s.state(&self.root)),
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

fn send_config(sock: &mut std::fs::File, bytes: &[u8]) -> Result<(), RuntimeError> {
    sock.write_all(bytes)
        .map_err(RuntimeError::sys("sending the init its configuration"))
}

/// Lets a child of `spawn` that waits in a new user namespace go on to its
/// exec (its maps are written).
fn release_userns_gate(gate: OwnedFd) -> Result<(), RuntimeError> {
    std::fs::File::from(gate)
        .write_all(b"1")
        .map_err(RuntimeError::sys(
            "releasing the init into its user namespace",
        ))
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("tmp-berth");
    fs_err::write(&tmp, pid.to_string()).map_err(RuntimeError::Fs)?;
    fs_err::rename(&tmp, path).map_err(RuntimeError::Fs)
}

/// Signals exactly the init we created: through a pidfd opened after
/// checking the start time, so a recycled pid is never signalled.
fn signal_init(saved: &Saved, signal: i32) -> Result<(), RuntimeError> {
    let pidfd = sys::pidfd_open(saved.pid)
        .map_err(RuntimeError::sys(format!("pidfd_open {}", saved.pid)))?;
    if !saved.alive() {
        return Err(RuntimeError::WrongState {
            id: saved.id.clone(),
            status: "stopped".into(),
            action: "kill",
            needed: "running",
        });
    }
    sys::pidfd_send_signal(pidfd.as_raw_fd(), signal).map_err(RuntimeError::sys(format!(
        "signal {signal} to {}",
        saved.pid
    )))
}

/// Waits for our child `pid`, forwarding the (blocked) `signals` to it, and
/// returns its exit code. One thread polls the child's pidfd and a signalfd,
/// so the exit is seen the moment it happens (no timed polling).
fn wait_forwarding(pid: i32, signals: &[i32]) -> i32 {
    if let (Ok(pidfd), Ok(sigfd)) = (sys::pidfd_open(pid), sys::signalfd(signals)) {
        while let Ok(ready) = sys::poll_many(&[pidfd.as_raw_fd(), sigfd.as_raw_fd()]) {
            if ready[1] {
                while let Some(sig) = sys::read_signalfd(sigfd.as_raw_fd()) {
                    let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), sig);
                }
            }
            if ready[0] {
                break;
            }
        }
    }
    match sys::waitpid(pid, 0) {
        Ok((_, status)) => sys::exit_code(status),
        Err(_) => 255,
    }
}
