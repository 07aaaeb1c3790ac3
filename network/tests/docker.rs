//! Living beside Docker (root): a real dockerd, started by the test inside the
//! test's own host namespace with its own data, exec root, pidfile and
//! socket, so it loads br_netfilter rules, sets the iptables FORWARD policy
//! to DROP and takes 172.17.0.0/16 there, exactly as on a user's host, but
//! without touching the real one. berth's networks and Docker's must both
//! keep working.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_network::{AttachConfig, PortSpec, Protocol};
use common::*;

/// A dockerd running in a test namespace; stopped (and its containers
/// removed) on drop.
struct Dockerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Dockerd {
    fn start(ns: &TestNs) -> Self {
        for tool in ["dockerd", "docker", "containerd", "iptables"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                "the Docker coexistence test needs `{tool}` (Debian's docker.io, iptables)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("berthtest-docker")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        // Not `ip netns exec`: it remounts /sys, hiding the cgroup v1
        // hierarchies dockerd needs. A private mount namespace keeps
        // dockerd's mounts out of the host's.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "nsenter"])
            .arg(format!("--net={}", ns.path().display()))
            .arg("dockerd")
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("docker.pid").display()))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .arg("--iptables=true")
            // Its own cgroup parent (not the shared `/docker`), removed on drop.
            .arg(format!("--cgroup-parent=/{}", cgroup_parent()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let me = Self { dir, child };
        let start = Instant::now();
        while !me.docker(&["info"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd did not start: {}",
                std::fs::read_to_string(me.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        me
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker")
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    /// Import the busybox rootfs as `bb:latest`.
    fn import_busybox(&self, scratch: &Path) {
        let rootfs = scratch.join("rootfs");
        sh_ok(
            "/work/shared/bench/busybox-rootfs.sh",
            &[rootfs.to_str().unwrap()],
        );
        let tar = scratch.join("bb.tar");
        sh_ok(
            "tar",
            &[
                "-C",
                rootfs.to_str().unwrap(),
                "-cf",
                tar.to_str().unwrap(),
                ".",
            ],
        );
        self.docker_ok(&["import", tar.to_str().unwrap(), "bb:latest"]);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > Duration::from_secs(20) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        if let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in ctrls.flatten() {
                let _ = std::fs::remove_dir(c.path().join(cgroup_parent()));
            }
        }
    }
}

/// The cgroup parent of this test's dockerd (per process, so parallel runs
/// never share one).
fn cgroup_parent() -> String {
    format!("berthtest-docker-{}", std::process::id())
}

/// One dockerd at a time in this process (they share the cgroup parent name).
static ONE_DOCKERD: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn berth_and_docker_networks_both_work_beside_a_running_dockerd() {
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let w = World::new("dock");
    let (out, _www) = {
        let out = TestNs::new("out");
        let www = out.serve_http(80, "outside");
        sh_ok(
            "ip",
            &[
                "-n",
                &w.host.name,
                "link",
                "add",
                "upl",
                "type",
                "veth",
                "peer",
                "name",
                "wan",
                "netns",
                &out.name,
            ],
        );
        sh_ok(
            "ip",
            &[
                "-n",
                &w.host.name,
                "addr",
                "add",
                "198.51.100.1/24",
                "dev",
                "upl",
            ],
        );
        sh_ok("ip", &["-n", &w.host.name, "link", "set", "upl", "up"]);
        out.exec_ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "wan"]);
        out.exec_ok(&["ip", "link", "set", "wan", "up"]);
        (out, www)
    };
    // A fresh host: IP forwarding off, so dockerd turns it on and sets the
    // FORWARD policy to DROP, as it does on a user's machine. (A new
    // namespace inherits ip_forward from the host's, which may be on.)
    w.host
        .exec_ok(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
    let dockerd = Dockerd::start(&w.host);
    let scratch = tempfile::tempdir().unwrap();
    dockerd.import_busybox(scratch.path());
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    let _w1 = c1.serve_http(80, "berth c1");
    w.run(|nets| {
        // Docker's world is in place: FORWARD policy DROP, br_netfilter on.
        let fwd = sh_ok("iptables", &["-S", "FORWARD"]);
        assert!(fwd.contains("-P FORWARD DROP"), "{fwd}");
        assert!(fwd.contains("DOCKER-USER"), "{fwd}");
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                .unwrap()
                .trim(),
            "1"
        );
        let n = nets.ensure(&net("proj_default")).unwrap();
        assert_ne!(
            n.subnets[0].subnet.to_string(),
            "172.17.0.0/16",
            "berth took docker0's subnet"
        );
        let a1 = nets
            .attach(&AttachConfig {
                network: "proj_default".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                default_route: true,
                ports: vec![PortSpec {
                    protocol: Protocol::Tcp,
                    host_ip: None,
                    host_ports: Some((8080, 8080)),
                    container_ports: (80, 80),
                }],
                ..Default::default()
            })
            .unwrap();
        let _a2 = nets
            .attach(&AttachConfig {
                network: "proj_default".into(),
                container_id: "c2".into(),
                netns_path: c2.path(),
                default_route: true,
                ..Default::default()
            })
            .unwrap();
        let user = sh_ok("iptables", &["-S", "DOCKER-USER"]);
        assert!(
            user.contains(&format!("-A DOCKER-USER -i {} -j ACCEPT", n.bridge)),
            "{user}"
        );
        // berth: across its bridge (bridged frames pass iptables FORWARD),
        // outbound, and published from the host.
        let ip1 = a1.ipv4.unwrap().to_string();
        assert_eq!(c2.http_get(&ip1).as_deref(), Some("berth c1"));
        assert_eq!(c2.http_get("198.51.100.2").as_deref(), Some("outside"));
        assert_eq!(http_get("127.0.0.1:8080").as_deref(), Some("berth c1"));
        assert_eq!(http_get("198.51.100.1:8080").as_deref(), Some("berth c1"));

        // Docker: a container with a published port, reachable from the host
        // and reaching the outside, while berth's rules are loaded.
        dockerd.docker_ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "8090:80",
            "bb:latest",
            "sh",
            "-c",
            "mkdir -p /www && echo docker web > /www/index.html && exec httpd -f -p 80 -h /www",
        ]);
        let start = Instant::now();
        let mut got = None;
        while got.is_none() && start.elapsed() < Duration::from_secs(10) {
            got = http_get("127.0.0.1:8090");
            if got.is_none() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        assert_eq!(got.as_deref(), Some("docker web\n"));
        assert_eq!(
            http_get("198.51.100.1:8090").as_deref(),
            Some("docker web\n")
        );
        let o = dockerd.docker(&[
            "run",
            "--rm",
            "bb:latest",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "198.51.100.2",
        ]);
        assert!(
            o.status.success(),
            "docker container cannot reach outside: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        // A Docker container reaches berth's published port through the host.
        let o = dockerd.docker(&[
            "run",
            "--rm",
            "bb:latest",
            "sh",
            "-c",
            "nc 172.17.0.1 8080 </dev/null >/dev/null && echo reached",
        ]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("reached"),
            "{o:?}"
        );

        // sync_firewall after Docker rewrote its chains keeps berth working.
        nets.sync_firewall().unwrap();
        assert_eq!(c2.http_get(&ip1).as_deref(), Some("berth c1"));

        nets.remove("proj_default").unwrap();
        let user = sh_ok("iptables", &["-S", "DOCKER-USER"]);
        assert!(!user.contains(&n.bridge), "{user}");
        assert!(!nft_ruleset().contains("table inet berth"));
        // Docker still works after berth left.
        assert_eq!(http_get("127.0.0.1:8090").as_deref(), Some("docker web\n"));
    });
    drop(dockerd);
    drop(out);
}

/// Docker started after berth's network was made sets the FORWARD policy to
/// DROP and loads br_netfilter, cutting berth's containers off from each
/// other; `sync_docker_user` (what every `up` that starts containers calls)
/// gives the bridge its DOCKER-USER rules and they talk again.
#[test]
fn docker_started_after_berth_is_repaired_by_sync_docker_user() {
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let w = World::new("dlate");
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    let _w1 = c1.serve_http(80, "berth c1");
    let ip1 = w.run(|nets| {
        nets.ensure(&net("proj_default")).unwrap();
        let a1 = nets
            .attach(&AttachConfig {
                network: "proj_default".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                default_route: true,
                ..Default::default()
            })
            .unwrap();
        nets.attach(&AttachConfig {
            network: "proj_default".into(),
            container_id: "c2".into(),
            netns_path: c2.path(),
            default_route: true,
            ..Default::default()
        })
        .unwrap();
        let ip1 = a1.ipv4.unwrap().to_string();
        assert_eq!(c2.http_get(&ip1).as_deref(), Some("berth c1"));
        assert!(!nets.sync_docker_user().unwrap(), "no Docker yet");
        ip1
    });
    // Docker comes up on a host whose forwarding is off (as after a boot),
    // so it turns it on with FORWARD policy DROP.
    w.host
        .exec_ok(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
    let dockerd = Dockerd::start(&w.host);
    w.run(|nets| {
        let fwd = sh_ok("iptables", &["-S", "FORWARD"]);
        assert!(fwd.contains("-P FORWARD DROP"), "{fwd}");
        assert_eq!(
            c2.http_get(&ip1),
            None,
            "precondition: Docker's FORWARD DROP cuts berth's bridge"
        );
        assert!(
            nets.sync_docker_user().unwrap(),
            "Docker's chains not found"
        );
        assert_eq!(c2.http_get(&ip1).as_deref(), Some("berth c1"));
        nets.remove("proj_default").unwrap();
        let user = sh_ok("iptables", &["-S", "DOCKER-USER"]);
        assert!(!user.contains("-i br-"), "{user}");
    });
    drop(dockerd);
}
