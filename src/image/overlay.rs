//! Stacking an image's unpacked layers with overlayfs.
//!
//! The classic `mount(2)` call passes every option in one string, which the
//! kernel copies into a single page (`copy_mount_options`): with absolute
//! layer paths of ~100 bytes, about 40 layers fill it. Linux 6.8 added the
//! `lowerdir+` key to overlayfs's side of the new mount API, which takes one
//! layer per `fsconfig(2)` call and has no such limit, so the order here is:
//!
//! 1. `fsopen("overlay")`, one `lowerdir+` per layer (top layer first, as in
//!    the colon-separated list), `upperdir`, `workdir`, `FSCONFIG_CMD_CREATE`,
//!    `fsmount`, `move_mount` onto the target;
//! 2. if the kernel has no new mount API or no `lowerdir+`, `mount(2)` with a
//!    single option string when it fits in a page, with short relative
//!    layer names when the absolute paths do not (about 900 layers);
//! 3. otherwise a clear error naming the layer count and the limit.
//!
//! A string value of `fsconfig(2)` is limited to 255 bytes
//! (`strndup_user(value, 256)` in `fs/fsopen.c`); a longer layer path is
//! passed as an open directory fd instead (`lowerdir+` accepts fds since
//! Linux 6.13, `fsparam_file_or_string`). See
//! Documentation/filesystems/overlayfs.rst, "Specifying layers".
//!
//! This module only mounts; unmounting is `umount2(target)` as for any mount.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_fd, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
};

/// The most lower layers overlayfs stacks (`OVL_MAX_STACK`, fs/overlayfs).
pub const MAX_LAYERS: usize = 500;

/// The longest string `fsconfig(FSCONFIG_SET_STRING)` accepts, without NUL.
const FSCONFIG_STRING_MAX: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay on {target}: no lower layers")]
    NoLayers { target: PathBuf },
    #[error("overlay on {target}: {layers} layers, but overlayfs stacks at most {MAX_LAYERS}")]
    OverStack { target: PathBuf, layers: usize },
    #[error("overlay on {target}: {step}: {errno}{}", kernel_log(.log))]
    MountApi {
        target: PathBuf,
        step: String,
        errno: Errno,
        /// What overlayfs wrote to the fs context's message log.
        log: Vec<String>,
    },
    #[error("overlay on {target}: mount(2): {errno}")]
    Mount { target: PathBuf, errno: Errno },
    #[error("short layer names in {dir}")]
    Links {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "overlay on {target}: {layers} layers need {bytes} bytes of mount options even with \
         short names, more than the kernel's one-page limit ({limit}); stacking this many \
         layers needs Linux 6.8 or later (overlayfs `lowerdir+`)"
    )]
    TooManyLayers {
        target: PathBuf,
        layers: usize,
        bytes: usize,
        limit: usize,
    },
    #[error("overlay on {target}: path {path} cannot be given to mount(2) (it has ':', ',', '\\\\' or NUL)")]
    UnsafePath { target: PathBuf, path: PathBuf },
}

fn kernel_log(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", log.join("; "))
    }
}

/// Which kernel interface made the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayMethod {
    /// `fsopen` + `lowerdir+` per layer (Linux 6.8+).
    LowerdirPlus,
    /// `mount(2)` with one option string.
    MountData,
}

/// The writable part of an overlay: `upperdir` and `workdir` (same
/// filesystem, `workdir` empty).
#[derive(Debug, Clone, Copy)]
pub struct Upper<'a> {
    pub upper: &'a Path,
    pub work: &'a Path,
}

