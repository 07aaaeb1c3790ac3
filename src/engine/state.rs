//! berth's containers on disk.
//!
//! Layout:
//!
//! ```text
//! $BERTH_ROOT/containers/<id>/
//!   container.json      ContainerRecord: what the engine decided (name,
//!                       labels, image, restart policy, healthcheck, …);
//!                       written once at create, replaced atomically
//!   state.json          RunState: what the monitor observed (status, pid,
//!                       exit code, health, restarts); written by the
//!                       monitor only, temp + rename
//!   config.json         the OCI runtime spec (the bundle is this dir)
//!   rootfs/             overlayfs mount point (lower: image layers)
//!   upper/ work/        overlayfs upper and work dirs
//!   <id>-json.log       the container's output (Docker's json-file)
//!   hosts hostname resolv.conf   bind-mounted into the container
//!   secrets/<name> configs/<name>  the container's own copies of its
//!                       secrets and configs (owner and mode as asked),
//!                       bound read-only
//!   image-volumes/<n>/  read-only overlay mounts of the images of its
//!                       `type: image` volumes (lower: the image's layers)
//!   netns-shared        (empty) another container joined its network
//!                       namespace (`network_mode: service:…`/`container:…`):
//!                       its veths are deleted at removal, not left to die
//!                       with the namespace, which the other one may hold
//! $BERTH_ROOT/volumes/<name>/_data   named volumes, and anonymous ones
//!                                     (64 hex digits, held by the
//!                                     container that lists them)
//! $BERTH_ROOT/volumes/<name>/anonymous.json   an anonymous volume's
//!                                     project, service and mount point
//! $BERTH_ROOT/projects/<name>.lock    the per-project lock
//! $BERTH_RUN/runtime/                 the OCI runtime's state
//! $BERTH_ROOT/networks/, $BERTH_RUN/networks/   berth-network's state
//! $BERTH_RUN/networks/netns/<id>      the container's network namespace
//! $BERTH_RUN/dns/                     the DNS server's table, pid and locks
//! $BERTH_RUN/cache/load/<digest>.json  loaded projects, reused while their
//!                                     files and environment are unchanged
//!                                     (`model::cache`; root's only)
//! $BERTH_RUN/monitors/<id>.pid        the monitor's pid, as the target of a
//!                                     symbolic link (one readlink, where a
//!                                     file costs an open, reads and a
//!                                     close); left behind by a monitor that
//!                                     was killed, which is how the next
//!                                     command finds its container
//!                                     (`monitor::adopt`)
//! $BERTH_RUN/containers/<id>/
//!   stdout stderr       FIFOs: the container's output. The container holds
//!                       them O_RDWR, so a write never meets a missing
//!                       reader (no SIGPIPE when the monitor dies); its
//!                       output waits in the pipe until a monitor drains it
//!   stdin               FIFO: the stdin of a `stdin_open` container, which
//!                       holds it O_RDWR (open, silent, never at EOF)
//!   (the directory itself is flock'd by the container's monitor for its
//!   whole life: never two monitors for one container)
//!   stop                a stop's grace period in ms (`-t`), written before
//!                       the monitor gets its SIGTERM
//! ```
//!
//! Readers (`ps`, `logs`) take no lock: every file they read is replaced
//! whole by rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::naming;

/// Where berth keeps its state, from `BERTH_ROOT` / `BERTH_RUN`.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(d))
        };
        Paths {
            root: var("BERTH_ROOT", "/var/lib/berth"),
            run: var("BERTH_RUN", "/run/berth"),
        }
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volumes().join(name).join("_data")
    }
    pub fn runtime_root(&self) -> PathBuf {
        self.run.join("runtime")
    }
    /// A symbolic link whose target is the pid (one `readlink` reads it).
    pub fn monitor_pid(&self, id: &str) -> PathBuf {
        self.run.join("monitors").join(format!("{id}.pid"))
    }
    pub fn monitors(&self) -> PathBuf {
        self.run.join("monitors")
    }
    /// What a container needs while it runs and no longer after a reboot
    /// (its output FIFOs, its monitor's lock).
    pub fn container_run(&self, id: &str) -> PathBuf {
        self.run.join("containers").join(id)
    }

    /// The grace period (ms) of a stop asked for with `-t`, for the
    /// monitor to read when its SIGTERM arrives.
    pub fn monitor_stop(&self, id: &str) -> PathBuf {
        self.container_run(id).join("stop")
    }
    pub fn log(&self, id: &str) -> PathBuf {
        self.container(id).join(format!("{id}-json.log"))
    }
    pub fn project_lock(&self, project: &str) -> PathBuf {
        self.root.join("projects").join(format!("{project}.lock"))
    }
}

