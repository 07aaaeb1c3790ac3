//! Benchmark (kernel tier, root): DNS query latency and server memory.
//!
//! Not a timed test: it prints figures and fails only if queries fail.
//! Setup, all inside a private network namespace: one bridge with a real
//! gateway and four client namespaces, plus 19 more networks in the table
//! whose gateways exist nowhere (bound with IP_FREEBIND), 1,000 records in all.
//! The server is the real spawned process (`ensure_running` re-executing this
//! binary), so its RSS/PSS are its own.
//!
//! Run: `cargo test --release -p berth-network --test dns_bench`.

mod dns_support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use berth_network::dns;
use dns_support::*;

const QUERIES: usize = 1000;
const CLIENTS: usize = 4;
const RELOADS: usize = 30;

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    format!(
        "n={:5}  p50={:>7.1?}  p90={:>7.1?}  p99={:>7.1?}  max={:>7.1?}",
        v.len(),
        p(0.50),
        p(0.90),
        p(0.99),
        v[v.len() - 1]
    )
}

fn memory(pid: dns::Pid) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    format!(
        "RSS {} kB, PSS {} kB, private {} kB, threads {threads}",
        field("Rss:"),
        field("Pss:"),
        (field("Private_Clean:").parse::<u64>().unwrap_or(0)
            + field("Private_Dirty:").parse::<u64>().unwrap_or(0))
    )
}

/// Times `QUERIES` queries on `sock`, each for a name from `names`.
fn timed(sock: &UdpSocket, names: &[String], qtype: u16, expect_rcode: u8) -> Vec<Duration> {
    (0..QUERIES)
        .map(|i| {
            let start = Instant::now();
            let r = ask_on(sock, &names[i % names.len()], qtype).expect("query answered");
            let took = start.elapsed();
            assert_eq!(r.rcode, expect_rcode, "{}", names[i % names.len()]);
            took
        })
        .collect()
}

