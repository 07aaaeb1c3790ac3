//! What a load looked at besides its compose files and environment: the
//! files `include`, `extends`, `env_file` and `label_file` read, the paths
//! whose existence decided something, the symbolic links paths were
//! resolved through. The load cache ([`super::cache`]) keeps this list
//! with a loaded project and reuses the project only while every item
//! still holds.
//!
//! Recording is per thread and off unless a [`Recording`] is alive, so the
//! stages pay nothing outside the cache's loads. Each stage notes what it
//! saw where it sees it: the bytes it read, not a second read.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One thing a load saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    /// A file's content (its SHA-256), `None` when it could not be read.
    Bytes {
        path: PathBuf,
        digest: Option<String>,
    },
    /// What is at a path, following links.
    Kind { path: PathBuf, kind: Kind },
    /// Compose's symbolic-link resolution of a path
    /// (`paths::through_symlink`), `None` when no component is a link.
    Resolved { path: String, to: Option<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Missing,
    File,
    Dir,
    Other,
    /// Not readable for another reason than absence.
    Error,
}

thread_local! {
    static SEEN: RefCell<Option<Vec<Seen>>> = const { RefCell::new(None) };
}

/// While alive, what the stages note is kept.
pub struct Recording(());

impl Recording {
    pub fn begin() -> Recording {
        SEEN.with(|s| *s.borrow_mut() = Some(Vec::new()));
        Recording(())
    }

    /// What was seen, in order, each thing once.
    pub fn finish(self) -> Vec<Seen> {
        let mut seen = SEEN.with(|s| s.borrow_mut().take()).unwrap_or_default();
        let mut unique = Vec::with_capacity(seen.len());
        for s in seen.drain(..) {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        unique
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        SEEN.with(|s| *s.borrow_mut() = None);
    }
}

fn recording() -> bool {
    SEEN.with(|s| s.borrow().is_some())
}

fn push(seen: Seen) {
    SEEN.with(|s| {
        if let Some(v) = s.borrow_mut().as_mut() {
            v.push(seen);
        }
    });
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The stage read `bytes` from `path` (or failed to: `None`).
pub fn note_read(path: &Path, bytes: Option<&[u8]>) {
    if recording() {
        push(Seen::Bytes {
            path: path.to_owned(),
            digest: bytes.map(digest),
        });
    }
}

/// The stage asked what is at `path` (exists, is a file, a directory).
pub fn note_kind(path: &Path) {
    if recording() {
        push(Seen::Kind {
            path: path.to_owned(),
            kind: kind_of(path),
        });
    }
}

/// The stage resolved `path` through its symbolic links to `to`.
pub fn note_resolved(path: &str, to: Option<&str>) {
    if recording() {
        push(Seen::Resolved {
            path: path.to_owned(),
            to: to.map(str::to_owned),
        });
    }
}

fn kind_of(path: &Path) -> Kind {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Kind::File,
        Ok(m) if m.is_dir() => Kind::Dir,
        Ok(_) => Kind::Other,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kind::Missing,
        Err(_) => Kind::Error,
    }
}

impl Seen {
    /// Whether a load now would see the same.
    pub fn still_holds(&self) -> bool {
        match self {
            Seen::Bytes { path, digest: d } => {
                std::fs::read(path).ok().map(|b| digest(&b)).as_ref() == d.as_ref()
            }
            Seen::Kind { path, kind } => kind_of(path) == *kind,
            Seen::Resolved { path, to } => {
                super::paths::through_symlink(path).ok().flatten() == *to
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_seen_holds_until_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("a.env");
        let gone = tmp.path().join("missing");
        std::fs::write(&f, "A=1\n").unwrap();
        note_read(&f, Some(b"A=1\n"));
        assert!(Recording::begin().finish().is_empty(), "nothing noted yet");
        let rec = Recording::begin();
        note_read(&f, Some(b"A=1\n"));
        note_read(&f, Some(b"A=1\n"));
        note_kind(&gone);
        note_resolved(tmp.path().to_str().unwrap(), None);
        let seen = rec.finish();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.iter().all(Seen::still_holds));
        std::fs::write(&f, "A=2\n").unwrap();
        std::fs::write(&gone, "").unwrap();
        assert!(!seen[0].still_holds());
        assert!(!seen[1].still_holds());
        assert!(seen[2].still_holds());
        // Recording ended: nothing is kept.
        note_kind(&gone);
        assert!(SEEN.with(|s| s.borrow().is_none()));
    }
}