/// A healthcheck as the monitor runs it (durations in milliseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub start_interval_ms: u64,
    pub retries: u32,
}

/// What the engine decided about a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub project: String,
    pub service: String,
    pub number: u32,
    pub oneoff: bool,
    pub labels: BTreeMap<String, String>,
    /// The image as the service names it.
    pub image: String,
    /// The image's id (its config digest), empty if unknown.
    pub image_id: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// The command line, for `ps`.
    pub command: Vec<String>,
    /// `restart:` as Docker spells it (`no`, `always`, `on-failure:3`, …).
    pub restart: String,
    pub stop_signal: String,
    pub stop_grace_ms: u64,
    pub log_max_size: Option<String>,
    pub log_max_file: Option<String>,
    /// `logging.driver`: `json-file` or `local` (both kept in the json-file
    /// log), or `none` (the output is discarded).
    #[serde(default = "default_log_driver")]
    pub log_driver: String,
    pub healthcheck: Option<HealthSpec>,
    /// berth's restart-on-unhealthy (`x-berth.restart_on_unhealthy` or the
    /// `berth.restart-on-unhealthy` label).
    pub restart_on_unhealthy: bool,
    /// Published ports, as `ps` shows them (`0.0.0.0:8080->80/tcp`).
    pub ports: Vec<String>,
    /// Networks the container is attached to, in priority order.
    pub networks: Vec<String>,
    /// Whether the engine made a network namespace for it
    /// (`Networks::netns_path`).
    pub own_netns: bool,
    /// Mount point of the rootfs (overlay), unmounted at removal.
    pub rootfs_mounted: bool,
    /// The container's anonymous volumes: mount point → volume name (under
    /// `$BERTH_ROOT/volumes`). A replacement inherits them; `rm -v` and
    /// `down -v` remove them.
    #[serde(default)]
    pub anonymous_volumes: BTreeMap<String, String>,
    /// The service's `pre_stop` hooks, run in the container before a stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<crate::model::project::ServiceHook>,
    /// Its volumes and binds, for another container's `volumes_from`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<super::spec::SharedMount>,
    /// Where its `type: image` volumes' images are mounted (read-only
    /// overlays under `image-volumes/`), unmounted at removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_mounts: Vec<PathBuf>,
    /// `stdin_open` (and `run`'s default `--interactive`): with nobody
    /// attached, the container's stdin is a pipe that stays open and never
    /// yields anything, as Docker's; otherwise it is `/dev/null`.
    #[serde(default)]
    pub stdin_open: bool,
}

fn default_log_driver() -> String {
    "json-file".to_owned()
}

impl ContainerRecord {
    pub fn load(paths: &Paths, id: &str) -> Result<Self> {
        let mut buf = Vec::new();
        let path = || paths.container(id).join("container.json");
        read_in_container(paths, id, "container.json", &mut buf)
            .with_context(|| format!("reading {}", path().display()))?;
        serde_json::from_slice(&buf).with_context(|| format!("reading {}", path().display()))
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        write_atomic(
            &paths.container(&self.id).join("container.json"),
            &serde_json::to_vec(self)?,
        )
    }

    /// Makes the container's directory with this record already in it:
    /// the record is written into `.new-<id>-<pid>` and that is renamed
    /// into place, so a kill -9 at any point leaves either no container
    /// directory or one with a record (which `reclaim_half_made` handles),
    /// never a recordless one another berth must leave alone for a while
    /// in case it is being made. A staging directory whose pid is gone is
    /// abandoned ([`abandoned_staging`]).
    pub fn save_new(&self, paths: &Paths) -> Result<()> {
        let staging = paths
            .containers()
            .join(format!(".new-{}-{}", self.id, std::process::id()));
        fs_err::create_dir_all(&staging)?;
        fs_err::write(staging.join("container.json"), serde_json::to_vec(self)?)?;
        fs_err::rename(&staging, paths.container(&self.id))?;
        Ok(())
    }

    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// A container's status, in Docker's words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Paused => "paused",
            Status::Exited => "exited",
            Status::Dead => "dead",
        })
    }
}

