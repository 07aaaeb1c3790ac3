//! IP address management, pure: subnets, the default pool, gateway and lease
//! choice. It never touches the kernel or the disk; `Networks` feeds it the
//! host's routes and addresses and the other networks' subnets, and stores
//! what it decides.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IP prefix in canonical form (no host bits set), IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    addr: IpAddr,
    prefix_len: u8,
}

/// Why a subnet, range or address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid subnet {0:?}: expected ADDRESS/PREFIX such as 172.20.0.0/16")]
    InvalidSubnet(String),
    #[error("invalid subnet {given}: host bits are set (did you mean {canonical}?)")]
    HostBitsSet { given: String, canonical: Subnet },
    #[error("subnet {0} is too small: at least a /30 (IPv4) or /126 (IPv6) is needed")]
    TooSmall(Subnet),
    #[error("subnet {subnet} overlaps {other} of network {network:?}")]
    Overlap {
        subnet: Subnet,
        other: Subnet,
        network: String,
    },
    #[error("ip_range {range} is not inside subnet {subnet}")]
    RangeOutside { range: Subnet, subnet: Subnet },
    #[error("{what} {addr} is not a usable address of subnet {subnet}")]
    AddressOutside {
        what: &'static str,
        addr: IpAddr,
        subnet: Subnet,
    },
    #[error("address {addr} is already in use by {holder}")]
    AddressInUse { addr: IpAddr, holder: String },
    #[error("no free address left in {0}")]
    Exhausted(Subnet),
    #[error("the default address pool is exhausted: every subnet overlaps a host route or another network")]
    PoolExhausted,
    #[error("network has no {0} subnet for a static address")]
    NoSubnetForFamily(&'static str),
}

impl Subnet {
    /// `addr/prefix_len`, which must be canonical.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, IpamError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(IpamError::InvalidSubnet(format!("{addr}/{prefix_len}")));
        }
        let s = Self { addr, prefix_len };
        if s.network_u128() != to_u128(addr) {
            return Err(IpamError::HostBitsSet {
                given: format!("{addr}/{prefix_len}"),
                canonical: Self {
                    addr: from_u128(s.network_u128(), addr.is_ipv4()),
                    prefix_len,
                },
            });
        }
        Ok(s)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    fn bits(&self) -> u32 {
        if self.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn host_bits(&self) -> u32 {
        self.bits() - u32::from(self.prefix_len)
    }

    fn mask(&self) -> u128 {
        let hb = self.host_bits();
        let all = if self.is_ipv4() {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        if hb >= 128 {
            0
        } else {
            all & !((1u128 << hb) - 1)
        }
    }

    fn network_u128(&self) -> u128 {
        to_u128(self.addr) & self.mask()
    }

    /// Number of addresses in the prefix, saturated at `u128::MAX`.
    pub fn size(&self) -> u128 {
        let hb = self.host_bits();
        if hb >= 128 {
            u128::MAX
        } else {
            1u128 << hb
        }
    }

    /// The address at `offset` from the start of the prefix.
    pub fn nth(&self, offset: u128) -> Option<IpAddr> {
        (offset < self.size()).then(|| from_u128(self.network_u128() + offset, self.is_ipv4()))
    }

    /// Offset of `ip` inside the prefix, if it is inside.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        self.contains(ip).then(|| to_u128(ip) - self.network_u128())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && to_u128(ip) & self.mask() == self.network_u128()
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && (self.contains(other.addr) || other.contains(self.addr))
    }

    /// True when `other` lies wholly inside `self`.
    pub fn covers(&self, other: &Subnet) -> bool {
        self.contains(other.addr) && self.prefix_len <= other.prefix_len
    }

    /// An address that can be given to a host: not the network address and,
    /// in IPv4, not the broadcast address (except in /31 and /32).
    pub fn is_usable(&self, ip: IpAddr) -> bool {
        let Some(off) = self.offset_of(ip) else {
            return false;
        };
        if self.is_ipv4() && self.prefix_len >= 31 {
            return true;
        }
        off != 0 && !(self.is_ipv4() && off == self.size() - 1)
    }

    /// The prefix of length `prefix_len` that contains `addr` (host bits cleared).
    pub fn containing(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return None;
        }
        let s = Self { addr, prefix_len };
        Some(Self {
            addr: from_u128(s.network_u128(), addr.is_ipv4()),
            prefix_len,
        })
    }

    /// The first usable address: the conventional gateway.
    pub fn first_host(&self) -> Option<IpAddr> {
        self.nth(1)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, IpamError> {
        let bad = || IpamError::InvalidSubnet(s.to_owned());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix_len: u8 = p.parse().map_err(|_| bad())?;
        Subnet::new(addr, prefix_len).map_err(|e| match e {
            IpamError::InvalidSubnet(_) => bad(),
            other => other,
        })
    }
}

