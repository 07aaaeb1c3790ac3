//! Network benchmarks (root): create/remove and attach/detach latency, and
//! TCP throughput (iperf3) over a bare veth pair, a berth bridge, a berth
//! published port and Docker's bridge (a dockerd started in its own
//! namespace, as in `tests/docker.rs`). Everything runs in throw-away
//! namespaces named `berthbench-<pid>-*`, deleted at the end.
//!
//! `cargo bench -p berth-network --bench net [-- quick] [latency]`

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_network::{AttachConfig, NetworkConfig, Networks, PortSpec, Protocol};

struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Self {
        let name = format!("berthbench-{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Ns(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let pids = Command::new("ip").args(["netns", "pids", &self.0]).output();
        if let Ok(o) = pids {
            for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", p]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(p: &str, args: &[&str]) -> String {
    let o = Command::new(p).args(args).output().expect(p);
    assert!(
        o.status.success(),
        "{p} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn in_ns<T: Send>(ns: &Ns, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(ns.path()).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<28} n={:<4} median {:.3} ms  p90 {:.3} ms  min {:.3} ms",
        v.len(),
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[0])
    );
}

/// One iperf3 run, server in `server`, client in `client_ns`, `secs` seconds: Gbit/s.
fn iperf(server: &Ns, client_ns: Option<&Ns>, target: &str, port: u16, secs: u32) -> f64 {
    let mut srv = Command::new("ip")
        .args([
            "netns", "exec", &server.0, "iperf3", "-s", "-1", "-p", "5201",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let port = port.to_string();
    let t = secs.to_string();
    let mut args = vec!["-c", target, "-p", &port, "-t", &t, "-J"];
    let o = match client_ns {
        Some(c) => {
            let mut a = vec!["netns", "exec", &c.0, "iperf3"];
            a.append(&mut args);
            Command::new("ip").args(a).output().unwrap()
        }
        None => Command::new("iperf3").args(args).output().unwrap(),
    };
    let _ = srv.kill();
    let _ = srv.wait();
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).expect("iperf3 -J output");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 failed: {text}"))
        / 1e9
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    // `attach`: only the latency part, with 200 attaches.
    let only_latency = std::env::args().any(|a| a == "latency");
    let secs = if quick { 2 } else { 4 };
    assert!(nix::unistd::geteuid().is_root(), "benchmarks need root");
    let dirs = tempfile::tempdir().unwrap();
    let nets = Networks::new(dirs.path().join("networks"), dirs.path().join("run"));
    let host = Ns::new("host");

    // Create / remove.
    let (create, remove) = in_ns(&host, || {
        let (mut c, mut r) = (Vec::new(), Vec::new());
        for i in 0..30 {
            let cfg = NetworkConfig {
                name: format!("n{i}"),
                ..Default::default()
            };
            let t = Instant::now();
            nets.ensure(&cfg).unwrap();
            c.push(t.elapsed());
            let t = Instant::now();
            nets.remove(&cfg.name).unwrap();
            r.push(t.elapsed());
        }
        (c, r)
    });
    stats("network create", create);
    stats("network remove", remove);

    // Attach / detach.
    let n = if quick && !only_latency { 50 } else { 200 };
    let cns: Vec<Ns> = (0..n).map(|i| Ns::new(&format!("a{i}"))).collect();
    let (att, det) = in_ns(&host, || {
        nets.ensure(&NetworkConfig {
            name: "bench".into(),
            ..Default::default()
        })
        .unwrap();
        let mut a = Vec::new();
        for (i, c) in cns.iter().enumerate() {
            let t = Instant::now();
            nets.attach(&AttachConfig {
                network: "bench".into(),
                container_id: format!("c{i}"),
                netns_path: c.path(),
                default_route: true,
                ..Default::default()
            })
            .unwrap();
            a.push(t.elapsed());
        }
        let mut d = Vec::new();
        for (i, c) in cns.iter().enumerate() {
            let t = Instant::now();
            nets.detach("bench", &format!("c{i}"), Some(&c.path()))
                .unwrap();
            d.push(t.elapsed());
        }
        (a, d)
    });
    stats("attach", att);
    stats("detach", det);
    // Dual-stack attaches also wait for the IPv6 addresses' local routes.
    let att6 = in_ns(&host, || {
        nets.ensure(&NetworkConfig {
            name: "bench6".into(),
            enable_ipv6: true,
            ..Default::default()
        })
        .unwrap();
        let mut a = Vec::new();
        for (i, c) in cns.iter().enumerate().take(50) {
            let t = Instant::now();
            nets.attach(&AttachConfig {
                network: "bench6".into(),
                container_id: format!("c{i}"),
                netns_path: c.path(),
                default_route: true,
                ..Default::default()
            })
            .unwrap();
            a.push(t.elapsed());
        }
        nets.remove("bench6").unwrap();
        a
    });
    stats("attach (dual-stack)", att6);
    let t = Instant::now();
    in_ns(&host, || {
        nets.attach(&AttachConfig {
            network: "bench".into(),
            container_id: "p".into(),
            netns_path: cns[0].path(),
            ports: vec![PortSpec {
                protocol: Protocol::Tcp,
                host_ip: None,
                host_ports: Some((15201, 15201)),
                container_ports: (5201, 5201),
            }],
            ..Default::default()
        })
        .unwrap()
    });
    println!(
        "{:<28} {:.3} ms (one, includes the nft transaction)",
        "attach with a published port",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(cns);
    in_ns(&host, || nets.remove("bench").unwrap());

    if only_latency {
        return;
    }
    // Throughput: every path is set up first, then measured in rounds,
    // one run of each path per round, so that the load of a shared machine
    // hits all of them alike; the median per path is reported.
    let (bs, bc) = (Ns::new("bares"), Ns::new("barec"));
    run(
        "ip",
        &[
            "-n", &bs.0, "link", "add", "bv0", "type", "veth", "peer", "name", "bv1", "netns",
            &bc.0,
        ],
    );
    run(
        "ip",
        &["-n", &bs.0, "addr", "add", "10.123.0.1/24", "dev", "bv0"],
    );
    run(
        "ip",
        &["-n", &bc.0, "addr", "add", "10.123.0.2/24", "dev", "bv1"],
    );
    run("ip", &["-n", &bs.0, "link", "set", "bv0", "up"]);
    run("ip", &["-n", &bc.0, "link", "set", "bv1", "up"]);
    let (s, c) = (Ns::new("srv"), Ns::new("cli"));
    let a = in_ns(&host, || {
        nets.ensure(&NetworkConfig {
            name: "tp".into(),
            ..Default::default()
        })
        .unwrap();
        let a = nets
            .attach(&AttachConfig {
                network: "tp".into(),
                container_id: "s".into(),
                netns_path: s.path(),
                default_route: true,
                ports: vec![PortSpec {
                    protocol: Protocol::Tcp,
                    host_ip: None,
                    host_ports: Some((15201, 15201)),
                    container_ports: (5201, 5201),
                }],
                ..Default::default()
            })
            .unwrap();
        nets.attach(&AttachConfig {
            network: "tp".into(),
            container_id: "c".into(),
            netns_path: c.path(),
            default_route: true,
            ..Default::default()
        })
        .unwrap();
        a
    });
    let ip = a.ipv4.unwrap().to_string();
    let gw = a.gateway.unwrap().to_string();
    let docker = if quick { None } else { Docker::start() };
    let rounds = if quick { 1 } else { 5 };
    let mut r: [Vec<f64>; 5] = Default::default();
    for _ in 0..rounds {
        r[0].push(iperf(&bs, Some(&bc), "10.123.0.1", 5201, secs));
        r[1].push(iperf(&s, Some(&c), &ip, 5201, secs));
        r[2].push(iperf(&s, Some(&host), "127.0.0.1", 15201, secs));
        r[3].push(iperf(&s, Some(&c), &gw, 15201, secs));
        if let Some(d) = &docker {
            r[4].push(d.iperf(secs));
        }
    }
    let med = |v: &mut Vec<f64>| {
        let runs: Vec<String> = v.iter().map(|g| format!("{g:.1}")).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().map(|m| (m, runs.join(" ")))
    };
    let (bare, runs) = med(&mut r[0]).unwrap();
    println!(
        "{:<28} {bare:.1} Gbit/s  (median of {rounds} rounds of {secs} s: {runs})",
        "tcp bare veth pair"
    );
    for (i, name) in [
        (1, "tcp berth bridge"),
        (2, "tcp berth published (lo)"),
        (3, "tcp berth published hairpin"),
        (4, "tcp docker bridge"),
    ] {
        if let Some((g, runs)) = med(&mut r[i]) {
            println!(
                "{name:<28} {g:.1} Gbit/s ({:+.1}% vs bare veth; runs {runs})",
                (g / bare - 1.0) * 100.0
            );
        }
    }
    in_ns(&host, || nets.remove("tp").unwrap());
    drop(docker);
}

/// Two Docker containers on docker0 of a dockerd running in its own
/// namespace; iperf3 runs in their network namespaces (entered with
/// nsenter: the busybox image has no iperf3).
struct Docker {
    _ns: Ns,
    dir: tempfile::TempDir,
    child: std::process::Child,
    pids: Vec<String>,
    ip: String,
}

impl Docker {
    fn docker(&self, args: &[&str]) -> (bool, String) {
        let sock = format!("unix://{}", self.dir.path().join("sock").display());
        let o = Command::new("docker")
            .arg("-H")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
    }

    fn start() -> Option<Self> {
        if !Command::new("sh")
            .args(["-c", "command -v dockerd"])
            .status()
            .is_ok_and(|s| s.success())
        {
            println!("tcp docker bridge            (dockerd not installed)");
            return None;
        }
        let ns = Ns::new("dock");
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.0,
                "sh",
                "-c",
                "echo 0 > /proc/sys/net/ipv4/ip_forward",
            ],
        );
        let dir = tempfile::Builder::new()
            .prefix("berthbench-docker")
            .tempdir()
            .unwrap();
        let p = dir.path();
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "nsenter"])
            .arg(format!("--net={}", ns.path().display()))
            .arg("dockerd")
            .arg(format!("--data-root={}", p.join("data").display()))
            .arg(format!("--exec-root={}", p.join("exec").display()))
            .arg(format!("--pidfile={}", p.join("pid").display()))
            .arg(format!("--host=unix://{}", p.join("sock").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = Docker {
            _ns: ns,
            dir,
            child,
            pids: Vec::new(),
            ip: String::new(),
        };
        let t = Instant::now();
        while !d.docker(&["info"]).0 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "dockerd did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let rootfs = d.dir.path().join("rootfs");
        run(
            "/work/shared/bench/busybox-rootfs.sh",
            &[rootfs.to_str().unwrap()],
        );
        let tar = d.dir.path().join("bb.tar");
        run(
            "tar",
            &[
                "-C",
                rootfs.to_str().unwrap(),
                "-cf",
                tar.to_str().unwrap(),
                ".",
            ],
        );
        assert!(d.docker(&["import", tar.to_str().unwrap(), "bb:latest"]).0);
        for name in ["ds", "dc"] {
            assert!(
                d.docker(&["run", "-d", "--name", name, "bb:latest", "sleep", "3600"])
                    .0
            );
            let pid = d.docker(&["inspect", "-f", "{{.State.Pid}}", name]).1;
            d.pids.push(pid);
        }
        d.ip = d
            .docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "ds"])
            .1;
        Some(d)
    }

    fn iperf(&self, secs: u32) -> f64 {
        let nsenter = |pid: &str, args: &[&str]| {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/proc/{pid}/ns/net")).args(args);
            c
        };
        let mut srv = nsenter(&self.pids[0], &["iperf3", "-s", "-1"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let o = nsenter(
            &self.pids[1],
            &["iperf3", "-c", &self.ip, "-t", &secs.to_string(), "-J"],
        )
        .output()
        .unwrap();
        let _ = srv.wait();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap()
            / 1e9
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = self.docker(&["rm", "-f", "ds", "dc"]);
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
