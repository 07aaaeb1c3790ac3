//! A blob download that survives interruption: the bytes received so far
//! and the SHA-256 state over them, kept in the store's `tmp/` so that the
//! next attempt (in this process or a later one) asks the registry for the
//! rest only (`Range: bytes=N-`).
//!
//! Layout, next to the other staging files:
//!
//! ```text
//! images/tmp/partial-<hex>        the first N bytes of blob sha256:<hex>
//! images/tmp/partial-<hex>.json   {"digest","size","hashed","state","tail"}:
//!                                 the hash state after `hashed` bytes
//! ```
//!
//! The data file is locked (`flock`) while a download owns it, so two pulls
//! of one blob take turns; the second usually finds the blob complete. The
//! state file is replaced atomically every few MiB and whenever a stream
//! breaks, each time after the data is synced, so the state never covers
//! bytes a crash could lose. Bytes on disk past the state's count are
//! hashed again on resume, and a state that does not match the file starts
//! the download over. A blob put together from several responses that
//! fails its digest (a proxy sent wrong bytes before the cut, say) is
//! fetched once more whole.
//! `Store::prune` removes partial files an hour old.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use fs_err as fs;
use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

use super::store::StoreError;

/// How often (in bytes received) the hash state is written out.
const CHECKPOINT_EVERY: u64 = 8 << 20;

/// SHA-256 whose intermediate state can be saved and restored
/// (`sha2::compress256` over 64-byte blocks, FIPS 180-4 padding at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableSha256 {
    h: [u32; 8],
    /// Bytes already compressed (a multiple of 64).
    compressed: u64,
    /// Bytes waiting for a full block (< 64).
    tail: Vec<u8>,
}

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256 {
            h: H0,
            compressed: 0,
            tail: Vec::with_capacity(64),
        }
    }
}

impl ResumableSha256 {
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.compressed + self.tail.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        if !self.tail.is_empty() {
            let take = (64 - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < 64 {
                return;
            }
            let block = GenericArray::clone_from_slice(&self.tail);
            sha2::compress256(&mut self.h, &[block]);
            self.compressed += 64;
            self.tail.clear();
        }
        let whole = data.len() / 64 * 64;
        if whole > 0 {
            let blocks: Vec<GenericArray<u8, _>> = data[..whole]
                .chunks_exact(64)
                .map(GenericArray::clone_from_slice)
                .collect();
            sha2::compress256(&mut self.h, &blocks);
            self.compressed += whole as u64;
        }
        self.tail.extend_from_slice(&data[whole..]);
    }

    /// The digest, `sha256:<hex>`.
    pub fn finish(&self) -> String {
        let bits = self.len().wrapping_mul(8);
        let mut last = self.tail.clone();
        last.push(0x80);
        while last.len() % 64 != 56 {
            last.push(0);
        }
        last.extend_from_slice(&bits.to_be_bytes());
        let mut h = self.h;
        let blocks: Vec<GenericArray<u8, _>> = last
            .chunks_exact(64)
            .map(GenericArray::clone_from_slice)
            .collect();
        sha2::compress256(&mut h, &blocks);
        let mut out = String::with_capacity(7 + 64);
        out.push_str("sha256:");
        for word in h {
            out.push_str(&hex::encode(word.to_be_bytes()));
        }
        out
    }
}

/// What `partial-<hex>.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    digest: String,
    size: u64,
    hashed: u64,
    /// The eight state words, hex.
    state: String,
    /// Pending bytes of an incomplete block, hex.
    tail: String,
}

/// A blob being downloaded into `tmp/partial-<hex>`, locked while alive.
#[derive(Debug)]
pub struct PartialBlob {
    file: std::fs::File,
    data_path: PathBuf,
    state_path: PathBuf,
    digest: String,
    size: u64,
    hasher: ResumableSha256,
    /// Bytes present when this download began (0 if it started afresh).
    resumed_from: u64,
    since_checkpoint: u64,
}

