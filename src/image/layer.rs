//! Applies one layer tarball (gzip, zstd or plain) to a directory, treating
//! every entry as hostile.
//!
//! Paths are cleaned lexically against `/` (so `../../etc` means `/etc` of
//! the layer, as Docker does), and every parent directory is then opened with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink planted by this or an earlier
//! entry resolves inside the layer directory and never outside. The final
//! component is always created with `O_EXCL`/`O_NOFOLLOW`-style `*at` calls,
//! so no entry writes through a link. Hardlink sources are resolved the same
//! way and linked without following.
//!
//! Two modes: [`Mode::Overlay`] keeps a layer's own diff in its own directory
//! (whiteouts `.wh.x` become 0/0 character devices, `.wh..wh..opq` becomes
//! `trusted.overlay.opaque=y`) for overlayfs lower dirs; [`Mode::Flatten`]
//! applies whiteouts by deleting, to build a single rootfs (the fallback when
//! an image has more layers than one overlay mount can stack).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, OFlags, ResolveFlags, Timespec, Timestamps};
use tracing::warn;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("reading layer archive")]
    Read(#[source] std::io::Error),
    #[error("opening layer directory {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("applying layer entry {entry:?}: {op}")]
    Entry {
        entry: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("layer entry {entry:?} is not allowed: {reason}")]
    Refused { entry: String, reason: &'static str },
}

/// How whiteouts are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One directory per layer, overlayfs whiteouts.
    Overlay,
    /// All layers applied into one directory; whiteouts delete.
    Flatten,
}

#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    pub mode: Mode,
    /// Create block/character devices (root on the host, not in a user ns).
    pub allow_devices: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            mode: Mode::Overlay,
            allow_devices: true,
        }
    }
}

/// What an application did, for progress and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
    pub skipped_devices: u64,
    /// Directories the archive needed but did not list (created 0755
    /// root:root), in creation order. In [`Mode::Overlay`] they stand in
    /// for the lower layers' directories: see [`inherit_dir_attrs`].
    pub implicit_dirs: Vec<PathBuf>,
    /// In [`Mode::Overlay`], hardlinks (target, link) whose target is not in
    /// this layer but in a lower one: see [`resolve_lower_links`].
    pub lower_links: Vec<(PathBuf, PathBuf)>,
}

/// Wraps `reader` in the right decompressor, chosen by magic bytes.
pub fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>, LayerError> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf.fill_buf().map_err(LayerError::Read)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let dec = ruzstd::decoding::StreamingDecoder::new(buf).map_err(|e| {
            LayerError::Read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ))
        })?;
        Ok(Box::new(dec))
    } else {
        Ok(Box::new(buf))
    }
}

