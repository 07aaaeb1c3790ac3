//! An exclusive `flock(2)` on a file, released when dropped. flock locks
//! belong to the open file description, so threads of one process that each
//! open the file exclude each other as processes do.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// A held exclusive lock.
pub struct FileLock {
    _lock: Flock<File>,
}

impl FileLock {
    /// Block until the lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        Ok(Self { _lock: lock })
    }
}
