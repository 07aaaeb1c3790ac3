//! A small synchronous rtnetlink client: one request at a time on one socket,
//! every change sent with `NLM_F_ACK` and its answer mapped to an `io::Error`.
//!
//! It owns only the wire exchange and the few link, address and route
//! operations berth needs; it must not know about networks or leases. A
//! socket talks to the network namespace it was opened in (netlink(7)), which
//! is how `sys::netns` reaches a container's namespace.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A link as the kernel reports it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub controller: Option<u32>,
    pub up: bool,
}

/// A route of the main table, as far as berth needs it (overlap checks, MTU).
#[derive(Debug, Clone)]
pub struct Route {
    pub destination: Option<IpAddr>,
    pub prefix_len: u8,
    pub oif: Option<u32>,
}

/// An rtnetlink socket bound to the network namespace it was created in.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_ext_ack(true).ok();
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Send one request and collect every answer message until the ACK (for
    /// changes) or `NLMSG_DONE` (for dumps). A NACK becomes the kernel's errno.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut answers = Vec::new();
        self.exchange(message, flags, |bytes| {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if let NetlinkPayload::InnerMessage(m) = m.payload {
                answers.push(m);
            }
            Ok(())
        })?;
        Ok(answers)
    }

    /// Send one request and hand each answer message (header included) to
    /// `answer`, until the ACK (for changes) or `NLMSG_DONE` (for dumps).
    /// A NACK becomes the kernel's errno. Only the netlink header is decoded
    /// here, so a caller may read what it needs of the answers itself.
    fn exchange(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        mut answer: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        loop {
            self.buf.clear();
            let n = self.socket.recv(&mut self.buf, 0)?;
            if n > self.buf.len() {
                return Err(invalid("netlink answer truncated"));
            }
            let mut offset = 0;
            while offset + NLMSG_HDRLEN <= n {
                let m = &self.buf[offset..n];
                let len = u32_at(m, 0) as usize;
                if len == 0 {
                    break;
                }
                if len < NLMSG_HDRLEN || len > m.len() {
                    return Err(invalid("netlink message length out of bounds"));
                }
                offset += (len + 3) & !3;
                let kind = u16::from_ne_bytes([m[4], m[5]]);
                if u32_at(m, 8) != self.seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        if len < NLMSG_HDRLEN + 4 {
                            return Err(invalid("netlink error message too short"));
                        }
                        let code = i32::from_ne_bytes([m[16], m[17], m[18], m[19]]);
                        return if code == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    NLMSG_DONE => return Ok(()),
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    // A non-dump request answered with data still ends with
                    // an ACK.
                    _ => answer(&m[..len])?,
                }
            }
        }
    }

    /// The links a `GetLink` request answers, read straight from the wire:
    /// only the header, name, MTU and controller. (netlink-packet-route's
    /// parser formats every nested attribute of a bridge or an inet6
    /// `AF_SPEC` as text whether or not it fails, which made a link lookup
    /// cost more than the change it preceded.)
    fn get_links(&mut self, message: LinkMessage, flags: u16) -> io::Result<Vec<Link>> {
        let mut links = Vec::new();
        self.exchange(RouteNetlinkMessage::GetLink(message), flags, |m| {
            if u16::from_ne_bytes([m[4], m[5]]) == RTM_NEWLINK {
                links.push(parse_link(&m[NLMSG_HDRLEN..])?);
            }
            Ok(())
        })?;
        Ok(links)
    }

    fn change(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.request(message, NLM_F_ACK | flags).map(|_| ())
    }

    /// All links of this namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        self.get_links(LinkMessage::default(), NLM_F_DUMP)
    }

    /// The link called `name`, or `None`.
    pub fn link_by_name(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.get_links(msg, NLM_F_ACK) {
            Ok(links) => Ok(links.into_iter().next()),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a bridge with a fixed MAC (so it does not follow its ports'),
    /// STP off and no forward delay. Fails with EEXIST if the name is taken.
    pub fn add_bridge(&mut self, name: &str, mtu: u32, mac: [u8; 6]) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::StpState(0),
                InfoBridge::ForwardDelay(0),
            ])),
        ]));
        self.change(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Create a veth pair: `host` here, enslaved to `controller`; `peer`
    /// directly inside the namespace `peer_netns` (an open netns fd), so it
    /// never appears on the host. Both ends are down; the caller sets them up.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: &impl AsRawFd,
        mtu: u32,
        peer_mac: [u8; 6],
        controller: u32,
    ) -> io::Result<()> {
        // The peer cannot be created up: veth_open() fails with ENOTCONN
        // until both ends are linked, which happens after the peer's setup.
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_owned()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::Controller(controller));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.change(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
    }

    /// Stop the kernel from giving a link IPv6 addresses of its own
    /// (`addrgenmode none`): no link-local address, hence no DAD, MLD or
    /// router solicitations. Addresses added explicitly still work.
    pub fn set_no_ipv6_addresses(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(no_ipv6_addresses());
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// [`Netlink::set_no_ipv6_addresses`] for the link called `name`.
    pub fn set_no_ipv6_addresses_by_name(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(no_ipv6_addresses());
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Set a link up, optionally enslaving it to `controller` in the same request.
    pub fn set_up(&mut self, index: u32, controller: Option<u32>) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if let Some(c) = controller {
            msg.attributes.push(LinkAttribute::Controller(c));
        }
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Set the link called `name` up (no index lookup needed).
    pub fn set_up_by_name(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.change(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Delete a link by name. A missing link is not an error.
    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.change(RouteNetlinkMessage::DelLink(msg), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other,
        }
    }

    /// Add `addr/prefix_len` to a link; IPv6 without duplicate address detection
    /// (the address is leased, so it is known to be unique on the bridge).
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix_len;
        match addr {
            IpAddr::V4(v4) => {
                msg.header.family = AddressFamily::Inet;
                msg.attributes.push(AddressAttribute::Local(addr));
                msg.attributes.push(AddressAttribute::Address(addr));
                let host_bits = 32 - u32::from(prefix_len);
                if prefix_len < 31 {
                    let bcast = u32::from(v4) | ((1u64 << host_bits) - 1) as u32;
                    msg.attributes
                        .push(AddressAttribute::Broadcast(bcast.into()));
                }
            }
            IpAddr::V6(_) => {
                msg.header.family = AddressFamily::Inet6;
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Address(addr));
            }
        }
        match self.change(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// Every address of this namespace, as (link index, address, prefix length).
    pub fn addresses(&mut self) -> io::Result<Vec<(u32, IpAddr, u8)>> {
        let answers = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in answers {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                let addr = a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let addr = addr.or_else(|| {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                });
                if let Some(ip) = addr {
                    out.push((a.header.index, ip, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Routes of the main table of both families.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let answers = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
            for m in answers {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    continue;
                };
                if r.header.table != RouteHeader::RT_TABLE_MAIN
                    || r.header.kind != RouteType::Unicast
                {
                    continue;
                }
                let mut route = Route {
                    destination: None,
                    prefix_len: r.header.destination_prefix_length,
                    oif: None,
                };
                for at in &r.attributes {
                    match at {
                        RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                            route.destination = Some(IpAddr::V4(*a))
                        }
                        RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                            route.destination = Some(IpAddr::V6(*a))
                        }
                        RouteAttribute::Oif(o) => route.oif = Some(*o),
                        _ => {}
                    }
                }
                if route.destination.is_none() && route.prefix_len == 0 {
                    route.destination = Some(match family {
                        AddressFamily::Inet => IpAddr::V4(0.into()),
                        _ => IpAddr::V6(0.into()),
                    });
                }
                out.push(route);
            }
        }
        Ok(out)
    }

    /// Whether the kernel routes `addr` to this namespace itself (a route of
    /// type `local`, as `ip route get` would show), i.e. whether packets to it
    /// are delivered here rather than forwarded or dropped.
    pub fn routes_locally(&mut self, addr: IpAddr) -> io::Result<bool> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(addr)));
        let answers = match self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_ACK) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(libc::ENETUNREACH) => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(answers.iter().any(
            |m| matches!(m, RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Local),
        ))
    }

    /// Add a default route via `gateway` (the link is found by the kernel).
    pub fn add_default_route(&mut self, gateway: IpAddr) -> io::Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match gateway {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        match self.change(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }
}