/// What the monitor saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    /// The container's init, as the host sees it (0 when not running).
    pub pid: i32,
    pub exit_code: i32,
    /// Milliseconds since the epoch (0: never).
    pub started_at: u64,
    pub finished_at: u64,
    pub restart_count: u32,
    /// `starting`, `healthy`, `unhealthy`, or empty without a healthcheck.
    pub health: String,
    pub failing_streak: u32,
    /// The last probe outputs, newest last.
    pub health_log: Vec<String>,
    /// The monitor's pid while it lives.
    pub monitor_pid: i32,
    /// Set by `stop`/`down`: the exit was asked for.
    pub stopped_by_user: bool,
    /// Why the container could not start, if it could not.
    pub error: String,
}

impl RunState {
    pub fn load(paths: &Paths, id: &str) -> RunState {
        let mut buf = Vec::new();
        read_in_container(paths, id, "state.json", &mut buf)
            .ok()
            .and_then(|()| serde_json::from_slice(&buf).ok())
            .unwrap_or_default()
    }

    /// Fails when the container's directory is gone: a monitor that
    /// outlives its container's removal must not make it again.
    pub fn save(&self, paths: &Paths, id: &str) -> Result<()> {
        let dir = paths.container(id);
        if !dir.is_dir() {
            anyhow::bail!("container {id} was removed ({} is gone)", dir.display());
        }
        write_atomic(&dir.join("state.json"), &serde_json::to_vec(self)?)
    }

    /// The status, corrected for a monitor that died without saying so (a
    /// kill -9, a reboot): then the container is gone too, or orphaned.
    pub fn effective_status(&self) -> Status {
        match self.status {
            Status::Running | Status::Restarting | Status::Paused
                if self.monitor_pid <= 0 || !alive(self.monitor_pid) =>
            {
                if self.pid > 0 && alive(self.pid) {
                    self.status
                } else {
                    Status::Exited
                }
            }
            s => s,
        }
    }
}

/// Whether a process exists (a zombie does not count).
///
/// One `process_vm_readv` of a byte at address 0: the kernel answers
/// ESRCH when the process has no memory map — it is gone, a zombie, or
/// past its exit — and EFAULT when it has one (nothing is mapped at 0).
/// That costs about 1.5 µs, half a `readlink` of `/proc/PID/exe` (which
/// tells the same thing through a path walk in /proc) and a tenth of
/// reading `/proc/PID/stat`, which the kernel formats whole; `ps` asks
/// this of every monitor. Inside an [`AliveMemo`] each pid is looked at
/// once.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    if let Some(known) = ALIVE_MEMO.with(|m| m.borrow().as_ref().and_then(|m| m.get(&pid).copied()))
    {
        return known;
    }
    let mut byte = [0u8; 1];
    let yes = match nix::sys::uio::process_vm_readv(
        nix::unistd::Pid::from_raw(pid),
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &[nix::sys::uio::RemoteIoVec { base: 0, len: 1 }],
    ) {
        Ok(_) | Err(nix::errno::Errno::EFAULT) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        // Not ours to look at (ptrace rules, an LSM): its state letter
        // says.
        Err(_) => alive_by_stat(pid),
    };
    ALIVE_MEMO.with(|m| {
        if let Some(m) = m.borrow_mut().as_mut() {
            m.insert(pid, yes);
        }
    });
    yes
}

