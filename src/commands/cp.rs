//! `cp`: copies files and directories between a service container and the
//! host, both ways, as `docker compose cp` does.
//!
//! The container side is always reached through a directory fd of the
//! container's root, and every path in it is resolved with `openat2(2)`
//! and `RESOLVE_IN_ROOT`, so a symlink in the container (`/x -> /`, or
//! `../../..`) resolves inside the container and never escapes to the host.
//! Below the first path, entries are opened one component at a time with
//! `O_NOFOLLOW`: symlinks are copied as symlinks.
//!
//! The root is `/proc/<pid>/root` for a running container — the root as
//! its own mount namespace sees it, volumes and binds included — and the
//! container's mounted rootfs for a stopped one, where a path inside a
//! volume or bind (from the bundle's `config.json`) is taken to the
//! volume's directory on the host.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

use crate::cli::lifecycle::CpArgs;
use crate::engine::state::{self, alive, ContainerRecord, Paths, RunState, Status};
use crate::settings::ProjectArgs;

use super::project;

/// `SERVICE:PATH` → (service, path); a local path otherwise (one that
/// starts with `/` or `.`, or has no `:`).
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((svc, path)) if !svc.is_empty() => (Some(svc), path),
        _ => (None, arg),
    }
}

pub fn cp(args: &ProjectArgs, a: &CpArgs) -> Result<()> {
    if a.source.is_empty() {
        bail!("source can not be empty");
    }
    if a.destination.is_empty() {
        bail!("destination can not be empty");
    }
    let (src_svc, src) = split(&a.source);
    let (dst_svc, dst) = split(&a.destination);
    if src == "-" || dst == "-" {
        bail!("cp with \"-\" (a tar stream on stdin/stdout) is not supported yet");
    }
    let (service, to_container) = match (src_svc, dst_svc) {
        (Some(_), Some(_)) => bail!("copying between services is not supported"),
        (None, None) => bail!("unknown copy direction: one of the paths must be SERVICE:PATH"),
        (Some(s), None) => (s, false),
        (None, Some(s)) => (s, true),
    };
    let project = project::load(args, &[])?;
    let paths = Paths::from_env();
    let mut targets: Vec<ContainerRecord> = state::project_containers(&paths, &project.name)?
        .into_iter()
        .filter(|c| c.service == service)
        .collect();
    targets.sort_by_key(|c| (c.oneoff, c.number));
    match a.index {
        Some(i) if i > 0 => {
            targets.retain(|c| !c.oneoff && c.number == i);
            if targets.is_empty() {
                bail!("service {service:?} has no container number {i}");
            }
        }
        _ => {
            if !a.all {
                targets.retain(|c| !c.oneoff);
            }
            if targets.is_empty() {
                bail!("no container found for service {service:?}");
            }
            if !to_container {
                targets.truncate(1);
            }
        }
    }
    let opts = Options {
        archive: a.archive,
        follow: a.follow_link,
    };
    for c in &targets {
        let root = ContainerRoot::of(&paths, c)?;
        if to_container {
            copy_in(&root, Path::new(src), dst, &opts)
                .with_context(|| format!("copying {src} to {}:{dst}", c.name))?;
            eprintln!(" ✔ Copied {src} to {}:{dst}", c.name);
        } else {
            copy_out(&root, src, Path::new(dst), &opts)
                .with_context(|| format!("copying {}:{src} to {dst}", c.name))?;
            eprintln!(" ✔ Copied {}:{src} to {dst}", c.name);
        }
    }
    Ok(())
}

struct Options {
    /// `-a`: keep uid/gid (else the copies belong to the copier, root).
    archive: bool,
    /// `-L`: follow a symlink named as the source.
    follow: bool,
}

/// How a container's paths are reached on the host.
struct ContainerRoot {
    /// The container's `/`.
    root: PathBuf,
    /// Stopped container: binds and volumes, (destination, host source),
    /// longest destination first.
    mounts: Vec<(PathBuf, PathBuf)>,
}

