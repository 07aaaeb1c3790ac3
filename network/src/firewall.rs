//! berth's packet filter: one nftables table, rendered whole from the
//! on-disk state and swapped in one atomic `nft -f -` transaction (the table
//! is deleted and recreated inside that transaction, so no packet sees half
//! a rule set and nothing outside berth's table is touched).
//!
//! The table (`inet berth` unless told otherwise) holds:
//! - `raw_prerouting`: packets from a bridge to 127.0.0.0/8 are dropped
//!   (bridges have `route_localnet` on for loopback DNAT; this closes the
//!   hole it opens, cf. CVE-2020-8558);
//! - `forward`: internal networks reach nothing outside their bridge; a new
//!   connection into a bridge from anywhere but that bridge (another berth
//!   network, Docker's bridges, a host interface routing straight to a
//!   container address) is dropped unless it is a published port (DNATed);
//!   answers to connections made from inside pass;
//! - `prerouting`/`output` (nat): published ports to local addresses are
//!   DNATed to the container (`output` covers the host's own connections,
//!   including to 127.0.0.1);
//! - `postrouting` (nat): masquerade for traffic leaving a non-internal
//!   network, for loopback-originated and for hairpin connections.
//!
//! Docker sets the iptables FORWARD policy to DROP and loads br_netfilter,
//! so with Docker running, berth's bridges also get ACCEPT rules in the
//! `DOCKER-USER` chain, the chain Docker leaves to the user.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::error::NetworkError;
use crate::state::NetworkState;

fn q(name: &str) -> String {
    format!("\"{name}\"")
}

fn set(names: &[&str]) -> String {
    format!(
        "{{ {} }}",
        names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
    )
}

/// The whole transaction text for `table` from the networks' states.
/// With no networks it only deletes the table.
pub fn render(table: &str, states: &[NetworkState]) -> String {
    let mut t = String::new();
    // Creating first makes the delete valid when the table does not exist.
    let _ = writeln!(t, "table inet {table}");
    let _ = writeln!(t, "delete table inet {table}");
    if states.is_empty() {
        return t;
    }
    let bridges: Vec<&str> = states.iter().map(|s| s.network.bridge.as_str()).collect();
    let _ = writeln!(t, "table inet {table} {{");

    t.push_str(
        "  chain raw_prerouting {\n    type filter hook prerouting priority raw; policy accept;\n",
    );
    let _ = writeln!(t, "    iifname {} ip daddr 127.0.0.0/8 drop", set(&bridges));
    t.push_str("  }\n");

    t.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    t.push_str("    ct state established,related accept\n");
    for s in states.iter().filter(|s| s.network.internal) {
        let b = q(&s.network.bridge);
        let _ = writeln!(t, "    iifname {b} oifname != {b} drop");
        let _ = writeln!(t, "    oifname {b} iifname != {b} drop");
    }
    t.push_str("    ct status dnat accept\n");
    // New connections into a bridge from anywhere but itself: another berth
    // bridge, Docker's, or a host interface routing straight to a container
    // address (as Docker 28 does). Published ports were accepted above.
    for s in states.iter().filter(|s| !s.network.internal) {
        let b = q(&s.network.bridge);
        let _ = writeln!(t, "    oifname {b} iifname != {b} drop");
    }
    t.push_str("  }\n");

    t.push_str(
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
    );
    t.push_str("    fib daddr type local jump published\n  }\n");
    t.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n");
    t.push_str("    fib daddr type local jump published\n  }\n");

    t.push_str("  chain published {\n");
    for s in states.iter().filter(|s| !s.network.internal) {
        for lease in s.leases.values() {
            for p in &lease.ports {
                let proto = p.protocol.as_str();
                for (family, target) in [("ip", lease.ipv4), ("ip6", lease.ipv6)] {
                    let Some(target) = target else { continue };
                    // 0.0.0.0 means every IPv4 address of the host, :: every
                    // IPv6 one but ::1, which the kernel cannot DNAT (no
                    // route_localnet for IPv6): the userland proxy
                    // (`proxy`) listens there, and must get the packets.
                    let daddr = match p.host_ip {
                        Some(IpAddr::V4(a)) if a.is_unspecified() && family == "ip" => {
                            "meta nfproto ipv4 ".to_owned()
                        }
                        Some(IpAddr::V6(a)) if a.is_unspecified() && family == "ip6" => {
                            "ip6 daddr != ::1 ".to_owned()
                        }
                        Some(IpAddr::V6(a)) if a.is_loopback() => continue,
                        Some(IpAddr::V4(a)) if family == "ip" => format!("ip daddr {a} "),
                        Some(IpAddr::V6(a)) if family == "ip6" => format!("ip6 daddr {a} "),
                        Some(_) => continue,
                        None if family == "ip" => "meta nfproto ipv4 ".to_owned(),
                        None => "ip6 daddr != ::1 ".to_owned(),
                    };
                    let to = match target {
                        IpAddr::V4(a) => format!("{a}:{}", p.container_port),
                        IpAddr::V6(a) => format!("[{a}]:{}", p.container_port),
                    };
                    let _ = writeln!(
                        t,
                        "    {daddr}{proto} dport {} dnat {family} to {to}",
                        p.host_port
                    );
                }
            }
        }
    }
    t.push_str("  }\n");

    t.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for s in states {
        let b = q(&s.network.bridge);
        let _ = writeln!(t, "    oifname {b} ip saddr 127.0.0.0/8 masquerade");
        for pool in &s.network.subnets {
            let fam = if pool.subnet.is_ipv4() { "ip" } else { "ip6" };
            let _ = writeln!(
                t,
                "    oifname {b} ct status dnat {fam} saddr {} masquerade",
                pool.subnet
            );
            if !s.network.internal {
                let _ = writeln!(
                    t,
                    "    {fam} saddr {} oifname != {b} masquerade",
                    pool.subnet
                );
            }
        }
    }
    t.push_str("  }\n}\n");
    t
}

