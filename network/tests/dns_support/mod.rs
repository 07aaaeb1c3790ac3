//! Shared by the DNS kernel tests and the DNS benchmark: a private network
//! namespace for the whole test process, bridges and client namespaces made
//! with `ip`, a DNS client that asks from inside a client namespace, a fake
//! upstream resolver on loopback, the hidden `dns-server` mode that lets the
//! test binary be the server that `ensure_running` spawns, and a tiny harness.
//!
//! Everything kernel-side lives in the process's own network namespace
//! (unshared at start) or in named namespaces `bdns<pid>-*`, removed by Drop
//! guards; the host's interfaces, routes and port 53 are never touched.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_network::dns::{self, DnsNetwork, DnsRecord, DnsTable, Server, ServerConfig};

/// Runs `ip args…`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("precondition: cannot run `ip` (iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Preconditions of every kernel test: root, `ip`, and a private network
/// namespace for this process (so bridges and port 53 are ours alone).
pub fn enter_private_netns() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "precondition: the DNS kernel tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
    );
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect(
        "precondition: unshare(CLONE_NEWNET) failed; the DNS kernel tests need CAP_SYS_ADMIN",
    );
    ip(&["link", "set", "lo", "up"]);
}

/// The hidden server mode: `<test binary> dns-server [--resolv-conf PATH]
/// [--timeout-ms N]` serves `$BERTH_RUN`. Returns `None` when not asked to.
pub fn hidden_server_mode() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("dns-server") {
        return None;
    }
    let run = std::env::var_os("BERTH_RUN").expect("BERTH_RUN is set by ensure_running");
    let mut config = ServerConfig::new(Path::new(&run));
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().expect("flag value");
        match flag.as_str() {
            "--resolv-conf" => config.resolv_conf = PathBuf::from(value),
            "--timeout-ms" => {
                config.forward_timeout = Duration::from_millis(value.parse().unwrap())
            }
            other => panic!("unknown flag {other}"),
        }
    }
    Some(match dns::serve_with(config) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dns-server: {e}");
            1
        }
    })
}

/// A bridge with a gateway, and client namespaces with one veth each.
/// Removes its namespaces and links on drop.
pub struct Lab {
    pub tag: String,
    netns: Vec<String>,
    links: Vec<String>,
}