/// [`alive`] from the state letter of `/proc/PID/stat`. The letter
/// follows the command name, which is at most 15 bytes, so the first 64
/// bytes always hold it; what follows it is numbers only, so the last `) `
/// of a short read is the right one.
fn alive_by_stat(pid: i32) -> bool {
    let mut buf = [0u8; 64];
    let Ok(n) = rustix::fs::open(
        format!("/proc/{pid}/stat"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .and_then(|fd| rustix::io::read(&fd, &mut buf)) else {
        return false;
    };
    let stat = &buf[..n];
    match stat.windows(2).rposition(|w| w == b") ") {
        Some(i) => !matches!(stat.get(i + 2), Some(b'Z' | b'X') | None),
        None => false,
    }
}

thread_local! {
    static ALIVE_MEMO: std::cell::RefCell<Option<std::collections::HashMap<i32, bool>>> =
        const { std::cell::RefCell::new(None) };
}

/// While it lives, [`alive`] answers each pid from its first look (on
/// this thread). For a command that reports a moment's state, such as
/// `ps`, which asks about the same monitor up to three times (adoption,
/// status, status text); never for one that waits for a change.
pub struct AliveMemo(());

impl AliveMemo {
    pub fn begin() -> AliveMemo {
        ALIVE_MEMO.with(|m| *m.borrow_mut() = Some(Default::default()));
        AliveMemo(())
    }
}

impl Drop for AliveMemo {
    fn drop(&mut self) {
        ALIVE_MEMO.with(|m| *m.borrow_mut() = None);
    }
}

/// Reads `<containers>/<id>/<file>` whole into `buf`, opened relative to
/// the containers directory, which each process opens once: a path walk of
/// two names instead of the whole path, for `ps`'s hundreds of reads.
pub fn read_in_container(
    paths: &Paths,
    id: &str,
    file: &str,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::sync::{Arc, Mutex};
    type Open = Vec<(PathBuf, Arc<std::os::fd::OwnedFd>)>;
    static OPEN: Mutex<Open> = Mutex::new(Vec::new());
    let dir = paths.containers();
    let rel = Path::new(id).join(file);
    let held = {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        match open.iter().find(|(p, _)| *p == dir) {
            Some((_, fd)) => Some(fd.clone()),
            None => rustix::fs::open(
                &dir,
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ok()
            .map(|fd| {
                let fd = Arc::new(fd);
                open.push((dir.clone(), fd.clone()));
                fd
            }),
        }
    };
    let Some(fd) = held else {
        return read_whole(None, &dir.join(rel), buf);
    };
    match read_whole(Some(&fd), &rel, buf) {
        // The directory held may have been removed (and made again): then
        // the path is asked, and the next read opens the new one.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && rustix::fs::fstat(&*fd).is_ok_and(|st| st.st_nlink == 0) =>
        {
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            open.retain(|(p, _)| *p != dir);
            drop(open);
            read_whole(None, &dir.join(rel), buf)
        }
        r => r,
    }
}

/// Reads a small file whole into `buf` (cleared first): one open, one
/// read for a file under 8 KiB, one close — without the stat and seek `std::fs::read`
/// makes to size its buffer, which for the hundreds of records `ps` reads
/// cost more than the reading. `path` is relative to `dir` when given.
pub fn read_whole(
    dir: Option<&std::os::fd::OwnedFd>,
    path: &Path,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let fd = match dir {
        Some(d) => rustix::fs::openat(d, path, flags, Mode::empty()),
        None => rustix::fs::open(path, flags, Mode::empty()),
    }?;
    buf.clear();
    if buf.capacity() < 8192 {
        buf.reserve(8192);
    }
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let room = buf.capacity() - buf.len();
        let n = rustix::io::read(&fd, rustix::buffer::spare_capacity(buf))?;
        // A read of a regular file returns less than asked only at its end.
        if n == 0 || n < room {
            return Ok(());
        }
    }
}

/// Points the symbolic link `path` at `target`, atomically (a temporary
/// link renamed over it).
pub fn symlink_atomic(target: &str, path: &Path) -> Result<()> {
    let tmp = temp_beside(path)?;
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("making {}", tmp.display()))?;
    fs_err::rename(&tmp, path)?;
    Ok(())
}

/// The pid a monitor's pid link names (`Paths::monitor_pid`).
pub fn read_monitor_pid(paths: &Paths, id: &str) -> Option<i32> {
    std::fs::read_link(paths.monitor_pid(id))
        .ok()?
        .to_str()?
        .parse()
        .ok()
}

/// Writes through a temp file and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = temp_beside(path)?;
    fs_err::write(&tmp, data)?;
    fs_err::rename(&tmp, path)?;
    Ok(())
}

/// `.<name>.<pid>.tmp` in `path`'s directory, which is made if missing.
fn temp_beside(path: &Path) -> Result<PathBuf> {
    let dir = path.parent().context("path without a parent")?;
    fs_err::create_dir_all(dir)?;
    Ok(dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    )))
}

