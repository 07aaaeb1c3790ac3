//! Kernel tier: the DNS server answering real clients in their own network
//! namespaces, through real bridges and veth pairs. Needs root.
//!
//! The whole test process first moves into a private network namespace, so
//! the bridges, port 53 and the fake upstream resolver (127.0.0.53:53, as a
//! systemd-resolved stub would be) are invisible to the host. Client
//! namespaces are `bdns<pid>-*`, removed at the end even on failure. No query
//! leaves the test's own namespaces.
//!
//! `harness = false`: the same binary is the server that `ensure_running`
//! spawns (`<this binary> dns-server …`), which tests the real spawn path.
//! Run: `cargo test --release -p berth-network --test dns [-- NAME…]`.

mod dns_support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_network::dns::{self, ServerConfig};
use dns_support::*;

/// `[(name, fn)]` for the harness, each name spelled once.
macro_rules! named {
    ($($f:ident),* $(,)?) => {
        &[$((stringify!($f), $f as fn())),*]
    };
}

/// Names of the namespaces and the fake upstream, fixed at start.
struct Topo {
    a1: String,
    a2: String,
    b1: String,
    c1: String,
    upstream: SocketAddr,
    upstream_seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

static TOPO: OnceLock<Topo> = OnceLock::new();

fn topo() -> &'static Topo {
    TOPO.get().expect("topology is built in main")
}

const GW_A: &str = "10.201.0.1:53";
const GW_A6: &str = "[fd42:201::1]:53";
const GW_B: &str = "10.202.0.1:53";
const GW_C: &str = "10.203.0.1:53";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = list.iter().map(|s| s.parse().unwrap()).collect();
    v.sort();
    v
}

fn net_a() -> berth_network::dns::DnsNetwork {
    network(
        "proj_a",
        &["10.201.0.0/24", "fd42:201::/64"],
        &["10.201.0.1", "fd42:201::1"],
        vec![
            record(
                "1111111111111111aa",
                "proj-web-1",
                &["web", "frontend", "webhost"],
                "10.201.0.2",
                Some("fd42:201::2"),
            ),
            record(
                "2222222222222222bb",
                "proj-web-2",
                &["web", "frontend"],
                "10.201.0.3",
                Some("fd42:201::3"),
            ),
            record(
                "3333333333333333cc",
                "proj-db-1",
                &["db"],
                "10.201.0.10",
                None,
            ),
        ],
    )
}

fn net_b() -> berth_network::dns::DnsNetwork {
    network(
        "proj_b",
        &["10.202.0.0/24"],
        &["10.202.0.1"],
        vec![record(
            "4444444444444444dd",
            "proj-cache-1",
            &["cache"],
            "10.202.0.2",
            None,
        )],
    )
}

fn net_c() -> berth_network::dns::DnsNetwork {
    network(
        "other_default",
        &["10.203.0.0/24"],
        &["10.203.0.1"],
        vec![record(
            "5555555555555555ee",
            "other-app-1",
            &["app"],
            "10.203.0.2",
            None,
        )],
    )
}

/// A server on a thread with the base table (A and B), upstream = the fake.
fn thread_server(run: &Path) -> ThreadServer {
    store(run, vec![net_a(), net_b()]);
    let mut config = ServerConfig::new(run);
    config.upstreams = Some(vec![topo().upstream]);
    ThreadServer::start(config)
}

fn service_name_answers_every_replica_over_udp_tcp_and_ipv6() {
    let run = tempfile::tempdir().unwrap();
    let server = thread_server(run.path());
    let mut addrs = server.addrs.clone();
    addrs.sort();
    assert_eq!(addrs, [sa(GW_A), sa(GW_B), sa(GW_A6)]);
    let t = topo();
    let r = ask(&t.a1, sa(GW_A), "web", A);
    assert_eq!((r.rcode, r.aa), (NOERROR, true));
    assert_eq!(r.addrs(), ips(&["10.201.0.2", "10.201.0.3"]));
    let r = ask(&t.a2, sa(GW_A), "web", AAAA);
    assert_eq!(r.addrs(), ips(&["fd42:201::2", "fd42:201::3"]));
    let r = ask_tcp(&t.a1, sa(GW_A), "web", A);
    assert_eq!(r.addrs(), ips(&["10.201.0.2", "10.201.0.3"]));
    let r = ask(&t.a1, sa(GW_A6), "web.", A);
    assert_eq!(r.addrs(), ips(&["10.201.0.2", "10.201.0.3"]));
    let r = ask_tcp(&t.a2, sa(GW_A6), "web", AAAA);
    assert_eq!(r.addrs(), ips(&["fd42:201::2", "fd42:201::3"]));
}

