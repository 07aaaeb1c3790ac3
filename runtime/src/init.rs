//! The container's init: the code that runs in the re-executed runtime binary
//! inside the new namespaces, from the moment it is cloned until it execs
//! the user's process. It receives its whole configuration over a socket
//! from the runtime process that cloned it (fd 3), reports success or the
//! failing step back over it, and never returns.
//!
//! Order matters and follows the kernel's rules: join namespaces (user
//! first), build the filesystem and `pivot_root`, set hostname, sysctls and
//! rlimits, make the terminal, then drop privileges (bounding set, groups,
//! uid/gid with kept caps, capability sets, ambient), load seccomp last
//! (before dropping `CAP_SYS_ADMIN` when `no_new_privs` is off), wait for
//! `start` on the exec fifo, mark every fd close-on-exec (CVE-2024-21626) and
//! exec. The binary we run from is a read-only overlay view or a sealed
//! memfd (see `sys::sealed_exe_overlay`), so nothing in the container can
//! reach the host binary through `/proc/<pid>/exe` (CVE-2019-5736).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::caps::Sets;
use crate::cgroup::Cgroup;
use crate::sys;

/// The argv[1] under which the runtime binary runs as a container init.
pub const INIT_ARG: &str = "__berth-runtime-init";

/// The spec annotation that asks for a small init as PID 1 (Compose's
/// `init: true`, Docker's `--init`): with the value `"true"`, the init forks
/// after its setup; the child execs the process, and PID 1 stays in this
/// already-loaded code, forwarding every signal it can catch to the child,
/// reaping every process that ends in the container, and exiting with the
/// child's status (128+N when a signal N ended it). Nothing extra is put in
/// the rootfs, and PID 1 runs from the same sealed view of our binary as any
/// init (`sys::sealed_exe_overlay`), never the host's file (CVE-2019-5736).
pub const INIT_ANNOTATION: &str = "org.berth.init";

pub(crate) const FD_SYNC: i32 = 3;
pub(crate) const FD_FIFO: i32 = 4;
pub(crate) const FD_CONSOLE: i32 = 5;

/// What the init does.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Mode {
    /// Become a new container's first process.
    Container {
        spec: Box<Spec>,
        rootfs: PathBuf,
        cgroup: Cgroup,
        /// Wait on the exec fifo (fd 4) before exec (`create`, not `run`).
        wait_fifo: bool,
        /// Join `cgroup` ourselves (the runtime did not move us: it cannot
        /// be done cheaply from outside, see `Cgroup::join_self`).
        join_cgroup: bool,
    },
    /// Join the namespaces of the container whose init is `pid`, fork into
    /// its pid namespace and run `process` there (`exec`).
    Exec {
        pid: i32,
        process: Box<Process>,
        userns: bool,
        /// The container's cgroup, joined before anything else.
        cgroup: Cgroup,
    },
}

/// The configuration the runtime sends its init.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitConfig {
    pub mode: Mode,
    /// The compiled seccomp program and its flags, if any.
    pub seccomp: Option<(Vec<u8>, u64)>,
    /// A console socket is connected at fd 5.
    pub console: bool,
}

/// What the init reports back.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The process of an `exec` was forked: its pid in the host namespace.
    Pid(i32),
    /// Set up; the process will be exec'd (after the fifo, if any).
    Ready,
    /// The command does not exist in the container.
    NotFound(String),
    /// A step failed.
    Failed(String),
}

/// A failure inside the init: which step, and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub(crate) struct InitError {
    step: String,
    message: String,
    not_found: Option<String>,
}

impl InitError {
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Self {
            step: "setup".into(),
            message: message.into(),
            not_found: None,
        }
    }
    pub(crate) fn io(step: impl Into<String>, e: std::io::Error) -> Self {
        Self {
            step: step.into(),
            message: e.to_string(),
            not_found: None,
        }
    }
}

/// Attaches the step to an I/O error.
pub(crate) trait Step<T> {
    fn step(self, step: impl Into<String>) -> Result<T, InitError>;
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, step: impl Into<String>) -> Result<T, InitError> {
        self.map_err(|e| InitError::io(step, e))
    }
}

fn send(sock: &mut std::fs::File, report: &Report) {
    let bytes = serde_json::to_vec(report).expect("report serializes");
    // The runtime may have gone; nothing useful to do about it here.
    let _ = sock.write_all(&bytes);
}

