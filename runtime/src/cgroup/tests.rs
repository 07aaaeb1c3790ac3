//! cgroup logic on fake cgroupfs trees (plain files in a temp dir).

use std::fs;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::*;

fn resources() -> LinuxResources {
    serde_json::from_value(serde_json::json!({
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"weight": 500},
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"}
        ]
    }))
    .unwrap()
}

fn fake_v1(root: &Path) {
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    ] {
        fs::create_dir_all(root.join(c)).unwrap();
    }
    fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
    fs::write(root.join("cpuset/cpuset.mems"), "0\n").unwrap();
    fs::write(root.join("blkio/blkio.weight"), "").unwrap();
}

#[test]
fn v1_writes_every_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v1(root);
    let cg = Cgroup::new(root, Path::new("/berth/c1"));
    assert!(matches!(cg, Cgroup::V1(_)));
    // The fake tree has no memsw file: pretend swap accounting is on.
    fs::create_dir_all(root.join("memory/berth/c1")).unwrap();
    fs::write(root.join("memory/berth/c1/memory.memsw.limit_in_bytes"), "").unwrap();
    fs::create_dir_all(root.join("blkio/berth/c1")).unwrap();
    fs::write(root.join("blkio/berth/c1/blkio.weight"), "").unwrap();
    cg.create(Some(&resources())).unwrap();
    let r = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(r("memory/berth/c1/memory.limit_in_bytes"), "67108864");
    assert_eq!(r("memory/berth/c1/memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(
        r("memory/berth/c1/memory.memsw.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(r("cpu/berth/c1/cpu.shares"), "512");
    assert_eq!(r("cpu/berth/c1/cpu.cfs_quota_us"), "50000");
    assert_eq!(r("cpu/berth/c1/cpu.cfs_period_us"), "100000");
    assert_eq!(
        r("cpuset/berth/cpuset.cpus"),
        "0-1",
        "cpuset copied down to the intermediate level"
    );
    assert_eq!(r("cpuset/berth/c1/cpuset.cpus"), "0");
    assert_eq!(r("pids/berth/c1/pids.max"), "20");
    assert_eq!(r("blkio/berth/c1/blkio.weight"), "500");
    // The last write to devices.allow wins in a plain file: runc's default
    // rules come after the spec's, /dev/net/tun last.
    assert_eq!(r("devices/berth/c1/devices.allow"), "c 10:200 rwm");
    assert_eq!(r("devices/berth/c1/devices.deny"), "a *:* rwm");
    cg.add(42).unwrap();
    assert_eq!(r("pids/berth/c1/cgroup.procs"), "42");
    assert_eq!(cg.pids().unwrap(), vec![42]);
}

#[test]
fn zeros_from_an_engine_mean_unset() {
    // Docker's spec for a container without limits.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v1(root);
    let cg = Cgroup::new(root, Path::new("berth/c3"));
    let res: LinuxResources = serde_json::from_value(serde_json::json!({
        "memory": {"disableOOMKiller": false}, "cpu": {"shares": 0},
        "blockIO": {"weight": 0}, "pids": {"limit": 0}
    }))
    .unwrap();
    cg.create(Some(&res)).unwrap();
    for f in [
        "cpu/berth/c3/cpu.shares",
        "blkio/berth/c3/blkio.weight",
        "pids/berth/c3/pids.max",
    ] {
        assert!(!root.join(f).exists(), "{f} was written for a zero");
    }
}

#[test]
fn v1_swap_without_accounting_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v1(tmp.path());
    let cg = Cgroup::new(tmp.path(), Path::new("berth/c2"));
    let err = cg.create(Some(&resources())).unwrap_err().to_string();
    assert!(err.contains("swap"), "{err}");
}

fn fake_v2(root: &Path) {
    fs::create_dir_all(root).unwrap();
    fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
}

#[test]
fn v2_converts_and_writes_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root);
    fs::create_dir_all(root.join("berth")).unwrap();
    fs::write(root.join("berth/cgroup.controllers"), "cpu memory pids\n").unwrap();
    let cg = Cgroup::new(root, Path::new("berth/c1"));
    assert!(matches!(cg, Cgroup::V2(_)));
    cg.create(Some(&resources())).unwrap();
    let r = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(
        r("cgroup.subtree_control"),
        "+cpu +cpuset +io +memory +pids"
    );
    assert_eq!(r("berth/cgroup.subtree_control"), "+cpu +memory +pids");
    assert_eq!(r("berth/c1/memory.max"), "67108864");
    assert_eq!(r("berth/c1/memory.low"), "33554432");
    assert_eq!(r("berth/c1/memory.swap.max"), "67108864");
    assert_eq!(r("berth/c1/cpu.weight"), "20");
    assert_eq!(r("berth/c1/cpu.max"), "50000 100000");
    assert_eq!(r("berth/c1/pids.max"), "20");
    assert_eq!(r("berth/c1/io.weight"), "default 4950");
}

#[test]
fn v2_weight_conversions_match_the_oci_formula() {
    assert_eq!(v2::shares_to_weight(2), 1);
    assert_eq!(v2::shares_to_weight(1024), 39);
    assert_eq!(v2::shares_to_weight(262_144), 10000);
    assert_eq!(v2::blkio_to_io_weight(10), 1);
    assert_eq!(v2::blkio_to_io_weight(1000), 10000);
}

#[test]
fn v2_stats_and_freezer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root);
    let cg = Cgroup::new(root, Path::new("c3"));
    cg.create(None).unwrap();
    let d = root.join("c3");
    fs::write(d.join("memory.current"), "1234\n").unwrap();
    fs::write(d.join("memory.max"), "max\n").unwrap();
    fs::write(
        d.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    )
    .unwrap();
    fs::write(d.join("pids.current"), "2\n").unwrap();
    fs::write(d.join("pids.max"), "10\n").unwrap();
    fs::write(d.join("cpu.stat"), "usage_usec 50\nuser_usec 20\n").unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(
        s,
        Stats {
            memory_usage: 1234,
            memory_limit: None,
            memory_failcnt: 3,
            oom_kills: 1,
            pids_current: 2,
            pids_limit: Some(10),
            cpu_usage_ns: 50_000
        }
    );
    // A fake kernel that acknowledges the freeze at once.
    fs::write(d.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cg.freeze(true).unwrap();
    assert!(cg.is_frozen());
    cg.delete().unwrap_err(); // the fake dir holds files, unlike a real cgroup
}