fn container_name_alias_hostname_short_id_and_case() {
    let run = tempfile::tempdir().unwrap();
    let _server = thread_server(run.path());
    let a1 = &topo().a1;
    let one = |name: &str| ask(a1, sa(GW_A), name, A).addrs();
    assert_eq!(one("proj-web-2"), ips(&["10.201.0.3"]));
    assert_eq!(one("FRONTEND."), ips(&["10.201.0.2", "10.201.0.3"]));
    assert_eq!(one("webhost"), ips(&["10.201.0.2"]));
    assert_eq!(one("Proj-Db-1.proj_a"), ips(&["10.201.0.10"]));
    assert_eq!(one("333333333333"), ips(&["10.201.0.10"]));
    // db has no IPv6 address: NOERROR with no records, not NXDOMAIN.
    let r = ask(a1, sa(GW_A), "db", AAAA);
    assert_eq!((r.rcode, r.answers.len()), (NOERROR, 0));
}

fn ptr_answers_container_dot_network() {
    let run = tempfile::tempdir().unwrap();
    let _server = thread_server(run.path());
    let a1 = &topo().a1;
    let r = ask(a1, sa(GW_A), "3.0.201.10.in-addr.arpa", PTR);
    assert_eq!(
        (r.rcode, r.answers.clone()),
        (NOERROR, vec![Rr::Ptr("proj-web-2.proj_a".into())])
    );
    let v6 = dns::wire::reverse_name("fd42:201::2".parse().unwrap());
    let r = ask(a1, sa(GW_A6), &v6, PTR);
    assert_eq!(r.answers, [Rr::Ptr("proj-web-1.proj_a".into())]);
    let r = ask(a1, sa(GW_A), "99.0.201.10.in-addr.arpa", PTR);
    assert_eq!(r.rcode, NXDOMAIN);
    // B's address is not visible from A: not ours for this client → upstream.
    let seen = topo().upstream_seen.load(Ordering::Relaxed);
    let r = ask(a1, sa(GW_A), "2.0.202.10.in-addr.arpa", PTR);
    assert_eq!((r.rcode, r.aa), (NXDOMAIN, false));
    assert_eq!(topo().upstream_seen.load(Ordering::Relaxed), seen + 1);
}

fn networks_are_isolated_by_source_address() {
    let run = tempfile::tempdir().unwrap();
    let _server = thread_server(run.path());
    let t = topo();
    let r = ask(&t.b1, sa(GW_B), "web", A);
    assert_eq!((r.rcode, r.answers.len()), (NXDOMAIN, 0));
    let r = ask(&t.b1, sa(GW_B), "proj-web-1.proj_a", A);
    assert_ne!(r.rcode, NOERROR, "{r:?}");
    assert_eq!(
        ask(&t.b1, sa(GW_B), "cache", A).addrs(),
        ips(&["10.202.0.2"])
    );
    assert_eq!(ask(&t.a1, sa(GW_A), "cache", A).rcode, NXDOMAIN);
    // b1 routes to A's gateway through the host: the source still decides.
    let r = ask(&t.b1, sa(GW_A), "web", A);
    assert_eq!((r.rcode, r.answers.len()), (NXDOMAIN, 0));
    assert_eq!(
        ask(&t.b1, sa(GW_A), "cache", A).addrs(),
        ips(&["10.202.0.2"])
    );
}

