//! The networks' on-disk state.
//!
//! Layout of the state directory (`$BERTH_ROOT/networks`):
//!
//! ```text
//! .lock          flock(2)ed for every change to any network (IPAM must see
//!                all networks at once: subnets never overlap)
//! <name>.json    one network: its config as resolved (id, bridge, subnets)
//!                and its leases (one per attached container, with the
//!                container's published ports)
//! ```
//!
//! Files are written to `<name>.json.tmp` and renamed over, so a reader sees
//! the old or the new state, never a torn one. The firewall is always
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

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.json"))
    }

    pub fn load(&self, name: &str) -> Result<Option<NetworkState>, NetworkError> {
        let p = self.path(name);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| NetworkError::CorruptState { path: p, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NetworkError::State { path: p, source: e }),
        }
    }

    /// Every network, sorted by name.
    pub fn all(&self) -> Result<Vec<NetworkState>, NetworkError> {
        let dir = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetworkError::state(&self.root)(e)),
        };
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(NetworkError::state(&self.root))?;
            let f = entry.file_name();
            let f = f.to_string_lossy();
            if let Some(n) = f.strip_suffix(".json") {
                names.push(n.to_owned());
            }
        }
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if let Some(s) = self.load(&n)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub fn save(&self, state: &NetworkState) -> Result<(), NetworkError> {
        let p = self.path(&state.network.name);
        let tmp = self.root.join(format!("{}.json.tmp", state.network.name));
        let body = serde_json::to_vec_pretty(state).map_err(|e| NetworkError::State {
            path: p.clone(),
            source: e.into(),
        })?;
        fs_err::write(&tmp, body).map_err(NetworkError::state(&tmp))?;
        fs_err::rename(&tmp, &p).map_err(NetworkError::state(&p))
    }

    pub fn delete(&self, name: &str) -> Result<(), NetworkError> {
        let p = self.path(name);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetworkError::state(p)(e)),
            _ => Ok(()),
        }
    }
}
