//! Kernel-tier test helpers: throw-away network namespaces with Drop guards.
//!
//! Every test runs its body on a thread that has entered a fresh "host"
//! namespace (`berthtest-<pid>-<n>-host`), so bridges, nft tables, sysctls
//! and published ports never touch the real host. Containers are more
//! namespaces, with busybox run in them through `ip netns exec`. Dropping a
//! namespace guard kills what runs in it and deletes it, which takes every
//! interface and nft rule inside with it, even when the test failed.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_network::{NetworkConfig, Networks};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Fail (never skip) when a precondition is missing.
pub fn require_root_and_tools() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "kernel tests need root (run as root with CAP_NET_ADMIN)"
    );
    for tool in ["ip", "nft", "busybox"] {
        let ok = Command::new(tool)
            .arg(if tool == "busybox" { "true" } else { "-V" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(ok, "kernel tests need `{tool}` on PATH");
    }
}

pub fn sh(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

pub fn sh_ok(program: &str, args: &[&str]) -> String {
    let o = sh(program, args);
    assert!(
        o.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A named network namespace that is deleted (with everything in it) on drop.
pub struct TestNs {
    pub name: String,
    children: std::sync::Mutex<Vec<std::process::Child>>,
}

impl TestNs {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("berthtest-{}-{n}-{tag}", std::process::id());
        sh_ok("ip", &["netns", "add", &name]);
        let ns = Self {
            name,
            children: Default::default(),
        };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Run a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend(args);
        sh("ip", &all)
    }

    pub fn exec_ok(&self, args: &[&str]) -> String {
        let o = self.exec(args);
        assert!(
            o.status.success(),
            "in {}: {args:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Start a long-running command in the namespace; killed on drop of the ns.
    pub fn spawn(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend(args);
        let child = Command::new("ip")
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in netns");
        self.children.lock().unwrap().push(child);
    }

    /// Serve `body` over HTTP on `port` with busybox httpd.
    pub fn serve_http(&self, port: u16, body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), body).unwrap();
        let listen = port.to_string();
        let d = dir.path().to_str().unwrap().to_owned();
        self.spawn(&["busybox", "httpd", "-f", "-p", &listen, "-h", &d]);
        // Wait until it listens.
        for _ in 0..100 {
            let o = self.exec(&["busybox", "netstat", "-ltn"]);
            if String::from_utf8_lossy(&o.stdout).contains(&format!(":{port} ")) {
                return dir;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("httpd did not start in {}", self.name);
    }

    /// HTTP GET `http://addr/` from inside the namespace; the body, or
    /// `None` on failure. (busybox-static's wget crashes in its resolver, so
    /// the client is a thread in the namespace.)
    pub fn http_get(&self, addr: &str) -> Option<String> {
        in_netns(self, || http_get(addr))
    }

    pub fn ping(&self, ip: &str) -> bool {
        self.exec(&["busybox", "ping", "-c", "1", "-W", "1", ip])
            .status
            .success()
    }

    fn kill_all(&self) {
        let o = sh("ip", &["netns", "pids", &self.name]);
        for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        self.kill_all();
        for mut c in self.children.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// HTTP/1.0 GET `http://addr/` from the calling thread's namespace, with a
/// 2 s timeout: the body, or `None` on any failure.
pub fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = addr
        .parse()
        .or_else(|_| format!("{addr}:80").parse())
        .expect("addr or addr:port");
    let t = std::time::Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&sa, t).ok()?;
    s.set_read_timeout(Some(t)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    if !resp.starts_with("HTTP/1.") || !resp.contains(" 200 ") {
        return None;
    }
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// Run `f` on a thread inside `ns`; panics propagate.
pub fn in_netns<T: Send>(ns: &TestNs, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(ns.path()).expect("open netns");
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// A test's world: a host namespace, state dirs, and `Networks` on them.
pub struct World {
    pub host: TestNs,
    pub dirs: tempfile::TempDir,
    pub nets: Networks,
}

impl World {
    pub fn new(tag: &str) -> Self {
        require_root_and_tools();
        let host = TestNs::new(&format!("{tag}-h"));
        let dirs = tempfile::tempdir().unwrap();
        let nets = Networks::new(dirs.path().join("networks"), dirs.path().join("run"));
        Self { host, dirs, nets }
    }

    /// Run `f` in the host namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce(&Networks) -> T + Send) -> T {
        let nets = &self.nets;
        in_netns(&self.host, move || f(nets))
    }

    pub fn state_dir(&self) -> &Path {
        self.dirs.path()
    }
}

pub fn net(name: &str) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        ..Default::default()
    }
}

/// Names of all links in the calling thread's namespace.
pub fn link_names() -> Vec<String> {
    let out = sh_ok("ip", &["-o", "link", "show"]);
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
        .collect()
}

/// The ruleset of the calling thread's namespace.
pub fn nft_ruleset() -> String {
    sh_ok("nft", &["list", "ruleset"])
}

/// An address on the calling thread's namespace, on one end of a veth pair
/// (this kernel has no dummy driver), both ends up.
pub fn host_address(ifname: &str, cidr: &str) {
    let peer = format!("{ifname}p");
    sh_ok(
        "ip",
        &["link", "add", ifname, "type", "veth", "peer", "name", &peer],
    );
    sh_ok("ip", &["addr", "add", cidr, "dev", ifname]);
    sh_ok("ip", &["link", "set", ifname, "up"]);
    sh_ok("ip", &["link", "set", &peer, "up"]);
}

/// An IPv6 address on the calling thread's namespace (as [`host_address`],
/// without DAD), returned once the kernel routes it locally: its local route
/// is added by a kernel worker some time after the address itself.
pub fn host_address6(ifname: &str, cidr: &str) {
    let peer = format!("{ifname}p");
    sh_ok(
        "ip",
        &["link", "add", ifname, "type", "veth", "peer", "name", &peer],
    );
    sh_ok("ip", &["link", "set", ifname, "up"]);
    sh_ok("ip", &["link", "set", &peer, "up"]);
    sh_ok("ip", &["addr", "add", cidr, "dev", ifname, "nodad"]);
    let ip: std::net::IpAddr = cidr.split('/').next().unwrap().parse().unwrap();
    let mut nl = berth_network::netlink::Netlink::open().unwrap();
    let start = std::time::Instant::now();
    while !nl.routes_locally(ip).unwrap() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(3),
            "{cidr} on {ifname} never got its local route"
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}