impl PartialBlob {
    /// Opens (locking; waiting while another download holds it) the partial
    /// file of `digest` in `tmp`, picking up what an earlier attempt left.
    /// `None` when the blob is at `dest` already: another download finished
    /// it while this one waited.
    pub(crate) fn open(
        tmp: &std::path::Path,
        dest: &std::path::Path,
        digest: &str,
        hex: &str,
        size: u64,
    ) -> Result<Option<Self>, StoreError> {
        let data_path = tmp.join(format!("partial-{hex}"));
        let state_path = tmp.join(format!("partial-{hex}.json"));
        // The lock is on the inode: one that a finished download renamed
        // into `blobs/` (or a failed one removed) while we waited for it is
        // no longer the partial file, so open the path again.
        let file = loop {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&data_path)?
                .into_parts()
                .0;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| io_at(&data_path, e.into()))?;
            let locked = rustix::fs::fstat(&file).map_err(|e| io_at(&data_path, e.into()))?;
            match rustix::fs::stat(&data_path) {
                Ok(now) if now.st_ino == locked.st_ino && now.st_dev == locked.st_dev => {
                    break file
                }
                Ok(_) => continue,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(io_at(&data_path, e.into())),
            }
        };
        if dest.exists() {
            // Finished elsewhere; what is here is a leftover (we hold the lock).
            let _ = std::fs::remove_file(&state_path);
            let _ = std::fs::remove_file(&data_path);
            return Ok(None);
        }
        let mut p = PartialBlob {
            file,
            data_path,
            state_path,
            digest: digest.to_string(),
            size,
            hasher: ResumableSha256::default(),
            resumed_from: 0,
            since_checkpoint: 0,
        };
        let on_disk = p.file.metadata().map_err(|e| io_at(&p.data_path, e))?.len();
        match p.load_state() {
            Some(h) if h.len() <= on_disk && on_disk <= size => {
                p.hasher = h;
                // Bytes written after the last checkpoint.
                p.file
                    .seek(SeekFrom::Start(p.hasher.len()))
                    .map_err(|e| io_at(&p.data_path, e))?;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = p.file.read(&mut buf).map_err(|e| io_at(&p.data_path, e))?;
                    if n == 0 {
                        break;
                    }
                    p.hasher.update(&buf[..n]);
                }
                p.resumed_from = p.hasher.len();
                tracing::debug!(%digest, bytes = p.resumed_from, "resuming a partial download");
            }
            _ => p.restart()?,
        }
        Ok(Some(p))
    }

    fn load_state(&self) -> Option<ResumableSha256> {
        let data = std::fs::read(&self.state_path).ok()?;
        let s: SavedState = serde_json::from_slice(&data).ok()?;
        if s.digest != self.digest || s.size != self.size {
            return None;
        }
        let words = hex::decode(&s.state).ok()?;
        let tail = hex::decode(&s.tail).ok()?;
        if words.len() != 32 || tail.len() >= 64 {
            return None;
        }
        let compressed = s.hashed.checked_sub(tail.len() as u64)?;
        if compressed % 64 != 0 {
            return None;
        }
        let mut h = [0u32; 8];
        for (w, b) in h.iter_mut().zip(words.chunks_exact(4)) {
            *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        Some(ResumableSha256 {
            h,
            compressed,
            tail,
        })
    }

    /// Bytes on disk; the next request starts here.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this download continued an earlier one's bytes.
    pub fn resumed(&self) -> bool {
        self.resumed_from > 0
    }

    /// Drops what is on disk and starts from byte 0.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .map_err(|e| io_at(&self.data_path, e))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| io_at(&self.data_path, e))?;
        self.hasher = ResumableSha256::default();
        self.resumed_from = 0;
        self.since_checkpoint = 0;
        match std::fs::remove_file(&self.state_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&self.state_path, e)),
        }
    }

    /// Appends what `reader` yields until it ends or fails; never more than
    /// the blob's size plus one byte (enough to tell it is too long).
    /// `progress` hears the running total. A read error is returned as is,
    /// with everything before it kept (and checkpointed).
    pub fn fill(
        &mut self,
        reader: impl Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        self.file
            .seek(SeekFrom::Start(self.len()))
            .map_err(|e| io_at(&self.data_path, e))?;
        let mut reader = reader.take(self.size.saturating_sub(self.len()) + 1);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Keep what arrived for the next attempt.
                    let _ = self.checkpoint();
                    return Err(StoreError::Io(e));
                }
            };
            self.file
                .write_all(&buf[..n])
                .map_err(|e| io_at(&self.data_path, e))?;
            self.hasher.update(&buf[..n]);
            progress(self.len());
            self.since_checkpoint += n as u64;
            if self.since_checkpoint >= CHECKPOINT_EVERY {
                self.checkpoint()?;
            }
        }
    }

    /// Writes the hash state for the bytes written so far, after they are
    /// on disk: a state never covers bytes a power cut could lose.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| io_at(&self.data_path, e))?;
        let mut words = Vec::with_capacity(32);
        for w in self.hasher.h {
            words.extend_from_slice(&w.to_be_bytes());
        }
        let state = SavedState {
            digest: self.digest.clone(),
            size: self.size,
            hashed: self.len(),
            state: hex::encode(words),
            tail: hex::encode(&self.hasher.tail),
        };
        let dir = self.state_path.parent().expect("the state file is in tmp/");
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_at(dir, e))?;
        tmp.write_all(&serde_json::to_vec(&state).expect("state serializes"))
            .map_err(|e| io_at(tmp.path(), e))?;
        tmp.persist(&self.state_path)
            .map_err(|e| io_at(&self.state_path, e.error))?;
        self.since_checkpoint = 0;
        Ok(())
    }

    /// Checks size and digest and moves the data to `dest`. On a mismatch
    /// the partial files are removed (the bytes are wrong, keeping them
    /// would only repeat the failure) and the error says what differed.
    pub fn finish(mut self, dest: &std::path::Path) -> Result<(), StoreError> {
        let got = self.len();
        if got != self.size {
            let err = StoreError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: got,
            };
            if got > self.size {
                self.discard();
            }
            return Err(err);
        }
        let actual = self.hasher.finish();
        if actual != self.digest {
            self.discard();
            return Err(StoreError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        self.file
            .sync_data()
            .map_err(|e| io_at(&self.data_path, e))?;
        fs::rename(&self.data_path, dest)?;
        let _ = std::fs::remove_file(&self.state_path);
        Ok(())
    }

    /// Removes the partial files.
    pub fn discard(&mut self) {
        let _ = std::fs::remove_file(&self.state_path);
        let _ = std::fs::remove_file(&self.data_path);
        self.hasher = ResumableSha256::default();
        self.resumed_from = 0;
    }
}