/// Mounts overlayfs on `target` over `lowers` (top layer first), writable
/// when `upper` is given (read-only otherwise, which needs two lowers or
/// more). Returns how it was done.
pub fn mount(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<OverlayMethod, OverlayError> {
    if lowers.is_empty() {
        return Err(OverlayError::NoLayers {
            target: target.into(),
        });
    }
    if lowers.len() > MAX_LAYERS {
        return Err(OverlayError::OverStack {
            target: target.into(),
            layers: lowers.len(),
        });
    }
    match mount_with_api(lowers, upper, target)? {
        Some(method) => Ok(method),
        None => mount_with_data(lowers, upper, target).map(|()| OverlayMethod::MountData),
    }
}

/// The new mount API; `Ok(None)` when this kernel lacks it or `lowerdir+`.
fn mount_with_api(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<Option<OverlayMethod>, OverlayError> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => {
            tracing::debug!("no fsopen(2); mounting overlay with mount(2)");
            return Ok(None);
        }
        Err(errno) => {
            return Err(OverlayError::MountApi {
                target: target.into(),
                step: "fsopen(overlay)".into(),
                errno,
                log: Vec::new(),
            })
        }
    };
    let fail = |fs: &OwnedFd, step: String, errno: Errno| OverlayError::MountApi {
        target: target.into(),
        step,
        errno,
        log: read_log(fs),
    };
    // A path too long for a string value goes as an open directory.
    let set_path = |fs: &OwnedFd, key: &str, path: &Path| -> Result<(), OverlayError> {
        if path.as_os_str().len() <= FSCONFIG_STRING_MAX {
            return fsconfig_set_string(fs, key, path.as_os_str())
                .map_err(|e| fail(fs, format!("{key} {}", path.display()), e));
        }
        let dir = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| fail(fs, format!("opening {}", path.display()), e))?;
        fsconfig_set_fd(fs, key, dir.as_fd()).map_err(|e| {
            fail(
                fs,
                format!("{key} {} (as a file descriptor)", path.display()),
                e,
            )
        })
    };
    for (i, layer) in lowers.iter().enumerate() {
        if i == 0 && layer.as_os_str().len() <= FSCONFIG_STRING_MAX {
            match fsconfig_set_string(&fs, "lowerdir+", layer.as_os_str()) {
                Ok(()) => continue,
                // Refused as an unknown key: a kernel before 6.8.
                Err(Errno::INVAL) if !knows_lowerdir_plus(&read_log(&fs)) => {
                    tracing::debug!("overlayfs has no lowerdir+; mounting with mount(2)");
                    return Ok(None);
                }
                Err(e) => return Err(fail(&fs, format!("lowerdir+ {}", layer.display()), e)),
            }
        }
        set_path(&fs, "lowerdir+", layer)?;
    }
    if let Some(u) = upper {
        set_path(&fs, "upperdir", u.upper)?;
        set_path(&fs, "workdir", u.work)?;
    }
    if let Err(errno) = fsconfig_create(&fs) {
        let err = fail(&fs, "creating the superblock".into(), errno);
        // Before overlayfs spoke the new API (Linux 6.5) every key was
        // accepted into a legacy option string and refused only here.
        if errno == Errno::INVAL && mount_with_data(lowers, upper, target).is_ok() {
            tracing::debug!(error = %err, "overlay mounted with mount(2) after fsconfig refused");
            return Ok(Some(OverlayMethod::MountData));
        }
        return Err(err);
    }
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| fail(&fs, "fsmount".into(), e))?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail(&fs, format!("move_mount to {}", target.display()), e))?;
    Ok(Some(OverlayMethod::LowerdirPlus))
}

/// Whether the context's log shows that `lowerdir+` was understood and
/// refused for another reason (a missing directory, say): an unknown key
/// logs "Unknown parameter".
fn knows_lowerdir_plus(log: &[String]) -> bool {
    !log.iter().any(|l| l.contains("Unknown parameter"))
}

/// Drains the fs context's message log (`e overlayfs: …` lines).
fn read_log(fs: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // The log holds at most 8 messages; each read returns one, ENODATA when
    // empty.
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => out.push(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
            _ => break,
        }
    }
    out
}