/// Every container record, of every project.
pub fn all_containers(paths: &Paths) -> Result<Vec<ContainerRecord>> {
    let dir = paths.containers();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let id = e.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        // A container half-made by a killed `up` has no record yet: it is
        // cleaned by the next `up`/`down` of its project through `orphans`.
        if read_in_container(paths, &id, "container.json", &mut buf).is_ok() {
            if let Ok(r) = serde_json::from_slice::<ContainerRecord>(&buf) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    Ok(out)
}

/// The containers of `project` whose making was cut short (a kill -9 of
/// the CLI): their record names the project, but the labels, written
/// last, are missing. One-offs are never counted (see
/// `execute::reclaim_half_made`).
pub fn half_made(paths: &Paths, project: &str) -> Result<Vec<String>> {
    Ok(all_containers(paths)?
        .into_iter()
        .filter(|c| c.project == project && !c.oneoff && c.label(naming::LABEL_PROJECT).is_empty())
        .map(|c| c.id)
        .collect())
}

/// Container directories without a record, older than `age`: what a berth
/// killed between making the directory and writing the record (the first
/// thing it writes) left. Whose they were is unknown; the age keeps a
/// creation in progress, which writes its record within microseconds, out.
pub fn recordless(paths: &Paths, age: std::time::Duration) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(paths.containers()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| !e.path().join("container.json").exists())
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d > age)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Staging directories of [`ContainerRecord::save_new`] whose berth died
/// before renaming them into place.
pub fn abandoned_staging(paths: &Paths) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(paths.containers()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(".new-")) else {
                return false;
            };
            let pid = rest.rsplit('-').next().and_then(|p| p.parse::<i32>().ok());
            pid.is_some_and(|p| p as u32 != std::process::id() && !alive(p))
        })
        .map(|e| e.path())
        .collect()
}

/// A project's containers.
pub fn project_containers(paths: &Paths, project: &str) -> Result<Vec<ContainerRecord>> {
    Ok(all_containers(paths)?
        .into_iter()
        .filter(|c| c.label(naming::LABEL_PROJECT) == project)
        .collect())
}

/// Makes `dir` (if missing) and marks it as the top of unrelated
/// subtrees (`chattr +T`, `FS_TOPDIR_FL`): ext4 then places each new
/// subdirectory (a container's) by its Orlov spreading, in a block group
/// with few directories and many free inodes, instead of next to its
/// siblings. On ext4 without a journal every inode allocation scans its
/// group's recently deleted inodes one by one, so when every container's
/// files shared one group, up/down cycles made each file made in the next
/// `up` cost up to half a millisecond. Filesystems without the flag
/// (tmpfs, xfs, btrfs) refuse it, which changes nothing.
pub fn spread_subdirs(dir: &Path) -> Result<()> {
    use rustix::fs::IFlags;
    fs_err::create_dir_all(dir)?;
    let Ok(file) = std::fs::File::open(dir) else {
        return Ok(());
    };
    match rustix::fs::ioctl_getflags(&file) {
        Ok(flags) if !flags.contains(IFlags::TOPDIR) => {
            if let Err(e) = rustix::fs::ioctl_setflags(&file, flags | IFlags::TOPDIR) {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot mark as a top directory");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "no inode flags here");
        }
    }
    Ok(())
}

/// A fresh container id: 64 hex digits from the kernel's random source.
pub fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    use std::io::Read;
    fs_err::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(hex::encode(b))
}

pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An exclusive lock on a file, released on drop.
pub struct Lock {
    _file: std::fs::File,
}

impl Lock {
    /// Blocks until the lock is ours.
    pub fn acquire(path: &Path) -> Result<Lock> {
        if let Some(d) = path.parent() {
            fs_err::create_dir_all(d)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Lock { _file: file })
    }