fn io_at(path: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn matches_sha2_for_any_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 128, 1000] {
            let want = format!("sha256:{}", hex::encode(Sha256::digest(&data[..len])));
            for split in [0, 1, 3, 64, 70, len / 2, len] {
                let split = split.min(len);
                let mut h = ResumableSha256::default();
                h.update(&data[..split]);
                let mut again = h.clone();
                again.update(&data[split..len]);
                assert_eq!(again.len(), len as u64);
                assert_eq!(again.finish(), want, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn state_survives_a_reopen_and_a_bad_state_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        let hex = &digest[7..];
        let dest = dir.path().join("blob");
        let open = || {
            PartialBlob::open(dir.path(), &dest, &digest, hex, 5000)
                .unwrap()
                .unwrap()
        };
        {
            let mut p = open();
            p.fill(&data[..3001], &mut |_| {}).unwrap();
            p.checkpoint().unwrap();
            // Bytes after the checkpoint are kept and hashed again on resume.
            p.fill(&data[3001..4000], &mut |_| {}).unwrap();
        }
        let mut p = open();
        assert_eq!(p.len(), 4000);
        assert!(p.resumed());
        p.fill(&data[4000..], &mut |_| {}).unwrap();
        p.finish(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A state for another blob is not trusted.
        std::fs::write(dir.path().join(format!("partial-{hex}")), &data[..100]).unwrap();
        std::fs::write(
            dir.path().join(format!("partial-{hex}.json")),
            r#"{"digest":"sha256:00","size":5000,"hashed":0,"state":"","tail":""}"#,
        )
        .unwrap();
        std::fs::remove_file(&dest).unwrap();
        let p = open();
        assert_eq!(p.len(), 0);
        assert!(!p.resumed());
        drop(p);
        // Once the blob is in place there is nothing to download, and the
        // leftover partial file goes.
        std::fs::write(&dest, &data).unwrap();
        assert!(PartialBlob::open(dir.path(), &dest, &digest, hex, 5000)
            .unwrap()
            .is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_download_waiting_for_the_lock_sees_the_finished_blob() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 100_000];
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        let hex = &digest[7..];
        let dest = dir.path().join("blob");
        let mut first = PartialBlob::open(dir.path(), &dest, &digest, hex, 100_000)
            .unwrap()
            .unwrap();
        std::thread::scope(|s| {
            let second = s.spawn(|| {
                PartialBlob::open(dir.path(), &dest, &digest, hex, 100_000)
                    .unwrap()
                    .is_none()
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            first.fill(&data[..], &mut |_| {}).unwrap();
            first.finish(&dest).unwrap();
            assert!(second.join().unwrap(), "the second download found the blob");
        });
        assert_eq!(std::fs::read(&dest).unwrap(), data, "and left it intact");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