/// Load a transaction with `nft -f -`; all of it or nothing applies.
pub fn apply(text: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetworkError::Spawn {
            program: "nft",
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| NetworkError::Spawn {
                program: "nft",
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| NetworkError::Spawn {
            program: "nft",
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetworkError::Nft {
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The iptables programs that may hold Docker's `DOCKER-USER` chain.
const IPTABLES: [&str; 2] = ["iptables", "ip6tables"];

fn iptables(program: &'static str, args: &[&str]) -> Result<bool, NetworkError> {
    let out = Command::new(program)
        .arg("-w")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| NetworkError::Spawn { program, source })?;
    Ok(out.status.success())
}

/// Whether Docker's `DOCKER-USER` chain may exist in this namespace, found
/// in microseconds without running anything: asked of nftables over netlink
/// (iptables-nft keeps it as chain `DOCKER-USER` of tables `ip filter` /
/// `ip6 filter`), or, for iptables-legacy, whether a legacy `filter` table
/// exists at all (then the iptables programs are asked, in milliseconds).
pub fn docker_chains_present() -> bool {
    let legacy = ["/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"]
        .iter()
        .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().any(|l| l == "filter")));
    // An unanswerable question counts as "maybe": the slow probe decides.
    legacy || nft_chain_exists("filter", "DOCKER-USER").unwrap_or(true)
}

/// `NFT_MSG_GETCHAIN` for `table`/`chain` in families ip and ip6: whether
/// either has it.
fn nft_chain_exists(table: &str, chain: &str) -> std::io::Result<bool> {
    use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETCHAIN: u16 = 4;
    const NFT_MSG_NEWCHAIN: u16 = 3;
    const NFTA_CHAIN_TABLE: u16 = 1;
    const NFTA_CHAIN_NAME: u16 = 3;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let attr = |out: &mut Vec<u8>, kind: u16, value: &str| {
        let len = 4 + value.len() + 1;
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    for (seq, family) in [
        (1u32, libc::NFPROTO_IPV4 as u8),
        (2, libc::NFPROTO_IPV6 as u8),
    ] {
        let mut body = vec![family, 0, 0, 0]; // struct nfgenmsg, NFNETLINK_V0
        attr(&mut body, NFTA_CHAIN_TABLE, table);
        attr(&mut body, NFTA_CHAIN_NAME, chain);
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN).to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&body);
        socket.send(&msg, 0)?;
        // Answers: NEWCHAIN then an ACK, or an error (ENOENT: no such table
        // or chain).
        let found = 'answers: loop {
            buf.clear();
            let n = socket.recv(&mut buf, 0)?.min(buf.len());
            let mut off = 0;
            while off + 16 <= n {
                let word = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
                let len = word(off) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || word(off + 8) != seq {
                    break;
                }
                if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN {
                    break 'answers true;
                }
                if kind == NLMSG_ERROR && off + 20 <= n {
                    let code = word(off + 16) as i32;
                    if code == 0 || code == -libc::ENOENT {
                        break 'answers false;
                    }
                    return Err(std::io::Error::from_raw_os_error(-code));
                }
                off += len.next_multiple_of(4);
            }
            if n == 0 {
                break false;
            }
        };
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The iptables programs whose `filter` table has Docker's `DOCKER-USER`
/// chain, both asked at once (each run costs milliseconds); none at all,
/// without running them, when [`docker_chains_present`] says so.
fn with_docker_user() -> Vec<&'static str> {
    if !docker_chains_present() {
        return Vec::new();
    }
    let children: Vec<_> = IPTABLES
        .iter()
        .filter_map(|program| {
            Command::new(program)
                .args(["-w", "-t", "filter", "-S", "DOCKER-USER"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
                .map(|c| (*program, c))
        })
        .collect();
    children
        .into_iter()
        .filter_map(|(program, mut c)| c.wait().ok()?.success().then_some(program))
        .collect()
}

/// Make sure `DOCKER-USER` (when Docker made it) accepts traffic from and to
/// each bridge, so Docker's FORWARD policy DROP does not cut berth off.
pub fn docker_user_accept(bridges: &[&str]) -> Result<(), NetworkError> {
    for program in with_docker_user() {
        for b in bridges {
            for dir in ["-i", "-o"] {
                let rule = ["DOCKER-USER", dir, b, "-j", "ACCEPT"];
                let mut check = vec!["-t", "filter", "-C"];
                check.extend(rule);
                if iptables(program, &check)? {
                    continue;
                }
                let mut insert = vec!["-t", "filter", "-I"];
                insert.extend(rule);
                if !iptables(program, &insert)? {
                    return Err(NetworkError::Iptables {
                        program,
                        args: insert.join(" "),
                        message: "failed".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Remove the `DOCKER-USER` rules of one bridge (all copies; missing is fine).
pub fn docker_user_forget(bridge: &str) {
    for program in with_docker_user() {
        for dir in ["-i", "-o"] {
            let args = [
                "-t",
                "filter",
                "-D",
                "DOCKER-USER",
                dir,
                bridge,
                "-j",
                "ACCEPT",
            ];
            let mut n = 0;
            while n < 16 && iptables(program, &args).unwrap_or(false) {
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Attachment, Network, Protocol, PublishedPort};
    use crate::ipam::Pool;
    use std::collections::BTreeMap;

    fn net(name: &str, bridge: &str, subnet: &str, internal: bool) -> NetworkState {
        let subnet = subnet.parse().unwrap();
        NetworkState {
            network: Network {
                id: "0".repeat(64),
                name: name.into(),
                bridge: bridge.into(),
                internal,
                enable_ipv6: false,
                mtu: 1500,
                subnets: vec![Pool::resolve(subnet, None, None, &[]).unwrap()],
                labels: BTreeMap::new(),
            },
            leases: BTreeMap::new(),
            last_ipv4: None,
            last_ipv6: None,
            generation: 0,
        }
    }

    fn lease(ip: &str, ports: Vec<PublishedPort>) -> Attachment {
        Attachment {
            network: "n".into(),
            container_id: "c".into(),
            ifname: "eth0".into(),
            host_ifname: "veth0".into(),
            ipv4: Some(ip.parse().unwrap()),
            ipv6: None,
            ipv4_prefix_len: Some(16),
            ipv6_prefix_len: None,
            mac: "02:42:00:00:00:00".into(),
            gateway: None,
            gateway6: None,
            ports,
            container_name: None,
            project: None,
        }
    }

    #[test]
    fn empty_state_only_deletes_the_table() {
        assert_eq!(
            render("berth", &[]),
            "table inet berth\ndelete table inet berth\n"
        );
    }

    #[test]
    fn full_rule_set() {
        let mut a = net("a", "br-a", "172.18.0.0/16", false);
        a.leases.insert(
            "c1".into(),
            lease(
                "172.18.0.2",
                vec![
                    PublishedPort {
                        protocol: Protocol::Tcp,
                        host_ip: None,
                        host_port: 8080,
                        container_port: 80,
                    },
                    PublishedPort {
                        protocol: Protocol::Udp,
                        host_ip: Some("127.0.0.1".parse().unwrap()),
                        host_port: 5353,
                        container_port: 53,
                    },
                ],
            ),
        );
        let i = net("i", "br-i", "10.9.0.0/24", true);
        let text = render("berth", &[a, i]);
        let want = r#"table inet berth
delete table inet berth
table inet berth {
  chain raw_prerouting {
    type filter hook prerouting priority raw; policy accept;
    iifname { "br-a", "br-i" } ip daddr 127.0.0.0/8 drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    iifname "br-i" oifname != "br-i" drop
    oifname "br-i" iifname != "br-i" drop
    ct status dnat accept
    oifname "br-a" iifname != "br-a" drop
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump published
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump published
  }
  chain published {
    meta nfproto ipv4 tcp dport 8080 dnat ip to 172.18.0.2:80
    ip daddr 127.0.0.1 udp dport 5353 dnat ip to 172.18.0.2:53
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "br-a" ip saddr 127.0.0.0/8 masquerade
    oifname "br-a" ct status dnat ip saddr 172.18.0.0/16 masquerade
    ip saddr 172.18.0.0/16 oifname != "br-a" masquerade
    oifname "br-i" ip saddr 127.0.0.0/8 masquerade
    oifname "br-i" ct status dnat ip saddr 10.9.0.0/24 masquerade
  }
}
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn unspecified_host_ip_means_every_address_of_its_family() {
        let mut a = net("a", "br-a", "172.18.0.0/16", false);
        let mut l = lease("172.18.0.2", Vec::new());
        l.ipv6 = Some("fd00::2".parse().unwrap());
        for (ip, port) in [("0.0.0.0", 80), ("::", 81), ("10.0.0.1", 82)] {
            l.ports.push(PublishedPort {
                protocol: Protocol::Tcp,
                host_ip: Some(ip.parse().unwrap()),
                host_port: port,
                container_port: 80,
            });
        }
        a.leases.insert("c".into(), l);
        let text = render("t", &[a]);
        let published: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" dnat ip") && l.contains(" to "))
            .map(str::trim)
            .collect();
        assert_eq!(
            published,
            vec![
                "meta nfproto ipv4 tcp dport 80 dnat ip to 172.18.0.2:80",
                "ip6 daddr != ::1 tcp dport 81 dnat ip6 to [fd00::2]:80",
                "ip daddr 10.0.0.1 tcp dport 82 dnat ip to 172.18.0.2:80",
            ]
        );
    }

    #[test]
    fn internal_networks_publish_nothing_and_masquerade_nothing_outbound() {
        let mut i = net("i", "br-i", "10.9.0.0/24", true);
        i.leases.insert(
            "c".into(),
            lease(
                "10.9.0.2",
                vec![PublishedPort {
                    protocol: Protocol::Tcp,
                    host_ip: None,
                    host_port: 80,
                    container_port: 80,
                }],
            ),
        );
        let text = render("t", &[i]);
        assert!(!text.contains("dnat ip to"));
        assert!(!text.contains("oifname != \"br-i\" masquerade"));
        assert!(!text.contains("oifname { }"));
    }
}