impl Lab {
    pub fn new() -> Lab {
        Lab {
            tag: format!("bdns{}", std::process::id()),
            netns: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A bridge `<tag><suffix>` with the given gateway addresses (CIDR).
    pub fn bridge(&mut self, suffix: &str, addrs: &[&str]) -> String {
        let name = format!("{}{suffix}", self.tag);
        ip(&["link", "add", &name, "type", "bridge"]);
        self.links.push(name.clone());
        for a in addrs {
            let mut args = vec!["addr", "add", a, "dev", &name];
            if a.contains(':') {
                args.push("nodad");
            }
            ip(&args);
        }
        ip(&["link", "set", &name, "up"]);
        name
    }

    /// A namespace `<tag>-<suffix>` on `bridge` with `eth0` holding `addrs`.
    pub fn client(&mut self, suffix: &str, bridge: &str, addrs: &[&str]) -> String {
        let ns = format!("{}-{suffix}", self.tag);
        ip(&["netns", "add", &ns]);
        self.netns.push(ns.clone());
        let host_end = format!("{}{suffix}", self.tag);
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        self.links.push(host_end.clone());
        ip(&["link", "set", &host_end, "master", bridge, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        for a in addrs {
            let mut args = vec!["-n", &ns, "addr", "add", a, "dev", "eth0"];
            if a.contains(':') {
                args.push("nodad");
            }
            ip(&args);
        }
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for link in self.links.iter().rev() {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`. Sockets it creates
/// stay in that namespace when handed back.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in netns panicked")
}

/// A UDP socket in namespace `ns`, connected to `server`.
pub fn udp_client(ns: &str, server: SocketAddr) -> UdpSocket {
    let sock = in_netns(ns, move || {
        let any: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        UdpSocket::bind(any).expect("bind client")
    });
    sock.connect(server).expect("connect client");
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock
}

/// A record of an answer, as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rr {
    A(Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Ptr(String),
    Other(u16),
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub id: u16,
    pub rcode: u8,
    pub aa: bool,
    pub tc: bool,
    pub answers: Vec<Rr>,
}

impl Resp {
    pub fn addrs(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .answers
            .iter()
            .filter_map(|rr| match rr {
                Rr::A(a) => Some(IpAddr::V4(*a)),
                Rr::Aaaa(a) => Some(IpAddr::V6(*a)),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }
}

pub const A: u16 = 1;
pub const PTR: u16 = 12;
pub const AAAA: u16 = 28;
pub const NOERROR: u8 = 0;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;

/// A query, written independently of the crate's encoder.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

fn read_name(buf: &[u8], mut pos: usize) -> (String, usize) {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = buf[pos] as usize;
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(pos + 2);
            pos = ((len & 0x3f) << 8) | buf[pos + 1] as usize;
            continue;
        }
        if len == 0 {
            return (labels.join("."), end.unwrap_or(pos + 1));
        }
        labels.push(String::from_utf8_lossy(&buf[pos + 1..pos + 1 + len]).into_owned());
        pos += 1 + len;
    }
    panic!("name loops");
}

/// Parses a response, written independently of the crate's parser.
pub fn parse_response(buf: &[u8]) -> Resp {
    assert!(buf.len() >= 12, "short response");
    let flags = u16::from_be_bytes([buf[2], buf[3]]);
    assert!(flags & 0x8000 != 0, "not a response");
    let qd = u16::from_be_bytes([buf[4], buf[5]]);
    let an = u16::from_be_bytes([buf[6], buf[7]]);
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_name(buf, pos).1 + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        let (_, p) = read_name(buf, pos);
        let rtype = u16::from_be_bytes([buf[p], buf[p + 1]]);
        let rdlen = u16::from_be_bytes([buf[p + 8], buf[p + 9]]) as usize;
        let data = &buf[p + 10..p + 10 + rdlen];
        answers.push(match rtype {
            A => Rr::A(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            AAAA => Rr::Aaaa(<[u8; 16]>::try_from(data).unwrap().into()),
            PTR => Rr::Ptr(read_name(buf, p + 10).0),
            t => Rr::Other(t),
        });
        pos = p + 10 + rdlen;
    }
    Resp {
        id: u16::from_be_bytes([buf[0], buf[1]]),
        rcode: (flags & 0xf) as u8,
        aa: flags & 0x0400 != 0,
        tc: flags & 0x0200 != 0,
        answers,
    }
}

/// Asks `server` from namespace `ns` over UDP.
pub fn ask(ns: &str, server: SocketAddr, name: &str, qtype: u16) -> Resp {
    let sock = udp_client(ns, server);
    ask_on(&sock, name, qtype)
        .unwrap_or_else(|e| panic!("{name} type {qtype} at {server} from {ns}: {e}"))
}

/// Asks over an existing client socket; an error if nothing comes back.
pub fn ask_on(sock: &UdpSocket, name: &str, qtype: u16) -> std::io::Result<Resp> {
    let id = rand_id();
    sock.send(&build_query(id, name, qtype))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf)?;
        let resp = parse_response(&buf[..n]);
        if resp.id == id {
            return Ok(resp);
        }
    }
}

/// Asks `server` from namespace `ns` over TCP.
pub fn ask_tcp(ns: &str, server: SocketAddr, name: &str, qtype: u16) -> Resp {
    let mut stream = in_netns(ns, move || {
        TcpStream::connect_timeout(&server, Duration::from_secs(3)).expect("tcp connect")
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let q = build_query(7, name, qtype);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg).unwrap();
    parse_response(&msg)
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u16
}

/// A fake upstream resolver on `addr` (UDP and TCP): `*.upstream.test` A
/// answers 198.51.100.7, anything else NXDOMAIN. Counts queries it saw.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub seen: Arc<std::sync::atomic::AtomicUsize>,
}

pub const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn fake_answer(q: &[u8]) -> Vec<u8> {
    let (name, qend) = read_name(q, 12);
    let qtype = u16::from_be_bytes([q[qend], q[qend + 1]]);
    let mut r = q[..qend + 4].to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    r[6..12].copy_from_slice(&[0; 6]);
    if name.to_ascii_lowercase().ends_with("upstream.test") && qtype == A {
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&UPSTREAM_ANSWER.octets());
    } else {
        r[3] |= 3;
    }
    r
}

impl FakeUpstream {
    pub fn start(addr: SocketAddr) -> FakeUpstream {
        let udp = UdpSocket::bind(addr).expect("fake upstream bind");
        let addr = udp.local_addr().unwrap();
        let tcp = std::net::TcpListener::bind(addr).expect("fake upstream tcp bind");
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, n) = (Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok((len, peer)) = udp.recv_from(&mut buf) {
                    n.fetch_add(1, Ordering::Relaxed);
                    let _ = udp.send_to(&fake_answer(&buf[..len]), peer);
                }
                if let Ok((mut stream, _)) = tcp.accept() {
                    n.fetch_add(1, Ordering::Relaxed);
                    stream.set_nonblocking(false).unwrap();
                    let mut len = [0u8; 2];
                    if stream.read_exact(&mut len).is_ok() {
                        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                        if stream.read_exact(&mut q).is_ok() {
                            let r = fake_answer(&q);
                            let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&r);
                            let _ = stream.write_all(&framed);
                        }
                    }
                }
            }
        });
        FakeUpstream { addr, stop, seen }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A server on a thread of this process; stopped on drop.
pub struct ThreadServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub addrs: Vec<SocketAddr>,
}

impl ThreadServer {
    pub fn start(config: ServerConfig) -> ThreadServer {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(config).await.expect("server bind");
                ready_tx.send(server.local_addrs()).unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addrs = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server ready");
        ThreadServer {
            stop: Some(stop_tx),
            thread: Some(thread),
            addrs,
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Stops the spawned server of `run_dir` on drop.
pub struct SpawnedServer(pub PathBuf);

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        if let Err(e) = dns::stop(&self.0) {
            eprintln!("cannot stop the DNS server of {}: {e}", self.0.display());
        }
    }
}

/// A record with the given names and addresses.
pub fn record(id: &str, container: &str, names: &[&str], v4: &str, v6: Option<&str>) -> DnsRecord {
    DnsRecord {
        container_id: id.into(),
        container_name: container.into(),
        names: names.iter().map(|s| s.to_string()).collect(),
        ipv4: Some(v4.parse().unwrap()),
        ipv6: v6.map(|s| s.parse().unwrap()),
        dns: vec![],
        links: Default::default(),
    }
}

/// A network entry.
pub fn network(
    name: &str,
    subnets: &[&str],
    gateways: &[&str],
    records: Vec<DnsRecord>,
) -> DnsNetwork {
    DnsNetwork {
        name: name.into(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        gateways: gateways.iter().map(|s| s.parse().unwrap()).collect(),
        internal: false,
        records,
    }
}

/// Polls `f` every 1 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Writes a table.
pub fn store(run: &Path, networks: Vec<DnsNetwork>) {
    DnsTable { networks }.store(run).expect("store table");
}

/// A named test.
pub type Test = (&'static str, fn());

/// Runs `tests` (those whose name contains a non-flag argument, if any),
/// printing libtest-like lines; false if any failed.
pub fn run_tests(tests: &[Test]) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, f) in &selected {
        let start = Instant::now();
        let ok = std::panic::catch_unwind(f).is_ok();
        println!(
            "test {name} ... {} ({:.0?})",
            if ok { "ok" } else { "FAILED" },
            start.elapsed()
        );
        if !ok {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        tests.len() - selected.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
    }
    failed.is_empty()
}