/// Applies the (possibly compressed) tar stream to `dest`, which must exist.
pub fn apply(reader: impl Read, dest: &Path, opts: ApplyOptions) -> Result<ApplyStats, LayerError> {
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rfs::Mode::empty(),
    )
    .map_err(|source| LayerError::Root {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(decompress(reader)?);
    let mut stats = ApplyStats::default();
    let mut dir_times: Vec<(PathBuf, Timestamps)> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let created = std::cell::RefCell::new(Vec::new());
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = clean(Path::new(&raw)) else {
            // The root itself: nothing to create.
            continue;
        };
        stats.entries += 1;
        let ctx = Ctx {
            root: &root,
            entry: &raw,
            created: &created,
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_path = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if path
            .components()
            .rev()
            .skip(1)
            .any(|c| c.as_os_str().to_string_lossy().starts_with(WHITEOUT_PREFIX))
        {
            return Err(LayerError::Refused {
                entry: raw,
                reason: "whiteout name used as a directory",
            });
        }
        let parent = ctx.ensure_dir(&parent_path)?;
        if name == OPAQUE {
            stats.whiteouts += 1;
            match opts.mode {
                Mode::Overlay => {
                    let dir = ctx.open_in_root(&parent_path, OFlags::RDONLY | OFlags::DIRECTORY)?;
                    rfs::fsetxattr(&dir, OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())
                        .map_err(|e| ctx.err("set opaque xattr", e))?;
                }
                Mode::Flatten => ctx.clear_dir_except(&parent, &parent_path, &seen)?,
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            stats.whiteouts += 1;
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(LayerError::Refused {
                    entry: raw,
                    reason: "malformed whiteout",
                });
            }
            ctx.remove(&parent, hidden)?;
            if opts.mode == Mode::Overlay {
                rfs::mknodat(
                    &parent,
                    hidden,
                    FileType::CharacterDevice,
                    rfs::Mode::empty(),
                    0,
                )
                .map_err(|e| ctx.err("create whiteout", e))?;
            }
            continue;
        }
        let header = entry.header().clone();
        let mode = rfs::Mode::from_bits_truncate(header.mode().map_err(LayerError::Read)? & 0o7777);
        let uid = id_field(header.uid(), &header.as_old().uid)? as u32;
        let gid = id_field(header.gid(), &header.as_old().gid)? as u32;
        let mtime = header.mtime().unwrap_or(0) as i64;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
        };
        let xattrs = read_xattrs(&mut entry).map_err(LayerError::Read)?;
        let kind = header.entry_type();
        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        match kind {
            tar::EntryType::Directory => {
                match rfs::statat(&parent, name.as_str(), nofollow) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        ctx.remove(&parent, &name)?;
                        rfs::mkdirat(&parent, name.as_str(), mode)
                            .map_err(|e| ctx.err("mkdir", e))?;
                    }
                    Err(_) => rfs::mkdirat(&parent, name.as_str(), mode)
                        .map_err(|e| ctx.err("mkdir", e))?,
                }
                let fd = rfs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    rfs::Mode::empty(),
                )
                .map_err(|e| ctx.err("open dir", e))?;
                ctx.finish_fd(&fd, uid, gid, mode, &xattrs, None)?;
                ctx.created.borrow_mut().retain(|p| *p != path);
                dir_times.push((path.clone(), times));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                ctx.remove(&parent, &name)?;
                let fd = rfs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    rfs::Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| ctx.err("create file", e))?;
                let mut file = std::fs::File::from(fd);
                stats.bytes +=
                    std::io::copy(&mut entry, &mut file).map_err(|source| LayerError::Entry {
                        entry: raw.clone(),
                        op: "write",
                        source,
                    })?;
                let fd = OwnedFd::from(file);
                ctx.finish_fd(&fd, uid, gid, mode, &xattrs, Some(&times))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                ctx.remove(&parent, &name)?;
                rfs::symlinkat(target.as_str(), &parent, name.as_str())
                    .map_err(|e| ctx.err("symlink", e))?;
                rfs::chownat(
                    &parent,
                    name.as_str(),
                    Some(uid_of(uid)),
                    Some(gid_of(gid)),
                    nofollow,
                )
                .map_err(|e| ctx.err("lchown", e))?;
                for (k, v) in &xattrs {
                    let p = ctx.proc_path(&parent, &name);
                    rfs::lsetxattr(&p, k.as_str(), v, rfs::XattrFlags::empty())
                        .map_err(|e| ctx.err("lsetxattr", e))?;
                }
                rfs::utimensat(&parent, name.as_str(), &times, nofollow)
                    .map_err(|e| ctx.err("utimes", e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let Some(target) = clean(Path::new(&target)) else {
                    return Err(LayerError::Refused {
                        entry: raw,
                        reason: "hardlink to the root",
                    });
                };
                let src_name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let in_this_layer = ctx
                    .open_in_root(
                        target.parent().unwrap_or(Path::new("")),
                        OFlags::PATH | OFlags::DIRECTORY,
                    )
                    .ok()
                    .filter(|d| {
                        rfs::statat(d, src_name.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok()
                    });
                let Some(src_parent) = in_this_layer else {
                    if opts.mode == Mode::Overlay {
                        // The target lives in a lower layer: linked once the
                        // lowers are in place, as overlayfs would copy it up.
                        ctx.remove(&parent, &name)?;
                        stats.lower_links.push((target, path.clone()));
                        continue;
                    }
                    return Err(ctx.err("hardlink", rustix::io::Errno::NOENT));
                };
                if src_parent.as_raw_fd() == parent.as_raw_fd() && src_name == name {
                    continue;
                }
                ctx.remove(&parent, &name)?;
                rfs::linkat(
                    &src_parent,
                    src_name.as_str(),
                    &parent,
                    name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| ctx.err("hardlink", e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && !opts.allow_devices {
                    warn!(entry = %raw, "skipping device node: devices are not allowed here");
                    stats.skipped_devices += 1;
                    continue;
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                ctx.remove(&parent, &name)?;
                rfs::mknodat(&parent, name.as_str(), ft, mode, rfs::makedev(major, minor))
                    .map_err(|e| ctx.err("mknod", e))?;
                rfs::chownat(
                    &parent,
                    name.as_str(),
                    Some(uid_of(uid)),
                    Some(gid_of(gid)),
                    nofollow,
                )
                .map_err(|e| ctx.err("chown", e))?;
                rfs::chmodat(&parent, name.as_str(), mode, AtFlags::empty())
                    .map_err(|e| ctx.err("chmod", e))?;
                rfs::utimensat(&parent, name.as_str(), &times, nofollow)
                    .map_err(|e| ctx.err("utimes", e))?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            _ => {
                return Err(LayerError::Refused {
                    entry: raw,
                    reason: "unsupported tar entry type",
                });
            }
        }
        seen.insert(path);
    }
    // Directory times last: creating children bumps them.
    let ctx = Ctx {
        root: &root,
        entry: "",
        created: &created,
    };
    for (path, times) in dir_times.iter().rev() {
        if let Ok(fd) = ctx.open_in_root(path, OFlags::PATH | OFlags::DIRECTORY) {
            let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let _ = rfs::utimensat(rfs::CWD, p.as_str(), times, AtFlags::empty());
        }
    }
    stats.implicit_dirs = created.into_inner();
    Ok(stats)
}

/// Opens a layer directory as the root every lookup resolves in.
fn open_layer_root(p: &Path) -> Result<OwnedFd, LayerError> {
    rfs::open(
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rfs::Mode::empty(),
    )
    .map_err(|source| LayerError::Root {
        path: p.to_path_buf(),
        source,
    })
}

/// Makes the hardlinks [`apply`] deferred (`links`: target, link — both
/// relative to `dest`) whose target is a file of a lower layer (`lowers`,
/// top first): the target is copied up into `dest` with its mode, owner and
/// times, and the link made to it, as linking through the merged overlayfs
/// view would have left the layer (what containerd does). A target that is
/// missing, whited out or not a regular file is an error. Every path
/// resolves inside its layer.
///
/// Returns the directories it had to make (for [`inherit_dir_attrs`]).
pub fn resolve_lower_links(
    dest: &Path,
    links: &[(PathBuf, PathBuf)],
    lowers: &[PathBuf],
) -> Result<Vec<PathBuf>, LayerError> {
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let dest_root = open_layer_root(dest)?;
    let lower_roots = lowers
        .iter()
        .map(|l| open_layer_root(l))
        .collect::<Result<Vec<_>, _>>()?;
    let created = std::cell::RefCell::new(Vec::new());
    for (target, link) in links {
        let entry = link.display().to_string();
        let ctx = Ctx {
            root: &dest_root,
            entry: &entry,
            created: &created,
        };
        let name_of = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let (t_name, t_parent) = (name_of(target), target.parent().unwrap_or(Path::new("")));
        let (l_name, l_parent) = (name_of(link), link.parent().unwrap_or(Path::new("")));
        let dest_t_parent = ctx.ensure_dir(t_parent)?;
        if rfs::statat(&dest_t_parent, t_name.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_err() {
            // Find the target in the nearest lower layer that has the name.
            let mut source = None;
            for lower in &lower_roots {
                let p = if t_parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    t_parent
                };
                let Ok(dir) = rfs::openat2(
                    lower,
                    p,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    rfs::Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) else {
                    continue;
                };
                match rfs::statat(&dir, t_name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                        source = Some((dir, st));
                        break;
                    }
                    // A whiteout, a directory, a link: not a linkable file.
                    Ok(_) => break,
                    Err(_) => continue,
                }
            }
            let Some((dir, st)) = source else {
                return Err(LayerError::Refused {
                    entry,
                    reason: "hardlink to a file that no layer has",
                });
            };
            let src = rfs::openat(
                &dir,
                t_name.as_str(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rfs::Mode::empty(),
            )
            .map_err(|e| ctx.err("open lower hardlink target", e))?;
            let dst = rfs::openat(
                &dest_t_parent,
                t_name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rfs::Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| ctx.err("copy up hardlink target", e))?;
            let mut from = std::fs::File::from(src);
            let mut to = std::fs::File::from(dst);
            std::io::copy(&mut from, &mut to).map_err(LayerError::Read)?;
            rfs::fchown(&to, Some(uid_of(st.st_uid)), Some(gid_of(st.st_gid)))
                .map_err(|e| ctx.err("lchown", e))?;
            rfs::fchmod(&to, rfs::Mode::from_bits_truncate(st.st_mode & 0o7777))
                .map_err(|e| ctx.err("chmod", e))?;
            let times = Timestamps {
                last_access: Timespec {
                    tv_sec: st.st_atime as _,
                    tv_nsec: st.st_atime_nsec as _,
                },
                last_modification: Timespec {
                    tv_sec: st.st_mtime as _,
                    tv_nsec: st.st_mtime_nsec as _,
                },
            };
            rfs::futimens(&to, &times).map_err(|e| ctx.err("utimes", e))?;
        }
        let dest_l_parent = ctx.ensure_dir(l_parent)?;
        ctx.remove(&dest_l_parent, &l_name)?;
        rfs::linkat(
            &dest_t_parent,
            t_name.as_str(),
            &dest_l_parent,
            l_name.as_str(),
            AtFlags::empty(),
        )
        .map_err(|e| ctx.err("hardlink", e))?;
    }
    Ok(created.into_inner())
}

/// Gives each directory in `dirs` (relative to `dest`, made by [`apply`]
/// because the layer did not list it) the mode, owner and times of the same
/// directory in the nearest lower layer (`lowers`, top first), as applying
/// the layer onto the merged lower view would have left it (what umoci and
/// containerd do). A whiteout or non-directory met first ends the search:
/// the directory is then new and keeps 0755 root:root. Every lookup resolves
/// inside its layer (`RESOLVE_IN_ROOT`), never through a link out of it.
pub fn inherit_dir_attrs(
    dest: &Path,
    dirs: &[PathBuf],
    lowers: &[PathBuf],
) -> Result<(), LayerError> {
    if dirs.is_empty() || lowers.is_empty() {
        return Ok(());
    }
    let dest_root = open_layer_root(dest)?;
    let lower_roots = lowers
        .iter()
        .map(|l| open_layer_root(l))
        .collect::<Result<Vec<_>, _>>()?;
    for rel in dirs {
        let (Some(name), parent) = (rel.file_name(), rel.parent().unwrap_or(Path::new(""))) else {
            continue;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let mut found = None;
        for lower in &lower_roots {
            let Ok(dir) = rfs::openat2(
                lower,
                parent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                rfs::Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) else {
                continue;
            };
            match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        found = Some(st);
                    }
                    break;
                }
                Err(_) => continue,
            }
        }
        let Some(st) = found else { continue };
        let err = |op, e: rustix::io::Errno| LayerError::Entry {
            entry: rel.display().to_string(),
            op,
            source: e.into(),
        };
        let fd = rfs::openat2(
            &dest_root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            rfs::Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| err("open implicit dir", e))?;
        rfs::fchown(&fd, Some(uid_of(st.st_uid)), Some(gid_of(st.st_gid)))
            .map_err(|e| err("chown", e))?;
        rfs::fchmod(&fd, rfs::Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(|e| err("chmod", e))?;
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: st.st_atime,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        rfs::futimens(&fd, &times).map_err(|e| err("utimes", e))?;
    }
    Ok(())
}

/// Cleans an archive path against `/`: drops `.`, `..` above the root and
/// leading slashes. `None` for the root itself.
pub fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    }
}

