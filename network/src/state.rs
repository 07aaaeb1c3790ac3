//! The networks' on-disk state.
//!
//! Layout of the state directory (`$BERTH_ROOT/networks`):
//!
//! ```text
//! .lock          flock(2)ed for every change to any network (IPAM must see
//!                all networks at once: subnets never overlap)
//! <name>@<gen>.json
//!                one network: its config as resolved (id, bridge, subnets)
//!                and its leases (one per attached container, with the
//!                container's published ports); `gen` counts its writes
//! ```
//!
//! A write goes to `<name>@<gen+1>.json.tmp`, is renamed to
//! `<name>@<gen+1>.json`, and then the older generation is unlinked, so a
//! reader sees the old or the new state, never a torn one; after a crash
//! between rename and unlink the highest generation wins. Renaming onto a
//! new name rather than over the old file matters for speed: ext4's
//! `auto_da_alloc` flushes a file renamed over another one, which costs
//! milliseconds on a busy disk, on every attach. The firewall is always
//! rendered from these files, so the files are written before the kernel
//! objects they describe are made.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Attachment, Network};
use crate::error::NetworkError;
use crate::sys::lock::FileLock;

/// One network's file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkState {
    pub network: Network,
    /// By container id.
    #[serde(default)]
    pub leases: BTreeMap<String, Attachment>,
    /// Last handed-out addresses, so released ones are not reused at once.
    #[serde(default)]
    pub last_ipv4: Option<IpAddr>,
    #[serde(default)]
    pub last_ipv6: Option<IpAddr>,
    /// The generation this state was read from (0: never written).
    #[serde(skip)]
    pub generation: u64,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Take the lock for a change (creating the directory if needed).
    pub fn lock(&self) -> Result<FileLock, NetworkError> {
        fs_err::create_dir_all(&self.root).map_err(|e| NetworkError::State {
            path: self.root.clone(),
            source: e,
        })?;
        let p = self.root.join(".lock");
        FileLock::exclusive(&p).map_err(NetworkError::state(p))
    }

    /// The generations on disk, by network name.
    fn generations(&self) -> Result<std::collections::BTreeMap<String, Vec<u64>>, NetworkError> {
        let mut out: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        let dir = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(NetworkError::state(&self.root)(e)),
        };
        for entry in dir {
            let entry = entry.map_err(NetworkError::state(&self.root))?;
            let f = entry.file_name();
            let Some(stem) = f.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if let Some((name, gen)) = stem.rsplit_once('@') {
                if let Ok(gen) = gen.parse::<u64>() {
                    out.entry(name.to_owned()).or_default().push(gen);
                }
            }
        }
        for v in out.values_mut() {
            v.sort_unstable();
        }
        Ok(out)
    }

    fn path(&self, name: &str, generation: u64) -> PathBuf {
        self.root.join(format!("{name}@{generation}.json"))
    }

    fn read(&self, name: &str, generation: u64) -> Result<NetworkState, NetworkError> {
        let p = self.path(name, generation);
        let b = fs_err::read(&p).map_err(NetworkError::state(&p))?;
        let mut s: NetworkState = serde_json::from_slice(&b)
            .map_err(|source| NetworkError::CorruptState { path: p, source })?;
        s.generation = generation;
        Ok(s)
    }

    pub fn load(&self, name: &str) -> Result<Option<NetworkState>, NetworkError> {
        match self.generations()?.get(name).and_then(|g| g.last()) {
            Some(&g) => self.read(name, g).map(Some),
            None => Ok(None),
        }
    }

    /// Every network, sorted by name.
    pub fn all(&self) -> Result<Vec<NetworkState>, NetworkError> {
        let mut out = Vec::new();
        for (name, gens) in self.generations()? {
            if let Some(&g) = gens.last() {
                out.push(self.read(&name, g)?);
            }
        }
        Ok(out)
    }

    /// Write the next generation of `state` (its `generation` is advanced).
    pub fn save(&self, state: &mut NetworkState) -> Result<(), NetworkError> {
        let name = &state.network.name;
        let next = state.generation + 1;
        let p = self.path(name, next);
        let tmp = self.root.join(format!("{name}@{next}.json.tmp"));
        let body = serde_json::to_vec(state).map_err(|e| NetworkError::State {
            path: p.clone(),
            source: e.into(),
        })?;
        fs_err::write(&tmp, body).map_err(NetworkError::state(&tmp))?;
        fs_err::rename(&tmp, &p).map_err(NetworkError::state(&p))?;
        if state.generation > 0 {
            let old = self.path(name, state.generation);
            if let Err(e) = std::fs::remove_file(&old) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(NetworkError::state(old)(e));
                }
            }
        }
        state.generation = next;
        Ok(())
    }

    /// Remove every generation of a network's file.
    pub fn delete(&self, name: &str) -> Result<(), NetworkError> {
        for g in self.generations()?.remove(name).unwrap_or_default() {
            let p = self.path(name, g);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NetworkError::state(p)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}
