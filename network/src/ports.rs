//! Host port bookkeeping for published ports: who holds a port now (a
//! listening socket of some process, found through
//! `/proc/thread-self/net/{tcp,tcp6,udp,udp6}` and the processes' fds, or
//! another berth attachment), and which host port a range resolves to.
//!
//! berth forwards with DNAT and binds no socket, so a host process listening
//! on a published port would silently lose its traffic: that is refused up
//! front, as Docker's bind would be.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{PortSpec, Protocol, PublishedPort};
use crate::error::{NetworkError, PortOwner};

/// A bound socket seen in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// Parse one `/proc/net/{tcp,udp}{,6}` table. TCP: listeners only; UDP: all.
pub fn parse_table(text: &str, protocol: Protocol) -> Vec<Socket> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        if protocol == Protocol::Tcp && f[3] != "0A" {
            continue;
        }
        let Some((a, p)) = f[1].split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(p, 16) else {
            continue;
        };
        let addr = match a.len() {
            8 => match u32::from_str_radix(a, 16) {
                Ok(v) => IpAddr::V4(Ipv4Addr::from(v.swap_bytes())),
                Err(_) => continue,
            },
            32 => {
                let mut b = [0u8; 16];
                let mut ok = true;
                for i in 0..4 {
                    match u32::from_str_radix(&a[i * 8..i * 8 + 8], 16) {
                        Ok(w) => b[i * 4..i * 4 + 4].copy_from_slice(&w.swap_bytes().to_be_bytes()),
                        Err(_) => ok = false,
                    }
                }
                if !ok {
                    continue;
                }
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => continue,
        };
        let inode = f[9].parse().unwrap_or(0);
        out.push(Socket {
            protocol,
            addr,
            port,
            inode,
        });
    }
    out
}

/// Sockets bound in the calling thread's network namespace.
pub fn host_sockets() -> Vec<Socket> {
    let mut out = Vec::new();
    for (file, proto) in [
        ("tcp", Protocol::Tcp),
        ("tcp6", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("udp6", Protocol::Udp),
    ] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{file}")) {
            out.extend(parse_table(&text, proto));
        }
    }
    out
}

/// The process holding socket `inode`, by scanning `/proc/*/fd`.
pub fn socket_owner(inode: u64) -> PortOwner {
    let want = format!("socket:[{inode}]");
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                    let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                    return PortOwner::Process {
                        pid,
                        name: comm.trim().to_owned(),
                    };
                }
            }
        }
    }
    PortOwner::Socket { inode }
}

fn addr_clash(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        _ => true,
    }
}

/// What already holds host ports: sockets and berth's own published ports.
pub struct Taken {
    sockets: Vec<Socket>,
    berth: Vec<(PublishedPort, PortOwner)>,
    /// Chosen during this resolution (several specs of one call).
    chosen: Vec<PublishedPort>,
}

impl Taken {
    pub fn new(sockets: Vec<Socket>, berth: Vec<(PublishedPort, PortOwner)>) -> Self {
        Self {
            sockets,
            berth,
            chosen: Vec::new(),
        }
    }

    /// The holder of `port`, if any.
    fn holder(&self, protocol: Protocol, host_ip: Option<IpAddr>, port: u16) -> Option<PortOwner> {
        for (p, owner) in &self.berth {
            if p.protocol == protocol && p.host_port == port && addr_clash(p.host_ip, host_ip) {
                return Some(owner.clone());
            }
        }
        for p in &self.chosen {
            if p.protocol == protocol && p.host_port == port && addr_clash(p.host_ip, host_ip) {
                return Some(PortOwner::SameRequest);
            }
        }
        for s in &self.sockets {
            let fam_ok = match host_ip {
                None => true,
                Some(h) => s.addr.is_unspecified() || s.addr == h || h.is_unspecified(),
            };
            if s.protocol == protocol && s.port == port && fam_ok {
                return Some(socket_owner(s.inode));
            }
        }
        None
    }

    fn taken_error(
        &self,
        protocol: Protocol,
        host_ip: Option<IpAddr>,
        port: u16,
        owner: PortOwner,
    ) -> NetworkError {
        NetworkError::PortTaken {
            protocol,
            host_ip: host_ip.map_or("0.0.0.0".to_owned(), |i| i.to_string()),
            port,
            owner,
        }
    }

