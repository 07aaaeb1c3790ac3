//! cgroups: one container's cgroup on a v1 hierarchy (one directory per
//! controller) or on the v2 unified hierarchy. Creates it, writes the spec's
//! limits, adds processes, freezes and thaws, reads statistics, and removes
//! it. The cgroup filesystem's mount point is a parameter, so the logic of
//! both versions is tested on a fake tree in a temp dir.
//!
//! Layout: the container's cgroup is `<mount>[/<controller>]/<cgroupsPath>`,
//! `cgroupsPath` defaulting to `berth/<id>`.

mod v1;
mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

/// Errors of cgroup operations; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Writing or reading a cgroup file failed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The cgroup file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A limit cannot be expressed on this cgroup version.
    #[error("cgroup: {0}")]
    Unsupported(String),
    /// The freezer did not reach the wanted state in time.
    #[error("cgroup {path}: freezer did not reach {state} within 2s")]
    FreezeTimeout {
        /// The freezer file.
        path: PathBuf,
        /// The wanted state.
        state: &'static str,
    },
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Io {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Resource usage read from a cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// The memory limit, bytes (`None` for unlimited).
    pub memory_limit: Option<u64>,
    /// Times the memory limit was hit (v1 `failcnt`, v2 `max` events).
    pub memory_failcnt: u64,
    /// OOM kills in the cgroup.
    pub oom_kills: u64,
    /// Processes and threads in the cgroup.
    pub pids_current: u64,
    /// The pids limit (`None` for unlimited).
    pub pids_limit: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
}

/// Which hierarchy the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    /// One hierarchy per controller (including hybrid hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Detects the cgroup version mounted at `mount` (normally `/sys/fs/cgroup`).
pub fn detect(mount: &Path) -> Version {
    if mount.join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

/// A container's cgroup. The closed set of backends is an enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cgroup {
    /// cgroup v1: one directory per controller.
    V1(v1::V1),
    /// cgroup v2: one directory.
    V2(v2::V2),
}

impl Cgroup {
    /// The cgroup for `path` (relative, like `berth/<id>`) under `mount`.
    pub fn new(mount: &Path, path: &Path) -> Self {
        let rel = path.strip_prefix("/").unwrap_or(path).to_owned();
        match detect(mount) {
            Version::V1 => Cgroup::V1(v1::V1::new(mount, &rel)),
            Version::V2 => Cgroup::V2(v2::V2::new(mount, &rel)),
        }
    }

    /// Creates the cgroup's directories and writes the limits. Existing
    /// directories are fine (`ensure`).
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let resources = resources.map(|r| with_default_devices(zero_is_unset(r)));
        // A concurrent `delete_with_parent` may remove an empty shared
        // parent between our mkdirs: start over (a handful of times).
        let mut tries = 0;
        loop {
            let r = match self {
                Cgroup::V1(c) => c.create(resources.as_ref()),
                Cgroup::V2(c) => c.create(resources.as_ref()),
            };
            match r {
                Err(CgroupError::Io { ref source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && tries < 5 =>
                {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    /// Removes the cgroup, then its parent directories named `parent` (the
    /// runtime's own default parent, `berth`) if they are left empty, so
    /// the last container leaves no trace in any hierarchy.
    pub fn delete_with_parent(&self, parent: &str) -> Result<(), CgroupError> {
        self.delete()?;
        for dir in self.dirs() {
            if let Some(p) = dir
                .parent()
                .filter(|p| p.file_name().is_some_and(|n| n == parent))
            {
                // Busy (other containers) or gone: both fine.
                let _ = std::fs::remove_dir(p);
            }
        }
        Ok(())
    }

    /// Moves process `pid` into the cgroup.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.add(pid),
            Cgroup::V2(c) => c.add(pid),
        }
    }

    /// Moves the calling process, which must be single-threaded, into the
    /// cgroup. On v1 it writes `0` (the calling thread) to each controller's
    /// `tasks`: the kernel moves the current thread without taking the
    /// global threadgroup lock, whose first writer waits for an RCU grace
    /// period (8–18 ms measured here for one `cgroup.procs` write of another
    /// pid). On v2 it writes `0` to `cgroup.procs`.
    pub fn join_self(&self) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => {
                for dir in c.dirs() {
                    write(&dir.join("tasks"), "0")?;
                }
                Ok(())
            }
            Cgroup::V2(c) => write(&c.dir.join("cgroup.procs"), "0"),
        }
    }

    /// Freezes (`true`) or thaws every process in the cgroup, waiting until
    /// the kernel reports the new state.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.freeze(frozen),
            Cgroup::V2(c) => c.freeze(frozen),
        }
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> bool {
        match self {
            Cgroup::V1(c) => c.is_frozen(),
            Cgroup::V2(c) => c.is_frozen(),
        }
    }

