//! Kernel tier (root): real bridges, veths, nft rules and traffic, each test
//! inside its own throw-away host namespace (see `common`).

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpListener};
use std::process::Command;

use berth_network::{
    AttachConfig, Attachment, IpamConfig, NetworkConfig, NetworkError, Networks, PortOwner,
    PortSpec, Protocol,
};
use common::*;

fn attach(nets: &Networks, network: &str, c: &TestNs, id: &str) -> Attachment {
    nets.attach(&AttachConfig {
        network: network.into(),
        container_id: id.into(),
        container_name: Some(format!("proj-{id}-1")),
        project: Some("proj".into()),
        netns_path: c.path(),
        default_route: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("attach {id}: {e}"))
}

fn tcp(host: u16, container: u16) -> PortSpec {
    PortSpec {
        protocol: Protocol::Tcp,
        host_ip: None,
        host_ports: Some((host, host)),
        container_ports: (container, container),
    }
}

#[test]
fn two_containers_reach_each_other_on_one_network() {
    let w = World::new("one");
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    let _www = c1.serve_http(80, "hello from c1");
    w.run(|nets| {
        let n = nets.ensure(&net("proj_default")).unwrap();
        assert!(
            n.bridge.starts_with("br-") && n.bridge.len() == 15,
            "{}",
            n.bridge
        );
        assert_eq!(n.subnets[0].subnet.to_string(), "172.17.0.0/16");
        let a1 = attach(nets, "proj_default", &c1, "c1");
        let a2 = attach(nets, "proj_default", &c2, "c2");
        assert_eq!(a1.ifname, "eth0");
        assert_eq!(a1.ipv4, Some("172.17.0.2".parse().unwrap()));
        assert_eq!(a2.ipv4, Some("172.17.0.3".parse().unwrap()));
        assert_eq!(a1.mac, "02:42:ac:11:00:02");
        let ip1 = a1.ipv4.unwrap().to_string();
        assert_eq!(c2.http_get(&ip1).as_deref(), Some("hello from c1"));
        assert!(c1.ping(&a2.ipv4.unwrap().to_string()));
        // Container view: address, MAC, lo up, default route via the gateway.
        let addr = c1.exec_ok(&["ip", "-o", "addr", "show", "eth0"]);
        assert!(addr.contains("172.17.0.2/16"), "{addr}");
        let link = c1.exec_ok(&["ip", "-o", "link", "show", "eth0"]);
        assert!(link.contains("02:42:ac:11:00:02"), "{link}");
        let route = c1.exec_ok(&["ip", "route", "show", "default"]);
        assert!(route.contains("via 172.17.0.1 dev eth0"), "{route}");
        assert!(c1
            .exec_ok(&["ip", "-o", "link", "show", "lo"])
            .contains("UP"));
        // Idempotent ensure and attach.
        assert_eq!(nets.ensure(&net("proj_default")).unwrap(), n);
        assert_eq!(attach(nets, "proj_default", &c1, "c1"), a1);
        // A second interface gets eth1.
        nets.ensure(&net("proj_back")).unwrap();
        let b1 = nets
            .attach(&AttachConfig {
                network: "proj_back".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(b1.ifname, "eth1");
        assert_eq!(b1.ipv4, Some("172.18.0.2".parse().unwrap()));
        // The veth goes away behind berth's back (container netns recreated,
        // manual delete): attaching again restores it with the same lease.
        sh_ok("ip", &["link", "del", &a1.host_ifname]);
        assert!(!c2.ping(&ip1));
        let again = attach(nets, "proj_default", &c1, "c1");
        assert_eq!(
            (again.ipv4, &again.ifname, &again.mac),
            (a1.ipv4, &a1.ifname, &a1.mac)
        );
        assert_eq!(c2.http_get(&ip1).as_deref(), Some("hello from c1"));
        nets.detach("proj_default", "c2", Some(&c2.path())).unwrap();
        assert!(!c2.exec_ok(&["ip", "-o", "link"]).contains("eth0"));
        assert!(!link_names().contains(&a2.host_ifname));
        nets.remove("proj_default").unwrap();
        nets.remove("proj_back").unwrap();
        assert!(!nft_ruleset().contains("berth"));
    });
}

/// A bridge port (the host end of a container's veth) and an IPv4-only
/// container end get no IPv6 address of their own, so attaching one sends
/// no DAD or router solicitation for the bridge to flood to every other
/// container.
#[test]
fn bridge_ports_get_no_ipv6_addresses() {
    let w = World::new("nov6");
    let c1 = TestNs::new("c1");
    w.run(|nets| {
        nets.ensure(&net("proj_default")).unwrap();
        let a = attach(nets, "proj_default", &c1, "c1");
        // Both ends are up, so the kernel would have given the host end a
        // link-local address by now (at carrier on) without addrgenmode none.
        let link = sh_ok("ip", &["-d", "-o", "link", "show", &a.host_ifname]);
        assert!(link.contains("state UP"), "{link}");
        assert!(link.contains("addrgenmode none"), "{link}");
        let v6 = sh_ok("ip", &["-6", "-o", "addr", "show", "dev", &a.host_ifname]);
        assert_eq!(v6.trim(), "", "host end has IPv6 addresses");
        let inner = c1.exec_ok(&["ip", "-6", "-o", "addr", "show", "dev", "eth0"]);
        assert_eq!(inner.trim(), "", "container end has IPv6 addresses");
        nets.remove("proj_default").unwrap();
    });
}

#[test]
fn nothing_crosses_two_networks() {
    let w = World::new("two");
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    let _www = c2.serve_http(80, "c2");
    w.run(|nets| {
        nets.ensure(&net("a")).unwrap();
        nets.ensure(&net("b")).unwrap();
        let _a1 = attach(nets, "a", &c1, "c1");
        let b2 = attach(nets, "b", &c2, "c2");
        let ip2 = b2.ipv4.unwrap().to_string();
        // c1 has a default route via a's gateway, so without isolation it
        // would reach c2 through the host.
        assert!(!c1.ping(&ip2), "ping crossed networks");
        assert_eq!(c1.http_get(&ip2), None);
        // The host itself reaches both.
        assert!(sh("busybox", &["ping", "-c", "1", "-W", "1", &ip2])
            .status
            .success());
        nets.remove("a").unwrap();
        nets.remove("b").unwrap();
    });
}

/// An "outside" namespace, routed from the host namespace by a veth pair
/// (198.51.100.0/24, a documentation range), serving HTTP.
fn outside(w: &World) -> (TestNs, tempfile::TempDir) {
    let out = TestNs::new("out");
    let www = out.serve_http(80, "outside");
    let host = w.host.name.clone();
    sh_ok(
        "ip",
        &[
            "-n", &host, "link", "add", "upl", "type", "veth", "peer", "name", "wan", "netns",
            &out.name,
        ],
    );
    sh_ok(
        "ip",
        &["-n", &host, "addr", "add", "198.51.100.1/24", "dev", "upl"],
    );
    sh_ok("ip", &["-n", &host, "link", "set", "upl", "up"]);
    out.exec_ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "wan"]);
    out.exec_ok(&["ip", "link", "set", "wan", "up"]);
    (out, www)
}

#[test]
fn internal_network_reaches_nothing_outside_and_outside_reaches_only_published_ports() {
    let w = World::new("int");
    let (out, _www) = outside(&w);
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    let _w1 = c1.serve_http(80, "c1");
    w.run(|nets| {
        nets.ensure(&net("ext")).unwrap();
        nets.ensure(&NetworkConfig {
            internal: true,
            ..net("int")
        })
        .unwrap();
        let e = nets
            .attach(&AttachConfig {
                network: "ext".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                default_route: true,
                ports: vec![tcp(8080, 80)],
                ..Default::default()
            })
            .unwrap();
        let i = attach(nets, "int", &c2, "c2");
        let i3 = attach(nets, "int", &c1, "c1");
        // A normal network reaches outside, masqueraded behind the host.
        assert_eq!(c1.http_get("198.51.100.2").as_deref(), Some("outside"));
        // An internal one does not, but its members reach each other.
        assert_eq!(c2.http_get("198.51.100.2"), None);
        assert!(!c2.ping("198.51.100.2"));
        assert!(c2.ping(&i3.ipv4.unwrap().to_string()));
        assert!(i.gateway.is_some());
        assert!(!c2.exec_ok(&["ip", "route"]).contains("default"));
        // From outside (a host routing to the container subnets through
        // this one): the published port answers, direct access does not.
        out.exec_ok(&["ip", "route", "add", "172.16.0.0/12", "via", "198.51.100.1"]);
        assert_eq!(out.http_get("198.51.100.1:8080").as_deref(), Some("c1"));
        assert_eq!(out.http_get(&e.ipv4.unwrap().to_string()), None);
        assert!(!out.ping(&i.ipv4.unwrap().to_string()));
        nets.remove("ext").unwrap();
        nets.remove("int").unwrap();
    });
    drop(out);
}

#[test]
fn published_port_answers_from_loopback_host_address_and_containers() {
    let w = World::new("pub");
    let (c1, c2, c3) = (TestNs::new("c1"), TestNs::new("c2"), TestNs::new("c3"));
    let _www = c1.serve_http(80, "published");
    w.run(|nets| {
        host_address("hostif", "10.250.0.1/24");
        nets.ensure(&net("web")).unwrap();
        nets.ensure(&net("other")).unwrap();
        let a = nets
            .attach(&AttachConfig {
                network: "web".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                default_route: true,
                ports: vec![
                    tcp(8080, 80),
                    PortSpec {
                        protocol: Protocol::Tcp,
                        host_ip: Some("127.0.0.1".parse().unwrap()),
                        host_ports: Some((9000, 9005)),
                        container_ports: (80, 80),
                    },
                    PortSpec {
                        protocol: Protocol::Udp,
                        host_ip: None,
                        host_ports: Some((5353, 5353)),
                        container_ports: (53, 53),
                    },
                ],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(a.ports.len(), 3);
        // UDP: an echo server in the container, a client on the host.
        let c1_file = std::fs::File::open(c1.path()).unwrap();
        let echo = std::thread::spawn(move || {
            nix::sched::setns(&c1_file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = std::net::UdpSocket::bind("0.0.0.0:53").unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut b = [0u8; 64];
            if let Ok((n, from)) = s.recv_from(&mut b) {
                let _ = s.send_to(&b[..n], from);
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let u = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        u.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        u.send_to(b"ping-udp", "10.250.0.1:5353").unwrap();
        let mut b = [0u8; 64];
        let (n, _) = u.recv_from(&mut b).expect("udp published port answers");
        assert_eq!(&b[..n], b"ping-udp");
        echo.join().unwrap();
        assert_eq!(a.ports[1].host_port, 9000);
        assert_eq!(http_get("127.0.0.1:8080").as_deref(), Some("published"));
        assert_eq!(http_get("10.250.0.1:8080").as_deref(), Some("published"));
        assert_eq!(http_get("127.0.0.1:9000").as_deref(), Some("published"));
        // host_ip scoping: 9000 is published on 127.0.0.1 only.
        assert_eq!(http_get("10.250.0.1:9000"), None);
        // Hairpin from a container of the same network and from another network.
        let _b = attach(nets, "web", &c2, "c2");
        let _c = attach(nets, "other", &c3, "c3");
        assert_eq!(c2.http_get("10.250.0.1:8080").as_deref(), Some("published"));
        assert_eq!(c3.http_get("10.250.0.1:8080").as_deref(), Some("published"));
        // Detach unpublishes.
        nets.detach("web", "c1", Some(&c1.path())).unwrap();
        assert!(!nft_ruleset().contains("dport 8080"));
        assert_eq!(http_get("127.0.0.1:8080"), None);
        nets.remove("web").unwrap();
        nets.remove("other").unwrap();
    });
}

#[test]
fn taken_port_is_refused_with_its_owner_and_nothing_is_made() {
    let w = World::new("taken");
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    w.run(|nets| {
        nets.ensure(&net("web")).unwrap();
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let before = link_names();
        let cfg = AttachConfig {
            network: "web".into(),
            container_id: "c1".into(),
            netns_path: c1.path(),
            ports: vec![tcp(port, 80)],
            ..Default::default()
        };
        match nets.attach(&cfg) {
            Err(NetworkError::PortTaken {
                port: p,
                owner: PortOwner::Process { pid, name },
                ..
            }) => {
                assert_eq!(p, port);
                assert_eq!(pid, std::process::id());
                assert!(!name.is_empty());
            }
            other => panic!("expected PortTaken by this process, got {other:?}"),
        }
        let err = nets.check_ports(&cfg.ports).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        // Nothing half-made: no lease, no veth, no rule, nothing in the container.
        assert!(nets.attachments("web").unwrap().is_empty());
        assert_eq!(link_names(), before);
        assert!(!nft_ruleset().contains(&format!("dport {port}")));
        assert!(!c1.exec_ok(&["ip", "-o", "link"]).contains("eth0"));
        drop(listener);

        // A port another berth container publishes names that container.
        nets.attach(&AttachConfig {
            container_name: Some("proj-web-1".into()),
            project: Some("proj".into()),
            ports: vec![tcp(8181, 80)],
            ..cfg.clone()
        })
        .unwrap();
        let err = nets
            .attach(&AttachConfig {
                container_id: "c2".into(),
                netns_path: c2.path(),
                ports: vec![tcp(8181, 80)],
                ..cfg.clone()
            })
            .unwrap_err();
        assert!(
            matches!(&err, NetworkError::PortTaken { owner: PortOwner::Container { container, project: Some(p), .. }, .. } if container == "proj-web-1" && p == "proj"),
            "{err}"
        );
        assert!(err.to_string().contains("proj-web-1"), "{err}");
        assert_eq!(nets.attachments("web").unwrap().len(), 1);
        nets.remove("web").unwrap();
    });
}

#[test]
fn parallel_attaches_never_share_an_address() {
    const N: usize = 200;
    let w = World::new("par");
    let containers: Vec<TestNs> = (0..N).map(|i| TestNs::new(&format!("p{i}"))).collect();
    w.run(|nets| {
        nets.ensure(&NetworkConfig {
            ipam: vec![IpamConfig {
                subnet: Some("10.77.0.0/24".parse().unwrap()),
                ..Default::default()
            }],
            ..net("par")
        })
        .unwrap();
        let results: Vec<Attachment> = std::thread::scope(|s| {
            let hs: Vec<_> = containers
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    s.spawn(move || {
                        nets.attach(&AttachConfig {
                            network: "par".into(),
                            container_id: format!("c{i}"),
                            netns_path: c.path(),
                            ..Default::default()
                        })
                        .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ips: BTreeSet<IpAddr> = results.iter().filter_map(|a| a.ipv4).collect();
        assert_eq!(ips.len(), N, "addresses were shared");
        let macs: BTreeSet<&str> = results.iter().map(|a| a.mac.as_str()).collect();
        assert_eq!(macs.len(), N);
        assert_eq!(nets.attachments("par").unwrap().len(), N);
        // The kernel agrees with the leases.
        for (c, a) in containers.iter().zip(&results).step_by(37) {
            let shown = c.exec_ok(&["ip", "-o", "-4", "addr", "show", "eth0"]);
            assert!(shown.contains(&a.ipv4.unwrap().to_string()), "{shown}");
        }
        // The /24 has 253 usable addresses; the next attaches exhaust it.
        let extra: Vec<TestNs> = (0..54).map(|i| TestNs::new(&format!("x{i}"))).collect();
        let mut exhausted = None;
        for (i, c) in extra.iter().enumerate() {
            match nets.attach(&AttachConfig {
                network: "par".into(),
                container_id: format!("x{i}"),
                netns_path: c.path(),
                ..Default::default()
            }) {
                Ok(_) => {}
                Err(e) => {
                    exhausted = Some((i, e));
                    break;
                }
            }
        }
        let (i, e) = exhausted.expect("pool never exhausted");
        assert_eq!(i, 53, "{e}");
        assert!(e.to_string().contains("no free address"), "{e}");
        std::thread::scope(|s| {
            for i in 0..N {
                s.spawn(move || nets.detach("par", &format!("c{i}"), None).unwrap());
            }
        });
        assert_eq!(nets.attachments("par").unwrap().len(), 53);
        nets.remove("par").unwrap();
        assert!(!link_names().iter().any(|l| l.starts_with("veth")));
    });
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let w = World::new("bad");
    let c1 = TestNs::new("c1");
    w.run(|nets| {
        let sub = |s: &str| IpamConfig {
            subnet: Some(s.parse().unwrap()),
            ..Default::default()
        };
        nets.ensure(&NetworkConfig {
            ipam: vec![IpamConfig {
                ip_range: Some("10.10.0.4/30".parse().unwrap()),
                ..sub("10.10.0.0/24")
            }],
            ..net("base")
        })
        .unwrap();
        let links = link_names();
        let rules = nft_ruleset();
        let listed = nets.list().unwrap();
        let unchanged = |what: &str| {
            assert_eq!(link_names(), links, "{what} left a link");
            assert_eq!(nft_ruleset(), rules, "{what} changed the ruleset");
            assert_eq!(nets.list().unwrap(), listed, "{what} changed the state");
        };
        let e = nets
            .ensure(&NetworkConfig {
                ipam: vec![sub("10.10.0.128/25")],
                ..net("overlap")
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("overlaps 10.10.0.0/24 of network \"base\""),
            "{e}"
        );
        unchanged("overlap");
        let e = nets
            .ensure(&NetworkConfig {
                ipam: vec![sub("10.20.0.0/24"), sub("10.20.0.0/16")],
                ..net("selfoverlap")
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps"), "{e}");
        unchanged("self overlap");
        let e = "10.30.0.5/24"
            .parse::<berth_network::Subnet>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("host bits"), "{e}");
        let e = nets
            .ensure(&NetworkConfig {
                ipam: vec![IpamConfig {
                    gateway: Some("10.41.0.1".parse().unwrap()),
                    ..sub("10.40.0.0/24")
                }],
                ..net("gw")
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gateway 10.41.0.1 is not a usable address of subnet 10.40.0.0/24"),
            "{e}"
        );
        unchanged("gateway");
        assert!(matches!(
            nets.ensure(&net("bad/name")),
            Err(NetworkError::InvalidName(_))
        ));
        unchanged("name");
        // Address already leased, address outside, exhausted ip_range.
        let cfg = |id: &str, ip: Option<&str>| AttachConfig {
            network: "base".into(),
            container_id: id.into(),
            netns_path: c1.path(),
            interface_name: Some(format!("e{id}")),
            ipv4: ip.map(|i| i.parse().unwrap()),
            ..Default::default()
        };
        nets.attach(&cfg("1", Some("10.10.0.50"))).unwrap();
        let links = link_names();
        let e = nets
            .attach(&cfg("2", Some("10.10.0.50")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10.10.0.50 is already in use by container 1"),
            "{e}"
        );
        let e = nets
            .attach(&cfg("2", Some("10.99.0.5")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a usable address"), "{e}");
        assert_eq!(link_names(), links);
        for id in ["3", "4", "5", "6"] {
            nets.attach(&cfg(id, None)).unwrap();
        }
        let e = nets.attach(&cfg("7", None)).unwrap_err().to_string();
        assert!(e.contains("no free address left in 10.10.0.4/30"), "{e}");
        let e = nets.attach(&cfg("3", None));
        assert!(e.is_ok(), "re-attach is idempotent");
        let e = nets
            .attach(&AttachConfig {
                interface_name: Some("e3".into()),
                ..cfg("8", Some("10.10.0.60"))
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("interface e3 already exists"), "{e}");
        // Exhausted default pool: host routes cover all of it.
        host_address("pool0", "172.16.0.1/12");
        sh_ok("ip", &["addr", "add", "192.168.0.1/16", "dev", "pool0"]);
        let e = nets.ensure(&net("nopool")).unwrap_err().to_string();
        assert!(e.contains("default address pool is exhausted"), "{e}");
        assert!(nets.get("nopool").unwrap().is_none());
        sh_ok("ip", &["link", "del", "pool0"]);
        nets.remove("base").unwrap();
        assert!(nets.list().unwrap().is_empty());
    });
}

#[test]
fn default_pool_avoids_host_routes_ipv6_works_and_ensure_repairs() {
    let w = World::new("pool");
    let c1 = TestNs::new("c1");
    let _www = c1.serve_http(80, "six");
    w.run(|nets| {
        host_address("docker0x", "172.17.0.1/16");
        sh_ok("ip", &["route", "add", "172.18.3.0/24", "dev", "docker0x"]);
        let n = nets.ensure(&net("p")).unwrap();
        assert_eq!(n.subnets[0].subnet.to_string(), "172.19.0.0/16");
        let n6 = nets
            .ensure(&NetworkConfig {
                enable_ipv6: true,
                ..net("six")
            })
            .unwrap();
        assert_eq!(n6.subnets[0].subnet.to_string(), "172.20.0.0/16");
        assert!(n6.subnets[1].subnet.to_string().starts_with("fd"));
        let a = nets
            .attach(&AttachConfig {
                network: "six".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                default_route: true,
                ports: vec![tcp(8086, 80)],
                ..Default::default()
            })
            .unwrap();
        let v6 = a.ipv6.unwrap();
        // Published on the host's IPv6 and IPv4 addresses.
        host_address6("v6if", "fd99::1/64");
        sh_ok("ip", &["addr", "add", "10.251.0.1/24", "dev", "v6if"]);
        // Every first connection answers (no retry: see
        // ipv6_answers_the_first_connection_right_after_attach).
        assert_eq!(http_get("[fd99::1]:8086").as_deref(), Some("six"));
        assert_eq!(http_get(&format!("[{v6}]:80")).as_deref(), Some("six"));
        assert_eq!(http_get("10.251.0.1:8086").as_deref(), Some("six"));
        assert_eq!(http_get(&format!("[{v6}]:80")).as_deref(), Some("six"));
        assert!(c1
            .exec_ok(&["ip", "-6", "-o", "addr", "show", "eth0"])
            .contains(&v6.to_string()));
        assert!(c1
            .exec(&[
                "busybox",
                "ping",
                "-6",
                "-c",
                "1",
                "-W",
                "2",
                &a.gateway6.unwrap().to_string()
            ])
            .status
            .success());
        // The bridge disappears (reboot, manual delete): ensure makes it again.
        sh_ok("ip", &["link", "del", &n.bridge]);
        assert_eq!(nets.ensure(&net("p")).unwrap(), n);
        assert!(link_names().contains(&n.bridge));
        assert!(sh_ok("ip", &["-o", "addr", "show", &n.bridge]).contains("172.19.0.1/16"));
        nets.remove("p").unwrap();
        nets.remove("six").unwrap();
    });
}

/// The first connection to a container's IPv6 address, straight or through
/// a published port, made the moment `attach` returns, answers: the
/// container's and the gateway's IPv6 addresses are routed locally by then
/// (their local routes come from a kernel worker, after the address).
#[test]
fn ipv6_answers_the_first_connection_right_after_attach() {
    const N: usize = 8;
    let w = World::new("v6first");
    let cs: Vec<TestNs> = (0..N).map(|i| TestNs::new(&format!("c{i}"))).collect();
    let _www: Vec<_> = cs.iter().map(|c| c.serve_http(80, "six")).collect();
    w.run(|nets| {
        host_address6("v6if", "fd99::1/64");
        nets.ensure(&NetworkConfig {
            enable_ipv6: true,
            ..net("six")
        })
        .unwrap();
        for (i, c) in cs.iter().enumerate() {
            let port = 8100 + i as u16;
            let a = nets
                .attach(&AttachConfig {
                    network: "six".into(),
                    container_id: format!("c{i}"),
                    netns_path: c.path(),
                    default_route: true,
                    ports: vec![tcp(port, 80)],
                    ..Default::default()
                })
                .unwrap();
            let (v6, gw6) = (a.ipv6.unwrap(), a.gateway6.unwrap());
            let how = if i % 2 == 0 { "published" } else { "direct" };
            let first = if i % 2 == 0 {
                http_get(&format!("[fd99::1]:{port}"))
            } else {
                http_get(&format!("[{v6}]:80"))
            };
            assert_eq!(
                first.as_deref(),
                Some("six"),
                "first {how} IPv6 connection to container {i} failed"
            );
            // And the container reaches its gateway (a UDP query to the
            // gateway, as a DNS lookup would be, answered by a host socket).
            let responder = std::net::UdpSocket::bind((gw6, 5300 + i as u16)).unwrap();
            responder
                .set_read_timeout(Some(std::time::Duration::from_secs(1)))
                .unwrap();
            let answered = in_netns(c, || {
                let u = std::net::UdpSocket::bind("[::]:0").unwrap();
                u.set_read_timeout(Some(std::time::Duration::from_secs(1)))
                    .unwrap();
                u.send_to(b"q", (gw6, 5300 + i as u16)).unwrap();
                let mut b = [0u8; 8];
                let (n, from) = responder.recv_from(&mut b).ok()?;
                responder.send_to(&b[..n], from).ok()?;
                u.recv_from(&mut b).ok().map(|(n, _)| b[..n].to_vec())
            });
            assert_eq!(
                answered.as_deref(),
                Some(&b"q"[..]),
                "container {i} could not reach its IPv6 gateway {gw6} at once"
            );
        }
        nets.remove("six").unwrap();
    });
}

/// The port proxy is this test binary, re-run as `port_proxy_worker`
/// (berth runs itself as `berth system port-proxy`).
fn proxy_command() -> berth_network::proxy::ProxyCommand {
    berth_network::proxy::ProxyCommand {
        exe: std::env::current_exe().unwrap(),
        args: [
            "--ignored",
            "--test-threads",
            "1",
            "--exact",
            "port_proxy_worker",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// Not a test: the port proxy process of `proxy_command` (its pidfile and
/// rules come after its own name on the command line).
#[test]
#[ignore = "run by ipv6_loopback_published_ports_answer_through_the_proxy"]
fn port_proxy_worker() {
    let args: Vec<String> = std::env::args()
        .skip_while(|a| a != "port_proxy_worker")
        .skip(1)
        .collect();
    let (pidfile, rules) = args.split_first().expect("PIDFILE RULE…");
    let rules: Vec<berth_network::proxy::ProxyRule> =
        rules.iter().map(|r| r.parse().unwrap()).collect();
    berth_network::proxy::serve(std::path::Path::new(pidfile), &rules).unwrap();
}

/// Ports published on IPv6 loopback (`::1` itself, `::`, or every address)
/// answer on `[::1]` through the userland proxy, to an IPv4-only container
/// and to a dual-stack one, for TCP and UDP; the proxy goes with the port.
#[test]
fn ipv6_loopback_published_ports_answer_through_the_proxy() {
    let w = World::new("lo6");
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    let _w1 = c1.serve_http(80, "four");
    let _w2 = c2.serve_http(80, "dual");
    let on = |ip: &str, proto, host: u16, container: u16| PortSpec {
        protocol: proto,
        host_ip: Some(ip.parse().unwrap()),
        host_ports: Some((host, host)),
        container_ports: (container, container),
    };
    w.run(|nets| {
        // Without a proxy configured, ::1 is refused clearly and nothing stays.
        nets.ensure(&net("four")).unwrap();
        let err = nets
            .attach(&AttachConfig {
                network: "four".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                ports: vec![on("::1", Protocol::Tcp, 8081, 80)],
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("port proxy"), "{err}");
        assert!(nets.attachments("four").unwrap().is_empty());

        let nets = nets.clone().with_port_proxy(proxy_command());
        nets.ensure(&NetworkConfig {
            enable_ipv6: true,
            ..net("six")
        })
        .unwrap();
        let start = std::time::Instant::now();
        nets.attach(&AttachConfig {
            network: "four".into(),
            container_id: "c1".into(),
            netns_path: c1.path(),
            default_route: true,
            ports: vec![
                tcp(8080, 80),
                on("::1", Protocol::Tcp, 8081, 80),
                on("::1", Protocol::Udp, 5353, 53),
            ],
            ..Default::default()
        })
        .unwrap();
        println!("    attach with a port proxy: {:?}", start.elapsed());
        nets.attach(&AttachConfig {
            network: "six".into(),
            container_id: "c2".into(),
            netns_path: c2.path(),
            default_route: true,
            ports: vec![tcp(8090, 80), on("::", Protocol::Tcp, 8091, 80)],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(http_get("[::1]:8080").as_deref(), Some("four"));
        assert_eq!(http_get("127.0.0.1:8080").as_deref(), Some("four"));
        assert_eq!(http_get("[::1]:8081").as_deref(), Some("four"));
        assert_eq!(http_get("127.0.0.1:8081"), None, "8081 is on ::1 only");
        assert_eq!(http_get("[::1]:8090").as_deref(), Some("dual"));
        assert_eq!(http_get("127.0.0.1:8090").as_deref(), Some("dual"));
        assert_eq!(http_get("[::1]:8091").as_deref(), Some("dual"));
        // UDP through the proxy: an echo server in c1, a client on [::1].
        let c1_file = std::fs::File::open(c1.path()).unwrap();
        let echo = std::thread::spawn(move || {
            nix::sched::setns(&c1_file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s = std::net::UdpSocket::bind("0.0.0.0:53").unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut b = [0u8; 64];
            if let Ok((n, from)) = s.recv_from(&mut b) {
                let _ = s.send_to(&b[..n], from);
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let u = std::net::UdpSocket::bind("[::1]:0").unwrap();
        u.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        u.send_to(b"ping-udp6", "[::1]:5353").unwrap();
        let mut b = [0u8; 64];
        let (n, _) = u.recv_from(&mut b).expect("udp on [::1] answers");
        assert_eq!(&b[..n], b"ping-udp6");
        echo.join().unwrap();
        // A proxy killed with -9 is started again by the next
        // `ensure_port_proxies` (every `up`), even right after the kill.
        let pidfile = nets.proxy_pidfile("four", "c1");
        let killed = berth_network::proxy::running(&pidfile).unwrap().unwrap();
        assert_eq!(nets.ensure_port_proxies().unwrap(), 0, "all are running");
        nix::sys::signal::kill(killed, nix::sys::signal::Signal::SIGKILL).unwrap();
        assert_eq!(nets.ensure_port_proxies().unwrap(), 1);
        let again = berth_network::proxy::running(&pidfile).unwrap().unwrap();
        assert_ne!(again, killed);
        assert_eq!(http_get("[::1]:8081").as_deref(), Some("four"));
        // The proxy's port is berth's: another attach asking for it is told
        // which container holds it.
        match nets.check_ports(&[on("::1", Protocol::Tcp, 8081, 80)]) {
            Err(NetworkError::PortTaken {
                owner: PortOwner::Container { container, .. },
                ..
            }) => assert_eq!(container, "c1"),
            other => panic!("{other:?}"),
        }
        // Detach stops the proxy: the process is gone, [::1] refuses.
        let pidfile = nets.proxy_pidfile("four", "c1");
        let pid = berth_network::proxy::running(&pidfile).unwrap().unwrap();
        nets.detach("four", "c1", Some(&c1.path())).unwrap();
        assert_eq!(berth_network::proxy::running(&pidfile).unwrap(), None);
        assert!(!pidfile.exists());
        let gone = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "proxy {pid} outlived its port");
        assert_eq!(http_get("[::1]:8081"), None);
        // An internal network publishes nothing, on ::1 neither.
        nets.ensure(&NetworkConfig {
            internal: true,
            ..net("int")
        })
        .unwrap();
        nets.attach(&AttachConfig {
            network: "int".into(),
            container_id: "c1".into(),
            netns_path: c1.path(),
            ports: vec![on("::1", Protocol::Tcp, 8085, 80)],
            ..Default::default()
        })
        .unwrap();
        assert!(!nets.proxy_pidfile("int", "c1").exists());
        assert_eq!(http_get("[::1]:8085"), None);
        assert_eq!(nets.ensure_port_proxies().unwrap(), 0);
        nets.remove("int").unwrap();
        // Removing the network stops its containers' proxies.
        let pid2 = berth_network::proxy::running(&nets.proxy_pidfile("six", "c2"))
            .unwrap()
            .unwrap();
        nets.remove("six").unwrap();
        nets.remove("four").unwrap();
        assert_eq!(http_get("[::1]:8091"), None);
        let gone = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !std::path::Path::new(&format!("/proc/{pid2}")).exists()
        });
        assert!(gone, "proxy {pid2} outlived its network");
        let left: Vec<_> = std::fs::read_dir(nets.run_dir().join("proxy"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    });
}

/// Docker's `DOCKER-USER` chain is found over nftables netlink, without
/// running iptables (so every `up` can afford to look), in either family.
#[test]
fn docker_chains_are_found_cheaply() {
    let w = World::new("dchain");
    w.run(|nets| {
        use berth_network::firewall::docker_chains_present;
        assert!(!docker_chains_present(), "a fresh namespace has no Docker");
        assert!(!nets.sync_docker_user().unwrap());
        sh_ok("nft", &["add", "table", "ip", "filter"]);
        sh_ok("nft", &["add", "chain", "ip", "filter", "FORWARD"]);
        assert!(!docker_chains_present(), "a filter table is not Docker's");
        let start = std::time::Instant::now();
        for _ in 0..100 {
            docker_chains_present();
        }
        println!(
            "    docker_chains_present: {:?} per call",
            start.elapsed() / 100
        );
        for family in ["ip", "ip6"] {
            sh_ok("nft", &["add", "table", family, "filter"]);
            sh_ok("nft", &["add", "chain", family, "filter", "DOCKER-USER"]);
            assert!(docker_chains_present(), "{family} filter DOCKER-USER");
            sh_ok("nft", &["delete", "table", family, "filter"]);
        }
        assert!(!docker_chains_present());
    });
}

#[test]
fn removal_leaves_nothing_behind() {
    let w = World::new("rm");
    let (c1, c2) = (TestNs::new("c1"), TestNs::new("c2"));
    let host_name = w.host.name.clone();
    let (c1n, c2n) = (c1.name.clone(), c2.name.clone());
    w.run(|nets| {
        // The host's own rules, which berth must leave alone.
        let host_rules = "table inet hostfw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n";
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        nft.stdin.take().unwrap().write_all(host_rules.as_bytes()).unwrap();
        assert!(nft.wait().unwrap().success());
        let n = nets.ensure(&net("x")).unwrap();
        let a = nets
            .attach(&AttachConfig {
                network: "x".into(),
                container_id: "c1".into(),
                netns_path: c1.path(),
                ports: vec![tcp(8088, 80)],
                ..Default::default()
            })
            .unwrap();
        let b = attach(nets, "x", &c2, "c2");
        assert!(nft_ruleset().contains("table inet berth"));
        nets.remove("x").unwrap();
        let links = link_names();
        for l in [&n.bridge, &a.host_ifname, &b.host_ifname] {
            assert!(!links.contains(l), "{l} left behind: {links:?}");
        }
        assert!(!c1.exec_ok(&["ip", "-o", "link"]).contains("eth0"));
        assert!(!nft_ruleset().contains("berth"), "{}", nft_ruleset());
        assert_eq!(nft_ruleset(), host_rules, "the host's rules changed");
        assert!(nets.get("x").unwrap().is_none());
        // Removing twice is fine.
        nets.remove("x").unwrap();
    });
    let left: Vec<_> = std::fs::read_dir(w.state_dir().join("networks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f != ".lock")
        .collect();
    assert!(left.is_empty(), "state files left: {left:?}");
    drop((c1, c2));
    drop(w);
    let ns = sh_ok("ip", &["netns", "list"]);
    for name in [host_name, c1n, c2n] {
        assert!(!ns.contains(&name), "{name} left behind");
    }
}

/// Unmounts what `create_netns` left in a test's run dir, even on failure.
struct RunDirGuard(std::path::PathBuf);

impl Drop for RunDirGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn netns_made_by_berth_keeps_a_container_attached_until_deleted() {
    let w = World::new("ns");
    let _guard = RunDirGuard(w.nets.run_dir().join("netns"));
    w.run(|nets| {
        nets.ensure(&net("n")).unwrap();
        let path = nets.create_netns("ctr1").unwrap();
        assert_eq!(path, nets.netns_path("ctr1"));
        let a = nets
            .attach(&AttachConfig {
                network: "n".into(),
                container_id: "ctr1".into(),
                netns_path: path.clone(),
                default_route: true,
                ..Default::default()
            })
            .unwrap();
        let nsenter = |args: &[&str]| {
            let mut all = vec![format!("--net={}", path.display())];
            all.extend(args.iter().map(|s| s.to_string()));
            let o = Command::new("nsenter").args(&all).output().unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let shown = nsenter(&["ip", "-o", "addr"]);
        assert!(shown.contains(&a.ipv4.unwrap().to_string()), "{shown}");
        assert!(nsenter(&["ip", "-o", "link", "show", "lo"]).contains("UP"));
        // Nothing runs in it, yet it lives: the host reaches it.
        assert!(sh(
            "busybox",
            &["ping", "-c", "1", "-W", "1", &a.ipv4.unwrap().to_string()]
        )
        .status
        .success());
        assert!(nets.create_netns("ctr1").is_err(), "made twice");
        nets.delete_netns("ctr1").unwrap();
        nets.delete_netns("ctr1").unwrap();
        assert!(!path.exists());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(path.to_str().unwrap()), "bind mount left");
        // Its veth went with it; detach still releases the lease.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!link_names().contains(&a.host_ifname));
        nets.detach("n", "ctr1", Some(&path)).unwrap();
        assert!(nets.attachments("n").unwrap().is_empty());
        nets.remove("n").unwrap();
    });
}

#[test]
fn release_frees_lease_and_ports_at_once_and_the_veth_goes_with_its_namespace() {
    let w = World::new("rel");
    let _guard = RunDirGuard(w.nets.run_dir().join("netns"));
    w.run(|nets| {
        nets.ensure(&net("n")).unwrap();
        let path = nets.create_netns("ctr1").unwrap();
        let a = nets
            .attach(&AttachConfig {
                network: "n".into(),
                container_id: "ctr1".into(),
                netns_path: path.clone(),
                default_route: true,
                ports: vec![tcp(8089, 80)],
                ..Default::default()
            })
            .unwrap();
        assert!(nft_ruleset().contains("8089"), "{}", nft_ruleset());
        let released = nets.release("n", "ctr1").unwrap();
        assert_eq!(released.as_ref(), Some(&a));
        // The lease and the published port go at once ...
        assert!(nets.attachments("n").unwrap().is_empty());
        assert!(!nft_ruleset().contains("8089"), "{}", nft_ruleset());
        // ... the veth stays while its namespace lives ...
        assert!(link_names().contains(&a.host_ifname));
        // ... and dies with it, in the kernel's own time (bounded here).
        nets.delete_netns("ctr1").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while link_names().contains(&a.host_ifname) {
            assert!(
                std::time::Instant::now() < deadline,
                "{} still there 2 s after its namespace was deleted",
                a.host_ifname
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Releasing again, or on a missing network, is nothing.
        assert_eq!(nets.release("n", "ctr1").unwrap(), None);
        assert_eq!(nets.release("gone", "ctr1").unwrap(), None);
        // The address is not handed out again at once.
        let c2 = TestNs::new("c2");
        let b = attach(nets, "n", &c2, "c2");
        assert_ne!(b.ipv4, a.ipv4);
        nets.remove("n").unwrap();
        assert!(!nft_ruleset().contains("berth"), "{}", nft_ruleset());
    });
}

const WORKER_ENV: &str = "BERTH_TEST_ATTACH_WORKER";

/// Not a test of its own: the body of one process of
/// `attaches_from_parallel_processes_never_share_an_address`, run by it
/// with `--ignored` and its arguments in the environment.
#[test]
#[ignore = "run by attaches_from_parallel_processes_never_share_an_address"]
fn attach_worker() {
    let spec = std::env::var(WORKER_ENV).expect(
        "attach_worker runs only from attaches_from_parallel_processes_never_share_an_address",
    );
    // root|host netns path|worker id|netns path,netns path,...
    let parts: Vec<&str> = spec.split('|').collect();
    let nets = Networks::new(parts[0].into(), "/nonexistent".into());
    let host = std::fs::File::open(parts[1]).unwrap();
    let worker = parts[2];
    let paths: Vec<&str> = parts[3].split(',').collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&host, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            std::thread::scope(|s| {
                for (i, p) in paths.iter().enumerate() {
                    let nets = &nets;
                    s.spawn(move || {
                        nets.attach(&AttachConfig {
                            network: "mp".into(),
                            container_id: format!("w{worker}-{i}"),
                            netns_path: p.into(),
                            ..Default::default()
                        })
                        .unwrap()
                    });
                }
            });
        });
    });
}

#[test]
fn attaches_from_parallel_processes_never_share_an_address() {
    const PROCS: usize = 8;
    const PER: usize = 25;
    let w = World::new("mp");
    let containers: Vec<Vec<TestNs>> = (0..PROCS)
        .map(|p| {
            (0..PER)
                .map(|i| TestNs::new(&format!("m{p}x{i}")))
                .collect()
        })
        .collect();
    w.run(|nets| {
        nets.ensure(&NetworkConfig {
            ipam: vec![IpamConfig {
                subnet: Some("10.78.0.0/24".parse().unwrap()),
                ..Default::default()
            }],
            ..net("mp")
        })
        .unwrap();
    });
    let exe = std::env::current_exe().unwrap();
    let root = w.state_dir().join("networks");
    let children: Vec<_> = containers
        .iter()
        .enumerate()
        .map(|(p, cs)| {
            let paths: Vec<String> = cs.iter().map(|c| c.path().display().to_string()).collect();
            let spec = format!(
                "{}|{}|{p}|{}",
                root.display(),
                w.host.path().display(),
                paths.join(",")
            );
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "attach_worker",
                    "--test-threads",
                    "1",
                ])
                .env(WORKER_ENV, spec)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "worker failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("1 passed"));
    }
    w.run(|nets| {
        let leases = nets.attachments("mp").unwrap();
        assert_eq!(leases.len(), PROCS * PER);
        let ips: BTreeSet<IpAddr> = leases.iter().filter_map(|a| a.ipv4).collect();
        assert_eq!(ips.len(), PROCS * PER, "addresses were shared");
        for (c, a) in containers
            .iter()
            .flatten()
            .zip(0..)
            .filter(|(_, i)| i % 29 == 0)
        {
            let _ = a;
            let shown = c.exec_ok(&["ip", "-o", "-4", "addr", "show", "eth0"]);
            assert!(
                leases
                    .iter()
                    .any(|l| shown.contains(&l.ipv4.unwrap().to_string())),
                "{shown}"
            );
        }
        nets.remove("mp").unwrap();
    });
}

/// The kernel work of attach and detach runs outside the state lock, so
/// containers started (or stopped) together are plumbed together: leases,
/// links and port rules must still come out exactly right.
#[test]
fn many_attach_and_detach_at_once() {
    let w = World::new("par");
    let cs: Vec<TestNs> = (0..12).map(|i| TestNs::new(&format!("p{i}"))).collect();
    let host = w.host.path();
    w.run(|nets| {
        nets.ensure(&net("proj_default")).unwrap();
        let at_once = |f: &(dyn Fn(usize, &TestNs) + Sync)| {
            std::thread::scope(|s| {
                for (i, c) in cs.iter().enumerate() {
                    let host = &host;
                    s.spawn(move || {
                        let h = std::fs::File::open(host).unwrap();
                        nix::sched::setns(&h, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                        f(i, c)
                    });
                }
            })
        };
        at_once(&|i, c| {
            let ports = if i % 3 == 0 {
                vec![tcp(9000 + i as u16, 80)]
            } else {
                Vec::new()
            };
            nets.attach(&AttachConfig {
                network: "proj_default".into(),
                container_id: format!("c{i}"),
                netns_path: c.path(),
                default_route: true,
                ports,
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("attach c{i}: {e}"));
        });
        let leases = nets.attachments("proj_default").unwrap();
        assert_eq!(leases.len(), cs.len());
        let ips: BTreeSet<_> = leases.iter().map(|a| a.ipv4.unwrap()).collect();
        assert_eq!(ips.len(), cs.len(), "duplicate addresses: {leases:#?}");
        let links = link_names();
        for a in &leases {
            assert!(links.contains(&a.host_ifname), "{} missing", a.host_ifname);
        }
        let last = leases.iter().find(|a| a.container_id == "c11").unwrap();
        assert!(cs[0].ping(&last.ipv4.unwrap().to_string()));
        let rules = nft_ruleset();
        for port in [9000, 9003, 9006, 9009] {
            assert!(rules.contains(&format!("dport {port}")), "{port}: {rules}");
        }

        at_once(&|i, c| {
            nets.detach("proj_default", &format!("c{i}"), Some(&c.path()))
                .unwrap_or_else(|e| panic!("detach c{i}: {e}"));
        });
        assert!(nets.attachments("proj_default").unwrap().is_empty());
        let links = link_names();
        let left: Vec<_> = leases
            .iter()
            .filter(|a| links.contains(&a.host_ifname))
            .collect();
        assert!(left.is_empty(), "veths left: {left:#?}");
        assert!(!nft_ruleset().contains("dport 900"), "{}", nft_ruleset());
        nets.remove("proj_default").unwrap();
    });
}