impl ContainerRoot {
    fn of(paths: &Paths, c: &ContainerRecord) -> Result<ContainerRoot> {
        let run = RunState::load(paths, &c.id);
        let status = run.effective_status();
        if matches!(status, Status::Running | Status::Paused) && run.pid > 0 && alive(run.pid) {
            return Ok(ContainerRoot {
                root: PathBuf::from(format!("/proc/{}/root", run.pid)),
                mounts: Vec::new(),
            });
        }
        let dir = paths.container(&c.id);
        let rootfs = dir.join("rootfs");
        // The overlay must be there: else writes would land in the empty
        // mount point.
        let (a, b) = (fs_err::metadata(&rootfs)?, fs_err::metadata(&dir)?);
        if a.dev() == b.dev() {
            bail!("the root filesystem of {} is not mounted", c.name);
        }
        let mut mounts = Vec::new();
        if let Ok(spec) = berth_runtime::spec::load(&dir) {
            for m in spec.mounts().iter().flatten() {
                let is_bind = m.typ().as_deref() == Some("bind")
                    || m.options()
                        .iter()
                        .flatten()
                        .any(|o| o == "bind" || o == "rbind");
                if let (true, Some(src)) = (is_bind, m.source()) {
                    // Only directories: files bound in (hosts, resolv.conf)
                    // are the container's own, in its bundle.
                    if src.is_dir() {
                        mounts.push((m.destination().clone(), src.clone()));
                    }
                }
            }
        }
        mounts.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
        Ok(ContainerRoot {
            root: rootfs,
            mounts,
        })
    }

