//! Thin, safe wrappers over the raw system calls the runtime needs. Every
//! `unsafe` block of the crate lives here, each with a `// SAFETY:` comment.
//! Wrappers return `io::Result` and take Rust types; they hold no policy: the
//! order of operations and error context belong to the callers.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An fd the child of [`clone_exec`] receives at a fixed number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FdMap {
    pub src: RawFd,
    pub dst: RawFd,
}

/// Clones a child into new namespaces (`flags` holds `CLONE_NEW*` bits) and
/// makes it execute `exe` (an fd opened `O_PATH` or `O_RDONLY`) with `argv`
/// and `envp`. The child only runs async-signal-safe raw system calls between
/// the clone and the exec, so this is sound from a multi-threaded process.
/// The fds in `fds` are placed at their `dst` numbers without `FD_CLOEXEC`;
/// every `src` must be above every `dst` (callers dup them high first).
///
/// With `userns_gate` (needed when `flags` has `CLONE_NEWUSER`), the child
/// first waits for one byte on that fd (the parent sends it once it has
/// written the uid and gid maps) and becomes uid/gid 0 of its namespace
/// before the exec: a process whose euid is not the namespace's root loses
/// every capability at `execve`, so the init must not exec as the unmapped
/// overflow uid. It exits with 125 if the gate closes without a byte.
pub(crate) fn clone_exec(
    flags: u64,
    exe: &OwnedFd,
    argv: &[CString],
    envp: &[CString],
    fds: &[FdMap],
    userns_gate: Option<RawFd>,
) -> io::Result<libc::pid_t> {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let empty = c"";
    let exe_fd = exe.as_raw_fd();
    // CLONE_NEWTIME shares its bit with CSIGNAL in clone(2): only clone3
    // takes it. clone3 without a stack is fork-like too.
    let clone3_args: [u64; 11] = [
        flags, // flags
        0,     // pidfd
        0,     // child_tid
        0,     // parent_tid
        libc::SIGCHLD as u64,
        0, // stack
        0, // stack_size
        0, // tls
        0, // set_tid
        0, // set_tid_size
        0, // cgroup
    ];
    let pid = if flags & libc::CLONE_NEWTIME as u64 != 0 {
        // SAFETY: a fork-like clone (no stack, no CLONE_VM), as below;
        // `clone3_args` is a `struct clone_args` (v2, 88 bytes) on our
        // stack, read by the kernel before it returns.
        unsafe {
            libc::syscall(
                libc::SYS_clone3,
                clone3_args.as_ptr(),
                std::mem::size_of_val(&clone3_args),
            )
        }
    } else {
        // SAFETY: a fork-like clone (no new stack, no CLONE_VM): the child
        // gets a copy of our address space. In the child we only call raw
        // system calls (dup3, fcntl, execveat, exit_group) on memory prepared
        // before the clone, never the allocator or locks, so a lock held by
        // another thread at the moment of the clone cannot deadlock it.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD as u64) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        }
    };
    if pid == 0 {
        // Child.
        if let Some(gate) = userns_gate {
            let mut byte = 0u8;
            // SAFETY: raw read/setres*id/exit_group syscalls on integers and
            // a byte on our own stack; no allocation, no locks.
            unsafe {
                let n = libc::syscall(libc::SYS_read, gate, std::ptr::addr_of_mut!(byte), 1usize);
                if n != 1
                    || libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0
                    || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
                {
                    libc::syscall(libc::SYS_exit_group, 125);
                }
            }
        }
        for map in fds {
            // SAFETY: plain fd syscalls on integers.
            unsafe {
                if map.src == map.dst {
                    libc::syscall(libc::SYS_fcntl, map.dst, libc::F_SETFD, 0);
                } else {
                    libc::syscall(libc::SYS_dup3, map.src, map.dst, 0);
                }
            }
        }
        // SAFETY: the pointers point into vectors that live in this copy of
        // the parent's memory; execveat only returns on failure.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                exe_fd,
                empty.as_ptr(),
                argv_ptrs.as_ptr(),
                envp_ptrs.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            libc::syscall(libc::SYS_exit_group, 126);
        }
        unreachable!("exit_group returned");
    }
    Ok(check(pid)? as libc::pid_t)
}

