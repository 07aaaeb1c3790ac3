//! On-disk state of containers under the runtime root (runc's `--root`,
//! default `/run/berth/runtime`). Layout:
//!
//! ```text
//! <root>/<id>/state.json   this file's `Saved` (written via temp + rename)
//! <root>/<id>/exec.fifo    exists while the container is `created`;
//!                          `start` reads it to release the init
//! <root>/.seccomp/         compiled seccomp programs by profile hash
//! ```
//!
//! The status is never stored: it is derived from the fifo, the process
//! (checked by its start time, so a reused pid is not mistaken for ours) and
//! the freezer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::error::RuntimeError;

/// A container's status, as the OCI runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up, waiting for `start`.
    Created,
    /// The user process runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// The container id.
    pub id: String,
    /// The init's pid in the host pid namespace.
    pub pid: i32,
    /// The init's start time (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The rootfs.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The spec's annotations.
    pub annotations: HashMap<String, String>,
    /// The container's cgroup.
    pub cgroup: Cgroup,
    /// Whether the container has its own pid namespace (then killing the
    /// init kills everything).
    pub own_pid_ns: bool,
    /// The OCI version of the spec.
    pub oci_version: String,
}

/// The OCI state of a container, as `state` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The spec's version.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// The status.
    pub status: Status,
    /// The init pid (0 when stopped, as runc prints it).
    pub pid: i32,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The rootfs.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The spec's annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
    /// The owner (runc prints an empty string for root).
    pub owner: String,
}

/// Checks a container id the way runc does.
pub fn check_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_owned()))
    }
}

/// The start time of a process, or `None` if it does not exist or is a zombie.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl Saved {
    /// The state directory of this container.
    pub fn dir(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    /// Loads a container's record.
    pub fn load(root: &Path, id: &str) -> Result<Self, RuntimeError> {
        check_id(id)?;
        let path = Self::dir(root, id).join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_owned()))
            }
            Err(e) => return Err(RuntimeError::Io { path, source: e }),
        };
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Config {
            path,
            field: e.line().to_string(),
            message: format!("corrupt state file: {e}"),
        })
    }

    /// Writes the record atomically.
    pub fn save(&self, root: &Path) -> Result<(), RuntimeError> {
        let dir = Self::dir(root, &self.id);
        let tmp = dir.join(".state.json.tmp");
        let json = serde_json::to_vec(self).expect("state serializes");
        fs_err::write(&tmp, json).map_err(RuntimeError::Fs)?;
        fs_err::rename(&tmp, dir.join("state.json")).map_err(RuntimeError::Fs)
    }

    /// Whether the init process still exists (and is ours, not a reused pid).
    pub fn alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.start_time)
    }

    /// The current status.
    pub fn status(&self, root: &Path) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        if Self::dir(root, &self.id).join("exec.fifo").exists() {
            return Status::Created;
        }
        if self.cgroup.is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// The OCI state.
    pub fn state(&self, root: &Path) -> State {
        let status = self.status(root);
        State {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: String::new(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Formats a time as RFC 3339 UTC with nanoseconds (as runc's `created`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn ids_are_checked() {
        check_id("abc-1_2.x").unwrap();
        assert!(check_id("../x").is_err());
        assert!(check_id(".hidden").is_err());
        assert!(check_id("").is_err());
    }

    #[test]
    fn own_process_has_a_start_time() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }
}
