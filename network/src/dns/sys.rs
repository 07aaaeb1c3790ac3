//! The DNS server's only `unsafe`: registering its inotify descriptor with
//! tokio's reactor. Kept here, apart, like the crate's other `sys` code.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::inotify::Inotify;
use tokio::io::unix::AsyncFd;

/// An inotify descriptor that tokio can wait on.
pub(crate) struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl InotifyFd {
    /// The `Inotify` itself, to read events.
    pub(crate) fn inotify(&self) -> &Inotify {
        &self.0
    }
}

/// Registers `inotify` (opened with `IN_NONBLOCK`) with the current runtime.
pub(crate) fn async_inotify(inotify: Inotify) -> io::Result<AsyncFd<InotifyFd>> {
    // SAFETY: `InotifyFd` owns its descriptor (`Inotify` holds an `OwnedFd`),
    // never replaces it and closes it only when dropped, so the fd returned by
    // `as_raw_fd` is valid, open and the same for the whole life of the
    // `AsyncFd` that owns it (tokio PR #8587's requirement).
    unsafe { AsyncFd::register(InotifyFd(inotify)) }.map_err(io::Error::from)
}
