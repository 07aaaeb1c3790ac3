//! Network namespaces by path (a bind mount such as `/run/netns/x` or
//! `/proc/<pid>/ns/net`).
//!
//! `setns` changes only the calling thread, so it happens on a short-lived
//! dedicated thread and never on the caller's (a tokio worker must not end up
//! in a container's namespace). The thread opens a netlink socket there and
//! hands it back: a socket stays bound to the namespace it was created in.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::netlink::Netlink;

/// An open network namespace.
pub struct Netns {
    file: File,
}

impl Netns {
    /// Open the namespace at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
        })
    }

    /// The namespace's fd, for `IFLA_NET_NS_FD`.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Run `f` on a fresh thread that has entered this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
        })
    }

    /// An rtnetlink socket inside this namespace.
    pub fn netlink(&self) -> io::Result<Netlink> {
        self.run(Netlink::open)
    }

    /// Make a new network namespace, with `lo` up, held by a bind mount at
    /// `path` (what `ip netns add` does), so it outlives every process in it.
    /// The directory of `path` is made a shared mount point of its own, so a
    /// container's mount namespace that copies the bind mount does not pin
    /// the namespace after `destroy` (ip-netns(8) does the same).
    pub fn create(path: &Path) -> io::Result<Self> {
        let dir = path.parent().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "netns path has no parent")
        })?;
        std::fs::create_dir_all(dir)?;
        make_shared_mount_point(dir)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        let made = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<()> {
                unshare(CloneFlags::CLONE_NEWNET)?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                let mut nl = Netlink::open()?;
                if let Some(lo) = nl.link_by_name("lo")? {
                    nl.set_up(lo.index, None)?;
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
        });
        if let Err(e) = made {
            let _ = umount2(path, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Self::open(path)
    }

    /// Unmount and remove a namespace made by [`Netns::create`]; the kernel
    /// frees it (and the container ends of its veths) once nothing else holds
    /// it. A missing path is not an error.
    pub fn destroy(path: &Path) -> io::Result<()> {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn make_shared_mount_point(dir: &Path) -> io::Result<()> {
    // Two threads or processes making their first namespace at once would
    // each bind the directory onto itself, stacking two mounts (a namespace
    // bound under the lower one is then hidden): one at a time.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.with_extension("lock"))?;
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself first.
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