fn uid_of(raw: u32) -> rfs::Uid {
    rfs::Uid::from_raw(raw)
}

fn gid_of(raw: u32) -> rfs::Gid {
    rfs::Gid::from_raw(raw)
}

/// PAX `SCHILY.xattr.*` records, minus `trusted.overlay.*`, which only berth
/// itself may set (an archive could otherwise forge opaque dirs or redirects).
fn read_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with("trusted.overlay.") {
                    continue;
                }
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

struct Ctx<'a> {
    root: &'a OwnedFd,
    entry: &'a str,
    /// Parent directories made because the archive did not list them.
    created: &'a std::cell::RefCell<Vec<PathBuf>>,
}

impl Ctx<'_> {
    fn err(&self, op: &'static str, e: rustix::io::Errno) -> LayerError {
        LayerError::Entry {
            entry: self.entry.to_string(),
            op,
            source: e.into(),
        }
    }

    fn open_in_root(&self, path: &Path, flags: OFlags) -> Result<OwnedFd, LayerError> {
        let p = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        rfs::openat2(
            self.root,
            p,
            flags | OFlags::CLOEXEC,
            rfs::Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| self.err("resolve in root", e))
    }

    /// Opens `path` (inside the root) as a directory, creating missing
    /// components with mode 0755 as tar implementations do.
    fn ensure_dir(&self, path: &Path) -> Result<OwnedFd, LayerError> {
        match self.open_in_root(path, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(LayerError::Entry { ref source, .. })
                if source.raw_os_error() == Some(libc_enoent()) => {}
            Err(e) => return Err(e),
        }
        let mut cur = PathBuf::new();
        let mut fd = self.open_in_root(&cur, OFlags::PATH | OFlags::DIRECTORY)?;
        for c in path.components() {
            let name = c.as_os_str();
            cur.push(name);
            match self.open_in_root(&cur, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(next) => fd = next,
                Err(_) => {
                    // A non-directory in the way is replaced, as Docker does.
                    let n = name.to_string_lossy();
                    if rfs::statat(&fd, n.as_ref(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                        self.remove(&fd, &n)?;
                    }
                    rfs::mkdirat(&fd, n.as_ref(), rfs::Mode::from_bits_truncate(0o755))
                        .map_err(|e| self.err("mkdir parent", e))?;
                    self.created.borrow_mut().push(cur.clone());
                    fd = self.open_in_root(&cur, OFlags::PATH | OFlags::DIRECTORY)?;
                }
            }
        }
        Ok(fd)
    }

    /// `/proc/self/fd/N/name`: lets path-only syscalls act relative to a
    /// verified directory fd without following a link in `name`.
    fn proc_path(&self, dir: &OwnedFd, name: &str) -> String {
        format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), name)
    }

    /// Removes `name` in `dir` if present; directories recursively. std's
    /// `remove_dir_all` does not follow symlinks (CVE-2022-21658 fix).
    fn remove(&self, dir: &OwnedFd, name: &str) -> Result<(), LayerError> {
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.err("stat", e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            std::fs::remove_dir_all(self.proc_path(dir, name)).map_err(|source| LayerError::Entry {
                entry: self.entry.to_string(),
                op: "remove dir",
                source,
            })
        } else {
            rfs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| self.err("unlink", e))
        }
    }

    fn clear_dir_except(
        &self,
        dir: &OwnedFd,
        dir_path: &Path,
        keep: &HashSet<PathBuf>,
    ) -> Result<(), LayerError> {
        let listing = self.open_in_root(dir_path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut names = Vec::new();
        let mut iter = rfs::Dir::read_from(&listing).map_err(|e| self.err("read dir", e))?;
        for ent in iter.by_ref() {
            let ent = ent.map_err(|e| self.err("read dir", e))?;
            let n = ent.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." && !keep.contains(&dir_path.join(&n)) {
                names.push(n);
            }
        }
        for n in names {
            self.remove(dir, &n)?;
        }
        Ok(())
    }

    fn finish_fd(
        &self,
        fd: &OwnedFd,
        uid: u32,
        gid: u32,
        mode: rfs::Mode,
        xattrs: &[(String, Vec<u8>)],
        times: Option<&Timestamps>,
    ) -> Result<(), LayerError> {
        rfs::fchown(fd.as_fd(), Some(uid_of(uid)), Some(gid_of(gid)))
            .map_err(|e| self.err("chown", e))?;
        // chmod after chown: chown clears setuid/setgid bits.
        rfs::fchmod(fd.as_fd(), mode).map_err(|e| self.err("chmod", e))?;
        for (k, v) in xattrs {
            rfs::fsetxattr(fd.as_fd(), k.as_str(), v, rfs::XattrFlags::empty())
                .map_err(|e| self.err("setxattr", e))?;
        }
        if let Some(t) = times {
            rfs::futimens(fd.as_fd(), t).map_err(|e| self.err("utimes", e))?;
        }
        Ok(())
    }
}

fn libc_enoent() -> i32 {
    rustix::io::Errno::NOENT.raw_os_error()
}

/// A uid/gid field: an all-NUL or all-space field means 0, as Go's
/// `archive/tar` (and so Docker) reads it; anything else unreadable is an
/// error.
fn id_field(parsed: std::io::Result<u64>, raw: &[u8]) -> Result<u64, LayerError> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        Err(e) => Err(LayerError::Read(e)),
    }
}
