//! `export` and `commit`: a service container's filesystem as a tar
//! archive, and a new image from the container's changes, as `docker
//! compose export` / `docker compose commit` do.
//!
//! Both read the container's overlay on the host (`rootfs/` and `upper/`
//! under its directory, see `engine::state`), never `/proc/<pid>/root`:
//! what they see is the container's own filesystem, without its volumes
//! and binds. The tree is walked with directory fds and `O_NOFOLLOW`
//! opens, so a symlink the container swaps in mid-walk is archived as a
//! symlink and never followed to the host.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::cli::lifecycle::{CommitArgs, ExportArgs};
use crate::engine::state::{self, alive, ContainerRecord, Paths, RunState, Status};
use crate::image::store::{Descriptor, ImageConfig, Store, MEDIA_LAYER_TAR};
use crate::image::Reference;
use crate::settings::ProjectArgs;

use super::project;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// The service's container: number `index`, or the first one.
fn pick(args: &ProjectArgs, service: &str, index: Option<u32>) -> Result<(Paths, ContainerRecord)> {
    let project = project::load(args, &[])?;
    let paths = Paths::from_env();
    let mut targets: Vec<ContainerRecord> = state::project_containers(&paths, &project.name)?
        .into_iter()
        .filter(|c| c.service == service && !c.oneoff)
        .collect();
    targets.sort_by_key(|c| c.number);
    let found = match index {
        Some(i) if i > 0 => targets.into_iter().find(|c| c.number == i),
        _ => targets.into_iter().next(),
    };
    match (found, index) {
        (Some(c), _) => Ok((paths, c)),
        (None, Some(i)) if i > 0 => bail!("service {service:?} has no container number {i}"),
        (None, _) => bail!("no container found for service {service:?}"),
    }
}

/// The container's directory, after checking its overlay is mounted (else
/// `rootfs/` is an empty mount point and `upper/` may be stale).
fn container_dir(paths: &Paths, c: &ContainerRecord) -> Result<PathBuf> {
    let dir = paths.container(&c.id);
    let rootfs = dir.join("rootfs");
    let (a, b) = (fs_err::metadata(&rootfs)?, fs_err::metadata(&dir)?);
    if a.dev() == b.dev() {
        bail!("the root filesystem of {} is not mounted", c.name);
    }
    Ok(dir)
}

/// `export`: the container's rootfs as a tar archive, to `-o FILE` or to
/// stdout (never a terminal).
pub fn export(args: &ProjectArgs, a: &ExportArgs) -> Result<()> {
    let (paths, c) = pick(args, &a.service, a.index)?;
    let dir = container_dir(&paths, &c)?;
    match &a.output {
        Some(path) => {
            // Written beside the target and renamed: a failed export leaves
            // no truncated archive behind.
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(parent)
                .with_context(|| format!("creating a file in {}", parent.display()))?;
            write_tree(
                &dir.join("rootfs"),
                std::io::BufWriter::new(tmp.as_file_mut()),
                false,
            )
            .with_context(|| format!("exporting {}", c.name))?;
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("output is a terminal: redirect it or use -o FILE");
            }
            write_tree(
                &dir.join("rootfs"),
                std::io::BufWriter::new(stdout.lock()),
                false,
            )
            .with_context(|| format!("exporting {}", c.name))?;
        }
    }
    Ok(())
}

/// Resumes a container paused for a commit, whatever happens.
struct Paused<'a> {
    rt: &'a berth_runtime::Runtime,
    id: &'a str,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.rt.resume(self.id) {
            eprintln!("WARN resuming {} after the commit: {e:#}", self.id);
        }
    }
}

/// `commit`: a new image made of the container's image layers and one more
/// layer holding the container's changes (its overlay upper dir, overlay
/// whiteouts turned into OCI ones). Prints the new image id.
pub fn commit(args: &ProjectArgs, a: &CommitArgs) -> Result<()> {
    let Some(name) = &a.reference else {
        bail!("berth's image store keeps named images only: give REPOSITORY[:TAG]");
    };
    let reference =
        Reference::parse(name).with_context(|| format!("invalid reference {name:?}"))?;
    let (paths, c) = pick(args, &a.service, a.index)?;
    let dir = container_dir(&paths, &c)?;
    let store = Store::open(&paths.root)?;
    let (base_manifest, base) = base_image(&store, &c)?;
    let mut config: ImageConfig = base.clone();
    for change in &a.change {
        crate::image::import::apply_change(&mut config.config, change)?;
    }

    let rt = berth_runtime::Runtime::new(paths.runtime_root());
    let run = RunState::load(&paths, &c.id);
    let guard =
        if a.pause && run.effective_status() == Status::Running && run.pid > 0 && alive(run.pid) {
            rt.pause(&c.id)
                .with_context(|| format!("pausing {} for the commit", c.name))?;
            Some(Paused { rt: &rt, id: &c.id })
        } else {
            None
        };
    let mut layer = tempfile::tempfile_in(store.root().join("tmp"))?;
    write_tree(
        &dir.join("upper"),
        std::io::BufWriter::new(&mut layer),
        true,
    )
    .with_context(|| format!("archiving the changes of {}", c.name))?;
    drop(guard);

    layer.rewind()?;
    let (digest, size) = store.put_blob(std::io::BufReader::new(layer), None)?;
    let created = crate::monitor::log::rfc3339_nanos(std::time::SystemTime::now());
    config.created = Some(created.clone());
    config.author = a.author.clone();
    config.rootfs.diff_ids.push(digest.clone());
    let mut entry = serde_json::json!({
        "created": created,
        "created_by": format!("berth commit {}", c.name),
    });
    if let Some(author) = &a.author {
        entry["author"] = author.clone().into();
    }
    if let Some(msg) = &a.message {
        entry["comment"] = msg.clone().into();
    }
    config.history.push(entry);
    let mut layers = base_manifest.layers;
    layers.push(Descriptor {
        media_type: MEDIA_LAYER_TAR.into(),
        digest,
        size,
        annotations: Default::default(),
        platform: None,
    });
    let desc = store.commit_image(&reference, &config, layers)?;
    let id = store.manifest(&desc)?.config.digest;
    println!("{id}");
    Ok(())
}