impl TryFrom<String> for Subnet {
    type Error = IpamError;
    fn try_from(s: String) -> Result<Self, IpamError> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// Docker's default local pool: 172.17.0.0/16 … 172.31.0.0/16, then
/// 192.168.0.0/16 cut into /20s.
pub fn default_pool() -> impl Iterator<Item = Subnet> {
    let b = (17u8..=31).map(|o| Subnet {
        addr: IpAddr::V4(Ipv4Addr::new(172, o, 0, 0)),
        prefix_len: 16,
    });
    let c = (0u8..16).map(|i| Subnet {
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, i * 16, 0)),
        prefix_len: 20,
    });
    b.chain(c)
}

/// The first subnet of the default pool that overlaps nothing in `taken`
/// (host routes and addresses, other networks' subnets).
pub fn pick_from_pool(taken: &[Subnet]) -> Result<Subnet, IpamError> {
    default_pool()
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
        .ok_or(IpamError::PoolExhausted)
}

/// A unique-local IPv6 /64 (RFC 4193) whose 40-bit global id comes from the
/// network id, so it is stable and rarely collides.
pub fn ula_subnet(id_hex: &str, taken: &[Subnet]) -> Result<Subnet, IpamError> {
    let bytes = hex::decode(id_hex.get(..16).unwrap_or("0000000000000000")).unwrap_or_default();
    for bump in 0u8..=255 {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        for i in 0..5 {
            a[1 + i] = bytes.get(i).copied().unwrap_or(0);
        }
        a[6] = bytes.get(5).copied().unwrap_or(0);
        a[7] = bytes.get(6).copied().unwrap_or(0).wrapping_add(bump);
        let s = Subnet {
            addr: IpAddr::V6(Ipv6Addr::from(a)),
            prefix_len: 64,
        };
        if !taken.iter().any(|t| t.overlaps(&s)) {
            return Ok(s);
        }
    }
    Err(IpamError::PoolExhausted)
}

/// A network's address space of one family, resolved: what may be handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Subnet,
    /// Addresses are handed out from here (defaults to the subnet).
    pub ip_range: Option<Subnet>,
    pub gateway: IpAddr,
    /// Addresses reserved by the user (`aux_addresses`), never handed out.
    #[serde(default)]
    pub reserved: Vec<IpAddr>,
}

impl Pool {
    /// Check a user's `ipam.config` entry and fill in the gateway.
    pub fn resolve(
        subnet: Subnet,
        ip_range: Option<Subnet>,
        gateway: Option<IpAddr>,
        aux: &[IpAddr],
    ) -> Result<Self, IpamError> {
        let min = if subnet.is_ipv4() { 30 } else { 126 };
        if subnet.prefix_len > min {
            return Err(IpamError::TooSmall(subnet));
        }
        if let Some(r) = ip_range {
            if !subnet.covers(&r) {
                return Err(IpamError::RangeOutside { range: r, subnet });
            }
        }
        let gateway = match gateway {
            Some(g) if subnet.is_usable(g) => g,
            Some(g) => {
                return Err(IpamError::AddressOutside {
                    what: "gateway",
                    addr: g,
                    subnet,
                })
            }
            None => subnet.first_host().ok_or(IpamError::TooSmall(subnet))?,
        };
        for a in aux {
            if !subnet.contains(*a) {
                return Err(IpamError::AddressOutside {
                    what: "aux address",
                    addr: *a,
                    subnet,
                });
            }
        }
        Ok(Self {
            subnet,
            ip_range,
            gateway,
            reserved: aux.to_vec(),
        })
    }

    fn is_free(&self, ip: IpAddr, leased: &BTreeSet<IpAddr>) -> bool {
        self.subnet.is_usable(ip)
            && ip != self.gateway
            && !self.reserved.contains(&ip)
            && !leased.contains(&ip)
    }