fn unknown_bare_name_is_nxdomain_and_dotted_names_are_forwarded() {
    let run = tempfile::tempdir().unwrap();
    let _server = thread_server(run.path());
    let t = topo();
    let seen = t.upstream_seen.load(Ordering::Relaxed);
    let r = ask(&t.a1, sa(GW_A), "nosuchservice", A);
    assert_eq!((r.rcode, r.aa), (NXDOMAIN, true));
    assert_eq!(
        t.upstream_seen.load(Ordering::Relaxed),
        seen,
        "a bare name must not be forwarded"
    );
    let r = ask(&t.a1, sa(GW_A), "www.upstream.test", A);
    assert_eq!(
        (r.rcode, r.addrs()),
        (NOERROR, vec![IpAddr::V4(UPSTREAM_ANSWER)])
    );
    let r = ask_tcp(&t.a2, sa(GW_A), "WWW.Upstream.Test", A);
    assert_eq!(r.addrs(), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
    let r = ask(&t.b1, sa(GW_B), "nothing.example", A);
    assert_eq!((r.rcode, r.aa), (NXDOMAIN, false));
    assert_eq!(t.upstream_seen.load(Ordering::Relaxed), seen + 3);
}

fn dead_or_silent_upstream_gives_servfail() {
    let run = tempfile::tempdir().unwrap();
    store(run.path(), vec![net_a()]);
    // Nothing listens on 127.0.0.1:9; the silent one reads and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = ServerConfig::new(run.path());
    config.upstreams = Some(vec![sa("127.0.0.1:9"), silent.local_addr().unwrap()]);
    config.forward_timeout = Duration::from_millis(300);
    let _server = ThreadServer::start(config);
    let start = Instant::now();
    let r = ask(&topo().a1, sa(GW_A), "www.upstream.test", A);
    let took = start.elapsed();
    assert_eq!(r.rcode, SERVFAIL);
    assert!(
        took >= Duration::from_millis(250),
        "silent upstream waited only {took:?}"
    );
    // Local names still answer.
    assert_eq!(ask(&topo().a1, sa(GW_A), "web", A).rcode, NOERROR);
}

fn internal_network_does_not_forward() {
    let run = tempfile::tempdir().unwrap();
    let mut internal = net_a();
    internal.internal = true;
    store(run.path(), vec![internal]);
    let mut config = ServerConfig::new(run.path());
    config.upstreams = Some(vec![topo().upstream]);
    let _server = ThreadServer::start(config);
    let seen = topo().upstream_seen.load(Ordering::Relaxed);
    let r = ask(&topo().a1, sa(GW_A), "www.upstream.test", A);
    assert_eq!(r.rcode, SERVFAIL);
    assert_eq!(topo().upstream_seen.load(Ordering::Relaxed), seen);
    assert_eq!(
        ask(&topo().a1, sa(GW_A), "db", A).addrs(),
        ips(&["10.201.0.10"])
    );
}

fn container_dns_servers_and_ipv6_upstreams_are_used() {
    let run = tempfile::tempdir().unwrap();
    let mut a = net_a();
    // web-2 has `dns: [127.0.0.53]`; the host's upstream is an IPv6 one.
    a.records[1].dns = vec!["127.0.0.53".parse().unwrap()];
    store(run.path(), vec![a]);
    let v6 = FakeUpstream::start(sa("[::1]:0"));
    let mut config = ServerConfig::new(run.path());
    config.upstreams = Some(vec![v6.addr]);
    let _server = ThreadServer::start(config);
    let t = topo();
    let (via_v6, via_own) = (
        v6.seen.load(Ordering::Relaxed),
        t.upstream_seen.load(Ordering::Relaxed),
    );
    let r = ask(&t.a1, sa(GW_A), "one.upstream.test", A);
    assert_eq!(r.addrs(), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
    assert_eq!(v6.seen.load(Ordering::Relaxed), via_v6 + 1);
    let r = ask(&t.a2, sa(GW_A), "two.upstream.test", A);
    assert_eq!(r.addrs(), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
    assert_eq!(
        t.upstream_seen.load(Ordering::Relaxed),
        via_own + 1,
        "web-2's own dns server"
    );
    assert_eq!(v6.seen.load(Ordering::Relaxed), via_v6 + 1);
}

fn reload_follows_table_changes() {
    let run = tempfile::tempdir().unwrap();
    store(run.path(), vec![net_a()]);
    let mut config = ServerConfig::new(run.path());
    config.upstreams = Some(vec![topo().upstream]);
    let server = ThreadServer::start(config);
    assert_eq!(
        server.addrs.len(),
        2,
        "A's two gateways: {:?}",
        server.addrs
    );
    let t = topo();
    assert_eq!(ask(&t.a1, sa(GW_A), "newcomer", A).rcode, NXDOMAIN);
    // A new container on A and a new network C.
    let mut a = net_a();
    a.records.push(record(
        "6666666666666666ff",
        "proj-newcomer-1",
        &["newcomer"],
        "10.201.0.20",
        None,
    ));
    let start = Instant::now();
    store(run.path(), vec![a.clone(), net_c()]);
    let found = wait_for(Duration::from_secs(3), || {
        let r = ask(&t.a1, sa(GW_A), "newcomer", A);
        (r.rcode == NOERROR).then_some(r)
    })
    .expect("the new record is not answered after a table change");
    println!("    reload seen after {:?}", start.elapsed());
    assert_eq!(found.addrs(), ips(&["10.201.0.20"]));
    assert_eq!(ask(&t.c1, sa(GW_C), "app", A).addrs(), ips(&["10.203.0.2"]));
    // C goes away: its gateway stops answering.
    store(run.path(), vec![a]);
    let gone = wait_for(Duration::from_secs(3), || {
        let sock = udp_client(&t.c1, sa(GW_C));
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ask_on(&sock, "app", A).is_err().then_some(())
    });
    assert!(
        gone.is_some(),
        "the removed network's gateway still answers"
    );
    // A broken table is ignored; the last good one stays.
    std::fs::write(dns::table_path(run.path()), "{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ask(&t.a1, sa(GW_A), "newcomer", A).rcode, NOERROR);
}

fn spawned_server_is_single_and_restarted_after_kill_9() {
    let run = tempfile::tempdir().unwrap();
    let run = run.path().to_owned();
    let _guard = SpawnedServer(run.clone());
    store(&run, vec![net_a(), net_b()]);
    let resolv = run.join("host-resolv.conf");
    std::fs::write(
        &resolv,
        "# like systemd-resolved\nnameserver 127.0.0.53\noptions edns0\n",
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let resolv_s = resolv.to_str().unwrap().to_owned();
    let args = ["dns-server", "--resolv-conf", resolv_s.as_str()];
    // Two racing callers start one server.
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (run, exe, resolv_s) = (run.clone(), exe.clone(), resolv_s.clone());
            std::thread::spawn(move || {
                dns::ensure_running(&run, &exe, &["dns-server", "--resolv-conf", &resolv_s])
                    .unwrap()
            })
        })
        .collect();
    let pids: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(pids[0], pids[1]);
    let first = pids[0];
    assert_eq!(dns::ensure_running(&run, &exe, &args).unwrap(), first);
    assert_eq!(dns::running(&run).unwrap(), Some(first));
    let t = topo();
    assert_eq!(
        ask(&t.a1, sa(GW_A), "web", A).addrs(),
        ips(&["10.201.0.2", "10.201.0.3"])
    );
    // Forwarding through the resolv.conf upstream on loopback.
    assert_eq!(
        ask(&t.b1, sa(GW_B), "x.upstream.test", A).addrs(),
        vec![IpAddr::V4(UPSTREAM_ANSWER)]
    );
    // kill -9, and at once (no waiting for the process to be gone: it still
    // holds its lock for a moment after kill(2) returns) the next call
    // starts a new one that answers. Meanwhile, another berth command keeps
    // asking whether one runs (`ps`): its probes of the lock must not make
    // the new server give up. Several rounds, as the window is short.
    let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prober = {
        let (run, probing) = (run.clone(), std::sync::Arc::clone(&probing));
        std::thread::spawn(move || {
            while probing.load(Ordering::Relaxed) {
                let _ = dns::running(&run);
            }
        })
    };
    let mut killed = first;
    for round in 0..5 {
        nix::sys::signal::kill(killed, nix::sys::signal::Signal::SIGKILL).unwrap();
        let start = Instant::now();
        let next = dns::ensure_running(&run, &exe, &args).unwrap();
        println!("    restart after kill -9 took {:?}", start.elapsed());
        assert_ne!(
            next, killed,
            "round {round}: the killed server was taken as alive"
        );
        assert_eq!(
            ask(&t.a2, sa(GW_A), "web", AAAA).addrs(),
            ips(&["fd42:201::2", "fd42:201::3"]),
            "round {round}"
        );
        killed = next;
    }
    let second = killed;
    probing.store(false, Ordering::Relaxed);
    prober.join().unwrap();
    // A second `serve` refuses to run beside it.
    let out = Command::new(&exe)
        .args(args)
        .env("BERTH_RUN", &run)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{out:?}"
    );
    // The last `down`: kept while a network is left, stopped once none is.
    assert_eq!(dns::stop_if_unused(&run).unwrap(), None);
    assert_eq!(dns::running(&run).unwrap(), Some(second));
    dns::DnsTable::update(&run, |t| t.networks.clear()).unwrap();
    assert_eq!(dns::stop_if_unused(&run).unwrap(), Some(second));
    assert_eq!(dns::running(&run).unwrap(), None);
    assert!(
        !dns::dns_dir(&run).join("server.pid").exists(),
        "a stopped server removes its pidfile"
    );
    // A probe holding server.lock for an instant as the server starts (as
    // `running` does) must not make it give up.
    dns::DnsTable::update(&run, |t| t.set_network(net_a())).unwrap();
    let lock_file = std::fs::File::open(dns::dns_dir(&run).join("server.lock")).unwrap();
    let probe =
        nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let mut child = Command::new(&exe)
        .args(args)
        .env("BERTH_RUN", &run)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(probe);
    let pid = dns::Pid::from_raw(child.id() as i32);
    let up = wait_for(Duration::from_secs(3), || {
        (dns::running(&run).unwrap() == Some(pid)).then_some(())
    });
    assert!(
        up.is_some(),
        "the server gave up on a briefly held lock: {:?}",
        child.try_wait()
    );
    assert_eq!(dns::stop(&run).unwrap(), Some(pid));
    child.wait().unwrap();
}

fn many_replicas_truncate_over_udp_and_come_whole_over_tcp() {
    let run = tempfile::tempdir().unwrap();
    let mut a = net_a();
    for i in 0..40u8 {
        let id = format!("{i:02}{}", "9".repeat(16));
        a.records.push(record(
            &id,
            &format!("proj-big-{}", i + 1),
            &["big"],
            &format!("10.201.0.{}", 100 + i),
            None,
        ));
    }
    store(run.path(), vec![a]);
    let mut config = ServerConfig::new(run.path());
    config.upstreams = Some(vec![topo().upstream]);
    let _server = ThreadServer::start(config);
    let sock = udp_client(&topo().a1, sa(GW_A));
    sock.send(&build_query(99, "big", A)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    assert!(n <= 512, "a plain UDP answer is {n} bytes");
    let r = parse_response(&buf[..n]);
    assert!(r.tc && r.answers.len() < 40, "{r:?}");
    let r = ask_tcp(&topo().a1, sa(GW_A), "big", A);
    assert!(!r.tc);
    assert_eq!(r.addrs().len(), 40);
}

fn resolv_conf_change_switches_upstream() {
    let run = tempfile::tempdir().unwrap();
    store(run.path(), vec![net_a()]);
    let resolv = run.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.9\n").unwrap();
    let mut config = ServerConfig::new(run.path());
    config.resolv_conf = resolv.clone();
    config.poll_interval = Duration::from_millis(100);
    config.forward_timeout = Duration::from_millis(200);
    let _server = ThreadServer::start(config);
    assert_eq!(
        ask(&topo().a1, sa(GW_A), "x.upstream.test", A).rcode,
        SERVFAIL
    );
    std::fs::write(&resolv, "search example\nnameserver 127.0.0.53\n").unwrap();
    let r = wait_for(Duration::from_secs(3), || {
        let r = ask(&topo().a1, sa(GW_A), "x.upstream.test", A);
        (r.rcode == NOERROR).then_some(r)
    })
    .expect("the new resolv.conf upstream is not used");
    assert_eq!(r.addrs(), vec![IpAddr::V4(UPSTREAM_ANSWER)]);
}

fn busybox_nslookup_resolves_a_service() {
    let run = tempfile::tempdir().unwrap();
    let _server = thread_server(run.path());
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo().a1,
            "busybox",
            "nslookup",
            "web",
            "10.201.0.1",
        ])
        .output()
        .expect("precondition: busybox (busybox-static) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for addr in ["10.201.0.2", "10.201.0.3", "fd42:201::2", "fd42:201::3"] {
        assert!(text.contains(addr), "{addr} missing from:\n{text}");
    }
}

/// Runs `cmd` in namespace `ns` with `resolv` as its /etc/resolv.conf, in a
/// private mount namespace (the host's /etc is never changed).
fn run_with_resolv_conf(ns: &str, resolv: &Path, cmd: &str) -> std::process::Output {
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec ip netns exec {ns} {cmd}",
        resolv.display()
    );
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("precondition: unshare (util-linux) and sh must be installed")
}