/// The manifest and config of the image the container was made from: its
/// name if that still names the same image, else the stored image whose id
/// is the container's.
fn base_image(
    store: &Store,
    c: &ContainerRecord,
) -> Result<(crate::image::store::Manifest, ImageConfig)> {
    let by_name = Reference::parse(&c.image)
        .ok()
        .and_then(|r| store.resolve(&r).ok())
        .and_then(|d| store.manifest(&d).ok());
    if let Some(m) = by_name {
        if c.image_id.is_empty() || m.config.digest == c.image_id {
            let config = store.config(&m)?;
            return Ok((m, config));
        }
    }
    for e in store.list()? {
        let Ok(m) = store.manifest(&e.manifest) else {
            continue;
        };
        if m.config.digest == c.image_id {
            let config = store.config(&m)?;
            return Ok((m, config));
        }
    }
    bail!(
        "the image of {} ({}, {}) is no longer in the store",
        c.name,
        c.image,
        c.image_id
    )
}

/// Writes the tree under `root` as a tar archive (names relative to `root`,
/// without the root itself). With `whiteouts`, `root` is an overlay upper
/// dir: a 0:0 character device becomes the OCI whiteout `.wh.NAME` and an
/// opaque directory gets a `.wh..wh..opq` entry.
fn write_tree(root: &Path, out: impl Write, whiteouts: bool) -> Result<()> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", root.display()))?;
    let mut w = TreeWriter {
        tar: tar::Builder::new(out),
        links: HashMap::new(),
        whiteouts,
    };
    w.tar.mode(tar::HeaderMode::Complete);
    w.dir(&fd, Path::new(""))?;
    w.tar.into_inner()?.flush()?;
    Ok(())
}

struct TreeWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, ino) of files with more than one link → the first name seen.
    links: HashMap<(u64, u64), PathBuf>,
    whiteouts: bool,
}

impl<W: Write> TreeWriter<W> {
    /// The entries of the directory `fd` (named `rel` in the archive).
    fn dir(&mut self, fd: &OwnedFd, rel: &Path) -> Result<()> {
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        let dup = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
        for entry in rustix::fs::Dir::new(dup)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(std::ffi::OsStr::from_bytes(name).to_owned());
        }
        names.sort();
        for name in names {
            let path = rel.join(&name);
            let st = match rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Deleted by the running container meanwhile.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
            };
            self.entry(fd, &name, &path, &st)
                .with_context(|| format!("archiving {}", path.display()))?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        parent: &OwnedFd,
        name: &std::ffi::OsStr,
        path: &Path,
        st: &Stat,
    ) -> Result<()> {
        let kind = FileType::from_raw_mode(st.st_mode);
        let mut h = tar::Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid.into());
        h.set_gid(st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let empty: &[u8] = &[];
        if kind != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                self.tar.append_link(&mut h, path, first)?;
                return Ok(());
            }
            self.links.insert(key, path.to_path_buf());
        }
        match kind {
            FileType::Directory => {
                let fd = match rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(rustix::io::Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                h.set_entry_type(tar::EntryType::Directory);
                self.tar.append_data(&mut h, path, empty)?;
                if self.whiteouts && is_opaque(&fd) {
                    self.whiteout(&path.join(OPAQUE_WHITEOUT), st)?;
                }
                self.dir(&fd, path)?;
            }
            FileType::RegularFile => {
                let fd = match rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(rustix::io::Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let size = st.st_size.max(0) as u64;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size);
                // Exactly `size` bytes even if a running container changes
                // the file meanwhile: a short file is padded with zeros.
                let data = std::fs::File::from(fd)
                    .take(size)
                    .chain(std::io::repeat(0))
                    .take(size);
                self.tar.append_data(&mut h, path, data)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())?;
                let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
                h.set_entry_type(tar::EntryType::Symlink);
                self.tar.append_link(&mut h, path, target)?;
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
                if self.whiteouts && kind == FileType::CharacterDevice && st.st_rdev == 0 {
                    let mut wh = std::ffi::OsString::from(WHITEOUT_PREFIX);
                    wh.push(name);
                    let p = path.parent().unwrap_or(Path::new("")).join(wh);
                    return self.whiteout(&p, st);
                }
                h.set_entry_type(if kind == FileType::CharacterDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(major)?;
                h.set_device_minor(minor)?;
                self.tar.append_data(&mut h, path, empty)?;
            }
            FileType::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                self.tar.append_data(&mut h, path, empty)?;
            }
            // Sockets are not archived (as tar and Docker do).
            _ => {}
        }
        Ok(())
    }

    /// An empty regular file named `path` (an OCI whiteout).
    fn whiteout(&mut self, path: &Path, st: &Stat) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        self.tar.append_data(&mut h, path, &[][..])?;
        Ok(())
    }
}

/// Whether an upper-dir directory hides the lower layers' content
/// (`trusted.overlay.opaque=y`).
fn is_opaque(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(fd.as_fd(), "trusted.overlay.opaque", &mut buf),
        Ok(n) if &buf[..n] == b"y"
    )
}