/// `IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE: IN6_ADDR_GEN_MODE_NONE } }`.
fn no_ipv6_addresses() -> LinkAttribute {
    const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        IN6_ADDR_GEN_MODE_NONE,
    )])])
}

/// Netlink's fixed header: length, type, flags, sequence number, port id.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
/// `struct ifinfomsg`: family, pad, type, index, flags, change mask.
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFF_UP: u32 = 1;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A link from an `RTM_NEWLINK` payload (`ifinfomsg` and its attributes,
/// rtnetlink(7)); attributes other than the name, MTU and controller are
/// skipped unread.
fn parse_link(p: &[u8]) -> io::Result<Link> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    if p.len() < IFINFOMSG_LEN {
        return Err(invalid("link message too short"));
    }
    let mut link = Link {
        index: u32_at(p, 4),
        name: String::new(),
        mtu: 0,
        controller: None,
        up: u32_at(p, 8) & IFF_UP != 0,
    };
    let mut at = IFINFOMSG_LEN;
    while at + 4 <= p.len() {
        let len = u16::from_ne_bytes([p[at], p[at + 1]]) as usize;
        // The top two bits are NLA_F_NESTED and NLA_F_NET_BYTEORDER.
        let kind = u16::from_ne_bytes([p[at + 2], p[at + 3]]) & 0x3fff;
        if len < 4 || at + len > p.len() {
            return Err(invalid("link attribute length out of bounds"));
        }
        let data = &p[at + 4..at + len];
        match kind {
            IFLA_IFNAME => {
                let name = data.split(|b| *b == 0).next().unwrap_or_default();
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_MTU if data.len() >= 4 => link.mtu = u32_at(data, 0),
            IFLA_MASTER if data.len() >= 4 => link.controller = Some(u32_at(data, 0)),
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload (after the netlink header) of `msg` as the kernel would
    /// send it.
    fn wire(msg: LinkMessage) -> Vec<u8> {
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(msg)),
        );
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        out.split_off(NLMSG_HDRLEN)
    }

    /// What `parse_link` reads of a link message is what
    /// netlink-packet-route reads of the same bytes, nested attributes
    /// (link info, `AF_SPEC`) skipped.
    #[test]
    fn a_link_is_read_from_the_wire_as_the_full_parser_reads_it() {
        let mut msg = LinkMessage::default();
        msg.header.index = 42;
        msg.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        msg.attributes
            .push(LinkAttribute::IfName("br-0123456789a".into()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::StpState(0),
                InfoBridge::ForwardDelay(1500),
            ])),
        ]));
        msg.attributes.push(LinkAttribute::Mtu(1450));
        msg.attributes.push(no_ipv6_addresses());
        msg.attributes.push(LinkAttribute::Controller(7));
        let link = parse_link(&wire(msg)).unwrap();
        assert_eq!(
            (
                link.index,
                link.name.as_str(),
                link.mtu,
                link.controller,
                link.up
            ),
            (42, "br-0123456789a", 1450, Some(7), true)
        );
        let mut down = LinkMessage::default();
        down.header.index = 1;
        down.attributes.push(LinkAttribute::IfName("lo".into()));
        let bytes = wire(down);
        let link = parse_link(&bytes).unwrap();
        assert_eq!(
            (link.name.as_str(), link.up, link.controller),
            ("lo", false, None)
        );
        // A truncated attribute is an error, not a wrong answer ("lo\0"
        // is 7 bytes with its header, padded to 8: cut into the name).
        assert!(parse_link(&bytes[..bytes.len() - 1]).is_ok());
        assert!(parse_link(&bytes[..bytes.len() - 2]).is_err());
    }
}