    /// Resolve specs to concrete ports, refusing any that is taken.
    pub fn resolve(
        &mut self,
        specs: &[PortSpec],
        ephemeral: (u16, u16),
    ) -> Result<Vec<PublishedPort>, NetworkError> {
        let mut out = Vec::new();
        for spec in specs {
            let (c0, c1) = spec.container_ports;
            if c0 == 0 || c1 < c0 {
                return Err(NetworkError::InvalidPort(format!(
                    "container ports {c0}-{c1}"
                )));
            }
            let n = c1 - c0;
            match spec.host_ports {
                Some((h0, h1)) if h1 < h0 || h0 == 0 => {
                    return Err(NetworkError::InvalidPort(format!("host ports {h0}-{h1}")));
                }
                Some((h0, h1)) if h1 - h0 == n => {
                    for i in 0..=n {
                        let port = h0 + i;
                        if let Some(owner) = self.holder(spec.protocol, spec.host_ip, port) {
                            return Err(self.taken_error(spec.protocol, spec.host_ip, port, owner));
                        }
                        let p = PublishedPort {
                            protocol: spec.protocol,
                            host_ip: spec.host_ip,
                            host_port: port,
                            container_port: c0 + i,
                        };
                        self.chosen.push(p);
                        out.push(p);
                    }
                }
                Some((h0, h1)) if n == 0 => {
                    let port = self.first_free(spec, h0, h1)?;
                    out.push(port);
                }
                Some((h0, h1)) => {
                    return Err(NetworkError::InvalidPort(format!(
                        "host ports {h0}-{h1} do not match container ports {c0}-{c1}"
                    )))
                }
                None => {
                    for i in 0..=n {
                        let one = PortSpec {
                            container_ports: (c0 + i, c0 + i),
                            ..spec.clone()
                        };
                        out.push(self.first_free(&one, ephemeral.0, ephemeral.1)?);
                    }
                }
            }
        }
        Ok(out)
    }

    fn first_free(
        &mut self,
        spec: &PortSpec,
        h0: u16,
        h1: u16,
    ) -> Result<PublishedPort, NetworkError> {
        for port in h0..=h1 {
            if self.holder(spec.protocol, spec.host_ip, port).is_none() {
                let p = PublishedPort {
                    protocol: spec.protocol,
                    host_ip: spec.host_ip,
                    host_port: port,
                    container_port: spec.container_ports.0,
                };
                self.chosen.push(p);
                return Ok(p);
            }
        }
        Err(NetworkError::NoFreePort {
            protocol: spec.protocol,
            first: h0,
            last: h1,
        })
    }
}

/// The kernel's ephemeral port range, for ports published without a host port.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_listeners_only() {
        let s = parse_table(TCP, Protocol::Tcp);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s[0].port, 8080);
        assert_eq!(s[0].inode, 12345);
        let s6 = parse_table(TCP6, Protocol::Tcp);
        assert_eq!(s6[0].addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(s6[0].port, 80);
        assert_eq!(s6[1].addr, "::1".parse::<IpAddr>().unwrap());
    }

    fn spec(h: Option<(u16, u16)>, c: (u16, u16)) -> PortSpec {
        PortSpec {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_ports: h,
            container_ports: c,
        }
    }

    #[test]
    fn ranges_resolve_and_skip_taken() {
        let berth_owned = PublishedPort {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_port: 8000,
            container_port: 80,
        };
        let owner = PortOwner::Container {
            container: "p-web-1".into(),
            project: Some("p".into()),
            network: "p_default".into(),
        };
        let mut t = Taken::new(Vec::new(), vec![(berth_owned, owner.clone())]);
        let got = t
            .resolve(&[spec(Some((8000, 8005)), (80, 80))], (40000, 40010))
            .unwrap();
        assert_eq!(got[0].host_port, 8001);
        let got = t
            .resolve(&[spec(Some((9000, 9002)), (90, 92))], (1, 1))
            .unwrap();
        assert_eq!(
            got.iter()
                .map(|p| (p.host_port, p.container_port))
                .collect::<Vec<_>>(),
            vec![(9000, 90), (9001, 91), (9002, 92)]
        );
        match t.resolve(&[spec(Some((8000, 8000)), (80, 80))], (1, 1)) {
            Err(NetworkError::PortTaken {
                port: 8000,
                owner: o,
                ..
            }) => assert_eq!(o, owner),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.resolve(&[spec(Some((9000, 9001)), (90, 92))], (1, 1)),
            Err(NetworkError::InvalidPort(_))
        ));
        let got = t.resolve(&[spec(None, (80, 80))], (40000, 40010)).unwrap();
        assert_eq!(got[0].host_port, 40000);
    }

    #[test]
    fn host_ip_scoping() {
        let sock = Socket {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 8080,
            inode: 0,
        };
        let mut t = Taken::new(vec![sock], Vec::new());
        let mut s = spec(Some((8080, 8080)), (80, 80));
        s.host_ip = Some("10.1.1.1".parse().unwrap());
        assert!(t.resolve(&[s.clone()], (1, 1)).is_ok());
        s.host_ip = Some("127.0.0.1".parse().unwrap());
        assert!(t.resolve(&[s], (1, 1)).is_err());
    }
}