fn container_resolv_conf_works_with_glibc() {
    let run = tempfile::tempdir().unwrap();
    let _server = thread_server(run.path());
    let host = "nameserver 10.255.255.53\nsearch upstream.test\noptions timeout:1\n";
    let text = dns::resolv_conf("10.201.0.1".parse().unwrap(), host, &[], &[], &[]);
    assert!(text.contains("options timeout:1 ndots:0"), "{text}");
    let resolv = run.path().join("resolv.conf");
    std::fs::write(&resolv, &text).unwrap();
    let a1 = &topo().a1;
    let out = run_with_resolv_conf(a1, &resolv, "getent ahostsv4 web");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("10.201.0.2") && stdout.contains("10.201.0.3"),
        "{stdout}"
    );
    let out = run_with_resolv_conf(a1, &resolv, "getent ahostsv6 proj-web-2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fd42:201::3"), "{stdout}");
    // `www` is NXDOMAIN here, so glibc goes on to `www.upstream.test`
    // through the search list, which the server forwards.
    let out = run_with_resolv_conf(a1, &resolv, "getent hosts www");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&UPSTREAM_ANSWER.to_string()),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_with_resolv_conf(a1, &resolv, "getent hosts 10.201.0.3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("proj-web-2.proj_a"), "{stdout}");
    // Without search domains (`dns_search: ["."]`) an unknown name fails.
    let text = dns::resolv_conf("10.201.0.1".parse().unwrap(), host, &[], &[".".into()], &[]);
    std::fs::write(&resolv, &text).unwrap();
    let out = run_with_resolv_conf(a1, &resolv, "getent hosts nosuchservice");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown name must not resolve"
    );
}