/// Entry point of the init: call it first thing in `main` when
/// `argv[1] == INIT_ARG`, before any thread exists. Never returns.
pub fn init_main() -> ! {
    let sync = match sys::adopt_fd(FD_SYNC) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("berth-runtime init: no sync socket on fd {FD_SYNC}: {e}");
            sys::exit_now(1)
        }
    };
    let mut sock = std::fs::File::from(sync);
    let mut buf = vec![0u8; 8 << 20];
    let n = match sock.read(&mut buf) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("berth-runtime init: reading config: {e}");
            sys::exit_now(1)
        }
    };
    let cfg: InitConfig = match serde_json::from_slice(&buf[..n]) {
        Ok(c) => c,
        Err(e) => {
            send(
                &mut sock,
                &Report::Failed(format!("decoding init config: {e}")),
            );
            sys::exit_now(1)
        }
    };
    drop(buf);
    let result = match cfg.mode {
        Mode::Container {
            ref spec,
            ref rootfs,
            ref cgroup,
            wait_fifo,
            join_cgroup,
        } => (if join_cgroup {
            cgroup
                .join_self()
                .map_err(|e| InitError::msg(e.to_string()))
        } else {
            Ok(())
        })
        .and_then(|()| container(spec, rootfs, cgroup, wait_fifo, &cfg, &mut sock)),
        Mode::Exec {
            pid,
            ref process,
            userns,
            ref cgroup,
        } => cgroup
            .join_self()
            .map_err(|e| InitError::msg(e.to_string()))
            .and_then(|()| exec(pid, process, userns, &cfg, &mut sock)),
    };
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let report = match err.not_found {
        Some(cmd) => Report::NotFound(cmd),
        None => Report::Failed(err.to_string()),
    };
    send(&mut sock, &report);
    sys::exit_now(1)
}

enum Never {}

fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

fn container(
    spec: &Spec,
    rootfs: &Path,
    cgroup: &Cgroup,
    wait_fifo: bool,
    cfg: &InitConfig,
    sock: &mut std::fs::File,
) -> Result<Never, InitError> {
    sys::umask(0);
    let linux = spec.linux().as_ref().expect("validated");
    let namespaces: Vec<_> = linux.namespaces().iter().flatten().collect();
    // Join namespaces given by path: the user namespace first, since it
    // decides what we may do in the others. (pid was joined by the parent.)
    let mut joins: Vec<_> = namespaces
        .iter()
        .filter(|n| n.path().is_some() && n.typ() != LinuxNamespaceType::Pid)
        .collect();
    joins.sort_by_key(|n| n.typ() != LinuxNamespaceType::User);
    for ns in joins {
        let path = ns.path().as_ref().expect("filtered");
        let fd = sys::openat(libc::AT_FDCWD, path, libc::O_RDONLY, 0)
            .step(format!("open namespace {}", path.display()))?;
        sys::setns(fd.as_raw_fd(), ns_flag(ns.typ())).step(format!(
            "join {} namespace {}",
            ns.typ(),
            path.display()
        ))?;
    }
    let userns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User);
    if userns {
        sys::setresgid(0).step("become gid 0 in the user namespace")?;
        sys::setresuid(0).step("become uid 0 in the user namespace")?;
    }
    // Sysctls before the filesystem is built: `/proc/sys` becomes read-only
    // there, and what a namespaced sysctl file changes is decided by the
    // writer's namespaces (already the container's), not by the proc mount.
    let mut sysctls: Vec<_> = linux.sysctl().iter().flatten().collect();
    sysctls.sort();
    for (key, value) in sysctls {
        if key.is_empty() || key.contains("..") || key.contains('/') {
            return Err(InitError::msg(format!("sysctl {key:?}: not a sysctl name")));
        }
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).step(format!("sysctl {key}={value}"))?;
    }
    if namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount)
    {
        crate::rootfs::setup(spec, rootfs, cgroup)?;
    } else {
        return Err(InitError::msg(
            "a container needs a mount namespace (linux.namespaces has no \"mount\")",
        ));
    }
    let new_uts = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Uts && n.path().is_none());
    if let Some(h) = spec.hostname() {
        if new_uts
            || namespaces
                .iter()
                .any(|n| n.typ() == LinuxNamespaceType::Uts)
        {
            sys::sethostname(h).step(format!("set hostname {h:?}"))?;
        }
    }
    if let Some(d) = spec.domainname() {
        sys::setdomainname(d).step(format!("set domainname {d:?}"))?;
    }
    let process = spec.process().as_ref().expect("validated");
    let prog = cfg
        .seccomp
        .as_ref()
        .map(|(bytes, flags)| (crate::seccomp::decode(bytes).unwrap_or_default(), *flags));
    let path = finalize(process, userns, cfg.console, prog.as_ref())?;
    send(sock, &Report::Ready);
    if wait_fifo {
        // Opening the fifo for writing blocks until `start` opens it for
        // reading. It was opened O_PATH on the host before pivot_root.
        let fifo = PathBuf::from(format!("/proc/self/fd/{FD_FIFO}"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .step("open exec fifo")?;
        f.write_all(b"0").step("write exec fifo")?;
    }
    let wants_init = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(INIT_ANNOTATION))
        .is_some_and(|v| v == "true");
    if wants_init {
        return reaper(&path, process);
    }
    exec_now(&path, process)
}