    /// The directory to resolve `path` in, and `path` relative to it.
    fn locate(&self, path: &str) -> Result<(OwnedFd, PathBuf)> {
        let clean = lexical(path);
        let mut base = self.root.clone();
        let mut rel = clean.clone();
        for (dest, src) in &self.mounts {
            if let Ok(r) = clean.strip_prefix(lexical(&dest.to_string_lossy())) {
                base = src.clone();
                rel = r.to_path_buf();
                break;
            }
        }
        let fd = rustix::fs::open(
            &base,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", base.display()))?;
        Ok((fd, rel))
    }
}

/// `path` made relative to `/`, with `.` and `..` folded lexically (`..`
/// above the root stays at the root, as in the container).
fn lexical(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolves `rel` inside `root` (symlinks resolve inside it too).
fn resolve(root: &OwnedFd, rel: &Path, nofollow: bool) -> rustix::io::Result<OwnedFd> {
    let target: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if nofollow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat2(
        root,
        target,
        flags,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Opens for reading the file an `O_PATH` fd names.
fn reopen(fd: &OwnedFd) -> std::io::Result<std::fs::File> {
    std::fs::File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

// ---- container → host ----

fn copy_out(root: &ContainerRoot, src: &str, dst: &Path, o: &Options) -> Result<()> {
    let contents_only = src.ends_with("/.");
    let (base, rel) = root.locate(src)?;
    let fd = resolve(&base, &rel, !o.follow && !src.ends_with('/'))
        .with_context(|| format!("could not find the file {src} in container"))?;
    let st = rustix::fs::fstat(&fd)?;
    let name = rel
        .file_name()
        .map_or_else(|| "root".into(), |n| n.to_owned());
    let target = match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => {
            if contents_only {
                dst.to_path_buf()
            } else {
                dst.join(&name)
            }
        }
        Ok(_) if file_type(&st) == FileType::Directory => {
            bail!("cannot copy a directory to the file {}", dst.display())
        }
        Ok(_) => dst.to_path_buf(),
        Err(_) => {
            if dst.to_string_lossy().ends_with('/') {
                bail!("destination directory {} does not exist", dst.display());
            }
            let parent = dst.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(p) = parent {
                if !p.is_dir() {
                    bail!("destination directory {} does not exist", p.display());
                }
            }
            dst.to_path_buf()
        }
    };
    out_entry(&fd, &st, &target, o)
}

fn out_entry(fd: &OwnedFd, st: &Stat, target: &Path, o: &Options) -> Result<()> {
    let mode = st.st_mode & 0o7777;
    match file_type(st) {
        FileType::Directory => {
            match std::fs::symlink_metadata(target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs_err::remove_file(target)?;
                    fs_err::create_dir(target)?;
                }
                Err(_) => fs_err::create_dir(target)?,
            }
            let dir = rustix::fs::openat(
                fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let entries = rustix::fs::Dir::read_from(&dir)?;
            for e in entries {
                let e = e?;
                let n = e.file_name().to_bytes();
                if n == b"." || n == b".." {
                    continue;
                }
                let name = std::ffi::OsStr::from_bytes(n);
                // One component, not followed: nothing to escape through.
                let child = rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let cst = rustix::fs::fstat(&child)?;
                out_entry(&child, &cst, &target.join(name), o)?;
            }
            fs_err::set_permissions(target, std::fs::Permissions::from_mode(mode))?;
        }
        FileType::RegularFile => {
            if std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
                fs_err::remove_file(target)?;
            }
            let mut from = reopen(fd)?;
            let mut to = fs_err::File::create(target)?;
            std::io::copy(&mut from, &mut to)?;
            to.flush()?;
            to.set_permissions(std::fs::Permissions::from_mode(mode))?;
            set_mtime(to.file(), st)?;
        }
        FileType::Symlink => {
            let link = rustix::fs::readlinkat(fd, "", Vec::new())?;
            if std::fs::symlink_metadata(target).is_ok() {
                if std::fs::symlink_metadata(target)?.is_dir() {
                    fs_err::remove_dir_all(target)?;
                } else {
                    fs_err::remove_file(target)?;
                }
            }
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(link.as_bytes()), target)
                .with_context(|| format!("creating the symlink {}", target.display()))?;
        }
        other => {
            eprintln!("WARN skipping {} ({other:?})", target.display());
            return Ok(());
        }
    }
    if o.archive {
        std::os::unix::fs::lchown(target, Some(st.st_uid), Some(st.st_gid))
            .with_context(|| format!("chown {}", target.display()))?;
    }
    Ok(())
}

fn set_mtime(f: &std::fs::File, st: &Stat) -> std::io::Result<()> {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    f.set_modified(t)
}

// ---- host → container ----

fn copy_in(root: &ContainerRoot, src: &Path, dst: &str, o: &Options) -> Result<()> {
    let meta = if o.follow {
        fs_err::metadata(src)?
    } else {
        fs_err::symlink_metadata(src)?
    };
    let contents_only = src.to_string_lossy().ends_with("/.");
    let (base, rel) = root.locate(dst)?;
    let src_name = src
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_else(|| "root".into());
    // Where the copy goes: (directory fd, name in it).
    let (parent, name, into_existing_dir) = match resolve(&base, &rel, false) {
        Ok(fd) if file_type(&rustix::fs::fstat(&fd)?) == FileType::Directory => {
            (fd, src_name, true)
        }
        Ok(_) if meta.is_dir() => bail!("cannot copy a directory over the file {dst}"),
        Ok(_) | Err(rustix::io::Errno::NOENT) => {
            if dst.ends_with('/') {
                bail!("destination directory {dst} does not exist in the container");
            }
            let parent_rel = rel.parent().unwrap_or(Path::new(""));
            let fd = resolve(&base, parent_rel, false).with_context(|| {
                format!("the parent directory of {dst} does not exist in the container")
            })?;
            if file_type(&rustix::fs::fstat(&fd)?) != FileType::Directory {
                bail!("the parent of {dst} is not a directory in the container");
            }
            let name = rel
                .file_name()
                .map(|n| n.to_owned())
                .with_context(|| format!("no file name in {dst}"))?;
            (fd, name, false)
        }
        Err(e) => return Err(e).with_context(|| format!("resolving {dst} in the container")),
    };
    if meta.is_dir() && contents_only && into_existing_dir {
        for e in fs_err::read_dir(src)? {
            let e = e?;
            in_entry(&parent, &e.file_name(), &e.path(), o)?;
        }
        return Ok(());
    }
    in_entry(&parent, &name, src, o)
}

/// Copies the local `src` to `name` in the container directory `dir`.
fn in_entry(dir: &OwnedFd, name: &std::ffi::OsStr, src: &Path, o: &Options) -> Result<()> {
    let meta = fs_err::symlink_metadata(src)?;
    let meta = if o.follow && meta.file_type().is_symlink() {
        fs_err::metadata(src)?
    } else {
        meta
    };
    let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
    let existing = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    let existing_type = existing.as_ref().map(file_type);
    let ft = meta.file_type();
    // Whatever is there and is not what we make goes (never followed).
    let clear = |want: FileType| -> Result<()> {
        match existing_type {
            Some(t) if t == want && t != FileType::Symlink => Ok(()),
            Some(FileType::Directory) => {
                bail!(
                    "cannot overwrite the directory {} with a non-directory",
                    name.to_string_lossy()
                )
            }
            Some(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
            None => Ok(()),
        }
    };
    let made: OwnedFd = if ft.is_dir() {
        clear(FileType::Directory)?;
        if existing_type != Some(FileType::Directory) {
            rustix::fs::mkdirat(dir, name, mode)?;
        }
        let child = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for e in fs_err::read_dir(src)? {
            let e = e?;
            in_entry(&child, &e.file_name(), &e.path(), o)?;
        }
        rustix::fs::fchmod(
            rustix::fs::openat(
                &child,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
            mode,
        )?;
        child
    } else if ft.is_file() {
        clear(FileType::RegularFile)?;
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )?;
        let mut to = std::fs::File::from(fd);
        let mut from = fs_err::File::open(src)?;
        std::io::copy(&mut from, &mut to)?;
        to.flush()?;
        rustix::fs::fchmod(&to, mode)?;
        to.set_modified(meta.modified()?)?;
        if o.archive {
            std::os::unix::fs::fchown(&to, Some(meta.uid()), Some(meta.gid()))?;
        }
        return Ok(());
    } else if ft.is_symlink() {
        clear(FileType::Symlink)?;
        let link = fs_err::read_link(src)?;
        rustix::fs::symlinkat(&link, dir, name)?;
        if o.archive {
            rustix::fs::chownat(
                dir,
                name,
                Some(rustix::fs::Uid::from_raw_unchecked(meta.uid())),
                Some(rustix::fs::Gid::from_raw_unchecked(meta.gid())),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        return Ok(());
    } else {
        eprintln!(
            "WARN skipping {} (not a file, directory or symlink)",
            src.display()
        );
        return Ok(());
    };
    if o.archive {
        let f = rustix::fs::openat(
            &made,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        std::os::unix::fs::fchown(f.as_fd(), Some(meta.uid()), Some(meta.gid()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_paths_and_local_paths() {
        assert_eq!(split("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split("./a:b"), (None, "./a:b"));
        assert_eq!(split("/tmp/x"), (None, "/tmp/x"));
        assert_eq!(split("file"), (None, "file"));
    }

    #[test]
    fn container_paths_fold_lexically_and_stay_under_the_root() {
        assert_eq!(lexical("/a/./b/../c"), PathBuf::from("a/c"));
        assert_eq!(lexical("/../../etc"), PathBuf::from("etc"));
        assert_eq!(lexical("/"), PathBuf::new());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside").unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("dotdot")).unwrap();
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for p in ["up/etc/passwd", "dotdot/passwd", "../../etc/passwd"] {
            let f = resolve(&fd, Path::new(p), false).unwrap();
            let text = std::io::read_to_string(reopen(&f).unwrap()).unwrap();
            assert_eq!(text, "inside", "{p} resolved outside the root");
        }
    }
}