/// Like `fork(2)` through the raw syscall, optionally with `CLONE_PARENT` so
/// that the child becomes our sibling. Only for single-threaded callers (the
/// container init), where the child may go on running ordinary Rust code.
pub(crate) fn fork_raw(clone_parent: bool) -> io::Result<libc::pid_t> {
    let flags = libc::SIGCHLD as u64
        | if clone_parent {
            libc::CLONE_PARENT as u64
        } else {
            0
        };
    // SAFETY: fork semantics; the caller is single-threaded (documented), so
    // no lock can be held by another thread across the fork.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    Ok(check(pid)? as libc::pid_t)
}

/// Replaces the process image with `path`, looked up by the caller.
pub(crate) fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of pointers to live C strings.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// `mount(2)`. `None` arguments are passed as NULL.
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(|s| CString::new(s).expect("fstype without NUL"));
    let data = data
        .map(CString::new)
        .transpose()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount data contains NUL"))?;
    // SAFETY: all pointers are NUL-terminated strings or NULL, alive for the call.
    let ret = unsafe {
        libc::mount(
            source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    check_int(ret).map(drop)
}

/// `umount2(2)`.
pub(crate) fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = cstr(target)?;
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(2)`.
pub(crate) fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let new_root = cstr(new_root)?;
    let put_old = cstr(put_old)?;
    // SAFETY: two NUL-terminated paths.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// `openat2(2)` relative to `dir` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`:
/// `..` and absolute symlinks cannot leave `dir`, whatever the rootfs holds.
pub(crate) fn open_in_root(
    dir: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid open_how of the right size, NUL-terminated path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = check(fd)? as RawFd;
    // SAFETY: the kernel just gave us this fd; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` without any resolution restriction (for host paths).
pub(crate) fn openat(
    dir: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: NUL-terminated path.
    let fd = check_int(unsafe { libc::openat(dir, path.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(2)`.
pub(crate) fn mkdirat(dir: RawFd, path: &Path, mode: u32) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::mkdirat(dir, path.as_ptr(), mode) }).map(drop)
}

/// `mknodat(2)`.
pub(crate) fn mknodat(dir: RawFd, path: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::mknodat(dir, path.as_ptr(), mode, dev) }).map(drop)
}

/// `symlinkat(2)`.
pub(crate) fn symlinkat(target: &Path, dir: RawFd, link: &Path) -> io::Result<()> {
    let target = cstr(target)?;
    let link = cstr(link)?;
    // SAFETY: NUL-terminated paths.
    check_int(unsafe { libc::symlinkat(target.as_ptr(), dir, link.as_ptr()) }).map(drop)
}

/// `mkfifo(3)`.
pub(crate) fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::mkfifo(path.as_ptr(), mode) }).map(drop)
}

/// `chdir(2)`.
pub(crate) fn chdir(path: &Path) -> io::Result<()> {
    let path = cstr(path)?;
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `fchdir(2)`.
pub(crate) fn fchdir(fd: RawFd) -> io::Result<()> {
    // SAFETY: integer argument.
    check_int(unsafe { libc::fchdir(fd) }).map(drop)
}

/// `setns(2)`.
pub(crate) fn setns(fd: RawFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// `sethostname(2)`.
pub(crate) fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live byte slice.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// `setdomainname(2)`.
pub(crate) fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live byte slice.
    check_int(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// `setgroups(2)` through the raw syscall (only this thread; the init is
/// single-threaded so that is the whole process).
pub(crate) fn setgroups(gids: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length of a live slice of gid_t.
    check(unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) }).map(drop)
}

/// `setresgid(2)`, raw.
pub(crate) fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

/// `setresuid(2)`, raw.
pub(crate) fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// `umask(2)`.
pub(crate) fn umask(mask: u32) {
    // SAFETY: integer argument; umask cannot fail.
    unsafe { libc::umask(mask) };
}

/// `prctl(2)` with integer arguments.
pub(crate) fn prctl(
    option: libc::c_int,
    arg2: libc::c_ulong,
    arg3: libc::c_ulong,
) -> io::Result<libc::c_int> {
    // SAFETY: every option we pass takes integer arguments only.
    check_int(unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

/// The five capability sets as 64-bit masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// `capset(2)` (version 3) for the calling thread.
pub(crate) fn capset(sets: CapSets) -> io::Result<()> {
    let header = libc_cap_header {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        libc_cap_data {
            effective: lo(sets.effective),
            permitted: lo(sets.permitted),
            inheritable: lo(sets.inheritable),
        },
        libc_cap_data {
            effective: hi(sets.effective),
            permitted: hi(sets.permitted),
            inheritable: hi(sets.inheritable),
        },
    ];
    // SAFETY: header and a two-element data array as capset v3 expects.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const _, data.as_ptr()) }).map(drop)
}

#[repr(C)]
struct libc_cap_header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct libc_cap_data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `setrlimit` through `prlimit(2)` on ourselves.
pub(crate) fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid rlimit64 pointer, NULL for the old value.
    check_int(unsafe { libc::prlimit64(0, resource as _, &limit, std::ptr::null_mut()) }).map(drop)
}

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Immediate operand.
    pub k: u32,
}

/// Installs a seccomp filter on the calling thread (`seccomp(2)`,
/// `SECCOMP_SET_MODE_FILTER`). The caller must hold `no_new_privs` or
/// `CAP_SYS_ADMIN`.
pub(crate) fn seccomp_load(filter: &[SockFilter], flags: libc::c_ulong) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: SockFilter is repr(C) with the layout of struct sock_filter;
    // prog points to `filter`, alive for the call (the kernel copies it).
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// Makes a read-only, detached overlayfs view of the directory holding our
/// own binary and opens the binary through it. Executing the init from this
/// fd makes `/proc/<pid>/exe` of every runtime process inside a container
/// point at a file on a read-only filesystem, so a container process cannot
/// open it for writing (CVE-2019-5736), without copying the binary.
/// Overlayfs needs two lower layers when it has no upper one: the second is
/// an empty, detached tmpfs, which can never overlap the binary's directory
/// (overlapping layers are refused with ELOOP, as an empty dir under a
/// state root inside that directory would be).
pub(crate) fn sealed_exe_overlay(exe: &Path) -> io::Result<OwnedFd> {
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let name = exe
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let empty = detached_mount(c"tmpfs", &[(c"size", c"4k"), (c"mode", c"0555")])?;
    let lower = format!("{}:/proc/self/fd/{}", dir.display(), empty.as_raw_fd());
    if lower.contains(',') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let lower = CString::new(lower).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mnt = detached_mount(c"overlay", &[(c"lowerdir", lower.as_c_str())])?;
    openat(mnt.as_raw_fd(), Path::new(name), libc::O_RDONLY, 0)
}

/// A new read-only, nosuid, nodev filesystem of type `fstype` with string
/// options, mounted nowhere: the returned fd is its root.
fn detached_mount(fstype: &CStr, options: &[(&CStr, &CStr)]) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated strings; fsopen returns a new fd we own.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC) };
    // SAFETY: fresh fd.
    let fs = unsafe { OwnedFd::from_raw_fd(check(fs)? as RawFd) };
    for (key, value) in options {
        // SAFETY: fsconfig with string key/value on a live fs context fd.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                libc::FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: as above, creating the superblock.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            0usize,
            0usize,
            0,
        )
    })?;
    // SAFETY: fsmount on the configured context; returns a new mount fd.
    let mnt = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOSUID,
        )
    };
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(check(mnt)? as RawFd) })
}

/// Fallback for [`sealed_exe_overlay`]: a copy of the binary in a sealed
/// memfd (the approach of runc's original CVE-2019-5736 fix).
pub(crate) fn sealed_exe_memfd(exe: &Path) -> io::Result<OwnedFd> {
    let src = openat(libc::AT_FDCWD, exe, libc::O_RDONLY, 0)?;
    // SAFETY: NUL-terminated name; returns a new fd we own.
    let fd = unsafe {
        libc::memfd_create(
            c"berth-init".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    // SAFETY: fresh fd.
    let memfd = unsafe { OwnedFd::from_raw_fd(check_int(fd)?) };
    loop {
        // SAFETY: two live fds, NULL offset (use the file position).
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                src.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 30,
            )
        };
        if check(n as libc::c_long)? == 0 {
            break;
        }
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: integer fcntl on a live fd.
    check_int(unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(memfd)
}

/// Sends `fd` over the unix socket `sock` with `SCM_RIGHTS`, with `payload`
/// as the message body (runc sends the pty master this way).
pub(crate) fn send_fd(sock: RawFd, payload: &[u8], fd: RawFd) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cmsg_buf = vec![0u8; space];
    // SAFETY: zeroed msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to a buffer of CMSG_SPACE(sizeof fd) bytes,
    // so CMSG_FIRSTHDR is non-null and CMSG_DATA has room for one fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    // SAFETY: msg is fully initialised and its buffers outlive the call.
    check(unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } as libc::c_long).map(drop)
}

/// Receives one fd sent with [`send_fd`]; returns it and the body bytes.
pub fn recv_fd(sock: RawFd) -> io::Result<(Option<OwnedFd>, Vec<u8>)> {
    let mut body = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: body.as_mut_ptr().cast(),
        iov_len: body.len(),
    };
    // SAFETY: pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cmsg_buf = vec![0u8; space];
    // SAFETY: zeroed msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: buffers are live and sized as declared in msg.
    let n = check(unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) } as libc::c_long)?
        as usize;
    body.truncate(n);
    let mut fd = None;
    // SAFETY: the kernel filled msg_control; CMSG_* walk it within bounds.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            fd = Some(OwnedFd::from_raw_fd(raw));
        }
    }
    Ok((fd, body))
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a two-element array as pipe2 expects.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `socketpair(AF_UNIX, SOCK_SEQPACKET)`, close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a two-element array as socketpair expects.
    check_int(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: two fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Duplicates `fd` to the lowest free number ≥ `min`, close-on-exec.
pub(crate) fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer fcntl.
    let new = check_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `dup2(2)` (clears close-on-exec on the new fd).
pub(crate) fn dup2(src: RawFd, dst: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::dup2(src, dst) }).map(drop)
}

/// Takes ownership of an inherited fd number.
///
/// # Safety contract
/// The caller must know that `fd` is open and owned by nobody else; it is
/// only used for the fds the runtime passes to its own init.
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer fcntl to check the fd is open.
    check_int(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: documented contract: the runtime itself placed this fd here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Marks every fd ≥ `first` close-on-exec (CVE-2024-21626: no host fd,
/// such as a cgroup or state dir handle, may survive into the container).
pub(crate) fn cloexec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// Closes every fd from `first` up (`close_range(2)`): for a process that
/// goes on without exec (the container's own init, `init: true`).
pub(crate) fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    })
    .map(drop)
}

/// Opens the peer (slave) of a pty master with `TIOCGPTPEER`, so the slave is
/// the one of this very master, never a path someone swapped.
pub(crate) fn pty_peer(master: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: TIOCSPTLCK takes a pointer to int; TIOCGPTPEER takes open flags.
    unsafe {
        let unlock: libc::c_int = 0;
        check_int(libc::ioctl(master, libc::TIOCSPTLCK, &unlock))?;
        let fd = check_int(libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Sets the window size of a terminal.
pub(crate) fn set_winsize(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ takes a pointer to a winsize.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// `setsid(2)` then `TIOCSCTTY` on `tty`: makes it our controlling terminal.
pub(crate) fn set_controlling_tty(tty: RawFd) -> io::Result<()> {
    // SAFETY: integer syscalls.
    unsafe {
        check_int(libc::setsid())?;
        check_int(libc::ioctl(tty, libc::TIOCSCTTY, 0))?;
    }
    Ok(())
}

/// `kill(2)`.
pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `waitpid(2)`, retrying on EINTR; returns the raw status.
pub(crate) fn waitpid(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> io::Result<(libc::pid_t, libc::c_int)> {
    loop {
        let mut status = 0;
        // SAFETY: valid pointer to an int.
        let ret = unsafe { libc::waitpid(pid, &mut status, flags) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok((ret, status));
    }
}

/// Turns a raw wait status into a shell-style exit code (128+signal).
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// `_exit(2)`: leaves without running destructors or atexit handlers (for
/// forked children that must not flush their parent's buffers).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process; never returns.
    unsafe { libc::_exit(code) }
}

/// Blocks the given signals for the calling thread; returns the old mask.
pub(crate) fn block_signals(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t manipulation through libc on local values.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        let ret = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(old)
    }
}

/// Blocks every signal for the calling thread; returns the old mask.
pub(crate) fn block_all_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t manipulation through libc on local values.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        let mut old: libc::sigset_t = std::mem::zeroed();
        let ret = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(old)
    }
}

/// Waits for any signal (all of them blocked by [`block_all_signals`]) and
/// returns its number (`sigwaitinfo(2)`), retrying on EINTR.
pub(crate) fn wait_any_signal() -> io::Result<libc::c_int> {
    loop {
        // SAFETY: a filled local sigset_t; a NULL siginfo is allowed.
        let ret = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            libc::sigwaitinfo(&set, std::ptr::null_mut())
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(ret);
    }
}

/// Puts the caller in a new process group and makes that group the
/// foreground of the terminal on fd 0 (`setpgid(2)`, `tcsetpgrp(3)`; the
/// caller blocks SIGTTOU, which a background group would get).
pub(crate) fn foreground_own_group() -> io::Result<()> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::setpgid(0, 0) })?;
    // SAFETY: integer arguments.
    check_int(unsafe { libc::tcsetpgrp(0, libc::getpgrp()) }).map(drop)
}

/// Restores a signal mask returned by [`block_signals`].
pub(crate) fn set_sigmask(mask: &libc::sigset_t) {
    // SAFETY: a valid sigset_t.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// Resets every signal disposition to default and unblocks all signals
/// (the container's process must not inherit our mask).
pub(crate) fn reset_signals() {
    // SAFETY: plain libc signal calls with valid arguments.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// `pidfd_open(2)`.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; returns a new fd.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signals exactly the process the pidfd refers to,
/// immune to pid reuse.
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments and NULL siginfo.
    check(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, 0usize, 0) }).map(drop)
}

/// Polls one fd for readability with a timeout in milliseconds; true if ready.
pub(crate) fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(ret > 0);
    }
}

/// Polls several fds for readability (no timeout); returns which are ready
/// (readable, hung up or in error).
pub(crate) fn poll_many(fds: &[RawFd]) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: a live array of pollfds of the given length.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(pfds.iter().map(|p| p.revents != 0).collect());
    }
}

/// A non-blocking, close-on-exec `signalfd(2)` for `signals` (which the
/// caller has blocked).
pub(crate) fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: local sigset_t built through libc; returns a new fd.
    let fd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(check_int(fd)?) })
}

/// Reads one pending signal from a [`signalfd`]; `None` when none is left.
pub(crate) fn read_signalfd(fd: RawFd) -> Option<libc::c_int> {
    // SAFETY: zeroed siginfo is a valid buffer of the size we pass.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reading into a live buffer of `size` bytes.
    let n = unsafe { libc::read(fd, std::ptr::addr_of_mut!(info).cast(), size) };
    (n == size as isize).then_some(info.ssi_signo as libc::c_int)
}

/// `makedev(3)`.
pub(crate) fn makedev(major: u64, minor: u64) -> u64 {
    libc::makedev(major as u32, minor as u32)
}

/// The `f_flag` field of `fstatvfs(3)` (`ST_RDONLY`, `ST_NOSUID`…).
pub(crate) fn fstatvfs_flags(fd: RawFd) -> io::Result<libc::c_ulong> {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer.
    check_int(unsafe { libc::fstatvfs(fd, &mut st) })?;
    Ok(st.f_flag)
}

/// Forks a child that installs `filter` (with `no_new_privs`) and makes the
/// raw system call `nr` with `args`; returns the errno it got (0 for
/// success). The child only runs raw system calls, so this is sound from a
/// multi-threaded process. Used to check a compiled filter against the real
/// kernel.
pub fn probe_syscall_under_filter(
    filter: &[SockFilter],
    nr: i64,
    args: [u64; 6],
) -> io::Result<i32> {
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fork-like clone; the child uses only raw syscalls on memory
    // prepared before the fork, then exits with exit_group.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: raw syscalls only; see above.
        unsafe {
            libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                libc::syscall(libc::SYS_exit_group, 255);
            }
            let ret = libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
            let code = if ret < 0 {
                *libc::__errno_location()
            } else {
                0
            };
            libc::syscall(libc::SYS_exit_group, code);
        }
        unreachable!("exit_group returned");
    }
    let pid = check(pid)? as libc::pid_t;
    let (_, status) = waitpid(pid, 0)?;
    match exit_code(status) {
        255 => Err(io::Error::other("the probe could not install the filter")),
        code => Ok(code),
    }
}

/// Hands the allocator's free pages back to the kernel (glibc's
/// `malloc_trim`). For long-lived processes after a burst of setup work —
/// the monitor, once its container is started — so pages freed in the middle
/// of the heap stop counting against them.
pub fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's
    // own free lists under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
