//! cgroup v2: the container has one directory in the unified hierarchy.
//! The controllers it needs are enabled in every ancestor's
//! `cgroup.subtree_control` first. v1-style values are converted as runc and
//! crun do (shares → weight, blkio weight → io weight).

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::{read, read_u64, wait_for, write, CgroupError, Stats};

/// A container's cgroup on v2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2 {
    /// The unified mount (`/sys/fs/cgroup`).
    pub mount: PathBuf,
    /// The container's directory.
    pub dir: PathBuf,
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), the formula of the OCI
/// runtimes' cgroup v2 conversion document.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

impl V2 {
    pub(super) fn new(mount: &Path, path: &Path) -> Self {
        Self {
            mount: mount.to_owned(),
            dir: mount.join(path),
        }
    }

    fn enable_controllers(&self) -> Result<(), CgroupError> {
        let rel = self.dir.strip_prefix(&self.mount).unwrap_or(Path::new(""));
        let mut cur = self.mount.clone();
        for comp in rel.components() {
            let available = read(&cur.join("cgroup.controllers")).unwrap_or_default();
            let wanted: Vec<String> = ["cpu", "cpuset", "io", "memory", "pids"]
                .iter()
                .filter(|c| available.split_whitespace().any(|a| a == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !wanted.is_empty() {
                write(&cur.join("cgroup.subtree_control"), &wanted.join(" "))?;
            }
            cur.push(comp);
            if !cur.exists() {
                std::fs::create_dir(&cur).map_err(|source| CgroupError::Io {
                    path: cur.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    pub(super) fn create(&self, res: Option<&LinuxResources>) -> Result<(), CgroupError> {
        self.enable_controllers()?;
        let Some(res) = res else { return Ok(()) };
        let d = &self.dir;
        if let Some(mem) = res.memory() {
            if let Some(limit) = mem.limit() {
                write(&d.join("memory.max"), &max_or(limit))?;
            }
            if let Some(r) = mem.reservation() {
                write(&d.join("memory.low"), &max_or(r))?;
            }
            if let Some(swap) = mem.swap() {
                // The spec's swap is memory+swap (v1 semantics); v2 limits swap alone.
                let v = match (swap, mem.limit()) {
                    (-1, _) => "max".to_string(),
                    (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                write(&d.join("memory.swap.max"), &v)?;
            }
        }
        if let Some(cpu) = res.cpu() {
            if let Some(s) = cpu.shares() {
                write(&d.join("cpu.weight"), &shares_to_weight(s).to_string())?;
            }
            if cpu.quota().is_some() || cpu.period().is_some() {
                let quota = cpu
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                let period = cpu.period().unwrap_or(100_000);
                write(&d.join("cpu.max"), &format!("{quota} {period}"))?;
            }
            if let Some(c) = cpu.cpus() {
                write(&d.join("cpuset.cpus"), c)?;
            }
            if let Some(m) = cpu.mems() {
                write(&d.join("cpuset.mems"), m)?;
            }
        }
        if let Some(pids) = res.pids() {
            write(&d.join("pids.max"), &max_or(pids.limit()))?;
        }
        if let Some(w) = res.block_io().as_ref().and_then(|b| b.weight()) {
            write(
                &d.join("io.weight"),
                &format!("default {}", blkio_to_io_weight(w)),
            )?;
        }
        if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            // The v2 device controller is an eBPF program; not written yet.
            // The container's /dev holds only the spec's devices either way.
            tracing::warn!(cgroup = %self.dir.display(), "device cgroup rules are not enforced on cgroup v2 by this runtime yet");
        }
        Ok(())
    }

    pub(super) fn add(&self, pid: i32) -> Result<(), CgroupError> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub(super) fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let want = if frozen { "1" } else { "0" };
        write(&self.dir.join("cgroup.freeze"), want)?;
        let events = self.dir.join("cgroup.events");
        for _ in 0..200 {
            let text = read(&events)?;
            if text.lines().any(|l| l.trim() == format!("frozen {want}")) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        wait_for(
            &self.dir.join("cgroup.freeze"),
            want,
            if frozen { "frozen" } else { "thawed" },
        )
    }

    pub(super) fn is_frozen(&self) -> bool {
        read(&self.dir.join("cgroup.freeze"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    }

    pub(super) fn stats(&self) -> Result<Stats, CgroupError> {
        let d = &self.dir;
        let events = read(&d.join("memory.events")).unwrap_or_default();
        let event = |key: &str| {
            events
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0)
        };
        let cpu = read(&d.join("cpu.stat")).unwrap_or_default();
        let usage_usec: u64 = cpu
            .lines()
            .find_map(|l| {
                l.strip_prefix("usage_usec ")
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        Ok(Stats {
            memory_usage: read_u64(&d.join("memory.current")).unwrap_or(0),
            memory_limit: read_u64(&d.join("memory.max")),
            memory_failcnt: event("max "),
            oom_kills: event("oom_kill "),
            pids_current: read_u64(&d.join("pids.current")).unwrap_or(0),
            pids_limit: read_u64(&d.join("pids.max")),
            cpu_usage_ns: usage_usec * 1000,
        })
    }
}

fn max_or(v: i64) -> String {
    if v <= 0 {
        "max".into()
    } else {
        v.to_string()
    }
}
