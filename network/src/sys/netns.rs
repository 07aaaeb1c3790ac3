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

use nix::sched::{setns, CloneFlags};

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
}