fn main() {
    if let Some(code) = hidden_server_mode() {
        std::process::exit(code);
    }
    enter_private_netns();
    let mut lab = Lab::new();
    let br = lab.bridge("a", &["10.201.0.1/24"]);
    let clients: Vec<String> = (0..CLIENTS)
        .map(|i| {
            lab.client(
                &format!("c{i}"),
                &br,
                &[&format!("10.201.0.{}/24", 200 + i)],
            )
        })
        .collect();
    let _upstream = FakeUpstream::start("127.0.0.53:53".parse().unwrap());
    // 20 networks × 50 containers: 10 services × 5 replicas each.
    let mut networks = Vec::new();
    for n in 0..20u8 {
        let mut records = Vec::new();
        for c in 0..50u8 {
            let service = format!("svc{}", c / 5);
            records.push(record(
                &format!("{n:02x}{c:02x}{}", "0".repeat(60)),
                &format!("proj{n}-{service}-{}", c % 5 + 1),
                &[&service, &format!("alias{c}")],
                &format!("10.{}.0.{}", 201 + u16::from(n), 2 + c),
                None,
            ));
        }
        if n == 0 {
            for (i, _) in clients.iter().enumerate() {
                records.push(record(
                    &format!("client{i}{}", "0".repeat(56)),
                    &format!("client-{i}"),
                    &[],
                    &format!("10.201.0.{}", 200 + i),
                    None,
                ));
            }
        }
        networks.push(network(
            &format!("proj{n}_default"),
            &[&format!("10.{}.0.0/24", 201 + u16::from(n))],
            &[&format!("10.{}.0.1", 201 + u16::from(n))],
            records,
        ));
    }
    let run = tempfile::tempdir().unwrap();
    let run = run.path().to_owned();
    let _guard = SpawnedServer(run.clone());
    store(&run, networks.clone());
    let resolv = run.join("host-resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.53\n").unwrap();
    let exe = std::env::current_exe().unwrap();
    let args = ["dns-server", "--resolv-conf", resolv.to_str().unwrap()];

    let start = Instant::now();
    let pid = dns::ensure_running(&run, &exe, &args).expect("server starts");
    let cold = start.elapsed();
    let hot: Vec<Duration> = (0..100)
        .map(|_| {
            let s = Instant::now();
            assert_eq!(dns::ensure_running(&run, &exe, &args).unwrap(), pid);
            s.elapsed()
        })
        .collect();
    let mem_idle = memory(pid);

    let server: SocketAddr = "10.201.0.1:53".parse().unwrap();
    // Kernel floor: a plain UDP echo over the same veth and bridge.
    let echo = UdpSocket::bind("10.201.0.1:5300").unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], peer);
        }
    });
    let echo_sock = udp_client(&clients[0], "10.201.0.1:5300".parse().unwrap());
    let echo_times: Vec<Duration> = (0..QUERIES)
        .map(|i| {
            let q = build_query(i as u16, "svc1", A);
            let s = Instant::now();
            echo_sock.send(&q).unwrap();
            let mut buf = [0u8; 512];
            echo_sock.recv(&mut buf).unwrap();
            s.elapsed()
        })
        .collect();

    let services: Vec<String> = (0..10).map(|i| format!("svc{i}")).collect();
    let containers: Vec<String> = (0..50)
        .map(|c| format!("proj0-svc{}-{}", c / 5, c % 5 + 1))
        .collect();
    let sock = udp_client(&clients[0], server);
    // Warm up.
    let _ = timed(&sock, &services, A, 0);
    let seq_service = timed(&sock, &services, A, 0);
    let seq_container = timed(&sock, &containers, A, 0);
    let nx: Vec<String> = (0..10).map(|i| format!("nosuch{i}")).collect();
    let seq_nx = timed(&sock, &nx, A, 3);
    let ptrs: Vec<String> = (0..50)
        .map(|c| format!("{}.0.201.10.in-addr.arpa", 2 + c))
        .collect();
    let seq_ptr = timed(&sock, &ptrs, PTR, 0);
    let fwd: Vec<String> = (0..10).map(|i| format!("h{i}.upstream.test")).collect();
    let seq_fwd = timed(&sock, &fwd, A, 0);

    // Load: every client in a closed loop at once.
    let load_start = Instant::now();
    let handles: Vec<_> = clients
        .iter()
        .map(|ns| {
            let sock = udp_client(ns, server);
            let services = services.clone();
            std::thread::spawn(move || timed(&sock, &services, A, 0))
        })
        .collect();
    let mut loaded = Vec::new();
    for h in handles {
        loaded.extend(h.join().unwrap());
    }
    let load_wall = load_start.elapsed();
    let mem_loaded = memory(pid);

    // Reload: time from a table store to the new name answering.
    let mut reloads = Vec::new();
    let mut stores = Vec::new();
    for i in 0..RELOADS {
        // Spread the writes over the server's 100 ms polling phase.
        std::thread::sleep(Duration::from_millis((i as u64 * 37) % 100));
        let mut nets = networks.clone();
        nets[0].records.push(record(
            &format!("new{i}{}", "0".repeat(58)),
            &format!("new-{i}"),
            &[],
            "10.201.0.150",
            None,
        ));
        let s = Instant::now();
        store(&run, nets);
        stores.push(s.elapsed());
        wait_for(Duration::from_secs(3), || {
            (ask_on(&sock, &format!("new-{i}"), A).ok()?.rcode == 0).then_some(())
        })
        .expect("reload");
        reloads.push(s.elapsed());
    }
    let mem_after = memory(pid);

    println!(
        "\nberth DNS server benchmark ({} records in {} networks, {CLIENTS} client namespaces)",
        20 * 50 + CLIENTS,
        20
    );
    println!("  ensure_running, cold start          {cold:>8.1?}");
    println!("  ensure_running, already running     {}", percentiles(hot));
    println!(
        "  UDP echo floor (same path, no DNS)  {}",
        percentiles(echo_times)
    );
    println!(
        "  A service (5 replicas), sequential  {}",
        percentiles(seq_service)
    );
    println!(
        "  A container name, sequential        {}",
        percentiles(seq_container)
    );
    println!(
        "  A unknown bare name -> NXDOMAIN     {}",
        percentiles(seq_nx)
    );
    println!(
        "  PTR, sequential                     {}",
        percentiles(seq_ptr)
    );
    println!(
        "  forwarded to loopback upstream      {}",
        percentiles(seq_fwd)
    );
    println!(
        "  A service, {CLIENTS} clients at once        {}",
        percentiles(loaded.clone())
    );
    println!(
        "    throughput under load             {:.0} queries/s ({} queries in {load_wall:.1?})",
        loaded.len() as f64 / load_wall.as_secs_f64(),
        loaded.len()
    );
    println!(
        "  DnsTable::store (engine side)       {}",
        percentiles(stores)
    );
    println!(
        "  table change -> answered (reload)   {}",
        percentiles(reloads)
    );
    println!("  memory, idle                        {mem_idle}");
    println!("  memory, after load                  {mem_loaded}");
    println!("  memory, after {RELOADS} reloads            {mem_after}");
}