    /// Check a requested static address.
    pub fn check_static(
        &self,
        ip: IpAddr,
        leased: &BTreeSet<IpAddr>,
        holder: impl Fn(IpAddr) -> String,
    ) -> Result<(), IpamError> {
        if !self.subnet.is_usable(ip) {
            return Err(IpamError::AddressOutside {
                what: "address",
                addr: ip,
                subnet: self.subnet,
            });
        }
        if ip == self.gateway {
            return Err(IpamError::AddressInUse {
                addr: ip,
                holder: "the network's gateway".into(),
            });
        }
        if self.reserved.contains(&ip) {
            return Err(IpamError::AddressInUse {
                addr: ip,
                holder: "an aux_addresses entry".into(),
            });
        }
        if leased.contains(&ip) {
            return Err(IpamError::AddressInUse {
                addr: ip,
                holder: holder(ip),
            });
        }
        Ok(())
    }

    /// The next free address after `last` (wrapping), so a released address
    /// is not reused at once (stale ARP caches of peers), like Docker.
    pub fn allocate(
        &self,
        leased: &BTreeSet<IpAddr>,
        last: Option<IpAddr>,
    ) -> Result<IpAddr, IpamError> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let size = range.size();
        let start = last
            .and_then(|l| range.offset_of(l))
            .map(|o| (o + 1) % size)
            .unwrap_or(0);
        // A ULA /64 is never scanned whole: leases are dense from the start,
        // so a free address is found within a million steps or not at all.
        let limit = size.min(leased.len() as u128 + self.reserved.len() as u128 + (1 << 20));
        let mut off = start;
        for _ in 0..limit {
            if let Some(ip) = range.nth(off) {
                if self.is_free(ip, leased) {
                    return Ok(ip);
                }
            }
            off = (off + 1) % size;
        }
        Err(IpamError::Exhausted(range))
    }
}