/// PID 1 of `init: true` (see [`INIT_ANNOTATION`]). Runs with the process's
/// credentials, capabilities and seccomp filter (all set by `finalize`), so
/// it can do nothing the process itself could not.
fn reaper(path: &Path, process: &Process) -> Result<Never, InitError> {
    // Blocked before the fork, so no signal sent from now on is lost: a
    // blocked signal is queued even for a namespace's init, which the
    // kernel otherwise spares from signals it has no handler for.
    sys::block_all_signals().step("block signals")?;
    let child = sys::fork_raw(false).step("fork the process under the init")?;
    if child == 0 {
        if process.terminal() == Some(true) {
            // Its own foreground group: a ^C from the terminal reaches it
            // once, not also through us.
            sys::foreground_own_group().step("make the process the terminal's foreground")?;
        }
        exec_now(path, process)?;
    }
    // Nothing of the setup stays open in PID 1 (it never execs, so
    // close-on-exec does not apply).
    let _ = sys::close_from(3);
    loop {
        let sig = match sys::wait_any_signal() {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "berth-runtime init: sigwaitinfo: {e}");
                sys::exit_now(255)
            }
        };
        if sig != libc::SIGCHLD {
            // The child may be gone already; its exit is collected below.
            let _ = sys::kill(child, sig);
            continue;
        }
        // Reap everything that ended: the child, and orphans re-parented
        // to us.
        while let Ok((pid, status)) = sys::waitpid(-1, libc::WNOHANG) {
            if pid <= 0 {
                break;
            }
            if pid == child {
                sys::exit_now(sys::exit_code(status));
            }
        }
    }
}

fn exec(
    pid: i32,
    process: &Process,
    userns: bool,
    cfg: &InitConfig,
    sock: &mut std::fs::File,
) -> Result<Never, InitError> {
    // Open every namespace before entering any: after the mount namespace
    // changes, /proc is the container's.
    let order = ["user", "ipc", "uts", "net", "pid", "cgroup", "mnt"];
    let mut fds = Vec::new();
    for name in order {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        let (Ok(t), Ok(o)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        if t.ino() == o.ino() && t.dev() == o.dev() {
            continue;
        }
        let fd = sys::openat(libc::AT_FDCWD, &theirs, libc::O_RDONLY, 0)
            .step(format!("open {}", theirs.display()))?;
        fds.push((name, fd));
    }
    for (name, fd) in &fds {
        sys::setns(fd.as_raw_fd(), 0).step(format!("join the container's {name} namespace"))?;
    }
    drop(fds);
    // setns(pid) applies to children: fork into the container's pid
    // namespace, as a sibling (child of the runtime), and leave.
    let child = sys::fork_raw(true).step("fork into the container's pid namespace")?;
    if child > 0 {
        send(sock, &Report::Pid(child));
        sys::exit_now(0);
    }
    sys::umask(0);
    let prog = cfg
        .seccomp
        .as_ref()
        .map(|(bytes, flags)| (crate::seccomp::decode(bytes).unwrap_or_default(), *flags));
    let path = finalize(process, userns, cfg.console, prog.as_ref())?;
    send(sock, &Report::Ready);
    exec_now(&path, process)
}

/// Looks `cmd` up in the container the way `execvp` would, with the PATH of
/// the process's env (or a default).
fn lookup(cmd: &str, env: &[String]) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return is_exec(&p).then_some(p);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .find(|p| is_exec(p))
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// Sets up the terminal (if asked) and the process's own attributes, drops
/// privileges and loads seccomp; returns the resolved command path.
fn finalize(
    process: &Process,
    userns: bool,
    console: bool,
    seccomp: Option<&(Vec<sys::SockFilter>, u64)>,
) -> Result<PathBuf, InitError> {
    for rl in process.rlimits().iter().flatten() {
        sys::setrlimit(rlimit_resource(rl.typ()), rl.soft(), rl.hard())
            .step(format!("set rlimit {:?}", rl.typ()))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).step("set oom_score_adj")?;
    }
    if process.terminal() == Some(true) {
        if !console {
            return Err(InitError::msg(
                "process.terminal is set but no --console-socket was given",
            ));
        }
        terminal(process)?;
    }
    // The cwd: resolved by path inside the new root; no inherited fd can
    // stand in for it (CVE-2024-21626), and it must be inside the root.
    sys::cloexec_from(3).step("mark inherited fds close-on-exec")?;
    sys::chdir(process.cwd()).step(format!("chdir to cwd {}", process.cwd().display()))?;
    let cwd = std::env::current_dir().step("getcwd")?;
    if !cwd.is_absolute() || cwd.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        return Err(InitError::msg(format!(
            "cwd {} is outside the container's root",
            process.cwd().display()
        )));
    }
    let args = process.args().as_ref().expect("validated");
    let env = process.env().clone().unwrap_or_default();
    let Some(path) = lookup(&args[0], &env) else {
        return Err(InitError {
            step: "exec".into(),
            message: format!("{:?} not found", args[0]),
            not_found: Some(args[0].clone()),
        });
    };

    let caps = Sets::from_spec(process.capabilities().as_ref())
        .map_err(|c| InitError::msg(format!("unknown capability {c}")))?;
    let nnp = process.no_new_privileges() == Some(true);
    if nnp {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).step("set no_new_privs")?;
    }
    if let (Some((prog, flags)), false) = (seccomp, nnp) {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
        // the process may be about to lose: load it now.
        sys::seccomp_load(prog, *flags as libc::c_ulong).step("load seccomp filter")?;
    }
    let last = crate::caps::last_cap();
    for cap in 0..=last {
        if caps.bounding & (1 << cap) == 0 {
            sys::prctl(libc::PR_CAPBSET_DROP, cap.into(), 0)
                .step(format!("drop capability {cap} from the bounding set"))?;
        }
    }
    let user = process.user();
    let gids: Vec<u32> = user.additional_gids().clone().unwrap_or_default();
    let setgroups_allowed = !userns
        || std::fs::read_to_string("/proc/self/setgroups")
            .map(|s| s.trim() == "allow")
            .unwrap_or(true);
    if setgroups_allowed {
        sys::setgroups(&gids).step("set additional gids")?;
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0).step("keep capabilities across setuid")?;
    sys::setresgid(user.gid()).step(format!("set gid {}", user.gid()))?;
    sys::setresuid(user.uid()).step(format!("set uid {}", user.uid()))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0).step("reset keepcaps")?;
    sys::capset(sys::CapSets {
        effective: caps.effective,
        permitted: caps.permitted,
        inheritable: caps.inheritable,
    })
    .step("set capabilities")?;
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .step("clear ambient capabilities")?;
    for cap in 0..=last {
        if caps.ambient & (1 << cap) != 0 {
            sys::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap.into(),
            )
            .step(format!("raise ambient capability {cap}"))?;
        }
    }
    if let (Some((prog, flags)), true) = (seccomp, nnp) {
        sys::seccomp_load(prog, *flags as libc::c_ulong).step("load seccomp filter")?;
    }
    sys::umask(user.umask().unwrap_or(0o022));
    Ok(path)
}