    /// The pids of the processes in the cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let file = match self {
            Cgroup::V1(c) => c.procs_file(),
            Cgroup::V2(c) => c.dir.join("cgroup.procs"),
        };
        Ok(read(&file)?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// Reads the statistics.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match self {
            Cgroup::V1(c) => c.stats(),
            Cgroup::V2(c) => c.stats(),
        }
    }

    /// Removes the cgroup's directories (missing ones are fine). Retries
    /// briefly: the kernel keeps a cgroup busy for a moment after its last
    /// process died.
    pub fn delete(&self) -> Result<(), CgroupError> {
        let dirs = match self {
            Cgroup::V1(c) => c.dirs(),
            Cgroup::V2(c) => vec![c.dir.clone()],
        };
        let mut errors = Vec::new();
        for dir in dirs {
            if let Err(e) = rmdir_retry(&dir) {
                errors.push(e);
            }
        }
        errors.into_iter().next().map_or(Ok(()), Err)
    }

    /// The directories that make up this cgroup.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V1(c) => c.dirs(),
            Cgroup::V2(c) => vec![c.dir.clone()],
        }
    }
}

/// Removes a cgroup directory. The kernel may report EBUSY for a moment
/// after the last process left; retry with a short exponential back-off
/// (50 µs doubling, capped at 5 ms, 2 s in all) rather than a fixed tick.
/// Engines write zeros for limits they leave alone (Docker sends
/// `"blockIO": {"weight": 0}`, `"cpu": {"shares": 0}`, memory 0…); runc
/// reads a zero as "not set", and so do we, instead of writing a value the
/// kernel refuses (`blkio.weight` 0 is ERANGE).
fn zero_is_unset(res: &LinuxResources) -> LinuxResources {
    let mut v = serde_json::to_value(res).expect("resources serialize");
    for (section, keys) in [
        (
            "memory",
            &["limit", "reservation", "swap", "kernel", "kernelTCP"][..],
        ),
        ("cpu", &["shares", "quota", "period", "cpus", "mems"][..]),
        ("blockIO", &["weight", "leafWeight"][..]),
    ] {
        if let Some(obj) = v.get_mut(section).and_then(|s| s.as_object_mut()) {
            obj.retain(|k, val| {
                !(keys.contains(&k.as_str()) && (val == &serde_json::json!(0) || val == ""))
            });
        }
    }
    if v.pointer("/pids/limit") == Some(&serde_json::json!(0)) {
        v.as_object_mut().expect("an object").remove("pids");
    }
    serde_json::from_value(v).unwrap_or_else(|_| res.clone())
}

/// The device rules every container gets after the spec's own, as runc
/// appends them: `mknod` of any node (`m`), and use of the devices the
/// runtime itself creates in `/dev` (null, zero, full, random, urandom, tty,
/// console, ptmx, pts) and of `/dev/net/tun`. Engines rely on this: Docker's
/// list omits `/dev/full`, which the runtime still creates.
fn with_default_devices(mut res: LinuxResources) -> LinuxResources {
    let Some(mut rules) = res.devices().clone() else {
        return res;
    };
    let defaults = serde_json::json!([
        {"allow": true, "type": "c", "access": "m"},
        {"allow": true, "type": "b", "access": "m"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
    ]);
    let defaults: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_value(defaults).expect("valid device rules");
    rules.extend(defaults);
    res.set_devices(Some(rules));
    res
}

fn rmdir_retry(dir: &Path) -> Result<(), CgroupError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(5));
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
}

fn wait_for(path: &Path, want: &str, state: &'static str) -> Result<(), CgroupError> {
    for _ in 0..200 {
        if read(path)?.trim() == want {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(CgroupError::FreezeTimeout {
        path: path.to_owned(),
        state,
    })
}

#[cfg(test)]
mod tests;