/// A MAC address derived from an IPv4 address, Docker's way: 02:42 and the
/// four address bytes. For IPv6-only attachments the last four bytes are used.
pub fn mac_for(ip: IpAddr) -> [u8; 6] {
    let b: [u8; 4] = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse `aa:bb:cc:dd:ee:ff` (or with dashes); must be unicast.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    (mac[0] & 1 == 0).then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }
    fn ip(x: &str) -> IpAddr {
        x.parse().unwrap()
    }

    #[test]
    fn parse_and_canonical_form() {
        assert_eq!(s("10.1.0.0/16").to_string(), "10.1.0.0/16");
        assert!(matches!(
            "10.1.2.3/16".parse::<Subnet>(),
            Err(IpamError::HostBitsSet { .. })
        ));
        assert!(matches!(
            "10.1.0.0/33".parse::<Subnet>(),
            Err(IpamError::InvalidSubnet(_))
        ));
        assert!(matches!(
            "banana".parse::<Subnet>(),
            Err(IpamError::InvalidSubnet(_))
        ));
        assert_eq!(s("fd00::/64").to_string(), "fd00::/64");
        assert_eq!(s("0.0.0.0/0").size(), 1 << 32);
    }

    #[test]
    fn overlap_and_cover() {
        assert!(s("10.0.0.0/8").overlaps(&s("10.3.0.0/16")));
        assert!(s("10.3.0.0/16").overlaps(&s("10.0.0.0/8")));
        assert!(!s("10.3.0.0/16").overlaps(&s("10.4.0.0/16")));
        assert!(!s("10.0.0.0/8").overlaps(&s("fd00::/8")));
        assert!(s("10.0.0.0/8").covers(&s("10.3.0.0/16")));
        assert!(!s("10.3.0.0/16").covers(&s("10.0.0.0/8")));
    }

    #[test]
    fn pool_skips_taken() {
        let taken = vec![s("172.17.0.0/16"), s("172.18.5.0/24"), s("10.0.0.0/8")];
        assert_eq!(pick_from_pool(&taken).unwrap(), s("172.19.0.0/16"));
        let all: Vec<Subnet> = default_pool().collect();
        assert_eq!(all.len(), 31);
        assert_eq!(all[15], s("192.168.0.0/20"));
        assert_eq!(all[30], s("192.168.240.0/20"));
        assert_eq!(
            pick_from_pool(&[s("172.16.0.0/12"), s("192.168.0.0/16")]),
            Err(IpamError::PoolExhausted)
        );
        // A host default route does not take the whole pool.
        assert_eq!(
            pick_from_pool(&[s("192.168.0.0/24")]).unwrap(),
            s("172.17.0.0/16")
        );
    }

    #[test]
    fn resolve_checks_gateway_range_aux() {
        let p = Pool::resolve(s("10.5.0.0/24"), None, None, &[]).unwrap();
        assert_eq!(p.gateway, ip("10.5.0.1"));
        assert!(matches!(
            Pool::resolve(s("10.5.0.0/24"), None, Some(ip("10.6.0.1")), &[]),
            Err(IpamError::AddressOutside {
                what: "gateway",
                ..
            })
        ));
        assert!(matches!(
            Pool::resolve(s("10.5.0.0/24"), None, Some(ip("10.5.0.255")), &[]),
            Err(IpamError::AddressOutside { .. })
        ));
        assert!(matches!(
            Pool::resolve(s("10.5.0.0/24"), Some(s("10.6.0.0/28")), None, &[]),
            Err(IpamError::RangeOutside { .. })
        ));
        assert!(matches!(
            Pool::resolve(s("10.5.0.0/24"), None, None, &[ip("10.9.0.9")]),
            Err(IpamError::AddressOutside {
                what: "aux address",
                ..
            })
        ));
        assert!(matches!(
            Pool::resolve(s("10.5.0.0/31"), None, None, &[]),
            Err(IpamError::TooSmall(_))
        ));
    }

    #[test]
    fn allocate_in_order_skipping_gateway_aux_and_leases() {
        let p = Pool::resolve(s("10.5.0.0/24"), None, None, &[ip("10.5.0.3")]).unwrap();
        let mut leased = BTreeSet::new();
        let a = p.allocate(&leased, None).unwrap();
        assert_eq!(a, ip("10.5.0.2"));
        leased.insert(a);
        let b = p.allocate(&leased, Some(a)).unwrap();
        assert_eq!(b, ip("10.5.0.4"));
        leased.insert(b);
        // A released address is not reused at once.
        leased.remove(&a);
        assert_eq!(p.allocate(&leased, Some(b)).unwrap(), ip("10.5.0.5"));
    }

    #[test]
    fn allocate_from_ip_range_and_exhaust() {
        let p = Pool::resolve(s("10.5.0.0/24"), Some(s("10.5.0.128/30")), None, &[]).unwrap();
        let mut leased = BTreeSet::new();
        let mut last = None;
        for want in ["10.5.0.128", "10.5.0.129", "10.5.0.130", "10.5.0.131"] {
            let a = p.allocate(&leased, last).unwrap();
            assert_eq!(a, ip(want));
            leased.insert(a);
            last = Some(a);
        }
        assert!(matches!(
            p.allocate(&leased, last),
            Err(IpamError::Exhausted(_))
        ));
        let small = Pool::resolve(s("10.6.0.0/30"), None, None, &[]).unwrap();
        let one = small.allocate(&BTreeSet::new(), None).unwrap();
        assert_eq!(one, ip("10.6.0.2"));
        assert!(small.allocate(&BTreeSet::from([one]), Some(one)).is_err());
    }

    #[test]
    fn static_addresses() {
        let p = Pool::resolve(s("10.5.0.0/24"), None, None, &[ip("10.5.0.9")]).unwrap();
        let leased = BTreeSet::from([ip("10.5.0.7")]);
        let holder = |_| "container c7".to_string();
        assert!(p.check_static(ip("10.5.0.8"), &leased, holder).is_ok());
        assert!(matches!(
            p.check_static(ip("10.5.0.7"), &leased, holder),
            Err(IpamError::AddressInUse { holder, .. }) if holder == "container c7"
        ));
        assert!(p.check_static(ip("10.5.0.1"), &leased, holder).is_err());
        assert!(p.check_static(ip("10.5.0.9"), &leased, holder).is_err());
        assert!(p.check_static(ip("10.5.1.1"), &leased, holder).is_err());
        assert!(p.check_static(ip("10.5.0.255"), &leased, holder).is_err());
    }

    #[test]
    fn ipv6_allocation_and_ula() {
        let u = ula_subnet("0123456789abcdef", &[]).unwrap();
        assert_eq!(u.to_string(), "fd01:2345:6789:abcd::/64");
        let u2 = ula_subnet("0123456789abcdef", &[u]).unwrap();
        assert_ne!(u, u2);
        let p = Pool::resolve(u, None, None, &[]).unwrap();
        assert_eq!(p.gateway, ip("fd01:2345:6789:abcd::1"));
        assert_eq!(
            p.allocate(&BTreeSet::new(), None).unwrap(),
            ip("fd01:2345:6789:abcd::2")
        );
    }

    #[test]
    fn macs() {
        assert_eq!(format_mac(mac_for(ip("172.17.0.2"))), "02:42:ac:11:00:02");
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some(mac_for(ip("172.17.0.2")))
        );
        assert_eq!(parse_mac("01:00:00:00:00:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
    }
}