    /// The lock on directory `dir` itself (made if missing) if nobody
    /// holds it, `None` if somebody does: no lock file to create, which on
    /// ext4 is an inode allocated (and one freed when the directory goes).
    pub fn try_acquire_dir(dir: &Path) -> Result<Option<Lock>> {
        fs_err::create_dir_all(dir)?;
        let file =
            std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("locking {}", dir.display())),
        }
    }

    /// The lock if nobody holds it, `None` if somebody does.
    pub fn try_acquire(path: &Path) -> Result<Option<Lock>> {
        if let Some(d) = path.parent() {
            fs_err::create_dir_all(d)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        abandoned_staging, alive, alive_by_stat, read_in_container, spread_subdirs, AliveMemo,
        Paths,
    };

    /// On ext4 (where berth's state lives on this host: the test's temp
    /// dir) the containers' parent gets the top-directory flag, once.
    #[test]
    fn containers_parent_is_a_top_directory_on_ext4() {
        use rustix::fs::IFlags;
        let tmp = tempfile::tempdir().unwrap();
        let fs = rustix::fs::statfs(tmp.path()).unwrap();
        // EXT4_SUPER_MAGIC (statfs(2)).
        assert_eq!(
            fs.f_type as u64,
            0xEF53,
            "precondition: the temp dir {} must be on ext4 for this test",
            tmp.path().display()
        );
        let dir = tmp.path().join("containers");
        spread_subdirs(&dir).unwrap();
        let flags = |d: &std::path::Path| {
            rustix::fs::ioctl_getflags(std::fs::File::open(d).unwrap()).unwrap()
        };
        assert!(flags(&dir).contains(IFlags::TOPDIR), "{:?}", flags(&dir));
        spread_subdirs(&dir).unwrap();
        assert!(flags(&dir).contains(IFlags::TOPDIR));
        // Only the parent: a container's own directory is an ordinary one.
        std::fs::create_dir(dir.join("c")).unwrap();
        assert!(!flags(&dir.join("c")).contains(IFlags::TOPDIR));
    }

    #[test]
    fn staging_of_a_dead_berth_is_abandoned_and_a_live_ones_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: tmp.path().join("root"),
            run: tmp.path().join("run"),
        };
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dirs = paths.containers();
        for pid in [dead, std::process::id(), 1] {
            std::fs::create_dir_all(dirs.join(format!(".new-{:064x}-{pid}", 7))).unwrap();
        }
        std::fs::create_dir_all(dirs.join("abc")).unwrap();
        let found = abandoned_staging(&paths);
        assert_eq!(found, vec![dirs.join(format!(".new-{:064x}-{dead}", 7))]);
    }

    #[test]
    fn container_files_are_read_through_a_held_directory_even_once_it_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: tmp.path().join("root"),
            run: tmp.path().join("run"),
        };
        let write = |text: &str| {
            let d = paths.container("c1");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("state.json"), text).unwrap();
        };
        let mut buf = Vec::new();
        write("one");
        read_in_container(&paths, "c1", "state.json", &mut buf).unwrap();
        assert_eq!(buf, b"one");
        let missing = read_in_container(&paths, "c2", "state.json", &mut buf).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        // The containers directory removed and made again.
        std::fs::remove_dir_all(paths.containers()).unwrap();
        write("two");
        read_in_container(&paths, "c1", "state.json", &mut buf).unwrap();
        assert_eq!(buf, b"two");
        // A file larger than the first read.
        let big = "x".repeat(20_000);
        write(&big);
        read_in_container(&paths, "c1", "state.json", &mut buf).unwrap();
        assert_eq!(buf, big.as_bytes());
    }

    #[test]
    fn a_memo_answers_each_pid_from_its_first_look() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        {
            let _memo = AliveMemo::begin();
            assert!(alive(pid));
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(alive(pid), "the memo's answer");
        }
        assert!(!alive(pid), "no memo: a fresh look");
    }

    #[test]
    fn alive_tells_running_zombie_and_gone_apart() {
        assert!(alive(std::process::id() as i32));
        assert!(!alive(0));
        assert!(!alive(-1));
        // A child that exited and is not reaped yet is a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(pid) {
            assert!(std::time::Instant::now() < deadline, "zombie counted alive");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // It is a zombie now, not gone: its /proc entry stays until reaped.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit_once(") ").unwrap().1.as_bytes()[0];
        assert_eq!(state, b'Z', "{stat}");
        child.wait().unwrap();
        assert!(!alive(pid));
        // A sleeping child counts until it is killed.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(alive(child.id() as i32));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(child.id() as i32));
        // The state letter's reading, used where the probe is denied:
        // a name with ") " in it (comm is 15 bytes at most), this thread's.
        std::thread::spawn(|| {
            std::fs::write("/proc/thread-self/comm", ") Z ) Z").unwrap();
            let tid = nix::unistd::gettid().as_raw();
            let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).unwrap();
            assert!(stat.contains("() Z ) Z) "), "{stat}");
            assert!(alive_by_stat(tid));
        })
        .join()
        .unwrap();
        // pid 1 is alive whether or not its executable may be read.
        assert!(alive(1));
        assert!(alive_by_stat(1));
    }
}
