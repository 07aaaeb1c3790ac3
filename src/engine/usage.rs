//! A running container's resource usage, read where the kernel keeps it:
//! its cgroups (v1 controllers or the v2 unified tree, found through
//! `/proc/<pid>/cgroup`) and its network namespace's interface counters
//! (`/proc/<pid>/net/dev`). Read-only; used by `stats` and by the monitor
//! (to notice an OOM kill).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a process's cgroups are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cgroups {
    /// cgroup v1: controller → directory.
    pub v1: BTreeMap<String, PathBuf>,
    /// cgroup v2: the unified directory (used when v1 has no memory).
    pub v2: Option<PathBuf>,
}

impl Cgroups {
    /// The cgroups of `pid`, under the cgroupfs mounted at `mount`
    /// (`/sys/fs/cgroup` on a real host; a fake tree in tests).
    pub fn of(pid: i32, mount: &Path) -> std::io::Result<Cgroups> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        Ok(Cgroups::parse(&text, mount))
    }

    /// Parses `/proc/<pid>/cgroup`.
    pub fn parse(text: &str, mount: &Path) -> Cgroups {
        let mut out = Cgroups::default();
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_), Some(ctls), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if ctls.is_empty() {
                // The unified hierarchy: the mount itself on a pure v2
                // host, `unified/` on a hybrid one.
                let base = if mount.join("cgroup.controllers").exists() {
                    mount.to_path_buf()
                } else {
                    mount.join("unified")
                };
                out.v2 = Some(base.join(rel));
                continue;
            }
            for c in ctls.split(',') {
                if c.starts_with("name=") {
                    continue;
                }
                out.v1.insert(c.to_owned(), mount.join(c).join(rel));
            }
        }
        out
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    fn is_v1(&self) -> bool {
        self.v1.contains_key("memory")
    }

    /// How many times the OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.is_v1() {
            self.v1_dir("memory").map(|d| d.join("memory.oom_control"))
        } else {
            self.v2.as_ref().map(|d| d.join("memory.events"))
        };
        file.and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| keyed(&t, "oom_kill"))
            .unwrap_or(0)
    }

    /// The counters now.
    pub fn sample(&self, host_memory: u64) -> Usage {
        let mut u = Usage::default();
        if self.is_v1() {
            let read = |ctl: &str, file: &str| {
                self.v1_dir(ctl)
                    .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            };
            u.cpu_ns = read("cpuacct", "cpuacct.usage")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            let usage: u64 = read("memory", "memory.usage_in_bytes")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            let inactive = read("memory", "memory.stat")
                .and_then(|t| keyed(&t, "total_inactive_file"))
                .unwrap_or(0);
            u.memory = usage.saturating_sub(inactive);
            let limit: u64 = read("memory", "memory.limit_in_bytes")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(u64::MAX);
            u.memory_limit = limit.min(host_memory);
            u.pids = read("pids", "pids.current")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            if let Some(t) = read("blkio", "blkio.throttle.io_service_bytes_recursive") {
                for l in t.lines() {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if let [_, op, n] = f[..] {
                        let n: u64 = n.parse().unwrap_or(0);
                        match op {
                            "Read" => u.block_read += n,
                            "Write" => u.block_write += n,
                            _ => {}
                        }
                    }
                }
            }
        } else if let Some(d) = &self.v2 {
            let read = |file: &str| std::fs::read_to_string(d.join(file)).ok();
            u.cpu_ns = read("cpu.stat")
                .and_then(|t| keyed(&t, "usage_usec"))
                .unwrap_or(0)
                * 1000;
            let usage: u64 = read("memory.current")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            let inactive = read("memory.stat")
                .and_then(|t| keyed(&t, "inactive_file"))
                .unwrap_or(0);
            u.memory = usage.saturating_sub(inactive);
            u.memory_limit = read("memory.max")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(u64::MAX)
                .min(host_memory);
            u.pids = read("pids.current")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            if let Some(t) = read("io.stat") {
                for l in t.lines() {
                    for kv in l.split_whitespace().skip(1) {
                        match kv.split_once('=') {
                            Some(("rbytes", n)) => u.block_read += n.parse().unwrap_or(0),
                            Some(("wbytes", n)) => u.block_write += n.parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
            }
        }
        u
    }
}

/// One sample of a container's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, without the inactive page cache (as Docker counts).
    pub memory: u64,
    pub memory_limit: u64,
    pub pids: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub net_rx: u64,
    pub net_tx: u64,
}

/// `key N` in a flat-keyed cgroup file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Bytes received and sent on every interface but `lo` of the network
/// namespace `pid` is in.
pub fn net_counters(pid: i32) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    parse_net_dev(&text)
}

/// Parses `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for l in text.lines().skip(2) {
        let Some((iface, counters)) = l.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = counters
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// The host's memory (`MemTotal`), the limit of an unlimited container.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let v = l.strip_prefix("MemTotal:")?;
                v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
        })
        .map_or(u64::MAX, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn v1_counters_come_from_each_controller() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        let cg = Cgroups::parse(
            "9:name=systemd:/\n4:memory:/berth/c1\n2:cpuacct:/berth/c1\n8:pids:/berth/c1\n7:blkio:/berth/c1\n0::/\n",
            m,
        );
        write(&m.join("cpuacct/berth/c1/cpuacct.usage"), "123456789\n");
        write(&m.join("memory/berth/c1/memory.usage_in_bytes"), "10000\n");
        write(
            &m.join("memory/berth/c1/memory.stat"),
            "cache 5\ntotal_inactive_file 4000\n",
        );
        write(
            &m.join("memory/berth/c1/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        write(
            &m.join("memory/berth/c1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write(&m.join("pids/berth/c1/pids.current"), "3\n");
        write(
            &m.join("blkio/berth/c1/blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n",
        );
        let u = cg.sample(1 << 30);
        assert_eq!(u.cpu_ns, 123_456_789);
        assert_eq!(u.memory, 6000);
        assert_eq!(u.memory_limit, 1 << 30, "unlimited shows the host's memory");
        assert_eq!(u.pids, 3);
        assert_eq!((u.block_read, u.block_write), (4096, 8192));
        assert_eq!(cg.oom_kills(), 2);
    }

    #[test]
    fn v2_counters_come_from_the_unified_directory() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        write(&m.join("cgroup.controllers"), "cpu memory pids io\n");
        let cg = Cgroups::parse("0::/berth/c2\n", m);
        let c = m.join("berth/c2");
        write(&c.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n");
        write(&c.join("memory.current"), "8192\n");
        write(&c.join("memory.stat"), "anon 4096\ninactive_file 1024\n");
        write(&c.join("memory.max"), "1048576\n");
        write(&c.join("memory.events"), "low 0\noom 1\noom_kill 1\n");
        write(&c.join("pids.current"), "2\n");
        write(
            &c.join("io.stat"),
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2\n",
        );
        let u = cg.sample(1 << 30);
        assert_eq!(u.cpu_ns, 1_500_000);
        assert_eq!(u.memory, 7168);
        assert_eq!(u.memory_limit, 1_048_576);
        assert_eq!(u.pids, 2);
        assert_eq!((u.block_read, u.block_write), (100, 200));
        assert_eq!(cg.oom_kills(), 1);
    }

    #[test]
    fn net_dev_sums_every_interface_but_lo() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    1500      10    0    0    0     0          0         0      700       5    0    0    0     0       0          0\n  eth1:      10       1    0    0    0     0          0         0        5       1    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(text), (1510, 705));
    }
}