/// Makes a pty in the container's devpts, sends its master to the console
/// socket (with `SCM_RIGHTS`, as runc does) and makes the peer our stdio and
/// controlling terminal.
fn terminal(process: &Process) -> Result<(), InitError> {
    let master = sys::openat(
        libc::AT_FDCWD,
        Path::new("/dev/pts/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
    )
    .or_else(|_| {
        sys::openat(
            libc::AT_FDCWD,
            Path::new("/dev/ptmx"),
            libc::O_RDWR | libc::O_NOCTTY,
            0,
        )
    })
    .step("open /dev/ptmx")?;
    let peer: OwnedFd = sys::pty_peer(master.as_raw_fd()).step("open pty peer")?;
    if let Some(size) = process.console_size() {
        sys::set_winsize(peer.as_raw_fd(), size.height() as u16, size.width() as u16)
            .step("set console size")?;
    }
    let console = sys::adopt_fd(FD_CONSOLE).step("console socket fd")?;
    sys::send_fd(console.as_raw_fd(), b"/dev/ptmx", master.as_raw_fd())
        .step("send pty master to console socket")?;
    drop(console);
    drop(master);
    sys::set_controlling_tty(peer.as_raw_fd()).step("make the pty our controlling terminal")?;
    for fd in 0..3 {
        sys::dup2(peer.as_raw_fd(), fd).step("put the pty on stdio")?;
    }
    Ok(())
}

fn exec_now(path: &Path, process: &Process) -> Result<Never, InitError> {
    let cstr =
        |s: &str| CString::new(s).map_err(|_| InitError::msg(format!("{s:?} contains a NUL byte")));
    let args: Vec<CString> = process
        .args()
        .iter()
        .flatten()
        .map(|a| cstr(a))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = process
        .env()
        .iter()
        .flatten()
        .map(|e| cstr(e))
        .collect::<Result<_, _>>()?;
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| InitError::msg("command path contains NUL"))?;
    sys::reset_signals();
    let err = sys::execve(&cpath, &args, &env);
    // Past the point of reporting to the runtime: say it on stderr, and
    // exit as a shell would.
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    let _ = writeln!(
        std::io::stderr(),
        "berth-runtime: exec {}: {err}",
        path.display()
    );
    sys::exit_now(code)
}