fn main() {
    if let Some(code) = hidden_server_mode() {
        std::process::exit(code);
    }
    enter_private_netns();
    let ok = {
        let mut lab = Lab::new();
        let a = lab.bridge("a", &["10.201.0.1/24", "fd42:201::1/64"]);
        let b = lab.bridge("b", &["10.202.0.1/24"]);
        let c = lab.bridge("c", &["10.203.0.1/24"]);
        let upstream = FakeUpstream::start(sa("127.0.0.53:53"));
        let topo = Topo {
            a1: lab.client("a1", &a, &["10.201.0.2/24", "fd42:201::2/64"]),
            a2: lab.client("a2", &a, &["10.201.0.3/24", "fd42:201::3/64"]),
            b1: lab.client("b1", &b, &["10.202.0.2/24"]),
            c1: lab.client("c1", &c, &["10.203.0.2/24"]),
            upstream: upstream.addr,
            upstream_seen: std::sync::Arc::clone(&upstream.seen),
        };
        ip(&[
            "-n",
            &topo.b1,
            "route",
            "add",
            "default",
            "via",
            "10.202.0.1",
        ]);
        assert!(TOPO.set(topo).is_ok());
        run_tests(named![
            service_name_answers_every_replica_over_udp_tcp_and_ipv6,
            container_name_alias_hostname_short_id_and_case,
            ptr_answers_container_dot_network,
            networks_are_isolated_by_source_address,
            unknown_bare_name_is_nxdomain_and_dotted_names_are_forwarded,
            dead_or_silent_upstream_gives_servfail,
            internal_network_does_not_forward,
            container_dns_servers_and_ipv6_upstreams_are_used,
            reload_follows_table_changes,
            resolv_conf_change_switches_upstream,
            many_replicas_truncate_over_udp_and_come_whole_over_tcp,
            spawned_server_is_single_and_restarted_after_kill_9,
            busybox_nslookup_resolves_a_service,
            container_resolv_conf_works_with_glibc,
        ])
    };
    std::process::exit(if ok { 0 } else { 1 });
}