/// `mount(2)` with `lowerdir=a:b,upperdir=…,workdir=…`. When the absolute
/// paths do not fit in a page, the layers are named by short relative
/// symlinks (`0`, `1`, …) in a scratch directory next to the target, and
/// the mount is made from a thread whose working directory is that
/// directory (`unshare(CLONE_FS)` gives the thread its own, so the rest of
/// the process is not affected): about four bytes per layer instead of a
/// hundred, as Docker's overlay2 driver does with its `l/` links. The
/// kernel resolves the names at mount time; the links are removed after.
fn mount_with_data(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<(), OverlayError> {
    let mut tail = Vec::new();
    if let Some(u) = upper {
        for p in [u.upper, u.work] {
            check_option_path(p, target)?;
        }
        tail.extend_from_slice(b",upperdir=");
        tail.extend_from_slice(u.upper.as_os_str().as_bytes());
        tail.extend_from_slice(b",workdir=");
        tail.extend_from_slice(u.work.as_os_str().as_bytes());
    }
    let limit = rustix::param::page_size();
    let options = |names: &mut dyn Iterator<Item = &[u8]>| {
        let mut data = b"lowerdir=".to_vec();
        for (i, n) in names.enumerate() {
            if i > 0 {
                data.push(b':');
            }
            data.extend_from_slice(n);
        }
        data.extend_from_slice(&tail);
        data
    };
    let absolute = options(&mut lowers.iter().map(|l| l.as_os_str().as_bytes()));
    // The kernel copies one page, NUL included.
    if absolute.len() < limit {
        for l in lowers {
            check_option_path(l, target)?;
        }
        return mount_data(&absolute, target);
    }
    let names: Vec<String> = (0..lowers.len()).map(|i| i.to_string()).collect();
    let short = options(&mut names.iter().map(|n| n.as_bytes()));
    if short.len() >= limit {
        return Err(OverlayError::TooManyLayers {
            target: target.into(),
            layers: lowers.len(),
            bytes: short.len() + 1,
            limit,
        });
    }
    let parent = target.parent().unwrap_or(Path::new("/"));
    let links = tempfile::Builder::new()
        .prefix(".lowers-")
        .tempdir_in(parent)
        .map_err(|source| OverlayError::Links {
            dir: parent.into(),
            source,
        })?;
    for (name, layer) in names.iter().zip(lowers) {
        let link = links.path().join(name);
        std::os::unix::fs::symlink(layer, &link)
            .map_err(|source| OverlayError::Links { dir: link, source })?;
    }
    let dir = links.path().to_path_buf();
    let target_abs = std::path::absolute(target).map_err(|source| OverlayError::Links {
        dir: target.into(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<(), OverlayError> {
            let fail = |source: nix::Error| OverlayError::Links {
                dir: dir.clone(),
                source: source.into(),
            };
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(fail)?;
            nix::unistd::chdir(&dir).map_err(fail)?;
            mount_data(&short, &target_abs)
        })
        .join()
        .expect("the mount thread does not panic")
    })
}

fn check_option_path(p: &Path, target: &Path) -> Result<(), OverlayError> {
    if p.as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b':' | b',' | b'\\' | 0))
    {
        return Err(OverlayError::UnsafePath {
            target: target.into(),
            path: p.to_path_buf(),
        });
    }
    Ok(())
}

fn mount_data(data: &[u8], target: &Path) -> Result<(), OverlayError> {
    let data = CString::new(data).expect("NUL bytes were refused before");
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|errno| OverlayError::Mount {
        target: target.into(),
        errno,
    })
}

/// Mounts with `mount(2)` only, as kernels before 6.8 must: for tests of
/// the fallback and its limit on any kernel.
pub fn mount_legacy(
    lowers: &[PathBuf],
    upper: Option<Upper<'_>>,
    target: &Path,
) -> Result<(), OverlayError> {
    if lowers.is_empty() {
        return Err(OverlayError::NoLayers {
            target: target.into(),
        });
    }
    if lowers.len() > MAX_LAYERS {
        return Err(OverlayError::OverStack {
            target: target.into(),
            layers: lowers.len(),
        });
    }
    mount_with_data(lowers, upper, target)
}
