//! The container's filesystem view, built by the init inside its new mount
//! namespace: the rootfs (a directory or an overlay), the spec's mounts,
//! `/dev` with its devices, masked and read-only paths, then `pivot_root`.
//!
//! Every path inside the rootfs is hostile: it is resolved with `openat2`
//! and `RESOLVE_IN_ROOT`, and mounts land on the resolved fd through
//! `/proc/self/fd/N`, so a symlink planted in an image cannot redirect a
//! mount onto the host. Masks are bound from a `/dev/null` fd opened on the
//! host and checked to be the 1:3 character device (CVE-2025-31133).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use crate::cgroup::Cgroup;
use crate::init::{InitError, Step};
use crate::sys;

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Mount flags and the leftover data string of a spec mount's options.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub flags: libc::c_ulong,
    pub propagation: libc::c_ulong,
    pub data: Vec<String>,
    pub bind: bool,
}

/// Parses `mount(8)`-style options.
pub(crate) fn parse_options(options: &[String]) -> Options {
    let mut o = Options::default();
    for opt in options {
        let propagation = match opt.as_str() {
            "private" => libc::MS_PRIVATE,
            "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
            "shared" => libc::MS_SHARED,
            "rshared" => libc::MS_SHARED | libc::MS_REC,
            "slave" => libc::MS_SLAVE,
            "rslave" => libc::MS_SLAVE | libc::MS_REC,
            "unbindable" => libc::MS_UNBINDABLE,
            "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
            _ => 0,
        };
        if propagation != 0 {
            o.propagation = propagation;
            continue;
        }
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "remount" => (libc::MS_REMOUNT, 0),
            "bind" => {
                o.bind = true;
                (libc::MS_BIND, 0)
            }
            "rbind" => {
                o.bind = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            // Engine hints (e.g. Docker's "tmpcopyup") are not mount data.
            "tmpcopyup" | "notmpcopyup" => (0, 0),
            other => {
                o.data.push(other.to_owned());
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

/// Path relative to the rootfs, with `..` and `.` left for `openat2` to
/// resolve inside the root.
fn rel(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::RootDir))
        .collect()
}

/// The rootfs while it is being populated: an fd to resolve paths in.
pub(crate) struct Rootfs {
    pub path: PathBuf,
    pub fd: OwnedFd,
    null: OwnedFd,
    userns: bool,
}

impl Rootfs {
    fn open(&self, path: &Path) -> std::io::Result<OwnedFd> {
        sys::open_in_root(self.fd.as_raw_fd(), &rel(path), libc::O_PATH, 0)
    }

    /// Makes sure `path` exists inside the root (as a directory, or as an
    /// empty file when `file`), creating each missing component relative to
    /// its resolved parent, and returns an `O_PATH` fd to it.
    fn ensure(&self, path: &Path, file: bool) -> std::io::Result<OwnedFd> {
        match self.open(path) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let rel = rel(path);
        let mut cur = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        for (i, comp) in comps.iter().enumerate() {
            let parent_path = if cur.as_os_str().is_empty() {
                Path::new(".")
            } else {
                cur.as_path()
            };
            let parent = sys::open_in_root(
                self.fd.as_raw_fd(),
                parent_path,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
            )?;
            cur.push(comp);
            let last = i + 1 == comps.len();
            match sys::open_in_root(self.fd.as_raw_fd(), &cur, libc::O_PATH, 0) {
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let name = Path::new(comp.as_os_str());
            if last && file {
                // O_PATH parents cannot be written through; reopen as a dir.
                let dir = sys::openat(
                    parent.as_raw_fd(),
                    Path::new("."),
                    libc::O_DIRECTORY | libc::O_RDONLY,
                    0,
                )?;
                drop(sys::openat(
                    dir.as_raw_fd(),
                    name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o644,
                )?);
            } else {
                match sys::mkdirat(parent.as_raw_fd(), name, 0o755) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.open(path)
    }
}

fn host_null() -> Result<OwnedFd, InitError> {
    let fd = sys::openat(libc::AT_FDCWD, Path::new("/dev/null"), libc::O_PATH, 0)
        .step("open host /dev/null")?;
    let meta = std::fs::metadata(fd_path(&fd)).step("stat host /dev/null")?;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !meta.file_type().is_char_device() || meta.rdev() != sys::makedev(1, 3) {
        return Err(InitError::msg(
            "host /dev/null is not the 1:3 character device; refusing to mask with it",
        ));
    }
    Ok(fd)
}

/// Everything up to and including `pivot_root`.
pub(crate) fn setup(spec: &Spec, rootfs: &Path, cgroup: &Cgroup) -> Result<(), InitError> {
    let linux = spec.linux().as_ref().expect("validated");
    let userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User);
    let null = host_null()?;
    // Keep host mount events from leaking in and ours from leaking out.
    sys::mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    )
    .step("make / rslave")?;

    let mounts: Vec<&Mount> = spec.mounts().iter().flatten().collect();
    let root_overlay = mounts.iter().find(|m| m.destination() == Path::new("/"));
    if let Some(m) = root_overlay {
        let o = parse_options(m.options().as_deref().unwrap_or(&[]));
        let typ = m.typ().as_deref().unwrap_or("overlay");
        sys::mount(
            m.source().as_deref(),
            rootfs,
            Some(typ),
            o.flags,
            Some(&o.data.join(",")),
        )
        .step(format!("mount {typ} rootfs on {}", rootfs.display()))?;
    } else {
        sys::mount(
            Some(rootfs),
            rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .step(format!("bind rootfs {}", rootfs.display()))?;
    }
    let fd = sys::openat(libc::AT_FDCWD, rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
        .step(format!("open rootfs {}", rootfs.display()))?;
    let root = Rootfs {
        path: rootfs.to_owned(),
        fd,
        null,
        userns,
    };

    let mut dev_mounted = false;
    for m in mounts.iter().filter(|m| m.destination() != Path::new("/")) {
        mount_one(&root, m, cgroup)?;
        dev_mounted |= m.destination() == Path::new("/dev");
    }
    if dev_mounted {
        make_devices(&root, spec)?;
    }
    for p in linux.masked_paths().iter().flatten() {
        mask(&root, Path::new(p))?;
    }
    for p in linux.readonly_paths().iter().flatten() {
        readonly(&root, Path::new(p))?;
    }
    pivot(&root)?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        remount_ro_keeping_flags(Path::new("/")).step("remount rootfs read-only")?;
    }
    if let Some(prop) = linux.rootfs_propagation() {
        let flag = parse_options(std::slice::from_ref(prop)).propagation;
        if flag != 0 {
            sys::mount(None, Path::new("/"), None, flag, None)
                .step(format!("set rootfs propagation {prop}"))?;
        }
    }
    Ok(())
}

fn mount_one(root: &Rootfs, m: &Mount, cgroup: &Cgroup) -> Result<(), InitError> {
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "" });
    let what = || {
        format!(
            "mount {} on {}",
            m.source().as_deref().unwrap_or(Path::new(typ)).display(),
            dest.display()
        )
    };
    if typ == "cgroup" {
        return mount_cgroup(root, dest, &opts, cgroup);
    }
    let data = opts.data.join(",");
    if opts.bind || typ == "bind" {
        let source = m.source().as_deref().ok_or_else(|| {
            InitError::msg(format!("bind mount on {} has no source", dest.display()))
        })?;
        let is_dir = std::fs::metadata(source)
            .step(format!("stat bind source {}", source.display()))?
            .is_dir();
        let target = root.ensure(dest, !is_dir).step(what())?;
        let flags = libc::MS_BIND | (opts.flags & libc::MS_REC);
        sys::mount(Some(source), &fd_path(&target), None, flags, None).step(what())?;
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            let target = root.open(dest).step(what())?;
            sys::mount(
                None,
                &fd_path(&target),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | extra,
                None,
            )
            .step(format!("remount {} with its options", dest.display()))?;
        }
    } else {
        let target = root.ensure(dest, false).step(what())?;
        let source = m.source().as_deref().unwrap_or(Path::new(typ));
        let res = sys::mount(
            Some(source),
            &fd_path(&target),
            Some(typ),
            opts.flags,
            Some(&data),
        );
        match res {
            Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
                // Without a new network namespace (or in a user namespace)
                // sysfs cannot be mounted afresh: bind the host's, read-only.
                sys::mount(
                    Some(Path::new("/sys")),
                    &fd_path(&target),
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .step(what())?;
                let target = root.open(dest).step(what())?;
                sys::mount(
                    None,
                    &fd_path(&target),
                    None,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | opts.flags,
                    None,
                )
                .step(what())?;
            }
            other => other.step(what())?,
        }
    }
    if opts.propagation != 0 {
        let target = root.open(dest).step(what())?;
        sys::mount(None, &fd_path(&target), None, opts.propagation, None)
            .step(format!("set propagation of {}", dest.display()))?;
    }
    Ok(())
}

/// `type: cgroup`: on v2 a `cgroup2` mount (scoped by the cgroup namespace);
/// on v1 a tmpfs holding a bind of the container's own directory of each
/// controller, so the container sees its cgroup as the root.
fn mount_cgroup(
    root: &Rootfs,
    dest: &Path,
    opts: &Options,
    cgroup: &Cgroup,
) -> Result<(), InitError> {
    let what = || format!("mount cgroup on {}", dest.display());
    let target = root.ensure(dest, false).step(what())?;
    match cgroup {
        Cgroup::V2(_) => {
            sys::mount(
                Some(Path::new("cgroup2")),
                &fd_path(&target),
                Some("cgroup2"),
                opts.flags,
                None,
            )
            .step(what())?;
        }
        Cgroup::V1(_) => {
            let flags = opts.flags & !libc::MS_RDONLY;
            sys::mount(
                Some(Path::new("tmpfs")),
                &fd_path(&target),
                Some("tmpfs"),
                flags,
                Some("mode=755"),
            )
            .step(what())?;
            for dir in cgroup.dirs() {
                let Some(ctrl) = dir
                    .strip_prefix("/sys/fs/cgroup")
                    .ok()
                    .and_then(|p| p.components().next())
                else {
                    continue;
                };
                let sub = dest.join(ctrl.as_os_str());
                let t = root.ensure(&sub, false).step(what())?;
                sys::mount(Some(&dir), &fd_path(&t), None, libc::MS_BIND, None).step(what())?;
                if opts.flags & libc::MS_RDONLY != 0 {
                    let t = root.open(&sub).step(what())?;
                    sys::mount(
                        None,
                        &fd_path(&t),
                        None,
                        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                        None,
                    )
                    .step(what())?;
                }
            }
            if opts.flags & libc::MS_RDONLY != 0 {
                let t = root.open(dest).step(what())?;
                sys::mount(
                    None,
                    &fd_path(&t),
                    None,
                    libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                    Some("mode=755"),
                )
                .step(what())?;
            }
        }
    }
    Ok(())
}

fn make_devices(root: &Rootfs, spec: &Spec) -> Result<(), InitError> {
    let dev = root.open(Path::new("/dev")).step("open /dev")?;
    let dev_dir = sys::openat(
        dev.as_raw_fd(),
        Path::new("."),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    )
    .step("open /dev")?;
    let mut list: Vec<(PathBuf, u32, u64, u64, u32, u32, u32)> = DEFAULT_DEVICES
        .iter()
        .map(|(n, ma, mi)| {
            (
                PathBuf::from(format!("/dev/{n}")),
                libc::S_IFCHR,
                *ma,
                *mi,
                0o666,
                0,
                0,
            )
        })
        .collect();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let kind = match d.typ().as_str() {
            "b" => libc::S_IFBLK,
            "p" => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        list.retain(|e| e.0 != *d.path());
        list.push((
            d.path().clone(),
            kind,
            d.major() as u64,
            d.minor() as u64,
            mode,
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        ));
    }
    for (path, kind, major, minor, mode, uid, gid) in list {
        let what = format!("create device {}", path.display());
        if root.userns {
            // mknod is not allowed in a user namespace: bind the host node.
            let target = root.ensure(&path, true).step(what.clone())?;
            sys::mount(Some(&path), &fd_path(&target), None, libc::MS_BIND, None).step(what)?;
            continue;
        }
        let parent = path.parent().unwrap_or(Path::new("/dev"));
        let dir = if parent == Path::new("/dev") {
            None
        } else {
            let p = root.ensure(parent, false).step(what.clone())?;
            Some(
                sys::openat(
                    p.as_raw_fd(),
                    Path::new("."),
                    libc::O_DIRECTORY | libc::O_RDONLY,
                    0,
                )
                .step(what.clone())?,
            )
        };
        let dirfd = dir.as_ref().unwrap_or(&dev_dir).as_raw_fd();
        let name = Path::new(path.file_name().unwrap_or_default());
        match sys::mknodat(dirfd, name, kind | mode, sys::makedev(major, minor)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(InitError::io(what, e)),
        }
        if uid != 0 || gid != 0 {
            let f =
                sys::openat(dirfd, name, libc::O_PATH | libc::O_NOFOLLOW, 0).step(what.clone())?;
            std::os::unix::fs::chown(fd_path(&f), Some(uid), Some(gid)).step(what)?;
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        // As runc: /dev/core only where the kernel has /proc/kcore.
        if link == "core" && !Path::new("/proc/kcore").exists() {
            continue;
        }
        match sys::symlinkat(Path::new(target), dev_dir.as_raw_fd(), Path::new(link)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(InitError::io(format!("symlink /dev/{link}"), e)),
        }
    }
    Ok(())
}

fn mask(root: &Rootfs, path: &Path) -> Result<(), InitError> {
    let target = match root.open(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(InitError::io(format!("mask {}", path.display()), e)),
    };
    let is_dir = std::fs::metadata(fd_path(&target))
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let what = || format!("mask {}", path.display());
    if is_dir {
        sys::mount(
            Some(Path::new("tmpfs")),
            &fd_path(&target),
            Some("tmpfs"),
            libc::MS_RDONLY,
            Some("size=0"),
        )
        .step(what())
    } else {
        sys::mount(
            Some(&fd_path(&root.null)),
            &fd_path(&target),
            None,
            libc::MS_BIND,
            None,
        )
        .step(what())
    }
}

fn readonly(root: &Rootfs, path: &Path) -> Result<(), InitError> {
    let what = || format!("make {} read-only", path.display());
    let target = match root.open(path) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(InitError::io(what(), e)),
    };
    sys::mount(
        Some(&fd_path(&target)),
        &fd_path(&target),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .step(what())?;
    let target = root.open(path).step(what())?;
    remount_ro_keeping_flags(&fd_path(&target)).step(what())
}

/// Bind-remounts `path` read-only, keeping the nosuid/nodev/noexec flags the
/// mount already has (dropping them is refused where they are locked).
fn remount_ro_keeping_flags(path: &Path) -> std::io::Result<()> {
    let mut keep = 0;
    if let Ok(st) = statvfs_flags(path) {
        for (st_flag, ms_flag) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
        ] {
            if st & st_flag != 0 {
                keep |= ms_flag;
            }
        }
    }
    sys::mount(
        None,
        path,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
        None,
    )
}

fn statvfs_flags(path: &Path) -> std::io::Result<libc::c_ulong> {
    let fd = sys::openat(libc::AT_FDCWD, path, libc::O_PATH, 0)?;
    sys::fstatvfs_flags(fd.as_raw_fd())
}

/// `pivot_root(".", ".")` then a lazy unmount of the old root stacked under
/// the new one: no directory for the old root is needed in the image.
fn pivot(root: &Rootfs) -> Result<(), InitError> {
    sys::fchdir(root.fd.as_raw_fd()).step("chdir to rootfs")?;
    sys::pivot_root(Path::new("."), Path::new("."))
        .step(format!("pivot_root into {}", root.path.display()))?;
    sys::mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .step("make old root rslave")?;
    sys::umount2(Path::new("."), libc::MNT_DETACH).step("detach old root")?;
    sys::chdir(Path::new("/")).step("chdir /")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = [
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rprivate",
            "ro",
            "rw",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = parse_options(&opts);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.propagation, libc::MS_PRIVATE | libc::MS_REC);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert!(!o.bind);
        let o = parse_options(&["rbind".to_string(), "ro".to_string()]);
        assert!(o.bind);
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY);
    }

    #[test]
    fn rel_strips_the_root() {
        assert_eq!(rel(Path::new("/proc/kcore")), PathBuf::from("proc/kcore"));
        assert_eq!(rel(Path::new("/../etc")), PathBuf::from("../etc"));
    }
}
