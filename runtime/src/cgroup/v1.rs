//! cgroup v1: the container has one directory in each controller's
//! hierarchy. Controllers not mounted on the host are skipped, except those
//! a limit needs (then the limit is an error naming the controller).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use serde::{Deserialize, Serialize};

use super::{read, read_u64, wait_for, write, CgroupError, Stats};

const CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

/// A container's cgroup on v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1 {
    /// The hierarchy mount (`/sys/fs/cgroup`).
    pub mount: PathBuf,
    /// The cgroup path relative to each controller's root.
    pub path: PathBuf,
}

impl V1 {
    pub(super) fn new(mount: &Path, path: &Path) -> Self {
        Self {
            mount: mount.to_owned(),
            path: path.to_owned(),
        }
    }

    fn dir(&self, controller: &str) -> PathBuf {
        self.mount.join(controller).join(&self.path)
    }

    fn mounted(&self, controller: &str) -> bool {
        self.mount.join(controller).is_dir()
    }

    /// The directories of every mounted controller.
    pub(super) fn dirs(&self) -> Vec<PathBuf> {
        CONTROLLERS
            .iter()
            .filter(|c| self.mounted(c))
            .map(|c| self.dir(c))
            .collect()
    }

    pub(super) fn procs_file(&self) -> PathBuf {
        let ctrl = if self.mounted("pids") {
            "pids"
        } else {
            "memory"
        };
        self.dir(ctrl).join("cgroup.procs")
    }

    fn need(&self, controller: &str) -> Result<PathBuf, CgroupError> {
        if self.mounted(controller) {
            Ok(self.dir(controller))
        } else {
            Err(CgroupError::Unsupported(format!(
                "the {controller} controller is not mounted at {}",
                self.mount.display()
            )))
        }
    }

    pub(super) fn create(&self, res: Option<&LinuxResources>) -> Result<(), CgroupError> {
        for ctrl in CONTROLLERS.iter().filter(|c| self.mounted(c)) {
            let dir = self.dir(ctrl);
            if *ctrl == "cpuset" {
                self.create_cpuset(&dir)?;
            } else {
                std::fs::create_dir_all(&dir).map_err(|source| CgroupError::Io {
                    path: dir.clone(),
                    source,
                })?;
            }
        }
        let Some(res) = res else { return Ok(()) };
        if let Some(mem) = res.memory() {
            let dir = self.need("memory")?;
            if let Some(limit) = mem.limit() {
                write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            }
            if let Some(r) = mem.reservation() {
                write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
            }
            if let Some(swap) = mem.swap() {
                let f = dir.join("memory.memsw.limit_in_bytes");
                if f.exists() {
                    write(&f, &swap.to_string())?;
                } else if swap != -1 && Some(swap) != mem.limit() {
                    return Err(CgroupError::Unsupported(
                        "memory.swap: swap accounting is off on this host".into(),
                    ));
                }
            }
            if let Some(s) = mem.swappiness() {
                write(&dir.join("memory.swappiness"), &s.to_string())?;
            }
            if mem.disable_oom_killer() == Some(true) {
                write(&dir.join("memory.oom_control"), "1")?;
            }
        }
        if let Some(cpu) = res.cpu() {
            if cpu.shares().is_some() || cpu.quota().is_some() || cpu.period().is_some() {
                let dir = self.need("cpu")?;
                if let Some(s) = cpu.shares() {
                    write(&dir.join("cpu.shares"), &s.to_string())?;
                }
                if let Some(p) = cpu.period() {
                    write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
                }
                if let Some(q) = cpu.quota() {
                    write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                }
            }
            if cpu.cpus().is_some() || cpu.mems().is_some() {
                let dir = self.need("cpuset")?;
                if let Some(c) = cpu.cpus() {
                    write(&dir.join("cpuset.cpus"), c)?;
                }
                if let Some(m) = cpu.mems() {
                    write(&dir.join("cpuset.mems"), m)?;
                }
            }
        }
        if let Some(pids) = res.pids() {
            let dir = self.need("pids")?;
            let v = if pids.limit() <= 0 {
                "max".to_string()
            } else {
                pids.limit().to_string()
            };
            write(&dir.join("pids.max"), &v)?;
        }
        if let Some(w) = res.block_io().as_ref().and_then(|b| b.weight()) {
            let dir = self.need("blkio")?;
            let f = if dir.join("blkio.weight").exists() {
                "blkio.weight"
            } else {
                "blkio.bfq.weight"
            };
            write(&dir.join(f), &w.to_string())?;
        }
        if let Some(devices) = res.devices() {
            let dir = self.need("devices")?;
            for rule in devices {
                let (file, line) = device_rule(rule);
                write(&dir.join(file), &line)?;
            }
        }
        Ok(())
    }

    /// cpuset refuses tasks until `cpus` and `mems` are set, and a new
    /// directory starts empty: copy them down from the parent, level by level.
    fn create_cpuset(&self, dir: &Path) -> Result<(), CgroupError> {
        let root = self.mount.join("cpuset");
        let mut cur = root.clone();
        for comp in self.path.components() {
            let parent = cur.clone();
            cur.push(comp);
            if !cur.exists() {
                std::fs::create_dir(&cur).map_err(|source| CgroupError::Io {
                    path: cur.clone(),
                    source,
                })?;
            }
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let mine = cur.join(f);
                if read(&mine).map(|s| s.trim().is_empty()).unwrap_or(true) {
                    if let Ok(v) = read(&parent.join(f)) {
                        write(&mine, v.trim())?;
                    }
                }
            }
        }
        debug_assert_eq!(cur, dir);
        Ok(())
    }

    pub(super) fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub(super) fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let file = self.need("freezer")?.join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        write(&file, want)?;
        wait_for(&file, want, want)
    }

    pub(super) fn is_frozen(&self) -> bool {
        read(&self.dir("freezer").join("freezer.state"))
            .map(|s| s.trim() == "FROZEN")
            .unwrap_or(false)
    }

    pub(super) fn stats(&self) -> Result<Stats, CgroupError> {
        let mem = self.dir("memory");
        let pids = self.dir("pids");
        let limit = read_u64(&mem.join("memory.limit_in_bytes")).filter(|l| *l < (1 << 62));
        let oom_kills = read(&mem.join("memory.oom_control"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|v| v.trim().parse().ok())
                })
            })
            .unwrap_or(0);
        Ok(Stats {
            memory_usage: read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0),
            memory_limit: limit,
            memory_failcnt: read_u64(&mem.join("memory.failcnt")).unwrap_or(0),
            oom_kills,
            pids_current: read_u64(&pids.join("pids.current")).unwrap_or(0),
            pids_limit: read_u64(&pids.join("pids.max")),
            cpu_usage_ns: read_u64(&self.dir("cpuacct").join("cpuacct.usage")).unwrap_or(0),
        })
    }
}

/// The v1 `devices.allow`/`devices.deny` line of a spec rule.
pub(super) fn device_rule(rule: &LinuxDeviceCgroup) -> (&'static str, String) {
    let typ = rule
        .typ()
        .map_or_else(|| "a".to_string(), |t| t.as_str().to_string());
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
    let file = if rule.allow() {
        "devices.allow"
    } else {
        "devices.deny"
    };
    let line = if typ == "a" && rule.major().is_none() && rule.minor().is_none() {
        format!("a *:* {access}")
    } else {
        format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
    };
    (file, line)
}
